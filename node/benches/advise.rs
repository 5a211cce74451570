//! Advising a 500-shot project (issue 22) against the OpenAI-compatible test server
//! (`tests/support/llm_double.rs`, answering in llama-server's recorded shapes)
//! with a 200 ms answer delay: requests in flight, total time against the time the
//! server alone needs (500 × 200 ms / requests in flight), and our own cost per
//! shot (the same run with no delay: building the request, the HTTP round trip on
//! loopback, checking the answer, writing the advice to the document).
//!
//! Run: `cargo bench -p reelmesh-node --bench advise` (release build).

#[path = "../tests/support/gpu_standin.rs"]
mod gpu_standin;
#[path = "../tests/support/llm_double.rs"]
mod llm_double;

#[path = "support/common.rs"]
mod common;

use std::time::{Duration, Instant};

use llm_double::{Behaviour, LlmDouble, LlmOptions};
use reelmesh_node::advise::{self, LlmConfig};
use reelmesh_node::node::{Node, NodeConfig};

const SHOTS: u64 = 500;
const DELAY: Duration = Duration::from_millis(200);

fn main() {
    let data = tempfile::tempdir().expect("tmp");
    common::korean_project(
        data.path(),
        "조언 500",
        SHOTS,
        "민아가 우산 없이 골목으로 뛰어 들어온다",
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("advising {SHOTS} shots (2 vCPU; test server on loopback)");
    runtime.block_on(async {
        let ledger = gpu_standin::Ledger::default();
        let mut config = NodeConfig::offline(data.path().to_owned());
        config.executor = Some(
            gpu_standin::GpuStandIn::new(
                "RTX 4090",
                24.0,
                &["ltx2", "fflf", "wan_animate", "telestyle"],
                0,
                &ledger,
            )
            .slot(),
        );
        let node = Node::start(config).await.expect("node");
        let handle = node.handle();
        let answer = || {
            Behaviour::Answer(
                r#"{"workflow":"ltx2","reason":"민아가 뛰어 들어온다: 움직임이 크다","suggested_frames":72,"confidence":0.82}"#
                    .into(),
            )
        };
        // Our own cost: no server delay, one request at a time.
        let fast = LlmDouble::start(LlmOptions::default(), move |_, _| answer()).await;
        let llm = |url: String, parallel: usize| LlmConfig {
            base_url: url,
            model: "qwen2.5:7b-instruct".into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            attempts: 3,
            backoff: Duration::from_millis(200),
            parallel,
        };
        let started = Instant::now();
        let (_, advice, _) = advise::advise(&handle, None, "all", Some(&llm(fast.url(), 1)), &mut |_, _| {})
            .await
            .expect("advised");
        let own = started.elapsed();
        assert!(advice.iter().all(|(_, a)| a.usable()));
        println!(
            "our own work per shot (no server delay, 1 in flight): {:.2} ms ({:.2} s for {SHOTS})",
            own.as_secs_f64() * 1000.0 / SHOTS as f64,
            own.as_secs_f64()
        );
        for parallel in [1_usize, 4, 16] {
            let slow = LlmDouble::start(
                LlmOptions {
                    delay: DELAY,
                    ..LlmOptions::default()
                },
                move |_, _| answer(),
            )
            .await;
            let started = Instant::now();
            let (_, advice, stats) =
                advise::advise(&handle, None, "all", Some(&llm(slow.url(), parallel)), &mut |_, _| {})
                    .await
                    .expect("advised");
            let took = started.elapsed();
            assert!(advice.iter().all(|(_, a)| a.usable()));
            let bound = DELAY.as_secs_f64() * SHOTS as f64 / parallel as f64;
            println!(
                "200 ms answers, {parallel:>2} in flight (server saw at most {}): {:.2} s; the server alone needs {:.2} s: {:.3}x of that",
                slow.max_in_flight(),
                took.as_secs_f64(),
                bound,
                took.as_secs_f64() / bound
            );
            assert_eq!(stats.requests, SHOTS as usize);
        }
        node.stop().await.expect("stop");
    });
}
