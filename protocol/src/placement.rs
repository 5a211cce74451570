//! The placement rule: which node runs which queued job, computed the same way on
//! every node.
//!
//! Every node keeps a standing [`Offer`] on gossip: the workflows it can run now
//! (node classes, models and VRAM all checked), its GPU utilization, how many jobs it
//! holds and how many more it would take (`slots`). An offer is a bid on every queued
//! job the node can run, made once instead of once per job: with 10,000 queued jobs
//! and 16 nodes that is 16 messages instead of 160,000, and a new job needs no bid
//! round at all (see ARCHITECTURE.md, "Jobs across the mesh").
//!
//! [`assign`] walks the queued jobs in [`job_order`] (priority first, then age, then
//! the larger job of a batch first) and gives each to the best offer with a free
//! slot. The rule, from the product brief: the workflow is supported → the VRAM
//! requirement is met (both folded into `workflows`) → a node that has not failed
//! this job yet → the lowest GPU utilization → the shortest queue, in time: the job
//! goes where it would be done first, counting what the node holds
//! ([`Offer::busy_ms`]) and the job's own run there (its [`Job::work`] × the node's
//! measured time per unit of work for that workflow, else the node's mean run
//! time), so a GPU twice as fast takes twice the work → then the fewer jobs → node
//! id. Because it
//! is a pure function of the
//! jobs and the offers, two nodes that see the same offers compute the same
//! assignment and exactly one of them claims each job. When they saw different offers
//! (a lost message, a partition) both may claim; the document's merge keeps one
//! claimant (the `claimant` register's merged winner) and the other drops the job before or while running it.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::jobs::Job;

/// A node that failed the same job this many times is not given it again.
pub const BLOCK_AFTER_FAILURES: u64 = 2;

/// A node's standing offer to run jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The node (libp2p peer id).
    pub node_id: String,
    /// Host name, for people reading reasons.
    #[serde(default)]
    pub host: String,
    /// Grows with every offer the node makes: an older offer never replaces a newer
    /// one (gossip may reorder).
    pub seq: u64,
    /// Workflow ids it can run now: support and VRAM both checked.
    pub workflows: Vec<String>,
    /// GPU utilization in percent (100 when unknown: an unknown load is not better
    /// than a known one).
    pub utilization: u8,
    /// Jobs it holds now (claimed or running).
    pub queue_len: u32,
    /// How many more jobs it would take now.
    pub slots: u32,
    /// Why it takes no jobs for now (many failures in a row), if so.
    #[serde(default)]
    pub paused: Option<String>,
    /// The jobs it holds (claimed or running), with the attempt it claimed: gossip
    /// may outrun the document's sync, so every node treats these as taken even
    /// before the claim arrives, and two nodes holding the same attempt know their
    /// claims raced.
    #[serde(default)]
    pub holding: Vec<(String, u64)>,
    /// Workflows it knows but cannot run, with what is missing ("model
    /// flux1-dev.safetensors", "24 GB VRAM, this GPU has 8").
    #[serde(default)]
    pub unavailable: Vec<(String, String)>,
    /// Its mean run time lately, in ms (`None` before its first run): the queue
    /// rule compares queues in time, so a GPU twice as fast counts as half as
    /// loaded with the same number of jobs.
    #[serde(default)]
    pub mean_run_ms: Option<u64>,
    /// Claims it announces before writing them (job id, attempt it will claim):
    /// every other node treats these as taken, and two nodes announcing the same
    /// attempt settle it by [`claim_rank`] before either writes to the document.
    #[serde(default)]
    pub intents: Vec<(String, u64)>,
    /// When it was sent, by the sender's clock (ms since the Unix epoch; 0 when
    /// unknown). Receivers use only its variation, to measure gossip delay.
    #[serde(default)]
    pub sent_ms: u64,
    /// How long the jobs it holds will keep it busy, in ms, by its own estimate
    /// when the offer was made: what is left of the running job plus each held job,
    /// by the job's work and this node's time per unit of work (its mean run time
    /// when the work is unknown). `None`: `queue_len` × `mean_run_ms`.
    #[serde(default)]
    pub busy_ms: Option<u64>,
    /// Its measured run time per unit of work, per workflow, in µs: a recent average
    /// of its own runs of that workflow. With the job's work it says how long a job
    /// will take here, so a long job and a short one do not count the same.
    #[serde(default)]
    pub rates: Vec<(String, u64)>,
    /// What each job costs it besides the render, in ms (a recent average):
    /// submitting, storing the output, starting the next one. Short jobs on a fast
    /// GPU pay it often.
    #[serde(default)]
    pub overhead_ms: u64,
    /// Why its renderer cannot be used now, with since when ("ComfyUI at
    /// http://127.0.0.1:8188 unreachable since 14:02:10 UTC: connection refused"):
    /// its ComfyUI workflows are not in `workflows` meanwhile, and a job waiting for
    /// them says this.
    #[serde(default)]
    pub renderer_down: Option<String>,
}

/// Which of several nodes announcing the same attempt of a job keeps it: the lowest
/// rank wins. Every node computes the same ranks, whatever order the announcements
/// arrived in, and a node wins some races and loses others (no node is always
/// preferred).
#[must_use]
pub fn claim_rank(job_id: &str, attempt: u64, node_id: &str) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(job_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(&attempt.to_le_bytes());
    hasher.update(node_id.as_bytes());
    let bytes = hasher.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

impl Offer {
    /// How long its queue is, in ms, with `jobs` jobs in it (0 for a node that has
    /// not run anything yet: it gets work first and so learns its speed).
    #[must_use]
    pub fn queue_ms(&self, jobs: u32) -> u64 {
        u64::from(jobs).saturating_mul(
            self.mean_run_ms
                .map_or(0, |m| m.saturating_add(self.overhead_ms)),
        )
    }

    /// How long `job` would take here, in ms: the node's per-job overhead plus the
    /// job's work × this node's time per unit for the workflow, else plus its mean
    /// run time; 0 for a node that has not run anything yet (it counts as free: it
    /// gets work first and so learns its speed).
    #[must_use]
    pub fn estimate_ms(&self, job: &Job) -> u64 {
        if job.work > 0.0
            && let Some((_, us)) = self.rates.iter().find(|(w, _)| *w == job.workflow)
        {
            return ms_of_work(job.work, *us).saturating_add(self.overhead_ms);
        }
        self.mean_run_ms
            .map_or(0, |m| m.saturating_add(self.overhead_ms))
    }

    /// How long the jobs it holds keep it busy, in ms.
    #[must_use]
    pub fn busy(&self) -> u64 {
        self.busy_ms
            .unwrap_or_else(|| self.queue_ms(self.queue_len))
    }
}

/// `work` units at `us_per_unit` µs each, in whole ms (saturating).
#[must_use]
pub fn ms_of_work(work: f64, us_per_unit: u64) -> u64 {
    // A finite product of non-negative numbers, rounded and clamped into u64.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let ms = (work * us_per_unit as f64 / 1000.0)
        .round()
        .clamp(0.0, u64::MAX as f64) as u64;
    ms
}

impl Offer {
    /// Whether this node may be given `job` at all (ignoring free slots).
    #[must_use]
    pub fn can_take(&self, job: &Job) -> bool {
        self.paused.is_none()
            && self.workflows.contains(&job.workflow)
            && failures_on(job, &self.node_id) < BLOCK_AFTER_FAILURES
            && !job.ruled_out.contains_key(&self.node_id)
    }

    /// Whether this node might take `job` once its renderer answers again: its
    /// renderer is down (so its offer lists only what needs none), and nothing
    /// about the job rules it out. A job such a node might run waits for it
    /// rather than failing.
    #[must_use]
    pub fn may_take_later(&self, job: &Job) -> bool {
        self.renderer_down.is_some()
            && !self.workflows.contains(&job.workflow)
            && !self.unavailable.iter().any(|(w, _)| *w == job.workflow)
            && failures_on(job, &self.node_id) < BLOCK_AFTER_FAILURES
            && !job.ruled_out.contains_key(&self.node_id)
    }

    fn name(&self) -> String {
        if self.host.is_empty() {
            short_id(&self.node_id).to_owned()
        } else {
            format!("{} ({})", self.host, short_id(&self.node_id))
        }
    }
}

/// The last 6 characters of a node id: enough to tell nodes apart in text.
#[must_use]
pub fn short_id(node_id: &str) -> &str {
    node_id
        .get(node_id.len().saturating_sub(6)..)
        .unwrap_or(node_id)
}

/// How many runs of `job` failed on `node_id`.
#[must_use]
pub fn failures_on(job: &Job, node_id: &str) -> u64 {
    job.failures.get(node_id).copied().unwrap_or(0)
}

/// The order in which queued jobs are given out: higher priority first, then older,
/// then (among jobs queued together) the larger first, then by id. Larger first is
/// the classic longest-processing-time rule: the short jobs fill the gaps at the end
/// instead of a long one starting last on a slow GPU.
#[must_use]
pub fn job_order(a: &Job, b: &Job) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.created_at_ms.cmp(&b.created_at_ms))
        .then(b.work.total_cmp(&a.work))
        .then(a.job_id.cmp(&b.job_id))
}

/// Give queued jobs to nodes. `queued` must be in [`job_order`]; the result lists
/// `(job, node id)` in that order. Jobs no offer can take now are left out (they
/// wait). So is a job that a node with no free slot would finish sooner, its queue
/// included, than every node with one that the rule ranks as high (no more
/// failures of the job, no busier GPU) and whose speed is known: it waits for that node (which counts it as
/// held from then on), instead of starting now on a slower GPU and ending later; a
/// node holds few jobs at a time, so it frees a slot soon (and at most as many jobs
/// wait for a node as it holds). Stops looking as soon as
/// no offer has a free slot, so a long queue costs only what is handed out.
#[must_use]
pub fn assign<'a, 'o>(
    queued: impl IntoIterator<Item = &'a Job>,
    offers: &'o [Offer],
) -> Vec<(&'a Job, String)> {
    // Offers in node id order so the result does not depend on arrival order.
    // (offer, free slots, jobs held, ms busy), the last two growing as jobs are
    // handed out.
    let mut table: Vec<(&Offer, u32, u32, u64)> = offers
        .iter()
        .filter(|o| o.paused.is_none())
        .map(|o| (o, o.slots, o.queue_len, o.busy()))
        .collect();
    table.sort_by(|a, b| a.0.node_id.cmp(&b.0.node_id));
    table.dedup_by(|a, b| a.0.node_id == b.0.node_id);
    let taken: std::collections::HashSet<&str> = offers
        .iter()
        .flat_map(|o| {
            o.holding
                .iter()
                .chain(&o.intents)
                .map(|(id, _)| id.as_str())
        })
        .collect();
    let mut free: u64 = table.iter().map(|(_, s, _, _)| u64::from(*s)).sum();
    let mut out = Vec::new();
    for job in queued {
        if free == 0 {
            break;
        }
        if taken.contains(job.job_id.as_str()) {
            continue;
        }
        let rank = |t: &(&'o Offer, u32, u32, u64)| rank(job, t);
        let capable = || table.iter().enumerate().filter(|(_, t)| t.0.can_take(job));
        let with_slot = capable()
            .filter(|(_, t)| t.1 > 0)
            .min_by(|a, b| rank(a.1).cmp(&rank(b.1)))
            .map(|(i, t)| (i, rank(t)));
        let Some((free_at, free_rank)) = with_slot else {
            continue;
        };
        // Only a node whose speed is known: one that has not run anything yet
        // counts as free, and nobody should wait for it.
        // At most as many jobs wait for a node as it holds now: it takes about
        // that many when its slots open, and a long queue is not walked to the end.
        let sooner_full = capable()
            .filter(|(_, t)| {
                t.1 == 0 && t.0.mean_run_ms.is_some() && t.2 < t.0.queue_len.max(1) * 2
            })
            .map(|(i, t)| (i, rank(t)))
            .filter(|(_, r)| r.0 == free_rank.0 && r.1 == free_rank.1 && r < &free_rank)
            .min_by(|a, b| a.1.cmp(&b.1))
            .map(|(i, _)| i);
        let at = sooner_full.unwrap_or(free_at);
        let (offer, slots, load, busy) = &mut table[at];
        *load += 1;
        *busy = busy.saturating_add(offer.estimate_ms(job));
        if sooner_full.is_none() {
            *slots -= 1;
            free -= 1;
            out.push((job, offer.node_id.clone()));
        }
    }
    out
}

/// Where a node stands for `job` in [`assign`] (lowest wins): failures of the job
/// there, GPU utilization, when it would be done (what it holds, then the job),
/// jobs it holds, node id.
fn rank<'o>(job: &Job, t: &(&'o Offer, u32, u32, u64)) -> (u64, u8, u64, u32, &'o str) {
    let (o, _, load, busy) = *t;
    (
        failures_on(job, &o.node_id),
        o.utilization,
        busy.saturating_add(o.estimate_ms(job)),
        load,
        o.node_id.as_str(),
    )
}

/// Why a queued job is still waiting, in words, given the offers of the nodes that
/// are online ("no node can run workflow flux_basic: render-1: missing model
/// flux1-dev.safetensors; laptop: no ComfyUI").
#[must_use]
pub fn why_waiting(job: &Job, offers: &[Offer]) -> String {
    if offers.is_empty() {
        return "no render node is online".into();
    }
    let capable: Vec<&Offer> = offers
        .iter()
        .filter(|o| o.workflows.contains(&job.workflow))
        .collect();
    if capable.is_empty() {
        let mut reasons: BTreeMap<String, String> = BTreeMap::new();
        for offer in offers {
            let why = match (
                offer.unavailable.iter().find(|(w, _)| *w == job.workflow),
                &offer.renderer_down,
            ) {
                (Some((_, why)), _) => why.clone(),
                (None, Some(down)) => down.clone(),
                (None, None) => "no ComfyUI that knows it".to_owned(),
            };
            reasons.insert(offer.name(), why);
        }
        let listed: Vec<String> = reasons.iter().map(|(n, w)| format!("{n}: {w}")).collect();
        return format!(
            "no node can run workflow {}: {}",
            job.workflow,
            listed.join("; ")
        );
    }
    let usable: Vec<&&Offer> = capable.iter().filter(|o| o.can_take(job)).collect();
    if usable.is_empty() {
        // Each ruled-out node with the attempt that failed there (its whole error
        // is in the job's history).
        let ruled_out: Vec<String> = capable
            .iter()
            .filter(|o| job.ruled_out.contains_key(&o.node_id))
            .map(|o| {
                match job
                    .history
                    .iter()
                    .rev()
                    .find(|a| a.node_id == o.node_id && a.outcome == "failed")
                {
                    Some(a) => format!("{} (attempt {})", o.name(), a.attempt),
                    None => o.name(),
                }
            })
            .collect();
        let blocked: Vec<String> = capable
            .iter()
            .filter(|o| {
                !job.ruled_out.contains_key(&o.node_id)
                    && failures_on(job, &o.node_id) >= BLOCK_AFTER_FAILURES
            })
            .map(|o| o.name())
            .collect();
        let paused: Vec<String> = capable
            .iter()
            .filter_map(|o| o.paused.as_ref().map(|p| format!("{} ({p})", o.name())))
            .collect();
        let mut parts = Vec::new();
        if !ruled_out.is_empty() {
            parts.push(format!("failed it: {}", ruled_out.join(", ")));
        }
        if !blocked.is_empty() {
            parts.push(format!("failed it twice: {}", blocked.join(", ")));
        }
        if !paused.is_empty() {
            parts.push(format!("paused: {}", paused.join(", ")));
        }
        let later: Vec<String> = offers
            .iter()
            .filter(|o| o.may_take_later(job))
            .map(|o| format!("{}: {}", o.name(), o.renderer_down.as_deref().unwrap_or("")))
            .collect();
        if !later.is_empty() {
            parts.push(format!(
                "waiting for a node whose renderer is down: {}",
                later.join("; ")
            ));
        }
        return format!(
            "every node that can run workflow {} is ruled out: {}",
            job.workflow,
            parts.join("; ")
        );
    }
    let names: Vec<String> = usable.iter().map(|o| o.name()).collect();
    format!(
        "waiting for a free node ({} can run it: {})",
        usable.len(),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn offer(node: &str, workflows: &[&str], utilization: u8, queue_len: u32, slots: u32) -> Offer {
        Offer {
            node_id: node.into(),
            host: String::new(),
            seq: 1,
            workflows: workflows.iter().map(|w| (*w).to_owned()).collect(),
            utilization,
            queue_len,
            slots,
            paused: None,
            unavailable: Vec::new(),
            holding: Vec::new(),
            mean_run_ms: None,
            intents: Vec::new(),
            sent_ms: 0,
            busy_ms: None,
            rates: Vec::new(),
            overhead_ms: 0,
            renderer_down: None,
        }
    }

    fn job(workflow: &str, created: u64) -> Job {
        Job::new("s", workflow, 1, "n", created)
    }

    fn winners(jobs: &[Job], offers: &[Offer]) -> Vec<String> {
        assign(jobs.iter(), offers)
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    }

    #[test]
    fn queues_are_compared_in_time() {
        let mut fast = offer("b-fast", &["flux"], 0, 3, 1);
        fast.mean_run_ms = Some(100);
        let mut slow = offer("a-slow", &["flux"], 0, 1, 1);
        slow.mean_run_ms = Some(1000);
        // The job goes where it would be done first: after 3 jobs of 100 ms and
        // its own (400 ms), not after 1 of 1000 ms and its own (2000 ms).
        assert_eq!(
            winners(&[job("flux", 1)], &[fast.clone(), slow.clone()]),
            ["b-fast"]
        );
        // Filling the fast queue: its 17th new job would end at 2000 ms, no sooner
        // than on the slow node (a tie: the shorter queue takes it), and from then
        // on the fast node takes 10 for each one the slow node takes.
        let jobs: Vec<Job> = (0..30).map(|i| job("flux", i)).collect();
        fast.slots = 40;
        slow.slots = 40;
        let won = winners(&jobs, &[fast, slow]);
        assert!(won[..16].iter().all(|n| n == "b-fast"), "{won:?}");
        assert_eq!(won[16], "a-slow", "{won:?}");
        assert_eq!(won.iter().filter(|n| *n == "a-slow").count(), 2, "{won:?}");
        // A node that has not run anything yet counts as free.
        let new = offer("c-new", &["flux"], 0, 5, 1);
        let mut busy = offer("b-busy", &["flux"], 0, 1, 1);
        busy.mean_run_ms = Some(10);
        assert_eq!(winners(&[job("flux", 1)], &[new, busy]), ["c-new"]);
    }

    #[test]
    fn the_rule_orders_support_then_failures_then_load_then_queue_then_id() {
        let j = job("flux", 1);
        let offers = [
            offer("a", &["card"], 0, 0, 1),  // cannot run it
            offer("c", &["flux"], 80, 0, 1), // busy GPU
            offer("d", &["flux"], 10, 3, 1), // idle-ish, long queue
            offer("e", &["flux"], 10, 1, 1), // idle-ish, short queue
            offer("f", &["flux"], 10, 1, 1), // same as e: the id decides
            offer("g", &["flux"], 10, 1, 0), // no free slot
        ];
        assert_eq!(winners(std::slice::from_ref(&j), &offers), vec!["e"]);
        assert_eq!(
            winners(std::slice::from_ref(&j), &offers[..1]),
            Vec::<String>::new()
        );
        assert_eq!(winners(std::slice::from_ref(&j), &offers[..2]), vec!["c"]);
        // A node that failed the job once is asked after the others; twice, never.
        let mut failed = j;
        failed.failures.insert("e".into(), 1);
        assert_eq!(winners(&[failed.clone()], &offers), vec!["f"]);
        failed.failures.insert("f".into(), 2);
        failed.failures.insert("d".into(), 1);
        failed.failures.insert("c".into(), 1);
        // All have failed it once now: the load decides again.
        assert_eq!(winners(&[failed.clone()], &offers), vec!["e"]);
        failed.failures.insert("c".into(), 2);
        failed.failures.insert("d".into(), 2);
        failed.failures.insert("e".into(), 2);
        failed.failures.insert("g".into(), 2);
        assert!(winners(&[failed.clone()], &offers).is_empty());
        assert!(why_waiting(&failed, &offers).contains("failed it twice"));
    }

    #[test]
    fn slots_spread_jobs_and_paused_nodes_get_none() {
        let jobs: Vec<Job> = (0..5).map(|i| job("card", i)).collect();
        let mut offers = vec![
            offer("a", &["card"], 0, 0, 2),
            offer("b", &["card"], 0, 0, 2),
        ];
        // Equal nodes alternate as their virtual queues grow; 4 slots, 4 jobs.
        assert_eq!(winners(&jobs, &offers), vec!["a", "b", "a", "b"]);
        offers[0].paused = Some("5 jobs failed in a row".into());
        assert_eq!(winners(&jobs, &offers), vec!["b", "b"]);
        // A job some node says it holds is not given out again (its claim may not
        // have reached the document yet).
        let given = |offers: &[Offer]| -> Vec<String> {
            assign(jobs.iter(), offers)
                .iter()
                .map(|(j, _)| j.job_id.clone())
                .collect()
        };
        offers[0].holding = vec![(jobs[0].job_id.clone(), 1)];
        assert_eq!(
            given(&offers),
            vec![jobs[1].job_id.clone(), jobs[2].job_id.clone()]
        );
        // Nor one it announced it is about to claim.
        offers[1].intents = vec![(jobs[1].job_id.clone(), 1)];
        assert_eq!(
            given(&offers),
            vec![jobs[2].job_id.clone(), jobs[3].job_id.clone()]
        );
    }

    #[test]
    fn claim_ranks_are_stable_and_spread_wins() {
        let nodes = ["12D3KooWA", "12D3KooWB", "12D3KooWC"];
        let mut wins = [0_u32; 3];
        for j in 0..300 {
            let job = format!("job-{j}");
            let ranks: Vec<u64> = nodes.iter().map(|n| claim_rank(&job, 1, n)).collect();
            // The same inputs give the same rank (every node agrees).
            assert_eq!(ranks[0], claim_rank(&job, 1, nodes[0]));
            let best = (0..3).min_by_key(|i| ranks[*i]).expect("three");
            wins[best] += 1;
            // Another attempt is another draw.
            let _ = claim_rank(&job, 2, nodes[0]);
        }
        // Each node wins a fair share of races (300 draws: expect 100 each).
        assert!(wins.iter().all(|w| (60..=140).contains(w)), "{wins:?}");
        assert_ne!(claim_rank("j", 1, "a"), claim_rank("j", 2, "a"));
        assert_ne!(claim_rank("j", 1, "a"), claim_rank("j", 1, "b"));
    }

    #[test]
    fn priorities_come_first_then_age() {
        let mut high = Job::new("s", "card", 1, "n", 50);
        high.priority = 5;
        let old = Job::new("s", "card", 1, "n", 10);
        let young = Job::new("s", "card", 1, "n", 20);
        let mut jobs = [young.clone(), old.clone(), high.clone()];
        jobs.sort_by(job_order);
        assert_eq!(
            jobs.iter().map(|j| j.job_id.clone()).collect::<Vec<_>>(),
            vec![high.job_id.clone(), old.job_id, young.job_id]
        );
        // One slot: the high-priority job gets it.
        let given = assign(jobs.iter(), &[offer("a", &["card"], 0, 0, 1)]);
        assert_eq!(given.len(), 1);
        assert_eq!(given[0].0.job_id, high.job_id);
    }

    #[test]
    fn a_batch_goes_out_largest_first_and_each_job_where_it_ends_first() {
        // One batch (same age): larger work first, whatever order it is listed in;
        // priority and age still come before size.
        let sized = |work: f64, created: u64| {
            let mut j = job("ltx", created);
            j.work = work;
            j
        };
        let mut jobs = [
            sized(10.0, 5),
            sized(40.0, 5),
            sized(20.0, 5),
            sized(90.0, 9),
        ];
        jobs[3].priority = 1;
        jobs.sort_by(job_order);
        let works: Vec<f64> = jobs.iter().map(|j| j.work).collect();
        assert_eq!(works, [90.0, 40.0, 20.0, 10.0]);

        // A node 4× as fast per unit of work, already busy 300 ms; a slow one idle.
        let mut fast = offer("b-fast", &["ltx"], 0, 2, 10);
        fast.rates = vec![("ltx".into(), 10_000)]; // 10 ms per unit
        fast.busy_ms = Some(300);
        let mut slow = offer("a-slow", &["ltx"], 0, 0, 10);
        slow.rates = vec![("ltx".into(), 40_000)]; // 40 ms per unit
        slow.busy_ms = Some(0);
        assert_eq!(slow.estimate_ms(&sized(10.0, 1)), 400);
        // The long job ends sooner on the busy fast node (300 + 400 ms) than on the
        // idle slow one (1,600 ms); a short one ends sooner on the slow one (the
        // fast node's queue: 300 ms; the slow one does it in 200 ms).
        assert_eq!(
            winners(&[sized(40.0, 1)], &[fast.clone(), slow.clone()]),
            ["b-fast"]
        );
        assert_eq!(
            winners(&[sized(5.0, 1)], &[fast.clone(), slow.clone()]),
            ["a-slow"]
        );
        // Counting jobs instead (the same mean run time for both) would put the
        // long job on the idle node.
        let batch: Vec<Job> = [40.0, 30.0, 20.0, 10.0, 10.0, 5.0]
            .iter()
            .map(|w| sized(*w, 1))
            .collect();
        let won = winners(&batch, &[fast.clone(), slow.clone()]);
        // 40: fast ends at 700 (slow 1600); 30: fast 1000 (slow 1200); 20: slow 800
        // (fast 1200); 10: fast 1100 (slow 1200); 10: a tie at 1200, the shorter
        // queue (slow) takes it; 5: fast 1150 (slow 1400). Both end near 1.2 s.
        assert_eq!(
            won,
            ["b-fast", "b-fast", "a-slow", "b-fast", "a-slow", "b-fast"]
        );
        // Work unknown (0), or no rate for the workflow: the mean run time counts.
        fast.mean_run_ms = Some(50);
        slow.mean_run_ms = Some(500);
        assert_eq!(fast.estimate_ms(&sized(0.0, 1)), 50);
        let mut other = sized(40.0, 1);
        other.workflow = "flux".into();
        assert_eq!(fast.estimate_ms(&other), 50);
        // No busy time announced: held jobs × (mean run time + overhead).
        fast.busy_ms = None;
        fast.overhead_ms = 5;
        assert_eq!(fast.busy(), 110);
        assert_eq!(fast.estimate_ms(&sized(0.0, 1)), 55);

        // The fast node has no free slot: a long job waits for it (it would end
        // there at 100 + 400 ms, on the idle slow node at 1,600 ms) and counts as
        // held there; a short one goes to the slow node, which ends it sooner.
        let mut full = offer("b-fast", &["ltx"], 0, 2, 0);
        full.rates = vec![("ltx".into(), 10_000)];
        full.busy_ms = Some(100);
        full.mean_run_ms = Some(200);
        let idle = slow;
        let pair = [sized(40.0, 1), sized(2.0, 1)];
        let offers = [full.clone(), idle.clone()];
        let given = assign(pair.iter(), &offers);
        let works: Vec<(f64, &str)> = given.iter().map(|(j, n)| (j.work, n.as_str())).collect();
        assert_eq!(works, [(2.0, "a-slow")]);
        // A GPU that is busier, or failed the job, is not waited for.
        full.utilization = 50;
        assert_eq!(
            winners(&[sized(40.0, 1)], &[full.clone(), idle.clone()]),
            ["a-slow"]
        );
        full.utilization = 0;
        let mut failed_there = sized(40.0, 1);
        failed_there.failures.insert("b-fast".into(), 1);
        assert_eq!(
            winners(&[failed_there], &[full.clone(), idle.clone()]),
            ["a-slow"]
        );
        // Nor one whose speed is unknown (it counts as free).
        full.rates.clear();
        full.mean_run_ms = None;
        assert_eq!(winners(&[sized(40.0, 1)], &[full, idle]), ["a-slow"]);
    }

    #[test]
    fn waiting_jobs_say_why() {
        let j = job("flux", 1);
        assert_eq!(why_waiting(&j, &[]), "no render node is online");
        let mut a = offer("node-aaaaaa", &["card"], 0, 0, 1);
        a.host = "render-1".into();
        a.unavailable = vec![("flux".into(), "missing model flux1-dev.safetensors".into())];
        let b = offer("node-bbbbbb", &["card"], 0, 0, 1);
        let why = why_waiting(&j, &[a.clone(), b]);
        assert!(why.starts_with("no node can run workflow flux: "), "{why}");
        assert!(
            why.contains("render-1 (aaaaaa): missing model flux1-dev.safetensors"),
            "{why}"
        );
        assert!(why.contains("bbbbbb: no ComfyUI that knows it"), "{why}");
        // A node whose ComfyUI is down says so, with since when.
        let mut down = offer("node-dddddd", &["card"], 0, 0, 1);
        down.renderer_down =
            Some("comfyui at 127.0.0.1:8188: unreachable, since 14:02:10 UTC".into());
        let why = why_waiting(&j, &[down]);
        assert!(
            why.contains("dddddd: comfyui at 127.0.0.1:8188: unreachable, since 14:02:10 UTC"),
            "{why}"
        );
        let mut c = offer("c", &["flux"], 0, 1, 0);
        assert!(why_waiting(&j, &[a.clone(), c.clone()]).starts_with("waiting for a free node (1"));
        c.paused = Some("5 jobs failed in a row".into());
        assert!(why_waiting(&j, &[a, c]).contains("paused: c (5 jobs failed in a row)"));

        // One node failed it (its error is in the history), the other's ComfyUI is
        // down: the job waits for the second, and says both.
        let mut failed = job("flux", 1);
        let e = offer("node-eeeeee", &["flux"], 0, 0, 1);
        failed
            .ruled_out
            .insert(e.node_id.clone(), "comfyui rejected".into());
        failed.history.push(crate::jobs::Attempt {
            node_id: e.node_id.clone(),
            attempt: 1,
            outcome: "failed".into(),
            ..crate::jobs::Attempt::default()
        });
        let mut f = offer("node-ffffff", &["card"], 0, 0, 1);
        f.renderer_down = Some("comfyui at 10.0.0.2:8188: unreachable, since 09:00:00 UTC".into());
        assert!(!e.can_take(&failed) && !e.may_take_later(&failed));
        assert!(!f.can_take(&failed) && f.may_take_later(&failed));
        let why = why_waiting(&failed, &[e, f.clone()]);
        assert!(why.contains("failed it: eeeeee (attempt 1)"), "{why}");
        assert!(
            why.contains("waiting for a node whose renderer is down: ffffff: comfyui at 10.0.0.2:8188: unreachable, since 09:00:00 UTC"),
            "{why}"
        );
        // A node that said it lacks what the job needs is not waited for.
        f.unavailable = vec![("flux".into(), "missing model flux1-dev.safetensors".into())];
        assert!(!f.may_take_later(&failed));
    }

    proptest! {
        /// Every node that saw the same offers, in any order, computes the same
        /// assignment; every job goes to a node that can take it; no node gets more
        /// than its free slots; a job is left out only when no node that can take it
        /// has a slot left.
        #[test]
        fn the_assignment_is_the_same_everywhere_and_respects_the_rule(
            raw in proptest::collection::vec((0_u8..3, 0_u8..=100, 0_u32..3, 0_u32..4, any::<bool>()), 1..10),
            jobs_raw in proptest::collection::vec((0_u8..3, -1_i64..2, 0_u64..3), 0..30),
            seed in any::<u64>(),
        ) {
            let names = ["card", "flux", "wan"];
            let offers: Vec<Offer> = raw
                .iter()
                .enumerate()
                .map(|(i, (w, u, q, s, two))| {
                    let mut list = vec![names[usize::from(*w)]];
                    if *two { list.push(names[(usize::from(*w) + 1) % 3]); }
                    offer(&format!("node-{i:02}"), &list, *u, *q, *s)
                })
                .collect();
            let mut jobs: Vec<Job> = jobs_raw
                .iter()
                .enumerate()
                .map(|(i, (w, p, failed_node))| {
                    let mut j = job(names[usize::from(*w)], i as u64);
                    j.priority = *p;
                    j.failures.insert(format!("node-{failed_node:02}"), 2);
                    j
                })
                .collect();
            jobs.sort_by(job_order);
            let mut shuffled = offers.clone();
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let j = usize::try_from(state % (i as u64 + 1)).unwrap_or(0);
                shuffled.swap(i, j);
            }
            let a: Vec<(String, String)> = assign(jobs.iter(), &offers).into_iter().map(|(j, n)| (j.job_id.clone(), n)).collect();
            let b: Vec<(String, String)> = assign(jobs.iter(), &shuffled).into_iter().map(|(j, n)| (j.job_id.clone(), n)).collect();
            prop_assert_eq!(&a, &b);
            let mut used: BTreeMap<String, u32> = BTreeMap::new();
            for (job_id, node) in &a {
                let job = jobs.iter().find(|j| &j.job_id == job_id).expect("assigned job exists");
                let o = offers.iter().find(|o| &o.node_id == node).expect("winner is an offer");
                prop_assert!(o.can_take(job));
                *used.entry(node.clone()).or_default() += 1;
            }
            for o in &offers {
                prop_assert!(used.get(&o.node_id).copied().unwrap_or(0) <= o.slots);
            }
            // A job is left out only when a node that can take it has no slot
            // left (every such node, or one it waits for).
            for job in jobs.iter().filter(|j| !a.iter().any(|(id, _)| *id == j.job_id)) {
                prop_assert!(offers
                    .iter()
                    .filter(|o| o.can_take(job))
                    .all(|o| used.get(&o.node_id).copied().unwrap_or(0) <= o.slots));
                let full = offers
                    .iter()
                    .filter(|o| o.can_take(job))
                    .filter(|o| used.get(&o.node_id).copied().unwrap_or(0) == o.slots)
                    .count();
                prop_assert!(full > 0 || !offers.iter().any(|o| o.can_take(job)));
            }
        }
    }
}
