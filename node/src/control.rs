//! The local control socket: a transport for [`crate::api`], how the CLI of the same
//! machine reaches a running node.
//!
//! `<data dir>/run/control.sock`, a Unix socket inside a 0700 folder and itself
//! 0600, so only the owner of the data dir can drive the node. One JSON
//! [`Request`] line per connection; the answer is one line, `{"ok": Reply}` or
//! `{"error": ApiError}` (the same types every client uses). `watch_jobs` first
//! streams one `{"update": JobUpdate}` line per step; `feed` streams one
//! `{"event": Event}` line per node event until the client hangs up.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use reelmesh_protocol::api::status::Event;
use reelmesh_protocol::api::{ApiError, Reply, Request};
use reelmesh_protocol::jobs::JobUpdate;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

use crate::node::NodeHandle;

/// Longest request line taken (an import's path, a big edit).
const MAX_REQUEST: u64 = 16 * 1024 * 1024;

/// One line the node sends back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    /// A step of a followed job (`watch_jobs` only).
    Update(Box<JobUpdate>),
    /// A node event (`feed` only).
    Event(Box<Event>),
    /// The answer.
    Ok(Box<Reply>),
    /// The request failed.
    Error(ApiError),
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

fn encode(line: &Line) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(line).unwrap_or_else(|e| {
        serde_json::to_vec(&Line::Error(ApiError::Internal {
            message: format!("cannot encode the reply: {e}"),
        }))
        .unwrap_or_default()
    });
    bytes.push(b'\n');
    bytes
}

async fn serve_one(stream: tokio::net::UnixStream, handle: NodeHandle) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read).take(MAX_REQUEST);
    reader.read_line(&mut line).await?;
    let answer = match serde_json::from_str::<Request>(&line) {
        Ok(Request::WatchJobs { project, job_ids }) => {
            // Bounded: a client that reads slowly loses progress lines, never the
            // final answer (which carries every job's end).
            let (lines, mut lines_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1024);
            let writer = async {
                while let Some(bytes) = lines_rx.recv().await {
                    write.write_all(&bytes).await?;
                }
                Ok::<_, std::io::Error>(())
            };
            let watcher = async {
                let result = crate::api::watch(&handle, project, &job_ids, |update| {
                    let _ = lines.try_send(encode(&Line::Update(Box::new(update.clone()))));
                })
                .await;
                drop(lines);
                result
            };
            let (written, result) = tokio::join!(writer, watcher);
            written?;
            result
        }
        Ok(Request::Feed) => {
            let mut feed = handle.feed(4096);
            while let Some(event) = feed.recv().await {
                // A client that hung up ends the stream.
                write
                    .write_all(&encode(&Line::Event(Box::new(event))))
                    .await?;
            }
            Ok(Reply::Done)
        }
        Ok(request) => crate::api::call(&handle, request).await,
        Err(e) => Err(ApiError::Invalid {
            message: format!("malformed control request: {e}"),
        }),
    };
    let line = match answer {
        Ok(reply) => Line::Ok(Box::new(reply)),
        Err(error) => Line::Error(error),
    };
    write.write_all(&encode(&line)).await?;
    write.shutdown().await
}

/// The node closed a request's connection before its answer: it stopped.
#[derive(Debug, thiserror::Error)]
#[error("the node closed the connection before replying (it stopped)")]
pub struct ClosedEarly;

/// Connect to the node's socket and send `request`; `None` when no node listens.
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

/// Whether a node answers on this data dir's socket.
#[must_use]
pub fn node_running(data_dir: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket_path(data_dir)).is_ok()
}

/// Send one request to the node running on `data_dir`: `on_update` gets each
/// streamed step (`watch_jobs`), the result is the answer. `Ok(None)` when no node
/// runs there. A transport failure is the outer error ([`ClosedEarly`] when the node
/// went away mid-answer); the node's refusal is the inner one.
///
/// # Errors
/// Connecting, writing, or a node that closed before answering.
pub fn call(
    data_dir: &Path,
    request: &Request,
    mut on_update: impl FnMut(&JobUpdate),
) -> anyhow::Result<Option<Result<Reply, ApiError>>> {
    let path = socket_path(data_dir);
    let Some(stream) = send(&path, request)? else {
        return Ok(None);
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            // A connection reset is the node going away too.
            Ok(0) | Err(_) => return Err(anyhow::Error::new(ClosedEarly)),
            Ok(_) => {}
        }
        // Read straight into the types (a 10,000-shot project is megabytes).
        match serde_json::from_slice::<Line>(&line) {
            Ok(Line::Update(update)) => on_update(&update),
            Ok(Line::Event(_)) => {}
            Ok(Line::Ok(reply)) => return Ok(Some(Ok(*reply))),
            Ok(Line::Error(error)) => return Ok(Some(Err(error))),
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "the node sent a malformed line ({} bytes): {e}",
                    line.len()
                ));
            }
        }
    }
}

/// Follow the status feed of the node running on `data_dir`: `on_event` gets each
/// event until it returns false, the node stops (`Ok(true)`) or none runs
/// (`Ok(false)`).
///
/// # Errors
/// Connecting, or a malformed line.
pub fn follow(data_dir: &Path, mut on_event: impl FnMut(Event) -> bool) -> anyhow::Result<bool> {
    let path = socket_path(data_dir);
    let Some(stream) = send(&path, &Request::Feed)? else {
        return Ok(false);
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return Ok(true),
            Ok(_) => {}
        }
        match serde_json::from_slice::<Line>(&line) {
            Ok(Line::Event(event)) => {
                if !on_event(*event) {
                    return Ok(true);
                }
            }
            Ok(_) => return Ok(true),
            Err(e) => return Err(anyhow::anyhow!("the node sent a malformed feed line: {e}")),
        }
    }
}
