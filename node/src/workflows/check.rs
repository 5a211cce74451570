//! Can this ComfyUI run this workflow? Node classes (and the custom node packages that
//! provide missing ones), model files, the graph's inputs against the server's
//! `/object_info`, and VRAM. A node's capabilities are the workflows that pass.

use std::fmt;

use serde::Serialize;

use super::object_info::Severity;
use super::{Engine, ObjectInfo, Workflow};

/// Something a workflow needs that the server lacks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "missing", rename_all = "snake_case")]
pub enum Missing {
    /// A node class the server does not have.
    NodeClass {
        /// The class.
        class: String,
        /// The custom node package that provides it, when the manifest names one.
        package: Option<String>,
    },
    /// A custom node package to install (some of its classes are missing).
    Package {
        /// Package name.
        name: String,
        /// Git URL.
        url: String,
    },
    /// A model file the server's loader does not list.
    Model {
        /// File name.
        file: String,
        /// Loader class.
        node_class: String,
        /// Loader input.
        input: String,
    },
    /// A graph input this server's version of a class rejects (a renamed input, a
    /// value out of range, a choice it does not offer).
    Incompatible {
        /// Node id.
        node: String,
        /// Its class.
        class: String,
        /// What ComfyUI would say.
        problem: String,
    },
    /// Not enough VRAM.
    Vram {
        /// The manifest's minimum.
        need_gb: f64,
        /// What the node has.
        have_gb: f64,
    },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NodeClass {
                class,
                package: Some(package),
            } => write!(
                f,
                "missing node class '{class}' (install custom node package {package})"
            ),
            Self::NodeClass {
                class,
                package: None,
            } => write!(
                f,
                "missing node class '{class}' (not in this ComfyUI: update ComfyUI or install the package that provides it)"
            ),
            Self::Package { name, url } => write!(
                f,
                "missing custom node package {name}: git clone {url} into ComfyUI/custom_nodes and restart ComfyUI"
            ),
            Self::Model {
                file,
                node_class,
                input,
            } => write!(f, "missing model '{file}' ({node_class}.{input})"),
            Self::Incompatible {
                node,
                class,
                problem,
            } => {
                if node.is_empty() {
                    f.write_str(problem)
                } else {
                    write!(f, "node '{node}' ({class}): {problem}")
                }
            }
            Self::Vram { need_gb, have_gb } => {
                write!(
                    f,
                    "not enough VRAM: needs {} GB, has {} GB",
                    gb(*need_gb),
                    gb(*have_gb)
                )
            }
        }
    }
}

/// `16` for 16.0, `7.6` for 7.63.
pub(crate) fn gb(value: f64) -> String {
    if (value - value.round()).abs() < 0.05 {
        format!("{}", value.round())
    } else {
        format!("{value:.1}")
    }
}

/// The answer for one workflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The workflow id.
    pub workflow_id: String,
    /// Everything missing, packages before their classes, then models, inputs, VRAM.
    pub missing: Vec<Missing>,
    /// False when no VRAM figure was given, so VRAM was not checked.
    pub vram_checked: bool,
    /// The vendor an API workflow renders on (no local VRAM needed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_service: Option<String>,
}

impl Check {
    /// True when nothing is missing.
    pub fn runnable(&self) -> bool {
        self.missing.is_empty()
    }
}

/// What to check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckOptions {
    /// The node's VRAM in GB; `None` skips the VRAM check.
    pub vram_gb: Option<f64>,
    /// Do not check model files (a server without models, e.g. in CI).
    pub ignore_models: bool,
}

/// Check one workflow against a server's `/object_info`. The card renderer is always
/// runnable.
pub fn check(workflow: &Workflow, info: &ObjectInfo, options: &CheckOptions) -> Check {
    let mut check = Check {
        workflow_id: workflow.manifest.id.clone(),
        missing: Vec::new(),
        vram_checked: options.vram_gb.is_some() && workflow.manifest.api_service.is_none(),
        api_service: workflow.manifest.api_service.clone(),
    };
    if workflow.engine == Engine::Card {
        return check;
    }
    let manifest = &workflow.manifest;
    let packages = &manifest.requires.packages;

    let mut classes_missing: Vec<(String, Option<usize>)> = workflow
        .node_classes()
        .into_iter()
        .filter(|class| !info.has_class(class))
        .map(|class| {
            let package = packages
                .iter()
                .position(|package| package.node_classes.contains(&class));
            (class, package)
        })
        .collect();
    classes_missing.sort_by_key(|(_, package)| package.map_or(usize::MAX, |index| index));
    let mut announced: Vec<usize> = Vec::new();
    for (class, package) in classes_missing {
        if let Some(index) = package
            && !announced.contains(&index)
            && let Some(package) = packages.get(index)
        {
            announced.push(index);
            check.missing.push(Missing::Package {
                name: package.name.clone(),
                url: package.url.clone(),
            });
        }
        check.missing.push(Missing::NodeClass {
            class,
            package: package.and_then(|index| packages.get(index).map(|p| p.name.clone())),
        });
    }

    if !options.ignore_models
        && let Some(graph) = &workflow.graph
    {
        for model in &manifest.requires.models {
            let Some(class) = graph
                .get(&model.node)
                .and_then(|node| node.get("class_type"))
                .and_then(|class| class.as_str())
            else {
                continue;
            };
            if !info.has_class(class) {
                continue;
            }
            let listed = info
                .choices(class, &model.input)
                .is_some_and(|files| files.contains(&model.file));
            let already = check.missing.iter().any(
                |missing| matches!(missing, Missing::Model { file, .. } if *file == model.file),
            );
            if !listed && !already {
                check.missing.push(Missing::Model {
                    file: model.file.clone(),
                    node_class: class.to_owned(),
                    input: model.input.clone(),
                });
            }
        }
    }

    for issue in workflow.validate_against(info) {
        if issue.severity == Severity::Error {
            let problem = match &issue.input {
                Some(input) => format!("input '{input}': {}", issue.message),
                None => issue.message.clone(),
            };
            check.missing.push(Missing::Incompatible {
                node: issue.node,
                class: issue.class,
                problem,
            });
        }
    }

    // An API workflow renders on the vendor's servers: the node's VRAM is not
    // what it needs (the node agrees, see `Capabilities::compute`).
    if manifest.api_service.is_none()
        && let Some(have_gb) = options.vram_gb
        && have_gb + 1e-9 < manifest.vram_min_gb
    {
        check.missing.push(Missing::Vram {
            need_gb: manifest.vram_min_gb,
            have_gb,
        });
    }
    check
}
