//! The `reelmesh` binary end to end, as a newcomer and a script would run it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

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
    // The mesh part: two render nodes receive the project, an edit travels back.
    for needle in [
        "render-1",
        "render-2",
        "joined and received the project",
        "the editor had it",
    ] {
        assert!(out.contains(needle), "missing '{needle}': {out}");
    }
    let synced = out
        .split("== the project as render-1 holds it")
        .nth(1)
        .expect("render-1's table");
    let row = synced
        .lines()
        .find(|l| l.starts_with("SHT-00003"))
        .expect("SHT-00003 row");
    assert!(
        row.contains("approved"),
        "render-2's edit reached render-1: {row}"
    );
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

#[test]
fn commands_go_through_a_running_node_which_saves_everything_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    stdout(&reelmesh(&data, &["mesh", "init"]));
    stdout(&reelmesh(&data, &["init", "노드"]));
    let mut node = start_node(&data);

    // The node owns the data dir: a second node is refused with a clear message...
    let second = reelmesh(
        &data,
        &["node", "--headless", "--listen", "/ip4/127.0.0.1/tcp/0"],
    );
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another reelmesh process"),
        "{stderr}"
    );
    // ...while CLI commands go through its control socket.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo_shotlist.xlsx");
    let imported = stdout(&reelmesh(
        &data,
        &["import", sample.to_str().expect("path")],
    ));
    assert!(imported.contains("5 shots added"), "{imported}");
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&reelmesh(&data, &["status", "--json"]))).expect("json");
    assert_eq!(status["running"], true);
    assert_eq!(status["projects"][0]["shots"], 5);
    assert_eq!(status["peers"][0]["this_node"], true);
    let listed = stdout(&reelmesh(&data, &["projects"]));
    assert!(listed.contains("  노드  (5 shots)"), "{listed}");
    // A render goes through the node too: it queues, runs and reports each job.
    let rendered = stdout(&reelmesh(
        &data,
        &[
            "render",
            "--shots",
            "SHT-00001..SHT-00002",
            "--workflow",
            "card",
        ],
    ));
    assert!(rendered.contains("queued 2 jobs"), "{rendered}");
    assert_eq!(rendered.matches("succeeded").count(), 2, "{rendered}");
    let socket = data.join("run/control.sock");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&socket).expect("socket").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "control socket is owner-only");

    let pid = node.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let exit = node.wait().expect("wait");
    assert!(exit.success(), "clean exit on SIGTERM: {exit}");
    assert!(!socket.exists(), "socket removed at shutdown");
    // Everything was saved: the data dir opens without the node and has the import.
    let rows: serde_json::Value =
        serde_json::from_str(&stdout(&reelmesh(&data, &["shots", "--json"]))).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(5));
    // The same list without a node: the same operation, answered by a node started
    // for the command.
    assert_eq!(stdout(&reelmesh(&data, &["projects"])), listed);
    let offline: serde_json::Value =
        serde_json::from_str(&stdout(&reelmesh(&data, &["status", "--json"]))).expect("json");
    assert_eq!(offline["running"], false);
}

#[test]
fn a_node_without_a_mesh_key_refuses_to_start_and_says_what_to_do() {
    let tmp = tempfile::tempdir().expect("tmp");
    let output = reelmesh(
        tmp.path(),
        &["node", "--headless", "--listen", "/ip4/127.0.0.1/tcp/0"],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no mesh key"), "{stderr}");
    assert!(stderr.contains("reelmesh mesh init"), "{stderr}");
    let bad = reelmesh(tmp.path(), &["join", "reelmesh1not-a-ticket"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("invalid ticket"), "{stderr}");
    assert!(
        !tmp.path().join("mesh.key").exists(),
        "a bad ticket changes nothing"
    );
}

#[test]
fn render_without_a_node_runs_the_jobs_here_and_records_takes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    stdout(&reelmesh(&data, &["init", "카드"]));
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo_shotlist.xlsx");
    stdout(&reelmesh(
        &data,
        &["import", sample.to_str().expect("path")],
    ));

    let listed = stdout(&reelmesh(&data, &["workflows", "list"]));
    for id in ["card", "flux_basic", "wan_animate", "rife_interpolate"] {
        assert!(listed.contains(id), "{listed}");
    }
    // A workflow this machine cannot run (no ComfyUI) is refused, nothing queued.
    let refused = reelmesh(
        &data,
        &["render", "--shots", "all", "--workflow", "flux_basic"],
    );
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("cannot run workflow 'flux_basic'"), "{why}");
    let none: serde_json::Value =
        serde_json::from_str(&stdout(&reelmesh(&data, &["jobs", "--json"]))).expect("json");
    assert_eq!(none.as_array().map(Vec::len), Some(0));
    // Input flags are checked against the workflow before anything is queued.
    let extra = reelmesh(
        &data,
        &[
            "render",
            "--shots",
            "all",
            "--workflow",
            "card",
            "--first-frame",
            "take",
        ],
    );
    assert!(!extra.status.success());
    let why = String::from_utf8_lossy(&extra.stderr);
    assert!(why.contains("takes no --first-frame"), "{why}");

    let rendered = stdout(&reelmesh(
        &data,
        &[
            "render",
            "--shots",
            "all",
            "--workflow",
            "card",
            "--seed",
            "9",
        ],
    ));
    assert!(rendered.contains("queued 5 jobs"), "{rendered}");
    assert_eq!(rendered.matches("succeeded").count(), 5, "{rendered}");
    let takes: serde_json::Value =
        serde_json::from_str(&stdout(&reelmesh(&data, &["takes", "--json"]))).expect("json");
    let takes = takes.as_array().expect("takes");
    assert_eq!(takes.len(), 5);
    for take in takes {
        assert_eq!(take["media"], "card");
        assert_eq!(take["seed"], 9);
        let blob = take["blob"].as_str().expect("hash");
        let bytes = std::fs::read(data.join("blobs").join(&blob[..2]).join(blob)).expect("blob");
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), blob);
    }
    let table = stdout(&reelmesh(&data, &["takes"]));
    assert!(table.contains("here"), "{table}");
    let folder = tmp.path().join("out");
    let copied = stdout(&reelmesh(
        &data,
        &["takes", "--out", folder.to_str().expect("path")],
    ));
    assert!(copied.contains("copied 5 take(s)"), "{copied}");
    let files: Vec<_> = std::fs::read_dir(&folder)
        .expect("folder")
        .flatten()
        .collect();
    assert_eq!(files.len(), 5);
    assert!(
        files
            .iter()
            .all(|f| f.file_name().to_string_lossy().ends_with(".png"))
    );
    let shots: serde_json::Value =
        serde_json::from_str(&stdout(&reelmesh(&data, &["shots", "--json"]))).expect("json");
    assert!(
        shots
            .as_array()
            .expect("rows")
            .iter()
            .all(|row| row["status"] == "completed"),
        "{shots}"
    );
}

#[test]
fn workflows_check_against_the_recorded_comfyui_passes_for_core_nodes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let info = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/comfyui/object_info.json");
    let info = info.to_str().expect("path");
    let ok = stdout(&reelmesh(
        tmp.path(),
        &[
            "workflows",
            "check",
            "--object-info",
            info,
            "--core",
            "--ignore-models",
        ],
    ));
    assert!(ok.contains("flux_basic"), "{ok}");
    // With models checked, the recorded server (no model files) cannot run FLUX and
    // says which file is missing.
    let strict = reelmesh(
        tmp.path(),
        &["workflows", "check", "--object-info", info, "flux_basic"],
    );
    assert!(!strict.status.success());
    let report = String::from_utf8_lossy(&strict.stdout);
    assert!(report.contains(".safetensors"), "{report}");
}

/// Start `reelmesh node` on a data dir; returns once it listens (it prints where:
/// read in a thread, waited for with a deadline).
fn start_node(data: &Path) -> std::process::Child {
    let mut node = Command::new(env!("CARGO_BIN_EXE_reelmesh"))
        .args([
            "node",
            "--headless",
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .env("REELMESH_DATA_DIR", data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node");
    let out = node.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.starts_with("listening on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("node started");
    node
}

fn stop_node(mut node: std::process::Child) {
    let pid = node.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    assert!(node.wait().expect("wait").success());
}

fn shot_json(data: &Path, code: &str) -> serde_json::Value {
    let rows: serde_json::Value =
        serde_json::from_str(&stdout(&reelmesh(data, &["shots", "--json"]))).expect("json");
    rows.as_array()
        .expect("rows")
        .iter()
        .find(|r| r["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {rows}"))
        .clone()
}

#[test]
fn every_editing_action_has_a_cli_form_with_and_without_a_node_and_undo_spans_both() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    stdout(&reelmesh(&data, &["mesh", "init"]));
    stdout(&reelmesh(&data, &["init", "편집"]));
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo_shotlist.xlsx");
    stdout(&reelmesh(
        &data,
        &["import", sample.to_str().expect("path")],
    ));

    // No node running: the command starts one here, without network.
    let said = stdout(&reelmesh(
        &data,
        &[
            "shot",
            "set",
            "SHT-00002",
            "action=준이 우산을 편다",
            "seconds=3.5",
            "characters=민아, 준",
        ],
    ));
    assert_eq!(said.trim(), "set action, seconds, characters of SHT-00002");
    let shot = shot_json(&data, "SHT-00002");
    assert_eq!(shot["action"], "준이 우산을 편다");
    assert_eq!(shot["frames"], 84);
    assert_eq!(shot["characters"], serde_json::json!(["민아", "준"]));
    // A bad value names the shot, the field and why; nothing is written.
    let heads = stdout(&reelmesh(&data, &["heads"]));
    let refused = reelmesh(&data, &["shot", "set", "2", "action=x", "frames=abc"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("SHT-00002, frames: \"abc\" is not a whole number of frames"),
        "{stderr}"
    );
    assert_eq!(
        stdout(&reelmesh(&data, &["heads"])),
        heads,
        "nothing written"
    );
    let unknown = reelmesh(&data, &["shot", "set", "2", "colour=red"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("a shot has no field 'colour'"));
    let added = stdout(&reelmesh(
        &data,
        &["shot", "add", "--after", "1", "action=새 장면"],
    ));
    assert_eq!(added.trim(), "added SHT-00006");
    stdout(&reelmesh(&data, &["shot", "move", "SHT-00006", "--end"]));
    stdout(&reelmesh(
        &data,
        &["review", "2", "revise", "--note", "조명을 더 어둡게"],
    ));
    assert_eq!(shot_json(&data, "SHT-00002")["status"], "needs_revision");

    // With a node running, the same commands go through it.
    let node = start_node(&data);
    stdout(&reelmesh(
        &data,
        &[
            "character",
            "add",
            "수아",
            "appearance=긴 머리",
            "lora=sua.safetensors",
            "lora_strength=0.7",
        ],
    ));
    stdout(&reelmesh(
        &data,
        &["shot", "set", "SHT-00003", "characters=수아"],
    ));
    stdout(&reelmesh(
        &data,
        &["look", "set", "네온 누아르", "aspect_ratio=2.39:1"],
    ));
    stdout(&reelmesh(
        &data,
        &["catalog", "add", "camera_body", "Blackmagic URSA"],
    ));
    stdout(&reelmesh(
        &data,
        &["template", "set", "{style} image of {subject}, {action}"],
    ));
    assert_eq!(
        shot_json(&data, "SHT-00003")["characters"],
        serde_json::json!(["수아"])
    );
    // Undo through the node: the template, the catalog value, the look, the link.
    for _ in 0..4 {
        stdout(&reelmesh(&data, &["undo"]));
    }
    assert_eq!(
        shot_json(&data, "SHT-00003")["characters"],
        serde_json::json!(["민아", "준"])
    );
    stop_node(node);

    // The stacks outlive the node: undo without it goes on where it left off.
    let undone = stdout(&reelmesh(&data, &["undo"]));
    assert!(
        undone.starts_with("undid: added character '수아'"),
        "{undone}"
    );
    let undone = stdout(&reelmesh(&data, &["undo"]));
    assert!(
        undone.starts_with("undid: SHT-00002 needs revision"),
        "{undone}"
    );
    assert_eq!(shot_json(&data, "SHT-00002")["status"], "pending");
    let redone = stdout(&reelmesh(&data, &["redo"]));
    assert!(
        redone.starts_with("redid: SHT-00002 needs revision"),
        "{redone}"
    );
    assert_eq!(shot_json(&data, "SHT-00002")["status"], "needs_revision");
}
