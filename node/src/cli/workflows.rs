//! `reelmesh workflows list|check`: the workflow catalog from the command line.
//!
//! `list` shows the built-in and user workflows. `check` asks a ComfyUI (its
//! `/object_info` and `/system_stats`, or a saved `/object_info` file) which of them it
//! can run and prints exactly what is missing; it fails when any checked workflow
//! cannot run, so scripts and CI can gate on it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use serde::Serialize;

use crate::workflows::{Catalog, Check, CheckOptions, Missing, ObjectInfo, Workflow, check};

/// The ComfyUI asked when neither `--comfy` nor `--object-info` is given.
const DEFAULT_COMFY: &str = "http://127.0.0.1:8188";
/// Bytes in the GB of VRAM figures (GiB, as GPUs are sized).
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// `reelmesh workflows ...`
#[derive(Debug, Subcommand)]
pub enum WorkflowsCmd {
    /// List the workflows: id, title, kind, output, VRAM, engine, source.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check which workflows a ComfyUI can run: node classes, custom node packages,
    /// model files, inputs, VRAM. Fails when any checked workflow cannot run.
    Check {
        /// The ComfyUI to ask (GET /object_info and /system_stats)
        /// [default: http://127.0.0.1:8188 unless --object-info is given].
        #[arg(long)]
        comfy: Option<String>,
        /// A saved GET /object_info answer to check against instead of a live ComfyUI.
        #[arg(long)]
        object_info: Option<PathBuf>,
        /// The node's VRAM in GB (default: from the ComfyUI's /system_stats; not
        /// checked with --object-info).
        #[arg(long)]
        vram: Option<f64>,
        /// Do not check model files (e.g. a ComfyUI without models, in CI).
        #[arg(long)]
        ignore_models: bool,
        /// Only workflows that need no custom node package and no API service.
        #[arg(long)]
        core: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Workflow ids (default: all).
        ids: Vec<String>,
    },
}

/// Run a `workflows` command; `user_dir` is the data dir's `workflows/` folder.
pub async fn run(cmd: WorkflowsCmd, user_dir: Option<&Path>) -> Result<()> {
    let catalog = Catalog::load(user_dir)?;
    match cmd {
        WorkflowsCmd::List { json } => {
            let mut out = std::io::stdout().lock();
            list(&mut out, &catalog, json)
        }
        WorkflowsCmd::Check {
            comfy,
            object_info,
            vram,
            ignore_models,
            core,
            json,
            ids,
        } => {
            let selected = select(&catalog, &ids, core)?;
            let source = match (comfy, object_info) {
                (Some(_), Some(_)) => bail!("give --comfy or --object-info, not both"),
                (None, Some(file)) => Source::from_file(&file, vram)?,
                (comfy, None) => {
                    Source::from_comfy(comfy.as_deref().unwrap_or(DEFAULT_COMFY), vram).await?
                }
            };
            let options = CheckOptions {
                vram_gb: source.vram_gb,
                ignore_models,
            };
            let checks: Vec<Check> = selected
                .iter()
                .map(|workflow| check(workflow, &source.info, &options))
                .collect();
            let mut out = std::io::stdout().lock();
            if json {
                print_checks_json(&mut out, &source, ignore_models, &checks)?;
            } else {
                print_checks(&mut out, &source, ignore_models, &checks)?;
            }
            let failed = checks.iter().filter(|check| !check.runnable()).count();
            if failed > 0 {
                return Err(anyhow!("{failed} of {} workflows cannot run", checks.len()));
            }
            Ok(())
        }
    }
}

/// The workflows to check: the ids given (all when none), core ones only if asked.
fn select<'a>(catalog: &'a Catalog, ids: &[String], core: bool) -> Result<Vec<&'a Workflow>> {
    let mut selected: Vec<&Workflow> = if ids.is_empty() {
        catalog.iter().collect()
    } else {
        let mut chosen = Vec::new();
        for id in ids {
            let Some(workflow) = catalog.get(id) else {
                let known: Vec<&str> = catalog.iter().map(Workflow::id).collect();
                bail!("no workflow '{id}' (known: {})", known.join(", "));
            };
            chosen.push(workflow);
        }
        chosen
    };
    if core {
        selected.retain(|workflow| workflow.is_core());
    }
    if selected.is_empty() {
        bail!("no workflow to check");
    }
    Ok(selected)
}

/// Where the node classes (and VRAM) came from.
struct Source {
    info: ObjectInfo,
    /// "ComfyUI at URL" or "object_info file PATH".
    label: String,
    vram_gb: Option<f64>,
    /// How VRAM was found, or why it was not checked.
    vram_note: String,
}

impl Source {
    fn from_file(file: &Path, vram: Option<f64>) -> Result<Source> {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let info = ObjectInfo::from_slice(&bytes).with_context(|| file.display().to_string())?;
        let vram_note = match vram {
            Some(gb) => format!("VRAM: {} GB (--vram)", gb_text(gb)),
            None => "VRAM not checked (an object_info file has no VRAM; give --vram GB)".to_owned(),
        };
        Ok(Source {
            info,
            label: format!("object_info file {}", file.display()),
            vram_gb: vram,
            vram_note,
        })
    }

    async fn from_comfy(url: &str, vram: Option<f64>) -> Result<Source> {
        let base = url.trim().trim_end_matches('/');
        // reqwest sends no Origin header; ComfyUI rejects mismatched ones.
        crate::tls();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .context("making the HTTP client")?;
        let object_info_url = format!("{base}/object_info");
        let bytes = fetch(&client, &object_info_url).await?;
        let info = ObjectInfo::from_slice(&bytes).map_err(|error| {
            anyhow!("{object_info_url} did not answer with ComfyUI's node classes: {error}")
        })?;
        let (vram_gb, vram_note) = match vram {
            Some(gb) => (Some(gb), format!("VRAM: {} GB (--vram)", gb_text(gb))),
            None => match system_vram(&client, base).await {
                Ok((gb, note)) => (Some(gb), note),
                Err(error) => (None, format!("VRAM not checked: {error:#}")),
            },
        };
        Ok(Source {
            info,
            label: format!("ComfyUI at {base}"),
            vram_gb,
            vram_note,
        })
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| anyhow!("cannot reach ComfyUI at {url}: {}", causes(&error)))?;
    let status = response.status();
    if !status.is_success() {
        bail!("{url} answered HTTP {status}");
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|error| anyhow!("reading the answer of {url}: {}", causes(&error)))?;
    Ok(bytes.to_vec())
}

/// An error and its sources, "a: b: c" (reqwest's own message hides the cause).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// VRAM of the first device in `/system_stats`, read as the node reads it
/// ([`crate::gpu::parse_system_stats`]), in whole GB (a "16 GB" card reports a
/// little less), and how it was found. A ComfyUI on the CPU has no VRAM figure.
async fn system_vram(client: &reqwest::Client, base: &str) -> Result<(f64, String)> {
    let url = format!("{base}/system_stats");
    let bytes = fetch(client, &url).await?;
    let gpu = crate::gpu::parse_system_stats(&bytes).map_err(|error| anyhow!("{url}: {error}"))?;
    let Some(gpu) = gpu else {
        // As the node does: no VRAM figure, and none is held against a workflow.
        bail!(
            "ComfyUI runs on the CPU (device 'cpu'), which has no VRAM figure; give \
             --vram GB to check against one"
        );
    };
    #[allow(clippy::cast_precision_loss)]
    let gib = gpu.vram_total as f64 / GIB;
    let gb = gib.round();
    Ok((
        gb,
        format!(
            "VRAM from system stats: {} GB ({gib:.2} GiB on '{}')",
            gb_text(gb),
            gpu.name
        ),
    ))
}

fn gb_text(gb: f64) -> String {
    if (gb - gb.round()).abs() < 0.05 {
        format!("{}", gb.round())
    } else {
        format!("{gb:.1}")
    }
}

fn print_checks(
    out: &mut dyn Write,
    source: &Source,
    ignore_models: bool,
    checks: &[Check],
) -> Result<()> {
    writeln!(
        out,
        "checking against {} ({} node classes)",
        source.label,
        source.info.class_count()
    )?;
    writeln!(out, "{}", source.vram_note)?;
    if ignore_models {
        writeln!(out, "model files not checked (--ignore-models)")?;
    }
    writeln!(out)?;
    let width = checks
        .iter()
        .map(|check| check.workflow_id.chars().count())
        .max()
        .unwrap_or(0);
    for check in checks {
        if check.runnable() {
            match &check.api_service {
                Some(service) => writeln!(
                    out,
                    "{:width$}  runnable (renders on {service}'s servers: no local VRAM needed; \
                     ComfyUI needs its Comfy.org API key)",
                    check.workflow_id
                )?,
                None => writeln!(out, "{:width$}  runnable", check.workflow_id)?,
            }
        } else {
            writeln!(out, "{:width$}  cannot run:", check.workflow_id)?;
            for missing in &check.missing {
                writeln!(out, "  - {missing}")?;
            }
        }
    }
    let runnable = checks.iter().filter(|check| check.runnable()).count();
    writeln!(out)?;
    writeln!(out, "{runnable} of {} workflows runnable", checks.len())?;
    Ok(())
}

#[derive(Serialize)]
struct CheckReport<'a> {
    source: &'a str,
    node_classes: usize,
    vram_gb: Option<f64>,
    vram: &'a str,
    models_checked: bool,
    workflows: Vec<CheckEntry<'a>>,
}

#[derive(Serialize)]
struct CheckEntry<'a> {
    id: &'a str,
    runnable: bool,
    vram_checked: bool,
    missing: &'a [Missing],
    problems: Vec<String>,
}

fn print_checks_json(
    out: &mut dyn Write,
    source: &Source,
    ignore_models: bool,
    checks: &[Check],
) -> Result<()> {
    let report = CheckReport {
        source: &source.label,
        node_classes: source.info.class_count(),
        vram_gb: source.vram_gb,
        vram: &source.vram_note,
        models_checked: !ignore_models,
        workflows: checks
            .iter()
            .map(|check| CheckEntry {
                id: &check.workflow_id,
                runnable: check.runnable(),
                vram_checked: check.vram_checked,
                missing: &check.missing,
                problems: check.missing.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &report)?;
    writeln!(out)?;
    Ok(())
}

#[derive(Serialize)]
struct ListEntry<'a> {
    id: &'a str,
    title: &'a str,
    kind: &'a str,
    output: &'a str,
    vram_min_gb: f64,
    vram_recommended_gb: f64,
    engine: &'a str,
    api_service: Option<&'a str>,
    packages: Vec<&'a str>,
    source: &'a str,
    description: &'a str,
}

fn list(out: &mut dyn Write, catalog: &Catalog, json: bool) -> Result<()> {
    if json {
        let entries: Vec<ListEntry<'_>> = catalog
            .iter()
            .map(|workflow| {
                let manifest = &workflow.manifest;
                ListEntry {
                    id: &manifest.id,
                    title: &manifest.title,
                    kind: manifest.kind.as_str(),
                    output: manifest.output.as_str(),
                    vram_min_gb: manifest.vram_min_gb,
                    vram_recommended_gb: manifest.vram_recommended_gb,
                    engine: workflow.engine.as_str(),
                    api_service: manifest.api_service.as_deref(),
                    packages: manifest
                        .requires
                        .packages
                        .iter()
                        .map(|package| package.name.as_str())
                        .collect(),
                    source: &workflow.source,
                    description: &manifest.description,
                }
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &entries)?;
        writeln!(out)?;
        return Ok(());
    }
    let cells: Vec<Vec<String>> = catalog
        .iter()
        .map(|workflow| {
            let manifest = &workflow.manifest;
            let mut engine = match &manifest.api_service {
                Some(service) => format!("API: {service}"),
                None => workflow.engine.to_string(),
            };
            for package in &manifest.requires.packages {
                engine.push_str(&format!(" + {}", package.name));
            }
            vec![
                manifest.id.clone(),
                manifest.title.clone(),
                manifest.kind.to_string(),
                manifest.output.to_string(),
                format!(
                    "{}/{} GB",
                    gb_text(manifest.vram_min_gb),
                    gb_text(manifest.vram_recommended_gb)
                ),
                engine,
                workflow.source.clone(),
            ]
        })
        .collect();
    super::print_table(
        out,
        &[
            "ID",
            "TITLE",
            "KIND",
            "OUTPUT",
            "VRAM MIN/REC",
            "ENGINE",
            "SOURCE",
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn recorded() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/comfyui/object_info.json")
    }

    #[test]
    fn check_core_against_the_recorded_server_passes() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cmd = WorkflowsCmd::Check {
            comfy: None,
            object_info: Some(recorded()),
            vram: None,
            ignore_models: true,
            core: true,
            json: false,
            ids: Vec::new(),
        };
        runtime.block_on(run(cmd, None)).unwrap();
        // Everything, models included, cannot run there: the error says how many.
        let cmd = WorkflowsCmd::Check {
            comfy: None,
            object_info: Some(recorded()),
            vram: None,
            ignore_models: false,
            core: false,
            json: true,
            ids: vec!["flux_basic".to_owned(), "card".to_owned()],
        };
        let error = runtime.block_on(run(cmd, None)).unwrap_err();
        assert_eq!(error.to_string(), "1 of 2 workflows cannot run");
    }

    #[test]
    fn unknown_ids_and_conflicting_sources_are_errors() {
        let catalog = Catalog::builtin();
        let error = select(&catalog, &["nope".to_owned()], false).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("no workflow 'nope' (known: card, fflf")
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cmd = WorkflowsCmd::Check {
            comfy: Some("http://127.0.0.1:9".to_owned()),
            object_info: Some(recorded()),
            vram: None,
            ignore_models: true,
            core: true,
            json: false,
            ids: Vec::new(),
        };
        let error = runtime.block_on(run(cmd, None)).unwrap_err();
        assert!(error.to_string().contains("not both"), "{error}");
    }

    #[test]
    fn an_unreachable_comfy_is_named() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Port 9 (discard) on loopback: nothing listens there.
        let error = runtime
            .block_on(Source::from_comfy("http://127.0.0.1:9/", None))
            .err()
            .unwrap();
        let message = error.to_string();
        assert!(
            message.starts_with("cannot reach ComfyUI at http://127.0.0.1:9/object_info"),
            "{message}"
        );
    }

    /// A stand-in ComfyUI serving the recorded `/object_info` and the given
    /// `/system_stats`; it answers 403 to any request with an Origin header, as
    /// ComfyUI does for a mismatched one.
    async fn fake_comfy(system_stats: Value) -> String {
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        use axum::routing::get;

        let object_info = std::fs::read(recorded()).unwrap();
        let reject_origin = |headers: &HeaderMap| headers.contains_key("origin");
        let app = axum::Router::new()
            .route(
                "/object_info",
                get(move |headers: HeaderMap| async move {
                    if reject_origin(&headers) {
                        return StatusCode::FORBIDDEN.into_response();
                    }
                    ([("content-type", "application/json")], object_info).into_response()
                }),
            )
            .route(
                "/system_stats",
                get(move |headers: HeaderMap| async move {
                    if reject_origin(&headers) {
                        return StatusCode::FORBIDDEN.into_response();
                    }
                    axum::Json(system_stats).into_response()
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}/")
    }

    #[test]
    fn vram_comes_from_system_stats() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // The recorded server: on the CPU, so no VRAM figure, as the node sees
            // it (`gpu::parse_system_stats`): VRAM is not held against a workflow,
            // and the output says why.
            let stats: Value = serde_json::from_slice(
                &std::fs::read(recorded().with_file_name("system_stats.json")).unwrap(),
            )
            .unwrap();
            assert!(
                crate::gpu::parse_system_stats(&serde_json::to_vec(&stats).unwrap())
                    .unwrap()
                    .is_none()
            );
            let url = fake_comfy(stats).await;
            let source = Source::from_comfy(&url, None).await.unwrap();
            assert_eq!(source.info.class_count(), 887);
            assert_eq!(source.vram_gb, None);
            assert!(
                source
                    .vram_note
                    .starts_with("VRAM not checked: ComfyUI runs on the CPU"),
                "{}",
                source.vram_note
            );
            assert!(
                source.label.ends_with(url.trim_end_matches('/')),
                "{}",
                source.label
            );
            let flux = Catalog::builtin().get("flux_basic").unwrap().clone();
            let options = CheckOptions {
                vram_gb: source.vram_gb,
                ignore_models: true,
            };
            let result = check(&flux, &source.info, &options);
            assert!(result.runnable(), "{:?}", result.missing);
            // The node's capabilities agree.
            let caps =
                crate::jobs::Capabilities::compute(&Catalog::builtin(), Some(&source.info), None);
            assert_eq!(
                caps.checks
                    .iter()
                    .find(|c| c.workflow_id == "flux_basic")
                    .map(|c| c.missing.iter().any(|m| matches!(m, Missing::Vram { .. }))),
                Some(false)
            );
            // --vram wins over the system stats.
            let source = Source::from_comfy(&url, Some(24.0)).await.unwrap();
            assert_eq!(source.vram_gb, Some(24.0));

            // A "16 GB" card reports a little less; it counts as 16.
            let gpu = json!({"devices": [{"name": "cuda:0 NVIDIA GeForce RTX 4080", "type": "cuda",
                "vram_total": 17_171_480_576_u64, "vram_free": 16_000_000_000_u64}]});
            let url = fake_comfy(gpu).await;
            let source = Source::from_comfy(&url, None).await.unwrap();
            assert_eq!(source.vram_gb, Some(16.0));
            assert!(
                source.vram_note.contains("RTX 4080"),
                "{}",
                source.vram_note
            );

            // No /system_stats answer: VRAM is not checked, and the output says so.
            let url = fake_comfy(json!({"system": {}})).await;
            let source = Source::from_comfy(&url, None).await.unwrap();
            assert_eq!(source.vram_gb, None);
            assert!(
                source.vram_note.starts_with("VRAM not checked"),
                "{}",
                source.vram_note
            );
        });
    }

    #[test]
    fn list_prints_every_workflow() {
        let catalog = Catalog::builtin();
        let mut text = Vec::new();
        list(&mut text, &catalog, false).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text.lines().count(), catalog.len() + 1);
        assert!(text.contains("API: kling"), "{text}");
        assert!(text.contains("comfyui + ComfyUI-KJNodes"), "{text}");
        assert!(text.contains("12/16 GB"), "{text}");
        let mut json = Vec::new();
        list(&mut json, &catalog, true).unwrap();
        let entries: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(entries.as_array().unwrap().len(), catalog.len());
        assert_eq!(entries[0]["id"], "card");
        assert_eq!(entries[0]["engine"], "card");
    }
}
