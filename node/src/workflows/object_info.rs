//! A ComfyUI server's `GET /object_info`: every node class with its inputs and
//! outputs, and the validation ComfyUI runs on a prompt before it queues it
//! (`execution.validate_inputs`), done here so a bad graph is caught before it is sent.
//!
//! Input specs come in the V1 form (`["INT", {min, max}]`, `[["a", "b"], {}]` for a
//! choice list) and the V3 form (`["COMBO", {"options": [...]}]`, dynamic combos whose
//! chosen option adds inputs named `<input>.<sub input>`, auto-growing inputs named
//! `<input>.<name>`). Shapes this parser does not know are accepted, not rejected.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{WorkflowError, graph};

/// A parsed `/object_info` answer.
#[derive(Debug, Clone, Default)]
pub struct ObjectInfo {
    classes: HashMap<String, ClassSpec>,
}

#[derive(Debug, Clone, Default)]
struct ClassSpec {
    inputs: Vec<InputDef>,
    outputs: Vec<String>,
    output_node: bool,
}

#[derive(Debug, Clone)]
struct InputDef {
    name: String,
    required: bool,
    spec: Spec,
}

#[derive(Debug, Clone)]
enum Spec {
    /// Primitive widget types and/or link types, comma separated (`FLOAT,INT`).
    Typed {
        types: Vec<String>,
        min: Option<f64>,
        max: Option<f64>,
    },
    /// A choice list.
    Combo { choices: Vec<Value> },
    /// A choice list the server does not know (remote combos): anything goes.
    OpenCombo,
    /// V3 dynamic combo: the value picks an option, which adds `<name>.<input>` inputs.
    DynamicCombo {
        options: Vec<(String, Vec<InputDef>)>,
    },
    /// V3 auto-growing inputs `<name>.<slot>`, the first `min` required.
    Autogrow {
        slots: Vec<String>,
        min: usize,
        template: Box<Spec>,
    },
    /// A shape this parser does not know.
    Unknown,
}

const PRIMITIVES: [&str; 4] = ["INT", "FLOAT", "STRING", "BOOLEAN"];

impl ObjectInfo {
    /// Parse the JSON body of `GET /object_info`.
    pub fn from_slice(bytes: &[u8]) -> Result<ObjectInfo, WorkflowError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|error| WorkflowError::ObjectInfo {
                message: format!("not valid JSON: {error}"),
            })?;
        ObjectInfo::from_value(value)
    }

    /// Parse an already decoded `/object_info` answer.
    pub fn from_value(value: Value) -> Result<ObjectInfo, WorkflowError> {
        let Value::Object(classes) = value else {
            return Err(WorkflowError::ObjectInfo {
                message: "not a JSON object of node classes".to_owned(),
            });
        };
        let classes = classes
            .into_iter()
            .map(|(name, spec)| (name, parse_class(&spec)))
            .collect();
        Ok(ObjectInfo { classes })
    }

    /// True when the server has this node class.
    pub fn has_class(&self, class: &str) -> bool {
        self.classes.contains_key(class)
    }

    /// The choice list of a class's combo input (for loaders: the model files the
    /// server has), or `None` when the class or input is unknown or not a combo.
    pub fn choices(&self, class: &str, input: &str) -> Option<Vec<String>> {
        let spec = self.classes.get(class)?;
        let def = spec.inputs.iter().find(|def| def.name == input)?;
        match &def.spec {
            Spec::Combo { choices } => Some(choices.iter().map(choice_text).collect()),
            _ => None,
        }
    }

    /// How many node classes the server has.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// Whether a class is an output node (`None` when the class is unknown).
    pub fn is_output_node(&self, class: &str) -> Option<bool> {
        self.classes.get(class).map(|spec| spec.output_node)
    }

    /// The output types of a class.
    pub fn outputs(&self, class: &str) -> Option<&[String]> {
        self.classes.get(class).map(|spec| spec.outputs.as_slice())
    }

    /// The type names of a class's input (`["INT"]`, `["IMAGE"]`, `["COMBO"]`).
    pub fn input_types(&self, class: &str, input: &str) -> Option<Vec<String>> {
        let spec = self.classes.get(class)?;
        let def = spec.inputs.iter().find(|def| def.name == input)?;
        Some(match &def.spec {
            Spec::Typed { types, .. } => types.clone(),
            Spec::Combo { .. } | Spec::OpenCombo => vec!["COMBO".to_owned()],
            Spec::DynamicCombo { .. } => vec!["COMFY_DYNAMICCOMBO_V3".to_owned()],
            Spec::Autogrow { .. } => vec!["COMFY_AUTOGROW_V3".to_owned()],
            Spec::Unknown => vec!["*".to_owned()],
        })
    }
}

fn choice_text(choice: &Value) -> String {
    match choice {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn parse_class(spec: &Value) -> ClassSpec {
    let inputs = spec.get("input").map(parse_inputs).unwrap_or_default();
    let outputs = spec
        .get("output")
        .and_then(Value::as_array)
        .map(|outputs| outputs.iter().map(output_type).collect())
        .unwrap_or_default();
    let output_node = spec
        .get("output_node")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    ClassSpec {
        inputs,
        outputs,
        output_node,
    }
}

fn output_type(output: &Value) -> String {
    match output {
        Value::String(name) => name.clone(),
        // An output that is a list of choices is a COMBO output.
        Value::Array(_) => "COMBO".to_owned(),
        other => other.to_string(),
    }
}

/// `{"required": {...}, "optional": {...}}` into input definitions.
fn parse_inputs(input: &Value) -> Vec<InputDef> {
    let mut defs = Vec::new();
    for (section, required) in [("required", true), ("optional", false)] {
        let Some(entries) = input.get(section).and_then(Value::as_object) else {
            continue;
        };
        for (name, spec) in entries {
            defs.push(InputDef {
                name: name.clone(),
                required,
                spec: parse_spec(spec),
            });
        }
    }
    defs
}

fn parse_spec(spec: &Value) -> Spec {
    let Some(items) = spec.as_array() else {
        return Spec::Unknown;
    };
    let empty = Map::new();
    let options = items.get(1).and_then(Value::as_object).unwrap_or(&empty);
    match items.first() {
        Some(Value::Array(choices)) => Spec::Combo {
            choices: choices.clone(),
        },
        Some(Value::String(kind)) => match kind.as_str() {
            "COMBO" => {
                if options.get("remote_combo").is_some() {
                    return Spec::OpenCombo;
                }
                match options.get("options").and_then(Value::as_array) {
                    Some(choices) => Spec::Combo {
                        choices: choices.clone(),
                    },
                    None => Spec::OpenCombo,
                }
            }
            "COMFY_DYNAMICCOMBO_V3" => parse_dynamic_combo(options),
            "COMFY_AUTOGROW_V3" => parse_autogrow(options),
            "COMFY_MATCHTYPE_V3" => {
                let allowed = options
                    .get("template")
                    .and_then(|template| template.get("allowed_types"))
                    .and_then(Value::as_str)
                    .unwrap_or("*");
                Spec::Typed {
                    types: split_types(allowed),
                    min: None,
                    max: None,
                }
            }
            other => Spec::Typed {
                types: split_types(other),
                min: options.get("min").and_then(Value::as_f64),
                max: options.get("max").and_then(Value::as_f64),
            },
        },
        _ => Spec::Unknown,
    }
}

fn parse_dynamic_combo(options: &Map<String, Value>) -> Spec {
    let Some(list) = options.get("options").and_then(Value::as_array) else {
        return Spec::Unknown;
    };
    let options = list
        .iter()
        .filter_map(|option| {
            let key = option.get("key")?.as_str()?.to_owned();
            let inputs = option.get("inputs").map(parse_inputs).unwrap_or_default();
            Some((key, inputs))
        })
        .collect();
    Spec::DynamicCombo { options }
}

fn parse_autogrow(options: &Map<String, Value>) -> Spec {
    let Some(template) = options.get("template") else {
        return Spec::Unknown;
    };
    let inner = template.get("input").map(parse_inputs).unwrap_or_default();
    let Some(first) = inner.into_iter().next() else {
        return Spec::Unknown;
    };
    let max = template
        .get("max")
        .and_then(Value::as_u64)
        .and_then(|max| usize::try_from(max).ok())
        .unwrap_or(0);
    let slots: Vec<String> = match template.get("names").and_then(Value::as_array) {
        Some(names) => names
            .iter()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect(),
        None => {
            let prefix = template
                .get("prefix")
                .and_then(Value::as_str)
                .unwrap_or(&first.name);
            (0..max).map(|index| format!("{prefix}{index}")).collect()
        }
    };
    let min = template
        .get("min")
        .and_then(Value::as_u64)
        .and_then(|min| usize::try_from(min).ok())
        .unwrap_or(0);
    Spec::Autogrow {
        slots,
        min,
        template: Box::new(first.spec),
    }
}

fn split_types(types: &str) -> Vec<String> {
    types
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// How bad a [`GraphIssue`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// ComfyUI would reject the prompt, or the node would fail.
    Error,
    /// Harmless for ComfyUI (it ignores it) but likely a mistake.
    Warning,
}

/// One problem ComfyUI's prompt validation would find.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphIssue {
    /// The node id (empty for the whole graph).
    pub node: String,
    /// Its class.
    pub class: String,
    /// The input, when the problem is one input.
    pub input: Option<String>,
    /// What is wrong.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

impl fmt::Display for GraphIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node.is_empty() {
            return f.write_str(&self.message);
        }
        write!(f, "node '{}' ({})", self.node, self.class)?;
        if let Some(input) = &self.input {
            write!(f, ", input '{input}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Validate a graph against `/object_info` like ComfyUI's `validate_inputs`. Combo
/// inputs for which `skip_choices(node, input)` is true (model files, uploaded
/// inputs) only need a string. Nodes of unknown classes are not checked (and links
/// from them are accepted): [`super::check`] reports the classes.
pub(crate) fn validate_graph(
    graph: &Value,
    info: &ObjectInfo,
    skip_choices: &dyn Fn(&str, &str) -> bool,
) -> Vec<GraphIssue> {
    let mut issues = Vec::new();
    if let Err(message) = graph::check_structure(graph) {
        issues.push(GraphIssue {
            node: String::new(),
            class: String::new(),
            input: None,
            message,
            severity: Severity::Error,
        });
        return issues;
    }
    let Some(nodes) = graph.as_object() else {
        return issues;
    };
    let mut has_output = false;
    let mut has_unknown = false;
    for (id, node) in nodes {
        let class = node
            .get("class_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(spec) = info.classes.get(class) else {
            has_unknown = true;
            continue;
        };
        has_output |= spec.output_node;
        let empty = Map::new();
        let inputs = node
            .get("inputs")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut checker = NodeChecker {
            graph,
            info,
            node: id,
            class,
            inputs,
            skip_choices,
            used: Vec::new(),
            issues: &mut issues,
        };
        checker.check_defs(&spec.inputs, "");
        let used = std::mem::take(&mut checker.used);
        for name in inputs.keys() {
            if !used.contains(name) {
                issues.push(GraphIssue {
                    node: id.clone(),
                    class: class.to_owned(),
                    input: Some(name.clone()),
                    message: "is not an input of this class (ComfyUI ignores it)".to_owned(),
                    severity: Severity::Warning,
                });
            }
        }
    }
    if !has_output && !has_unknown {
        issues.push(GraphIssue {
            node: String::new(),
            class: String::new(),
            input: None,
            message: "the graph has no output node (SaveImage, SaveVideo, ...)".to_owned(),
            severity: Severity::Error,
        });
    }
    issues
}

struct NodeChecker<'a> {
    graph: &'a Value,
    info: &'a ObjectInfo,
    node: &'a str,
    class: &'a str,
    inputs: &'a Map<String, Value>,
    skip_choices: &'a dyn Fn(&str, &str) -> bool,
    used: Vec<String>,
    issues: &'a mut Vec<GraphIssue>,
}

impl NodeChecker<'_> {
    fn issue(&mut self, input: &str, message: String) {
        self.issues.push(GraphIssue {
            node: self.node.to_owned(),
            class: self.class.to_owned(),
            input: Some(input.to_owned()),
            message,
            severity: Severity::Error,
        });
    }

    fn check_defs(&mut self, defs: &[InputDef], prefix: &str) {
        for def in defs {
            let key = format!("{prefix}{}", def.name);
            if let Spec::Autogrow {
                slots,
                min,
                template,
            } = &def.spec
            {
                for (index, slot) in slots.iter().enumerate() {
                    let slot_key = format!("{key}.{slot}");
                    self.check_one(&slot_key, template, def.required && index < *min);
                }
                continue;
            }
            self.check_one(&key, &def.spec, def.required);
        }
    }

    fn check_one(&mut self, key: &str, spec: &Spec, required: bool) {
        let Some(value) = self.inputs.get(key) else {
            if required {
                self.issue(key, "missing required input".to_owned());
            }
            return;
        };
        self.used.push(key.to_owned());
        if graph::is_link(value) {
            self.check_link(key, spec, value);
        } else {
            self.check_value(key, spec, value);
        }
    }

    fn check_link(&mut self, key: &str, spec: &Spec, value: &Value) {
        let Some((source, index)) = graph::link(value) else {
            self.issue(
                key,
                format!("{value} is not a [\"<node id>\", <output index>] link"),
            );
            return;
        };
        let Some(source_class) = self
            .graph
            .get(source)
            .and_then(|node| node.get("class_type"))
            .and_then(Value::as_str)
        else {
            self.issue(
                key,
                format!("links to node '{source}', which is not in the graph"),
            );
            return;
        };
        let Some(outputs) = self.info.outputs(source_class) else {
            // A custom class the server lacks: its outputs are unknown here.
            return;
        };
        let Some(received) = outputs.get(index) else {
            self.issue(
                key,
                format!(
                    "links to output {index} of node '{source}' ({source_class}), which has {} output(s)",
                    outputs.len()
                ),
            );
            return;
        };
        let accepted = match spec {
            Spec::Typed { types, .. } => types_match(received, types),
            Spec::Combo { .. } | Spec::OpenCombo => received == "COMBO" || received == "*",
            Spec::DynamicCombo { .. } => false,
            Spec::Autogrow { .. } | Spec::Unknown => true,
        };
        if !accepted {
            let wanted = match spec {
                Spec::Typed { types, .. } => types.join(","),
                _ => "a value".to_owned(),
            };
            self.issue(
                key,
                format!(
                    "gets {received} from node '{source}' ({source_class}) output {index}, needs {wanted}"
                ),
            );
        }
    }

    fn check_value(&mut self, key: &str, spec: &Spec, value: &Value) {
        match spec {
            Spec::Typed { types, min, max } => {
                if types.iter().any(|t| t == "*") {
                    return;
                }
                let primitives: Vec<&str> = types
                    .iter()
                    .map(String::as_str)
                    .filter(|t| PRIMITIVES.contains(t))
                    .collect();
                if primitives.is_empty() {
                    self.issue(
                        key,
                        format!(
                            "invalid value {value}: needs a link to a {} output",
                            types.join(",")
                        ),
                    );
                    return;
                }
                if !primitives.iter().any(|t| primitive_fits(t, value)) {
                    self.issue(
                        key,
                        format!(
                            "invalid value {value}: not a {} value",
                            primitives.join(" or ")
                        ),
                    );
                    return;
                }
                if let Some(number) = value.as_f64() {
                    if let Some(min) = min
                        && number < *min
                    {
                        self.issue(
                            key,
                            format!("invalid value {value}: below the minimum {min}"),
                        );
                    } else if let Some(max) = max
                        && number > *max
                    {
                        self.issue(
                            key,
                            format!("invalid value {value}: above the maximum {max}"),
                        );
                    }
                }
            }
            Spec::Combo { choices } => {
                if (self.skip_choices)(self.node, key) {
                    if !value.is_string() {
                        self.issue(key, format!("invalid value {value}: not a file name"));
                    }
                    return;
                }
                if !choices.iter().any(|choice| same_choice(choice, value)) {
                    self.issue(
                        key,
                        format!(
                            "invalid value {value}: not one of {}",
                            list_choices(choices)
                        ),
                    );
                }
            }
            Spec::OpenCombo | Spec::Autogrow { .. } | Spec::Unknown => {}
            Spec::DynamicCombo { options } => {
                let chosen = value
                    .as_str()
                    .and_then(|key| options.iter().find(|(option, _)| option == key));
                match chosen {
                    Some((_, defs)) => {
                        let prefix = format!("{key}.");
                        self.check_defs(defs, &prefix);
                    }
                    None => {
                        let keys: Vec<Value> = options
                            .iter()
                            .map(|(option, _)| Value::String(option.clone()))
                            .collect();
                        self.issue(
                            key,
                            format!("invalid value {value}: not one of {}", list_choices(&keys)),
                        );
                    }
                }
            }
        }
    }
}

/// ComfyUI's `validate_node_input`: equal, a wildcard, or overlapping type sets.
fn types_match(received: &str, wanted: &[String]) -> bool {
    let received: Vec<&str> = received.split(',').map(str::trim).collect();
    received.contains(&"*")
        || wanted.iter().any(|w| w == "*")
        || received.iter().any(|r| wanted.iter().any(|w| w == r))
}

fn primitive_fits(kind: &str, value: &Value) -> bool {
    match kind {
        "INT" => value.is_i64() || value.is_u64(),
        "FLOAT" => value.is_number(),
        "STRING" => value.is_string(),
        "BOOLEAN" => value.is_boolean(),
        _ => false,
    }
}

fn same_choice(choice: &Value, value: &Value) -> bool {
    choice == value || matches!((choice.as_f64(), value.as_f64()), (Some(a), Some(b)) if a == b)
}

fn list_choices(choices: &[Value]) -> String {
    if choices.is_empty() {
        return "[] (the server lists none)".to_owned();
    }
    let shown: Vec<String> = choices.iter().take(12).map(|c| c.to_string()).collect();
    if choices.len() > shown.len() {
        format!("[{}, ... {} in all]", shown.join(", "), choices.len())
    } else {
        format!("[{}]", shown.join(", "))
    }
}
