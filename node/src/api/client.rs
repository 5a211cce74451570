//! How the CLI reaches a node: the control socket of the node running on the data
//! dir, else a node started in this process without network for the length of the
//! command (it takes the data dir's lock and saves on the way out). Both answer
//! through [`super::call`]: one code path, with or without a running node.

use std::path::{Path, PathBuf};

use reelmesh_protocol::api::{ApiError, Reply, Request};
use reelmesh_protocol::jobs::JobUpdate;

use crate::control;
use crate::node::{Node, NodeConfig};

/// A connection to a node, for one command.
pub struct Client {
    inner: Inner,
}

enum Inner {
    /// A node runs on the data dir: its control socket.
    Socket(PathBuf),
    /// None runs: one started here, without network, that runs no jobs.
    Local(Box<Local>),
}

struct Local {
    runtime: tokio::runtime::Runtime,
    node: Option<Node>,
}

impl Client {
    /// The node of `data_dir`: the running one, else one started here.
    ///
    /// # Errors
    /// Starting the node here: a data dir that cannot be opened or locked.
    pub fn open(data_dir: &Path) -> anyhow::Result<Client> {
        if control::node_running(data_dir) {
            return Ok(Client {
                inner: Inner::Socket(data_dir.to_owned()),
            });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("reelmesh-cli")
            .enable_all()
            .build()?;
        let mut config = NodeConfig::offline(data_dir.to_owned());
        config.run_jobs = false;
        let node = runtime.block_on(Node::start(config))?;
        Ok(Client {
            inner: Inner::Local(Box::new(Local {
                runtime,
                node: Some(node),
            })),
        })
    }

    /// Whether this is a node started here (no node was running).
    #[must_use]
    pub fn is_local(&self) -> bool {
        matches!(self.inner, Inner::Local(_))
    }

    /// Send a request and wait for its answer.
    ///
    /// # Errors
    /// The outer error: the node could not be reached or went away mid-answer
    /// ([`control::ClosedEarly`]); the inner one: the node's refusal.
    pub fn call(&self, request: Request) -> anyhow::Result<Result<Reply, ApiError>> {
        self.call_streaming(request, |_| {})
    }

    /// Like [`Client::call`], `on_update` getting every step of a followed job.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn call_streaming(
        &self,
        request: Request,
        mut on_update: impl FnMut(&JobUpdate),
    ) -> anyhow::Result<Result<Reply, ApiError>> {
        match &self.inner {
            Inner::Socket(data_dir) => control::call(data_dir, &request, on_update)?
                .ok_or_else(|| anyhow::Error::new(control::ClosedEarly)),
            Inner::Local(local) => {
                let Some(node) = &local.node else {
                    return Ok(Err(ApiError::Stopped));
                };
                let handle = node.handle();
                Ok(local.runtime.block_on(async {
                    match request {
                        Request::WatchJobs { project, job_ids } => {
                            super::watch(&handle, project, &job_ids, |u| on_update(u)).await
                        }
                        request => super::call(&handle, request).await,
                    }
                }))
            }
        }
    }

    /// Stop the node started here (it saves everything); nothing for a socket.
    ///
    /// # Errors
    /// The node's own stop failed.
    pub fn close(mut self) -> anyhow::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        if let Inner::Local(local) = &mut self.inner
            && let Some(node) = local.node.take()
        {
            local.runtime.block_on(node.stop())?;
        }
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("stopping the command's node: {e}");
        }
    }
}
