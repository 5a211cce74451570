//! The event loop: the only owner of the swarm, the project stores, the sync
//! sessions and the peers table.

mod blobs;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, mdns, ping};
use reelmesh_protocol::document::Changes;
use reelmesh_protocol::wire::{
    ChangesPush, MAX_PRESENCE_HEAD_PROJECTS, MAX_PRESENCE_HEADS, MAX_PRESENCE_PEERS, NodeStatus,
    Presence, SyncFrame, SyncRequest, SyncResponse,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::failing::{Direction, FailingPeer, FailingPeers};
use super::presence::{PeerRow, PresenceTable};
use super::sync::{Outbox, Pushed, Sessions};
use super::{
    ChangeOrigin, Command, NodeConfig, NodeError, NodeEvent, NodeStatusReport, ProjectError,
    ProjectSummary,
};
use crate::gpu::{GpuProbe, GpuSample};
use crate::jobs::{WorkerState, now_ms};
use crate::mesh::codec::Frame;
use crate::mesh::failure::{self, ConnectionFailure, FailureKind};
use crate::mesh::{self, Behaviour, BehaviourEvent, keys};
use crate::store::{DataDir, DataDirLock, ProjectStore};

struct Waiter {
    project_id: String,
    heads: Vec<String>,
    reply: oneshot::Sender<Result<(), ProjectError>>,
}

pub(super) struct Runtime {
    config: NodeConfig,
    data: DataDir,
    _lock: DataDirLock,
    swarm: Swarm<Behaviour>,
    peer_id: PeerId,
    projects: BTreeMap<String, ProjectStore>,
    sessions: Sessions,
    presence: PresenceTable,
    connected: HashSet<PeerId>,
    dial_targets: Vec<Multiaddr>,
    dialed_up: HashMap<Multiaddr, PeerId>,
    /// Peers mDNS found on the LAN, redialled while away until mDNS says they expired.
    lan_peers: HashMap<PeerId, Vec<Multiaddr>>,
    /// Addresses connections keep failing with, and why (`reelmesh status`).
    failing: FailingPeers,
    waiters: Vec<Waiter>,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<NodeEvent>,
    cancel: CancellationToken,
    gpu: watch::Receiver<GpuSample>,
    worker: watch::Receiver<WorkerState>,
    blob_store: crate::store::blobs::BlobStore,
    blob_permits: std::sync::Arc<tokio::sync::Semaphore>,
    blob_pending: blobs::Pending,
    blob_served_tx: mpsc::Sender<blobs::Served>,
    blob_served_rx: mpsc::Receiver<blobs::Served>,
    host_name: String,
    listen_addrs: Vec<Multiaddr>,
    /// Offers (this node's and its peers') and the latest progress of each job.
    jobs_view: JobsView,
    /// Projects with changes received from peers that are in the log but not yet
    /// fsynced, and when the fsync is due (see [`DISK_SYNC_AFTER`]).
    unsynced: HashSet<String>,
    disk_sync_due: Option<Instant>,
    /// Projects whose fsync (received changes, or a local edit) failed on the blocking pool.
    disk_failed_tx: mpsc::Sender<(String, String)>,
    disk_failed_rx: mpsc::Receiver<(String, String)>,
    /// Each project's local changes not yet pushed to every peer.
    outboxes: HashMap<String, Outbox>,
    /// Changes that pushed changes wait on: when to look again, the peer that
    /// pushed them (it has what they depend on), the project, the hashes (see
    /// [`MISSING_CHANGES_AFTER`]).
    missing: VecDeque<(Instant, PeerId, String, Vec<String>)>,
    missing_check_due: Option<Instant>,
    /// Retry ticks so far.
    retries: u64,
    /// Heads each peer announced, kept to be checked [`HEADS_GRACE`] later.
    heads_checks: HashMap<PeerId, (Instant, BTreeMap<String, Vec<String>>)>,
    /// The last project each `Read` returned, by project, with its heads: asked
    /// again at the same heads (`reelmesh shots` twice, the editor's refresh), it
    /// is cloned instead of read out of the document again.
    read_views: HashMap<String, (Vec<String>, reelmesh_protocol::model::Project)>,
}

/// Changes received from peers are appended to the log and fsynced in batches this
/// often (one record and one fsync for every message received meanwhile): they
/// are durable within this time, and the peers that sent them still have them
/// (a node that crashes before the write gets them again at its next sync, since
/// its sync state starts afresh). Local edits are written and fsynced before they
/// are reported done, with whatever was received before them.
const DISK_SYNC_AFTER: Duration = Duration::from_millis(50);
/// How long a stopping node waits for its last pushes to be answered.
const FAREWELL: Duration = Duration::from_secs(1);

/// Pushed changes can arrive before changes they depend on (made by a third node,
/// whose own push is still on its way). If they still wait this long after, the
/// node asks the pusher by sync instead of waiting for the retry tick. The
/// missing change is nearly always on its way from its author, which pushes to
/// every peer it reaches: at 500 ms a loaded mesh (17 nodes on 2 cores) asked 256
/// times in a 1,000-job run, each an exchange that resent what the pushes brought
/// anyway; at 2 s, 30-60 times.
const MISSING_CHANGES_AFTER: Duration = Duration::from_secs(2);

/// How long heads a peer announced may take to arrive before this node asks for
/// them by sync.
const HEADS_GRACE: Duration = Duration::from_secs(2);

/// Every this many retry ticks, every session runs a sync exchange whether or not
/// anything looks missing.
const FULL_SYNC_EVERY: u64 = 10;

/// What a sync message is for (see [`Runtime::send_sync`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Say {
    /// Open an exchange: always sent.
    Open,
    /// Tell new heads: sent within the exchange's replies.
    Answer,
    /// Go on: sent within the replies, only if it carries or asks for changes.
    Reply,
}

/// What the jobs topic said lately.
#[derive(Default)]
struct JobsView {
    offers: HashMap<String, (Instant, reelmesh_protocol::placement::Offer)>,
    progress: HashMap<String, reelmesh_protocol::jobs::JobUpdate>,
}

/// Most job progress entries kept (ended jobs are dropped first).
const MAX_PROGRESS: usize = 4096;

impl JobsView {
    fn offer(&mut self, offer: reelmesh_protocol::placement::Offer) -> bool {
        if let Some((_, known)) = self.offers.get(&offer.node_id)
            && known.seq > offer.seq
        {
            return false;
        }
        self.offers
            .insert(offer.node_id.clone(), (Instant::now(), offer));
        true
    }

    fn progress(&mut self, update: &reelmesh_protocol::jobs::JobUpdate) {
        if self.progress.len() >= MAX_PROGRESS && !self.progress.contains_key(&update.job_id) {
            self.progress.retain(|_, u| u.state.is_active());
            if self.progress.len() >= MAX_PROGRESS {
                self.progress.clear();
            }
        }
        let mut kept = update.clone();
        // Previews stay with the event; the table keeps the words.
        kept.preview = None;
        self.progress.insert(update.job_id.clone(), kept);
    }

    fn live_offers(&self, max_age: Duration) -> Vec<reelmesh_protocol::placement::Offer> {
        let mut offers: Vec<_> = self
            .offers
            .values()
            .filter(|(at, _)| at.elapsed() <= max_age)
            .map(|(_, o)| o.clone())
            .collect();
        offers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        offers
    }
}

impl Runtime {
    pub async fn start(
        config: NodeConfig,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<NodeEvent>,
        cancel: CancellationToken,
        gpu: watch::Receiver<GpuSample>,
        worker: watch::Receiver<WorkerState>,
    ) -> Result<(Runtime, Vec<Multiaddr>), NodeError> {
        let (data, lock) = super::open_data_dir(&config)?;
        let psk: [u8; 32] = if config.offline {
            // Nothing is ever dialled or listened on: a throwaway key.
            rand::random()
        } else {
            keys::mesh_key_bytes(data.root())?
        };
        let identity = keys::load_or_create_identity(data.root())?;
        let peer_id = identity.public().to_peer_id();
        let projects: BTreeMap<String, ProjectStore> = data.open_all()?.into_iter().collect();
        let mut swarm = mesh::build_swarm(&identity, psk, &config.mesh)?;
        let mut listeners = 0;
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NodeError::Listen {
                    addr: addr.clone(),
                    why: e.to_string(),
                })?;
            listeners += 1;
        }
        // Wait until every listener has its address (ports chosen by the OS).
        let mut listen_addrs = Vec::new();
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        while listen_addrs.len() < listeners {
            tokio::select! {
                event = swarm.select_next_some() => match event {
                    SwarmEvent::NewListenAddr { address, .. } => listen_addrs.push(address),
                    SwarmEvent::ListenerError { error, .. } | SwarmEvent::ListenerClosed { reason: Err(error), .. } => {
                        return Err(NodeError::Listen { addr: config.listen[0].clone(), why: error.to_string() });
                    }
                    _ => {}
                },
                () = &mut deadline => break,
            }
        }
        let host_name = gethostname::gethostname().to_string_lossy().into_owned();
        info!(%peer_id, data_dir = %data.root().display(), projects = projects.len(), "node started");
        for addr in &listen_addrs {
            info!("listening on {addr}/p2p/{peer_id}");
        }
        let dial_targets = config.peers.clone();
        let blob_store = crate::store::blobs::BlobStore::open(data.root())?;
        let (blob_served_tx, blob_served_rx) = mpsc::channel(blobs::MAX_SERVING * 2);
        // One report per failed fsync, and each makes the project reload: a few at
        // a time is plenty (a full channel drops the report, not the reload: the
        // failed project is also re-read by the next sync).
        let (disk_failed_tx, disk_failed_rx) = mpsc::channel(64);
        let runtime = Runtime {
            disk_failed_tx,
            disk_failed_rx,
            blob_store,
            blob_permits: std::sync::Arc::new(tokio::sync::Semaphore::new(blobs::MAX_SERVING)),
            blob_pending: HashMap::new(),
            blob_served_tx,
            blob_served_rx,
            config,
            data,
            _lock: lock,
            swarm,
            peer_id,
            projects,
            sessions: Sessions::default(),
            presence: PresenceTable::default(),
            connected: HashSet::new(),
            dial_targets,
            dialed_up: HashMap::new(),
            lan_peers: HashMap::new(),
            failing: FailingPeers::default(),
            waiters: Vec::new(),
            commands,
            events,
            cancel,
            gpu,
            worker,
            host_name,
            jobs_view: JobsView::default(),
            listen_addrs: listen_addrs.clone(),
            unsynced: HashSet::new(),
            disk_sync_due: None,
            outboxes: HashMap::new(),
            missing: VecDeque::new(),
            missing_check_due: None,
            retries: 0,
            heads_checks: HashMap::new(),
            read_views: HashMap::new(),
        };
        Ok((runtime, listen_addrs))
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    pub fn serves_control(&self) -> bool {
        self.config.control_socket
    }

    pub fn data_dir_root(&self) -> PathBuf {
        self.data.root().to_owned()
    }

    pub async fn run(mut self) -> Result<(), NodeError> {
        for addr in self.dial_targets.clone() {
            self.dial(&addr);
        }
        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        let mut retry = tokio::time::interval(self.config.retry_every);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                Some(command) = self.commands.recv() => self.on_command(command),
                Some(served) = self.blob_served_rx.recv() => self.on_blob_served(served),
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = heartbeat.tick() => self.publish_presence(),
                _ = retry.tick() => self.retry(),
                () = at(self.disk_sync_due) => self.sync_to_disk(),
                Some((project_id, e)) = self.disk_failed_rx.recv() => {
                    error!("project {project_id}: writing changes to disk failed: {e}");
                    self.reload(&project_id);
                }
                () = at(self.missing_check_due) => self.ask_for_missing_changes(),
            }
        }
        self.farewell().await;
        self.finish();
        Ok(())
    }

    /// Before stopping, let the pushes under way be answered (at most
    /// [`FAREWELL`]): the last edits (the job runner's jobs given back, a result
    /// written as it stopped) reach the peers now rather than with the next sync.
    async fn farewell(&mut self) {
        let deadline = tokio::time::sleep(FAREWELL);
        tokio::pin!(deadline);
        while self.sessions.pushes_in_flight() {
            tokio::select! {
                biased;
                () = &mut deadline => {
                    debug!("stopping with pushes unanswered; peers get them by sync");
                    break;
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
            }
        }
    }

    /// Write the changes received from peers since the last time, and fsync them
    /// on the blocking pool: this task, which serves every peer and every local
    /// request, does not wait for a busy disk (17 nodes on one disk made it wait
    /// 0.3-0.6 s now and then). They are in the file at once (a crash of the
    /// process loses nothing); until the fsync ends a power cut may lose them, and
    /// peers send them again. If the disk refuses, the project goes back to what
    /// is on disk and every sync session of it starts over, so peers send those
    /// changes again. Local edits still wait for their own fsync.
    fn sync_to_disk(&mut self) {
        self.disk_sync_due = None;
        for project_id in std::mem::take(&mut self.unsynced) {
            let Some(store) = self.projects.get_mut(&project_id) else {
                continue;
            };
            match store.append().and_then(|()| store.sync_handle()) {
                Ok(Some((file, path))) => {
                    let failed = self.disk_failed_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = file.sync_data() {
                            let _ =
                                failed.try_send((project_id, format!("{}: {e}", path.display())));
                        }
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    error!("project {project_id}: writing received changes to disk failed: {e}");
                    self.reload(&project_id);
                }
            }
        }
    }

    fn finish(&mut self) {
        for (project_id, store) in &mut self.projects {
            if let Err(e) = store.save().and_then(|()| store.compact()) {
                error!("project {project_id}: saving at shutdown failed: {e}");
            }
        }
        crate::control::remove_socket(self.data.root());
        info!(peer_id = %self.peer_id, "node stopped; everything saved");
    }

    fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    // ---- commands -------------------------------------------------------------

    fn resolve(&self, wanted: Option<&str>) -> Result<String, ProjectError> {
        match wanted {
            Some(w) if self.projects.contains_key(w) => Ok(w.to_owned()),
            Some(w) => self
                .projects
                .iter()
                .find(|(_, s)| s.doc().project().is_ok_and(|p| p.settings.name == w))
                .map(|(id, _)| id.clone())
                .ok_or_else(|| {
                    ProjectError::Missing(format!("no project named '{w}' on this node"))
                }),
            None => {
                if let Some(current) = self
                    .data
                    .current_project()
                    .filter(|c| self.projects.contains_key(c))
                {
                    return Ok(current);
                }
                let mut ids = self.projects.keys();
                match (ids.next(), ids.next()) {
                    (Some(only), None) => Ok(only.clone()),
                    (None, _) => Err(ProjectError::Missing("no project on this node (run `reelmesh init NAME` or `reelmesh join TICKET`)".into())),
                    _ => Err(ProjectError::Missing("several projects here and none is current: pass --project".into())),
                }
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Edit {
                project,
                edit,
                reply,
            } => self.edit(project.as_deref(), edit, reply),
            Command::Read { project, reply } => {
                let mut views = std::mem::take(&mut self.read_views);
                let result =
                    self.ready_store(project.as_deref())
                        .and_then(|(project_id, store)| {
                            let heads = store.doc_mut().heads();
                            if let Some((seen, project)) = views.get(&project_id)
                                && *seen == heads
                            {
                                return Ok((project_id, project.clone(), heads));
                            }
                            let project = store
                                .doc()
                                .project()
                                .map_err(|e| ProjectError::Disk(e.to_string()))?;
                            views.insert(project_id.clone(), (heads.clone(), project.clone()));
                            Ok((project_id, project, heads))
                        });
                self.read_views = views;
                let _ = reply.send(result);
            }
            Command::ReadWith {
                project,
                read,
                reply,
            } => {
                let result = self
                    .ready_store(project.as_deref())
                    .map(|(project_id, store)| {
                        read(store.doc_mut());
                        project_id
                    });
                let _ = reply.send(result);
            }
            Command::WaitHeads {
                project,
                heads,
                reply,
            } => match self.resolve(project.as_deref()) {
                Ok(project_id) => {
                    self.waiters.push(Waiter {
                        project_id: project_id.clone(),
                        heads,
                        reply,
                    });
                    self.wake_waiters(&project_id);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peer_rows());
            }
            Command::BlobRequest {
                peer,
                request,
                reply,
            } => self.send_blob_request(peer, &request, reply),
            Command::RejectPeer { peer, reason } => self.reject_peer(peer, reason),
            Command::PublishJobs { message } => self.publish_jobs(&message),
            Command::JobsView { progress, reply } => {
                let offers = self.jobs_view.live_offers(self.config.offline_after);
                let progress = if progress {
                    self.jobs_view.progress.values().cloned().collect()
                } else {
                    Vec::new()
                };
                let _ = reply.send((offers, progress));
            }
            Command::Dial { addr } => {
                if !self.dial_targets.contains(&addr) {
                    self.dial_targets.push(addr.clone());
                }
                self.dial(&addr);
            }
        }
    }

    /// The project asked for, if it is here and has arrived (not an empty replica).
    fn ready_store(
        &mut self,
        project: Option<&str>,
    ) -> Result<(String, &mut ProjectStore), ProjectError> {
        let project_id = self.resolve(project)?;
        let store = self
            .projects
            .get_mut(&project_id)
            .ok_or_else(|| ProjectError::Missing(format!("project {project_id} vanished")))?;
        if !store.doc().is_ready() {
            return Err(ProjectError::NotArrived(project_id));
        }
        Ok((project_id, store))
    }

    /// Run a local edit, push its changes and answer `reply` once they are on
    /// disk. The edit is appended to the log here and fsynced on the blocking
    /// pool: the node's task goes on serving peers meanwhile (an fsync took 0.3-0.6
    /// s now and then with 17 nodes on one busy disk, and every claim is an edit),
    /// and the changes go to peers at once. The caller hears "done" only once the
    /// disk holds them, so nothing acknowledged is lost by a crash; what peers got
    /// before a crash comes back to this node by sync (a restarted node writes
    /// under a new Automerge actor, so nothing it writes next clashes with it). A
    /// failed fsync answers the error and reloads the project from disk.
    fn edit(
        &mut self,
        project: Option<&str>,
        edit: super::EditFn,
        reply: oneshot::Sender<Result<String, ProjectError>>,
    ) {
        let (project_id, store) = match self.ready_store(project) {
            Ok(found) => found,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let before = store.doc_mut().heads();
        if let Err(e) = edit(store.doc_mut()) {
            // The edit may have written part of itself: go back to the saved copy.
            self.reload(&project_id);
            let _ = reply.send(Err(ProjectError::Refused(e)));
            return;
        }
        let durable = match store.append().and_then(|()| store.sync_handle()) {
            Ok(durable) => durable,
            Err(e) => {
                let _ = reply.send(Err(ProjectError::Disk(format!(
                    "saving project {project_id}: {e}"
                ))));
                return;
            }
        };
        let heads = store.doc_mut().heads();
        if heads != before {
            let changes = store.doc_mut().changes_since(&before);
            self.emit(NodeEvent::DocChanged {
                project_id: project_id.clone(),
                heads,
                origin: ChangeOrigin::Local,
            });
            self.push_changes(&project_id, changes);
            self.wake_waiters(&project_id);
        }
        let Some((file, path)) = durable else {
            let _ = reply.send(Ok(project_id));
            return;
        };
        let failed = self.disk_failed_tx.clone();
        tokio::task::spawn_blocking(move || match file.sync_data() {
            Ok(()) => {
                let _ = reply.send(Ok(project_id));
            }
            Err(e) => {
                let error = format!("{}: {e}", path.display());
                let _ = failed.try_send((project_id.clone(), error.clone()));
                let _ = reply.send(Err(ProjectError::Disk(format!(
                    "saving project {project_id}: {error}"
                ))));
            }
        });
    }

    fn peer_rows(&self) -> Vec<PeerRow> {
        let mut peers = vec![self.self_row()];
        peers.extend(
            self.presence
                .rows(&self.connected, self.config.offline_after),
        );
        peers
    }

    fn status(&mut self) -> NodeStatusReport {
        let peers = self.peer_rows();
        let projects = self
            .projects
            .iter()
            .map(|(project_id, store)| {
                let summary = store.doc().name_and_shot_count().ok();
                ProjectSummary {
                    project_id: project_id.clone(),
                    name: summary.as_ref().map(|(name, _)| name.clone()),
                    shots: summary.map_or(0, |(_, shots)| shots),
                }
            })
            .collect();
        NodeStatusReport {
            node_id: self.peer_id.to_string(),
            listen_addrs: self.listen_addrs.iter().map(ToString::to_string).collect(),
            projects,
            peers,
            failing_peers: self.failing.rows(Instant::now()),
        }
    }

    fn wake_waiters(&mut self, project_id: &str) {
        let Some(store) = self.projects.get_mut(project_id) else {
            return;
        };
        let waiters = std::mem::take(&mut self.waiters);
        for waiter in waiters {
            if waiter.reply.is_closed() {
                continue;
            }
            if waiter.project_id == project_id && store.doc_mut().has_heads(&waiter.heads) {
                let _ = waiter.reply.send(Ok(()));
            } else {
                self.waiters.push(waiter);
            }
        }
    }

    // ---- presence -------------------------------------------------------------

    fn my_presence(&self) -> Presence {
        let sample = self.gpu.borrow().clone();
        let worker = self.worker.borrow().clone();
        let paused = worker.paused.as_ref().map(|why| format!("paused: {why}"));
        let problem = paused
            .clone()
            .or_else(|| worker.problem.clone())
            .or(sample.problem);
        let status = if worker.current_job.is_some() {
            NodeStatus::Busy
        } else if paused.is_some() || (problem.is_some() && self.config.comfy_url.is_some()) {
            NodeStatus::Error
        } else {
            NodeStatus::Idle
        };
        Presence {
            node_id: self.peer_id.to_string(),
            host_name: self.host_name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            gpu: sample.gpu,
            status,
            status_detail: problem,
            current_job: worker.current_job,
            comfy_url: self.config.comfy_url.clone(),
            capabilities: worker.capabilities,
            projects: self
                .projects
                .iter()
                .filter(|(_, s)| s.doc().is_ready())
                .map(|(id, _)| id.clone())
                .collect(),
            peers: if self.connected.len() <= MAX_PRESENCE_PEERS {
                self.connected.iter().map(ToString::to_string).collect()
            } else {
                Vec::new()
            },
            heads: BTreeMap::new(),
            sent_at_ms: now_ms(),
        }
    }

    fn self_row(&self) -> PeerRow {
        let mut row =
            PeerRow::from_presence(&self.my_presence(), Some(Duration::ZERO), true, false);
        row.this_node = true;
        row
    }

    fn publish_presence(&mut self) {
        if self.config.offline {
            return;
        }
        let mut presence = self.my_presence();
        for (project_id, store) in self.projects.iter_mut().take(MAX_PRESENCE_HEAD_PROJECTS) {
            let heads = store.doc_mut().heads();
            if store.doc().is_ready() && heads.len() <= MAX_PRESENCE_HEADS {
                presence.heads.insert(project_id.clone(), heads);
            }
        }
        self.publish(mesh::presence_topic(), presence.encode(), "presence");
    }

    /// Publish on a gossip topic (nothing when offline; no subscriber yet is normal).
    fn publish(&mut self, topic: gossipsub::IdentTopic, bytes: Vec<u8>, what: &str) {
        if self.config.offline {
            return;
        }
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            debug!("{what} not published: {e}");
        }
    }

    /// Refuse a gossip message that did not decode: the author is dropped when it
    /// sent it to us itself; a relayed one is only logged (the relay is not to blame).
    fn refuse_gossip(
        &mut self,
        source: PeerId,
        author: PeerId,
        message_id: &gossipsub::MessageId,
        reason: String,
    ) {
        self.report(message_id, &source, gossipsub::MessageAcceptance::Reject);
        if source == author {
            self.reject_peer(source, reason);
        } else {
            warn!("peer {author} (relayed by {source}): {reason}");
        }
    }

    fn on_jobs_gossip(
        &mut self,
        source: PeerId,
        message_id: &gossipsub::MessageId,
        message: &gossipsub::Message,
    ) {
        use reelmesh_protocol::wire::JobsGossip;
        let Some(author) = message.source else {
            self.report(message_id, &source, gossipsub::MessageAcceptance::Reject);
            return;
        };
        match JobsGossip::decode(&message.data, &author.to_string()) {
            Ok(JobsGossip::Offer(offer)) => {
                self.report(message_id, &source, gossipsub::MessageAcceptance::Accept);
                if self.jobs_view.offer(offer.clone()) {
                    self.emit(NodeEvent::Offer(offer));
                }
            }
            Ok(JobsGossip::Progress(update)) => {
                self.report(message_id, &source, gossipsub::MessageAcceptance::Accept);
                self.jobs_view.progress(&update);
                self.emit(NodeEvent::Job(update));
            }
            Err(e) => {
                self.refuse_gossip(source, author, message_id, format!("bad jobs message: {e}"));
            }
        }
    }

    /// This node's offer or progress: kept and published.
    fn publish_jobs(&mut self, message: &reelmesh_protocol::wire::JobsGossip) {
        use reelmesh_protocol::wire::JobsGossip;
        match message {
            JobsGossip::Offer(offer) => {
                self.jobs_view.offer(offer.clone());
            }
            JobsGossip::Progress(update) => {
                // The runner shows its own progress locally (every step; gossip
                // carries fewer).
                self.jobs_view.progress(update);
            }
        }
        self.publish(mesh::jobs_topic(), message.encode(), "jobs message");
    }

    fn on_presence(
        &mut self,
        source: PeerId,
        message_id: &gossipsub::MessageId,
        message: &gossipsub::Message,
    ) {
        let Some(author) = message.source else {
            self.report(message_id, &source, gossipsub::MessageAcceptance::Reject);
            return;
        };
        match Presence::decode(&message.data, &author.to_string()) {
            Ok(presence) => {
                self.report(message_id, &source, gossipsub::MessageAcceptance::Accept);
                let newly_offered: Vec<String> = presence
                    .projects
                    .iter()
                    .filter(|p| self.projects.contains_key(*p))
                    .cloned()
                    .collect();
                let behind = self.lacking_heads(author, &presence.heads);
                self.presence.record(author, presence);
                for (project_id, heads) in behind {
                    self.ask_for(author, &project_id, &heads);
                }
                self.emit(NodeEvent::Presence(author));
                // A peer that now holds a project it refused earlier gets offered it again.
                for project_id in newly_offered {
                    if let Some(session) = self.sessions.get(&author, &project_id)
                        && session.refused_until.take().is_some()
                    {
                        self.offer(author, &project_id);
                    }
                }
            }
            Err(e) => {
                self.refuse_gossip(source, author, message_id, format!("bad presence: {e}"));
            }
        }
    }

    /// The projects of which this node still lacks heads `peer` announced at least
    /// [`HEADS_GRACE`] ago: a push lost on the way, or one that never came because a
    /// relay missed this node. Newer heads may still be on their way; each peer's
    /// heads are kept for a check once that time has passed.
    fn lacking_heads(
        &mut self,
        peer: PeerId,
        heads: &BTreeMap<String, Vec<String>>,
    ) -> Vec<(String, Vec<String>)> {
        let now = Instant::now();
        let due = self
            .heads_checks
            .get(&peer)
            .is_none_or(|(at, _)| now.duration_since(*at) >= HEADS_GRACE);
        if !due {
            return Vec::new();
        }
        let Some((_, announced)) = self.heads_checks.insert(peer, (now, heads.clone())) else {
            return Vec::new();
        };
        announced
            .into_iter()
            .filter(|(project_id, heads)| {
                self.projects
                    .get_mut(project_id)
                    .is_some_and(|store| !store.doc_mut().has_heads(heads))
            })
            .collect()
    }

    /// Ask for changes `peer` has (these `heads` and what they depend on) by sync:
    /// from `peer` if it is connected, else from every connected peer (one of them
    /// relays for it).
    fn ask_for(&mut self, peer: PeerId, project_id: &str, heads: &[String]) {
        debug!(
            "project {project_id}: {peer} announced changes this node has not got; asking by sync"
        );
        let ask = if self.connected.contains(&peer) {
            vec![peer]
        } else {
            self.sessions.peers()
        };
        for peer in ask {
            if let Some(session) = self.sessions.get(&peer, project_id) {
                session.state.peer_has(heads);
            }
            self.offer(peer, project_id);
        }
    }

    fn report(
        &mut self,
        message_id: &gossipsub::MessageId,
        source: &PeerId,
        acceptance: gossipsub::MessageAcceptance,
    ) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message_id, source, acceptance);
    }

    // ---- connections ----------------------------------------------------------

    fn dial(&mut self, addr: &Multiaddr) {
        if self.dialed_up.contains_key(addr) {
            return;
        }
        if let Err(e) = self.swarm.dial(addr.clone()) {
            debug!("dial {addr}: {e}");
        }
    }

    /// Dial every peer mDNS found that is not connected (and not being dialled).
    fn redial_lan_peers(&mut self) {
        for (peer, addrs) in &self.lan_peers {
            if self.connected.contains(peer) {
                continue;
            }
            let opts = DialOpts::peer_id(*peer)
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .addresses(addrs.clone())
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!("dial {peer} (found by mdns): {e}");
            }
        }
    }

    /// Redial, and every [`FULL_SYNC_EVERY`] ticks start a sync exchange for each
    /// project whose heads the peer's heartbeats do not announce (too many heads or
    /// projects, an older node): there, nothing else finds what a push lost.
    fn retry(&mut self) {
        for addr in self.dial_targets.clone() {
            self.dial(&addr);
        }
        self.redial_lan_peers();
        self.retries += 1;
        if self.retries.is_multiple_of(FULL_SYNC_EVERY) {
            for peer in self.sessions.peers() {
                for project_id in self.projects.keys().cloned().collect::<Vec<_>>() {
                    let watched = self
                        .heads_checks
                        .get(&peer)
                        .is_some_and(|(_, heads)| heads.contains_key(&project_id));
                    if !watched {
                        self.offer(peer, &project_id);
                    }
                }
            }
        }
    }

    /// A dial failed: count it for each address tried (see [`FailingPeers`]).
    fn on_dial_failed(&mut self, peer: Option<PeerId>, error: &DialError) {
        let failures = failure::dial_failures(error);
        if failures.is_empty() {
            debug!("dial to {peer:?} failed: {error}");
        }
        for (addr, failure) in failures {
            let (row, warn) = self.failing.record(
                Direction::Outgoing,
                &addr,
                peer,
                &failure,
                Instant::now(),
                now_ms(),
            );
            let who = match &row.peer_id {
                Some(peer) => format!("dial to {} (peer {peer})", row.address),
                None => format!("dial to {}", row.address),
            };
            log_failure(&who, &row, &failure, warn);
            self.emit(NodeEvent::ConnectionFailed(row));
        }
    }

    /// A connection from `from` failed before it was established (the peer id
    /// is rarely known: the private layer refuses before Noise names anyone).
    fn on_incoming_failed(&mut self, from: &Multiaddr, peer: Option<PeerId>, error: &ListenError) {
        let Some(failure) = failure::incoming_failure(error) else {
            debug!("incoming connection from {from} failed: {error}");
            return;
        };
        let (row, warn) = self.failing.record(
            Direction::Incoming,
            from,
            peer,
            &failure,
            Instant::now(),
            now_ms(),
        );
        let who = match &row.peer_id {
            Some(peer) => format!("connection from {from} (peer {peer})"),
            None => format!("connection from {from}"),
        };
        log_failure(&who, &row, &failure, warn);
        self.emit(NodeEvent::ConnectionFailed(row));
    }

    fn reject_peer(&mut self, peer: PeerId, reason: String) {
        self.sessions.forget_peer(&peer);
        let connections = self
            .swarm
            .network_info()
            .connection_counters()
            .num_established();
        let closing = self.swarm.disconnect_peer_id(peer).is_ok();
        warn!(
            "peer {peer}: {reason}; dropping its connection{}",
            if closing { "" } else { " (already gone)" }
        );
        debug!("{connections} connections established before the drop");
        self.emit(NodeEvent::PeerRejected { peer, reason });
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!("listening on {address}/p2p/{}", self.peer_id);
                self.listen_addrs.push(address.clone());
                self.emit(NodeEvent::Listening(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if endpoint.is_dialer() {
                    self.dialed_up
                        .insert(endpoint.get_remote_address().clone(), peer_id);
                    self.failing
                        .dial_succeeded(endpoint.get_remote_address(), peer_id);
                }
                if num_established.get() == 1 {
                    info!(
                        "peer {peer_id} connected ({})",
                        endpoint.get_remote_address()
                    );
                    self.connected.insert(peer_id);
                    self.sessions.connect(peer_id);
                    self.emit(NodeEvent::PeerConnected(peer_id));
                    for project_id in self.projects.keys().cloned().collect::<Vec<_>>() {
                        self.offer(peer_id, &project_id);
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established,
                cause,
                ..
            } => {
                if endpoint.is_dialer() {
                    self.dialed_up.remove(endpoint.get_remote_address());
                }
                if num_established == 0 {
                    info!(
                        "peer {peer_id} disconnected{}",
                        cause.map(|c| format!(": {c}")).unwrap_or_default()
                    );
                    self.connected.remove(&peer_id);
                    self.sessions.disconnect(&peer_id);
                    self.emit(NodeEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                self.on_dial_failed(peer_id, &error);
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                peer_id,
                ..
            } => self.on_incoming_failed(&send_back_addr, peer_id, &error),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Blobs(event)) => self.on_blob_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => match event {
                gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    message,
                } => {
                    if message.topic == mesh::jobs_topic().hash() {
                        self.on_jobs_gossip(propagation_source, &message_id, &message);
                    } else {
                        self.on_presence(propagation_source, &message_id, &message);
                    }
                }
                gossipsub::Event::Subscribed { .. } => self.publish_presence(),
                _ => {}
            },
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            })) => {
                debug!("peer {peer}: ping failed ({e}); closing that connection");
                self.swarm.close_connection(connection);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    debug!("mdns: found {peer} at {addr}");
                    let addrs = self.lan_peers.entry(peer).or_default();
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
                self.redial_lan_peers();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
                for (peer, addr) in gone {
                    if let Some(addrs) = self.lan_peers.get_mut(&peer) {
                        addrs.retain(|a| *a != addr);
                        if addrs.is_empty() {
                            self.lan_peers.remove(&peer);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    // ---- document sync --------------------------------------------------------

    /// After changes from `from` merged: answer it if they came by sync (`answer`),
    /// and pass them on to the peers
    /// it is not connected to (as its last presence said). Those it is connected to
    /// get them from it, or from whoever it got them from (each relay skips the
    /// peers of its own source, and the author sends to all its peers): in a full
    /// mesh nobody relays, instead of every node sending every change to every
    /// other. The presence list is a hint: a peer missed because of a stale one
    /// gets the changes at the next retry tick or change.
    fn relay(&mut self, from: PeerId, project_id: &str, answer: bool) {
        let reached = self.presence.reaches(&from);
        let targets: Vec<PeerId> = self
            .sessions
            .peers()
            .into_iter()
            .filter(|peer| {
                if *peer == from {
                    answer
                } else {
                    !reached.is_some_and(|r| r.contains(peer))
                }
            })
            .collect();
        for peer in targets {
            if peer == from {
                self.answer(peer, project_id);
            } else {
                self.offer(peer, project_id);
            }
        }
    }

    /// Open a sync exchange with (peer, project): send the next message (or, if
    /// one is in flight, once it is answered).
    fn offer(&mut self, peer: PeerId, project_id: &str) {
        self.send_sync(peer, project_id, Say::Open);
    }

    /// Tell the peer this node's new heads after its changes came by sync, within
    /// the exchange's replies: without it, the peer keeps its old idea of what this
    /// node has, and sends that again.
    fn answer(&mut self, peer: PeerId, project_id: &str) {
        self.send_sync(peer, project_id, Say::Answer);
    }

    /// Go on with an exchange: send the next sync message only if it carries or
    /// asks for changes (`ProjectDoc::generate_sync_reply`), within the exchange's
    /// replies.
    fn reply(&mut self, peer: PeerId, project_id: &str) {
        self.send_sync(peer, project_id, Say::Reply);
    }

    fn send_sync(&mut self, peer: PeerId, project_id: &str, say: Say) {
        let Some(store) = self.projects.get_mut(project_id) else {
            return;
        };
        let Some(session) = self.sessions.get(&peer, project_id) else {
            return;
        };
        if session.in_flight.is_some() {
            match say {
                Say::Open => session.offer_pending = true,
                Say::Answer => session.answer_pending = true,
                Say::Reply => {}
            }
            return;
        }
        if session
            .refused_until
            .is_some_and(|until| Instant::now() < until)
        {
            return;
        }
        session.refused_until = None;
        if say == Say::Open {
            session.offer_pending = false;
            session.start_exchange();
        } else if !session.may_reply() {
            return;
        }
        if say != Say::Reply {
            session.answer_pending = false;
        }
        let message = if say == Say::Reply {
            store.doc_mut().generate_sync_reply(&mut session.state)
        } else {
            store.doc_mut().generate_sync_message(&mut session.state)
        };
        match message {
            Ok(Some(message)) => {
                let frame = SyncRequest {
                    project_id: project_id.to_owned(),
                    message,
                }
                .encode();
                if frame.len() > self.config.mesh.max_sync_bytes {
                    error!(
                        "project {project_id}: a sync message of {} bytes is over the {}-byte frame limit; raise it",
                        frame.len(),
                        self.config.mesh.max_sync_bytes
                    );
                    return;
                }
                let request = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, Frame::Bytes(frame));
                self.sessions.sent(request, peer, project_id);
            }
            Ok(None) => {}
            Err(e) => {
                self.sessions.reset(&peer, project_id);
                self.reject_peer(peer, format!("project {project_id}: {e}"));
            }
        }
    }

    // ---- pushing local changes --------------------------------------------------

    /// Push one edit's changes to every peer: built once, sent to each session
    /// whose previous push has been answered (the others get it with their next).
    fn push_changes(&mut self, project_id: &str, changes: Changes) {
        if changes.is_empty() || !self.config.mesh.push_changes {
            return;
        }
        let seq = self
            .outboxes
            .entry(project_id.to_owned())
            .or_default()
            .add(changes);
        for peer in self.sessions.peers() {
            if let Some(session) = self.sessions.get(&peer, project_id) {
                session.push_next.get_or_insert(seq);
            }
            self.push(peer, project_id);
        }
        self.trim_outbox(project_id);
    }

    /// Send this peer what the outbox holds for it, unless a push is in flight.
    fn push(&mut self, peer: PeerId, project_id: &str) {
        let Some(outbox) = self.outboxes.get(project_id) else {
            return;
        };
        let Some(session) = self.sessions.get(&peer, project_id) else {
            return;
        };
        if session.push_in_flight.is_some()
            || session
                .refused_until
                .is_some_and(|until| Instant::now() < until)
        {
            return;
        }
        let Some(next) = session.push_next else {
            return;
        };
        if next >= outbox.end() {
            return;
        }
        let limit = self.config.mesh.max_sync_bytes.saturating_sub(256);
        let Some((changes, upto)) = outbox.from(next, limit) else {
            // Fell too far behind: the sync exchange sends the rest.
            session.push_next = Some(outbox.end());
            self.offer(peer, project_id);
            return;
        };
        let sent = changes.without_bytes();
        let frame = ChangesPush {
            project_id: project_id.to_owned(),
            changes: changes.chunks,
        }
        .encode();
        if frame.len() > self.config.mesh.max_sync_bytes {
            // One edit bigger than a frame: leave it to the sync exchange, which
            // says so if it cannot send it either.
            session.push_next = Some(upto);
            self.offer(peer, project_id);
            return;
        }
        session.state.mark_sent(&sent);
        let request = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, Frame::Bytes(frame));
        self.sessions.pushed(
            request,
            Pushed {
                peer,
                project_id: project_id.to_owned(),
                upto,
                changes: sent,
            },
        );
    }

    fn trim_outbox(&mut self, project_id: &str) {
        if let Some(outbox) = self.outboxes.get_mut(project_id) {
            let lowest = self
                .sessions
                .lowest_push(project_id)
                .unwrap_or_else(|| outbox.end());
            outbox.trim(lowest);
        }
    }

    /// Pushed changes that still wait on the same changes as [`MISSING_CHANGES_AFTER`]
    /// ago: ask their pusher by sync.
    fn ask_for_missing_changes(&mut self) {
        let now = Instant::now();
        while let Some((due, _, _, _)) = self.missing.front() {
            if *due > now {
                break;
            }
            let Some((_, peer, project_id, hashes)) = self.missing.pop_front() else {
                break;
            };
            let Some(store) = self.projects.get_mut(&project_id) else {
                continue;
            };
            let still = store.doc_mut().missing_changes();
            let hashes: Vec<String> = hashes.into_iter().filter(|h| still.contains(h)).collect();
            if !hashes.is_empty() {
                debug!(
                    "project {project_id}: changes {peer} pushed still wait on others; asking it by sync"
                );
                if let Some(session) = self.sessions.get(&peer, &project_id) {
                    session.state.peer_has(&hashes);
                }
                self.offer(peer, &project_id);
            }
        }
        self.missing_check_due = self.missing.front().map(|(due, _, _, _)| *due);
    }

    fn on_sync_event(&mut self, event: request_response::Event<Frame, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => match request {
                    Frame::Bytes(bytes) => self.on_sync_request(peer, &bytes, channel),
                    Frame::TooLarge { limit } => {
                        respond(
                            &mut self.swarm,
                            channel,
                            &SyncResponse::Rejected(format!("over the {limit}-byte limit")),
                        );
                        self.reject_peer(peer, format!("sync request over the {limit}-byte limit"));
                    }
                },
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(pushed) = self.sessions.push_answered(request_id) {
                        self.on_push_answered(pushed, &response);
                        return;
                    }
                    let Some((peer, project_id)) = self.sessions.answered(request_id) else {
                        return;
                    };
                    if response.is_empty() {
                        // The peer dropped the request without an answer (it is
                        // shutting down, or busy): start the exchange over later.
                        debug!("peer {peer} did not answer a sync request for {project_id}");
                        self.sessions.reset(&peer, &project_id);
                        return;
                    }
                    match SyncResponse::decode(&response) {
                        Ok(SyncResponse::Accepted) => {
                            let say = self.sessions.get(&peer, &project_id).map_or(
                                Say::Reply,
                                |session| {
                                    if session.offer_pending {
                                        Say::Open
                                    } else if session.answer_pending {
                                        Say::Answer
                                    } else {
                                        Say::Reply
                                    }
                                },
                            );
                            self.send_sync(peer, &project_id, say);
                        }
                        Ok(SyncResponse::Rejected(reason)) => {
                            debug!("peer {peer} refused project {project_id}: {reason}");
                            if let Some(session) = self.sessions.get(&peer, &project_id) {
                                session.refused_until =
                                    Some(Instant::now() + Duration::from_secs(30));
                                session.state = reelmesh_protocol::document::SyncState::new();
                            }
                        }
                        Err(e) => self.reject_peer(peer, format!("malformed sync response: {e}")),
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.sessions.failed(request_id);
                match error {
                    request_response::OutboundFailure::Io(e)
                        if e.kind() == std::io::ErrorKind::InvalidData =>
                    {
                        self.reject_peer(peer, format!("unreadable sync response: {e}"));
                    }
                    other => debug!("sync request to {peer} failed: {other}"),
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => match error {
                request_response::InboundFailure::Io(e) => {
                    self.reject_peer(peer, format!("unreadable sync request: {e}"));
                }
                other => debug!("sync request from {peer} failed: {other}"),
            },
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// A push was answered: on to the next entries, or (refused) leave this peer to
    /// the sync exchange for a while, as a refused sync message does.
    fn on_push_answered(&mut self, pushed: Pushed, response: &[u8]) {
        let Pushed {
            peer,
            project_id,
            upto,
            changes,
        } = pushed;
        let project_id = project_id.as_str();
        match SyncResponse::decode(response) {
            Ok(SyncResponse::Accepted) => {
                if let Some(session) = self.sessions.get(&peer, project_id) {
                    session.push_next = Some(upto);
                    session.state.pushed_to_peer(&changes);
                }
                self.push(peer, project_id);
                self.trim_outbox(project_id);
            }
            Ok(SyncResponse::Rejected(reason)) => {
                debug!("peer {peer} refused changes of project {project_id}: {reason}");
                if let Some(session) = self.sessions.get(&peer, project_id) {
                    session.push_next = None;
                    session.refused_until = Some(Instant::now() + Duration::from_secs(30));
                    session.state = reelmesh_protocol::document::SyncState::new();
                }
                self.trim_outbox(project_id);
            }
            Err(_) if response.is_empty() => {
                // Dropped unanswered (the peer is shutting down or busy): the sync
                // exchange finds out later what it has.
                self.sessions.reset(&peer, project_id);
                self.trim_outbox(project_id);
            }
            Err(e) => self.reject_peer(peer, format!("malformed sync response: {e}")),
        }
    }

    fn on_sync_request(&mut self, peer: PeerId, frame: &[u8], channel: ResponseChannel<Vec<u8>>) {
        let request = match SyncFrame::decode(frame) {
            Ok(request) => request,
            Err(e) => {
                respond(
                    &mut self.swarm,
                    channel,
                    &SyncResponse::Rejected(e.to_string()),
                );
                self.reject_peer(peer, format!("malformed sync request: {e}"));
                return;
            }
        };
        let project_id = request.project_id().to_owned();
        let Some(store) = self.projects.get_mut(&project_id) else {
            respond(
                &mut self.swarm,
                channel,
                &SyncResponse::Rejected(format!("unknown project {project_id}")),
            );
            return;
        };
        let Some(session) = self.sessions.get(&peer, &project_id) else {
            respond(
                &mut self.swarm,
                channel,
                &SyncResponse::Rejected("not connected".into()),
            );
            return;
        };
        let pushed = matches!(request, SyncFrame::Changes(_));
        let applied = match &request {
            SyncFrame::Sync(request) => {
                session.received();
                store.doc_mut().receive_sync_message(
                    &mut session.state,
                    &request.message,
                    &project_id,
                )
            }
            SyncFrame::Changes(push) => store.doc_mut().apply_changes(&push.changes, &project_id),
        };
        let applied = match applied {
            Ok(applied) => applied,
            Err(e) => {
                self.reload(&project_id);
                respond(
                    &mut self.swarm,
                    channel,
                    &SyncResponse::Rejected(e.to_string()),
                );
                self.reject_peer(peer, format!("project {project_id}: {e}"));
                return;
            }
        };
        if applied.changed {
            self.unsynced.insert(project_id.clone());
            self.disk_sync_due
                .get_or_insert_with(|| Instant::now() + DISK_SYNC_AFTER);
        }
        respond(&mut self.swarm, channel, &SyncResponse::Accepted);
        if pushed {
            let missing = store.doc_mut().missing_changes();
            if let Some(session) = self.sessions.get(&peer, &project_id) {
                session
                    .state
                    .pushed_by_peer(&applied.pushed, missing.is_empty());
            }
            // The pusher pushes the same changes to every peer it reaches: an
            // exchange of ours with those need not send them too. (A peer that
            // lacks them anyway asks by name, and gets them.)
            if let Some(reached) = self.presence.reaches(&peer) {
                for other in reached {
                    if let Some(session) = self.sessions.get(other, &project_id) {
                        session.state.mark_sent(&applied.pushed);
                    }
                }
            }
            let queued = self
                .missing
                .iter()
                .any(|(_, p, id, _)| *p == peer && *id == project_id);
            if !missing.is_empty() && !queued {
                let due = Instant::now() + MISSING_CHANGES_AFTER;
                self.missing
                    .push_back((due, peer, project_id.clone(), missing));
                self.missing_check_due.get_or_insert(due);
            }
        }
        if applied.changed {
            if applied.renumbered > 0 {
                info!(
                    "project {project_id}: {} shot codes renumbered after merging {peer}'s changes",
                    applied.renumbered
                );
            }
            let heads = store.doc_mut().heads();
            self.emit(NodeEvent::DocChanged {
                project_id: project_id.clone(),
                heads,
                origin: ChangeOrigin::Peer(peer),
            });
            self.push_changes(&project_id, applied.renumbering);
            self.relay(peer, &project_id, !pushed);
            self.wake_waiters(&project_id);
        } else if !pushed {
            self.reply(peer, &project_id);
        }
    }
}

/// A refusal by the private mesh layer at WARN (`warn`: the first, then one a
/// minute per address, see [`FailingPeers::record`]); anything else at debug, as
/// peers that are away are routine (`reelmesh status` lists them).
fn log_failure(who: &str, row: &FailingPeer, failure: &ConnectionFailure, warn: bool) {
    if warn && failure.kind == FailureKind::NotInThisMesh {
        let repeats = if row.failures > 1 {
            format!(
                "; {} times since it began (more at debug level)",
                row.failures
            )
        } else {
            String::new()
        };
        warn!(
            "{who} refused: {} ({}){repeats}",
            failure.reason(),
            failure.error
        );
    } else {
        debug!("{who} failed: {}", failure.error);
    }
}

/// Resolves at `when`, never when `None`.
async fn at(when: Option<Instant>) {
    match when {
        Some(when) => tokio::time::sleep_until(when.into()).await,
        None => std::future::pending().await,
    }
}

fn respond(
    swarm: &mut Swarm<Behaviour>,
    channel: ResponseChannel<Vec<u8>>,
    response: &SyncResponse,
) {
    let _ = swarm
        .behaviour_mut()
        .sync
        .send_response(channel, response.encode());
}

/// Drop the in-memory document and reopen the saved one (everything applied so far
/// was saved, so nothing accepted is lost).
impl Runtime {
    /// Go back to the project as saved on disk, and start every sync session of it
    /// over: changes received but not written yet (see [`DISK_SYNC_AFTER`]) are
    /// then sent again by the peers that have them.
    fn reload(&mut self, project_id: &str) {
        let Some(store) = self.projects.get_mut(project_id) else {
            return;
        };
        match ProjectStore::open(store.dir()) {
            Ok(fresh) => *store = fresh,
            Err(e) => error!("project {project_id}: reloading after a refused change failed: {e}"),
        }
        self.unsynced.remove(project_id);
        for peer in self.sessions.peers() {
            self.sessions.reset(&peer, project_id);
            self.offer(peer, project_id);
        }
    }
}

pub(super) fn spawn_gpu_probe(
    comfy_url: Option<String>,
    every: Duration,
    cancel: CancellationToken,
) -> watch::Receiver<GpuSample> {
    let (tx, rx) = watch::channel(GpuSample::default());
    tokio::spawn(async move {
        let mut probe = GpuProbe::new(comfy_url);
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                _ = tick.tick() => {
                    let sample = probe.sample().await;
                    if tx.send(sample).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}
