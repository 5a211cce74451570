//! An OpenAI-compatible chat completions server, in process, for the advisor's tests
//! and benchmark. It answers in the shapes recorded from llama.cpp's `llama-server`
//! in `shared/llm/` (read at run time): the recorded completion with its content,
//! id and time substituted; the recorded cut answer (`finish_reason: "length"`);
//! the recorded error bodies with their numeric `error.code` (a wrong key → 401,
//! no `messages` → 400, a body that is not JSON → 500). On top, the shapes other
//! servers use: OpenAI's errors (`code` a string or null, `refusal` in the
//! message), Ollama's OpenAI-compatible errors, a 429, a server that hangs, a body
//! slightly off OpenAI's types, and llama-cpp-python's refusal of `json_schema`.
//!
//! ```ignore
//! let double = LlmDouble::start(LlmOptions::default(), |request, n| Behaviour::Answer(...)).await;
//! // base URL: double.url() ("http://127.0.0.1:PORT/v1")
//! ```

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// How the server answers one chat completion.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200: the recorded completion with this content.
    Answer(String),
    /// 200: the recorded answer cut at `max_tokens`.
    Cut,
    /// 200: OpenAI's refusal (`message.refusal` set, `content` null).
    Refusal(String),
    /// 200: the recorded completion with this content, `finish_reason` empty and an
    /// unknown `service_tier` (off OpenAI's types).
    OffSpec(String),
    /// llama-server's error body (numeric `error.code`) with this status.
    LlamaError(u16, String),
    /// OpenAI's error body (`code` a string or null) with this status.
    OpenAiError(u16, String),
    /// Ollama's OpenAI-compatible error body with this status.
    OllamaError(u16, String),
    /// Never answers (the client's timeout ends it).
    Hang,
    /// 200 whose body is not JSON.
    NotJson,
}

/// Server-wide behaviour.
#[derive(Debug, Clone, Default)]
pub struct LlmOptions {
    /// Every answer waits this long first.
    pub delay: Duration,
    /// Requests must carry `Authorization: Bearer KEY` (else the recorded 401).
    pub key: Option<String>,
    /// Answer `json_schema` requests with llama-cpp-python's 500 (only
    /// `{type: json_object, schema}` is taken).
    pub reject_json_schema: bool,
    /// A wrong key's error message echoes the key given (as careless servers do).
    pub echo_key: bool,
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The body (JSON, or `null` when it was not).
    pub body: Value,
}

type Script = dyn Fn(&Value, usize) -> Behaviour + Send + Sync;

struct Shared {
    options: LlmOptions,
    script: Box<Script>,
    requests: Mutex<Vec<Recorded>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The running server.
pub struct LlmDouble {
    url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LlmDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn recorded(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/llm")
        .join(file);
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("recorded JSON")
}

impl LlmDouble {
    /// Listen on loopback; `script` decides each answer from the request body and
    /// how many requests came before it.
    pub async fn start(
        options: LlmOptions,
        script: impl Fn(&Value, usize) -> Behaviour + Send + Sync + 'static,
    ) -> LlmDouble {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            options,
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LlmDouble {
            url: format!("http://{addr}/v1"),
            shared,
            task,
        }
    }

    /// The base URL, with `/v1`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every chat request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// The most requests it held at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

/// The shot code a request is about (`SHT-00002`), from its user message.
pub fn shot_of(request: &Value) -> String {
    let text = request["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    text.find("SHT-")
        .map(|at| text[at..].chars().take(9).collect())
        .unwrap_or_default()
}

async fn models() -> Response {
    axum::Json(recorded("models.json")).into_response()
}

fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn completion(content: Option<&str>, finish: &str) -> Value {
    let mut body = recorded("chat_json_schema.json");
    body["choices"][0]["message"]["content"] = content.map_or(Value::Null, Value::from);
    body["choices"][0]["finish_reason"] = Value::from(finish);
    body["id"] = Value::from(format!("chatcmpl-{}", rand::random::<u64>()));
    body
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let response = answer(&shared, &headers, &body).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn answer(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let n = {
        let mut requests = shared.requests.lock().expect("lock");
        requests.push(Recorded {
            authorization: authorization.clone(),
            body: parsed.clone().unwrap_or(Value::Null),
        });
        requests.len() - 1
    };
    if !shared.options.delay.is_zero() {
        tokio::time::sleep(shared.options.delay).await;
    }
    if let Some(key) = &shared.options.key {
        let given = authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("");
        if given != key {
            let mut error = recorded("chat_wrong_key.json");
            if shared.options.echo_key {
                error["error"]["message"] = Value::from(format!("Invalid API Key: {given}"));
            }
            return json_response(401, &error);
        }
    }
    let Some(request) = parsed else {
        return json_response(500, &recorded("chat_malformed_body.json"));
    };
    if request.get("messages").and_then(Value::as_array).is_none() {
        return json_response(400, &recorded("chat_no_messages.json"));
    }
    if shared.options.reject_json_schema && request["response_format"]["type"] == "json_schema" {
        // llama-cpp-python's server.
        return json_response(
            500,
            &json!({"error": {"message": "response_format type 'json_schema' is not supported", "type": "internal_server_error", "param": null, "code": null}}),
        );
    }
    match (shared.script)(&request, n) {
        Behaviour::Answer(content) => json_response(200, &completion(Some(&content), "stop")),
        Behaviour::Cut => json_response(200, &recorded("chat_cut_by_max_tokens.json")),
        Behaviour::Refusal(why) => {
            let mut body = completion(None, "stop");
            body["choices"][0]["message"]["refusal"] = Value::from(why);
            json_response(200, &body)
        }
        Behaviour::OffSpec(content) => {
            let mut body = completion(Some(&content), "");
            body["service_tier"] = Value::from("flex-experimental");
            json_response(200, &body)
        }
        Behaviour::LlamaError(status, message) => {
            let kind = if status >= 500 {
                "server_error"
            } else {
                "invalid_request_error"
            };
            json_response(
                status,
                &json!({"error": {"code": status, "message": message, "type": kind}}),
            )
        }
        Behaviour::OpenAiError(status, message) => {
            let (kind, code) = match status {
                429 => ("requests", Value::from("rate_limit_exceeded")),
                401 => ("invalid_request_error", Value::from("invalid_api_key")),
                _ => ("server_error", Value::Null),
            };
            json_response(
                status,
                &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
            )
        }
        Behaviour::OllamaError(status, message) => json_response(
            status,
            &json!({"error": {"message": message, "type": "api_error", "param": null, "code": null}}),
        ),
        Behaviour::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Behaviour::NotJson => (StatusCode::OK, "<html>proxy error</html>").into_response(),
    }
}
