//! The running slot: starting the next held job, its progress on gossip, and its
//! end (outputs stored as takes, what the files really are, the job's history).

#[allow(clippy::wildcard_imports)]
use super::*;

impl Runner {
    /// Start the first held job whose claim still names us.
    pub(super) async fn start_next(&mut self) {
        if self.running.is_some() || self.stopping {
            return;
        }
        // No other node says (on gossip) that it holds the job too: a
        // concurrent claim (an intent that arrived after its window) waits until the merge tells one of us to drop it.
        // Nor while another node said on gossip that it runs or ran the same attempt
        // (its claim raced ours and it started first): its result reaches the
        // document after its offer stops naming the job, and running it here
        // meanwhile would run it twice. Past the lease with no result, it runs.
        let me = &self.node_id;
        let contested = |held: &Held| {
            self.offers.iter().any(|o| {
                o.node_id != *me
                    && o.holding
                        .iter()
                        .chain(&o.intents)
                        .any(|(h, _)| *h == held.job_id)
            }) || self
                .run_elsewhere
                .get(&(held.job_id.clone(), held.attempt))
                .is_some_and(|at| at.elapsed() < self.leases.lease())
        };
        let now = Instant::now();
        let Some(pos) = self
            .held
            .iter()
            .position(|h| h.runnable_at <= now && !contested(h))
        else {
            return;
        };
        let candidate = &self.held[pos];
        let Some(job) = self
            .index
            .get(&candidate.project_id)
            .and_then(|p| p.jobs.get(&candidate.job_id))
            .cloned()
        else {
            self.held.remove(pos);
            return;
        };
        if job.claimant != self.node_id || !is_held(job.state) || job.cancel_requested {
            info!(job = %job.job_id, "our claim did not hold (another node's won, or a cancel); not running it");
            self.held.remove(pos);
            return;
        }
        // Another node held it too at some point: wait until its claim has merged
        // here (both names in the claimant register, or its name alone), unless it
        // has gone quiet. The merge, not timing, then says who runs it. And when the
        // merge shows another node already ended it, adopt that end instead.
        let id = job.job_id.clone();
        let registers = self
            .handle
            .read_mut(Some(candidate.project_id.clone()), move |doc| {
                Ok::<_, String>((
                    doc.job_field_values(&id, "claimant")
                        .map_err(|e| e.to_string())?,
                    doc.job_field_values(&id, "state")
                        .map_err(|e| e.to_string())?,
                    doc.takes_for_job(&id).map_err(|e| e.to_string())?,
                ))
            })
            .await;
        let Ok((_, Ok((named, states, takes)))) = registers else {
            return;
        };
        if let Some(take) = takes.first() {
            info!(job = %job.job_id, node = %take.node_id, "another node already rendered this job (concurrent claims); not running it again");
            let mut done = job.clone();
            done.state = JobState::Succeeded;
            done.claimant.clone_from(&take.node_id);
            done.take_id.clone_from(&take.take_id);
            done.finished_at_ms = take.finished_at_ms;
            let project_id = candidate.project_id.clone();
            self.held.remove(pos);
            self.queue_write(&project_id, done);
            return;
        }
        if states
            .iter()
            .any(|s| s.parse::<JobState>().is_ok_and(|state| !state.is_active()))
        {
            info!(job = %job.job_id, ?states, "another node ended this job meanwhile; not running it");
            self.held.remove(pos);
            return;
        }
        if let Some(rivals) = self.rivals.get(&(job.job_id.clone(), job.attempts)) {
            let live: Vec<String> = rivals
                .nodes
                .iter()
                .filter(|r| self.offers.iter().any(|o| &o.node_id == *r))
                .cloned()
                .collect();
            if !named.contains(&self.node_id) {
                info!(job = %job.job_id, "our claim lost the merge; not running it");
                self.held.remove(pos);
                return;
            }
            if live.iter().any(|r| !named.contains(r)) {
                debug!(job = %job.job_id, rivals = ?live, "a rival's claim has not merged yet; waiting");
                return;
            }
        }
        self.launch(pos, &job);
    }

    /// Run the held job at `pos` (its claim checked): mark it running, hand it to
    /// the executor, and tell it.
    fn launch(&mut self, pos: usize, job: &Job) {
        let held = self.held.remove(pos);
        let mut running_job = job.clone();
        running_job.state = JobState::Running;
        self.queue_write(&held.project_id, running_job.clone());
        let cancel = self.handle.cancel_token().child_token();
        let ctx = RunContext {
            project_id: held.project_id.clone(),
            job: running_job.clone(),
            shot_code: held.shot_code.clone(),
            handle: self.handle.clone(),
            steps: self.steps_tx.clone(),
            cancel: cancel.clone(),
        };
        info!(job = %job.job_id, shot = %held.shot_code, workflow = %job.workflow, attempt = job.attempts, node = %placement::short_id(&self.node_id), "job running");
        let executor = Arc::clone(&self.executor);
        let done = self.done_tx.clone();
        let job_id = job.job_id.clone();
        tokio::spawn(async move {
            let outcome = executor.run(ctx).await;
            let _ = done.send(Done { job_id, outcome }).await;
        });
        self.speed.next_started(Instant::now());
        self.running = Some(Running {
            held,
            job: running_job,
            started: Instant::now(),
            cancel,
            lost: false,
            // The run goes on gossip once it has lasted PROGRESS_EVERY (see
            // `announce_run`), or with its first preview; this node hears at once.
            last_gossip: Some(Instant::now()),
            fraction: 0.0,
            announced: false,
        });
        self.handle.emit(NodeEvent::Job(self.update(
            JobState::Running,
            0.0,
            "starting",
        )));
    }

    /// While a job runs, fetch the input blobs of the jobs held after it from the
    /// peers that have them, so the GPU does not wait on them next (a run fetches
    /// what is still missing itself; the node fetches one blob once at a time).
    pub(super) fn prefetch_inputs(&mut self) {
        if self.running.is_none() {
            return;
        }
        for held in &self.held {
            if self.prefetched.contains(&held.job_id) {
                continue;
            }
            let Some(job) = self
                .index
                .get(&held.project_id)
                .and_then(|p| p.jobs.get(&held.job_id))
            else {
                continue;
            };
            self.prefetched.insert(held.job_id.clone());
            for (role, reference) in &job.inputs {
                let Ok(hash) = reference.parse::<crate::store::blobs::BlobHash>() else {
                    continue;
                };
                if self.handle.has_blob(&hash) {
                    continue;
                }
                let handle = self.handle.clone();
                let (job_id, role) = (job.job_id.clone(), role.clone());
                tokio::spawn(async move {
                    match handle.fetch_blob(hash).await {
                        Ok(_) => debug!(job = %job_id, %role, "input fetched ahead of its run"),
                        Err(e) => {
                            debug!(job = %job_id, %role, "fetching an input ahead failed (its run tries again): {e}");
                        }
                    }
                });
            }
        }
        if self.prefetched.len() > 4 * MAX_LOCAL_QUEUE as usize {
            let held: HashSet<&str> = self.held.iter().map(|h| h.job_id.as_str()).collect();
            self.prefetched.retain(|id| held.contains(id.as_str()));
        }
    }

    /// Tell the other nodes (gossip) that the running job runs, once it has run for
    /// [`PROGRESS_EVERY`] without a step saying so: most of a mesh's messages would
    /// otherwise be the starts of short jobs whose ends follow at once.
    pub(super) async fn announce_run(&mut self) {
        let Some(running) = &self.running else {
            return;
        };
        if running.announced || running.started.elapsed() < PROGRESS_EVERY {
            return;
        }
        let fraction = running.fraction;
        self.report(JobState::Running, fraction, "running", None, None)
            .await;
    }

    pub(super) async fn on_step(&mut self, step: Step) {
        let Some(running) = &mut self.running else {
            return;
        };
        running.fraction = step.fraction;
        let gossip = running
            .last_gossip
            .is_none_or(|at| at.elapsed() >= PROGRESS_EVERY)
            || step.preview.is_some();
        let update = JobUpdate {
            preview: step.preview,
            ..self.update(JobState::Running, step.fraction, &step.step)
        };
        self.handle.emit(NodeEvent::Job(update.clone()));
        if gossip {
            if let Some(running) = &mut self.running {
                running.last_gossip = Some(Instant::now());
                running.announced = true;
            }
            let _ = self.handle.publish_jobs(JobsGossip::Progress(update)).await;
        }
    }

    pub(super) fn update(&self, state: JobState, fraction: f32, step: &str) -> JobUpdate {
        let Some(running) = &self.running else {
            return JobUpdate::default();
        };
        JobUpdate {
            node_id: self.node_id.clone(),
            project_id: running.held.project_id.clone(),
            job_id: running.held.job_id.clone(),
            shot_code: running.held.shot_code.clone(),
            workflow: running.job.workflow.clone(),
            state,
            fraction,
            step: step.to_owned(),
            attempt: running.job.attempts,
            ..JobUpdate::default()
        }
    }

    /// Tell this node and every other one (gossip) where the running job is.
    pub(super) async fn report(
        &mut self,
        state: JobState,
        fraction: f32,
        step: &str,
        error: Option<String>,
        take: Option<(String, Overhead)>,
    ) {
        let update = self.update(state, fraction, step);
        if let Some(running) = &mut self.running {
            running.last_gossip = Some(Instant::now());
            running.announced = true;
        }
        self.send_update(update, error, take).await;
    }

    /// Tell this node and every other one (gossip) about a job: `update` names it.
    pub(super) async fn send_update(
        &mut self,
        mut update: JobUpdate,
        error: Option<String>,
        take: Option<(String, Overhead)>,
    ) {
        update.error = error;
        if let Some((take_id, overhead)) = take {
            update.take_id = Some(take_id);
            update.overhead = Some(overhead);
        }
        self.handle.emit(NodeEvent::Job(update.clone()));
        let _ = self.handle.publish_jobs(JobsGossip::Progress(update)).await;
    }

    /// A run ended: store its outputs and queue the job's new state for writing.
    pub(super) async fn finish(&mut self, done: Done) {
        let Some(running) = &self.running else {
            return;
        };
        if running.held.job_id != done.job_id {
            return;
        }
        let output_at = Instant::now();
        let started = running.started;
        let elapsed = started.elapsed();
        let lost = running.lost;
        let project_id = running.held.project_id.clone();
        let mut job = running.job.clone();
        let current = self
            .index
            .get(&project_id)
            .and_then(|p| p.jobs.get(&job.job_id))
            .cloned();
        let still_ours = current.as_ref().is_some_and(|j| j.claimant == self.node_id);
        if lost || !still_ours {
            self.running = None;
            self.keep_a_lost_run(&project_id, job, current, &done.outcome)
                .await;
            return;
        }
        if let Some(current) = current {
            // Keep fields others wrote meanwhile (a cancel request).
            job.cancel_requested = current.cancel_requested;
            job.failures = current.failures;
            job.ruled_out = current.ruled_out;
            job.history = current.history;
        }
        // Which job the reports below speak of (the next one may be running by then).
        let finished = self.update(JobState::Running, 1.0, "");
        match done.outcome {
            Ok(run) => {
                // The renderer's own time (the runner may see the end late under
                // load, which is not the GPU's time).
                let took = Duration::from_millis(run.render_ms).min(elapsed);
                // A job already waits here: the time until it starts is overhead.
                self.speed.ran(
                    &job.workflow,
                    job.work,
                    took,
                    started,
                    !self.held.is_empty(),
                );
                // The GPU goes on with the next held job while this one's output is
                // stored (a blob write and fsync per output).
                self.running = None;
                self.start_next().await;
                self.health.succeeded();
                self.record_success(&project_id, job, &run, output_at, finished)
                    .await;
            }
            // Stopped by the node's own stop, not by anyone's cancel: it goes back
            // to the queue with the others (`give_back_on_stop`).
            Err(failure) if failure.canceled && self.stopping && !job.cancel_requested => return,
            Err(failure) if failure.canceled || job.cancel_requested => {
                job.record_attempt(self.attempt(&job, "canceled", None, String::new()));
                job.state = JobState::Canceled;
                job.finished_at_ms = now_ms();
                self.queue_write(&project_id, job);
                warn!(job = %done.job_id, "job canceled");
                self.report(
                    JobState::Canceled,
                    1.0,
                    "canceled",
                    Some("canceled".into()),
                    None,
                )
                .await;
            }
            Err(failure) => {
                if failure.rejected {
                    // ComfyUI refused the graph: its nodes or models may have changed.
                    self.refresh.notify_one();
                }
                // Nothing runs any more: a pause that begins in `fail` is shown
                // with no current job (status "error", not "busy").
                self.running = None;
                self.fail(&project_id, job, &failure, finished).await;
            }
        }
        if self
            .running
            .as_ref()
            .is_some_and(|r| r.held.job_id == done.job_id)
        {
            self.running = None;
        }
        // Write the result now when nothing else is running soon.
        if self.held.is_empty() {
            let _ = timed("writing results after a run", self.flush()).await;
        }
    }

    /// A run ended well: its outputs become takes and the job succeeded (or, if
    /// storing them fails, the run failed: see `fail`).
    async fn record_success(
        &mut self,
        project_id: &str,
        mut job: Job,
        run: &Run,
        output_at: Instant,
        finished: JobUpdate,
    ) {
        let takes = match timed("storing outputs", self.store_outputs(&job, run)).await {
            Ok(takes) => takes,
            Err(why) => return self.fail(project_id, job, &why, finished).await,
        };
        job.record_attempt(self.attempt(&job, "succeeded", None, String::new()));
        // The job's error is its last attempt's: none now.
        job.error.clear();
        job.state = JobState::Succeeded;
        job.take_id = takes.first().map(|t| t.take_id.clone()).unwrap_or_default();
        job.finished_at_ms = now_ms();
        let first = job.take_id.clone();
        for take in takes {
            self.writes.take(project_id, take, Instant::now());
        }
        self.queue_write(project_id, job.clone());
        let overhead = Overhead {
            submit_to_first_event_ms: run.submit_to_first_event.as_secs_f64() * 1000.0,
            output_to_take_ms: output_at.elapsed().as_secs_f64() * 1000.0,
        };
        info!(job = %job.job_id, render_ms = run.render_ms, "job succeeded");
        let step = if run.cached {
            "done (cached by comfyui)"
        } else {
            "done"
        };
        let mut update = finished;
        update.state = JobState::Succeeded;
        step.clone_into(&mut update.step);
        self.send_update(update, None, Some((first, overhead)))
            .await;
    }

    /// Another node's claim won the merge while this run went on. If the run had
    /// finished before the stop reached it, the work is done and the take is real:
    /// record it, and the job as ours and succeeded unless it ended meanwhile, so
    /// the winner of the merge (which waits while our progress says we ran it) does
    /// not run it again. Otherwise record nothing.
    async fn keep_a_lost_run(
        &mut self,
        project_id: &str,
        job: Job,
        current: Option<Job>,
        outcome: &Result<Run, RunFailure>,
    ) {
        let open = current.as_ref().is_some_and(|j| is_held(j.state));
        let (Ok(run), true) = (outcome, open) else {
            warn!(job = %job.job_id, "another node's claim won the merge while we ran; our result is not recorded");
            return;
        };
        match self.store_outputs(&job, run).await {
            Ok(takes) => {
                warn!(job = %job.job_id, "another node's claim won the merge, but our run had finished: its take is kept and the job recorded as ours");
                let mut ended = current.unwrap_or(job);
                ended.state = JobState::Succeeded;
                ended.claimant.clone_from(&self.node_id);
                ended.take_id = takes.first().map(|t| t.take_id.clone()).unwrap_or_default();
                ended.finished_at_ms = now_ms();
                for take in takes {
                    self.writes.take(project_id, take, Instant::now());
                }
                self.queue_write(project_id, ended);
            }
            Err(e) => {
                warn!(job = %job.job_id, "another node's claim won the merge; storing our finished run failed: {}", e.message);
            }
        }
    }

    pub(super) async fn store_outputs(
        &self,
        job: &Job,
        run: &Run,
    ) -> Result<Vec<Take>, RunFailure> {
        let mut takes = Vec::new();
        for (index, produced) in run.outputs.iter().enumerate() {
            let blobs = self.blobs.clone();
            let bytes = produced.bytes.clone();
            // Stored first (a video is probed from its stored file), then read for
            // what it really is.
            let (blob, probed) = tokio::task::spawn_blocking(move || {
                let blob = blobs.put(&bytes)?;
                let probed = crate::media::probe(&bytes, Some(&blobs.path(&blob.hash)));
                Ok::<_, crate::store::StoreError>((blob, probed))
            })
            .await
            .map_err(|e| RunFailure::transient(format!("storing the output: {e}")))?
            // The render is done; the disk refused it (full?): not the job's fault.
            .map_err(|e| RunFailure::transient(format!("storing the output: {e}")))?;
            let what = format!(
                "output {} ({}, {} bytes)",
                index + 1,
                produced.extension,
                blob.size
            );
            let info = media_of(produced, probed, &what)?;
            takes.push(Take {
                take_id: reelmesh_protocol::model::new_record_id(),
                shot_id: job.shot_id.clone(),
                job_id: job.job_id.clone(),
                blob: blob.hash.to_hex(),
                media: match produced.media {
                    // A file that moves is an animation whatever its name says, and
                    // one that does not (an encoder merged identical frames) a still.
                    TakeMedia::Image if info.frames > 1 => TakeMedia::AnimatedImage,
                    TakeMedia::AnimatedImage if info.frames <= 1 && info.duration_ms == 0 => {
                        TakeMedia::Image
                    }
                    media => media,
                },
                extension: produced.extension.clone(),
                size: blob.size,
                width: info.width,
                height: info.height,
                frames: info.frames,
                fps: info.fps,
                duration_ms: info.duration_ms,
                workflow: job.workflow.clone(),
                seed: job.seed,
                prompt: job.prompt.clone(),
                node_id: self.node_id.clone(),
                host: self.host.clone(),
                started_at_ms: job.started_at_ms,
                finished_at_ms: now_ms(),
                render_ms: run.render_ms,
                cached: run.cached,
            });
        }
        Ok(takes)
    }

    /// This node's run of `job`, ended now.
    pub(super) fn attempt(
        &self,
        job: &Job,
        outcome: &str,
        fault: Option<Fault>,
        error: String,
    ) -> Attempt {
        Attempt {
            node_id: self.node_id.clone(),
            host: self.host.clone(),
            attempt: job.attempts,
            started_at_ms: job.started_at_ms,
            ended_at_ms: now_ms(),
            outcome: outcome.to_owned(),
            fault,
            error,
        }
    }
}

/// What an output file really is, from the probe of its bytes (or, for a video,
/// of its stored file with ffprobe). A file cut short or malformed is not a take:
/// the run failed (counting an attempt; another node may write it whole). A file
/// the probe cannot tell about (no ffprobe, a codec it lacks, a format that is not
/// an image or a video) is kept with what the renderer said of it, and a warning.
pub(super) fn media_of(
    produced: &Produced,
    probed: Result<crate::media::MediaInfo, crate::media::MediaError>,
    what: &str,
) -> Result<crate::media::MediaInfo, RunFailure> {
    use crate::media::MediaError;
    match probed {
        Ok(info) => Ok(info),
        Err(
            e @ (MediaError::Empty | MediaError::Truncated { .. } | MediaError::Invalid { .. }),
        ) => Err(RunFailure::new(format!(
            "the renderer wrote a broken file: {what}: {e}"
        ))),
        Err(e) => {
            warn!("{what}: recorded with what the renderer said of it: {e}");
            Ok(crate::media::MediaInfo {
                width: produced.width,
                height: produced.height,
                frames: produced.frames,
                fps: produced.fps,
                duration_ms: produced.duration_ms,
            })
        }
    }
}
