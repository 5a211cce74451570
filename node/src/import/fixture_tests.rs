//! Import of files written by other programs than reelmesh: openpyxl, LibreOffice,
//! Python's json and csv modules (`node/tests/fixtures/import/make_fixtures.py`
//! wrote them). Each checks what the prompts say, which records were created, and
//! that export → import gives the same project.

use reelmesh_protocol::document::ProjectDoc;
use reelmesh_protocol::model::{Project, ShotCode, ShotStatus};
use reelmesh_protocol::prompt::shot_prompt;

use super::*;
use crate::export::{export_bytes, export_bytes_marked};

const FLAT_KOREAN: &[u8] = include_bytes!("../../tests/fixtures/import/flat_korean.xlsx");
const KONGLISH: &[u8] = include_bytes!("../../tests/fixtures/import/konglish_headers.xlsx");
const FORMULAS_OPENPYXL: &[u8] =
    include_bytes!("../../tests/fixtures/import/formulas_openpyxl.xlsx");
const FORMULAS_LIBREOFFICE: &[u8] =
    include_bytes!("../../tests/fixtures/import/formulas_libreoffice.ods");
const SEED_JSON: &[u8] = include_bytes!("../../tests/fixtures/import/seed_model.json");
const AIRTABLE_SHOTS: &[u8] = include_bytes!("../../tests/fixtures/import/airtable_shots.csv");
const AIRTABLE_CHARACTERS: &[u8] =
    include_bytes!("../../tests/fixtures/import/airtable_characters.csv");

fn fresh() -> ProjectDoc {
    ProjectDoc::create("fixture", "project-f").unwrap()
}

fn prompt(project: &Project, code: u64) -> String {
    let shot = project.shot_by_code(ShotCode(code)).unwrap();
    shot_prompt(project, shot).text
}

/// No empty part left a stray comma or a doubled space.
fn assert_clean(text: &str) {
    for bad in [", ,", ",,", "  ", " ,", ".,"] {
        assert!(!text.contains(bad), "'{bad}' in: {text}");
    }
    assert!(!text.ends_with(',') && !text.starts_with(','), "{text}");
}

/// Export to both formats and import each into a fresh copy: the same project.
fn assert_round_trips(project: &Project) {
    for format in ["xlsx", "json"] {
        let bytes = export_bytes(project, format).unwrap();
        let mut copy = ProjectDoc::create("copy", &project.project_id).unwrap();
        import_bytes(&mut copy, &bytes, &format!("export.{format}")).unwrap();
        let mut back = copy.project().unwrap();
        back.settings.name.clone_from(&project.settings.name);
        assert_eq!(&back, project, "{format} round trip");
    }
}

fn with(maps: &[&str]) -> ImportOptions {
    ImportOptions {
        maps: maps.iter().map(|m| (*m).to_owned()).collect(),
        ..ImportOptions::default()
    }
}

#[test]
fn the_seed_s_flat_korean_sheet_imports_with_every_look_column_and_its_characters() {
    let mut doc = fresh();
    let report = import_bytes(&mut doc, FLAT_KOREAN, "flat_korean.xlsx").unwrap();
    assert_eq!(report.shots_added, 3);
    assert_eq!(report.created_characters, ["민아", "준"]);
    assert_eq!(
        report::created_lines(&report, false),
        ["created 2 characters named in the shots: 민아, 준; add their appearance and LoRA"]
    );
    let project = doc.project().unwrap();
    let names: Vec<&str> = project.characters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["민아", "준"]);
    let first = prompt(&project, 1);
    for part in [
        "photorealistic image of 민아",
        "민아가 우산 없이 골목으로 들어선다",
        "set in a rainy Seoul alley at night",
        "captured with Arri Alexa 35",
        "35mm anamorphic lens",
        "Kodak Vision3 500T",
        "low key neon lighting",
        "tense",
        "Black Pro-Mist 1/4",
        "aspect ratio 2.39:1",
    ] {
        assert!(first.contains(part), "missing '{part}': {first}");
    }
    assert!(
        !first.contains("비 내리는"),
        "the scene is not the environment: {first}"
    );
    assert_clean(&first);
    let second = prompt(&project, 2);
    assert!(second.contains("준 and 민아"), "{second}");
    assert!(
        !second.contains("none"),
        "a 'none' filter is no filter: {second}"
    );
    assert_clean(&second);
    // The third row leaves camera, lens and film empty: no "captured with", no "lens".
    let third = prompt(&project, 3);
    assert!(
        !third.contains("captured with") && !third.contains("lens"),
        "{third}"
    );
    assert!(
        third.contains("golden hour sun lighting, hopeful, aspect ratio 2.39:1"),
        "{third}"
    );
    assert_clean(&third);
    // The sheet's own prompt formula is said and not imported as a manual prompt.
    assert!(project.shots.iter().all(|s| s.prompt_override.is_none()));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("'프롬프트' holds the sheet's own prompt formula")),
        "{:?}",
        report.notes
    );
    let shot = project.shot_by_code(ShotCode(1)).unwrap();
    assert_eq!(shot.frame_count, 72, "3 s at 24 fps");
    assert_eq!(shot.look.camera_body, "Arri Alexa 35");
    assert_eq!(shot.extra["무드보드"], "ref/alley.jpg");
    assert_round_trips(&project);
}

#[test]
fn strict_refuses_the_names_nothing_defines_and_changes_nothing() {
    let mut doc = fresh();
    let heads = doc.heads();
    let strict = ImportOptions {
        strict: true,
        ..ImportOptions::default()
    };
    let err = import_bytes_with(&mut doc, FLAT_KOREAN, "flat_korean.xlsx", &strict).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("'민아' is not a character (not in the project or a Characters sheet)"),
        "{message}"
    );
    assert_eq!(doc.heads(), heads);
}

#[test]
fn korean_and_korean_english_headers_are_understood_and_trigger_words_reach_the_prompt() {
    let mut doc = fresh();
    let report = import_bytes(&mut doc, KONGLISH, "konglish_headers.xlsx").unwrap();
    assert_eq!(
        (
            report.shots_added,
            report.characters_added,
            report.cinematics_added
        ),
        (2, 2, 1)
    );
    assert!(report.created_characters.is_empty());
    let project = doc.project().unwrap();
    let mina = project
        .characters
        .iter()
        .find(|c| c.name == "Mina")
        .unwrap();
    assert_eq!(
        mina.appearance,
        "a Korean woman in her twenties with short black hair"
    );
    assert_eq!(mina.trigger_words, ["m1na_v2", "rain girl"]);
    assert_eq!(mina.lora_path, "loras/mina_v2.safetensors");
    assert_eq!(mina.lora_strength, 0.8);
    assert_eq!(
        mina.extra["외형 묘사"], "키 165cm",
        "an unknown column is kept"
    );
    let look = &project.cinematics[0];
    assert_eq!(look.look.camera_body, "Arri Alexa Mini LF");
    assert_eq!(
        look.look.atmosphere, "tense",
        "'Atmosphre' taken as atmosphere"
    );
    assert_eq!(look.look.aspect_ratio, "2.39:1");
    for expected in [
        "캐릭터: '외형 묘사' kept as an extra field; did you mean appearance? --map '외형 묘사=appearance'",
        "시네마틱 옵션: 'Atmosphre' read as atmosphere (close to 'Atmosphere'); --map 'Atmosphre=FIELD' if it is not",
    ] {
        assert!(
            report.notes.iter().any(|n| n == expected),
            "{:?}",
            report.notes
        );
    }
    let first = prompt(&project, 1);
    for part in [
        "photorealistic image of a Korean woman in her twenties with short black hair wearing red raincoat",
        "captured with Arri Alexa Mini LF",
        "85mm anamorphic lens",
        "Kodak Vision3 500T",
        "Rembrandt neon lighting",
        "m1na_v2, rain girl",
    ] {
        assert!(first.contains(part), "missing '{part}': {first}");
    }
    assert_clean(&first);
    let second = prompt(&project, 2);
    assert!(second.ends_with("j00n, m1na_v2, rain girl"), "{second}");
    assert!(
        second.contains(", anamorphic lens,"),
        "no focal length, no gap: {second}"
    );
    assert_clean(&second);
    assert_eq!(
        project.shot_by_code(ShotCode(1)).unwrap().workflow,
        "ltx2_i2v"
    );
    assert_round_trips(&project);
}

#[test]
fn a_map_is_applied_remembered_and_used_by_the_next_import() {
    let mut doc = fresh();
    let report = import_bytes_with(
        &mut doc,
        KONGLISH,
        "konglish_headers.xlsx",
        &with(&["외형 묘사=skip", "Atmosphre=notes"]),
    )
    .unwrap();
    assert_eq!(
        report.remembered,
        [
            ("atmosphre".to_owned(), "notes".to_owned()),
            ("외형묘사".to_owned(), "skip".to_owned())
        ]
    );
    let project = doc.project().unwrap();
    assert!(project.characters.iter().all(|c| c.extra.is_empty()));
    assert_eq!(project.cinematics[0].notes, "tense");
    assert_eq!(project.cinematics[0].look.atmosphere, "");
    assert_eq!(project.settings.header_map.len(), 2);
    // Same file, no flags: the remembered mapping reads it the same way.
    let mut plain = fresh();
    let again = import_bytes(&mut doc, KONGLISH, "konglish_headers.xlsx").unwrap();
    assert!(again.remembered.is_empty());
    let columns: Vec<(&str, &str)> = again
        .sheets
        .iter()
        .flat_map(|s| &s.columns)
        .filter(|c| c.how == "remembered")
        .map(|c| (c.header.as_str(), c.reads_as.as_str()))
        .collect();
    assert_eq!(columns, [("외형 묘사", "skip"), ("Atmosphre", "notes")]);
    assert_eq!(doc.project().unwrap().cinematics[0].notes, "tense");
    // A project that never had the mapping reads the header as before.
    import_bytes(&mut plain, KONGLISH, "konglish_headers.xlsx").unwrap();
    assert_eq!(
        plain.project().unwrap().cinematics[0].look.atmosphere,
        "tense"
    );
    // A map naming no field is refused before anything is read.
    let err = import_bytes_with(
        &mut doc,
        KONGLISH,
        "k.xlsx",
        &with(&["외형 묘사=apperance"]),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("--map '외형 묘사=apperance': 'apperance' is not a field"),
        "{err}"
    );
}

#[test]
fn formulas_saved_without_values_are_reported_once_and_calculated_ones_are_used() {
    let mut doc = fresh();
    let heads = doc.heads();
    let err = import_bytes(&mut doc, FORMULAS_OPENPYXL, "formulas.xlsx").unwrap_err();
    let ImportError::Invalid { report } = err else {
        panic!("expected problems");
    };
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(
        report.problems[0].to_string(),
        "Shots, row 2, column 'Duration (s)': 3 formula cells were saved without their value (the program that wrote the file does not calculate formulas, as openpyxl does not): open and save the file in Excel or LibreOffice, or --map 'Duration (s)=skip'"
    );
    assert_eq!(doc.heads(), heads);
    // The same sheet saved by LibreOffice carries the values: with Frame Count left
    // out, the lengths come from the formulas' values (=C2/24 → 2 s → 48 frames).
    let report = import_bytes_with(
        &mut doc,
        FORMULAS_LIBREOFFICE,
        "formulas.ods",
        &with(&["Frame Count=skip"]),
    )
    .unwrap();
    assert_eq!(report.shots_added, 3);
    let frames: Vec<u64> = doc
        .project()
        .unwrap()
        .shots
        .iter()
        .map(|s| s.frame_count)
        .collect();
    assert_eq!(frames, [48, 36, 60]);
    let duration = report.sheets[0]
        .columns
        .iter()
        .find(|c| c.header == "Duration (s)")
        .unwrap();
    assert_eq!(duration.formulas, 3);
}

#[test]
fn the_seed_s_json_data_model_imports_by_ids() {
    let mut doc = fresh();
    let report = import_bytes(&mut doc, SEED_JSON, "seed_model.json").unwrap();
    assert_eq!(
        (
            report.shots_added,
            report.characters_added,
            report.cinematics_added
        ),
        (3, 3, 1)
    );
    assert_eq!(report.created_characters, ["Sora"]);
    let project = doc.project().unwrap();
    let noir = &project.cinematics[0];
    assert_eq!(noir.cinematic_id, "cin_noir", "the seed's id is kept");
    assert_eq!(
        noir.look.lens_filter, "Black Pro-Mist 1/4",
        "'filter' is the lens filter"
    );
    let one = project.shot_by_code(ShotCode(1)).unwrap();
    assert_eq!(one.shot_id, "shot_001");
    assert_eq!(one.characters, ["char_mina"]);
    assert_eq!(one.cinematic.as_deref(), Some("cin_noir"));
    assert_eq!(one.frame_count, 72);
    assert_eq!(one.workflow, "ltx2_i2v");
    let two = project.shot_by_code(ShotCode(2)).unwrap();
    assert_eq!(two.characters, ["char_joon", "char_mina"]);
    assert_eq!(two.status, ShotStatus::Approved);
    let three = project.shot_by_code(ShotCode(3)).unwrap();
    assert_eq!(three.status, ShotStatus::NeedsRevision);
    let first = prompt(&project, 1);
    for part in [
        "photorealistic image of a Korean woman in her twenties with short black hair wearing red raincoat",
        "Mina walks into the alley",
        "set in a rainy Seoul alley at night",
        "captured with Arri Alexa 35, 35mm anamorphic lens, Kodak Vision3 500T, low key neon lighting, tense, Black Pro-Mist 1/4, aspect ratio 2.39:1",
        "m1na_v2, rain girl",
    ] {
        assert!(first.contains(part), "missing '{part}': {first}");
    }
    assert_clean(&first);
    assert!(prompt(&project, 2).ends_with("j00n, m1na_v2, rain girl"));
    // Importing it again finds every record by its id: nothing changes.
    let heads = doc.heads();
    let again = import_bytes(&mut doc, SEED_JSON, "seed_model.json").unwrap();
    assert_eq!(again.changes, []);
    assert_eq!(doc.heads(), heads);
    assert_round_trips(&project);
}

#[test]
fn a_bare_list_of_shots_and_keys_as_people_write_them() {
    let json = r#"[
        {"Shot": "SHT-00004", "장면 설명": "옥상", "Camera": "RED Komodo", "Length": 2, "Characters": ["Mina", "Joon"]},
        {"장면 설명": "계단", "ACTION": "runs", "focal_length": "24mm", "frames": 30}
    ]"#;
    let mut doc = fresh();
    let report = import_bytes(&mut doc, json.as_bytes(), "shots.json").unwrap();
    assert_eq!(report.shots_added, 2);
    assert_eq!(report.created_characters, ["Mina", "Joon"]);
    let project = doc.project().unwrap();
    let four = project.shot_by_code(ShotCode(4)).unwrap();
    assert_eq!(four.look.camera_body, "RED Komodo");
    assert_eq!(four.frame_count, 48);
    assert_eq!(four.characters.len(), 2);
    let next = &project.shots[1];
    assert_eq!((next.action.as_str(), next.frame_count), ("runs", 30));
    assert_eq!(next.look.focal_length, "24mm");
    // A JSON problem names the list, the entry and the key.
    let bad = r#"{"shots": [{"scene": "a", "frames": "many"}]}"#;
    let err = import_bytes(&mut doc, bad.as_bytes(), "bad.json").unwrap_err();
    assert!(
        err.to_string()
            .contains("shots, entry 1, key 'frames': 'many' is not a whole number"),
        "{err}"
    );
}

#[test]
fn airtable_csv_exports_with_bom_crlf_multiline_cells_links_and_attachments() {
    let mut doc = fresh();
    let characters =
        import_bytes(&mut doc, AIRTABLE_CHARACTERS, "Characters-Grid view.csv").unwrap();
    assert_eq!(characters.characters_added, 2);
    let report = import_bytes(&mut doc, AIRTABLE_SHOTS, "Shots-Grid view.csv").unwrap();
    assert_eq!(report.shots_added, 2);
    assert!(report.created_characters.is_empty(), "linked by name");
    let project = doc.project().unwrap();
    let joon = project
        .characters
        .iter()
        .find(|c| c.name == "Joon")
        .unwrap();
    assert_eq!(
        joon.appearance, "a tall Korean man\nwith a tired face",
        "a quoted multi-line cell keeps its line break (and no CR)"
    );
    assert_eq!(joon.trigger_words, ["j00n"]);
    let one = project.shot_by_code(ShotCode(1)).unwrap();
    assert_eq!(one.characters.len(), 2, "'Mina,Joon' links two records");
    assert_eq!(
        one.action,
        "Mina steps into the alley.\nShe stops under the neon sign."
    );
    assert_eq!(
        one.reference_images,
        [
            "alley.jpg (https://dl.airtable.com/.attachments/a1b2/c3d4/alley.jpg)",
            "rain, night.png (https://dl.airtable.com/.attachments/e5f6/g7h8/rain%2C%20night.png)"
        ]
    );
    assert_eq!(one.status, ShotStatus::Pending, "Airtable's 'Todo'");
    assert_eq!(
        one.prompt_override, None,
        "the formula's text is not a manual prompt"
    );
    assert_eq!(
        project.shot_by_code(ShotCode(2)).unwrap().status,
        ShotStatus::Completed
    );
    let first = prompt(&project, 1);
    for part in [
        "photorealistic image of a Korean woman in her twenties with short black hair and a tall Korean man with a tired face",
        "Mina steps into the alley. She stops under the neon sign, set in a rainy Seoul alley",
        "captured with Arri Alexa 35, 35mm anamorphic lens, Kodak Vision3 500T, low key neon lighting",
        "m1na_v2, rain girl, j00n",
    ] {
        assert!(first.contains(part), "missing '{part}': {first}");
    }
    assert_clean(&first);
    let second = prompt(&project, 2);
    assert!(!second.contains("set in"), "no environment: {second}");
    assert_clean(&second);
    assert_round_trips(&project);
}

#[test]
fn a_dry_run_says_everything_and_writes_nothing() {
    let mut doc = fresh();
    let heads = doc.heads();
    let dry = ImportOptions {
        dry_run: true,
        maps: vec!["외형 묘사=skip".into()],
        ..ImportOptions::default()
    };
    let report = import_bytes_with(&mut doc, KONGLISH, "konglish_headers.xlsx", &dry).unwrap();
    assert!(!report.written);
    assert_eq!(
        doc.heads(),
        heads,
        "nothing written, the mapping not remembered either"
    );
    assert_eq!(report.remembered.len(), 1);
    let kinds: Vec<Option<&str>> = report.sheets.iter().map(|s| s.kind.as_deref()).collect();
    assert_eq!(
        kinds,
        [Some("shots"), Some("characters"), Some("cinematic_options")]
    );
    let shots_columns: Vec<(&str, &str)> = report.sheets[0]
        .columns
        .iter()
        .map(|c| (c.header.as_str(), c.reads_as.as_str()))
        .collect();
    assert_eq!(
        shots_columns,
        [
            ("샷", "code"),
            ("씬 설명", "scene"),
            ("Action", "action"),
            ("등장인물", "characters"),
            ("룩", "cinematic"),
            ("포컬 렝스", "focal_length"),
            ("프레임", "frame_count"),
            ("워크플로우 타입", "workflow"),
        ]
    );
    let changes: Vec<(&str, &str, &str)> = report
        .changes
        .iter()
        .map(|c| (c.kind.as_str(), c.record.as_str(), c.change.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("characters", "Mina", "add"),
            ("characters", "Joon", "add"),
            ("cinematic_options", "Neon Noir", "add"),
            ("shots", "SHT-00001", "add"),
            ("shots", "SHT-00002", "add"),
        ]
    );
    // A dry run of a bad file lists its problems and still writes nothing.
    let report = import_bytes_with(&mut doc, FORMULAS_OPENPYXL, "f.xlsx", &dry).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert_eq!(doc.heads(), heads);
}

/// The file's version, as `reelmesh export` writes it.
fn marked_export(doc: &mut ProjectDoc, format: &str) -> Vec<u8> {
    let project = doc.project().unwrap();
    let mark = ExportMark {
        project_id: project.project_id.clone(),
        heads: doc.heads(),
    };
    export_bytes_marked(&project, format, Some(&mark)).unwrap()
}

/// Edit an exported JSON file as a script would: a shot's field by its code.
fn edit_json(bytes: &[u8], code: &str, field: &str, value: serde_json::Value) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let shot = json["shots"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["code"] == code)
        .unwrap();
    shot[field] = value;
    serde_json::to_vec(&json).unwrap()
}

#[test]
fn re_importing_an_export_changes_only_what_the_file_changed_and_reports_conflicts() {
    let mut mine = fresh();
    import_bytes(&mut mine, SEED_JSON, "seed_model.json").unwrap();
    let exported = marked_export(&mut mine, "json");
    // A teammate's copy edits SHT-00001's action and SHT-00003's notes; it syncs back.
    let mut theirs = mine.fork();
    let mut one = theirs.project().unwrap().shots[0].clone();
    one.action = "teammate: Mina runs into the alley".into();
    theirs.update_shot(&one).unwrap();
    let mut three = theirs.project().unwrap().shots[2].clone();
    three.notes = "teammate's note".into();
    theirs.update_shot(&three).unwrap();
    mine.merge(&mut theirs).unwrap();
    // The exported file is edited: SHT-00002's length, and SHT-00003's notes too.
    let edited = edit_json(&exported, "SHT-00002", "frame_count", 120.into());
    let edited = edit_json(&edited, "SHT-00003", "notes", "the file's note".into());
    let report = import_bytes(&mut mine, &edited, "export.json").unwrap();
    let project = mine.project().unwrap();
    let shot = |code| project.shot_by_code(ShotCode(code)).unwrap();
    assert_eq!(shot(1).action, "teammate: Mina runs into the alley", "kept");
    assert_eq!(shot(2).frame_count, 120, "the file's edit");
    assert_eq!(shot(3).notes, "the file's note", "the file wins a conflict");
    let base = report.base.as_ref().unwrap();
    assert_eq!((base.changed_in_file, base.kept_from_project), (2, 1));
    assert_eq!(
        report.conflicts,
        [Conflict {
            record: "SHT-00003".into(),
            field: "notes".into(),
            base: String::new(),
            file: "the file's note".into(),
            project: "teammate's note".into(),
            kept: "file".into(),
        }]
    );
    // --keep-project keeps the project's side of a conflict.
    let mut kept = mine.fork();
    let mut three = kept.project().unwrap().shots[2].clone();
    three.notes = "teammate again".into();
    kept.update_shot(&three).unwrap();
    let keep = ImportOptions {
        keep_project: true,
        ..ImportOptions::default()
    };
    let file = marked_export(&mut mine, "json");
    let file = edit_json(&file, "SHT-00003", "notes", "file again".into());
    let report = import_bytes_with(&mut kept, &file, "export.json", &keep).unwrap();
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].kept, "project");
    assert_eq!(kept.project().unwrap().shots[2].notes, "teammate again");
    // --plain makes every cell the truth again.
    let plain = ImportOptions {
        plain: true,
        ..ImportOptions::default()
    };
    import_bytes_with(&mut kept, &file, "export.json", &plain).unwrap();
    assert_eq!(kept.project().unwrap().shots[2].notes, "file again");
}

#[test]
fn an_export_from_a_version_this_copy_lacks_is_refused_until_it_syncs() {
    let mut theirs = fresh();
    import_bytes(&mut theirs, SEED_JSON, "seed_model.json").unwrap();
    let mut mine = theirs.fork();
    let mut one = theirs.project().unwrap().shots[0].clone();
    one.notes = "only on their copy".into();
    theirs.update_shot(&one).unwrap();
    let exported = marked_export(&mut theirs, "xlsx");
    let heads = mine.heads();
    let err = import_bytes(&mut mine, &exported, "theirs.xlsx").unwrap_err();
    assert!(
        err.to_string().contains("this copy does not have yet")
            && err.to_string().contains("--plain"),
        "{err}"
    );
    assert_eq!(mine.heads(), heads);
    mine.merge(&mut theirs).unwrap();
    let report = import_bytes(&mut mine, &exported, "theirs.xlsx").unwrap();
    assert!(report.base.is_some());
    assert_eq!(report.changes, [], "the file holds nothing new");
}

#[test]
fn an_edited_length_wins_over_the_untouched_other_length_column() {
    let mut doc = fresh();
    import_bytes(&mut doc, SEED_JSON, "seed_model.json").unwrap();
    // Frame Count 72 and Duration 3 s agree; a user changes only the duration to 5 s.
    let csv = "Shot ID,Frame Count,Duration (s)\nSHT-00001,72,5\nSHT-00002,30,4\n";
    import_bytes(&mut doc, csv.as_bytes(), "lengths.csv").unwrap();
    let project = doc.project().unwrap();
    assert_eq!(project.shot_by_code(ShotCode(1)).unwrap().frame_count, 120);
    assert_eq!(project.shot_by_code(ShotCode(2)).unwrap().frame_count, 30);
    // Both changed and apart: which one is meant cannot be told.
    let csv = "Shot ID,Frame Count,Duration (s)\nSHT-00001,10,9\n";
    let err = import_bytes(&mut doc, csv.as_bytes(), "lengths.csv").unwrap_err();
    assert!(err.to_string().contains("but Frame Count says 10"), "{err}");
}
