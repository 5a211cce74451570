//! A stand-in for a GPU, for tests and benches only: an [`Executor`] with declared
//! capabilities (GPU name, VRAM, installed workflows, utilization) and declared run
//! times, that records every execution in a shared ledger so tests can count them.
//!
//! What it can run is computed the way a real node's capabilities are: a workflow is
//! runnable when it is "installed" (its node classes and models are there) and the
//! GPU has the workflow's minimum VRAM from its manifest; otherwise it is listed as
//! unavailable with what is missing. The built-in `card` needs no GPU.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reelmesh_node::jobs::{Declared, Executor, Produced, Run, RunContext, RunFailure, Step};
use reelmesh_node::workflows::Catalog;
use reelmesh_protocol::jobs::{Job, TakeMedia};

/// How long a job takes on a GPU of speed 1.0.
pub type Durations = Arc<dyn Fn(&Job) -> Duration + Send + Sync>;

/// One execution, as the ledger saw it.
#[derive(Debug, Clone)]
pub struct Execution {
    pub job_id: String,
    pub workflow: String,
    pub node_id: String,
    pub gpu: String,
    pub attempt: u64,
    pub started: Instant,
    pub ended: Option<Instant>,
    pub failed: bool,
    /// Every input blob of the job was on this node when the run started (the
    /// stand-in reads none; the runner fetches them ahead while the previous job
    /// runs).
    pub inputs_present: bool,
    /// How long the run was declared to take on this GPU.
    pub declared: Duration,
    /// The job's inputs by role, as the run got them.
    pub inputs: BTreeMap<String, String>,
}

/// Every execution of every stand-in sharing it.
#[derive(Clone, Default)]
pub struct Ledger(Arc<Mutex<Vec<Execution>>>);

impl Ledger {
    pub fn all(&self) -> Vec<Execution> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Executions per job id.
    pub fn per_job(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in self.all() {
            *out.entry(e.job_id).or_default() += 1;
        }
        out
    }

    /// Executions per GPU name.
    pub fn per_gpu(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in self.all() {
            *out.entry(e.gpu).or_default() += 1;
        }
        out
    }

    fn push(&self, e: Execution) -> usize {
        let mut all = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.push(e);
        all.len() - 1
    }

    fn end(&self, at: usize, failed: bool) {
        let mut all = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = all.get_mut(at) {
            e.ended = Some(Instant::now());
            e.failed = failed;
        }
    }
}

/// A declared GPU.
#[derive(Clone)]
pub struct GpuStandIn {
    pub name: String,
    pub vram_gb: f64,
    /// Workflow ids whose nodes and models are installed (`card` is always there).
    pub installed: Vec<String>,
    pub utilization: u8,
    /// Run time divisor: 2.0 runs twice as fast as the declared durations.
    pub speed: f64,
    pub durations: Durations,
    pub ledger: Ledger,
    /// Every run on this GPU fails (a broken driver).
    pub broken: bool,
    /// Jobs that fail on this GPU.
    pub fails: Arc<Mutex<HashSet<String>>>,
    /// Video workflows make clips (video takes), not stills.
    pub clips: bool,
    declared: Declared,
}

impl GpuStandIn {
    pub fn new(
        name: &str,
        vram_gb: f64,
        installed: &[&str],
        utilization: u8,
        ledger: &Ledger,
    ) -> Self {
        let installed: Vec<String> = installed.iter().map(|s| (*s).to_owned()).collect();
        GpuStandIn {
            declared: declare(name, vram_gb, &installed, utilization),
            name: name.to_owned(),
            vram_gb,
            installed,
            utilization,
            speed: 1.0,
            durations: Arc::new(|_| Duration::from_millis(5)),
            ledger: ledger.clone(),
            broken: false,
            fails: Arc::default(),
            clips: false,
        }
    }

    /// Video workflows make video takes (`.mp4`).
    pub fn clips(mut self) -> Self {
        self.clips = true;
        self
    }

    pub fn speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }

    pub fn durations(mut self, durations: Durations) -> Self {
        self.durations = durations;
        self
    }

    pub fn broken(mut self) -> Self {
        self.broken = true;
        self
    }

    /// As a node config's executor slot.
    pub fn slot(self) -> reelmesh_node::jobs::ExecutorSlot {
        reelmesh_node::jobs::ExecutorSlot(Arc::new(self))
    }
}

/// What a GPU with this VRAM and these installed workflows can run.
fn declare(name: &str, vram_gb: f64, installed: &[String], utilization: u8) -> Declared {
    let catalog = Catalog::builtin();
    let mut declared = Declared {
        utilization,
        ..Declared::default()
    };
    for workflow in catalog.iter() {
        let id = workflow.manifest.id.clone();
        if id == "card" {
            declared.workflows.push(id);
            continue;
        }
        if !installed.contains(&id) {
            let models: Vec<String> = workflow
                .manifest
                .requires
                .models
                .iter()
                .map(|m| format!("missing model '{}'", m.file))
                .collect();
            let what = if models.is_empty() {
                format!("missing the node classes of {id} (not installed)")
            } else {
                models.join("; ")
            };
            declared.unavailable.push((id, what));
        } else if workflow.manifest.vram_min_gb > vram_gb {
            declared.unavailable.push((
                id,
                format!(
                    "not enough VRAM: needs {} GB, this GPU ({name}) has {vram_gb}",
                    workflow.manifest.vram_min_gb
                ),
            ));
        } else {
            declared.workflows.push(id);
        }
    }
    declared.workflows.sort();
    declared
}

#[async_trait::async_trait]
impl Executor for GpuStandIn {
    fn declared(&self) -> Option<Declared> {
        Some(self.declared.clone())
    }

    async fn run(&self, ctx: RunContext) -> Result<Run, RunFailure> {
        let node_id = ctx.handle.peer_id().to_string();
        let total = (self.durations)(&ctx.job).div_f64(self.speed.max(1e-3));
        let at = self.ledger.push(Execution {
            declared: total,
            job_id: ctx.job.job_id.clone(),
            workflow: ctx.job.workflow.clone(),
            node_id: node_id.clone(),
            gpu: self.name.clone(),
            attempt: ctx.job.attempts,
            started: Instant::now(),
            ended: None,
            failed: false,
            inputs: ctx.job.inputs.clone(),
            inputs_present: ctx.job.inputs.values().all(|reference| {
                reference
                    .parse::<reelmesh_node::store::blobs::BlobHash>()
                    .is_ok_and(|hash| ctx.handle.has_blob(&hash))
            }),
        });
        let half = total / 2;
        let _ = ctx.steps.try_send(Step {
            fraction: 0.0,
            step: format!("on {}", self.name),
            preview: None,
        });
        // The GPU "works" for the declared time (a real GPU takes real time too).
        for (wait, fraction, words) in [(half, 0.5, "halfway"), (total - half, 0.99, "finishing")] {
            tokio::select! {
                () = ctx.cancel.cancelled() => {
                    self.ledger.end(at, true);
                    return Err(RunFailure { canceled: true, ..RunFailure::new("canceled") });
                }
                () = tokio::time::sleep(wait) => {}
            }
            let _ = ctx.steps.try_send(Step {
                fraction,
                step: words.into(),
                preview: None,
            });
        }
        let scripted = self
            .fails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&ctx.job.job_id);
        if self.broken || scripted {
            self.ledger.end(at, true);
            return Err(RunFailure::new(format!(
                "CUDA error: an illegal memory access was encountered (on {})",
                self.name
            )));
        }
        self.ledger.end(at, false);
        let video = self.clips
            && Catalog::builtin()
                .get(&ctx.job.workflow)
                .is_some_and(|w| w.manifest.output == reelmesh_node::workflows::OutputKind::Video);
        Ok(Run {
            outputs: vec![Produced {
                bytes: format!("{} rendered on {} by {node_id}", ctx.job.job_id, self.name)
                    .into_bytes(),
                media: if video {
                    TakeMedia::Video
                } else {
                    TakeMedia::Image
                },
                extension: if video { "mp4" } else { "txt" }.into(),
                width: 0,
                height: 0,
                frames: 1,
                fps: 0.0,
                duration_ms: 0,
            }],
            render_ms: u64::try_from(total.as_millis()).unwrap_or(u64::MAX),
            cached: false,
            submit_to_first_event: Duration::ZERO,
        })
    }
}
