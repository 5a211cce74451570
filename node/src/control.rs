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
    /// Import a file (an absolute path on this machine) into a project.
    Import {
        /// Id or name; `None` = current.
        project: Option<String>,
        /// The file.
        path: PathBuf,
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
    /// Stop the node (it saves first).
    Shutdown,
}

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
        Request::Import { project, path } => {
            let result = handle
                .edit(project, move |doc| {
                    import::import_file(doc, &path).map_err(|e| format!("{e:#}"))
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
        Request::Shutdown => {
            handle.shutdown();
            Reply::Ok(serde_json::Value::Null)
        }
    }
}

/// Send one request to the node owning `data_dir`. `Ok(None)` when no node is
/// running there (no socket, or a stale one nobody listens on).
pub fn request(data_dir: &Path, request: &Request) -> anyhow::Result<Option<serde_json::Value>> {
    use anyhow::Context;
    let path = socket_path(data_dir);
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
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
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .with_context(|| format!("reading from {}", path.display()))?;
    match serde_json::from_str::<Reply>(&line)
        .with_context(|| format!("the node sent a malformed reply: {line:?}"))?
    {
        Reply::Ok(value) => Ok(Some(value)),
        Reply::Error(e) => Err(anyhow::anyhow!("{e}")),
    }
}
