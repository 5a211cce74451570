//! Benchmarks of issue [2/8]: edit propagation over five loopback nodes, full sync
//! of a 10,000-shot project to a fresh peer, idle memory of a headless node.
//!
//! Run: `cargo bench -p reelmesh-node --bench mesh` (release build). Real nodes:
//! libp2p over loopback TCP with the mesh key, Automerge sync, fsync on every save.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libp2p::Multiaddr;
use reelmesh_node::mesh::keys;
use reelmesh_node::node::{Node, NodeHandle};
use reelmesh_node::store::DataDir;
use reelmesh_protocol::document::{Position, ProjectDoc};
use reelmesh_protocol::model::{Character, Shot, ShotCode, ShotStatus};

#[path = "support/common.rs"]
mod common;
use common::{ms, percentile};

const KEY: [u8; 32] = [0x5a; 32];
const EDITS: usize = 300;

fn data_dir(project: Result<&str, &str>) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tmp");
    keys::store_mesh_key(dir.path(), KEY).expect("key");
    let data = DataDir::open(dir.path()).expect("data");
    let project_id = match project {
        Ok(name) => data
            .create_project(name)
            .expect("create")
            .doc()
            .project_id()
            .expect("id"),
        Err(id) => {
            data.add_replica(id).expect("replica");
            data.set_current_project(id).expect("current");
            id.to_owned()
        }
    };
    (dir, project_id)
}

async fn propagation() {
    let (first_dir, project_id) = data_dir(Ok("propagation"));
    let mut dirs = vec![first_dir];
    let mut nodes = Vec::new();
    let mut addrs: Vec<Multiaddr> = Vec::new();
    for i in 0..5 {
        if i > 0 {
            dirs.push(data_dir(Err(&project_id)).0);
        }
        // Full mesh: each node dials every node started before it.
        let (node, addr) = common::loopback(dirs[i].path(), addrs.clone()).await;
        addrs.push(addr);
        nodes.push(node);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();
    let (_, _, heads) = handles[0].project(None).await.expect("read");
    for h in &handles {
        h.wait_for_heads(None, heads.clone(), Duration::from_secs(30))
            .await
            .expect("initial sync");
    }
    let mut samples = Vec::with_capacity(EDITS);
    for i in 0..EDITS {
        let origin = i % handles.len();
        let started = Instant::now();
        let (_, heads) = handles[origin]
            .edit(None, move |doc: &mut ProjectDoc| {
                let code = doc.next_code().map_err(|e| e.to_string())?;
                let mut shot = Shot::new(code, 24);
                shot.action = format!("edit {i} on node {origin}");
                doc.add_shots(&[shot], &Position::End)
                    .map_err(|e| e.to_string())?;
                Ok(doc.heads())
            })
            .await
            .expect("edit");
        let waits = handles
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != origin)
            .map(|(_, h)| h.wait_for_heads(None, heads.clone(), Duration::from_secs(30)));
        for result in futures::future::join_all(waits).await {
            result.expect("propagated");
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let p50 = percentile(&samples, 0.50);
    let p99 = percentile(&samples, 0.99);
    let anchor = Duration::from_secs(1);
    println!(
        "edit propagation, 5 loopback nodes, {EDITS} edits (edit + fsync on the origin → on all 4 others): \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (goals < 50 / < 150 ms)",
        ms(p50),
        ms(p99),
        ms(*samples.last().expect("samples"))
    );
    println!(
        "anchor: a farm manager polling every 2 s sees a change after 1 s on average; p50 is {:.0}x sooner",
        anchor.as_secs_f64() / p50.as_secs_f64()
    );
    for node in nodes {
        node.stop().await.expect("stop");
    }
}

async fn full_sync() {
    let (dir_a, project_id) = data_dir(Ok("full sync"));
    {
        let data = DataDir::open(dir_a.path()).expect("data");
        let mut store = data.open_project(None).expect("open");
        let doc = store.doc_mut();
        let mut mina = Character::new("민아");
        mina.trigger_words = vec!["m1na".into()];
        doc.put_character(&mina).expect("character");
        let shots: Vec<Shot> = (1..=10_000_u64)
            .map(|i| {
                let mut shot = Shot::new(ShotCode(i), 24 + i % 96);
                shot.scene = format!("비 내리는 서울 뒷골목, 밤 — 장면 {i}");
                shot.action = format!("민아가 골목으로 들어선다 (take {i})");
                shot.characters = vec![mina.character_id.clone()];
                shot.status = ShotStatus::ALL[usize::try_from(i % 5).expect("small")];
                shot
            })
            .collect();
        doc.add_shots(&shots, &Position::End).expect("add");
        store.save().expect("save");
        store.compact().expect("compact");
    }
    let (a, addr) = common::loopback(dir_a.path(), vec![]).await;
    let (_, _, heads) = a.handle().project(None).await.expect("read");
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let (dir_b, _) = data_dir(Err(&project_id));
        let started = Instant::now();
        let (b, _) = common::loopback(dir_b.path(), vec![addr.clone()]).await;
        b.handle()
            .wait_for_heads(None, heads.clone(), Duration::from_secs(120))
            .await
            .expect("full sync");
        let took = started.elapsed();
        let (_, project, _) = b.handle().project(None).await.expect("read");
        assert_eq!(project.shots.len(), 10_000);
        best = best.min(took);
        println!(
            "full sync of 10,000 shots to a fresh peer (start → saved and readable): {:.0} ms",
            ms(took)
        );
        b.stop().await.expect("stop");
    }
    println!("full sync best of 3: {:.0} ms (goal < 2000 ms)", ms(best));
    a.stop().await.expect("stop");
}

fn idle_rss() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = env!("CARGO_BIN_EXE_reelmesh");
    let run = |args: &[&str]| {
        let status = Command::new(bin)
            .arg("--data-dir")
            .arg(tmp.path())
            .args(args)
            .status()
            .expect("run");
        assert!(status.success(), "{args:?}");
    };
    run(&["mesh", "init"]);
    run(&["init", "idle"]);
    let mut child = Command::new(bin)
        .arg("--data-dir")
        .arg(tmp.path())
        .args(["node", "--headless", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        if line.starts_with("listening on") {
            break;
        }
    }
    // Idle means idle: let it run its heartbeats and mDNS for a while.
    std::thread::sleep(Duration::from_secs(10));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    println!(
        "headless idle node after 10 s: RSS {:.1} MiB, peak {:.1} MiB (goal < 60 MB)",
        field("VmRSS:"),
        field("VmHWM:")
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(propagation());
    runtime.block_on(full_sync());
    idle_rss();
}
