//! The LLM client: OpenAI's chat completions API through async-openai, against
//! OpenAI or any compatible server (Ollama, LM Studio, vLLM, llama.cpp's server).
//!
//! Servers differ from OpenAI in ways a client must survive (see
//! `../shared/llm/README.md`): llama-server's `error.code` is a number, which
//! async-openai's typed error cannot decode, so errors are classified by the HTTP
//! status (async-openai keeps it for the errors it decodes; for the others the
//! body's numeric code is the status llama-server answered with); typed responses
//! fail on fields slightly off the spec, so the answer is taken as raw JSON and
//! read typed first, by hand second; schemas are enforced only in part, so every
//! answer is checked again (`reelmesh_protocol::advice::check`); llama-cpp-python's
//! server refuses `json_schema` and takes `{type: json_object, schema}`, so one
//! refusal of the OpenAI form switches this client to that form.
//!
//! The API key is sent to the configured server only. It is never logged, never
//! put in an error, never written to the document: any text a server sends back is
//! scrubbed of it first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionResponse,
    FinishReason, ResponseFormat, ResponseFormatJsonSchema,
};
use serde_json::Value;

use super::{ApiKey, LlmConfig};

/// Why one request got no usable answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AskError {
    /// The server answered with an HTTP error.
    Status {
        /// The HTTP status.
        status: u16,
        /// What it said (scrubbed of the key).
        message: String,
    },
    /// No answer within the timeout.
    Timeout,
    /// The server could not be reached or the connection broke.
    Transport(String),
    /// The answer's body was not a chat completion.
    Malformed(String),
    /// The model refused.
    Refused(String),
    /// The answer was cut at the token limit.
    Cut,
}

impl AskError {
    /// Worth asking again: rate limits, server errors, time-outs, broken
    /// connections, and answers that may come out right the next time. A refused
    /// key, a wrong model or URL, or a request the server rejects is not.
    #[must_use]
    pub fn retryable(&self) -> bool {
        match self {
            AskError::Status { status, .. } => matches!(status, 408 | 409 | 429) || *status >= 500,
            _ => true,
        }
    }
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::Status { status, message } => {
                let hint = match status {
                    401 | 403 => " (check OPENAI_API_KEY)",
                    404 => " (check the LLM URL and the model name)",
                    429 => " (rate limited)",
                    _ => "",
                };
                write!(f, "the LLM server answered {status}: {message}{hint}")
            }
            AskError::Timeout => f.write_str("the LLM server did not answer in time"),
            AskError::Transport(why) => write!(f, "could not reach the LLM server: {why}"),
            AskError::Malformed(why) => write!(f, "the LLM server's answer is malformed: {why}"),
            AskError::Refused(why) => write!(f, "the model refused: {why}"),
            AskError::Cut => f.write_str("the answer was cut at the token limit"),
        }
    }
}

/// A chat completion's message as read: its text, and how it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The message's content.
    pub content: String,
    /// The model the server says answered.
    pub model: String,
    /// Read by hand because the typed response did not decode.
    pub raw_fallback: bool,
    /// Tokens used, if the server said.
    pub total_tokens: Option<u64>,
}

/// One configured LLM.
pub struct Llm {
    client: Client<OpenAIConfig>,
    model: String,
    key: Option<ApiKey>,
    /// The server refused the OpenAI `json_schema` form: use `json_object`.
    json_object: AtomicBool,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Llm {
    /// A client for `config` (requests time out after `config.timeout`).
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS roots).
    pub fn new(config: &LlmConfig) -> Result<Llm, String> {
        crate::tls();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("the HTTP client for the LLM: {e}"))?;
        let mut openai = OpenAIConfig::new().with_api_base(config.base_url.trim_end_matches('/'));
        // Local servers take no key; async-openai sends an empty bearer then.
        if let Some(key) = &config.api_key {
            openai = openai.with_api_key(key.expose());
        }
        // async-openai's default stack retries 429s and 5xxs itself (three times):
        // the advisor retries on its own terms (its attempts, its backoff, and the
        // answers that fail our checks too), so the transport sends each request
        // once.
        let client = Client::with_config(openai)
            .with_http_client(http.clone())
            .with_http_service(async_openai::middleware::ReqwestService::new(http));
        Ok(Llm {
            client,
            model: config.model.clone(),
            key: config.api_key.clone(),
            json_object: AtomicBool::new(false),
        })
    }

    /// The model asked.
    #[must_use]
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Ask once: `system` and `user` messages, the answer held to `schema`.
    ///
    /// # Errors
    /// [`AskError`].
    pub async fn ask(&self, system: &str, user: &str, schema: &Value) -> Result<Answer, AskError> {
        let json_object = self.json_object.load(Ordering::Relaxed);
        let body = self.request(system, user, schema, json_object)?;
        match self.post(&body).await {
            Err(AskError::Status { status, message })
                if !json_object
                    && (status == 400 || status >= 500)
                    && mentions_format(&message) =>
            {
                // llama-cpp-python's server: `json_schema` unsupported; its own form.
                tracing::info!(
                    status,
                    "the LLM server refused json_schema: using json_object with the schema"
                );
                self.json_object.store(true, Ordering::Relaxed);
                let body = self.request(system, user, schema, true)?;
                self.post(&body).await
            }
            other => other,
        }
    }

    /// The request: typed (async-openai), then as JSON; the `json_object` form is
    /// not in OpenAI's types, so it is put in the JSON.
    fn request(
        &self,
        system: &str,
        user: &str,
        schema: &Value,
        json_object: bool,
    ) -> Result<Value, AskError> {
        let request = CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: vec![
                ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage::from(
                    system,
                )),
                ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage::from(user)),
            ],
            response_format: Some(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: Some("The workflow advice for one shot".into()),
                    name: "workflow_advice".into(),
                    schema: schema.clone(),
                    strict: Some(true),
                },
            }),
            max_completion_tokens: Some(400),
            temperature: Some(0.2),
            ..CreateChatCompletionRequest::default()
        };
        let mut body = serde_json::to_value(&request)
            .map_err(|e| AskError::Malformed(format!("building the request: {e}")))?;
        // Servers that predate max_completion_tokens read max_tokens.
        body["max_tokens"] = Value::from(400);
        if json_object {
            body["response_format"] =
                serde_json::json!({ "type": "json_object", "schema": schema });
        }
        Ok(body)
    }

    async fn post(&self, body: &Value) -> Result<Answer, AskError> {
        let value: Value = self
            .client
            .chat()
            .create_byot(body)
            .await
            .map_err(|e| self.classify(e))?;
        read_answer(&value)
    }

    fn classify(&self, error: OpenAIError) -> AskError {
        let scrub = |text: &str| scrub(text, self.key.as_ref());
        match error {
            OpenAIError::ApiError(api) => {
                // A 5xx's body comes whole as the message: read its own message out.
                let message = serde_json::from_str::<Value>(&api.api_error.message)
                    .ok()
                    .and_then(|body| {
                        let error = body.get("error")?;
                        error
                            .get("message")
                            .and_then(Value::as_str)
                            .or_else(|| error.as_str())
                            .map(str::to_owned)
                    })
                    .unwrap_or(api.api_error.message);
                AskError::Status {
                    status: api.status_code.as_u16(),
                    message: scrub(&shorten(&message)),
                }
            }
            OpenAIError::Reqwest(e) if e.is_timeout() => AskError::Timeout,
            OpenAIError::Reqwest(e) => AskError::Transport(scrub(&e.without_url().to_string())),
            // An error body async-openai could not decode (llama-server's numeric
            // `error.code`, Ollama's `{"error": "..."}`): the code is the status.
            OpenAIError::JSONDeserialize(_, content) => {
                match serde_json::from_str::<Value>(&content)
                    .ok()
                    .and_then(|v| v.get("error").cloned())
                {
                    Some(error) => {
                        let message = error
                            .get("message")
                            .and_then(Value::as_str)
                            .or_else(|| error.as_str())
                            .unwrap_or("no message");
                        let status = error
                            .get("code")
                            .and_then(Value::as_u64)
                            .and_then(|c| u16::try_from(c).ok())
                            .filter(|c| (400..600).contains(c))
                            .unwrap_or_else(|| status_of_type(&error));
                        AskError::Status {
                            status,
                            message: scrub(message),
                        }
                    }
                    None => AskError::Malformed(scrub(&shorten(&content))),
                }
            }
            other => AskError::Transport(scrub(&other.to_string())),
        }
    }
}

/// The status an error's `type` means, where a body gives no numeric code.
fn status_of_type(error: &Value) -> u16 {
    match error.get("type").and_then(Value::as_str).unwrap_or("") {
        "authentication_error" | "invalid_api_key" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "rate_limit_error" | "rate_limit_exceeded" => 429,
        "invalid_request_error" => 400,
        _ => 500,
    }
}

/// Whether a server's complaint is about `response_format`.
fn mentions_format(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("response_format") || m.contains("json_schema") || m.contains("response format")
}

/// `text` with the key replaced wherever it appears.
#[must_use]
pub fn scrub(text: &str, key: Option<&ApiKey>) -> String {
    match key.map(ApiKey::expose).filter(|k| k.len() >= 4) {
        Some(key) => text.replace(key, "[the API key]"),
        None => text.to_owned(),
    }
}

fn shorten(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// The first choice's message: typed when the body follows OpenAI's types, read
/// by hand when a field is off the spec (an empty `finish_reason`, an unknown
/// `service_tier`).
fn read_answer(value: &Value) -> Result<Answer, AskError> {
    let typed = <CreateChatCompletionResponse as serde::Deserialize>::deserialize(value);
    let (content, refusal, finish, model, tokens, raw) = match typed {
        Ok(response) => {
            let choice = response
                .choices
                .into_iter()
                .next()
                .ok_or_else(|| AskError::Malformed("no choices".into()))?;
            let finish = match choice.finish_reason {
                Some(FinishReason::Length) => "length",
                Some(FinishReason::ContentFilter) => "content_filter",
                _ => "stop",
            };
            (
                choice.message.content,
                choice.message.refusal,
                finish.to_owned(),
                response.model,
                response.usage.map(|u| u64::from(u.total_tokens)),
                false,
            )
        }
        Err(e) => {
            tracing::debug!("the chat completion did not decode typed ({e}); reading it raw");
            let choice = value.get("choices").and_then(|c| c.get(0)).ok_or_else(|| {
                AskError::Malformed(format!("no choices in {}", shorten(&value.to_string())))
            })?;
            let message = choice.get("message").cloned().unwrap_or(Value::Null);
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
            (
                text(message.get("content")),
                text(message.get("refusal")),
                text(choice.get("finish_reason")).unwrap_or_default(),
                text(value.get("model")).unwrap_or_default(),
                value
                    .get("usage")
                    .and_then(|u| u.get("total_tokens"))
                    .and_then(Value::as_u64),
                true,
            )
        }
    };
    if let Some(refusal) = refusal.filter(|r| !r.trim().is_empty()) {
        return Err(AskError::Refused(shorten(&refusal)));
    }
    if finish == "content_filter" {
        return Err(AskError::Refused(
            "the server's content filter stopped the answer".into(),
        ));
    }
    if finish == "length" {
        return Err(AskError::Cut);
    }
    let content = content
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| AskError::Malformed("the answer has no content".into()))?;
    Ok(Answer {
        content,
        model,
        raw_fallback: raw,
        total_tokens: tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(file: &str) -> Value {
        let path = format!("{}/../../shared/llm/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).expect("recorded")).expect("json")
    }

    #[test]
    fn recorded_answers_read_typed_cut_ones_say_so_and_off_spec_ones_read_raw() {
        let good = read_answer(&recorded("chat_json_schema.json")).expect("answer");
        assert_eq!(good.model, "tiny-json");
        assert!(good.content.contains("\"workflow\":\"fflf\""));
        assert_eq!(good.total_tokens, Some(155));
        assert!(!good.raw_fallback);
        assert_eq!(
            read_answer(&recorded("chat_cut_by_max_tokens.json")),
            Err(AskError::Cut)
        );
        // An empty finish_reason and an unknown service_tier: off OpenAI's types.
        let mut odd = recorded("chat_json_schema.json");
        odd["choices"][0]["finish_reason"] = Value::from("");
        odd["service_tier"] = Value::from("flex-experimental");
        let read = read_answer(&odd).expect("raw");
        assert!(read.raw_fallback);
        assert!(read.content.contains("fflf"));
        let mut refused = recorded("chat_json_schema.json");
        refused["choices"][0]["message"]["refusal"] = Value::from("I can't help with that.");
        refused["choices"][0]["message"]["content"] = Value::Null;
        assert!(matches!(read_answer(&refused), Err(AskError::Refused(_))));
    }

    #[test]
    fn the_key_is_scrubbed_from_server_text() {
        let key = ApiKey::new("sk-test-1234567890");
        let text = "Incorrect API key provided: sk-test-1234567890.";
        assert_eq!(
            scrub(text, Some(&key)),
            "Incorrect API key provided: [the API key]."
        );
        assert_eq!(format!("{key:?}"), "ApiKey(…)");
    }
}
