//! Render jobs on this node: pick, run, record.
//!
//! ```text
//!  document (durable)                 runner task (one per node)               renderers
//!  jobs{queued} ──DocChanged──▶ pick next runnable job (priority, age)
//!                              write running (claimant, attempt+1) ──▶ card (built in, no GPU)
//!                              progress ──NodeEvent::Job (ephemeral)──  or ComfyUI (POST /prompt, /ws)
//!  takes{..} ◀── blob store (BLAKE3) ◀── outputs ◀───────────────────────────────┘
//!  jobs{succeeded|failed|canceled}, shot status follows
//! ```
//! The runner is a task beside the node runtime and talks to it through a
//! [`NodeHandle`] like any other client: every transition is an edit (saved, fsynced,
//! synced to peers); progress and previews are [`NodeEvent::Job`] events, never
//! document writes. One job runs at a time (one GPU). It runs the jobs this node
//! queued; choosing among nodes by gossiped bids comes with the mesh scheduler.
//!
//! What a node can run ([`WorkerState::capabilities`]) is the built-in `card`
//! workflow plus every catalog workflow its ComfyUI can run: node classes and model
//! files from `/object_info`, VRAM from NVML or `/system_stats`. It is checked at
//! start, every [`CAPABILITY_REFRESH`], and after a run ComfyUI rejected, so a
//! restarted ComfyUI with new models is picked up. Presence announces it.

mod capabilities;
mod execute;
pub mod follow;
pub mod queue;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reelmesh_protocol::jobs::{Job, JobState, Take};
use reelmesh_protocol::model::ShotCode;
use reelmesh_protocol::placement::{self, Bid};
use reelmesh_protocol::wire::BidMessage;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use capabilities::{CAPABILITY_REFRESH, Capabilities};
pub use execute::Produced;

use crate::comfy::ComfyClient;
use crate::gpu::GpuSample;
use crate::node::{NodeConfig, NodeError, NodeEvent, NodeHandle};
use crate::store::blobs::BlobStore;
use crate::workflows::Catalog;

/// How long a node waits for the other nodes' bids before the placement rule
/// decides.
pub const BID_WINDOW: Duration = Duration::from_millis(150);
/// A bid that led to no claim (the winner went quiet) is made again after this.
pub const REBID_AFTER: Duration = Duration::from_secs(3);
/// A claimant not heard from (presence heartbeats) for this long loses its job: it
/// goes back to the queue.
pub const LEASE: Duration = Duration::from_secs(10);
/// How long a fresh claim waits for concurrent claims to merge before running (a
/// sync round trip on a LAN is a few ms; see BENCHMARKS.md [2/8]).
pub const CLAIM_SETTLE: Duration = Duration::from_millis(100);
/// How often leases are looked at.
const LEASE_CHECK: Duration = Duration::from_secs(1);

/// How long one ComfyUI run may take, queue wait included, before the job fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60 * 60);

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
}

/// One step of a job on this node, for progress bars and the editor (ephemeral).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobUpdate {
    /// The project.
    pub project_id: String,
    /// The job.
    pub job_id: String,
    /// Its shot's code (`SHT-00003`).
    pub shot_code: String,
    /// Its workflow.
    pub workflow: String,
    /// Where it is now.
    pub state: JobState,
    /// 0.0 ..= 1.0 within the run.
    pub fraction: f32,
    /// What is happening, in words ("KSampler 12/20", "cached", "uploading inputs").
    pub step: String,
    /// The error, when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The take it made, when it succeeded.
    #[serde(default)]
    pub take_id: Option<String>,
    /// Time spent around the renderer, when it succeeded.
    #[serde(default)]
    pub overhead: Option<Overhead>,
}

/// Time a job spends outside the renderer, measured on the runner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    /// From the start of the submission (POST /prompt) to the first event about it
    /// (for the card renderer: start of drawing).
    pub submit_to_first_event_ms: f64,
    /// From the last output being in hand to the take being recorded (blob stored,
    /// document saved).
    pub output_to_take_ms: f64,
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
        let catalog = Catalog::load(Some(&config.workflows_dir()))?;
        let comfy = config
            .comfy_url
            .as_deref()
            .map(ComfyClient::new)
            .transpose()?;
        let blobs = BlobStore::open(&config.data_dir)?;
        Ok(JobsSetup {
            catalog: Arc::new(catalog),
            comfy,
            blobs,
            gpu,
            worker,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
        })
    }
}

/// Start the runner (and the capability checker) for a node.
pub fn spawn(handle: NodeHandle, setup: JobsSetup) {
    let cancel = handle.cancel_token();
    let (capabilities, refresh) = Capabilities::spawn(
        Arc::clone(&setup.catalog),
        setup.comfy.clone(),
        setup.gpu.clone(),
        cancel.clone(),
    );
    let runner = Runner {
        node_id: handle.peer_id().to_string(),
        handle,
        catalog: setup.catalog,
        comfy: setup.comfy,
        blobs: setup.blobs,
        worker: setup.worker,
        capabilities,
        refresh,
        host: setup.host,
        gpu: setup.gpu,
        bids: HashMap::new(),
        my_bids: HashMap::new(),
    };
    tokio::spawn(runner.run(cancel));
}

/// Write a job's new state and move its shot's status to match (one edit).
fn save_job(doc: &mut reelmesh_protocol::document::ProjectDoc, job: &Job) -> Result<(), String> {
    doc.update_job(job).map_err(|e| e.to_string())?;
    doc.refresh_shot_status(&job.shot_id)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Milliseconds since the epoch.
#[must_use]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Runner {
    handle: NodeHandle,
    node_id: String,
    catalog: Arc<Catalog>,
    comfy: Option<ComfyClient>,
    blobs: BlobStore,
    worker: watch::Sender<WorkerState>,
    capabilities: watch::Receiver<Capabilities>,
    refresh: Arc<tokio::sync::Notify>,
    host: String,
    gpu: watch::Receiver<GpuSample>,
    /// Bids seen per job: node → (attempt, bid).
    bids: HashMap<String, HashMap<String, (u64, Bid)>>,
    /// When we bid on a job, and for which attempt.
    my_bids: HashMap<String, (Instant, u64)>,
}

/// A job picked to run, with what it needs from the document.
struct Picked {
    project_id: String,
    job: Job,
    shot_code: ShotCode,
}

impl Runner {
    async fn run(mut self, cancel: CancellationToken) {
        // Subscribe before the first look so no change is missed in between.
        let mut events = self.handle.subscribe();
        if let Err(e) = self.recover().await {
            warn!("job runner: looking for interrupted jobs failed: {e}");
        }
        let mut tick = tokio::time::interval(LEASE_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.publish_worker(None);
            let picked = match self.pick(&mut events).await {
                Ok(picked) => picked,
                Err(NodeError::Stopped) => break,
                Err(e) => {
                    warn!("job runner: {e}");
                    None
                }
            };
            if let Some(picked) = picked {
                self.run_one(picked, &cancel).await;
                continue;
            }
            // Nothing to do: wait for a document change or new capabilities.
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                changed = self.capabilities.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                event = events.recv() => match event {
                    Ok(event) => self.take_bid(&event),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                // Lost bids and silent claimants are looked at again on a tick.
                _ = tick.tick() => {
                    if let Err(e) = self.expire_leases().await {
                        warn!("job runner: checking leases failed: {e}");
                    }
                }
            }
        }
    }

    fn publish_worker(&self, current_job: Option<&str>) {
        let caps = self.capabilities.borrow().clone();
        self.worker.send_if_modified(|state| {
            let next = WorkerState {
                capabilities: caps.runnable.clone(),
                current_job: current_job.map(str::to_owned),
                problem: caps.problem.clone(),
                unavailable: caps.unavailable(),
                settled: caps.settled,
            };
            if *state == next {
                false
            } else {
                *state = next;
                true
            }
        });
    }

    /// Claims whose node has gone silent (no presence heartbeat for [`LEASE`]) go
    /// back to the queue, by whichever node notices first (the same write from
    /// several nodes is harmless). The attempt was counted at the claim.
    async fn expire_leases(&self) -> Result<(), NodeError> {
        let status = self.handle.status().await?;
        let lease_secs = LEASE.as_secs_f64();
        let lease_ms = u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX);
        let silent = |claimant: &str, started_at_ms: u64| -> bool {
            match status.peers.iter().find(|p| p.node_id == claimant) {
                Some(row) if row.this_node => false,
                Some(row) => row
                    .last_heartbeat_secs
                    .map_or(!row.connected, |secs| secs > lease_secs),
                None => now_ms().saturating_sub(started_at_ms) > lease_ms,
            }
        };
        for project in status.projects.iter().filter(|p| p.name.is_some()) {
            let node_id = self.node_id.clone();
            let (_, held) = self
                .handle
                .read(Some(project.project_id.clone()), move |doc| {
                    doc.jobs()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|j| {
                            matches!(j.state, JobState::Claimed | JobState::Running)
                                && !j.claimant.is_empty()
                                && j.claimant != node_id
                        })
                        .collect::<Vec<Job>>()
                })
                .await?;
            for job in held
                .into_iter()
                .filter(|j| silent(&j.claimant, j.started_at_ms))
            {
                let job_id = job.job_id.clone();
                let claimant = job.claimant.clone();
                let result = self
                    .handle
                    .edit(Some(project.project_id.clone()), move |doc| {
                        let mut job = doc.job(&job_id).map_err(|e| e.to_string())?;
                        if job.claimant != claimant
                            || !job.state.is_active()
                            || job.state == JobState::Queued
                        {
                            return Ok(());
                        }
                        job.error = format!(
                            "lease expired: node {claimant} went silent during attempt {}",
                            job.attempts
                        );
                        if job.attempts >= job.max_attempts {
                            job.state = JobState::Failed;
                            job.finished_at_ms = now_ms();
                        } else {
                            job.state = JobState::Queued;
                            job.claimant = String::new();
                        }
                        save_job(doc, &job)
                    })
                    .await;
                match result {
                    Ok(_) => {
                        warn!(job = %job.job_id, node = %job.claimant, "lease expired: the job goes back to the queue");
                    }
                    Err(e) => warn!(job = %job.job_id, "returning an expired lease failed: {e}"),
                }
            }
        }
        Ok(())
    }

    /// Jobs this node was running when it stopped (a crash, a kill, a shutdown mid
    /// run) go back to the queue with one attempt used, or end failed when that was
    /// the last attempt. Nothing else could end them: their claimant is us.
    async fn recover(&self) -> Result<(), NodeError> {
        let status = self.handle.status().await?;
        for project in status.projects.iter().filter(|p| p.name.is_some()) {
            let node_id = self.node_id.clone();
            let (_, recovered) = self
                .handle
                .edit(Some(project.project_id.clone()), move |doc| {
                    let stuck: Vec<Job> = doc
                        .jobs()
                        .map_err(|e| e.to_string())?
                        .into_iter()
                        .filter(|j| {
                            j.claimant == node_id
                                && matches!(j.state, JobState::Claimed | JobState::Running)
                        })
                        .collect();
                    for mut job in stuck.clone() {
                        job.error = format!(
                            "interrupted: the node stopped during attempt {}",
                            job.attempts
                        );
                        if job.attempts >= job.max_attempts || job.cancel_requested {
                            job.state = if job.cancel_requested {
                                JobState::Canceled
                            } else {
                                JobState::Failed
                            };
                            job.finished_at_ms = now_ms();
                        } else {
                            job.state = JobState::Queued;
                            job.claimant = String::new();
                        }
                        save_job(doc, &job)?;
                    }
                    Ok(stuck.len())
                })
                .await?;
            if recovered > 0 {
                warn!(project = %project.project_id, jobs = recovered, "jobs interrupted by the last stop went back to the queue");
            }
        }
        Ok(())
    }

    /// Every queued job this node could run now, best first, plus the nodes that
    /// are busy with a claimed or running job (their bids no longer count). Queued
    /// jobs with a cancel request are ended on the way.
    async fn candidates(
        &self,
        status: &crate::node::NodeStatusReport,
    ) -> Result<(Vec<Picked>, HashSet<String>), NodeError> {
        let runnable = self.capabilities.borrow().runnable.clone();
        let mut all = Vec::new();
        let mut busy = HashSet::new();
        for project in status.projects.iter().filter(|p| p.name.is_some()) {
            let (_, (jobs, claimants)) = self
                .handle
                .read(Some(project.project_id.clone()), move |doc| {
                    let codes: BTreeMap<String, ShotCode> = doc
                        .all_shots()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(s, _)| (s.shot_id, s.code))
                        .collect();
                    let all = doc.jobs().unwrap_or_default();
                    let claimants: Vec<String> = all
                        .iter()
                        .filter(|j| matches!(j.state, JobState::Claimed | JobState::Running))
                        .map(|j| j.claimant.clone())
                        .collect();
                    let jobs: Vec<(Job, ShotCode)> = all
                        .into_iter()
                        .filter(|j| j.state == JobState::Queued)
                        .map(|j| {
                            let code = codes.get(&j.shot_id).copied().unwrap_or(ShotCode(0));
                            (j, code)
                        })
                        .collect();
                    (jobs, claimants)
                })
                .await?;
            busy.extend(claimants);
            for (job, shot_code) in jobs {
                if job.cancel_requested {
                    self.end_unstarted(
                        &project.project_id,
                        &job,
                        JobState::Canceled,
                        "canceled before it started",
                    )
                    .await;
                    continue;
                }
                if self.catalog.get(&job.workflow).is_none() {
                    // Another node's workflow this node does not know: not ours to
                    // run. Our own job naming one can never run: say so.
                    if job.created_by == self.node_id {
                        let why = format!(
                            "unknown workflow '{}' (not in this node's catalog)",
                            job.workflow
                        );
                        self.end_unstarted(&project.project_id, &job, JobState::Failed, &why)
                            .await;
                    }
                    continue;
                }
                if runnable.iter().any(|w| w == &job.workflow) {
                    all.push(Picked {
                        project_id: project.project_id.clone(),
                        job,
                        shot_code,
                    });
                }
            }
        }
        all.sort_by(|a, b| reelmesh_protocol::placement::job_order(&a.job, &b.job));
        Ok((all, busy))
    }

    /// Our bid for a job (we bid only while idle).
    fn my_bid(&self, job: &Job) -> Bid {
        Bid {
            job_id: job.job_id.clone(),
            node_id: self.node_id.clone(),
            capable: true,
            vram_ok: true,
            utilization: self
                .gpu
                .borrow()
                .gpu
                .as_ref()
                .and_then(|g| g.utilization)
                .unwrap_or(100),
            queue_len: 0,
        }
    }

    /// Keep the bids that arrived meanwhile.
    fn take_bid(&mut self, event: &NodeEvent) {
        if let NodeEvent::Bid(message) = event {
            // A node bids on one job at a time: its new bid withdraws the others.
            for (job_id, by_node) in &mut self.bids {
                if *job_id != message.bid.job_id {
                    by_node.remove(&message.bid.node_id);
                }
            }
            self.bids
                .entry(message.bid.job_id.clone())
                .or_default()
                .insert(
                    message.bid.node_id.clone(),
                    (message.attempt, message.bid.clone()),
                );
        }
    }

    /// The next job this node should run. Alone, the best candidate. In a mesh, bid
    /// on the best candidate, let the other nodes' bids arrive for [`BID_WINDOW`],
    /// and take the job only if the placement rule picks us among the bids of the
    /// nodes that are not busy (the same computation on every node).
    async fn pick(
        &mut self,
        events: &mut broadcast::Receiver<NodeEvent>,
    ) -> Result<Option<Picked>, NodeError> {
        let status = self.handle.status().await?;
        let alone = !status.peers.iter().any(|p| p.connected && !p.this_node);
        let (candidates, busy) = self.candidates(&status).await?;
        if alone {
            return Ok(candidates.into_iter().next());
        }
        let Some(first) = candidates.into_iter().next() else {
            return Ok(None);
        };
        let job_id = first.job.job_id.clone();
        let attempt = first.job.attempts;
        let stale = self
            .my_bids
            .get(&job_id)
            .is_none_or(|(at, a)| *a != attempt || at.elapsed() > REBID_AFTER);
        if stale {
            let bid = self.my_bid(&first.job);
            self.bids
                .entry(job_id.clone())
                .or_default()
                .retain(|_, (a, _)| *a == attempt);
            self.bids
                .entry(job_id.clone())
                .or_default()
                .insert(self.node_id.clone(), (attempt, bid.clone()));
            self.my_bids
                .insert(job_id.clone(), (Instant::now(), attempt));
            self.handle
                .publish_bid(BidMessage {
                    project_id: first.project_id.clone(),
                    attempt,
                    bid,
                })
                .await?;
        }
        // Collect bids until our window for this job is over.
        let window_end = self
            .my_bids
            .get(&job_id)
            .map_or_else(Instant::now, |(at, _)| *at + BID_WINDOW);
        loop {
            let now = Instant::now();
            if now >= window_end {
                break;
            }
            match tokio::time::timeout(window_end - now, events.recv()).await {
                Ok(Ok(event)) => self.take_bid(&event),
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err(NodeError::Stopped),
                Err(_) => break,
            }
        }
        while let Ok(event) = events.try_recv() {
            self.take_bid(&event);
        }
        let bids: Vec<Bid> = self
            .bids
            .get(&job_id)
            .map(|by_node| {
                by_node
                    .values()
                    .filter(|(a, b)| *a == attempt && !busy.contains(&b.node_id))
                    .map(|(_, b)| b.clone())
                    .collect()
            })
            .unwrap_or_default();
        let winner = placement::rank(&bids).map(|b| b.node_id.clone());
        debug!(job = %job_id, bids = bids.len(), winner = ?winner, "bid window closed");
        if winner.as_deref() == Some(self.node_id.as_str()) {
            return Ok(Some(first));
        }
        Ok(None)
    }

    async fn end_unstarted(&self, project_id: &str, job: &Job, state: JobState, why: &str) {
        let job_id = job.job_id.clone();
        let why_text = why.to_owned();
        let result = self
            .handle
            .edit(Some(project_id.to_owned()), move |doc| {
                let mut job = doc.job(&job_id).map_err(|e| e.to_string())?;
                if job.state != JobState::Queued {
                    return Ok(());
                }
                job.state = state;
                job.error = if state == JobState::Failed {
                    why_text
                } else {
                    String::new()
                };
                job.finished_at_ms = now_ms();
                save_job(doc, &job)?;
                Ok(())
            })
            .await;
        if let Err(e) = result {
            warn!(job = %job.job_id, "ending a job that never started failed: {e}");
        }
        info!(job = %job.job_id, workflow = %job.workflow, "job {state}: {why}");
    }

    fn emit(&self, picked: &Picked, state: JobState, fraction: f32, step: &str) {
        self.handle
            .emit(NodeEvent::Job(update_for(picked, state, fraction, step)));
    }

    async fn run_one(&mut self, mut picked: Picked, cancel: &CancellationToken) {
        // Claim: queued → running with us as claimant, one more attempt.
        let job_id = picked.job.job_id.clone();
        let node_id = self.node_id.clone();
        let claimed = self
            .handle
            .edit(Some(picked.project_id.clone()), move |doc| {
                let mut job = doc.job(&job_id).map_err(|e| e.to_string())?;
                if job.state != JobState::Queued || job.cancel_requested {
                    return Ok(None);
                }
                job.state = JobState::Running;
                job.claimant = node_id;
                job.attempts += 1;
                job.started_at_ms = now_ms();
                save_job(doc, &job)?;
                let project = doc.project().map_err(|e| e.to_string())?;
                Ok(Some((job, project)))
            })
            .await;
        let (job, project) = match claimed {
            Ok((_, Some(claimed))) => claimed,
            Ok((_, None)) => return,
            Err(e) => {
                warn!(job = %picked.job.job_id, "claiming failed: {e}");
                return;
            }
        };
        picked.job = job;
        if !self.claim_holds(&picked).await {
            info!(job = %picked.job.job_id, "another node's concurrent claim won; not running it");
            return;
        }
        self.publish_worker(Some(&picked.job.job_id));
        self.emit(&picked, JobState::Running, 0.0, "starting");
        info!(job = %picked.job.job_id, shot = %picked.shot_code, workflow = %picked.job.workflow, attempt = picked.job.attempts, "job running");

        let run_cancel = cancel.child_token();
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = self.watch_cancel(&picked, run_cancel.clone(), Arc::clone(&lost));
        let Some(workflow) = self.catalog.get(&picked.job.workflow).cloned() else {
            return;
        };
        let outcome = execute::execute(
            &execute::Context {
                job: &picked.job,
                project: &project,
                workflow: &workflow,
                comfy: self.comfy.as_ref(),
                blobs: &self.blobs,
                handle: &self.handle,
                project_id: &picked.project_id,
                shot_code: &picked.shot_code.to_string(),
            },
            &run_cancel,
        )
        .await;
        watcher.abort();
        let rejected = matches!(
            &outcome,
            Err(execute::RunError::Comfy(
                crate::comfy::ComfyError::Rejected { .. }
            ))
        );
        if lost.load(std::sync::atomic::Ordering::SeqCst) {
            warn!(job = %picked.job.job_id, "another node's claim won the merge; our run was canceled and records nothing");
            return;
        }
        if cancel.is_cancelled() && outcome.is_err() {
            // The node is stopping: the job stays running in the document and the
            // next start puts it back in the queue (see `recover`).
            return;
        }
        match outcome {
            Ok(run) => self.record_success(&picked, run).await,
            Err(e) => {
                let state = if run_cancel.is_cancelled() {
                    JobState::Canceled
                } else {
                    JobState::Failed
                };
                self.record_end(&picked, state, e.to_string()).await;
            }
        }
        if rejected {
            // ComfyUI refused the graph: its nodes or models may have changed.
            self.refresh.notify_one();
        }
    }

    /// After writing a claim, let concurrent claims from other nodes arrive (a sync
    /// round trip on a healthy mesh) and check ours is the one the merge kept.
    /// Alone, there is nobody to race with.
    async fn claim_holds(&self, picked: &Picked) -> bool {
        let connected = self
            .handle
            .status()
            .await
            .map(|s| s.peers.iter().any(|p| p.connected && !p.this_node))
            .unwrap_or(false);
        if !connected {
            return true;
        }
        tokio::time::sleep(CLAIM_SETTLE).await;
        self.still_claimant(picked).await
    }

    /// Whether the document still names us as the job's claimant.
    async fn still_claimant(&self, picked: &Picked) -> bool {
        let id = picked.job.job_id.clone();
        let me = self.node_id.clone();
        self.handle
            .read(Some(picked.project_id.clone()), move |doc| {
                doc.job(&id).is_ok_and(|j| j.claimant == me)
            })
            .await
            .is_ok_and(|(_, mine)| mine)
    }

    /// Cancel the run when someone sets `cancel_requested` on the job.
    fn watch_cancel(
        &self,
        picked: &Picked,
        run_cancel: CancellationToken,
        lost: Arc<std::sync::atomic::AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let handle = self.handle.clone();
        let node_id = self.node_id.clone();
        let mut events = handle.subscribe();
        let project_id = picked.project_id.clone();
        let job_id = picked.job.job_id.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(NodeEvent::DocChanged {
                        project_id: changed,
                        ..
                    }) if changed == project_id => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
                let id = job_id.clone();
                let me = node_id.clone();
                let asked = handle
                    .read(Some(project_id.clone()), move |doc| {
                        doc.job(&id)
                            .map(|j| (j.cancel_requested, j.claimant != me))
                            .unwrap_or((false, false))
                    })
                    .await;
                match asked {
                    Ok((_, (_, true))) => {
                        // Another node's claim won the merge: stop ours, write nothing.
                        lost.store(true, std::sync::atomic::Ordering::SeqCst);
                        run_cancel.cancel();
                        return;
                    }
                    Ok((_, (true, false))) => {
                        run_cancel.cancel();
                        return;
                    }
                    _ => {}
                }
            }
        })
    }

    async fn record_success(&self, picked: &Picked, run: execute::Run) {
        let output_at = Instant::now();
        if !self.still_claimant(picked).await {
            warn!(job = %picked.job.job_id, "another node's claim won the merge while we ran; our result is not recorded");
            return;
        }
        let mut takes = Vec::new();
        for produced in &run.outputs {
            let blobs = self.blobs.clone();
            let bytes = produced.bytes.clone();
            let stored = tokio::task::spawn_blocking(move || blobs.put(&bytes)).await;
            let blob = match stored {
                Ok(Ok(blob)) => blob,
                Ok(Err(e)) => {
                    self.record_end(picked, JobState::Failed, format!("storing the output: {e}"))
                        .await;
                    return;
                }
                Err(e) => {
                    self.record_end(picked, JobState::Failed, format!("storing the output: {e}"))
                        .await;
                    return;
                }
            };
            takes.push(Take {
                take_id: reelmesh_protocol::model::new_record_id(),
                shot_id: picked.job.shot_id.clone(),
                job_id: picked.job.job_id.clone(),
                blob: blob.hash.to_hex(),
                media: produced.media,
                extension: produced.extension.clone(),
                size: blob.size,
                width: produced.width,
                height: produced.height,
                frames: produced.frames,
                workflow: picked.job.workflow.clone(),
                seed: picked.job.seed,
                prompt: picked.job.prompt.clone(),
                node_id: self.node_id.clone(),
                host: self.host.clone(),
                started_at_ms: picked.job.started_at_ms,
                finished_at_ms: now_ms(),
                render_ms: run.render_ms,
                cached: run.cached,
            });
        }
        let job_id = picked.job.job_id.clone();
        let recorded = takes.clone();
        let result = self
            .handle
            .edit(Some(picked.project_id.clone()), move |doc| {
                let mut job = doc.job(&job_id).map_err(|e| e.to_string())?;
                for take in &recorded {
                    doc.add_take(take).map_err(|e| e.to_string())?;
                }
                job.state = JobState::Succeeded;
                job.take_id = recorded
                    .first()
                    .map(|t| t.take_id.clone())
                    .unwrap_or_default();
                job.finished_at_ms = now_ms();
                save_job(doc, &job)?;
                Ok(())
            })
            .await;
        if let Err(e) = result {
            warn!(job = %picked.job.job_id, "recording the take failed: {e}");
            return;
        }
        let overhead = Overhead {
            submit_to_first_event_ms: run.submit_to_first_event.as_secs_f64() * 1000.0,
            output_to_take_ms: output_at.elapsed().as_secs_f64() * 1000.0,
        };
        info!(job = %picked.job.job_id, shot = %picked.shot_code, takes = takes.len(), render_ms = run.render_ms, "job succeeded");
        let step = if run.cached {
            "done (cached by comfyui)"
        } else {
            "done"
        };
        self.handle.emit(NodeEvent::Job(JobUpdate {
            take_id: takes.first().map(|t| t.take_id.clone()),
            overhead: Some(overhead),
            ..update_for(picked, JobState::Succeeded, 1.0, step)
        }));
    }

    async fn record_end(&self, picked: &Picked, state: JobState, error: String) {
        let job_id = picked.job.job_id.clone();
        let text = error.clone();
        let result = self
            .handle
            .edit(Some(picked.project_id.clone()), move |doc| {
                let mut job = doc.job(&job_id).map_err(|e| e.to_string())?;
                job.state = state;
                job.error = text;
                job.finished_at_ms = now_ms();
                save_job(doc, &job)?;
                Ok(())
            })
            .await;
        if let Err(e) = result {
            warn!(job = %picked.job.job_id, "recording the job's end failed: {e}");
        }
        warn!(job = %picked.job.job_id, shot = %picked.shot_code, "job {state}: {error}");
        self.handle.emit(NodeEvent::Job(JobUpdate {
            error: Some(error),
            ..update_for(picked, state, 1.0, state.as_str())
        }));
    }
}

/// A job update for a picked job.
fn update_for(picked: &Picked, state: JobState, fraction: f32, step: &str) -> JobUpdate {
    JobUpdate {
        project_id: picked.project_id.clone(),
        job_id: picked.job.job_id.clone(),
        shot_code: picked.shot_code.to_string(),
        workflow: picked.job.workflow.clone(),
        state,
        fraction,
        step: step.to_owned(),
        error: None,
        take_id: None,
        overhead: None,
    }
}

/// The data dir's workflows folder, for the CLI.
#[must_use]
pub fn user_workflows_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("workflows")
}

/// Jobs queued by [`queue_on`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderQueued {
    /// The project.
    pub project_id: String,
    /// One job per shot, in timeline order.
    pub queued: Vec<queue::Queued>,
    /// This node can run the workflow (else the jobs wait for another node).
    pub runnable_here: bool,
}

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
