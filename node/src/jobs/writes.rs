//! Batched writes: job states and takes wait at most [`super::FLUSH_AFTER`] (longer
//! while the mesh is busy) and go to the document as one change per project.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Runner {
    pub(super) fn queue_write(&mut self, project_id: &str, job: Job) {
        if let Some(project) = self.index.get_mut(project_id) {
            project.put(job.clone());
        }
        self.pending
            .entry(project_id.to_owned())
            .or_default()
            .insert(job.job_id.clone(), job);
        self.pending_since.get_or_insert_with(Instant::now);
    }

    /// How long job states wait to be written together. Every change costs each
    /// node of the mesh the same to apply whatever it holds, so when the mesh is
    /// busy (its gossip arrives late) a node writes less often and more at once:
    /// as long as its own intent window, at least [`FLUSH_AFTER`].
    pub(super) fn write_delay(&self) -> Duration {
        self.delay.window().clamp(FLUSH_AFTER, FLUSH_MAX)
    }

    /// Take the job states and takes waiting to be written to one project.
    pub(super) fn take_pending(&mut self, project_id: &str) -> (Vec<Job>, Vec<Take>) {
        let jobs: Vec<Job> = self
            .pending
            .remove(project_id)
            .map(|p| p.into_values().collect())
            .unwrap_or_default();
        let mut takes = Vec::new();
        self.pending_takes.retain(|(p, take)| {
            if p == project_id {
                takes.push(take.clone());
                false
            } else {
                true
            }
        });
        if self.pending.is_empty() && self.pending_takes.is_empty() {
            self.pending_since = None;
        }
        (jobs, takes)
    }

    /// Write pending job states and takes: one edit per project.
    pub(super) async fn flush(&mut self) -> Result<(), NodeError> {
        let projects: BTreeSet<String> = self
            .pending
            .keys()
            .cloned()
            .chain(self.pending_takes.iter().map(|(p, _)| p.clone()))
            .collect();
        for project_id in projects {
            let (jobs, mine) = self.take_pending(&project_id);
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
    for job in jobs {
        match doc.job(&job.job_id) {
            Ok(stored) if stored.state == job.state || stored.state.can_become(job.state) => {
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
    doc.update_jobs(&valid).map_err(|e| e.to_string())
}
