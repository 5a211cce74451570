//! What one replica pays, in the project document alone, for each render job, and
//! the ceiling that puts on a mesh's dispatch throughput ([4/8]).
//!
//! Run: `cargo bench -p reelmesh-protocol --bench replica` (release build; knobs
//! `REELMESH_BENCH_JOBS`, default 10,000, and `REELMESH_BENCH_BATCHES`, default
//! `1,4,32`: how many jobs each change records).
//!
//! A writer records each job as the job runner does (`node/src/jobs.rs`,
//! `write_batch` inside `in_one_change`): its claim (`update_jobs`: claimed,
//! claimant, attempt), then its result (`add_take` and `update_jobs` to succeeded,
//! which moves the shot's status), a batch of jobs per change. A second replica
//! applies every change as a peer's push (`ProjectDoc::apply_changes`, with the
//! checks and the change index) and reads what changed (`jobs_changed`, as the
//! runner does). No network, no disk, no gossip: only Automerge and the records.
//!
//! Every replica of a mesh applies every job's records, so a mesh of `n` nodes on
//! `c` cores cannot dispatch more than `c / (write + (n - 1) × apply)` jobs per
//! second, whatever its protocol, while claims and results live in the shared
//! document (DESIGN.md: "the winner writes the claim into the document"). The
//! bench prints that ceiling for this machine and the dispatch bench's mesh (16
//! workers and an editor), and for one core per node.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench helpers panic on failure by design

use std::time::Instant;

use reelmesh_protocol::document::{Position, ProjectDoc};
use reelmesh_protocol::jobs::{Job, JobState, Take, TakeMedia};
use reelmesh_protocol::model::{Shot, ShotCode, new_record_id};

const SHOTS: u64 = 500;
/// The dispatch bench's mesh: 16 workers and an editor.
const MESH_NODES: u32 = 17;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn take_of(job: &Job) -> Take {
    Take {
        take_id: new_record_id(),
        shot_id: job.shot_id.clone(),
        job_id: job.job_id.clone(),
        blob: blake3::hash(job.job_id.as_bytes()).to_hex().to_string(),
        media: TakeMedia::Card,
        extension: "png".into(),
        size: 48_213,
        width: 1280,
        height: 720,
        frames: 1,
        fps: 0.0,
        duration_ms: 0,
        workflow: job.workflow.clone(),
        seed: job.seed,
        prompt: job.prompt.clone(),
        node_id: "12D3KooWstandin".into(),
        host: "render-1".into(),
        started_at_ms: 1_000,
        finished_at_ms: 1_001,
        render_ms: 1,
        cached: false,
    }
}

struct Cost {
    write_us: f64,
    apply_us: f64,
    changes: usize,
    bytes_per_job: f64,
}

fn measure(jobs_wanted: usize, batch: usize) -> Cost {
    let mut writer = ProjectDoc::create("처리량", "p1").expect("create");
    let shots: Vec<Shot> = (1..=SHOTS).map(|i| Shot::new(ShotCode(i), 24)).collect();
    writer.add_shots(&shots, &Position::End).expect("shots");
    let shot_ids: Vec<String> = writer
        .project()
        .expect("read")
        .shots
        .iter()
        .map(|s| s.shot_id.clone())
        .collect();
    let jobs: Vec<Job> = (0..jobs_wanted)
        .map(|i| {
            let mut job = Job::new(&shot_ids[i % shot_ids.len()], "card", i as u64, "editor", 1);
            job.prompt = "비 내리는 골목, 35mm, night".into();
            job
        })
        .collect();
    writer.add_jobs(&jobs).expect("queue");
    let mut replica = ProjectDoc::load(&writer.save()).expect("replica");
    let _ = replica.jobs_changed().expect("first read");

    let mut pushes = Vec::new();
    let started = Instant::now();
    for chunk in jobs.chunks(batch) {
        let before = writer.heads();
        let claimed: Vec<Job> = chunk
            .iter()
            .map(|job| {
                let mut job = job.clone();
                job.state = JobState::Claimed;
                job.claimant = "12D3KooWstandin".into();
                job.attempts = 1;
                job
            })
            .collect();
        writer
            .in_one_change(|doc| doc.update_jobs(&claimed))
            .expect("claim");
        pushes.push(writer.changes_since(&before));
        let before = writer.heads();
        writer
            .in_one_change(|doc| {
                let mut done = Vec::with_capacity(claimed.len());
                for job in &claimed {
                    let take = take_of(job);
                    doc.add_take(&take)?;
                    let mut job = job.clone();
                    job.state = JobState::Succeeded;
                    job.take_id = take.take_id;
                    done.push(job);
                }
                doc.update_jobs(&done)
            })
            .expect("result");
        pushes.push(writer.changes_since(&before));
    }
    let write = started.elapsed();

    let bytes: usize = pushes
        .iter()
        .flat_map(|c| c.chunks.iter())
        .map(Vec::len)
        .sum();
    let started = Instant::now();
    let mut seen = 0;
    for push in &pushes {
        replica.apply_changes(&push.chunks, "p1").expect("apply");
        seen += replica.jobs_changed().expect("read").map_or(0, |j| j.len());
    }
    let apply = started.elapsed();
    assert_eq!(replica.heads(), writer.heads(), "the replica caught up");
    assert!(seen >= jobs_wanted, "every job was seen changing");
    let n = jobs_wanted as f64;
    Cost {
        write_us: write.as_secs_f64() * 1e6 / n,
        apply_us: apply.as_secs_f64() * 1e6 / n,
        changes: pushes.len(),
        bytes_per_job: bytes as f64 / n,
    }
}

fn main() {
    let jobs: usize = env_or("REELMESH_BENCH_JOBS", "10000")
        .parse()
        .expect("REELMESH_BENCH_JOBS: a number");
    let batches: Vec<usize> = env_or("REELMESH_BENCH_BATCHES", "1,4,32")
        .split(',')
        .map(|b| b.trim().parse().expect("REELMESH_BENCH_BATCHES: numbers"))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!(
        "== [4/8] the document's cost per job: {jobs} jobs, each claimed then ended with a take, on a {SHOTS}-shot project; {cores} cores here"
    );
    println!(
        "| jobs per change | writer, per job | each other replica, per job | changes | bytes per job | ceiling, {MESH_NODES} nodes on {cores} cores | ceiling, a core per node |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for batch in batches {
        let cost = measure(jobs, batch.max(1));
        let per_job_mesh_us = cost.write_us + f64::from(MESH_NODES - 1) * cost.apply_us;
        let shared = cores as f64 * 1e6 / per_job_mesh_us;
        // A core per node: the editor applies every job's records; a worker writes
        // its own share of the jobs and applies the rest.
        let workers = f64::from(MESH_NODES - 1);
        let worker_us = (cost.write_us + (workers - 1.0) * cost.apply_us) / workers;
        let own_core = 1e6 / cost.apply_us.max(worker_us);
        println!(
            "| {batch} | {:.0} µs | {:.0} µs | {} | {:.0} | {:.0} jobs/s | {:.0} jobs/s |",
            cost.write_us, cost.apply_us, cost.changes, cost.bytes_per_job, shared, own_core
        );
    }
    println!(
        "ceiling = cores / (writer + {} × replica): the CPU the document alone needs per job, before any network, disk or gossip (the dispatch goal: 1,000 jobs/s). A core per node: the busiest node's CPU per job (the editor applies every job; a worker writes 1/16 and applies 15/16)",
        MESH_NODES - 1
    );
}
