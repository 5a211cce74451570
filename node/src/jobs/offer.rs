//! This node's standing offer to run jobs (see `placement::Offer`): what it can run,
//! how busy it is and for how long, how many more jobs it wants, and when a changed
//! offer goes out on gossip (at once when it opens or closes slots or announces
//! claims; within [`super::OFFER_COALESCE`] when only what it holds moved).

pub(super) mod publisher;

#[allow(clippy::wildcard_imports)]
use super::*;
use publisher::Decision;

impl Runner {
    /// How long a job of `workflow` with `work` should run here: the work × this
    /// node's time per unit for the workflow, else its mean run time (`None` before
    /// its first run).
    pub(super) fn estimate(&self, workflow: &str, work: f64) -> Option<Duration> {
        self.speed.estimate(workflow, work)
    }

    /// Each node's even share of the queued jobs (every project's), in time: how
    /// long the mesh would take to run them all with every node that can run a
    /// workflow busy on it, by the speeds the offers announce (a node whose speed
    /// is not known yet counts as fast as this one).
    pub(super) fn even_share(&self) -> Duration {
        let overhead = self.speed.overhead().as_secs_f64() * 1000.0;
        let mean = self.speed.mean_run().unwrap_or_default().as_secs_f64() * 1000.0;
        let mut total_ms = 0.0_f64;
        for project in self.index.values() {
            for (workflow, (count, work)) in &project.queued_work {
                let mine = self.speed.rate(workflow);
                let mut nodes = 0_u32;
                // Units of work per ms, all capable nodes together.
                let mut capacity = 0.0_f64;
                for offer in self
                    .offers
                    .iter()
                    .filter(|o| o.paused.is_none() && o.workflows.iter().any(|w| w == workflow))
                {
                    nodes += 1;
                    let rate = if offer.node_id == self.node_id {
                        mine
                    } else {
                        offer
                            .rates
                            .iter()
                            .find(|(w, _)| w == workflow)
                            .map(|(_, us)| *us as f64 / 1000.0)
                            .or(mine)
                    };
                    if let Some(rate) = rate.filter(|r| *r > 0.0) {
                        capacity += 1.0 / rate;
                    }
                }
                let nodes = f64::from(nodes.max(1));
                let jobs = *count as f64;
                total_ms += if capacity > 0.0 && *work > 0.0 {
                    work / capacity
                } else {
                    jobs * mean / nodes
                } + jobs * overhead / nodes;
            }
        }
        Duration::from_secs_f64((total_ms / 1000.0).clamp(0.0, 1e9))
    }

    /// How long the jobs this node holds (running, claimed, announced) keep its GPU
    /// busy, by [`estimate`](Self::estimate); `None` while nothing is known.
    pub(super) fn busy(&self) -> Option<Duration> {
        let mut total: Option<Duration> = None;
        let mut add = |d: Duration| total = Some(total.unwrap_or_default() + d);
        if let Some(running) = &self.running
            && let Some(e) = self.estimate(&running.held.workflow, running.held.work)
        {
            add(e.saturating_sub(running.started.elapsed()));
        }
        for held in &self.held {
            if let Some(e) = self.estimate(&held.workflow, held.work) {
                add(e);
            }
        }
        for intent in &self.intents {
            let job = self
                .index
                .get(&intent.project_id)
                .and_then(|p| p.jobs.get(&intent.job_id));
            if let Some(e) = job.and_then(|j| self.estimate(&j.workflow, j.work)) {
                add(e);
            }
        }
        total
    }

    /// How far ahead this node claims (see [`LOOKAHEAD`]).
    pub(super) fn horizon(&self) -> Duration {
        (self.claim_time() * 2).max(LOOKAHEAD)
    }

    /// How long a claim takes from look to hold: intent window, offer settle, the
    /// write.
    pub(super) fn claim_time(&self) -> Duration {
        self.delay.window() + OFFER_SETTLE + self.claim_write
    }

    /// How many jobs this node wants to hold now: the running one plus those it
    /// expects to start within its [`horizon`](Self::horizon), from its mean run
    /// time; at most [`MAX_LOCAL_QUEUE`].
    pub(super) fn wanted(&self) -> u32 {
        if self.health.paused().is_some() || self.capabilities.borrow().runnable.is_empty() {
            return 0;
        }
        let mut want = 1_u32;
        let horizon = self.horizon();
        if let Some(mean) = self.speed.mean_run() {
            // No more than an even share of what is left: near the end of a queue
            // the work held here is work that other nodes, freed sooner, cannot
            // take (and once the share is under one job, none is held ahead).
            // It still holds what a claim takes to arrive, so its GPU does not wait
            // on claims (jobs of no length: the claim is all their cost).
            let share = self.even_share().max(self.claim_time() * 2);
            let ahead = horizon.min(share).as_secs_f64() / mean.as_secs_f64().max(1e-4);
            let ahead = ahead.floor().min(f64::from(MAX_LOCAL_QUEUE));
            // In 0..=MAX_LOCAL_QUEUE: whole jobs.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            {
                want += ahead as u32;
            }
            // A long job near its end: claim the next one now.
            if let Some(running) = &self.running
                && running.started.elapsed() + horizon
                    >= self
                        .estimate(&running.held.workflow, running.held.work)
                        .unwrap_or(mean)
            {
                want = want.max(2);
            }
        } else if self.running.is_some() {
            // The first run: its length is not known yet, so the next job is
            // claimed while it runs (the GPU would wait on a claim otherwise).
            want = 2;
        }
        want.min(MAX_LOCAL_QUEUE)
    }

    /// How many more jobs this node takes now. A node that holds some takes more
    /// only once half its want is free, so short jobs are claimed in batches (one
    /// change for many) rather than one at a time as each ends; the offer says 0
    /// meanwhile, so no other node leaves jobs for it.
    pub(super) fn free_slots(&self) -> u32 {
        let wanted = self.wanted();
        let holding = self.holding();
        let free = wanted.saturating_sub(holding);
        if holding > 0 && free < wanted.div_ceil(2) {
            0
        } else {
            free
        }
    }

    /// Jobs held, running or announced.
    pub(super) fn holding(&self) -> u32 {
        u32::try_from(self.held.len() + self.intents.len()).unwrap_or(u32::MAX)
            + u32::from(self.running.is_some())
    }

    /// This node's offer as it stands now (sequence and send time left to
    /// `publish_offer`).
    fn current_offer(&self) -> Offer {
        let caps = self.capabilities.borrow().clone();
        let declared = self.executor.declared();
        let utilization = declared.as_ref().map_or_else(
            || {
                self.gpu
                    .borrow()
                    .gpu
                    .as_ref()
                    .and_then(|g| g.utilization)
                    .unwrap_or(100)
            },
            |d| d.utilization,
        );
        let holding = self.holding();
        // After a run lost ComfyUI, its workflows wait for a fresh look at it.
        let suspect = self
            .health
            .renderer_suspect(Instant::now())
            .map(|why| format!("its last run lost ComfyUI ({why}); looking at it again"));
        let renderer_down = caps
            .problem
            .as_ref()
            .map(|problem| match caps.down_since_ms {
                Some(since) => format!("{problem}, since {}", clock_time(since)),
                None => problem.clone(),
            })
            .or(suspect.clone());
        let workflows: Vec<String> = if suspect.is_some() {
            caps.runnable
                .iter()
                .filter(|w| {
                    self.catalog
                        .get(w)
                        .is_none_or(|wf| wf.engine != crate::workflows::Engine::ComfyUi)
                })
                .cloned()
                .collect()
        } else {
            caps.runnable.clone()
        };
        Offer {
            node_id: self.node_id.clone(),
            host: self.host.clone(),
            seq: self.publisher.seq(),
            workflows,
            utilization,
            queue_len: holding,
            slots: self.free_slots(),
            paused: self.health.paused().map(|why| clip(why, 500)),
            holding: self
                .held
                .iter()
                .map(|h| (h.job_id.clone(), h.attempt))
                .chain(
                    self.running
                        .iter()
                        .map(|r| (r.held.job_id.clone(), r.held.attempt)),
                )
                .collect(),
            unavailable: declared
                .map_or_else(|| caps.unavailable(), |d| d.unavailable)
                .into_iter()
                .map(|(w, why)| (w, clip(&why, 1500)))
                .collect(),
            mean_run_ms: self
                .speed
                .mean_run()
                .map(|m| u64::try_from(m.as_millis()).unwrap_or(u64::MAX)),
            intents: self
                .intents
                .iter()
                .map(|i| (i.job_id.clone(), i.attempt))
                .collect(),
            sent_ms: 0,
            busy_ms: self
                .busy()
                .map(|b| u64::try_from(b.as_millis()).unwrap_or(u64::MAX)),
            rates: self.speed.announced_rates(&caps.runnable),
            overhead_ms: u64::try_from(self.speed.overhead().as_millis()).unwrap_or(u64::MAX),
            renderer_down: renderer_down.map(|d| clip(&d, 1000)),
        }
    }

    /// Publish this node's offer when [`publisher::Publisher::decide`] says so.
    /// Returns whether it changed.
    pub(super) async fn publish_offer(&mut self) -> Result<bool, NodeError> {
        let mut offer = self.current_offer();
        let Decision::Send { changed, opened } = self.publisher.decide(&offer, Instant::now())
        else {
            return Ok(false);
        };
        if opened && !self.alone && self.claim_not_before.is_none() {
            self.claim_not_before = Some(Instant::now() + OFFER_SETTLE);
        }
        self.publisher.stamp(&mut offer, now_ms());
        self.handle
            .publish_jobs(JobsGossip::Offer(offer.clone()))
            .await?;
        self.publisher.sent(offer, Instant::now());
        Ok(changed)
    }
}
