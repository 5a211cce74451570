//! The ComfyUI client: one node's way of rendering a shot through its local ComfyUI.
//!
//! A [`ComfyClient`] talks to one ComfyUI server (`http://127.0.0.1:8188`) over its
//! HTTP API and its websocket. [`ComfyClient::run`] takes an API-format graph, queues
//! it, follows it to the end and returns the output files' bytes; the other methods
//! are the small HTTP calls around it (catalog, queue, upload, interrupt, view).
//!
//! # How a run goes
//! 1. **Websocket first.** The client keeps one websocket per client,
//!    `ws://host/ws?clientId=<client_id>`, shared by every run of that client (a
//!    `hub` task owns it). It is opened before the prompt is posted, and the client
//!    waits for the server's first `status` message (sent once the server has
//!    registered the socket) and for its answer to our `feature_flags` message
//!    (`{"supports_preview_metadata": true}`), so no message of the run can go to a
//!    socket the server does not know yet.
//! 2. **POST /prompt** `{"prompt", "client_id", "prompt_id"}` with a prompt id we
//!    chose ourselves (a lowercase hyphenated UUID v4): the subscription for that id
//!    exists before the prompt does. 200 is `{prompt_id, number, node_errors}`; 400 is
//!    a validation error ([`ComfyError::Rejected`]); a malformed body gets a 500
//!    text/plain ([`ComfyError::Http`]).
//! 3. **Follow the websocket** for our prompt id only: `execution_start`,
//!    `execution_cached`, `executing`, `progress`, `executed`, `execution_success`,
//!    `execution_error`, `execution_interrupted`, and binary preview frames. The run
//!    is over at `executing` with `node: null` (or at `execution_success`).
//! 4. **GET /history/{id}** for the output files, then **GET /view** for each file.
//!
//! # Traps (observed on a real ComfyUI 0.33, see `shared/comfyui/README.md`)
//! - Without a `client_id` on the prompt, the socket gets no executing / executed /
//!   success messages at all, only `status` and `progress_state` broadcasts.
//! - Two sockets with the same `clientId` do not coexist: the server keeps the newest
//!   in its socket table and a later close of the old one removes the new one too.
//!   Hence one long-lived socket per client rather than one per run.
//! - `/history/{id}` answers 200 `{}` (never 404) until the entry is written, which
//!   happens after `execution_success` and before the final `executing` null: poll it
//!   with a short backoff.
//! - An `Origin` header that does not match `Host` exactly gets 403 on every route and
//!   on the websocket handshake. Neither reqwest nor tungstenite add one; we add none.
//! - An identical prompt is cached: `execution_cached` lists every node, no node runs,
//!   `executed` still arrives and history points at the earlier run's files. Output
//!   file names therefore repeat across prompts.
//! - Videos and animated WEBP are listed under `outputs[node].images` with
//!   `animated: [true]`.
//! - Binary frames are `u32be 1 | u32be format (1 JPEG, 2 PNG) | image`, or, once the
//!   client announced `supports_preview_metadata`,
//!   `u32be 4 | u32be json_len | json {prompt_id, node_id, image_type..} | image`.
//! - `/interrupt` acts between nodes only (and between sampler steps); a targeted
//!   interrupt of a prompt that is not running is a silent no-op. `POST /queue
//!   {"delete": [id]}` removes pending prompts only.
//!
//! # Failures
//! A dropped websocket is reopened with the same client id (bounded backoff and number
//! of attempts); after a reconnect, and whenever the socket has been silent for a
//! while, the run asks `GET /queue` then `/history/{id}` where its prompt is: still
//! queued or running → keep following; finished → collect; neither → ComfyUI was
//! restarted and lost it ([`ComfyError::Lost`]). The whole run is bounded by
//! [`RunRequest::timeout`]; on timeout the prompt is taken off ComfyUI's queue or
//! interrupted (best effort) so that it does not hold the GPU for nobody. Every body
//! read is bounded ([`ComfyLimits`]).

mod error;
mod history;
mod http;
mod hub;
mod messages;
mod run;
mod upload;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use error::{ComfyError, GraphNodeError};
use serde_json::Value;

/// Bounds and pacing of a [`ComfyClient`]; [`ComfyLimits::default`] suits a local
/// ComfyUI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComfyLimits {
    /// Largest websocket message accepted (preview images come this way).
    pub max_ws_message_bytes: usize,
    /// Largest JSON body read (`/object_info`, `/history/{id}`, `/queue`).
    pub max_json_bytes: usize,
    /// Largest output file fetched from `/view`.
    pub max_output_bytes: u64,
    /// Connecting (TCP and websocket handshake) may take this long.
    pub connect_timeout: Duration,
    /// One small API request (not `/view`, not `/upload/image`) may take this long.
    pub request_timeout: Duration,
    /// A `/view` or `/upload/image` transfer may stall this long between reads.
    pub read_timeout: Duration,
    /// How many times in a row a dropped websocket is reopened before the runs
    /// following it give up ([`ComfyError::Unreachable`]).
    pub max_reconnect_attempts: u32,
    /// After this long without a websocket message for a run, the run asks the queue
    /// and the history where its prompt is (the safety net for lost messages).
    pub silence_check: Duration,
    /// How long a canceled run waits for ComfyUI to confirm the interrupt.
    pub cancel_grace: Duration,
}

/// The largest `/view` file fetched by default: 2 GiB.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

impl Default for ComfyLimits {
    fn default() -> ComfyLimits {
        ComfyLimits {
            max_ws_message_bytes: 32 * 1024 * 1024,
            max_json_bytes: 64 * 1024 * 1024,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            max_reconnect_attempts: 20,
            silence_check: Duration::from_secs(10),
            cancel_grace: Duration::from_secs(30),
        }
    }
}

/// A client of one ComfyUI server. Cheap to clone (the state is shared); every clone
/// uses the same client id and the same websocket.
#[derive(Clone)]
pub struct ComfyClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// `http://host:port` (plus a path prefix if any), without a trailing slash.
    base_url: String,
    /// `ws://host:port/ws?clientId=..`.
    ws_url: String,
    /// Sent with every prompt and as the websocket's `clientId`.
    client_id: String,
    http: reqwest::Client,
    limits: ComfyLimits,
    /// The task that owns the websocket, started by the first run.
    hub: Mutex<Option<hub::HubHandle>>,
}

impl std::fmt::Debug for ComfyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComfyClient")
            .field("base_url", &self.inner.base_url)
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

/// What [`ComfyClient::run`] renders.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// The graph in ComfyUI's API format (`{"<node id>": {"class_type", "inputs"}}`).
    pub prompt: Value,
    /// The whole run, queue wait included.
    pub timeout: Duration,
    /// The output nodes whose files are wanted, in this order; empty: every output in
    /// the history entry.
    pub output_nodes: Vec<String>,
}

/// Progress of a run, sent with `try_send`: a full channel loses events, never
/// slows the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// ComfyUI accepted the prompt; `number` is its queue counter (bumped by every
    /// POST /prompt, rejected ones too).
    Queued {
        /// The prompt's id.
        prompt_id: String,
        /// ComfyUI's counter.
        number: u64,
    },
    /// The prompt left the queue and started executing.
    Started,
    /// These nodes are cached and will not run.
    Cached {
        /// Node ids.
        nodes: Vec<String>,
    },
    /// A node started.
    Executing {
        /// Node id.
        node: String,
    },
    /// A node's progress bar (sampler steps).
    Progress {
        /// Node id.
        node: String,
        /// Steps done.
        value: u64,
        /// Steps in all.
        max: u64,
    },
    /// A preview image (sampler previews, `SaveImageWebsocket`).
    Preview {
        /// The image's encoding.
        format: ImageFormat,
        /// The encoded image.
        bytes: Vec<u8>,
    },
    /// An output node finished and has UI output.
    Executed {
        /// Node id.
        node: String,
    },
}

/// Encoding of a preview image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
}

/// One file an output node wrote, as the history lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// The output node that wrote it.
    pub node_id: String,
    /// File name (names repeat across prompts: cached runs point at earlier files).
    pub filename: String,
    /// Subfolder of the output (or temp) directory, `""` for none.
    pub subfolder: String,
    /// `output` or `temp` (previews).
    pub kind: String,
    /// Listed with `animated: [true]` (videos, animated WEBP).
    pub animated: bool,
}

/// A fetched output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Where it came from.
    pub file: OutputFile,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// What it is, from the extension and the animated flag.
    pub media: MediaKind,
}

/// What an output file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// A still image.
    Image,
    /// A video container (mp4, webm, mov, mkv, ...).
    Video,
    /// An animated image (animated webp, gif, apng).
    AnimatedImage,
}

impl MediaKind {
    /// The kind of a file from its name and the history's `animated` flag: video
    /// extensions are [`MediaKind::Video`]; an animated file or a gif is
    /// [`MediaKind::AnimatedImage`]; anything else is [`MediaKind::Image`].
    #[must_use]
    pub fn of(filename: &str, animated: bool) -> MediaKind {
        let extension = filename
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default();
        match extension.as_str() {
            "mp4" | "webm" | "mov" | "mkv" | "avi" | "m4v" | "mpg" | "mpeg" => MediaKind::Video,
            "gif" => MediaKind::AnimatedImage,
            _ if animated => MediaKind::AnimatedImage,
            _ => MediaKind::Image,
        }
    }
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    /// The prompt's id.
    pub prompt_id: String,
    /// The output files, in the order of [`RunRequest::output_nodes`] (else by node).
    pub outputs: Vec<Output>,
    /// Every output node was cached: ComfyUI ran nothing and the files are an earlier
    /// run's.
    pub cached: bool,
    /// Just before POST /prompt.
    pub submitted_at: Instant,
    /// The first websocket message about this prompt (usually `execution_start`).
    pub first_event_at: Option<Instant>,
    /// When the run was seen finished, before the outputs were fetched.
    pub finished_at: Instant,
}

/// An image stored in ComfyUI's input directory by [`ComfyClient::upload_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedImage {
    /// The name ComfyUI stored it under (it renames to `name (1).png` when a
    /// different file already has the name).
    pub name: String,
    /// The subfolder of the input directory, `""` for none.
    pub subfolder: String,
    /// The directory kind, `input`.
    pub kind: String,
}

impl UploadedImage {
    /// The value a `LoadImage` node's `image` input takes: `subfolder/name` or `name`.
    #[must_use]
    pub fn input_name(&self) -> String {
        if self.subfolder.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.subfolder, self.name)
        }
    }
}

impl ComfyClient {
    /// A client of the ComfyUI at `base_url` (`http://127.0.0.1:8188`, a trailing
    /// slash and a path prefix are fine) with the default [`ComfyLimits`]. Nothing is
    /// contacted yet.
    ///
    /// # Errors
    /// [`ComfyError::BadInput`] when the address is not a plain `http://` URL (this
    /// build has no TLS).
    pub fn new(base_url: &str) -> Result<ComfyClient, ComfyError> {
        ComfyClient::with_limits(base_url, ComfyLimits::default())
    }

    /// [`ComfyClient::new`] with other bounds.
    ///
    /// # Errors
    /// As [`ComfyClient::new`].
    pub fn with_limits(base_url: &str, limits: ComfyLimits) -> Result<ComfyClient, ComfyError> {
        let base_url = http::normalize_base_url(base_url)?;
        let client_id = uuid::Uuid::new_v4().to_string();
        let ws_url = format!(
            "ws{}/ws?clientId={client_id}",
            base_url.strip_prefix("http").unwrap_or(&base_url)
        );
        crate::tls();
        let http = reqwest::Client::builder()
            // ComfyUI is local to this node; a system proxy must not get in the way.
            .no_proxy()
            .connect_timeout(limits.connect_timeout)
            .read_timeout(limits.read_timeout)
            .build()
            .map_err(|err| ComfyError::BadInput {
                reason: format!("http client could not be built: {}", http::root_cause(&err)),
            })?;
        Ok(ComfyClient {
            inner: Arc::new(Inner {
                base_url,
                ws_url,
                client_id,
                http,
                limits,
                hub: Mutex::new(None),
            }),
        })
    }

    /// The server's address, without a trailing slash.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The client id sent with every prompt and as the websocket's `clientId`.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The bounds this client works within.
    #[must_use]
    pub fn limits(&self) -> &ComfyLimits {
        &self.inner.limits
    }

    /// `GET /object_info`: every node class with its inputs; the loaders' choice lists
    /// name the installed models.
    ///
    /// # Errors
    /// Unreachable, a status other than 200, a body over the JSON limit or not JSON.
    pub async fn object_info(&self) -> Result<Value, ComfyError> {
        self.inner.get_json("/object_info").await
    }

    /// `GET /system_stats`: versions, devices and their memory.
    ///
    /// # Errors
    /// As [`ComfyClient::object_info`].
    pub async fn system_stats(&self) -> Result<Value, ComfyError> {
        self.inner.get_json("/system_stats").await
    }

    /// `GET /queue`: how many prompts are running and how many are pending.
    ///
    /// # Errors
    /// As [`ComfyClient::object_info`], or [`ComfyError::Protocol`] when the answer
    /// has no `queue_running` / `queue_pending` lists.
    pub async fn queue_len(&self) -> Result<(usize, usize), ComfyError> {
        let queue = self.inner.queue().await?;
        Ok((queue.running.len(), queue.pending.len()))
    }

    /// `POST /upload/image` (multipart: `image`, `type=input`, `subfolder`,
    /// `overwrite=false`). Returns the name ComfyUI stored the image under: the same
    /// name when identical bytes are already there, `name (1).png` when different
    /// bytes are.
    ///
    /// # Errors
    /// [`ComfyError::BadInput`] for a file or subfolder name that is empty, has path
    /// separators, `..`, quotes or control characters; otherwise as
    /// [`ComfyClient::object_info`].
    pub async fn upload_image(
        &self,
        file_name: &str,
        bytes: Vec<u8>,
        subfolder: Option<&str>,
    ) -> Result<UploadedImage, ComfyError> {
        self.inner.upload_image(file_name, bytes, subfolder).await
    }

    /// `POST /interrupt {"prompt_id"}`: stop the prompt if it is the one running (at
    /// the next node boundary or sampler step); a no-op otherwise.
    ///
    /// # Errors
    /// Unreachable or a status other than 200.
    pub async fn interrupt(&self, prompt_id: &str) -> Result<(), ComfyError> {
        self.inner.interrupt(prompt_id).await
    }

    /// `POST /queue {"delete": [id]}`: take a pending prompt off the queue (a running
    /// one is not touched).
    ///
    /// # Errors
    /// Unreachable or a status other than 200.
    pub async fn delete_queued(&self, prompt_id: &str) -> Result<(), ComfyError> {
        self.inner.delete_queued(prompt_id).await
    }

    /// `GET /view?filename&subfolder&type`: an output file's bytes, at most
    /// [`ComfyLimits::max_output_bytes`].
    ///
    /// # Errors
    /// Unreachable, a status other than 200 (404 for a missing file), or a file over
    /// the limit ([`ComfyError::Protocol`]).
    pub async fn view(&self, file: &OutputFile) -> Result<Vec<u8>, ComfyError> {
        self.inner.view(file).await
    }
}
