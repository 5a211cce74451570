//! The node runtime: one task that owns the swarm and every open project, driven
//! by commands from a cheap cloneable [`NodeHandle`].
//!
//! ```text
//!  CLI (control socket) ─┐                        ┌─ libp2p swarm (sync, presence)
//!  editor (in-process) ──┼─ Command (bounded) ─▶ Runtime ─┤
//!  tests / benches ──────┘      ◀─ NodeEvent (broadcast) ─┘─ ProjectStore per project (disk)
//! ```
//! The runtime is the only owner of the documents: edits run inside it (a closure
//! sent with [`NodeHandle::edit`]), are saved (fsync) and then offered to every
//! connected peer at once. A sync message from a peer is applied, saved, and only
//! then acknowledged. Presence (who is there, which GPU) lives in memory only.
//!
//! Shutdown: cancel the token (SIGINT/SIGTERM in the binary, or
//! [`NodeHandle::shutdown`]); the runtime stops taking work, compacts every project
//! and releases the data dir lock.

mod failing;
pub mod fetch;
mod presence;
mod runtime;

use std::path::PathBuf;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use reelmesh_protocol::document::ProjectDoc;
use reelmesh_protocol::model::Project;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use failing::{Direction, FailingPeer};
pub use presence::PeerRow;

use crate::jobs::{self, WorkerState};
use crate::mesh::{self, MeshConfig, keys};
use crate::store::{DataDir, StoreError};

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The data dir it owns.
    pub data_dir: PathBuf,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial (and redial while they are away).
    pub peers: Vec<Multiaddr>,
    /// Swarm knobs.
    pub mesh: MeshConfig,
    /// The local ComfyUI, if any.
    pub comfy_url: Option<String>,
    /// Presence heartbeat interval.
    pub heartbeat: Duration,
    /// A peer silent this long is shown offline.
    pub offline_after: Duration,
    /// How often unreachable peers are redialled and idle sync sessions retried.
    pub retry_every: Duration,
    /// Serve the local control socket (CLI commands go through it).
    pub control_socket: bool,
    /// No network at all (no listener, no dials, no mDNS, no mesh key needed): a
    /// node started by a CLI command on a data dir nobody else runs.
    pub offline: bool,
    /// Run render jobs queued by this node (the card renderer, and ComfyUI when
    /// `comfy_url` is set).
    pub run_jobs: bool,
    /// A folder of user workflows (manifest + API JSON) on top of the built-in ones;
    /// `None` = `<data dir>/workflows`.
    pub workflows_dir: Option<PathBuf>,
    /// A claimant silent this long loses its jobs to the queue.
    pub lease: Duration,
    /// Run jobs with this executor instead of the card renderer and ComfyUI (tests
    /// and benches stand in for a GPU with it).
    pub executor: Option<jobs::ExecutorSlot>,
    /// The LLM it advises with (else `<data dir>/llm.toml`, the environment, or
    /// the rules).
    pub llm: Option<crate::advise::LlmConfig>,
}

impl NodeConfig {
    /// Defaults for a data dir: listen on every interface on an OS-chosen port.
    #[must_use]
    pub fn new(data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            data_dir,
            listen: vec![
                "/ip4/0.0.0.0/tcp/0"
                    .parse()
                    .unwrap_or_else(|_| Multiaddr::empty()),
            ],
            peers: Vec::new(),
            mesh: MeshConfig::default(),
            comfy_url: None,
            heartbeat: Duration::from_secs(2),
            offline_after: Duration::from_secs(7),
            retry_every: Duration::from_secs(3),
            control_socket: true,
            offline: false,
            run_jobs: true,
            workflows_dir: None,
            lease: jobs::LEASE,
            executor: None,
            llm: None,
        }
    }
}

impl NodeConfig {
    /// A node on 127.0.0.1 (OS-chosen port) with no mDNS and no control socket: for
    /// several nodes in one process (the demo, tests, benches).
    #[must_use]
    pub fn loopback(data_dir: PathBuf, peers: Vec<Multiaddr>) -> NodeConfig {
        let mut config = NodeConfig::new(data_dir);
        config.listen = vec![
            "/ip4/127.0.0.1/tcp/0"
                .parse()
                .unwrap_or_else(|_| Multiaddr::empty()),
        ];
        config.peers = peers;
        config.mesh.mdns = false;
        config.control_socket = false;
        config
    }

    /// A node with no network for one CLI command (see [`NodeConfig::offline`]).
    #[must_use]
    pub fn offline(data_dir: PathBuf) -> NodeConfig {
        let mut config = NodeConfig::new(data_dir);
        config.listen = Vec::new();
        config.mesh.mdns = false;
        config.control_socket = false;
        config.offline = true;
        config
    }

    /// Where user workflows are read from.
    #[must_use]
    pub fn workflows_dir(&self) -> PathBuf {
        self.workflows_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("workflows"))
    }
}

/// Why a node could not start or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Keys.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// Swarm setup.
    #[error(transparent)]
    Mesh(#[from] mesh::MeshError),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {why}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        why: String,
    },
    /// The control socket could not be served.
    #[error("control socket {path}: {source}")]
    Control {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runtime has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// The workflow catalog could not be loaded.
    #[error(transparent)]
    Workflows(#[from] crate::workflows::WorkflowError),
    /// The ComfyUI address is not usable.
    #[error(transparent)]
    Comfy(#[from] crate::comfy::ComfyError),
    /// A request failed inside the runtime.
    #[error("{0}")]
    Request(String),
    /// A project could not be used as asked (see [`ProjectError`]).
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// Waiting for something took too long.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Why a request about a project failed, as the runtime tells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectError {
    /// No such project here, none at all, or several and none current.
    #[error("{0}")]
    Missing(String),
    /// A replica still waiting for its first sync.
    #[error("project {0} has not arrived from the mesh yet")]
    NotArrived(String),
    /// The edit or read itself refused (its own words; nothing was written).
    #[error("{0}")]
    Refused(String),
    /// Saving the project failed.
    #[error("{0}")]
    Disk(String),
}

/// Where a document change came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOrigin {
    /// An edit on this node.
    Local,
    /// A sync message from this peer.
    Peer(PeerId),
}

/// What a node reports as it runs (for the editor, tests and benches).
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// Listening on an address.
    Listening(Multiaddr),
    /// First connection to a peer.
    PeerConnected(PeerId),
    /// Last connection to a peer closed.
    PeerDisconnected(PeerId),
    /// A project document changed and was saved.
    DocChanged {
        /// The project.
        project_id: String,
        /// Its new heads.
        heads: Vec<String>,
        /// Who made the change.
        origin: ChangeOrigin,
    },
    /// A peer's presence arrived or changed.
    Presence(PeerId),
    /// A peer sent something malformed and was dropped.
    PeerRejected {
        /// The peer.
        peer: PeerId,
        /// What was wrong.
        reason: String,
    },
    /// A connection with a peer failed (a dial, or one from it): the row
    /// `reelmesh status` shows for it now.
    ConnectionFailed(FailingPeer),
    /// A render job moved or made progress, on this node or (by gossip) on another
    /// (ephemeral: never written to the document).
    Job(crate::jobs::JobUpdate),
    /// A peer's standing offer to run jobs arrived or changed (signed, checked).
    Offer(reelmesh_protocol::placement::Offer),
}

impl From<&NodeEvent> for reelmesh_protocol::api::status::Event {
    fn from(event: &NodeEvent) -> Self {
        use reelmesh_protocol::api::status::Event;
        match event {
            NodeEvent::Listening(addr) => Event::Listening {
                address: addr.to_string(),
            },
            NodeEvent::PeerConnected(peer) => Event::PeerConnected {
                peer_id: peer.to_string(),
            },
            NodeEvent::PeerDisconnected(peer) => Event::PeerDisconnected {
                peer_id: peer.to_string(),
            },
            NodeEvent::DocChanged {
                project_id,
                heads,
                origin,
            } => Event::DocChanged {
                project_id: project_id.clone(),
                heads: heads.clone(),
                from_peer: match origin {
                    ChangeOrigin::Local => None,
                    ChangeOrigin::Peer(peer) => Some(peer.to_string()),
                },
            },
            NodeEvent::Presence(peer) => Event::Presence {
                peer_id: peer.to_string(),
            },
            NodeEvent::PeerRejected { peer, reason } => Event::PeerRejected {
                peer_id: peer.to_string(),
                reason: reason.clone(),
            },
            NodeEvent::ConnectionFailed(row) => Event::ConnectionFailed(row.clone()),
            NodeEvent::Job(update) => Event::Job(update.clone()),
            NodeEvent::Offer(offer) => Event::Offer(offer.clone()),
        }
    }
}

pub use reelmesh_protocol::api::status::{NodeStatusReport, ProjectSummary};

/// Live offers (by node id) and the latest progress per job.
pub type JobsSnapshot = (
    Vec<reelmesh_protocol::placement::Offer>,
    Vec<reelmesh_protocol::jobs::JobUpdate>,
);

/// A project read: its id, content and heads.
pub type ProjectRead = (String, Project, Vec<String>);

type EditFn = Box<dyn FnOnce(&mut ProjectDoc) -> Result<(), String> + Send>;
type ReadFn = Box<dyn FnOnce(&mut ProjectDoc) + Send>;

pub(crate) enum Command {
    Edit {
        project: Option<String>,
        edit: EditFn,
        reply: oneshot::Sender<Result<String, ProjectError>>,
    },
    Read {
        project: Option<String>,
        reply: oneshot::Sender<Result<ProjectRead, ProjectError>>,
    },
    ReadWith {
        project: Option<String>,
        read: ReadFn,
        reply: oneshot::Sender<Result<String, ProjectError>>,
    },
    WaitHeads {
        project: Option<String>,
        heads: Vec<String>,
        reply: oneshot::Sender<Result<(), ProjectError>>,
    },
    Status {
        reply: oneshot::Sender<NodeStatusReport>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerRow>>,
    },
    Dial {
        addr: Multiaddr,
    },
    BlobRequest {
        peer: PeerId,
        request: reelmesh_protocol::wire::BlobRequest,
        reply: oneshot::Sender<Result<reelmesh_protocol::wire::BlobResponse, String>>,
    },
    RejectPeer {
        peer: PeerId,
        reason: String,
    },
    PublishJobs {
        message: reelmesh_protocol::wire::JobsGossip,
    },
    JobsView {
        /// Include the progress map (the runner needs only the offers).
        progress: bool,
        reply: oneshot::Sender<JobsSnapshot>,
    },
}

/// A cheap, cloneable way to talk to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NodeEvent>,
    peer_id: PeerId,
    cancel: CancellationToken,
    catalog: std::sync::Arc<crate::workflows::Catalog>,
    worker: tokio::sync::watch::Receiver<WorkerState>,
    blobs: crate::store::blobs::BlobStore,
    /// Blobs being fetched, one lock each: a second fetch of the same blob (a
    /// prefetch and a run's own) waits for the first instead of writing the same
    /// partial file.
    fetching: std::sync::Arc<
        std::sync::Mutex<
            std::collections::HashMap<
                crate::store::blobs::BlobHash,
                std::sync::Arc<tokio::sync::Mutex<()>>,
            >,
        >,
    >,
    /// Every client's undo and redo stacks (see [`crate::api::undo`]).
    undo: std::sync::Arc<tokio::sync::Mutex<crate::api::undo::Stacks>>,
    /// The data dir the node owns.
    data_dir: std::path::PathBuf,
    /// The LLM this node advises with (`--llm-url`, `--llm-model`), if any.
    llm: Option<std::sync::Arc<crate::advise::LlmConfig>>,
}

impl NodeHandle {
    /// The LLM this node was started with, if any.
    #[must_use]
    pub fn llm(&self) -> Option<&crate::advise::LlmConfig> {
        self.llm.as_deref()
    }

    /// This node's blob store.
    #[must_use]
    pub fn blob_store(&self) -> &crate::store::blobs::BlobStore {
        &self.blobs
    }

    /// The data dir this node owns.
    #[must_use]
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// This node's peer id.
    #[must_use]
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Whether this node's blob store holds `hash` whole (verified).
    #[must_use]
    pub fn has_blob(&self, hash: &crate::store::blobs::BlobHash) -> bool {
        self.blobs.has(hash)
    }

    /// The status feed: every event as plain data with no libp2p type (what the
    /// editor reads), on a bounded channel of `capacity`. A follower too slow to keep
    /// up gets [`reelmesh_protocol::api::status::Event::Lagged`] and reads the state
    /// again; the feed ends when the node stops.
    #[must_use]
    pub fn feed(&self, capacity: usize) -> mpsc::Receiver<reelmesh_protocol::api::status::Event> {
        use reelmesh_protocol::api::status::Event;
        let (tx, rx) = mpsc::channel(capacity.max(2));
        let mut events = self.subscribe();
        tokio::spawn(async move {
            let mut missed = 0_u64;
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        missed += n;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if missed > 0 {
                    match tx.try_send(Event::Lagged { missed }) {
                        Ok(()) => missed = 0,
                        Err(mpsc::error::TrySendError::Full(_)) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                match tx.try_send(Event::from(&event)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => missed += 1,
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        });
        rx
    }

    /// Events from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)
    }

    /// Run an edit on a project (`None` = the current one), save it and send it to
    /// the mesh. Returns the project id.
    pub async fn edit<T, F>(
        &self,
        project: Option<String>,
        edit: F,
    ) -> Result<(String, T), NodeError>
    where
        T: Send + 'static,
        F: FnOnce(&mut ProjectDoc) -> Result<T, String> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let edit: EditFn = Box::new(move |doc| {
            let value = edit(doc)?;
            let _ = tx.send(value);
            Ok(())
        });
        let project_id = self
            .ask(|reply| Command::Edit {
                project,
                edit,
                reply,
            })
            .await??;
        let value = rx.await.map_err(|_| NodeError::Stopped)?;
        Ok((project_id, value))
    }

    /// Run a read-only closure on a project's document (`None` = the current one).
    /// Returns the project id and the closure's value.
    pub async fn read<T, F>(
        &self,
        project: Option<String>,
        read: F,
    ) -> Result<(String, T), NodeError>
    where
        T: Send + 'static,
        F: FnOnce(&ProjectDoc) -> T + Send + 'static,
    {
        self.read_mut(project, move |doc| read(doc)).await
    }

    /// Like [`NodeHandle::read`], for reads that keep state in the document without
    /// changing its content (the job runner's change index, see
    /// [`ProjectDoc::jobs_changed`]). Nothing is saved or synced.
    pub async fn read_mut<T, F>(
        &self,
        project: Option<String>,
        read: F,
    ) -> Result<(String, T), NodeError>
    where
        T: Send + 'static,
        F: FnOnce(&mut ProjectDoc) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let read: ReadFn = Box::new(move |doc| {
            let _ = tx.send(read(doc));
        });
        let project_id = self
            .ask(|reply| Command::ReadWith {
                project,
                read,
                reply,
            })
            .await??;
        let value = rx.await.map_err(|_| NodeError::Stopped)?;
        Ok((project_id, value))
    }

    /// The workflows this node knows (built-in + its workflows folder).
    #[must_use]
    pub fn catalog(&self) -> &crate::workflows::Catalog {
        &self.catalog
    }

    pub(crate) fn catalog_arc(&self) -> std::sync::Arc<crate::workflows::Catalog> {
        std::sync::Arc::clone(&self.catalog)
    }

    /// What the job side says now (capabilities, current job).
    #[must_use]
    pub fn worker(&self) -> WorkerState {
        self.worker.borrow().clone()
    }

    /// Wait until the first look at ComfyUI is done (at once without ComfyUI), so
    /// capabilities are what ComfyUI says and not the start-up placeholder.
    pub async fn worker_settled(&self, timeout: Duration) -> WorkerState {
        self.worker_until(|w| w.settled, timeout)
            .await
            .unwrap_or_else(|| self.worker())
    }

    /// Wait (up to `timeout`) until the job side's state satisfies `ready`; returns
    /// the state then, or `None` on timeout.
    pub async fn worker_until(
        &self,
        ready: impl Fn(&WorkerState) -> bool,
        timeout: Duration,
    ) -> Option<WorkerState> {
        let mut worker = self.worker.clone();
        tokio::time::timeout(timeout, worker.wait_for(|w| ready(w)))
            .await
            .ok()?
            .ok()
            .map(|w| w.clone())
    }

    /// Send an event to every subscriber (the job runner reports through this).
    pub(crate) fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    /// A project as it is now, with its id and heads.
    pub async fn project(
        &self,
        project: Option<String>,
    ) -> Result<(String, Project, Vec<String>), NodeError> {
        Ok(self.ask(|reply| Command::Read { project, reply }).await??)
    }

    /// Wait until the project holds every one of these heads, or time out.
    pub async fn wait_for_heads(
        &self,
        project: Option<String>,
        heads: Vec<String>,
        timeout: Duration,
    ) -> Result<(), NodeError> {
        let wait = self.ask(|reply| Command::WaitHeads {
            project,
            heads,
            reply,
        });
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| NodeError::Timeout(timeout))???;
        Ok(())
    }

    /// Status: listen addresses, projects, peers.
    pub async fn status(&self) -> Result<NodeStatusReport, NodeError> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// This node, then every peer heard from or connected: the peers part of
    /// [`NodeHandle::status`], without reading the projects (the job runner asks
    /// every second).
    pub async fn peers(&self) -> Result<Vec<PeerRow>, NodeError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Send one blob request to a peer and wait for its answer.
    pub async fn blob_request(
        &self,
        peer: PeerId,
        request: reelmesh_protocol::wire::BlobRequest,
    ) -> Result<reelmesh_protocol::wire::BlobResponse, NodeError> {
        self.ask(|reply| Command::BlobRequest {
            peer,
            request,
            reply,
        })
        .await?
        .map_err(NodeError::Request)
    }

    /// Drop a peer that misbehaved, with the reason in the log and a
    /// [`NodeEvent::PeerRejected`].
    pub async fn reject_peer(&self, peer: PeerId, reason: String) -> Result<(), NodeError> {
        self.commands
            .send(Command::RejectPeer { peer, reason })
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Publish this node's offer or a job's progress on the jobs topic (signed
    /// gossip; nothing leaves the node when offline). Progress is also shown locally
    /// as a [`NodeEvent::Job`].
    pub async fn publish_jobs(
        &self,
        message: reelmesh_protocol::wire::JobsGossip,
    ) -> Result<(), NodeError> {
        self.commands
            .send(Command::PublishJobs { message })
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// The offers of the nodes heard from lately (this one included) and the latest
    /// progress of every job the jobs topic spoke of.
    pub async fn jobs_view(&self) -> Result<JobsSnapshot, NodeError> {
        self.ask(|reply| Command::JobsView {
            progress: true,
            reply,
        })
        .await
    }

    /// The offers of the nodes heard from lately (this one included).
    pub async fn offers(&self) -> Result<Vec<reelmesh_protocol::placement::Offer>, NodeError> {
        let (offers, _) = self
            .ask(|reply| Command::JobsView {
                progress: false,
                reply,
            })
            .await?;
        Ok(offers)
    }

    /// Dial an address (kept and redialled while unreachable).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NodeError> {
        self.commands
            .send(Command::Dial { addr })
            .await
            .map_err(|_| NodeError::Stopped)
    }

    pub(crate) fn undo_stacks(&self) -> &tokio::sync::Mutex<crate::api::undo::Stacks> {
        &self.undo
    }

    pub(crate) fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Ask the node to stop (it saves everything first).
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// A running node.
pub struct Node {
    handle: NodeHandle,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
    listen_addrs: Vec<Multiaddr>,
}

impl Node {
    /// Lock the data dir, load identity, mesh key and projects, start listening.
    /// Returns once every listen address is bound.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        // Two tokens, for an orderly stop: `stop` is what a shutdown request
        // cancels (the runner and the control socket stop on it); the runtime's own
        // token is cancelled only once the runner has written what it had in hand,
        // so its last writes reach a runtime that still takes commands.
        let stop = CancellationToken::new();
        let cancel = CancellationToken::new();
        let (events, _) = broadcast::channel(8192);
        let (commands, command_rx) = mpsc::channel(256);
        let config_llm = config.llm.clone();
        let gpu =
            runtime::spawn_gpu_probe(config.comfy_url.clone(), config.heartbeat, cancel.clone());
        let (worker_tx, worker_rx) = tokio::sync::watch::channel(WorkerState::default());
        let jobs_setup = jobs::JobsSetup::new(&config, gpu.clone(), worker_tx)?;
        let blobs = fetch::store_for(&config)?;
        let catalog = jobs_setup.catalog();
        let jobs_setup = if config.run_jobs {
            Some(jobs_setup)
        } else {
            jobs_setup.idle();
            None
        };
        let data_root = config.data_dir.clone();
        let (runtime, listen_addrs) = runtime::Runtime::start(
            config,
            command_rx,
            events.clone(),
            cancel.clone(),
            gpu,
            worker_rx.clone(),
        )
        .await?;
        let handle = NodeHandle {
            commands,
            events,
            peer_id: runtime.peer_id(),
            cancel: stop.clone(),
            catalog,
            worker: worker_rx,
            blobs,
            fetching: std::sync::Arc::default(),
            undo: std::sync::Arc::new(tokio::sync::Mutex::new(crate::api::undo::Stacks::new(
                &data_root,
            ))),
            data_dir: data_root.clone(),
            llm: config_llm.map(std::sync::Arc::new),
        };
        if runtime.serves_control() {
            crate::control::serve(&runtime.data_dir_root(), handle.clone())
                .map_err(|(path, source)| NodeError::Control { path, source })?;
        }
        let runtime_task = tokio::spawn(runtime.run());
        let runner = jobs_setup.map(|setup| jobs::spawn(handle.clone(), setup));
        let task = tokio::spawn(supervise(stop, cancel, runtime_task, runner));
        Ok(Node {
            handle,
            task,
            listen_addrs,
        })
    }

    /// The handle.
    #[must_use]
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Where it listens (the OS-chosen ports filled in).
    #[must_use]
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// Wait for the runtime to end (after [`NodeHandle::shutdown`] or a fatal error).
    pub async fn join(self) -> Result<(), NodeError> {
        self.task
            .await
            .map_err(|e| NodeError::Request(format!("node supervisor: {e}")))?
    }

    /// Stop and wait.
    pub async fn stop(self) -> Result<(), NodeError> {
        self.handle.shutdown();
        self.join().await
    }
}

/// The longest the runner may take to write what it has in hand when the node
/// stops, before the runtime stops anyway.
const RUNNER_STOP_GRACE: Duration = Duration::from_secs(30);

/// Stop in order: on a shutdown request the job runner stops first (it gives back
/// the jobs it holds and writes the results it has), then the runtime (which saves
/// every project). A runtime that ends on its own (a fatal error) stops the runner
/// too.
async fn supervise(
    stop: CancellationToken,
    cancel: CancellationToken,
    mut runtime: tokio::task::JoinHandle<Result<(), NodeError>>,
    runner: Option<tokio::task::JoinHandle<()>>,
) -> Result<(), NodeError> {
    let ended = tokio::select! {
        () = stop.cancelled() => None,
        result = &mut runtime => Some(result),
    };
    stop.cancel();
    if let Some(runner) = runner
        && tokio::time::timeout(RUNNER_STOP_GRACE, runner)
            .await
            .is_err()
    {
        tracing::warn!(
            "the job runner did not stop within {} s; stopping the node anyway",
            RUNNER_STOP_GRACE.as_secs()
        );
    }
    cancel.cancel();
    let result = match ended {
        Some(result) => result,
        None => runtime.await,
    };
    result.map_err(|e| NodeError::Request(format!("node task: {e}")))?
}

/// Open a data dir for a node: lock it and check the mesh key is there.
pub(crate) fn open_data_dir(
    config: &NodeConfig,
) -> Result<(DataDir, crate::store::DataDirLock), NodeError> {
    let data = DataDir::open(&config.data_dir)?;
    let lock = data.lock()?;
    Ok((data, lock))
}
