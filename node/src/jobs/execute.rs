//! Running one job: the built-in card renderer or a ComfyUI workflow.
//!
//! For ComfyUI the job's recorded parameters (prompt, seed, size, frames, LoRAs)
//! are bound into the workflow's API graph, input images are read from the blob
//! store and uploaded, and the run's websocket events become [`JobUpdate`]s.

use std::time::{Duration, Instant};

use std::sync::Arc;

use base64::Engine as _;
use reelmesh_protocol::jobs::{Fault, Job, Preview, TakeMedia};
use reelmesh_protocol::model::Project;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::RUN_TIMEOUT;
use crate::card;
use crate::comfy::{ComfyClient, ComfyError, ImageFormat, MediaKind, Output, RunEvent, RunRequest};
use crate::node::NodeHandle;
use crate::store::blobs::{BlobHash, BlobStore};
use crate::workflows::{Catalog, Engine, JobParams, Lora, Workflow, WorkflowError, fit_aspect};

/// Long edge of a storyboard card when the job names no size.
const CARD_LONG_EDGE: u32 = 1280;
/// Largest preview image passed on (bigger ones are skipped: they ride on gossip).
const MAX_PREVIEW_BYTES: usize = 32 * 1024;

/// One step of a run, reported by an [`Executor`] to the runner.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// 0.0 ..= 1.0 within the run.
    pub fraction: f32,
    /// In words ("node 3 12/20").
    pub step: String,
    /// The latest preview image, if the renderer sent one.
    pub preview: Option<Preview>,
}

/// What an executor gets for one run.
pub struct RunContext {
    /// The project.
    pub project_id: String,
    /// The job as claimed (attempt counted).
    pub job: Job,
    /// Its shot's code.
    pub shot_code: String,
    /// The node (reads, blob fetches).
    pub handle: NodeHandle,
    /// Where to report steps (dropped steps are fine: progress is best effort).
    pub steps: mpsc::Sender<Step>,
    /// Canceled when the job is canceled, lost to another claimant, or the node stops.
    pub cancel: CancellationToken,
}

/// Why a run failed.
#[derive(Debug, Clone)]
pub struct RunFailure {
    /// The job's error text, in full.
    pub message: String,
    /// What kind of fault it is: decides whether the attempt counts, and where
    /// the job may run next (see [`Fault`]).
    pub fault: Fault,
    /// ComfyUI refused the graph (its nodes or models may have changed).
    pub rejected: bool,
    /// The run stopped because it was canceled.
    pub canceled: bool,
}

impl RunFailure {
    /// A failure of no particular kind ([`Fault::Other`]): the attempt counts.
    #[must_use]
    pub fn new(message: impl Into<String>) -> RunFailure {
        RunFailure::of(Fault::Other, message)
    }

    /// A failure of the given kind.
    #[must_use]
    pub fn of(fault: Fault, message: impl Into<String>) -> RunFailure {
        RunFailure {
            message: message.into(),
            fault,
            rejected: false,
            canceled: false,
        }
    }

    /// The renderer went away, the node stopped, the disk was full: the job goes
    /// back to the queue without using an attempt.
    #[must_use]
    pub fn transient(message: impl Into<String>) -> RunFailure {
        RunFailure::of(Fault::Transient, message)
    }
}

/// What an executor says it can run, when it decides that itself (a test executor
/// standing in for a GPU); the built-in one asks ComfyUI instead.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    /// Workflow ids it can run.
    pub workflows: Vec<String>,
    /// Workflows it cannot run, with what is missing.
    pub unavailable: Vec<(String, String)>,
    /// GPU utilization to offer with, percent.
    pub utilization: u8,
}

/// Runs jobs on this node's GPU: the built-in [`BuiltIn`] (card renderer and
/// ComfyUI) in the product; tests plug in an executor with declared capabilities and
/// durations.
#[async_trait::async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Declared capabilities (`None`: the catalog and ComfyUI decide).
    fn declared(&self) -> Option<Declared> {
        None
    }
    /// Run one job to its outputs.
    async fn run(&self, ctx: RunContext) -> Result<Run, RunFailure>;
}

/// The product's executor: the card renderer and ComfyUI.
pub struct BuiltIn {
    pub(super) catalog: Arc<Catalog>,
    pub(super) comfy: Option<ComfyClient>,
    pub(super) blobs: BlobStore,
}

#[async_trait::async_trait]
impl Executor for BuiltIn {
    async fn run(&self, ctx: RunContext) -> Result<Run, RunFailure> {
        let workflow = self.catalog.get(&ctx.job.workflow).ok_or_else(|| {
            RunFailure::of(
                Fault::Node,
                format!("this node does not know workflow '{}'", ctx.job.workflow),
            )
        })?;
        let project = ctx
            .handle
            .read(Some(ctx.project_id.clone()), |doc| {
                doc.project().map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| RunFailure::transient(e.to_string()))?
            .1
            .map_err(RunFailure::new)?;
        let inner = Context {
            job: &ctx.job,
            project: &project,
            workflow,
            comfy: self.comfy.as_ref(),
            blobs: &self.blobs,
            handle: &ctx.handle,
            steps: &ctx.steps,
        };
        execute(&inner, &ctx.cancel).await.map_err(|e| RunFailure {
            rejected: matches!(&e, RunError::Comfy(ComfyError::Rejected { .. })),
            canceled: matches!(&e, RunError::Canceled),
            fault: e.fault(),
            message: e.to_string(),
        })
    }
}

/// What a job needs to run.
struct Context<'a> {
    job: &'a Job,
    project: &'a Project,
    workflow: &'a Workflow,
    comfy: Option<&'a ComfyClient>,
    blobs: &'a BlobStore,
    handle: &'a NodeHandle,
    steps: &'a mpsc::Sender<Step>,
}

/// One output of a run, before it is stored.
#[derive(Debug, Clone)]
pub struct Produced {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// What they are.
    pub media: TakeMedia,
    /// File extension (`png`, `mp4`).
    pub extension: String,
    /// Pixels (0: unknown).
    pub width: u64,
    /// Pixels (0: unknown).
    pub height: u64,
    /// Frames (1 for a still, 0: unknown).
    pub frames: u64,
    /// Frames per second of a clip or animation (0: a still, or unknown).
    pub fps: f64,
    /// Play time of a clip or animation in ms (0: a still, or unknown).
    pub duration_ms: u64,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Run {
    /// What it made.
    pub outputs: Vec<Produced>,
    /// Time in the renderer.
    pub render_ms: u64,
    /// ComfyUI answered from its cache.
    pub cached: bool,
    /// From submission to the renderer's first event.
    pub submit_to_first_event: Duration,
}

/// Why a run failed: becomes the job's error text.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Comfy(#[from] ComfyError),
    #[error("card: {0}")]
    Card(String),
    #[error("workflow {workflow}: {source}")]
    Bind {
        workflow: String,
        source: WorkflowError,
    },
    #[error("workflow {0} needs ComfyUI and this node has none (start it with --comfy URL)")]
    NoComfy(String),
    #[error("input '{role}': {why}")]
    Input {
        role: String,
        why: String,
        /// A blob no peer could send now is transient; an input the workflow
        /// cannot take is the job's.
        fault: Fault,
    },
    #[error("shot {0} is not in the project any more")]
    NoShot(String),
    #[error("canceled")]
    Canceled,
}

impl RunError {
    /// What kind of fault it is, by its type.
    fn fault(&self) -> Fault {
        match self {
            RunError::Comfy(e) => e.fault(),
            RunError::Card(_) | RunError::Canceled => Fault::Other,
            RunError::Bind { .. } | RunError::NoShot(_) => Fault::Job,
            RunError::NoComfy(_) => Fault::Node,
            RunError::Input { fault, .. } => *fault,
        }
    }
}

async fn execute(ctx: &Context<'_>, cancel: &CancellationToken) -> Result<Run, RunError> {
    match ctx.workflow.engine {
        Engine::Card => run_card(ctx, cancel).await,
        Engine::ComfyUi => run_comfy(ctx, cancel).await,
    }
}

async fn run_card(ctx: &Context<'_>, cancel: &CancellationToken) -> Result<Run, RunError> {
    let started = Instant::now();
    let shot = ctx
        .project
        .shots
        .iter()
        .find(|s| s.shot_id == ctx.job.shot_id)
        .ok_or_else(|| RunError::NoShot(ctx.job.shot_id.clone()))?;
    let spec = card::spec_for_shot(ctx.project, shot, &ctx.job.prompt, ctx.job.seed);
    let long_edge = u32::try_from(ctx.job.width.max(ctx.job.height))
        .ok()
        .filter(|e| (16..=8192).contains(e))
        .unwrap_or(CARD_LONG_EDGE);
    let drawn = tokio::task::spawn_blocking(move || card::render(&spec, long_edge));
    let card = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(RunError::Canceled),
        drawn = drawn => drawn
            .map_err(|e| RunError::Card(e.to_string()))?
            .map_err(|e| RunError::Card(e.to_string()))?,
    };
    let render_ms = millis(started.elapsed());
    Ok(Run {
        outputs: vec![Produced {
            bytes: card.png,
            media: TakeMedia::Card,
            extension: "png".into(),
            width: u64::from(card.width),
            height: u64::from(card.height),
            frames: 1,
            fps: 0.0,
            duration_ms: 0,
        }],
        render_ms,
        cached: false,
        submit_to_first_event: Duration::ZERO,
    })
}

async fn run_comfy(ctx: &Context<'_>, cancel: &CancellationToken) -> Result<Run, RunError> {
    let comfy = ctx
        .comfy
        .ok_or_else(|| RunError::NoComfy(ctx.workflow.manifest.id.clone()))?;
    let job = ctx.job;
    let mut params = params_of(ctx);
    for (role, reference) in &job.inputs {
        let name = upload_input(comfy, ctx.handle, ctx.blobs, role, reference).await?;
        match role.as_str() {
            "first_frame" => params.first_frame = Some(name),
            "last_frame" => params.last_frame = Some(name),
            "reference_image" => params.reference_image = Some(name),
            "input_video" => params.input_video = Some(name),
            other => {
                return Err(RunError::Input {
                    role: other.to_owned(),
                    why:
                        "unknown input role (first_frame, last_frame, reference_image, input_video)"
                            .into(),
                    fault: Fault::Job,
                });
            }
        }
    }
    let graph = ctx
        .workflow
        .bind(&params)
        .map_err(|source| RunError::Bind {
            workflow: ctx.workflow.manifest.id.clone(),
            source,
        })?;
    let node_count = graph.as_object().map_or(1, serde_json::Map::len).max(1);

    let (events_tx, events_rx) = mpsc::channel(256);
    let forward = tokio::spawn(forward_progress(events_rx, ctx.steps.clone(), node_count));
    let request = RunRequest {
        prompt: graph,
        timeout: RUN_TIMEOUT,
        output_nodes: ctx.workflow.manifest.output_nodes.clone(),
    };
    let result = comfy.run(request, &events_tx, cancel).await;
    drop(events_tx);
    let _ = forward.await;
    let result = match result {
        Ok(result) => result,
        Err(ComfyError::Canceled) => return Err(RunError::Canceled),
        Err(e) => return Err(e.into()),
    };
    let submit_to_first_event = result.first_event_at.map_or(Duration::ZERO, |at| {
        at.saturating_duration_since(result.submitted_at)
    });
    let render_ms = millis(
        result
            .finished_at
            .saturating_duration_since(result.submitted_at),
    );
    let outputs = result.outputs.into_iter().map(produced).collect();
    Ok(Run {
        outputs,
        render_ms,
        cached: result.cached,
        submit_to_first_event,
    })
}

/// The workflow parameters of the job: its prompt, seed, size, length and LoRAs;
/// with no size of its own, the workflow's default area at the shot's aspect.
fn params_of(ctx: &Context<'_>) -> JobParams {
    let job = ctx.job;
    let mut params = JobParams {
        prompt: job.prompt.clone(),
        negative_prompt: (!job.negative_prompt.is_empty()).then(|| job.negative_prompt.clone()),
        seed: job.seed,
        width: positive_u32(job.width),
        height: positive_u32(job.height),
        frames: positive_u32(job.frames),
        fps: (job.fps > 0.0).then_some(job.fps),
        first_frame: None,
        last_frame: None,
        reference_image: None,
        input_video: None,
        loras: job
            .loras
            .iter()
            .map(|(name, strength)| Lora {
                name: name.clone(),
                strength: *strength,
            })
            .collect(),
    };
    if params.width.is_none() && params.height.is_none() {
        // The shot's look decides the aspect; the workflow's default size the area.
        let defaults = &ctx.workflow.manifest.defaults;
        if let (Some(w), Some(h)) = (defaults.width, defaults.height) {
            let aspect = aspect_of_shot(ctx);
            let (w, h) = fit_aspect(&aspect, w, h, 16);
            params.width = Some(w);
            params.height = Some(h);
        }
    }
    params
}

/// One ComfyUI output as a take's file, its kind from ComfyUI and its extension
/// from its name. What the file really is (size, frames, rate, length) is read
/// from it when it is stored; ComfyUI only says what kind of output it is.
fn produced(output: Output) -> Produced {
    let extension = output
        .file
        .filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    let (media, frames) = match output.media {
        MediaKind::Image => (TakeMedia::Image, 1),
        MediaKind::Video => (TakeMedia::Video, 0),
        MediaKind::AnimatedImage => (TakeMedia::AnimatedImage, 0),
    };
    Produced {
        bytes: output.bytes,
        media,
        extension,
        width: 0,
        height: 0,
        frames,
        fps: 0.0,
        duration_ms: 0,
    }
}

/// The aspect ratio of the job's shot, from its look; blank when it has none.
fn aspect_of_shot(ctx: &Context<'_>) -> String {
    ctx.project
        .shots
        .iter()
        .find(|s| s.shot_id == ctx.job.shot_id)
        .map(|s| ctx.project.effective_look(s).aspect_ratio)
        .filter(|ratio| !reelmesh_protocol::prompt::is_blank(ratio))
        .unwrap_or_default()
}

async fn upload_input(
    comfy: &ComfyClient,
    handle: &NodeHandle,
    blobs: &BlobStore,
    role: &str,
    reference: &str,
) -> Result<String, RunError> {
    let input_error = |fault: Fault| {
        move |why: String| RunError::Input {
            role: role.to_owned(),
            why,
            fault,
        }
    };
    let hash: BlobHash = reference.parse().map_err(input_error(Fault::Job))?;
    if !blobs.has(&hash) {
        // Not here yet: fetch it by hash from the peers that have it (verified).
        // None may be online now: that passes.
        handle
            .fetch_blob(hash)
            .await
            .map_err(|e| input_error(Fault::Transient)(e.to_string()))?;
    }
    let store = blobs.clone();
    let bytes = tokio::task::spawn_blocking(move || store.read(&hash))
        .await
        .map_err(|e| input_error(Fault::Transient)(e.to_string()))?
        .map_err(|e| input_error(Fault::Transient)(format!("blob {reference}: {e}")))?;
    let extension = if role == "input_video" { "mp4" } else { "png" };
    let name = format!("reelmesh_{}.{extension}", &reference[..16]);
    let uploaded = comfy.upload_image(&name, bytes, Some("reelmesh")).await?;
    Ok(uploaded.input_name())
}

/// Turn ComfyUI events into steps: overall fraction from nodes done plus the
/// running node's steps; previews ride along with the latest step.
async fn forward_progress(
    mut events: mpsc::Receiver<RunEvent>,
    steps: mpsc::Sender<Step>,
    node_count: usize,
) {
    let mut done = 0_usize;
    let mut update = Step::default();
    while let Some(event) = events.recv().await {
        let (fraction, step) = match event {
            RunEvent::Queued { number, .. } => (0.0, format!("queued in comfyui (#{number})")),
            RunEvent::Started => (0.0, "started".to_owned()),
            RunEvent::Cached { nodes } => {
                done += nodes.len();
                (
                    progress(done, 0.0, node_count),
                    format!("{} nodes cached", nodes.len()),
                )
            }
            RunEvent::Executing { node } => {
                done += 1;
                (progress(done - 1, 0.0, node_count), format!("node {node}"))
            }
            RunEvent::Progress { node, value, max } => {
                let within = if max == 0 {
                    0.0
                } else {
                    value as f32 / max as f32
                };
                (
                    progress(done.saturating_sub(1), within, node_count),
                    format!("node {node} {value}/{max}"),
                )
            }
            RunEvent::Preview { format, bytes } => {
                if bytes.len() > MAX_PREVIEW_BYTES {
                    continue;
                }
                let mime = match format {
                    ImageFormat::Jpeg => "image/jpeg",
                    ImageFormat::Png => "image/png",
                };
                let mut with_preview = update.clone();
                with_preview.preview = Some(Preview {
                    mime: mime.to_owned(),
                    base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
                });
                let _ = steps.try_send(with_preview);
                continue;
            }
            RunEvent::Executed { node } => {
                (progress(done, 0.0, node_count), format!("node {node} done"))
            }
        };
        update.fraction = fraction.max(update.fraction).min(0.99);
        update.step = step;
        let _ = steps.try_send(update.clone());
    }
}

fn progress(done: usize, within: f32, total: usize) -> f32 {
    ((done as f32 + within) / total as f32).clamp(0.0, 1.0)
}

fn positive_u32(value: u64) -> Option<u32> {
    u32::try_from(value).ok().filter(|v| *v > 0)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_stays_within_bounds() {
        assert!((progress(0, 0.5, 4) - 0.125).abs() < 1e-6);
        assert!((progress(9, 0.0, 4) - 1.0).abs() < 1e-6);
        assert!((progress(0, 0.0, 1)).abs() < 1e-6);
    }
}
