//! The ComfyUI client against the in-process fake ComfyUI (`support/comfy_double.rs`),
//! which answers with the shapes recorded from a real ComfyUI 0.33. Nothing here
//! waits by sleeping: tests wait on run events or on the double's state, with
//! timeouts.

#![allow(clippy::unwrap_used)] // test helpers panic on failure by design

use std::time::Duration;

use reelmesh_node::comfy::{
    ComfyClient, ComfyError, ComfyLimits, GraphNodeError, ImageFormat, MediaKind, RunEvent,
    RunRequest, RunResult,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::comfy_double::{ComfyDouble, DoubleOptions, Script};

const WAIT: Duration = Duration::from_secs(20);

fn recorded(name: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/comfyui/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The `prompt` of a recorded request body.
fn recorded_prompt(name: &str) -> Value {
    let body: Value = serde_json::from_slice(&recorded(name)).unwrap();
    body["prompt"].clone()
}

fn request(prompt: Value) -> RunRequest {
    RunRequest {
        prompt,
        timeout: Duration::from_secs(30),
        output_nodes: Vec::new(),
    }
}

/// A run in a task, with its events.
struct Running {
    events: mpsc::Receiver<RunEvent>,
    /// Events taken while waiting for one.
    seen: Vec<RunEvent>,
    task: JoinHandle<Result<RunResult, ComfyError>>,
    cancel: CancellationToken,
}

impl Running {
    fn start(client: &ComfyClient, request: RunRequest) -> Running {
        let (tx, events) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        let client = client.clone();
        let token = cancel.clone();
        let task = tokio::spawn(async move { client.run(request, &tx, &token).await });
        Running {
            events,
            seen: Vec::new(),
            task,
            cancel,
        }
    }

    /// Wait for the first event that `test` accepts; returns it.
    async fn wait_event(&mut self, what: &str, test: impl Fn(&RunEvent) -> bool) -> RunEvent {
        let waiting = async {
            while let Some(event) = self.events.recv().await {
                self.seen.push(event.clone());
                if test(&event) {
                    return event;
                }
            }
            panic!("run ended before {what}");
        };
        tokio::time::timeout(WAIT, waiting)
            .await
            .unwrap_or_else(|_| panic!("waited {WAIT:?} for {what}"))
    }

    async fn finish(self) -> (Result<RunResult, ComfyError>, Vec<RunEvent>) {
        let Running {
            mut events,
            mut seen,
            task,
            ..
        } = self;
        let result = tokio::time::timeout(WAIT, task)
            .await
            .expect("run did not end in time")
            .expect("run task panicked");
        while let Ok(event) = events.try_recv() {
            seen.push(event);
        }
        (result, seen)
    }
}

async fn run(
    client: &ComfyClient,
    request: RunRequest,
) -> (Result<RunResult, ComfyError>, Vec<RunEvent>) {
    Running::start(client, request).finish().await
}

fn prompt_id_of(events: &[RunEvent]) -> String {
    events
        .iter()
        .find_map(|event| match event {
            RunEvent::Queued { prompt_id, .. } => Some(prompt_id.clone()),
            _ => None,
        })
        .expect("no queued event")
}

#[tokio::test]
async fn a_render_reports_progress_in_order_and_fetches_its_image() {
    let double = ComfyDouble::start(DoubleOptions {
        models: vec!["sd_xl_base_1.0.safetensors".into()],
        sampler_steps: Some(5),
        ..DoubleOptions::default()
    })
    .await;
    let client = ComfyClient::new(&format!("{}/", double.url())).unwrap();
    assert_eq!(client.base_url(), double.url());

    let (result, events) = run(
        &client,
        request(recorded_prompt(
            "prompt_error_missing_model_sd_request.json",
        )),
    )
    .await;
    let result = result.unwrap();

    // Events: queued, started, each node, the sampler's steps, the output.
    let mut plain: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    let mut previews = 0;
    for event in &events {
        match event {
            RunEvent::Queued { number, .. } => plain.push(format!("queued {number}")),
            RunEvent::Started => plain.push("started".into()),
            RunEvent::Cached { nodes } => plain.push(format!("cached {nodes:?}")),
            RunEvent::Executing { node } => plain.push(format!("executing {node}")),
            RunEvent::Progress { node, value, max } => {
                assert_eq!((node.as_str(), *max), ("3", 5));
                steps.push(*value);
            }
            RunEvent::Preview { format, bytes } => {
                assert_eq!(*format, ImageFormat::Png);
                assert_eq!(*bytes, recorded("ws_binary_meta_frame0.png"));
                previews += 1;
            }
            RunEvent::Executed { node } => plain.push(format!("executed {node}")),
        }
    }
    assert_eq!(
        plain,
        [
            "queued 0",
            "started",
            "executing 4",
            "executing 5",
            "executing 6",
            "executing 7",
            "executing 3",
            "executing 8",
            "executing 9",
            "executed 9"
        ]
    );
    assert_eq!(steps, [1, 2, 3, 4, 5]);
    assert_eq!(previews, 5);

    assert_eq!(result.outputs.len(), 1);
    let output = &result.outputs[0];
    assert_eq!(output.file.node_id, "9");
    assert_eq!(output.file.filename, "shot_010_00001_.png");
    assert_eq!(output.file.kind, "output");
    assert_eq!(output.media, MediaKind::Image);
    assert_eq!(output.bytes, recorded("view_ok.png"));
    assert!(!result.cached);
    assert_eq!(result.prompt_id, prompt_id_of(&events));
    let first = result.first_event_at.expect("no first event time");
    assert!(result.submitted_at <= first && first <= result.finished_at);

    // What went over the wire.
    double.assert_no_origin_header();
    let prompts = double.prompts();
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].client_id.as_deref(), Some(client.client_id()));
    assert_eq!(
        prompts[0].prompt_id.as_deref(),
        Some(result.prompt_id.as_str())
    );
    let sockets = double.sockets();
    assert_eq!(sockets.len(), 1);
    assert_eq!(sockets[0].client_id.as_deref(), Some(client.client_id()));
    assert!(
        sockets[0].preview_metadata,
        "the client did not ask for preview metadata"
    );
    let order: Vec<String> = double
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let socket_at = order.iter().position(|r| r == "GET /ws").unwrap();
    let prompt_at = order.iter().position(|r| r == "POST /prompt").unwrap();
    assert!(socket_at < prompt_at, "{order:?}");
    assert!(
        order.contains(&format!("GET /history/{}", result.prompt_id)),
        "{order:?}"
    );
    let views = double.requests_to("GET", "/view");
    assert_eq!(views.len(), 1);
    assert_eq!(
        views[0].query.as_deref(),
        Some("filename=shot_010_00001_.png&subfolder=&type=output")
    );
}

#[tokio::test]
async fn an_identical_prompt_is_cached_and_points_at_the_earlier_file() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let client = ComfyClient::new(&double.url()).unwrap();
    let prompt = recorded_prompt("prompt_ok_request.json");

    let (first, _) = run(&client, request(prompt.clone())).await;
    let first = first.unwrap();
    assert!(!first.cached);
    let (second, events) = run(&client, request(prompt)).await;
    let second = second.unwrap();

    assert!(second.cached);
    assert_ne!(second.prompt_id, first.prompt_id);
    assert!(events.contains(&RunEvent::Cached {
        nodes: vec!["1".into(), "2".into(), "3".into()]
    }));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, RunEvent::Executing { .. })),
        "{events:?}"
    );
    assert!(events.contains(&RunEvent::Executed { node: "3".into() }));
    assert_eq!(second.outputs[0].file.filename, "fixture_ok_00001_.png");
    assert_eq!(second.outputs[0].file, first.outputs[0].file);
    assert_eq!(second.outputs[0].bytes, recorded("view_ok.png"));
    // One socket for both runs.
    assert_eq!(double.sockets().len(), 1);
}

fn rejected(result: Result<RunResult, ComfyError>) -> (String, Vec<GraphNodeError>, String) {
    match result {
        Err(err @ ComfyError::Rejected { .. }) => {
            let text = err.to_string();
            let ComfyError::Rejected {
                message,
                node_errors,
            } = err
            else {
                unreachable!()
            };
            (message, node_errors, text)
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn rejected_workflows_name_the_node_and_input() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let client = ComfyClient::new(&double.url()).unwrap();

    // A model that is not installed: the loader and its input.
    let (_, errors, text) = rejected(
        run(
            &client,
            request(recorded_prompt(
                "prompt_error_missing_model_sd_request.json",
            )),
        )
        .await
        .0,
    );
    assert_eq!(
        errors,
        [GraphNodeError {
            node_id: "4".into(),
            class_type: "CheckpointLoaderSimple".into(),
            input: Some("ckpt_name".into()),
            message: "value not in list: 'sd_xl_base_1.0.safetensors' not in []".into(),
            kind: "value_not_in_list".into(),
        }]
    );
    assert!(
        text.contains("node 4 (CheckpointLoaderSimple), input ckpt_name: value not in list"),
        "{text}"
    );

    // An unknown class.
    let (message, errors, _) = rejected(
        run(
            &client,
            request(recorded_prompt("prompt_error_unknown_node_request.json")),
        )
        .await
        .0,
    );
    assert!(message.contains("'NoSuchNodeClass' not found"), "{message}");
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].node_id.as_str(), errors[0].class_type.as_str()),
        ("2", "NoSuchNodeClass")
    );

    // A bad value.
    let (_, errors, _) = rejected(
        run(
            &client,
            request(recorded_prompt("prompt_error_bad_value_request.json")),
        )
        .await
        .0,
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].input.as_deref(), Some("width"));
    assert!(errors[0].message.contains("'wide'"), "{:?}", errors[0]);

    // A graph that is not an object never leaves the node.
    let (result, _) = run(&client, request(serde_json::json!([1, 2, 3]))).await;
    assert!(
        matches!(result, Err(ComfyError::BadInput { .. })),
        "{result:?}"
    );
    double.assert_no_origin_header();
}

#[tokio::test]
async fn an_installed_model_passes_validation() {
    let double = ComfyDouble::start(DoubleOptions {
        models: vec![
            "flux1-dev.safetensors".into(),
            "t5xxl_fp16.safetensors".into(),
            "clip_l.safetensors".into(),
            "ae.safetensors".into(),
        ],
        sampler_steps: Some(2),
        ..DoubleOptions::default()
    })
    .await;
    let client = ComfyClient::new(&double.url()).unwrap();
    let info = client.object_info().await.unwrap();
    let choices = &info["UNETLoader"]["input"]["required"]["unet_name"][0];
    assert!(
        choices
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "flux1-dev.safetensors")
    );

    let (result, _) = run(
        &client,
        request(recorded_prompt(
            "prompt_error_missing_model_flux_request.json",
        )),
    )
    .await;
    let result = result.unwrap();
    assert_eq!(result.outputs[0].file.filename, "shot_010_flux_00001_.png");
}

/// The double's answers to every recorded failing request are the recorded answers.
#[tokio::test]
async fn the_double_rejects_like_the_recorded_server() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    reelmesh_node::tls();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/prompt", double.url());
    for (request_file, answer_file, status) in [
        (
            "prompt_error_unknown_node_request.json",
            "prompt_error_unknown_node.json",
            400,
        ),
        (
            "prompt_error_bad_value_request.json",
            "prompt_error_bad_value.json",
            400,
        ),
        (
            "prompt_error_out_of_range_request.json",
            "prompt_error_out_of_range.json",
            400,
        ),
        (
            "prompt_error_missing_input_request.json",
            "prompt_error_missing_input.json",
            400,
        ),
        (
            "prompt_error_bad_link_request.json",
            "prompt_error_bad_link.json",
            400,
        ),
        (
            "prompt_error_bad_combo_request.json",
            "prompt_error_bad_combo.json",
            400,
        ),
        (
            "prompt_error_wrong_link_type_request.json",
            "prompt_error_wrong_link_type.json",
            400,
        ),
        (
            "prompt_error_no_outputs_request.json",
            "prompt_error_no_outputs.json",
            400,
        ),
        (
            "prompt_error_missing_model_sd_request.json",
            "prompt_error_missing_model_sd.json",
            400,
        ),
        (
            "prompt_error_missing_model_flux_request.json",
            "prompt_error_missing_model_flux.json",
            400,
        ),
        (
            "prompt_error_no_prompt_request.json",
            "prompt_error_no_prompt.json",
            400,
        ),
        (
            "prompt_error_bad_prompt_id_request.json",
            "prompt_error_bad_prompt_id.json",
            400,
        ),
        (
            "prompt_error_prompt_not_object_request.json",
            "prompt_error_prompt_not_object.txt",
            500,
        ),
        (
            "prompt_error_malformed_json_request.txt",
            "prompt_error_malformed_json.txt",
            500,
        ),
    ] {
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .body(recorded(request_file))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{request_file}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.bytes().await.unwrap();
        if status == 500 {
            assert_eq!(content_type, "text/plain; charset=utf-8");
            assert_eq!(
                body.as_ref(),
                recorded(answer_file).as_slice(),
                "{request_file}"
            );
        } else {
            assert_eq!(content_type, "application/json; charset=utf-8");
            let got: Value = serde_json::from_slice(&body).unwrap();
            let want: Value = serde_json::from_slice(&recorded(answer_file)).unwrap();
            assert_eq!(got, want, "{request_file}");
        }
    }
    // Every POST bumps the number, rejected ones too.
    let ok = http
        .post(&url)
        .body(recorded("prompt_ok_request.json"))
        .send()
        .await
        .unwrap();
    let ok: Value = ok.json().await.unwrap();
    // The malformed body raised before the counter moved: 13 numbers used.
    assert_eq!(ok["number"], 13);
    // An Origin that does not match the Host is refused, as by the real server.
    let forbidden = http
        .get(format!("{}/system_stats", double.url()))
        .header("origin", "http://localhost:1")
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status().as_u16(), 403);
}

#[tokio::test]
async fn a_node_that_raises_is_an_execution_error_naming_it() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    double.script_next(Script::FailAt {
        node_id: "2".into(),
        exception_type: "ZeroDivisionError".into(),
        exception_message: "division by zero".into(),
    });
    let client = ComfyClient::new(&double.url()).unwrap();

    let (result, _) = run(&client, request(recorded_prompt("prompt_ok_request.json"))).await;
    let err = result.unwrap_err();
    assert_eq!(
        err,
        ComfyError::Execution {
            node_id: "2".into(),
            node_type: "ImageInvert".into(),
            exception_type: "ZeroDivisionError".into(),
            message: "division by zero".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "comfyui failed at node 2 (ImageInvert): ZeroDivisionError: division by zero"
    );
}

#[tokio::test]
async fn an_unreachable_comfyui_is_named_by_its_address() {
    // A stopped double.
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    double.stop().await;
    let client = ComfyClient::new(&double.url()).unwrap();
    let (result, _) = run(&client, request(recorded_prompt("prompt_ok_request.json"))).await;
    match result {
        Err(err @ ComfyError::Unreachable { .. }) => {
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "comfyui at {}: unreachable (connection refused",
                    double.url()
                )),
                "{text}"
            );
        }
        other => panic!("expected unreachable, got {other:?}"),
    }

    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = ComfyClient::new(&url).unwrap();
    let (result, _) = run(&client, request(recorded_prompt("prompt_ok_request.json"))).await;
    assert!(
        matches!(&result, Err(ComfyError::Unreachable { url: named, .. }) if *named == url),
        "{result:?}"
    );
    let stats = client.system_stats().await;
    assert!(
        matches!(stats, Err(ComfyError::Unreachable { .. })),
        "{stats:?}"
    );

    // Not http at all.
    assert!(matches!(
        ComfyClient::new("ftp://127.0.0.1:8188"),
        Err(ComfyError::BadInput { .. })
    ));
}

#[tokio::test]
async fn a_run_over_its_timeout_names_the_stage_and_frees_comfyui() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let client = ComfyClient::new(&double.url()).unwrap();
    let prompt = recorded_prompt("prompt_ok_request.json");

    // The first prompt hangs in node 2; a second waits in the queue behind it and
    // times out there.
    double.script_next(Script::HangAt {
        node_id: "2".into(),
    });
    let mut hanging = Running::start(&client, request(prompt.clone()));
    hanging
        .wait_event("node 2", |e| *e == RunEvent::Executing { node: "2".into() })
        .await;
    let mut changed = prompt.clone();
    changed["1"]["inputs"]["color"] = 255.into();
    let (queued, events) = run(
        &client,
        RunRequest {
            timeout: Duration::from_millis(300),
            ..request(changed)
        },
    )
    .await;
    assert_eq!(
        queued,
        Err(ComfyError::Timeout {
            after: Duration::from_millis(300),
            stage: "queue".into()
        })
    );
    // It was taken off the queue.
    let queued_id = prompt_id_of(&events);
    let deletes = double.requests_to("POST", "/queue");
    assert!(
        deletes
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&queued_id)),
        "no delete of {queued_id}"
    );
    assert!(!double.queue().1.contains(&queued_id));
    hanging.cancel.cancel();
    assert_eq!(hanging.finish().await.0, Err(ComfyError::Canceled));

    // A prompt that hangs while running times out in execution, and is interrupted
    // so that ComfyUI is free again.
    double.script_next(Script::HangAt {
        node_id: "2".into(),
    });
    // (Another color: nodes 1 and 2 of the first prompt ran and are cached.)
    let mut other = prompt;
    other["1"]["inputs"]["color"] = 0x00ff00.into();
    let mut hanging = Running::start(
        &client,
        RunRequest {
            timeout: Duration::from_millis(1500),
            ..request(other)
        },
    );
    hanging
        .wait_event("node 2", |e| *e == RunEvent::Executing { node: "2".into() })
        .await;
    let (running, events) = hanging.finish().await;
    let err = running.unwrap_err();
    assert_eq!(
        err.to_string(),
        "timed out after 1.5 s waiting for execution"
    );
    let running_id = prompt_id_of(&events);
    double
        .wait_for("the hung prompt to end", |d| {
            d.history_entry(&running_id).is_some()
        })
        .await;
    let entry = double.history_entry(&running_id).unwrap();
    assert_eq!(entry["status"]["status_str"], "error");
}

#[tokio::test]
async fn canceling_a_running_render_interrupts_it() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let client = ComfyClient::new(&double.url()).unwrap();
    double.script_next(Script::HangAt {
        node_id: "2".into(),
    });
    let mut running = Running::start(&client, request(recorded_prompt("prompt_ok_request.json")));
    running
        .wait_event("node 2", |e| *e == RunEvent::Executing { node: "2".into() })
        .await;
    running.cancel.cancel();
    let (result, events) = running.finish().await;
    assert_eq!(result, Err(ComfyError::Canceled));

    let prompt_id = prompt_id_of(&events);
    let interrupts = double.requests_to("POST", "/interrupt");
    assert_eq!(interrupts.len(), 1);
    let body: Value = serde_json::from_slice(&interrupts[0].body).unwrap();
    assert_eq!(body, serde_json::json!({ "prompt_id": prompt_id }));
    // ComfyUI stopped it between nodes.
    double
        .wait_for("the history entry", |d| {
            d.history_entry(&prompt_id).is_some()
        })
        .await;
    let entry = double.history_entry(&prompt_id).unwrap();
    let messages = entry["status"]["messages"].as_array().unwrap();
    let interrupted = messages
        .iter()
        .find(|m| m[0] == "execution_interrupted")
        .unwrap();
    assert_eq!(interrupted[1]["node_id"], "3");
}

#[tokio::test]
async fn canceling_a_queued_render_deletes_it_from_the_queue() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let client = ComfyClient::new(&double.url()).unwrap();
    let prompt = recorded_prompt("prompt_ok_request.json");
    double.script_next(Script::HangAt {
        node_id: "2".into(),
    });
    let mut first = Running::start(&client, request(prompt.clone()));
    first
        .wait_event("node 2", |e| *e == RunEvent::Executing { node: "2".into() })
        .await;

    let mut changed = prompt;
    changed["3"]["inputs"]["filename_prefix"] = "second".into();
    let mut second = Running::start(&client, request(changed));
    let queued = second
        .wait_event("queued", |e| matches!(e, RunEvent::Queued { .. }))
        .await;
    let RunEvent::Queued { prompt_id, .. } = queued else {
        unreachable!()
    };
    assert_eq!(double.queue().1, std::slice::from_ref(&prompt_id));
    second.cancel.cancel();
    let (result, _) = second.finish().await;
    assert_eq!(result, Err(ComfyError::Canceled));
    let deletes = double.requests_to("POST", "/queue");
    assert_eq!(deletes.len(), 1);
    let body: Value = serde_json::from_slice(&deletes[0].body).unwrap();
    assert_eq!(body, serde_json::json!({ "delete": [prompt_id] }));
    assert!(double.queue().1.is_empty());
    assert!(double.history_entry(&prompt_id).is_none());
    // The running one was not touched.
    assert!(double.requests_to("POST", "/interrupt").is_empty());

    first.cancel.cancel();
    assert_eq!(first.finish().await.0, Err(ComfyError::Canceled));
}

#[tokio::test]
async fn a_dropped_websocket_is_reopened_and_the_run_completes() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let client = ComfyClient::new(&double.url()).unwrap();
    let prompt = recorded_prompt("prompt_ok_request.json");

    // Dropped, and the prompt finishes while the client is away: found in history.
    double.script_next(Script::DropSocketAt {
        node_id: "2".into(),
    });
    let (result, _) = run(&client, request(prompt.clone())).await;
    assert_eq!(result.unwrap().outputs[0].bytes, recorded("view_ok.png"));
    assert_eq!(double.sockets().len(), 2);

    // Dropped while the node is held: the run follows it on the new socket.
    let release = CancellationToken::new();
    double.script_next_all(vec![
        Script::DropSocketAt {
            node_id: "2".into(),
        },
        Script::HoldAt {
            node_id: "2".into(),
            release: release.clone(),
        },
    ]);
    let mut changed = prompt;
    changed["1"]["inputs"]["color"] = 255.into();
    let queue_checks = double.requests_to("GET", "/queue").len();
    let mut running = Running::start(&client, request(changed));
    running
        .wait_event("node 2", |e| *e == RunEvent::Executing { node: "2".into() })
        .await;
    double.wait_sockets(3).await;
    double
        .wait_for("the new socket to be registered", |d| {
            d.sockets().iter().filter(|s| s.open).count() == 1
        })
        .await;
    // The run asks where its prompt is after the reconnect; then let it go on.
    double
        .wait_for("a queue check", |d| {
            d.requests_to("GET", "/queue").len() > queue_checks
        })
        .await;
    release.cancel();
    running
        .wait_event("node 3", |e| *e == RunEvent::Executing { node: "3".into() })
        .await;
    let (result, events) = running.finish().await;
    let result = result.unwrap();
    assert_eq!(result.outputs.len(), 1);
    assert!(
        events.contains(&RunEvent::Executed { node: "3".into() }),
        "{events:?}"
    );
    for socket in double.sockets() {
        assert_eq!(socket.client_id.as_deref(), Some(client.client_id()));
    }
    double.assert_no_origin_header();
}

#[tokio::test]
async fn a_silent_websocket_is_covered_by_asking_where_the_prompt_is() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let limits = ComfyLimits {
        silence_check: Duration::from_millis(200),
        ..ComfyLimits::default()
    };
    let client = ComfyClient::with_limits(&double.url(), limits).unwrap();
    double.script_next(Script::MuteSocketAt {
        node_id: "2".into(),
    });
    let (result, events) = run(&client, request(recorded_prompt("prompt_ok_request.json"))).await;
    let result = result.unwrap();
    assert_eq!(result.outputs[0].bytes, recorded("view_ok.png"));
    // Nothing after node 2 came over the socket; the history told.
    assert!(
        !events.contains(&RunEvent::Executed { node: "3".into() }),
        "{events:?}"
    );
    assert!(!double.requests_to("GET", "/queue").is_empty());
    assert_eq!(double.sockets().len(), 1);
}

#[tokio::test]
async fn a_full_event_channel_does_not_slow_the_run() {
    let double = ComfyDouble::start(DoubleOptions {
        models: vec!["sd_xl_base_1.0.safetensors".into()],
        sampler_steps: Some(300),
        ..DoubleOptions::default()
    })
    .await;
    let client = ComfyClient::new(&double.url()).unwrap();
    // Nobody reads this channel.
    let (events, _unread) = mpsc::channel(1);
    let cancel = CancellationToken::new();
    let run = client.run(
        request(recorded_prompt(
            "prompt_error_missing_model_sd_request.json",
        )),
        &events,
        &cancel,
    );
    let result = tokio::time::timeout(WAIT, run)
        .await
        .expect("the run was held up");
    assert_eq!(result.unwrap().outputs.len(), 1);
}

#[tokio::test]
async fn a_restart_mid_run_loses_the_prompt_and_the_next_run_works() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let client = ComfyClient::new(&double.url()).unwrap();
    let prompt = recorded_prompt("prompt_ok_request.json");
    double.script_next(Script::HangAt {
        node_id: "2".into(),
    });
    let mut running = Running::start(&client, request(prompt.clone()));
    running
        .wait_event("node 2", |e| *e == RunEvent::Executing { node: "2".into() })
        .await;
    double.restart().await;
    let (result, events) = running.finish().await;
    let prompt_id = prompt_id_of(&events);
    assert_eq!(result, Err(ComfyError::Lost { prompt_id }));

    let (again, _) = run(&client, request(prompt)).await;
    let again = again.unwrap();
    assert_eq!(again.outputs[0].bytes, recorded("view_ok.png"));
}

#[tokio::test]
async fn a_websocket_that_cannot_be_reopened_ends_the_run() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let limits = ComfyLimits {
        max_reconnect_attempts: 2,
        ..ComfyLimits::default()
    };
    let client = ComfyClient::with_limits(&double.url(), limits).unwrap();
    double.script_next(Script::HangAt {
        node_id: "2".into(),
    });
    let mut running = Running::start(&client, request(recorded_prompt("prompt_ok_request.json")));
    running
        .wait_event("node 2", |e| *e == RunEvent::Executing { node: "2".into() })
        .await;
    double.stop().await;
    let (result, _) = running.finish().await;
    match result {
        Err(ComfyError::Unreachable { url, reason }) => {
            assert_eq!(url, double.url());
            assert!(reason.contains("2 attempts"), "{reason}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn video_outputs_are_videos_and_output_nodes_pick_files() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let client = ComfyClient::new(&double.url()).unwrap();
    let prompt = recorded_prompt("prompt_video_request.json");

    let (result, _) = run(&client, request(prompt.clone())).await;
    let result = result.unwrap();
    let files: Vec<(&str, &str, &str, MediaKind)> = result
        .outputs
        .iter()
        .map(|o| {
            (
                o.file.node_id.as_str(),
                o.file.subfolder.as_str(),
                o.file.filename.as_str(),
                o.media,
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("4", "video", "fixture_shot_00001_.mp4", MediaKind::Video),
            (
                "5",
                "",
                "fixture_anim_00001_.webp",
                MediaKind::AnimatedImage
            ),
        ]
    );
    assert_eq!(result.outputs[0].bytes, recorded("view_video.mp4"));
    assert_eq!(result.outputs[1].bytes, recorded("view_anim.webp"));
    assert!(result.outputs.iter().all(|o| o.file.animated));

    // Only the video, and a node with nothing is no output.
    let mut changed = prompt;
    changed["1"]["inputs"]["color"] = 1.into();
    let (result, _) = run(
        &client,
        RunRequest {
            output_nodes: vec!["4".into()],
            ..request(changed.clone())
        },
    )
    .await;
    let result = result.unwrap();
    assert_eq!(result.outputs.len(), 1);
    assert_eq!(result.outputs[0].media, MediaKind::Video);
    let (result, _) = run(
        &client,
        RunRequest {
            output_nodes: vec!["1".into()],
            ..request(changed)
        },
    )
    .await;
    assert!(
        matches!(result, Err(ComfyError::NoOutput { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn uploads_keep_or_rename_like_comfyui_and_feed_loadimage() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let client = ComfyClient::new(&double.url()).unwrap();
    let png = recorded("upload_input.png");

    let first = client
        .upload_image("fixture_upload.png", png.clone(), None)
        .await
        .unwrap();
    assert_eq!(first.name, "fixture_upload.png");
    assert_eq!(first.input_name(), "fixture_upload.png");
    let same = client
        .upload_image("fixture_upload.png", png.clone(), None)
        .await
        .unwrap();
    assert_eq!(same.name, "fixture_upload.png");
    let other = client
        .upload_image("fixture_upload.png", recorded("view_ok.png"), None)
        .await
        .unwrap();
    assert_eq!(other.name, "fixture_upload (1).png");
    let shot = client
        .upload_image("fixture_upload.png", png.clone(), Some("shots"))
        .await
        .unwrap();
    assert_eq!(shot.input_name(), "shots/fixture_upload.png");
    assert!(
        client
            .upload_image("../escape.png", png.clone(), None)
            .await
            .is_err()
    );

    let uploads = double.requests_to("POST", "/upload/image");
    assert_eq!(uploads.len(), 4);
    let content_type = uploads[0].header("content-type").unwrap();
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );

    // The uploaded image as a LoadImage input.
    let mut prompt = recorded_prompt("prompt_loadimage_request.json");
    prompt["1"]["inputs"]["image"] = shot.input_name().into();
    let (result, _) = run(&client, request(prompt)).await;
    let result = result.unwrap();
    let files: Vec<(&str, &str, &str)> = result
        .outputs
        .iter()
        .map(|o| {
            (
                o.file.node_id.as_str(),
                o.file.subfolder.as_str(),
                o.file.kind.as_str(),
            )
        })
        .collect();
    assert_eq!(files, [("4", "shots", "output"), ("5", "", "temp")]);

    // An image that was never uploaded fails LoadImage's own check.
    let mut missing = recorded_prompt("prompt_loadimage_request.json");
    missing["1"]["inputs"]["image"] = "never_uploaded.png".into();
    let (result, _) = run(&client, request(missing)).await;
    let (_, errors, _) = rejected(result);
    assert_eq!(errors[0].node_id, "1");
    assert_eq!(errors[0].input.as_deref(), Some("image"));
}

#[tokio::test]
async fn an_output_over_the_size_limit_is_refused() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let limits = ComfyLimits {
        max_output_bytes: 100,
        ..ComfyLimits::default()
    };
    let client = ComfyClient::with_limits(&double.url(), limits).unwrap();
    let (result, _) = run(&client, request(recorded_prompt("prompt_ok_request.json"))).await;
    match result {
        Err(ComfyError::Protocol { url, reason }) => {
            assert!(
                url.contains("/view?filename=fixture_ok_00001_.png"),
                "{url}"
            );
            assert!(reason.contains("over the 100-byte limit"), "{reason}");
        }
        other => panic!("expected a refused output, got {other:?}"),
    }
}

#[tokio::test]
async fn small_calls_read_the_recorded_shapes() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let client = ComfyClient::new(&double.url()).unwrap();
    let stats = client.system_stats().await.unwrap();
    assert_eq!(stats["system"]["comfyui_version"], "0.33.0");
    assert_eq!(client.queue_len().await.unwrap(), (0, 0));
    let info = client.object_info().await.unwrap();
    assert!(info["KSampler"].is_object());
    // Interrupting or deleting a prompt that is not there is fine.
    client
        .interrupt("00000000-0000-4000-8000-000000000000")
        .await
        .unwrap();
    client
        .delete_queued("00000000-0000-4000-8000-000000000000")
        .await
        .unwrap();
    // A file that is not there is a 404 naming the address.
    let missing = reelmesh_node::comfy::OutputFile {
        node_id: "9".into(),
        filename: "does_not_exist.png".into(),
        subfolder: String::new(),
        kind: "output".into(),
        animated: false,
    };
    match client.view(&missing).await {
        Err(ComfyError::Http {
            url, status: 404, ..
        }) => {
            assert!(url.starts_with(&double.url()), "{url}");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    double.assert_no_origin_header();
}

/// A frame as a line to compare: the message type and the node it names
/// (`progress_state` is left out: it is chatty and its count is timing).
fn frame_line(frame: &Value) -> Option<String> {
    if frame["frame"] == "binary" {
        return Some(format!("binary {}", frame["event_type"]));
    }
    let message = &frame["msg"];
    let kind = message["type"].as_str().unwrap_or_default();
    let data = &message["data"];
    Some(match kind {
        "progress_state" => return None,
        "status" if data.get("sid").is_some() => "status sid".to_owned(),
        "executing" | "executed" | "progress" => format!("{kind} {}", data["node"]),
        "execution_cached" => format!("{kind} {}", data["nodes"]),
        "execution_error" | "execution_interrupted" => format!("{kind} {}", data["node_id"]),
        other => other.to_owned(),
    })
}

/// The recorded server frames of a websocket log.
fn recorded_frames(log: &str) -> Vec<Value> {
    String::from_utf8(recorded(log))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["dir"] == "server->client")
        .collect()
}

/// Connect a plain websocket client (not the one under test), optionally announce
/// preview metadata, post `request_file` with its client id, and collect the frames
/// until our `executing` null, in the recorded log's form.
async fn double_frames(
    double: &ComfyDouble,
    request_file: &str,
    metadata: bool,
    scripts: Vec<Script>,
    interrupt_at: Option<&str>,
) -> Vec<Value> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let client_id = uuid::Uuid::new_v4().to_string();
    let ws_url = format!("ws://{}/ws?clientId={client_id}", double.addr());
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap();
    if metadata {
        socket
            .send(Message::text(
                r#"{"type": "feature_flags", "data": {"supports_preview_metadata": true}}"#,
            ))
            .await
            .unwrap();
    }
    let sockets = double.sockets().len();
    double
        .wait_for("the socket", |d| {
            d.sockets().len() >= sockets
                && d.sockets()
                    .iter()
                    .any(|s| s.open && s.preview_metadata == metadata)
        })
        .await;
    if !scripts.is_empty() {
        double.script_next_all(scripts);
    }
    let mut body: Value = serde_json::from_slice(&recorded(request_file)).unwrap();
    body["client_id"] = client_id.clone().into();
    reelmesh_node::tls();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let answer: Value = http
        .post(format!("{}/prompt", double.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prompt_id = answer["prompt_id"].clone();
    let mut frames = Vec::new();
    let collecting = async {
        while let Some(frame) = socket.next().await {
            match frame.unwrap() {
                Message::Text(text) => {
                    let msg: Value = serde_json::from_str(text.as_str()).unwrap();
                    let done = msg["type"] == "executing"
                        && msg["data"]["node"].is_null()
                        && msg["data"]["prompt_id"] == prompt_id;
                    if msg["type"] == "executing"
                        && interrupt_at.is_some_and(|node| msg["data"]["node"] == node)
                    {
                        http.post(format!("{}/interrupt", double.url()))
                            .json(&serde_json::json!({ "prompt_id": prompt_id }))
                            .send()
                            .await
                            .unwrap();
                    }
                    frames.push(serde_json::json!({"frame": "text", "msg": msg}));
                    if done {
                        return;
                    }
                }
                Message::Binary(bytes) => {
                    let event_type = u32::from_be_bytes(bytes[..4].try_into().unwrap());
                    let head: String = bytes[..16].iter().map(|b| format!("{b:02x}")).collect();
                    frames.push(serde_json::json!({
                        "frame": "binary",
                        "event_type": event_type,
                        "first_bytes_hex": head,
                    }));
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, collecting)
        .await
        .expect("no executing null");
    frames
}

/// Same message order as the recording, and each message with the recorded keys.
fn assert_same_frames(log: &str, got: &[Value]) {
    let want = recorded_frames(log);
    let lines =
        |frames: &[Value]| -> Vec<String> { frames.iter().filter_map(frame_line).collect() };
    // Node ids and prompt ids differ per run only where the graphs differ; the
    // recorded graphs are the ones posted here, so the lines compare as they are.
    assert_eq!(lines(got), lines(&want), "{log}");
    for frame in got.iter().filter(|f| f["frame"] == "text") {
        let kind = &frame["msg"]["type"];
        let keys = |message: &Value| -> Vec<String> {
            let mut keys: Vec<String> = message["data"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            keys.sort();
            keys
        };
        let recorded = want
            .iter()
            .find(|w| w["msg"]["type"] == *kind && keys(&w["msg"]) == keys(&frame["msg"]));
        assert!(
            recorded.is_some(),
            "{log}: no recorded {kind} with the keys of {}",
            frame["msg"]
        );
    }
}

#[tokio::test]
async fn the_double_speaks_the_recorded_websocket_sequences() {
    let double = ComfyDouble::start(DoubleOptions::default()).await;
    let ok = double_frames(&double, "prompt_ok_request.json", false, vec![], None).await;
    assert_same_frames("ws_ok.jsonl", &ok);
    let cached = double_frames(
        &double,
        "prompt_ok_cached_request.json",
        false,
        vec![],
        None,
    )
    .await;
    assert_same_frames("ws_ok_cached.jsonl", &cached);

    let error = double_frames(
        &double,
        "prompt_runtime_error_request.json",
        false,
        vec![Script::FailAt {
            node_id: "1".into(),
            exception_type: "ZeroDivisionError".into(),
            exception_message: "division by zero".into(),
        }],
        None,
    )
    .await;
    assert_same_frames("ws_runtime_error.jsonl", &error);

    // Interrupted while node 2 runs: stopped when node 3 starts. The recording has
    // more prompts and their statuses around it: compare the first prompt's part.
    let interrupted = double_frames(
        &double,
        "prompt_slow_request.json",
        false,
        vec![Script::HangAt {
            node_id: "2".into(),
        }],
        Some("2"),
    )
    .await;
    let without_status = |frames: &[Value]| -> Vec<String> {
        frames
            .iter()
            .filter_map(frame_line)
            .filter(|line| !line.starts_with("status"))
            .collect()
    };
    let recorded = recorded_frames("ws_interrupt.jsonl");
    let end = recorded
        .iter()
        .position(|f| f["msg"]["type"] == "executing" && f["msg"]["data"]["node"].is_null())
        .unwrap();
    assert_eq!(
        without_status(&interrupted),
        without_status(&recorded[..=end])
    );

    // Legacy preview frames without feature flags, then frames with metadata (node 1
    // cached by the run before, as when it was recorded).
    let legacy = double_frames(&double, "prompt_ws_image_request.json", false, vec![], None).await;
    let binary = legacy.iter().find(|f| f["frame"] == "binary").unwrap();
    let recorded_binary = recorded_frames("ws_binary.jsonl")
        .into_iter()
        .find(|f| f["frame"] == "binary")
        .unwrap();
    assert_eq!(
        binary["first_bytes_hex"],
        recorded_binary["first_bytes_hex"]
    );
    let meta = double_frames(
        &double,
        "prompt_ws_image_meta_request.json",
        true,
        vec![],
        None,
    )
    .await;
    assert_same_frames("ws_binary_meta.jsonl", &meta);
    double.assert_no_origin_header();
}
