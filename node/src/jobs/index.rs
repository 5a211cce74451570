//! The runner's index of every job of every project, read from the document's diffs
//! (a change costs what it touched, not the length of the queue), and what it says
//! about the job this node runs (canceled, lost to another claim).

#[allow(clippy::wildcard_imports)]
use super::*;

impl Runner {
    /// Read the jobs that changed in the projects that changed.
    pub(super) async fn refresh_index(&mut self) -> Result<(), NodeError> {
        if self.index.is_empty() && self.dirty.is_empty() {
            let status = self.handle.status().await?;
            self.dirty.extend(
                status
                    .projects
                    .iter()
                    .filter(|p| p.name.is_some())
                    .map(|p| p.project_id.clone()),
            );
        }
        let dirty: Vec<String> = self.dirty.drain().collect();
        for project_id in dirty {
            let read = self
                .handle
                .read_mut(Some(project_id.clone()), |doc| {
                    match doc.jobs_changed().map_err(|e| e.to_string())? {
                        Some(changed) => Ok((false, changed)),
                        None => doc.jobs().map(|all| (true, all)).map_err(|e| e.to_string()),
                    }
                })
                .await;
            let (full, jobs) = match read {
                Ok((_, Ok(read))) => read,
                Ok((_, Err(e))) => {
                    warn!(project = %project_id, "job runner: reading jobs failed: {e}");
                    continue;
                }
                // A replica still waiting for its first sync (or a project gone).
                Err(NodeError::Project(_)) => continue,
                Err(e) => return Err(e),
            };
            let ended: Vec<Job> = jobs.iter().filter_map(|j| self.unstartable(j)).collect();
            let entry = self.index.entry(project_id.clone()).or_default();
            if full {
                entry.clear();
            }
            for job in jobs {
                entry.put(job);
            }
            for job in ended {
                info!(job = %job.job_id, "job {} before it started", job.state);
                self.queue_write(&project_id, job);
            }
        }
        Ok(())
    }

    /// Stop the running job when it was canceled or another node's claim won, and
    /// drop held claims that were lost or canceled.
    pub(super) fn check_running(&mut self) {
        let index = &self.index;
        let me = &self.node_id;
        self.held.retain(|h| match index.get(&h.project_id) {
            None => true,
            Some(p) => p
                .jobs
                .get(&h.job_id)
                .is_some_and(|j| j.claimant == *me && is_held(j.state) && !j.cancel_requested),
        });
        let Some(running) = &mut self.running else {
            return;
        };
        let Some(job) = self
            .index
            .get(&running.held.project_id)
            .and_then(|p| p.jobs.get(&running.held.job_id))
        else {
            return;
        };
        if job.claimant != self.node_id && !running.lost {
            warn!(job = %job.job_id, winner = %job.claimant, "another node's claim won the merge; stopping our run, it records nothing");
            running.lost = true;
            running.cancel.cancel();
        } else if job.cancel_requested && !running.cancel.is_cancelled() {
            info!(job = %job.job_id, "cancel requested: stopping the run");
            running.cancel.cancel();
        }
    }

    /// A queued job that changed and can never run here: canceled by a user (any
    /// node may write it: the same write from several nodes is harmless), or, when
    /// this node queued it, naming a workflow this node does not know.
    pub(super) fn unstartable(&self, job: &Job) -> Option<Job> {
        if job.state != JobState::Queued {
            return None;
        }
        let mut ended = job.clone();
        if job.cancel_requested {
            ended.state = JobState::Canceled;
            ended.error = String::new();
        } else if job.created_by == self.node_id && self.catalog.get(&job.workflow).is_none() {
            ended.state = JobState::Failed;
            ended.error = format!(
                "unknown workflow '{}' (not in this node's catalog)",
                job.workflow
            );
        } else {
            return None;
        }
        ended.finished_at_ms = now_ms();
        Some(ended)
    }
}

/// The order key of a queued job: priority (higher first), age, work (larger
/// first), id: [`placement::job_order`].
pub(super) type OrderKey = (std::cmp::Reverse<i64>, u64, std::cmp::Reverse<u64>, String);

pub(super) fn order_key(job: &Job) -> OrderKey {
    // A finite, non-negative f64 (the document reads nothing else) orders like its
    // bits.
    (
        std::cmp::Reverse(job.priority),
        job.created_at_ms,
        std::cmp::Reverse(job.work.max(0.0).to_bits()),
        job.job_id.clone(),
    )
}

/// The jobs of one project as this node last read them.
#[derive(Default)]
pub(super) struct ProjectJobs {
    pub(super) jobs: HashMap<String, Job>,
    pub(super) queued: BTreeSet<OrderKey>,
    /// Claimed or running jobs (whose leases are watched).
    pub(super) held: BTreeSet<String>,
    pub(super) codes: HashMap<String, String>,
    /// The queued jobs by workflow: how many, and their work summed.
    pub(super) queued_work: HashMap<String, (usize, f64)>,
}

impl ProjectJobs {
    pub(super) fn put(&mut self, job: Job) {
        if let Some(old) = self.jobs.get(&job.job_id)
            && old.state == JobState::Queued
        {
            self.queued.remove(&order_key(old));
            if let Some((count, work)) = self.queued_work.get_mut(&old.workflow) {
                *count -= 1;
                *work = (*work - old.work).max(0.0);
                if *count == 0 {
                    self.queued_work.remove(&old.workflow);
                }
            }
        }
        if job.state == JobState::Queued {
            self.queued.insert(order_key(&job));
            let entry = self.queued_work.entry(job.workflow.clone()).or_default();
            entry.0 += 1;
            entry.1 += job.work;
        }
        if is_held(job.state) {
            self.held.insert(job.job_id.clone());
        } else {
            self.held.remove(&job.job_id);
        }
        self.jobs.insert(job.job_id.clone(), job);
    }

    pub(super) fn clear(&mut self) {
        self.jobs.clear();
        self.queued.clear();
        self.queued_work.clear();
        self.held.clear();
    }
}

/// A claim in force: the claimant holds the job, whether or not it runs yet. After
/// concurrent claims merge, the state may say `running` (the losing node's write)
/// while the claimant register names the winner, which has not started: both
/// states mean "the claimant's".
pub(super) fn is_held(state: JobState) -> bool {
    matches!(state, JobState::Claimed | JobState::Running)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, workflow: &str, priority: i64, created_at_ms: u64, work: f64) -> Job {
        let mut job = Job::new("shot", workflow, 1, "editor", created_at_ms);
        job.job_id = id.to_owned();
        job.priority = priority;
        job.work = work;
        job
    }

    fn queue_order(jobs: &ProjectJobs) -> Vec<&str> {
        jobs.queued.iter().map(|key| key.3.as_str()).collect()
    }

    #[test]
    fn the_queue_is_ordered_by_priority_then_age_then_larger_work_first() {
        let mut jobs = ProjectJobs::default();
        jobs.put(job("old-small", "flux", 0, 10, 1.0));
        jobs.put(job("old-large", "flux", 0, 10, 5.0));
        jobs.put(job("new", "flux", 0, 20, 9.0));
        jobs.put(job("urgent", "flux", 5, 30, 1.0));
        assert_eq!(
            queue_order(&jobs),
            ["urgent", "old-large", "old-small", "new"]
        );
    }

    #[test]
    fn a_job_moves_between_queued_and_held_and_the_queued_work_follows() {
        let mut jobs = ProjectJobs::default();
        jobs.put(job("a", "flux", 0, 10, 2.0));
        jobs.put(job("b", "flux", 0, 11, 3.0));
        jobs.put(job("c", "ltx", 0, 12, 7.0));
        assert_eq!(jobs.queued_work["flux"], (2, 5.0));

        let mut claimed = jobs.jobs["a"].clone();
        claimed.state = JobState::Claimed;
        claimed.claimant = "n".into();
        jobs.put(claimed.clone());
        assert_eq!(queue_order(&jobs), ["b", "c"]);
        assert!(jobs.held.contains("a"));
        assert_eq!(jobs.queued_work["flux"], (1, 3.0));

        // A merge that shows `running` for it keeps it held; its end frees it.
        claimed.state = JobState::Running;
        jobs.put(claimed.clone());
        assert!(jobs.held.contains("a"));
        claimed.state = JobState::Succeeded;
        jobs.put(claimed);
        assert!(jobs.held.is_empty());

        // The last queued job of a workflow takes its entry with it.
        let mut done = jobs.jobs["c"].clone();
        done.state = JobState::Canceled;
        jobs.put(done);
        assert!(!jobs.queued_work.contains_key("ltx"));

        // A queued job read again with other work replaces its key and total.
        let mut heavier = jobs.jobs["b"].clone();
        heavier.work = 10.0;
        jobs.put(heavier);
        assert_eq!(queue_order(&jobs), ["b"]);
        assert_eq!(jobs.queued_work["flux"], (1, 10.0));

        jobs.clear();
        assert!(jobs.jobs.is_empty() && jobs.queued.is_empty() && jobs.queued_work.is_empty());
    }
}
