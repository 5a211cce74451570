//! A mesh for job tests: an editor (runs no jobs) holding a project of N shots and
//! workers set up by the caller (a ComfyUI address, a GPU stand-in), every node
//! dialling the ones before it as mDNS would on a LAN; plus queuing and waiting.

#![allow(clippy::unwrap_used)] // test helpers panic on failure by design

use std::collections::HashSet;
use std::time::Duration;

use libp2p::Multiaddr;
use reelmesh_node::jobs::{self, queue::RenderRequest};
use reelmesh_node::mesh::keys;
use reelmesh_node::node::{Node, NodeConfig, NodeHandle};
use reelmesh_node::store::DataDir;
use reelmesh_protocol::document::Position;
use reelmesh_protocol::jobs::Job;
use reelmesh_protocol::model::{Shot, ShotCode};

pub const KEY: [u8; 32] = [0x29; 32];
pub const DEADLINE: Duration = Duration::from_secs(90);

pub struct Mesh {
    pub editor: Node,
    pub workers: Vec<Node>,
    /// Data dirs: the editor's first, then each worker's.
    pub dirs: Vec<tempfile::TempDir>,
}

impl Mesh {
    pub fn id(&self, i: usize) -> String {
        self.workers[i].handle().peer_id().to_string()
    }

    pub async fn stop(self) {
        self.editor.stop().await.unwrap();
        for worker in self.workers {
            worker.stop().await.unwrap();
        }
    }
}

pub fn addr(node: &Node) -> Multiaddr {
    node.listen_addrs()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(node.handle().peer_id()))
}

pub fn config(dir: &std::path::Path, peers: Vec<Multiaddr>) -> NodeConfig {
    let mut config = NodeConfig::loopback(dir.to_owned(), peers);
    config.heartbeat = Duration::from_millis(300);
    config.offline_after = Duration::from_secs(2);
    config.lease = Duration::from_secs(3);
    config
}

/// Set up one worker's config.
pub type Setup = Box<dyn FnOnce(&mut NodeConfig)>;

/// An editor (runs no jobs) holding a project of `shots` shots, and one worker per
/// setup, each holding the project, its first look at what it can run done, and
/// every worker's offer known to every node.
pub async fn mesh(shots: u64, workers_setup: Vec<Setup>) -> Mesh {
    mesh_with_editor(shots, Box::new(|_| {}), workers_setup).await
}

/// Like [`mesh`], with the editor's config set up by the caller too (its own
/// workflows folder, say).
pub async fn mesh_with_editor(shots: u64, editor_setup: Setup, workers_setup: Vec<Setup>) -> Mesh {
    let mesh = joined(shots, editor_setup, workers_setup).await;
    // Every worker's offer has reached every node (the rule is computed on the same
    // offers everywhere).
    let want: HashSet<String> = (0..mesh.workers.len()).map(|i| mesh.id(i)).collect();
    for node in std::iter::once(&mesh.editor).chain(&mesh.workers) {
        until_offers(&node.handle(), |offers| {
            want.iter().all(|w| offers.iter().any(|o| o.node_id == *w))
        })
        .await;
    }
    mesh
}

/// Like [`mesh`], without waiting for the workers' offers to reach each other: the
/// moment after the last worker joined.
pub async fn mesh_just_joined(shots: u64, workers_setup: Vec<Setup>) -> Mesh {
    joined(shots, Box::new(|_| {}), workers_setup).await
}

async fn joined(shots: u64, editor_setup: Setup, workers_setup: Vec<Setup>) -> Mesh {
    crate::logs();
    let editor_dir = tempfile::tempdir().unwrap();
    keys::store_mesh_key(editor_dir.path(), KEY).unwrap();
    let data = DataDir::open(editor_dir.path()).unwrap();
    let mut store = data.create_project("배치").unwrap();
    let project_id = store.doc().project_id().unwrap();
    let list: Vec<Shot> = (1..=shots)
        .map(|i| {
            let mut shot = Shot::new(ShotCode(i), 24);
            shot.action = format!("장면 {i}");
            shot
        })
        .collect();
    store.doc_mut().add_shots(&list, &Position::End).unwrap();
    store.save().unwrap();
    drop(store);
    let mut editor_config = config(editor_dir.path(), vec![]);
    editor_config.run_jobs = false;
    editor_setup(&mut editor_config);
    let editor = Node::start(editor_config).await.unwrap();
    let (_, _, heads) = editor.handle().project(None).await.unwrap();
    let mut workers: Vec<Node> = Vec::new();
    let mut dirs = vec![editor_dir];
    for setup in workers_setup {
        let dir = tempfile::tempdir().unwrap();
        keys::store_mesh_key(dir.path(), KEY).unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        data.add_replica(&project_id).unwrap();
        data.set_current_project(&project_id).unwrap();
        // A LAN: every node dials the editor and the workers before it (mDNS would
        // connect them all the same way).
        let peers = std::iter::once(addr(&editor))
            .chain(workers.iter().map(addr))
            .collect();
        let mut worker_config = config(dir.path(), peers);
        setup(&mut worker_config);
        let worker = Node::start(worker_config).await.unwrap();
        worker
            .handle()
            .wait_for_heads(None, heads.clone(), DEADLINE)
            .await
            .unwrap();
        worker.handle().worker_settled(DEADLINE).await;
        workers.push(worker);
        dirs.push(dir);
    }
    Mesh {
        editor,
        workers,
        dirs,
    }
}

/// Every model file a workflow loads, as a ComfyUI double's "installed" models.
pub fn models_of(workflow: &str) -> Vec<String> {
    reelmesh_node::workflows::Catalog::builtin()
        .get(workflow)
        .unwrap()
        .manifest
        .requires
        .models
        .iter()
        .map(|m| m.file.clone())
        .collect()
}

/// Wait until the node's live offers satisfy `ready`.
pub async fn until_offers(
    handle: &NodeHandle,
    ready: impl Fn(&[reelmesh_protocol::placement::Offer]) -> bool,
) {
    let mut events = handle.subscribe();
    tokio::time::timeout(DEADLINE, async {
        loop {
            let (offers, _) = handle.jobs_view().await.unwrap();
            if ready(&offers) {
                return;
            }
            let _ = events.recv().await;
        }
    })
    .await
    .expect("offers arrived in time");
}

pub async fn queue(handle: &NodeHandle, shots: &str, workflow: &str, priority: i64) -> Vec<String> {
    // Input images by hash (the stand-in GPUs do not read them).
    let hash = blake3::hash(b"reference").to_hex().to_string();
    let roles: &[&str] = match workflow {
        "wan_animate" => &["input_video", "reference_image"],
        "ltx2" | "kling_i2v" => &["first_frame"],
        _ => &[],
    };
    let request = RenderRequest {
        shots: shots.into(),
        workflow: workflow.into(),
        seed: None,
        priority,
        inputs: roles
            .iter()
            .map(|r| ((*r).to_owned(), hash.clone()))
            .collect(),
        deadline_secs: None,
        video: None,
    };
    let queued = jobs::queue_on(handle, None, request, true).await.unwrap();
    queued.queued.into_iter().map(|q| q.job_id).collect()
}

pub async fn ended(handle: &NodeHandle, ids: &[String]) -> Vec<Job> {
    tokio::time::timeout(
        DEADLINE,
        jobs::follow::watch_jobs(handle, None, ids, DEADLINE, |_| {}),
    )
    .await
    .expect("every job ended in time")
    .unwrap()
}
