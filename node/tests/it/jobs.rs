//! Jobs across the mesh: real nodes on loopback offer on gossip, claim in the
//! document, and a claimant that stops gives its jobs back (one that goes silent
//! loses its lease: `kill.rs`). Waiting is on events with deadlines.

#![allow(clippy::unwrap_used)] // test helpers panic on failure by design

use std::collections::HashSet;
use std::time::Duration;

use reelmesh_node::mesh::keys;
use reelmesh_node::node::{Node, NodeConfig};
use reelmesh_node::store::DataDir;
use reelmesh_protocol::jobs::JobState;
use reelmesh_protocol::model::ShotStatus;

use crate::comfy_double::{ComfyDouble, DoubleOptions, Script};
use crate::meshkit::{self, DEADLINE, KEY, Mesh, Setup, addr, config, ended, models_of, queue};

/// A mesh whose workers use these ComfyUIs (or none).
async fn mesh(shots: u64, comfy: Vec<Option<String>>) -> Mesh {
    let setups: Vec<Setup> = comfy
        .into_iter()
        .map(|url| -> Setup { Box::new(move |c: &mut NodeConfig| c.comfy_url = url) })
        .collect();
    meshkit::mesh(shots, setups).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_spread_over_the_mesh_and_each_runs_exactly_once() {
    let mesh = mesh(40, vec![None, None, None]).await;
    let editor = mesh.editor.handle();
    let ids = queue(&editor, "all", "card", 0).await;
    let jobs = ended(&editor, &ids).await;
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{jobs:?}"
    );
    assert!(jobs.iter().all(|j| j.attempts == 1), "no job ran twice");
    // One execution per job: one take per job, no more.
    let (_, takes) = editor.read(None, |doc| doc.takes().unwrap()).await.unwrap();
    assert_eq!(takes.len(), 40);
    let per_job: HashSet<&str> = takes.iter().map(|t| t.job_id.as_str()).collect();
    assert_eq!(per_job.len(), 40);
    // Every worker took part; the editor, which runs nothing, none.
    let claimants: HashSet<&str> = jobs.iter().map(|j| j.claimant.as_str()).collect();
    let workers: HashSet<String> = mesh
        .workers
        .iter()
        .map(|w| w.handle().peer_id().to_string())
        .collect();
    assert!(
        claimants.iter().all(|c| workers.contains(*c)),
        "{claimants:?}"
    );
    assert!(claimants.len() >= 2, "jobs spread: {claimants:?}");
    mesh.editor.stop().await.unwrap();
    for worker in mesh.workers {
        worker.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_goes_only_to_a_node_that_can_run_it() {
    let double = ComfyDouble::start(DoubleOptions {
        models: models_of("flux_basic"),
        ..DoubleOptions::default()
    })
    .await;
    // Worker 0 has FLUX through its ComfyUI; worker 1 has no ComfyUI at all.
    let mesh = mesh(6, vec![Some(double.url()), None]).await;
    let editor = mesh.editor.handle();
    let flux_node = mesh.workers[0].handle().peer_id().to_string();
    let ids = queue(&editor, "all", "flux_basic", 0).await;
    let jobs = ended(&editor, &ids).await;
    for job in &jobs {
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert_eq!(job.claimant, flux_node, "only the FLUX node can run it");
    }
    assert_eq!(double.prompts().len(), 6, "each ran once in comfyui");
    mesh.editor.stop().await.unwrap();
    for worker in mesh.workers {
        worker.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimant_that_stops_gives_its_job_back_and_another_node_runs_it() {
    let first = ComfyDouble::start(DoubleOptions {
        models: models_of("flux_basic"),
        ..DoubleOptions::default()
    })
    .await;
    // The first worker's ComfyUI hangs inside the sampler: its job stays running.
    first.script_next(Script::HangAt {
        node_id: "8".into(),
    });
    let mut mesh = mesh(1, vec![Some(first.url())]).await;
    let editor = mesh.editor.handle();
    let ids = queue(&editor, "all", "flux_basic", 0).await;
    let mut events = mesh.workers[0].handle().subscribe();
    let mut editor_events = editor.subscribe();
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(reelmesh_node::node::NodeEvent::Job(u)) = events.recv().await
                && u.step.starts_with("node 8")
            {
                return;
            }
        }
    })
    .await
    .unwrap();
    // It is stopped mid-run: it gives the job back as it goes (no attempt used),
    // and the editor hears it at once (no lease to wait out).
    let dead = mesh.workers.remove(0);
    let dead_id = dead.handle().peer_id().to_string();
    dead.stop().await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let (_, job) = editor
                .read(None, {
                    let id = ids[0].clone();
                    move |doc| doc.job(&id).unwrap()
                })
                .await
                .unwrap();
            if job.state == JobState::Queued {
                return job;
            }
            let _ = editor_events.recv().await;
        }
    })
    .await
    .expect("the stopped node's give-back reached the editor before any lease ran out");
    assert_eq!(back.attempts, 0, "no attempt used: {back:?}");
    assert!(back.error.contains("stopped"), "{}", back.error);
    let (_, status) = editor
        .read(None, |doc| doc.project().unwrap().shots[0].status)
        .await
        .unwrap();
    assert_eq!(status, ShotStatus::Pending, "nothing runs it now");

    // A second worker with a working ComfyUI joins; once the lease runs out the
    // job goes back to the queue and it runs there.
    let second = ComfyDouble::start(DoubleOptions {
        models: models_of("flux_basic"),
        ..DoubleOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    keys::store_mesh_key(dir.path(), KEY).unwrap();
    let (project_id, _, heads) = editor.project(None).await.unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    data.add_replica(&project_id).unwrap();
    data.set_current_project(&project_id).unwrap();
    let mut worker_config = config(dir.path(), vec![addr(&mesh.editor)]);
    worker_config.comfy_url = Some(second.url());
    let worker = Node::start(worker_config).await.unwrap();
    worker
        .handle()
        .wait_for_heads(None, heads, DEADLINE)
        .await
        .unwrap();

    let jobs = ended(&editor, &ids).await;
    let job = &jobs[0];
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.attempts, 1, "the stopped run gave its attempt back");
    assert_eq!(job.claimant, worker.handle().peer_id().to_string());
    assert!(
        job.error.is_empty(),
        "a success clears the error: {}",
        job.error
    );
    // Both runs are in its history: the stopped one, then the success.
    let outcomes: Vec<(&str, &str)> = job
        .history
        .iter()
        .map(|a| (a.node_id.as_str(), a.outcome.as_str()))
        .collect();
    let worker_id = worker.handle().peer_id().to_string();
    assert_eq!(
        outcomes,
        [
            (dead_id.as_str(), "stopped"),
            (worker_id.as_str(), "succeeded")
        ],
        "{job:?}"
    );
    assert!(
        job.history[0].error.contains("stopped"),
        "{:?}",
        job.history
    );
    worker.stop().await.unwrap();
    mesh.editor.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_jobs_finish_records_every_finished_run_once_and_gives_back_the_rest() {
    use crate::gpu_standin::{GpuStandIn, Ledger};
    use reelmesh_node::store::DataDir;
    use reelmesh_protocol::document::Position;
    use reelmesh_protocol::model::{Shot, ShotCode};

    crate::logs();
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let mut store = data.create_project("정지").unwrap();
    let shots: Vec<Shot> = (1..=40).map(|i| Shot::new(ShotCode(i), 24)).collect();
    store.doc_mut().add_shots(&shots, &Position::End).unwrap();
    store.save().unwrap();
    drop(store);
    drop(data);
    let ledger = Ledger::default();
    let start = |ledger: &Ledger| {
        let gpu = GpuStandIn::new("RTX 4090", 24.0, &["flux_basic"], 0, ledger)
            .durations(std::sync::Arc::new(|_| Duration::from_millis(40)));
        let mut config = NodeConfig::offline(dir.path().to_owned());
        config.executor = Some(gpu.slot());
        Node::start(config)
    };
    let node = start(&ledger).await.unwrap();
    let handle = node.handle();
    handle.worker_settled(DEADLINE).await;
    let mut events = handle.subscribe();
    let ids = queue(&handle, "all", "flux_basic", 0).await;
    // Stop while runs keep finishing: after the 10th success.
    tokio::time::timeout(DEADLINE, async {
        let mut done = 0;
        while done < 10 {
            if let Ok(reelmesh_node::node::NodeEvent::Job(u)) = events.recv().await
                && u.state == JobState::Succeeded
            {
                done += 1;
            }
        }
    })
    .await
    .expect("ten runs finished");
    node.stop().await.unwrap();

    // What was saved: every run that finished has its take and its job succeeded,
    // once; the rest are back in the queue with no attempt used; nothing is left
    // claimed or running.
    let finished: HashSet<String> = ledger
        .all()
        .iter()
        .filter(|e| e.ended.is_some() && !e.failed)
        .map(|e| e.job_id.clone())
        .collect();
    assert!(finished.len() >= 10, "{}", finished.len());
    let data = DataDir::open(dir.path()).unwrap();
    let store = data.open_project(None).unwrap();
    let jobs = store.doc().jobs().unwrap();
    let takes = store.doc().takes().unwrap();
    for job in &jobs {
        let its_takes = takes.iter().filter(|t| t.job_id == job.job_id).count();
        if finished.contains(&job.job_id) {
            assert_eq!((job.state, its_takes), (JobState::Succeeded, 1), "{job:?}");
        } else {
            assert_eq!(
                (job.state, job.attempts, its_takes),
                (JobState::Queued, 0, 0),
                "{job:?}"
            );
        }
    }
    drop(store);
    drop(data);

    // Started again, it runs the rest, each job once in all.
    let node = start(&ledger).await.unwrap();
    let ended = ended(&node.handle(), &ids).await;
    assert!(
        ended.iter().all(|j| j.state == JobState::Succeeded),
        "{ended:?}"
    );
    let completed: Vec<String> = ledger
        .all()
        .into_iter()
        .filter(|e| e.ended.is_some() && !e.failed)
        .map(|e| e.job_id)
        .collect();
    let unique: HashSet<&String> = completed.iter().collect();
    assert_eq!(unique.len(), 40);
    assert_eq!(completed.len(), 40, "no run recorded or made twice");
    node.stop().await.unwrap();
}
