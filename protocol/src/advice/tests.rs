#![allow(clippy::unwrap_used)]

use super::*;

fn candidate(id: &str, kind: &str, vram: f64, inputs: &[&str]) -> Candidate {
    Candidate {
        id: id.into(),
        kind: kind.into(),
        purpose: format!("{id} purpose"),
        vram_min_gb: vram,
        inputs: inputs.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn candidates() -> Vec<Candidate> {
    vec![
        candidate(
            "wan_animate",
            "image-to-video",
            16.0,
            &["first_frame", "input_video"],
        ),
        candidate("ltx2", "image-to-video", 24.0, &["first_frame"]),
        candidate("kling_i2v", "image-to-video", 0.0, &["first_frame"]),
        candidate(
            "fflf",
            "image-to-video",
            20.0,
            &["first_frame", "last_frame"],
        ),
        candidate(
            "telestyle",
            "style-transfer",
            12.0,
            &["first_frame", "reference_image"],
        ),
    ]
}

fn known() -> Vec<String> {
    [
        "wan_animate",
        "ltx2",
        "kling_i2v",
        "fflf",
        "telestyle",
        "svi",
        "flux_basic",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The content of an answer recorded from llama-server (`../shared/llm/`).
fn recorded_content(file: &str) -> String {
    let path = format!("{}/../../shared/llm/{file}", env!("CARGO_MANIFEST_DIR"));
    let body: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_recorded_answer_checks_out_and_bad_ones_say_what_is_wrong() {
    let good = check(
        &recorded_content("chat_json_schema.json"),
        &candidates(),
        &known(),
    )
    .unwrap();
    assert_eq!(
        (good.workflow.as_str(), good.confidence, good.frames),
        ("fflf", 0.5, None)
    );
    // Cut at max_tokens (finish_reason "length"): not JSON.
    let cut = check(
        &recorded_content("chat_cut_by_max_tokens.json"),
        &candidates(),
        &known(),
    )
    .unwrap_err();
    assert!(cut.starts_with("the answer is not JSON"), "{cut}");
    let fenced = "```json\n{\"workflow\":\"ltx2\",\"reason\":\"뛰어 들어온다\",\"suggested_frames\":72,\"confidence\":0.9}\n```";
    let ok = check(fenced, &candidates(), &known()).unwrap();
    assert_eq!((ok.workflow.as_str(), ok.frames), ("ltx2", Some(72)));

    let cases = [
        (
            r#"{"workflow":"veo3","reason":"x","confidence":0.5}"#,
            "not a workflow of the catalog",
        ),
        (
            r#"{"workflow":"svi","reason":"x","confidence":0.5}"#,
            "no node of the mesh can run now",
        ),
        // llama-server let 11 of 20 answers exceed a number's maximum.
        (
            r#"{"workflow":"ltx2","reason":"x","confidence":1.7}"#,
            "confidence 1.7 is outside 0..1",
        ),
        (
            r#"{"workflow":"ltx2","reason":"  ","confidence":0.5}"#,
            "gives no reason",
        ),
        (r#"{"workflow":"ltx2","reason":"x"}"#, "gives no confidence"),
        (
            r#"{"workflow":"ltx2","reason":"x","confidence":0.5,"suggested_frames":-3}"#,
            "is not a length",
        ),
        (r#"["ltx2"]"#, "not a JSON object"),
        ("I cannot help with that.", "not JSON"),
    ];
    for (answer, says) in cases {
        let error = check(answer, &candidates(), &known()).unwrap_err();
        assert!(error.contains(says), "{answer}: {error}");
    }
}

fn facts(action: &str) -> ShotFacts {
    ShotFacts {
        code: "SHT-00002".into(),
        scene: "비 내리는 골목".into(),
        action: action.into(),
        characters: vec!["준호".into()],
        camera_and_look: vec![],
        frames: 48,
        seconds: 2.0,
        has_still: true,
        still_approved: true,
        previous_has_still: false,
        next_has_still: false,
        has_style_reference: false,
    }
}

#[test]
fn the_rules_pick_by_motion_neighbours_and_style_and_only_what_can_run() {
    let all = candidates();
    // Motion (Korean): local image to video, the biggest local one first; never
    // WAN-Animate, which needs a driving video.
    let run = rules(&facts("준호가 뛰어 들어오며 문이 닫힌다"), &all).unwrap();
    assert_eq!(run.workflow, "ltx2");
    assert!(
        run.reason.starts_with("rule-based: the action has motion"),
        "{}",
        run.reason
    );
    assert_eq!(run.frames, Some(48));
    // A still here and on the next shot: first frame / last frame.
    let mut joined = facts("준호가 서 있다");
    joined.next_has_still = true;
    assert_eq!(rules(&joined, &all).unwrap().workflow, "fflf");
    // A style reference: style transfer.
    let mut styled = facts("준호가 서 있다");
    styled.has_style_reference = true;
    assert_eq!(rules(&styled, &all).unwrap().workflow, "telestyle");
    // Only an API workflow can run: it is picked.
    let api_only = vec![candidate(
        "kling_i2v",
        "image-to-video",
        0.0,
        &["first_frame"],
    )];
    assert_eq!(
        rules(&facts("walks in"), &api_only).unwrap().workflow,
        "kling_i2v"
    );
    // Nothing to run: an error naming what was wanted.
    let none = rules(&facts("walks in"), &[]).unwrap_err();
    assert!(none.contains("no image-to-video workflow"), "{none}");
}

#[test]
fn the_schema_offers_only_the_candidates_and_the_message_carries_the_shot() {
    let all = candidates();
    let schema = schema(&all);
    assert_eq!(
        schema["properties"]["workflow"]["enum"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(schema["additionalProperties"], false);
    let message: Value = serde_json::from_str(&user_message(&facts("준호가 뛴다"), &all)).unwrap();
    assert_eq!(message["shot"]["action"], "준호가 뛴다");
    assert_eq!(message["shot"]["length_frames"], 48);
    assert_eq!(message["workflows"][3]["inputs"][1], "last_frame");
}
