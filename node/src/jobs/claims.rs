//! Claims: which queued jobs placement gives this node, the intent window when
//! claims race (see [`super::intents`]), and the claims written as one change.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Runner {
    /// Remember which other nodes said they hold which jobs (every offer is seen,
    /// not only the latest: a rival may claim, run and drop a job between two looks).
    /// Every offer is also a delay sample, and may contest this node's intents.
    pub(super) fn note_rivals(&mut self, offer: &Offer) {
        if offer.node_id == self.node_id {
            return;
        }
        self.delay.note(&offer.node_id, offer.sent_ms, now_ms());
        let now = Instant::now();
        let mut raced = false;
        for intent in &mut self.intents {
            raced |= intents::names(offer, &intent.job_id, intent.attempt);
            if intent.lost_to.is_none()
                && intents::loses_to(&self.node_id, &intent.job_id, intent.attempt, offer)
            {
                intent.lost_to = Some(offer.node_id.clone());
            }
        }
        raced |= self
            .held
            .iter()
            .any(|h| intents::names(offer, &h.job_id, h.attempt));
        if raced {
            if self.contended_until.is_none_or(|until| until < now) {
                debug!(rival = %placement::short_id(&offer.node_id), "claims raced: waiting an intent window before each claim for a while");
            }
            self.contended_until = Some(now + CONTENTION_MEMORY);
        }
        for held in &offer.holding {
            self.rivals
                .entry(held.clone())
                .or_insert_with(|| Rivals {
                    seen: now,
                    nodes: BTreeSet::new(),
                })
                .nodes
                .insert(offer.node_id.clone());
        }
        if self.rivals.len() > 20_000 {
            self.rivals
                .retain(|_, r| r.seen.elapsed() < Duration::from_secs(60));
        }
    }

    /// Remember that another node runs (or ran) an attempt of a job.
    pub(super) fn note_run_elsewhere(&mut self, update: &JobUpdate) {
        if update.node_id == self.node_id
            || !matches!(update.state, JobState::Running | JobState::Succeeded)
        {
            return;
        }
        self.run_elsewhere
            .entry((update.job_id.clone(), update.attempt))
            .or_insert_with(Instant::now);
        if self.run_elsewhere.len() > 20_000 {
            let keep = self.leases.lease() * 2;
            self.run_elsewhere.retain(|_, at| at.elapsed() < keep);
        }
    }

    /// Announce the jobs the placement rule gives this node (its offer's
    /// `intents`); [`Runner::commit_intents`] writes them once their window closes.
    pub(super) async fn claim(&mut self) -> Result<(), NodeError> {
        let Some(mine) = self.offers.iter().find(|o| o.node_id == self.node_id) else {
            return Ok(());
        };
        if mine.slots == 0 || mine.paused.is_some() {
            return Ok(());
        }
        if let Some(not_before) = self.claim_not_before {
            if Instant::now() < not_before {
                return Ok(());
            }
            self.claim_not_before = None;
        }
        let limit = self.free_slots() as usize;
        if limit == 0 {
            return Ok(());
        }
        let me = self.node_id.clone();
        let writes = &self.writes;
        let announced: HashSet<&str> = self.intents.iter().map(|i| i.job_id.as_str()).collect();
        let now = Instant::now();
        let mut fresh = Vec::new();
        let mut handed_out = 0;
        for (project_id, project) in &self.index {
            let queued = project
                .queued
                .iter()
                .filter_map(|key| project.jobs.get(&key.3))
                .filter(|j| {
                    !j.cancel_requested
                        && !announced.contains(j.job_id.as_str())
                        && !writes.has_job(project_id, &j.job_id)
                });
            let assigned = placement::assign(queued, &self.offers);
            handed_out += assigned.len();
            for (job, node) in assigned {
                if node == me && fresh.len() < limit {
                    fresh.push(intents::Intent {
                        project_id: project_id.clone(),
                        job_id: job.job_id.clone(),
                        attempt: job.attempts + 1,
                        since: now,
                        lost_to: None,
                    });
                }
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        if handed_out > 1 {
            // Several jobs to several nodes at once: views of the offers that
            // differ a little give overlapping shares. Announce before writing.
            self.contended_until = Some(now + CONTENTION_MEMORY);
        }
        debug!(
            jobs = fresh.len(),
            window_ms = self.delay.window().as_millis(),
            "announcing claims"
        );
        // Offers that arrived before this look may already contest them.
        for intent in &mut fresh {
            intent.lost_to = self
                .offers
                .iter()
                .find(|o| intents::loses_to(&me, &intent.job_id, intent.attempt, o))
                .map(|o| o.node_id.clone());
        }
        self.intents.extend(fresh);
        // The offer changed (the intents, fewer slots): say so before anyone else
        // computes.
        self.publish_offer().await?;
        Ok(())
    }

    /// Write the claims whose window closed uncontested, in one edit per project;
    /// drop those another node's claim or better-ranked intent took, and those the
    /// document no longer has queued (claimed elsewhere, canceled).
    pub(super) async fn commit_intents(&mut self) -> Result<(), NodeError> {
        if self.intents.is_empty() {
            return Ok(());
        }
        let index = &self.index;
        let before = self.intents.len();
        self.intents.retain(|i| {
            if let Some(winner) = &i.lost_to {
                debug!(job = %i.job_id, attempt = i.attempt, winner = %placement::short_id(winner), "intent gave way");
                return false;
            }
            index
                .get(&i.project_id)
                .and_then(|p| p.jobs.get(&i.job_id))
                .is_some_and(|j| {
                    j.state == JobState::Queued && !j.cancel_requested && j.attempts + 1 == i.attempt
                })
        });
        let dropped = before != self.intents.len();
        let now = Instant::now();
        // Optimistic while no claim of this node raced lately: write at once and
        // let the window pass before the run instead (see `CONTENTION_MEMORY`).
        let careful = self.contended_until.is_some_and(|until| until > now);
        let window = if self.alone || !careful {
            Duration::ZERO
        } else {
            self.delay.window()
        };
        let settle = if self.alone || careful {
            Duration::ZERO
        } else {
            self.delay.window().max(CLAIM_SETTLE)
        };
        let (due, waiting): (Vec<intents::Intent>, Vec<intents::Intent>) =
            std::mem::take(&mut self.intents)
                .into_iter()
                .partition(|i| i.since + window <= now);
        self.intents = waiting;
        let mut by_project: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for intent in due {
            by_project
                .entry(intent.project_id)
                .or_default()
                .push(intent.job_id);
        }
        let committed = !by_project.is_empty();
        for (project_id, ids) in by_project {
            let node_id = self.node_id.clone();
            // Job states waiting to be written go in the same change.
            let (states, takes) = self.writes.take_project(&project_id);
            let (kept_states, kept_takes) = (states.clone(), takes.clone());
            let write_started = Instant::now();
            let claimed = self
                .handle
                .edit(Some(project_id.clone()), move |doc| {
                    doc.in_one_change(|doc| write_claims(doc, &states, &takes, &ids, &node_id))
                        .map_err(|e| e.to_string())
                })
                .await;
            self.claim_write = self
                .claim_write
                .mul_f64(0.7)
                .saturating_add(write_started.elapsed().mul_f64(0.3));
            let (jobs, codes) = match claimed {
                Ok((_, claimed)) => claimed,
                Err(NodeError::Stopped) => return Err(NodeError::Stopped),
                Err(e) => {
                    warn!(project = %project_id, "claiming failed: {e}");
                    // Read the truth again; the states that rode along wait for the
                    // next write.
                    self.dirty.insert(project_id.clone());
                    for job in kept_states {
                        self.queue_write(&project_id, job);
                    }
                    for take in kept_takes {
                        self.writes.take(&project_id, take, Instant::now());
                    }
                    continue;
                }
            };
            for (job, code) in jobs.into_iter().zip(codes) {
                debug!(job = %job.job_id, attempt = job.attempts, window_ms = window.as_millis(), "claimed");
                self.held.push(Held {
                    project_id: project_id.clone(),
                    job_id: job.job_id.clone(),
                    shot_code: code.clone(),
                    attempt: job.attempts,
                    runnable_at: now + settle,
                    workflow: job.workflow.clone(),
                    work: job.work,
                });
                if let Some(project) = self.index.get_mut(&project_id) {
                    project.codes.insert(job.shot_id.clone(), code);
                    project.put(job);
                }
            }
        }
        if committed || dropped {
            // Intents became claims (or went): the offer says so.
            self.publish_offer().await?;
        }
        Ok(())
    }
}

/// One change: the job states and takes waiting to be written, and the claims of
/// `ids` by `node_id` (those still queued and not canceled). Returns the claimed
/// jobs with their shots' codes.
fn write_claims(
    doc: &mut reelmesh_protocol::document::ProjectDoc,
    states: &[Job],
    takes: &[Take],
    ids: &[String],
    node_id: &str,
) -> Result<(Vec<Job>, Vec<String>), EditError> {
    write_batch(doc, states, takes)?;
    let mut claimed = Vec::new();
    for id in ids {
        let mut job = doc.job(id)?;
        if job.state != JobState::Queued || job.cancel_requested {
            continue;
        }
        job.state = JobState::Claimed;
        node_id.clone_into(&mut job.claimant);
        job.attempts += 1;
        job.started_at_ms = now_ms();
        claimed.push(job);
    }
    if claimed.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    doc.update_jobs(&claimed)?;
    let codes = claimed
        .iter()
        .map(|j| {
            doc.shot_code(&j.shot_id)
                .map(|c| c.to_string())
                .unwrap_or_default()
        })
        .collect();
    Ok((claimed, codes))
}

/// Other nodes seen on gossip holding one attempt of a job.
pub(super) struct Rivals {
    /// When the first offer naming it arrived.
    pub(super) seen: Instant,
    pub(super) nodes: BTreeSet<String>,
}
