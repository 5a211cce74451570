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
mod execute;
pub mod follow;
mod intents;
pub mod queue;

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
        lease: setup.lease,
        index: HashMap::new(),
        dirty: HashSet::new(),
        held: Vec::new(),
        running: None,
        done_tx,
        done_rx,
        steps_tx,
        steps_rx,
        pending: BTreeMap::new(),
        pending_takes: Vec::new(),
        pending_since: None,
        offer_seq: now_ms(),
        last_offer: None,
        offer_sent_at: None,
        offer_deferred: false,
        offers: Vec::new(),
        claim_not_before: None,
        rivals: HashMap::new(),
        intents: Vec::new(),
        claim_write: Duration::ZERO,
        contended_until: None,
        prefetched: HashSet::new(),
        delay: intents::GossipDelay::default(),
        mean_run: None,
        rates: HashMap::new(),
        overhead: None,
        back_to_back: None,
        streak: 0,
        renderer_suspect: None,
        last_failure: String::new(),
        pause: None,
        next_pause: FIRST_PAUSE,
        alone: true,
        peers: HashMap::new(),
        unheld: HashMap::new(),
        started_ms: now_ms(),
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

/// The order key of a queued job: priority (higher first), age, work (larger
/// first), id: [`placement::job_order`].
type OrderKey = (std::cmp::Reverse<i64>, u64, std::cmp::Reverse<u64>, String);

fn order_key(job: &Job) -> OrderKey {
    // A finite, non-negative f64 (the document reads nothing else) orders like its
    // bits.
    (
        std::cmp::Reverse(job.priority),
        job.created_at_ms,
        std::cmp::Reverse(job.work.max(0.0).to_bits()),
        job.job_id.clone(),
    )
}

/// The jobs of one project as this node last read them.
#[derive(Default)]
struct ProjectJobs {
    jobs: HashMap<String, Job>,
    queued: BTreeSet<OrderKey>,
    /// Claimed or running jobs (whose leases are watched).
    held: BTreeSet<String>,
    codes: HashMap<String, String>,
    /// The queued jobs by workflow: how many, and their work summed.
    queued_work: HashMap<String, (usize, f64)>,
}

impl ProjectJobs {
    fn put(&mut self, job: Job) {
        if let Some(old) = self.jobs.get(&job.job_id)
            && old.state == JobState::Queued
        {
            self.queued.remove(&order_key(old));
            if let Some((count, work)) = self.queued_work.get_mut(&old.workflow) {
                *count -= 1;
                *work = (*work - old.work).max(0.0);
                if *count == 0 {
                    self.queued_work.remove(&old.workflow);
                }
            }
        }
        if job.state == JobState::Queued {
            self.queued.insert(order_key(&job));
            let entry = self.queued_work.entry(job.workflow.clone()).or_default();
            entry.0 += 1;
            entry.1 += job.work;
        }
        if is_held(job.state) {
            self.held.insert(job.job_id.clone());
        } else {
            self.held.remove(&job.job_id);
        }
        self.jobs.insert(job.job_id.clone(), job);
    }

    fn clear(&mut self) {
        self.jobs.clear();
        self.queued.clear();
        self.queued_work.clear();
        self.held.clear();
    }
}

/// A claim in force: the claimant holds the job, whether or not it runs yet. After
/// concurrent claims merge, the state may say `running` (the losing node's write)
/// while the claimant register names the winner, which has not started: both
/// states mean "the claimant's".
fn is_held(state: JobState) -> bool {
    matches!(state, JobState::Claimed | JobState::Running)
}

/// Other nodes seen on gossip holding one attempt of a job.
struct Rivals {
    /// When the first offer naming it arrived.
    seen: Instant,
    nodes: BTreeSet<String>,
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
    lease: Duration,
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
    /// Job states to write, by project → job id (coalesced, written together).
    pending: BTreeMap<String, BTreeMap<String, Job>>,
    pending_takes: Vec<(String, Take)>,
    pending_since: Option<Instant>,
    offer_seq: u64,
    last_offer: Option<Offer>,
    offer_sent_at: Option<Instant>,
    /// The offer changed in a way that can wait (see [`OFFER_COALESCE`]).
    offer_deferred: bool,
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
    /// Running mean of this node's run times.
    mean_run: Option<Duration>,
    /// Run time per unit of work, per workflow, in ms (running means).
    rates: HashMap<String, f64>,
    /// What each job costs this node besides its render time (running mean):
    /// submitting, storing the output, starting the next. Measured from one run's
    /// start to the next one's when a held job was waiting, so it holds every
    /// delay the GPU sat through; a GPU that runs many short jobs loses it each
    /// time, and placement counts it.
    overhead: Option<Duration>,
    /// The run that just ended while another job was held: when it started and its
    /// render time, until the next run starts and the overhead can be measured.
    back_to_back: Option<(Instant, Duration)>,
    /// Failed runs in a row.
    streak: u32,
    /// A run here just ended in a transient fault (the renderer went away), with
    /// when and why: the renderer's workflows stay out of this node's offer until
    /// the renderer has been looked at again (see [`RENDERER_RECHECK`]), so the
    /// job it gave back is not claimed here again at once.
    renderer_suspect: Option<(Instant, String)>,
    last_failure: String,
    /// Paused until then, with the reason.
    pause: Option<(Instant, String)>,
    next_pause: Duration,
    /// No other node offers to run jobs, and every connected peer has had the time
    /// to say so (claims need no settling then).
    alone: bool,
    /// Connected peers, with when they connected: one that joined less than
    /// [`NEW_PEER_GRACE`] ago may be about to offer, so the node is not alone yet.
    peers: HashMap<String, Instant>,
    /// Claimed jobs seen without anyone holding them, since when (see
    /// [`Runner::expire_leases`]).
    unheld: HashMap<String, Instant>,
    /// When this runner started (wall clock, ms): claims older than that are from
    /// a previous run of the node.
    started_ms: u64,
    /// Attempts another node said (progress on gossip) it started or finished, with
    /// when: a claim of ours on the same attempt does not start while that node's
    /// result may still be on its way through the document (see `start_next`).
    run_elsewhere: HashMap<(String, u64), Instant>,
}

/// An edit's error: a document refusal or words.
type EditError = Box<dyn std::error::Error + Send + Sync>;

/// Write a batch of job states and takes (call it inside
/// [`ProjectDoc::in_one_change`](reelmesh_protocol::document::ProjectDoc::in_one_change):
/// one change for all). A job whose stored state has moved on where this one may
/// not follow (another node ended it meanwhile) is left out, with a warning,
/// instead of failing the batch.
fn write_batch(
    doc: &mut reelmesh_protocol::document::ProjectDoc,
    jobs: &[Job],
    takes: &[Take],
) -> Result<(), String> {
    for take in takes {
        doc.add_take(take).map_err(|e| e.to_string())?;
    }
    let mut valid = Vec::with_capacity(jobs.len());
    for job in jobs {
        match doc.job(&job.job_id) {
            Ok(stored) if stored.state == job.state || stored.state.can_become(job.state) => {
                valid.push(job.clone());
            }
            Ok(stored) => warn!(
                job = %job.job_id,
                "not writing {}: the job is {} already",
                job.state, stored.state
            ),
            Err(e) => warn!(job = %job.job_id, "not writing it: {e}"),
        }
    }
    if valid.is_empty() {
        return Ok(());
    }
    doc.update_jobs(&valid).map_err(|e| e.to_string())
}

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
        // Runs that ended before the stop are recorded as they ended.
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
        if let Some(since) = self.pending_since {
            at(since + self.write_delay());
        }
        if let Some((until, _)) = &self.pause {
            at(*until);
        }
        if let Some(not_before) = self.claim_not_before {
            at(not_before);
        }
        if self.offer_deferred
            && let Some(sent) = self.offer_sent_at
        {
            at(sent + OFFER_COALESCE);
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

    /// Remember which other nodes said they hold which jobs (every offer is seen,
    /// not only the latest: a rival may claim, run and drop a job between two looks).
    /// Every offer is also a delay sample, and may contest this node's intents.
    fn note_rivals(&mut self, offer: &Offer) {
        if offer.node_id == self.node_id {
            return;
        }
        self.delay.note(&offer.node_id, offer.sent_ms, now_ms());
        let now = Instant::now();
        let mut raced = false;
        for intent in &mut self.intents {
            raced |= intents::names(offer, &intent.job_id, intent.attempt);
            if intent.lost_to.is_none()
                && intents::loses_to(&self.node_id, &intent.job_id, intent.attempt, offer)
            {
                intent.lost_to = Some(offer.node_id.clone());
            }
        }
        raced |= self
            .held
            .iter()
            .any(|h| intents::names(offer, &h.job_id, h.attempt));
        if raced {
            if self.contended_until.is_none_or(|until| until < now) {
                debug!(rival = %placement::short_id(&offer.node_id), "claims raced: waiting an intent window before each claim for a while");
            }
            self.contended_until = Some(now + CONTENTION_MEMORY);
        }
        for held in &offer.holding {
            self.rivals
                .entry(held.clone())
                .or_insert_with(|| Rivals {
                    seen: now,
                    nodes: BTreeSet::new(),
                })
                .nodes
                .insert(offer.node_id.clone());
        }
        if self.rivals.len() > 20_000 {
            self.rivals
                .retain(|_, r| r.seen.elapsed() < Duration::from_secs(60));
        }
    }

    /// Remember that another node runs (or ran) an attempt of a job.
    fn note_run_elsewhere(&mut self, update: &JobUpdate) {
        if update.node_id == self.node_id
            || !matches!(update.state, JobState::Running | JobState::Succeeded)
        {
            return;
        }
        self.run_elsewhere
            .entry((update.job_id.clone(), update.attempt))
            .or_insert_with(Instant::now);
        if self.run_elsewhere.len() > 20_000 {
            let keep = self.lease * 2;
            self.run_elsewhere.retain(|_, at| at.elapsed() < keep);
        }
    }

    /// One round: read what changed, write what is due, claim, start.
    async fn step(&mut self, offers_dirty: bool) -> Result<(), NodeError> {
        timed("reading the jobs", self.refresh_index()).await?;
        self.check_running();
        if let Some((until, _)) = &self.pause
            && Instant::now() >= *until
        {
            info!("job runner: pause over, offering again");
            self.pause = None;
            // On probation: one more failure pauses again, for longer.
            self.streak = PAUSE_AFTER_FAILURES - 1;
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
        let due = self
            .pending_since
            .is_some_and(|since| since.elapsed() >= self.write_delay());
        if due {
            timed("writing results", self.flush()).await?;
        }
        self.publish_worker();
        Ok(())
    }

    fn publish_worker(&self) {
        let caps = self.capabilities.borrow().clone();
        let declared = self.executor.declared();
        let current_job = self.running.as_ref().map(|r| r.held.job_id.clone());
        let paused = self.pause.as_ref().map(|(_, why)| why.clone());
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

    /// How long a job of `workflow` with `work` should run here: the work × this
    /// node's time per unit for the workflow, else its mean run time (`None` before
    /// its first run).
    fn estimate(&self, workflow: &str, work: f64) -> Option<Duration> {
        let overhead = self.overhead.unwrap_or_default();
        if work > 0.0
            && let Some(ms_per_unit) = self.rates.get(workflow)
        {
            return Some(
                overhead + Duration::from_secs_f64((work * ms_per_unit / 1000.0).clamp(0.0, 1e9)),
            );
        }
        self.mean_run.map(|m| m + overhead)
    }

    /// Each node's even share of the queued jobs (every project's), in time: how
    /// long the mesh would take to run them all with every node that can run a
    /// workflow busy on it, by the speeds the offers announce (a node whose speed
    /// is not known yet counts as fast as this one).
    fn even_share(&self) -> Duration {
        let overhead = self.overhead.unwrap_or_default().as_secs_f64() * 1000.0;
        let mean = self.mean_run.unwrap_or_default().as_secs_f64() * 1000.0;
        let mut total_ms = 0.0_f64;
        for project in self.index.values() {
            for (workflow, (count, work)) in &project.queued_work {
                let mine = self.rates.get(workflow).copied();
                let mut nodes = 0_u32;
                // Units of work per ms, all capable nodes together.
                let mut capacity = 0.0_f64;
                for offer in self
                    .offers
                    .iter()
                    .filter(|o| o.paused.is_none() && o.workflows.iter().any(|w| w == workflow))
                {
                    nodes += 1;
                    let rate = if offer.node_id == self.node_id {
                        mine
                    } else {
                        offer
                            .rates
                            .iter()
                            .find(|(w, _)| w == workflow)
                            .map(|(_, us)| *us as f64 / 1000.0)
                            .or(mine)
                    };
                    if let Some(rate) = rate.filter(|r| *r > 0.0) {
                        capacity += 1.0 / rate;
                    }
                }
                let nodes = f64::from(nodes.max(1));
                let jobs = *count as f64;
                total_ms += if capacity > 0.0 && *work > 0.0 {
                    work / capacity
                } else {
                    jobs * mean / nodes
                } + jobs * overhead / nodes;
            }
        }
        Duration::from_secs_f64((total_ms / 1000.0).clamp(0.0, 1e9))
    }

    /// How long the jobs this node holds (running, claimed, announced) keep its GPU
    /// busy, by [`estimate`](Self::estimate); `None` while nothing is known.
    fn busy(&self) -> Option<Duration> {
        let mut total: Option<Duration> = None;
        let mut add = |d: Duration| total = Some(total.unwrap_or_default() + d);
        if let Some(running) = &self.running
            && let Some(e) = self.estimate(&running.held.workflow, running.held.work)
        {
            add(e.saturating_sub(running.started.elapsed()));
        }
        for held in &self.held {
            if let Some(e) = self.estimate(&held.workflow, held.work) {
                add(e);
            }
        }
        for intent in &self.intents {
            let job = self
                .index
                .get(&intent.project_id)
                .and_then(|p| p.jobs.get(&intent.job_id));
            if let Some(e) = job.and_then(|j| self.estimate(&j.workflow, j.work)) {
                add(e);
            }
        }
        total
    }

    /// How far ahead this node claims (see [`LOOKAHEAD`]).
    fn horizon(&self) -> Duration {
        (self.claim_time() * 2).max(LOOKAHEAD)
    }

    /// How long a claim takes from look to hold: intent window, offer settle, the
    /// write.
    fn claim_time(&self) -> Duration {
        self.delay.window() + OFFER_SETTLE + self.claim_write
    }

    /// How many jobs this node wants to hold now: the running one plus those it
    /// expects to start within its [`horizon`](Self::horizon), from its mean run
    /// time; at most [`MAX_LOCAL_QUEUE`].
    fn wanted(&self) -> u32 {
        if self.pause.is_some() || self.capabilities.borrow().runnable.is_empty() {
            return 0;
        }
        let mut want = 1_u32;
        let horizon = self.horizon();
        if let Some(mean) = self.mean_run {
            // No more than an even share of what is left: near the end of a queue
            // the work held here is work that other nodes, freed sooner, cannot
            // take (and once the share is under one job, none is held ahead).
            // It still holds what a claim takes to arrive, so its GPU does not wait
            // on claims (jobs of no length: the claim is all their cost).
            let share = self.even_share().max(self.claim_time() * 2);
            let ahead = horizon.min(share).as_secs_f64() / mean.as_secs_f64().max(1e-4);
            let ahead = ahead.floor().min(f64::from(MAX_LOCAL_QUEUE));
            // In 0..=MAX_LOCAL_QUEUE: whole jobs.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            {
                want += ahead as u32;
            }
            // A long job near its end: claim the next one now.
            if let Some(running) = &self.running
                && running.started.elapsed() + horizon
                    >= self
                        .estimate(&running.held.workflow, running.held.work)
                        .unwrap_or(mean)
            {
                want = want.max(2);
            }
        } else if self.running.is_some() {
            // The first run: its length is not known yet, so the next job is
            // claimed while it runs (the GPU would wait on a claim otherwise).
            want = 2;
        }
        want.min(MAX_LOCAL_QUEUE)
    }

    /// How many more jobs this node takes now. A node that holds some takes more
    /// only once half its want is free, so short jobs are claimed in batches (one
    /// change for many) rather than one at a time as each ends; the offer says 0
    /// meanwhile, so no other node leaves jobs for it.
    fn free_slots(&self) -> u32 {
        let wanted = self.wanted();
        let holding = self.holding();
        let free = wanted.saturating_sub(holding);
        if holding > 0 && free < wanted.div_ceil(2) {
            0
        } else {
            free
        }
    }

    /// Jobs held, running or announced.
    fn holding(&self) -> u32 {
        u32::try_from(self.held.len() + self.intents.len()).unwrap_or(u32::MAX)
            + u32::from(self.running.is_some())
    }

    /// Publish this node's offer when it changed (and every tick, so peers know it
    /// is still there). Returns whether it changed.
    async fn publish_offer(&mut self) -> Result<bool, NodeError> {
        let caps = self.capabilities.borrow().clone();
        let declared = self.executor.declared();
        let utilization = declared.as_ref().map_or_else(
            || {
                self.gpu
                    .borrow()
                    .gpu
                    .as_ref()
                    .and_then(|g| g.utilization)
                    .unwrap_or(100)
            },
            |d| d.utilization,
        );
        let holding = self.holding();
        // After a run lost ComfyUI, its workflows wait for a fresh look at it.
        let suspect = self
            .renderer_suspect
            .as_ref()
            .filter(|(at, _)| at.elapsed() < RENDERER_RECHECK)
            .map(|(_, why)| format!("its last run lost ComfyUI ({why}); looking at it again"));
        let renderer_down = caps
            .problem
            .as_ref()
            .map(|problem| match caps.down_since_ms {
                Some(since) => format!("{problem}, since {}", clock_time(since)),
                None => problem.clone(),
            })
            .or(suspect.clone());
        let workflows: Vec<String> = if suspect.is_some() {
            caps.runnable
                .iter()
                .filter(|w| {
                    self.catalog
                        .get(w)
                        .is_none_or(|wf| wf.engine != crate::workflows::Engine::ComfyUi)
                })
                .cloned()
                .collect()
        } else {
            caps.runnable.clone()
        };
        let mut offer = Offer {
            node_id: self.node_id.clone(),
            host: self.host.clone(),
            seq: self.offer_seq,
            workflows,
            utilization,
            queue_len: holding,
            slots: self.free_slots(),
            paused: self.pause.as_ref().map(|(_, why)| clip(why, 500)),
            holding: self
                .held
                .iter()
                .map(|h| (h.job_id.clone(), h.attempt))
                .chain(
                    self.running
                        .iter()
                        .map(|r| (r.held.job_id.clone(), r.held.attempt)),
                )
                .collect(),
            unavailable: declared
                .map_or_else(|| caps.unavailable(), |d| d.unavailable)
                .into_iter()
                .map(|(w, why)| (w, clip(&why, 1500)))
                .collect(),
            mean_run_ms: self
                .mean_run
                .map(|m| u64::try_from(m.as_millis()).unwrap_or(u64::MAX)),
            intents: self
                .intents
                .iter()
                .map(|i| (i.job_id.clone(), i.attempt))
                .collect(),
            sent_ms: 0,
            busy_ms: self
                .busy()
                .map(|b| u64::try_from(b.as_millis()).unwrap_or(u64::MAX)),
            rates: {
                let mut rates: Vec<(String, u64)> = self
                    .rates
                    .iter()
                    .filter(|(w, _)| caps.runnable.contains(w))
                    .map(|(w, ms)| {
                        // µs per unit, a finite non-negative mean.
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let us = (ms * 1000.0).round().clamp(0.0, 1e15) as u64;
                        (w.clone(), us)
                    })
                    .collect();
                rates.sort();
                rates
            },
            overhead_ms: self
                .overhead
                .map_or(0, |o| u64::try_from(o.as_millis()).unwrap_or(u64::MAX)),
            renderer_down: renderer_down.map(|d| clip(&d, 1000)),
        };
        // The busy time shrinks as the GPU works: it goes out with the offers that
        // other changes (a job started, ended or claimed) and the tick send, not as
        // a change of its own.
        let changed = self.last_offer.as_ref().is_none_or(|last| {
            let mut same = last.clone();
            same.seq = offer.seq;
            same.sent_ms = offer.sent_ms;
            same.busy_ms = offer.busy_ms;
            same != offer
        });
        let refresh = self.offer_sent_at.is_none_or(|at| at.elapsed() >= TICK);
        let urgent = self.last_offer.as_ref().is_none_or(|last| {
            offer.slots != last.slots
                || offer.paused != last.paused
                || offer.workflows != last.workflows
                || offer.unavailable != last.unavailable
                || offer.utilization != last.utilization
                || offer.intents.iter().any(|i| !last.intents.contains(i))
                || offer
                    .holding
                    .iter()
                    .any(|h| !last.holding.contains(h) && !last.intents.contains(h))
        });
        let coalesced = self
            .offer_sent_at
            .is_none_or(|at| at.elapsed() >= OFFER_COALESCE);
        if !refresh && !(changed && (urgent || coalesced)) {
            self.offer_deferred |= changed;
            return Ok(false);
        }
        self.offer_deferred = false;
        let opened = self
            .last_offer
            .as_ref()
            .is_some_and(|last| offer.slots > last.slots && !self.alone);
        if opened && self.claim_not_before.is_none() {
            self.claim_not_before = Some(Instant::now() + OFFER_SETTLE);
        }
        self.offer_seq += 1;
        offer.seq = self.offer_seq;
        offer.sent_ms = now_ms();
        self.handle
            .publish_jobs(JobsGossip::Offer(offer.clone()))
            .await?;
        self.last_offer = Some(offer);
        self.offer_sent_at = Some(Instant::now());
        Ok(changed)
    }

    /// Read the jobs that changed in the projects that changed.
    async fn refresh_index(&mut self) -> Result<(), NodeError> {
        if self.index.is_empty() && self.dirty.is_empty() {
            let status = self.handle.status().await?;
            self.dirty.extend(
                status
                    .projects
                    .iter()
                    .filter(|p| p.name.is_some())
                    .map(|p| p.project_id.clone()),
            );
        }
        let dirty: Vec<String> = self.dirty.drain().collect();
        for project_id in dirty {
            let read = self
                .handle
                .read_mut(Some(project_id.clone()), |doc| {
                    match doc.jobs_changed().map_err(|e| e.to_string())? {
                        Some(changed) => Ok((false, changed)),
                        None => doc.jobs().map(|all| (true, all)).map_err(|e| e.to_string()),
                    }
                })
                .await;
            let (full, jobs) = match read {
                Ok((_, Ok(read))) => read,
                Ok((_, Err(e))) => {
                    warn!(project = %project_id, "job runner: reading jobs failed: {e}");
                    continue;
                }
                // A replica still waiting for its first sync (or a project gone).
                Err(NodeError::Project(_)) => continue,
                Err(e) => return Err(e),
            };
            let ended: Vec<Job> = jobs.iter().filter_map(|j| self.unstartable(j)).collect();
            let entry = self.index.entry(project_id.clone()).or_default();
            if full {
                entry.clear();
            }
            for job in jobs {
                entry.put(job);
            }
            for job in ended {
                info!(job = %job.job_id, "job {} before it started", job.state);
                self.queue_write(&project_id, job);
            }
        }
        Ok(())
    }

    /// Stop the running job when it was canceled or another node's claim won, and
    /// drop held claims that were lost or canceled.
    fn check_running(&mut self) {
        let index = &self.index;
        let me = &self.node_id;
        self.held.retain(|h| match index.get(&h.project_id) {
            None => true,
            Some(p) => p
                .jobs
                .get(&h.job_id)
                .is_some_and(|j| j.claimant == *me && is_held(j.state) && !j.cancel_requested),
        });
        let Some(running) = &mut self.running else {
            return;
        };
        let Some(job) = self
            .index
            .get(&running.held.project_id)
            .and_then(|p| p.jobs.get(&running.held.job_id))
        else {
            return;
        };
        if job.claimant != self.node_id && !running.lost {
            warn!(job = %job.job_id, winner = %job.claimant, "another node's claim won the merge; stopping our run, it records nothing");
            running.lost = true;
            running.cancel.cancel();
        } else if job.cancel_requested && !running.cancel.is_cancelled() {
            info!(job = %job.job_id, "cancel requested: stopping the run");
            running.cancel.cancel();
        }
    }

    /// A queued job that changed and can never run here: canceled by a user (any
    /// node may write it: the same write from several nodes is harmless), or, when
    /// this node queued it, naming a workflow this node does not know.
    fn unstartable(&self, job: &Job) -> Option<Job> {
        if job.state != JobState::Queued {
            return None;
        }
        let mut ended = job.clone();
        if job.cancel_requested {
            ended.state = JobState::Canceled;
            ended.error = String::new();
        } else if job.created_by == self.node_id && self.catalog.get(&job.workflow).is_none() {
            ended.state = JobState::Failed;
            ended.error = format!(
                "unknown workflow '{}' (not in this node's catalog)",
                job.workflow
            );
        } else {
            return None;
        }
        ended.finished_at_ms = now_ms();
        Some(ended)
    }

    fn queue_write(&mut self, project_id: &str, job: Job) {
        if let Some(project) = self.index.get_mut(project_id) {
            project.put(job.clone());
        }
        self.pending
            .entry(project_id.to_owned())
            .or_default()
            .insert(job.job_id.clone(), job);
        self.pending_since.get_or_insert_with(Instant::now);
    }

    /// How long job states wait to be written together. Every change costs each
    /// node of the mesh the same to apply whatever it holds, so when the mesh is
    /// busy (its gossip arrives late) a node writes less often and more at once:
    /// as long as its own intent window, at least [`FLUSH_AFTER`].
    fn write_delay(&self) -> Duration {
        self.delay.window().clamp(FLUSH_AFTER, FLUSH_MAX)
    }

    /// Take the job states and takes waiting to be written to one project.
    fn take_pending(&mut self, project_id: &str) -> (Vec<Job>, Vec<Take>) {
        let jobs: Vec<Job> = self
            .pending
            .remove(project_id)
            .map(|p| p.into_values().collect())
            .unwrap_or_default();
        let mut takes = Vec::new();
        self.pending_takes.retain(|(p, take)| {
            if p == project_id {
                takes.push(take.clone());
                false
            } else {
                true
            }
        });
        if self.pending.is_empty() && self.pending_takes.is_empty() {
            self.pending_since = None;
        }
        (jobs, takes)
    }

    /// Write pending job states and takes: one edit per project.
    async fn flush(&mut self) -> Result<(), NodeError> {
        let projects: BTreeSet<String> = self
            .pending
            .keys()
            .cloned()
            .chain(self.pending_takes.iter().map(|(p, _)| p.clone()))
            .collect();
        for project_id in projects {
            let (jobs, mine) = self.take_pending(&project_id);
            let count = jobs.len();
            let result = self
                .handle
                .edit(Some(project_id.clone()), move |doc| {
                    doc.in_one_change(|doc| -> Result<(), EditError> {
                        Ok(write_batch(doc, &jobs, &mine)?)
                    })
                    .map_err(|e| e.to_string())
                })
                .await;
            match result {
                Ok(_) => debug!(project = %project_id, jobs = count, "job states written"),
                Err(NodeError::Stopped) => return Err(NodeError::Stopped),
                Err(e) => {
                    warn!(project = %project_id, "writing {count} job states failed: {e}");
                    // Read the truth again.
                    self.dirty.insert(project_id);
                }
            }
        }
        Ok(())
    }

    /// Announce the jobs the placement rule gives this node (its offer's
    /// `intents`); [`Runner::commit_intents`] writes them once their window closes.
    async fn claim(&mut self) -> Result<(), NodeError> {
        let Some(mine) = self.offers.iter().find(|o| o.node_id == self.node_id) else {
            return Ok(());
        };
        if mine.slots == 0 || mine.paused.is_some() {
            return Ok(());
        }
        if let Some(not_before) = self.claim_not_before {
            if Instant::now() < not_before {
                return Ok(());
            }
            self.claim_not_before = None;
        }
        let limit = self.free_slots() as usize;
        if limit == 0 {
            return Ok(());
        }
        let me = self.node_id.clone();
        let pending = &self.pending;
        let announced: HashSet<&str> = self.intents.iter().map(|i| i.job_id.as_str()).collect();
        let now = Instant::now();
        let mut fresh = Vec::new();
        let mut handed_out = 0;
        for (project_id, project) in &self.index {
            let queued = project
                .queued
                .iter()
                .filter_map(|key| project.jobs.get(&key.3))
                .filter(|j| {
                    !j.cancel_requested
                        && !announced.contains(j.job_id.as_str())
                        && !pending
                            .get(project_id)
                            .is_some_and(|p| p.contains_key(&j.job_id))
                });
            let assigned = placement::assign(queued, &self.offers);
            handed_out += assigned.len();
            for (job, node) in assigned {
                if node == me && fresh.len() < limit {
                    fresh.push(intents::Intent {
                        project_id: project_id.clone(),
                        job_id: job.job_id.clone(),
                        attempt: job.attempts + 1,
                        since: now,
                        lost_to: None,
                    });
                }
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        if handed_out > 1 {
            // Several jobs to several nodes at once: views of the offers that
            // differ a little give overlapping shares. Announce before writing.
            self.contended_until = Some(now + CONTENTION_MEMORY);
        }
        debug!(
            jobs = fresh.len(),
            window_ms = self.delay.window().as_millis(),
            "announcing claims"
        );
        // Offers that arrived before this look may already contest them.
        for intent in &mut fresh {
            intent.lost_to = self
                .offers
                .iter()
                .find(|o| intents::loses_to(&me, &intent.job_id, intent.attempt, o))
                .map(|o| o.node_id.clone());
        }
        self.intents.extend(fresh);
        // The offer changed (the intents, fewer slots): say so before anyone else
        // computes.
        self.publish_offer().await?;
        Ok(())
    }

    /// Write the claims whose window closed uncontested, in one edit per project;
    /// drop those another node's claim or better-ranked intent took, and those the
    /// document no longer has queued (claimed elsewhere, canceled).
    async fn commit_intents(&mut self) -> Result<(), NodeError> {
        if self.intents.is_empty() {
            return Ok(());
        }
        let index = &self.index;
        let before = self.intents.len();
        self.intents.retain(|i| {
            if let Some(winner) = &i.lost_to {
                debug!(job = %i.job_id, attempt = i.attempt, winner = %placement::short_id(winner), "intent gave way");
                return false;
            }
            index
                .get(&i.project_id)
                .and_then(|p| p.jobs.get(&i.job_id))
                .is_some_and(|j| {
                    j.state == JobState::Queued && !j.cancel_requested && j.attempts + 1 == i.attempt
                })
        });
        let dropped = before != self.intents.len();
        let now = Instant::now();
        // Optimistic while no claim of this node raced lately: write at once and
        // let the window pass before the run instead (see `CONTENTION_MEMORY`).
        let careful = self.contended_until.is_some_and(|until| until > now);
        let window = if self.alone || !careful {
            Duration::ZERO
        } else {
            self.delay.window()
        };
        let settle = if self.alone || careful {
            Duration::ZERO
        } else {
            self.delay.window().max(CLAIM_SETTLE)
        };
        let (due, waiting): (Vec<intents::Intent>, Vec<intents::Intent>) =
            std::mem::take(&mut self.intents)
                .into_iter()
                .partition(|i| i.since + window <= now);
        self.intents = waiting;
        let mut by_project: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for intent in due {
            by_project
                .entry(intent.project_id)
                .or_default()
                .push(intent.job_id);
        }
        let committed = !by_project.is_empty();
        for (project_id, ids) in by_project {
            let node_id = self.node_id.clone();
            // Job states waiting to be written go in the same change.
            let (states, takes) = self.take_pending(&project_id);
            let (kept_states, kept_takes) = (states.clone(), takes.clone());
            let write_started = Instant::now();
            let claimed = self
                .handle
                .edit(Some(project_id.clone()), move |doc| {
                    doc.in_one_change(|doc| -> Result<_, EditError> {
                        write_batch(doc, &states, &takes)?;
                        let mut claimed = Vec::new();
                        for id in &ids {
                            let mut job = doc.job(id)?;
                            if job.state != JobState::Queued || job.cancel_requested {
                                continue;
                            }
                            job.state = JobState::Claimed;
                            job.claimant.clone_from(&node_id);
                            job.attempts += 1;
                            job.started_at_ms = now_ms();
                            claimed.push(job);
                        }
                        if claimed.is_empty() {
                            return Ok((Vec::new(), Vec::new()));
                        }
                        doc.update_jobs(&claimed)?;
                        let codes = claimed
                            .iter()
                            .map(|j| {
                                doc.shot_code(&j.shot_id)
                                    .map(|c| c.to_string())
                                    .unwrap_or_default()
                            })
                            .collect::<Vec<String>>();
                        Ok((claimed, codes))
                    })
                    .map_err(|e| e.to_string())
                })
                .await;
            self.claim_write = self
                .claim_write
                .mul_f64(0.7)
                .saturating_add(write_started.elapsed().mul_f64(0.3));
            let (jobs, codes) = match claimed {
                Ok((_, claimed)) => claimed,
                Err(NodeError::Stopped) => return Err(NodeError::Stopped),
                Err(e) => {
                    warn!(project = %project_id, "claiming failed: {e}");
                    // Read the truth again; the states that rode along wait for the
                    // next write.
                    self.dirty.insert(project_id.clone());
                    for job in kept_states {
                        self.queue_write(&project_id, job);
                    }
                    self.pending_takes
                        .extend(kept_takes.into_iter().map(|t| (project_id.clone(), t)));
                    continue;
                }
            };
            for (job, code) in jobs.into_iter().zip(codes) {
                debug!(job = %job.job_id, attempt = job.attempts, window_ms = window.as_millis(), "claimed");
                self.held.push(Held {
                    project_id: project_id.clone(),
                    job_id: job.job_id.clone(),
                    shot_code: code.clone(),
                    attempt: job.attempts,
                    runnable_at: now + settle,
                    workflow: job.workflow.clone(),
                    work: job.work,
                });
                if let Some(project) = self.index.get_mut(&project_id) {
                    project.codes.insert(job.shot_id.clone(), code);
                    project.put(job);
                }
            }
        }
        if committed || dropped {
            // Intents became claims (or went): the offer says so.
            self.publish_offer().await?;
        }
        Ok(())
    }

    /// Start the first held job whose claim still names us.
    async fn start_next(&mut self) {
        if self.running.is_some() {
            return;
        }
        // No other node says (on gossip) that it holds the job too: a
        // concurrent claim (an intent that arrived after its window) waits until the merge tells one of us to drop it.
        // Nor while another node said on gossip that it runs or ran the same attempt
        // (its claim raced ours and it started first): its result reaches the
        // document after its offer stops naming the job, and running it here
        // meanwhile would run it twice. Past the lease with no result, it runs.
        let me = &self.node_id;
        let contested = |held: &Held| {
            self.offers.iter().any(|o| {
                o.node_id != *me
                    && o.holding
                        .iter()
                        .chain(&o.intents)
                        .any(|(h, _)| *h == held.job_id)
            }) || self
                .run_elsewhere
                .get(&(held.job_id.clone(), held.attempt))
                .is_some_and(|at| at.elapsed() < self.lease)
        };
        let now = Instant::now();
        let Some(pos) = self
            .held
            .iter()
            .position(|h| h.runnable_at <= now && !contested(h))
        else {
            return;
        };
        let candidate = &self.held[pos];
        let Some(job) = self
            .index
            .get(&candidate.project_id)
            .and_then(|p| p.jobs.get(&candidate.job_id))
            .cloned()
        else {
            self.held.remove(pos);
            return;
        };
        if job.claimant != self.node_id || !is_held(job.state) || job.cancel_requested {
            info!(job = %job.job_id, "our claim did not hold (another node's won, or a cancel); not running it");
            self.held.remove(pos);
            return;
        }
        // Another node held it too at some point: wait until its claim has merged
        // here (both names in the claimant register, or its name alone), unless it
        // has gone quiet. The merge, not timing, then says who runs it. And when the
        // merge shows another node already ended it, adopt that end instead.
        let id = job.job_id.clone();
        let registers = self
            .handle
            .read_mut(Some(candidate.project_id.clone()), move |doc| {
                Ok::<_, String>((
                    doc.job_field_values(&id, "claimant")
                        .map_err(|e| e.to_string())?,
                    doc.job_field_values(&id, "state")
                        .map_err(|e| e.to_string())?,
                    doc.takes_for_job(&id).map_err(|e| e.to_string())?,
                ))
            })
            .await;
        let Ok((_, Ok((named, states, takes)))) = registers else {
            return;
        };
        if let Some(take) = takes.first() {
            info!(job = %job.job_id, node = %take.node_id, "another node already rendered this job (concurrent claims); not running it again");
            let mut done = job.clone();
            done.state = JobState::Succeeded;
            done.claimant.clone_from(&take.node_id);
            done.take_id.clone_from(&take.take_id);
            done.finished_at_ms = take.finished_at_ms;
            let project_id = candidate.project_id.clone();
            self.held.remove(pos);
            self.queue_write(&project_id, done);
            return;
        }
        if states
            .iter()
            .any(|s| s == "failed" || s == "canceled" || s == "succeeded")
        {
            info!(job = %job.job_id, ?states, "another node ended this job meanwhile; not running it");
            self.held.remove(pos);
            return;
        }
        if let Some(rivals) = self.rivals.get(&(job.job_id.clone(), job.attempts)) {
            let live: Vec<String> = rivals
                .nodes
                .iter()
                .filter(|r| self.offers.iter().any(|o| &o.node_id == *r))
                .cloned()
                .collect();
            if !named.contains(&self.node_id) {
                info!(job = %job.job_id, "our claim lost the merge; not running it");
                self.held.remove(pos);
                return;
            }
            if live.iter().any(|r| !named.contains(r)) {
                debug!(job = %job.job_id, rivals = ?live, "a rival's claim has not merged yet; waiting");
                return;
            }
        }
        let held = self.held.remove(pos);
        let mut running_job = job.clone();
        running_job.state = JobState::Running;
        self.queue_write(&held.project_id, running_job.clone());
        let cancel = self.handle.cancel_token().child_token();
        let ctx = RunContext {
            project_id: held.project_id.clone(),
            job: running_job.clone(),
            shot_code: held.shot_code.clone(),
            handle: self.handle.clone(),
            steps: self.steps_tx.clone(),
            cancel: cancel.clone(),
        };
        info!(job = %job.job_id, shot = %held.shot_code, workflow = %job.workflow, attempt = job.attempts, node = %placement::short_id(&self.node_id), "job running");
        let executor = Arc::clone(&self.executor);
        let done = self.done_tx.clone();
        let job_id = job.job_id.clone();
        tokio::spawn(async move {
            let outcome = executor.run(ctx).await;
            let _ = done.send(Done { job_id, outcome }).await;
        });
        if let Some((previous, render)) = self.back_to_back.take() {
            let spent = previous.elapsed().saturating_sub(render);
            self.overhead = Some(match self.overhead {
                Some(mean) => mean.mul_f64(0.7) + spent.mul_f64(0.3),
                None => spent,
            });
        }
        self.running = Some(Running {
            held,
            job: running_job,
            started: Instant::now(),
            cancel,
            lost: false,
            // The run goes on gossip once it has lasted PROGRESS_EVERY (see
            // `announce_run`), or with its first preview; this node hears at once.
            last_gossip: Some(Instant::now()),
            fraction: 0.0,
            announced: false,
        });
        self.handle.emit(NodeEvent::Job(self.update(
            JobState::Running,
            0.0,
            "starting",
        )));
    }

    /// While a job runs, fetch the input blobs of the jobs held after it from the
    /// peers that have them, so the GPU does not wait on them next (a run fetches
    /// what is still missing itself; the node fetches one blob once at a time).
    fn prefetch_inputs(&mut self) {
        if self.running.is_none() {
            return;
        }
        for held in &self.held {
            if self.prefetched.contains(&held.job_id) {
                continue;
            }
            let Some(job) = self
                .index
                .get(&held.project_id)
                .and_then(|p| p.jobs.get(&held.job_id))
            else {
                continue;
            };
            self.prefetched.insert(held.job_id.clone());
            for (role, reference) in &job.inputs {
                let Ok(hash) = reference.parse::<crate::store::blobs::BlobHash>() else {
                    continue;
                };
                if self.handle.has_blob(&hash) {
                    continue;
                }
                let handle = self.handle.clone();
                let (job_id, role) = (job.job_id.clone(), role.clone());
                tokio::spawn(async move {
                    match handle.fetch_blob(hash).await {
                        Ok(_) => debug!(job = %job_id, %role, "input fetched ahead of its run"),
                        Err(e) => {
                            debug!(job = %job_id, %role, "fetching an input ahead failed (its run tries again): {e}");
                        }
                    }
                });
            }
        }
        if self.prefetched.len() > 4 * MAX_LOCAL_QUEUE as usize {
            let held: HashSet<&str> = self.held.iter().map(|h| h.job_id.as_str()).collect();
            self.prefetched.retain(|id| held.contains(id.as_str()));
        }
    }

    /// Tell the other nodes (gossip) that the running job runs, once it has run for
    /// [`PROGRESS_EVERY`] without a step saying so: most of a mesh's messages would
    /// otherwise be the starts of short jobs whose ends follow at once.
    async fn announce_run(&mut self) {
        let Some(running) = &self.running else {
            return;
        };
        if running.announced || running.started.elapsed() < PROGRESS_EVERY {
            return;
        }
        let fraction = running.fraction;
        self.report(JobState::Running, fraction, "running", None, None)
            .await;
    }

    async fn on_step(&mut self, step: Step) {
        let Some(running) = &mut self.running else {
            return;
        };
        running.fraction = step.fraction;
        let gossip = running
            .last_gossip
            .is_none_or(|at| at.elapsed() >= PROGRESS_EVERY)
            || step.preview.is_some();
        let update = JobUpdate {
            preview: step.preview,
            ..self.update(JobState::Running, step.fraction, &step.step)
        };
        self.handle.emit(NodeEvent::Job(update.clone()));
        if gossip {
            if let Some(running) = &mut self.running {
                running.last_gossip = Some(Instant::now());
                running.announced = true;
            }
            let _ = self.handle.publish_jobs(JobsGossip::Progress(update)).await;
        }
    }

    fn update(&self, state: JobState, fraction: f32, step: &str) -> JobUpdate {
        let Some(running) = &self.running else {
            return JobUpdate::default();
        };
        JobUpdate {
            node_id: self.node_id.clone(),
            project_id: running.held.project_id.clone(),
            job_id: running.held.job_id.clone(),
            shot_code: running.held.shot_code.clone(),
            workflow: running.job.workflow.clone(),
            state,
            fraction,
            step: step.to_owned(),
            attempt: running.job.attempts,
            ..JobUpdate::default()
        }
    }

    /// Tell this node and every other one (gossip) where the running job is.
    async fn report(
        &mut self,
        state: JobState,
        fraction: f32,
        step: &str,
        error: Option<String>,
        take: Option<(String, Overhead)>,
    ) {
        let update = self.update(state, fraction, step);
        if let Some(running) = &mut self.running {
            running.last_gossip = Some(Instant::now());
            running.announced = true;
        }
        self.send_update(update, error, take).await;
    }

    /// Tell this node and every other one (gossip) about a job: `update` names it.
    async fn send_update(
        &mut self,
        mut update: JobUpdate,
        error: Option<String>,
        take: Option<(String, Overhead)>,
    ) {
        update.error = error;
        if let Some((take_id, overhead)) = take {
            update.take_id = Some(take_id);
            update.overhead = Some(overhead);
        }
        self.handle.emit(NodeEvent::Job(update.clone()));
        let _ = self.handle.publish_jobs(JobsGossip::Progress(update)).await;
    }

    /// A run ended: store its outputs and queue the job's new state for writing.
    async fn finish(&mut self, done: Done) {
        let Some(running) = &self.running else {
            return;
        };
        if running.held.job_id != done.job_id {
            return;
        }
        let output_at = Instant::now();
        let started = running.started;
        let elapsed = started.elapsed();
        let lost = running.lost;
        let project_id = running.held.project_id.clone();
        let mut job = running.job.clone();
        let current = self
            .index
            .get(&project_id)
            .and_then(|p| p.jobs.get(&job.job_id))
            .cloned();
        let still_ours = current.as_ref().is_some_and(|j| j.claimant == self.node_id);
        if lost || !still_ours {
            self.running = None;
            // The run finished before the stop reached it: the work is done and the
            // take is real. Record it, and the job as ours and succeeded unless it
            // ended meanwhile, so the winner of the merge (which waits while our
            // progress says we ran it) does not run it again.
            let open = current.as_ref().is_some_and(|j| is_held(j.state));
            if let (Ok(run), true) = (&done.outcome, open) {
                match self.store_outputs(&job, run).await {
                    Ok(takes) => {
                        warn!(job = %job.job_id, "another node's claim won the merge, but our run had finished: its take is kept and the job recorded as ours");
                        let mut ended = current.unwrap_or(job);
                        ended.state = JobState::Succeeded;
                        ended.claimant.clone_from(&self.node_id);
                        ended.take_id =
                            takes.first().map(|t| t.take_id.clone()).unwrap_or_default();
                        ended.finished_at_ms = now_ms();
                        for take in takes {
                            self.pending_takes.push((project_id.clone(), take));
                        }
                        self.queue_write(&project_id, ended);
                    }
                    Err(e) => {
                        warn!(job = %job.job_id, "another node's claim won the merge; storing our finished run failed: {}", e.message);
                    }
                }
            } else {
                warn!(job = %job.job_id, "another node's claim won the merge while we ran; our result is not recorded");
            }
            return;
        }
        if let Some(current) = current {
            // Keep fields others wrote meanwhile (a cancel request).
            job.cancel_requested = current.cancel_requested;
            job.failures = current.failures;
            job.ruled_out = current.ruled_out;
            job.history = current.history;
        }
        // Which job the reports below speak of (the next one may be running by then).
        let finished = self.update(JobState::Running, 1.0, "");
        match done.outcome {
            Ok(run) => {
                // The renderer's own time (the runner may see the end late under
                // load, which is not the GPU's time).
                let took = Duration::from_millis(run.render_ms).min(elapsed);
                self.mean_run = Some(match self.mean_run {
                    Some(mean) => mean.mul_f64(0.7) + took.mul_f64(0.3),
                    None => took,
                });
                if job.work > 0.0 {
                    let per_unit = took.as_secs_f64() * 1000.0 / job.work;
                    self.rates
                        .entry(job.workflow.clone())
                        .and_modify(|r| *r = *r * 0.7 + per_unit * 0.3)
                        .or_insert(per_unit);
                }
                // A job already waits here: the time until it starts is overhead.
                self.back_to_back = (!self.held.is_empty()).then_some((started, took));
                // The GPU goes on with the next held job while this one's output is
                // stored (a blob write and fsync per output).
                self.running = None;
                self.start_next().await;
                self.streak = 0;
                self.next_pause = FIRST_PAUSE;
                match timed("storing outputs", self.store_outputs(&job, &run)).await {
                    Ok(takes) => {
                        job.record_attempt(self.attempt(&job, "succeeded", None, String::new()));
                        // The job's error is its last attempt's: none now.
                        job.error.clear();
                        job.state = JobState::Succeeded;
                        job.take_id = takes.first().map(|t| t.take_id.clone()).unwrap_or_default();
                        job.finished_at_ms = now_ms();
                        let first = job.take_id.clone();
                        for take in takes {
                            self.pending_takes.push((project_id.clone(), take));
                        }
                        self.queue_write(&project_id, job.clone());
                        let overhead = Overhead {
                            submit_to_first_event_ms: run.submit_to_first_event.as_secs_f64()
                                * 1000.0,
                            output_to_take_ms: output_at.elapsed().as_secs_f64() * 1000.0,
                        };
                        info!(job = %job.job_id, render_ms = run.render_ms, "job succeeded");
                        let step = if run.cached {
                            "done (cached by comfyui)"
                        } else {
                            "done"
                        };
                        let mut update = finished;
                        update.state = JobState::Succeeded;
                        step.clone_into(&mut update.step);
                        self.send_update(update, None, Some((first, overhead)))
                            .await;
                    }
                    Err(why) => self.fail(&project_id, job, &why, finished).await,
                }
            }
            Err(failure) if failure.canceled || job.cancel_requested => {
                job.record_attempt(self.attempt(&job, "succeeded", None, String::new()));
                job.state = JobState::Canceled;
                job.finished_at_ms = now_ms();
                self.queue_write(&project_id, job);
                warn!(job = %done.job_id, "job canceled");
                self.report(
                    JobState::Canceled,
                    1.0,
                    "canceled",
                    Some("canceled".into()),
                    None,
                )
                .await;
            }
            Err(failure) => {
                if failure.rejected {
                    // ComfyUI refused the graph: its nodes or models may have changed.
                    self.refresh.notify_one();
                }
                // Nothing runs any more: a pause that begins in `fail` is shown
                // with no current job (status "error", not "busy").
                self.running = None;
                self.fail(&project_id, job, &failure, finished).await;
            }
        }
        if self
            .running
            .as_ref()
            .is_some_and(|r| r.held.job_id == done.job_id)
        {
            self.running = None;
        }
        // Write the result now when nothing else is running soon.
        if self.held.is_empty() {
            let _ = timed("writing results after a run", self.flush()).await;
        }
    }

    /// A run of `job` failed: record the attempt, then act on its kind of fault
    /// (see [`Fault`]) and report it as `finished` (the update naming the job)
    /// says:
    /// - **transient**: back to the queue without using the attempt, waiting for a
    ///   node that can run it (this node too, once its renderer answers again);
    ///   after [`TRANSIENT_LIMIT_PER_NODE`] such runs on this node, it counts as
    ///   this node's fault;
    /// - **this node's**: the node is ruled out for the job; another node that can
    ///   run it takes it, else it fails with the whole message;
    /// - **the job's**: failed at once, everywhere;
    /// - **other**: the attempt counts, and the retry goes to another node first.
    ///
    /// Failures that are not transient count towards this node's failures in a row
    /// (see [`PAUSE_AFTER_FAILURES`]).
    async fn fail(
        &mut self,
        project_id: &str,
        mut job: Job,
        failure: &RunFailure,
        finished: JobUpdate,
    ) {
        let error = failure.message.as_str();
        let mut fault = failure.fault;
        if fault == Fault::Transient
            && job.transient_faults_on(&self.node_id) + 1 >= TRANSIENT_LIMIT_PER_NODE
        {
            fault = Fault::Node;
        }
        let now = now_ms();
        let repeated = fault == Fault::Node && failure.fault == Fault::Transient;
        let error = if repeated {
            format!(
                "{error} (the {} time a run of this job was interrupted on this node)",
                ordinal(TRANSIENT_LIMIT_PER_NODE)
            )
        } else {
            error.to_owned()
        };
        let outcome = if fault == Fault::Transient {
            "interrupted"
        } else {
            "failed"
        };
        job.record_attempt(self.attempt(&job, outcome, Some(fault), error.clone()));
        if fault == Fault::Transient {
            // Not the job's fault: the attempt is given back, and the renderer is
            // looked at again before this node offers its workflows again.
            job.attempts = job.attempts.saturating_sub(1);
            self.renderer_suspect = Some((Instant::now(), clip(&error, 300)));
            self.refresh.notify_one();
        } else {
            *job.failures.entry(self.node_id.clone()).or_default() += 1;
            if fault == Fault::Node {
                job.ruled_out
                    .insert(self.node_id.clone(), clip(&error, MAX_ERROR_LEN));
            }
            self.streak += 1;
            self.last_failure.clone_from(&error);
            if self.streak >= PAUSE_AFTER_FAILURES {
                let why = format!(
                    "{} jobs failed in a row (last: {}); offering again in {} s",
                    self.streak,
                    clip(&self.last_failure, 100),
                    self.next_pause.as_secs()
                );
                warn!("job runner paused: {why}");
                self.pause = Some((Instant::now() + self.next_pause, why));
                self.next_pause = (self.next_pause * 2).min(LONGEST_PAUSE);
                // Give back what we hold: another node runs it.
                self.release_held();
                // Shown at once (`reelmesh status`), before the failure that
                // caused it reaches any peer.
                self.publish_worker();
            }
        }
        let attempt_text = if fault == Fault::Transient {
            format!(
                "interrupted on {} (attempt {} given back): {error}",
                self.host,
                job.attempts + 1
            )
        } else {
            format!("attempt {} on {}: {error}", job.attempts, self.host)
        };
        // Who could take the retry: the live offers, this node's as it is now.
        let mut offers: Vec<Offer> = self
            .offers
            .iter()
            .filter(|o| o.node_id != self.node_id)
            .cloned()
            .collect();
        if let Some(mine) = &self.last_offer {
            let mut mine = mine.clone();
            mine.paused = self.pause.as_ref().map(|(_, why)| why.clone());
            offers.push(mine);
        }
        let end = match fault {
            Fault::Transient if job.past_deadline(now) => Some(format!(
                "{attempt_text}; its deadline passed ({})",
                clock_time(job.deadline_ms)
            )),
            Fault::Transient => None,
            Fault::Job => Some(format!("{attempt_text}; the job cannot run anywhere")),
            _ if job.attempts >= job.max_attempts => Some(format!(
                "{attempt_text}; all {} attempts used",
                job.max_attempts
            )),
            // Another node may take it now, or once its renderer is back.
            _ => (!offers
                .iter()
                .any(|o| o.can_take(&job) || o.may_take_later(&job)))
            .then(|| {
                format!(
                    "{attempt_text}; not retried: {}",
                    placement::why_waiting(&job, &offers)
                )
            }),
        };
        let last = end.is_some();
        match end {
            Some(text) => {
                job.error = text;
                job.state = JobState::Failed;
                job.finished_at_ms = now;
            }
            None => {
                job.error = attempt_text;
                job.state = JobState::Queued;
                job.claimant = String::new();
            }
        }
        warn!(job = %job.job_id, attempt = job.attempts, of = job.max_attempts, fault = fault.as_str(), retry = !last, "run failed: {error}");
        self.queue_write(project_id, job.clone());
        let state = job.state;
        let step = match (last, fault) {
            (true, _) => "failed",
            (false, Fault::Transient) => "interrupted; back in the queue (no attempt used)",
            (false, _) => "failed; queued for a retry",
        };
        let mut update = finished;
        update.state = state;
        update.fraction = 1.0;
        step.clone_into(&mut update.step);
        self.send_update(update, Some(job.error.clone()), None)
            .await;
    }

    /// Put every held (not yet running) claim back in the queue.
    fn release_held(&mut self) {
        for held in std::mem::take(&mut self.held) {
            let Some(mut job) = self
                .index
                .get(&held.project_id)
                .and_then(|p| p.jobs.get(&held.job_id))
                .cloned()
            else {
                continue;
            };
            if job.claimant != self.node_id || !is_held(job.state) {
                continue;
            }
            job.state = JobState::Queued;
            job.claimant = String::new();
            job.attempts = job.attempts.saturating_sub(1);
            self.queue_write(&held.project_id, job);
        }
    }

    async fn store_outputs(&self, job: &Job, run: &Run) -> Result<Vec<Take>, RunFailure> {
        let mut takes = Vec::new();
        for (index, produced) in run.outputs.iter().enumerate() {
            let blobs = self.blobs.clone();
            let bytes = produced.bytes.clone();
            // Stored first (a video is probed from its stored file), then read for
            // what it really is.
            let (blob, probed) = tokio::task::spawn_blocking(move || {
                let blob = blobs.put(&bytes)?;
                let probed = crate::media::probe(&bytes, Some(&blobs.path(&blob.hash)));
                Ok::<_, crate::store::StoreError>((blob, probed))
            })
            .await
            .map_err(|e| RunFailure::transient(format!("storing the output: {e}")))?
            // The render is done; the disk refused it (full?): not the job's fault.
            .map_err(|e| RunFailure::transient(format!("storing the output: {e}")))?;
            let what = format!(
                "output {} ({}, {} bytes)",
                index + 1,
                produced.extension,
                blob.size
            );
            let info = media_of(produced, probed, &what)?;
            takes.push(Take {
                take_id: reelmesh_protocol::model::new_record_id(),
                shot_id: job.shot_id.clone(),
                job_id: job.job_id.clone(),
                blob: blob.hash.to_hex(),
                media: match produced.media {
                    // A file that moves is an animation whatever its name says, and
                    // one that does not (an encoder merged identical frames) a still.
                    TakeMedia::Image if info.frames > 1 => TakeMedia::AnimatedImage,
                    TakeMedia::AnimatedImage if info.frames <= 1 && info.duration_ms == 0 => {
                        TakeMedia::Image
                    }
                    media => media,
                },
                extension: produced.extension.clone(),
                size: blob.size,
                width: info.width,
                height: info.height,
                frames: info.frames,
                fps: info.fps,
                duration_ms: info.duration_ms,
                workflow: job.workflow.clone(),
                seed: job.seed,
                prompt: job.prompt.clone(),
                node_id: self.node_id.clone(),
                host: self.host.clone(),
                started_at_ms: job.started_at_ms,
                finished_at_ms: now_ms(),
                render_ms: run.render_ms,
                cached: run.cached,
            });
        }
        Ok(takes)
    }

    /// Put claims back in the queue when nobody works on them (attempt kept, so a
    /// job that used its last attempt fails). Three cases, each seen from this node,
    /// costing the claimed jobs only:
    /// - the claimant has been silent on gossip for the lease time (crashed, cut
    ///   off);
    /// - the claimant is alive but its offers have not listed the job for twice the
    ///   lease (it lost track of it: a bug, or a peer that lies);
    /// - the claimant is this node, which holds no such claim, for [`ORPHAN_GRACE`]:
    ///   a merge named it after it let the job go, or it held the job when it last
    ///   stopped (a crash, a kill). Waiting out the grace first lets the first syncs
    ///   after a restart show whether another node took the job over meanwhile, so
    ///   a restarted node does not overwrite that with a stale "queued".
    ///
    /// Several nodes may do this for the same job at once: they write the same
    /// values. A node that in fact finished the job meanwhile has its take, which
    /// the next claimant finds before running it.
    async fn expire_leases(&mut self) -> Result<(), NodeError> {
        let peers = self.handle.peers().await?;
        let lease_secs = self.lease.as_secs_f64();
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let silent = |claimant: &str, started_at_ms: u64| -> bool {
            match peers.iter().find(|p| p.node_id == claimant) {
                Some(row) if row.this_node => false,
                Some(row) => row
                    .last_heartbeat_secs
                    .map_or(!row.connected, |secs| secs > lease_secs),
                None => now_ms().saturating_sub(started_at_ms) > lease_ms,
            }
        };
        let now = Instant::now();
        let mine: HashSet<&str> = self
            .held
            .iter()
            .map(|h| h.job_id.as_str())
            .chain(self.running.iter().map(|r| r.held.job_id.as_str()))
            .collect();
        let mut expired = Vec::new();
        let mut unheld_now = HashMap::new();
        for (project_id, project) in &self.index {
            for job in project.held.iter().filter_map(|id| project.jobs.get(id)) {
                if job.claimant.is_empty() {
                    continue;
                }
                let why = if job.claimant == self.node_id {
                    let pending = self
                        .pending
                        .get(project_id)
                        .is_some_and(|p| p.contains_key(&job.job_id));
                    if mine.contains(job.job_id.as_str()) || pending {
                        continue;
                    }
                    let since = *self.unheld.get(&job.job_id).unwrap_or(&now);
                    unheld_now.insert(job.job_id.clone(), since);
                    if now.duration_since(since) < ORPHAN_GRACE {
                        continue;
                    }
                    if job.started_at_ms < self.started_ms {
                        // Claimed by this node's previous run: it stopped (a crash, a
                        // kill) while holding the job. Given back only now, after the
                        // first syncs: another node may have taken it over since.
                        format!(
                            "interrupted: the node stopped during attempt {}",
                            job.attempts
                        )
                    } else {
                        format!(
                            "node {} holds no run for attempt {}",
                            placement::short_id(&job.claimant),
                            job.attempts
                        )
                    }
                } else if silent(&job.claimant, job.started_at_ms) {
                    format!(
                        "lease expired: node {} went silent during attempt {}",
                        job.claimant, job.attempts
                    )
                } else if let Some(offer) = self.offers.iter().find(|o| o.node_id == job.claimant) {
                    if offer.holding.iter().any(|(id, _)| *id == job.job_id) {
                        continue;
                    }
                    let since = *self.unheld.get(&job.job_id).unwrap_or(&now);
                    unheld_now.insert(job.job_id.clone(), since);
                    if now.duration_since(since) < self.lease * 2 {
                        continue;
                    }
                    format!(
                        "lease expired: node {} is up but has not held attempt {} for {} s",
                        placement::short_id(&job.claimant),
                        job.attempts,
                        (self.lease * 2).as_secs()
                    )
                } else {
                    continue;
                };
                expired.push((project_id.clone(), job.clone(), why));
            }
        }
        self.unheld = unheld_now;
        for (project_id, job, why) in expired {
            warn!(job = %job.job_id, node = %job.claimant, "{why}: the job goes back to the queue");
            self.unheld.remove(&job.job_id);
            let job = interrupted(job, &why, "", Interruption::Lost);
            self.queue_write(&project_id, job);
        }
        // Queued jobs past their deadline end, saying what they waited for.
        let now = now_ms();
        let mut overdue = Vec::new();
        for (project_id, project) in &self.index {
            for job in project
                .queued
                .iter()
                .filter_map(|key| project.jobs.get(&key.3))
            {
                let pending = self
                    .pending
                    .get(project_id)
                    .is_some_and(|p| p.contains_key(&job.job_id));
                if job.past_deadline(now) && !pending {
                    overdue.push((project_id.clone(), job.clone()));
                }
            }
        }
        for (project_id, mut job) in overdue {
            let waiting = placement::why_waiting(&job, &self.offers);
            job.error = if job.error.is_empty() {
                format!(
                    "not run by its deadline ({}): {waiting}",
                    clock_time(job.deadline_ms)
                )
            } else {
                format!(
                    "not run by its deadline ({}): {waiting}; last: {}",
                    clock_time(job.deadline_ms),
                    job.error
                )
            };
            job.state = if job.cancel_requested {
                JobState::Canceled
            } else {
                JobState::Failed
            };
            job.finished_at_ms = now;
            warn!(job = %job.job_id, "{}", job.error);
            self.queue_write(&project_id, job);
        }
        Ok(())
    }

    /// This node's run of `job`, ended now.
    fn attempt(&self, job: &Job, outcome: &str, fault: Option<Fault>, error: String) -> Attempt {
        Attempt {
            node_id: self.node_id.clone(),
            host: self.host.clone(),
            attempt: job.attempts,
            started_at_ms: job.started_at_ms,
            ended_at_ms: now_ms(),
            outcome: outcome.to_owned(),
            fault,
            error,
        }
    }

    /// The node is stopping: the job it runs and those it holds go back to the
    /// queue at once, their attempts given back, so another node (or this one when
    /// it starts again) takes them without waiting for a lease to run out.
    fn give_back_on_stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.cancel.cancel();
            let current = self
                .index
                .get(&running.held.project_id)
                .and_then(|p| p.jobs.get(&running.held.job_id))
                .cloned();
            if let Some(job) = current.filter(|j| j.claimant == self.node_id && is_held(j.state)) {
                info!(job = %job.job_id, "the node is stopping: its run goes back to the queue");
                let why = format!(
                    "the node {} stopped during attempt {}",
                    self.host, job.attempts
                );
                let job = interrupted(job, &why, &self.host, Interruption::Stopped);
                self.queue_write(&running.held.project_id, job);
            }
        }
        self.release_held();
    }
}

/// A held job whose run was interrupted by something that was not the job's
/// fault (its node stopped or went silent): recorded in its history, and back in
/// the queue with the attempt given back; ended instead when a cancel was asked
/// for, when its deadline passed, or when runs of it were interrupted on that node
/// [`TRANSIENT_LIMIT_PER_NODE`] times (then that node is ruled out, the attempt
/// counts, and it fails once none are left).
fn interrupted(mut job: Job, why: &str, host: &str, how: Interruption) -> Job {
    let node = job.claimant.clone();
    let now = now_ms();
    // A node stopped by its owner says nothing about the job; one that went
    // silent mid-run may have been taken down by it.
    let repeated =
        how == Interruption::Lost && job.transient_faults_on(&node) + 1 >= TRANSIENT_LIMIT_PER_NODE;
    job.record_attempt(Attempt {
        node_id: node.clone(),
        host: host.to_owned(),
        attempt: job.attempts,
        started_at_ms: job.started_at_ms,
        ended_at_ms: now,
        outcome: match (repeated, how) {
            (true, _) => "failed",
            (false, Interruption::Stopped) => "stopped",
            (false, Interruption::Lost) => "interrupted",
        }
        .into(),
        fault: Some(if repeated {
            Fault::Node
        } else {
            Fault::Transient
        }),
        error: why.to_owned(),
    });
    if job.cancel_requested {
        job.state = JobState::Canceled;
        job.finished_at_ms = now;
        return job;
    }
    if repeated {
        let text = format!(
            "{why} (the {} time a run of this job was interrupted on that node)",
            ordinal(TRANSIENT_LIMIT_PER_NODE)
        );
        job.ruled_out
            .insert(node.clone(), clip(&text, MAX_ERROR_LEN));
        *job.failures.entry(node).or_default() += 1;
        if job.attempts >= job.max_attempts {
            job.error = format!("{text}; all {} attempts used", job.max_attempts);
            job.state = JobState::Failed;
            job.finished_at_ms = now;
            return job;
        }
        job.error = text;
    } else {
        job.attempts = job.attempts.saturating_sub(1);
        job.error = format!("{why}; back in the queue (attempt given back)");
    }
    if job.past_deadline(now) {
        job.error = format!(
            "{}; its deadline passed ({})",
            job.error,
            clock_time(job.deadline_ms)
        );
        job.state = JobState::Failed;
        job.finished_at_ms = now;
        return job;
    }
    job.state = JobState::Queued;
    job.claimant = String::new();
    job
}

/// What an output file really is, from the probe of its bytes (or, for a video,
/// of its stored file with ffprobe). A file cut short or malformed is not a take:
/// the run failed (counting an attempt; another node may write it whole). A file
/// the probe cannot tell about (no ffprobe, a codec it lacks, a format that is not
/// an image or a video) is kept with what the renderer said of it, and a warning.
fn media_of(
    produced: &Produced,
    probed: Result<crate::media::MediaInfo, crate::media::MediaError>,
    what: &str,
) -> Result<crate::media::MediaInfo, RunFailure> {
    use crate::media::MediaError;
    match probed {
        Ok(info) => Ok(info),
        Err(
            e @ (MediaError::Empty | MediaError::Truncated { .. } | MediaError::Invalid { .. }),
        ) => Err(RunFailure::new(format!(
            "the renderer wrote a broken file: {what}: {e}"
        ))),
        Err(e) => {
            warn!("{what}: recorded with what the renderer said of it: {e}");
            Ok(crate::media::MediaInfo {
                width: produced.width,
                height: produced.height,
                frames: produced.frames,
                fps: produced.fps,
                duration_ms: produced.duration_ms,
            })
        }
    }
}

/// How a held job's run was cut short without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interruption {
    /// Its node stopped in an orderly way (SIGTERM, `reelmesh node` stopped).
    Stopped,
    /// Its node went silent or lost track of it (a crash, a cut cable, a bug).
    Lost,
}

/// "1st", "2nd", "3rd", "4th"...
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, r) if r != 11 => "st",
        (2, r) if r != 12 => "nd",
        (3, r) if r != 13 => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
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
