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
        let mine: HashSet<&str> = self
            .held
            .iter()
            .map(|h| h.job_id.as_str())
            .chain(self.running.iter().map(|r| r.held.job_id.as_str()))
            .collect();
        let claimants = Claimants {
            node_id: &self.node_id,
            peers: &peers,
            offers: &self.offers,
            now_ms: now_ms(),
        };
        let claims = self.index.iter().flat_map(|(project_id, project)| {
            project
                .held
                .iter()
                .filter_map(|id| project.jobs.get(id))
                .map(move |job| (project_id.as_str(), job))
        });
        let writes = &self.writes;
        let holds = |project_id: &str, job_id: &str| {
            mine.contains(job_id) || writes.has_job(project_id, job_id)
        };
        let expired = self
            .leases
            .review(claims, &claimants, &holds, Instant::now());
        for (project_id, job, why) in expired {
            warn!(job = %job.job_id, node = %job.claimant, "{why}: the job goes back to the queue");
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

/// What this node knows of the nodes that claimed jobs, for one review.
pub(super) struct Claimants<'a> {
    /// This node.
    pub(super) node_id: &'a str,
    /// Every peer heard from, this node included.
    pub(super) peers: &'a [reelmesh_protocol::api::status::PeerRow],
    /// The live offers.
    pub(super) offers: &'a [Offer],
    /// The wall clock now (claims carry their start in ms since the epoch).
    pub(super) now_ms: u64,
}

impl Claimants<'_> {
    /// `claimant` has been silent on gossip for the lease: its last heartbeat is
    /// older (or it is not connected and never sent one), or nobody has heard of
    /// it since it claimed a job longer than a lease ago.
    fn silent(&self, claimant: &str, started_at_ms: u64, lease: Duration) -> bool {
        match self.peers.iter().find(|p| p.node_id == claimant) {
            Some(row) if row.this_node => false,
            Some(row) => row
                .last_heartbeat_secs
                .map_or(!row.connected, |secs| secs > lease.as_secs_f64()),
            None => {
                let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
                self.now_ms.saturating_sub(started_at_ms) > lease_ms
            }
        }
    }
}

/// Claims nobody works on: the lease, when this node started, and since when each
/// claim has been seen not worked on.
#[derive(Debug)]
pub(super) struct Leases {
    lease: Duration,
    /// This node's start (ms since the epoch): its claims from before are its
    /// previous run's.
    started_ms: u64,
    /// Claims seen not held by their claimant, since when.
    unheld: HashMap<String, Instant>,
}

impl Leases {
    pub(super) fn new(lease: Duration, started_ms: u64) -> Self {
        Self {
            lease,
            started_ms,
            unheld: HashMap::new(),
        }
    }

    /// How long a silent claimant keeps its claims.
    pub(super) fn lease(&self) -> Duration {
        self.lease
    }

    /// The claims (project id, job) that go back to the queue now, each with why:
    /// see [`Runner::expire_leases`]. `holds(project, job)` says this node holds the
    /// job or has a write of it pending.
    pub(super) fn review<'j>(
        &mut self,
        claims: impl Iterator<Item = (&'j str, &'j Job)>,
        claimants: &Claimants<'_>,
        holds: &dyn Fn(&str, &str) -> bool,
        now: Instant,
    ) -> Vec<(String, Job, String)> {
        let mut expired = Vec::new();
        let mut unheld_now = HashMap::new();
        for (project_id, job) in claims {
            if job.claimant.is_empty() {
                continue;
            }
            let mut unheld_for = |job_id: &str| {
                let since = *self.unheld.get(job_id).unwrap_or(&now);
                unheld_now.insert(job_id.to_owned(), since);
                now.duration_since(since)
            };
            let why = if job.claimant == claimants.node_id {
                if holds(project_id, &job.job_id) || unheld_for(&job.job_id) < ORPHAN_GRACE {
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
            } else if claimants.silent(&job.claimant, job.started_at_ms, self.lease) {
                format!(
                    "lease expired: node {} went silent during attempt {}",
                    job.claimant, job.attempts
                )
            } else if let Some(offer) = claimants.offers.iter().find(|o| o.node_id == job.claimant)
            {
                if offer.holding.iter().any(|(id, _)| *id == job.job_id)
                    || unheld_for(&job.job_id) < self.lease * 2
                {
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
            unheld_now.remove(&job.job_id);
            expired.push((project_id.to_owned(), job.clone(), why));
        }
        self.unheld = unheld_now;
        expired
    }
}

#[cfg(test)]
mod tests {
    use reelmesh_protocol::api::status::PeerRow;

    use super::*;

    const LEASE: Duration = Duration::from_secs(10);
    const NOW_MS: u64 = 1_000_000_000;

    fn claimed(job_id: &str, claimant: &str, started_at_ms: u64) -> Job {
        let mut job = Job::new("shot", "flux", 1, "editor", started_at_ms);
        job.job_id = job_id.to_owned();
        job.state = JobState::Running;
        job.claimant = claimant.to_owned();
        job.attempts = 1;
        job.started_at_ms = started_at_ms;
        job
    }

    fn peer(node_id: &str, heartbeat_secs: Option<f64>, this_node: bool) -> PeerRow {
        PeerRow {
            node_id: node_id.to_owned(),
            host_name: String::new(),
            gpu: String::new(),
            gpu_source: None,
            vram_total: None,
            vram_used: None,
            utilization: None,
            status: "idle".into(),
            status_detail: None,
            current_job: None,
            comfy_url: None,
            capabilities: Vec::new(),
            last_heartbeat_secs: heartbeat_secs,
            connected: true,
            this_node,
        }
    }

    fn offer_holding(node_id: &str, jobs: &[&str]) -> Offer {
        Offer {
            node_id: node_id.to_owned(),
            host: String::new(),
            seq: 1,
            workflows: vec!["flux".into()],
            utilization: 0,
            queue_len: 0,
            slots: 0,
            paused: None,
            unavailable: Vec::new(),
            holding: jobs.iter().map(|j| ((*j).to_owned(), 1)).collect(),
            mean_run_ms: None,
            intents: Vec::new(),
            sent_ms: 0,
            busy_ms: None,
            rates: Vec::new(),
            overhead_ms: 0,
            renderer_down: None,
        }
    }

    fn review(
        leases: &mut Leases,
        jobs: &[Job],
        peers: &[PeerRow],
        offers: &[Offer],
        now: Instant,
    ) -> Vec<(String, String)> {
        let claimants = Claimants {
            node_id: "me",
            peers,
            offers,
            now_ms: NOW_MS,
        };
        let held_here = |_: &str, job_id: &str| job_id == "mine";
        leases
            .review(jobs.iter().map(|j| ("p", j)), &claimants, &held_here, now)
            .into_iter()
            .map(|(_, job, why)| (job.job_id, why))
            .collect()
    }

    #[test]
    fn a_silent_claimant_loses_its_claims_and_a_live_one_keeps_them() {
        let mut leases = Leases::new(LEASE, NOW_MS - 60_000);
        let jobs = [
            claimed("a", "quiet", NOW_MS - 30_000),
            claimed("b", "alive", NOW_MS - 30_000),
            claimed("c", "unknown-new", NOW_MS - 1_000),
            claimed("d", "unknown-old", NOW_MS - 30_000),
        ];
        let peers = [
            peer("me", Some(0.0), true),
            peer("quiet", Some(11.0), false),
            peer("alive", Some(1.0), false),
        ];
        let offers = [offer_holding("alive", &["b"])];
        let expired = review(&mut leases, &jobs, &peers, &offers, Instant::now());
        assert_eq!(
            expired,
            [
                (
                    "a".to_owned(),
                    "lease expired: node quiet went silent during attempt 1".to_owned()
                ),
                (
                    "d".to_owned(),
                    "lease expired: node unknown-old went silent during attempt 1".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_live_claimant_that_forgot_a_job_loses_it_after_twice_the_lease() {
        let mut leases = Leases::new(LEASE, NOW_MS - 60_000);
        let jobs = [claimed("b", "alive", NOW_MS - 30_000)];
        let peers = [peer("alive", Some(1.0), false)];
        let offers = [offer_holding("alive", &[])];
        let t0 = Instant::now();
        assert!(review(&mut leases, &jobs, &peers, &offers, t0).is_empty());
        assert!(review(&mut leases, &jobs, &peers, &offers, t0 + LEASE).is_empty());
        let expired = review(&mut leases, &jobs, &peers, &offers, t0 + LEASE * 2);
        assert_eq!(expired.len(), 1);
        assert!(
            expired[0]
                .1
                .contains("is up but has not held attempt 1 for 20 s"),
            "{expired:?}"
        );
        // Listing it again starts the count over.
        let mut leases = Leases::new(LEASE, NOW_MS - 60_000);
        assert!(review(&mut leases, &jobs, &peers, &offers, t0).is_empty());
        let listed = [offer_holding("alive", &["b"])];
        assert!(review(&mut leases, &jobs, &peers, &listed, t0 + LEASE).is_empty());
        assert!(review(&mut leases, &jobs, &peers, &offers, t0 + LEASE * 2).is_empty());
    }

    #[test]
    fn this_nodes_orphans_go_back_after_the_grace_named_by_when_they_were_claimed() {
        let started = NOW_MS - 60_000;
        let mut leases = Leases::new(LEASE, started);
        let jobs = [
            claimed("mine", "me", NOW_MS - 1_000),
            claimed("lost", "me", NOW_MS - 1_000),
            claimed("before-restart", "me", started - 5_000),
        ];
        let peers = [peer("me", Some(0.0), true)];
        let t0 = Instant::now();
        assert!(review(&mut leases, &jobs, &peers, &[], t0).is_empty());
        let expired = review(&mut leases, &jobs, &peers, &[], t0 + ORPHAN_GRACE);
        assert_eq!(
            expired,
            [
                (
                    "lost".to_owned(),
                    "node me holds no run for attempt 1".to_owned()
                ),
                (
                    "before-restart".to_owned(),
                    "interrupted: the node stopped during attempt 1".to_owned()
                ),
            ]
        );
    }
}
