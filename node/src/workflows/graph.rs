//! The API-format graph itself: parsing, structure checks (every node has a class and
//! inputs, every link points at a node that exists, no cycles) and small helpers.
//! Nothing here needs `/object_info`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::WorkflowError;

/// Parse a graph file; `file` names it in errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<Value, WorkflowError> {
    let graph: Value = serde_json::from_str(text).map_err(|error| WorkflowError::Graph {
        file: file.to_owned(),
        message: format!(
            "not valid JSON: line {}, column {}: {}",
            error.line(),
            error.column(),
            json_message(&error)
        ),
    })?;
    if graph.get("nodes").is_some() && graph.get("links").is_some() {
        return Err(WorkflowError::Graph {
            file: file.to_owned(),
            message: "this is a UI workflow (nodes/links), not the API format: export it \
                      from ComfyUI with \"Save (API)\""
                .to_owned(),
        });
    }
    check_structure(&graph).map_err(|message| WorkflowError::Graph {
        file: file.to_owned(),
        message,
    })?;
    Ok(graph)
}

/// serde_json's message without its own " at line X column Y" suffix.
fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// True for a `["<node id>", <output index>]` link (ComfyUI treats every list as one).
pub(crate) fn is_link(value: &Value) -> bool {
    value.is_array()
}

/// A well-formed link's (node id, output index).
pub(crate) fn link(value: &Value) -> Option<(&str, usize)> {
    let items = value.as_array()?;
    if items.len() != 2 {
        return None;
    }
    let node = items[0].as_str()?;
    let index = usize::try_from(items[1].as_u64()?).ok()?;
    Some((node, index))
}

/// Every node's (id, class), sorted by id.
pub(crate) fn classes(graph: &Value) -> Vec<(String, String)> {
    graph
        .as_object()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|(id, node)| {
                    let class = node.get("class_type")?.as_str()?;
                    Some((id.clone(), class.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Check the shape ComfyUI needs before it looks at any class: an object of nodes,
/// each with a `class_type` string and an `inputs` object; every list input a
/// `["<existing node id>", <index>]` link; no cycles.
pub(crate) fn check_structure(graph: &Value) -> Result<(), String> {
    let Some(nodes) = graph.as_object() else {
        return Err("the graph is not a JSON object of nodes".to_owned());
    };
    if nodes.is_empty() {
        return Err("the graph has no nodes".to_owned());
    }
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, node) in nodes {
        let Some(node_object) = node.as_object() else {
            return Err(format!("node '{id}': is not an object"));
        };
        match node_object.get("class_type") {
            Some(Value::String(class)) if !class.trim().is_empty() => {}
            Some(_) => return Err(format!("node '{id}': class_type is not a class name")),
            None => return Err(format!("node '{id}': class_type is missing")),
        }
        let Some(inputs) = node_object.get("inputs").and_then(Value::as_object) else {
            return Err(format!("node '{id}': inputs is missing or not an object"));
        };
        let sources = edges.entry(id.as_str()).or_default();
        for (input, value) in inputs {
            if !is_link(value) {
                continue;
            }
            let Some((source, _)) = link(value) else {
                return Err(format!(
                    "node '{id}' input '{input}': {value} is not a [\"<node id>\", <output index>] link"
                ));
            };
            if !nodes.contains_key(source) {
                return Err(format!(
                    "node '{id}' input '{input}': links to node '{source}', which is not in the graph"
                ));
            }
            sources.push(source);
        }
    }
    if let Some(node) = find_cycle(&edges) {
        return Err(format!("node '{node}': is part of a dependency cycle"));
    }
    Ok(())
}

/// A node on a cycle of `node → the nodes it reads from`, if there is one.
fn find_cycle<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<&'a str> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for &start in edges.keys() {
        if marks.contains_key(start) {
            continue;
        }
        // Iterative DFS: (node, index of the next source to visit).
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Visiting);
        while let Some((node, next)) = stack.pop() {
            let sources = edges.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(&source) = sources.get(next) {
                stack.push((node, next + 1));
                match marks.get(source) {
                    Some(Mark::Visiting) => return Some(source),
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(source, Mark::Visiting);
                        stack.push((source, 0));
                    }
                }
            } else {
                marks.insert(node, Mark::Done);
            }
        }
    }
    None
}
