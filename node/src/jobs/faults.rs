//! A run that failed, by the kind of its fault (see `protocol::jobs::Fault`):
//! back to the queue without using an attempt, the node ruled out, or the job
//! ended; and a held job whose node stopped or went silent.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Runner {
    /// A run of `job` failed: record the attempt, act on its kind of fault (see
    /// [`Fault`] and [`classify`]) and report it as `finished` (the update naming
    /// the job) says. A failure that is not transient counts towards this node's
    /// failures in a row (see [`health`](super::health)); a transient one makes the
    /// node look at its renderer again before it offers its workflows again.
    pub(super) async fn fail(
        &mut self,
        project_id: &str,
        mut job: Job,
        failure: &RunFailure,
        finished: JobUpdate,
    ) {
        let (fault, error) = classify(&job, failure, &self.node_id);
        let run = self.attempt(&job, "", Some(fault), error.clone());
        if fault == Fault::Transient {
            self.health.renderer_lost(&error, Instant::now());
            self.refresh.notify_one();
        } else if let Some(why) = self.health.failed(&error, Instant::now()) {
            warn!("job runner paused: {why}");
            // Give back what we hold: another node runs it.
            self.release_held();
            // Shown at once (`reelmesh status`), before the failure that caused it
            // reaches any peer.
            self.publish_worker();
        }
        // Who could take the retry: the live offers, this node's as it is now.
        let mut offers: Vec<Offer> = self
            .offers
            .iter()
            .filter(|o| o.node_id != self.node_id)
            .cloned()
            .collect();
        if let Some(mine) = self.publisher.last() {
            let mut mine = mine.clone();
            mine.paused = self.health.paused().map(str::to_owned);
            offers.push(mine);
        }
        let last = conclude(&mut job, run, &self.host, &offers, now_ms());
        warn!(job = %job.job_id, attempt = job.attempts, of = job.max_attempts, fault = fault.as_str(), retry = !last, "run failed: {error}");
        self.queue_write(project_id, job.clone());
        let step = match (last, fault) {
            (true, _) => "failed",
            (false, Fault::Transient) => "interrupted; back in the queue (no attempt used)",
            (false, _) => "failed; queued for a retry",
        };
        let mut update = finished;
        update.state = job.state;
        update.fraction = 1.0;
        step.clone_into(&mut update.step);
        self.send_update(update, Some(job.error.clone()), None)
            .await;
    }
}

/// The kind of a failed run of `job` on `node`, and its error in words: the
/// failure's own kind, except that the [`TRANSIENT_LIMIT_PER_NODE`]th interruption
/// of one job on one node is that node's fault (a job that takes its renderer down
/// every time is not a passing outage).
pub(super) fn classify(job: &Job, failure: &RunFailure, node: &str) -> (Fault, String) {
    if failure.fault == Fault::Transient
        && job.transient_faults_on(node) + 1 >= TRANSIENT_LIMIT_PER_NODE
    {
        let error = format!(
            "{} (the {} time a run of this job was interrupted on this node)",
            failure.message,
            ordinal(TRANSIENT_LIMIT_PER_NODE)
        );
        return (Fault::Node, error);
    }
    (failure.fault, failure.message.clone())
}

/// Record a failed run (`run`: its attempt, fault and error filled in) and decide
/// what becomes of the job, given the live `offers`; returns whether it ended.
/// - **transient**: back to the queue, the attempt given back, unless its deadline
///   passed;
/// - **this node's**: the node is ruled out; it waits for another node that can
///   take it now or once its renderer is back, else it ends;
/// - **the job's**: it ends, everywhere;
/// - **other**: the attempt counts; it ends once all are used or no node can take
///   the retry.
pub(super) fn conclude(
    job: &mut Job,
    mut run: Attempt,
    host: &str,
    offers: &[Offer],
    now: u64,
) -> bool {
    let fault = run.fault.unwrap_or(Fault::Other);
    let error = run.error.clone();
    run.outcome = if fault == Fault::Transient {
        "interrupted"
    } else {
        "failed"
    }
    .into();
    let node = run.node_id.clone();
    job.record_attempt(run);
    let attempt_text = if fault == Fault::Transient {
        // Not the job's fault: the attempt is given back.
        job.attempts = job.attempts.saturating_sub(1);
        format!(
            "interrupted on {host} (attempt {} given back): {error}",
            job.attempts + 1
        )
    } else {
        *job.failures.entry(node.clone()).or_default() += 1;
        if fault == Fault::Node {
            job.ruled_out.insert(node, clip(&error, MAX_ERROR_LEN));
        }
        format!("attempt {} on {host}: {error}", job.attempts)
    };
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
            .any(|o| o.can_take(job) || o.may_take_later(job)))
        .then(|| {
            format!(
                "{attempt_text}; not retried: {}",
                placement::why_waiting(job, offers)
            )
        }),
    };
    match end {
        Some(text) => {
            job.error = text;
            job.state = JobState::Failed;
            job.finished_at_ms = now;
            true
        }
        None => {
            job.error = attempt_text;
            job.state = JobState::Queued;
            job.claimant = String::new();
            false
        }
    }
}

/// A held job whose run was interrupted by something that was not the job's
/// fault (its node stopped or went silent): recorded in its history, and back in
/// the queue with the attempt given back; ended instead when a cancel was asked
/// for, when its deadline passed, or when runs of it were interrupted on that node
/// [`TRANSIENT_LIMIT_PER_NODE`] times (then that node is ruled out, the attempt
/// counts, and it fails once none are left).
pub(super) fn interrupted(mut job: Job, why: &str, host: &str, how: Interruption) -> Job {
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

/// How a held job's run was cut short without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Interruption {
    /// Its node stopped in an orderly way (SIGTERM, `reelmesh node` stopped).
    Stopped,
    /// Its node went silent or lost track of it (a crash, a cut cable, a bug).
    Lost,
}

/// "1st", "2nd", "3rd", "4th"...
pub(super) fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, r) if r != 11 => "st",
        (2, r) if r != 12 => "nd",
        (3, r) if r != 13 => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "node-me";

    fn job() -> Job {
        let mut job = Job::new("shot", "flux_basic", 7, "editor", 1_000);
        job.attempts = 1;
        job.claimant = ME.into();
        job.state = JobState::Running;
        job.started_at_ms = 2_000;
        // No deadline unless a test sets one (`interrupted` reads the real clock).
        job.deadline_ms = 0;
        job
    }

    fn offer(node: &str, workflows: &[&str]) -> Offer {
        Offer {
            node_id: node.into(),
            host: String::new(),
            seq: 1,
            workflows: workflows.iter().map(|w| (*w).to_owned()).collect(),
            utilization: 0,
            queue_len: 0,
            slots: 1,
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

    fn run(job: &Job, fault: Fault, error: &str) -> Attempt {
        Attempt {
            node_id: ME.into(),
            host: "vm".into(),
            attempt: job.attempts,
            started_at_ms: job.started_at_ms,
            ended_at_ms: 3_000,
            outcome: String::new(),
            fault: Some(fault),
            error: error.into(),
        }
    }

    fn settle(j: &mut Job, fault: Fault, error: &str, offers: &[Offer]) -> bool {
        let attempt = run(j, fault, error);
        conclude(j, attempt, "vm", offers, 3_000)
    }

    fn failed(fault: Fault, message: &str) -> RunFailure {
        RunFailure::of(fault, message)
    }

    #[test]
    fn a_transient_fault_gives_the_attempt_back_and_the_job_waits() {
        let mut j = job();
        let (fault, error) = classify(&j, &failed(Fault::Transient, "comfyui unreachable"), ME);
        assert_eq!(fault, Fault::Transient);
        let ended = settle(&mut j, fault, &error, &[]);
        assert!(!ended, "{j:?}");
        assert_eq!((j.state, j.attempts), (JobState::Queued, 0));
        assert_eq!(
            j.error,
            "interrupted on vm (attempt 1 given back): comfyui unreachable"
        );
        assert!(j.failures.is_empty() && j.ruled_out.is_empty(), "{j:?}");
        assert_eq!(j.history[0].outcome, "interrupted");
        assert_eq!(j.claimant, "");
    }

    #[test]
    fn the_third_interruption_on_one_node_rules_that_node_out() {
        let mut j = job();
        for _ in 0..2 {
            let (fault, error) = classify(&j, &failed(Fault::Transient, "lost"), ME);
            j.attempts += 1;
            j.started_at_ms += 1;
            settle(&mut j, fault, &error, &[]);
        }
        assert_eq!(j.attempts, 1, "two attempts given back");
        let (fault, error) = classify(&j, &failed(Fault::Transient, "lost"), ME);
        assert_eq!(fault, Fault::Node);
        assert!(error.ends_with("(the 3rd time a run of this job was interrupted on this node)"));
        j.started_at_ms += 1;
        let others = [offer("node-other", &["flux_basic"])];
        let ended = settle(&mut j, fault, &error, &others);
        assert!(!ended, "another node can take it");
        assert!(j.ruled_out.contains_key(ME), "{j:?}");
        assert_eq!(j.attempts, 1, "this one counts");
    }

    #[test]
    fn a_node_fault_rules_the_node_out_and_waits_for_another_or_ends() {
        let refusal = "comfyui rejected the workflow: node 11 (LoraLoader), input lora_name: value not in list";
        // Another node can run it: it waits for that one.
        let mut j = job();
        let others = [
            offer(ME, &["flux_basic"]),
            offer("node-other", &["flux_basic"]),
        ];
        assert!(!settle(&mut j, Fault::Node, refusal, &others));
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(j.ruled_out.get(ME).map(String::as_str), Some(refusal));
        assert_eq!(j.error, format!("attempt 1 on vm: {refusal}"));
        // A node whose ComfyUI is down may run it later: it waits too.
        let mut j = job();
        let mut down = offer("node-down", &["card"]);
        down.renderer_down = Some("comfyui at 10.0.0.2:8188: unreachable".into());
        assert!(!settle(
            &mut j,
            Fault::Node,
            refusal,
            &[offer(ME, &["flux_basic"]), down]
        ));
        // Nobody else: it ends with the whole message and why.
        let mut j = job();
        assert!(settle(
            &mut j,
            Fault::Node,
            refusal,
            &[offer(ME, &["flux_basic"])]
        ));
        assert_eq!(j.state, JobState::Failed);
        assert!(
            j.error
                .starts_with(&format!("attempt 1 on vm: {refusal}; not retried: ")),
            "{}",
            j.error
        );
    }

    #[test]
    fn the_jobs_own_fault_ends_it_everywhere_and_other_faults_use_attempts() {
        let mut j = job();
        let others = [offer("node-other", &["flux_basic"])];
        assert!(settle(
            &mut j,
            Fault::Job,
            "value 24000 bigger than max of 16384",
            &others
        ));
        assert!(
            j.error.ends_with("; the job cannot run anywhere"),
            "{}",
            j.error
        );
        // Other: retried while attempts remain, on a node that has not failed it.
        let mut j = job();
        assert!(!settle(&mut j, Fault::Other, "odd", &others));
        assert_eq!(j.failures.get(ME), Some(&1));
        let mut j = job();
        j.attempts = j.max_attempts;
        assert!(settle(&mut j, Fault::Other, "odd", &others));
        assert!(j.error.ends_with("; all 3 attempts used"), "{}", j.error);
    }

    #[test]
    fn a_transient_fault_past_the_deadline_ends_the_job() {
        let mut j = job();
        j.deadline_ms = 2_500;
        assert!(settle(&mut j, Fault::Transient, "lost", &[]));
        assert_eq!(j.state, JobState::Failed);
        assert!(j.error.contains("its deadline passed"), "{}", j.error);
    }

    #[test]
    fn a_stopped_node_never_counts_against_the_job_a_silent_one_does() {
        let mut j = job();
        for _ in 0..5 {
            j = interrupted(j, "the node vm stopped", "vm", Interruption::Stopped);
            assert_eq!((j.state, j.attempts), (JobState::Queued, 0));
            j.claimant = ME.into();
            j.state = JobState::Running;
            j.attempts = 1;
            j.started_at_ms += 1;
        }
        assert!(j.ruled_out.is_empty(), "{j:?}");
        for n in 0..3 {
            j = interrupted(j, "lease expired", "", Interruption::Lost);
            if n < 2 {
                assert_eq!(j.attempts, 0, "given back");
                j.claimant = ME.into();
                j.state = JobState::Running;
                j.attempts = 1;
                j.started_at_ms += 1;
            }
        }
        assert!(
            j.ruled_out.contains_key(ME),
            "the 3rd silence rules it out: {j:?}"
        );
        assert_eq!(j.attempts, 1);
    }
}
