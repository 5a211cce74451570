//! Render faults on a mesh of two runners, each with its own ComfyUI (the test
//! double answering like the recorded server), told truthfully:
//! - **transient** (ComfyUI killed mid-run, or restarted and the prompt lost): the
//!   job goes back to the queue without using an attempt, says why it waits, and
//!   runs once ComfyUI is back;
//! - **this node's** (a LoRA its ComfyUI lacks: a `value_not_in_list` 400; a node
//!   that raises): the node is ruled out at once, the job waits for the other runner
//!   (whose ComfyUI is down at first) and finishes there;
//! - **the job's** (a value over its input's maximum): it fails once, everywhere,
//!   with ComfyUI's whole message;
//! - a job no node can run ends at its deadline, saying what it waited for.
//!
//! Shot statuses are checked at each step: `generating` only while a node holds a
//! job. Waiting is on events with deadlines (and a look every 200 ms where what is
//! awaited is gossip no event announces), never on sleeps.

#![allow(clippy::unwrap_used)] // test helpers panic on failure by design

use std::path::PathBuf;
use std::time::Duration;

use reelmesh_node::jobs::{self, queue::RenderRequest};
use reelmesh_node::node::{NodeConfig, NodeHandle};
use reelmesh_protocol::jobs::{Fault, Job, JobState};
use reelmesh_protocol::model::{Character, ShotStatus};

use crate::comfy_double::{ComfyDouble, DoubleOptions, Script};
use crate::meshkit::{self, DEADLINE, Mesh, Setup, models_of};

/// A user workflow whose default size is over what `EmptyImage` takes (16384): the
/// graph as saved passes every check, the job's size does not.
const HUGE_JSON: &str = r#"{
  "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "huge"}}
}"#;
const HUGE_TOML: &str = r#"
id = "huge_still"
title = "A still too large"
kind = "utility"
output = "image"
vram_min_gb = 0
vram_recommended_gb = 0
description = "EmptyImage at a default size over its maximum."
output_nodes = ["2"]

[defaults]
width = 24000
height = 24000
seed_max = 16777215

[requires]
node_classes = ["EmptyImage", "SaveImage"]

[bindings]
width = { node = "1", input = "width" }
height = { node = "1", input = "height" }
seed = { node = "1", input = "color" }
"#;

/// An editor and two runners: `a` with its ComfyUI up, `b` with its ComfyUI down
/// until the test brings it up (so the first run of every job is on `a`).
struct Lab {
    mesh: Mesh,
    a: ComfyDouble,
    b: ComfyDouble,
    _workflows: tempfile::TempDir,
}

impl Lab {
    async fn start(models_a: Vec<String>, models_b: Vec<String>) -> Lab {
        let workflows = tempfile::tempdir().unwrap();
        std::fs::write(workflows.path().join("huge_still.json"), HUGE_JSON).unwrap();
        std::fs::write(workflows.path().join("huge_still.toml"), HUGE_TOML).unwrap();
        let a = ComfyDouble::start(DoubleOptions {
            models: models_a,
            ..DoubleOptions::default()
        })
        .await;
        let b = ComfyDouble::start(DoubleOptions {
            models: models_b,
            ..DoubleOptions::default()
        })
        .await;
        b.stop().await;
        let dir = workflows.path().to_owned();
        let worker = |url: String, dir: PathBuf| -> Setup {
            Box::new(move |c: &mut NodeConfig| {
                c.comfy_url = Some(url);
                c.workflows_dir = Some(dir);
            })
        };
        let editor_dir = dir.clone();
        let mesh = meshkit::mesh_with_editor(
            5,
            Box::new(move |c: &mut NodeConfig| c.workflows_dir = Some(editor_dir)),
            vec![worker(a.url(), dir.clone()), worker(b.url(), dir)],
        )
        .await;
        Lab {
            mesh,
            a,
            b,
            _workflows: workflows,
        }
    }

    fn editor(&self) -> NodeHandle {
        self.mesh.editor.handle()
    }

    fn a_id(&self) -> String {
        self.mesh.id(0)
    }

    fn b_id(&self) -> String {
        self.mesh.id(1)
    }

    /// The job as the editor holds it once `ready` says so (each change, and every
    /// 200 ms); panics naming `what` and the last state seen after the deadline.
    async fn until_job(&self, job_id: &str, what: &str, ready: impl Fn(&Job) -> bool) -> Job {
        let editor = self.editor();
        let mut events = editor.subscribe();
        let mut look = tokio::time::interval(Duration::from_millis(200));
        let mut last = None;
        let found = tokio::time::timeout(DEADLINE, async {
            loop {
                let id = job_id.to_owned();
                let (_, job) = editor
                    .read(None, move |doc| doc.job(&id).unwrap())
                    .await
                    .unwrap();
                if ready(&job) {
                    return job;
                }
                last = Some(job);
                tokio::select! {
                    _ = events.recv() => {}
                    _ = look.tick() => {}
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("waited {DEADLINE:?} for {what}; last seen: {last:?}"))
    }

    /// Why the job waits, once `ready` says so.
    async fn until_waiting(
        &self,
        job_id: &str,
        what: &str,
        ready: impl Fn(&str) -> bool,
    ) -> String {
        let editor = self.editor();
        let mut look = tokio::time::interval(Duration::from_millis(200));
        let mut last = String::new();
        let found = tokio::time::timeout(DEADLINE, async {
            loop {
                let reasons = jobs::waiting_reasons(&editor, None).await.unwrap();
                if let Some(why) = reasons.get(job_id) {
                    if ready(why) {
                        return why.clone();
                    }
                    last.clone_from(why);
                }
                look.tick().await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("waited {DEADLINE:?} for {what}; last reason: {last}"))
    }

    /// Queue a FLUX job for `shot` whose run hangs inside a's ComfyUI; returns the
    /// job once it runs there.
    async fn hanging_on_a(&self, shot: &str) -> String {
        self.a.script_next(Script::HangAt {
            node_id: "8".into(),
        });
        let ids = meshkit::queue(&self.editor(), shot, "flux_basic", 0).await;
        let running = self
            .until_job(&ids[0], "the job running on a", |j| {
                j.state == JobState::Running
            })
            .await;
        assert_eq!(running.claimant, self.a_id());
        self.a
            .wait_for("the prompt inside a's ComfyUI", |d| !d.queue().0.is_empty())
            .await;
        ids[0].clone()
    }

    /// The job once it ended: a success on its `attempts`-th attempt with no error
    /// left, its runs (node, outcome) as given, its shot (`index`) completed.
    async fn succeeded(
        &self,
        job_id: &str,
        index: usize,
        attempts: u64,
        runs: &[(String, &str)],
    ) -> Job {
        let done = self
            .until_job(job_id, "the job done", |j| !j.state.is_active())
            .await;
        assert_eq!(done.state, JobState::Succeeded, "{done:?}");
        assert_eq!(done.attempts, attempts, "{done:?}");
        assert!(
            done.error.is_empty(),
            "a success clears the error: {done:?}"
        );
        let want: Vec<(String, String)> = runs
            .iter()
            .map(|(node, outcome)| (node.clone(), (*outcome).to_owned()))
            .collect();
        assert_eq!(outcomes(&done), want, "{done:?}");
        assert_eq!(self.shot_status(index).await, ShotStatus::Completed);
        done
    }

    async fn shot_status(&self, index: usize) -> ShotStatus {
        let (_, status) = self
            .editor()
            .read(None, move |doc| doc.project().unwrap().shots[index].status)
            .await
            .unwrap();
        status
    }

    async fn stop(self) {
        self.mesh.stop().await;
    }
}

/// An address as the errors write it (`127.0.0.1:port`).
fn address(double: &ComfyDouble) -> String {
    double.url().replace("http://", "")
}

fn outcomes(job: &Job) -> Vec<(String, String)> {
    job.history
        .iter()
        .map(|a| (a.node_id.clone(), a.outcome.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comfyui_killed_mid_run_the_job_waits_without_an_attempt_and_runs_when_it_is_back() {
    let lab = Lab::start(models_of("flux_basic"), models_of("flux_basic")).await;
    let id = lab.hanging_on_a("SHT-00001").await;
    assert_eq!(lab.shot_status(0).await, ShotStatus::Generating);

    // a's ComfyUI dies: the run is interrupted, the attempt given back.
    lab.a.stop().await;
    let back = lab
        .until_job(&id, "the job back in the queue", |j| {
            j.state == JobState::Queued
        })
        .await;
    assert_eq!(back.attempts, 0, "no attempt used: {back:?}");
    assert!(
        back.error.starts_with("interrupted on ") && back.error.contains(&address(&lab.a)),
        "{}",
        back.error
    );
    let first = &back.history[0];
    assert_eq!(
        (first.node_id.as_str(), first.outcome.as_str(), first.fault),
        (lab.a_id().as_str(), "interrupted", Some(Fault::Transient)),
        "{back:?}"
    );
    assert!(
        back.ruled_out.is_empty(),
        "a passing outage rules nobody out"
    );
    assert_eq!(
        lab.shot_status(0).await,
        ShotStatus::Pending,
        "nothing runs it"
    );
    // Both ComfyUIs are down: it says so, naming each, with since when.
    let why = lab
        .until_waiting(&id, "both ComfyUIs named as down", |why| {
            why.contains(&address(&lab.a)) && why.contains(&address(&lab.b))
        })
        .await;
    assert!(
        why.starts_with("no node can run workflow flux_basic: "),
        "{why}"
    );
    assert!(
        why.contains("unreachable") && why.contains("since"),
        "{why}"
    );

    // a's ComfyUI is back: the job runs there and completes, on its first attempt.
    lab.a.restart().await;
    let runs = [(lab.a_id(), "interrupted"), (lab.a_id(), "succeeded")];
    lab.succeeded(&id, 0, 1, &runs).await;
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comfyui_restart_that_loses_the_prompt_requeues_the_job_and_it_finishes() {
    let lab = Lab::start(models_of("flux_basic"), models_of("flux_basic")).await;
    let id = lab.hanging_on_a("SHT-00002").await;
    // ComfyUI restarts (queue and history forgotten) and is back at once: the lost
    // run gives its attempt back.
    lab.a.restart().await;
    let runs = [(lab.a_id(), "interrupted"), (lab.a_id(), "succeeded")];
    let done = lab.succeeded(&id, 1, 1, &runs).await;
    let lost = &done.history[0];
    assert_eq!(
        (lost.outcome.as_str(), lost.fault),
        ("interrupted", Some(Fault::Transient)),
        "{done:?}"
    );
    assert!(lost.error.contains("lost prompt"), "{lost:?}");

    assert_eq!(lab.a.prompts().len(), 2, "posted again after the restart");

    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_one_comfyui_lacks_rules_that_node_out_and_the_other_finishes_the_job() {
    // Both have FLUX; only b has the character's LoRA.
    let mut with_lora = models_of("flux_lora");
    with_lora.push("minji_v2.safetensors".into());
    let lab = Lab::start(models_of("flux_lora"), with_lora).await;
    let editor = lab.editor();
    let mut minji = Character::new("민지");
    minji.lora_path = "minji_v2.safetensors".into();
    minji.lora_strength = 0.7;
    editor
        .edit(None, move |doc| {
            doc.put_character(&minji).map_err(|e| e.to_string())?;
            let mut shot = doc.project().map_err(|e| e.to_string())?.shots[2].clone();
            shot.characters = vec![minji.character_id.clone()];
            doc.update_shot(&shot).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let ids = meshkit::queue(&editor, "SHT-00003", "flux_lora", 0).await;
    let id = ids[0].clone();

    // a's ComfyUI refuses the graph (400 value_not_in_list on the LoRA loader): a
    // is ruled out at once, with ComfyUI's whole message; the job waits for b,
    // whose ComfyUI is down.
    let waiting = lab
        .until_job(&id, "a ruled out", |j| {
            j.ruled_out.contains_key(&lab.a_id())
        })
        .await;
    assert_eq!(waiting.state, JobState::Queued, "{waiting:?}");
    assert_eq!(waiting.attempts, 1, "{waiting:?}");
    let refusal = &waiting.history[0];
    assert_eq!(
        (
            refusal.node_id.as_str(),
            refusal.outcome.as_str(),
            refusal.fault
        ),
        (lab.a_id().as_str(), "failed", Some(Fault::Node))
    );
    for part in [
        "comfyui rejected the workflow",
        "(LoraLoader), input lora_name: value not in list: 'minji_v2.safetensors' not in [",
        "'flux1-dev.safetensors'",
    ] {
        assert!(refusal.error.contains(part), "{part}: {}", refusal.error);
    }
    assert_eq!(lab.a.prompts().len(), 1, "not posted to a again");
    assert_eq!(lab.shot_status(2).await, ShotStatus::Pending);
    let why = lab
        .until_waiting(&id, "the wait for b", |why| {
            why.contains("renderer is down")
        })
        .await;
    assert!(why.contains("failed it:"), "{why}");
    assert!(why.contains(&address(&lab.b)), "{why}");

    // b's ComfyUI comes up: b runs it.
    lab.b.restart().await;
    let runs = [(lab.a_id(), "failed"), (lab.b_id(), "succeeded")];
    lab.succeeded(&id, 2, 2, &runs).await;
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_raises_is_ruled_out_and_the_other_runs_the_job() {
    let lab = Lab::start(models_of("flux_basic"), models_of("flux_basic")).await;
    let editor = lab.editor();
    lab.a.script_next(Script::FailAt {
        node_id: "8".into(),
        exception_type: "torch.OutOfMemoryError".into(),
        exception_message: "CUDA out of memory. Tried to allocate 2.00 GiB".into(),
    });
    let ids = meshkit::queue(&editor, "SHT-00004", "flux_basic", 0).await;
    let id = ids[0].clone();
    let waiting = lab
        .until_job(&id, "a ruled out", |j| {
            j.ruled_out.contains_key(&lab.a_id())
        })
        .await;
    assert_eq!(waiting.state, JobState::Queued, "{waiting:?}");
    assert!(
        waiting.error.contains(
            "comfyui failed at node 8 (KSampler): torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
        ),
        "{}",
        waiting.error
    );
    assert_eq!(lab.shot_status(3).await, ShotStatus::Pending);
    lab.b.restart().await;
    let runs = [(lab.a_id(), "failed"), (lab.b_id(), "succeeded")];
    lab.succeeded(&id, 3, 2, &runs).await;
    assert_eq!(lab.a.prompts().len(), 1, "a ran it once, and not again");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_its_maximum_fails_once_everywhere_with_comfyuis_whole_message() {
    let lab = Lab::start(Vec::new(), Vec::new()).await;
    // Both ComfyUIs up: the job's own value is refused, so no other node tries.
    lab.b.restart().await;
    let editor = lab.editor();
    for handle in [lab.mesh.workers[1].handle()] {
        handle
            .worker_until(
                |w| w.capabilities.contains(&"huge_still".to_owned()),
                DEADLINE,
            )
            .await
            .expect("b sees its ComfyUI again");
    }
    let ids = meshkit::queue(&editor, "SHT-00005", "huge_still", 0).await;
    let done = meshkit::ended(&editor, &ids).await.remove(0);
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    assert_eq!(done.attempts, 1, "{done:?}");
    let error = &done.error;
    assert!(error.starts_with("attempt 1 on "), "{error}");
    for part in [
        "comfyui rejected the workflow: prompt outputs failed validation",
        "node 1 (EmptyImage), input width: value 24000 bigger than max of 16384",
        "node 1 (EmptyImage), input height: value 24000 bigger than max of 16384",
        "the job cannot run anywhere",
    ] {
        assert!(error.contains(part), "{part}: {error}");
    }
    assert_eq!(done.history[0].fault, Some(Fault::Job));
    assert_eq!(
        lab.a.prompts().len() + lab.b.prompts().len(),
        1,
        "posted once, to one ComfyUI"
    );
    assert_eq!(lab.shot_status(4).await, ShotStatus::Pending);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_node_can_run_ends_at_its_deadline_saying_what_it_waited_for() {
    let lab = Lab::start(models_of("flux_basic"), models_of("flux_basic")).await;
    lab.a.stop().await;
    let editor = lab.editor();
    // Every ComfyUI is down: the job waits, and ends when its deadline passes.
    lab.mesh.workers[0]
        .handle()
        .worker_until(|w| w.problem.is_some(), DEADLINE)
        .await
        .expect("a notices its ComfyUI is down");
    let request = RenderRequest {
        shots: "SHT-00001".into(),
        workflow: "flux_basic".into(),
        seed: None,
        priority: 0,
        inputs: Default::default(),
        deadline_secs: Some(2),
        video: None,
    };
    let queued = jobs::queue_on(&editor, None, request, true).await.unwrap();
    let id = queued.queued[0].job_id.clone();
    let done = lab
        .until_job(&id, "the deadline", |j| !j.state.is_active())
        .await;
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    assert_eq!(done.attempts, 0, "never run: {done:?}");
    assert!(
        done.error.starts_with("not run by its deadline ("),
        "{}",
        done.error
    );
    assert!(
        done.error.contains("no node can run workflow flux_basic")
            && done.error.contains(&address(&lab.a))
            && done.error.contains(&address(&lab.b)),
        "{}",
        done.error
    );
    assert_eq!(lab.shot_status(0).await, ShotStatus::Pending);
    lab.stop().await;
}
