//! Render jobs on this node: offer, claim, run, record.
//!
//! ```text
//!  document (durable)                    runner task (one per node)                executor
//!  jobs{queued} ──DocChanged──▶ index (changed jobs only, via Automerge diffs)
//!  offers on gossip ─────────▶ assign(queued, live offers)  (same on every node)
//!  offer.intents ◀──────────── announce ours; wait the intent window (gossip delay)
//!                               uncontested: claim (one edit: claimed, claimant, attempt+1)
//!                               still ours? ──▶ run ──────────────────────────────▶ card / ComfyUI
//!  progress ◀──gossip + NodeEvent::Job── steps ◀──────────────────────────────────┘
//!  takes{..} + jobs{succeeded|failed|queued for a retry} ◀── batched edit ◀── outputs (BLAKE3)
//! ```
//! The runner is a task beside the node runtime and talks to it through a
//! [`NodeHandle`] like any other client. Every transition is an edit (saved,
//! fsynced, synced to peers); progress, previews and offers travel on gossip, never
//! in the document. One job runs at a time (one GPU); a few more may be claimed
//! ahead so the GPU never waits on the next claim ([`LOOKAHEAD`]).
//!
//! Placement is [`placement::assign`] over the live offers: every node computes the
//! same assignment and claims only its own jobs (no bid round per job). Views of the
//! offers differ for a moment, so when several jobs are handed out at once or claims
//! raced lately, a node first announces its claims on gossip and writes them only
//! when no other node contested them within the intent window (see [`intents`]):
//! races end on gossip, and the loser writes nothing. One job at a time is claimed
//! at once and runs after the window instead (see `CONTENTION_MEMORY`). A claim
//! runs only while the merged document still names this node; a claim lost later
//! (an intent that arrived too late, a partition) cancels the run and records nothing. A claimant
//! silent for the lease loses its jobs to the queue. A failed run goes back to the
//! queue for another node (the job remembers who failed it), up to its attempts; a
//! node that fails [`PAUSE_AFTER_FAILURES`] jobs in a row stops offering for a while.
//!
//! What a node can run ([`WorkerState::capabilities`]) is the built-in `card`
//! workflow plus every catalog workflow its ComfyUI can run: node classes and model
//! files from `/object_info`, VRAM from NVML or `/system_stats`. It is checked at
//! start, every [`CAPABILITY_REFRESH`], and after a run ComfyUI rejected.

mod capabilities;
mod claims;
mod execute;
mod faults;
pub mod follow;
mod health;
mod index;
mod intents;
mod leases;
mod offer;
pub mod queue;
mod run;
mod speed;
mod writes;

use claims::Rivals;
use faults::{Interruption, interrupted};
use index::{ProjectJobs, is_held};
use writes::write_batch;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reelmesh_protocol::jobs::{
    Attempt, Fault, Job, JobState, MAX_ERROR_LEN, TRANSIENT_LIMIT_PER_NODE, Take, TakeMedia,
};
use reelmesh_protocol::placement::{self, Offer};
use reelmesh_protocol::wire::JobsGossip;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use capabilities::{CAPABILITY_REFRESH, Capabilities};
pub use execute::{BuiltIn, Declared, Executor, Produced, Run, RunContext, RunFailure, Step};
pub use intents::{INTENT_WINDOW_MAX, INTENT_WINDOW_MIN};
pub use reelmesh_protocol::jobs::{JobUpdate, Overhead};

use crate::comfy::ComfyClient;
use crate::gpu::GpuSample;
use crate::node::{NodeConfig, NodeError, NodeEvent, NodeHandle};
use crate::store::blobs::BlobStore;
use crate::workflows::Catalog;

/// A node claims ahead the jobs it expects to start within twice the time a claim
/// takes (intent window, offer settle, the write), and at least within this time,
/// so its GPU does not wait on the next claim; with long jobs that is one job,
/// claimed near the end of the current one. While the queue drains it holds none
/// ahead: jobs held here are jobs faster nodes cannot take at the end of a queue.
pub const LOOKAHEAD: Duration = Duration::from_millis(1000);
/// After this node's slots open up (a job ended) it waits this long before
/// claiming, so that nodes freed at the same moment see each other's offers and
/// take different jobs instead of all taking the head of the queue.
pub const OFFER_SETTLE: Duration = Duration::from_millis(25);
/// Most jobs a node holds (announced, claimed or running) at once.
pub const MAX_LOCAL_QUEUE: u32 = 64;
/// A claimant not heard from (presence heartbeats) for this long loses its jobs:
/// they go back to the queue. Nodes start with [`NodeConfig::lease`].
pub const LEASE: Duration = Duration::from_secs(10);
/// After this many failed runs in a row a node stops offering for a while.
pub const PAUSE_AFTER_FAILURES: u32 = 5;
/// The first pause; each further pause without a success in between doubles it.
pub const FIRST_PAUSE: Duration = Duration::from_secs(30);
const LONGEST_PAUSE: Duration = Duration::from_secs(600);
/// How often leases are looked at and the offer re-sent.
const TICK: Duration = Duration::from_secs(1);
/// After a run lost its renderer, how long this node keeps the renderer's
/// workflows out of its offer unless the renderer is looked at again first.
const RENDERER_RECHECK: Duration = Duration::from_secs(5);
/// A peer connected this recently may still send its first offer (sent every
/// [`TICK`] and on every change).
const NEW_PEER_GRACE: Duration = Duration::from_secs(2);
/// A job the document says this node holds, which it does not, is given back after
/// this long (a merge in flight may still explain it before then).
const ORPHAN_GRACE: Duration = Duration::from_secs(2);
/// A claim written without an intent window runs only after this long, or the
/// window, whichever is longer: a rival claim shows on gossip by then.
pub const CLAIM_SETTLE: Duration = Duration::from_millis(100);
/// After a claim of this node raced another node's (both named the same attempt on
/// gossip), or a look at the queue handed out more than one job (a batch: nodes
/// with slightly different views of the offers take overlapping shares), it waits
/// an intent window before writing claims for this long. Otherwise (one job at a
/// time, nobody racing) a node writes a claim at once and waits the window before
/// running it instead: the claim is in the document one window sooner (dispatch
/// latency), and a rare race is settled by the merge as before intents existed.
const CONTENTION_MEMORY: Duration = Duration::from_secs(10);
/// Progress goes on gossip at most this often per job, and a run is announced
/// only once it has lasted this long (a shorter one is told by its end alone);
/// its end always goes.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// An offer whose only news is its holding list (a job ended, a claim written) is
/// sent at most this often; one that opens or closes slots, announces claims or
/// changes what the node can run goes at once.
const OFFER_COALESCE: Duration = Duration::from_millis(250);
/// Results wait at least this long to be written together; longer while gossip
/// is slow (see `Runner::write_delay`).
const FLUSH_AFTER: Duration = Duration::from_millis(20);
/// Results never wait longer than this.
const FLUSH_MAX: Duration = Duration::from_secs(1);

/// How long one ComfyUI run may take, queue wait included, before the job fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// A runner await slower than this is logged (debug): while it waits, the runner
/// reads no event, so this is where a late claim or start shows up.
const SLOW_AWAIT: Duration = Duration::from_millis(50);

/// Await `work`, logging it when it took longer than [`SLOW_AWAIT`].
async fn timed<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = work.await;
    let took = started.elapsed();
    if took >= SLOW_AWAIT {
        debug!(
            took_ms = took.as_millis() as u64,
            "job runner: {what} was slow"
        );
    }
    out
}

/// What this node's job side says about itself (read by presence).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerState {
    /// Workflow ids this node can run now.
    pub capabilities: Vec<String>,
    /// The job it is running.
    pub current_job: Option<String>,
    /// Why ComfyUI cannot be used, if it cannot.
    pub problem: Option<String>,
    /// Workflows this node cannot run, with what is missing.
    pub unavailable: Vec<(String, String)>,
    /// The first look at ComfyUI is done (true at once without ComfyUI).
    pub settled: bool,
    /// Why this node takes no jobs for now (many failures in a row), if so.
    pub paused: Option<String>,
}

/// Everything the runner needs, made before the node starts so a bad workflow
/// folder or ComfyUI address fails the start with a clear error.
pub struct JobsSetup {
    catalog: Arc<Catalog>,
    comfy: Option<ComfyClient>,
    blobs: BlobStore,
    gpu: watch::Receiver<GpuSample>,
    worker: watch::Sender<WorkerState>,
    host: String,
    executor: Arc<dyn Executor>,
    lease: Duration,
}

impl JobsSetup {
    /// This node runs no jobs: say so at once (nothing to wait for).
    pub fn idle(self) {
        self.worker.send_replace(WorkerState {
            settled: true,
            ..WorkerState::default()
        });
    }

    /// The catalog it loaded.
    #[must_use]
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog)
    }

    /// Load the catalog (built-in + the config's workflows folder) and the blob store.
    pub fn new(
        config: &NodeConfig,
        gpu: watch::Receiver<GpuSample>,
        worker: watch::Sender<WorkerState>,
    ) -> Result<JobsSetup, NodeError> {
        let catalog = Arc::new(Catalog::load(Some(&config.workflows_dir()))?);
        let comfy = config
            .comfy_url
            .as_deref()
            .map(ComfyClient::new)
            .transpose()?;
        let blobs = BlobStore::open(&config.data_dir)?;
        let executor: Arc<dyn Executor> = match &config.executor {
            Some(executor) => Arc::clone(&executor.0),
            None => Arc::new(BuiltIn {
                catalog: Arc::clone(&catalog),
                comfy: comfy.clone(),
                blobs: blobs.clone(),
            }),
        };
        Ok(JobsSetup {
            catalog,
            comfy,
            blobs,
            gpu,
            worker,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            executor,
            lease: config.lease,
        })
    }
}

/// An executor to run jobs with instead of the built-in one (tests and benches).
#[derive(Clone)]
pub struct ExecutorSlot(pub Arc<dyn Executor>);

impl std::fmt::Debug for ExecutorSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExecutorSlot(..)")
    }
}

/// Start the runner (and the capability checker) for a node.
pub fn spawn(handle: NodeHandle, setup: JobsSetup) -> tokio::task::JoinHandle<()> {
    let cancel = handle.cancel_token();
    let (capabilities, refresh) = match setup.executor.declared() {
        Some(declared) => {
            let (tx, rx) = watch::channel(Capabilities {
                runnable: declared.workflows,
                checks: Vec::new(),
                problem: None,
                down_since_ms: None,
                settled: true,
            });
            let stop = cancel.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                drop(tx);
            });
            (rx, Arc::new(tokio::sync::Notify::new()))
        }
        None => Capabilities::spawn(
            Arc::clone(&setup.catalog),
            setup.comfy.clone(),
            setup.gpu.clone(),
            cancel.clone(),
        ),
    };
    let (done_tx, done_rx) = mpsc::channel(16);
    let (steps_tx, steps_rx) = mpsc::channel(256);
    let runner = Runner {
        node_id: handle.peer_id().to_string(),
        handle,
        catalog: setup.catalog,
        blobs: setup.blobs,
        worker: setup.worker,
        capabilities,
        refresh,
        host: setup.host,
        gpu: setup.gpu,
        executor: setup.executor,
        leases: leases::Leases::new(setup.lease, now_ms()),
        index: HashMap::new(),
        dirty: HashSet::new(),
        held: Vec::new(),
        running: None,
        done_tx,
        done_rx,
        steps_tx,
        steps_rx,
        writes: writes::Writes::default(),
        publisher: offer::publisher::Publisher::new(now_ms()),
        offers: Vec::new(),
        claim_not_before: None,
        rivals: HashMap::new(),
        intents: Vec::new(),
        claim_write: Duration::ZERO,
        contended_until: None,
        prefetched: HashSet::new(),
        delay: intents::GossipDelay::default(),
        speed: speed::Speed::default(),

        health: health::Health::new(),
        stopping: false,
        alone: true,
        peers: HashMap::new(),

        run_elsewhere: HashMap::new(),
    };
    tokio::spawn(runner.run(cancel))
}

/// Milliseconds since the epoch.
#[must_use]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A job this node holds: claimed (settling or waiting for the GPU) or running.
struct Held {
    project_id: String,
    job_id: String,
    shot_code: String,
    /// It may run from then on: a claim written without an intent window waits
    /// one after it is written instead (a rival claim shows by then).
    runnable_at: Instant,
    /// The attempt this claim counted.
    attempt: u64,
    workflow: String,
    /// The job's estimated work ([`Job::work`]).
    work: f64,
}

struct Running {
    held: Held,
    job: Job,
    started: Instant,
    cancel: CancellationToken,
    /// Another node's claim won the merge: record nothing.
    lost: bool,
    last_gossip: Option<Instant>,
    fraction: f32,
    /// Its run went on gossip (see [`PROGRESS_EVERY`]).
    announced: bool,
}

struct Done {
    job_id: String,
    outcome: Result<Run, RunFailure>,
}

struct Runner {
    handle: NodeHandle,
    node_id: String,
    catalog: Arc<Catalog>,
    blobs: BlobStore,
    worker: watch::Sender<WorkerState>,
    capabilities: watch::Receiver<Capabilities>,
    refresh: Arc<tokio::sync::Notify>,
    host: String,
    gpu: watch::Receiver<GpuSample>,
    executor: Arc<dyn Executor>,
    /// Claims nobody works on (see [`leases`]).
    leases: leases::Leases,
    index: HashMap<String, ProjectJobs>,
    /// Projects changed since the index last looked.
    dirty: HashSet<String>,
    /// Claimed jobs waiting to run, in claim order.
    held: Vec<Held>,
    running: Option<Running>,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    steps_tx: mpsc::Sender<Step>,
    steps_rx: mpsc::Receiver<Step>,
    /// Job states and takes waiting to be written (see [`writes`]).
    writes: writes::Writes,
    /// When this node's offer goes out (see [`offer::publisher`]).
    publisher: offer::publisher::Publisher,
    /// Live offers, this node's included, as the runtime last had them.
    offers: Vec<Offer>,
    /// No claims before then (see [`OFFER_SETTLE`]).
    claim_not_before: Option<Instant>,
    /// Other nodes seen (on gossip) holding a job's attempt, with when: a held job
    /// does not start until the document shows each rival's claim merged.
    rivals: HashMap<(String, u64), Rivals>,
    /// Held jobs whose inputs were fetched ahead (or are being fetched).
    prefetched: HashSet<String>,
    /// Until then this node announces claims and waits an intent window before
    /// writing them; otherwise it writes at once (see [`CONTENTION_MEMORY`]).
    contended_until: Option<Instant>,
    /// How long writing claims takes lately (the node's edit queue under load).
    claim_write: Duration,
    /// Jobs announced (offer `intents`) and not written yet, in claim order.
    intents: Vec<intents::Intent>,
    /// How late other nodes' offers arrive lately: sets the intent window.
    delay: intents::GossipDelay,
    /// How fast this node renders, measured (see [`speed`]).
    speed: speed::Speed,
    /// Failures in a row, the pause, a renderer a run just lost (see [`health`]).
    health: health::Health,
    /// The node is stopping: record what ended, start nothing.
    stopping: bool,
    /// No other node offers to run jobs, and every connected peer has had the time
    /// to say so (claims need no settling then).
    alone: bool,
    /// Connected peers, with when they connected: one that joined less than
    /// [`NEW_PEER_GRACE`] ago may be about to offer, so the node is not alone yet.
    peers: HashMap<String, Instant>,

    /// Attempts another node said (progress on gossip) it started or finished, with
    /// when: a claim of ours on the same attempt does not start while that node's
    /// result may still be on its way through the document (see `start_next`).
    run_elsewhere: HashMap<(String, u64), Instant>,
}

/// An edit's error: a document refusal or words.
type EditError = Box<dyn std::error::Error + Send + Sync>;

impl Runner {
    async fn run(mut self, cancel: CancellationToken) {
        // Subscribe before the first look so no change is missed in between.
        let mut events = self.handle.subscribe();
        // Peers connected before the runner started count as just connected.
        if let Ok(peers) = self.handle.peers().await {
            let now = Instant::now();
            self.peers.extend(
                peers
                    .iter()
                    .filter(|p| p.connected && !p.this_node)
                    .map(|p| (p.node_id.clone(), now)),
            );
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut offers_dirty = true;
        let mut due = true;
        loop {
            if due {
                if let Err(e) = self.step(offers_dirty).await {
                    if matches!(e, NodeError::Stopped) {
                        break;
                    }
                    warn!("job runner: {e}");
                }
                offers_dirty = false;
            }
            due = true;
            let wake = self.next_wake();
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                done = self.done_rx.recv() => {
                    if let Some(done) = done {
                        timed("finishing a run", self.finish(done)).await;
                    }
                }
                Some(step) = self.steps_rx.recv() => {
                    timed("reporting progress", self.on_step(step)).await;
                    due = false;
                }
                event = events.recv() => match event {
                    Ok(event) => due = self.on_event(event, &mut offers_dirty),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Missed changes: read everything again.
                        self.dirty.extend(self.index.keys().cloned());
                        offers_dirty = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                changed = self.capabilities.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tick.tick() => {
                    offers_dirty = true;
                    if let (None, Some(first)) = (&self.running, self.held.first()) {
                        debug!(held = self.held.len(), job = %first.job_id, "holding jobs, none running");
                    }
                    if let Err(e) = timed("checking leases", self.expire_leases()).await {
                        warn!("job runner: checking leases failed: {e}");
                    }
                }
                () = sleep_until(wake) => {}
            }
            // Take everything else that is ready before the next step; any of it
            // that needs a step gets one, even when what woke the loop did not
            // (a progress event first, then the job it must claim).
            while let Ok(event) = events.try_recv() {
                due |= self.on_event(event, &mut offers_dirty);
            }
        }
        // Runs that ended before the stop are recorded as they ended; nothing new
        // starts.
        self.stopping = true;
        while let Ok(done) = self.done_rx.try_recv() {
            timed("finishing a run", self.finish(done)).await;
        }
        // The rest go back to the queue (see `give_back_on_stop`), then every
        // result in hand is written: the runtime takes commands until the runner
        // has stopped (see `node::supervise`).
        self.give_back_on_stop();
        if let Err(e) = self.flush().await {
            warn!("job runner: writing the last results when stopping failed: {e}");
        }
    }

    /// Take one node event in; returns whether it calls for a step (a changed
    /// document, offer or peer set; not progress or presence).
    fn on_event(&mut self, event: NodeEvent, offers_dirty: &mut bool) -> bool {
        match event {
            NodeEvent::DocChanged { project_id, .. } => {
                self.dirty.insert(project_id);
            }
            NodeEvent::Offer(offer) => {
                self.note_rivals(&offer);
                *offers_dirty = true;
            }
            NodeEvent::PeerConnected(peer) => {
                self.peers.insert(peer.to_string(), Instant::now());
                *offers_dirty = true;
            }
            NodeEvent::PeerDisconnected(peer) => {
                self.peers.remove(&peer.to_string());
                self.delay.forget(&peer.to_string());
                *offers_dirty = true;
            }
            NodeEvent::Job(update) => {
                self.note_run_elsewhere(&update);
                return false;
            }
            _ => return false,
        }
        true
    }

    /// The earliest moment something is due without an event: an intent whose
    /// window closes, a flush, the end of a pause, the moment to claim ahead.
    fn next_wake(&self) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w: Instant| w.min(t)));
        if let Some(first) = self.intents.iter().map(|i| i.since).min() {
            at(first + self.delay.window());
        }
        if self.running.is_none()
            && let Some(first) = self.held.iter().map(|h| h.runnable_at).min()
        {
            at(first);
        }
        if let Some(since) = self.writes.since() {
            at(since + self.write_delay());
        }
        if let Some(until) = self.health.pause_ends() {
            at(until);
        }
        if let Some(not_before) = self.claim_not_before {
            at(not_before);
        }
        if let Some(due) = self.publisher.deferred_until() {
            at(due);
        }
        if let Some(running) = &self.running
            && !running.announced
        {
            at(running.started + PROGRESS_EVERY);
        }
        if let Some(running) = &self.running
            && let Some(mean) = self.estimate(&running.held.workflow, running.held.work)
            && self.held.is_empty()
        {
            // The moment to claim the next job ahead; once it has passed, the
            // step already tried, and only an event (a queued job) makes it worth
            // another look.
            let claim_at = (running.started + mean)
                .checked_sub(self.horizon())
                .unwrap_or(running.started);
            if claim_at > Instant::now() {
                at(claim_at);
            }
        }
        wake
    }

    /// One round: read what changed, write what is due, claim, start.
    async fn step(&mut self, offers_dirty: bool) -> Result<(), NodeError> {
        timed("reading the jobs", self.refresh_index()).await?;
        self.check_running();
        if self.health.resume_if_over(Instant::now()) {
            info!("job runner: pause over, offering again (one more failure pauses it again)");
        }
        let offer_changed = timed("publishing the offer", self.publish_offer()).await?;
        if offers_dirty || offer_changed {
            let offers = timed("reading the offers", self.handle.offers()).await?;
            // Alone: no other node that runs jobs, so no claim to race with.
            self.alone = !offers.iter().any(|o| o.node_id != self.node_id)
                && self
                    .peers
                    .values()
                    .all(|since| since.elapsed() >= NEW_PEER_GRACE);
            self.offers = offers;
        }
        timed("claiming", self.claim()).await?;
        timed("writing claims", self.commit_intents()).await?;
        timed("starting", self.start_next()).await;
        timed("announcing", self.announce_run()).await;
        self.prefetch_inputs();
        if self.writes.due(self.write_delay(), Instant::now()) {
            timed("writing results", self.flush()).await?;
        }
        self.publish_worker();
        Ok(())
    }

    fn publish_worker(&self) {
        let caps = self.capabilities.borrow().clone();
        let declared = self.executor.declared();
        let current_job = self.running.as_ref().map(|r| r.held.job_id.clone());
        let paused = self.health.paused().map(str::to_owned);
        self.worker.send_if_modified(|state| {
            let next = WorkerState {
                capabilities: caps.runnable.clone(),
                current_job,
                problem: caps.problem.clone(),
                unavailable: declared.map_or_else(|| caps.unavailable(), |d| d.unavailable),
                settled: caps.settled,
                paused,
            };
            if *state == next {
                false
            } else {
                *state = next;
                true
            }
        });
    }
}

/// A wall-clock moment for people: "14:02:10 UTC" today, "2026-12-05 14:02 UTC"
/// on another day.
#[must_use]
pub fn clock_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    if days == now_ms() / 1000 / 86_400 {
        return format!("{h:02}:{m:02}:{s:02} UTC");
    }
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year}-{month:02}-{day:02} {h:02}:{m:02} UTC")
}

/// At most `max` bytes of `text`, cut at a character boundary, with "…" when cut.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Why each queued job of a project is still waiting (job id → reason in words),
/// from the offers of the nodes heard from lately: "no node can run workflow X:
/// render-1: missing model Y; ...", "every node that can run it is ruled out: ...",
/// or "waiting for a free node".
pub async fn waiting_reasons(
    handle: &NodeHandle,
    project: Option<String>,
) -> Result<BTreeMap<String, String>, NodeError> {
    let offers = handle.offers().await?;
    let (_, queued) = handle
        .read(project, |doc| {
            doc.jobs()
                .unwrap_or_default()
                .into_iter()
                .filter(|j| j.state == JobState::Queued)
                .collect::<Vec<Job>>()
        })
        .await?;
    Ok(queued
        .iter()
        .map(|job| (job.job_id.clone(), placement::why_waiting(job, &offers)))
        .collect())
}

/// The data dir's workflows folder, for the CLI.
#[must_use]
pub fn user_workflows_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("workflows")
}

pub use reelmesh_protocol::api::render::RenderQueued;

/// Queue a render on a node. Unless `queue_only`, refuses (writing nothing) when this
/// node cannot run the workflow, saying what is missing.
pub async fn queue_on(
    handle: &NodeHandle,
    project: Option<String>,
    request: queue::RenderRequest,
    queue_only: bool,
) -> Result<RenderQueued, NodeError> {
    if request.video.is_some() {
        return queue_video_on(handle, project, request, queue_only).await;
    }
    let workflow_known = handle.catalog().get(&request.workflow).is_some();
    let worker = handle.worker_settled(Duration::from_secs(15)).await;
    let runnable_here = worker.capabilities.contains(&request.workflow);
    if workflow_known && !runnable_here && !queue_only {
        let why = worker
            .unavailable
            .iter()
            .find(|(id, _)| id == &request.workflow)
            .map(|(_, why)| format!("missing {why}"))
            .or(worker.problem.clone())
            .unwrap_or_else(|| "it needs ComfyUI (start the node with --comfy URL)".into());
        return Err(NodeError::Request(format!(
            "this node cannot run workflow '{}': {why}; pass --queue to leave the jobs queued for another node",
            request.workflow
        )));
    }
    let node_id = handle.peer_id().to_string();
    let catalog = handle.catalog_arc();
    let (project_id, queued) = handle
        .edit(project, move |doc| {
            queue::queue_render(doc, &catalog, &request, &node_id, now_ms())
        })
        .await?;
    Ok(RenderQueued {
        project_id,
        queued,
        runnable_here,
        refused: Vec::new(),
    })
}

/// The video batch ([`queue::queue_video`]): jobs wait for whichever node of the
/// mesh can run each shot's workflow.
async fn queue_video_on(
    handle: &NodeHandle,
    project: Option<String>,
    request: queue::RenderRequest,
    queue_only: bool,
) -> Result<RenderQueued, NodeError> {
    if let Some(video) = &request.video {
        queue::check_batch(handle.catalog(), video).map_err(NodeError::Request)?;
    }
    let worker = handle.worker_settled(Duration::from_secs(15)).await;
    if !queue_only {
        // Rendering here (and following): every workflow of the batch must run here.
        let selection = request.shots.clone();
        let (_, wanted) = handle
            .read_mut(project.clone(), move |doc| {
                let project = doc.project_now().map_err(|e| e.to_string())?;
                let shots = queue::select_shots(&project, &selection)?;
                Ok::<_, String>(
                    shots
                        .iter()
                        .map(|s| s.workflow.trim().to_owned())
                        .filter(|w| !w.is_empty())
                        .collect::<std::collections::BTreeSet<String>>(),
                )
            })
            .await?;
        let mut wanted = wanted.map_err(NodeError::Request)?;
        if let Some(video) = &request.video {
            wanted.extend(video.stills_first.iter().cloned());
            wanted.extend(video.then.iter().cloned());
        }
        let cannot: Vec<String> = wanted
            .iter()
            .filter(|w| !worker.capabilities.contains(*w))
            .map(|w| {
                let why = worker
                    .unavailable
                    .iter()
                    .find(|(id, _)| id == w)
                    .map_or_else(
                        || "it needs ComfyUI (start the node with --comfy URL)".to_owned(),
                        |(_, why)| format!("missing {why}"),
                    );
                format!("'{w}': {why}")
            })
            .collect();
        if !cannot.is_empty() {
            return Err(NodeError::Request(format!(
                "this node cannot run {}; pass --queue to leave the jobs queued for the mesh",
                cannot.join("; ")
            )));
        }
    }
    let node_id = handle.peer_id().to_string();
    let catalog = handle.catalog_arc();
    let (project_id, (queued, refused)) = handle
        .edit(project, move |doc| {
            queue::queue_video(doc, &catalog, &request, &node_id, now_ms())
        })
        .await?;
    let jobs = handle
        .read(Some(project_id.clone()), |doc| {
            doc.jobs().unwrap_or_default()
        })
        .await?
        .1;
    let runnable_here = queued.iter().all(|q| {
        jobs.iter()
            .find(|j| j.job_id == q.job_id)
            .is_some_and(|j| worker.capabilities.contains(&j.workflow))
    });
    Ok(RenderQueued {
        project_id,
        queued,
        runnable_here,
        refused,
    })
}

/// Ask for jobs to be canceled, by id or unique id prefix. Returns the full ids.
pub fn cancel_jobs(
    doc: &mut reelmesh_protocol::document::ProjectDoc,
    wanted: &[String],
) -> Result<Vec<String>, String> {
    let jobs = doc.jobs().map_err(|e| e.to_string())?;
    let mut ids = Vec::new();
    for prefix in wanted {
        let matching: Vec<&Job> = jobs
            .iter()
            .filter(|j| j.job_id.starts_with(prefix.as_str()))
            .collect();
        match matching.as_slice() {
            [job] if job.state.is_active() => ids.push(job.job_id.clone()),
            [job] => {
                return Err(format!(
                    "job {} has already ended ({})",
                    job.job_id, job.state
                ));
            }
            [] => return Err(format!("no job '{prefix}' in the project")),
            _ => {
                return Err(format!(
                    "'{prefix}' matches {} jobs; give more of the id",
                    matching.len()
                ));
            }
        }
    }
    for id in &ids {
        doc.request_cancel(id).map_err(|e| e.to_string())?;
    }
    Ok(ids)
}
