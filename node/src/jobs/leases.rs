//! Leases: claims nobody works on go back to the queue (a silent claimant, one
//! whose offers forgot the job, this node's own orphans), queued jobs past their
//! deadline end, and a stopping node gives back what it holds.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Runner {
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
    pub(super) async fn expire_leases(&mut self) -> Result<(), NodeError> {
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
                    let pending = self.writes.has_job(project_id, &job.job_id);
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
        self.end_overdue();
        Ok(())
    }

    /// Queued jobs past their deadline end, saying what they waited for.
    fn end_overdue(&mut self) {
        let now = now_ms();
        let mut overdue = Vec::new();
        for (project_id, project) in &self.index {
            for job in project
                .queued
                .iter()
                .filter_map(|key| project.jobs.get(&key.3))
            {
                let pending = self.writes.has_job(project_id, &job.job_id);
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
    }

    /// Put every held (not yet running) claim back in the queue.
    pub(super) fn release_held(&mut self) {
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

    /// The node is stopping: the job it runs and those it holds go back to the
    /// queue at once, their attempts given back, so another node (or this one when
    /// it starts again) takes them without waiting for a lease to run out.
    pub(super) fn give_back_on_stop(&mut self) {
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
