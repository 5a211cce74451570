//! The TOML manifest: what a workflow is, what it needs, and which node inputs take
//! the job's parameters. Parsing never panics; errors name the file, the line and the
//! field. [`validate`] then checks the manifest against its graph.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Engine, OutputKind, Workflow, WorkflowError, WorkflowKind, graph};

/// A workflow manifest (`workflows/<id>.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique id, also the file name (`flux_basic`).
    pub id: String,
    /// Human title.
    pub title: String,
    /// What it does.
    pub kind: WorkflowKind,
    /// What it makes.
    pub output: OutputKind,
    /// Least VRAM it runs with, in GB.
    pub vram_min_gb: f64,
    /// VRAM it runs well with, in GB.
    pub vram_recommended_gb: f64,
    /// The external service of API (partner) nodes, e.g. `kling`: rendered there with
    /// a Comfy.org API key, not on local VRAM.
    #[serde(default)]
    pub api_service: Option<String>,
    /// One or two sentences for people.
    #[serde(default)]
    pub description: String,
    /// Parameter defaults and rounding rules.
    #[serde(default)]
    pub defaults: Defaults,
    /// Node classes, model files and custom node packages it needs.
    #[serde(default)]
    pub requires: Requirements,
    /// Which node inputs receive the job's parameters.
    #[serde(default)]
    pub bindings: Bindings,
    /// The output node(s) whose results are the job's result.
    #[serde(default)]
    pub output_nodes: Vec<String>,
}

/// Defaults for parameters the job leaves out, and rounding rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Clip length in frames.
    pub frames: Option<u32>,
    /// Frames per second (for video models, their native rate).
    pub fps: Option<f64>,
    /// Sampler steps (bound through `bindings.steps`).
    pub steps: Option<u32>,
    /// Negative prompt when the job has none.
    pub negative_prompt: Option<String>,
    /// Denoise strength (bound through `bindings.denoise`).
    pub denoise: Option<f64>,
    /// Width and height are rounded to a multiple of this (16 for FLUX/WAN, 32 for LTX).
    pub size_multiple: Option<u32>,
    /// Frames are rounded up to n × this + 1 (4 for WAN, 8 for LTX).
    pub frame_multiple: Option<u32>,
    /// Largest seed the seed input takes; larger seeds wrap (`seed % (seed_max + 1)`).
    pub seed_max: Option<u64>,
}

/// What a workflow needs from the ComfyUI that runs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// Node classes; the graph's own classes must be among them.
    #[serde(default)]
    pub node_classes: Vec<String>,
    /// Every model file the graph loads.
    #[serde(default)]
    pub models: Vec<ModelFile>,
    /// Custom node packages that provide classes core ComfyUI lacks.
    #[serde(default)]
    pub packages: Vec<Package>,
}

/// A model file the graph loads: the loader node, its input and the file name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Loader node id.
    pub node: String,
    /// Loader input (`unet_name`, `ckpt_name`, ...).
    pub input: String,
    /// File name as ComfyUI lists it.
    pub file: String,
    /// The `ComfyUI/models/` folder it goes in.
    #[serde(default)]
    pub folder: Option<String>,
    /// Where to download it.
    #[serde(default)]
    pub url: Option<String>,
}

/// A custom node package (installed into `ComfyUI/custom_nodes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// Package name (`ComfyUI-KJNodes`).
    pub name: String,
    /// Git URL.
    pub url: String,
    /// The node classes it provides that the graph uses.
    pub node_classes: Vec<String>,
}

/// One node input: `{ node = "6", input = "text" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Node id.
    pub node: String,
    /// Input name.
    pub input: String,
}

/// Where LoRA loaders are chained in: from these outputs, `[node id, output index]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraChain {
    /// The MODEL output the chain starts from.
    pub model: (String, u32),
    /// The CLIP output, when the LoRAs also patch the text encoder (then `LoraLoader`
    /// is used instead of `LoraLoaderModelOnly`).
    #[serde(default)]
    pub clip: Option<(String, u32)>,
}

/// Which node inputs receive each job parameter; a binding is one target or a list.
/// Unbound parameters are not used by the workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bindings {
    /// The shot prompt (STRING inputs).
    #[serde(default, deserialize_with = "one_or_many")]
    pub prompt: Vec<Target>,
    /// The negative prompt.
    #[serde(default, deserialize_with = "one_or_many")]
    pub negative_prompt: Vec<Target>,
    /// The seed (INT inputs).
    #[serde(default, deserialize_with = "one_or_many")]
    pub seed: Vec<Target>,
    /// Width in pixels.
    #[serde(default, deserialize_with = "one_or_many")]
    pub width: Vec<Target>,
    /// Height in pixels.
    #[serde(default, deserialize_with = "one_or_many")]
    pub height: Vec<Target>,
    /// Clip length in frames.
    #[serde(default, deserialize_with = "one_or_many")]
    pub frames: Vec<Target>,
    /// Frames per second (written as an integer where the graph holds one).
    #[serde(default, deserialize_with = "one_or_many")]
    pub fps: Vec<Target>,
    /// Sampler steps, from `defaults.steps`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub steps: Vec<Target>,
    /// Denoise, from `defaults.denoise`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub denoise: Vec<Target>,
    /// First frame image file (a `LoadImage` `image` input).
    #[serde(default, deserialize_with = "one_or_many")]
    pub first_frame: Vec<Target>,
    /// Last frame image file.
    #[serde(default, deserialize_with = "one_or_many")]
    pub last_frame: Vec<Target>,
    /// Reference image file.
    #[serde(default, deserialize_with = "one_or_many")]
    pub reference_image: Vec<Target>,
    /// Input video file (a `LoadVideo` `file` input).
    #[serde(default, deserialize_with = "one_or_many")]
    pub input_video: Vec<Target>,
    /// Where LoRA loaders are chained in.
    #[serde(default)]
    pub lora_chain: Option<LoraChain>,
}

impl Bindings {
    /// Every value binding with its manifest name.
    pub fn all(&self) -> [(&'static str, &[Target]); 13] {
        [
            ("prompt", &self.prompt),
            ("negative_prompt", &self.negative_prompt),
            ("seed", &self.seed),
            ("width", &self.width),
            ("height", &self.height),
            ("frames", &self.frames),
            ("fps", &self.fps),
            ("steps", &self.steps),
            ("denoise", &self.denoise),
            ("first_frame", &self.first_frame),
            ("last_frame", &self.last_frame),
            ("reference_image", &self.reference_image),
            ("input_video", &self.input_video),
        ]
    }

    /// The bindings that take input file names (images, videos).
    pub fn file_params(&self) -> [(&'static str, &[Target]); 4] {
        [
            ("first_frame", &self.first_frame),
            ("last_frame", &self.last_frame),
            ("reference_image", &self.reference_image),
            ("input_video", &self.input_video),
        ]
    }
}

/// A binding is `{ node, input }` or a list of them.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Target>, D::Error> {
    struct OneOrMany;

    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<Target>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("{ node = \"<id>\", input = \"<name>\" } or a list of them")
        }

        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
            Target::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| vec![t])
        }

        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
            let mut targets = Vec::new();
            while let Some(target) = seq.next_element::<Target>()? {
                targets.push(target);
            }
            Ok(targets)
        }
    }

    deserializer.deserialize_any(OneOrMany)
}

/// Parse a manifest; `file` names it in errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<Manifest, WorkflowError> {
    let manifest: Manifest = toml::from_str(text).map_err(|error| WorkflowError::Manifest {
        file: file.to_owned(),
        message: toml_message(text, &error),
    })?;
    check_fields(&manifest).map_err(|message| WorkflowError::Manifest {
        file: file.to_owned(),
        message,
    })?;
    Ok(manifest)
}

/// "line 3, column 8: unknown variant ..." from a TOML error.
fn toml_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before
                .rfind('\n')
                .map_or(before.chars().count(), |newline| {
                    before[newline + 1..].chars().count()
                })
                + 1;
            let key = line_key(text, line);
            match key {
                Some(key) => format!("line {line}, column {column} ({key}): {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message,
    }
}

/// The key a TOML line assigns, with its table: `bindings.prompt`, for error messages.
fn line_key(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let current = lines.get(line.checked_sub(1)?)?.trim();
    let table = lines[..line.saturating_sub(1).min(lines.len())]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = current
        .split_once('=')
        .map(|(key, _)| key.trim().trim_matches('"').to_owned())
        .filter(|key| !key.is_empty() && !key.starts_with('#'));
    match (table, key) {
        (Some(table), Some(key)) => Some(format!("{table}.{key}")),
        (None, Some(key)) => Some(key),
        (Some(table), None) if current.starts_with('[') => Some(table),
        _ => None,
    }
}

/// Field checks that serde cannot do.
fn check_fields(manifest: &Manifest) -> Result<(), String> {
    let id = &manifest.id;
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(format!(
            "id: '{id}' must be lowercase letters, digits, '_' or '-'"
        ));
    }
    if manifest.title.trim().is_empty() {
        return Err("title: is empty".to_owned());
    }
    for (field, value) in [
        ("vram_min_gb", manifest.vram_min_gb),
        ("vram_recommended_gb", manifest.vram_recommended_gb),
    ] {
        if !value.is_finite() || value < 0.0 {
            return Err(format!("{field}: {value} is not a size in GB"));
        }
    }
    if manifest.vram_recommended_gb < manifest.vram_min_gb {
        return Err(format!(
            "vram_recommended_gb: {} is below vram_min_gb {}",
            manifest.vram_recommended_gb, manifest.vram_min_gb
        ));
    }
    if manifest
        .api_service
        .as_ref()
        .is_some_and(|service| service.trim().is_empty())
    {
        return Err("api_service: is empty (leave it out for local workflows)".to_owned());
    }
    let defaults = &manifest.defaults;
    for (field, value) in [
        ("defaults.width", defaults.width),
        ("defaults.height", defaults.height),
        ("defaults.frames", defaults.frames),
        ("defaults.steps", defaults.steps),
        ("defaults.size_multiple", defaults.size_multiple),
        ("defaults.frame_multiple", defaults.frame_multiple),
    ] {
        if value == Some(0) {
            return Err(format!("{field}: must be at least 1"));
        }
    }
    if let Some(fps) = defaults.fps
        && !(fps.is_finite() && fps > 0.0)
    {
        return Err(format!("defaults.fps: {fps} is not a frame rate"));
    }
    if let Some(denoise) = defaults.denoise
        && !(0.0..=1.0).contains(&denoise)
    {
        return Err(format!("defaults.denoise: {denoise} is not within 0..1"));
    }
    for (index, package) in manifest.requires.packages.iter().enumerate() {
        if package.name.trim().is_empty() || package.url.trim().is_empty() {
            return Err(format!(
                "requires.packages[{index}]: name and url must not be empty"
            ));
        }
        if package.node_classes.is_empty() {
            return Err(format!(
                "requires.packages[{index}] ({}): node_classes is empty",
                package.name
            ));
        }
    }
    for (index, model) in manifest.requires.models.iter().enumerate() {
        if model.file.trim().is_empty() {
            return Err(format!("requires.models[{index}]: file is empty"));
        }
    }
    Ok(())
}

/// Check a workflow's manifest against its graph (see [`Workflow::validate`]).
pub(crate) fn validate(workflow: &Workflow) -> Result<(), WorkflowError> {
    let invalid = |message: String| WorkflowError::Invalid {
        workflow: workflow.manifest.id.clone(),
        file: workflow.source.clone(),
        message,
    };
    let graph = match (&workflow.graph, workflow.engine) {
        (Some(graph), _) => graph,
        (None, Engine::Card) => return Ok(()),
        (None, Engine::ComfyUi) => return Err(invalid("has no graph".to_owned())),
    };
    graph::check_structure(graph).map_err(&invalid)?;
    let manifest = &workflow.manifest;

    for (name, targets) in manifest.bindings.all() {
        for target in targets {
            let value = input_value(graph, &target.node, &target.input)
                .map_err(|problem| invalid(format!("bindings.{name}: {problem}")))?;
            if graph::is_link(value) {
                return Err(invalid(format!(
                    "bindings.{name}: node '{}' input '{}' is a link to another node, not a value",
                    target.node, target.input
                )));
            }
        }
    }
    if let Some(chain) = &manifest.bindings.lora_chain {
        let links = std::iter::once(("model", &chain.model))
            .chain(chain.clip.as_ref().map(|clip| ("clip", clip)));
        for (field, (node, _)) in links {
            if graph.get(node).is_none() {
                return Err(invalid(format!(
                    "bindings.lora_chain.{field}: node '{node}' is not in the graph"
                )));
            }
        }
    }
    for (index, model) in manifest.requires.models.iter().enumerate() {
        let value = input_value(graph, &model.node, &model.input)
            .map_err(|problem| invalid(format!("requires.models[{index}]: {problem}")))?;
        if value.as_str() != Some(model.file.as_str()) {
            return Err(invalid(format!(
                "requires.models[{index}]: node '{}' input '{}' is {value} in the graph, not '{}'",
                model.node, model.input, model.file
            )));
        }
    }
    if manifest.output_nodes.is_empty() {
        return Err(invalid(
            "output_nodes: is empty (name the node(s) that save the result)".to_owned(),
        ));
    }
    for node in &manifest.output_nodes {
        if graph.get(node).is_none() {
            return Err(invalid(format!(
                "output_nodes: node '{node}' is not in the graph"
            )));
        }
    }
    for (node, class) in graph::classes(graph) {
        if !manifest.requires.node_classes.contains(&class) {
            return Err(invalid(format!(
                "requires.node_classes: does not list '{class}' (used by node '{node}')"
            )));
        }
    }
    for package in &manifest.requires.packages {
        for class in &package.node_classes {
            if !manifest.requires.node_classes.contains(class) {
                return Err(invalid(format!(
                    "requires.packages ({}): '{class}' is not in requires.node_classes",
                    package.name
                )));
            }
        }
    }
    Ok(())
}

/// The value of a node's input, or what is missing.
fn input_value<'g>(graph: &'g Value, node: &str, input: &str) -> Result<&'g Value, String> {
    let Some(entry) = graph.get(node) else {
        return Err(format!("node '{node}' is not in the graph"));
    };
    let class = entry
        .get("class_type")
        .and_then(Value::as_str)
        .unwrap_or("?");
    entry
        .get("inputs")
        .and_then(|inputs| inputs.get(input))
        .ok_or_else(|| format!("node '{node}' ({class}) has no input '{input}'"))
}
