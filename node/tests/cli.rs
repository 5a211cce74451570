//! The `reelmesh` binary end to end, as a newcomer and a script would run it.

use std::path::Path;
use std::process::{Command, Output};

fn reelmesh(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reelmesh"))
        .args(args)
        .env("REELMESH_DATA_DIR", data_dir)
        .output()
        .expect("run reelmesh")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

#[test]
fn demo_imports_the_sample_and_prints_shots_timecodes_and_prompts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = stdout(&reelmesh(tmp.path(), &["demo"]));
    for code in ["SHT-00001", "SHT-00005"] {
        assert!(out.contains(code), "{out}");
    }
    assert!(out.contains("민아"), "Hangul survives: {out}");
    // 72 + 96 + 48 + 144 + 120 frames at 24 fps: the last shot ends at 00:00:20:00.
    assert!(out.contains("00:00:20:00"), "{out}");
    assert!(
        out.contains("m1na"),
        "trigger words reach the prompt: {out}"
    );
    assert!(out.contains("captured with Arri Alexa 35"), "{out}");
}

#[test]
fn init_import_shots_export_and_reimport_through_the_binary() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo_shotlist.xlsx");
    stdout(&reelmesh(
        &data,
        &["init", "골목", "--frame-rate", "29.97df"],
    ));
    let imported = stdout(&reelmesh(
        &data,
        &["import", sample.to_str().expect("path")],
    ));
    assert!(imported.contains("5 shots added"), "{imported}");
    let json = stdout(&reelmesh(&data, &["shots", "--json"]));
    let rows: serde_json::Value = serde_json::from_str(&json).expect("json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[1]["timecode_in"], "00:00:02;12",
        "72 frames at 29.97 DF"
    );
    assert_eq!(rows[0]["characters"][0], "민아");

    let exported = tmp.path().join("out.xlsx");
    stdout(&reelmesh(
        &data,
        &["export", exported.to_str().expect("path")],
    ));
    let other = tmp.path().join("other");
    stdout(&reelmesh(
        &other,
        &["init", "copy", "--frame-rate", "29.97df"],
    ));
    stdout(&reelmesh(
        &other,
        &["import", exported.to_str().expect("path")],
    ));
    let copy: serde_json::Value =
        serde_json::from_str(&stdout(&reelmesh(&other, &["shots", "--json"]))).expect("json");
    let original: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(copy, original);
}

#[test]
fn a_bad_file_is_refused_with_its_name_and_nothing_changes() {
    let tmp = tempfile::tempdir().expect("tmp");
    stdout(&reelmesh(tmp.path(), &["init", "p"]));
    let bad = tmp.path().join("broken.xlsx");
    std::fs::write(&bad, b"PK\x03\x04 this is not a workbook").expect("write");
    let output = reelmesh(tmp.path(), &["import", bad.to_str().expect("path")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.xlsx"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let shots: serde_json::Value =
        serde_json::from_str(&stdout(&reelmesh(tmp.path(), &["shots", "--json"]))).expect("json");
    assert_eq!(shots.as_array().map(Vec::len), Some(0));
}
