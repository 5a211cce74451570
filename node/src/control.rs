//! The local control socket: how CLI commands reach a running node.
//!
//! `<data dir>/run/control.sock`, a Unix socket inside a 0700 folder and itself
//! 0600, so only the owner of the data dir can drive the node. One JSON request per
//! connection, one JSON reply, newline-terminated. A CLI command first tries the
//! socket; if nothing answers it opens the data dir itself (taking its lock).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

use crate::import;
use crate::node::NodeHandle;

/// A request from the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The node's status report.
    Status,
    /// A project as it is now.
    Project {
        /// Id or name; `None` = current.
        project: Option<String>,
    },
    /// Import a file (an absolute path on this machine) into a project. A file with
    /// problems (or a dry run) is answered with its report, `written: false`.
    Import {
        /// Id or name; `None` = current.
        project: Option<String>,
        /// The file.
        path: PathBuf,
        /// How.
        #[serde(default)]
        options: import::ImportOptions,
    },
    /// Wait until the project holds these heads.
    WaitHeads {
        /// Id or name; `None` = current.
        project: Option<String>,
        /// Heads (hex).
        heads: Vec<String>,
        /// How long to wait.
        timeout_ms: u64,
    },
    /// Queue a render (see `reelmesh render`).
    Render {
        /// Id or name; `None` = current.
        project: Option<String>,
        /// What to render.
        request: crate::jobs::queue::RenderRequest,
        /// Queue even if this node cannot run the workflow.
        queue_only: bool,
    },
    /// Stream job updates (one JSON line each, `{"update": ..}`) until every job
    /// has ended; the last line is the reply with the ended jobs.
    WatchJobs {
        /// Id or name; `None` = current.
        project: Option<String>,
        /// The jobs.
        job_ids: Vec<String>,
    },
    /// Every job and take of a project.
    Jobs {
        /// Id or name; `None` = current.
        project: Option<String>,
    },
    /// Ask for jobs to be canceled.
    Cancel {
        /// Id or name; `None` = current.
        project: Option<String>,
        /// The jobs (ids or unique id prefixes).
        job_ids: Vec<String>,
    },
    /// Make sure blobs are here, fetching them from peers by hash.
    Fetch {
        /// Hashes (hex).
        hashes: Vec<String>,
    },
    /// Stop the node (it saves first).
    Shutdown,
}

/// How long `WatchJobs` waits with no news before giving up.
pub const WATCH_SILENCE: Duration = Duration::from_secs(3600);

/// The reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Success, with a value depending on the request.
    Ok(serde_json::Value),
    /// Failure, with the reason.
    Error(String),
}

/// The socket path of a data dir.
#[must_use]
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("run").join("control.sock")
}

/// Remove the socket file (at shutdown).
pub fn remove_socket(data_dir: &Path) {
    let _ = std::fs::remove_file(socket_path(data_dir));
}

/// Start serving the socket for this node. The caller holds the data dir lock, so a
/// socket file left by a crashed node is stale and replaced.
pub(crate) fn serve(data_dir: &Path, handle: NodeHandle) -> Result<(), (PathBuf, std::io::Error)> {
    let path = socket_path(data_dir);
    let run_dir = data_dir.join("run");
    let fail = |e| (path.clone(), e);
    std::fs::create_dir_all(&run_dir).map_err(fail)?;
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).map_err(fail)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    let cancel = handle.cancel_token();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let handle = handle.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve_one(stream, handle).await {
                                debug!("control connection: {e}");
                            }
                        });
                    }
                    Err(e) => warn!("control socket accept failed: {e}"),
                },
            }
        }
    });
    Ok(())
}

async fn serve_one(stream: tokio::net::UnixStream, handle: NodeHandle) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read).take(16 * 1024 * 1024);
    reader.read_line(&mut line).await?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(Request::WatchJobs { project, job_ids }) => {
            // Bounded: a client that reads slowly loses progress lines, never the
            // final reply (which carries every job's end).
            let (lines, mut lines_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1024);
            let writer = async {
                while let Some(bytes) = lines_rx.recv().await {
                    write.write_all(&bytes).await?;
                }
                Ok::<_, std::io::Error>(())
            };
            let watcher = async {
                let result = crate::jobs::follow::watch_jobs(
                    &handle,
                    project,
                    &job_ids,
                    WATCH_SILENCE,
                    |update| {
                        let mut bytes =
                            serde_json::to_vec(&serde_json::json!({ "update": update }))
                                .unwrap_or_default();
                        bytes.push(b'\n');
                        let _ = lines.try_send(bytes);
                    },
                )
                .await;
                drop(lines);
                match result {
                    Ok(jobs) => ok(&jobs),
                    Err(e) => Reply::Error(e.to_string()),
                }
            };
            let (written, reply) = tokio::join!(writer, watcher);
            written?;
            reply
        }
        Ok(request) => answer(request, &handle).await,
        Err(e) => Reply::Error(format!("malformed control request: {e}")),
    };
    let mut bytes = serde_json::to_vec(&reply).unwrap_or_default();
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.shutdown().await
}

fn ok<T: Serialize>(value: &T) -> Reply {
    match serde_json::to_value(value) {
        Ok(v) => Reply::Ok(v),
        Err(e) => Reply::Error(format!("cannot encode the reply: {e}")),
    }
}

async fn answer(request: Request, handle: &NodeHandle) -> Reply {
    match request {
        Request::Status => match handle.status().await {
            Ok(report) => ok(&report),
            Err(e) => Reply::Error(e.to_string()),
        },
        Request::Project { project } => match handle.project(project).await {
            Ok((project_id, project, heads)) => ok(&serde_json::json!({
                "project_id": project_id,
                "project": project,
                "heads": heads,
            })),
            Err(e) => Reply::Error(e.to_string()),
        },
        Request::Import {
            project,
            path,
            options,
        } => {
            let result = handle
                .edit(project, move |doc| {
                    match import::import_file_with(doc, &path, &options) {
                        Ok(report) => Ok(report),
                        Err(import::ImportError::Invalid { report }) => Ok(*report),
                        Err(e) => Err(format!("{e:#}")),
                    }
                })
                .await;
            match result {
                Ok((project_id, report)) => ok(&serde_json::json!({
                    "project_id": project_id,
                    "report": report,
                })),
                Err(e) => Reply::Error(e.to_string()),
            }
        }
        Request::WaitHeads {
            project,
            heads,
            timeout_ms,
        } => match handle
            .wait_for_heads(project, heads, Duration::from_millis(timeout_ms))
            .await
        {
            Ok(()) => Reply::Ok(serde_json::Value::Null),
            Err(e) => Reply::Error(e.to_string()),
        },
        Request::Render {
            project,
            request,
            queue_only,
        } => match crate::jobs::queue_on(handle, project, request, queue_only).await {
            Ok(queued) => ok(&queued),
            Err(e) => Reply::Error(e.to_string()),
        },
        Request::WatchJobs { .. } => {
            Reply::Error("watch_jobs streams; it has no single reply".into())
        }
        Request::Jobs { project } => match handle
            .read(project.clone(), |doc| {
                Ok::<_, String>((
                    doc.jobs().map_err(|e| e.to_string())?,
                    doc.takes().map_err(|e| e.to_string())?,
                    doc.all_shots().map_err(|e| e.to_string())?,
                ))
            })
            .await
        {
            Ok((project_id, Ok((jobs, takes, shots)))) => {
                // What gossip says: the latest progress of each job, and why queued
                // jobs wait.
                let (offers, progress) = handle.jobs_view().await.unwrap_or_default();
                let progress: std::collections::BTreeMap<String, crate::jobs::JobUpdate> = progress
                    .into_iter()
                    .filter(|u| u.project_id == project_id)
                    .map(|u| (u.job_id.clone(), u))
                    .collect();
                let waiting: std::collections::BTreeMap<String, String> = jobs
                    .iter()
                    .filter(|j| j.state == reelmesh_protocol::jobs::JobState::Queued)
                    .map(|j| {
                        (
                            j.job_id.clone(),
                            reelmesh_protocol::placement::why_waiting(j, &offers),
                        )
                    })
                    .collect();
                ok(&serde_json::json!({
                    "project_id": project_id,
                    "jobs": jobs,
                    "takes": takes,
                    "shots": shots.into_iter().map(|(s, _)| (s.shot_id, s.code)).collect::<std::collections::BTreeMap<_, _>>(),
                    "progress": progress,
                    "waiting": waiting,
                }))
            }
            Ok((_, Err(e))) => Reply::Error(e),
            Err(e) => Reply::Error(e.to_string()),
        },
        Request::Cancel { project, job_ids } => match handle
            .edit(project, move |doc| crate::jobs::cancel_jobs(doc, &job_ids))
            .await
        {
            Ok((_, canceled)) => ok(&canceled),
            Err(e) => Reply::Error(e.to_string()),
        },
        Request::Fetch { hashes } => {
            let mut fetched = Vec::new();
            for text in hashes {
                let hash = match text.parse::<crate::store::blobs::BlobHash>() {
                    Ok(hash) => hash,
                    Err(e) => return Reply::Error(e),
                };
                match handle.fetch_blob(hash).await {
                    Ok(done) => fetched.push(serde_json::json!({
                        "hash": text,
                        "bytes": done.blob.size,
                        "pieces_fetched": done.pieces_fetched,
                        "holders": done.holders,
                    })),
                    Err(e) => return Reply::Error(e.to_string()),
                }
            }
            ok(&fetched)
        }
        Request::Shutdown => {
            handle.shutdown();
            Reply::Ok(serde_json::Value::Null)
        }
    }
}

/// Connect to the socket at `path` and send `request`; `None` when no node listens.
fn send(path: &Path, request: &Request) -> anyhow::Result<Option<std::os::unix::net::UnixStream>> {
    use anyhow::Context;
    let mut stream = match std::os::unix::net::UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", path.display())),
    };
    let mut bytes = serde_json::to_vec(request)?;
    bytes.push(b'\n');
    stream
        .write_all(&bytes)
        .with_context(|| format!("writing to {}", path.display()))?;
    Ok(Some(stream))
}

/// Send a streaming request: `on_line` gets every intermediate line, the result is
/// the final reply. `Ok(None)` when no node is running there.
pub fn request_stream(
    data_dir: &Path,
    request: &Request,
    mut on_line: impl FnMut(serde_json::Value),
) -> anyhow::Result<Option<serde_json::Value>> {
    use anyhow::Context;
    let path = socket_path(data_dir);
    let Some(stream) = send(&path, request)? else {
        return Ok(None);
    };
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        // A connection reset is the node going away too.
        let Ok(line) = line else {
            return Err(anyhow::Error::new(ClosedEarly));
        };
        if let Ok(reply) = serde_json::from_str::<Reply>(&line) {
            return match reply {
                Reply::Ok(value) => Ok(Some(value)),
                Reply::Error(e) => Err(anyhow::anyhow!("{e}")),
            };
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("the node sent a malformed line: {line:?}"))?;
        on_line(value);
    }
    Err(anyhow::Error::new(ClosedEarly))
}

/// The node closed a streamed request's connection before its reply: it stopped.
#[derive(Debug, thiserror::Error)]
#[error("the node closed the connection before replying (it stopped)")]
pub struct ClosedEarly;

/// Send one request and read its reply straight into `T` (no intermediate JSON
/// value: a 10,000-shot project is megabytes). `Ok(None)` when no node runs there.
pub fn request_as<T: serde::de::DeserializeOwned>(
    data_dir: &Path,
    request: &Request,
) -> anyhow::Result<Option<T>> {
    use anyhow::Context;
    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Typed<T> {
        Ok(T),
        Error(String),
    }
    let path = socket_path(data_dir);
    let Some(stream) = send(&path, request)? else {
        return Ok(None);
    };
    let mut line = Vec::new();
    BufReader::new(stream)
        .read_until(b'\n', &mut line)
        .with_context(|| format!("reading from {}", path.display()))?;
    match serde_json::from_slice::<Typed<T>>(&line)
        .with_context(|| format!("the node sent a malformed reply ({} bytes)", line.len()))?
    {
        Typed::Ok(value) => Ok(Some(value)),
        Typed::Error(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// Send one request to the node owning `data_dir`. `Ok(None)` when no node is
/// running there (no socket, or a stale one nobody listens on).
pub fn request(data_dir: &Path, request: &Request) -> anyhow::Result<Option<serde_json::Value>> {
    request_stream(data_dir, request, |_| {})
}
