//! Placement across real nodes on loopback, with declared GPUs: GPU stand-ins
//! (tests only) with a name, VRAM, installed workflows, utilization and run times
//! take the place of ComfyUI, and a shared ledger counts every execution. Waiting is
//! on events with deadlines.

#![allow(clippy::unwrap_used)] // test helpers panic on failure by design

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use reelmesh_node::jobs;
use reelmesh_node::node::{NodeConfig, NodeEvent};
use reelmesh_protocol::jobs::{Job, JobState};

use crate::gpu_standin::{GpuStandIn, Ledger};
use crate::meshkit::{self, DEADLINE, Mesh, Setup, ended, queue, until_offers};

/// A mesh whose workers are these GPU stand-ins.
async fn mesh(shots: u64, gpus: Vec<GpuStandIn>) -> Mesh {
    let setups: Vec<Setup> = gpus
        .into_iter()
        .map(|gpu| -> Setup { Box::new(move |c: &mut NodeConfig| c.executor = Some(gpu.slot())) })
        .collect();
    meshkit::mesh(shots, setups).await
}

/// Four declared GPUs used by the tests below.
fn four_gpus(ledger: &Ledger) -> Vec<GpuStandIn> {
    vec![
        // Big GPU, everything installed, a little busy with something else.
        GpuStandIn::new(
            "H100 80GB",
            80.0,
            &["flux_basic", "wan_animate", "ltx2"],
            10,
            ledger,
        ),
        // Mid GPU: FLUX and Wan installed, not LTX-2.
        GpuStandIn::new(
            "RTX 4090 24GB",
            24.0,
            &["flux_basic", "wan_animate"],
            5,
            ledger,
        ),
        // Small GPU: FLUX fits (12 GB), Wan installed but needs 16 GB.
        GpuStandIn::new(
            "RTX 3060 12GB",
            12.0,
            &["flux_basic", "wan_animate"],
            0,
            ledger,
        ),
        // A laptop without a GPU: only storyboard cards.
        GpuStandIn::new("CPU only", 0.0, &[], 0, ledger),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_lands_where_the_placement_rule_says() {
    let ledger = Ledger::default();
    let mesh = mesh(40, four_gpus(&ledger)).await;
    let editor = mesh.editor.handle();
    let gpu_of = |node: &str| -> &str {
        ["H100 80GB", "RTX 4090 24GB", "RTX 3060 12GB", "CPU only"]
            [(0..4).find(|i| mesh.id(*i) == node).unwrap()]
    };

    // One job at a time on an idle mesh: the rule alone decides. FLUX: capable are
    // H100 (10 %), 4090 (5 %), 3060 (0 %) → the 3060. Wan: H100 and 4090 (the 3060
    // lacks VRAM) → the 4090. LTX-2: only the H100 has it installed. A card: the
    // 3060 and the laptop are both at 0 % with empty queues; the queue rule counts
    // the job itself, in time: the 3060 has a known run time now (its FLUX job),
    // the laptop has run nothing (unknown counts as free, so it learns its speed)
    // → the laptop.
    for (shot, workflow, expected) in [
        ("SHT-00001", "flux_basic", 2),
        ("SHT-00002", "wan_animate", 1),
        ("SHT-00003", "ltx2", 0),
        ("SHT-00004", "card", 3),
    ] {
        let ids = queue(&editor, shot, workflow, 0).await;
        let jobs = ended(&editor, &ids).await;
        assert_eq!(jobs[0].state, JobState::Succeeded, "{:?}", jobs[0]);
        assert_eq!(
            gpu_of(&jobs[0].claimant),
            gpu_of(&mesh.id(expected)),
            "{workflow} went to the wrong node"
        );
    }

    // A burst of mixed jobs: each lands only on a node that supports the workflow
    // with enough VRAM, each runs exactly once, and the counts add up.
    let mut ids = Vec::new();
    ids.extend(queue(&editor, "SHT-00005..SHT-00016", "flux_basic", 0).await);
    ids.extend(queue(&editor, "SHT-00017..SHT-00024", "wan_animate", 0).await);
    ids.extend(queue(&editor, "SHT-00025..SHT-00028", "ltx2", 0).await);
    ids.extend(queue(&editor, "SHT-00029..SHT-00040", "card", 0).await);
    assert_eq!(ids.len(), 36);
    let jobs = ended(&editor, &ids).await;
    let mut placed: BTreeMap<(String, String), usize> = BTreeMap::new();
    for job in &jobs {
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert_eq!(job.attempts, 1, "{job:?}");
        *placed
            .entry((job.workflow.clone(), gpu_of(&job.claimant).to_owned()))
            .or_default() += 1;
    }
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        (
            "flux_basic",
            &["H100 80GB", "RTX 4090 24GB", "RTX 3060 12GB"][..],
        ),
        ("wan_animate", &["H100 80GB", "RTX 4090 24GB"][..]),
        ("ltx2", &["H100 80GB"][..]),
        (
            "card",
            &["H100 80GB", "RTX 4090 24GB", "RTX 3060 12GB", "CPU only"][..],
        ),
    ]);
    for ((workflow, gpu), count) in &placed {
        assert!(
            allowed[workflow.as_str()].contains(&gpu.as_str()),
            "{count} {workflow} jobs ran on {gpu}: {placed:?}"
        );
    }
    let count = |w: &str| {
        placed
            .iter()
            .filter(|((x, _), _)| x == w)
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    assert_eq!(
        (
            count("flux_basic"),
            count("wan_animate"),
            count("ltx2"),
            count("card")
        ),
        (12, 8, 4, 12)
    );
    // The ledger agrees: 40 executions, one per job, on the node the document names.
    let per_job = ledger.per_job();
    assert_eq!(per_job.len(), 40);
    assert!(per_job.values().all(|n| *n == 1), "{per_job:?}");
    for execution in ledger.all() {
        let job = jobs.iter().find(|j| j.job_id == execution.job_id);
        if let Some(job) = job {
            assert_eq!(execution.node_id, job.claimant);
        }
    }
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_jobs_each_run_exactly_once_and_progress_reaches_every_node() {
    let ledger = Ledger::default();
    // Most runs are short (20 ms: their end alone goes on gossip); about one in
    // eight lasts long enough (600 ms) to be announced while it runs.
    let long = |id: &str| id.ends_with(['0', '1']);
    let gpus = (0..4)
        .map(|i| {
            GpuStandIn::new(&format!("gpu-{i}"), 24.0, &["flux_basic"], 0, &ledger).durations(
                Arc::new(move |job: &Job| {
                    Duration::from_millis(if long(&job.job_id) { 600 } else { 20 })
                }),
            )
        })
        .collect();
    let mesh = mesh(200, gpus).await;
    let editor = mesh.editor.handle();
    // The editor runs nothing, yet sees the workers' progress (gossip): collect it
    // while the jobs run.
    let mut events = editor.subscribe();
    let updates = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&updates);
    let collector = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(NodeEvent::Job(update)) => sink.lock().unwrap().push(update),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let ids = queue(&editor, "all", "flux_basic", 0).await;
    assert_eq!(ids.len(), 200);
    let jobs = ended(&editor, &ids).await;
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{jobs:?}"
    );
    // Counted where they ran: 200 executions, one per job.
    let per_job = ledger.per_job();
    assert_eq!(per_job.len(), 200, "every job executed");
    let twice: Vec<_> = per_job.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "jobs executed more than once: {twice:?}");
    assert!(jobs.iter().all(|j| j.attempts == 1));
    let (_, takes) = editor.read(None, |doc| doc.takes().unwrap()).await.unwrap();
    assert_eq!(takes.len(), 200);
    let spread: HashSet<&str> = jobs.iter().map(|j| j.claimant.as_str()).collect();
    assert!(
        spread.len() >= 3,
        "jobs spread over the workers: {spread:?}"
    );

    // Progress from other nodes arrived on the editor: running steps and the end,
    // each naming the node that ran the job.
    let workers: HashSet<String> = (0..4).map(|i| mesh.id(i)).collect();
    let (_, progress) = editor.jobs_view().await.unwrap();
    assert!(
        progress
            .iter()
            .filter(|u| u.state == JobState::Succeeded)
            .count()
            >= 190
    );
    mesh.stop().await;
    collector.abort();
    let mut seen_running = HashSet::new();
    let mut seen_done = HashSet::new();
    for update in updates.lock().unwrap().drain(..) {
        assert!(workers.contains(&update.node_id), "{update:?}");
        match update.state {
            JobState::Running => seen_running.insert(update.job_id),
            JobState::Succeeded => seen_done.insert(update.job_id),
            _ => false,
        };
    }
    assert!(
        seen_done.len() >= 190,
        "succeeded updates reached the editor: {}",
        seen_done.len()
    );
    // Every long run was seen running on the editor while it ran.
    let long_runs: HashSet<String> = ids.iter().filter(|id| long(id)).cloned().collect();
    assert!(!long_runs.is_empty());
    let unseen: Vec<&String> = long_runs.difference(&seen_running).collect();
    assert!(
        unseen.is_empty(),
        "long runs never seen running: {unseen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_retry_on_another_node_and_a_failing_node_pauses() {
    let ledger = Ledger::default();
    // The broken GPU is the idlest, so the rule tries it first; only it has Wan.
    let gpus = vec![
        GpuStandIn::new("broken", 24.0, &["flux_basic", "wan_animate"], 0, &ledger).broken(),
        GpuStandIn::new("healthy", 24.0, &["flux_basic"], 50, &ledger),
    ];
    let mesh = mesh(8, gpus).await;
    let editor = mesh.editor.handle();
    let broken = mesh.id(0);
    let healthy = mesh.id(1);

    // One FLUX job: the broken node takes it and fails; the retry goes to the other
    // node, and the job keeps the error and who failed it.
    let ids = queue(&editor, "SHT-00001", "flux_basic", 0).await;
    let job = ended(&editor, &ids).await.remove(0);
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.claimant, healthy);
    assert_eq!(job.attempts, 2);
    assert_eq!(job.failures.get(&broken), Some(&1), "{job:?}");
    assert!(
        job.error.is_empty(),
        "a success clears the error: {}",
        job.error
    );
    let first = &job.history[0];
    assert_eq!(
        (first.node_id.as_str(), first.outcome.as_str()),
        (broken.as_str(), "failed")
    );
    assert!(first.error.contains("illegal memory access"), "{first:?}");
    assert_eq!(job.history.len(), 2, "{:?}", job.history);

    // Two Wan jobs only the broken node can run: each fails there twice, after which
    // the node is ruled out for it and the job fails saying so (one attempt unused).
    // That makes five failures in a row: the node pauses and says why.
    let wan = queue(&editor, "SHT-00002..SHT-00003", "wan_animate", 0).await;
    let failed = ended(&editor, &wan).await;
    for job in &failed {
        assert_eq!(job.state, JobState::Failed, "{job:?}");
        assert_eq!(job.attempts, 2, "{job:?}");
        assert_eq!(job.failures.get(&broken), Some(&2), "{job:?}");
        assert!(job.error.contains("not retried"), "{}", job.error);
    }
    assert!(
        failed[0].error.contains("failed it twice"),
        "{}",
        failed[0].error
    );
    let failures = ledger.all().iter().filter(|e| e.failed).count();
    assert_eq!(failures, jobs::PAUSE_AFTER_FAILURES as usize);
    let paused = mesh.workers[0].handle().worker().paused.unwrap_or_default();
    assert!(paused.contains("5 jobs failed in a row"), "{paused}");
    until_offers(&editor, |offers| {
        offers.iter().any(|o| {
            o.node_id == broken
                && o.paused
                    .as_deref()
                    .is_some_and(|p| p.contains("failed in a row"))
        })
    })
    .await;
    // Presence shows it too (`reelmesh status`), from its next heartbeat on.
    let mut presence = editor.subscribe();
    tokio::time::timeout(DEADLINE, async {
        loop {
            let status = editor.status().await.unwrap();
            let row = status.peers.iter().find(|p| p.node_id == broken).unwrap();
            let detail = row.status_detail.clone().unwrap_or_default();
            if detail.contains("paused: 5 jobs failed in a row") {
                assert_eq!(row.status, "error");
                return;
            }
            let _ = presence.recv().await;
        }
    })
    .await
    .expect("presence says the node is paused");

    // While paused it gets nothing: new FLUX jobs all run on the healthy node.
    let more = queue(&editor, "SHT-00004..SHT-00006", "flux_basic", 0).await;
    for job in ended(&editor, &more).await {
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert_eq!((job.claimant.as_str(), job.attempts), (healthy.as_str(), 1));
    }
    assert_eq!(ledger.all().iter().filter(|e| e.failed).count(), failures);
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_node_can_run_says_why_and_priorities_go_first() {
    let ledger = Ledger::default();
    let mesh = mesh(6, four_gpus(&ledger)).await;
    let editor = mesh.editor.handle();
    // Kling is installed nowhere; SVI needs 16 GB and is installed nowhere either.
    let ids = queue(&editor, "SHT-00001", "kling_i2v", 0).await;
    let reasons = jobs::waiting_reasons(&editor, None).await.unwrap();
    let why = reasons.get(&ids[0]).cloned().unwrap_or_default();
    assert!(
        why.starts_with("no node can run workflow kling_i2v: "),
        "{why}"
    );
    assert!(why.contains(": missing "), "{why}");
    for i in 0..4 {
        let tail: String = mesh
            .id(i)
            .chars()
            .rev()
            .take(6)
            .collect::<String>()
            .chars()
            .rev()
            .collect();
        assert!(why.contains(&tail), "{why} names node {i}");
    }
    // LTX-2: only the H100 can run it, and does; a running or ended job has no reason.
    let ltx = queue(&editor, "SHT-00002", "ltx2", 0).await;
    let done = ended(&editor, &ltx).await;
    assert_eq!(done[0].state, JobState::Succeeded);
    let reasons = jobs::waiting_reasons(&editor, None).await.unwrap();
    assert!(!reasons.contains_key(&ltx[0]));
    assert!(
        reasons.contains_key(&ids[0]),
        "the kling job still waits, with its reason"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_its_live_claimant_does_not_hold_goes_back_to_the_queue() {
    // After concurrent claims merge, the document can name a live node as the
    // claimant of a `running` job that node never started (the loser wrote
    // `running`, the winner's claim register won). Its lease never expires, since
    // the node is alive: the node itself must give the job back.
    let ledger = Ledger::default();
    let gpus = vec![
        GpuStandIn::new("a", 24.0, &["flux_basic"], 0, &ledger),
        GpuStandIn::new("b", 24.0, &["flux_basic"], 0, &ledger),
    ];
    let mesh = mesh(2, gpus).await;
    let editor = mesh.editor.handle();
    let named = mesh.id(0);
    let (_, project, _) = editor.project(None).await.unwrap();
    let mut job = reelmesh_protocol::jobs::Job::new(
        &project.shots[0].shot_id,
        "flux_basic",
        7,
        "editor",
        jobs::now_ms(),
    );
    job.state = JobState::Running;
    job.claimant.clone_from(&named);
    job.attempts = 1;
    job.started_at_ms = jobs::now_ms();
    let written = job.clone();
    editor
        .edit(None, move |doc| {
            doc.add_job(&written).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let done = ended(&editor, std::slice::from_ref(&job.job_id))
        .await
        .remove(0);
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    // Nobody ran the orphaned attempt: it is given back, and kept in the history.
    assert_eq!(
        done.attempts, 1,
        "the orphaned attempt is given back: {done:?}"
    );
    assert_eq!(done.history[0].node_id, named, "{done:?}");
    assert_eq!(done.history[0].outcome, "interrupted", "{done:?}");
    assert!(done.history[0].error.contains("holds no run"), "{done:?}");
    assert_eq!(
        ledger.per_job().get(&job.job_id),
        Some(&1),
        "it ran once, after it was given back"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_queued_as_workers_join_each_run_once() {
    // The moment a worker joins, the others have not heard its offer yet: a node
    // that took itself for the only worker then claimed without settling and raced
    // the newcomer (the demo showed it). Queue at once, and count executions.
    let ledger = Ledger::default();
    let gpus = vec![
        GpuStandIn::new("a", 24.0, &["flux_basic"], 0, &ledger),
        GpuStandIn::new("b", 24.0, &["flux_basic"], 0, &ledger),
    ];
    let setups: Vec<Setup> = gpus
        .into_iter()
        .map(|gpu| -> Setup { Box::new(move |c: &mut NodeConfig| c.executor = Some(gpu.slot())) })
        .collect();
    let mesh = meshkit::mesh_just_joined(12, setups).await;
    let editor = mesh.editor.handle();
    let ids = queue(&editor, "all", "card", 0).await;
    assert_eq!(ids.len(), 12);
    for job in ended(&editor, &ids).await {
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    }
    let per_job = ledger.per_job();
    assert_eq!(per_job.len(), 12, "{per_job:?}");
    assert!(
        per_job.values().all(|runs| *runs == 1),
        "each job ran once: {per_job:?}"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_jobs_inputs_are_fetched_while_the_current_job_runs() {
    let ledger = Ledger::default();
    // One GPU: a long FLUX job, then an LTX-2 job whose first frame only the editor
    // holds. The stand-in reads no input, so only a fetch ahead puts it here.
    let gpu = GpuStandIn::new("H100 80GB", 80.0, &["flux_basic", "ltx2"], 0, &ledger).durations(
        Arc::new(|job: &Job| {
            Duration::from_millis(if job.workflow == "flux_basic" && job.seed == 1 {
                1500
            } else {
                20
            })
        }),
    );
    let mesh = mesh(3, vec![gpu]).await;
    let editor = mesh.editor.handle();
    let frame = reelmesh_node::store::blobs::BlobStore::open(mesh.dirs[0].path())
        .unwrap()
        .put("첫 프레임".repeat(10_000).as_bytes())
        .unwrap()
        .hash;
    let worker = mesh.workers[0].handle();
    assert!(!worker.has_blob(&frame));
    // A short job first, so the worker knows its speed and claims ahead.
    ended(&editor, &queue(&editor, "SHT-00003", "flux_basic", 0).await).await;
    let request = |shots: &str, workflow: &str, seed: u64, inputs: &[(&str, String)]| {
        jobs::queue::RenderRequest {
            shots: shots.into(),
            workflow: workflow.into(),
            seed: Some(seed),
            priority: 0,
            inputs: inputs
                .iter()
                .map(|(role, hash)| ((*role).to_owned(), hash.clone()))
                .collect(),
            deadline_secs: None,
            video: None,
        }
    };
    let long = jobs::queue_on(
        &editor,
        None,
        request("SHT-00001", "flux_basic", 1, &[]),
        true,
    )
    .await
    .unwrap();
    let next = jobs::queue_on(
        &editor,
        None,
        request("SHT-00002", "ltx2", 2, &[("first_frame", frame.to_hex())]),
        true,
    )
    .await
    .unwrap();
    let ids: Vec<String> = long
        .queued
        .iter()
        .chain(&next.queued)
        .map(|q| q.job_id.clone())
        .collect();
    let jobs = ended(&editor, &ids).await;
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{jobs:?}"
    );
    let runs = ledger.all();
    let run_of = |id: &str| runs.iter().find(|r| r.job_id == id).expect("ran");
    let (first, second) = (run_of(&ids[0]), run_of(&ids[1]));
    assert!(first.started < second.started, "the long job ran first");
    assert!(
        second.inputs_present,
        "the first frame was on the worker when its job started"
    );
    assert!(worker.has_blob(&frame));
    mesh.stop().await;
}
