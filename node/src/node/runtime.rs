//! The event loop: the only owner of the swarm, the project stores, the sync
//! sessions and the peers table.

mod blobs;
mod gossip;
mod peers;
mod sync;

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
use sync::sessions::{Outbox, Pushed, Sessions};

struct Waiter {
    project_id: String,
    heads: Vec<String>,
    reply: oneshot::Sender<Result<(), ProjectError>>,
}

/// A project's name and live shot count.
type NameAndShots = (String, usize);

pub(super) struct Runtime {
    config: NodeConfig,
    data: DataDir,
    _lock: DataDirLock,
    swarm: Swarm<Behaviour>,
    peer_id: PeerId,
    projects: BTreeMap<String, ProjectStore>,
    /// Each project's name and live shot count, with the heads they were read at
    /// (a status report reads them again only after a change).
    summaries: HashMap<String, (Vec<String>, Option<NameAndShots>)>,
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
            summaries: HashMap::new(),
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
                // Read again only where it changed since the last read (an edit of
                // one shot of 10,000 re-reads one shot).
                let result =
                    self.ready_store(project.as_deref())
                        .and_then(|(project_id, store)| {
                            let heads = store.doc_mut().heads();
                            let project = store
                                .doc_mut()
                                .project_now()
                                .map_err(|e| ProjectError::Disk(e.to_string()))?;
                            Ok((project_id, project, heads))
                        });
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
        let summaries = &mut self.summaries;
        let projects = self
            .projects
            .iter_mut()
            .map(|(project_id, store)| {
                let heads = store.doc_mut().heads();
                let summary = match summaries.get(project_id) {
                    Some((at, summary)) if *at == heads => summary.clone(),
                    _ => {
                        let summary = store.doc().name_and_shot_count().ok();
                        summaries.insert(project_id.clone(), (heads, summary.clone()));
                        summary
                    }
                };
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
