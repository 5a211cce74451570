//! ComfyUI's websocket messages, parsed into what a run needs.
//!
//! Text frames are `{"type": .., "data": {..}}`. The ones about a prompt carry
//! `data.prompt_id`; `status` (queue size, and the socket's `sid` in the first one),
//! `progress_state` (the whole node-state map, sent very often) and `feature_flags`
//! are chatty and carry nothing a run needs, so they parse to [`ServerMessage::Other`].
//!
//! Binary frames start with a `u32be` event type:
//! - 1 (`PREVIEW_IMAGE`): `u32be format (1 JPEG, 2 PNG) | image`; no prompt id, it
//!   belongs to the prompt running for this client;
//! - 4 (`PREVIEW_IMAGE_WITH_METADATA`, once the client announced
//!   `supports_preview_metadata`): `u32be json_len | json {node_id, prompt_id,
//!   display_node_id, parent_node_id, real_node_id, image_type} | image`;
//! - others (3 is progress text) are ignored.

use serde_json::Value;

use super::ImageFormat;

/// One text message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerMessage {
    /// The first `status` of a connection names the socket (`sid`).
    Status {
        /// The socket's id as the server knows it (our client id).
        sid: Option<String>,
    },
    /// `feature_flags`: the server's answer to ours.
    FeatureFlags,
    /// `execution_start`.
    ExecutionStart { prompt_id: String },
    /// `execution_cached`: nodes that will not run.
    ExecutionCached {
        prompt_id: String,
        nodes: Vec<String>,
    },
    /// `executing`: a node started; `node: None` means the prompt is done.
    Executing {
        prompt_id: Option<String>,
        node: Option<String>,
    },
    /// `progress`: a node's progress bar.
    Progress {
        prompt_id: Option<String>,
        node: Option<String>,
        value: u64,
        max: u64,
    },
    /// `executed`: an output node's UI output.
    Executed { prompt_id: String, node: String },
    /// `execution_success`.
    ExecutionSuccess { prompt_id: String },
    /// `execution_error`: a node raised.
    ExecutionError {
        prompt_id: String,
        node_id: String,
        node_type: String,
        exception_type: String,
        exception_message: String,
    },
    /// `execution_interrupted`.
    ExecutionInterrupted {
        prompt_id: String,
        node_id: Option<String>,
    },
    /// Anything else (`progress_state`, extension messages).
    Other,
}

impl ServerMessage {
    /// The prompt the message is about, if it names one.
    pub(crate) fn prompt_id(&self) -> Option<&str> {
        match self {
            ServerMessage::ExecutionStart { prompt_id }
            | ServerMessage::ExecutionCached { prompt_id, .. }
            | ServerMessage::Executed { prompt_id, .. }
            | ServerMessage::ExecutionSuccess { prompt_id }
            | ServerMessage::ExecutionError { prompt_id, .. }
            | ServerMessage::ExecutionInterrupted { prompt_id, .. } => Some(prompt_id),
            ServerMessage::Executing { prompt_id, .. }
            | ServerMessage::Progress { prompt_id, .. } => prompt_id.as_deref(),
            ServerMessage::Status { .. } | ServerMessage::FeatureFlags | ServerMessage::Other => {
                None
            }
        }
    }
}

/// Parse a text frame. Unknown types are [`ServerMessage::Other`]; a known type with
/// a missing or mistyped field is an error naming it.
pub(crate) fn parse_text(text: &str) -> Result<ServerMessage, String> {
    let message: Value = serde_json::from_str(text)
        .map_err(|err| format!("websocket message is not json: {err}"))?;
    let kind = message
        .get("type")
        .and_then(Value::as_str)
        .ok_or("websocket message without a 'type'")?;
    let empty = Value::Null;
    let data = message.get("data").unwrap_or(&empty);
    let field = |name: &str| -> Result<String, String> {
        id_text(data.get(name)).ok_or_else(|| format!("websocket '{kind}' message: no '{name}'"))
    };
    Ok(match kind {
        "status" => ServerMessage::Status {
            sid: id_text(data.get("sid")),
        },
        "feature_flags" => ServerMessage::FeatureFlags,
        "execution_start" => ServerMessage::ExecutionStart {
            prompt_id: field("prompt_id")?,
        },
        "execution_cached" => ServerMessage::ExecutionCached {
            prompt_id: field("prompt_id")?,
            nodes: data
                .get("nodes")
                .and_then(Value::as_array)
                .map(|nodes| nodes.iter().filter_map(|n| id_text(Some(n))).collect())
                .unwrap_or_default(),
        },
        "executing" => ServerMessage::Executing {
            prompt_id: id_text(data.get("prompt_id")),
            node: id_text(data.get("node")),
        },
        "progress" => ServerMessage::Progress {
            prompt_id: id_text(data.get("prompt_id")),
            node: id_text(data.get("node")),
            value: count(data.get("value")),
            max: count(data.get("max")),
        },
        "executed" => ServerMessage::Executed {
            prompt_id: field("prompt_id")?,
            node: field("node")?,
        },
        "execution_success" => ServerMessage::ExecutionSuccess {
            prompt_id: field("prompt_id")?,
        },
        "execution_error" => ServerMessage::ExecutionError {
            prompt_id: field("prompt_id")?,
            node_id: id_text(data.get("node_id")).unwrap_or_default(),
            node_type: id_text(data.get("node_type")).unwrap_or_default(),
            exception_type: id_text(data.get("exception_type")).unwrap_or_default(),
            exception_message: id_text(data.get("exception_message"))
                .unwrap_or_default()
                .trim()
                .to_owned(),
        },
        "execution_interrupted" => ServerMessage::ExecutionInterrupted {
            prompt_id: field("prompt_id")?,
            node_id: id_text(data.get("node_id")),
        },
        _ => ServerMessage::Other,
    })
}

/// A string as it is, a number as its digits (node ids are strings, but be lenient);
/// `null`, absence and other values are `None`.
fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A progress count: an integer, or a float rounded (some nodes send 0.0).
fn count(value: Option<&Value>) -> u64 {
    match value {
        Some(Value::Number(number)) => number.as_u64().unwrap_or_else(|| {
            let float = number.as_f64().unwrap_or(0.0);
            if float.is_finite() && float > 0.0 {
                // `as` saturates, which is what a progress count wants.
                float.round() as u64
            } else {
                0
            }
        }),
        _ => 0,
    }
}

/// One binary frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BinaryFrame {
    /// A preview image; `prompt_id` only with metadata.
    Preview {
        format: ImageFormat,
        prompt_id: Option<String>,
        bytes: Vec<u8>,
    },
    /// Another event type, ignored.
    Other { event_type: u32 },
}

/// Event type of a legacy preview frame.
const PREVIEW_IMAGE: u32 = 1;
/// Event type of a preview frame with metadata.
const PREVIEW_IMAGE_WITH_METADATA: u32 = 4;

/// Parse a binary frame; an error names what is wrong with its header.
pub(crate) fn parse_binary(frame: &[u8]) -> Result<BinaryFrame, String> {
    let event_type = be_u32(frame, 0).ok_or("binary websocket frame shorter than 4 bytes")?;
    match event_type {
        PREVIEW_IMAGE => {
            let format = match be_u32(frame, 4) {
                Some(1) => ImageFormat::Jpeg,
                Some(2) => ImageFormat::Png,
                Some(other) => {
                    return Err(format!("preview frame with unknown image format {other}"));
                }
                None => return Err("preview frame shorter than its 8-byte header".into()),
            };
            Ok(BinaryFrame::Preview {
                format,
                prompt_id: None,
                bytes: frame[8..].to_vec(),
            })
        }
        PREVIEW_IMAGE_WITH_METADATA => {
            let json_len = be_u32(frame, 4).ok_or("preview frame shorter than its header")?;
            let json_end = usize::try_from(json_len)
                .ok()
                .and_then(|len| len.checked_add(8))
                .filter(|end| *end <= frame.len())
                .ok_or_else(|| {
                    format!("preview frame metadata of {json_len} bytes runs past the frame")
                })?;
            let metadata: Value = serde_json::from_slice(&frame[8..json_end])
                .map_err(|err| format!("preview frame metadata is not json: {err}"))?;
            let image_type = metadata
                .get("image_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png");
            let format = match image_type {
                "image/jpeg" | "image/jpg" => ImageFormat::Jpeg,
                "image/png" => ImageFormat::Png,
                other => return Err(format!("preview frame with image type '{other}'")),
            };
            Ok(BinaryFrame::Preview {
                format,
                prompt_id: id_text(metadata.get("prompt_id")),
                bytes: frame[json_end..].to_vec(),
            })
        }
        other => Ok(BinaryFrame::Other { event_type: other }),
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded_path(name: &str) -> String {
        format!("{}/../../shared/comfyui/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn recorded(name: &str) -> Vec<u8> {
        let path = recorded_path(name);
        std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    /// The server's text messages of a recorded websocket log, as sent.
    fn server_texts(name: &str) -> Vec<String> {
        String::from_utf8(recorded(name))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|line| line["dir"] == "server->client" && line["frame"] == "text")
            .map(|line| line["msg"].to_string())
            .collect()
    }

    fn parsed(name: &str) -> Vec<ServerMessage> {
        server_texts(name)
            .iter()
            .map(|text| parse_text(text).unwrap())
            .filter(|message| *message != ServerMessage::Other)
            .collect()
    }

    #[test]
    fn every_recorded_message_parses() {
        for name in [
            "ws_ok.jsonl",
            "ws_ok_cached.jsonl",
            "ws_no_client_id.jsonl",
            "ws_loadimage.jsonl",
            "ws_video.jsonl",
            "ws_binary.jsonl",
            "ws_binary_meta.jsonl",
            "ws_runtime_error.jsonl",
            "ws_runtime_error_ckpt.jsonl",
            "ws_interrupt.jsonl",
        ] {
            for text in server_texts(name) {
                parse_text(&text).unwrap_or_else(|err| panic!("{name}: {err}: {text}"));
            }
        }
    }

    #[test]
    fn a_successful_run_reads_in_order() {
        let id = "cd7ba80e-8301-4df4-9fc1-034de93320a9".to_owned();
        let executing = |node: &str| ServerMessage::Executing {
            prompt_id: Some(id.clone()),
            node: Some(node.into()),
        };
        let status = ServerMessage::Status { sid: None };
        assert_eq!(
            parsed("ws_ok.jsonl"),
            vec![
                ServerMessage::Status {
                    sid: Some("5880ce5f-c55d-4ba6-bca9-1c6b69b72f6d".into())
                },
                status.clone(),
                status.clone(),
                ServerMessage::ExecutionStart {
                    prompt_id: id.clone()
                },
                ServerMessage::ExecutionCached {
                    prompt_id: id.clone(),
                    nodes: vec![]
                },
                executing("1"),
                executing("2"),
                executing("3"),
                ServerMessage::Executed {
                    prompt_id: id.clone(),
                    node: "3".into()
                },
                ServerMessage::ExecutionSuccess {
                    prompt_id: id.clone()
                },
                status,
                ServerMessage::Executing {
                    prompt_id: Some(id.clone()),
                    node: None
                },
            ]
        );
    }

    #[test]
    fn a_cached_run_lists_every_node() {
        let messages = parsed("ws_ok_cached.jsonl");
        assert!(messages.contains(&ServerMessage::ExecutionCached {
            prompt_id: "c17203f9-fbf6-4a56-8012-6c28cf3d50bf".into(),
            nodes: vec!["1".into(), "2".into(), "3".into()],
        }));
        assert!(
            !messages
                .iter()
                .any(|m| matches!(m, ServerMessage::Executing { node: Some(_), .. }))
        );
    }

    #[test]
    fn runtime_error_and_interrupt_name_the_node() {
        let error = parsed("ws_runtime_error.jsonl")
            .into_iter()
            .find(|m| matches!(m, ServerMessage::ExecutionError { .. }))
            .unwrap();
        assert_eq!(
            error,
            ServerMessage::ExecutionError {
                prompt_id: "120f581b-b810-4d37-bc29-4863ee1ee3b6".into(),
                node_id: "1".into(),
                node_type: "ComfyMathExpression".into(),
                exception_type: "ZeroDivisionError".into(),
                exception_message: "division by zero".into(),
            }
        );
        let interrupted: Vec<ServerMessage> = parsed("ws_interrupt.jsonl")
            .into_iter()
            .filter(|m| matches!(m, ServerMessage::ExecutionInterrupted { .. }))
            .collect();
        assert_eq!(
            interrupted,
            vec![
                ServerMessage::ExecutionInterrupted {
                    prompt_id: "8f871983-7b16-4b39-90b8-82152cd4a632".into(),
                    node_id: Some("3".into()),
                },
                ServerMessage::ExecutionInterrupted {
                    prompt_id: "7419aaac-a015-4354-a472-65279d671769".into(),
                    node_id: Some("2".into()),
                },
            ]
        );
    }

    #[test]
    fn progress_counts_read_as_integers() {
        let progress = parsed("ws_binary.jsonl")
            .into_iter()
            .find(|m| matches!(m, ServerMessage::Progress { .. }))
            .unwrap();
        assert_eq!(
            progress,
            ServerMessage::Progress {
                prompt_id: Some("689d6ffa-8274-45c2-8e98-71c47fd7a066".into()),
                node: Some("2".into()),
                value: 0,
                max: 1,
            }
        );
        let float = parse_text(
            r#"{"type":"progress","data":{"value":3.0,"max":20.0,"node":"5","prompt_id":"p"}}"#,
        )
        .unwrap();
        assert_eq!(
            float,
            ServerMessage::Progress {
                prompt_id: Some("p".into()),
                node: Some("5".into()),
                value: 3,
                max: 20,
            }
        );
    }

    #[test]
    fn a_known_message_without_its_prompt_id_is_an_error() {
        let err = parse_text(r#"{"type":"execution_start","data":{}}"#).unwrap_err();
        assert_eq!(err, "websocket 'execution_start' message: no 'prompt_id'");
        assert!(parse_text("not json").is_err());
        assert_eq!(
            parse_text(r#"{"type":"crystools.monitor","data":{}}"#),
            Ok(ServerMessage::Other)
        );
    }

    /// The recorded frame's header (from `first_bytes_hex`) followed by the payload
    /// saved next to it.
    fn recorded_frame(log: &str) -> (Vec<u8>, Value) {
        let line = String::from_utf8(recorded(log))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .find(|line| line["frame"] == "binary")
            .unwrap();
        let payload = recorded(line["saved_as"].as_str().unwrap());
        let header_hex = line["first_bytes_hex"].as_str().unwrap();
        let header: Vec<u8> = (0..header_hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&header_hex[i..i + 2], 16).unwrap())
            .collect();
        let mut frame = Vec::new();
        if line["event_type"] == 4 {
            frame.extend_from_slice(&header[..8]);
            frame.extend_from_slice(serde_json::to_string(&line["metadata"]).unwrap().as_bytes());
            let json_len = u32::try_from(frame.len() - 8).unwrap();
            frame[4..8].copy_from_slice(&json_len.to_be_bytes());
        } else {
            frame.extend_from_slice(&header[..8]);
        }
        frame.extend_from_slice(&payload);
        // The recorded header bytes are the frame's first bytes.
        assert_eq!(&frame[..4], &header[..4]);
        (frame, line)
    }

    #[test]
    fn legacy_preview_frame_has_no_prompt() {
        let (frame, line) = recorded_frame("ws_binary.jsonl");
        assert_eq!(
            frame.len(),
            usize::try_from(line["len"].as_u64().unwrap()).unwrap()
        );
        assert_eq!(
            parse_binary(&frame).unwrap(),
            BinaryFrame::Preview {
                format: ImageFormat::Png,
                prompt_id: None,
                bytes: recorded("ws_binary_frame0.png"),
            }
        );
    }

    #[test]
    fn metadata_preview_frame_names_its_prompt() {
        let (frame, _) = recorded_frame("ws_binary_meta.jsonl");
        assert_eq!(
            parse_binary(&frame).unwrap(),
            BinaryFrame::Preview {
                format: ImageFormat::Png,
                prompt_id: Some("a6d99795-6207-4d8f-a410-99f3f22a537f".into()),
                bytes: recorded("ws_binary_meta_frame0.png"),
            }
        );
    }

    #[test]
    fn broken_frames_are_errors_not_panics() {
        assert!(parse_binary(&[0, 0]).is_err());
        assert!(parse_binary(&[0, 0, 0, 1, 0, 0]).is_err());
        assert!(parse_binary(&[0, 0, 0, 1, 0, 0, 0, 9]).is_err());
        assert!(parse_binary(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff, b'{']).is_err());
        assert!(parse_binary(&[0, 0, 0, 4, 0, 0, 0, 1, b'{']).is_err());
        assert_eq!(
            parse_binary(&[0, 0, 0, 3, 1, 2]).unwrap(),
            BinaryFrame::Other { event_type: 3 }
        );
        let jpeg = parse_binary(&[0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xd8]).unwrap();
        assert_eq!(
            jpeg,
            BinaryFrame::Preview {
                format: ImageFormat::Jpeg,
                prompt_id: None,
                bytes: vec![0xff, 0xd8],
            }
        );
    }
}
