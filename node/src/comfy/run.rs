//! [`ComfyClient::run`]: queue a graph, follow it, collect its files.
//!
//! The stages, each bounded by the run's one deadline ([`RunRequest::timeout`]):
//! `connection` (the shared websocket), `queue` (posted, not started), `execution`,
//! `history` (polling `/history/{id}`, which is `{}` until written) and `outputs`
//! (the `/view` downloads). A timeout names the stage it hit.
//!
//! While following, the run listens to three things: its cancel token, its hub
//! subscription and a timer. The timer is the deadline, the cancel grace, or a
//! silence check: after `ComfyLimits::silence_check` without a word about the prompt,
//! the run asks ComfyUI where the prompt is (`GET /queue`, then `/history/{id}`), as
//! it does after a reconnect. Queue first: ComfyUI takes a prompt off the queue and
//! writes its history in one step, so a prompt absent from the queue is either in the
//! history or gone.
//!
//! Cancel: a pending prompt is deleted from the queue (and if it started in the
//! meantime, interrupted); a running one is interrupted and the run waits, at most
//! `ComfyLimits::cancel_grace`, for ComfyUI to stop it, so that the GPU is free
//! when the caller hears [`ComfyError::Canceled`].

use std::collections::HashSet;
use std::sync::PoisonError;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

use super::error::ComfyError;
use super::history::{HistoryEntry, Outcome};
use super::hub::{HubConfig, HubEvent, HubHandle, Subscription, hub_gone};
use super::messages::ServerMessage;
use super::{ComfyClient, Inner, MediaKind, Output, OutputFile, RunEvent, RunRequest, RunResult};

/// First pause between two `/history/{id}` polls; doubled up to [`HISTORY_POLL_MAX`].
const HISTORY_POLL_START: Duration = Duration::from_millis(20);
const HISTORY_POLL_MAX: Duration = Duration::from_millis(500);
/// A finished prompt's history is written within milliseconds; after this long
/// without it, the queue is asked whether ComfyUI still knows the prompt at all.
const HISTORY_GRACE: Duration = Duration::from_secs(5);
/// How long the clean-up after a timeout may take.
const ABANDON_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connection,
    Queue,
    Execution,
    History,
    Outputs,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Connection => "connection",
            Stage::Queue => "queue",
            Stage::Execution => "execution",
            Stage::History => "history",
            Stage::Outputs => "outputs",
        }
    }
}

/// Where ComfyUI has a prompt.
enum Location {
    Pending,
    Running,
    Finished(Box<HistoryEntry>),
    Gone,
}

impl Inner {
    /// The hub, started on first use (and again if its runtime went away).
    fn hub(&self) -> HubHandle {
        let mut slot = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(hub) = slot.as_ref().filter(|hub| hub.is_alive()) {
            return hub.clone();
        }
        let hub = HubHandle::spawn(HubConfig {
            ws_url: self.ws_url.clone(),
            base_url: self.base_url.clone(),
            limits: self.limits.clone(),
        });
        *slot = Some(hub.clone());
        hub
    }

    /// Queue first, then history (see the module docs for why in this order).
    async fn locate(&self, prompt_id: &str) -> Result<Location, ComfyError> {
        let queue = self.queue().await?;
        if queue.running.iter().any(|id| id == prompt_id) {
            return Ok(Location::Running);
        }
        if queue.pending.iter().any(|id| id == prompt_id) {
            return Ok(Location::Pending);
        }
        Ok(match self.history(prompt_id).await? {
            Some(entry) => Location::Finished(Box::new(entry)),
            None => Location::Gone,
        })
    }

    /// Take a prompt off the queue or interrupt it, best effort and quickly (a run
    /// that timed out should not keep the GPU busy for nobody).
    async fn abandon(&self, prompt_id: &str) {
        let stop = async {
            if let Err(err) = self.delete_queued(prompt_id).await {
                tracing::debug!("abandoning prompt {prompt_id}: {err}");
            }
            if let Err(err) = self.interrupt(prompt_id).await {
                tracing::debug!("abandoning prompt {prompt_id}: {err}");
            }
        };
        if timeout(ABANDON_TIMEOUT, stop).await.is_err() {
            tracing::debug!("abandoning prompt {prompt_id}: comfyui did not answer in time");
        }
    }

    pub(crate) async fn delete_queued(&self, prompt_id: &str) -> Result<(), ComfyError> {
        self.post_empty("/queue", &json!({ "delete": [prompt_id] }))
            .await
    }

    pub(crate) async fn interrupt(&self, prompt_id: &str) -> Result<(), ComfyError> {
        self.post_empty("/interrupt", &json!({ "prompt_id": prompt_id }))
            .await
    }
}

impl ComfyClient {
    /// Render `request.prompt`: open (or reuse) the websocket, post the prompt with
    /// this client's id and a fresh prompt id, follow it, then fetch the output
    /// files. Progress goes to `events` with `try_send` (a full channel drops events,
    /// it never slows the run). See the module docs for the protocol.
    ///
    /// # Errors
    /// - [`ComfyError::Unreachable`]: ComfyUI cannot be reached, or its websocket
    ///   could not be reopened;
    /// - [`ComfyError::Rejected`]: validation failed (the nodes and inputs named);
    /// - [`ComfyError::Execution`]: a node raised while running;
    /// - [`ComfyError::Interrupted`]: someone else interrupted the prompt;
    /// - [`ComfyError::Canceled`]: `cancel` fired (the prompt was deleted from the
    ///   queue or interrupted);
    /// - [`ComfyError::Timeout`]: the run took longer than `request.timeout`;
    /// - [`ComfyError::Lost`]: ComfyUI restarted and forgot the prompt;
    /// - [`ComfyError::NoOutput`]: it finished without files for the wanted nodes;
    /// - [`ComfyError::Http`], [`ComfyError::Protocol`]: unexpected answers;
    /// - [`ComfyError::BadInput`]: the graph is not a JSON object.
    pub async fn run(
        &self,
        request: RunRequest,
        events: &mpsc::Sender<RunEvent>,
        cancel: &CancellationToken,
    ) -> Result<RunResult, ComfyError> {
        let inner = &*self.inner;
        let deadline = Instant::now() + request.timeout;
        let timed_out = |stage: Stage| timeout_error(request.timeout, stage);
        if !request.prompt.is_object() {
            return Err(ComfyError::BadInput {
                reason: "the workflow graph is not a json object of nodes".into(),
            });
        }
        if cancel.is_cancelled() {
            return Err(ComfyError::Canceled);
        }
        let (prompt_id, mut subscription, submitted_at) =
            self.submit(&request, events, cancel, deadline).await?;

        // 1 and 2 were the subscription and the prompt (`submit`); 3. follow it.
        let mut follower = Follower {
            inner,
            prompt_id: &prompt_id,
            events,
            deadline,
            started: false,
            first_event_at: None,
            cached_nodes: HashSet::new(),
            canceling: None,
            last_heard: Instant::now(),
        };
        let ending = match follower.follow(&mut subscription, cancel).await {
            Ok(ending) => ending,
            Err(Failure::Error(err)) => return Err(err),
            Err(Failure::TimedOut(stage)) => {
                inner.abandon(&prompt_id).await;
                return Err(timed_out(stage));
            }
        };
        drop(subscription);
        let finished_at = Instant::now();

        // 4. The history entry and the files.
        let entry = match ending {
            Some(entry) => *entry,
            None => match timeout_at(deadline, await_history(inner, &prompt_id)).await {
                Ok(entry) => entry?,
                Err(_) => return Err(timed_out(Stage::History)),
            },
        };
        succeeded(entry.outcome)?;
        let files = wanted_files(entry.files, &request.output_nodes);
        if files.is_empty() {
            return Err(ComfyError::NoOutput { prompt_id });
        }
        let cached = files.iter().all(|file| {
            follower.cached_nodes.contains(&file.node_id)
                || entry.cached_nodes.contains(&file.node_id)
        });
        let first_event_at = follower.first_event_at;
        let mut outputs = Vec::with_capacity(files.len());
        for file in files {
            let bytes = match timeout_at(deadline, inner.view(&file)).await {
                Ok(bytes) => bytes?,
                Err(_) => return Err(timed_out(Stage::Outputs)),
            };
            let media = MediaKind::of(&file.filename, file.animated);
            outputs.push(Output { file, bytes, media });
        }
        Ok(RunResult {
            prompt_id,
            outputs,
            cached,
            submitted_at: submitted_at.into_std(),
            first_event_at: first_event_at.map(Instant::into_std),
            finished_at: finished_at.into_std(),
        })
    }

    /// Stages 1 and 2 of a run: the websocket subscription, before the prompt
    /// exists, then the prompt posted; returns the prompt id ComfyUI uses, the
    /// subscription following it and when the prompt was posted.
    async fn submit(
        &self,
        request: &RunRequest,
        events: &mpsc::Sender<RunEvent>,
        cancel: &CancellationToken,
        deadline: Instant,
    ) -> Result<(String, Subscription, Instant), ComfyError> {
        let inner = &*self.inner;
        let mut prompt_id = uuid::Uuid::new_v4().to_string();
        let (mut subscription, connected) =
            inner.hub().subscribe(&prompt_id, &inner.base_url).await?;
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(ComfyError::Canceled),
            () = sleep_until(deadline) => {
                return Err(timeout_error(request.timeout, Stage::Connection));
            }
            connected = connected => connected.map_err(|_| hub_gone(&inner.base_url))??,
        }
        let body = json!({
            "prompt": request.prompt,
            "client_id": inner.client_id,
            "prompt_id": prompt_id,
        });
        let submitted_at = Instant::now();
        let queued = match timeout_at(deadline, inner.post_prompt(&body)).await {
            Ok(queued) => queued?,
            Err(_) => {
                inner.abandon(&prompt_id).await;
                return Err(timeout_error(request.timeout, Stage::Queue));
            }
        };
        if queued.prompt_id != prompt_id {
            // An older ComfyUI that makes its own ids.
            subscription.rename(&queued.prompt_id).await;
            prompt_id.clone_from(&queued.prompt_id);
        }
        if !queued.node_errors.is_empty() {
            tracing::warn!(
                "comfyui at {} runs prompt {prompt_id} without the outputs of nodes {} (they \
                 failed validation)",
                inner.base_url,
                queued.node_errors.join(", ")
            );
        }
        let _ = events.try_send(RunEvent::Queued {
            prompt_id: prompt_id.clone(),
            number: queued.number,
        });
        Ok((prompt_id, subscription, submitted_at))
    }
}

/// The error of a run that passed its deadline of `after` in `stage`.
fn timeout_error(after: Duration, stage: Stage) -> ComfyError {
    ComfyError::Timeout {
        after,
        stage: stage.name().to_owned(),
    }
}

/// A finished prompt's outcome as a result: an error raised by a node, or an
/// interrupt, is the run's error.
fn succeeded(outcome: Outcome) -> Result<(), ComfyError> {
    match outcome {
        Outcome::Success => Ok(()),
        Outcome::Error {
            node_id,
            node_type,
            exception_type,
            message,
        } => Err(ComfyError::Execution {
            node_id,
            node_type,
            exception_type,
            message,
        }),
        Outcome::Interrupted { node_id } => Err(ComfyError::Interrupted { node_id }),
    }
}

/// The files of `output_nodes`, in that order (every file when none are named).
fn wanted_files(files: Vec<OutputFile>, output_nodes: &[String]) -> Vec<OutputFile> {
    if output_nodes.is_empty() {
        return files;
    }
    output_nodes
        .iter()
        .flat_map(|node| files.iter().filter(move |file| file.node_id == *node))
        .cloned()
        .collect()
}

/// Why following stopped short of a finished prompt.
enum Failure {
    Error(ComfyError),
    /// The deadline passed in this stage (the prompt is still in ComfyUI).
    TimedOut(Stage),
}

impl From<ComfyError> for Failure {
    fn from(err: ComfyError) -> Failure {
        Failure::Error(err)
    }
}

/// The state of one run while its prompt is queued or executing.
struct Follower<'a> {
    inner: &'a Inner,
    prompt_id: &'a str,
    events: &'a mpsc::Sender<RunEvent>,
    deadline: Instant,
    /// `execution_start` (or any sign of execution) was seen.
    started: bool,
    first_event_at: Option<Instant>,
    /// Nodes listed by `execution_cached`.
    cached_nodes: HashSet<String>,
    /// Canceling: ComfyUI was asked to stop the prompt; wait until then for it.
    canceling: Option<Instant>,
    /// The last word about the prompt (or the last check of where it is).
    last_heard: Instant,
}

impl Follower<'_> {
    /// Follow until the prompt is done: `Ok(None)` when the websocket said so (the
    /// history is still to be read), `Ok(Some(entry))` when a check found the entry.
    async fn follow(
        &mut self,
        subscription: &mut Subscription,
        cancel: &CancellationToken,
    ) -> Result<Option<Box<HistoryEntry>>, Failure> {
        loop {
            let mut wake = (self.last_heard + self.inner.limits.silence_check).min(self.deadline);
            if let Some(grace) = self.canceling {
                wake = wake.min(grace);
            }
            tokio::select! {
                biased;
                () = cancel.cancelled(), if self.canceling.is_none() => self.cancel().await?,
                event = subscription.events.recv() => {
                    let Some(event) = event else {
                        return Err(hub_gone(&self.inner.base_url).into());
                    };
                    if let Some(done) = self.on_event(event).await? {
                        return Ok(done);
                    }
                }
                () = sleep_until(wake) => {
                    let now = Instant::now();
                    if let Some(grace) = self.canceling
                        && now >= grace.min(self.deadline)
                    {
                        tracing::warn!(
                            "comfyui at {} did not confirm the interrupt of prompt {} in time",
                            self.inner.base_url,
                            self.prompt_id
                        );
                        return Err(ComfyError::Canceled.into());
                    }
                    if now >= self.deadline {
                        let stage = if self.started { Stage::Execution } else { Stage::Queue };
                        return Err(Failure::TimedOut(stage));
                    }
                    self.last_heard = now;
                    if let Some(done) = self.check().await? {
                        return Ok(Some(done));
                    }
                }
            }
        }
    }

    fn emit(&self, event: RunEvent) {
        let _ = self.events.try_send(event);
    }

    fn heard(&mut self) {
        let now = Instant::now();
        self.last_heard = now;
        self.first_event_at.get_or_insert(now);
    }

    fn mark_started(&mut self) {
        if !self.started {
            self.started = true;
            self.emit(RunEvent::Started);
        }
    }

    /// One event from the hub; `Some` when the prompt is done.
    async fn on_event(
        &mut self,
        event: HubEvent,
    ) -> Result<Option<Option<Box<HistoryEntry>>>, Failure> {
        let message = match event {
            HubEvent::Message(message) => message,
            HubEvent::Preview { format, bytes } => {
                self.heard();
                self.emit(RunEvent::Preview { format, bytes });
                return Ok(None);
            }
            HubEvent::Disconnected { reason } => {
                tracing::debug!("prompt {}: websocket dropped ({reason})", self.prompt_id);
                return Ok(None);
            }
            HubEvent::Reconnected => return Ok(self.check().await?.map(Some)),
            HubEvent::GaveUp { reason } => {
                return Err(ComfyError::Unreachable {
                    url: self.inner.base_url.clone(),
                    reason,
                }
                .into());
            }
        };
        self.heard();
        let canceling = self.canceling.is_some();
        match message {
            ServerMessage::ExecutionStart { .. } => self.mark_started(),
            ServerMessage::ExecutionCached { nodes, .. } => {
                self.mark_started();
                if !nodes.is_empty() {
                    self.cached_nodes.extend(nodes.iter().cloned());
                    self.emit(RunEvent::Cached { nodes });
                }
            }
            ServerMessage::Executing {
                node: Some(node), ..
            } => {
                self.mark_started();
                self.emit(RunEvent::Executing { node });
            }
            ServerMessage::Progress {
                node, value, max, ..
            } => {
                self.mark_started();
                self.emit(RunEvent::Progress {
                    node: node.unwrap_or_default(),
                    value,
                    max,
                });
            }
            ServerMessage::Executed { node, .. } => self.emit(RunEvent::Executed { node }),
            ServerMessage::Executing { node: None, .. }
            | ServerMessage::ExecutionSuccess { .. } => {
                if canceling {
                    return Err(ComfyError::Canceled.into());
                }
                return Ok(Some(None));
            }
            ServerMessage::ExecutionError {
                node_id,
                node_type,
                exception_type,
                exception_message,
                ..
            } => {
                if canceling {
                    return Err(ComfyError::Canceled.into());
                }
                return Err(ComfyError::Execution {
                    node_id,
                    node_type,
                    exception_type,
                    message: exception_message,
                }
                .into());
            }
            ServerMessage::ExecutionInterrupted { node_id, .. } => {
                if canceling {
                    return Err(ComfyError::Canceled.into());
                }
                return Err(ComfyError::Interrupted { node_id }.into());
            }
            ServerMessage::Status { .. } | ServerMessage::FeatureFlags | ServerMessage::Other => {}
        }
        Ok(None)
    }

    /// Ask ComfyUI where the prompt is: `Some` when it has finished.
    async fn check(&mut self) -> Result<Option<Box<HistoryEntry>>, Failure> {
        let location = match timeout_at(self.deadline, self.inner.locate(self.prompt_id)).await {
            Ok(Ok(location)) => location,
            Ok(Err(err)) => {
                // ComfyUI may be restarting; the hub decides when to give up on it.
                tracing::debug!("prompt {}: where is it? {err}", self.prompt_id);
                return Ok(None);
            }
            Err(_) => {
                let stage = if self.started {
                    Stage::Execution
                } else {
                    Stage::Queue
                };
                return Err(Failure::TimedOut(stage));
            }
        };
        match location {
            Location::Pending => Ok(None),
            Location::Running => {
                self.mark_started();
                Ok(None)
            }
            Location::Finished(_) | Location::Gone if self.canceling.is_some() => {
                Err(ComfyError::Canceled.into())
            }
            Location::Finished(entry) => Ok(Some(entry)),
            Location::Gone => Err(ComfyError::Lost {
                prompt_id: self.prompt_id.to_owned(),
            }
            .into()),
        }
    }

    /// The cancel token fired: delete the prompt if pending (done), interrupt it if
    /// running (then wait for ComfyUI to stop it).
    async fn cancel(&mut self) -> Result<(), Failure> {
        let inner = self.inner;
        let prompt_id = self.prompt_id;
        let stop = async {
            let queue = inner.queue().await?;
            let mut running = queue.running.iter().any(|id| id == prompt_id);
            if queue.pending.iter().any(|id| id == prompt_id) {
                inner.delete_queued(prompt_id).await?;
                // It may have started between the two requests.
                running = inner
                    .queue()
                    .await?
                    .running
                    .iter()
                    .any(|id| id == prompt_id);
            }
            if running {
                inner.interrupt(prompt_id).await?;
            }
            Ok::<bool, ComfyError>(running)
        };
        match timeout_at(self.deadline, stop).await {
            Ok(Ok(true)) => {
                self.canceling = Some(Instant::now() + inner.limits.cancel_grace);
                Ok(())
            }
            Ok(Ok(false)) => Err(ComfyError::Canceled.into()),
            Ok(Err(err)) => {
                tracing::warn!("could not stop prompt {prompt_id} on canceling: {err}");
                Err(ComfyError::Canceled.into())
            }
            Err(_) => Err(ComfyError::Canceled.into()),
        }
    }
}

/// Poll `/history/{id}` until the entry is there. A finished prompt's entry is
/// written within milliseconds; if it is still missing after [`HISTORY_GRACE`] and
/// the queue does not have the prompt either, ComfyUI forgot it.
async fn await_history(inner: &Inner, prompt_id: &str) -> Result<HistoryEntry, ComfyError> {
    let started = Instant::now();
    let mut pause = HISTORY_POLL_START;
    let mut asked_queue = false;
    loop {
        if let Some(entry) = inner.history(prompt_id).await? {
            return Ok(entry);
        }
        if !asked_queue && started.elapsed() >= HISTORY_GRACE {
            asked_queue = true;
            match inner.locate(prompt_id).await? {
                Location::Finished(entry) => return Ok(*entry),
                Location::Gone => {
                    return Err(ComfyError::Lost {
                        prompt_id: prompt_id.to_owned(),
                    });
                }
                Location::Pending | Location::Running => {}
            }
        }
        sleep(pause).await;
        pause = (pause * 2).min(HISTORY_POLL_MAX);
    }
}
