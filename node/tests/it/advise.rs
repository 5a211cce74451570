//! The workflow advisor against an OpenAI-compatible server speaking the shapes
//! recorded from llama.cpp's server (`support/llm_double.rs`), on a real node whose
//! stand-in GPU offers the video workflows: good answers, every kind of bad one,
//! retries with backoff, and the API key kept out of logs, errors and the document.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reelmesh_node::advise::{self, ApiKey, LlmConfig};
use reelmesh_node::node::{Node, NodeConfig};
use reelmesh_node::store::DataDir;
use reelmesh_protocol::document::Position;
use reelmesh_protocol::model::{Advice, Shot, ShotCode};
use serde_json::Value;

use crate::gpu_standin::{GpuStandIn, Ledger};
use crate::llm_double::{Behaviour, LlmDouble, LlmOptions, shot_of};

/// Video workflows a 24 GB card has installed (not `svi`).
pub const INSTALLED: [&str; 5] = ["ltx2", "fflf", "wan_animate", "telestyle", "flux_basic"];

/// A project of `n` shots, each with an action.
pub fn project(dir: &Path, n: u64) {
    let data = DataDir::open(dir).expect("data dir");
    let mut store = data.create_project("조언").expect("project");
    let shots: Vec<Shot> = (1..=n)
        .map(|i| {
            let mut shot = Shot::new(ShotCode(i), 48);
            shot.scene = format!("비 내리는 골목 {i}");
            shot.action = format!("준호가 뛰어 들어온다 {i}");
            shot
        })
        .collect();
    store
        .doc_mut()
        .add_shots(&shots, &Position::End)
        .expect("shots");
    store.save().expect("save");
}

/// A node on `dir` (no network) whose stand-in 24 GB GPU offers [`INSTALLED`].
async fn gpu_node(dir: &Path, ledger: &Ledger, setup: impl FnOnce(&mut NodeConfig)) -> Node {
    let mut config = NodeConfig::offline(dir.to_owned());
    config.executor = Some(GpuStandIn::new("RTX 4090", 24.0, &INSTALLED, 0, ledger).slot());
    setup(&mut config);
    Node::start(config).await.expect("node")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn good(workflow: &str) -> Behaviour {
    Behaviour::Answer(format!(
        r#"{{"workflow":"{workflow}","reason":"준호가 뛰어 들어온다: 움직임이 크다","suggested_frames":60,"confidence":0.8}}"#
    ))
}

fn config(url: String) -> LlmConfig {
    LlmConfig {
        base_url: url,
        model: "qwen2.5:7b-instruct".into(),
        api_key: None,
        timeout: Duration::from_millis(1500),
        attempts: 3,
        backoff: Duration::from_millis(20),
        parallel: 4,
    }
}

#[test]
fn advice_is_checked_retried_with_backoff_and_recorded_per_shot() {
    crate::logs();
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tmp");
    project(dir.path(), 11);
    let ledger = Ledger::default();
    rt.block_on(async {
        // Per shot, what the server does on each of its tries.
        let double = LlmDouble::start(LlmOptions::default(), move |request, _| {
            let shot = shot_of(request);
            let n = count(&shot);
            match (shot.as_str(), n) {
                ("SHT-00001", _) => good("ltx2"),
                ("SHT-00002", _) => good("veo3"),
                ("SHT-00003", _) => good("svi"),
                ("SHT-00004", 0) => Behaviour::Answer("{\"workflow\": \"ltx2\", \"reas".into()),
                ("SHT-00004", _) => good("ltx2"),
                ("SHT-00005", _) => Behaviour::Refusal("I can't help with that.".into()),
                ("SHT-00006", 0) => Behaviour::OpenAiError(429, "Rate limit reached".into()),
                ("SHT-00006", _) => good("fflf"),
                ("SHT-00007", _) => Behaviour::LlamaError(500, "model crashed".into()),
                ("SHT-00008", 0) => Behaviour::Hang,
                ("SHT-00008", _) => good("telestyle"),
                ("SHT-00009", _) => Behaviour::OffSpec(
                    r#"{"workflow":"wan_animate","reason":"춤 동작","suggested_frames":48,"confidence":0.6}"#.into(),
                ),
                ("SHT-00010", _) => Behaviour::Cut,
                ("SHT-00011", _) => Behaviour::OllamaError(404, "model \"qwen2.5:7b-instruct\" not found, try pulling it first".into()),
                _ => Behaviour::NotJson,
            }
        })
        .await;
        let node = gpu_node(dir.path(), &ledger, |_| {}).await;
        let handle = node.handle();
        let llm = config(double.url());
        let (_, advice, stats) = advise::advise(&handle, None, "all", Some(&llm), &mut |_, _| {})
            .await
            .expect("advised");
        let by_shot: BTreeMap<String, Advice> = advice.into_iter().collect();
        let workflow = |code: &str| by_shot[code].workflow.clone();
        let error = |code: &str| by_shot[code].error.clone();
        assert_eq!(workflow("SHT-00001"), "ltx2");
        assert_eq!(by_shot["SHT-00001"].source, "qwen2.5:7b-instruct");
        assert_eq!(by_shot["SHT-00001"].confidence, Some(0.8));
        assert_eq!(by_shot["SHT-00001"].frames, Some(60));
        assert!(error("SHT-00002").contains("'veo3', which is not a workflow of the catalog"), "{}", error("SHT-00002"));
        assert!(error("SHT-00003").contains("'svi', which no node of the mesh can run now"), "{}", error("SHT-00003"));
        assert_eq!(workflow("SHT-00004"), "ltx2", "a cut JSON answer is asked again");
        assert!(error("SHT-00005").contains("the model refused: I can't help with that."), "{}", error("SHT-00005"));
        assert_eq!(workflow("SHT-00006"), "fflf", "429 then success");
        assert!(error("SHT-00007").contains("answered 500: model crashed"), "{}", error("SHT-00007"));
        assert_eq!(workflow("SHT-00008"), "telestyle", "a timeout then success");
        assert_eq!(workflow("SHT-00009"), "wan_animate", "an off-spec body read raw");
        assert!(error("SHT-00010").contains("cut at the token limit"), "{}", error("SHT-00010"));
        assert!(error("SHT-00011").contains("answered 404: model \"qwen2.5:7b-instruct\" not found"), "{}", error("SHT-00011"));
        // No usable advice was made up for the failed ones.
        for code in ["SHT-00002", "SHT-00003", "SHT-00005", "SHT-00007", "SHT-00010", "SHT-00011"] {
            assert!(!by_shot[code].usable(), "{code}");
            assert!(by_shot[code].workflow.is_empty(), "{code}");
        }
        // Tries: a retried shot was asked again, a 404 (a wrong model) only once.
        let per_shot = asked();
        assert_eq!(per_shot["SHT-00001"], 1);
        assert_eq!(per_shot["SHT-00002"], 3, "an unknown workflow: every try");
        assert_eq!(per_shot["SHT-00004"], 2);
        assert_eq!(per_shot["SHT-00006"], 2);
        assert_eq!(per_shot["SHT-00007"], 3);
        assert_eq!(per_shot["SHT-00011"], 1, "a 404 is not retried");
        assert_eq!(stats.requests, double.requests().len());
        assert!(stats.raw_fallbacks >= 1);
        assert!(stats.max_in_flight <= 4 && double.max_in_flight() <= 4);

        // What was sent: the model, OpenAI's json_schema form with only what the
        // mesh can run now, and the shot.
        let first = double
            .requests()
            .into_iter()
            .find(|r| shot_of(&r.body) == "SHT-00001")
            .expect("asked");
        assert_eq!(first.body["model"], "qwen2.5:7b-instruct");
        assert_eq!(first.body["response_format"]["type"], "json_schema");
        let offered: Vec<&str> = first.body["response_format"]["json_schema"]["schema"]["properties"]
            ["workflow"]["enum"]
            .as_array()
            .expect("enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut offered = offered;
        offered.sort_unstable();
        assert_eq!(offered, ["fflf", "ltx2", "telestyle", "wan_animate"]);
        let user = first.body["messages"][1]["content"].as_str().expect("user");
        let shot: Value = serde_json::from_str(user).expect("the shot as JSON");
        assert_eq!(shot["shot"]["action"], "준호가 뛰어 들어온다 1");
        assert_eq!(shot["shot"]["length_frames"], 48);
        // No key configured: none sent (async-openai sends an empty bearer).
        assert_eq!(first.authorization.as_deref().map(str::trim), Some("Bearer"));

        // Recorded in the document, where peers see it.
        let project = handle.project(None).await.expect("read").1;
        assert_eq!(project.shots[0].advice.as_ref().map(|a| a.workflow.as_str()), Some("ltx2"));
        assert!(project.shots[1].advice.as_ref().is_some_and(|a| !a.error.is_empty()));
        node.stop().await.expect("stop");
    });
}

static ASKED: std::sync::Mutex<BTreeMap<String, usize>> = std::sync::Mutex::new(BTreeMap::new());

/// How many times `shot` was asked before (and count this one).
fn count(shot: &str) -> usize {
    let mut asked = ASKED.lock().expect("lock");
    let n = asked.entry(shot.to_owned()).or_default();
    *n += 1;
    *n - 1
}

fn asked() -> BTreeMap<String, usize> {
    ASKED.lock().expect("lock").clone()
}

#[test]
fn a_server_that_refuses_json_schema_gets_json_object_and_the_rules_answer_without_an_llm() {
    crate::logs();
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tmp");
    project(dir.path(), 3);
    let ledger = Ledger::default();
    rt.block_on(async {
        let options = LlmOptions {
            reject_json_schema: true,
            ..LlmOptions::default()
        };
        let double = LlmDouble::start(options, |_, _| good("ltx2")).await;
        let node = gpu_node(dir.path(), &ledger, |_| {}).await;
        let handle = node.handle();
        let llm = config(double.url());
        let (_, advice, _) = advise::advise(&handle, None, "1..3", Some(&llm), &mut |_, _| {})
            .await
            .expect("advised");
        assert!(
            advice.iter().all(|(_, a)| a.workflow == "ltx2"),
            "{advice:#?}"
        );
        // Per shot, in the order the server got them: the OpenAI form at most once
        // (only requests already built when the first refusal came back use it:
        // at most `parallel`), then the server's own form, which answers.
        let mut forms: std::collections::BTreeMap<String, Vec<String>> =
            std::collections::BTreeMap::new();
        for r in double.requests() {
            forms.entry(shot_of(&r.body)).or_default().push(
                r.body["response_format"]["type"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
        assert_eq!(forms.len(), 3, "{forms:?}");
        let mut refused = 0;
        for sent in forms.values() {
            match sent.as_slice() {
                [only] if only == "json_object" => {}
                [first, then] if first == "json_schema" && then == "json_object" => refused += 1,
                _ => panic!("{forms:?}"),
            }
        }
        assert!((1..=3).contains(&refused), "{forms:?}");
        let object = double
            .requests()
            .into_iter()
            .find(|r| r.body["response_format"]["type"] == "json_object")
            .expect("json_object");
        assert!(object.body["response_format"]["schema"]["properties"]["workflow"].is_object());

        // Without an LLM: the rules, saying so.
        let (_, advice, stats) = advise::advise(&handle, None, "2", None, &mut |_, _| {})
            .await
            .expect("rules");
        assert_eq!(stats.requests, 0);
        let (_, rule) = &advice[0];
        assert_eq!(rule.source, "rules");
        assert_eq!(rule.workflow, "ltx2");
        assert!(
            rule.reason.starts_with("rule-based: the action has motion"),
            "{}",
            rule.reason
        );
        node.stop().await.expect("stop");
    });
}

#[test]
fn the_api_key_reaches_the_server_and_nothing_else() {
    crate::logs();
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tmp");
    project(dir.path(), 2);
    let secret = "sk-reelmesh-test-7f3a9c2e11d04b58";
    let ledger = Ledger::default();
    // A server that wants another key and echoes the one given in its error (as
    // careless servers do), behind a node set up with the key; the CLI asks it.
    let double = rt.block_on(LlmDouble::start(
        LlmOptions {
            key: Some("sk-the-right-one".into()),
            echo_key: true,
            ..LlmOptions::default()
        },
        |_, _| good("ltx2"),
    ));
    let mut llm = config(double.url());
    llm.api_key = Some(ApiKey::new(secret));
    assert!(!format!("{llm:?}").contains(secret), "Debug hides the key");
    let node = rt.block_on(async {
        gpu_node(dir.path(), &ledger, move |config| {
            config.control_socket = true;
            config.llm = Some(llm);
        })
        .await
    });
    let output = Command::new(env!("CARGO_BIN_EXE_reelmesh"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["advise", "--json"])
        .env("RUST_LOG", "debug")
        .output()
        .expect("reelmesh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "{stdout}\n{stderr}"
    );
    let reply: Value = serde_json::from_str(stdout.trim()).expect("json");
    let error = reply["advice"][0]["advice"]["error"]
        .as_str()
        .expect("an error");
    assert!(
        error.contains("answered 401") && error.contains("[the API key]"),
        "{error}"
    );
    // It was sent, as a bearer token, to the configured server only, once per shot
    // (a refused key is not retried).
    let sent = double.requests();
    assert_eq!(sent.len(), 2);
    let bearer = format!("Bearer {secret}");
    assert!(
        sent.iter()
            .all(|r| r.authorization.as_deref() == Some(bearer.as_str()))
    );
    rt.block_on(node.stop()).expect("stop");
    // Not in this process's logs (the node's warnings quote the server's error).
    let logged = crate::LOGGED.lock().expect("logs").clone();
    let logged = String::from_utf8_lossy(&logged);
    assert!(logged.contains("answered 401"), "the refusal was logged");
    assert!(!logged.contains(secret), "a log line holds the key");
    // Not in the document peers receive, nor any file of the data dir.
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the key",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_cli_says_what_advice_and_the_video_batch_cannot_do_on_a_node_without_a_gpu() {
    let dir = tempfile::tempdir().expect("tmp");
    project(dir.path(), 2);
    // No node runs, so no node can run a video workflow: every shot says so, and
    // the advice is said to be rule-based.
    let (ok, said) = crate::publish::reelmesh(dir.path(), &["advise"]);
    assert!(ok, "{said}");
    assert!(said.contains("this is rule-based advice"), "{said}");
    assert_eq!(
        said.matches("no advice: no image-to-video workflow can run on the mesh now")
            .count(),
        2,
        "{said}"
    );
    let (ok, said) = crate::publish::reelmesh(dir.path(), &["advise", "--accept", "all"]);
    assert!(!ok);
    assert!(
        said.contains("no usable advice to accept for any shot"),
        "{said}"
    );
    // A workflow set by hand; rendering here is refused before anything is queued.
    let (ok, said) =
        crate::publish::reelmesh(dir.path(), &["shot", "set", "SHT-00001", "workflow=ltx2"]);
    assert!(ok, "{said}");
    let (ok, said) = crate::publish::reelmesh(dir.path(), &["render", "--video", "--shots", "all"]);
    assert!(!ok);
    assert!(
        said.contains("this node cannot run 'ltx2': it needs ComfyUI (start the node with --comfy URL); pass --queue"),
        "{said}"
    );
    let (ok, said) = crate::publish::reelmesh(
        dir.path(),
        &[
            "render",
            "--video",
            "--shots",
            "all",
            "--then",
            "flux_upscale",
        ],
    );
    assert!(!ok);
    assert!(said.contains("'flux_upscale' takes no clip"), "{said}");
    let (_, said) = crate::publish::reelmesh(dir.path(), &["jobs"]);
    assert!(!said.contains("ltx2"), "nothing was queued: {said}");
}
