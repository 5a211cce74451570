//! Import tests: round trips through both export formats, Korean and English sheets,
//! CSV from Airtable, and every way a file can be wrong.

use std::collections::BTreeMap;

use reelmesh_protocol::document::{Position, ProjectDoc};
use reelmesh_protocol::model::{Character, CinematicOption, Look, Shot, ShotCode, ShotStatus};
use reelmesh_protocol::timecode::FrameRate;
use rust_xlsxwriter::Workbook;

use super::*;
use crate::export::export_bytes;

/// A project using every field: Korean text, trigger words, a look, a prompt
/// override, extra columns, several statuses, a gap in the codes.
fn rich_doc() -> ProjectDoc {
    let mut doc = ProjectDoc::create("밤의 골목 (Night Alley)", "project-1").unwrap();
    doc.set_frame_rate(FrameRate::Fps29_97Df).unwrap();
    doc.set_prompt_template("{style} image of {subject}, {action}, {triggers}")
        .unwrap();
    doc.add_catalog_value("camera_body", "Bolex H16").unwrap();
    let mut mina = Character::new("민아");
    mina.appearance = "a Korean woman in her twenties, short black hair".into();
    mina.reference_sheet = "refs/mina.png".into();
    mina.lora_path = "loras/mina_v2.safetensors".into();
    mina.lora_strength = 0.65;
    mina.trigger_words = vec!["m1na".into(), "빨간 우비".into()];
    mina.clothing_options = vec!["red raincoat".into(), "white shirt".into()];
    mina.default_clothing = "red raincoat".into();
    mina.style_keywords = vec!["soft skin texture".into()];
    doc.put_character(&mina).unwrap();
    let mut jun = Character::new("Jun");
    jun.lora_strength = 1.0 / 3.0;
    jun.trigger_words = vec!["jun_man".into()];
    doc.put_character(&jun).unwrap();
    let look = CinematicOption {
        look: Look {
            camera_body: "Arri Alexa 35".into(),
            focal_length: "35mm".into(),
            lens_type: "anamorphic".into(),
            film_stock: "Kodak Vision3 500T".into(),
            style: "photorealistic".into(),
            look_and_feel: "Blade Runner 2049".into(),
            lighting_source: "neon".into(),
            lighting_style: "low key".into(),
            environment: "서울 뒷골목".into(),
            atmosphere: "tense".into(),
            lens_filter: "Black Pro-Mist 1/4".into(),
            aspect_ratio: "2.39:1".into(),
        },
        notes: "메인 룩".into(),
        ..CinematicOption::new("네온 누아르")
    };
    doc.put_cinematic(&look).unwrap();
    let mut one = Shot::new(ShotCode(1), 72);
    one.scene = "비 내리는 서울 뒷골목, 밤".into();
    one.action = "민아가 우산 없이 골목으로 들어선다".into();
    one.characters = vec![mina.character_id.clone()];
    one.cinematic = Some(look.cinematic_id.clone());
    one.reference_images = vec!["ref/alley.jpg".into(), "ref/rain.jpg".into()];
    one.status = ShotStatus::Approved;
    one.workflow = "wan22_i2v".into();
    one.notes = "오프닝\n두 번째 줄".into();
    one.extra = BTreeMap::from([("무드보드".to_owned(), "ref/mood.jpg".to_owned())]);
    let mut two = Shot::new(ShotCode(2), 120);
    two.scene = "편의점 앞".into();
    two.characters = vec![jun.character_id.clone(), mina.character_id.clone()];
    two.prompt_override = Some("two people under a neon sign, rain".into());
    two.status = ShotStatus::NeedsRevision;
    two.extra = BTreeMap::from([("Budget".to_owned(), "1200".to_owned())]);
    let mut five = Shot::new(ShotCode(5), 0);
    five.status = ShotStatus::Generating;
    five.action = "해가 뜬다".into();
    doc.add_shots(&[one, two, five], &Position::End).unwrap();
    doc
}

fn fresh() -> ProjectDoc {
    ProjectDoc::create("copy", "project-1").unwrap()
}

fn xlsx(sheets: &[(&str, &[&[&str]])]) -> Vec<u8> {
    let mut workbook = Workbook::new();
    for (name, rows) in sheets {
        let sheet = workbook.add_worksheet();
        sheet.set_name(*name).unwrap();
        for (r, row) in rows.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                if let Ok(number) = value.parse::<f64>() {
                    sheet.write_number(r as u32, c as u16, number).unwrap();
                } else if !value.is_empty() {
                    sheet.write_string(r as u32, c as u16, *value).unwrap();
                }
            }
        }
    }
    workbook.save_to_buffer().unwrap()
}

fn invalid_cells(err: ImportError) -> Vec<String> {
    match err {
        ImportError::Invalid { report } => {
            report.problems.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected bad cells, got: {other}"),
    }
}

/// "sheet: header" of every column the import kept as an extra field.
fn extras(report: &ImportReport) -> Vec<String> {
    report
        .sheets
        .iter()
        .flat_map(|sheet| {
            sheet
                .columns
                .iter()
                .filter(|c| c.reads_as == "extra")
                .map(move |c| format!("{}: {}", sheet.name, c.header))
        })
        .collect()
}

fn strict() -> ImportOptions {
    ImportOptions {
        strict: true,
        ..ImportOptions::default()
    }
}

#[test]
fn xlsx_round_trip_is_exact() {
    let original = rich_doc().project().unwrap();
    let bytes = export_bytes(&original, "xlsx").unwrap();
    let mut copy = fresh();
    let report = import_bytes(&mut copy, &bytes, "out.xlsx").unwrap();
    assert_eq!(report.shots_added, 3);
    assert_eq!(report.characters_added, 2);
    assert_eq!(report.cinematics_added, 1);
    assert_eq!(extras(&report), ["Shots: Budget", "Shots: 무드보드"]);
    assert_eq!(copy.project().unwrap(), original);
    // Importing the same file again changes nothing.
    let heads = copy.heads();
    let again = import_bytes(&mut copy, &bytes, "out.xlsx").unwrap();
    assert_eq!(
        (
            again.shots_added,
            again.shots_updated,
            again.characters_added + again.characters_updated
        ),
        (0, 0, 0)
    );
    assert_eq!(copy.heads(), heads);
}

#[test]
fn json_round_trip_is_exact() {
    let original = rich_doc().project().unwrap();
    let bytes = export_bytes(&original, "json").unwrap();
    let mut copy = fresh();
    let report = import_bytes(&mut copy, &bytes, "out.json").unwrap();
    assert_eq!(report.shots_added, 3);
    assert_eq!(copy.project().unwrap(), original);
    let err = import_bytes(&mut fresh(), b"{\"shots\": 3}", "x.json").unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.json: the JSON holds no list of shots, characters or cinematic options"
    );
}

/// A shot list as a Korean studio keeps it: Korean sheet names and headers,
/// characters and a look linked by name, lengths in frames or seconds.
fn korean_workbook() -> Vec<u8> {
    xlsx(&[
        (
            "샷 리스트",
            &[
                &[
                    "샷 번호",
                    "장면 설명",
                    "액션",
                    "등장인물",
                    "룩",
                    "프레임 수",
                    "길이(초)",
                    "상태",
                    "비고",
                    "무드보드",
                ],
                &[
                    "SHT-00001",
                    "비 내리는 골목",
                    "민아가 걷는다",
                    "민아",
                    "네온 누아르",
                    "72",
                    "",
                    "대기",
                    "오프닝",
                    "ref/a.jpg",
                ],
                &[
                    "",
                    "편의점 앞",
                    "준이 기다린다",
                    "준, 민아",
                    "네온 누아르",
                    "",
                    "4",
                    "승인",
                    "",
                    "",
                ],
                &["3", "다리 위", "", "", "", "", "", "수정 필요", "", ""],
            ],
        ),
        (
            "캐릭터",
            &[
                &[
                    "이름",
                    "외형",
                    "LoRA 경로",
                    "LoRA 강도",
                    "트리거 단어",
                    "의상",
                    "기본 의상",
                    "스타일 키워드",
                ],
                &[
                    "민아",
                    "단발머리",
                    "loras/mina.safetensors",
                    "0.8",
                    "m1na, 빨간 우비",
                    "우비; 셔츠",
                    "우비",
                    "",
                ],
                &["준", "", "", "0.7", "jun_man", "", "", ""],
            ],
        ),
        (
            "시네마틱 옵션",
            &[
                &["이름", "카메라", "초점 거리", "렌즈", "화면비", "분위기"],
                &[
                    "네온 누아르",
                    "Arri Alexa 35",
                    "35mm",
                    "anamorphic",
                    "2.39:1",
                    "긴장감",
                ],
            ],
        ),
    ])
}

#[test]
fn korean_workbook_maps_headers_and_links_by_name() {
    let bytes = korean_workbook();
    let mut doc = fresh();
    let report = import_bytes(&mut doc, &bytes, "샷리스트.xlsx").unwrap();
    assert_eq!(report.shots_added, 3);
    assert_eq!(extras(&report), ["샷 리스트: 무드보드"]);
    let project = doc.project().unwrap();
    let mina = project
        .characters
        .iter()
        .find(|c| c.name == "민아")
        .unwrap();
    let jun = project.characters.iter().find(|c| c.name == "준").unwrap();
    assert_eq!(mina.trigger_words, ["m1na", "빨간 우비"]);
    assert_eq!(mina.clothing_options, ["우비", "셔츠"]);
    assert_eq!(mina.lora_strength, 0.8);
    let look = &project.cinematics[0];
    assert_eq!(
        (
            look.look.camera_body.as_str(),
            look.look.atmosphere.as_str()
        ),
        ("Arri Alexa 35", "긴장감")
    );
    let shots = &project.shots;
    assert_eq!(
        shots.iter().map(|s| s.code.0).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(shots[0].scene, "비 내리는 골목");
    assert_eq!(shots[0].characters, [mina.character_id.as_str()]);
    assert_eq!(
        shots[0].cinematic.as_deref(),
        Some(look.cinematic_id.as_str())
    );
    assert_eq!(shots[0].frame_count, 72);
    assert_eq!(shots[0].extra["무드보드"], "ref/a.jpg");
    assert_eq!(
        shots[1].characters,
        [jun.character_id.clone(), mina.character_id.clone()]
    );
    assert_eq!(shots[1].frame_count, 96, "4 s at 24 fps");
    assert_eq!(shots[1].status, ShotStatus::Approved);
    assert_eq!(shots[2].status, ShotStatus::NeedsRevision);
    assert_eq!(shots[2].frame_count, 48, "no length given: two seconds");
}

#[test]
fn demo_sample_imports() {
    let bytes = include_bytes!("../../assets/demo_shotlist.xlsx");
    let mut doc = fresh();
    let report = import_bytes(&mut doc, bytes, "demo_shotlist.xlsx").unwrap();
    assert_eq!(
        (
            report.shots_added,
            report.characters_added,
            report.cinematics_added
        ),
        (5, 2, 2)
    );
    let frames: Vec<u64> = doc
        .project()
        .unwrap()
        .shots
        .iter()
        .map(|s| s.frame_count)
        .collect();
    assert_eq!(frames, [72, 96, 48, 144, 120]);
}

#[test]
fn airtable_csv_with_bom() {
    let mut doc = rich_doc();
    let before = doc.project().unwrap();
    let csv = "\u{feff}Shot ID,Scene Description,Characters,Cinematic Option,Duration,Status,Mood board\n\
               ,\"New scene, with a comma\",\"MINA,jun\",네온 누아르,2,done,ref/x.jpg\n\
               SHT-00002,편의점 앞 (수정),Jun,,4.004,approved,\n";
    let csv = csv.replace("MINA", "민아");
    let report = import_bytes(&mut doc, csv.as_bytes(), "Grid view.csv").unwrap();
    assert_eq!((report.shots_added, report.shots_updated), (1, 1));
    assert_eq!(extras(&report), ["Shots: Mood board"]);
    let project = doc.project().unwrap();
    let new = project.shots.last().unwrap();
    assert_eq!(new.code, ShotCode(6), "next code after SHT-00005");
    assert_eq!(new.scene, "New scene, with a comma");
    assert_eq!(new.characters.len(), 2);
    assert_eq!(new.frame_count, 60, "2 s at 29.97");
    assert_eq!(new.status, ShotStatus::Completed);
    assert_eq!(new.extra["Mood board"], "ref/x.jpg");
    let updated = project.shot_by_code(ShotCode(2)).unwrap();
    let old = before.shot_by_code(ShotCode(2)).unwrap();
    assert_eq!(updated.shot_id, old.shot_id);
    assert_eq!(updated.scene, "편의점 앞 (수정)");
    assert_eq!(updated.cinematic, None, "an empty cell clears the look");
    assert_eq!(updated.frame_count, 120);
    assert_eq!(
        updated.action, old.action,
        "columns not in the file are kept"
    );
    assert_eq!(updated.prompt_override, old.prompt_override);
    assert_eq!(
        updated.extra, old.extra,
        "extra columns not in the file are kept"
    );
}

#[test]
fn all_bad_cells_are_reported_and_nothing_changes() {
    let mut doc = rich_doc();
    let heads = doc.heads();
    let before = doc.project().unwrap();
    let csv = "Shot ID,Characters,Cinematic Option,Frame Count,Duration (s),Status\n\
               SHT-00009,민아,,72,,pending\n\
               A12,,,,,\n\
               7,Nobody,Unknown look,abc,,\n\
               8,,,48,5,maybe\n\
               SHT-00009,,,,,\n\
               10,,,,-2,\n";
    let err = import_bytes_with(&mut doc, csv.as_bytes(), "bad.csv", &strict()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("bad.csv: nothing was imported, 8 problems:\n  Shots, row 3"),
        "{message}"
    );
    assert_eq!(
        invalid_cells(err),
        [
            "Shots, row 3, column 'Shot ID': 'A12' is not a shot code (like SHT-00012 or 12)",
            "Shots, row 4, column 'Characters': 'Nobody' is not a character (not in the project or a Characters sheet)",
            "Shots, row 4, column 'Cinematic Option': 'Unknown look' is not a cinematic option (not in the project or a Cinematic Options sheet)",
            "Shots, row 4, column 'Frame Count': 'abc' is not a whole number",
            "Shots, row 5, column 'Status': 'maybe' is not a status (pending, generating, completed, needs_revision, approved)",
            "Shots, row 5, column 'Duration (s)': '5' seconds is 150 frames at 29.97 fps drop-frame, but Frame Count says 48",
            "Shots, row 6, column 'Shot ID': 'SHT-00009' is also used in row 2",
            "Shots, row 7, column 'Duration (s)': '-2' is not a duration in seconds",
        ]
    );
    assert_eq!(doc.heads(), heads);
    assert_eq!(doc.project().unwrap(), before);
}

#[test]
fn bad_character_and_look_sheets_are_reported_together() {
    let bytes = xlsx(&[
        (
            "Shots",
            &[&["Shot ID", "Characters", "Look"], &["1", "Mina", "Noir"]],
        ),
        (
            "Characters",
            &[
                &["Name", "LoRA Strength", "Favourite colour"],
                &["Mina", "1.5", "red"],
                &["mina", "0.5", ""],
                &["", "0.5", ""],
            ],
        ),
        ("Looks", &[&["Camera", "Lens"], &["Alexa", "anamorphic"]]),
    ]);
    let mut doc = fresh();
    let heads = doc.heads();
    let cells =
        invalid_cells(import_bytes_with(&mut doc, &bytes, "s.xlsx", &strict()).unwrap_err());
    assert_eq!(
        cells,
        [
            "Characters, row 2, column 'LoRA Strength': '1.5' is not a LoRA strength (a number from 0 to 1)",
            "Characters, row 3, column 'Name': 'mina' is also named in Characters, row 2",
            "Characters, row 4, column 'Name': a name is required",
            "Looks, row 1, column 'Name': the sheet has no Name column",
            "Shots, row 2, column 'Characters': 'Mina' is not a character (not in the project or a Characters sheet)",
            "Shots, row 2, column 'Look': 'Noir' is not a cinematic option (not in the project or a Cinematic Options sheet)",
        ]
    );
    assert_eq!(doc.heads(), heads);
}

#[test]
fn unreadable_files_give_one_line_and_change_nothing() {
    let mut doc = rich_doc();
    let heads = doc.heads();
    let exported = export_bytes(&doc.project().unwrap(), "xlsx").unwrap();
    let random: Vec<u8> = (0..4096_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.xlsx", Vec::new(), "the file is empty"),
        ("empty.csv", b"  \n".to_vec(), "the file is empty"),
        ("random.xlsx", random.clone(), "not a readable workbook"),
        ("random.ods", random, "not a readable workbook"),
        (
            "fake.xlsx",
            b"PK\x03\x04 this is not a workbook".to_vec(),
            "not a readable workbook",
        ),
        (
            "half.xlsx",
            exported[..exported.len() / 2].to_vec(),
            "not a readable workbook",
        ),
        (
            "notes.txt",
            b"hello".to_vec(),
            "unsupported file type 'txt'",
        ),
        (
            "latin1.csv",
            b"Shot ID,Scene\n1,caf\xe9\n".to_vec(),
            "not UTF-8",
        ),
        ("e.json", b"[1, 2".to_vec(), "not valid JSON"),
        (
            "list.json",
            b"[1, 2]".to_vec(),
            "'shots', entry 1: a record must be an object",
        ),
    ];
    for (name, bytes, expected) in cases {
        let err = import_bytes(&mut doc, &bytes, name).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, ImportError::Unreadable { .. }),
            "{name}: {message}"
        );
        assert!(message.starts_with(&format!("{name}: ")), "{message}");
        assert!(message.contains(expected), "{name}: {message}");
        assert!(!message.contains('\n'), "{name}: one line: {message}");
    }
    // Every cut of a workbook is refused cleanly (the zip directory is at the end).
    for cut in (0..exported.len()).step_by(997) {
        assert!(
            import_bytes(&mut doc, &exported[..cut], "cut.xlsx").is_err(),
            "cut at {cut}"
        );
    }
    assert_eq!(doc.heads(), heads);
    let missing =
        import_file(&mut doc, std::path::Path::new("/nonexistent/shots.xlsx")).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("/nonexistent/shots.xlsx: cannot be read"),
        "{missing}"
    );
}

#[test]
fn workbook_without_a_known_sheet_is_refused() {
    let bytes = xlsx(&[
        ("Budget", &[&["Item", "Cost"], &["Lens", "100"]]),
        ("Notes", &[&["Text"], &["hi"]]),
    ]);
    let err = import_bytes(&mut fresh(), &bytes, "other.xlsx").unwrap_err();
    assert_eq!(
        err.to_string(),
        "other.xlsx: no sheet of shots, characters or cinematic options (found 'Budget', 'Notes')"
    );
}

#[test]
fn single_sheet_is_shots_unless_headers_say_otherwise() {
    let mut doc = fresh();
    let bytes = xlsx(&[("Sheet1", &[&["Whatever", "Scene"], &["x", "골목"]])]);
    let report = import_bytes(&mut doc, &bytes, "one.xlsx").unwrap();
    assert_eq!(report.shots_added, 1);
    assert_eq!(extras(&report), ["Sheet1: Whatever"]);
    let csv = "Name,Appearance,Trigger Words\n민아,단발,\"m1na\nrain girl\"\n";
    let report = import_bytes(&mut doc, csv.as_bytes(), "bible.csv").unwrap();
    assert_eq!((report.shots_added, report.characters_added), (0, 1));
    let project = doc.project().unwrap();
    assert_eq!(project.characters[0].trigger_words, ["m1na", "rain girl"]);
    // Unknown sheets next to known ones are reported, not silently dropped.
    let bytes = xlsx(&[
        ("Shots", &[&["Scene"], &["a"]]),
        ("Budget", &[&["Item"], &["Lens"]]),
    ]);
    let report = import_bytes(&mut doc, &bytes, "two.xlsx").unwrap();
    let budget = report.sheets.iter().find(|s| s.name == "Budget").unwrap();
    assert_eq!(budget.kind, None);
    assert!(
        report.notes.iter().any(|n| n.contains("sheet 'Budget'")),
        "{:?}",
        report.notes
    );
}

#[test]
fn duration_only_computes_frames_at_the_project_rate() {
    let mut doc = fresh();
    doc.set_frame_rate(FrameRate::Fps25).unwrap();
    let csv = "Duration (s),Frames,Scene\n4,,\n2.5s,,\n1,24,\n,,no length\n,,\n";
    import_bytes(&mut doc, csv.as_bytes(), "d.csv").unwrap();
    let frames: Vec<u64> = doc
        .project()
        .unwrap()
        .shots
        .iter()
        .map(|s| s.frame_count)
        .collect();
    assert_eq!(
        frames,
        [100, 63, 24, 50],
        "1 s vs 24 frames is within one frame; empty: 2 s"
    );
}

#[test]
fn codes_update_live_shots_and_trash_codes_are_refused() {
    let mut doc = rich_doc();
    let project = doc.project().unwrap();
    let two = project.shot_by_code(ShotCode(2)).unwrap().clone();
    doc.delete_shot(&project.shot_by_code(ShotCode(5)).unwrap().shot_id)
        .unwrap();
    let heads = doc.heads();
    let cells =
        invalid_cells(import_bytes(&mut doc, b"Shot ID,Action\n5,x\n", "t.csv").unwrap_err());
    assert_eq!(
        cells,
        [
            "Shots, row 2, column 'Shot ID': 'SHT-00005' belongs to a shot in the trash (restore that shot, or leave the cell empty for a new code)"
        ]
    );
    assert_eq!(doc.heads(), heads);
    // A copied row (Record ID kept, Shot ID cleared) becomes a new shot.
    let csv = format!(
        "Shot ID,Action,Record ID\n,copy,{id}\n2,edited,{id}\n12,,\n,auto,\n",
        id = two.shot_id
    );
    let report = import_bytes(&mut doc, csv.as_bytes(), "t.csv").unwrap();
    assert_eq!((report.shots_added, report.shots_updated), (3, 1));
    let after = doc.project().unwrap();
    let codes: Vec<(u64, &str)> = after
        .shots
        .iter()
        .map(|s| (s.code.0, s.action.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            (1, "민아가 우산 없이 골목으로 들어선다"),
            (2, "edited"),
            (6, "copy"),
            (12, ""),
            (7, "auto")
        ]
    );
    assert_eq!(
        after.shot_by_code(ShotCode(2)).unwrap().shot_id,
        two.shot_id
    );
    assert_ne!(
        after.shot_by_code(ShotCode(6)).unwrap().shot_id,
        two.shot_id
    );
}

#[test]
fn characters_match_by_record_id_then_name() {
    let mut doc = rich_doc();
    let before = doc.project().unwrap();
    let jun = before.characters.iter().find(|c| c.name == "Jun").unwrap();
    let csv = format!(
        "Name,Appearance,Record ID\nJunho,renamed,{}\n민아,updated,\nSora,new,\n",
        jun.character_id
    );
    let report = import_bytes(&mut doc, csv.as_bytes(), "Characters.csv").unwrap();
    assert_eq!((report.characters_added, report.characters_updated), (1, 2));
    let after = doc.project().unwrap();
    assert_eq!(after.characters.len(), 3);
    let junho = after.character(&jun.character_id).unwrap();
    assert_eq!(
        (junho.name.as_str(), junho.appearance.as_str()),
        ("Junho", "renamed")
    );
    assert_eq!(
        junho.trigger_words, jun.trigger_words,
        "columns not in the file are kept"
    );
    let mina = after.characters.iter().find(|c| c.name == "민아").unwrap();
    assert_eq!(mina.appearance, "updated");
    assert_eq!(mina.lora_strength, 0.65);
}

#[test]
fn project_sheet_sets_settings_and_checks_them() {
    let bytes = xlsx(&[
        ("Shots", &[&["Scene"], &["a"]]),
        (
            "Project",
            &[
                &["Setting", "Value"],
                &["Name", "새 이름"],
                &["Frame Rate", "25"],
                &["Prompt Template", "{style}"],
            ],
        ),
    ]);
    let mut doc = fresh();
    import_bytes(&mut doc, &bytes, "p.xlsx").unwrap();
    let project = doc.project().unwrap();
    assert_eq!(project.settings.name, "새 이름");
    assert_eq!(project.settings.frame_rate, FrameRate::Fps25);
    assert_eq!(project.settings.prompt_template, "{style}");
    assert_eq!(project.shots[0].frame_count, 50, "2 s at the imported rate");
    let bytes = xlsx(&[
        ("Shots", &[&["Scene"], &["a"]]),
        (
            "Project",
            &[
                &["Frame Rate", "29.5"],
                &["Prompt Template", "{nope}"],
                &["Catalog: nope", "x"],
            ],
        ),
    ]);
    let cells = invalid_cells(import_bytes(&mut doc, &bytes, "p.xlsx").unwrap_err());
    assert_eq!(cells.len(), 3, "{cells:?}");
    assert!(
        cells[0].starts_with("Project, row 1, column 'Frame Rate': '29.5'"),
        "{cells:?}"
    );
}
