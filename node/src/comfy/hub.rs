//! The one websocket of a client, owned by a task, shared by the client's runs.
//!
//! Why one socket: ComfyUI keys sockets by `clientId` and keeps only the newest per
//! id; when an older socket with the same id closes later, the server's clean-up
//! removes the newer one too, which then silently gets nothing. One long-lived
//! socket per client avoids that race entirely.
//!
//! Runs subscribe with their prompt id (before posting the prompt, so nothing can be
//! missed) and get a bounded channel of [`HubEvent`]s: the messages about their
//! prompt, the preview images (metadata frames name their prompt; legacy frames go to
//! the prompt running for this client), and news of the connection itself. When the
//! socket drops while runs are subscribed, the hub reopens it with the same client id
//! (exponential backoff, at most [`ComfyLimits::max_reconnect_attempts`] tries) and
//! tells the runs, which then ask the queue and history where their prompt is. When
//! no run is subscribed, a dropped socket is reopened by the next run. The task ends
//! when the client and all its runs are gone.
//!
//! Delivery: progress and previews are dropped when a run's channel is full; the
//! messages that decide a run's outcome are waited for.

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::error::ComfyError;
use super::messages::{BinaryFrame, ServerMessage, parse_binary, parse_text};
use super::{ComfyLimits, ImageFormat};

/// The first message on every connection: ask for previews with metadata (so that
/// each preview names its prompt).
const FEATURE_FLAGS: &str = r#"{"type":"feature_flags","data":{"supports_preview_metadata":true}}"#;
/// After the registration `status`, how long to wait for the server's feature flags
/// (an older server never sends them).
const FLAGS_WAIT: Duration = Duration::from_millis(500);
/// Capacity of a run's event channel.
const RUN_CHANNEL: usize = 256;
/// Capacity of the hub's command channel.
const COMMANDS: usize = 64;
/// First reconnect delay; doubled per failed attempt up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a run hears from the hub.
#[derive(Debug)]
pub(crate) enum HubEvent {
    /// A message about the run's prompt.
    Message(ServerMessage),
    /// A preview image of the run's prompt.
    Preview { format: ImageFormat, bytes: Vec<u8> },
    /// The socket dropped; the hub is reopening it.
    Disconnected { reason: String },
    /// The socket is open again: messages may have been missed meanwhile.
    Reconnected,
    /// The socket could not be reopened; the run cannot be followed.
    GaveUp { reason: String },
}

enum Command {
    Subscribe {
        prompt_id: String,
        events: mpsc::Sender<HubEvent>,
        /// Answered once the socket is open (or could not be opened).
        connected: oneshot::Sender<Result<(), ComfyError>>,
    },
    /// The server chose another prompt id than ours (an older ComfyUI).
    Rename {
        from: String,
        to: String,
    },
    Unsubscribe {
        prompt_id: String,
    },
}

/// Where the hub connects, and its bounds.
#[derive(Debug, Clone)]
pub(crate) struct HubConfig {
    pub ws_url: String,
    pub base_url: String,
    pub limits: ComfyLimits,
}

/// A handle on the hub task.
#[derive(Debug, Clone)]
pub(crate) struct HubHandle {
    commands: mpsc::Sender<Command>,
}

/// A run's subscription; dropping it unsubscribes.
pub(crate) struct Subscription {
    pub events: mpsc::Receiver<HubEvent>,
    prompt_id: String,
    commands: mpsc::Sender<Command>,
}

impl HubHandle {
    /// Start the hub task (on the current tokio runtime).
    pub(crate) fn spawn(config: HubConfig) -> HubHandle {
        let (commands, receiver) = mpsc::channel(COMMANDS);
        let hub = Hub {
            config,
            subscribers: HashMap::new(),
            socket: None,
            current_prompt: None,
            reconnect: None,
        };
        tokio::spawn(hub.run(receiver));
        HubHandle { commands }
    }

    /// The task is still there (it ends with its runtime).
    pub(crate) fn is_alive(&self) -> bool {
        !self.commands.is_closed()
    }

    /// Subscribe to `prompt_id`; the receiver answers once the socket is open.
    pub(crate) async fn subscribe(
        &self,
        prompt_id: &str,
        base_url: &str,
    ) -> Result<(Subscription, oneshot::Receiver<Result<(), ComfyError>>), ComfyError> {
        let (events_tx, events) = mpsc::channel(RUN_CHANNEL);
        let (connected_tx, connected) = oneshot::channel();
        self.commands
            .send(Command::Subscribe {
                prompt_id: prompt_id.to_owned(),
                events: events_tx,
                connected: connected_tx,
            })
            .await
            .map_err(|_| hub_gone(base_url))?;
        Ok((
            Subscription {
                events,
                prompt_id: prompt_id.to_owned(),
                commands: self.commands.clone(),
            },
            connected,
        ))
    }
}

/// The error for a hub task that is not there any more.
pub(crate) fn hub_gone(base_url: &str) -> ComfyError {
    ComfyError::Unreachable {
        url: base_url.to_owned(),
        reason: "the websocket task stopped".into(),
    }
}

impl Subscription {
    /// Follow another prompt id from now on.
    pub(crate) async fn rename(&mut self, to: &str) {
        let command = Command::Rename {
            from: std::mem::replace(&mut self.prompt_id, to.to_owned()),
            to: to.to_owned(),
        };
        // A hub that is gone shows as a closed event channel.
        let _ = self.commands.send(command).await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // When the command channel is full the hub notices the closed event channel
        // at the next message for this prompt instead.
        let _ = self.commands.try_send(Command::Unsubscribe {
            prompt_id: std::mem::take(&mut self.prompt_id),
        });
    }
}

struct Reconnect {
    /// Failed attempts so far.
    attempts: u32,
    at: Instant,
}

struct Hub {
    config: HubConfig,
    subscribers: HashMap<String, mpsc::Sender<HubEvent>>,
    socket: Option<Socket>,
    /// The prompt executing for this client, for legacy preview frames.
    current_prompt: Option<String>,
    /// A reopening is due (the socket dropped while runs were subscribed).
    reconnect: Option<Reconnect>,
}

impl Hub {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let reconnect_at = self.reconnect.as_ref().map(|plan| plan.at);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
                frame = next_frame(&mut self.socket) => self.on_frame(frame).await,
                () = sleep_until_some(reconnect_at) => self.reconnect_now().await,
            }
        }
        if let Some(mut socket) = self.socket.take() {
            let _ = timeout(Duration::from_secs(1), socket.close(None)).await;
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Subscribe {
                prompt_id,
                events,
                connected,
            } => {
                self.subscribers.insert(prompt_id.clone(), events);
                let result = if self.socket.is_some() {
                    Ok(())
                } else {
                    self.open(Some(&prompt_id)).await
                };
                if result.is_err() {
                    self.subscribers.remove(&prompt_id);
                }
                let _ = connected.send(result);
            }
            Command::Rename { from, to } => {
                if let Some(events) = self.subscribers.remove(&from) {
                    self.subscribers.insert(to, events);
                }
            }
            Command::Unsubscribe { prompt_id } => {
                self.subscribers.remove(&prompt_id);
                if self.subscribers.is_empty() {
                    self.reconnect = None;
                }
            }
        }
    }

    /// Open the socket; on success after a drop, tell the subscribers (but `fresh`,
    /// which has not posted its prompt yet).
    async fn open(&mut self, fresh: Option<&str>) -> Result<(), ComfyError> {
        let (socket, early) = self.connect().await?;
        self.socket = Some(socket);
        if self.reconnect.take().is_some() {
            let ids: Vec<String> = self
                .subscribers
                .keys()
                .filter(|id| Some(id.as_str()) != fresh)
                .cloned()
                .collect();
            for prompt_id in ids {
                self.deliver(&prompt_id, HubEvent::Reconnected, false).await;
            }
        }
        for message in early {
            self.on_frame(Some(Ok(message))).await;
        }
        Ok(())
    }

    async fn reconnect_now(&mut self) {
        if self.subscribers.is_empty() {
            self.reconnect = None;
            return;
        }
        let err = match self.open(None).await {
            Ok(()) => {
                tracing::debug!("comfyui websocket {} reopened", self.config.ws_url);
                return;
            }
            Err(err) => err,
        };
        let max_attempts = self.config.limits.max_reconnect_attempts;
        let Some(plan) = self.reconnect.as_mut() else {
            return;
        };
        plan.attempts += 1;
        if plan.attempts < max_attempts {
            plan.at = Instant::now() + backoff(plan.attempts);
            return;
        }
        let reason = format!(
            "websocket lost and {} attempts to reopen it failed, the last: {}",
            plan.attempts,
            short_reason(&err)
        );
        self.reconnect = None;
        let ids: Vec<String> = self.subscribers.keys().cloned().collect();
        for prompt_id in ids {
            let event = HubEvent::GaveUp {
                reason: reason.clone(),
            };
            self.deliver(&prompt_id, event, false).await;
        }
        self.subscribers.clear();
    }

    /// Connect, announce our feature flags and wait until the server has registered
    /// the socket (its first `status` names our sid) and answered the flags. The
    /// messages read meanwhile are returned to be routed.
    async fn connect(&self) -> Result<(Socket, Vec<Message>), ComfyError> {
        let limits = &self.config.limits;
        let unreachable = |reason: String| ComfyError::Unreachable {
            url: self.config.base_url.clone(),
            reason,
        };
        let request = self
            .config
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|err| ComfyError::BadInput {
                reason: format!("websocket address {}: {err}", self.config.ws_url),
            })?;
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(limits.max_ws_message_bytes))
            .max_frame_size(Some(limits.max_ws_message_bytes));
        let deadline = Instant::now() + limits.connect_timeout;
        let connecting =
            tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
        let mut socket = match timeout_at(deadline, connecting).await {
            Err(_) => {
                return Err(unreachable(format!(
                    "no websocket answer within {} s",
                    limits.connect_timeout.as_secs_f64()
                )));
            }
            Ok(Err(err)) => return Err(self.ws_error(err)),
            Ok(Ok((socket, _response))) => socket,
        };
        socket
            .send(Message::text(FEATURE_FLAGS))
            .await
            .map_err(|err| self.ws_error(err))?;

        let mut early = Vec::new();
        let mut registered = false;
        let mut flagged = false;
        let mut wait_until = deadline;
        while !(registered && flagged) {
            let message = match timeout_at(wait_until, socket.next()).await {
                // No registration status in time: go on, the runs' checks cover it.
                Err(_) => break,
                Ok(None) => return Err(unreachable("websocket closed while opening".into())),
                Ok(Some(Err(err))) => return Err(self.ws_error(err)),
                Ok(Some(Ok(message))) => message,
            };
            if let Message::Text(text) = &message {
                match parse_text(text) {
                    Ok(ServerMessage::Status { sid: Some(_) }) => {
                        registered = true;
                        wait_until = wait_until.min(Instant::now() + FLAGS_WAIT);
                    }
                    Ok(ServerMessage::FeatureFlags) => flagged = true,
                    _ => {}
                }
            }
            early.push(message);
        }
        Ok((socket, early))
    }

    fn ws_error(&self, err: tungstenite::Error) -> ComfyError {
        match err {
            tungstenite::Error::Http(response) => ComfyError::Http {
                url: self.config.ws_url.clone(),
                status: response.status().as_u16(),
                body: super::error::error_body(response.body().as_deref().unwrap_or_default()),
            },
            tungstenite::Error::Io(err) => ComfyError::Unreachable {
                url: self.config.base_url.clone(),
                reason: super::http::root_cause(&err),
            },
            other => ComfyError::Unreachable {
                url: self.config.base_url.clone(),
                reason: format!(
                    "websocket: {}",
                    super::error::lowercase_first(&other.to_string())
                ),
            },
        }
    }

    async fn on_frame(&mut self, frame: Option<Result<Message, tungstenite::Error>>) {
        match frame {
            Some(Ok(Message::Text(text))) => self.route_text(&text).await,
            Some(Ok(Message::Binary(bytes))) => self.route_binary(&bytes).await,
            Some(Ok(Message::Close(_))) | None => self.dropped("closed by the server".into()).await,
            Some(Ok(_)) => {}
            Some(Err(err)) => self.dropped(err.to_string()).await,
        }
    }

    async fn dropped(&mut self, reason: String) {
        self.socket = None;
        self.current_prompt = None;
        if self.subscribers.is_empty() {
            tracing::debug!("comfyui websocket {} closed: {reason}", self.config.ws_url);
            return;
        }
        tracing::info!(
            "comfyui websocket {} dropped ({reason}); reopening it",
            self.config.ws_url
        );
        self.reconnect = Some(Reconnect {
            attempts: 0,
            at: Instant::now() + backoff(0),
        });
        let ids: Vec<String> = self.subscribers.keys().cloned().collect();
        for prompt_id in ids {
            let event = HubEvent::Disconnected {
                reason: reason.clone(),
            };
            self.deliver(&prompt_id, event, true).await;
        }
    }

    async fn route_text(&mut self, text: &str) {
        let message = match parse_text(text) {
            Ok(message) => message,
            Err(why) => {
                tracing::debug!("comfyui websocket {}: {why}", self.config.ws_url);
                return;
            }
        };
        match &message {
            ServerMessage::ExecutionStart { prompt_id }
            | ServerMessage::Executing {
                prompt_id: Some(prompt_id),
                node: Some(_),
            } => self.current_prompt = Some(prompt_id.clone()),
            ServerMessage::Executing {
                prompt_id: Some(prompt_id),
                node: None,
            } if self.current_prompt.as_ref() == Some(prompt_id) => self.current_prompt = None,
            _ => {}
        }
        let Some(prompt_id) = message.prompt_id().map(str::to_owned) else {
            return;
        };
        let droppable = matches!(message, ServerMessage::Progress { .. });
        self.deliver(&prompt_id, HubEvent::Message(message), droppable)
            .await;
    }

    async fn route_binary(&mut self, frame: &[u8]) {
        match parse_binary(frame) {
            Ok(BinaryFrame::Preview {
                format,
                prompt_id,
                bytes,
            }) => {
                let Some(prompt_id) = prompt_id.or_else(|| self.current_prompt.clone()) else {
                    return;
                };
                self.deliver(&prompt_id, HubEvent::Preview { format, bytes }, true)
                    .await;
            }
            Ok(BinaryFrame::Other { .. }) => {}
            Err(why) => tracing::debug!("comfyui websocket {}: {why}", self.config.ws_url),
        }
    }

    /// Hand an event to a run; a run that has gone away is unsubscribed.
    async fn deliver(&mut self, prompt_id: &str, event: HubEvent, droppable: bool) {
        let Some(events) = self.subscribers.get(prompt_id) else {
            return;
        };
        let delivered = if droppable {
            !matches!(
                events.try_send(event),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        } else {
            events.send(event).await.is_ok()
        };
        if !delivered {
            self.subscribers.remove(prompt_id);
        }
    }
}

async fn next_frame(socket: &mut Option<Socket>) -> Option<Result<Message, tungstenite::Error>> {
    match socket {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn backoff(attempts: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(2_u32.saturating_pow(attempts))
        .min(BACKOFF_MAX)
}

/// An error's reason without the address (the caller's error names it).
fn short_reason(err: &ComfyError) -> String {
    match err {
        ComfyError::Unreachable { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(0), Duration::from_millis(50));
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(10), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
