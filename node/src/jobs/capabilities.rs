//! What this node can run: the built-in `card` plus every catalog workflow its
//! ComfyUI can run (node classes and model files from `/object_info`, VRAM from the
//! GPU probe). Kept in a watch channel the runner and presence read.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::comfy::ComfyClient;
use crate::gpu::GpuSample;
use crate::workflows::{Catalog, Check, CheckOptions, Engine, ObjectInfo, check};

/// How often ComfyUI's node classes and models are looked at again while it
/// answers (a failing ComfyUI is retried every [`RETRY_WHILE_DOWN`]).
pub const CAPABILITY_REFRESH: Duration = Duration::from_secs(30);
const RETRY_WHILE_DOWN: Duration = Duration::from_secs(5);

/// The result of one look.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capabilities {
    /// Workflow ids this node can run, sorted.
    pub runnable: Vec<String>,
    /// Every ComfyUI workflow's check (empty without ComfyUI).
    pub checks: Vec<Check>,
    /// Why ComfyUI could not be asked, if it could not.
    pub problem: Option<String>,
    /// Since when it could not (ms since the epoch), while it cannot.
    pub down_since_ms: Option<u64>,
    /// ComfyUI has been asked (or there is none): not the start-up placeholder.
    pub settled: bool,
}

impl Capabilities {
    /// What a node can run given ComfyUI's `/object_info` (if any) and its VRAM in
    /// GB (if known; unknown VRAM is not held against a workflow).
    #[must_use]
    pub fn compute(
        catalog: &Catalog,
        info: Option<&ObjectInfo>,
        vram_gb: Option<f64>,
    ) -> Capabilities {
        let options = CheckOptions {
            vram_gb,
            ignore_models: false,
        };
        let mut runnable = Vec::new();
        let mut checks = Vec::new();
        for workflow in catalog.iter() {
            match (&workflow.engine, info) {
                (Engine::Card, _) => runnable.push(workflow.manifest.id.clone()),
                (Engine::ComfyUi, Some(info)) => {
                    let result = check(workflow, info, &options);
                    if result.runnable() {
                        runnable.push(workflow.manifest.id.clone());
                    }
                    checks.push(result);
                }
                (Engine::ComfyUi, None) => {}
            }
        }
        runnable.sort();
        Capabilities {
            runnable,
            checks,
            problem: None,
            down_since_ms: None,
            settled: true,
        }
    }

    /// Workflows that cannot run here, with what is missing (in words).
    #[must_use]
    pub fn unavailable(&self) -> Vec<(String, String)> {
        self.checks
            .iter()
            .filter(|c| !c.runnable())
            .map(|c| {
                let missing: Vec<String> = c.missing.iter().map(ToString::to_string).collect();
                (c.workflow_id.clone(), missing.join("; "))
            })
            .collect()
    }

    /// Start looking: the first value (card only) is there at once; ComfyUI's answer
    /// follows. Notify the returned handle to look again now (after ComfyUI
    /// rejected a graph).
    pub fn spawn(
        catalog: Arc<Catalog>,
        comfy: Option<ComfyClient>,
        mut gpu: watch::Receiver<GpuSample>,
        cancel: CancellationToken,
    ) -> (watch::Receiver<Capabilities>, Arc<Notify>) {
        let mut first = Capabilities::compute(&catalog, None, None);
        first.settled = comfy.is_none();
        let (tx, rx) = watch::channel(first);
        let refresh = Arc::new(Notify::new());
        let Some(comfy) = comfy else {
            // Nothing will change; keep the sender so readers never see it closed.
            tokio::spawn(async move {
                cancel.cancelled().await;
                drop(tx);
            });
            return (rx, refresh);
        };
        let wake = Arc::clone(&refresh);
        tokio::spawn(async move {
            let mut last_vram = None;
            loop {
                last_vram = vram_gb(&gpu.borrow()).or(last_vram);
                let mut next = look(&catalog, &comfy, last_vram).await;
                if next.problem.is_some() {
                    // Down since the first look that failed, not the latest.
                    next.down_since_ms =
                        tx.borrow().down_since_ms.or_else(|| Some(super::now_ms()));
                }
                let wait = if next.problem.is_some() {
                    RETRY_WHILE_DOWN
                } else {
                    CAPABILITY_REFRESH
                };
                tx.send_if_modified(|current| {
                    if *current == next {
                        return false;
                    }
                    match &next.problem {
                        Some(problem) => warn!("comfyui unusable: {problem}"),
                        None => info!(runnable = ?next.runnable, "capabilities"),
                    }
                    *current = next;
                    true
                });
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => return,
                        () = wake.notified() => {
                            debug!("capabilities: looking again now");
                            break;
                        }
                        () = tokio::time::sleep_until(deadline) => break,
                        changed = gpu.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            // Only a change of VRAM is worth a new look.
                            if vram_gb(&gpu.borrow()).is_some_and(|v| Some(v) != last_vram) {
                                break;
                            }
                        }
                    }
                }
            }
        });
        (rx, refresh)
    }
}

async fn look(catalog: &Catalog, comfy: &ComfyClient, vram: Option<f64>) -> Capabilities {
    match comfy.object_info().await.map(ObjectInfo::from_value) {
        Ok(Ok(info)) => Capabilities::compute(catalog, Some(&info), vram),
        Ok(Err(e)) => Capabilities {
            problem: Some(format!(
                "comfyui at {}: /object_info: {e}",
                comfy.base_url()
            )),
            ..Capabilities::compute(catalog, None, None)
        },
        Err(e) => Capabilities {
            problem: Some(e.to_string()),
            ..Capabilities::compute(catalog, None, None)
        },
    }
}

fn vram_gb(sample: &GpuSample) -> Option<f64> {
    sample
        .gpu
        .as_ref()
        .map(|g| g.vram_total as f64 / (1024.0 * 1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded_info() -> ObjectInfo {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/comfyui/object_info.json"
        );
        let bytes = std::fs::read(path).expect("recorded object_info");
        ObjectInfo::from_slice(&bytes).expect("parse")
    }

    #[test]
    fn without_comfyui_only_the_card_runs() {
        let catalog = Catalog::builtin();
        let caps = Capabilities::compute(&catalog, None, None);
        assert_eq!(caps.runnable, vec!["card".to_owned()]);
        assert!(caps.checks.is_empty());
    }

    #[test]
    fn the_recorded_server_without_models_runs_only_the_card() {
        // The recorded ComfyUI has no model files: every model-loading workflow is
        // missing something, and says what.
        let catalog = Catalog::builtin();
        let caps = Capabilities::compute(&catalog, Some(&recorded_info()), None);
        assert!(caps.runnable.contains(&"card".to_owned()));
        let flux = caps
            .checks
            .iter()
            .find(|c| c.workflow_id == "flux_basic")
            .expect("flux checked");
        assert!(!flux.runnable());
        assert!(
            flux.missing
                .iter()
                .any(|m| m.to_string().contains("safetensors")),
            "{:?}",
            flux.missing
        );
    }
}
