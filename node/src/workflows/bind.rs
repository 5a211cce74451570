//! Binding: a job's parameters into a fresh copy of a workflow's graph, and the LoRA
//! chain. Also [`fit_aspect`], the size for a shot's aspect ratio.

use serde_json::{Map, Value, json};

use super::{JobParams, LoraChain, Target, Workflow, WorkflowError};

/// LoRA strengths ComfyUI's loaders accept.
const LORA_STRENGTH_RANGE: std::ops::RangeInclusive<f64> = -100.0..=100.0;

pub(crate) fn bind(workflow: &Workflow, params: &JobParams) -> Result<Value, WorkflowError> {
    let id = &workflow.manifest.id;
    let Some(graph) = &workflow.graph else {
        return Err(WorkflowError::NoGraph {
            workflow: id.clone(),
            engine: workflow.engine,
        });
    };
    let manifest = &workflow.manifest;
    let bindings = &manifest.bindings;
    let defaults = &manifest.defaults;
    let mut bound = graph.clone();
    let mut binder = Binder {
        workflow,
        graph: &mut bound,
    };

    // Input files first: a job without one cannot run at all.
    let files: [(&'static str, &'static str, &[Target], &Option<String>); 4] = [
        (
            "first_frame",
            "the first frame image",
            &bindings.first_frame,
            &params.first_frame,
        ),
        (
            "last_frame",
            "the last frame image",
            &bindings.last_frame,
            &params.last_frame,
        ),
        (
            "reference_image",
            "a reference image",
            &bindings.reference_image,
            &params.reference_image,
        ),
        (
            "input_video",
            "an input video",
            &bindings.input_video,
            &params.input_video,
        ),
    ];
    for (param, what, targets, value) in files {
        if targets.is_empty() {
            continue;
        }
        let Some(file) = value.as_deref().map(str::trim).filter(|f| !f.is_empty()) else {
            return Err(WorkflowError::MissingParam {
                workflow: id.clone(),
                param,
                what,
            });
        };
        binder.set(targets, &Value::String(file.to_owned()))?;
    }

    binder.set(&bindings.prompt, &Value::String(params.prompt.clone()))?;
    if let Some(negative) = params
        .negative_prompt
        .as_ref()
        .or(defaults.negative_prompt.as_ref())
    {
        binder.set(&bindings.negative_prompt, &Value::String(negative.clone()))?;
    }
    let seed = match defaults.seed_max {
        Some(max) => match max.checked_add(1) {
            Some(modulus) => params.seed % modulus,
            None => params.seed,
        },
        None => params.seed,
    };
    binder.set(&bindings.seed, &json!(seed))?;

    let size_multiple = defaults.size_multiple.unwrap_or(1);
    if let Some(width) = params.width.or(defaults.width) {
        check_positive(id, "width", width)?;
        binder.set(&bindings.width, &json!(round_to(width, size_multiple)))?;
    }
    if let Some(height) = params.height.or(defaults.height) {
        check_positive(id, "height", height)?;
        binder.set(&bindings.height, &json!(round_to(height, size_multiple)))?;
    }
    if let Some(frames) = params.frames.or(defaults.frames) {
        check_positive(id, "frames", frames)?;
        let frames = match defaults.frame_multiple {
            Some(step) => frames_rule(frames, step),
            None => frames,
        };
        binder.set(&bindings.frames, &json!(frames))?;
    }
    if let Some(fps) = params.fps.or(defaults.fps) {
        if !(fps.is_finite() && fps > 0.0) {
            return Err(WorkflowError::BadParam {
                workflow: id.clone(),
                param: "fps".to_owned(),
                message: format!("{fps} is not a frame rate"),
            });
        }
        binder.set_number(&bindings.fps, fps)?;
    }
    if let Some(steps) = defaults.steps {
        binder.set(&bindings.steps, &json!(steps))?;
    }
    if let Some(denoise) = defaults.denoise {
        binder.set_number(&bindings.denoise, denoise)?;
    }

    if let Some(chain) = &bindings.lora_chain
        && !params.loras.is_empty()
    {
        insert_lora_chain(workflow, &mut bound, chain, &params.loras)?;
    }
    Ok(bound)
}

struct Binder<'a> {
    workflow: &'a Workflow,
    graph: &'a mut Value,
}

impl Binder<'_> {
    /// The input a target names (the manifest was validated, so it exists).
    fn slot(&mut self, target: &Target) -> Result<&mut Value, WorkflowError> {
        let workflow = self.workflow;
        self.graph
            .get_mut(&target.node)
            .and_then(|node| node.get_mut("inputs"))
            .and_then(|inputs| inputs.get_mut(&target.input))
            .ok_or_else(|| WorkflowError::Invalid {
                workflow: workflow.manifest.id.clone(),
                file: workflow.source.clone(),
                message: format!(
                    "bindings: node '{}' has no input '{}'",
                    target.node, target.input
                ),
            })
    }

    fn set(&mut self, targets: &[Target], value: &Value) -> Result<(), WorkflowError> {
        for target in targets {
            *self.slot(target)? = value.clone();
        }
        Ok(())
    }

    /// A number written as an integer where the graph holds an integer, else a float.
    fn set_number(&mut self, targets: &[Target], number: f64) -> Result<(), WorkflowError> {
        for target in targets {
            let slot = self.slot(target)?;
            let integer = slot.is_i64() || slot.is_u64();
            *slot = if integer {
                json!(number.round() as i64)
            } else {
                json!(number)
            };
        }
        Ok(())
    }
}

fn check_positive(workflow: &str, param: &str, value: u32) -> Result<(), WorkflowError> {
    if value == 0 {
        return Err(WorkflowError::BadParam {
            workflow: workflow.to_owned(),
            param: param.to_owned(),
            message: "must be at least 1".to_owned(),
        });
    }
    Ok(())
}

/// The nearest multiple of `multiple` (at least one multiple).
fn round_to(value: u32, multiple: u32) -> u32 {
    let multiple = multiple.max(1);
    let rounded =
        (u64::from(value) + u64::from(multiple) / 2) / u64::from(multiple) * u64::from(multiple);
    u32::try_from(rounded.max(u64::from(multiple))).unwrap_or(u32::MAX - u32::MAX % multiple)
}

/// The smallest n·step + 1 that is at least `frames`.
fn frames_rule(frames: u32, step: u32) -> u32 {
    let step = u64::from(step.max(1));
    let n = (u64::from(frames).saturating_sub(1)).div_ceil(step);
    u32::try_from(n * step + 1).unwrap_or(u32::MAX)
}

/// Insert one LoRA loader per LoRA after the chain's outputs and rewire every input
/// that read those outputs to the end of the chain.
fn insert_lora_chain(
    workflow: &Workflow,
    graph: &mut Value,
    chain: &LoraChain,
    loras: &[super::Lora],
) -> Result<(), WorkflowError> {
    let id = &workflow.manifest.id;
    let bad = |index: usize, message: String| WorkflowError::BadParam {
        workflow: id.clone(),
        param: format!("loras[{index}]"),
        message,
    };
    for (index, lora) in loras.iter().enumerate() {
        if lora.name.trim().is_empty() {
            return Err(bad(index, "the LoRA file name is empty".to_owned()));
        }
        if !LORA_STRENGTH_RANGE.contains(&lora.strength) {
            return Err(bad(
                index,
                format!(
                    "'{}': strength {} is outside -100..100",
                    lora.name, lora.strength
                ),
            ));
        }
    }
    let Some(nodes) = graph.as_object_mut() else {
        return Ok(());
    };
    let original: Vec<String> = nodes.keys().cloned().collect();
    let mut next_id = nodes
        .keys()
        .filter_map(|key| key.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let model_source = json!([chain.model.0, chain.model.1]);
    let clip_source = chain
        .clip
        .as_ref()
        .map(|(node, index)| json!([node, index]));
    let mut model = model_source.clone();
    let mut clip = clip_source.clone();
    for lora in loras {
        let node_id = loop {
            let candidate = next_id.to_string();
            next_id += 1;
            if !nodes.contains_key(&candidate) {
                break candidate;
            }
        };
        let name = lora.name.trim();
        let node = match &clip {
            Some(clip_link) => json!({
                "class_type": "LoraLoader",
                "inputs": {
                    "model": model,
                    "clip": clip_link,
                    "lora_name": name,
                    "strength_model": lora.strength,
                    "strength_clip": lora.strength,
                },
                "_meta": {"title": format!("LoRA {name}")},
            }),
            None => json!({
                "class_type": "LoraLoaderModelOnly",
                "inputs": {
                    "model": model,
                    "lora_name": name,
                    "strength_model": lora.strength,
                },
                "_meta": {"title": format!("LoRA {name}")},
            }),
        };
        nodes.insert(node_id.clone(), node);
        model = json!([node_id, 0]);
        if clip.is_some() {
            clip = Some(json!([node_id, 1]));
        }
    }
    for node_id in &original {
        let Some(inputs) = nodes
            .get_mut(node_id)
            .and_then(|node| node.get_mut("inputs"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        rewire(inputs, &model_source, &model);
        if let (Some(from), Some(to)) = (&clip_source, &clip) {
            rewire(inputs, from, to);
        }
    }
    Ok(())
}

fn rewire(inputs: &mut Map<String, Value>, from: &Value, to: &Value) {
    for value in inputs.values_mut() {
        if value == from {
            *value = to.clone();
        }
    }
}

/// A size at `aspect_ratio` ("16:9", "2.39:1", "1.85", "9:16", ...) with about the
/// pixel area of `base_width` × `base_height`, each side rounded to `multiple`. A
/// blank or unreadable ratio gives the base size.
pub fn fit_aspect(
    aspect_ratio: &str,
    base_width: u32,
    base_height: u32,
    multiple: u32,
) -> (u32, u32) {
    let Some(ratio) = parse_ratio(aspect_ratio) else {
        return (base_width, base_height);
    };
    let area = f64::from(base_width) * f64::from(base_height);
    if area <= 0.0 {
        return (base_width, base_height);
    }
    let multiple = multiple.max(1);
    let height = (area / ratio).sqrt();
    let width = height * ratio;
    let round = |side: f64| -> u32 {
        let steps = (side / f64::from(multiple)).round().max(1.0);
        let side = steps * f64::from(multiple);
        if side >= f64::from(u32::MAX) {
            u32::MAX - u32::MAX % multiple
        } else {
            side as u32
        }
    };
    (round(width), round(height))
}

/// "16:9", "2.39:1", "16x9", "16/9" or a bare "2.39" as width / height.
fn parse_ratio(text: &str) -> Option<f64> {
    let text = text.trim();
    let (width, height) = match text.find([':', 'x', 'X', '/']) {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, "1"),
    };
    let width: f64 = width.trim().parse().ok()?;
    let height: f64 = height.trim().parse().ok()?;
    let ratio = width / height;
    (ratio.is_finite() && ratio > 0.0 && (0.1..=10.0).contains(&ratio)).then_some(ratio)
}
