//! The plain HTTP calls: bounded bodies, statuses checked, errors naming the address.
//!
//! No request carries an `Origin` header (reqwest adds none): ComfyUI answers 403 to
//! an Origin whose host:port differs from Host. Every body is read in chunks up to a
//! limit, so a confused server cannot make the node buffer without bound.

use serde_json::Value;

use super::error::{ComfyError, error_body};
use super::history::{HistoryEntry, parse_history};
use super::{Inner, OutputFile};

/// Where the prompts are, by `GET /queue`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QueueState {
    pub running: Vec<String>,
    pub pending: Vec<String>,
}

/// What `POST /prompt` answered with 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued {
    pub prompt_id: String,
    pub number: u64,
    /// Output nodes that failed validation while others passed (ComfyUI then runs
    /// the good outputs only).
    pub node_errors: Vec<String>,
}

/// `http://host:port[/prefix]` without a trailing slash, or why not.
pub(crate) fn normalize_base_url(input: &str) -> Result<String, ComfyError> {
    let bad = |why: &str| ComfyError::BadInput {
        reason: format!("comfyui address '{input}': {why}"),
    };
    let url = reqwest::Url::parse(input.trim()).map_err(|err| bad(&err.to_string()))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(bad(
                "https is not supported (this build speaks plain http to a local comfyui)",
            ));
        }
        _ => return Err(bad("not an http:// address")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("an address with a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the address are not supported"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The innermost cause of an error, lowercase at the start: "connection refused (os
/// error 111)" rather than reqwest's "error sending request for url (..)".
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    super::error::lowercase_first(&cause.to_string())
}

impl Inner {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A transport error as [`ComfyError::Unreachable`].
    pub(crate) fn unreachable(&self, err: &reqwest::Error) -> ComfyError {
        let reason = if err.is_timeout() {
            "no answer in time".to_owned()
        } else {
            root_cause(err)
        };
        ComfyError::Unreachable {
            url: self.base_url.clone(),
            reason,
        }
    }

    /// Send a request; any status but 200 is [`ComfyError::Http`]. Returns the
    /// response for the body to be read.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ComfyError> {
        let response = request.send().await.map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let body = self
                .read_body(response, url, 64 * 1024)
                .await
                .unwrap_or_default();
            return Err(ComfyError::Http {
                url: url.to_owned(),
                status: status.as_u16(),
                body: error_body(&body),
            });
        }
        Ok(response)
    }

    /// The whole body, at most `limit` bytes.
    pub(crate) async fn read_body(
        &self,
        mut response: reqwest::Response,
        url: &str,
        limit: u64,
    ) -> Result<Vec<u8>, ComfyError> {
        let too_large = |size: u64| ComfyError::Protocol {
            url: url.to_owned(),
            reason: format!("body of {size} bytes or more is over the {limit}-byte limit"),
        };
        let announced = response.content_length().unwrap_or(0);
        if announced > limit {
            return Err(too_large(announced));
        }
        let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.unreachable(&err))?
        {
            let size = (body.len() + chunk.len()) as u64;
            if size > limit {
                return Err(too_large(size));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn json_of(url: &str, body: &[u8]) -> Result<Value, ComfyError> {
        serde_json::from_slice(body).map_err(|err| ComfyError::Protocol {
            url: url.to_owned(),
            reason: format!("answer is not json: {err}"),
        })
    }

    pub(crate) async fn get_json(&self, path: &str) -> Result<Value, ComfyError> {
        let url = self.url(path);
        let request = self.http.get(&url).timeout(self.limits.request_timeout);
        let response = self.send(request, &url).await?;
        let body = self
            .read_body(response, &url, self.limits.max_json_bytes as u64)
            .await?;
        Inner::json_of(&url, &body)
    }

    /// POST a JSON body to a route that answers 200 with an empty body.
    pub(crate) async fn post_empty(&self, path: &str, body: &Value) -> Result<(), ComfyError> {
        let url = self.url(path);
        let request = self
            .http
            .post(&url)
            .json(body)
            .timeout(self.limits.request_timeout);
        self.send(request, &url).await.map(drop)
    }

    /// `POST /prompt`: 200 → [`Queued`]; 400 → [`ComfyError::Rejected`]; other
    /// statuses → [`ComfyError::Http`].
    pub(crate) async fn post_prompt(&self, body: &Value) -> Result<Queued, ComfyError> {
        let url = self.url("/prompt");
        let response = self
            .http
            .post(&url)
            .json(body)
            .timeout(self.limits.request_timeout)
            .send()
            .await
            .map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        let answer = self
            .read_body(response, &url, self.limits.max_json_bytes as u64)
            .await?;
        match status.as_u16() {
            200 => parse_queued(&url, &answer),
            400 => {
                Err(
                    super::error::parse_rejection(&answer).unwrap_or_else(|| ComfyError::Http {
                        url: url.clone(),
                        status: 400,
                        body: error_body(&answer),
                    }),
                )
            }
            other => Err(ComfyError::Http {
                url,
                status: other,
                body: error_body(&answer),
            }),
        }
    }

    /// `GET /queue`: the prompt ids running and pending.
    pub(crate) async fn queue(&self) -> Result<QueueState, ComfyError> {
        let answer = self.get_json("/queue").await?;
        let ids =
            |key: &str| -> Result<Vec<String>, ComfyError> {
                let items = answer.get(key).and_then(Value::as_array).ok_or_else(|| {
                    ComfyError::Protocol {
                        url: self.url("/queue"),
                        reason: format!("answer without a '{key}' list"),
                    }
                })?;
                // Items are positional: [number, prompt_id, prompt, extra_data, outputs].
                Ok(items
                    .iter()
                    .filter_map(|item| item.get(1).and_then(Value::as_str).map(str::to_owned))
                    .collect())
            };
        Ok(QueueState {
            running: ids("queue_running")?,
            pending: ids("queue_pending")?,
        })
    }

    /// `GET /history/{id}`: the entry, or `None` while it is not written.
    pub(crate) async fn history(
        &self,
        prompt_id: &str,
    ) -> Result<Option<HistoryEntry>, ComfyError> {
        let url = self.url(&format!("/history/{prompt_id}"));
        let request = self.http.get(&url).timeout(self.limits.request_timeout);
        let response = self.send(request, &url).await?;
        let body = self
            .read_body(response, &url, self.limits.max_json_bytes as u64)
            .await?;
        parse_history(&body, prompt_id).map_err(|reason| ComfyError::Protocol { url, reason })
    }

    pub(crate) async fn view(&self, file: &OutputFile) -> Result<Vec<u8>, ComfyError> {
        let mut url =
            reqwest::Url::parse(&self.url("/view")).map_err(|err| ComfyError::BadInput {
                reason: format!("view url for '{}': {err}", file.filename),
            })?;
        url.query_pairs_mut()
            .append_pair("filename", &file.filename)
            .append_pair("subfolder", &file.subfolder)
            .append_pair("type", &file.kind);
        let shown = url.to_string();
        let response = self.send(self.http.get(url), &shown).await?;
        self.read_body(response, &shown, self.limits.max_output_bytes)
            .await
    }
}

fn parse_queued(url: &str, answer: &[u8]) -> Result<Queued, ComfyError> {
    let value = Inner::json_of(url, answer)?;
    let protocol = |reason: &str| ComfyError::Protocol {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let prompt_id = value
        .get("prompt_id")
        .and_then(Value::as_str)
        .ok_or_else(|| protocol("prompt answer without a 'prompt_id'"))?
        .to_owned();
    let number = value
        .get("number")
        .and_then(Value::as_u64)
        .ok_or_else(|| protocol("prompt answer without a 'number'"))?;
    let node_errors = value
        .get("node_errors")
        .and_then(Value::as_object)
        .map(|errors| errors.keys().cloned().collect())
        .unwrap_or_default();
    Ok(Queued {
        prompt_id,
        number,
        node_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalized_and_only_http_is_taken() {
        assert_eq!(
            normalize_base_url("http://127.0.0.1:8188/").unwrap(),
            "http://127.0.0.1:8188"
        );
        assert_eq!(
            normalize_base_url(" http://gpu-box:8188/comfy/ ").unwrap(),
            "http://gpu-box:8188/comfy"
        );
        let ftp = normalize_base_url("ftp://127.0.0.1:8188").unwrap_err();
        assert_eq!(
            ftp.to_string(),
            "comfyui address 'ftp://127.0.0.1:8188': not an http:// address"
        );
        assert!(
            normalize_base_url("https://127.0.0.1:8188")
                .unwrap_err()
                .to_string()
                .contains("https is not supported")
        );
        assert!(matches!(
            normalize_base_url("127.0.0.1:8188"),
            Err(ComfyError::BadInput { .. })
        ));
        assert!(normalize_base_url("http://127.0.0.1:8188/?x=1").is_err());
    }

    #[test]
    fn the_recorded_prompt_answer_parses() {
        let path = format!(
            "{}/../../shared/comfyui/prompt_ok_response.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(path).unwrap();
        assert_eq!(
            parse_queued("u", &body).unwrap(),
            Queued {
                prompt_id: "cd7ba80e-8301-4df4-9fc1-034de93320a9".into(),
                number: 0,
                node_errors: vec![],
            }
        );
        assert!(matches!(
            parse_queued("u", b"{}"),
            Err(ComfyError::Protocol { .. })
        ));
    }
}
