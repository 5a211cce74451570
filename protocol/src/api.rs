//! The one vocabulary every client of a node speaks: the CLI, the control socket
//! (which serializes these same types as JSON lines) and the editor. Plain data
//! with no I/O and no libp2p type (peer ids are strings), so the editor (`ui`)
//! depends on nothing but this crate.
//!
//! - [`status`]: what a node says about itself and its peers;
//! - [`render`]: a render asked for and the jobs it queued;
//! - [`import`]: an import's options and its report;
//! - [`edit`]: edits of a project as clients ask for them, with their undo.

pub mod edit;
pub mod import;
pub mod render;
pub mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::jobs::{Job, JobUpdate, Take};
use crate::model::{Project, ShotCode};

/// One operation or query, as any client sends it. Every request that names a
/// project takes an id or a name; `None` is the node's current project.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// The node, its projects and its peers.
    Status,
    /// The projects in the node's data dir, with their names and sizes.
    Projects,
    /// A project as it is now, with its version.
    Project {
        /// Id or name.
        project: Option<String>,
    },
    /// Import a file (a path on the node's machine).
    Import {
        /// Id or name.
        project: Option<String>,
        /// The file.
        path: PathBuf,
        /// How.
        #[serde(default)]
        options: import::ImportOptions,
    },
    /// Wait until the project holds these heads.
    WaitHeads {
        /// Id or name.
        project: Option<String>,
        /// Heads (hex).
        heads: Vec<String>,
        /// How long to wait.
        timeout_ms: u64,
    },
    /// Edit the project; the edit goes on `client`'s undo stack.
    Edit {
        /// Id or name.
        project: Option<String>,
        /// Whose undo stack (`cli`, `editor`).
        client: String,
        /// The edit.
        edit: edit::Edit,
    },
    /// Undo `client`'s latest edit of the project.
    Undo {
        /// Id or name.
        project: Option<String>,
        /// Whose undo stack.
        client: String,
    },
    /// Redo what `client` undid last.
    Redo {
        /// Id or name.
        project: Option<String>,
        /// Whose undo stack.
        client: String,
    },
    /// Queue a render.
    Render {
        /// Id or name.
        project: Option<String>,
        /// What to render.
        request: render::RenderRequest,
        /// Queue even if this node cannot run the workflow.
        queue_only: bool,
    },
    /// A new take of a shot: its latest job again, with a fresh seed (old takes
    /// stay as history).
    Regenerate {
        /// Id or name.
        project: Option<String>,
        /// The shot (code, number or id).
        shot: String,
    },
    /// Follow jobs until every one has ended (streamed updates, then the jobs).
    WatchJobs {
        /// Id or name.
        project: Option<String>,
        /// The jobs.
        job_ids: Vec<String>,
    },
    /// Every job and take of a project, with what the node knows beyond the
    /// document (progress, why queued jobs wait).
    Jobs {
        /// Id or name.
        project: Option<String>,
    },
    /// Ask for jobs to be canceled.
    Cancel {
        /// Id or name.
        project: Option<String>,
        /// Job ids or unique prefixes.
        job_ids: Vec<String>,
    },
    /// Make sure blobs are here, fetching them from peers by hash.
    Fetch {
        /// Hashes (hex).
        hashes: Vec<String>,
    },
    /// Write the project to a file (`.xlsx` or `.json`, by extension), marked
    /// with the version it is of, so that importing it back merges three ways.
    Export {
        /// Id or name.
        project: Option<String>,
        /// The file (a path on the node's machine).
        path: PathBuf,
    },
    /// Publish the cut: one file (the format is its extension: `.edl`, `.otio`,
    /// `.fcpxml`, `.xml`, `.mp4`, `.pdf`) with its media beside it, or with `all`
    /// every format, the approved takes and the archive into that folder.
    Publish {
        /// Id or name.
        project: Option<String>,
        /// The file, or the folder with `all` (a path on the node's machine).
        path: PathBuf,
        /// Every format into the folder `path`.
        #[serde(default)]
        all: bool,
        /// Layout and burn-in.
        #[serde(default)]
        options: crate::publish::PublishOptions,
    },
    /// Advise a video workflow for shots (the LLM this node is set up with, or the
    /// rules), writing each advice to the shot.
    Advise {
        /// Id or name.
        project: Option<String>,
        /// Which shots: `SHT-00001..SHT-00010`, `1..10`, `1,3,7`, or `all` (empty:
        /// all).
        #[serde(default)]
        shots: String,
        /// Which LLM, over the node's own settings.
        #[serde(default)]
        llm: crate::advice::LlmChoice,
    },
    /// The node's LLM settings (`llm.toml`), saving `set` first when given.
    LlmSettings {
        /// New settings to save.
        #[serde(default)]
        set: Option<crate::advice::LlmSettings>,
    },
    /// A ticket another machine joins this mesh with (`reelmesh join TICKET`): the
    /// mesh key, this node's addresses and the project. It holds the mesh secret.
    Invite {
        /// Id or name.
        project: Option<String>,
    },
    /// Put a file into the blob store (a reference image), by its BLAKE3 hash.
    AddBlob {
        /// The file (a path on the node's machine).
        path: PathBuf,
    },
    /// Follow the node's status feed: over the control socket, one
    /// `{"event": Event}` line per event until the client hangs up or the node
    /// stops (then `Done`). What an editor attached to a running node reads.
    Feed,
    /// Stop the node (it saves first).
    Shutdown,
}

/// The answer to a [`Request`], one variant per kind of result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reply {
    /// [`Request::Status`].
    Status(status::NodeStatusReport),
    /// [`Request::Projects`].
    Projects {
        /// One per project, by id.
        projects: Vec<status::ProjectSummary>,
    },
    /// [`Request::Project`].
    Project(ProjectRead),
    /// [`Request::Import`]: the report (`written` false when refused or a dry run).
    Imported {
        /// The project.
        project_id: String,
        /// What the import did or would do.
        report: import::ImportReport,
    },
    /// [`Request::Edit`].
    Edited {
        /// The project.
        project_id: String,
        /// What it did.
        summary: String,
        /// The record it made or changed.
        record_id: Option<String>,
    },
    /// [`Request::Undo`] and [`Request::Redo`].
    Undone {
        /// The project.
        project_id: String,
        /// What was undone (or redone); `None` when there was nothing to.
        summary: Option<String>,
        /// Edits left on that stack.
        left: usize,
    },
    /// [`Request::Render`] and [`Request::Regenerate`].
    Queued(render::RenderQueued),
    /// [`Request::WatchJobs`]: the jobs as they ended.
    Ended {
        /// The jobs.
        jobs: Vec<Job>,
    },
    /// [`Request::Jobs`].
    Jobs(JobsRead),
    /// [`Request::Cancel`]: the full ids asked to stop.
    Canceled {
        /// The jobs.
        job_ids: Vec<String>,
    },
    /// [`Request::Export`].
    Exported {
        /// The file written.
        path: PathBuf,
        /// Shots in it.
        shots: usize,
    },
    /// [`Request::Publish`]: what was written, one line per file.
    Published {
        /// `wrote cut.otio: 12 shots with a take, 2 without; media in ...`.
        lines: Vec<String>,
    },
    /// [`Request::Advise`]: each shot's advice, in the order they came.
    Advised {
        /// The project.
        project_id: String,
        /// (shot code, advice).
        advice: Vec<(String, crate::model::Advice)>,
        /// Requests, concurrency, time.
        stats: crate::advice::AdviseStats,
    },
    /// [`Request::LlmSettings`].
    LlmSettings {
        /// What `llm.toml` holds.
        saved: crate::advice::LlmSettings,
        /// The LLM advice would use now (URL, model), if any.
        in_use: Option<(String, String)>,
        /// `OPENAI_API_KEY` is set for the node.
        key_set: bool,
    },
    /// [`Request::Invite`].
    Invite {
        /// `reelmesh1...`: the mesh key, addresses and project.
        ticket: String,
    },
    /// [`Request::AddBlob`].
    AddedBlob {
        /// Its hash (hex).
        hash: String,
        /// Its size in bytes.
        bytes: u64,
    },
    /// [`Request::Fetch`].
    Fetched {
        /// One per hash.
        blobs: Vec<FetchedBlob>,
    },
    /// Done, nothing to say ([`Request::WaitHeads`], [`Request::Feed`] when the
    /// node stops, [`Request::Shutdown`]).
    Done,
}

/// A project read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectRead {
    /// Its id.
    pub project_id: String,
    /// The project.
    pub project: Project,
    /// Its version.
    pub heads: Vec<String>,
}

/// A project's jobs and takes, with what the node knows beyond the document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobsRead {
    /// The project.
    pub project_id: String,
    /// Every job.
    pub jobs: Vec<Job>,
    /// Every take.
    pub takes: Vec<Take>,
    /// Shot codes by shot id (trashed shots too).
    pub shots: BTreeMap<String, ShotCode>,
    /// The latest progress of each job gossip spoke of.
    #[serde(default)]
    pub progress: BTreeMap<String, JobUpdate>,
    /// Why each queued job waits.
    #[serde(default)]
    pub waiting: BTreeMap<String, String>,
    /// The offers of the nodes heard from lately (this one included): what the
    /// mesh can run now, and why not the rest.
    #[serde(default)]
    pub offers: Vec<crate::placement::Offer>,
}

/// A blob made sure of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedBlob {
    /// Its hash.
    pub hash: String,
    /// Its size.
    pub bytes: u64,
    /// Pieces that came from peers (0: it was here).
    pub pieces_fetched: u64,
    /// How many peers held it.
    pub holders: usize,
}

/// Why a request failed, by family, so a caller can tell a bad input from a lost
/// peer or a stopped node. Each names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ApiError {
    /// The request asked for something wrong (a field, a value, a selection):
    /// nothing was written.
    #[error("{message}")]
    Invalid {
        /// What, and why (names the record, field, row or file).
        message: String,
    },
    /// Something the request names is not there (a shot, a job, a blob).
    #[error("{message}")]
    NotFound {
        /// What.
        message: String,
    },
    /// No such project on this node, or a replica still waiting for its first sync.
    #[error("{message}")]
    NoProject {
        /// Which, and what the node holds.
        message: String,
    },
    /// A file could not be read (an import).
    #[error("{message}")]
    File {
        /// The file and why.
        message: String,
    },
    /// Peers could not give what was asked (a blob no peer has).
    #[error("{message}")]
    Peers {
        /// What and which peers.
        message: String,
    },
    /// It took longer than the request allowed.
    #[error("{message}")]
    Timeout {
        /// What was awaited.
        message: String,
    },
    /// The node stopped (or is stopping) and cannot answer.
    #[error("the node stopped")]
    Stopped,
    /// The node failed at its own work (a disk, a document).
    #[error("{message}")]
    Internal {
        /// What.
        message: String,
    },
}

impl From<edit::EditError> for ApiError {
    fn from(error: edit::EditError) -> ApiError {
        use edit::EditError as E;
        match error {
            E::NoShot(_) | E::NoCharacter(_) | E::NoLook(_) | E::NoTake { .. } => {
                ApiError::NotFound {
                    message: error.to_string(),
                }
            }
            E::Doc(_) => ApiError::Internal {
                message: error.to_string(),
            },
            _ => ApiError::Invalid {
                message: error.to_string(),
            },
        }
    }
}
