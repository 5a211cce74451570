//! Publishing a 500-shot project (issue 21): each format's time, the archive, and
//! the animatic's encode speed as a multiple of real time.
//!
//! Run: `cargo bench -p reelmesh-node --bench publish` (release build; needs
//! ffmpeg). The takes are real: 500 storyboard cards rendered by the node's card
//! renderer (PNG, 1280 wide), so every format copies 500 files and the PDF embeds
//! 500 pictures.

#[path = "support/common.rs"]
mod common;

use std::time::{Duration, Instant};

use reelmesh_node::jobs::{self, queue::RenderRequest};
use reelmesh_node::node::{Node, NodeConfig};
use reelmesh_node::store::DataDir;
use reelmesh_node::store::blobs::BlobStore;

const SHOTS: u64 = 500;

fn main() {
    let data = tempfile::tempdir().expect("tmp");
    common::korean_project(
        data.path(),
        "밤의 골목 500",
        SHOTS,
        "민아가 우산 없이 골목으로 들어선다",
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    runtime.block_on(async {
        let node = Node::start(NodeConfig::offline(data.path().to_owned()))
            .await
            .expect("node");
        let handle = node.handle();
        let request = RenderRequest {
            shots: "all".into(),
            workflow: "card".into(),
            ..RenderRequest::default()
        };
        let queued = jobs::queue_on(&handle, None, request, true)
            .await
            .expect("queued");
        let ids: Vec<String> = queued.queued.into_iter().map(|q| q.job_id).collect();
        jobs::follow::watch_jobs(&handle, None, &ids, Duration::from_secs(600), |_| {})
            .await
            .expect("rendered");
        node.stop().await.expect("stop");
    });
    println!(
        "setup: {SHOTS} shots, {SHOTS} storyboard cards rendered in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let store = DataDir::open(data.path()).expect("data");
    let project_store = store.open_project(None).expect("project");
    let project = project_store.doc().project().expect("read");
    let takes = project_store.doc().takes().expect("takes");
    drop(project_store);
    let blobs = BlobStore::open(data.path()).expect("blobs");
    let out = tempfile::tempdir().expect("out");
    let mut total = Duration::ZERO;
    for name in [
        "cut.otio",
        "cut.fcpxml",
        "cut.xml",
        "cut.edl",
        "storyboard.pdf",
    ] {
        let started = Instant::now();
        let published =
            reelmesh_node::publish::publish(&out.path().join(name), &project, &takes, &blobs)
                .expect("publish");
        let took = started.elapsed();
        total += took;
        let size = std::fs::metadata(&published.file).map_or(0, |m| m.len());
        println!(
            "{name}: {:.2} s ({} clips, {:.1} MiB{})",
            took.as_secs_f64(),
            published.clips,
            size as f64 / 1048576.0,
            if published.rendered > 0 {
                format!(", {} stills rendered to clips", published.rendered)
            } else {
                String::new()
            }
        );
    }
    let started = Instant::now();
    let created = reelmesh_node::archive::create(&store, None, &out.path().join("project.rma"))
        .expect("archive");
    let took = started.elapsed();
    total += took;
    println!(
        "project.rma: {:.2} s ({} files)",
        took.as_secs_f64(),
        created.manifest.files.len()
    );
    println!(
        "publishing EDL + OTIO + FCPXML + xmeml + PDF + archive for {SHOTS} shots: {:.1} s in all",
        total.as_secs_f64()
    );
    let started = Instant::now();
    reelmesh_node::publish::publish(&out.path().join("animatic.mp4"), &project, &takes, &blobs)
        .expect("animatic");
    let took = started.elapsed().as_secs_f64();
    let frames: u64 = project.shots.iter().map(|s| s.frame_count).sum();
    let length = project.settings.frame_rate.frames_to_seconds(frames);
    println!(
        "animatic.mp4: {frames} frames ({length:.0} s of cut) encoded in {took:.1} s: {:.1}x real time",
        length / took
    );
}
