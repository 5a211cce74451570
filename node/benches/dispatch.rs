//! Benchmarks of issue [4/8]: how fast the scheduler hands out jobs, how many it
//! hands out per second, and how well it packs jobs onto uneven GPUs.
//!
//! Run: `cargo bench -p reelmesh-node --bench dispatch` (release build). Real nodes in
//! one process: libp2p over loopback TCP with the mesh key, Automerge sync with an
//! fsync on every save, standing offers on gossip, `placement::assign` on every
//! worker. Jobs are run by the GPU stand-in (`tests/support/gpu_standin.rs`), which
//! sleeps for a declared time and records every execution in a ledger; the editor
//! node runs no jobs (`run_jobs = false`) and queues them. Heartbeat 300 ms, offline
//! after 2 s (as in `tests/it/jobs.rs`). Everything is observed on the editor, by
//! `DocChanged` events and reads of its document; nothing sleeps to synchronise.
//!
//! 1. Dispatch latency: 16 idle workers with distinct declared utilizations (worker
//!    i declares i %); one job queued at a time with `queue_on` (one shot each); from
//!    the queue edit returning on the editor until the editor's document names a
//!    claimant. The claimant is checked against `placement::assign` over the offers
//!    the editor held when it queued (the lowest-utilization free worker).
//! 2. Dispatch throughput: `REELMESH_BENCH_JOBS` (default 10,000) jobs of 0-1 ms on
//!    16 workers, queued in one edit on the editor (`queue_render`, the function
//!    `queue_on` runs, once per round of "all" over a 500-shot project); from that
//!    edit returning until the editor sees every job claimed, and every job succeeded.
//!    The ledger must show one execution per job.
//! 3. Makespan: 200 LTX-2 clip jobs on 8 workers of speeds 1, 1, 1.5, 1.5, 2, 2, 3, 4.
//!    Shots are 15-121 frames long (a fixed pseudo-random spread), so each job's
//!    clip, and with it its work (`Job::work`), follows its shot; the stand-in runs
//!    a job `scale` × 10/3 ms per frame at speed 1: the durations are known to the
//!    scheduler through the work, as a clip's cost is known from its length. Run at
//!    scale 10 (jobs of 0.5-4 s, still far shorter than real renders) and scale 1
//!    (50-403 ms, where the per-job cost of dispatch on a shared 2-core machine
//!    shows). First start to last end in the ledger against the lower bound
//!    max(work / total speed, longest / fastest).
//!
//! Every phase prints the CPU it used (this process, and the rest of the machine) so
//! a figure taken on a loaded machine can be told apart: all nodes share the
//! machine's cores, which a real mesh (one node per machine) does not.
//!
//! Knobs (environment): `REELMESH_BENCH_JOBS` (phase 2 job count; the default
//! 10,000 takes about 20 minutes on a 2-core machine, where all 17 nodes share the
//! cores: pass 2,000 for a quicker look and say so; raise
//! `REELMESH_BENCH_DEADLINE_S` for 10,000),
//! `REELMESH_BENCH_SAMPLES` (phase 1 samples, default 100),
//! `REELMESH_BENCH_WORKERS` (phase 2 workers, default 16: fewer show how the cost
//! of a job grows with the number of replicas),
//! `REELMESH_BENCH_PHASES` (comma list of `latency,throughput,makespan`; default all),
//! `REELMESH_BENCH_MAKESPAN_SCALES` (comma list of phase 3 duration scales, default
//! `10,1`),
//! `REELMESH_BENCH_TOPOLOGY` (`full`: every node dials every node started before it,
//! as mDNS on a LAN would connect them, the default; `star`: workers dial only the
//! editor, as in `tests/it/jobs.rs`), `REELMESH_BENCH_DEADLINE_S` (give up on phase 2
//! this long after the jobs are queued and report what was done, default 300).
//! `REELMESH_BENCH_VERBOSE=1` prints each latency sample with the `DocChanged`
//! events of the editor and the claiming worker; `RUST_LOG=reelmesh_node=debug`
//! shows the nodes' logs.

#![allow(
    clippy::too_many_lines,
    reason = "each bench phase is one scripted scenario with its report; the 120-line limit is for node/src"
)]
#![allow(clippy::unwrap_used)] // bench helpers panic on failure by design

#[path = "../tests/support/gpu_standin.rs"]
mod gpu_standin;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gpu_standin::{GpuStandIn, Ledger};
use libp2p::Multiaddr;
use reelmesh_node::jobs::{self, queue::RenderRequest};
use reelmesh_node::mesh::keys;
use reelmesh_node::node::{ChangeOrigin, Node, NodeConfig, NodeEvent, NodeHandle};
use reelmesh_node::store::DataDir;
use reelmesh_node::workflows::Catalog;
use reelmesh_protocol::document::Position;
use reelmesh_protocol::jobs::{Job, JobState};
use reelmesh_protocol::model::{Shot, ShotCode};
use reelmesh_protocol::placement;
use tokio::sync::broadcast;

#[path = "support/common.rs"]
mod common;
use common::{ms, percentile};

const KEY: [u8; 32] = [0x4d; 32];
const SETUP: Duration = Duration::from_secs(120);
const LATENCY_WORKERS: usize = 16;
const WARMUP: usize = 5;
const SAMPLES: usize = 100;
const THROUGHPUT_WORKERS: usize = 16;
const THROUGHPUT_SHOTS: u64 = 500;
const MAKESPAN_JOBS: u64 = 200;
const SPEEDS: [f64; 8] = [1.0, 1.0, 1.5, 1.5, 2.0, 2.0, 3.0, 4.0];
/// No job claimed or ended for this long: the phase is stuck.
const STALL: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Topology {
    Full,
    Star,
}

impl Topology {
    fn describe(self) -> &'static str {
        match self {
            Topology::Full => "full mesh (each node dials every node started before it)",
            Topology::Star => "star (workers dial only the editor)",
        }
    }
}

/// One row of the results table.
struct Row {
    what: String,
    result: String,
    goal: String,
    anchor: String,
}

fn row(what: impl Into<String>, result: impl Into<String>, goal: &str, anchor: &str) -> Row {
    Row {
        what: what.into(),
        result: result.into(),
        goal: goal.into(),
        anchor: anchor.into(),
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or_else(String::new, |kb| {
            format!(", {:.0} GiB RAM", kb / 1024.0 / 1024.0)
        });
    format!("{cores} cores (nproc), {cpu}{mem}")
}

/// CPU time of this process and of the whole machine, from `/proc` (clock ticks of
/// 1/100 s, Linux's `USER_HZ`).
#[derive(Clone, Copy)]
struct Cpu {
    at: Instant,
    ours: u64,
    busy: u64,
}

impl Cpu {
    fn now() -> Cpu {
        let ours = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                // Fields after the command name (which is in parentheses).
                let rest = s.rsplit_once(')')?.1.to_owned();
                let f: Vec<&str> = rest.split_whitespace().collect();
                // utime and stime are fields 14 and 15 of the line; `rest` starts at
                // field 3 (the state).
                let tick = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
                Some(tick(11)? + tick(12)?)
            })
            .unwrap_or(0);
        let busy = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("cpu "))?.to_owned();
                let f: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let total: u64 = f.iter().take(8).sum();
                Some(total - f.get(3)? - f.get(4)?)
            })
            .unwrap_or(0);
        Cpu {
            at: Instant::now(),
            ours,
            busy,
        }
    }

    /// CPU seconds the whole machine was busy since then.
    fn busy_s(self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let ticks = Cpu::now().busy.saturating_sub(self.busy) as f64;
        // /proc/stat counts in USER_HZ, 100 per second on Linux.
        ticks / 100.0
    }

    /// "this bench X % of one core, everything else on the machine Y %".
    fn since(self) -> String {
        let now = Cpu::now();
        let secs = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        #[allow(clippy::cast_precision_loss)]
        let pct = |ticks: u64| ticks as f64 / secs;
        let ours = now.ours.saturating_sub(self.ours);
        let busy = now.busy.saturating_sub(self.busy);
        format!(
            "CPU over {secs:.1} s: this bench {:.0} % of one core, other processes {:.0} % (the machine has {} cores = {} %)",
            pct(ours),
            pct(busy.saturating_sub(ours)),
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get) * 100
        )
    }
}

/// The CPU an idle mesh burns (heartbeats, offers, pings): measured over a fixed
/// window of idleness (this is a measurement, not a synchronisation).
async fn idle_cpu() -> String {
    let cpu = Cpu::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cpu.since()
}

/// SplitMix64: a fixed pseudo-random spread.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash_str(s: &str) -> u64 {
    // FNV-1a, then mixed.
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn request(shots: &str) -> RenderRequest {
    RenderRequest {
        shots: shots.into(),
        workflow: "card".into(),
        seed: None,
        priority: 0,
        inputs: BTreeMap::default(),
        deadline_secs: None,
        video: None,
    }
}

// ---------------------------------------------------------------------------------
// The mesh

struct Mesh {
    editor: Node,
    workers: Vec<Node>,
    dirs: Vec<tempfile::TempDir>,
}

impl Mesh {
    fn worker_ids(&self) -> Vec<String> {
        self.workers
            .iter()
            .map(|w| w.handle().peer_id().to_string())
            .collect()
    }

    async fn stop(self) {
        self.editor.stop().await.expect("stop editor");
        for worker in self.workers {
            worker.stop().await.expect("stop worker");
        }
    }
}

fn addr(node: &Node) -> Multiaddr {
    node.listen_addrs()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(node.handle().peer_id()))
}

fn config(dir: &std::path::Path, peers: Vec<Multiaddr>) -> NodeConfig {
    let mut config = NodeConfig::loopback(dir.to_owned(), peers);
    config.heartbeat = Duration::from_millis(300);
    config.offline_after = Duration::from_secs(2);
    config
}

/// An editor (runs no jobs) holding a project of `shots` shots, and one worker per
/// stand-in holding a replica, every worker synced and every node holding every
/// worker's offer.
async fn mesh(shots: u64, standins: Vec<GpuStandIn>, topology: Topology) -> Mesh {
    mesh_of(
        &vec![24; usize::try_from(shots).expect("shots")],
        standins,
        topology,
    )
    .await
}

/// [`mesh`] with one shot per entry of `lengths` (frames).
async fn mesh_of(lengths: &[u64], standins: Vec<GpuStandIn>, topology: Topology) -> Mesh {
    let editor_dir = tempfile::tempdir().expect("tmp");
    keys::store_mesh_key(editor_dir.path(), KEY).expect("key");
    let project_id = {
        let data = DataDir::open(editor_dir.path()).expect("data");
        let mut store = data.create_project("디스패치").expect("create");
        let project_id = store.doc().project_id().expect("id");
        let list: Vec<Shot> = (1_u64..)
            .zip(lengths)
            .map(|(i, frames)| {
                let mut shot = Shot::new(ShotCode(i), *frames);
                shot.action = format!("장면 {i}");
                shot
            })
            .collect();
        store
            .doc_mut()
            .add_shots(&list, &Position::End)
            .expect("add");
        store.save().expect("save");
        store.compact().expect("compact");
        project_id
    };
    let mut editor_config = config(editor_dir.path(), vec![]);
    editor_config.run_jobs = false;
    let editor = Node::start(editor_config).await.expect("editor");
    let (_, _, heads) = editor.handle().project(None).await.expect("read");
    let mut addrs = vec![addr(&editor)];
    let mut dirs = vec![editor_dir];
    let mut workers = Vec::new();
    for standin in standins {
        let dir = tempfile::tempdir().expect("tmp");
        keys::store_mesh_key(dir.path(), KEY).expect("key");
        let data = DataDir::open(dir.path()).expect("data");
        data.add_replica(&project_id).expect("replica");
        data.set_current_project(&project_id).expect("current");
        let peers = match topology {
            Topology::Full => addrs.clone(),
            Topology::Star => vec![addrs[0].clone()],
        };
        let mut worker_config = config(dir.path(), peers);
        worker_config.executor = Some(standin.slot());
        let worker = Node::start(worker_config).await.expect("worker");
        addrs.push(addr(&worker));
        workers.push(worker);
        dirs.push(dir);
    }
    let synced = futures::future::join_all(workers.iter().map(|w| w.handle()).map(|h| {
        let heads = heads.clone();
        async move { h.wait_for_heads(None, heads, SETUP).await }
    }))
    .await;
    for result in synced {
        result.expect("every worker holds the project");
    }
    for worker in &workers {
        worker.handle().worker_settled(SETUP).await;
    }
    let mesh = Mesh {
        editor,
        workers,
        dirs,
    };
    let ids = mesh.worker_ids();
    let mut handles = vec![mesh.editor.handle()];
    handles.extend(mesh.workers.iter().map(Node::handle));
    futures::future::join_all(handles.iter().map(|h| wait_offers(h, &ids))).await;
    mesh
}

/// Wait (on offer events) until this node holds a live offer from every one of `ids`.
async fn wait_offers(handle: &NodeHandle, ids: &[String]) {
    let mut events = handle.subscribe();
    let deadline = tokio::time::Instant::now() + SETUP;
    loop {
        let (offers, _) = handle.jobs_view().await.expect("jobs view");
        let have = ids
            .iter()
            .filter(|id| offers.iter().any(|o| &o.node_id == *id))
            .count();
        if have == ids.len() {
            return;
        }
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => panic!(
                    "node {} holds {have} of {} offers after {SETUP:?}",
                    handle.peer_id(),
                    ids.len()
                ),
                Ok(Ok(NodeEvent::Offer(_)) | Err(broadcast::error::RecvError::Lagged(_))) => {
                    break;
                }
                Ok(Ok(_)) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => panic!("node stopped"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Watching jobs on the editor

/// What the editor's document said about each job, and when it first said it.
#[derive(Default)]
struct Seen {
    claimed_at: HashMap<String, Instant>,
    ended_at: HashMap<String, Instant>,
    state: HashMap<String, JobState>,
    claimant: HashMap<String, String>,
    /// A job's claimant went from one node to another.
    claimant_changes: usize,
    /// A claimed job went back to the queue (lost lease, failed run).
    requeued: usize,
    last_progress: Option<Instant>,
    /// Every (state, claimant) the editor showed for each job, with when.
    history: HashMap<String, Vec<(Instant, JobState, String)>>,
}

impl Seen {
    fn note(&mut self, job: &Job, at: Instant) {
        let before = self.state.insert(job.job_id.clone(), job.state);
        let last = self.history.get(&job.job_id).and_then(|h| h.last());
        if last.is_some_and(|(_, state, claimant)| *state == job.state && *claimant == job.claimant)
        {
            return;
        }
        self.history.entry(job.job_id.clone()).or_default().push((
            at,
            job.state,
            job.claimant.clone(),
        ));
        if !job.claimant.is_empty() && job.state != JobState::Queued {
            if !self.claimed_at.contains_key(&job.job_id) {
                self.claimed_at.insert(job.job_id.clone(), at);
                self.last_progress = Some(at);
            }
            match self
                .claimant
                .insert(job.job_id.clone(), job.claimant.clone())
            {
                Some(old) if old != job.claimant => self.claimant_changes += 1,
                _ => {}
            }
        }
        if job.state == JobState::Queued && before.is_some_and(|s| s != JobState::Queued) {
            self.requeued += 1;
        }
        if !job.state.is_active() && !self.ended_at.contains_key(&job.job_id) {
            self.ended_at.insert(job.job_id.clone(), at);
            self.last_progress = Some(at);
        }
    }

    fn histogram(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for state in self.state.values() {
            *out.entry(state.to_string()).or_default() += 1;
        }
        out
    }
}

/// Jobs that changed in the editor's document since the last call (every job on the
/// first call). The editor runs no jobs, so this bench is the change index's only
/// reader there.
async fn changed_jobs(editor: &NodeHandle) -> Vec<Job> {
    let (_, read) = editor
        .read_mut(None, |doc| match doc.jobs_changed() {
            Ok(Some(changed)) => Ok(changed),
            Ok(None) => doc.jobs().map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        })
        .await
        .expect("read");
    read.expect("jobs")
}

/// How many changes the editor's document holds.
async fn change_count(editor: &NodeHandle) -> usize {
    editor
        .read_mut(None, |doc| Ok::<_, String>(doc.change_count()))
        .await
        .map_or(0, |(_, n)| n.unwrap_or(0))
}

/// Follow the editor's document until `done`, reading on every `DocChanged`. Gives
/// up at `deadline` or after [`STALL`] without a job claimed or ended.
async fn follow(
    editor: &NodeHandle,
    events: &mut broadcast::Receiver<NodeEvent>,
    seen: &mut Seen,
    total: usize,
    deadline: Instant,
    label: &str,
    done: impl Fn(&Seen) -> bool,
) -> Result<(), String> {
    let started = Instant::now();
    seen.last_progress.get_or_insert(started);
    let mut next_print = started + Duration::from_secs(10);
    loop {
        for job in changed_jobs(editor).await {
            seen.note(&job, Instant::now());
        }
        if done(seen) {
            return Ok(());
        }
        let now = Instant::now();
        if now >= next_print {
            eprintln!(
                "  [{label}] {:>5.1} s: claimed {} / {total}, ended {} / {total}",
                started.elapsed().as_secs_f64(),
                seen.claimed_at.len(),
                seen.ended_at.len()
            );
            next_print = now + Duration::from_secs(10);
        }
        let stalled_at = seen.last_progress.unwrap_or(started) + STALL;
        if now >= deadline {
            return Err(format!(
                "deadline reached after {:.1} s",
                ms(started.elapsed()) / 1e3
            ));
        }
        if now >= stalled_at {
            return Err(format!("no job claimed or ended for {STALL:?}"));
        }
        let wake = deadline.min(stalled_at).min(next_print);
        loop {
            match tokio::time::timeout_at(wake.into(), events.recv()).await {
                Err(_)
                | Ok(
                    Ok(NodeEvent::DocChanged { .. }) | Err(broadcast::error::RecvError::Lagged(_)),
                ) => break,
                Ok(Ok(_)) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err("editor stopped".into()),
            }
        }
        // Everything else already there is covered by the next read.
        while events.try_recv().is_ok() {}
    }
}

/// Print what a stuck phase looks like from the editor and the workers.
async fn diagnose(mesh: &Mesh, seen: &Seen, ledger: &Ledger) {
    println!("  states on the editor: {:?}", seen.histogram());
    let (offers, _) = mesh.editor.handle().jobs_view().await.expect("view");
    println!("  live offers on the editor: {}", offers.len());
    for offer in &offers {
        println!(
            "    {} util {} queue {} slots {} paused {:?}",
            offer.node_id, offer.utilization, offer.queue_len, offer.slots, offer.paused
        );
    }
    // The jobs still active on the editor, and what their claimant's copy says.
    let ids = mesh.worker_ids();
    let (_, active) = mesh
        .editor
        .handle()
        .read(None, |doc| {
            doc.jobs()
                .map(|all| {
                    all.into_iter()
                        .filter(|j| j.state.is_active())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .await
        .expect("read");
    for job in active.iter().filter(|j| !j.claimant.is_empty()).take(20) {
        let owner = ids.iter().position(|id| *id == job.claimant);
        let there = match owner {
            Some(i) => {
                let id = job.job_id.clone();
                let (_, theirs) = mesh.workers[i]
                    .handle()
                    .read(None, move |doc| doc.job(&id).map_err(|e| e.to_string()))
                    .await
                    .expect("read");
                theirs.map_or_else(
                    |e| e,
                    |j| {
                        format!(
                            "{} claimant {:?} attempts {}",
                            j.state,
                            ids.iter().position(|id| *id == j.claimant),
                            j.attempts
                        )
                    },
                )
            }
            None => "claimant is not a worker".into(),
        };
        println!(
            "  active job {} on the editor: {} by worker {owner:?}, attempts {}, error '{}'; on its claimant: {there}",
            job.job_id, job.state, job.attempts, job.error
        );
        let origin = seen
            .history
            .get(&job.job_id)
            .and_then(|h| h.first())
            .map(|(at, _, _)| *at);
        if let (Some(history), Some(origin)) = (seen.history.get(&job.job_id), origin) {
            let steps: Vec<String> = history
                .iter()
                .map(|(at, state, claimant)| {
                    format!(
                        "+{:.0} ms {state} by {:?}",
                        ms(at.duration_since(origin)),
                        ids.iter().position(|id| id == claimant)
                    )
                })
                .collect();
            println!("    as the editor saw it: {}", steps.join(", "));
        }
        for run in ledger.all().iter().filter(|e| e.job_id == job.job_id) {
            println!(
                "    ledger: ran on {} (worker {:?}) attempt {}, started {} ms after the editor first saw the job, {}",
                run.gpu,
                ids.iter().position(|id| *id == run.node_id),
                run.attempt,
                origin.map_or(f64::NAN, |o| ms(run.started.saturating_duration_since(o))),
                match run.ended {
                    Some(end) if run.failed => format!(
                        "ended failed/canceled after {:.0} ms",
                        ms(end.duration_since(run.started))
                    ),
                    Some(end) => format!(
                        "ended ok after {:.0} ms",
                        ms(end.duration_since(run.started))
                    ),
                    None => "never ended".into(),
                }
            );
        }
    }
    for (i, worker) in mesh.workers.iter().enumerate() {
        let state = worker.handle().worker();
        let (offers, _) = worker.handle().jobs_view().await.expect("view");
        println!(
            "  worker {i:02}: current job {:?}, paused {:?}, sees {} offers",
            state.current_job,
            state.paused,
            offers.len()
        );
    }
}

/// Each job that ran more than once, with where and when each run started (ms from
/// the first run of any job), so its logs can be found.
fn print_duplicates(ledger: &Ledger) {
    let all = ledger.all();
    let Some(first) = all.iter().map(|e| e.started).min() else {
        return;
    };
    for (job, count) in ledger.per_job() {
        if count < 2 {
            continue;
        }
        let runs: Vec<String> = all
            .iter()
            .filter(|e| e.job_id == job)
            .map(|e| {
                format!(
                    "{} attempt {} at +{} ms",
                    e.gpu,
                    e.attempt,
                    e.started.duration_since(first).as_millis()
                )
            })
            .collect();
        println!("  ran {count} times: job {job}: {}", runs.join("; "));
    }
}

/// One execution per job: (jobs executed once, jobs executed more than once, extra
/// executions, jobs never executed, executions that ended failed or canceled).
fn ledger_counts(ledger: &Ledger, ids: &HashSet<String>) -> (usize, usize, usize, usize, usize) {
    let per_job = ledger.per_job();
    let once = ids.iter().filter(|id| per_job.get(*id) == Some(&1)).count();
    let multi = ids
        .iter()
        .filter(|id| per_job.get(*id).is_some_and(|n| *n > 1))
        .count();
    let extra: usize = per_job.values().map(|n| n.saturating_sub(1)).sum();
    let never = ids.iter().filter(|id| !per_job.contains_key(*id)).count();
    let failed = ledger.all().iter().filter(|e| e.failed).count();
    (once, multi, extra, never, failed)
}

/// With `REELMESH_BENCH_VERBOSE`: every node's `DocChanged` events, with when they
/// arrived (node index: 0 = editor, i + 1 = worker i; origin: `L` local or a node
/// index), so a slow sample can be taken apart.
#[derive(Clone, Default)]
struct Trace(Arc<std::sync::Mutex<Vec<(Instant, usize, String)>>>);

impl Trace {
    fn start(mesh: &Mesh) -> Option<Trace> {
        std::env::var_os("REELMESH_BENCH_VERBOSE")?;
        let trace = Trace::default();
        let mut handles = vec![mesh.editor.handle()];
        handles.extend(mesh.workers.iter().map(Node::handle));
        let names: HashMap<libp2p::PeerId, usize> = handles
            .iter()
            .enumerate()
            .map(|(i, h)| (h.peer_id(), i))
            .collect();
        for (i, handle) in handles.iter().enumerate() {
            let mut events = handle.subscribe();
            let trace = trace.clone();
            let names = names.clone();
            tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(NodeEvent::DocChanged { origin, .. }) => {
                            let from = match origin {
                                ChangeOrigin::Local => "L".to_owned(),
                                ChangeOrigin::Peer(p) => {
                                    names.get(&p).map_or("?".into(), ToString::to_string)
                                }
                            };
                            trace
                                .0
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((Instant::now(), i, from));
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
        Some(trace)
    }

    /// The events since `from`, as "+ms node<-origin" (nodes 0 and 1 only: the
    /// editor and the worker that claims).
    fn since(&self, from: Instant) -> String {
        let all = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.iter()
            .filter(|(at, node, _)| *at >= from && *node <= 1)
            .map(|(at, node, origin)| {
                format!("+{:.0} {node}<-{origin}", ms(at.duration_since(from)))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

// ---------------------------------------------------------------------------------
// 1. Dispatch latency

async fn latency(topology: Topology, rows: &mut Vec<Row>) {
    let ledger = Ledger::default();
    let standins = (0..LATENCY_WORKERS)
        .map(|i| {
            let utilization = u8::try_from(i).expect("small");
            GpuStandIn::new(&format!("standin-{i:02}"), 24.0, &[], utilization, &ledger)
                .durations(Arc::new(|_| Duration::from_millis(5)))
        })
        .collect();
    let samples =
        usize::try_from(env_num("REELMESH_BENCH_SAMPLES", SAMPLES as u64)).unwrap_or(SAMPLES);
    let total = WARMUP + samples;
    let setup = Instant::now();
    let mesh = mesh(total as u64, standins, topology).await;
    println!(
        "== 1. dispatch latency: {LATENCY_WORKERS} workers (worker i declares utilization i %, 5 ms jobs) + 1 editor, \
         {} ; mesh up in {:.1} s",
        topology.describe(),
        setup.elapsed().as_secs_f64()
    );
    println!("idle mesh, no job: {}", idle_cpu().await);
    let cpu = Cpu::now();
    let editor = mesh.editor.handle();
    let index: HashMap<String, usize> = mesh
        .worker_ids()
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    let mut after_return = Vec::with_capacity(samples);
    let mut from_call = Vec::with_capacity(samples);
    let mut queue_calls = Vec::with_capacity(samples);
    let mut mismatches = 0_usize;
    let mut by_worker: BTreeMap<usize, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut seen = Seen::default();
    let trace = Trace::start(&mesh);
    for i in 0..total {
        let code = ShotCode(i as u64 + 1).to_string();
        let (offers, _) = editor.jobs_view().await.expect("view");
        let mut events = editor.subscribe();
        let call = Instant::now();
        let queued = jobs::queue_on(&editor, None, request(&code), true)
            .await
            .expect("queue");
        let returned = Instant::now();
        assert_eq!(queued.queued.len(), 1, "one shot, one job");
        let job_id = queued.queued[0].job_id.clone();
        let claimed = wait_job(&editor, &mut events, &job_id, |j| {
            !j.claimant.is_empty() && j.state != JobState::Queued
        })
        .await;
        let (job, seen_at) = match claimed {
            Ok(found) => found,
            Err(e) => {
                failures.push(format!("{code}: not claimed: {e}"));
                diagnose(&mesh, &seen, &ledger).await;
                continue;
            }
        };
        // The rule over the offers the editor held when it queued.
        let expected = placement::assign(std::iter::once(&job), &offers)
            .into_iter()
            .next()
            .map(|(_, node)| node);
        if let Some(trace) = &trace {
            eprintln!(
                "  sample {i}: {code} claimed by worker {:?} ({}) {:.1} ms after the queue edit returned; events from the call: {}",
                index.get(&job.claimant),
                job.state,
                ms(seen_at.duration_since(returned)),
                trace.since(call)
            );
        }
        if i >= WARMUP {
            after_return.push(seen_at.duration_since(returned));
            from_call.push(seen_at.duration_since(call));
            queue_calls.push(returned.duration_since(call));
            if expected.as_deref() != Some(job.claimant.as_str()) {
                mismatches += 1;
                println!(
                    "  {code}: claimed by worker {:?}, the rule over the editor's {} offers says {:?}",
                    index.get(&job.claimant),
                    offers.len(),
                    expected.as_ref().and_then(|e| index.get(e))
                );
            }
            *by_worker
                .entry(index.get(&job.claimant).copied().unwrap_or(usize::MAX))
                .or_default() += 1;
        }
        // Wait for it to end so every worker is idle again for the next sample.
        match wait_job(&editor, &mut events, &job_id, |j| !j.state.is_active()).await {
            Ok((job, _)) if job.state == JobState::Succeeded => {}
            Ok((job, _)) => failures.push(format!("{code}: ended {}: {}", job.state, job.error)),
            Err(e) => {
                failures.push(format!("{code}: claimed but did not end: {e}"));
                diagnose(&mesh, &seen, &ledger).await;
            }
        }
        seen.note(&job, seen_at);
    }
    after_return.sort();
    from_call.sort();
    queue_calls.sort();
    let ids: HashSet<String> = ledger.per_job().keys().cloned().collect();
    let (_, multi, extra, _, failed_runs) = ledger_counts(&ledger, &ids);
    let n = after_return.len();
    if n > 0 {
        let p50 = percentile(&after_return, 0.5);
        let p99 = percentile(&after_return, 0.99);
        let max = *after_return.last().expect("samples");
        println!(
            "queue edit returned → claimed on the editor ({n} samples after {WARMUP} warm-up): \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goals p50 < 100 ms, p99 < 250 ms)",
            ms(p50),
            ms(p99),
            ms(max)
        );
        println!(
            "queue call → claimed on the editor (edit + fsync included): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
             the queue call alone: p50 {:.1} ms, p99 {:.1} ms",
            ms(percentile(&from_call, 0.5)),
            ms(percentile(&from_call, 0.99)),
            ms(*from_call.last().expect("samples")),
            ms(percentile(&queue_calls, 0.5)),
            ms(percentile(&queue_calls, 0.99)),
        );
        println!(
            "claimant = the rule's pick (lowest-utilization free worker, from the editor's offers): \
             {} of {n}, mismatches {mismatches}; claims by worker index {by_worker:?}",
            n - mismatches
        );
        let anchors = [
            ("Flamenco idle worker poll 20 s", 20.0),
            ("Flamenco poll right after a task 2 s", 2.0),
            ("AI Horde worker poll 1 s", 1.0),
        ];
        for (name, secs) in anchors {
            println!(
                "  p50 / {name} = {:.4}   p99 / {name} = {:.4}",
                p50.as_secs_f64() / secs,
                p99.as_secs_f64() / secs
            );
        }
        rows.push(row(
            format!(
                "dispatch latency, {LATENCY_WORKERS} idle workers + editor, one job at a time: queue edit returned → claim seen on the editor ({n} samples)"
            ),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                ms(p50),
                ms(p99),
                ms(max)
            ),
            "p50 < 100 ms, p99 < 250 ms",
            &format!(
                "p50 / AI Horde 1 s poll = {:.3}; p50 / Flamenco 2 s (after a task) = {:.3}; p50 / Flamenco 20 s idle poll = {:.4}",
                p50.as_secs_f64(),
                p50.as_secs_f64() / 2.0,
                p50.as_secs_f64() / 20.0
            ),
        ));
        rows.push(row(
            "claimant is the placement rule's pick (lowest declared utilization, free)",
            format!("{} of {n} (mismatches {mismatches})", n - mismatches),
            "all",
            "",
        ));
    }
    println!("during the samples: {}", cpu.since());
    println!(
        "ledger: {} executions, jobs run more than once {multi} (extra runs {extra}), runs ended failed/canceled {failed_runs}",
        ledger.all().len()
    );
    for failure in &failures {
        println!("  FAILED {failure}");
    }
    mesh.stop().await;
}

/// Wait on the editor until the job satisfies `ready`; returns it and when the read
/// that showed it returned.
async fn wait_job(
    editor: &NodeHandle,
    events: &mut broadcast::Receiver<NodeEvent>,
    job_id: &str,
    ready: impl Fn(&Job) -> bool,
) -> Result<(Job, Instant), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let id = job_id.to_owned();
        let (_, job) = editor
            .read(None, move |doc| doc.job(&id).map_err(|e| e.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        let at = Instant::now();
        let job = job?;
        if ready(&job) {
            return Ok((job, at));
        }
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => {
                    return Err(format!(
                        "still {} (claimant '{}') after 30 s",
                        job.state, job.claimant
                    ));
                }
                Ok(
                    Ok(NodeEvent::DocChanged {
                        origin: ChangeOrigin::Peer(_),
                        ..
                    })
                    | Err(broadcast::error::RecvError::Lagged(_)),
                ) => break,
                Ok(Ok(_)) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err("editor stopped".into()),
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// 2. Dispatch throughput

async fn throughput(topology: Topology, jobs_wanted: u64, rows: &mut Vec<Row>) {
    let ledger = Ledger::default();
    let workers = usize::try_from(env_num("REELMESH_BENCH_WORKERS", THROUGHPUT_WORKERS as u64))
        .unwrap_or(THROUGHPUT_WORKERS)
        .max(1);
    let standins = (0..workers)
        .map(|i| {
            let utilization = u8::try_from(i).expect("small");
            GpuStandIn::new(&format!("standin-{i:02}"), 24.0, &[], utilization, &ledger).durations(
                Arc::new(|job: &Job| Duration::from_micros(hash_str(&job.job_id) % 1001)),
            )
        })
        .collect();
    let shots = THROUGHPUT_SHOTS.min(jobs_wanted);
    let rounds = jobs_wanted / shots;
    let rest = jobs_wanted % shots;
    let setup = Instant::now();
    let mesh = mesh(shots, standins, topology).await;
    println!(
        "== 2. dispatch throughput: {jobs_wanted} jobs of 0-1 ms on {workers} workers + 1 editor, \
         {} ; mesh up in {:.1} s",
        topology.describe(),
        setup.elapsed().as_secs_f64()
    );
    println!("idle mesh, no job: {}", idle_cpu().await);
    let editor = mesh.editor.handle();
    let mut events = editor.subscribe();
    let catalog = Catalog::builtin();
    let node_id = editor.peer_id().to_string();
    let call = Instant::now();
    let (_, queued) = editor
        .edit(None, move |doc| {
            let mut all = Vec::new();
            for _ in 0..rounds {
                all.extend(jobs::queue::queue_render(
                    doc,
                    &catalog,
                    &request("all"),
                    &node_id,
                    jobs::now_ms(),
                )?);
            }
            if rest > 0 {
                all.extend(jobs::queue::queue_render(
                    doc,
                    &catalog,
                    &request(&format!("1..{rest}")),
                    &node_id,
                    jobs::now_ms(),
                )?);
            }
            // Start the change index here: later reads cost what changed.
            doc.jobs_changed().map_err(|e| e.to_string())?;
            Ok(all)
        })
        .await
        .expect("queue");
    let queued_at = Instant::now();
    let queue_time = queued_at.duration_since(call);
    let total = queued.len();
    println!(
        "queued {total} jobs ({rounds} × \"all\" over {shots} shots{}) in one edit on the editor \
         (queue_render + save with fsync): {:.2} s",
        if rest > 0 {
            format!(" + shots 1..{rest}")
        } else {
            String::new()
        },
        queue_time.as_secs_f64()
    );
    let changes_before = change_count(&editor).await;
    let cpu = Cpu::now();
    let ids: HashSet<String> = queued.iter().map(|q| q.job_id.clone()).collect();
    let mut seen = Seen::default();
    for id in &ids {
        seen.state.insert(id.clone(), JobState::Queued);
    }
    let limit = Duration::from_secs(env_num("REELMESH_BENCH_DEADLINE_S", 300));
    let deadline = queued_at + limit;
    let claimed = follow(
        &editor,
        &mut events,
        &mut seen,
        total,
        deadline,
        "throughput",
        |s| s.claimed_at.len() >= total,
    )
    .await;
    let ended = match claimed {
        Ok(()) => {
            follow(
                &editor,
                &mut events,
                &mut seen,
                total,
                deadline,
                "throughput",
                |s| s.ended_at.len() >= total,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let cpu_s = cpu.busy_s();
    println!("after queuing: {}", cpu.since());
    let changes = change_count(&editor).await.saturating_sub(changes_before);
    #[allow(clippy::cast_precision_loss)]
    let per_job = |x: f64| x / total.max(1) as f64;
    println!(
        "document changes made by the run: {changes} ({:.2} per job), each applied by {workers} other nodes; \
         machine CPU {:.1} core-s in all = {:.0} core-ms per job",
        per_job(changes as f64),
        cpu_s,
        per_job(cpu_s * 1e3)
    );
    rows.push(row(
        "  cost per job, whole mesh on this machine",
        format!(
            "{:.2} document changes; {:.0} ms of CPU",
            per_job(changes as f64),
            per_job(cpu_s * 1e3)
        ),
        "",
        "",
    ));
    if let Err(e) = &ended {
        println!("  INCOMPLETE: {e}");
        diagnose(&mesh, &seen, &ledger).await;
    }
    println!("final states on the editor: {:?}", seen.histogram());
    let rate = |at: &HashMap<String, Instant>| -> Option<(Duration, f64)> {
        let last = at.values().max()?;
        let took = last.duration_since(queued_at);
        #[allow(clippy::cast_precision_loss)]
        Some((took, at.len() as f64 / took.as_secs_f64()))
    };
    let first_claim = seen
        .claimed_at
        .values()
        .min()
        .map(|t| t.duration_since(queued_at));
    let claimed_rate = rate(&seen.claimed_at);
    let ended_rate = rate(&seen.ended_at);
    let (once, multi, extra, never, failed_runs) = ledger_counts(&ledger, &ids);
    if let Some(first) = first_claim {
        println!(
            "first claim seen on the editor {:.0} ms after the queue edit returned",
            ms(first)
        );
    }
    if let Some((took, per_s)) = claimed_rate {
        println!(
            "claimed: {} of {total} in {:.2} s → {per_s:.0} jobs/s (goal ≥ 1,000/s); / OpenCue stress test 975 frames/s = {:.2}",
            seen.claimed_at.len(),
            took.as_secs_f64(),
            per_s / 975.0
        );
        rows.push(row(
            format!(
                "dispatch throughput, {total} jobs of 0-1 ms on {workers} workers: queue edit returned → every job claimed, on the editor"
            ),
            format!(
                "{per_s:.0} jobs/s ({} claimed in {:.2} s{})",
                seen.claimed_at.len(),
                took.as_secs_f64(),
                if seen.claimed_at.len() < total {
                    format!(", INCOMPLETE: {} never claimed", total - seen.claimed_at.len())
                } else {
                    String::new()
                }
            ),
            "≥ 1,000 jobs/s",
            &format!("OpenCue scheduler stress test 975 frames/s: ratio {:.2}", per_s / 975.0),
        ));
    }
    if let Some((took, per_s)) = ended_rate {
        let finals = seen.histogram();
        let count = |state: &str| finals.get(state).copied().unwrap_or(0);
        println!(
            "ended: {} of {total} in {:.2} s → {per_s:.0} jobs/s; final states {finals:?}",
            seen.ended_at.len(),
            took.as_secs_f64()
        );
        rows.push(row(
            "  … → every job ended (succeeded: take recorded), on the editor",
            format!(
                "{per_s:.0} jobs/s ({} ended in {:.2} s; finally {} succeeded, {} failed, {} canceled, {} still active)",
                seen.ended_at.len(),
                took.as_secs_f64(),
                count("succeeded"),
                count("failed"),
                count("canceled"),
                count("queued") + count("claimed") + count("running")
            ),
            "",
            &format!("OpenCue 975 frames/s: ratio {:.2}", per_s / 975.0),
        ));
    }
    rows.push(row(
        format!("  queuing the {total} jobs (one edit on the editor: queue_render + fsync)"),
        format!("{:.2} s", queue_time.as_secs_f64()),
        "",
        "",
    ));
    println!(
        "ledger: {} executions; jobs run exactly once {once}, more than once {multi} (extra runs {extra}), never {never}; \
         runs ended failed/canceled {failed_runs}; claimant changed after a claim {}, back to the queue {}",
        ledger.all().len(),
        seen.claimant_changes,
        seen.requeued
    );
    println!("executions per worker: {:?}", ledger.per_gpu());
    print_duplicates(&ledger);
    rows.push(row(
        "  executions per job (stand-in ledger)",
        format!("exactly once {once} of {total}; duplicates {multi} (extra runs {extra}); never run {never}"),
        "every job once",
        "",
    ));
    mesh.stop().await;
}

// ---------------------------------------------------------------------------------
// 3. Makespan on uneven nodes

/// Shot `index`'s length in frames: 15-121 (about 0.6-5 s at 24 fps; LTX-2 renders
/// at most 121).
fn makespan_frames(index: u64) -> u64 {
    15 + mix(index) % 107
}

/// A clip's run time at speed 1: `scale` × 10/3 ms per frame (scale 1: 50-403 ms).
fn makespan_duration(frames: u64, scale: u64) -> Duration {
    Duration::from_micros(frames * 10_000 / 3 * scale)
}

async fn makespan(topology: Topology, scale: u64, rows: &mut Vec<Row>) {
    let ledger = Ledger::default();
    let standins = SPEEDS
        .iter()
        .enumerate()
        .map(|(i, speed)| {
            GpuStandIn::new(&format!("speed-{speed}-{i}"), 24.0, &["ltx2"], 0, &ledger)
                .speed(*speed)
                .durations(Arc::new(move |job: &Job| {
                    assert!(job.frames > 0, "a clip job with its shot's length");
                    makespan_duration(job.frames, scale)
                }))
        })
        .collect();
    let setup = Instant::now();
    let lengths: Vec<u64> = (0..MAKESPAN_JOBS).map(makespan_frames).collect();
    let mesh = mesh_of(&lengths, standins, topology).await;
    let durations: Vec<Duration> = lengths
        .iter()
        .map(|f| makespan_duration(*f, scale))
        .collect();
    let range = format!(
        "{:.0}-{:.0} ms",
        ms(makespan_duration(15, scale)),
        ms(makespan_duration(121, scale))
    );
    let work: Duration = durations.iter().sum();
    let longest = durations.iter().max().copied().unwrap_or_default();
    // The first frame every clip starts from, held by the editor.
    let frame = reelmesh_node::store::blobs::BlobStore::open(mesh.dirs[0].path())
        .expect("blobs")
        .put("첫 프레임".repeat(1_000).as_bytes())
        .expect("put")
        .hash;
    let speed_sum: f64 = SPEEDS.iter().sum();
    let fastest = SPEEDS.iter().copied().fold(0.0, f64::max);
    let bound = work.div_f64(speed_sum).max(longest.div_f64(fastest));
    println!(
        "== 3. makespan: {MAKESPAN_JOBS} LTX-2 clips of 15-121 frames, {range} (total {:.2} s of work at speed 1, longest {:.0} ms) \
         on {} workers of speeds {SPEEDS:?} (all declare utilization 0), {} ; mesh up in {:.1} s",
        work.as_secs_f64(),
        ms(longest),
        SPEEDS.len(),
        topology.describe(),
        setup.elapsed().as_secs_f64()
    );
    println!("idle mesh, no job: {}", idle_cpu().await);
    let editor = mesh.editor.handle();
    let _ = changed_jobs(&editor).await;
    let mut events = editor.subscribe();
    let mut clips = request("all");
    clips.workflow = "ltx2".into();
    clips.inputs.insert("first_frame".into(), frame.to_hex());
    let queued = jobs::queue_on(&editor, None, clips, true)
        .await
        .expect("queue");
    let queued_at = Instant::now();
    let cpu = Cpu::now();
    let ids: HashSet<String> = queued.queued.iter().map(|q| q.job_id.clone()).collect();
    let total = ids.len();
    let mut seen = Seen::default();
    let result = follow(
        &editor,
        &mut events,
        &mut seen,
        total,
        queued_at + Duration::from_secs(300),
        "makespan",
        |s| s.ended_at.len() >= total,
    )
    .await;
    println!("while the jobs ran: {}", cpu.since());
    if let Err(e) = &result {
        println!("  INCOMPLETE: {e}");
        diagnose(&mesh, &seen, &ledger).await;
    }
    let runs = ledger.all();
    let first = runs.iter().map(|e| e.started).min();
    let last = runs.iter().filter_map(|e| e.ended).max();
    let (once, multi, extra, never, failed_runs) = ledger_counts(&ledger, &ids);
    if let (Some(first), Some(last)) = (first, last) {
        let span = last.duration_since(first);
        let ratio = span.as_secs_f64() / bound.as_secs_f64();
        let editor_span = seen
            .ended_at
            .values()
            .max()
            .map(|t| t.duration_since(queued_at));
        println!(
            "makespan (ledger: first start → last end): {:.0} ms; lower bound {:.0} ms \
             (work / total speed {:.0} ms, longest / fastest {:.0} ms); ratio {ratio:.3} (goal ≤ 1.10)",
            ms(span),
            ms(bound),
            ms(work.div_f64(speed_sum)),
            ms(longest.div_f64(fastest))
        );
        if let Some(editor_span) = editor_span {
            println!(
                "queue edit returned → last job seen succeeded on the editor: {:.0} ms; first start {:.0} ms after the queue edit returned",
                ms(editor_span),
                ms(first.duration_since(queued_at))
            );
        }
        // Per worker: jobs, busy time, when it went idle for good.
        let mut per: BTreeMap<String, (usize, Duration, Option<Instant>, Duration)> =
            BTreeMap::new();
        for run in &runs {
            let entry = per.entry(run.gpu.clone()).or_default();
            entry.0 += 1;
            entry.3 += run.declared;
            if let Some(end) = run.ended {
                entry.1 += end.duration_since(run.started);
                entry.2 = Some(entry.2.map_or(end, |e: Instant| e.max(end)));
            }
        }
        // Idle gaps on each worker: from one run's end to its next run's start.
        let mut gaps: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
        let mut by_gpu: BTreeMap<String, Vec<(Instant, Option<Instant>)>> = BTreeMap::new();
        for run in &runs {
            by_gpu
                .entry(run.gpu.clone())
                .or_default()
                .push((run.started, run.ended));
        }
        for (gpu, list) in &mut by_gpu {
            list.sort();
            for pair in list.windows(2) {
                if let Some(end) = pair[0].1 {
                    gaps.entry(gpu.clone())
                        .or_default()
                        .push(pair[1].0.saturating_duration_since(end));
                }
            }
        }
        let mut all_gaps = Vec::new();
        for (gpu, (count, busy, idle_from, declared)) in &per {
            let mut g = gaps.get(gpu).cloned().unwrap_or_default();
            g.sort();
            all_gaps.extend(g.iter().copied());
            println!(
                "  {gpu:<14} {count:>3} jobs, declared {:>5.0} ms, busy {:>6.0} ms, first start at {:>6.0} ms, last end at {:>6.0} ms, \
                 gap between runs p50 {:>5.0} ms max {:>5.0} ms",
                ms(*declared),
                ms(*busy),
                by_gpu
                    .get(gpu)
                    .and_then(|l| l.first())
                    .map_or(f64::NAN, |(s, _)| ms(s.duration_since(first))),
                idle_from.map_or(f64::NAN, |t| ms(t.duration_since(first))),
                g.get(g.len() / 2).map_or(f64::NAN, |d| ms(*d)),
                g.last().map_or(f64::NAN, |d| ms(*d)),
            );
        }
        if std::env::var_os("REELMESH_BENCH_VERBOSE").is_some() {
            for (gpu, list) in &by_gpu {
                let tail: Vec<String> = list
                    .iter()
                    .rev()
                    .take(6)
                    .rev()
                    .map(|(s, e)| {
                        format!(
                            "{:.0}+{:.0}",
                            ms(s.duration_since(first)),
                            e.map_or(f64::NAN, |e| ms(e.duration_since(*s)))
                        )
                    })
                    .collect();
                println!("  {gpu:<14} last runs (start+ms): {}", tail.join(" "));
                let long: Vec<String> = list
                    .windows(2)
                    .filter_map(|w| {
                        let end = w[0].1?;
                        let gap = w[1].0.saturating_duration_since(end);
                        (gap > Duration::from_millis(50))
                            .then(|| format!("{:.0}+{:.0}", ms(end.duration_since(first)), ms(gap)))
                    })
                    .collect();
                println!("  {gpu:<14} gaps over 50 ms (at+ms): {}", long.join(" "));
            }
        }
        all_gaps.sort();
        if !all_gaps.is_empty() {
            println!(
                "  idle gap between consecutive runs on a worker: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms ({} gaps)",
                ms(percentile(&all_gaps, 0.5)),
                ms(percentile(&all_gaps, 0.9)),
                ms(*all_gaps.last().expect("gaps")),
                all_gaps.len()
            );
        }
        rows.push(row(
            format!(
                "makespan, {total} clips of {range} (known from their length) on {} workers of speeds 1,1,1.5,1.5,2,2,3,4 (ledger: first start → last end)",
                SPEEDS.len()
            ),
            format!(
                "{:.0} ms vs lower bound {:.0} ms: ratio {ratio:.3}",
                ms(span),
                ms(bound)
            ),
            "≤ 1.10",
            "lower bound = max(total work / total speed, longest job / fastest speed)",
        ));
    }
    println!(
        "ledger: {} executions; exactly once {once} of {total}, more than once {multi} (extra {extra}), never {never}; \
         runs ended failed/canceled {failed_runs}",
        runs.len()
    );
    rows.push(row(
        "  executions per job (stand-in ledger)",
        format!("exactly once {once} of {total}; duplicates {multi}; never run {never}"),
        "every job once",
        "",
    ));
    mesh.stop().await;
}

// ---------------------------------------------------------------------------------

fn main() {
    logs();
    let phases = std::env::var("REELMESH_BENCH_PHASES")
        .unwrap_or_else(|_| "latency,throughput,makespan".into());
    let topology = match std::env::var("REELMESH_BENCH_TOPOLOGY").as_deref() {
        Ok("star") => Topology::Star,
        _ => Topology::Full,
    };
    let jobs_wanted = env_num("REELMESH_BENCH_JOBS", 10_000).max(1);
    println!("== [4/8] dispatch benchmarks (scheduler: standing offers + placement::assign)");
    println!("machine: {}", machine());
    println!(
        "nodes: real loopback nodes in one process (tokio, {} worker threads), heartbeat 300 ms, offline after 2 s, \
         lease {} s, claim intent window {}-{} ms (gossip delay), lookahead {} ms, at most {} jobs held per node; topology: {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        jobs::LEASE.as_secs(),
        jobs::INTENT_WINDOW_MIN.as_millis(),
        jobs::INTENT_WINDOW_MAX.as_millis(),
        jobs::LOOKAHEAD.as_millis(),
        jobs::MAX_LOCAL_QUEUE,
        topology.describe()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let mut rows = Vec::new();
    for phase in phases.split(',').map(str::trim) {
        let at = Instant::now();
        match phase {
            "latency" => runtime.block_on(latency(topology, &mut rows)),
            "throughput" => runtime.block_on(throughput(topology, jobs_wanted, &mut rows)),
            "makespan" => {
                let scales = std::env::var("REELMESH_BENCH_MAKESPAN_SCALES")
                    .unwrap_or_else(|_| "10,1".into());
                for scale in scales.split(',') {
                    let scale: u64 = scale
                        .trim()
                        .parse()
                        .expect("REELMESH_BENCH_MAKESPAN_SCALES: numbers");
                    runtime.block_on(makespan(topology, scale, &mut rows));
                }
            }
            "" => continue,
            other => panic!("unknown phase '{other}' (latency, throughput, makespan)"),
        }
        println!("({phase} took {:.1} s)\n", at.elapsed().as_secs_f64());
    }
    println!(
        "== results ({:.0} s in all)",
        started.elapsed().as_secs_f64()
    );
    println!("| what | result | goal | anchor |");
    println!("| --- | --- | --- | --- |");
    for r in &rows {
        println!("| {} | {} | {} | {} |", r.what, r.result, r.goal, r.anchor);
    }
}
