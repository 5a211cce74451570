//! Render jobs and takes: the durable half of rendering.
//!
//! A [`Job`] is one workflow run for one shot. It lives in the project document from
//! the moment it is queued (by any editor, online or offline) until it ends, with
//! every transition written there: `queued → claimed → running → succeeded | failed |
//! canceled`. What changes many times a second (progress, previews, heartbeats) never
//! enters the document; it travels on gossip.
//!
//! A [`Take`] is one result of a job: a blob named by its BLAKE3 hash plus what made
//! it (workflow, seed, prompt, node, timings). Regenerating makes a new take; old
//! takes stay as history. The shot's review status follows its jobs through
//! [`shot_status_after`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::{ShotId, ShotStatus};

/// Internal id of a job.
pub type JobId = String;
/// Internal id of a take.
pub type TakeId = String;

/// How many times a job is tried before it stays failed.
pub const DEFAULT_MAX_ATTEMPTS: u64 = 3;

/// How long a job may wait in the queue before it ends failed, unless it is queued
/// with another deadline (`render --deadline`): generous, so that a box whose
/// ComfyUI is down over a weekend still renders its jobs when it comes back.
pub const DEFAULT_DEADLINE_MS: u64 = 72 * 60 * 60 * 1000;

/// How many runs of one job may be interrupted by transient faults on one node
/// before that node is ruled out for it: a job that takes its ComfyUI down every
/// time (it runs out of memory and the process dies) is not a passing outage.
pub const TRANSIENT_LIMIT_PER_NODE: usize = 3;

/// Most attempts kept in a job's history (the oldest go first).
pub const MAX_HISTORY: usize = 32;

/// Longest error text kept in an attempt (bytes; ComfyUI's whole message fits).
pub const MAX_ERROR_LEN: usize = 4096;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for a node.
    #[default]
    Queued,
    /// A node has taken it and is preparing inputs.
    Claimed,
    /// Running on its claimant.
    Running,
    /// Finished with a take.
    Succeeded,
    /// Gave up (attempts used, or an error no retry can fix).
    Failed,
    /// Canceled by a user.
    Canceled,
}

impl JobState {
    /// The stored spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Claimed => "claimed",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    /// Held by a node: claimed or running (what makes a shot `generating`).
    #[must_use]
    pub fn is_held(self) -> bool {
        matches!(self, JobState::Claimed | JobState::Running)
    }

    /// Still waiting or running (not ended).
    #[must_use]
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobState::Queued | JobState::Claimed | JobState::Running
        )
    }

    /// Whether a job in this state may move to `next`. Ended jobs stay ended, except
    /// that a failed job may be queued again (a retry).
    #[must_use]
    pub fn can_become(self, next: JobState) -> bool {
        use JobState::{Canceled, Claimed, Failed, Queued, Running, Succeeded};
        matches!(
            (self, next),
            (Queued, Claimed | Running | Canceled | Failed)
                | (Claimed, Queued | Running | Succeeded | Canceled | Failed)
                | (Running, Queued | Succeeded | Failed | Canceled)
                | (Failed, Queued)
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "queued" => JobState::Queued,
            "claimed" => JobState::Claimed,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "canceled" => JobState::Canceled,
            other => return Err(format!("'{other}' is not a job state")),
        })
    }
}

/// One workflow run for one shot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Internal id.
    pub job_id: JobId,
    /// The shot it renders.
    pub shot_id: ShotId,
    /// Workflow id (see `workflows/`).
    pub workflow: String,
    /// Where it is.
    pub state: JobState,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i64,
    /// Runs started so far.
    #[serde(default)]
    pub attempts: u64,
    /// Runs allowed before it stays failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u64,
    /// The current error: the last attempt's, or why the job waits after a fault;
    /// cleared when it succeeds.
    #[serde(default)]
    pub error: String,
    /// Sampler seed, chosen when queued so a rerun is reproducible.
    #[serde(default)]
    pub seed: u64,
    /// The prompt as assembled when queued (what was asked for is what is recorded).
    #[serde(default)]
    pub prompt: String,
    /// Negative prompt (empty: the workflow's default).
    #[serde(default)]
    pub negative_prompt: String,
    /// Output size in pixels (0: the workflow's default).
    #[serde(default)]
    pub width: u64,
    /// Output size in pixels (0: the workflow's default).
    #[serde(default)]
    pub height: u64,
    /// Frames for video workflows (0: the workflow's default).
    #[serde(default)]
    pub frames: u64,
    /// Frames per second for video workflows (0: the project's rate).
    #[serde(default)]
    pub fps: f64,
    /// LoRA file name → strength, from the shot's characters when queued.
    #[serde(default)]
    pub loras: BTreeMap<String, f64>,
    /// Input images by role (`first_frame`, `last_frame`, `reference_image`) → blob
    /// hash or path.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Node that queued it.
    #[serde(default)]
    pub created_by: String,
    /// When it was queued (ms since the epoch, queuing node's clock).
    #[serde(default)]
    pub created_at_ms: u64,
    /// Node that claimed it (empty while queued).
    #[serde(default)]
    pub claimant: String,
    /// When the current run started.
    #[serde(default)]
    pub started_at_ms: u64,
    /// When it ended.
    #[serde(default)]
    pub finished_at_ms: u64,
    /// The take it produced.
    #[serde(default)]
    pub take_id: String,
    /// A user asked to cancel it; the claimant stops its run and marks it canceled.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Failed runs per node (node id → count): a retry goes to another node first,
    /// and a node that failed it twice is not given it again.
    #[serde(default)]
    pub failures: BTreeMap<String, u64>,
    /// Its estimated cost in work units (output megapixels × sampler steps × frames),
    /// set when queued; 0 when unknown. Placement weighs queues by it, with each
    /// node's measured time per unit, and hands out the largest jobs of a batch first
    /// (see [`crate::placement`]).
    #[serde(default)]
    pub work: f64,
    /// Nodes ruled out for this job, with why (node id → the error): set at once
    /// when a node fails it for a reason that is that node's own (ComfyUI refused the
    /// graph, a model or node class is missing, a node raised while running).
    #[serde(default)]
    pub ruled_out: BTreeMap<String, String>,
    /// When it gives up waiting (ms since the epoch; 0: never): a queued job past
    /// it ends failed, saying what it waited for.
    #[serde(default)]
    pub deadline_ms: u64,
    /// Every run that ended, oldest first (at most [`MAX_HISTORY`]).
    #[serde(default)]
    pub history: Vec<Attempt>,
    /// Jobs to queue when this one succeeds, its output as their input (a clip
    /// after its still, an interpolation after its clip): written in the same
    /// change as the success, so a chain survives any node's crash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<Step>,
    /// The job whose success queued this one (empty: queued by someone): who
    /// follows the first follows the chain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent: String,
}

/// A job to queue after another succeeds: the first step's job gets the finished
/// job's output as input `role`, and the later steps as its own `then`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Workflow id.
    pub workflow: String,
    /// The input that receives the finished job's output (`first_frame`,
    /// `input_video`).
    pub role: String,
    /// Its other inputs, by role (blob hashes).
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Its prompt.
    #[serde(default)]
    pub prompt: String,
    /// Its frames (0: the workflow's default).
    #[serde(default)]
    pub frames: u64,
    /// Its estimated work.
    #[serde(default)]
    pub work: f64,
}

impl Job {
    /// The job `self.then` starts once `self` made `take`: the first step, with the
    /// take as its input and the remaining steps as its own chain.
    #[must_use]
    pub fn next_in_chain(&self, take: &Take, now_ms: u64) -> Option<Job> {
        let (step, rest) = self.then.split_first()?;
        let mut job = Job::new(
            &self.shot_id,
            &step.workflow,
            self.seed,
            &self.created_by,
            now_ms,
        );
        job.priority = self.priority;
        job.prompt.clone_from(&step.prompt);
        job.frames = step.frames;
        job.work = step.work;
        job.loras.clone_from(&self.loras);
        job.inputs.clone_from(&step.inputs);
        job.inputs.insert(step.role.clone(), take.blob.clone());
        job.deadline_ms = now_ms.saturating_add(DEFAULT_DEADLINE_MS);
        job.then = rest.to_vec();
        job.parent.clone_from(&self.job_id);
        Some(job)
    }
}

/// What kind of fault ended a run, decided where it arose (by type, not by text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fault {
    /// Nothing about the job: the renderer was unreachable, lost the prompt in a
    /// restart, the node stopped, the disk was full. The job goes back to the queue
    /// without using an attempt and waits for a node that can run it.
    Transient,
    /// This node cannot run it (ComfyUI refused the graph, a model or node class is
    /// missing, a node raised while running): the node is ruled out for the job and
    /// another one takes it.
    Node,
    /// The job itself cannot run anywhere (an input the workflow cannot take): it
    /// fails at once.
    Job,
    /// Anything else: counts an attempt, and the retry goes to another node first.
    Other,
}

impl Fault {
    /// The stored spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Transient => "transient",
            Fault::Node => "node",
            Fault::Job => "job",
            Fault::Other => "other",
        }
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "transient" => Fault::Transient,
            "node" => Fault::Node,
            "job" => Fault::Job,
            "other" => Fault::Other,
            other => return Err(format!("'{other}' is not a fault kind")),
        })
    }
}

/// One run of a job that ended: where, when, and how.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Attempt {
    /// The node that ran it.
    pub node_id: String,
    /// Its host name.
    #[serde(default)]
    pub host: String,
    /// The attempt number it counted as (a transient fault gives it back).
    #[serde(default)]
    pub attempt: u64,
    /// When it started (ms since the epoch, the runner's clock).
    #[serde(default)]
    pub started_at_ms: u64,
    /// When it ended.
    #[serde(default)]
    pub ended_at_ms: u64,
    /// How it ended: `succeeded`, `failed`, `canceled`, `interrupted` (a transient
    /// fault: back in the queue without using the attempt) or `stopped` (its node
    /// was stopped: back in the queue likewise).
    pub outcome: String,
    /// The fault's kind, when it failed.
    #[serde(default)]
    pub fault: Option<Fault>,
    /// The error in full (at most [`MAX_ERROR_LEN`] bytes).
    #[serde(default)]
    pub error: String,
}

impl Attempt {
    /// The key it is stored under: its start and node, so runs on two sides of a
    /// partition never overwrite each other and keys sort by time.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{:015}-{}", self.started_at_ms, self.node_id)
    }
}

impl Job {
    /// Record an ended run, keeping the newest [`MAX_HISTORY`].
    pub fn record_attempt(&mut self, mut attempt: Attempt) {
        attempt.error = crate::wire::truncate_utf8(&attempt.error, MAX_ERROR_LEN).to_owned();
        let key = attempt.key();
        self.history.retain(|a| a.key() != key);
        self.history.push(attempt);
        self.history.sort_by_key(Attempt::key);
        let excess = self.history.len().saturating_sub(MAX_HISTORY);
        self.history.drain(..excess);
    }

    /// How many of its runs on `node_id` were interrupted by a transient fault
    /// (not counting runs given back because their node was stopped).
    #[must_use]
    pub fn transient_faults_on(&self, node_id: &str) -> usize {
        self.history
            .iter()
            .filter(|a| {
                a.node_id == node_id
                    && a.fault == Some(Fault::Transient)
                    && a.outcome == "interrupted"
            })
            .count()
    }

    /// Whether it has waited past its deadline at `now_ms`.
    #[must_use]
    pub fn past_deadline(&self, now_ms: u64) -> bool {
        self.deadline_ms > 0 && now_ms >= self.deadline_ms
    }
}

fn default_max_attempts() -> u64 {
    DEFAULT_MAX_ATTEMPTS
}

impl Job {
    /// A queued job with a fresh id.
    #[must_use]
    pub fn new(shot_id: &str, workflow: &str, seed: u64, created_by: &str, now_ms: u64) -> Job {
        Job {
            job_id: crate::model::new_record_id(),
            shot_id: shot_id.to_owned(),
            workflow: workflow.to_owned(),
            state: JobState::Queued,
            priority: 0,
            attempts: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            error: String::new(),
            seed,
            prompt: String::new(),
            negative_prompt: String::new(),
            width: 0,
            height: 0,
            frames: 0,
            fps: 0.0,
            loras: BTreeMap::new(),
            inputs: BTreeMap::new(),
            created_by: created_by.to_owned(),
            created_at_ms: now_ms,
            claimant: String::new(),
            started_at_ms: 0,
            finished_at_ms: 0,
            take_id: String::new(),
            cancel_requested: false,
            failures: BTreeMap::new(),
            work: 0.0,
            ruled_out: BTreeMap::new(),
            deadline_ms: now_ms.saturating_add(DEFAULT_DEADLINE_MS),
            history: Vec::new(),
            then: Vec::new(),
            parent: String::new(),
        }
    }
}

/// What kind of media a take holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TakeMedia {
    /// A still from a model.
    Image,
    /// A clip from a model.
    Video,
    /// An animated image (webp/gif) from a model.
    AnimatedImage,
    /// A storyboard card drawn by reelmesh itself: never AI output.
    Card,
}

impl TakeMedia {
    /// The stored spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TakeMedia::Image => "image",
            TakeMedia::Video => "video",
            TakeMedia::AnimatedImage => "animated_image",
            TakeMedia::Card => "card",
        }
    }
}

/// The kind of video container `bytes` start as ("MP4/MOV": an ISO base media file
/// with `ftyp` at offset 4; "WEBM/MKV": the EBML header `1A 45 DF A3`), or `None`.
/// Takes are told apart by their bytes: a clip needs ffmpeg where an image does not.
#[must_use]
pub fn video_container(bytes: &[u8]) -> Option<&'static str> {
    if bytes.get(4..8) == Some(b"ftyp".as_slice()) {
        Some("MP4/MOV")
    } else if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some("WEBM/MKV")
    } else {
        None
    }
}

impl fmt::Display for TakeMedia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TakeMedia {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "image" => TakeMedia::Image,
            "video" => TakeMedia::Video,
            "animated_image" => TakeMedia::AnimatedImage,
            "card" => TakeMedia::Card,
            other => return Err(format!("'{other}' is not a take media kind")),
        })
    }
}

/// One rendered result of a shot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Take {
    /// Internal id.
    pub take_id: TakeId,
    /// The shot it belongs to.
    pub shot_id: ShotId,
    /// The job that made it.
    pub job_id: JobId,
    /// BLAKE3 hash of the bytes (hex): the blob's name everywhere.
    pub blob: String,
    /// What it is.
    pub media: TakeMedia,
    /// File extension of the bytes (`png`, `mp4`, ...).
    pub extension: String,
    /// Size in bytes.
    pub size: u64,
    /// Pixels (0: unknown).
    #[serde(default)]
    pub width: u64,
    /// Pixels (0: unknown).
    #[serde(default)]
    pub height: u64,
    /// Frames (1 for a still, 0: unknown), read from the file itself.
    #[serde(default)]
    pub frames: u64,
    /// Frames per second of a clip or animation, read from the file (0: a still, or
    /// unknown).
    #[serde(default)]
    pub fps: f64,
    /// Play time of a clip or animation in ms, read from the file (0: a still, or
    /// unknown).
    #[serde(default)]
    pub duration_ms: u64,
    /// Workflow id.
    pub workflow: String,
    /// Seed used.
    #[serde(default)]
    pub seed: u64,
    /// Prompt used.
    #[serde(default)]
    pub prompt: String,
    /// Node that rendered it.
    #[serde(default)]
    pub node_id: String,
    /// Host name of that node.
    #[serde(default)]
    pub host: String,
    /// Run start (ms since the epoch, rendering node's clock).
    #[serde(default)]
    pub started_at_ms: u64,
    /// Run end.
    #[serde(default)]
    pub finished_at_ms: u64,
    /// Time inside the renderer (ComfyUI execution or card drawing), ms.
    #[serde(default)]
    pub render_ms: u64,
    /// ComfyUI served it from its cache (an identical earlier prompt).
    #[serde(default)]
    pub cached: bool,
}

/// The shot status once its jobs changed: a job that a node holds (claimed or
/// running) makes it `generating`; a queued job does not (nothing runs yet, and it
/// may wait for a node for hours). When none is held a shot that was generating
/// becomes `completed` if it has a take, else `pending` again. Review statuses
/// (needs revision, approved) are only replaced while a new render runs.
#[must_use]
pub fn shot_status_after(current: ShotStatus, any_held_job: bool, has_take: bool) -> ShotStatus {
    if any_held_job {
        return ShotStatus::Generating;
    }
    match current {
        ShotStatus::Generating | ShotStatus::Pending if has_take => ShotStatus::Completed,
        ShotStatus::Generating => ShotStatus::Pending,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_transitions_are_one_way() {
        for state in [
            JobState::Queued,
            JobState::Claimed,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Canceled,
        ] {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        assert!(JobState::Queued.can_become(JobState::Running));
        assert!(JobState::Running.can_become(JobState::Succeeded));
        assert!(JobState::Failed.can_become(JobState::Queued));
        assert!(!JobState::Succeeded.can_become(JobState::Running));
        assert!(!JobState::Canceled.can_become(JobState::Queued));
        assert!(!JobState::Queued.can_become(JobState::Succeeded));
        assert!("done".parse::<JobState>().is_err());
    }

    #[test]
    fn shot_status_follows_jobs() {
        use ShotStatus::*;
        assert_eq!(shot_status_after(Pending, true, false), Generating);
        assert_eq!(shot_status_after(Approved, true, true), Generating);
        assert_eq!(shot_status_after(Generating, false, true), Completed);
        assert_eq!(shot_status_after(Generating, false, false), Pending);
        assert_eq!(shot_status_after(Pending, false, true), Completed);
        assert_eq!(shot_status_after(Approved, false, true), Approved);
        assert_eq!(shot_status_after(NeedsRevision, false, true), NeedsRevision);
    }
}

/// One step of a job on its claimant, for progress bars and the editor. Ephemeral:
/// emitted locally and carried on gossip to every node, never written to the
/// document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JobUpdate {
    /// The node running it.
    #[serde(default)]
    pub node_id: String,
    /// The project.
    pub project_id: String,
    /// The job.
    pub job_id: String,
    /// Its shot's code (`SHT-00003`).
    pub shot_code: String,
    /// Its workflow.
    pub workflow: String,
    /// Where it is now.
    pub state: JobState,
    /// 0.0 ..= 1.0 within the run.
    pub fraction: f32,
    /// What is happening, in words ("KSampler 12/20", "cached", "uploading inputs").
    pub step: String,
    /// Which attempt this run is.
    #[serde(default)]
    pub attempt: u64,
    /// The error, when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The take it made, when it succeeded.
    #[serde(default)]
    pub take_id: Option<String>,
    /// Time spent around the renderer, when it succeeded.
    #[serde(default)]
    pub overhead: Option<Overhead>,
    /// ComfyUI's latest preview image, when there is one (small: it rides on gossip).
    #[serde(default)]
    pub preview: Option<Preview>,
    /// Why a queued job waits, in full ("no node can run workflow flux_basic: vm
    /// (a1b2c3): comfyui at http://127.0.0.1:8188: unreachable ..., since 14:02:10
    /// UTC"): told to those who follow the job, never gossiped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// A preview image in a progress message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Preview {
    /// `image/jpeg` or `image/png`.
    pub mime: String,
    /// The image bytes, base64 (standard alphabet).
    pub base64: String,
}

/// Time a job spends outside the renderer, measured on the runner.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Overhead {
    /// From the start of the submission (POST /prompt) to the first event about it
    /// (for the card renderer: start of drawing).
    pub submit_to_first_event_ms: f64,
    /// From the last output being in hand to the take being recorded (blob stored,
    /// document saved).
    pub output_to_take_ms: f64,
}
