//! ComfyUI's history entry of one prompt: how it ended and which files it wrote.
//!
//! `GET /history/{id}` answers `{}` until the entry is written, then
//! `{"<id>": {prompt: [number, id, graph, extra_data, outputs_to_execute], outputs,
//! status: {status_str, completed, messages: [[type, data], ..]}, meta}}`.
//! `outputs[node]` lists files under `images` (also videos and animated WEBP, marked
//! `animated: [true]`); custom video nodes use `gifs`, newer ones `video(s)`. Other
//! keys (`text` from PreviewAny, `audio`) are not files a render keeps.

use serde_json::Value;

use super::OutputFile;
use super::error::node_order;

/// Output keys whose entries are `{filename, subfolder, type}` files.
const FILE_KEYS: [&str; 4] = ["images", "gifs", "video", "videos"];

/// How a prompt ended, by its history entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `status_str: "success"` (or no status but files).
    Success,
    /// A node raised (`execution_error` among the status messages).
    Error {
        node_id: String,
        node_type: String,
        exception_type: String,
        message: String,
    },
    /// `execution_interrupted` among the status messages.
    Interrupted { node_id: Option<String> },
}

/// The parts of a history entry a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HistoryEntry {
    pub outcome: Outcome,
    /// Nodes listed by `execution_cached`.
    pub cached_nodes: Vec<String>,
    /// Every file of every output node, by node id then in listed order.
    pub files: Vec<OutputFile>,
}

/// Parse a `/history/{id}` body; `Ok(None)` while the entry is not written (`{}`).
pub(crate) fn parse_history(body: &[u8], prompt_id: &str) -> Result<Option<HistoryEntry>, String> {
    let answer: Value =
        serde_json::from_slice(body).map_err(|err| format!("history is not json: {err}"))?;
    let Some(entries) = answer.as_object() else {
        return Err("history is not a json object".into());
    };
    match entries.get(prompt_id) {
        Some(entry) => parse_entry(entry).map(Some),
        None => Ok(None),
    }
}

/// One prompt's entry.
pub(crate) fn parse_entry(entry: &Value) -> Result<HistoryEntry, String> {
    let outputs = entry
        .get("outputs")
        .and_then(Value::as_object)
        .ok_or("history entry without an 'outputs' object")?;
    let mut node_ids: Vec<&String> = outputs.keys().collect();
    node_ids.sort_by(|a, b| node_order(a, b));
    let mut files = Vec::new();
    for node_id in node_ids {
        files.extend(node_files(node_id, &outputs[node_id.as_str()])?);
    }

    let status = entry.get("status");
    let status_str = status
        .and_then(|status| status.get("status_str"))
        .and_then(Value::as_str);
    let messages: &[Value] = status
        .and_then(|status| status.get("messages"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let message = |kind: &str| {
        messages.iter().find_map(|message| {
            let pair = message.as_array()?;
            (pair.first()?.as_str()? == kind).then(|| pair.get(1).unwrap_or(&Value::Null))
        })
    };
    let text = |data: &Value, key: &str| {
        data.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let outcome = if let Some(data) = message("execution_error") {
        Outcome::Error {
            node_id: text(data, "node_id"),
            node_type: text(data, "node_type"),
            exception_type: text(data, "exception_type"),
            message: text(data, "exception_message"),
        }
    } else if let Some(data) = message("execution_interrupted") {
        Outcome::Interrupted {
            node_id: data
                .get("node_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    } else {
        match status_str {
            Some("success") | None => Outcome::Success,
            Some(other) => Outcome::Error {
                node_id: String::new(),
                node_type: String::new(),
                exception_type: "status".into(),
                message: format!("history status '{other}' without an error message"),
            },
        }
    };
    let cached_nodes = message("execution_cached")
        .and_then(|data| data.get("nodes"))
        .and_then(Value::as_array)
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|node| node.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(HistoryEntry {
        outcome,
        cached_nodes,
        files,
    })
}

/// The files of one output node. `animated` is a list of flags: one per file when
/// the lengths agree, else one for the whole node.
fn node_files(node_id: &str, output: &Value) -> Result<Vec<OutputFile>, String> {
    let flags: Vec<bool> = output
        .get("animated")
        .and_then(Value::as_array)
        .map(|flags| {
            flags
                .iter()
                .map(|flag| flag.as_bool() == Some(true))
                .collect()
        })
        .unwrap_or_default();
    let mut files = Vec::new();
    for key in FILE_KEYS {
        let Some(entries) = output.get(key).and_then(Value::as_array) else {
            continue;
        };
        for (index, entry) in entries.iter().enumerate() {
            let field = |name: &str| entry.get(name).and_then(Value::as_str);
            let Some(filename) = field("filename") else {
                return Err(format!(
                    "history output of node {node_id}: '{key}' entry without a filename"
                ));
            };
            let animated = if flags.len() == entries.len() {
                flags[index]
            } else {
                flags.iter().any(|flag| *flag) || key == "gifs"
            };
            files.push(OutputFile {
                node_id: node_id.to_owned(),
                filename: filename.to_owned(),
                subfolder: field("subfolder").unwrap_or_default().to_owned(),
                kind: field("type").unwrap_or("output").to_owned(),
                animated,
            });
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> Vec<u8> {
        let path = format!("{}/../../shared/comfyui/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    fn file(node: &str, name: &str, subfolder: &str, kind: &str, animated: bool) -> OutputFile {
        OutputFile {
            node_id: node.into(),
            filename: name.into(),
            subfolder: subfolder.into(),
            kind: kind.into(),
            animated,
        }
    }

    #[test]
    fn empty_history_means_not_written_yet() {
        for name in ["history_ok_immediately.json", "history_ok_on_success.json"] {
            assert_eq!(
                parse_history(&recorded(name), "cd7ba80e-8301-4df4-9fc1-034de93320a9"),
                Ok(None)
            );
        }
        // Another prompt's entry is not ours.
        assert_eq!(
            parse_history(&recorded("history_ok.json"), "other"),
            Ok(None)
        );
        assert!(parse_history(b"[]", "x").is_err());
        assert!(parse_history(b"{", "x").is_err());
    }

    #[test]
    fn a_successful_entry_lists_its_image() {
        let entry = parse_history(
            &recorded("history_ok.json"),
            "cd7ba80e-8301-4df4-9fc1-034de93320a9",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            entry,
            HistoryEntry {
                outcome: Outcome::Success,
                cached_nodes: vec![],
                files: vec![file("3", "fixture_ok_00001_.png", "", "output", false)],
            }
        );
    }

    #[test]
    fn a_cached_entry_points_at_the_earlier_file() {
        let entry = parse_history(
            &recorded("history_ok_cached.json"),
            "c17203f9-fbf6-4a56-8012-6c28cf3d50bf",
        )
        .unwrap()
        .unwrap();
        assert_eq!(entry.cached_nodes, vec!["1", "2", "3"]);
        assert_eq!(
            entry.files,
            vec![file("3", "fixture_ok_00001_.png", "", "output", false)]
        );
    }

    #[test]
    fn video_and_animated_webp_are_flagged() {
        let entry = parse_history(
            &recorded("history_video.json"),
            "7e97177c-bfe9-477c-a46a-20735e98bcc3",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            entry.files,
            vec![
                file("4", "fixture_shot_00001_.mp4", "video", "output", true),
                file("5", "fixture_anim_00001_.webp", "", "output", true),
            ]
        );
    }

    #[test]
    fn previews_are_temp_files() {
        let entry = parse_history(
            &recorded("history_loadimage.json"),
            "2d5f7bda-93ed-4ddd-bcd9-507546f61b31",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            entry.files,
            vec![
                file("4", "fixture_load_00001_.png", "shots", "output", false),
                file("5", "ComfyUI_temp_yocyk_00001_.png", "", "temp", false),
            ]
        );
    }

    #[test]
    fn a_runtime_error_entry_names_node_and_exception() {
        let entry = parse_history(
            &recorded("history_runtime_error.json"),
            "120f581b-b810-4d37-bc29-4863ee1ee3b6",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            entry.outcome,
            Outcome::Error {
                node_id: "1".into(),
                node_type: "ComfyMathExpression".into(),
                exception_type: "ZeroDivisionError".into(),
                message: "division by zero".into(),
            }
        );
        assert!(entry.files.is_empty());
        let ckpt = parse_history(
            &recorded("history_runtime_error_ckpt.json"),
            "eecc98c7-cd56-4e56-b1b4-fa4a0467775d",
        )
        .unwrap()
        .unwrap();
        let Outcome::Error { node_type, .. } = &ckpt.outcome else {
            panic!("{:?}", ckpt.outcome);
        };
        assert_eq!(node_type, "CheckpointLoaderSimple");
    }

    #[test]
    fn an_interrupted_entry_names_the_node() {
        let entry = parse_history(
            &recorded("history_interrupted.json"),
            "8f871983-7b16-4b39-90b8-82152cd4a632",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            entry.outcome,
            Outcome::Interrupted {
                node_id: Some("3".into())
            }
        );
        assert!(entry.files.is_empty());
    }

    #[test]
    fn text_outputs_are_not_files_and_a_nameless_file_is_an_error() {
        let entry: Value = serde_json::json!({
            "outputs": {"2": {"text": ["24.0"]}},
            "status": {"status_str": "success", "completed": true, "messages": []}
        });
        assert!(parse_entry(&entry).unwrap().files.is_empty());
        let broken: Value = serde_json::json!({"outputs": {"2": {"images": [{"type": "output"}]}}});
        assert_eq!(
            parse_entry(&broken).unwrap_err(),
            "history output of node 2: 'images' entry without a filename"
        );
    }
}
