//! Batched writes: job states and takes wait at most [`super::FLUSH_AFTER`] (longer
//! while the mesh is busy) and go to the document as one change per project.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Job states and takes waiting to be written, by project; owns them.
#[derive(Debug, Default)]
pub(super) struct Writes {
    /// Job states by project → job id (a newer state of a job replaces the older).
    jobs: BTreeMap<String, BTreeMap<String, Job>>,
    takes: Vec<(String, Take)>,
    /// When the oldest of them was queued.
    since: Option<Instant>,
}

impl Writes {
    /// Queue a job's state for its project.
    pub(super) fn job(&mut self, project_id: &str, job: Job, now: Instant) {
        self.jobs
            .entry(project_id.to_owned())
            .or_default()
            .insert(job.job_id.clone(), job);
        self.since.get_or_insert(now);
    }

    /// Queue a take for its project.
    pub(super) fn take(&mut self, project_id: &str, take: Take, now: Instant) {
        self.takes.push((project_id.to_owned(), take));
        self.since.get_or_insert(now);
    }

    /// Whether a state of this job waits to be written (the document is behind).
    pub(super) fn has_job(&self, project_id: &str, job_id: &str) -> bool {
        self.jobs
            .get(project_id)
            .is_some_and(|jobs| jobs.contains_key(job_id))
    }

    /// When the oldest waiting write was queued.
    pub(super) fn since(&self) -> Option<Instant> {
        self.since
    }

    /// Whether the oldest waiting write has waited `delay` at `now`.
    pub(super) fn due(&self, delay: Duration, now: Instant) -> bool {
        self.since
            .is_some_and(|since| now.saturating_duration_since(since) >= delay)
    }

    /// The projects with something waiting.
    pub(super) fn projects(&self) -> BTreeSet<String> {
        self.jobs
            .keys()
            .cloned()
            .chain(self.takes.iter().map(|(p, _)| p.clone()))
            .collect()
    }

    /// Take what waits for one project: its job states and takes.
    pub(super) fn take_project(&mut self, project_id: &str) -> (Vec<Job>, Vec<Take>) {
        let jobs: Vec<Job> = self
            .jobs
            .remove(project_id)
            .map(|p| p.into_values().collect())
            .unwrap_or_default();
        let mut takes = Vec::new();
        self.takes.retain(|(p, take)| {
            if p == project_id {
                takes.push(take.clone());
                false
            } else {
                true
            }
        });
        if self.jobs.is_empty() && self.takes.is_empty() {
            self.since = None;
        }
        (jobs, takes)
    }
}

impl Runner {
    pub(super) fn queue_write(&mut self, project_id: &str, job: Job) {
        if let Some(project) = self.index.get_mut(project_id) {
            project.put(job.clone());
        }
        self.writes.job(project_id, job, Instant::now());
    }

    /// How long job states wait to be written together. Every change costs each
    /// node of the mesh the same to apply whatever it holds, so when the mesh is
    /// busy (its gossip arrives late) a node writes less often and more at once:
    /// as long as its own intent window, at least [`FLUSH_AFTER`].
    pub(super) fn write_delay(&self) -> Duration {
        self.delay.window().clamp(FLUSH_AFTER, FLUSH_MAX)
    }

    /// Write pending job states and takes: one edit per project.
    pub(super) async fn flush(&mut self) -> Result<(), NodeError> {
        for project_id in self.writes.projects() {
            let (jobs, mine) = self.writes.take_project(&project_id);
            let count = jobs.len();
            let result = self
                .handle
                .edit(Some(project_id.clone()), move |doc| {
                    doc.in_one_change(|doc| -> Result<(), EditError> {
                        Ok(write_batch(doc, &jobs, &mine)?)
                    })
                    .map_err(|e| e.to_string())
                })
                .await;
            match result {
                Ok(_) => debug!(project = %project_id, jobs = count, "job states written"),
                Err(NodeError::Stopped) => return Err(NodeError::Stopped),
                Err(e) => {
                    warn!(project = %project_id, "writing {count} job states failed: {e}");
                    // Read the truth again.
                    self.dirty.insert(project_id);
                }
            }
        }
        Ok(())
    }
}

/// Write a batch of job states and takes (call it inside
/// [`ProjectDoc::in_one_change`](reelmesh_protocol::document::ProjectDoc::in_one_change):
/// one change for all). A job whose stored state has moved on where this one may
/// not follow (another node ended it meanwhile) is left out, with a warning,
/// instead of failing the batch.
pub(super) fn write_batch(
    doc: &mut reelmesh_protocol::document::ProjectDoc,
    jobs: &[Job],
    takes: &[Take],
) -> Result<(), String> {
    for take in takes {
        doc.add_take(take).map_err(|e| e.to_string())?;
    }
    let mut valid = Vec::with_capacity(jobs.len());
    let mut chained = Vec::new();
    for job in jobs {
        match doc.job(&job.job_id) {
            Ok(stored) if stored.state == job.state || stored.state.can_become(job.state) => {
                // A success that is new here starts its chain, in the same change.
                if job.state == JobState::Succeeded
                    && stored.state != JobState::Succeeded
                    && !stored.then.is_empty()
                    && let Some(next) = takes
                        .iter()
                        .find(|t| t.job_id == job.job_id)
                        .cloned()
                        .or_else(|| {
                            doc.takes_for_shot(&job.shot_id)
                                .ok()?
                                .into_iter()
                                .find(|t| t.job_id == job.job_id)
                        })
                        .and_then(|take| stored.next_in_chain(&take, now_ms()))
                {
                    chained.push(next);
                }
                valid.push(job.clone());
            }
            Ok(stored) => warn!(
                job = %job.job_id,
                "not writing {}: the job is {} already",
                job.state, stored.state
            ),
            Err(e) => warn!(job = %job.job_id, "not writing it: {e}"),
        }
    }
    if valid.is_empty() {
        return Ok(());
    }
    if !chained.is_empty() {
        doc.add_jobs(&chained).map_err(|e| e.to_string())?;
    }
    doc.update_jobs(&valid).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_state_replaces_the_older_and_each_project_is_taken_whole() {
        let mut writes = Writes::default();
        let t0 = Instant::now();
        assert!(!writes.due(Duration::ZERO, t0));
        let mut job = Job::new("s", "card", 1, "n", 1);
        writes.job("p1", job.clone(), t0);
        job.state = JobState::Claimed;
        writes.job("p1", job.clone(), t0 + Duration::from_millis(5));
        let other = Job::new("s2", "card", 2, "n", 2);
        writes.job("p2", other.clone(), t0 + Duration::from_millis(7));
        assert!(writes.has_job("p1", &job.job_id) && !writes.has_job("p1", &other.job_id));
        assert_eq!(writes.since(), Some(t0), "the oldest counts");
        assert!(!writes.due(Duration::from_millis(20), t0 + Duration::from_millis(10)));
        assert!(writes.due(Duration::from_millis(20), t0 + Duration::from_millis(20)));
        assert_eq!(
            writes.projects().into_iter().collect::<Vec<_>>(),
            ["p1", "p2"]
        );
        let (jobs, takes) = writes.take_project("p1");
        assert_eq!(jobs.len(), 1, "one state per job");
        assert_eq!(jobs[0].state, JobState::Claimed, "the newer one");
        assert!(takes.is_empty());
        assert!(writes.since().is_some(), "p2 still waits");
        let (jobs, _) = writes.take_project("p2");
        assert_eq!(jobs, [other]);
        assert_eq!(writes.since(), None, "nothing waits");
    }
}
