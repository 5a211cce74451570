//! Benchmark of issue [3/8]: the time a job spends around ComfyUI on one node.
//!
//! Run: `cargo bench -p reelmesh-node --bench render` (release build). A real node
//! (its runner, document store with fsync, blob store) renders FLUX jobs through the
//! ComfyUI test double, which answers like the recorded server with no execution
//! delay, so everything measured is reelmesh's own overhead:
//! - submit → first progress: from the start of the submission (websocket connect,
//!   `POST /prompt`) to the first websocket event about the prompt;
//! - last output → take recorded: from the output bytes being in hand (after
//!   `/history` and `/view`) to the blob being stored and the take, job state and shot
//!   status being saved (fsync) in the document.
//!
//! Also timed: the whole job, queued → succeeded (everything above plus the claim,
//! the double's own work and the reads in between), and the card renderer's job.

#[path = "../tests/support/comfy_double.rs"]
mod comfy_double;

use std::time::{Duration, Instant};

use comfy_double::{ComfyDouble, DoubleOptions};
use reelmesh_node::jobs::queue::RenderRequest;
use reelmesh_node::jobs::{self, Overhead};
use reelmesh_node::node::{Node, NodeConfig, NodeEvent};
use reelmesh_node::store::DataDir;
use reelmesh_node::workflows::Catalog;
use reelmesh_protocol::document::Position;
use reelmesh_protocol::jobs::JobState;
use reelmesh_protocol::model::{Shot, ShotCode};

const JOBS: u64 = 100;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(name: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    println!(
        "{name:<34} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   (n = {})",
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        values.last().copied().unwrap_or(0.0),
        values.len()
    );
}

fn project(shots: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let data = DataDir::open(dir.path()).expect("data");
    let mut store = data.create_project("벤치").expect("create");
    let list: Vec<Shot> = (1..=shots)
        .map(|i| {
            let mut shot = Shot::new(ShotCode(i), 48);
            shot.action = format!("장면 {i}: 비 내리는 골목");
            shot
        })
        .collect();
    store
        .doc_mut()
        .add_shots(&list, &Position::End)
        .expect("shots");
    store.save().expect("save");
    dir
}

/// Render every shot with `workflow`, one job at a time as the runner does; returns
/// each job's overhead and its queued → succeeded time.
async fn run(node: &Node, workflow: &str) -> (Vec<Overhead>, Vec<f64>) {
    let handle = node.handle();
    handle.worker_settled(Duration::from_secs(30)).await;
    let mut events = handle.subscribe();
    let queued_at = Instant::now();
    let request = RenderRequest {
        shots: "all".into(),
        workflow: workflow.into(),
        seed: None,
        priority: 0,
        inputs: Default::default(),
        deadline_secs: None,
        video: None,
    };
    let queued = jobs::queue_on(&handle, None, request, false)
        .await
        .expect("queue");
    let mut overheads = Vec::new();
    let mut totals = Vec::new();
    let mut previous_end = queued_at;
    while overheads.len() < queued.queued.len() {
        let event = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("a job event within 60 s")
            .expect("events");
        if let NodeEvent::Job(update) = event {
            match update.state {
                JobState::Succeeded => {
                    let now = Instant::now();
                    // Jobs run one after another: a job's own time starts when the
                    // previous one ended.
                    totals.push(now.duration_since(previous_end).as_secs_f64() * 1000.0);
                    previous_end = now;
                    overheads.push(update.overhead.expect("overhead"));
                }
                JobState::Failed | JobState::Canceled => {
                    panic!("job {} {}: {:?}", update.job_id, update.state, update.error)
                }
                _ => {}
            }
        }
    }
    (overheads, totals)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "== [3/8] per-job overhead around ComfyUI ({JOBS} FLUX jobs, test double, one node)"
        );
        let models: Vec<String> = Catalog::builtin()
            .get("flux_basic")
            .expect("flux_basic")
            .manifest
            .requires
            .models
            .iter()
            .map(|m| m.file.clone())
            .collect();
        let double = ComfyDouble::start(DoubleOptions {
            models,
            sampler_steps: Some(20),
            previews: false,
            ..DoubleOptions::default()
        })
        .await;
        let dir = project(JOBS);
        let mut config = NodeConfig::offline(dir.path().to_owned());
        config.comfy_url = Some(double.url());
        let node = Node::start(config).await.expect("node");
        let (overheads, totals) = run(&node, "flux_basic").await;
        summary(
            "submit -> first progress",
            overheads
                .iter()
                .map(|o| o.submit_to_first_event_ms)
                .collect(),
        );
        summary(
            "last output -> take recorded",
            overheads.iter().map(|o| o.output_to_take_ms).collect(),
        );
        summary("whole job (double does no work)", totals);
        node.stop().await.expect("stop");

        println!("== card renderer jobs ({JOBS}, 1280 px cards, one node)");
        let dir = project(JOBS);
        let node = Node::start(NodeConfig::offline(dir.path().to_owned()))
            .await
            .expect("node");
        let (overheads, totals) = run(&node, "card").await;
        summary(
            "card drawn -> take recorded",
            overheads.iter().map(|o| o.output_to_take_ms).collect(),
        );
        summary("whole card job", totals);
        node.stop().await.expect("stop");
    });
}
