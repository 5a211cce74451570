//! Workflow advice: for each shot an LLM (OpenAI, or any OpenAI-compatible server)
//! reads the shot and the video workflows the mesh can run now, and recommends one
//! with a reason; without an LLM configured the rule-based advisor answers and says
//! so. Answers are checked on our side; a bad one is asked again with backoff and
//! then becomes a clear error on that shot, never applied. Each recommendation is
//! written to the shot in the document (workflow, reason, source, time), where every
//! peer sees it; accepting it (`Edit::AdviceAccept`) sets the shot's workflow.
//!
//! The LLM is configured on the node that asks it: `--llm-url` / `--llm-model`, or
//! `OPENAI_BASE_URL` / `REELMESH_LLM_MODEL`, or `<data dir>/llm.toml`; the key comes
//! from `OPENAI_API_KEY` only, and never leaves this process except to that server.

pub mod llm;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reelmesh_protocol::advice::{self, Candidate, Checked, ShotFacts};
use reelmesh_protocol::jobs::TakeMedia;
use reelmesh_protocol::model::Advice;

use reelmesh_protocol::api::ApiError;

use crate::node::NodeHandle;
use crate::workflows::{Catalog, WorkflowKind};

/// An API key: shown as `ApiKey(…)` in every `Debug`, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wrap a key.
    #[must_use]
    pub fn new(key: &str) -> ApiKey {
        ApiKey(key.trim().to_owned())
    }

    /// The key itself, for the request's header.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

/// Where and how to ask an LLM.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The API's base URL, with `/v1` (`http://127.0.0.1:11434/v1` for Ollama).
    pub base_url: String,
    /// The model name.
    pub model: String,
    /// The key (`OPENAI_API_KEY`); none for local servers.
    pub api_key: Option<ApiKey>,
    /// One request's time limit.
    pub timeout: Duration,
    /// Tries per shot before its advice is an error.
    pub attempts: u32,
    /// The first wait before a retry; it doubles each time.
    pub backoff: Duration,
    /// Requests in flight at once.
    pub parallel: usize,
}

/// OpenAI's API, when only a model is named.
pub const OPENAI_URL: &str = "https://api.openai.com/v1";

/// `<data dir>/llm.toml`: what the editor's settings write.
pub use reelmesh_protocol::advice::LlmSettings as LlmFile;

/// Reading and writing `llm.toml`.
pub trait LlmFileExt: Sized {
    /// The file in `data_dir`.
    fn path(data_dir: &Path) -> std::path::PathBuf;
    /// Read it (absent: empty).
    ///
    /// # Errors
    /// A file that does not parse, naming it.
    fn read(data_dir: &Path) -> Result<Self, String>;
    /// Write it (atomically).
    ///
    /// # Errors
    /// The file cannot be written.
    fn write(&self, data_dir: &Path) -> Result<(), String>;
}

impl LlmFileExt for LlmFile {
    fn path(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join("llm.toml")
    }

    fn read(data_dir: &Path) -> Result<LlmFile, String> {
        let path = LlmFile::path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LlmFile::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn write(&self, data_dir: &Path) -> Result<(), String> {
        let text = toml::to_string(self).map_err(|e| e.to_string())?;
        let path = LlmFile::path(data_dir);
        crate::store::write_atomic(&path, text.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

pub use reelmesh_protocol::advice::LlmChoice;

impl LlmConfig {
    /// The LLM this node asks, if one is configured (a model is named somewhere).
    ///
    /// # Errors
    /// A broken `llm.toml`, or a URL given without a model.
    pub fn resolve(data_dir: &Path, choice: &LlmChoice) -> Result<Option<LlmConfig>, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let file = LlmFile::read(data_dir)?;
        let url = choice
            .url
            .clone()
            .or_else(|| env("OPENAI_BASE_URL"))
            .or(file.base_url);
        let model = choice
            .model
            .clone()
            .or_else(|| env("REELMESH_LLM_MODEL"))
            .or(file.model);
        let Some(model) = model.filter(|m| !m.trim().is_empty()) else {
            return match url {
                Some(url) => Err(format!(
                    "an LLM URL is set ({url}) but no model: give --llm-model NAME (or \
                     REELMESH_LLM_MODEL, or model in {})",
                    LlmFile::path(data_dir).display()
                )),
                None => Ok(None),
            };
        };
        Ok(Some(LlmConfig {
            base_url: url.unwrap_or_else(|| OPENAI_URL.to_owned()),
            model: model.trim().to_owned(),
            api_key: env("OPENAI_API_KEY").map(|k| ApiKey::new(&k)),
            timeout: Duration::from_secs(file.timeout_secs.unwrap_or(120)),
            attempts: 4,
            backoff: Duration::from_millis(500),
            parallel: file.parallel.unwrap_or(4).clamp(1, 64),
        }))
    }
}

/// The video workflows the mesh can run now, as candidates (image to video and
/// style transfer; `offered` are the workflow ids some node offers).
#[must_use]
pub fn candidates(catalog: &Catalog, offered: &BTreeSet<String>) -> Vec<Candidate> {
    catalog
        .iter()
        .filter(|w| {
            matches!(
                w.manifest.kind,
                WorkflowKind::ImageToVideo | WorkflowKind::StyleTransfer
            )
        })
        .filter(|w| offered.contains(w.id()))
        .map(|w| {
            let m = &w.manifest;
            Candidate {
                id: m.id.clone(),
                kind: m.kind.as_str().to_owned(),
                purpose: if m.description.is_empty() {
                    m.title.clone()
                } else {
                    format!("{}: {}", m.title, m.description)
                },
                vram_min_gb: if m.api_service.is_some() {
                    0.0
                } else {
                    m.vram_min_gb
                },
                inputs: m
                    .bindings
                    .file_params()
                    .iter()
                    .filter(|(_, targets)| !targets.is_empty())
                    .map(|(role, _)| (*role).to_owned())
                    .collect(),
            }
        })
        .collect()
}

pub use reelmesh_protocol::advice::AdviseStats;

/// Advise the shots `shots` selects (`1..10`, `SHT-00003`, `all`; all when empty)
/// of `project`, with
/// `llm` (or the rules), writing each advice to the document as it comes;
/// `on_each` hears every shot's advice.
///
/// # Errors
/// No such project or shot, the node stopped.
pub async fn advise(
    handle: &NodeHandle,
    project: Option<String>,
    shots: &str,
    llm: Option<&LlmConfig>,
    on_each: &mut (dyn FnMut(&str, &Advice) + Send),
) -> Result<(String, Vec<(String, Advice)>, AdviseStats), ApiError> {
    let started = Instant::now();
    let wanted = if shots.trim().is_empty() {
        "all".to_owned()
    } else {
        shots.trim().to_owned()
    };
    let (project_id, read) = handle
        .read_mut(project, move |doc| {
            let project = doc.project_now().map_err(|e| e.to_string())?;
            let takes = doc.takes().map_err(|e| e.to_string())?;
            Ok::<_, String>((project, takes))
        })
        .await?;
    let (project, takes) = read.map_err(|message| ApiError::Internal { message })?;
    let selected = crate::jobs::queue::select_shots(&project, &wanted)
        .map_err(|message| ApiError::Invalid { message })?;
    let stills: BTreeSet<&str> = takes
        .iter()
        .filter(|t| t.media == TakeMedia::Image)
        .map(|t| t.shot_id.as_str())
        .collect();
    let has_still = |id: &str| stills.contains(id);
    let offered = offers_now(handle).await;
    let catalog = handle.catalog();
    let candidates = candidates(catalog, &offered);
    let known: Vec<String> = catalog.iter().map(|w| w.id().to_owned()).collect();
    let facts: Vec<(String, ShotFacts)> = selected
        .iter()
        .map(|s| (s.shot_id.clone(), ShotFacts::of(&project, s, &has_still)))
        .collect();
    let client = llm
        .map(llm::Llm::new)
        .transpose()
        .map_err(|message| ApiError::Invalid { message })?;
    let gauges = Gauges::default();
    let parallel = llm.map_or(1, |c| c.parallel);
    // The answers are awaited here, not spawned: each one borrows what they share.
    let shared = (client.as_ref(), &candidates, &known, &gauges);
    let mut answers = futures::stream::iter(facts)
        .map(|(shot_id, facts)| async move {
            let (client, candidates, known, gauges) = shared;
            let advice = match (client, llm) {
                (Some(client), Some(config)) => {
                    ask_llm(client, config, &facts, candidates, known, gauges).await
                }
                _ => from_rules(&facts, candidates),
            };
            (shot_id, facts.code, advice)
        })
        .buffer_unordered(parallel);
    let mut done = Vec::new();
    let mut batch: Vec<(String, Advice)> = Vec::new();
    let mut last_write = Instant::now();
    while let Some((shot_id, code, advice)) = answers.next().await {
        on_each(&code, &advice);
        batch.push((shot_id, advice.clone()));
        done.push((code, advice));
        // Written as they come, a few at a time: peers see the column fill.
        if batch.len() >= 16 || last_write.elapsed() > Duration::from_millis(250) {
            write_advice(handle, &project_id, std::mem::take(&mut batch)).await?;
            last_write = Instant::now();
        }
    }
    write_advice(handle, &project_id, batch).await?;
    let stats = AdviseStats {
        requests: gauges.requests.load(Ordering::Relaxed),
        max_in_flight: gauges.max_in_flight.load(Ordering::Relaxed),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        raw_fallbacks: gauges.raw.load(Ordering::Relaxed),
    };
    Ok((project_id, done, stats))
}

/// The workflows some node can run now: this node's own once its first look at
/// its GPU and ComfyUI is done, and what its peers offer.
async fn offers_now(handle: &NodeHandle) -> BTreeSet<String> {
    // A node a CLI command started makes no offer (it has no mesh): its own
    // capabilities count directly.
    let local = handle.worker_settled(Duration::from_secs(15)).await;
    let mut offered: BTreeSet<String> = local.capabilities.into_iter().collect();
    offered.extend(
        handle
            .offers()
            .await
            .unwrap_or_default()
            .into_iter()
            .flat_map(|o| o.workflows),
    );
    offered
}

async fn write_advice(
    handle: &NodeHandle,
    project_id: &str,
    batch: Vec<(String, Advice)>,
) -> Result<(), ApiError> {
    if batch.is_empty() {
        return Ok(());
    }
    handle
        .edit(Some(project_id.to_owned()), move |doc| {
            let project = doc.project_now().map_err(|e| e.to_string())?;
            for (shot_id, advice) in batch {
                // A shot deleted meanwhile keeps no advice.
                let Some(shot) = project.shots.iter().find(|s| s.shot_id == shot_id) else {
                    continue;
                };
                let mut shot = shot.clone();
                shot.advice = Some(advice);
                doc.update_shot(&shot).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn advice_of(checked: Checked, source: &str) -> Advice {
    Advice {
        workflow: checked.workflow,
        reason: checked.reason,
        source: source.to_owned(),
        at_ms: now_ms(),
        confidence: Some(checked.confidence),
        frames: checked.frames,
        error: String::new(),
    }
}

fn error_advice(error: String, source: &str) -> Advice {
    Advice {
        source: source.to_owned(),
        at_ms: now_ms(),
        error,
        ..Advice::default()
    }
}

fn from_rules(facts: &ShotFacts, candidates: &[Candidate]) -> Advice {
    match advice::rules(facts, candidates) {
        Ok(checked) => advice_of(checked, Advice::RULES),
        Err(error) => error_advice(error, Advice::RULES),
    }
}

/// What an advice run counts as it goes.
#[derive(Default)]
struct Gauges {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    requests: AtomicUsize,
    raw: AtomicUsize,
}

/// Ask until an answer checks out or the tries run out; the last error becomes
/// the shot's advice error.
async fn ask_llm(
    client: &llm::Llm,
    config: &LlmConfig,
    facts: &ShotFacts,
    candidates: &[Candidate],
    known: &[String],
    gauges: &Gauges,
) -> Advice {
    let source = client.model().to_owned();
    if candidates.is_empty() {
        return error_advice(
            "no node of the mesh can run a video workflow now".into(),
            &source,
        );
    }
    let user = advice::user_message(facts, candidates);
    let schema = advice::schema(candidates);
    let mut wait = config.backoff;
    let mut last = String::new();
    for attempt in 1..=config.attempts.max(1) {
        let now = gauges.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        gauges.max_in_flight.fetch_max(now, Ordering::SeqCst);
        gauges.requests.fetch_add(1, Ordering::Relaxed);
        let answer = client.ask(advice::SYSTEM, &user, &schema).await;
        gauges.in_flight.fetch_sub(1, Ordering::SeqCst);
        let retry = match answer {
            Ok(answer) => {
                if answer.raw_fallback {
                    gauges.raw.fetch_add(1, Ordering::Relaxed);
                }
                match advice::check(&answer.content, candidates, known) {
                    Ok(checked) => return advice_of(checked, &source),
                    Err(why) => {
                        last = why;
                        true
                    }
                }
            }
            Err(error) => {
                last = error.to_string();
                error.retryable()
            }
        };
        tracing::warn!(shot = %facts.code, attempt, "no usable advice yet: {last}");
        if !retry || attempt == config.attempts {
            break;
        }
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
    }
    error_advice(last, &source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_llm_is_configured_by_flags_then_environment_then_file() {
        let dir = tempfile::tempdir().expect("tmp");
        // Nothing named: no LLM (rules).
        let none = LlmConfig::resolve(dir.path(), &LlmChoice::default());
        if std::env::var_os("REELMESH_LLM_MODEL").is_none()
            && std::env::var_os("OPENAI_BASE_URL").is_none()
        {
            assert!(matches!(none, Ok(None)), "{none:?}");
        }
        LlmFile {
            base_url: Some("http://127.0.0.1:11434/v1".into()),
            model: Some("qwen2.5:7b".into()),
            parallel: Some(8),
            timeout_secs: Some(30),
        }
        .write(dir.path())
        .expect("write");
        let flags = LlmChoice {
            url: None,
            model: Some("llama3.1:8b".into()),
        };
        let config = LlmConfig::resolve(dir.path(), &flags)
            .expect("resolved")
            .expect("configured");
        assert_eq!(config.model, "llama3.1:8b");
        if std::env::var_os("OPENAI_BASE_URL").is_none() {
            assert_eq!(config.base_url, "http://127.0.0.1:11434/v1");
        }
        assert_eq!(
            (config.parallel, config.timeout),
            (8, Duration::from_secs(30))
        );
        // A broken file is named.
        std::fs::write(LlmFile::path(dir.path()), "model = [").expect("write");
        let error = LlmConfig::resolve(dir.path(), &flags).expect_err("broken");
        assert!(error.contains("llm.toml"), "{error}");
    }
}
