//! `reelmesh render`, `jobs`, `takes` and `cancel`.
//!
//! With a node running on the data dir, `render` asks it to queue the jobs (control
//! socket) and follows them until they end. With none, it starts the same node
//! in-process with no network (`NodeConfig::offline`), runs the jobs, and stops it.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use reelmesh_protocol::jobs::{Job, JobState, Take};
use reelmesh_protocol::model::ShotCode;
use reelmesh_protocol::publish::PublishOptions;
use serde::Serialize;

use super::print_table;
use crate::api::{Reply, Request};
use crate::control;
use crate::jobs::queue::RenderRequest;
use crate::jobs::{JobUpdate, RenderQueued};
use crate::node::{Node, NodeConfig};

/// `reelmesh render` arguments.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Shots: SHT-00001..SHT-00010, 1..10, 1,3,7 or all.
    #[arg(long)]
    pub shots: String,
    /// Workflow id (`reelmesh workflows list`).
    #[arg(long, required_unless_present = "video")]
    pub workflow: Option<String>,
    /// The video batch: each shot renders its own workflow (its accepted advice:
    /// `reelmesh advise --accept`) with its still as the first frame, the next
    /// shot's still as the last frame (FFLF), its style reference (style transfer).
    #[arg(long, conflicts_with_all = ["workflow", "first_frame", "last_frame", "reference", "input_video"])]
    pub video: bool,
    /// With --video: a shot without a still renders one first with this workflow
    /// (default flux_basic), then its clip; without it such a shot is refused.
    #[arg(long, requires = "video", num_args = 0..=1, default_missing_value = "flux_basic", value_name = "WORKFLOW")]
    pub stills_first: Option<String>,
    /// With --video: a post step after each clip, taking it as its input video
    /// (`rife_interpolate`); repeat for more, in order.
    #[arg(long, requires = "video", value_name = "WORKFLOW")]
    pub then: Vec<String>,
    /// One seed for every job (default: a fresh random seed per job).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Higher runs first.
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub priority: i64,
    /// ComfyUI to render with when no node is running here (a running node uses
    /// its own --comfy).
    #[arg(long, env = "REELMESH_COMFY")]
    pub comfy: Option<String>,
    /// Only queue the jobs (for another node, or to follow later); do not wait.
    #[arg(long)]
    pub queue: bool,
    /// Print every update as a JSON line instead of a progress bar.
    #[arg(long)]
    pub json: bool,
    /// How long the jobs may wait for a node that can run them (its ComfyUI down, a
    /// model missing everywhere) before they end failed: `90s`, `45m`, `12h`, `3d`.
    #[arg(long, default_value = "3d", value_parser = parse_wait)]
    pub deadline: u64,
    /// First frame (image-to-video, FFLF, style transfer content): an image file, a
    /// blob hash, or `take` for each shot's latest still.
    #[arg(long)]
    pub first_frame: Option<String>,
    /// Last frame (FFLF): an image file, a blob hash, or `take`.
    #[arg(long)]
    pub last_frame: Option<String>,
    /// Reference image (upscale source, style reference): a file, a hash, or `take`.
    #[arg(long)]
    pub reference: Option<String>,
    /// Input video (interpolation, frame split, WAN-Animate's performance): a video
    /// file, a blob hash, or `take` for each shot's latest clip.
    #[arg(long)]
    pub input_video: Option<String>,
}

/// A length of time in seconds from `90`, `90s`, `45m`, `12h` or `3d`.
fn parse_wait(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit.trim() {
        "s" | "sec" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "'{other}' is not a unit of time: write 90s, 45m, 12h or 3d"
            ));
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a length of time: write 90s, 45m, 12h or 3d"))?;
    match number.checked_mul(scale) {
        Some(0) | None => Err(format!("'{text}': give a deadline above zero")),
        Some(secs) => Ok(secs),
    }
}

/// Turn the input flags into blob hashes (files are stored in the data dir's blob
/// store first; `take` and hashes pass through).
fn resolve_inputs(data_root: &Path, args: &RenderArgs) -> Result<BTreeMap<String, String>> {
    let mut inputs = BTreeMap::new();
    for (role, value) in [
        ("first_frame", &args.first_frame),
        ("last_frame", &args.last_frame),
        ("reference_image", &args.reference),
        ("input_video", &args.input_video),
    ] {
        let Some(value) = value else { continue };
        let is_hash = value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
        let resolved = if value == "take" || is_hash {
            value.clone()
        } else {
            let path = Path::new(value);
            let bytes = std::fs::read(path)
                .with_context(|| format!("{role}: reading {}", path.display()))?;
            let blobs = crate::store::blobs::BlobStore::open(data_root)?;
            blobs.put(&bytes)?.hash.to_hex()
        };
        inputs.insert(role.to_owned(), resolved);
    }
    Ok(inputs)
}

/// `reelmesh render`.
pub fn render(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<String>,
    args: &RenderArgs,
) -> Result<()> {
    let request = RenderRequest {
        shots: args.shots.clone(),
        workflow: args.workflow.clone().unwrap_or_default(),
        seed: args.seed,
        priority: args.priority,
        inputs: resolve_inputs(data_root, args)?,
        deadline_secs: Some(args.deadline),
        video: args
            .video
            .then(|| reelmesh_protocol::api::render::VideoBatch {
                stills_first: args.stills_first.clone(),
                then: args.then.clone(),
            }),
    };
    let queue_request = Request::Render {
        project: project.clone(),
        request: request.clone(),
        queue_only: args.queue,
    };
    if let Some(reply) = super::via_node(data_root, &queue_request)? {
        let Reply::Queued(queued) = reply else {
            return Err(super::unexpected(&reply));
        };
        print_queued(out, &queued)?;
        if args.queue {
            return Ok(());
        }
        return follow_through_node(out, data_root, &queued, args.json);
    }
    if args.queue {
        bail!(
            "no node is running on {}: start `reelmesh node` to queue for the mesh, or drop --queue to render here",
            data_root.display()
        );
    }
    render_here(out, data_root, project, request, args)
}

/// Follow the jobs a running node queued until they end (Ctrl-C stops following,
/// not the jobs).
fn follow_through_node(
    out: &mut dyn Write,
    data_root: &Path,
    queued: &RenderQueued,
    json: bool,
) -> Result<()> {
    let ids: Vec<String> = queued.queued.iter().map(|q| q.job_id.clone()).collect();
    let mut view = ProgressView::new(queued, json);
    let followed = view.followed();
    on_ctrl_c(move || {
        let left = followed.left();
        format!(
            "stopped following; {} go{} on in the node (`reelmesh jobs` shows {}, \
             `reelmesh cancel JOB` stops one)",
            jobs_word(left),
            if left == 1 { "es" } else { "" },
            if left == 1 { "it" } else { "them" }
        )
    });
    let watch = Request::WatchJobs {
        project: Some(queued.project_id.clone()),
        job_ids: ids,
    };
    let reply = control::call(data_root, &watch, |update| view.update(update));
    view.finish();
    let reply = match reply {
        Ok(Some(reply)) => reply?,
        Ok(None) => bail!("the node stopped before it could be asked to follow the jobs"),
        Err(e) if e.is::<control::ClosedEarly>() => {
            let left = view.followed().left();
            bail!(
                "the node stopped; {} stay{} queued and resume{} when a node runs \
                 (`reelmesh jobs` shows {})",
                jobs_word(left),
                if left == 1 { "s" } else { "" },
                if left == 1 { "s" } else { "" },
                if left == 1 { "it" } else { "them" }
            )
        }
        Err(e) => return Err(e),
    };
    let Reply::Ended { jobs } = reply else {
        return Err(super::unexpected(&reply));
    };
    summarize(out, queued, &jobs)
}

/// With no node running: start one here, without network, for this command; run
/// the jobs and stop it. Ctrl-C stops it in order: what runs goes back to the
/// queue, for the next render or node here.
fn render_here(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<String>,
    request: RenderRequest,
    args: &RenderArgs,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("reelmesh-render")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let json = args.json;
    let comfy = args.comfy.clone();
    let Some((queued, jobs)) = runtime.block_on(async move {
        let mut config = NodeConfig::offline(data_root.to_path_buf());
        config.comfy_url = comfy;
        let node = Node::start(config).await?;
        let handle = node.handle();
        let result = async {
            let queued = crate::jobs::queue_on(&handle, project, request, false).await?;
            let ids: Vec<String> = queued.queued.iter().map(|q| q.job_id.clone()).collect();
            let mut view = ProgressView::new(&queued, json);
            let followed = view.followed();
            let ended = tokio::select! {
                ended = crate::jobs::follow::watch_jobs(
                    &handle,
                    Some(queued.project_id.clone()),
                    &ids,
                    crate::api::WATCH_SILENCE,
                    |update| view.update(update),
                ) => Some(ended),
                _ = tokio::signal::ctrl_c() => None,
            };
            view.finish();
            match ended {
                Some(jobs) => Ok::<_, anyhow::Error>(Some((queued, jobs?))),
                None => {
                    let left = followed.left();
                    eprintln!(
                        "stopping; {} stay{} queued: {} at the next `reelmesh render` here, \
                         or on the mesh once `reelmesh node` runs",
                        jobs_word(left),
                        if left == 1 { "s" } else { "" },
                        if left == 1 { "it runs" } else { "they run" }
                    );
                    Ok(None)
                }
            }
        }
        .await;
        node.stop().await?;
        result
    })?
    else {
        // Ctrl-C: said above; the node has stopped and saved. A shell's code.
        std::process::exit(130);
    };
    print_queued(out, &queued)?;
    summarize(out, &queued, &jobs)
}

/// Why a job waits, as a sentence that starts with "waiting".
fn waiting_text(why: &str) -> String {
    if why.starts_with("waiting") {
        why.to_owned()
    } else {
        format!("waiting: {why}")
    }
}

/// "1 job", "3 jobs".
fn jobs_word(n: usize) -> String {
    format!("{n} job{}", if n == 1 { "" } else { "s" })
}

/// On Ctrl-C, print `message()` and leave (exit code 130, as a shell does). The
/// jobs go on in the node; only following them stops.
fn on_ctrl_c(message: impl Fn() -> String + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("reelmesh-ctrl-c".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            if runtime.block_on(tokio::signal::ctrl_c()).is_ok() {
                eprintln!("\n{}", message());
                std::process::exit(130);
            }
        });
    if let Err(e) = spawned {
        tracing::debug!("no Ctrl-C handler: {e}");
    }
}

fn print_queued(out: &mut dyn Write, queued: &RenderQueued) -> Result<()> {
    writeln!(
        out,
        "queued {} job{} in project {}{}",
        queued.queued.len(),
        if queued.queued.len() == 1 { "" } else { "s" },
        queued.project_id,
        if queued.runnable_here {
            ""
        } else {
            " (this node cannot run them: they wait for another node)"
        }
    )?;
    for (shot, why) in &queued.refused {
        writeln!(out, "{shot}: not queued: {why}")?;
    }
    Ok(())
}

/// Which of the followed jobs have ended (shared with the Ctrl-C handler).
#[derive(Clone, Default)]
struct Followed(std::sync::Arc<std::sync::Mutex<(usize, HashSet<String>)>>);

impl Followed {
    fn ended(&self, job_id: &str) {
        if let Ok(mut inner) = self.0.lock() {
            inner.1.insert(job_id.to_owned());
        }
    }

    /// Jobs not ended yet.
    fn left(&self) -> usize {
        self.0
            .lock()
            .map_or(0, |inner| inner.0.saturating_sub(inner.1.len()))
    }
}

/// A progress bar over all jobs (or JSON lines).
struct ProgressView {
    bar: Option<ProgressBar>,
    codes: BTreeMap<String, String>,
    fractions: BTreeMap<String, f32>,
    followed: Followed,
    /// The last reason for waiting printed (jobs waiting for the same reason are
    /// told once).
    last_waiting: String,
    json: bool,
}

impl ProgressView {
    fn new(queued: &RenderQueued, json: bool) -> ProgressView {
        let total = queued.queued.len() as u64 * 100;
        let bar = (!json).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:32.cyan/blue} {percent:>3}% {elapsed_precise} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let followed = Followed::default();
        if let Ok(mut inner) = followed.0.lock() {
            inner.0 = queued.queued.len();
        }
        ProgressView {
            bar,
            codes: queued
                .queued
                .iter()
                .map(|q| (q.job_id.clone(), q.shot_code.clone()))
                .collect(),
            fractions: BTreeMap::new(),
            followed,
            last_waiting: String::new(),
            json,
        }
    }

    fn followed(&self) -> Followed {
        self.followed.clone()
    }

    fn update(&mut self, update: &JobUpdate) {
        // A job a chain queued (a clip after its still, a post step after its
        // clip): followed too, the bar grows by one job.
        if !self.fractions.contains_key(&update.job_id) && !self.codes.contains_key(&update.job_id)
        {
            self.codes
                .insert(update.job_id.clone(), update.shot_code.clone());
            if let Ok(mut inner) = self.followed.0.lock() {
                inner.0 += 1;
            }
            if let Some(bar) = &self.bar {
                bar.inc_length(100);
            }
        }
        if !update.state.is_active() {
            self.followed.ended(&update.job_id);
        }
        if self.json {
            if let Ok(line) = serde_json::to_string(update) {
                println!("{line}");
            }
            return;
        }
        let fraction = if update.state.is_active() {
            update.fraction
        } else {
            1.0
        };
        self.fractions.insert(update.job_id.clone(), fraction);
        let code = self.codes.get(&update.job_id).cloned().unwrap_or_default();
        let Some(bar) = &self.bar else { return };
        let done: f32 = self.fractions.values().sum();
        bar.set_position((done * 100.0) as u64);
        bar.set_message(format!("{code} {}: {}", update.workflow, update.step));
        // Above the bar on a terminal; as plain lines on standard error otherwise
        // (the bar hides itself there), so a log of the run still tells them.
        let say = |line: String| {
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        };
        if let Some(why) = &update.waiting
            && *why != self.last_waiting
        {
            say(format!("{code} {}", waiting_text(why)));
            self.last_waiting.clone_from(why);
        }
        if let (JobState::Queued, Some(error), None) =
            (update.state, &update.error, &update.waiting)
        {
            // Back in the queue after a fault: the error says what happened to the
            // run ("interrupted on vm (attempt 1 given back): ...").
            say(format!("{code} {error}"));
        }
        if !update.state.is_active() {
            let detail = update.error.clone().unwrap_or_default();
            say(format!("{code} {} {detail}", update.state));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The jobs as they ended: a table, then every error in full (wrapped to the
/// terminal, one clause a line, the node and input first as ComfyUI gives them).
fn summarize(out: &mut dyn Write, queued: &RenderQueued, jobs: &[Job]) -> Result<()> {
    if jobs.is_empty() {
        // Nothing was queued (a video batch that refused every shot said why).
        return Ok(());
    }
    let mut codes: BTreeMap<&str, &str> = queued
        .queued
        .iter()
        .map(|q| (q.job_id.as_str(), q.shot_code.as_str()))
        .collect();
    // A chained job is its parent's shot (jobs come parents first).
    for job in jobs {
        if let Some(code) = codes.get(job.parent.as_str()).copied() {
            codes.insert(job.job_id.as_str(), code);
        }
    }
    let code = |job: &Job| codes.get(job.job_id.as_str()).copied().unwrap_or("?");
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            vec![
                code(job).to_owned(),
                job.workflow.clone(),
                job.state.to_string(),
                format!("{}/{}", job.attempts, job.max_attempts),
                job.take_id.chars().take(8).collect(),
                if job.error.is_empty() {
                    String::new()
                } else {
                    "see below".into()
                },
            ]
        })
        .collect();
    print_table(
        out,
        &["SHOT", "WORKFLOW", "STATE", "ATTEMPTS", "TAKE", "ERROR"],
        &rows,
    )?;
    let width = super::terminal_width();
    for job in jobs.iter().filter(|j| !j.error.is_empty()) {
        writeln!(out)?;
        writeln!(
            out,
            "{} {} (job {}):",
            code(job),
            job.state,
            job.job_id.chars().take(8).collect::<String>()
        )?;
        for line in error_lines(&job.error, width) {
            writeln!(out, "{line}")?;
        }
    }
    let failed = jobs
        .iter()
        .filter(|j| j.state != JobState::Succeeded)
        .count();
    if failed > 0 {
        bail!("{failed} of {} jobs did not succeed", jobs.len());
    }
    Ok(())
}

/// An error in full for a person: one clause (`; `-separated: the attempt, each
/// node ComfyUI names, why it was not retried) a line, each wrapped.
fn error_lines(error: &str, width: usize) -> Vec<String> {
    error
        .split("; ")
        .filter(|clause| !clause.trim().is_empty())
        .flat_map(|clause| {
            let mut lines = super::wrap(clause, width, "    ");
            if let Some(first) = lines.first_mut() {
                first.replace_range(..2, "");
            }
            lines
        })
        .collect()
}

/// A project's jobs, takes, and shot codes by shot id.
type JobsAndTakes = (Vec<Job>, Vec<Take>, BTreeMap<String, ShotCode>);

/// What the running node knows beyond the document: each job's latest progress
/// (from gossip) and why queued jobs wait. Empty without a running node.
#[derive(Debug, Default)]
pub struct LiveJobs {
    /// Job id → latest update.
    pub progress: BTreeMap<String, crate::jobs::JobUpdate>,
    /// Queued job id → why it waits.
    pub waiting: BTreeMap<String, String>,
}

/// The jobs and takes of a project, from its node.
pub fn jobs_and_takes(data_root: &Path, project: Option<&str>) -> Result<JobsAndTakes> {
    Ok(jobs_with_live(data_root, project)?.0)
}

/// The jobs and takes, plus what the node knows beyond the document (gossiped
/// progress and why queued jobs wait: a node started for this command has heard
/// no peer, so it says no render node is online).
fn jobs_with_live(data_root: &Path, project: Option<&str>) -> Result<(JobsAndTakes, LiveJobs)> {
    let request = Request::Jobs {
        project: project.map(str::to_owned),
    };
    let Reply::Jobs(read) = super::ask(data_root, request)? else {
        bail!("the node answered something else than its jobs");
    };
    let live = LiveJobs {
        progress: read.progress,
        waiting: read.waiting,
    };
    Ok(((read.jobs, read.takes, read.shots), live))
}

/// One job in `reelmesh jobs --json`: every field of the job, plus what the running
/// node knows beyond the document (why a queued job waits, a running job's latest
/// progress).
#[derive(Serialize)]
struct JobRow<'a> {
    #[serde(flatten)]
    job: &'a Job,
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<&'a JobUpdate>,
}

/// `reelmesh jobs`: a table whose long texts (why a job waits, its error) are
/// numbered notes below it, printed in full and once each however many jobs share
/// them.
pub fn print_jobs(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    json: bool,
) -> Result<()> {
    let ((jobs, _, shots), live) = jobs_with_live(data_root, project)?;
    if json {
        let rows: Vec<JobRow<'_>> = jobs
            .iter()
            .map(|job| JobRow {
                job,
                waiting: live.waiting.get(&job.job_id),
                progress: live
                    .progress
                    .get(&job.job_id)
                    .filter(|_| job.state.is_active()),
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    let short = |id: &str| -> String {
        id.chars()
            .rev()
            .take(8)
            .collect::<String>()
            .chars()
            .rev()
            .collect()
    };
    let mut notes: Vec<String> = Vec::new();
    let mut note = |text: String| -> String {
        let index = notes.iter().position(|n| *n == text).unwrap_or_else(|| {
            notes.push(text);
            notes.len() - 1
        });
        format!("[{}]", index + 1)
    };
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let progress = match (j.state, live.progress.get(&j.job_id)) {
                (JobState::Queued, _) => live
                    .waiting
                    .get(&j.job_id)
                    .map(|why| format!("waiting {}", note(waiting_text(why))))
                    .unwrap_or_default(),
                (JobState::Claimed | JobState::Running, Some(u)) => {
                    format!("{:>3.0}% {}", u.fraction * 100.0, u.step)
                }
                _ => String::new(),
            };
            let error = if j.error.is_empty() {
                String::new()
            } else {
                note(j.error.clone())
            };
            vec![
                j.job_id.chars().take(8).collect(),
                shots
                    .get(&j.shot_id)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                j.workflow.clone(),
                j.state.to_string(),
                j.priority.to_string(),
                format!("{}/{}", j.attempts, j.max_attempts),
                short(&j.claimant),
                progress,
                error,
            ]
        })
        .collect();
    print_table(
        out,
        &[
            "JOB", "SHOT", "WORKFLOW", "STATE", "PRIO", "ATTEMPTS", "NODE", "PROGRESS", "ERROR",
        ],
        &rows,
    )?;
    if !notes.is_empty() {
        writeln!(out)?;
    }
    let width = super::terminal_width();
    for (index, text) in notes.iter().enumerate() {
        let mark = format!("[{}]", index + 1);
        for (line_no, line) in error_lines(text, width).into_iter().enumerate() {
            if line_no == 0 {
                writeln!(out, "{mark:<4}{}", line.trim_start())?;
            } else {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}

/// `reelmesh takes`.
pub fn print_takes(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    json: bool,
    folder: Option<&Path>,
) -> Result<()> {
    let (_, takes, shots) = jobs_and_takes(data_root, project)?;
    if let Some(folder) = folder {
        copy_takes(out, data_root, &takes, &shots, folder)?;
    }
    if json {
        serde_json::to_writer_pretty(&mut *out, &takes)?;
        writeln!(out)?;
        return Ok(());
    }
    let blobs = crate::store::blobs::BlobStore::open(data_root)?;
    let rows: Vec<Vec<String>> = takes
        .iter()
        .map(|t| {
            let here = t.blob.parse().map(|h| blobs.has(&h)).unwrap_or(false);
            vec![
                shots
                    .get(&t.shot_id)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                t.take_id.chars().take(8).collect(),
                t.media.to_string(),
                format!("{}x{}", t.width, t.height),
                t.size.to_string(),
                t.workflow.clone(),
                t.seed.to_string(),
                t.blob.chars().take(16).collect(),
                if here {
                    "here".into()
                } else {
                    "elsewhere".into()
                },
            ]
        })
        .collect();
    print_table(
        out,
        &[
            "SHOT", "TAKE", "MEDIA", "SIZE", "BYTES", "WORKFLOW", "SEED", "BLAKE3", "BLOB",
        ],
        &rows,
    )
}

/// `reelmesh cancel`.
pub fn cancel(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    job_ids: &[String],
) -> Result<()> {
    let request = Request::Cancel {
        project: project.map(str::to_owned),
        job_ids: job_ids.to_vec(),
    };
    let canceled = match super::ask(data_root, request)? {
        Reply::Canceled { job_ids } => job_ids,
        other => return Err(super::unexpected(&other)),
    };
    for id in canceled {
        writeln!(out, "cancel requested: {id}")?;
    }
    Ok(())
}

/// The project, its takes and the blob store, with the takes the cut shows
/// fetched from peers first when a node runs (read once for any number of files).
fn project_and_takes(
    data_root: &Path,
    project: Option<&str>,
) -> Result<(
    reelmesh_protocol::model::Project,
    Vec<Take>,
    crate::store::blobs::BlobStore,
)> {
    let request = Request::Project {
        project: project.map(str::to_owned),
    };
    let read = match super::ask(data_root, request)? {
        Reply::Project(read) => read,
        other => return Err(super::unexpected(&other)),
    };
    let (_, takes, _) = jobs_and_takes(data_root, project)?;
    let blobs = crate::store::blobs::BlobStore::open(data_root)?;
    let missing = crate::publish::missing_takes(&read.project, &takes, &blobs);
    if !missing.is_empty() {
        // Held elsewhere: a running node fetches them from its peers by hash.
        let _ = super::via_node(data_root, &Request::Fetch { hashes: missing })?;
    }
    Ok((read.project, takes, blobs))
}

/// `reelmesh publish FILE`: the cut in the format FILE's extension names, with
/// each shot's take beside it (fetched from peers first when a node runs).
pub fn publish(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    file: &Path,
    options: PublishOptions,
) -> Result<()> {
    let (read, takes, blobs) = project_and_takes(data_root, project)?;
    let bar = encoding_bar(read.shots.len());
    let written =
        crate::publish::write_one(out, file, &read, &takes, &blobs, options, &mut |done, _| {
            bar.set_position(done as u64);
        });
    bar.finish_and_clear();
    written
}

/// The animatic's progress bar (it only moves while an `.mp4` encodes).
fn encoding_bar(shots: usize) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(shots as u64).with_style(
        indicatif::ProgressStyle::with_template("encoding the animatic {bar:30} {pos}/{len} shots")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    )
}

/// `reelmesh publish --all DIR`: every format, the approved takes and the archive.
pub fn publish_all(
    out: &mut dyn Write,
    data_root: &Path,
    project: Option<&str>,
    dir: &Path,
    options: PublishOptions,
) -> Result<()> {
    let (read, takes, blobs) = project_and_takes(data_root, project)?;
    let data = crate::store::DataDir::open(data_root)?;
    let bar = encoding_bar(read.shots.len());
    let written = crate::publish::write_all(
        out,
        dir,
        &read,
        &takes,
        &blobs,
        options,
        &mut |file| crate::archive::create(&data, project, file),
        &mut |_, done, _| bar.set_position(done as u64),
    );
    bar.finish_and_clear();
    written
}

/// Copy the takes held on this node into `folder` (verified against their hash).
fn copy_takes(
    out: &mut dyn Write,
    data_root: &Path,
    takes: &[Take],
    shots: &BTreeMap<String, ShotCode>,
    folder: &Path,
) -> Result<()> {
    let blobs = crate::store::blobs::BlobStore::open(data_root)?;
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let mut copied = 0;
    for take in takes {
        let Ok(hash) = take.blob.parse() else {
            continue;
        };
        if !blobs.has(&hash) {
            // Held elsewhere: a running node fetches it from its peers by hash.
            let request = Request::Fetch {
                hashes: vec![take.blob.clone()],
            };
            match super::via_node(data_root, &request) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    writeln!(
                        out,
                        "not here (start the node to fetch it from peers): {}",
                        take.blob
                    )?;
                    continue;
                }
                Err(e) => {
                    writeln!(out, "not fetched: {e}")?;
                    continue;
                }
            }
        }
        let bytes = blobs.read(&hash)?;
        let code = shots
            .get(&take.shot_id)
            .map_or_else(|| "SHT-unknown".to_owned(), ToString::to_string);
        let extension: String = take
            .extension
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect();
        let name = format!(
            "{code}_{}.{extension}",
            take.take_id.chars().take(8).collect::<String>()
        );
        let path = folder.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        copied += 1;
    }
    writeln!(out, "copied {copied} take(s) to {}", folder.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::queue::Queued as QueuedJob;

    #[test]
    fn deadlines_read_like_people_write_them() {
        assert_eq!(parse_wait("90"), Ok(90));
        assert_eq!(parse_wait("90s"), Ok(90));
        assert_eq!(parse_wait("45m"), Ok(2_700));
        assert_eq!(parse_wait("12h"), Ok(43_200));
        assert_eq!(parse_wait("3d"), Ok(259_200));
        assert!(parse_wait("0s").unwrap_err().contains("above zero"));
        assert!(parse_wait("2w").unwrap_err().contains("'w' is not a unit"));
        assert!(parse_wait("soon").is_err());
        assert!(parse_wait("99999999999999999999d").is_err());
    }

    fn queued(jobs: &[&Job]) -> RenderQueued {
        RenderQueued {
            project_id: "p".into(),
            queued: jobs
                .iter()
                .enumerate()
                .map(|(i, j)| QueuedJob {
                    job_id: j.job_id.clone(),
                    shot_code: format!("SHT-0000{}", i + 1),
                })
                .collect(),
            runnable_here: true,
            refused: Vec::new(),
        }
    }

    #[test]
    fn the_summary_prints_every_error_whole_one_clause_a_line() {
        // ComfyUI's refusal as the runner records it (the model name is far past
        // any table column).
        let mut failed = Job::new("s1", "flux_lora", 1, "me", 1);
        failed.state = JobState::Failed;
        failed.attempts = 1;
        failed.error = "attempt 1 on vm: comfyui rejected the workflow: prompt outputs failed \
            validation; node 11 (LoraLoader), input lora_name: value not in list: \
            'minji_v2.safetensors' not in ['flux1-dev.safetensors', 't5xxl_fp16.safetensors']; \
            not retried: every node that can run workflow flux_lora is ruled out: failed it: \
            vm (a1b2c3) (attempt 1)"
            .into();
        let mut done = Job::new("s2", "flux_lora", 2, "me", 1);
        done.state = JobState::Succeeded;
        done.take_id = "t1234567890".into();
        let mut out = Vec::new();
        let err = summarize(
            &mut out,
            &queued(&[&failed, &done]),
            &[failed.clone(), done],
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "1 of 2 jobs did not succeed");
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].starts_with("SHT-00001  flux_lora  failed     1/3"),
            "{text}"
        );
        assert!(lines[1].ends_with("see below"), "{text}");
        assert!(
            lines[2].starts_with("SHT-00002  flux_lora  succeeded")
                && lines[2].contains("t1234567"),
            "{text}"
        );
        let job_line = format!("SHT-00001 failed (job {}):", &failed.job_id[..8]);
        assert!(text.contains(&job_line), "{text}");
        // Nothing cut: every word of the error is there, the model name on the line
        // of its node.
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let whole: String = failed.error.replace("; ", " ");
        assert!(flat.contains(&whole), "{text}");
        assert!(
            text.lines().any(|l| l
                .trim_start()
                .starts_with("node 11 (LoraLoader), input lora_name")),
            "{text}"
        );
        assert!(!text.contains('…'), "{text}");
    }

    #[test]
    fn long_clauses_wrap_at_spaces_and_hangul_counts_double() {
        let lines = error_lines(
            "attempt 1 on 렌더-1: comfyui at http://127.0.0.1:8188: unreachable (connection refused (os error 111)); back in the queue",
            40,
        );
        assert!(lines.len() >= 3, "{lines:?}");
        for line in &lines {
            assert!(crate::cli::display_width_for_tests(line) <= 40, "{line:?}");
        }
        assert!(lines[0].starts_with("  attempt 1 on 렌더-1:"), "{lines:?}");
        assert!(
            lines[1].starts_with("    "),
            "continued lines are indented: {lines:?}"
        );
        assert_eq!(lines.last().unwrap(), "  back in the queue");
        assert_eq!(
            waiting_text("waiting for a free node"),
            "waiting for a free node"
        );
        assert_eq!(
            waiting_text("no node can run workflow x"),
            "waiting: no node can run workflow x"
        );
    }
}
