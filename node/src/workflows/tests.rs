//! Tests of the catalog against the recorded ComfyUI 0.33 `/object_info`
//! (`shared/comfyui/object_info.json`: a real server, CPU only, no model files).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};

use super::*;

fn object_info_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/comfyui/object_info.json")
}

fn info() -> &'static ObjectInfo {
    static INFO: OnceLock<ObjectInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let bytes = std::fs::read(object_info_path()).unwrap();
        ObjectInfo::from_slice(&bytes).unwrap()
    })
}

fn catalog() -> Catalog {
    Catalog::builtin()
}

fn workflow(id: &str) -> Workflow {
    catalog().get(id).unwrap().clone()
}

fn graph_of(workflow: &Workflow) -> &Value {
    workflow.graph.as_ref().unwrap()
}

fn params(prompt: &str) -> JobParams {
    JobParams {
        prompt: prompt.to_owned(),
        seed: 42,
        ..JobParams::default()
    }
}

fn input<'a>(graph: &'a Value, node: &str, input: &str) -> &'a Value {
    &graph[node]["inputs"][input]
}

const SEED_LIST: [&str; 14] = [
    "fflf",
    "flux_basic",
    "flux_lora",
    "flux_upscale",
    "frame_split",
    "kling_i2v",
    "ltx2",
    "rife_interpolate",
    "runway_i2v",
    "sdxl_basic",
    "sdxl_lora",
    "svi",
    "telestyle",
    "wan_animate",
];

// ---------------------------------------------------------------- the catalog --

#[test]
fn every_builtin_workflow_loads_and_validates() {
    for loaded in builtin_workflows() {
        let workflow = loaded.unwrap();
        workflow.validate().unwrap();
        assert_eq!(workflow.source, BUILT_IN);
        assert_eq!(workflow.engine, Engine::ComfyUi);
    }
    let catalog = catalog();
    let ids: Vec<&str> = catalog.iter().map(Workflow::id).collect();
    let mut expected: Vec<&str> = SEED_LIST.to_vec();
    expected.push(CARD_ID);
    expected.sort_unstable();
    assert_eq!(ids, expected, "the seed list plus the card, sorted by id");
}

#[test]
fn every_file_in_the_workflows_folder_is_compiled_in() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows");
    let mut stems = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(
                path.with_extension("json").is_file(),
                "{stem}.toml has no {stem}.json"
            );
            stems.push(stem);
        }
    }
    stems.sort();
    let builtin: Vec<&str> = BUILTIN.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(
        stems, builtin,
        "add new workflows to BUILTIN in workflows.rs"
    );
}

#[test]
fn the_card_is_built_in_and_has_no_graph() {
    let card = workflow(CARD_ID);
    assert_eq!(card.engine, Engine::Card);
    assert_eq!(card.manifest.title, "Storyboard card (not AI)");
    assert_eq!(card.manifest.kind, WorkflowKind::TextToImage);
    assert_eq!(card.manifest.output, OutputKind::Image);
    assert!(card.manifest.vram_min_gb.abs() < f64::EPSILON);
    assert!(card.graph.is_none());
    card.validate().unwrap();
    let error = card.bind(&params("x")).unwrap_err();
    assert!(error.to_string().contains("card"), "{error}");
}

#[test]
fn kinds_and_vram_follow_the_product_guide() {
    let expect = [
        (
            "flux_basic",
            WorkflowKind::TextToImage,
            OutputKind::Image,
            12.0,
            16.0,
        ),
        (
            "flux_lora",
            WorkflowKind::TextToImage,
            OutputKind::Image,
            12.0,
            16.0,
        ),
        (
            "sdxl_basic",
            WorkflowKind::TextToImage,
            OutputKind::Image,
            8.0,
            12.0,
        ),
        (
            "sdxl_lora",
            WorkflowKind::TextToImage,
            OutputKind::Image,
            8.0,
            12.0,
        ),
        (
            "flux_upscale",
            WorkflowKind::Utility,
            OutputKind::Image,
            12.0,
            16.0,
        ),
        (
            "wan_animate",
            WorkflowKind::ImageToVideo,
            OutputKind::Video,
            16.0,
            24.0,
        ),
        (
            "ltx2",
            WorkflowKind::ImageToVideo,
            OutputKind::Video,
            24.0,
            48.0,
        ),
        (
            "svi",
            WorkflowKind::ImageToVideo,
            OutputKind::Video,
            16.0,
            24.0,
        ),
        (
            "telestyle",
            WorkflowKind::StyleTransfer,
            OutputKind::Image,
            12.0,
            16.0,
        ),
        (
            "kling_i2v",
            WorkflowKind::ImageToVideo,
            OutputKind::Video,
            8.0,
            12.0,
        ),
        (
            "runway_i2v",
            WorkflowKind::ImageToVideo,
            OutputKind::Video,
            8.0,
            12.0,
        ),
        (
            "fflf",
            WorkflowKind::ImageToVideo,
            OutputKind::Video,
            20.0,
            24.0,
        ),
        (
            "rife_interpolate",
            WorkflowKind::Interpolation,
            OutputKind::Video,
            8.0,
            12.0,
        ),
        (
            "frame_split",
            WorkflowKind::Utility,
            OutputKind::Frames,
            0.0,
            0.0,
        ),
    ];
    for (id, kind, output, min, recommended) in expect {
        let manifest = workflow(id).manifest;
        assert_eq!(manifest.kind, kind, "{id}");
        assert_eq!(manifest.output, output, "{id}");
        assert!((manifest.vram_min_gb - min).abs() < 1e-9, "{id}");
        assert!(
            (manifest.vram_recommended_gb - recommended).abs() < 1e-9,
            "{id}"
        );
    }
    assert_eq!(
        workflow("kling_i2v").manifest.api_service.as_deref(),
        Some("kling")
    );
    assert_eq!(
        workflow("runway_i2v").manifest.api_service.as_deref(),
        Some("runway")
    );
    assert_eq!(WorkflowKind::ImageToVideo.to_string(), "image-to-video");
    assert_eq!(OutputKind::Frames.to_string(), "frames");
}

// ------------------------------------------------- against the real object_info --

#[test]
fn every_graph_passes_comfyui_validation() {
    let info = info();
    assert_eq!(info.class_count(), 887);
    for workflow in catalog().iter().filter(|w| w.engine == Engine::ComfyUi) {
        let id = workflow.id();
        let issues = workflow.validate_against(info);
        assert!(issues.is_empty(), "{id}: {issues:#?}");

        let package_classes: Vec<&String> = workflow
            .manifest
            .requires
            .packages
            .iter()
            .flat_map(|package| &package.node_classes)
            .collect();
        for class in workflow.node_classes() {
            assert!(
                info.has_class(&class) || package_classes.contains(&&class),
                "{id}: class '{class}' is neither core nor from a declared package"
            );
        }
        for class in &package_classes {
            assert!(
                !info.has_class(class),
                "{id}: '{class}' is core, it needs no package"
            );
        }
        for node in &workflow.manifest.output_nodes {
            let class = graph_of(workflow)[node]["class_type"].as_str().unwrap();
            assert_eq!(
                info.is_output_node(class),
                Some(true),
                "{id}: output node '{node}' ({class}) is not an output node"
            );
        }
    }
}

#[test]
fn bindings_point_at_inputs_of_the_right_type() {
    let info = info();
    for workflow in catalog().iter().filter(|w| w.engine == Engine::ComfyUi) {
        let id = workflow.id();
        let graph = graph_of(workflow);
        let class_of = |node: &str| graph[node]["class_type"].as_str().unwrap().to_owned();
        for (name, targets) in workflow.manifest.bindings.all() {
            for target in targets {
                let class = class_of(&target.node);
                match name {
                    "first_frame" | "last_frame" | "reference_image" => {
                        assert_eq!(
                            (class.as_str(), target.input.as_str()),
                            ("LoadImage", "image"),
                            "{id}: {name}"
                        );
                        continue;
                    }
                    "input_video" => {
                        assert_eq!(
                            (class.as_str(), target.input.as_str()),
                            ("LoadVideo", "file"),
                            "{id}: {name}"
                        );
                        continue;
                    }
                    _ => {}
                }
                let Some(types) = info.input_types(&class, &target.input) else {
                    assert!(
                        !info.has_class(&class),
                        "{id}: {name}: {class} has no input '{}'",
                        target.input
                    );
                    continue; // a custom package's class: not in this object_info
                };
                let wanted: &[&str] = match name {
                    "prompt" | "negative_prompt" => &["STRING"],
                    "seed" | "width" | "height" | "frames" | "steps" => &["INT"],
                    "fps" => &["FLOAT", "INT"],
                    "denoise" => &["FLOAT"],
                    other => panic!("untested binding {other}"),
                };
                assert!(
                    types.iter().any(|t| wanted.contains(&t.as_str())),
                    "{id}: {name} -> {class}.{} is {types:?}, wants {wanted:?}",
                    target.input
                );
            }
        }
        if let Some(chain) = &workflow.manifest.bindings.lora_chain {
            let model_class = class_of(&chain.model.0);
            let outputs = info.outputs(&model_class).unwrap();
            assert_eq!(outputs[chain.model.1 as usize], "MODEL", "{id}");
            if let Some((node, index)) = &chain.clip {
                let outputs = info.outputs(&class_of(node)).unwrap();
                assert_eq!(outputs[*index as usize], "CLIP", "{id}");
            }
        }
    }
}

#[test]
fn every_text_to_image_and_video_workflow_takes_prompt_and_seed() {
    for workflow in catalog().iter().filter(|w| w.engine == Engine::ComfyUi) {
        let bindings = &workflow.manifest.bindings;
        match workflow.manifest.kind {
            WorkflowKind::TextToImage => {
                assert!(!bindings.prompt.is_empty(), "{}", workflow.id());
                assert!(!bindings.seed.is_empty(), "{}", workflow.id());
                assert!(!bindings.width.is_empty(), "{}", workflow.id());
            }
            WorkflowKind::ImageToVideo => {
                assert!(!bindings.prompt.is_empty(), "{}", workflow.id());
                assert!(
                    !bindings.first_frame.is_empty() || !bindings.reference_image.is_empty(),
                    "{}",
                    workflow.id()
                );
            }
            _ => {}
        }
    }
}

// ------------------------------------------------------------------- check() --

/// What CI runs: `reelmesh workflows check --object-info ../shared/comfyui/object_info.json
/// --core --ignore-models` must pass.
#[test]
fn every_core_workflow_is_runnable_on_the_recorded_server_ignoring_models() {
    let options = CheckOptions {
        vram_gb: None,
        ignore_models: true,
    };
    let catalog = Catalog::load(None).unwrap();
    let core: Vec<&Workflow> = catalog.iter().filter(|w| w.is_core()).collect();
    assert!(core.len() >= 9, "{}", core.len());
    for workflow in core {
        let result = check(workflow, info(), &options);
        assert!(result.runnable(), "{}: {:?}", workflow.id(), result.missing);
        assert!(!result.vram_checked);
    }
}

#[test]
fn api_workflows_have_their_nodes_on_the_recorded_server() {
    for id in ["kling_i2v", "runway_i2v"] {
        let workflow = workflow(id);
        assert!(!workflow.is_core());
        let result = check(&workflow, info(), &CheckOptions::default());
        assert!(result.runnable(), "{id}: {:?}", result.missing);
    }
}

#[test]
fn missing_model_files_are_named() {
    let result = check(&workflow("flux_basic"), info(), &CheckOptions::default());
    assert!(!result.runnable());
    let lines: Vec<String> = result.missing.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "missing model 'flux1-dev.safetensors' (UNETLoader.unet_name)",
            "missing model 't5xxl_fp16.safetensors' (DualCLIPLoader.clip_name1)",
            "missing model 'clip_l.safetensors' (DualCLIPLoader.clip_name2)",
            "missing model 'ae.safetensors' (VAELoader.vae_name)",
        ]
    );
    // SDXL: one checkpoint, everything else in the graph is what the server offers.
    for id in ["sdxl_basic", "sdxl_lora"] {
        let lines: Vec<String> = check(&workflow(id), info(), &CheckOptions::default())
            .missing
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            ["missing model 'sd_xl_base_1.0.safetensors' (CheckpointLoaderSimple.ckpt_name)"],
            "{id}"
        );
    }
    // The same file loaded twice (LTX-2's checkpoint) is named once.
    let result = check(&workflow("ltx2"), info(), &CheckOptions::default());
    let ckpt = result
        .missing
        .iter()
        .filter(
            |m| matches!(m, Missing::Model { file, .. } if file == "ltx-2-19b-dev-fp8.safetensors"),
        )
        .count();
    assert_eq!(ckpt, 1);
}

#[test]
fn a_model_the_server_lists_is_not_missing() {
    let mut value: Value =
        serde_json::from_slice(&std::fs::read(object_info_path()).unwrap()).unwrap();
    value["UNETLoader"]["input"]["required"]["unet_name"][0] = json!(["flux1-dev.safetensors"]);
    let info = ObjectInfo::from_value(value).unwrap();
    let result = check(&workflow("flux_basic"), &info, &CheckOptions::default());
    assert!(
        !result
            .missing
            .iter()
            .any(|m| matches!(m, Missing::Model { file, .. } if file == "flux1-dev.safetensors"))
    );
    assert_eq!(result.missing.len(), 3);
}

#[test]
fn a_custom_package_workflow_names_the_class_and_the_package() {
    let options = CheckOptions {
        vram_gb: None,
        ignore_models: true,
    };
    let svi = workflow("svi");
    assert!(!svi.is_core());
    let result = check(&svi, info(), &options);
    assert_eq!(
        result.missing,
        [
            Missing::Package {
                name: "ComfyUI-KJNodes".to_owned(),
                url: "https://github.com/kijai/ComfyUI-KJNodes".to_owned(),
            },
            Missing::NodeClass {
                class: "WanImageToVideoSVIPro".to_owned(),
                package: Some("ComfyUI-KJNodes".to_owned()),
            },
        ]
    );
    assert_eq!(
        result.missing[1].to_string(),
        "missing node class 'WanImageToVideoSVIPro' (install custom node package ComfyUI-KJNodes)"
    );
    assert!(
        result.missing[0]
            .to_string()
            .contains("https://github.com/kijai/ComfyUI-KJNodes")
    );

    // The classic RIFE custom node, as a user would declare it.
    let manifest = r#"
id = "rife_vfi"
title = "RIFE VFI"
kind = "interpolation"
output = "video"
vram_min_gb = 8
vram_recommended_gb = 12
output_nodes = ["4"]
[requires]
node_classes = ["LoadVideo", "GetVideoComponents", "RIFE VFI", "SaveAnimatedWEBP"]
[[requires.packages]]
name = "ComfyUI-Frame-Interpolation"
url = "https://github.com/Fannovel16/ComfyUI-Frame-Interpolation"
node_classes = ["RIFE VFI"]
[bindings]
input_video = { node = "1", input = "file" }
"#;
    let graph = r#"{
  "1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
  "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
  "3": {"class_type": "RIFE VFI", "inputs": {"ckpt_name": "rife47.pth", "frames": ["2", 0], "multiplier": 2}},
  "4": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["3", 0], "filename_prefix": "rife", "fps": 48.0,
        "lossless": false, "quality": 90, "method": "default"}}
}"#;
    let rife = Workflow::from_texts(
        manifest,
        "rife_vfi.toml",
        graph,
        "rife_vfi.json",
        "test".into(),
    )
    .unwrap();
    let lines: Vec<String> = check(&rife, info(), &options)
        .missing
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "missing custom node package ComfyUI-Frame-Interpolation: git clone \
             https://github.com/Fannovel16/ComfyUI-Frame-Interpolation into ComfyUI/custom_nodes \
             and restart ComfyUI",
            "missing node class 'RIFE VFI' (install custom node package ComfyUI-Frame-Interpolation)",
        ]
    );
}

#[test]
fn a_class_missing_from_the_server_without_a_package_is_reported() {
    let mut value: Value =
        serde_json::from_slice(&std::fs::read(object_info_path()).unwrap()).unwrap();
    value.as_object_mut().unwrap().remove("FluxGuidance");
    let info = ObjectInfo::from_value(value).unwrap();
    let options = CheckOptions {
        vram_gb: None,
        ignore_models: true,
    };
    let result = check(&workflow("flux_basic"), &info, &options);
    assert_eq!(
        result.missing,
        [Missing::NodeClass {
            class: "FluxGuidance".to_owned(),
            package: None
        }]
    );
}

#[test]
fn an_input_the_server_rejects_is_reported() {
    let mut value: Value =
        serde_json::from_slice(&std::fs::read(object_info_path()).unwrap()).unwrap();
    // An older ComfyUI without the "euler" sampler and with a renamed input.
    value["KSampler"]["input"]["required"]["sampler_name"][0] = json!(["dpmpp_2m"]);
    let options = CheckOptions {
        vram_gb: None,
        ignore_models: true,
    };
    let info = ObjectInfo::from_value(value).unwrap();
    let result = check(&workflow("flux_basic"), &info, &options);
    assert_eq!(result.missing.len(), 1, "{:?}", result.missing);
    let line = result.missing[0].to_string();
    assert!(
        line.starts_with("node '8' (KSampler): input 'sampler_name'"),
        "{line}"
    );
    assert!(line.contains("\"euler\""), "{line}");
}

#[test]
fn api_workflows_need_no_local_vram_in_the_check_and_on_the_node() {
    // Kling and Runway render on the vendor's servers: a CPU-only ComfyUI (0 GB)
    // runs them, and `workflows check` says the same as the node's capabilities.
    let cpu = CheckOptions {
        vram_gb: Some(0.0),
        ignore_models: true,
    };
    for id in ["kling_i2v", "runway_i2v"] {
        let result = check(&workflow(id), info(), &cpu);
        assert!(
            !result
                .missing
                .iter()
                .any(|m| matches!(m, Missing::Vram { .. })),
            "{id}: {:?}",
            result.missing
        );
        assert!(result.runnable(), "{id}: {:?}", result.missing);
    }
    let caps = crate::jobs::Capabilities::compute(&Catalog::builtin(), Some(info()), Some(0.0));
    assert!(caps.runnable.contains(&"kling_i2v".to_owned()), "{caps:?}");
    assert!(caps.runnable.contains(&"runway_i2v".to_owned()), "{caps:?}");
    // A local workflow on the same box is refused for its VRAM, in both.
    let flux = check(&workflow("flux_basic"), info(), &cpu);
    assert!(
        flux.missing
            .iter()
            .any(|m| m.to_string() == "not enough VRAM: needs 12 GB, has 0 GB"),
        "{:?}",
        flux.missing
    );
    assert!(!caps.runnable.contains(&"flux_basic".to_owned()));
}

#[test]
fn too_little_vram_is_reported() {
    let options = CheckOptions {
        vram_gb: Some(8.0),
        ignore_models: true,
    };
    let result = check(&workflow("flux_basic"), info(), &options);
    assert!(result.vram_checked);
    assert_eq!(
        result.missing,
        [Missing::Vram {
            need_gb: 12.0,
            have_gb: 8.0
        }]
    );
    assert_eq!(
        result.missing[0].to_string(),
        "not enough VRAM: needs 12 GB, has 8 GB"
    );
    let enough = CheckOptions {
        vram_gb: Some(12.0),
        ignore_models: true,
    };
    assert!(check(&workflow("flux_basic"), info(), &enough).runnable());
    // No model, no VRAM: frame split runs on a CPU-only ComfyUI.
    let cpu = CheckOptions {
        vram_gb: Some(0.0),
        ignore_models: false,
    };
    assert!(check(&workflow("frame_split"), info(), &cpu).runnable());
}

#[test]
fn the_card_is_always_runnable() {
    let empty = ObjectInfo::from_value(json!({})).unwrap();
    let options = CheckOptions {
        vram_gb: Some(0.0),
        ignore_models: false,
    };
    let result = check(&workflow(CARD_ID), &empty, &options);
    assert!(result.runnable());
    assert!(result.vram_checked);
    assert!(check(&workflow(CARD_ID), info(), &CheckOptions::default()).runnable());
}

// -------------------------------------------------------------------- bind() --

#[test]
fn prompt_seed_and_size_land_in_their_inputs() {
    let flux = workflow("flux_basic");
    let mut job = params("a red umbrella in the rain");
    job.seed = 123_456_789_012;
    job.width = Some(1000);
    job.height = Some(562);
    let bound = flux.bind(&job).unwrap();
    assert_eq!(input(&bound, "4", "text"), "a red umbrella in the rain");
    assert_eq!(input(&bound, "8", "seed"), 123_456_789_012_u64);
    // Rounded to the manifest's size_multiple (16).
    assert_eq!(input(&bound, "7", "width"), 1008);
    assert_eq!(input(&bound, "7", "height"), 560);
    assert_eq!(input(&bound, "8", "steps"), 20);
    // The workflow's own graph is untouched.
    assert_ne!(
        input(graph_of(&flux), "4", "text"),
        "a red umbrella in the rain"
    );
    assert!(flux.validate_bound(&bound, info()).is_empty());
}

#[test]
fn defaults_fill_what_the_job_leaves_out() {
    let flux = workflow("flux_basic");
    let bound = flux.bind(&params("x")).unwrap();
    assert_eq!(input(&bound, "7", "width"), 1344);
    assert_eq!(input(&bound, "7", "height"), 768);

    let ltx = workflow("ltx2");
    let mut job = params("y");
    job.first_frame = Some("shot_010.png".to_owned());
    let bound = ltx.bind(&job).unwrap();
    assert_eq!(
        input(&bound, "5", "text").as_str(),
        ltx.manifest.defaults.negative_prompt.as_deref()
    );
    assert_eq!(input(&bound, "9", "length"), 121);
    assert_eq!(input(&bound, "11", "frames_number"), 121);
    assert_eq!(input(&bound, "7", "image"), "shot_010.png");
    assert!(ltx.validate_bound(&bound, info()).is_empty());

    // Frames rounded up to 8n+1, sizes to 32; fps into every target, as a float.
    job.frames = Some(100);
    job.fps = Some(25.0);
    job.width = Some(1920);
    job.height = Some(1080);
    job.negative_prompt = Some("no people".to_owned());
    let bound = ltx.bind(&job).unwrap();
    assert_eq!(input(&bound, "9", "length"), 105);
    assert_eq!(input(&bound, "11", "frames_number"), 105);
    assert_eq!(input(&bound, "9", "width"), 1920);
    assert_eq!(input(&bound, "9", "height"), 1088);
    assert_eq!(input(&bound, "6", "frame_rate"), 25.0);
    assert_eq!(input(&bound, "21", "fps"), 25.0);
    assert_eq!(input(&bound, "5", "text"), "no people");
    assert!(ltx.validate_bound(&bound, info()).is_empty());

    // WAN: 4n+1 frames.
    let mut job = params("z");
    job.first_frame = Some("a.png".to_owned());
    job.last_frame = Some("b.png".to_owned());
    job.frames = Some(48);
    let bound = workflow("fflf").bind(&job).unwrap();
    assert_eq!(input(&bound, "11", "length"), 49);
    assert_eq!(input(&bound, "10", "image"), "b.png");
}

#[test]
fn sdxl_takes_the_negative_prompt_and_rounds_sizes_to_64() {
    let sdxl = workflow("sdxl_basic");
    let bound = sdxl.bind(&params("a lighthouse at dusk")).unwrap();
    assert_eq!(input(&bound, "2", "text"), "a lighthouse at dusk");
    assert_eq!(
        input(&bound, "3", "text").as_str(),
        sdxl.manifest.defaults.negative_prompt.as_deref()
    );
    assert_eq!(input(&bound, "5", "seed"), 42);
    assert_eq!(input(&bound, "5", "steps"), 30);
    assert_eq!(input(&bound, "4", "width"), 1344);
    assert_eq!(input(&bound, "4", "height"), 768);
    assert!(sdxl.validate_bound(&bound, info()).is_empty());

    // A shot's aspect ratio lands on SDXL's training buckets.
    let mut job = params("x");
    job.negative_prompt = Some("no people".to_owned());
    for (aspect, expected) in [
        ("16:9", (1344, 768)),
        ("9:16", (768, 1344)),
        ("4:3", (1152, 896)),
        ("1:1", (1024, 1024)),
    ] {
        let (width, height) = fit_aspect(aspect, 1344, 768, 16);
        job.width = Some(width);
        job.height = Some(height);
        let bound = sdxl.bind(&job).unwrap();
        let size = (
            input(&bound, "4", "width").as_u64().unwrap(),
            input(&bound, "4", "height").as_u64().unwrap(),
        );
        assert_eq!(size, expected, "{aspect}");
        assert_eq!(input(&bound, "3", "text"), "no people");
        assert!(sdxl.validate_bound(&bound, info()).is_empty(), "{aspect}");
    }
}

#[test]
fn seeds_wrap_where_the_input_is_32_bit() {
    let runway = workflow("runway_i2v");
    let mut job = params("walk");
    job.first_frame = Some("a.png".to_owned());
    job.seed = u64::MAX;
    let bound = runway.bind(&job).unwrap();
    assert_eq!(input(&bound, "2", "seed"), 4_294_967_295_u64);
    assert!(runway.validate_bound(&bound, info()).is_empty());
}

#[test]
fn a_missing_input_image_is_an_error_naming_it() {
    let error = workflow("ltx2").bind(&params("x")).unwrap_err();
    assert!(matches!(
        error,
        WorkflowError::MissingParam {
            param: "first_frame",
            ..
        }
    ));
    let message = error.to_string();
    assert!(
        message.contains("ltx2") && message.contains("first_frame"),
        "{message}"
    );

    let mut job = params("x");
    job.first_frame = Some("a.png".to_owned());
    let error = workflow("fflf").bind(&job).unwrap_err();
    assert!(error.to_string().contains("last_frame"), "{error}");

    job.first_frame = Some("   ".to_owned());
    let error = workflow("svi").bind(&job).unwrap_err();
    assert!(error.to_string().contains("first_frame"), "{error}");

    let error = workflow("rife_interpolate").bind(&params("")).unwrap_err();
    assert!(error.to_string().contains("input_video"), "{error}");
    let error = workflow("flux_upscale").bind(&params("")).unwrap_err();
    assert!(error.to_string().contains("reference_image"), "{error}");
}

#[test]
fn a_hangul_prompt_survives_byte_exact() {
    let prompt = "비 내리는 밤, 네온 골목의 형사 — \"따옴표\" 와 \\ 백슬래시, 이모지 🎬\n둘째 줄";
    let bound = workflow("flux_basic").bind(&params(prompt)).unwrap();
    assert_eq!(
        input(&bound, "4", "text").as_str().unwrap().as_bytes(),
        prompt.as_bytes()
    );
    let wire = serde_json::to_string(&json!({"prompt": bound})).unwrap();
    let back: Value = serde_json::from_str(&wire).unwrap();
    assert_eq!(
        back["prompt"]["4"]["inputs"]["text"].as_str().unwrap(),
        prompt
    );
}

fn lora(name: &str, strength: f64) -> Lora {
    Lora {
        name: name.to_owned(),
        strength,
    }
}

#[test]
fn no_loras_leave_the_graph_as_it_is() {
    let flux_lora = workflow("flux_lora");
    let bound = flux_lora.bind(&params("x")).unwrap();
    assert_eq!(bound.as_object().unwrap().len(), 10);
    assert_eq!(input(&bound, "8", "model"), &json!(["1", 0]));
    // A workflow without a lora_chain ignores LoRAs.
    let mut job = params("x");
    job.loras = vec![lora("alice.safetensors", 0.8)];
    let bound = workflow("flux_basic").bind(&job).unwrap();
    assert_eq!(bound.as_object().unwrap().len(), 10);
}

#[test]
fn one_lora_is_chained_and_rewired() {
    let flux_lora = workflow("flux_lora");
    let mut job = params("alice walks");
    job.loras = vec![lora("chars/alice.safetensors", 0.75)];
    let bound = flux_lora.bind(&job).unwrap();
    assert_eq!(bound.as_object().unwrap().len(), 11);
    let loader = &bound["11"];
    assert_eq!(loader["class_type"], "LoraLoader");
    assert_eq!(loader["inputs"]["model"], json!(["1", 0]));
    assert_eq!(loader["inputs"]["clip"], json!(["2", 0]));
    assert_eq!(loader["inputs"]["lora_name"], "chars/alice.safetensors");
    assert_eq!(loader["inputs"]["strength_model"], 0.75);
    assert_eq!(loader["inputs"]["strength_clip"], 0.75);
    // What read the model and the clip now reads the chain's end.
    assert_eq!(input(&bound, "8", "model"), &json!(["11", 0]));
    assert_eq!(input(&bound, "4", "clip"), &json!(["11", 1]));
    assert!(flux_lora.validate_bound(&bound, info()).is_empty());
}

#[test]
fn three_loras_make_a_chain_in_order() {
    let flux_lora = workflow("flux_lora");
    let mut job = params("three friends");
    job.loras = vec![
        lora("alice.safetensors", 0.8),
        lora("bob.safetensors", 0.6),
        lora("carol.safetensors", 1.0),
    ];
    let bound = flux_lora.bind(&job).unwrap();
    assert_eq!(bound.as_object().unwrap().len(), 13);
    let chain: Vec<(&str, f64, Value, Value)> = ["11", "12", "13"]
        .iter()
        .map(|id| {
            let inputs = &bound[*id]["inputs"];
            (
                inputs["lora_name"].as_str().unwrap(),
                inputs["strength_model"].as_f64().unwrap(),
                inputs["model"].clone(),
                inputs["clip"].clone(),
            )
        })
        .collect();
    assert_eq!(
        chain,
        [
            ("alice.safetensors", 0.8, json!(["1", 0]), json!(["2", 0])),
            ("bob.safetensors", 0.6, json!(["11", 0]), json!(["11", 1])),
            ("carol.safetensors", 1.0, json!(["12", 0]), json!(["12", 1])),
        ]
    );
    assert_eq!(input(&bound, "8", "model"), &json!(["13", 0]));
    assert_eq!(input(&bound, "4", "clip"), &json!(["13", 1]));
    // Nothing else still reads the original outputs.
    for (id, node) in bound.as_object().unwrap() {
        if ["11"].contains(&id.as_str()) {
            continue;
        }
        for value in node["inputs"].as_object().unwrap().values() {
            assert_ne!(value, &json!(["1", 0]), "node {id}");
            assert_ne!(value, &json!(["2", 0]), "node {id}");
        }
    }
    assert!(flux_lora.validate_bound(&bound, info()).is_empty());
    // Checked as a plain graph, the LoRA files the server does not list are rejected.
    let mut plain = flux_lora;
    plain.graph = Some(bound);
    let rejected: Vec<(String, Option<String>)> = plain
        .validate_against(info())
        .into_iter()
        .map(|issue| (issue.node, issue.input))
        .collect();
    let lora_name = Some("lora_name".to_owned());
    assert_eq!(
        rejected,
        [
            ("11".to_owned(), lora_name.clone()),
            ("12".to_owned(), lora_name.clone()),
            ("13".to_owned(), lora_name),
        ]
    );
}

#[test]
fn sdxl_chains_model_and_clip_from_the_one_checkpoint() {
    let sdxl_lora = workflow("sdxl_lora");
    let bound = sdxl_lora.bind(&params("x")).unwrap();
    assert_eq!(bound.as_object().unwrap().len(), 7);
    assert_eq!(input(&bound, "5", "model"), &json!(["1", 0]));
    assert!(sdxl_lora.validate_bound(&bound, info()).is_empty());

    let mut job = params("alice and bob");
    job.loras = vec![
        lora("alice_sdxl.safetensors", 0.8),
        lora("bob_sdxl.safetensors", 0.6),
    ];
    let bound = sdxl_lora.bind(&job).unwrap();
    assert_eq!(bound.as_object().unwrap().len(), 9);
    let chain: Vec<(&str, Value, Value)> = ["8", "9"]
        .iter()
        .map(|id| {
            let node = &bound[*id];
            assert_eq!(node["class_type"], "LoraLoader");
            (
                node["inputs"]["lora_name"].as_str().unwrap(),
                node["inputs"]["model"].clone(),
                node["inputs"]["clip"].clone(),
            )
        })
        .collect();
    assert_eq!(
        chain,
        [
            ("alice_sdxl.safetensors", json!(["1", 0]), json!(["1", 1])),
            ("bob_sdxl.safetensors", json!(["8", 0]), json!(["8", 1])),
        ]
    );
    // Sampler and both text encodes read the chain's end; the VAE is not chained.
    assert_eq!(input(&bound, "5", "model"), &json!(["9", 0]));
    assert_eq!(input(&bound, "2", "clip"), &json!(["9", 1]));
    assert_eq!(input(&bound, "3", "clip"), &json!(["9", 1]));
    assert_eq!(input(&bound, "6", "vae"), &json!(["1", 2]));
    assert!(sdxl_lora.validate_bound(&bound, info()).is_empty());
}

#[test]
fn a_model_only_chain_uses_lora_loader_model_only() {
    let mut flux = workflow("flux_basic");
    flux.manifest.bindings.lora_chain = Some(LoraChain {
        model: ("1".to_owned(), 0),
        clip: None,
    });
    flux.manifest
        .requires
        .node_classes
        .push("LoraLoaderModelOnly".to_owned());
    flux.validate().unwrap();
    for count in [0_usize, 1, 3] {
        let mut job = params("x");
        job.loras = (0..count)
            .map(|i| lora(&format!("l{i}.safetensors"), 0.5))
            .collect();
        let bound = flux.bind(&job).unwrap();
        assert_eq!(bound.as_object().unwrap().len(), 10 + count);
        let end = if count == 0 {
            json!(["1", 0])
        } else {
            json!([(10 + count).to_string(), 0])
        };
        assert_eq!(input(&bound, "8", "model"), &end);
        if count > 0 {
            assert_eq!(bound["11"]["class_type"], "LoraLoaderModelOnly");
            assert!(bound["11"]["inputs"].get("clip").is_none());
        }
        assert!(flux.validate_bound(&bound, info()).is_empty(), "{count}");
    }
}

#[test]
fn bad_loras_are_errors() {
    let flux_lora = workflow("flux_lora");
    let mut job = params("x");
    job.loras = vec![lora(" ", 1.0)];
    let error = flux_lora.bind(&job).unwrap_err();
    assert!(error.to_string().contains("loras[0]"), "{error}");
    job.loras = vec![lora("a.safetensors", 1.0), lora("b.safetensors", f64::NAN)];
    let error = flux_lora.bind(&job).unwrap_err();
    assert!(error.to_string().contains("loras[1]"), "{error}");
}

#[test]
fn every_workflow_binds_to_a_valid_prompt() {
    let mut job = params("a lighthouse at dusk");
    job.first_frame = Some("first.png".to_owned());
    job.last_frame = Some("last.png".to_owned());
    job.reference_image = Some("ref.png".to_owned());
    job.input_video = Some("clip.mp4".to_owned());
    job.frames = Some(60);
    job.fps = Some(24.0);
    job.width = Some(1280);
    job.height = Some(720);
    for workflow in catalog().iter().filter(|w| w.engine == Engine::ComfyUi) {
        let bound = workflow.bind(&job).unwrap();
        let issues = workflow.validate_bound(&bound, info());
        assert!(issues.is_empty(), "{}: {issues:#?}", workflow.id());
    }
}

// ---------------------------------------------------- broken files and loading --

const GOOD_MANIFEST: &str = r#"
id = "mini"
title = "Mini"
kind = "text-to-image"
output = "image"
vram_min_gb = 4
vram_recommended_gb = 6.5
output_nodes = ["3"]
[requires]
node_classes = ["EmptyImage", "ImageInvert", "SaveImage"]
[bindings]
width = { node = "1", input = "width" }
"#;

const GOOD_GRAPH: &str = r#"{
  "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
  "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
  "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "mini"}}
}"#;

fn load(manifest: &str, graph: &str) -> Result<Workflow, WorkflowError> {
    Workflow::from_texts(
        manifest,
        "mini.toml",
        graph,
        "mini.json",
        "mini.toml".to_owned(),
    )
}

fn load_error(manifest: &str, graph: &str) -> String {
    load(manifest, graph).unwrap_err().to_string()
}

#[test]
fn a_good_small_workflow_loads() {
    let workflow = load(GOOD_MANIFEST, GOOD_GRAPH).unwrap();
    assert!((workflow.manifest.vram_min_gb - 4.0).abs() < f64::EPSILON);
    assert!(workflow.validate_against(info()).is_empty());
}

#[test]
fn bad_toml_names_the_file_and_line() {
    let message = load_error("id = \"mini\"\ntitle = \n", GOOD_GRAPH);
    assert!(message.starts_with("mini.toml: line 2"), "{message}");
}

#[test]
fn an_unknown_kind_names_the_field() {
    let manifest = GOOD_MANIFEST.replace("\"text-to-image\"", "\"text-to-sound\"");
    let message = load_error(&manifest, GOOD_GRAPH);
    assert!(message.starts_with("mini.toml: line 4"), "{message}");
    assert!(message.contains("(kind)"), "{message}");
    assert!(message.contains("text-to-sound"), "{message}");
}

#[test]
fn missing_and_unknown_fields_are_named() {
    let manifest = GOOD_MANIFEST.replace("output = \"image\"\n", "");
    let message = load_error(&manifest, GOOD_GRAPH);
    assert!(message.contains("missing field `output`"), "{message}");

    let manifest = GOOD_MANIFEST.replace("width = {", "widht = {");
    let message = load_error(&manifest, GOOD_GRAPH);
    assert!(message.contains("widht"), "{message}");
    assert!(message.contains("bindings.widht"), "{message}");

    let manifest = GOOD_MANIFEST.replace("vram_min_gb = 4", "vram_min_gb = \"four\"");
    let message = load_error(&manifest, GOOD_GRAPH);
    assert!(message.contains("(vram_min_gb)"), "{message}");

    let manifest = GOOD_MANIFEST.replace("vram_recommended_gb = 6.5", "vram_recommended_gb = 2");
    let message = load_error(&manifest, GOOD_GRAPH);
    assert!(message.contains("vram_recommended_gb"), "{message}");
}

#[test]
fn a_binding_to_a_missing_node_or_input_is_an_error() {
    let manifest = GOOD_MANIFEST.replace(
        "node = \"1\", input = \"width\"",
        "node = \"99\", input = \"width\"",
    );
    let message = load_error(&manifest, GOOD_GRAPH);
    assert!(message.contains("mini.toml"), "{message}");
    assert!(
        message.contains("bindings.width: node '99' is not in the graph"),
        "{message}"
    );

    let manifest = GOOD_MANIFEST.replace("input = \"width\"", "input = \"wide\"");
    let message = load_error(&manifest, GOOD_GRAPH);
    assert!(
        message.contains("bindings.width: node '1' (EmptyImage) has no input 'wide'"),
        "{message}"
    );

    let manifest = GOOD_MANIFEST.replace(
        "width = { node = \"1\", input = \"width\" }",
        "width = [{ node = \"1\", input = \"width\" }, { node = \"2\", input = \"image\" }]",
    );
    let message = load_error(&manifest, GOOD_GRAPH);
    assert!(message.contains("is a link"), "{message}");
}

#[test]
fn manifest_and_graph_must_agree() {
    let manifest = GOOD_MANIFEST.replace("output_nodes = [\"3\"]", "output_nodes = [\"7\"]");
    assert!(load_error(&manifest, GOOD_GRAPH).contains("output_nodes: node '7'"));

    let manifest = GOOD_MANIFEST.replace("\"ImageInvert\", ", "");
    let message = load_error(&manifest, GOOD_GRAPH);
    assert!(
        message.contains("requires.node_classes: does not list 'ImageInvert'"),
        "{message}"
    );

    let manifest = format!(
        "{GOOD_MANIFEST}[[requires.models]]\nnode = \"1\"\ninput = \"width\"\nfile = \"x.safetensors\"\n"
    );
    let message = load_error(&manifest, GOOD_GRAPH);
    assert!(message.contains("requires.models[0]"), "{message}");

    let manifest = format!("{GOOD_MANIFEST}[bindings.lora_chain]\nmodel = [\"42\", 0]\n");
    let message = load_error(&manifest, GOOD_GRAPH);
    assert!(
        message.contains("bindings.lora_chain.model: node '42'"),
        "{message}"
    );
}

#[test]
fn broken_graphs_name_the_file_and_node() {
    let message = load_error(GOOD_MANIFEST, "{\"1\": {");
    assert!(
        message.starts_with("mini.json: not valid JSON: line 1"),
        "{message}"
    );

    let message = load_error(GOOD_MANIFEST, r#"{"nodes": [], "links": []}"#);
    assert!(message.contains("Save (API)"), "{message}");

    let graph = GOOD_GRAPH.replace("[\"1\", 0]", "[\"9\", 0]");
    let message = load_error(GOOD_MANIFEST, &graph);
    assert!(
        message.contains("node '2' input 'image': links to node '9'"),
        "{message}"
    );

    let graph = GOOD_GRAPH.replace("[\"1\", 0]", "[\"1\"]");
    assert!(load_error(GOOD_MANIFEST, &graph).contains("node '2' input 'image'"));

    let graph = GOOD_GRAPH.replace("\"class_type\": \"ImageInvert\", ", "");
    assert!(load_error(GOOD_MANIFEST, &graph).contains("node '2': class_type is missing"));

    let cyclic = r#"{
  "1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
  "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
  "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}
}"#;
    assert!(load_error(GOOD_MANIFEST, cyclic).contains("cycle"));

    assert!(load_error(GOOD_MANIFEST, "[1, 2]").contains("not a JSON object"));
    assert!(load_error(GOOD_MANIFEST, "{}").contains("no nodes"));
}

#[test]
fn object_info_validation_finds_what_comfyui_rejects() {
    let issues = |graph: &str| -> Vec<String> {
        let workflow = load(GOOD_MANIFEST, graph).unwrap();
        workflow
            .validate_against(info())
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let graph = GOOD_GRAPH.replace("\"width\": 64", "\"width\": 0");
    assert_eq!(
        issues(&graph),
        ["node '1' (EmptyImage), input 'width': invalid value 0: below the minimum 1"]
    );
    let graph = GOOD_GRAPH.replace("\"batch_size\": 1, ", "");
    assert_eq!(
        issues(&graph),
        ["node '1' (EmptyImage), input 'batch_size': missing required input"]
    );
    let graph = GOOD_GRAPH.replace("\"height\": 64", "\"height\": \"tall\"");
    assert_eq!(
        issues(&graph),
        ["node '1' (EmptyImage), input 'height': invalid value \"tall\": not a INT value"]
    );
    let graph = GOOD_GRAPH.replace(
        "\"filename_prefix\": \"mini\"",
        "\"filename_prefix\": \"mini\", \"dpi\": 300",
    );
    assert_eq!(
        issues(&graph),
        ["node '3' (SaveImage), input 'dpi': is not an input of this class (ComfyUI ignores it)"]
    );
    let wrong_type = r#"{
  "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
  "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}
}"#;
    let manifest = GOOD_MANIFEST.replace("\"EmptyImage\", \"ImageInvert\"", "\"EmptyLatentImage\"");
    let workflow = load(&manifest, wrong_type).unwrap();
    let found: Vec<String> = workflow
        .validate_against(info())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "node '3' (SaveImage), input 'images': gets LATENT from node '1' (EmptyLatentImage) output 0, needs IMAGE"
        ]
    );
    let no_output = r#"{"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}}}"#;
    let manifest = GOOD_MANIFEST.replace("[\"3\"]", "[\"1\"]");
    let workflow = load(&manifest, no_output).unwrap();
    let found: Vec<String> = workflow
        .validate_against(info())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        ["the graph has no output node (SaveImage, SaveVideo, ...)"]
    );
}

#[test]
fn dynamic_combos_and_autogrow_inputs_are_checked() {
    let rife = workflow("rife_interpolate");
    let mut graph = graph_of(&rife).clone();
    graph["8"]["inputs"]["format"] = json!("mov");
    let issues = object_info::validate_graph(&graph, info(), &|_: &str, input: &str| {
        input == "file" || input == "model_name"
    });
    let errors: Vec<&GraphIssue> = issues
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{issues:?}");
    assert!(
        errors[0]
            .message
            .contains("invalid value \"mov\": not one of"),
        "{}",
        errors[0]
    );
    // With no "mov" option, its sub-input means nothing: ComfyUI ignores it.
    assert!(
        issues
            .iter()
            .any(|i| i.severity == Severity::Warning && i.input.as_deref() == Some("format.codec"))
    );

    let mut graph = graph_of(&rife).clone();
    graph["8"]["inputs"]
        .as_object_mut()
        .unwrap()
        .remove("format.codec");
    let issues = object_info::validate_graph(&graph, info(), &|_: &str, input: &str| {
        input == "file" || input == "model_name"
    });
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].input.as_deref(), Some("format.codec"));

    let mut graph = graph_of(&rife).clone();
    graph["6"]["inputs"]
        .as_object_mut()
        .unwrap()
        .remove("values.a");
    let issues = object_info::validate_graph(&graph, info(), &|_: &str, input: &str| {
        input == "file" || input == "model_name"
    });
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].input.as_deref(), Some("values.a"));
}

#[test]
fn object_info_parsing_never_panics_and_names_bad_input() {
    assert!(
        ObjectInfo::from_slice(b"not json")
            .unwrap_err()
            .to_string()
            .starts_with("object_info: not valid JSON")
    );
    assert!(ObjectInfo::from_slice(b"[1]").is_err());
    // Odd shapes are accepted, not fatal.
    let odd = ObjectInfo::from_value(json!({
        "A": 5,
        "B": {"input": {"required": {"x": "INT", "y": [], "z": [["a", 1]]}}},
        "C": {"input": {"required": {"d": ["COMFY_DYNAMICCOMBO_V3", {}], "g": ["COMFY_AUTOGROW_V3", {"template": 3}]}}}
    }))
    .unwrap();
    assert_eq!(odd.class_count(), 3);
    assert_eq!(
        odd.choices("B", "z"),
        Some(vec!["a".to_owned(), "1".to_owned()])
    );
    let info = info();
    assert!(
        info.choices("KSampler", "sampler_name")
            .unwrap()
            .contains(&"euler".to_owned())
    );
    assert_eq!(info.choices("UNETLoader", "unet_name"), Some(Vec::new()));
    assert_eq!(
        info.choices("RunwayImageToVideoNodeGen4", "duration"),
        Some(vec!["5".to_owned(), "10".to_owned()])
    );
    assert_eq!(info.choices("NoSuchNode", "x"), None);
}

#[test]
fn user_workflows_load_override_and_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // A missing folder is fine.
    let catalog = Catalog::load(Some(&dir.path().join("nope"))).unwrap();
    assert_eq!(catalog.len(), SEED_LIST.len() + 1);

    std::fs::write(dir.path().join("mini.toml"), GOOD_MANIFEST).unwrap();
    std::fs::write(dir.path().join("mini.json"), GOOD_GRAPH).unwrap();
    // Overriding a built-in: same id, user's version wins.
    let flux = GOOD_MANIFEST
        .replace("id = \"mini\"", "id = \"flux_basic\"")
        .replace("\"Mini\"", "\"My FLUX\"");
    std::fs::write(dir.path().join("flux_basic.toml"), flux).unwrap();
    std::fs::write(dir.path().join("flux_basic.json"), GOOD_GRAPH).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a workflow").unwrap();
    let catalog = Catalog::load(Some(dir.path())).unwrap();
    assert_eq!(catalog.len(), SEED_LIST.len() + 2);
    let mini = catalog.get("mini").unwrap();
    assert_eq!(
        mini.source,
        dir.path().join("mini.toml").display().to_string()
    );
    assert_eq!(catalog.get("flux_basic").unwrap().manifest.title, "My FLUX");
    let ids: Vec<&str> = catalog.iter().map(Workflow::id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);

    // Broken: the error names the file.
    std::fs::write(
        dir.path().join("mini.toml"),
        GOOD_MANIFEST.replace("kind = \"text-to-image\"", "kind = 7"),
    )
    .unwrap();
    let message = Catalog::load(Some(dir.path())).unwrap_err().to_string();
    assert!(message.contains("mini.toml: line 4"), "{message}");

    // No graph next to the manifest.
    std::fs::write(dir.path().join("mini.toml"), GOOD_MANIFEST).unwrap();
    std::fs::remove_file(dir.path().join("mini.json")).unwrap();
    let message = Catalog::load(Some(dir.path())).unwrap_err().to_string();
    assert!(
        message.contains("mini.toml") && message.contains("Save (API)"),
        "{message}"
    );

    // The id must be the file name.
    std::fs::write(dir.path().join("mini.json"), GOOD_GRAPH).unwrap();
    std::fs::write(
        dir.path().join("mini.toml"),
        GOOD_MANIFEST.replace("id = \"mini\"", "id = \"maxi\""),
    )
    .unwrap();
    let message = Catalog::load(Some(dir.path())).unwrap_err().to_string();
    assert!(
        message.contains("id: 'maxi' does not match the file name 'mini'"),
        "{message}"
    );
}

#[test]
fn fit_aspect_keeps_the_area_at_the_ratio() {
    assert_eq!(fit_aspect("16:9", 1024, 1024, 16), (1360, 768));
    assert_eq!(fit_aspect("9:16", 1024, 1024, 16), (768, 1360));
    assert_eq!(fit_aspect("2.39:1", 1024, 1024, 16), (1584, 656));
    assert_eq!(fit_aspect("1.85:1", 1024, 1024, 16), (1392, 752));
    assert_eq!(fit_aspect("4:3", 1024, 1024, 16), (1184, 880));
    assert_eq!(fit_aspect("1:1", 1344, 768, 16), (1008, 1008));
    assert_eq!(fit_aspect(" 16 x 9 ", 1024, 1024, 16), (1360, 768));
    assert_eq!(fit_aspect("2.39", 1024, 1024, 16), (1584, 656));
    assert_eq!(fit_aspect("16:9", 832, 480, 32), (832, 480));
    assert_eq!(fit_aspect("16:9", 1280, 720, 1), (1280, 720));
    assert_eq!(fit_aspect("16:9", 1280, 720, 0), (1280, 720));
    for garbage in [
        "", "   ", "wide", "16:0", "0:9", "-16:9", "16:9:1", "NaN:1", "1e9:1",
    ] {
        assert_eq!(
            fit_aspect(garbage, 1344, 768, 16),
            (1344, 768),
            "{garbage:?}"
        );
    }
    assert_eq!(fit_aspect("16:9", 0, 0, 16), (0, 0));
}

proptest::proptest! {
    #[test]
    fn loading_garbage_never_panics(manifest in ".{0,400}", graph in ".{0,400}") {
        let _ = load(&manifest, &graph);
        let _ = load(GOOD_MANIFEST, &graph);
        let _ = load(&manifest, GOOD_GRAPH);
        let _ = ObjectInfo::from_slice(graph.as_bytes());
    }

    #[test]
    fn fit_aspect_never_panics(ratio in ".{0,12}", w in 0u32..20_000, h in 0u32..20_000, m in 0u32..128) {
        let (width, height) = fit_aspect(&ratio, w, h, m);
        if (width, height) != (w, h) {
            proptest::prop_assert!(width % m.max(1) == 0 && height % m.max(1) == 0);
        }
    }
}
