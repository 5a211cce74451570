//! Re-importing an exported workbook on a real mesh: a teammate's edit made on another
//! node survives, the sheet's own edit (made in openpyxl, as a user's spreadsheet
//! program would) is written, and a cell both changed is reported as a conflict.
//! Also `reelmesh import --dry-run` and `--map` through the binary.

#![allow(clippy::unwrap_used)] // tests panic on failure by design

use std::path::Path;
use std::process::Command;

use reelmesh_node::export::export_bytes_marked;
use reelmesh_node::import::{self, ExportMark, ImportOptions};
use reelmesh_protocol::model::ShotCode;

use crate::meshkit::{self, DEADLINE};

/// Whether python3 with openpyxl is here; without, a loud banner (CI requires it:
/// `REELMESH_REQUIRE_OPENPYXL=1`).
fn openpyxl_or_skip(test: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", "import openpyxl"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let required = std::env::var_os("REELMESH_REQUIRE_OPENPYXL").is_some();
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! {test} NOT RUN: python3 with openpyxl is missing.\n\
             !! It edits an exported workbook the way a spreadsheet program does;\n\
             !! CI installs openpyxl and sets REELMESH_REQUIRE_OPENPYXL=1.\n\
             !! Run: pip install openpyxl && cargo test -p reelmesh-node --test it import\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        assert!(
            !required,
            "REELMESH_REQUIRE_OPENPYXL is set but openpyxl is missing"
        );
    }
    found
}

/// Set cells of the Shots sheet with openpyxl: (shot code, header, value).
fn edit_with_openpyxl(path: &Path, edits: &[(&str, &str, &str)]) {
    let script = r#"
import json, sys
import openpyxl
path, edits = sys.argv[1], json.loads(sys.argv[2])
wb = openpyxl.load_workbook(path)
ws = wb["Shots"]
headers = [c.value for c in ws[1]]
code_at = headers.index("Shot ID")
for row in ws.iter_rows(min_row=2):
    for code, header, value in edits:
        if row[code_at].value == code:
            cell = row[headers.index(header)]
            cell.value = int(value) if value.isdigit() else value
wb.save(path)
"#;
    let edits = serde_json::to_string(edits).unwrap();
    let output = Command::new("python3")
        .args(["-c", script, path.to_str().unwrap(), &edits])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openpyxl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teammate_s_edit_on_another_node_survives_re_importing_an_edited_export() {
    if !openpyxl_or_skip("import::a_teammate_s_edit_on_another_node_survives") {
        return;
    }
    let setup: meshkit::Setup = Box::new(|config| config.run_jobs = false);
    let mesh = meshkit::mesh_just_joined(3, vec![setup]).await;
    let editor = mesh.editor.handle();
    let teammate = mesh.workers[0].handle();

    // The editor exports the project (the file remembers the version).
    let (_, project, heads) = editor.project(None).await.unwrap();
    let mark = ExportMark {
        project_id: project.project_id.clone(),
        heads,
    };
    let sheet = mesh.dirs[0].path().join("shots.xlsx");
    std::fs::write(
        &sheet,
        export_bytes_marked(&project, "xlsx", Some(&mark)).unwrap(),
    )
    .unwrap();

    // On the other node, a teammate edits SHT-00001's action and SHT-00003's notes.
    let (_, ()) = teammate
        .edit(None, |doc| {
            let project = doc.project().map_err(|e| e.to_string())?;
            for (code, edit) in [(1, "action"), (3, "notes")] {
                let mut shot = project.shot_by_code(ShotCode(code)).unwrap().clone();
                if edit == "action" {
                    shot.action = "팀원이 고친 액션".into();
                } else {
                    shot.notes = "팀원의 메모".into();
                }
                doc.update_shot(&shot).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let (_, _, theirs) = teammate.project(None).await.unwrap();
    editor.wait_for_heads(None, theirs, DEADLINE).await.unwrap();

    // The user edits the exported sheet in a spreadsheet program: SHT-00002's length
    // (Frame Count only; its Duration cell still says the old length) and SHT-00003's
    // notes, which the teammate changed too.
    edit_with_openpyxl(
        &sheet,
        &[
            ("SHT-00002", "Frame Count", "60"),
            ("SHT-00003", "Notes", "시트의 메모"),
        ],
    );
    let path = sheet.clone();
    let (_, report) = editor
        .edit(None, move |doc| {
            import::import_file_with(doc, &path, &ImportOptions::default())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    let base = report
        .base
        .as_ref()
        .expect("compared with the exported version");
    assert_eq!(
        (base.changed_in_file, base.kept_from_project),
        (2, 1),
        "{report:?}"
    );
    assert_eq!(report.conflicts.len(), 1, "{:?}", report.conflicts);
    let conflict = &report.conflicts[0];
    assert_eq!(
        (
            conflict.record.as_str(),
            conflict.field.as_str(),
            conflict.file.as_str(),
            conflict.project.as_str(),
            conflict.kept.as_str()
        ),
        ("SHT-00003", "notes", "시트의 메모", "팀원의 메모", "file")
    );

    // Both edits are in the project, on both nodes.
    let (_, _, now) = editor.project(None).await.unwrap();
    teammate.wait_for_heads(None, now, DEADLINE).await.unwrap();
    for handle in [&editor, &teammate] {
        let (_, project, _) = handle.project(None).await.unwrap();
        let shot = |code| project.shot_by_code(ShotCode(code)).unwrap();
        assert_eq!(
            shot(1).action,
            "팀원이 고친 액션",
            "the teammate's edit survives"
        );
        assert_eq!(shot(2).frame_count, 60, "the sheet's edit is written");
        assert_eq!(shot(3).notes, "시트의 메모", "the file wins the conflict");
    }
    mesh.stop().await;
}

fn reelmesh(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_reelmesh"))
        .args(args)
        .env("REELMESH_DATA_DIR", data_dir)
        .output()
        .unwrap()
}

#[test]
fn dry_run_and_map_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    assert!(reelmesh(&data, &["init", "옥상"]).status.success());
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import");
    let konglish = fixture.join("konglish_headers.xlsx");
    let konglish = konglish.to_str().unwrap();
    let heads = reelmesh(&data, &["heads"]).stdout;

    let dry = reelmesh(&data, &["import", "--dry-run", konglish]);
    assert!(dry.status.success());
    let out = String::from_utf8(dry.stdout).unwrap();
    for line in [
        "dry run of ",
        "sheet '캐릭터' (characters, 2 rows)",
        "  트리거 워드 → trigger_words",
        "  Atmosphre     → atmosphere (close match) (close to 'Atmosphere')",
        "  would add 2 shots: SHT-00001..SHT-00002",
        "  would add 2 characters: Mina, Joon",
        "캐릭터: '외형 묘사' kept as an extra field; did you mean appearance? --map '외형 묘사=appearance'",
        "no problems",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert_eq!(reelmesh(&data, &["heads"]).stdout, heads, "nothing written");

    // --json for scripts.
    let json = reelmesh(&data, &["import", "--dry-run", "--json", konglish]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["written"], false);
    assert_eq!(report["shots_added"], 2);

    // --map is used and remembered; the next import needs no flag.
    let mapped = reelmesh(&data, &["import", "--map", "외형 묘사=skip", konglish]);
    let out = String::from_utf8(mapped.stdout).unwrap();
    assert!(mapped.status.success(), "{out}");
    assert!(
        out.contains("remembered --map '외형묘사=skip' for this project"),
        "{out}"
    );
    let again = reelmesh(&data, &["import", "--dry-run", konglish]);
    let out = String::from_utf8(again.stdout).unwrap();
    assert!(out.contains("  외형 묘사   → skip (remembered)"), "{out}");
    assert!(!out.contains("kept as an extra field"), "{out}");

    // A refused file: exit 1, the problem named, nothing written; --errors-file.
    let errors = tmp.path().join("problems.txt");
    let bad = reelmesh(
        &data,
        &[
            "import",
            "--errors-file",
            errors.to_str().unwrap(),
            fixture.join("formulas_openpyxl.xlsx").to_str().unwrap(),
        ],
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8(bad.stderr).unwrap();
    assert!(
        stderr.contains("nothing was imported, 1 problem"),
        "{stderr}"
    );
    assert!(
        std::fs::read_to_string(&errors)
            .unwrap()
            .contains("column 'Duration (s)': 3 formula cells were saved without their value"),
    );
}
