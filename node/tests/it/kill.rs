//! `kill -9` of the runner process mid-job: the job completes on another node within
//! the lease plus a few seconds, and over many rounds no job is lost.
//!
//! Three `reelmesh node` processes on loopback share one mesh: an editor (no ComfyUI:
//! it queues, it cannot run FLUX) and two runners, A and B, each with its own ComfyUI
//! test double (in this process, reached over loopback HTTP/WebSocket). Every node
//! runs with a 300 ms heartbeat and a 2 s lease. Each round queues one FLUX job on the
//! editor (`reelmesh render --queue`), waits until one runner's ComfyUI is executing
//! it (held inside the sampler), sends that runner SIGKILL, and waits until the job is
//! succeeded on the editor, run to the end by the other runner's ComfyUI, within the
//! lease + 8 s of the kill. The killed runner starts again on its data dir during the
//! next round, once that round's job runs on the other one, and must rejoin the mesh
//! before that one is killed in turn: victim and survivor alternate, and a restarted
//! node takes over a job. After every round, every rejoin and at the end: every job
//! queued is succeeded with 2 attempts, its claimant is the survivor, and each ComfyUI
//! saw each job exactly once (the killed runner's the run it lost, the survivor's the
//! retry; a rejoining node runs nothing again).
//!
//! `REELMESH_KILL_ROUNDS=N` runs N rounds (default 5, well under a minute on two
//! cores): `REELMESH_KILL_ROUNDS=50 cargo test -p reelmesh-node --test it kill -- --nocapture`.
//! Each round prints its figures; the last line sums them up.
//!
//! The nodes log at `reelmesh_node=debug` to `<tmp>/<node>.log`; on failure the end of
//! each log is printed and the temp dir is kept (its path is printed).

#![allow(
    clippy::too_many_lines,
    reason = "the kill rounds are one scripted scenario; the 120-line limit is for node/src"
)]
#![allow(clippy::unwrap_used)] // test helpers panic on failure by design

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reelmesh_protocol::jobs::{Job, JobState};
use tokio_util::sync::CancellationToken;

use crate::comfy_double::{ComfyDouble, DoubleOptions, Script};
use crate::meshkit::models_of;

const BIN: &str = env!("CARGO_BIN_EXE_reelmesh");
const WORKFLOW: &str = "flux_basic";
/// The sampler of `flux_basic`: the double holds the prompt there.
const SAMPLER: &str = "8";
/// Every node's lease (`--lease-secs`).
const LEASE: Duration = Duration::from_secs(2);
/// Every node's heartbeat (`--heartbeat-ms`): offline after 3.5 beats, under the lease.
const HEARTBEAT_MS: u64 = 300;
/// What "a few seconds" after the lease may take on a loaded two-core box.
const SLACK: Duration = Duration::from_secs(8);
/// Starting a node, syncing the project, a first job reaching a ComfyUI.
const START: Duration = Duration::from_secs(60);
/// Pause between two looks when only a CLI command can tell (see `poll`).
const POLL: Duration = Duration::from_millis(100);
const DEFAULT_ROUNDS: u64 = 5;
/// Bytes of each node's log printed on failure.
const LOG_TAIL: u64 = 48 * 1024;

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Run a `reelmesh` command on a data dir (through its node's control socket when
/// one runs there); its stdout, or a panic with its stderr.
fn reelmesh(data_dir: &Path, args: &[&str]) -> String {
    let out = tokio::task::block_in_place(|| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env_remove("REELMESH_COMFY_URL")
            .env_remove("REELMESH_COMFY")
            .output()
    })
    .expect("run reelmesh");
    assert!(
        out.status.success(),
        "reelmesh {} on {}: {}",
        args.join(" "),
        data_dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn jobs(data_dir: &Path) -> Vec<Job> {
    serde_json::from_str(&reelmesh(data_dir, &["jobs", "--json"])).expect("jobs --json")
}

/// Look again every [`POLL`] until `look` answers or `within` has passed; the last
/// reason it gave otherwise. Only for state the CLI shows but does not wait on
/// (presence, a job queued by another process): each look is one CLI command.
fn poll<T>(within: Duration, mut look: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = Instant::now() + within;
    loop {
        match look() {
            Ok(found) => return Ok(found),
            Err(why) if Instant::now() >= deadline => return Err(why),
            Err(_) => tokio::task::block_in_place(|| std::thread::sleep(POLL)),
        }
    }
}

/// One `reelmesh node` process (restartable on the same data dir), its stderr
/// appended to `<name>.log`.
struct NodeProcess {
    name: &'static str,
    dir: PathBuf,
    log: PathBuf,
    comfy: Option<String>,
    child: Option<Child>,
    /// Peer id (kept across restarts: the identity is in the data dir).
    node_id: String,
    /// `/ip4/127.0.0.1/tcp/PORT/p2p/ID` of the running process.
    addr: String,
}

impl NodeProcess {
    fn new(root: &Path, name: &'static str, comfy: Option<String>) -> NodeProcess {
        NodeProcess {
            name,
            dir: root.join(name),
            log: root.join(format!("{name}.log")),
            comfy,
            child: None,
            node_id: String::new(),
            addr: String::new(),
        }
    }

    /// Start on a fresh loopback port, dialling `peers` (and the peers `join`
    /// stored); ready once it prints where it listens.
    fn start(&mut self, peers: &[String]) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut command = Command::new(BIN);
        command
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["node", "--headless", "--no-mdns"])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--heartbeat-ms", &HEARTBEAT_MS.to_string()])
            .args(["--lease-secs", &LEASE.as_secs().to_string()])
            .env("RUST_LOG", "reelmesh_node=debug,warn")
            .env_remove("REELMESH_COMFY_URL")
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(url) = &self.comfy {
            command.args(["--comfy", url]);
        }
        for peer in peers {
            command.args(["--peer", peer]);
        }
        let mut child = command.spawn().expect("start reelmesh node");
        let stdout = child.stdout.take().expect("stdout");
        // Kept before waiting, so the guard kills it if it never gets ready.
        self.child = Some(child);
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("{} stdout", self.name))
            .spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        let _ = tx.send(addr.to_owned());
                    }
                }
            })
            .expect("stdout reader");
        let addr = tokio::task::block_in_place(|| rx.recv_timeout(START))
            .unwrap_or_else(|_| panic!("{} did not start within {START:?}", self.name));
        let (_, node_id) = addr.rsplit_once("/p2p/").expect("a /p2p/ address");
        self.node_id = node_id.to_owned();
        self.addr = addr;
    }

    /// SIGKILL (what `kill -9` sends), and reap it.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("a running node to kill");
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait for the killed node");
        assert!(
            !status.success(),
            "{} exited by itself: {status}",
            self.name
        );
    }
}

/// Owns the temp dir and the node processes: kills every process on drop; on a
/// failure prints the end of each node's log and keeps the temp dir.
struct Lab {
    tmp: Option<tempfile::TempDir>,
    editor: NodeProcess,
    runners: [NodeProcess; 2],
}

impl Drop for Lab {
    fn drop(&mut self) {
        let nodes = std::iter::once(&mut self.editor).chain(self.runners.iter_mut());
        for node in nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if !std::thread::panicking() {
            return;
        }
        for node in std::iter::once(&self.editor).chain(&self.runners) {
            eprintln!(
                "\n===== {} ({}) log, last {} KiB: {}",
                node.name,
                node.node_id,
                LOG_TAIL / 1024,
                node.log.display()
            );
            eprintln!("{}", log_tail(&node.log));
        }
        if let Some(tmp) = self.tmp.take() {
            eprintln!("\n===== kept for a look: {}", tmp.keep().display());
        }
    }
}

fn log_tail(path: &Path) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return "(no log)".into();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The prompts a ComfyUI got for the job with this seed.
fn prompts_for(double: &ComfyDouble, seed: u64) -> Vec<crate::comfy_double::RecordedPrompt> {
    let seed = seed.to_string();
    double
        .prompts()
        .into_iter()
        .filter(|p| serde_json::to_string(&p.prompt).unwrap().contains(&seed))
        .collect()
}

/// The ComfyUI is executing the job's prompt now.
fn executing(double: &ComfyDouble, seed: u64) -> bool {
    let (running, _) = double.queue();
    prompts_for(double, seed)
        .iter()
        .any(|p| p.prompt_id.as_ref().is_some_and(|id| running.contains(id)))
}

/// The ComfyUI ran the job's prompt to the end (its history entry is written).
fn finished(double: &ComfyDouble, seed: u64) -> bool {
    prompts_for(double, seed).iter().any(|p| {
        p.prompt_id
            .as_ref()
            .is_some_and(|id| double.history_entry(id).is_some())
    })
}

/// Wait on the doubles' own change events until `check` holds on one of them (its
/// index) or `within` has passed.
async fn until_on(
    doubles: &[&ComfyDouble],
    within: Duration,
    check: impl Fn(&ComfyDouble) -> bool,
) -> Option<usize> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = doubles.iter().position(|d| check(d)) {
            return Some(found);
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        // `wait_for` gives up (panics) after 10 s: wait in slices under that.
        let slice = left.min(Duration::from_secs(9));
        let changes = doubles
            .iter()
            .map(|d| Box::pin(tokio::time::timeout(slice, d.wait_for("a change", &check))));
        let _ = futures::future::select_all(changes).await;
    }
}

/// Every runner is seen by every other node (editor included) with a fresh heartbeat
/// and FLUX in its capabilities: it can take over a job.
fn mesh_ready(lab: &Lab) -> Result<(), String> {
    for observer in std::iter::once(&lab.editor).chain(&lab.runners) {
        let status: serde_json::Value =
            serde_json::from_str(&reelmesh(&observer.dir, &["status", "--json"]))
                .expect("status --json");
        let peers = status["peers"].as_array().cloned().unwrap_or_default();
        for runner in lab.runners.iter().filter(|r| r.name != observer.name) {
            let Some(row) = peers.iter().find(|p| p["node_id"] == runner.node_id) else {
                return Err(format!("{} does not know {}", observer.name, runner.name));
            };
            let fresh = row["last_heartbeat_secs"]
                .as_f64()
                .is_some_and(|secs| secs < 1.0);
            let flux = row["capabilities"]
                .as_array()
                .is_some_and(|c| c.iter().any(|w| w == WORKFLOW));
            if !fresh || !flux || row["status"] == "offline" {
                return Err(format!("{} sees {} as {row}", observer.name, runner.name));
            }
        }
    }
    Ok(())
}

/// What one round measured.
struct Round {
    killed: &'static str,
    /// Kill → the editor shows the job succeeded.
    seen: Duration,
    /// Kill → the survivor's `finished_at_ms` (its own clock: same machine).
    finished: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_mid_job_loses_it_to_the_other_within_the_lease_and_no_job_is_lost() {
    let rounds: u64 = std::env::var("REELMESH_KILL_ROUNDS")
        .ok()
        .map_or(DEFAULT_ROUNDS, |n| {
            n.parse().expect("REELMESH_KILL_ROUNDS is a number")
        });
    assert!(rounds > 0, "REELMESH_KILL_ROUNDS must be at least 1");
    let doubles = [
        ComfyDouble::start(DoubleOptions {
            models: models_of(WORKFLOW),
            ..DoubleOptions::default()
        })
        .await,
        ComfyDouble::start(DoubleOptions {
            models: models_of(WORKFLOW),
            ..DoubleOptions::default()
        })
        .await,
    ];
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    let mut lab = Lab {
        tmp: Some(tmp),
        editor: NodeProcess::new(&root, "editor", None),
        runners: [
            NodeProcess::new(&root, "runner-a", Some(doubles[0].url())),
            NodeProcess::new(&root, "runner-b", Some(doubles[1].url())),
        ],
    };

    // The editor: the mesh key, a project with one shot per round, no ComfyUI.
    let editor_dir = lab.editor.dir.clone();
    reelmesh(&editor_dir, &["mesh", "init"]);
    reelmesh(&editor_dir, &["init", "킬 테스트"]);
    let shot_list = root.join("shots.csv");
    let rows: String = (1..=rounds)
        .map(|i| format!(",골목 {i},장면 {i}\n"))
        .collect();
    std::fs::write(
        &shot_list,
        format!("Shot ID,Scene Description,Action\n{rows}"),
    )
    .unwrap();
    reelmesh(&editor_dir, &["import", shot_list.to_str().unwrap()]);
    lab.editor.start(&[]);
    // The runners join with a ticket (the key, the editor's address, the project).
    let ticket = reelmesh(&editor_dir, &["mesh", "invite"]);
    for runner in &lab.runners {
        reelmesh(&runner.dir, &["join", ticket.trim()]);
    }
    lab.runners[0].start(&[]);
    let a_addr = lab.runners[0].addr.clone();
    lab.runners[1].start(&[a_addr]);
    let heads = reelmesh(&editor_dir, &["heads"]);
    for runner in &lab.runners {
        let mut args = vec!["wait-for", "--timeout", "60"];
        args.extend(heads.lines());
        reelmesh(&runner.dir, &args);
    }
    poll(START, || mesh_ready(&lab)).unwrap_or_else(|why| panic!("mesh not ready: {why}"));

    let mut queued: Vec<(String, u64, usize)> = Vec::new(); // job id, seed, survivor
    let mut figures: Vec<Round> = Vec::new();
    // The runner killed in the previous round: it comes back while this round's job
    // runs on the other, so that it is this round's survivor and victim and survivor
    // alternate (with both idle, the placement rule would always pick the same one).
    let mut down: Option<usize> = None;
    for round in 1..=rounds {
        let shot = format!("SHT-{round:05}");
        // Seeds of one length: none is a substring of another in a prompt.
        let seed = 7_300_000_000 + round;
        let releases = [CancellationToken::new(), CancellationToken::new()];
        for (double, release) in doubles.iter().zip(&releases) {
            double.script_next(Script::HoldAt {
                node_id: SAMPLER.into(),
                release: release.clone(),
            });
        }
        let known: BTreeSet<String> = jobs(&editor_dir).into_iter().map(|j| j.job_id).collect();
        reelmesh(
            &editor_dir,
            &[
                "render",
                "--shots",
                &shot,
                "--workflow",
                WORKFLOW,
                "--seed",
                &seed.to_string(),
                "--queue",
            ],
        );
        let new: Vec<Job> = jobs(&editor_dir)
            .into_iter()
            .filter(|j| !known.contains(&j.job_id))
            .collect();
        assert_eq!(new.len(), 1, "round {round}: one job queued: {new:?}");
        let job_id = new[0].job_id.clone();

        // Mid-job: one runner's ComfyUI is executing it (held in the sampler).
        let victim = until_on(&[&doubles[0], &doubles[1]], START, |d| executing(d, seed))
            .await
            .unwrap_or_else(|| {
                panic!("round {round}: job {job_id} ({shot}) never started in a runner's ComfyUI")
            });
        let survivor = 1 - victim;
        if let Some(back) = down.take() {
            assert_eq!(back, survivor, "round {round}: a dead runner got the job");
            rejoin(&mut lab, back, &format!("round {round}"));
            // This round's prompt is the one in flight.
            assert_nothing_lost(&lab, &doubles, &queued, 1, &format!("round {round}"));
        }
        let (victim_name, victim_id) = (
            lab.runners[victim].name,
            lab.runners[victim].node_id.clone(),
        );
        let (survivor_name, survivor_id) = (
            lab.runners[survivor].name,
            lab.runners[survivor].node_id.clone(),
        );
        let killed_ms = now_ms();
        let killed_at = Instant::now();
        lab.runners[victim].kill();
        // The orphan prompt may finish in the dead node's ComfyUI (nobody records
        // it); the survivor's ComfyUI must not hold its run.
        for release in &releases {
            release.cancel();
        }

        // The survivor runs it to the end in its ComfyUI (an event on the double)...
        let within = LEASE + SLACK;
        let left = within.saturating_sub(killed_at.elapsed());
        let ran = until_on(&[&doubles[survivor]], left, |d| finished(d, seed)).await;
        assert!(
            ran.is_some(),
            "round {round}: job {job_id} ({shot}) was not run to the end by {survivor_name}'s \
             ComfyUI within {within:?} of killing {victim_name}"
        );
        // ...and the editor shows it succeeded. The CLI cannot wait on a job queued by
        // another command, so look every 100 ms until the deadline.
        let deadline = killed_at + within;
        let job = poll(deadline.saturating_duration_since(Instant::now()), || {
            let jobs = jobs(&editor_dir);
            let job = jobs.iter().find(|j| j.job_id == job_id).cloned();
            match job {
                Some(job) if job.state == JobState::Succeeded => Ok(job),
                other => Err(format!("{other:?}")),
            }
        })
        .unwrap_or_else(|last| {
            panic!(
                "round {round}: job {job_id} ({shot}) not succeeded on the editor within \
                 {within:?} of killing {victim_name}; last seen: {last}"
            )
        });
        // Whole milliseconds, like `finished_at_ms`.
        let seen = Duration::from_millis(u64::try_from(killed_at.elapsed().as_millis()).unwrap());
        assert_eq!(
            job.claimant, survivor_id,
            "round {round}: job {job_id} ({shot}) should be claimed by the survivor \
             {survivor_name}, not {victim_name}: {job:?}"
        );
        // A node that went silent is a transient fault: the attempt it held is given
        // back, and the job's history keeps both runs.
        assert_eq!(
            job.attempts, 1,
            "round {round}: job {job_id} ({shot}): the run on {victim_name} gave its \
             attempt back, the one on {survivor_name} used it: {job:?}"
        );
        let lost = job
            .history
            .iter()
            .find(|a| a.node_id == victim_id)
            .unwrap_or_else(|| {
                panic!("round {round}: job {job_id} ({shot}): no run of {victim_name} in its history: {job:?}")
            });
        assert!(
            lost.outcome == "interrupted"
                && lost.error.contains("lease expired")
                && lost.error.contains(&victim_id),
            "round {round}: job {job_id} ({shot}): the history names the lease of \
             {victim_name}: {lost:?}"
        );
        assert!(
            job.history
                .last()
                .is_some_and(|a| a.node_id == survivor_id && a.outcome == "succeeded"),
            "round {round}: job {job_id} ({shot}): the last run is {survivor_name}'s success: {job:?}"
        );
        assert!(
            job.error.is_empty(),
            "round {round}: a success clears the error: {job:?}"
        );
        assert_eq!(job.seed, seed, "round {round}: job {job_id}");
        for (i, double) in doubles.iter().enumerate() {
            assert_eq!(
                prompts_for(double, seed).len(),
                1,
                "round {round}: job {job_id} ({shot}) reached {}'s ComfyUI once",
                lab.runners[i].name
            );
        }
        figures.push(Round {
            killed: victim_name,
            seen,
            finished: Duration::from_millis(job.finished_at_ms.saturating_sub(killed_ms)),
        });
        println!(
            "round {round}/{rounds}: killed {victim_name} mid-job, {survivor_name} finished \
             job {job_id} {:?} after the kill (the editor saw it after {seen:?})",
            figures[figures.len() - 1].finished
        );
        queued.push((job_id, seed, survivor));
        assert_nothing_lost(&lab, &doubles, &queued, 0, &format!("after round {round}"));
        down = Some(victim);
    }

    // The last one killed comes back too; once it has rejoined nothing has changed.
    if let Some(back) = down {
        rejoin(&mut lab, back, "at the end");
    }
    assert_nothing_lost(&lab, &doubles, &queued, 0, "at the end");
    let mut seen: Vec<Duration> = figures.iter().map(|r| r.seen).collect();
    seen.sort();
    let mut finished: Vec<Duration> = figures.iter().map(|r| r.finished).collect();
    finished.sort();
    let kills_of = |name: &str| figures.iter().filter(|r| r.killed == name).count();
    println!(
        "{rounds} rounds, lease {LEASE:?}: kill → succeeded on the survivor median {:?}, max \
         {:?}; kill → seen on the editor median {:?}, max {:?}; kills: runner-a {}, runner-b {}",
        finished[finished.len() / 2],
        finished[finished.len() - 1],
        seen[seen.len() / 2],
        seen[seen.len() - 1],
        kills_of("runner-a"),
        kills_of("runner-b"),
    );
}

/// Start a killed runner again on its data dir (dialling the other runner; the
/// editor's address is stored from the ticket) and wait until it has rejoined.
fn rejoin(lab: &mut Lab, runner: usize, when: &str) {
    let other = lab.runners[1 - runner].addr.clone();
    lab.runners[runner].start(&[other]);
    poll(START, || mesh_ready(lab)).unwrap_or_else(|why| {
        panic!(
            "{when}: {} did not rejoin the mesh: {why}",
            lab.runners[runner].name
        )
    });
}

/// Every job queued so far is succeeded on the editor, claimed by its round's
/// survivor with 1 attempt (the lost run gave its attempt back), and each ComfyUI saw it once (the killed runner's once,
/// the survivor's once): no job lost, none run again. `in_flight`: prompts of a job
/// not in `queued` yet.
fn assert_nothing_lost(
    lab: &Lab,
    doubles: &[ComfyDouble; 2],
    queued: &[(String, u64, usize)],
    in_flight: usize,
    when: &str,
) {
    let jobs = jobs(&lab.editor.dir);
    for (round, (job_id, seed, survivor)) in queued.iter().enumerate() {
        let round = round + 1;
        let job = jobs
            .iter()
            .find(|j| j.job_id == *job_id)
            .unwrap_or_else(|| panic!("{when}: job {job_id} of round {round} is gone"));
        let survivor_id = lab.runners[*survivor].node_id.as_str();
        assert_eq!(
            (job.state, job.attempts, job.claimant.as_str()),
            (JobState::Succeeded, 1, survivor_id),
            "{when}: job {job_id} of round {round} should stay succeeded by {} (the \
             victim's lost run gave its attempt back): {job:?}",
            lab.runners[*survivor].name
        );
        // The victim, restarted, must not overwrite what happened meanwhile with its
        // own stale "interrupted, back to the queue": the survivor's success stays
        // the last word, and the lease expiry is in the history before it.
        assert!(
            job.error.is_empty()
                && job
                    .history
                    .last()
                    .is_some_and(|a| a.node_id == survivor_id && a.outcome == "succeeded")
                && job
                    .history
                    .iter()
                    .any(|a| a.outcome == "interrupted" && a.error.contains("lease expired")),
            "{when}: job {job_id} of round {round} keeps the survivor's account: {job:?}"
        );
        for (i, double) in doubles.iter().enumerate() {
            assert_eq!(
                prompts_for(double, *seed).len(),
                1,
                "{when}: job {job_id} of round {round} reached {}'s ComfyUI once",
                lab.runners[i].name
            );
        }
    }
    let total: usize = doubles.iter().map(|d| d.prompts().len()).sum();
    assert_eq!(
        total,
        2 * queued.len() + in_flight,
        "{when}: every ComfyUI prompt belongs to a job (killed run + its retry)"
    );
}
