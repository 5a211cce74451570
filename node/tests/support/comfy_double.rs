//! A fake ComfyUI 0.33, in process, for the client's tests and for benches.
//!
//! It answers like the real server recorded in `shared/comfyui/` (that directory is
//! read at run time): the JSON bodies, status codes and content types of every route
//! the client uses, and the websocket message sequences of `ws_ok.jsonl`,
//! `ws_ok_cached.jsonl`, `ws_runtime_error.jsonl`, `ws_interrupt.jsonl` and
//! `ws_binary_meta.jsonl`. Message and error shapes are the recorded ones with ids,
//! node ids, values and timestamps substituted, not shapes written here.
//!
//! ```ignore
//! let double = ComfyDouble::start(DoubleOptions::default()).await;
//! double.script_next(Script::HangAt { node_id: "2".into() });
//! let client = ComfyClient::new(&double.url())?;
//! // ... run, then look at double.requests(), double.prompts(), double.sockets()
//! double.assert_no_origin_header();
//! ```
//!
//! # What it does
//! - `GET /object_info` (recorded, with [`DoubleOptions::models`] added to the loaders'
//!   choice lists and uploaded images to `LoadImage`'s), `/object_info/{class}`,
//!   `/system_stats`, `/features`, `/models`, `/queue` (positional arrays), `/prompt`,
//!   `/history`, `/history/{id}` (`{}` until written, written after
//!   `execution_success` and before the final `executing` null), `/view` (the recorded
//!   `view_ok.png`, `view_video.mp4` or `view_anim.webp` by extension for files it
//!   wrote, uploaded bytes for `type=input`, 404 empty otherwise).
//! - `POST /upload/image` (same name and bytes → same name; other bytes →
//!   `name (1).png`; no `image` part → 400 empty), `/interrupt` (targeted or global),
//!   `/queue` (`delete` / `clear`, pending only), `/free`.
//! - `POST /prompt` validates like the server: malformed JSON or a prompt that is not
//!   an object → 500 text/plain (recorded body); `no_prompt`; `invalid_prompt_id`;
//!   `missing_node_type`; `prompt_no_outputs`; per input `required_input_missing`,
//!   `invalid_input_type`, `value_smaller_than_min`, `value_bigger_than_max`,
//!   `value_not_in_list` (a missing model fails on the loader only),
//!   `return_type_mismatch`, `exception_during_inner_validation` (a link to a node
//!   that is not there, reported on the linked node as the server does). Every POST
//!   bumps `number`.
//! - Every route also under `/api`. A request whose `Origin` does not match its Host
//!   (or with `Sec-Fetch-Site: cross-site`) gets 403 empty, like the real one.
//! - Execution: one prompt at a time, the nodes the outputs need in dependency order;
//!   messages go to the socket of the prompt's `client_id` (none without one, then only
//!   `status` and `progress_state` broadcasts); sampler nodes send `progress` steps
//!   (and a preview frame per step when [`DoubleOptions::previews`]), in the metadata
//!   layout for a client that sent `feature_flags` and the legacy one otherwise;
//!   output nodes send `executed` and write files; nodes unchanged since the previous
//!   prompt are cached (an identical prompt: `execution_cached` with every node, no
//!   per-node `executing`, `executed` with the earlier files).
//! - [`Script`]s for the next prompts: a runtime error at a node, a node that hangs
//!   until interrupted or held until released, a socket dropped mid-run or silently
//!   forgotten by the server. Interrupts act
//!   between nodes (and between sampler steps), like the real one.
//! - [`ComfyDouble::restart`] forgets queue, history and cache and closes every
//!   connection, then listens again on the same port; [`ComfyDouble::stop`] stops
//!   listening (connection refused).
//! - Records every request (method, path, headers, body), every posted prompt and every
//!   websocket handshake.
//!
//! # What it does not
//! No image work (every PNG is the recorded one), no batches (one file per save
//! node), no subgraphs, no partial execution targets, no `VALIDATE_INPUTS` other than
//! `LoadImage`'s (its error shape is not recorded), no validation of the V3 dynamic
//! inputs (`format.codec`, `values.a`), and a socket closed by the client removes only
//! its own registration (the real server also drops a newer socket with the same
//! client id).

#![allow(
    clippy::too_many_lines,
    reason = "the double answers whole protocol exchanges, each read best as one script; the 120-line limit is for node/src"
)]
// Included by several test and bench binaries, each using a part of it; a test
// double panics on what should not happen.
#![allow(dead_code, clippy::unwrap_used, clippy::enum_variant_names)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How the double behaves; `Default` is fast (no delays) and has no models.
#[derive(Debug, Clone)]
pub struct DoubleOptions {
    /// Model file names added to every loader's choice list, as if installed.
    pub models: Vec<String>,
    /// Progress steps of a sampler node; `None`: the node's own `steps` input (else 10).
    pub sampler_steps: Option<u64>,
    /// Pause per sampler step.
    pub step_delay: Duration,
    /// Pause per executed node.
    pub node_delay: Duration,
    /// A preview frame per sampler step.
    pub previews: bool,
    /// The bytes served for the files the double's save nodes write, by extension
    /// (`webp` -> a file a real ComfyUI wrote); the recorded `view_*` files for the
    /// others.
    pub output_files: Vec<(String, Vec<u8>)>,
}

impl Default for DoubleOptions {
    fn default() -> DoubleOptions {
        DoubleOptions {
            models: Vec::new(),
            sampler_steps: None,
            step_delay: Duration::ZERO,
            node_delay: Duration::ZERO,
            previews: true,
            output_files: Vec::new(),
        }
    }
}

/// Something to happen during one of the next prompts (see
/// [`ComfyDouble::script_next`]).
#[derive(Debug, Clone)]
pub enum Script {
    /// The node raises: `execution_error` shaped like `ws_runtime_error.jsonl`.
    FailAt {
        node_id: String,
        exception_type: String,
        exception_message: String,
    },
    /// The node runs until the prompt is interrupted.
    HangAt { node_id: String },
    /// The node runs until `release` is canceled (or the prompt is interrupted).
    HoldAt {
        node_id: String,
        release: CancellationToken,
    },
    /// When the node starts, the server closes the prompt's client socket and goes on.
    DropSocketAt { node_id: String },
    /// When the node starts, the server forgets the client's socket but leaves it open:
    /// no more messages arrive on it (what the real server does to a socket when an
    /// older one with the same client id closes).
    MuteSocketAt { node_id: String },
}

impl Script {
    fn node_id(&self) -> &str {
        match self {
            Script::FailAt { node_id, .. }
            | Script::HangAt { node_id }
            | Script::HoldAt { node_id, .. }
            | Script::DropSocketAt { node_id }
            | Script::MuteSocketAt { node_id } => node_id,
        }
    }
}

/// One HTTP request as received (websocket handshakes included).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One POST /prompt.
#[derive(Debug, Clone)]
pub struct RecordedPrompt {
    /// The id the prompt got (the client's own or a generated one); `None` when the
    /// body was not even parsed that far.
    pub prompt_id: Option<String>,
    pub client_id: Option<String>,
    pub prompt: Value,
    /// The answer's status.
    pub status: u16,
}

/// One websocket connection.
#[derive(Debug, Clone)]
pub struct RecordedSocket {
    pub client_id: Option<String>,
    pub open: bool,
    /// The client asked for previews with metadata (`feature_flags`).
    pub preview_metadata: bool,
}

/// The running fake; see the module docs.
pub struct ComfyDouble {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<Server>>,
}

struct Server {
    shutdown: CancellationToken,
    serve: JoinHandle<()>,
    executor: JoinHandle<()>,
}

struct Shared {
    options: DoubleOptions,
    /// The recorded object_info with the models added.
    object_info: Value,
    state: Mutex<DoubleState>,
    /// Bumped on every change a test may wait for.
    version: watch::Sender<u64>,
    /// The executor's doorbell.
    work: tokio::sync::Notify,
}

#[derive(Default)]
struct DoubleState {
    number: u64,
    pending: VecDeque<QueueItem>,
    running: Option<QueueItem>,
    /// Interrupt of the running prompt (a token per prompt, as the real flag is
    /// cleared when a prompt starts).
    interrupt: Option<CancellationToken>,
    history: Vec<(String, Value)>,
    /// Node signature → its UI output, for the nodes of the last prompt.
    cache: HashMap<String, Option<Value>>,
    /// Next file counter per `subfolder/prefix`.
    counters: HashMap<String, u32>,
    /// Files written: (type, subfolder, filename).
    files: HashSet<(String, String, String)>,
    /// Uploaded images: (subfolder, name) → bytes.
    uploads: HashMap<(String, String), Vec<u8>>,
    scripts: VecDeque<Vec<Script>>,
    sockets: HashMap<String, SocketEntry>,
    /// Sockets the server forgot but did not close ([`Script::MuteSocketAt`]).
    muted: Vec<SocketEntry>,
    next_socket: u64,
    temp_prefix: String,
    requests: Vec<RecordedRequest>,
    prompts: Vec<RecordedPrompt>,
    sockets_seen: Vec<(u64, RecordedSocket)>,
}

struct SocketEntry {
    conn: u64,
    tx: mpsc::UnboundedSender<Out>,
    preview_metadata: bool,
}

enum Out {
    Text(String),
    Binary(Vec<u8>),
    Close,
}

#[derive(Clone)]
struct QueueItem {
    number: u64,
    prompt_id: String,
    prompt: Value,
    extra_data: Value,
    outputs: Vec<String>,
    scripts: Vec<Script>,
}

impl QueueItem {
    fn positional(&self) -> Value {
        json!([
            self.number,
            self.prompt_id,
            self.prompt,
            self.extra_data,
            self.outputs
        ])
    }

    fn client_id(&self) -> Option<String> {
        self.extra_data
            .get("client_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

impl ComfyDouble {
    /// Start on `127.0.0.1:0`.
    pub async fn start(options: DoubleOptions) -> ComfyDouble {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            object_info: with_models(&fixtures().object_info, &options.models),
            options,
            state: Mutex::new(DoubleState {
                temp_prefix: temp_prefix(),
                ..DoubleState::default()
            }),
            version: watch::channel(0).0,
            work: tokio::sync::Notify::new(),
        });
        let server = serve(&shared, listener);
        ComfyDouble {
            addr,
            shared,
            server: Mutex::new(Some(server)),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Scripts for the next accepted prompt (each call is for one more prompt).
    pub fn script_next(&self, script: Script) {
        self.script_next_all(vec![script]);
    }

    /// Several scripts for the same next prompt.
    pub fn script_next_all(&self, scripts: Vec<Script>) {
        self.shared.state().scripts.push_back(scripts);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// Requests to a path (without query), in order.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    /// Every POST /prompt so far.
    pub fn prompts(&self) -> Vec<RecordedPrompt> {
        self.shared.state().prompts.clone()
    }

    /// Every websocket connection so far (open or not).
    pub fn sockets(&self) -> Vec<RecordedSocket> {
        self.shared
            .state()
            .sockets_seen
            .iter()
            .map(|(_, socket)| socket.clone())
            .collect()
    }

    /// Panics naming every request that carried an `Origin` header.
    pub fn assert_no_origin_header(&self) {
        let offending: Vec<String> = self
            .requests()
            .iter()
            .filter_map(|r| {
                r.header("origin")
                    .map(|origin| format!("{} {} (Origin: {origin})", r.method, r.path))
            })
            .collect();
        assert!(
            offending.is_empty(),
            "requests with an origin header: {offending:?}"
        );
    }

    /// Pending and running prompt ids.
    pub fn queue(&self) -> (Vec<String>, Vec<String>) {
        let state = self.shared.state();
        (
            state.running.iter().map(|i| i.prompt_id.clone()).collect(),
            state.pending.iter().map(|i| i.prompt_id.clone()).collect(),
        )
    }

    /// The history entry of a prompt, if written.
    pub fn history_entry(&self, prompt_id: &str) -> Option<Value> {
        self.shared
            .state()
            .history
            .iter()
            .find(|(id, _)| id == prompt_id)
            .map(|(_, entry)| entry.clone())
    }

    /// Wait (at most 10 s, else panic naming `what`) until `check` holds.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&ComfyDouble) -> bool) {
        let mut version = self.shared.version.subscribe();
        let waiting = async {
            loop {
                if check(self) {
                    return;
                }
                if version.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .unwrap_or_else(|_| panic!("comfy double: waited 10 s for {what}"));
    }

    /// Wait until `count` websocket connections have been opened in all.
    pub async fn wait_sockets(&self, count: usize) {
        self.wait_for(&format!("{count} websocket connections"), |d| {
            d.sockets().len() >= count
        })
        .await;
    }

    /// Restart: stop (connections closed, running prompt dropped), forget queue,
    /// history and cache (files and uploads stay, as on disk), listen again on the
    /// same port.
    pub async fn restart(&self) {
        self.stop().await;
        {
            let mut state = self.shared.state();
            state.number = 0;
            state.pending.clear();
            state.running = None;
            state.interrupt = None;
            state.history.clear();
            state.cache.clear();
            state.sockets.clear();
            state.temp_prefix = temp_prefix();
        }
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("comfy double: cannot listen on {} again: {err}", self.addr),
            }
        };
        let server = serve(&self.shared, listener);
        *self.server.lock().unwrap() = Some(server);
        self.shared.changed();
    }

    /// Stop listening: new connections are refused, open ones are closed.
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            server.shutdown.cancel();
            server.executor.abort();
            let _ = server.executor.await;
            let mut serve = server.serve;
            if tokio::time::timeout(Duration::from_secs(5), &mut serve)
                .await
                .is_err()
            {
                serve.abort();
            }
        }
        let mut state = self.shared.state();
        for (_, socket) in state.sockets.drain() {
            let _ = socket.tx.send(Out::Close);
        }
        for socket in state.muted.drain(..) {
            let _ = socket.tx.send(Out::Close);
        }
        state.running = None;
    }
}

impl Drop for ComfyDouble {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.shutdown.cancel();
            server.executor.abort();
            server.serve.abort();
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, DoubleState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn changed(&self) {
        self.version.send_modify(|version| *version += 1);
    }
}

fn serve(shared: &Arc<Shared>, listener: tokio::net::TcpListener) -> Server {
    let shutdown = CancellationToken::new();
    let app = Router::new()
        .merge(routes())
        .nest("/api", routes())
        .fallback(|| async { text_response(StatusCode::NOT_FOUND, "404: Not Found") })
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            record_and_check,
        ))
        .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
        .layer(axum::Extension(shutdown.clone()))
        .with_state(shared.clone());
    let signal = shutdown.clone().cancelled_owned();
    let serve = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await;
    });
    let executor = tokio::spawn(executor(shared.clone()));
    Server {
        shutdown,
        serve,
        executor,
    }
}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/object_info", get(object_info))
        .route("/object_info/{class}", get(object_info_class))
        .route(
            "/system_stats",
            get(|| async { recorded_json("system_stats.json") }),
        )
        .route(
            "/features",
            get(|| async { recorded_json("features.json") }),
        )
        .route(
            "/embeddings",
            get(|| async { recorded_json("embeddings.json") }),
        )
        .route("/models", get(|| async { recorded_json("models.json") }))
        .route("/models/{folder}", get(models_folder))
        .route("/queue", get(get_queue).post(post_queue))
        .route("/prompt", get(get_prompt_status).post(post_prompt))
        .route("/history", get(get_history_all))
        .route("/history/{prompt_id}", get(get_history))
        .route("/view", get(view))
        .route("/upload/image", post(upload_image))
        .route("/interrupt", post(interrupt))
        .route("/free", post(|| async { empty(StatusCode::OK) }))
        .route("/ws", get(websocket))
}

// ---------------------------------------------------------------------------------
// Recorded fixtures

struct Fixtures {
    object_info: Value,
    /// Recorded websocket messages by a name (see `load_fixtures`).
    messages: HashMap<&'static str, Value>,
    /// Recorded validation error entries by their `type`.
    error_entries: HashMap<String, Value>,
    /// Recorded whole error answers by their `error.type`.
    error_answers: HashMap<String, Value>,
    internal_error: Vec<u8>,
    history_entry: Value,
    preview_png: Vec<u8>,
    preview_metadata: Value,
}

fn recorded_dir() -> String {
    format!("{}/../../shared/comfyui", env!("CARGO_MANIFEST_DIR"))
}

fn recorded(name: &str) -> Vec<u8> {
    let path = format!("{}/{name}", recorded_dir());
    std::fs::read(&path).unwrap_or_else(|err| panic!("comfy double: {path}: {err}"))
}

fn recorded_value(name: &str) -> Value {
    serde_json::from_slice(&recorded(name)).unwrap()
}

fn recorded_lines(name: &str) -> Vec<Value> {
    String::from_utf8(recorded(name))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(load_fixtures)
}

fn load_fixtures() -> Fixtures {
    let mut server_messages = Vec::new();
    for log in [
        "ws_ok.jsonl",
        "ws_ok_cached.jsonl",
        "ws_binary.jsonl",
        "ws_binary_meta.jsonl",
        "ws_video.jsonl",
        "ws_runtime_error.jsonl",
        "ws_interrupt.jsonl",
    ] {
        for line in recorded_lines(log) {
            if line["dir"] == "server->client" && line["frame"] == "text" {
                server_messages.push(line["msg"].clone());
            }
        }
    }
    let find = |what: &str, test: &dyn Fn(&Value) -> bool| -> Value {
        server_messages
            .iter()
            .find(|m| test(m))
            .cloned()
            .unwrap_or_else(|| panic!("comfy double: no recorded '{what}' message"))
    };
    let kind = |m: &Value, k: &str| m["type"] == k;
    let mut messages = HashMap::new();
    messages.insert(
        "status_sid",
        find("status with sid", &|m| {
            kind(m, "status") && m["data"].get("sid").is_some()
        }),
    );
    messages.insert(
        "status",
        find("status", &|m| {
            kind(m, "status") && m["data"].get("sid").is_none()
        }),
    );
    for name in [
        "execution_start",
        "execution_cached",
        "progress_state",
        "progress",
        "execution_success",
        "execution_error",
        "execution_interrupted",
        "feature_flags",
    ] {
        messages.insert(name, find(name, &|m| kind(m, name)));
    }
    messages.insert(
        "executing",
        find("executing a node", &|m| {
            kind(m, "executing") && m["data"]["node"].is_string()
        }),
    );
    messages.insert(
        "executing_done",
        find("executing null", &|m| {
            kind(m, "executing") && m["data"]["node"].is_null()
        }),
    );
    messages.insert(
        "executed",
        find("executed", &|m| {
            kind(m, "executed") && m["data"]["output"].get("animated").is_none()
        }),
    );

    let mut error_entries = HashMap::new();
    let mut error_answers = HashMap::new();
    let mut names: Vec<String> = std::fs::read_dir(recorded_dir())
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| {
            name.starts_with("prompt_error_")
                && name.ends_with(".json")
                && !name.ends_with("_request.json")
        })
        .collect();
    names.sort();
    for name in names {
        let answer = recorded_value(&name);
        if let Some(kind) = answer["error"]["type"].as_str() {
            error_answers
                .entry(kind.to_owned())
                .or_insert_with(|| answer.clone());
        }
        for node in answer["node_errors"]
            .as_object()
            .into_iter()
            .flat_map(Map::values)
        {
            for entry in node["errors"].as_array().into_iter().flatten() {
                if let Some(kind) = entry["type"].as_str() {
                    error_entries
                        .entry(kind.to_owned())
                        .or_insert_with(|| entry.clone());
                }
            }
        }
    }
    let history = recorded_value("history_ok.json");
    let history_entry = history
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    let preview_metadata = recorded_lines("ws_binary_meta.jsonl")
        .into_iter()
        .find(|line| line["frame"] == "binary")
        .unwrap()["metadata"]
        .clone();
    Fixtures {
        object_info: recorded_value("object_info.json"),
        messages,
        error_entries,
        error_answers,
        internal_error: recorded("prompt_error_malformed_json.txt"),
        history_entry,
        preview_png: recorded("ws_binary_meta_frame0.png"),
        preview_metadata,
    }
}

/// A recorded message with `data` fields replaced.
fn message(name: &str, fields: &[(&str, Value)]) -> Value {
    let mut message = fixtures().messages[name].clone();
    for (key, value) in fields {
        message["data"][*key] = value.clone();
    }
    message
}

/// A recorded validation error entry with its message, details and extra_info fields
/// replaced.
fn error_entry(kind: &str, message: &str, details: &str, extra: &[(&str, Value)]) -> Value {
    let mut entry =
        fixtures().error_entries.get(kind).cloned().unwrap_or_else(
            || json!({"type": kind, "message": "", "details": "", "extra_info": {}}),
        );
    entry["message"] = message.into();
    entry["details"] = details.into();
    for (key, value) in extra {
        entry["extra_info"][*key] = value.clone();
    }
    entry
}

/// Inputs whose choice lists are model folders.
const MODEL_INPUTS: [&str; 18] = [
    "ckpt_name",
    "unet_name",
    "vae_name",
    "clip_name",
    "clip_name1",
    "clip_name2",
    "clip_name3",
    "clip_name4",
    "lora_name",
    "control_net_name",
    "style_model_name",
    "gligen_name",
    "upscale_model_name",
    "hypernetwork_name",
    "photomaker_model_name",
    "audio_encoder_name",
    "model_name",
    "text_encoder",
];

fn with_models(object_info: &Value, models: &[String]) -> Value {
    let mut info = object_info.clone();
    if models.is_empty() {
        return info;
    }
    for class in info.as_object_mut().unwrap().values_mut() {
        for section in ["required", "optional"] {
            let Some(inputs) = class["input"]
                .get_mut(section)
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (name, spec) in inputs.iter_mut() {
                if !MODEL_INPUTS.contains(&name.as_str()) {
                    continue;
                }
                let choices = match spec.get_mut(0) {
                    Some(Value::Array(list)) => Some(list),
                    Some(Value::String(kind)) if kind == "COMBO" => spec
                        .get_mut(1)
                        .and_then(|extra| extra.get_mut("options"))
                        .and_then(Value::as_array_mut),
                    _ => None,
                };
                if let Some(choices) = choices {
                    for model in models {
                        if !choices.iter().any(|c| c == model) {
                            choices.push(model.clone().into());
                        }
                    }
                }
            }
        }
    }
    info
}

fn temp_prefix() -> String {
    let letters = b"abcdefghijklmnopqrstupvxyz";
    let random = uuid::Uuid::new_v4();
    let name: String = random.as_bytes()[..5]
        .iter()
        .map(|b| letters[usize::from(*b) % letters.len()] as char)
        .collect();
    format!("ComfyUI_temp_{name}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------
// Responses, as aiohttp writes them

/// JSON the way Python's `json.dumps` writes it (`", "` and `": "`).
fn py_json(value: &Value) -> Vec<u8> {
    struct PyFormatter;
    impl serde_json::ser::Formatter for PyFormatter {
        fn begin_array_value<W: ?Sized + io::Write>(
            &mut self,
            writer: &mut W,
            first: bool,
        ) -> io::Result<()> {
            if first {
                Ok(())
            } else {
                writer.write_all(b", ")
            }
        }
        fn begin_object_key<W: ?Sized + io::Write>(
            &mut self,
            writer: &mut W,
            first: bool,
        ) -> io::Result<()> {
            if first {
                Ok(())
            } else {
                writer.write_all(b", ")
            }
        }
        fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
            writer.write_all(b": ")
        }
    }
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    value.serialize(&mut serializer).unwrap();
    out
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        py_json(value),
    )
        .into_response()
}

fn recorded_json(name: &str) -> Response {
    json_response(StatusCode::OK, &recorded_value(name))
}

fn text_response(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_owned(),
    )
        .into_response()
}

/// A status with an empty body and no content type.
fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        fixtures().internal_error.clone(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------
// Middleware: record, and the Origin check of ComfyUI's origin_only_middleware

async fn record_and_check(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 256 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    shared.state().requests.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body: body.to_vec(),
    });
    shared.changed();
    if origin_forbidden(&parts.headers) {
        return empty(StatusCode::FORBIDDEN);
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

fn origin_forbidden(headers: &HeaderMap) -> bool {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    let (Some(host), Some(origin)) = (text(header::HOST), text(header::ORIGIN)) else {
        return false;
    };
    let split = |authority: &str| -> (String, Option<String>) {
        match authority.rsplit_once(':') {
            Some((name, port)) if !name.ends_with(']') || authority.starts_with('[') => {
                (name.to_owned(), Some(port.to_owned()))
            }
            _ => (authority.to_owned(), None),
        }
    };
    let origin_authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    let origin_authority = origin_authority.split('/').next().unwrap_or_default();
    let (host_name, host_port) = split(&host);
    let (origin_name, origin_port) = split(origin_authority);
    let loopback = matches!(
        host_name.as_str(),
        "localhost" | "127.0.0.1" | "[::1]" | "::1"
    );
    if !loopback || origin_authority.is_empty() {
        return false;
    }
    // A side without a port is compared without the other's port.
    let host_side = if origin_port.is_none() {
        host_name
    } else {
        host
    };
    let origin_side = if host_port.is_none() {
        origin_name
    } else {
        origin_authority.to_owned()
    };
    host_side != origin_side
}

// ---------------------------------------------------------------------------------
// Read-only routes

async fn object_info(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &shared.current_object_info())
}

async fn object_info_class(
    State(shared): State<Arc<Shared>>,
    Path(class): Path<String>,
) -> Response {
    let info = shared.current_object_info();
    let answer = match info.get(&class) {
        Some(entry) => json!({ class: entry }),
        None => json!({}),
    };
    json_response(StatusCode::OK, &answer)
}

async fn models_folder(Path(folder): Path<String>) -> Response {
    let folders = recorded_value("models.json");
    if folders
        .as_array()
        .is_some_and(|f| f.iter().any(|name| *name == folder))
    {
        json_response(StatusCode::OK, &json!([]))
    } else {
        empty(StatusCode::NOT_FOUND)
    }
}

impl Shared {
    /// The object_info with `LoadImage` listing the uploaded images.
    fn current_object_info(&self) -> Value {
        let uploads: Vec<String> = {
            let state = self.state();
            let mut names: Vec<String> = state
                .uploads
                .keys()
                .map(|(subfolder, name)| {
                    if subfolder.is_empty() {
                        name.clone()
                    } else {
                        format!("{subfolder}/{name}")
                    }
                })
                .collect();
            names.sort();
            names
        };
        let mut info = self.object_info.clone();
        if let Some(list) = info
            .pointer_mut("/LoadImage/input/required/image/0")
            .and_then(Value::as_array_mut)
        {
            list.extend(uploads.into_iter().map(Value::from));
        }
        info
    }

    fn queue_remaining(state: &DoubleState) -> usize {
        state.pending.len() + usize::from(state.running.is_some())
    }

    fn status_message(state: &DoubleState) -> Value {
        message(
            "status",
            &[(
                "status",
                json!({"exec_info": {"queue_remaining": Shared::queue_remaining(state)}}),
            )],
        )
    }

    /// `status` to every socket, as the server does on queue changes.
    fn broadcast_status(&self) {
        let state = self.state();
        let text = String::from_utf8(py_json(&Shared::status_message(&state))).unwrap();
        for socket in state.sockets.values() {
            let _ = socket.tx.send(Out::Text(text.clone()));
        }
    }

    /// A message to one client's socket, or to every socket when `client` is `None`
    /// and `broadcast` is set.
    fn send(&self, client: Option<&str>, message: &Value, broadcast: bool) {
        let text = String::from_utf8(py_json(message)).unwrap();
        let state = self.state();
        match client {
            Some(client) => {
                if let Some(socket) = state.sockets.get(client) {
                    let _ = socket.tx.send(Out::Text(text));
                }
            }
            None if broadcast => {
                for socket in state.sockets.values() {
                    let _ = socket.tx.send(Out::Text(text.clone()));
                }
            }
            None => {}
        }
    }

    fn send_preview(&self, client: Option<&str>, prompt_id: &str, node: &str) {
        let Some(client) = client else { return };
        let state = self.state();
        let Some(socket) = state.sockets.get(client) else {
            return;
        };
        let png = &fixtures().preview_png;
        let mut frame = Vec::with_capacity(png.len() + 256);
        if socket.preview_metadata {
            let mut metadata = fixtures().preview_metadata.clone();
            for key in ["node_id", "display_node_id", "real_node_id"] {
                metadata[key] = node.into();
            }
            metadata["prompt_id"] = prompt_id.into();
            let metadata = py_json(&metadata);
            frame.extend_from_slice(&4_u32.to_be_bytes());
            frame.extend_from_slice(&u32::try_from(metadata.len()).unwrap().to_be_bytes());
            frame.extend_from_slice(&metadata);
        } else {
            frame.extend_from_slice(&1_u32.to_be_bytes());
            frame.extend_from_slice(&2_u32.to_be_bytes());
        }
        frame.extend_from_slice(png);
        let _ = socket.tx.send(Out::Binary(frame));
    }
}

async fn get_queue(State(shared): State<Arc<Shared>>) -> Response {
    let state = shared.state();
    let answer = json!({
        "queue_running": state.running.iter().map(QueueItem::positional).collect::<Vec<_>>(),
        "queue_pending": state.pending.iter().map(QueueItem::positional).collect::<Vec<_>>(),
    });
    json_response(StatusCode::OK, &answer)
}

async fn get_prompt_status(State(shared): State<Arc<Shared>>) -> Response {
    let state = shared.state();
    json_response(
        StatusCode::OK,
        &json!({"exec_info": {"queue_remaining": Shared::queue_remaining(&state)}}),
    )
}

async fn get_history(State(shared): State<Arc<Shared>>, Path(prompt_id): Path<String>) -> Response {
    let state = shared.state();
    let answer = match state.history.iter().find(|(id, _)| *id == prompt_id) {
        Some((id, entry)) => json!({ id.clone(): entry }),
        None => json!({}),
    };
    json_response(StatusCode::OK, &answer)
}

async fn get_history_all(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let state = shared.state();
    let max = query
        .get("max_items")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let skip = state.history.len().saturating_sub(max);
    let mut answer = Map::new();
    for (id, entry) in state.history.iter().skip(skip) {
        answer.insert(id.clone(), entry.clone());
    }
    json_response(StatusCode::OK, &Value::Object(answer))
}

async fn view(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(filename) = query.get("filename") else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let subfolder = query.get("subfolder").cloned().unwrap_or_default();
    let kind = query
        .get("type")
        .cloned()
        .unwrap_or_else(|| "output".into());
    let bytes = {
        let state = shared.state();
        if kind == "input" {
            state.uploads.get(&(subfolder, filename.clone())).cloned()
        } else if state.files.contains(&(kind, subfolder, filename.clone())) {
            Some(file_bytes(&shared.options, filename))
        } else {
            None
        }
    };
    match bytes {
        Some(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, content_type(filename))],
            bytes,
        )
            .into_response(),
        None => empty(StatusCode::NOT_FOUND),
    }
}

fn extension(filename: &str) -> String {
    filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default()
}

/// The bytes served for a written file: the options' for its extension, else the
/// recorded ones.
fn file_bytes(options: &DoubleOptions, filename: &str) -> Vec<u8> {
    let ext = extension(filename);
    if let Some((_, bytes)) = options.output_files.iter().find(|(e, _)| *e == ext) {
        return bytes.clone();
    }
    match ext.as_str() {
        "mp4" | "webm" | "mkv" | "mov" => recorded("view_video.mp4"),
        "webp" => recorded("view_anim.webp"),
        _ => recorded("view_ok.png"),
    }
}

fn content_type(filename: &str) -> &'static str {
    match extension(filename).as_str() {
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "webp" => "image/webp",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        _ => "image/png",
    }
}

// ---------------------------------------------------------------------------------
// Upload, interrupt, queue changes

async fn upload_image(State(shared): State<Arc<Shared>>, mut multipart: Multipart) -> Response {
    let mut image: Option<(String, Vec<u8>)> = None;
    let mut subfolder = String::new();
    let mut kind = "input".to_owned();
    let mut overwrite = false;
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "image" => {
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let bytes = field.bytes().await.unwrap_or_default().to_vec();
                image = Some((file_name, bytes));
            }
            "subfolder" => subfolder = field.text().await.unwrap_or_default(),
            "type" => kind = field.text().await.unwrap_or_default(),
            "overwrite" => {
                let value = field.text().await.unwrap_or_default();
                overwrite = value == "true" || value == "1";
            }
            _ => {}
        }
    }
    let Some((mut file_name, bytes)) = image else {
        return empty(StatusCode::BAD_REQUEST);
    };
    if file_name.is_empty()
        || file_name.contains('/')
        || subfolder.split('/').any(|part| part == "..")
        || subfolder.starts_with('/')
    {
        return empty(StatusCode::BAD_REQUEST);
    }
    {
        let mut state = shared.state();
        if !overwrite {
            let (stem, ext) = match file_name.rsplit_once('.') {
                Some((stem, ext)) => (stem.to_owned(), format!(".{ext}")),
                None => (file_name.clone(), String::new()),
            };
            let mut counter = 1;
            loop {
                match state.uploads.get(&(subfolder.clone(), file_name.clone())) {
                    None => break,
                    // Identical content under the name: the same name back.
                    Some(existing) if *existing == bytes => break,
                    Some(_) => {
                        file_name = format!("{stem} ({counter}){ext}");
                        counter += 1;
                    }
                }
            }
        }
        state
            .uploads
            .insert((subfolder.clone(), file_name.clone()), bytes);
    }
    shared.changed();
    json_response(
        StatusCode::OK,
        &json!({"name": file_name, "subfolder": subfolder, "type": kind}),
    )
}

async fn interrupt(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let target = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| {
            body.get("prompt_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    {
        let state = shared.state();
        if let (Some(running), Some(token)) = (&state.running, &state.interrupt) {
            // A targeted interrupt of a prompt that is not running is a no-op.
            if target.as_ref().is_none_or(|id| *id == running.prompt_id) {
                token.cancel();
            }
        }
    }
    shared.changed();
    empty(StatusCode::OK)
}

async fn post_queue(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return internal_error();
    };
    {
        let mut state = shared.state();
        if body.get("clear").and_then(Value::as_bool) == Some(true) {
            state.pending.clear();
        }
        if let Some(ids) = body.get("delete").and_then(Value::as_array) {
            state
                .pending
                .retain(|item| !ids.iter().any(|id| *id == item.prompt_id.as_str()));
        }
    }
    shared.changed();
    shared.broadcast_status();
    empty(StatusCode::OK)
}

// ---------------------------------------------------------------------------------
// POST /prompt

async fn post_prompt(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut record = RecordedPrompt {
        prompt_id: None,
        client_id: None,
        prompt: Value::Null,
        status: 500,
    };
    let response = accept_prompt(&shared, &body, &mut record);
    record.status = response.status().as_u16();
    shared.state().prompts.push(record);
    shared.changed();
    response
}

/// `post_prompt` of the server: parse (a malformed body raises: 500, and `number` is
/// not bumped), bump `number`, then check and validate.
fn accept_prompt(shared: &Arc<Shared>, body: &[u8], record: &mut RecordedPrompt) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return internal_error();
    };
    if !(body.is_object() || body.is_array() || body.is_string()) {
        // `"number" in 5` raises in Python.
        return internal_error();
    }
    let number = {
        let mut state = shared.state();
        let number = state.number;
        state.number += 1;
        number
    };
    record.client_id = body
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(prompt) = body.get("prompt") else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &fixtures().error_answers["no_prompt"],
        );
    };
    record.prompt = prompt.clone();
    let Some(graph) = prompt.as_object() else {
        return internal_error();
    };
    let prompt_id = match body.get("prompt_id") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(id)) if is_canonical_uuid(id) => id.clone(),
        Some(_) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &fixtures().error_answers["invalid_prompt_id"],
            );
        }
    };
    record.prompt_id = Some(prompt_id.clone());
    let info = shared.current_object_info();
    let uploads = shared.state().uploads.clone();
    let (outputs, node_errors) = match validate_prompt(graph, &info, &uploads) {
        Ok(valid) => valid,
        Err(answer) => return json_response(StatusCode::BAD_REQUEST, &answer),
    };
    let mut extra_data = Map::new();
    if let Some(client_id) = &record.client_id {
        extra_data.insert("client_id".into(), client_id.clone().into());
    }
    extra_data.insert("create_time".into(), now_ms().into());
    {
        let mut state = shared.state();
        let scripts = state.scripts.pop_front().unwrap_or_default();
        state.pending.push_back(QueueItem {
            number,
            prompt_id: prompt_id.clone(),
            prompt: prompt.clone(),
            extra_data: Value::Object(extra_data),
            outputs,
            scripts,
        });
    }
    shared.changed();
    shared.broadcast_status();
    shared.work.notify_one();
    // Outputs that failed while others passed are reported with the 200.
    json_response(
        StatusCode::OK,
        &json!({"prompt_id": prompt_id, "number": number, "node_errors": node_errors}),
    )
}

fn is_canonical_uuid(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|uuid| uuid.hyphenated().to_string() == id)
}

/// The node's class entry, its input specs and its output node flag.
fn class_of<'a>(info: &'a Value, class_type: &str) -> Option<&'a Value> {
    info.get(class_type).filter(|entry| entry.is_object())
}

/// `[node_id, slot]`.
fn link_of(value: &Value) -> Option<(String, Value)> {
    let pair = value.as_array()?;
    if pair.len() != 2 {
        return None;
    }
    let node = match &pair[0] {
        Value::String(id) => id.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some((node, pair[1].clone()))
}

/// Validate like `execution.validate_prompt`: `Ok((good outputs, node errors of the
/// bad ones))`, or the 400 answer.
fn validate_prompt(
    graph: &Map<String, Value>,
    info: &Value,
    uploads: &HashMap<(String, String), Vec<u8>>,
) -> Result<(Vec<String>, Value), Value> {
    let answers = &fixtures().error_answers;
    let mut outputs = Vec::new();
    for (node_id, node) in graph {
        let Some(class_type) = node.get("class_type").and_then(Value::as_str) else {
            // Not recorded: the server's words for a node without class_type.
            return Err(json!({
                "error": {
                    "type": "invalid_prompt",
                    "message": "Cannot execute because a node is missing the class_type property.",
                    "details": format!("Node ID '#{node_id}'"),
                    "extra_info": {}
                },
                "node_errors": {}
            }));
        };
        let Some(class) = class_of(info, class_type) else {
            let mut answer = answers["missing_node_type"].clone();
            answer["error"]["message"] =
                format!("Node '{class_type}' not found. The custom node may not be installed.")
                    .into();
            answer["error"]["details"] = format!("Node ID '#{node_id}'").into();
            answer["error"]["extra_info"] = json!({
                "node_id": node_id,
                "class_type": class_type,
                "node_title": class_type,
            });
            return Err(answer);
        };
        if class["output_node"] == true {
            outputs.push(node_id.clone());
        }
    }
    if outputs.is_empty() {
        return Err(answers["prompt_no_outputs"].clone());
    }
    outputs.sort_by(|a, b| node_order(a, b));

    let uploaded: HashSet<String> = uploads
        .keys()
        .map(|(sub, name)| {
            if sub.is_empty() {
                name.clone()
            } else {
                format!("{sub}/{name}")
            }
        })
        .collect();
    let mut validator = Validator {
        graph,
        info,
        uploaded,
        validated: HashMap::new(),
        order: Vec::new(),
    };
    let mut good = Vec::new();
    let mut failed: Vec<(String, Vec<Value>)> = Vec::new();
    let mut node_errors = Map::new();
    for output in &outputs {
        let (valid, reasons) = match validator.validate(output, &mut Vec::new()) {
            Ok(valid) => (valid, validator.validated[output].1.clone()),
            Err(exception) => {
                let reasons = vec![json!({
                    "type": "exception_during_validation",
                    "message": "Exception when validating node",
                    "details": exception,
                    "extra_info": {"exception_type": "KeyError", "traceback": []}
                })];
                validator.set(output, false, reasons.clone());
                (false, reasons)
            }
        };
        if valid {
            good.push(output.clone());
            continue;
        }
        failed.push((output.clone(), reasons));
        for node_id in &validator.order {
            let (node_valid, errors) = &validator.validated[node_id];
            if *node_valid || errors.is_empty() {
                continue;
            }
            let entry = node_errors.entry(node_id.clone()).or_insert_with(|| {
                json!({
                    "errors": errors,
                    "dependent_outputs": [],
                    "class_type": graph[node_id]["class_type"],
                })
            });
            entry["dependent_outputs"]
                .as_array_mut()
                .unwrap()
                .push(output.clone().into());
        }
    }
    if good.is_empty() {
        let details: Vec<String> = failed
            .iter()
            .flat_map(|(_, reasons)| reasons.iter())
            .map(|r| {
                format!(
                    "{}: {}",
                    r["message"].as_str().unwrap_or_default(),
                    r["details"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let mut error = answers["prompt_outputs_failed_validation"]["error"].clone();
        error["details"] = details.join("\n").into();
        return Err(json!({"error": error, "node_errors": node_errors}));
    }
    Ok((good, Value::Object(node_errors)))
}

fn node_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

struct Validator<'a> {
    graph: &'a Map<String, Value>,
    info: &'a Value,
    uploaded: HashSet<String>,
    /// Node → (valid, its own errors).
    validated: HashMap<String, (bool, Vec<Value>)>,
    /// Insertion order of `validated`.
    order: Vec<String>,
}

impl Validator<'_> {
    fn set(&mut self, node_id: &str, valid: bool, errors: Vec<Value>) {
        if !self.validated.contains_key(node_id) {
            self.order.push(node_id.to_owned());
        }
        self.validated.insert(node_id.to_owned(), (valid, errors));
    }

    /// `validate_inputs`: `Ok(valid)`, or `Err(exception text)` for what Python would
    /// raise (a link to a node that is not in the prompt).
    fn validate(&mut self, node_id: &str, visiting: &mut Vec<String>) -> Result<bool, String> {
        if let Some((valid, _)) = self.validated.get(node_id) {
            return Ok(*valid);
        }
        if visiting.iter().any(|v| v == node_id) {
            return Err(format!("dependency cycle at node {node_id}"));
        }
        visiting.push(node_id.to_owned());
        let (graph, info) = (self.graph, self.info);
        let node = &graph[node_id];
        let class_type = node["class_type"].as_str().unwrap_or_default();
        let class = class_of(info, class_type).unwrap_or(&Value::Null);
        let empty = Map::new();
        let inputs = node
            .get("inputs")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut errors = Vec::new();
        let mut valid = true;
        for section in ["required", "optional"] {
            let Some(specs) = class["input"].get(section).and_then(Value::as_object) else {
                continue;
            };
            // The server's order (recorded errors list inputs in input_order).
            let mut names: Vec<&String> = specs.keys().collect();
            if let Some(order) = class["input_order"][section].as_array() {
                let position =
                    |name: &String| order.iter().position(|o| o == name).unwrap_or(usize::MAX);
                names.sort_by_key(|name| position(name));
            }
            for name in names {
                let spec = &specs[name];
                let input_type = spec.get(0).cloned().unwrap_or(Value::Null);
                let extra = spec.get(1).cloned().unwrap_or_else(|| json!({}));
                let input_config = json!([input_type, extra]);
                let dynamic = input_type.as_str().is_some_and(|t| t.starts_with("COMFY_"));
                let prefix = format!("{name}.");
                let Some(value) = inputs.get(name) else {
                    let flattened = inputs.keys().any(|key| key.starts_with(&prefix));
                    if section == "required" && !flattened {
                        errors.push(error_entry(
                            "required_input_missing",
                            "Required input is missing",
                            name,
                            &[("input_name", name.clone().into())],
                        ));
                    }
                    continue;
                };
                if dynamic {
                    continue;
                }
                if let Some((linked, slot)) = link_of(value) {
                    let Some(linked_node) = graph.get(&linked) else {
                        visiting.pop();
                        return Err(format!("'{linked}'"));
                    };
                    let linked_class = linked_node["class_type"].as_str().unwrap_or_default();
                    let received = slot
                        .as_u64()
                        .and_then(|slot| {
                            class_of(info, linked_class)?["output"]
                                .get(usize::try_from(slot).ok()?)
                                .cloned()
                        })
                        .ok_or_else(|| "tuple index out of range".to_owned());
                    let received = match received {
                        Ok(received) => received,
                        Err(exception) => {
                            visiting.pop();
                            return Err(exception);
                        }
                    };
                    if !types_match(&received, &input_type) {
                        let received_text = received.as_str().unwrap_or_default().to_owned();
                        let details = format!(
                            "{name}, received_type({received_text}) mismatch input_type({})",
                            py_str(&input_type)
                        );
                        errors.push(error_entry(
                            "return_type_mismatch",
                            "Return type mismatch between linked nodes",
                            &details,
                            &[
                                ("input_name", name.clone().into()),
                                ("input_config", input_config.clone()),
                                ("received_type", received.clone()),
                                ("linked_node", value.clone()),
                            ],
                        ));
                        continue;
                    }
                    match self.validate(&linked, visiting) {
                        Ok(true) => {}
                        Ok(false) => valid = false,
                        Err(exception) => {
                            valid = false;
                            let mut entry = error_entry(
                                "exception_during_inner_validation",
                                "Exception when validating inner node",
                                &exception,
                                &[
                                    ("input_name", name.clone().into()),
                                    ("input_config", input_config.clone()),
                                    ("exception_message", exception.clone().into()),
                                    ("exception_type", "KeyError".into()),
                                    ("linked_node", value.clone()),
                                ],
                            );
                            entry["details"] = exception.clone().into();
                            self.set(&linked, false, vec![entry]);
                        }
                    }
                    continue;
                }
                if let Some(error) =
                    self.check_value(class_type, name, value, &input_type, &extra, &input_config)
                {
                    errors.push(error);
                }
            }
        }
        visiting.pop();
        let valid = valid && errors.is_empty();
        self.set(node_id, valid, errors);
        Ok(valid)
    }

    /// The value checks of `validate_inputs` for a widget value.
    fn check_value(
        &self,
        class_type: &str,
        name: &str,
        value: &Value,
        input_type: &Value,
        extra: &Value,
        input_config: &Value,
    ) -> Option<Value> {
        let converted = match input_type.as_str() {
            Some("INT") => py_int(value).map(|int| {
                i64::try_from(int)
                    .map(Value::from)
                    .or_else(|_| u64::try_from(int).map(Value::from))
                    .unwrap_or_else(|_| Value::from(int as f64))
            }),
            Some("FLOAT") => py_float(value).map(Value::from),
            _ => Ok(value.clone()),
        };
        let converted = match converted {
            Ok(converted) => converted,
            Err(exception) => {
                let kind = input_type.as_str().unwrap_or_default();
                return Some(error_entry(
                    "invalid_input_type",
                    &format!("Failed to convert an input value to a {kind} value"),
                    &format!("{name}, {}, {exception}", py_str(value)),
                    &[
                        ("input_name", name.into()),
                        ("input_config", input_config.clone()),
                        ("received_value", value.clone()),
                        ("exception_message", exception.into()),
                    ],
                ));
            }
        };
        if class_type == "LoadImage" && name == "image" {
            // LoadImage's VALIDATE_INPUTS replaces the list check (shape not recorded).
            let image = value.as_str().unwrap_or_default();
            if image != "example.png" && !self.uploaded.contains(image) {
                return Some(json!({
                    "type": "custom_validation_failed",
                    "message": "Custom validation failed for node",
                    "details": format!("image - Invalid image file: {image}"),
                    "extra_info": {
                        "input_name": "image",
                        "input_config": input_config,
                        "received_value": value
                    }
                }));
            }
            return None;
        }
        let number = converted.as_f64();
        if let (Some(val), Some(min)) = (number, extra.get("min").and_then(Value::as_f64))
            && val < min
        {
            return Some(error_entry(
                "value_smaller_than_min",
                &format!(
                    "Value {} smaller than min of {}",
                    py_str(&converted),
                    py_str(&extra["min"])
                ),
                name,
                &[
                    ("input_name", name.into()),
                    ("input_config", input_config.clone()),
                    ("received_value", converted),
                ],
            ));
        }
        if let (Some(val), Some(max)) = (number, extra.get("max").and_then(Value::as_f64))
            && val > max
        {
            return Some(error_entry(
                "value_bigger_than_max",
                &format!(
                    "Value {} bigger than max of {}",
                    py_str(&converted),
                    py_str(&extra["max"])
                ),
                name,
                &[
                    ("input_name", name.into()),
                    ("input_config", input_config.clone()),
                    ("received_value", converted),
                ],
            ));
        }
        let options = match input_type {
            Value::Array(options) => Some(options),
            Value::String(kind) if kind == "COMBO" => {
                extra.get("options").and_then(Value::as_array)
            }
            _ => None,
        };
        if let Some(options) = options
            && !options.contains(value)
        {
            let (list, config) = if options.len() > 20 {
                (format!("(list of length {})", options.len()), Value::Null)
            } else {
                (py_str(&Value::Array(options.clone())), input_config.clone())
            };
            return Some(error_entry(
                "value_not_in_list",
                "Value not in list",
                &format!("{name}: '{}' not in {list}", py_str(value)),
                &[
                    ("input_name", name.into()),
                    ("input_config", config),
                    ("received_value", value.clone()),
                ],
            ));
        }
        None
    }
}

/// `validate_node_input`: equal, `*` on either side, or comma lists that overlap.
fn types_match(received: &Value, input: &Value) -> bool {
    if received == input {
        return true;
    }
    let (Some(received), Some(input)) = (received.as_str(), input.as_str()) else {
        return false;
    };
    let split = |t: &str| {
        t.split(',')
            .map(|p| p.trim().to_owned())
            .collect::<HashSet<_>>()
    };
    let (received, input) = (split(received), split(input));
    received.contains("*") || input.contains("*") || !received.is_disjoint(&input)
}

/// Python's `int(value)`.
fn py_int(value: &Value) -> Result<i128, String> {
    match value {
        Value::Bool(b) => Ok(i128::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Ok(i128::from(u))
            } else {
                let float = n.as_f64().unwrap_or(f64::NAN);
                if float.is_finite() {
                    Ok(float.trunc() as i128)
                } else {
                    Err("cannot convert float infinity to integer".into())
                }
            }
        }
        Value::String(text) => text
            .trim()
            .parse::<i128>()
            .map_err(|_| format!("invalid literal for int() with base 10: '{text}'")),
        other => Err(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            py_type(other)
        )),
    }
}

/// Python's `float(value)`.
fn py_float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        Value::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(text) => text
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("could not convert string to float: '{text}'")),
        other => Err(format!(
            "float() argument must be a string or a real number, not '{}'",
            py_type(other)
        )),
    }
}

fn py_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `str()` of a value (lists show their items' `repr`).
fn py_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => py_repr(other),
    }
}

fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) if f.fract() == 0.0 && f.is_finite() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::String(text) => format!("'{text}'"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(_) => value.to_string(),
    }
}

// ---------------------------------------------------------------------------------
// The websocket

async fn websocket(
    State(shared): State<Arc<Shared>>,
    axum::Extension(shutdown): axum::Extension<CancellationToken>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let client_id = query.get("clientId").filter(|id| !id.is_empty()).cloned();
    upgrade.on_upgrade(move |socket| serve_socket(shared, socket, client_id, shutdown))
}

async fn serve_socket(
    shared: Arc<Shared>,
    mut socket: WebSocket,
    client_id: Option<String>,
    shutdown: CancellationToken,
) {
    let sid = client_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (conn, first) = {
        let mut state = shared.state();
        let conn = state.next_socket;
        state.next_socket += 1;
        // The newest socket of a client id replaces the older one.
        state.sockets.insert(
            sid.clone(),
            SocketEntry {
                conn,
                tx,
                preview_metadata: false,
            },
        );
        state.sockets_seen.push((
            conn,
            RecordedSocket {
                client_id: client_id.clone(),
                open: true,
                preview_metadata: false,
            },
        ));
        let mut first = message("status_sid", &[]);
        first["data"]["status"]["exec_info"]["queue_remaining"] =
            Shared::queue_remaining(&state).into();
        first["data"]["sid"] = sid.clone().into();
        (conn, first)
    };
    shared.changed();
    let first = String::from_utf8(py_json(&first)).unwrap();
    let mut open = socket.send(Message::text(first)).await.is_ok();
    while open {
        tokio::select! {
            out = rx.recv() => {
                let sent = match out {
                    Some(Out::Text(text)) => socket.send(Message::text(text)).await,
                    Some(Out::Binary(bytes)) => socket.send(Message::binary(bytes)).await,
                    Some(Out::Close) | None => {
                        let _ = socket.send(Message::Close(None)).await;
                        break;
                    }
                };
                open = sent.is_ok();
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Some(reply) = feature_flags(&shared, &sid, conn, text.as_str()) {
                        open = socket.send(Message::text(reply)).await.is_ok();
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            () = shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
    {
        let mut state = shared.state();
        if state
            .sockets
            .get(&sid)
            .is_some_and(|entry| entry.conn == conn)
        {
            state.sockets.remove(&sid);
        }
        if let Some((_, seen)) = state.sockets_seen.iter_mut().find(|(c, _)| *c == conn) {
            seen.open = false;
        }
    }
    shared.changed();
}

/// A client's `feature_flags` message: remember whether it wants preview metadata,
/// and answer with the server's flags (as recorded).
fn feature_flags(shared: &Shared, sid: &str, conn: u64, text: &str) -> Option<String> {
    let message = serde_json::from_str::<Value>(text).ok()?;
    if message["type"] != "feature_flags" {
        return None;
    }
    let wants = message["data"]["supports_preview_metadata"] == true;
    {
        let mut state = shared.state();
        if let Some(entry) = state.sockets.get_mut(sid).filter(|e| e.conn == conn) {
            entry.preview_metadata = wants;
        }
        if let Some((_, seen)) = state.sockets_seen.iter_mut().find(|(c, _)| *c == conn) {
            seen.preview_metadata = wants;
        }
    }
    shared.changed();
    Some(String::from_utf8(py_json(&fixtures().messages["feature_flags"])).unwrap())
}

// ---------------------------------------------------------------------------------
// Execution

async fn executor(shared: Arc<Shared>) {
    loop {
        let item = {
            let mut state = shared.state();
            let item = state.pending.pop_front();
            if let Some(item) = &item {
                state.running = Some(item.clone());
                state.interrupt = Some(CancellationToken::new());
            }
            item
        };
        match item {
            Some(item) => {
                shared.changed();
                shared.broadcast_status();
                execute(&shared, &item).await;
                {
                    let mut state = shared.state();
                    state.running = None;
                    state.interrupt = None;
                }
                shared.changed();
                shared.broadcast_status();
                let done = message(
                    "executing_done",
                    &[
                        ("node", Value::Null),
                        ("prompt_id", item.prompt_id.clone().into()),
                    ],
                );
                shared.send(item.client_id().as_deref(), &done, false);
            }
            None => shared.work.notified().await,
        }
    }
}

/// How a prompt's execution ended.
enum Ending {
    Success,
    Error(Value),
    Interrupted(Value),
}

/// Runs one prompt up to (not including) the final `status` and `executing` null;
/// writes its history entry.
async fn execute(shared: &Arc<Shared>, item: &QueueItem) {
    let options = &shared.options;
    let client = item.client_id();
    let client = client.as_deref();
    let prompt_id = item.prompt_id.as_str();
    let graph = item.prompt.as_object().cloned().unwrap_or_default();
    let interrupt = shared.state().interrupt.clone().unwrap_or_default();
    let mut messages_log: Vec<Value> = Vec::new();
    let mut log = |shared: &Shared, message: Value, to_history: bool| {
        shared.send(client, &message, false);
        if to_history {
            messages_log.push(json!([message["type"], message["data"]]));
        }
    };

    log(
        shared,
        message(
            "execution_start",
            &[
                ("prompt_id", prompt_id.into()),
                ("timestamp", now_ms().into()),
            ],
        ),
        true,
    );
    let order = execution_order(&graph, &item.outputs);
    let mut memo = HashMap::new();
    let signatures: HashMap<String, String> = order
        .iter()
        .map(|id| (id.clone(), signature(&graph, id, &mut memo)))
        .collect();
    let previous_cache = shared.state().cache.clone();
    let cached: Vec<String> = order
        .iter()
        .filter(|id| previous_cache.contains_key(&signatures[*id]))
        .cloned()
        .collect();
    log(
        shared,
        message(
            "execution_cached",
            &[
                ("nodes", json!(cached)),
                ("prompt_id", prompt_id.into()),
                ("timestamp", now_ms().into()),
            ],
        ),
        true,
    );

    let mut node_states = Map::new();
    let mut outputs = Map::new();
    let mut meta = Map::new();
    let mut executed: Vec<String> = Vec::new();
    let mut new_cache: HashMap<String, Option<Value>> = HashMap::new();
    let mut ending = Ending::Success;

    'nodes: for (index, node_id) in order.iter().enumerate() {
        let node = &graph[node_id];
        let class_type = node["class_type"].as_str().unwrap_or_default().to_owned();
        let signature = &signatures[node_id];
        if let Some(ui) = previous_cache.get(signature) {
            new_cache.insert(signature.clone(), ui.clone());
            if let Some(ui) = ui {
                outputs.insert(node_id.clone(), ui.clone());
                meta.insert(node_id.clone(), meta_of(node_id));
                log(shared, executed_message(prompt_id, node_id, ui), false);
                set_node_state(&mut node_states, prompt_id, node_id, "finished", 1);
                shared.send(client, &progress_state(prompt_id, &node_states), true);
            }
            continue;
        }
        set_node_state(&mut node_states, prompt_id, node_id, "running", 0);
        shared.send(client, &progress_state(prompt_id, &node_states), true);
        log(
            shared,
            message(
                "executing",
                &[
                    ("node", node_id.clone().into()),
                    ("display_node", node_id.clone().into()),
                    ("prompt_id", prompt_id.into()),
                ],
            ),
            false,
        );
        if interrupt.is_cancelled() {
            ending =
                Ending::Interrupted(interrupted_data(prompt_id, node_id, &class_type, &executed));
            break 'nodes;
        }
        for script in item.scripts.iter().filter(|s| s.node_id() == node_id) {
            match script {
                Script::FailAt {
                    exception_type,
                    exception_message,
                    ..
                } => {
                    let mut data = fixtures().messages["execution_error"]["data"].clone();
                    data["prompt_id"] = prompt_id.into();
                    data["node_id"] = node_id.clone().into();
                    data["node_type"] = class_type.clone().into();
                    data["executed"] = json!(executed);
                    data["exception_message"] = format!("{exception_message}\n").into();
                    data["exception_type"] = exception_type.clone().into();
                    data["current_inputs"] = current_inputs(node);
                    data["current_outputs"] = json!(order);
                    data["timestamp"] = now_ms().into();
                    ending = Ending::Error(data);
                    break 'nodes;
                }
                Script::HangAt { .. } | Script::HoldAt { .. } => {
                    let release = match script {
                        Script::HoldAt { release, .. } => release.clone(),
                        _ => CancellationToken::new(),
                    };
                    tokio::select! {
                        () = interrupt.cancelled() => {}
                        () = release.cancelled() => {}
                    }
                    // The node finishes; the interrupt takes effect at the next node,
                    // or here when there is none.
                    if interrupt.is_cancelled() && index + 1 == order.len() {
                        ending = Ending::Interrupted(interrupted_data(
                            prompt_id,
                            node_id,
                            &class_type,
                            &executed,
                        ));
                        break 'nodes;
                    }
                }
                Script::MuteSocketAt { .. } => {
                    if let Some(client) = client {
                        let mut state = shared.state();
                        if let Some(socket) = state.sockets.remove(client) {
                            state.muted.push(socket);
                        }
                    }
                }
                Script::DropSocketAt { .. } => {
                    if let Some(client) = client {
                        let socket = shared.state().sockets.remove(client);
                        if let Some(socket) = socket {
                            let _ = socket.tx.send(Out::Close);
                        }
                        shared.changed();
                    }
                }
            }
        }
        let mut ui: Option<Value> = None;
        if is_sampler(&class_type) {
            let steps = options
                .sampler_steps
                .or_else(|| node["inputs"]["steps"].as_u64())
                .unwrap_or(10)
                .clamp(1, 10_000);
            for step in 1..=steps {
                if !options.step_delay.is_zero() {
                    tokio::time::sleep(options.step_delay).await;
                }
                if interrupt.is_cancelled() {
                    ending = Ending::Interrupted(interrupted_data(
                        prompt_id,
                        node_id,
                        &class_type,
                        &executed,
                    ));
                    break 'nodes;
                }
                if options.previews {
                    shared.send_preview(client, prompt_id, node_id);
                }
                log(
                    shared,
                    progress_message(prompt_id, node_id, step, steps),
                    false,
                );
            }
        } else if class_type == "SaveImageWebsocket" {
            shared.send_preview(client, prompt_id, node_id);
            log(shared, progress_message(prompt_id, node_id, 0, 1), false);
        } else {
            ui = write_outputs(shared, node, &class_type);
        }
        if !options.node_delay.is_zero() {
            tokio::time::sleep(options.node_delay).await;
        }
        if let Some(ui) = &ui {
            log(shared, executed_message(prompt_id, node_id, ui), false);
            outputs.insert(node_id.clone(), ui.clone());
            meta.insert(node_id.clone(), meta_of(node_id));
        }
        set_node_state(&mut node_states, prompt_id, node_id, "finished", 1);
        shared.send(client, &progress_state(prompt_id, &node_states), true);
        executed.push(node_id.clone());
        new_cache.insert(signature.clone(), ui);
    }

    let status_str = match &ending {
        Ending::Success => {
            log(
                shared,
                message(
                    "execution_success",
                    &[
                        ("prompt_id", prompt_id.into()),
                        ("timestamp", now_ms().into()),
                    ],
                ),
                true,
            );
            "success"
        }
        Ending::Error(data) => {
            log(
                shared,
                json!({"type": "execution_error", "data": data}),
                true,
            );
            "error"
        }
        Ending::Interrupted(data) => {
            log(
                shared,
                json!({"type": "execution_interrupted", "data": data}),
                true,
            );
            "error"
        }
    };
    let mut entry = fixtures().history_entry.clone();
    entry["prompt"] = item.positional();
    entry["outputs"] = Value::Object(outputs);
    entry["status"] = json!({
        "status_str": status_str,
        "completed": matches!(ending, Ending::Success),
        "messages": messages_log,
    });
    entry["meta"] = Value::Object(meta);
    {
        let mut state = shared.state();
        state.history.push((prompt_id.to_owned(), entry));
        state.cache = new_cache;
    }
    shared.changed();
}

fn is_sampler(class_type: &str) -> bool {
    matches!(
        class_type,
        "KSampler" | "KSamplerAdvanced" | "SamplerCustom" | "SamplerCustomAdvanced"
    )
}

fn meta_of(node_id: &str) -> Value {
    let mut meta = fixtures().history_entry["meta"]
        .as_object()
        .and_then(|m| m.values().next())
        .cloned()
        .unwrap_or_else(|| json!({}));
    for key in ["node_id", "display_node", "real_node_id"] {
        meta[key] = node_id.into();
    }
    meta
}

fn executed_message(prompt_id: &str, node_id: &str, ui: &Value) -> Value {
    message(
        "executed",
        &[
            ("node", node_id.into()),
            ("display_node", node_id.into()),
            ("output", ui.clone()),
            ("prompt_id", prompt_id.into()),
        ],
    )
}

fn progress_message(prompt_id: &str, node_id: &str, value: u64, max: u64) -> Value {
    message(
        "progress",
        &[
            ("value", value.into()),
            ("max", max.into()),
            ("prompt_id", prompt_id.into()),
            ("node", node_id.into()),
        ],
    )
}

fn interrupted_data(
    prompt_id: &str,
    node_id: &str,
    class_type: &str,
    executed: &[String],
) -> Value {
    let mut data = fixtures().messages["execution_interrupted"]["data"].clone();
    data["prompt_id"] = prompt_id.into();
    data["node_id"] = node_id.into();
    data["node_type"] = class_type.into();
    data["executed"] = json!(executed);
    data["timestamp"] = now_ms().into();
    data
}

fn set_node_state(
    states: &mut Map<String, Value>,
    prompt_id: &str,
    node_id: &str,
    state: &str,
    value: u64,
) {
    let template = &fixtures().messages["progress_state"]["data"]["nodes"];
    let mut entry = template
        .as_object()
        .and_then(|nodes| nodes.values().next())
        .cloned()
        .unwrap_or_else(|| json!({}));
    entry["value"] = value.into();
    entry["max"] = 1.into();
    entry["state"] = state.into();
    entry["prompt_id"] = prompt_id.into();
    for key in ["node_id", "display_node_id", "real_node_id"] {
        entry[key] = node_id.into();
    }
    states.insert(node_id.to_owned(), entry);
}

fn progress_state(prompt_id: &str, states: &Map<String, Value>) -> Value {
    message(
        "progress_state",
        &[
            ("prompt_id", prompt_id.into()),
            ("nodes", Value::Object(states.clone())),
        ],
    )
}

/// `current_inputs` of an execution_error: each widget value in a list.
fn current_inputs(node: &Value) -> Value {
    let mut inputs = Map::new();
    if let Some(values) = node["inputs"].as_object() {
        for (name, value) in values {
            if link_of(value).is_none() {
                inputs.insert(name.clone(), json!([value]));
            }
        }
    }
    Value::Object(inputs)
}

/// The nodes the outputs need, dependencies first.
fn execution_order(graph: &Map<String, Value>, outputs: &[String]) -> Vec<String> {
    fn visit(
        graph: &Map<String, Value>,
        node_id: &str,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(node_id.to_owned()) {
            return;
        }
        if let Some(inputs) = graph.get(node_id).and_then(|n| n["inputs"].as_object()) {
            let mut links: Vec<String> = inputs
                .values()
                .filter_map(|v| link_of(v).map(|(id, _)| id))
                .collect();
            links.sort_by(|a, b| node_order(a, b));
            for linked in links {
                if graph.contains_key(&linked) {
                    visit(graph, &linked, seen, order);
                }
            }
        }
        order.push(node_id.to_owned());
    }
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    for output in outputs {
        visit(graph, output, &mut seen, &mut order);
    }
    order
}

/// What makes a node's result: its class, its values and its inputs' signatures.
fn signature(
    graph: &Map<String, Value>,
    node_id: &str,
    memo: &mut HashMap<String, String>,
) -> String {
    if let Some(known) = memo.get(node_id) {
        return known.clone();
    }
    let node = &graph[node_id];
    let mut inputs = Map::new();
    if let Some(values) = node["inputs"].as_object() {
        for (name, value) in values {
            let part = match link_of(value) {
                Some((linked, slot)) if graph.contains_key(&linked) => {
                    json!({"link": signature(graph, &linked, memo), "slot": slot})
                }
                _ => value.clone(),
            };
            inputs.insert(name.clone(), part);
        }
    }
    // A node whose IS_CHANGED is the time (SaveImageWebsocket) never matches.
    let nonce = if node["class_type"] == "SaveImageWebsocket" {
        uuid::Uuid::new_v4().to_string()
    } else {
        String::new()
    };
    let text =
        json!({"class_type": node["class_type"], "inputs": inputs, "nonce": nonce}).to_string();
    memo.insert(node_id.to_owned(), text.clone());
    text
}

/// The files an output node writes, and its UI output.
fn write_outputs(shared: &Shared, node: &Value, class_type: &str) -> Option<Value> {
    let inputs = &node["inputs"];
    let prefix_input = |default: &str| {
        inputs["filename_prefix"]
            .as_str()
            .unwrap_or(default)
            .to_owned()
    };
    let (prefix, extension, kind, animated) = match class_type {
        "SaveImage" => (prefix_input("ComfyUI"), "png", "output", false),
        "PreviewImage" => (shared.state().temp_prefix.clone(), "png", "temp", false),
        "SaveAnimatedWEBP" => (prefix_input("ComfyUI"), "webp", "output", true),
        "SaveAnimatedPNG" => (prefix_input("ComfyUI"), "png", "output", true),
        "SaveWEBM" => (prefix_input("ComfyUI"), "webm", "output", true),
        "SaveVideo" => {
            let extension = match inputs["format"].as_str() {
                Some("webm") => "webm",
                Some("mkv") => "mkv",
                _ => "mp4",
            };
            (prefix_input("video/ComfyUI"), extension, "output", true)
        }
        "PreviewAny" => return Some(json!({"text": [py_str(&inputs["source"])]})),
        _ => return None,
    };
    let (subfolder, base) = match prefix.rsplit_once('/') {
        Some((subfolder, base)) => (subfolder.to_owned(), base.to_owned()),
        None => (String::new(), prefix),
    };
    let filename = {
        let mut state = shared.state();
        let counter = state
            .counters
            .entry(format!("{kind}/{subfolder}/{base}"))
            .or_insert(0);
        *counter += 1;
        let filename = format!("{base}_{:05}_.{extension}", *counter);
        state
            .files
            .insert((kind.to_owned(), subfolder.clone(), filename.clone()));
        filename
    };
    let mut ui = json!({"images": [{"filename": filename, "subfolder": subfolder, "type": kind}]});
    if animated {
        ui["animated"] = json!([true]);
    }
    Some(ui)
}
