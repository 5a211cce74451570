//! The workflow catalog: which renders a node can run, and how to turn a job into a
//! ComfyUI prompt.
//!
//! A workflow is a ComfyUI graph in API format ("Save (API)": `{"<node id>":
//! {"class_type", "inputs"}}`) plus a TOML manifest that says what it is (kind, output,
//! VRAM), what it needs (node classes, model files, custom node packages) and which
//! node inputs receive the job's parameters (prompt, seed, size, frames, input images,
//! LoRAs). The repo's `workflows/` folder is compiled into the binary
//! ([`Catalog::builtin`]), so a node works anywhere; a user's `<id>.toml` + `<id>.json`
//! in the data dir's `workflows/` folder add to it or override a built-in one
//! ([`Catalog::load`]). The built-in `card` workflow has no graph: it is the storyboard
//! card renderer, which needs no ComfyUI and no GPU.
//!
//! Data flows one way: files → [`Manifest`] + graph ([`Workflow::validate`] checks
//! that every binding, model and output node points into the graph) → [`check`] against
//! a ComfyUI's `/object_info` ([`ObjectInfo`]: node classes, model files, input types,
//! VRAM) → [`Workflow::bind`] a job's [`JobParams`] into a fresh graph for `POST /prompt`.
//! Nothing here talks to the network; the `workflows` CLI fetches `/object_info`.

mod bind;
mod check;
mod graph;
mod manifest;
mod object_info;
#[cfg(test)]
mod tests;

pub use bind::fit_aspect;
pub use check::{Check, CheckOptions, Missing, check};
pub use manifest::{
    Bindings, Defaults, LoraChain, Manifest, ModelFile, Package, Requirements, Target,
};
pub use object_info::{GraphIssue, ObjectInfo, Severity};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a workflow does, as the manifest's `kind` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkflowKind {
    /// A still from a prompt.
    TextToImage,
    /// A clip from one or more images.
    ImageToVideo,
    /// An image or clip restyled after a reference.
    StyleTransfer,
    /// More frames for a clip.
    Interpolation,
    /// Anything else: upscale, frame split.
    Utility,
}

impl WorkflowKind {
    /// The manifest spelling (`text-to-image`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TextToImage => "text-to-image",
            Self::ImageToVideo => "image-to-video",
            Self::StyleTransfer => "style-transfer",
            Self::Interpolation => "interpolation",
            Self::Utility => "utility",
        }
    }
}

impl fmt::Display for WorkflowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a workflow produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// One still.
    Image,
    /// One clip.
    Video,
    /// A numbered image sequence.
    Frames,
}

impl OutputKind {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Frames => "frames",
        }
    }
}

impl fmt::Display for OutputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who renders a workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Engine {
    /// A ComfyUI graph, posted to the node's ComfyUI.
    #[serde(rename = "comfyui")]
    ComfyUi,
    /// The built-in storyboard card renderer: no graph, no ComfyUI, no GPU.
    #[serde(rename = "card")]
    Card,
}

impl Engine {
    /// `comfyui` or `card`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ComfyUi => "comfyui",
            Self::Card => "card",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong loading, validating or binding a workflow. Every message names
/// the file (or workflow) and the field.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// A manifest that is not valid TOML or has a bad field.
    #[error("{file}: {message}")]
    Manifest {
        /// The manifest (path, or `workflows/<id>.toml (built-in)`).
        file: String,
        /// Line, column and what is wrong.
        message: String,
    },
    /// A graph file that is not valid JSON or not an API-format graph.
    #[error("{file}: {message}")]
    Graph {
        /// The graph file.
        file: String,
        /// What is wrong, naming the node and input.
        message: String,
    },
    /// A manifest that does not fit its graph.
    #[error("workflow '{workflow}' ({file}): {message}")]
    Invalid {
        /// The workflow id.
        workflow: String,
        /// Where it came from.
        file: String,
        /// The field and what is wrong.
        message: String,
    },
    /// A job without a parameter the workflow cannot run without.
    #[error("workflow '{workflow}' needs {param} ({what}), and the job has none")]
    MissingParam {
        /// The workflow id.
        workflow: String,
        /// The parameter (`first_frame`, ...).
        param: &'static str,
        /// What it is, in words.
        what: &'static str,
    },
    /// A job parameter the workflow cannot use as given.
    #[error("workflow '{workflow}': {param}: {message}")]
    BadParam {
        /// The workflow id.
        workflow: String,
        /// The parameter.
        param: String,
        /// What is wrong.
        message: String,
    },
    /// Binding a workflow that has no ComfyUI graph (the card renderer).
    #[error("workflow '{workflow}' is rendered by the {engine} engine and has no ComfyUI graph")]
    NoGraph {
        /// The workflow id.
        workflow: String,
        /// Its engine.
        engine: Engine,
    },
    /// A file or folder that cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A ComfyUI `/object_info` answer that cannot be used.
    #[error("object_info: {message}")]
    ObjectInfo {
        /// What is wrong.
        message: String,
    },
}

/// A workflow of the catalog: its manifest, who renders it, and its graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    /// What the workflow is and how to bind it.
    pub manifest: Manifest,
    /// Who renders it.
    pub engine: Engine,
    /// The API-format graph (`None` for the card renderer).
    pub graph: Option<Value>,
    /// `built-in` or the manifest's path.
    pub source: String,
}

impl Workflow {
    /// Parse a manifest and its graph; `manifest_file` and `graph_file` name them in
    /// errors. The result is validated.
    pub fn from_texts(
        manifest_text: &str,
        manifest_file: &str,
        graph_text: &str,
        graph_file: &str,
        source: String,
    ) -> Result<Workflow, WorkflowError> {
        let manifest = manifest::parse(manifest_text, manifest_file)?;
        let graph = graph::parse(graph_text, graph_file)?;
        let workflow = Workflow {
            manifest,
            engine: Engine::ComfyUi,
            graph: Some(graph),
            source,
        };
        workflow.validate()?;
        Ok(workflow)
    }

    /// The built-in storyboard card renderer.
    pub fn card() -> Workflow {
        Workflow {
            manifest: Manifest {
                id: CARD_ID.to_owned(),
                title: "Storyboard card (not AI)".to_owned(),
                kind: WorkflowKind::TextToImage,
                output: OutputKind::Image,
                vram_min_gb: 0.0,
                vram_recommended_gb: 0.0,
                api_service: None,
                description: "Draws a storyboard card (shot code, prompt, timing) with the \
                              built-in renderer: no ComfyUI, no GPU, no model."
                    .to_owned(),
                defaults: Defaults {
                    width: Some(1280),
                    height: Some(720),
                    ..Defaults::default()
                },
                requires: Requirements::default(),
                bindings: Bindings::default(),
                output_nodes: Vec::new(),
            },
            engine: Engine::Card,
            graph: None,
            source: BUILT_IN.to_owned(),
        }
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// True when the workflow needs no custom node package and no API service: a
    /// stock ComfyUI with the model files runs it.
    pub fn is_core(&self) -> bool {
        self.manifest.requires.packages.is_empty() && self.manifest.api_service.is_none()
    }

    /// Every node class the workflow needs: the manifest's list plus the graph's own.
    pub fn node_classes(&self) -> Vec<String> {
        let mut classes: Vec<String> = self.manifest.requires.node_classes.clone();
        if let Some(graph) = &self.graph {
            classes.extend(graph::classes(graph).into_iter().map(|(_, class)| class));
        }
        classes.sort();
        classes.dedup();
        classes
    }

    /// Check that the manifest fits the graph: every binding, model and output node
    /// points at an existing node and an input it has, and the manifest's node classes
    /// cover the graph's.
    pub fn validate(&self) -> Result<(), WorkflowError> {
        manifest::validate(self)
    }

    /// Validate the graph against a ComfyUI's `/object_info` the way ComfyUI validates
    /// a prompt: inputs present, links typed, values in range and in their choice
    /// lists. Model-file inputs and bound input-file names are not checked against the
    /// server's file lists ([`check`] reports missing models). Nodes whose class the
    /// server lacks are skipped ([`check`] reports those too).
    pub fn validate_against(&self, info: &ObjectInfo) -> Vec<GraphIssue> {
        let Some(graph) = &self.graph else {
            return Vec::new();
        };
        let skip = self.file_inputs();
        object_info::validate_graph(graph, info, &|node: &str, input: &str| {
            skip.iter().any(|(n, i)| n == node && i == input)
        })
    }

    /// Like [`Workflow::validate_against`], for a graph that [`Workflow::bind`] made:
    /// the LoRA loaders it inserted name LoRA files, which are not checked either.
    pub fn validate_bound(&self, bound: &Value, info: &ObjectInfo) -> Vec<GraphIssue> {
        let skip = self.file_inputs();
        let original = self.graph.as_ref();
        object_info::validate_graph(bound, info, &|node: &str, input: &str| {
            skip.iter().any(|(n, i)| n == node && i == input)
                || (input == "lora_name" && original.is_none_or(|graph| graph.get(node).is_none()))
        })
    }

    /// Turn a job into a fresh API-format graph ready for `POST /prompt`.
    ///
    /// Parameters land in the inputs the manifest's `[bindings]` name; `None` means
    /// the manifest default (or the graph's own value). Width and height are rounded to
    /// `defaults.size_multiple`, frames to `defaults.frame_multiple`·n + 1. Image and
    /// video parameters are ComfyUI input file names, already uploaded; a workflow
    /// that binds one cannot run without it. LoRAs go into the `lora_chain` binding;
    /// a workflow without one ignores them (a FLUX character LoRA would not fit a WAN
    /// model anyway).
    pub fn bind(&self, params: &JobParams) -> Result<Value, WorkflowError> {
        bind::bind(self, params)
    }

    /// Every `(node, input)` that holds a file name the server's lists are not
    /// expected to contain yet: model files and bound input images or videos.
    fn file_inputs(&self) -> Vec<(String, String)> {
        let manifest = &self.manifest;
        let mut inputs: Vec<(String, String)> = manifest
            .requires
            .models
            .iter()
            .map(|model| (model.node.clone(), model.input.clone()))
            .collect();
        for (_, targets) in manifest.bindings.file_params() {
            inputs.extend(
                targets
                    .iter()
                    .map(|target| (target.node.clone(), target.input.clone())),
            );
        }
        inputs
    }
}

/// A LoRA to apply: a file name as ComfyUI's `models/loras` lists it, and a strength.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lora {
    /// The LoRA file (relative to `models/loras`).
    pub name: String,
    /// Strength for the model (and for the text encoder, where the chain has one).
    pub strength: f64,
}

/// One job's parameters. Image and video fields are ComfyUI input file names
/// (already uploaded); `None` means the manifest default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobParams {
    /// The assembled shot prompt.
    pub prompt: String,
    /// Negative prompt (default: the manifest's).
    pub negative_prompt: Option<String>,
    /// Seed.
    pub seed: u64,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Clip length in frames.
    pub frames: Option<u32>,
    /// Frames per second.
    pub fps: Option<f64>,
    /// First frame image (image-to-video; the content image for style transfer).
    pub first_frame: Option<String>,
    /// Last frame image (first-frame-to-last-frame).
    pub last_frame: Option<String>,
    /// Reference image (an image to upscale, a character, a style reference).
    pub reference_image: Option<String>,
    /// Input video (a clip to interpolate or split, a driving performance).
    pub input_video: Option<String>,
    /// LoRAs, applied in order.
    pub loras: Vec<Lora>,
}

/// The catalog: built-in workflows plus the user's, by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    workflows: BTreeMap<String, Workflow>,
}

/// The id of the built-in card renderer.
pub const CARD_ID: &str = "card";
/// [`Workflow::source`] of the built-in workflows.
pub const BUILT_IN: &str = "built-in";

/// One compiled-in workflow: (id, manifest, graph).
macro_rules! builtin {
    ($id:literal) => {
        (
            $id,
            include_str!(concat!("../../workflows/", $id, ".toml")),
            include_str!(concat!("../../workflows/", $id, ".json")),
        )
    };
}

/// The repo's `workflows/`, compiled in: (id, manifest, graph).
const BUILTIN: &[(&str, &str, &str)] = &[
    builtin!("fflf"),
    builtin!("flux_basic"),
    builtin!("flux_lora"),
    builtin!("flux_upscale"),
    builtin!("frame_split"),
    builtin!("kling_i2v"),
    builtin!("ltx2"),
    builtin!("rife_interpolate"),
    builtin!("runway_i2v"),
    builtin!("sdxl_basic"),
    builtin!("sdxl_lora"),
    builtin!("svi"),
    builtin!("telestyle"),
    builtin!("wan_animate"),
];

impl Catalog {
    /// The built-in workflows (the repo's `workflows/`, compiled in) and the card
    /// renderer. A built-in that fails to load is logged and left out (the tests
    /// load every one).
    pub fn builtin() -> Catalog {
        let mut catalog = Catalog::default();
        for loaded in builtin_workflows() {
            match loaded {
                Ok(workflow) => catalog.insert(workflow),
                Err(error) => tracing::error!("built-in workflow left out: {error}"),
            }
        }
        catalog.insert(Workflow::card());
        catalog
    }

    /// The built-in workflows plus every `<id>.toml` (with its `<id>.json`) in
    /// `user_dir`. A missing folder is fine; a user workflow with a built-in's id
    /// replaces it; a broken file is an error naming the file and the field.
    pub fn load(user_dir: Option<&Path>) -> Result<Catalog, WorkflowError> {
        let mut catalog = Catalog::builtin();
        let Some(dir) = user_dir else {
            return Ok(catalog);
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(catalog),
            Err(source) => {
                return Err(WorkflowError::Io {
                    path: dir.to_owned(),
                    source,
                });
            }
        };
        let mut manifests = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| WorkflowError::Io {
                path: dir.to_owned(),
                source,
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
                manifests.push(path);
            }
        }
        manifests.sort();
        for path in manifests {
            catalog.insert(load_user_workflow(&path)?);
        }
        Ok(catalog)
    }

    /// The workflow with this id.
    pub fn get(&self, id: &str) -> Option<&Workflow> {
        self.workflows.get(id)
    }

    /// Every workflow, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Workflow> {
        self.workflows.values()
    }

    /// How many workflows there are.
    pub fn len(&self) -> usize {
        self.workflows.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.workflows.is_empty()
    }

    fn insert(&mut self, workflow: Workflow) {
        self.workflows
            .insert(workflow.manifest.id.clone(), workflow);
    }
}

/// Load every compiled-in workflow, each to its own result.
fn builtin_workflows() -> Vec<Result<Workflow, WorkflowError>> {
    BUILTIN
        .iter()
        .map(|(id, manifest, graph)| {
            let workflow = Workflow::from_texts(
                manifest,
                &format!("workflows/{id}.toml (built-in)"),
                graph,
                &format!("workflows/{id}.json (built-in)"),
                BUILT_IN.to_owned(),
            )?;
            if workflow.manifest.id != *id {
                return Err(WorkflowError::Manifest {
                    file: format!("workflows/{id}.toml (built-in)"),
                    message: format!(
                        "id: '{}' does not match the file name '{id}'",
                        workflow.manifest.id
                    ),
                });
            }
            Ok(workflow)
        })
        .collect()
}

/// Load `<dir>/<id>.toml` and the `<id>.json` next to it.
fn load_user_workflow(manifest_path: &Path) -> Result<Workflow, WorkflowError> {
    let manifest_file = manifest_path.display().to_string();
    let manifest_text = read_text(manifest_path)?;
    let graph_path = manifest_path.with_extension("json");
    if !graph_path.is_file() {
        return Err(WorkflowError::Manifest {
            file: manifest_file,
            message: format!(
                "no graph next to it: export the workflow with \"Save (API)\" as {}",
                graph_path.display()
            ),
        });
    }
    let graph_text = read_text(&graph_path)?;
    let workflow = Workflow::from_texts(
        &manifest_text,
        &manifest_file,
        &graph_text,
        &graph_path.display().to_string(),
        manifest_file.clone(),
    )?;
    let stem = manifest_path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    if workflow.manifest.id != stem {
        return Err(WorkflowError::Manifest {
            file: manifest_file,
            message: format!(
                "id: '{}' does not match the file name '{stem}' (name the files <id>.toml and <id>.json)",
                workflow.manifest.id
            ),
        });
    }
    Ok(workflow)
}

fn read_text(path: &Path) -> Result<String, WorkflowError> {
    std::fs::read_to_string(path).map_err(|source| WorkflowError::Io {
        path: path.to_owned(),
        source,
    })
}
