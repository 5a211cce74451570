//! A run that failed, by the kind of its fault (see `protocol::jobs::Fault`):
//! back to the queue without using an attempt, the node ruled out, or the job
//! ended; and a held job whose node stopped or went silent.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Runner {
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
    pub(super) async fn fail(
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
