//! Rendering on one node, end to end: a real node (offline, no network), its job
//! runner, the card renderer or ComfyUI (the test double), the blob store, and the
//! document. Waiting is on job events with deadlines, never on sleeps.

#![allow(clippy::unwrap_used)] // test helpers panic on failure by design

use std::time::Duration;

use reelmesh_node::jobs::queue::RenderRequest;
use reelmesh_node::jobs::{self, JobUpdate};
use reelmesh_node::node::{Node, NodeConfig, NodeHandle};
use reelmesh_node::store::DataDir;
use reelmesh_node::store::blobs::BlobStore;
use reelmesh_protocol::document::Position;
use reelmesh_protocol::jobs::{Job, JobState, TakeMedia};
use reelmesh_protocol::model::{Character, CinematicOption, Shot, ShotCode, ShotStatus};

const DEADLINE: Duration = Duration::from_secs(60);

/// A data dir with a five-shot project: Hangul text, a character with a LoRA, and
/// a 2.39:1 look on the first two shots.
pub fn five_shot_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let mut store = data.create_project("밤의 골목").unwrap();
    let doc = store.doc_mut();
    let mut minji = Character::new("민지");
    minji.appearance = "짧은 머리의 20대 여성".into();
    minji.lora_path = "minji_v2.safetensors".into();
    minji.lora_strength = 0.65;
    doc.put_character(&minji).unwrap();
    let mut look = CinematicOption::new("Noir");
    look.look.camera_body = "Arri Alexa 35".into();
    look.look.focal_length = "35mm".into();
    look.look.lens_type = "anamorphic".into();
    look.look.aspect_ratio = "2.39:1".into();
    doc.put_cinematic(&look).unwrap();
    let actions = [
        "민지가 비 내리는 골목에서 문을 연다",
        "She looks back at the neon sign",
        "골목 끝에서 그림자가 움직인다",
        "Close-up: rain on the window",
        "민지가 달리기 시작한다",
    ];
    let shots: Vec<Shot> = actions
        .iter()
        .enumerate()
        .map(|(i, action)| {
            let mut shot = Shot::new(ShotCode(i as u64 + 1), 48);
            shot.action = (*action).to_owned();
            shot.characters = vec![minji.character_id.clone()];
            if i < 2 {
                shot.cinematic = Some(look.cinematic_id.clone());
            }
            shot
        })
        .collect();
    doc.add_shots(&shots, &Position::End).unwrap();
    store.save().unwrap();
    dir
}

pub async fn start_node(dir: &std::path::Path, comfy: Option<String>) -> Node {
    crate::logs();
    let mut config = NodeConfig::offline(dir.to_owned());
    config.comfy_url = comfy;
    Node::start(config).await.unwrap()
}

/// Queue a render and follow it to the end; returns the ended jobs and every update.
pub async fn render(
    handle: &NodeHandle,
    shots: &str,
    workflow: &str,
) -> (Vec<Job>, Vec<JobUpdate>) {
    let request = RenderRequest {
        shots: shots.into(),
        workflow: workflow.into(),
        seed: None,
        priority: 0,
        inputs: Default::default(),
        deadline_secs: None,
        video: None,
    };
    let queued = jobs::queue_on(handle, None, request, false).await.unwrap();
    let ids: Vec<String> = queued.queued.iter().map(|q| q.job_id.clone()).collect();
    let mut updates = Vec::new();
    let ended = tokio::time::timeout(
        DEADLINE,
        jobs::follow::watch_jobs(handle, None, &ids, DEADLINE, |u| updates.push(u.clone())),
    )
    .await
    .unwrap()
    .unwrap();
    (ended, updates)
}

/// Follow one job to its end.
async fn follow(handle: &NodeHandle, job_id: String) -> Vec<Job> {
    tokio::time::timeout(
        DEADLINE,
        jobs::follow::watch_jobs(handle, None, &[job_id], DEADLINE, |_| {}),
    )
    .await
    .unwrap()
    .unwrap()
}

/// Wait until the job reports a step starting with `prefix` (it runs in ComfyUI).
async fn until_step(
    events: &mut tokio::sync::broadcast::Receiver<reelmesh_node::node::NodeEvent>,
    job_id: &str,
    prefix: &str,
) {
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(reelmesh_node::node::NodeEvent::Job(u)) = events.recv().await
                && u.job_id == job_id
                && u.step.starts_with(prefix)
            {
                return;
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_five_shot_project_renders_with_the_card_renderer() {
    let dir = five_shot_project();
    let node = start_node(dir.path(), None).await;
    let handle = node.handle();
    let node_id = handle.peer_id().to_string();

    let (ended, updates) = render(&handle, "all", "card").await;
    assert_eq!(ended.len(), 5);
    for job in &ended {
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert_eq!(job.attempts, 1);
        assert_eq!(job.claimant, node_id);
        assert!(!job.take_id.is_empty());
        assert!(job.finished_at_ms >= job.started_at_ms && job.started_at_ms > 0);
    }
    assert!(updates.iter().any(|u| u.state == JobState::Running));
    assert_eq!(
        updates
            .iter()
            .filter(|u| u.state == JobState::Succeeded)
            .count(),
        5
    );

    let (_, (project, takes)) = handle
        .read(None, |doc| (doc.project().unwrap(), doc.takes().unwrap()))
        .await
        .unwrap();
    assert_eq!(takes.len(), 5);
    assert!(
        project
            .shots
            .iter()
            .all(|s| s.status == ShotStatus::Completed)
    );
    let blobs = BlobStore::open(dir.path()).unwrap();
    for take in &takes {
        let shot = project
            .shots
            .iter()
            .find(|s| s.shot_id == take.shot_id)
            .unwrap();
        let job = ended.iter().find(|j| j.job_id == take.job_id).unwrap();
        assert_eq!(job.take_id, take.take_id);
        assert_eq!(take.media, TakeMedia::Card);
        assert_eq!(take.workflow, "card");
        assert_eq!(take.node_id, node_id);
        assert_eq!(take.seed, job.seed);
        assert_eq!(take.prompt, job.prompt);
        let bytes = blobs.read(&take.blob.parse().unwrap()).unwrap();
        assert_eq!(bytes.len() as u64, take.size);
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), take.blob);
        // The PNG is what the take says, at the shot's aspect ratio.
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(
            (u64::from(info.width), u64::from(info.height)),
            (take.width, take.height)
        );
        let aspect = take.width as f64 / take.height as f64;
        let expected = if shot.cinematic.is_some() {
            2.39
        } else {
            16.0 / 9.0
        };
        assert!((aspect - expected).abs() < 0.02, "{} {aspect}", shot.code);
        // Labelled a card, never passed off as AI output.
        assert!(
            info.uncompressed_latin1_text
                .iter()
                .any(|t| t.text.contains("card")),
            "{:?}",
            info.uncompressed_latin1_text
        );
    }

    // Regenerate shot 1: a new take; the old one stays.
    let (again, _) = render(&handle, "SHT-00001", "card").await;
    assert_eq!(again[0].state, JobState::Succeeded);
    let (_, (first_shot, shot_takes)) = handle
        .read(None, |doc| {
            let shot = doc.project().unwrap().shots[0].clone();
            let takes = doc.takes_for_shot(&shot.shot_id).unwrap();
            (shot, takes)
        })
        .await
        .unwrap();
    assert_eq!(shot_takes.len(), 2);
    assert_ne!(shot_takes[0].take_id, shot_takes[1].take_id);
    assert_eq!(first_shot.status, ShotStatus::Completed);
    node.stop().await.unwrap();

    // Everything is on disk: a fresh open sees the jobs and takes.
    let data = DataDir::open(dir.path()).unwrap();
    let store = data.open_project(None).unwrap();
    assert_eq!(store.doc().takes().unwrap().len(), 6);
    assert_eq!(store.doc().jobs().unwrap().len(), 6);
}

#[tokio::test]
async fn a_workflow_this_node_cannot_run_is_refused_before_anything_is_queued() {
    let dir = five_shot_project();
    let node = start_node(dir.path(), None).await;
    let handle = node.handle();
    let request = RenderRequest {
        shots: "all".into(),
        workflow: "flux_basic".into(),
        seed: None,
        priority: 0,
        inputs: Default::default(),
        deadline_secs: None,
        video: None,
    };
    let err = jobs::queue_on(&handle, None, request.clone(), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot run workflow 'flux_basic'"), "{err}");
    assert!(err.contains("--comfy"), "{err}");
    let unknown = RenderRequest {
        workflow: "no_such_flow".into(),
        ..request.clone()
    };
    let err = jobs::queue_on(&handle, None, unknown, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown workflow 'no_such_flow'"), "{err}");
    let (_, jobs) = handle.read(None, |doc| doc.jobs().unwrap()).await.unwrap();
    assert!(jobs.is_empty());

    // --queue leaves them for another node: queued, not run here.
    let queued = jobs::queue_on(&handle, None, request, true).await.unwrap();
    assert_eq!(queued.queued.len(), 5);
    assert!(!queued.runnable_here);
    let (_, jobs) = handle.read(None, |doc| doc.jobs().unwrap()).await.unwrap();
    assert!(jobs.iter().all(|j| j.state == JobState::Queued));
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_canceled_job_ends_canceled_and_the_shot_goes_back_to_pending() {
    let dir = five_shot_project();
    // Queue with no runner, cancel, then start the node: it ends the job unrun.
    let mut config = NodeConfig::offline(dir.path().to_owned());
    config.run_jobs = false;
    let node = Node::start(config).await.unwrap();
    let handle = node.handle();
    let request = RenderRequest {
        shots: "SHT-00003".into(),
        workflow: "card".into(),
        seed: Some(1),
        priority: 0,
        inputs: Default::default(),
        deadline_secs: None,
        video: None,
    };
    let queued = jobs::queue_on(&handle, None, request, true).await.unwrap();
    let id = queued.queued[0].job_id.clone();
    let prefix: String = id.chars().take(6).collect();
    handle
        .edit(None, move |doc| jobs::cancel_jobs(doc, &[prefix]))
        .await
        .unwrap();
    node.stop().await.unwrap();

    let node = start_node(dir.path(), None).await;
    let handle = node.handle();
    let ended = follow(&handle, id).await;
    assert_eq!(ended[0].state, JobState::Canceled);
    assert_eq!(ended[0].attempts, 0);
    let (_, status) = handle
        .read(None, |doc| doc.project().unwrap().shots[2].status)
        .await
        .unwrap();
    assert_eq!(status, ShotStatus::Pending);
    node.stop().await.unwrap();
}

// ---- through ComfyUI (the test double answering like the recorded server) -------

use crate::comfy_double::{ComfyDouble, DoubleOptions, Script};
use crate::meshkit::models_of;

async fn node_with_comfy(options: DoubleOptions) -> (tempfile::TempDir, ComfyDouble, Node) {
    let dir = five_shot_project();
    let double = ComfyDouble::start(options).await;
    let node = start_node(dir.path(), Some(double.url())).await;
    (dir, double, node)
}

#[tokio::test]
async fn flux_renders_through_comfyui_with_progress_and_recorded_outputs() {
    let mut models = models_of("flux_lora");
    models.push("minji_v2.safetensors".into());
    let (dir, double, node) = node_with_comfy(DoubleOptions {
        models,
        ..DoubleOptions::default()
    })
    .await;
    let handle = node.handle();
    let worker = handle.worker_settled(DEADLINE).await;
    assert!(
        worker.capabilities.contains(&"flux_lora".to_owned()),
        "{worker:?}"
    );
    assert!(worker.capabilities.contains(&"card".to_owned()));
    // Only FLUX's models are installed: a video workflow is not runnable, and says why.
    let (_, why) = worker
        .unavailable
        .iter()
        .find(|(id, _)| id == "ltx2")
        .unwrap();
    assert!(why.contains("model"), "{why}");

    let (ended, updates) = render(&handle, "SHT-00001..SHT-00002", "flux_lora").await;
    for job in &ended {
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        // The character's LoRA from the bible, with its strength.
        assert_eq!(job.loras.get("minji_v2.safetensors"), Some(&0.65));
    }
    // Progress arrived, in order, per job.
    let steps: Vec<f32> = updates
        .iter()
        .filter(|u| u.job_id == ended[0].job_id && u.state == JobState::Running)
        .map(|u| u.fraction)
        .collect();
    assert!(steps.len() > 3, "{steps:?}");
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    assert!(
        updates.iter().any(|u| u.step.contains("/")),
        "sampler steps shown"
    );

    // What ComfyUI got: the job's prompt, seed and LoRA in the bound graph.
    let prompts = double.prompts();
    assert_eq!(prompts.len(), 2);
    for job in &ended {
        let graph = prompts
            .iter()
            .map(|p| serde_json::to_string(&p.prompt).unwrap())
            .find(|g| g.contains(&job.seed.to_string()))
            .expect("a prompt with the job's seed");
        assert!(graph.contains(&job.prompt), "prompt bound: {graph}");
        assert!(graph.contains("minji_v2.safetensors"), "lora chained");
    }
    double.assert_no_origin_header();

    // The takes hold the recorded PNG, by content hash.
    let recorded = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/comfyui/view_ok.png"
    ))
    .unwrap();
    let (_, takes) = handle.read(None, |doc| doc.takes().unwrap()).await.unwrap();
    assert_eq!(takes.len(), 2);
    let blobs = BlobStore::open(dir.path()).unwrap();
    for take in &takes {
        assert_eq!(take.media, TakeMedia::Image);
        assert_eq!(take.extension, "png");
        assert_eq!(take.workflow, "flux_lora");
        assert_eq!(blobs.read(&take.blob.parse().unwrap()).unwrap(), recorded);
        // What the file is, read from it: the recorded PNG is 64x64, one frame.
        assert_eq!(
            (take.width, take.height, take.frames, take.duration_ms),
            (64, 64, 1, 0),
            "{take:?}"
        );
    }
    node.stop().await.unwrap();
}

#[tokio::test]
async fn comfyui_errors_become_clear_job_errors() {
    let (_dir, double, node) = node_with_comfy(DoubleOptions {
        models: models_of("flux_basic"),
        ..DoubleOptions::default()
    })
    .await;
    let handle = node.handle();
    handle.worker_settled(DEADLINE).await;

    // A runtime error inside a node: this node's own fault (another ComfyUI may
    // have the memory), so it is ruled out for the job at once; with no other node
    // the job fails after one attempt, naming the node and the exception.
    double.script_next(Script::FailAt {
        node_id: "8".into(),
        exception_type: "torch.OutOfMemoryError".into(),
        exception_message: "CUDA out of memory".into(),
    });
    let (ended, _) = render(&handle, "SHT-00003", "flux_basic").await;
    assert_eq!(ended[0].state, JobState::Failed);
    assert_eq!(ended[0].attempts, 1, "{:?}", ended[0]);
    let error = &ended[0].error;
    assert!(
        error.starts_with("attempt 1 on ")
            && error.contains(
                "comfyui failed at node 8 (KSampler): torch.OutOfMemoryError: CUDA out of memory"
            ),
        "{error}"
    );
    assert!(
        error.contains("not retried: every node that can run workflow flux_basic is ruled out"),
        "{error}"
    );
    assert_eq!(
        double.prompts().len(),
        1,
        "not run twice where it cannot end otherwise"
    );
    assert_eq!(ended[0].history.len(), 1, "{:?}", ended[0].history);
    assert_eq!(ended[0].history[0].outcome, "failed");
    let (_, status) = handle
        .read(None, |doc| doc.project().unwrap().shots[2].status)
        .await
        .unwrap();
    assert_eq!(status, ShotStatus::Pending, "no take: back to pending");

    // A character LoRA this ComfyUI does not have: refused by ComfyUI's validation,
    // and the error names the loader node and its input, in full.
    let (ended, _) = render(&handle, "SHT-00002", "flux_lora").await;
    assert_eq!(ended[0].state, JobState::Failed);
    assert_eq!(ended[0].attempts, 1, "{:?}", ended[0]);
    let error = &ended[0].error;
    assert!(
        error.contains("LoraLoader") && error.contains("lora_name") && error.contains("minji_v2"),
        "{error}"
    );
    assert_eq!(
        double.prompts().len(),
        2,
        "a refused graph is not posted again"
    );

    // ComfyUI gone: not the job's fault. It waits in the queue, without using an
    // attempt, saying why; once ComfyUI is back it runs.
    double.stop().await;
    let request = RenderRequest {
        shots: "SHT-00004".into(),
        workflow: "flux_basic".into(),
        seed: None,
        priority: 0,
        inputs: Default::default(),
        deadline_secs: None,
        video: None,
    };
    let mut events = handle.subscribe();
    let queued = jobs::queue_on(&handle, None, request, false).await.unwrap();
    let id = queued.queued[0].job_id.clone();
    let address = double.url().replace("http://", "");
    // Why a job waits comes from the offers, which no event announces on a node
    // without peers: look on every event, and every 200 ms.
    let last = std::sync::Mutex::new(String::new());
    let mut look = tokio::time::interval(Duration::from_millis(200));
    let why = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let reasons = jobs::waiting_reasons(&handle, None).await.unwrap();
            if let Some(why) = reasons.get(&id) {
                if why.contains(&address) && why.contains("since") {
                    return why.clone();
                }
                last.lock().unwrap().clone_from(why);
            }
            tokio::select! {
                _ = events.recv() => {}
                _ = look.tick() => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the job says it waits for this node's ComfyUI; last: {}",
            last.lock().unwrap()
        )
    });
    assert!(why.contains("unreachable"), "{why}");
    let (_, waiting) = handle
        .read(None, move |doc| doc.job(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(waiting.state, JobState::Queued, "{waiting:?}");
    assert_eq!(waiting.attempts, 0, "no attempt used: {waiting:?}");
    let (_, status) = handle
        .read(None, |doc| doc.project().unwrap().shots[3].status)
        .await
        .unwrap();
    assert_eq!(
        status,
        ShotStatus::Pending,
        "nothing runs it: not generating"
    );
    double.restart().await;
    let ended = follow(&handle, waiting.job_id.clone()).await;
    assert_eq!(ended[0].state, JobState::Succeeded, "{:?}", ended[0]);
    assert_eq!(ended[0].attempts, 1, "{:?}", ended[0]);
    assert!(ended[0].error.is_empty(), "{:?}", ended[0]);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_running_comfyui_job_is_canceled_from_the_document() {
    let (_dir, double, node) = node_with_comfy(DoubleOptions {
        models: models_of("flux_basic"),
        ..DoubleOptions::default()
    })
    .await;
    let handle = node.handle();
    handle.worker_settled(DEADLINE).await;
    double.script_next(Script::HangAt {
        node_id: "8".into(),
    });
    let request = RenderRequest {
        shots: "SHT-00005".into(),
        workflow: "flux_basic".into(),
        seed: None,
        priority: 0,
        inputs: Default::default(),
        deadline_secs: None,
        video: None,
    };
    let queued = jobs::queue_on(&handle, None, request, false).await.unwrap();
    let id = queued.queued[0].job_id.clone();
    // Cancel once it is really running inside ComfyUI.
    let mut events = handle.subscribe();
    until_step(&mut events, &id, "node 8").await;
    let cancel = id.clone();
    handle
        .edit(None, move |doc| jobs::cancel_jobs(doc, &[cancel]))
        .await
        .unwrap();
    let ended = follow(&handle, id).await;
    assert_eq!(ended[0].state, JobState::Canceled, "{:?}", ended[0]);
    assert_eq!(
        ended[0].history.last().map(|a| a.outcome.as_str()),
        Some("canceled"),
        "{:?}",
        ended[0]
    );
    assert!(
        !double.requests_to("POST", "/interrupt").is_empty(),
        "comfyui was told to stop"
    );
    node.stop().await.unwrap();
}

#[tokio::test]
async fn capabilities_follow_comfyui_and_presence_announces_them() {
    // ComfyUI is down when the node starts: only the card, and the problem is shown.
    let dir = five_shot_project();
    let double = ComfyDouble::start(DoubleOptions {
        models: models_of("flux_basic"),
        ..DoubleOptions::default()
    })
    .await;
    double.stop().await;
    let node = start_node(dir.path(), Some(double.url())).await;
    let handle = node.handle();
    let worker = handle.worker_settled(DEADLINE).await;
    assert_eq!(worker.capabilities, vec!["card".to_owned()]);
    let problem = worker.problem.clone().unwrap_or_default();
    assert!(
        problem.contains(&double.url().replace("http://", "")),
        "{problem}"
    );

    // ComfyUI comes up: the node notices (it keeps asking while ComfyUI is down)
    // and announces FLUX in its presence.
    double.restart().await;
    handle
        .worker_until(
            |w| w.capabilities.contains(&"flux_basic".to_owned()),
            DEADLINE,
        )
        .await
        .expect("flux_basic becomes runnable once comfyui answers");
    let status = handle.status().await.unwrap();
    let me = status.peers.iter().find(|p| p.this_node).unwrap();
    assert!(me.capabilities.contains(&"flux_basic".to_owned()), "{me:?}");
    assert!(me.capabilities.contains(&"card".to_owned()));

    // A job after a ComfyUI restart still runs (the client reconnects).
    let (ended, _) = render(&handle, "SHT-00001", "flux_basic").await;
    assert_eq!(ended[0].state, JobState::Succeeded, "{:?}", ended[0]);
    double.restart().await;
    let (ended, _) = render(&handle, "SHT-00002", "flux_basic").await;
    assert_eq!(ended[0].state, JobState::Succeeded, "{:?}", ended[0]);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_job_interrupted_by_a_stop_goes_back_to_the_queue_and_completes_after_restart() {
    let dir = five_shot_project();
    let double = ComfyDouble::start(DoubleOptions {
        models: models_of("flux_basic"),
        ..DoubleOptions::default()
    })
    .await;
    let node = start_node(dir.path(), Some(double.url())).await;
    let handle = node.handle();
    handle.worker_settled(DEADLINE).await;
    double.script_next(Script::HangAt {
        node_id: "8".into(),
    });
    let request = RenderRequest {
        shots: "SHT-00001".into(),
        workflow: "flux_basic".into(),
        seed: None,
        priority: 0,
        inputs: Default::default(),
        deadline_secs: None,
        video: None,
    };
    let mut events = handle.subscribe();
    let queued = jobs::queue_on(&handle, None, request, false).await.unwrap();
    let id = queued.queued[0].job_id.clone();
    until_step(&mut events, &id, "node 8").await;
    // The node stops in the middle of the run: it gives the job back as it goes,
    // without using the attempt, and its shot is not generating any more.
    node.stop().await.unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let store = data.open_project(None).unwrap();
    let stored = store.doc().job(&id).unwrap();
    assert_eq!(stored.state, JobState::Queued, "{stored:?}");
    assert_eq!(stored.attempts, 0, "{stored:?}");
    assert!(
        stored.error.contains("stopped during attempt 1"),
        "{}",
        stored.error
    );
    assert_eq!(stored.history[0].outcome, "stopped");
    assert_eq!(
        store.doc().project().unwrap().shots[0].status,
        ShotStatus::Pending
    );
    drop(store);
    drop(data);

    // Back up: the job runs again and completes, on its first counted attempt.
    let node = start_node(dir.path(), Some(double.url())).await;
    let handle = node.handle();
    let ended = follow(&handle, id).await;
    assert_eq!(ended[0].state, JobState::Succeeded, "{:?}", ended[0]);
    assert_eq!(ended[0].attempts, 1);
    assert!(ended[0].error.is_empty(), "{}", ended[0].error);
    let outcomes: Vec<&str> = ended[0]
        .history
        .iter()
        .map(|a| a.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["stopped", "succeeded"]);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_still_becomes_the_first_frame_of_a_clip() {
    let mut models = models_of("flux_basic");
    models.extend(models_of("ltx2"));
    let (dir, double, node) = node_with_comfy(DoubleOptions {
        models,
        ..DoubleOptions::default()
    })
    .await;
    let handle = node.handle();
    handle.worker_settled(DEADLINE).await;
    let (stills, _) = render(&handle, "SHT-00004", "flux_basic").await;
    assert_eq!(stills[0].state, JobState::Succeeded, "{:?}", stills[0]);

    let request = RenderRequest {
        shots: "SHT-00004".into(),
        workflow: "ltx2".into(),
        seed: None,
        priority: 0,
        inputs: [("first_frame".to_owned(), "take".to_owned())].into(),
        deadline_secs: None,
        video: None,
    };
    let queued = jobs::queue_on(&handle, None, request, false).await.unwrap();
    let id = queued.queued[0].job_id.clone();
    let ended = follow(&handle, id).await;
    assert_eq!(ended[0].state, JobState::Succeeded, "{:?}", ended[0]);
    // The still's blob was uploaded to ComfyUI and the clip is a video take.
    let (_, takes) = handle.read(None, |doc| doc.takes().unwrap()).await.unwrap();
    let still = takes.iter().find(|t| t.job_id == stills[0].job_id).unwrap();
    assert_eq!(ended[0].inputs.get("first_frame"), Some(&still.blob));
    assert_eq!(double.requests_to("POST", "/upload/image").len(), 1);
    let clip = takes.iter().find(|t| t.job_id == ended[0].job_id).unwrap();
    assert_eq!(clip.media, TakeMedia::Video);
    assert_eq!(clip.extension, "mp4");
    let recorded = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/comfyui/view_video.mp4"
    ))
    .unwrap();
    let blobs = BlobStore::open(dir.path()).unwrap();
    assert_eq!(blobs.read(&clip.blob.parse().unwrap()).unwrap(), recorded);
    // What the clip is, read by ffprobe from the stored file (what ffprobe itself
    // prints for view_video.mp4: 64x64, 12 frames, 12/1 fps, 1.000000 s).
    if ffprobe_or_say_why("a_still_becomes_the_first_frame_of_a_clip") {
        assert_eq!(
            (
                clip.width,
                clip.height,
                clip.frames,
                clip.fps,
                clip.duration_ms
            ),
            (64, 64, 12, 12.0, 1000),
            "{clip:?}"
        );
    }
    node.stop().await.unwrap();
}

/// Whether ffprobe is here; without it a loud banner (the clip's frames are then
/// unknown), and a failure where `REELMESH_REQUIRE_FFPROBE` is set, as in CI.
fn ffprobe_or_say_why(test: &str) -> bool {
    let found = std::process::Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! {test}: the clip's frames NOT CHECKED: ffprobe is missing.\n\
             !! Install ffmpeg (apt-get install ffmpeg); CI requires it.\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        assert!(
            std::env::var_os("REELMESH_REQUIRE_FFPROBE").is_none(),
            "REELMESH_REQUIRE_FFPROBE is set but ffprobe is missing"
        );
    }
    found
}

#[tokio::test]
async fn an_animated_webp_is_a_take_with_its_frames_size_and_length() {
    // A user workflow ending in SaveAnimatedWEBP (ComfyUI's own node): the double
    // answers with the recorded animated WEBP, and the take says what it is.
    let dir = five_shot_project();
    let workflows = dir.path().join("workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    std::fs::write(
        workflows.join("anim_test.json"),
        r#"{
  "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
  "2": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0], "filename_prefix": "anim", "fps": 6.0, "lossless": false, "quality": 80, "method": "default"}}
}"#,
    )
    .unwrap();
    std::fs::write(
        workflows.join("anim_test.toml"),
        r#"
id = "anim_test"
title = "Animated WEBP"
kind = "utility"
output = "video"
vram_min_gb = 0
vram_recommended_gb = 0
description = "An animated WEBP from ComfyUI's SaveAnimatedWEBP."
output_nodes = ["2"]

[defaults]
seed_max = 16777215

[requires]
node_classes = ["EmptyImage", "SaveAnimatedWEBP"]

[bindings]
seed = { node = "1", input = "color" }
"#,
    )
    .unwrap();
    // What a real ComfyUI 0.33 wrote for 12 frames (two colours alternating) at
    // 6 fps: node/tests/fixtures/media/anim_comfyui_live.webp. (The recorded
    // view_anim.webp is of equal frames, which the encoder merged into a still.)
    let live = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/media/anim_comfyui_live.webp"
    ))
    .unwrap();
    let double = ComfyDouble::start(DoubleOptions {
        output_files: vec![("webp".into(), live)],
        ..DoubleOptions::default()
    })
    .await;
    let node = start_node(dir.path(), Some(double.url())).await;
    let handle = node.handle();
    handle.worker_settled(DEADLINE).await;
    let (ended, _) = render(&handle, "SHT-00001", "anim_test").await;
    assert_eq!(ended[0].state, JobState::Succeeded, "{:?}", ended[0]);
    let (_, takes) = handle.read(None, |doc| doc.takes().unwrap()).await.unwrap();
    let take = &takes[0];
    // ComfyUI writes int(1000 / 6) = 166 ms a frame: 12 frames, 1992 ms (Pillow
    // reads the same: n_frames 12, 96x64).
    assert_eq!(take.media, TakeMedia::AnimatedImage, "{take:?}");
    assert_eq!(take.extension, "webp");
    assert_eq!(
        (
            take.width,
            take.height,
            take.frames,
            take.fps,
            take.duration_ms
        ),
        (96, 64, 12, 6.024, 1992),
        "{take:?}"
    );
    node.stop().await.unwrap();
}
