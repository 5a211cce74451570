//! Why a ComfyUI call failed, and the parser of ComfyUI's 400 validation answer.
//!
//! A rejected prompt comes back as `{"error": {type, message, details, extra_info},
//! "node_errors": {..}}` in one of two shapes:
//! - **missing_node_type** (an unknown class): `node_errors` is empty; the node is in
//!   `error.extra_info.node_id` / `class_type`;
//! - **prompt_outputs_failed_validation**: `node_errors[<id>] = {errors: [{type,
//!   message, details, extra_info: {input_name, ..}}], dependent_outputs, class_type}`.
//!   A missing model is `value_not_in_list` on the loader only.
//!
//! Other types (`no_prompt`, `invalid_prompt_id`, `prompt_no_outputs`) carry no node.

use std::fmt;
use std::time::Duration;

use reelmesh_protocol::jobs::Fault;
use reelmesh_protocol::wire::truncate_utf8;
use serde_json::Value;

/// How many node errors a [`ComfyError::Rejected`] message spells out.
const NODE_ERRORS_SHOWN: usize = 6;
/// Longest error body kept in [`ComfyError::Http`].
pub(crate) const MAX_ERROR_BODY: usize = 1024;

/// Why a ComfyUI call or run failed. The messages are lowercase and name the address,
/// node or input concerned, so that they can be shown as a job's error as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComfyError {
    /// No connection, or no answer in time.
    #[error("comfyui at {url}: unreachable ({reason})")]
    Unreachable {
        /// The server's address.
        url: String,
        /// What went wrong ("connection refused (os error 111)").
        reason: String,
    },
    /// ComfyUI refused the workflow (400 validation error).
    #[error(
        "comfyui rejected the workflow: {message}{}",
        list_node_errors(node_errors)
    )]
    Rejected {
        /// The error's message ("prompt outputs failed validation").
        message: String,
        /// The nodes at fault.
        node_errors: Vec<GraphNodeError>,
    },
    /// A node failed while running (`execution_error`).
    #[error("comfyui failed at node {node_id} ({node_type}): {exception_type}: {message}")]
    Execution {
        /// The node.
        node_id: String,
        /// Its class.
        node_type: String,
        /// The Python exception's type (`ZeroDivisionError`).
        exception_type: String,
        /// The exception's message.
        message: String,
    },
    /// Someone else interrupted the prompt (`execution_interrupted` we did not ask for).
    #[error("comfyui interrupted the prompt{}", at_node(node_id.as_deref()))]
    Interrupted {
        /// The node it stopped at.
        node_id: Option<String>,
    },
    /// The run's cancel token fired.
    #[error("render canceled")]
    Canceled,
    /// The prompt finished without output files (for the requested nodes).
    #[error("comfyui finished prompt {prompt_id} without output files")]
    NoOutput {
        /// The prompt.
        prompt_id: String,
    },
    /// The run took longer than its timeout.
    #[error("timed out after {} s waiting for {stage}", seconds(*after))]
    Timeout {
        /// The run's timeout.
        after: Duration,
        /// What was awaited: `connection`, `queue`, `execution`, `history`, `outputs`.
        stage: String,
    },
    /// ComfyUI forgot the prompt (it restarted): neither queued nor in the history.
    #[error(
        "comfyui lost prompt {prompt_id}: it is neither queued nor in the history (restarted?)"
    )]
    Lost {
        /// The prompt.
        prompt_id: String,
    },
    /// An unexpected status (a malformed body gets 500 text/plain).
    #[error("comfyui at {url}: http status {status}{}", body_suffix(body))]
    Http {
        /// The address asked.
        url: String,
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// An answer that could not be understood.
    #[error("comfyui at {url}: {reason}")]
    Protocol {
        /// The address asked.
        url: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// Our own request was unusable (an address that is not http, a file name with a
    /// path in it); nothing was sent.
    #[error("{reason}")]
    BadInput {
        /// What is wrong, naming the value.
        reason: String,
    },
}

impl ComfyError {
    /// What kind of fault it is for a job, by its type: a ComfyUI that went away
    /// or forgot the prompt is transient; a graph it refuses or a node that raises
    /// is this node's (another ComfyUI may have the model, the node class, the
    /// memory); the rest counts an attempt.
    #[must_use]
    pub fn fault(&self) -> Fault {
        match self {
            ComfyError::Unreachable { .. }
            | ComfyError::Lost { .. }
            | ComfyError::Interrupted { .. } => Fault::Transient,
            ComfyError::Timeout { stage, .. } if stage == "connection" || stage == "queue" => {
                Fault::Transient
            }
            ComfyError::Http { status, .. } if *status >= 500 => Fault::Transient,
            // Values out of range are the job's (its size, frames, steps) or its
            // graph's: no other ComfyUI takes them either.
            ComfyError::Rejected { node_errors, .. }
                if !node_errors.is_empty()
                    && node_errors
                        .iter()
                        .all(|e| OUT_OF_RANGE.contains(&e.kind.as_str())) =>
            {
                Fault::Job
            }
            ComfyError::Rejected { .. }
            | ComfyError::Execution { .. }
            | ComfyError::NoOutput { .. }
            | ComfyError::Http { .. } => Fault::Node,
            ComfyError::Timeout { .. }
            | ComfyError::Canceled
            | ComfyError::Protocol { .. }
            | ComfyError::BadInput { .. } => Fault::Other,
        }
    }
}

/// One node's validation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNodeError {
    /// The node's id in the graph.
    pub node_id: String,
    /// Its class (`CheckpointLoaderSimple`).
    pub class_type: String,
    /// The input at fault, when the error is about one.
    pub input: Option<String>,
    /// What is wrong, lowercase ("value not in list: 'x.safetensors' not in []").
    pub message: String,
    /// ComfyUI's type for it (`value_not_in_list`, `value_bigger_than_max`,
    /// `missing_node_type`, ...): what decides whose fault it is.
    pub kind: String,
}

/// ComfyUI's error types that say a value given to an input is out of its range:
/// the same graph with the same values is refused by every ComfyUI.
const OUT_OF_RANGE: [&str; 2] = ["value_bigger_than_max", "value_smaller_than_min"];

impl fmt::Display for GraphNodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.node_id)?;
        if !self.class_type.is_empty() {
            write!(f, " ({})", self.class_type)?;
        }
        if let Some(input) = &self.input {
            write!(f, ", input {input}")?;
        }
        write!(f, ": {}", self.message)
    }
}

fn list_node_errors(errors: &[GraphNodeError]) -> String {
    let mut text = String::new();
    for error in errors.iter().take(NODE_ERRORS_SHOWN) {
        text.push_str("; ");
        text.push_str(&error.to_string());
    }
    if errors.len() > NODE_ERRORS_SHOWN {
        text.push_str(&format!("; and {} more", errors.len() - NODE_ERRORS_SHOWN));
    }
    text
}

fn at_node(node_id: Option<&str>) -> String {
    node_id.map_or_else(String::new, |node| format!(" at node {node}"))
}

fn seconds(after: Duration) -> String {
    let secs = after.as_secs_f64();
    if (secs - secs.round()).abs() < 1e-9 {
        format!("{secs:.0}")
    } else {
        format!("{secs:.1}")
    }
}

fn body_suffix(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(": {}", body.replace(['\n', '\r'], " "))
    }
}

pub(crate) use crate::lowercase_first;

/// The start of an error body, as text.
pub(crate) fn error_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    truncate_utf8(&text, MAX_ERROR_BODY).to_owned()
}

/// A 400 answer of POST /prompt as [`ComfyError::Rejected`]; `None` when the body is
/// not ComfyUI's error JSON.
pub(crate) fn parse_rejection(body: &[u8]) -> Option<ComfyError> {
    let answer: Value = serde_json::from_slice(body).ok()?;
    let error = answer.get("error")?;
    let error_type = text_of(error.get("type"));
    let mut message = lowercase_first(&text_of(error.get("message")));
    if message.is_empty() {
        message = error_type.replace('_', " ");
    }
    let mut node_errors = Vec::new();
    if let Some(nodes) = answer.get("node_errors").and_then(Value::as_object) {
        for (node_id, node) in nodes {
            let class_type = text_of(node.get("class_type"));
            let errors = node.get("errors").and_then(Value::as_array);
            for entry in errors.into_iter().flatten() {
                node_errors.push(node_error(node_id, &class_type, entry));
            }
        }
    }
    if node_errors.is_empty() {
        let extra = error.get("extra_info");
        let node_id = text_of(extra.and_then(|extra| extra.get("node_id")));
        if !node_id.is_empty() {
            // missing_node_type: the node is only named in extra_info.
            node_errors.push(GraphNodeError {
                node_id,
                class_type: text_of(extra.and_then(|extra| extra.get("class_type"))),
                input: None,
                message: "node class not found (its custom node is not installed?)".into(),
                kind: text_of(error.get("type")),
            });
        }
    }
    // Numeric ids in numeric order ("3" before "10"), as a person reads a graph.
    node_errors.sort_by(|a, b| node_order(&a.node_id, &b.node_id));
    Some(ComfyError::Rejected {
        message,
        node_errors,
    })
}

/// One entry of `node_errors[<id>].errors` in words: the input from
/// `extra_info.input_name`, the message followed by the details (without the input
/// name ComfyUI repeats at their start).
fn node_error(node_id: &str, class_type: &str, entry: &Value) -> GraphNodeError {
    let input = entry
        .get("extra_info")
        .and_then(|extra| extra.get("input_name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut message = lowercase_first(&text_of(entry.get("message")));
    if message.is_empty() {
        message = text_of(entry.get("type")).replace('_', " ");
    }
    let mut details = text_of(entry.get("details"));
    if let Some(input) = &input {
        for prefix in [format!("{input}: "), format!("{input}, ")] {
            if let Some(rest) = details.strip_prefix(&prefix) {
                details = rest.to_owned();
            }
        }
        if details == *input {
            details.clear();
        }
    }
    let details = details.trim();
    if !details.is_empty() {
        message = format!("{message}: {details}");
    }
    GraphNodeError {
        node_id: node_id.to_owned(),
        class_type: class_type.to_owned(),
        input,
        message,
        kind: text_of(entry.get("type")),
    }
}

/// A JSON string as it is, a number or other value as JSON text, nothing as "".
fn text_of(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Node ids that are numbers sort as numbers, before any others.
pub(crate) fn node_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> Vec<u8> {
        let path = format!("{}/../../shared/comfyui/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    fn rejected(name: &str) -> (String, Vec<GraphNodeError>) {
        match parse_rejection(&recorded(name)) {
            Some(ComfyError::Rejected {
                message,
                node_errors,
            }) => (message, node_errors),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn missing_model_names_the_loader_and_its_input() {
        let (message, errors) = rejected("prompt_error_missing_model_sd.json");
        assert_eq!(message, "prompt outputs failed validation");
        assert_eq!(
            errors,
            vec![GraphNodeError {
                node_id: "4".into(),
                class_type: "CheckpointLoaderSimple".into(),
                input: Some("ckpt_name".into()),
                message: "value not in list: 'sd_xl_base_1.0.safetensors' not in []".into(),
                kind: "value_not_in_list".into(),
            }]
        );
        let error = parse_rejection(&recorded("prompt_error_missing_model_sd.json")).unwrap();
        assert_eq!(
            error.to_string(),
            "comfyui rejected the workflow: prompt outputs failed validation; node 4 \
             (CheckpointLoaderSimple), input ckpt_name: value not in list: \
             'sd_xl_base_1.0.safetensors' not in []"
        );
    }

    #[test]
    fn missing_flux_models_name_every_loader_input() {
        let (_, errors) = rejected("prompt_error_missing_model_flux.json");
        let named: Vec<(&str, &str, Option<&str>)> = errors
            .iter()
            .map(|e| {
                (
                    e.node_id.as_str(),
                    e.class_type.as_str(),
                    e.input.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            named,
            vec![
                ("10", "UNETLoader", Some("unet_name")),
                ("11", "DualCLIPLoader", Some("clip_name1")),
                ("11", "DualCLIPLoader", Some("clip_name2")),
                ("12", "VAELoader", Some("vae_name")),
            ]
        );
        assert_eq!(
            errors[3].message,
            "value not in list: 'ae.safetensors' not in ['pixel_space']"
        );
    }

    #[test]
    fn unknown_class_names_the_node_from_extra_info() {
        let (message, errors) = rejected("prompt_error_unknown_node.json");
        assert_eq!(
            message,
            "node 'NoSuchNodeClass' not found. The custom node may not be installed."
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].node_id, "2");
        assert_eq!(errors[0].class_type, "NoSuchNodeClass");
        assert_eq!(errors[0].input, None);
    }

    #[test]
    fn every_input_error_shape_names_node_and_input() {
        let cases = [
            (
                "prompt_error_bad_value.json",
                "invalid_input_type",
                "1",
                "EmptyImage",
                "width",
                "failed to convert an input value to a INT value: wide, invalid literal for \
                 int() with base 10: 'wide'",
            ),
            (
                "prompt_error_missing_input.json",
                "required_input_missing",
                "1",
                "EmptyImage",
                "width",
                "required input is missing",
            ),
            (
                "prompt_error_bad_combo.json",
                "value_not_in_list",
                "2",
                "ImageScale",
                "upscale_method",
                "value not in list: 'magic' not in ['nearest-exact', 'bilinear', 'area', \
                 'bicubic', 'lanczos']",
            ),
            (
                "prompt_error_bad_link.json",
                "exception_during_inner_validation",
                "2",
                "ImageInvert",
                "images",
                "exception when validating inner node: '99'",
            ),
            (
                "prompt_error_wrong_link_type.json",
                "return_type_mismatch",
                "3",
                "SaveImage",
                "images",
                "return type mismatch between linked nodes: received_type(LATENT) mismatch \
                 input_type(IMAGE)",
            ),
        ];
        for (file, kind, node, class, input, message) in cases {
            let (_, errors) = rejected(file);
            assert_eq!(
                errors,
                vec![GraphNodeError {
                    node_id: node.into(),
                    class_type: class.into(),
                    input: Some(input.into()),
                    message: message.into(),
                    kind: kind.into(),
                }],
                "{file}"
            );
        }
    }

    #[test]
    fn whose_fault_a_rejection_is_follows_comfyuis_error_types() {
        // Values out of range: no ComfyUI takes them, the job fails everywhere.
        let range = parse_rejection(&recorded("prompt_error_out_of_range.json")).unwrap();
        assert_eq!(range.fault(), Fault::Job);
        // A model, a choice or a node class this ComfyUI lacks: another may have it.
        for file in [
            "prompt_error_missing_model_sd.json",
            "prompt_error_missing_model_flux.json",
            "prompt_error_bad_combo.json",
            "prompt_error_unknown_node.json",
            "prompt_error_bad_link.json",
        ] {
            let error = parse_rejection(&recorded(file)).unwrap();
            assert_eq!(error.fault(), Fault::Node, "{file}: {error}");
        }
        let gone = ComfyError::Unreachable {
            url: "http://127.0.0.1:8188".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(gone.fault(), Fault::Transient);
        let lost = ComfyError::Lost {
            prompt_id: "p".into(),
        };
        assert_eq!(lost.fault(), Fault::Transient);
    }

    #[test]
    fn out_of_range_lists_both_inputs() {
        let (_, errors) = rejected("prompt_error_out_of_range.json");
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            vec![
                "node 1 (EmptyImage), input width: value 0 smaller than min of 1",
                "node 1 (EmptyImage), input height: value 99999 bigger than max of 16384",
            ]
        );
    }

    #[test]
    fn errors_without_nodes_keep_the_message() {
        for (file, expected) in [
            ("prompt_error_no_outputs.json", "prompt has no outputs"),
            ("prompt_error_no_prompt.json", "no prompt provided"),
            (
                "prompt_error_bad_prompt_id.json",
                "prompt_id must be a valid UUID",
            ),
        ] {
            let (message, errors) = rejected(file);
            assert_eq!(message, expected, "{file}");
            assert!(errors.is_empty(), "{file}: {errors:?}");
        }
    }

    #[test]
    fn a_500_text_body_is_not_a_rejection() {
        assert_eq!(
            parse_rejection(&recorded("prompt_error_malformed_json.txt")),
            None
        );
    }

    #[test]
    fn messages_read_as_job_errors() {
        let timeout = ComfyError::Timeout {
            after: Duration::from_secs(600),
            stage: "execution".into(),
        };
        assert_eq!(
            timeout.to_string(),
            "timed out after 600 s waiting for execution"
        );
        let http = ComfyError::Http {
            url: "http://127.0.0.1:8188/prompt".into(),
            status: 500,
            body: error_body(&recorded("prompt_error_malformed_json.txt")),
        };
        assert_eq!(
            http.to_string(),
            "comfyui at http://127.0.0.1:8188/prompt: http status 500: 500 Internal Server \
             Error  Server got itself in trouble"
        );
        assert_eq!(
            ComfyError::Interrupted {
                node_id: Some("3".into())
            }
            .to_string(),
            "comfyui interrupted the prompt at node 3"
        );
    }
}
