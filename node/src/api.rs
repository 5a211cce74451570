//! The one way into a node: every [`Request`] of `reelmesh_protocol::api` is
//! answered here, by [`call`], whoever asks. The control socket is a transport over
//! it (one JSON request line, one JSON reply line); the CLI talks to it through a
//! [`Client`], which is that socket when a node runs on the data dir and otherwise
//! a node started in this process without network: the same code path, never a
//! second implementation. The editor calls it in process.
//!
//! Adding an operation is a variant of `Request` (and of `Reply` when it answers
//! something new) and its arm in [`call`].
//!
//! Edits carry the client's name (`cli`, `editor`): each client of each project has
//! its own undo and redo stacks ([`undo`]), kept on disk so `reelmesh undo` undoes
//! what the last `reelmesh shot set` did whether or not a node ran in between.

pub mod client;
pub mod undo;

pub use client::Client;
pub use reelmesh_protocol::api::{
    ApiError, FetchedBlob, JobsRead, ProjectRead, Reply, Request, edit,
};

use std::collections::BTreeMap;
use std::time::Duration;

use reelmesh_protocol::api::render::RenderRequest;
use reelmesh_protocol::jobs::{JobState, JobUpdate};
use reelmesh_protocol::placement;

use crate::jobs::follow;
use crate::node::{NodeError, NodeHandle, ProjectError};

/// How long a followed render may go without any news before `watch_jobs` gives up.
pub const WATCH_SILENCE: Duration = Duration::from_secs(3600);

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> ApiError {
        match error {
            NodeError::Stopped => ApiError::Stopped,
            NodeError::Timeout(after) => ApiError::Timeout {
                message: format!("timed out after {} s", after.as_secs_f64()),
            },
            NodeError::Project(ProjectError::Missing(message)) => ApiError::NoProject { message },
            NodeError::Project(e @ ProjectError::NotArrived(_)) => ApiError::NoProject {
                message: e.to_string(),
            },
            NodeError::Project(ProjectError::Refused(message)) | NodeError::Request(message) => {
                ApiError::Invalid { message }
            }
            other => ApiError::Internal {
                message: other.to_string(),
            },
        }
    }
}

/// Answer one request. [`Request::WatchJobs`] streams: use [`watch`].
///
/// # Errors
/// [`ApiError`], by family: a bad input, something not found, no such project,
/// a file, peers, a timeout, a stopped node.
pub async fn call(handle: &NodeHandle, request: Request) -> Result<Reply, ApiError> {
    match request {
        Request::Status => Ok(Reply::Status(handle.status().await?)),
        Request::Projects => Ok(Reply::Projects {
            projects: handle.status().await?.projects,
        }),
        Request::Project { project } => {
            let (project_id, project, heads) = handle.project(project).await?;
            Ok(Reply::Project(ProjectRead {
                project_id,
                project,
                heads,
            }))
        }
        Request::Import {
            project,
            path,
            options,
        } => import(handle, project, path, options).await,
        Request::WaitHeads {
            project,
            heads,
            timeout_ms,
        } => {
            handle
                .wait_for_heads(project, heads, Duration::from_millis(timeout_ms))
                .await?;
            Ok(Reply::Done)
        }
        Request::Edit {
            project,
            client,
            edit,
        } => undo::edit(handle, project, &client, edit).await,
        Request::Undo { project, client } => undo::undo(handle, project, &client, false).await,
        Request::Redo { project, client } => undo::undo(handle, project, &client, true).await,
        Request::Render {
            project,
            request,
            queue_only,
        } => Ok(Reply::Queued(
            crate::jobs::queue_on(handle, project, request, queue_only).await?,
        )),
        Request::Regenerate { project, shot } => regenerate(handle, project, &shot).await,
        Request::WatchJobs { project, job_ids } => watch(handle, project, &job_ids, |_| {}).await,
        Request::Jobs { project } => jobs(handle, project).await,
        Request::Cancel { project, job_ids } => {
            let (_, job_ids) = handle
                .edit(project, move |doc| crate::jobs::cancel_jobs(doc, &job_ids))
                .await?;
            Ok(Reply::Canceled { job_ids })
        }
        Request::Fetch { hashes } => fetch(handle, hashes).await,
        Request::Export { project, path } => export(handle, project, path).await,
        Request::Publish {
            project,
            path,
            all,
            options,
        } => publish(handle, project, path, all, options).await,
        Request::Advise {
            project,
            shots,
            llm,
        } => advise(handle, project, &shots, &llm).await,
        Request::LlmSettings { set } => llm_settings(handle, set),
        Request::Invite { project } => invite(handle, project).await,
        Request::AddBlob { path } => add_blob(handle, path).await,
        Request::Feed => Err(ApiError::Invalid {
            message: "the feed is a stream: follow it over the control socket, or with \
                      NodeHandle::feed in process"
                .to_owned(),
        }),
        Request::Shutdown => {
            handle.shutdown();
            Ok(Reply::Done)
        }
        // A request a newer client sent that this node does not know.
        #[allow(unreachable_patterns)]
        _ => Err(ApiError::Invalid {
            message: "this node does not know that request (an older reelmesh?)".into(),
        }),
    }
}

/// Follow jobs to their end, `on_update` getting every step (and why queued ones
/// wait); the reply holds the jobs as they ended.
///
/// # Errors
/// As [`call`].
pub async fn watch(
    handle: &NodeHandle,
    project: Option<String>,
    job_ids: &[String],
    on_update: impl FnMut(&JobUpdate),
) -> Result<Reply, ApiError> {
    let jobs = follow::watch_jobs(handle, project, job_ids, WATCH_SILENCE, on_update).await?;
    Ok(Reply::Ended { jobs })
}

/// Run file work (reading, writing, encoding) on a blocking thread: a panic there
/// is an internal error naming `what`, the work's own error a file error.
async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    what: &str,
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal {
            message: format!("{what}: {e}"),
        })?
        .map_err(|e| ApiError::File {
            message: format!("{e:#}"),
        })
}

async fn import(
    handle: &NodeHandle,
    project: Option<String>,
    path: std::path::PathBuf,
    options: crate::import::ImportOptions,
) -> Result<Reply, ApiError> {
    // The file is read and parsed on a blocking thread; only the rows meeting the
    // project run on the node's task.
    let parsed = blocking("reading the file", move || crate::import::parse_file(&path)).await?;
    let (project_id, report) = handle
        .edit(project, move |doc| {
            Ok(
                match crate::import::import_parsed_with(doc, parsed, &options) {
                    Ok(report) => Ok(report),
                    Err(crate::import::ImportError::Invalid { report }) => Ok(*report),
                    Err(e) => Err(e),
                },
            )
        })
        .await?;
    match report {
        Ok(report) => Ok(Reply::Imported { project_id, report }),
        Err(crate::import::ImportError::Usage(message)) => Err(ApiError::Invalid { message }),
        Err(e) => Err(ApiError::File {
            message: format!("{e:#}"),
        }),
    }
}

async fn jobs(handle: &NodeHandle, project: Option<String>) -> Result<Reply, ApiError> {
    let (project_id, read) = handle
        .read(project, |doc| {
            Ok::<_, String>((
                doc.jobs().map_err(|e| e.to_string())?,
                doc.takes().map_err(|e| e.to_string())?,
                doc.shot_codes().map_err(|e| e.to_string())?,
            ))
        })
        .await?;
    let (jobs, takes, shots) = read.map_err(|message| ApiError::Internal { message })?;
    // What gossip says: the latest progress of each job, and why queued jobs wait.
    let (offers, progress) = handle.jobs_view().await.unwrap_or_default();
    let progress: BTreeMap<String, JobUpdate> = progress
        .into_iter()
        .filter(|u| u.project_id == project_id)
        .map(|u| (u.job_id.clone(), u))
        .collect();
    let waiting: BTreeMap<String, String> = jobs
        .iter()
        .filter(|j| j.state == JobState::Queued)
        .map(|j| (j.job_id.clone(), placement::why_waiting(j, &offers)))
        .collect();
    Ok(Reply::Jobs(JobsRead {
        project_id,
        jobs,
        takes,
        shots,
        progress,
        waiting,
        offers,
    }))
}

/// A new take of a shot: the shot's latest job again (its workflow, priority and
/// inputs) with a fresh seed.
async fn regenerate(
    handle: &NodeHandle,
    project: Option<String>,
    shot: &str,
) -> Result<Reply, ApiError> {
    let wanted = shot.to_owned();
    let (project_id, found) = handle
        .read(project.clone(), move |doc| {
            let project = doc.project().map_err(|e| ApiError::Internal {
                message: e.to_string(),
            })?;
            let shot = edit::find_shot(&project, &wanted)?.clone();
            let jobs = doc.jobs().map_err(|e| ApiError::Internal {
                message: e.to_string(),
            })?;
            let last = jobs
                .into_iter()
                .filter(|j| j.shot_id == shot.shot_id)
                .max_by_key(|j| j.created_at_ms);
            Ok::<_, ApiError>((shot, last))
        })
        .await?;
    let (shot, last) = found?;
    let Some(last) = last else {
        return Err(ApiError::Invalid {
            message: format!(
                "{} has not been rendered yet: render it first (`reelmesh render --shots {} --workflow ID`)",
                shot.code, shot.code
            ),
        });
    };
    let request = RenderRequest {
        shots: shot.code.to_string(),
        workflow: last.workflow.clone(),
        seed: None,
        priority: last.priority,
        inputs: last.inputs.clone(),
        deadline_secs: None,
        video: None,
    };
    let queued = crate::jobs::queue_on(handle, Some(project_id), request, true).await?;
    Ok(Reply::Queued(queued))
}

async fn export(
    handle: &NodeHandle,
    project: Option<String>,
    path: std::path::PathBuf,
) -> Result<Reply, ApiError> {
    let (project_id, project, heads) = handle.project(project).await?;
    let mark = crate::import::ExportMark { project_id, heads };
    let target = path.clone();
    let shots = project.shots.len();
    blocking("exporting", move || {
        crate::export::export_file(&project, &target, Some(&mark))
    })
    .await?;
    Ok(Reply::Exported { path, shots })
}

/// Publish the cut from the node's own document: the takes it shows fetched from
/// peers first, the files written on a blocking thread.
async fn publish(
    handle: &NodeHandle,
    project: Option<String>,
    path: std::path::PathBuf,
    all: bool,
    options: reelmesh_protocol::publish::PublishOptions,
) -> Result<Reply, ApiError> {
    let (_, read) = handle
        .read_mut(project, move |doc| {
            let project = doc.project_now().map_err(|e| e.to_string())?;
            let takes = doc.takes().map_err(|e| e.to_string())?;
            let source = if all {
                Some(crate::archive::source(doc).map_err(|e| format!("{e:#}"))?)
            } else {
                None
            };
            Ok::<_, String>((project, takes, source))
        })
        .await?;
    let (project, takes, source) = read.map_err(|message| ApiError::Internal { message })?;
    let blobs =
        crate::store::blobs::BlobStore::open(handle.data_dir()).map_err(|e| ApiError::File {
            message: format!("{e:#}"),
        })?;
    let missing = crate::publish::missing_takes(&project, &takes, &blobs);
    if !missing.is_empty() {
        fetch(handle, missing).await?;
    }
    let written = blocking("publishing", move || {
        let mut out = Vec::new();
        let result = if let Some(source) = source {
            crate::publish::write_all(
                &mut out,
                &path,
                &project,
                &takes,
                &blobs,
                options,
                &mut |file| crate::archive::write(&source, &blobs, file),
                &mut |_, _, _| {},
            )
        } else {
            crate::publish::write_one(
                &mut out,
                &path,
                &project,
                &takes,
                &blobs,
                options,
                &mut |_, _| {},
            )
        };
        result.map(|()| {
            String::from_utf8_lossy(&out)
                .lines()
                .map(str::to_owned)
                .collect()
        })
    })
    .await?;
    Ok(Reply::Published { lines: written })
}

/// Advise with the LLM this node is set up with (or `llm`'s URL and model over
/// it), or the rules when none is.
async fn advise(
    handle: &NodeHandle,
    project: Option<String>,
    shots: &str,
    llm: &crate::advise::LlmChoice,
) -> Result<Reply, ApiError> {
    // The request's choice over the node's flags over the environment and the
    // data dir's llm.toml.
    let node = handle.llm();
    let choice = crate::advise::LlmChoice {
        url: llm.url.clone().or_else(|| node.map(|c| c.base_url.clone())),
        model: llm.model.clone().or_else(|| node.map(|c| c.model.clone())),
    };
    let config = match node {
        Some(node) if llm.url.is_none() && llm.model.is_none() => Some(node.clone()),
        _ => crate::advise::LlmConfig::resolve(handle.data_dir(), &choice)
            .map_err(|message| ApiError::Invalid { message })?,
    };
    let (project_id, advice, stats) =
        crate::advise::advise(handle, project, shots, config.as_ref(), &mut |_, _| {}).await?;
    Ok(Reply::Advised {
        project_id,
        advice,
        stats,
    })
}

/// Read (and with `set`, first write) the node's `llm.toml`.
fn llm_settings(
    handle: &NodeHandle,
    set: Option<crate::advise::LlmFile>,
) -> Result<Reply, ApiError> {
    use crate::advise::LlmFileExt as _;
    let dir = handle.data_dir();
    if let Some(settings) = set {
        settings
            .write(dir)
            .map_err(|message| ApiError::File { message })?;
    }
    let saved = crate::advise::LlmFile::read(dir).map_err(|message| ApiError::File { message })?;
    let in_use = match handle.llm() {
        Some(node) => Some(node.clone()),
        None => crate::advise::LlmConfig::resolve(dir, &crate::advise::LlmChoice::default())
            .map_err(|message| ApiError::Invalid { message })?,
    }
    .map(|c| (c.base_url, c.model));
    Ok(Reply::LlmSettings {
        saved,
        in_use,
        key_set: std::env::var_os("OPENAI_API_KEY").is_some_and(|k| !k.is_empty()),
    })
}

async fn invite(handle: &NodeHandle, project: Option<String>) -> Result<Reply, ApiError> {
    use crate::mesh::keys;
    let mesh_key = keys::mesh_key_bytes(handle.data_dir()).map_err(|e| ApiError::Invalid {
        message: format!(
            "this machine has no mesh to invite to ({e}); make one with `reelmesh mesh init`"
        ),
    })?;
    let status = handle.status().await?;
    let peer_id = handle.peer_id();
    let addrs: Vec<libp2p::Multiaddr> = keys::invite_addrs(&status.listen_addrs)
        .into_iter()
        .map(|a| {
            if a.iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
            {
                a
            } else {
                a.with(libp2p::multiaddr::Protocol::P2p(peer_id))
            }
        })
        .collect();
    if addrs.is_empty() {
        return Err(ApiError::Invalid {
            message: "this node listens on no address (it runs offline): start it on the mesh                       to invite another machine"
                .to_owned(),
        });
    }
    let project_id = handle.project(project).await.ok().map(|(id, ..)| id);
    let ticket = keys::Ticket {
        mesh_key,
        addrs,
        project_id,
    };
    Ok(Reply::Invite {
        ticket: ticket.encode(),
    })
}

async fn add_blob(handle: &NodeHandle, path: std::path::PathBuf) -> Result<Reply, ApiError> {
    let store = handle.blob_store().clone();
    let shown = path.display().to_string();
    let stored = tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&path).map_err(|e| ApiError::File {
            message: format!("{}: {e}", path.display()),
        })?;
        store.put(&bytes).map_err(|e| ApiError::Internal {
            message: format!("{shown}: {e}"),
        })
    })
    .await
    .map_err(|e| ApiError::Internal {
        message: format!("storing a blob: {e}"),
    })??;
    Ok(Reply::AddedBlob {
        hash: stored.hash.to_hex(),
        bytes: stored.size,
    })
}

async fn fetch(handle: &NodeHandle, hashes: Vec<String>) -> Result<Reply, ApiError> {
    let mut blobs = Vec::new();
    for text in hashes {
        let hash = text
            .parse::<crate::store::blobs::BlobHash>()
            .map_err(|message| ApiError::Invalid { message })?;
        let done = handle.fetch_blob(hash).await.map_err(|e| ApiError::Peers {
            message: e.to_string(),
        })?;
        blobs.push(FetchedBlob {
            hash: text,
            bytes: done.blob.size,
            pieces_fetched: done.pieces_fetched,
            holders: done.holders,
        });
    }
    Ok(Reply::Fetched { blobs })
}
