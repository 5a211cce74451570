//! A render asked for and what was queued: one job per shot of a selection, for a
//! workflow, with inputs by role.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What to render.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RenderRequest {
    /// Which shots: `SHT-00001..SHT-00010`, `1..10`, `1,3,7`, `SHT-00004`, or `all`.
    pub shots: String,
    /// Workflow id.
    pub workflow: String,
    /// A fixed seed for every job (default: a fresh random seed per job).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i64,
    /// Input files by role (`first_frame`, `last_frame`, `reference_image`,
    /// `input_video`): a blob hash, or `take` for each shot's latest take of the
    /// right kind (a still for images, a clip for videos).
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// How long the jobs may wait to run before they end failed, in seconds
    /// (default: [`crate::jobs::DEFAULT_DEADLINE_MS`], three days).
    #[serde(default)]
    pub deadline_secs: Option<u64>,
    /// The video batch: each shot renders its own workflow (its accepted advice,
    /// `workflow` is not used) with the inputs the timeline gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoBatch>,
}

/// How a video batch runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoBatch {
    /// A shot without a still renders one first with this text-to-image workflow,
    /// then its clip (else it is refused).
    #[serde(default)]
    pub stills_first: Option<String>,
    /// Workflows chained after each clip, in order, each taking the previous
    /// output as its input video (frame interpolation).
    #[serde(default)]
    pub then: Vec<String>,
}

/// One queued job, for the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// The job.
    pub job_id: String,
    /// Its shot's code.
    pub shot_code: String,
}

/// The jobs a render queued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderQueued {
    /// The project.
    pub project_id: String,
    /// One job per shot, in timeline order.
    pub queued: Vec<Queued>,
    /// This node can run the workflow (else the jobs wait for another node).
    pub runnable_here: bool,
    /// Shots left out, with why (a video batch refuses a shot it cannot start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<(String, String)>,
}
