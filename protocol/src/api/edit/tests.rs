#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;
use crate::jobs::{Job, Take, TakeMedia};
use crate::model::Project;

fn doc_with(n: u64) -> ProjectDoc {
    let mut doc = ProjectDoc::create("밤의 골목", "p1").unwrap();
    let shots: Vec<Shot> = (1..=n).map(|i| Shot::new(ShotCode(i), 24)).collect();
    doc.add_shots(&shots, &Position::End).unwrap();
    let mut minji = Character::new("민지");
    minji.lora_path = "minji_v2.safetensors".into();
    doc.put_character(&minji).unwrap();
    doc.put_character(&Character::new("Joon")).unwrap();
    let mut noir = CinematicOption::new("Noir");
    noir.look.camera_body = "Arri Alexa 35".into();
    doc.put_cinematic(&noir).unwrap();
    doc
}

fn set(shot: &str, values: &[(&str, &str)]) -> Edit {
    Edit::ShotSet {
        shot: shot.into(),
        values: values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn undo(doc: &mut ProjectDoc, applied: &Applied) {
    for edit in &applied.undo {
        apply(doc, edit).unwrap();
    }
}

fn codes(project: &Project) -> Vec<String> {
    project.shots.iter().map(|s| s.code.to_string()).collect()
}

#[test]
fn shot_fields_are_set_by_name_from_text_and_undone() {
    let mut doc = doc_with(3);
    let before = doc.project().unwrap();
    let edit = set(
        "SHT-00002",
        &[
            ("Action", "민지가 우산을 접는다"),
            ("characters", "민지, joon"),
            ("look", "noir"),
            ("seconds", "2.5"),
            ("Camera Body", "Sony FX6"),
            ("prompt", "a rainy alley at night"),
            ("extra.소품", "우산"),
        ],
    );
    let applied = apply(&mut doc, &edit).unwrap();
    assert!(applied.summary.contains("SHT-00002"), "{}", applied.summary);
    let project = doc.project().unwrap();
    let shot = &project.shots[1];
    assert_eq!(shot.action, "민지가 우산을 접는다");
    let names: Vec<&str> = shot
        .characters
        .iter()
        .map(|id| project.character(id).unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["민지", "Joon"]);
    assert_eq!(
        project
            .cinematic(shot.cinematic.as_ref().unwrap())
            .unwrap()
            .name,
        "Noir"
    );
    assert_eq!(shot.frame_count, 60, "2.5 s at 24 fps");
    assert_eq!(shot.look.camera_body, "Sony FX6");
    assert_eq!(
        shot.prompt_override.as_deref(),
        Some("a rainy alley at night")
    );
    assert_eq!(shot.extra.get("소품").map(String::as_str), Some("우산"));

    undo(&mut doc, &applied);
    assert_eq!(doc.project().unwrap(), before);
}

#[test]
fn a_bad_value_names_the_record_field_and_reason_and_writes_nothing() {
    let mut doc = doc_with(2);
    let heads = doc.heads();
    for (edit, expected) in [
        (
            set("2", &[("frames", "abc")]),
            "SHT-00002, frames: \"abc\" is not a whole number of frames",
        ),
        (
            set("2", &[("frames", "0")]),
            "a shot lasts at least one frame",
        ),
        (
            set("2", &[("status", "someday")]),
            "is not a status (pending, generating",
        ),
        (
            set("2", &[("characters", "민지, 수아")]),
            "no character '수아'",
        ),
        (set("2", &[("look", "Dune")]), "no look 'Dune'"),
        (
            set("2", &[("colour", "red")]),
            "a shot has no field 'colour' (fields: scene, action",
        ),
        (set("SHT-00009", &[("action", "x")]), "no shot 'SHT-00009'"),
        // The first value is good, the second is not: neither is written.
        (
            set("1", &[("action", "written?"), ("seconds", "-1")]),
            "SHT-00001, seconds",
        ),
        (
            Edit::CharacterSet {
                character: "민지".into(),
                values: vec![("lora_strength".into(), "1.5".into())],
            },
            "character '민지', lora_strength: \"1.5\" is outside 0.0..=1.0",
        ),
        (
            Edit::CharacterAdd {
                name: "joon".into(),
                values: vec![],
            },
            "a character named 'joon' exists already",
        ),
        (
            Edit::Review {
                shot: "1".into(),
                verdict: Verdict::Revise { note: " ".into() },
            },
            "say what to change",
        ),
        (
            Edit::TakeSelect {
                shot: "1".into(),
                take: "abcd".into(),
            },
            "SHT-00001 has no take 'abcd'",
        ),
        (
            Edit::CatalogAdd {
                catalog: "camera".into(),
                value: "X".into(),
            },
            "is not a catalog (camera_body",
        ),
        (
            Edit::TemplateSet {
                template: "{style} of {nope}".into(),
            },
            "template",
        ),
    ] {
        let error = apply(&mut doc, &edit).unwrap_err().to_string();
        assert!(error.contains(expected), "{edit:?}: {error}");
        assert_eq!(doc.heads(), heads, "{edit:?} wrote something");
    }
    assert_eq!(doc.project().unwrap().shots[0].action, "");
}

#[test]
fn shots_are_added_moved_duplicated_deleted_and_each_is_undone() {
    let mut doc = doc_with(3);
    let before = doc.project().unwrap();

    let added = apply(
        &mut doc,
        &Edit::ShotAdd {
            after: Some("SHT-00001".into()),
            values: vec![("action".into(), "새 장면".into())],
        },
    )
    .unwrap();
    assert_eq!(added.summary, "added SHT-00004");
    let project = doc.project().unwrap();
    assert_eq!(
        codes(&project),
        ["SHT-00001", "SHT-00004", "SHT-00002", "SHT-00003"]
    );
    assert_eq!(project.shots[1].frame_count, 48, "two seconds by default");

    let moved = apply(
        &mut doc,
        &Edit::ShotMove {
            shot: "SHT-00003".into(),
            to: Place::Start,
        },
    )
    .unwrap();
    assert_eq!(
        codes(&doc.project().unwrap()),
        ["SHT-00003", "SHT-00001", "SHT-00004", "SHT-00002"]
    );
    let copied = apply(&mut doc, &Edit::ShotDuplicate { shot: "4".into() }).unwrap();
    assert_eq!(copied.summary, "duplicated SHT-00004 as SHT-00005");
    let project = doc.project().unwrap();
    assert_eq!(
        codes(&project),
        [
            "SHT-00003",
            "SHT-00001",
            "SHT-00004",
            "SHT-00005",
            "SHT-00002"
        ]
    );
    assert_eq!(project.shots[3].action, "새 장면");
    let deleted = apply(
        &mut doc,
        &Edit::ShotDelete {
            shot: "SHT-00001".into(),
        },
    )
    .unwrap();
    assert_eq!(
        codes(&doc.project().unwrap()),
        ["SHT-00003", "SHT-00004", "SHT-00005", "SHT-00002"]
    );

    // Undo, newest first: the project is as it was (added shots are in the trash).
    for step in [&deleted, &copied, &moved, &added] {
        undo(&mut doc, step);
    }
    assert_eq!(doc.project().unwrap(), before);
    let trashed: Vec<String> = doc
        .all_shots()
        .unwrap()
        .iter()
        .filter(|(_, deleted)| *deleted)
        .map(|(s, _)| s.code.to_string())
        .collect();
    assert_eq!(
        trashed,
        ["SHT-00004", "SHT-00005"],
        "undone additions stay in the trash"
    );
}

#[test]
fn characters_and_looks_are_added_edited_trashed_and_restored() {
    let mut doc = doc_with(1);
    let before = doc.project().unwrap();
    let added = apply(
        &mut doc,
        &Edit::CharacterAdd {
            name: "수아".into(),
            values: vec![
                ("appearance".into(), "긴 머리".into()),
                ("trigger words".into(), "sua_v1, red coat".into()),
                ("lora_strength".into(), "0.8".into()),
            ],
        },
    )
    .unwrap();
    let project = doc.project().unwrap();
    let sua = find_character(&project, "수아").unwrap();
    assert_eq!(sua.trigger_words, ["sua_v1", "red coat"]);
    assert!((sua.lora_strength - 0.8).abs() < 1e-9);
    let renamed = apply(
        &mut doc,
        &Edit::CharacterSet {
            character: "수아".into(),
            values: vec![("name".into(), "Sua".into())],
        },
    )
    .unwrap();
    assert!(find_character(&doc.project().unwrap(), "sua").is_ok());
    let trashed = apply(
        &mut doc,
        &Edit::CharacterDelete {
            character: "Sua".into(),
        },
    )
    .unwrap();
    assert!(find_character(&doc.project().unwrap(), "Sua").is_err());
    undo(&mut doc, &trashed);
    assert!(
        find_character(&doc.project().unwrap(), "Sua").is_ok(),
        "restored"
    );
    undo(&mut doc, &renamed);
    undo(&mut doc, &added);
    assert_eq!(doc.project().unwrap(), before);

    let look = apply(
        &mut doc,
        &Edit::LookAdd {
            name: "Dune".into(),
            values: vec![
                ("aspect ratio".into(), "2.39:1".into()),
                ("lens_type".into(), "anamorphic".into()),
            ],
        },
    )
    .unwrap();
    let edited = apply(
        &mut doc,
        &Edit::LookSet {
            look: "dune".into(),
            values: vec![("film_stock".into(), "Kodak 5219".into())],
        },
    )
    .unwrap();
    let project = doc.project().unwrap();
    let dune = find_look(&project, "Dune").unwrap();
    assert_eq!(dune.look.aspect_ratio, "2.39:1");
    assert_eq!(dune.look.film_stock, "Kodak 5219");
    undo(&mut doc, &edited);
    undo(&mut doc, &look);
    assert_eq!(doc.project().unwrap(), before);
}

#[test]
fn a_review_sets_the_status_and_note_and_undo_puts_them_back() {
    let mut doc = doc_with(2);
    let revise = apply(
        &mut doc,
        &Edit::Review {
            shot: "2".into(),
            verdict: Verdict::Revise {
                note: "조명을 더 어둡게".into(),
            },
        },
    )
    .unwrap();
    let shot = doc.project().unwrap().shots[1].clone();
    assert_eq!(
        (shot.status, shot.review_note.as_str()),
        (ShotStatus::NeedsRevision, "조명을 더 어둡게")
    );
    let approve = apply(
        &mut doc,
        &Edit::Review {
            shot: "2".into(),
            verdict: Verdict::Approve,
        },
    )
    .unwrap();
    let shot = doc.project().unwrap().shots[1].clone();
    assert_eq!(
        (shot.status, shot.review_note.as_str()),
        (ShotStatus::Approved, "")
    );
    undo(&mut doc, &approve);
    let shot = doc.project().unwrap().shots[1].clone();
    assert_eq!(
        (shot.status, shot.review_note.as_str()),
        (ShotStatus::NeedsRevision, "조명을 더 어둡게")
    );
    undo(&mut doc, &revise);
    assert_eq!(doc.project().unwrap().shots[1].status, ShotStatus::Pending);
}

#[test]
fn a_take_of_the_shot_is_selected_by_prefix_and_undo_goes_back_to_the_latest() {
    let mut doc = doc_with(2);
    let shot_id = doc.project().unwrap().shots[0].shot_id.clone();
    let job = Job::new(&shot_id, "card", 1, "n", 1);
    doc.add_job(&job).unwrap();
    let take = Take {
        take_id: "0123456789abcdef".into(),
        shot_id,
        job_id: job.job_id.clone(),
        blob: "a".repeat(64),
        media: TakeMedia::Card,
        extension: "png".into(),
        size: 1,
        width: 1,
        height: 1,
        frames: 1,
        fps: 0.0,
        duration_ms: 0,
        workflow: "card".into(),
        seed: 1,
        prompt: String::new(),
        node_id: "n".into(),
        host: String::new(),
        started_at_ms: 1,
        finished_at_ms: 2,
        render_ms: 1,
        cached: false,
    };
    doc.add_take(&take).unwrap();
    let chosen = apply(
        &mut doc,
        &Edit::TakeSelect {
            shot: "1".into(),
            take: "0123".into(),
        },
    )
    .unwrap();
    assert_eq!(
        doc.project().unwrap().shots[0].selected_take,
        "0123456789abcdef"
    );
    // Another shot's take is not this shot's.
    let error = apply(
        &mut doc,
        &Edit::TakeSelect {
            shot: "2".into(),
            take: "0123".into(),
        },
    )
    .unwrap_err();
    assert_eq!(error.to_string(), "SHT-00002 has no take '0123'");
    undo(&mut doc, &chosen);
    assert_eq!(doc.project().unwrap().shots[0].selected_take, "");
}

#[test]
fn catalog_values_are_added_once_and_removed_by_undo() {
    let mut doc = doc_with(1);
    let added = apply(
        &mut doc,
        &Edit::CatalogAdd {
            catalog: "camera_body".into(),
            value: "Blackmagic URSA".into(),
        },
    )
    .unwrap();
    let again = apply(
        &mut doc,
        &Edit::CatalogAdd {
            catalog: "camera_body".into(),
            value: "Blackmagic URSA".into(),
        },
    )
    .unwrap();
    assert!(again.undo.is_empty(), "nothing to undo: {again:?}");
    let shipped = apply(
        &mut doc,
        &Edit::CatalogAdd {
            catalog: "aspect_ratio".into(),
            value: "16:9".into(),
        },
    )
    .unwrap();
    assert!(shipped.undo.is_empty(), "a shipped value is there already");
    assert_eq!(
        doc.project().unwrap().catalog_additions.get("camera_body"),
        Some(&vec!["Blackmagic URSA".to_owned()])
    );
    undo(&mut doc, &added);
    assert!(
        !doc.project()
            .unwrap()
            .catalog_additions
            .contains_key("camera_body")
    );
}

#[test]
fn an_undo_merges_with_what_another_replica_did_meanwhile() {
    let mut mine = doc_with(2);
    let mut theirs = mine.fork();
    let applied = apply(&mut mine, &set("1", &[("action", "mine")])).unwrap();
    apply(&mut theirs, &set("1", &[("scene", "theirs")])).unwrap();
    mine.merge(&mut theirs).unwrap();
    undo(&mut mine, &applied);
    let shot = mine.project().unwrap().shots[0].clone();
    assert_eq!((shot.action.as_str(), shot.scene.as_str()), ("", "theirs"));
}

#[test]
fn edits_travel_as_json_in_the_shape_clients_write() {
    let edit = Edit::ShotMove {
        shot: "SHT-00003".into(),
        to: Place::After("SHT-00001".into()),
    };
    let json = serde_json::to_value(&edit).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"edit": "shot_move", "shot": "SHT-00003", "to": {"place": "after", "shot": "SHT-00001"}})
    );
    assert_eq!(serde_json::from_value::<Edit>(json).unwrap(), edit);
    assert_eq!(
        parse_assignments(&["action=비=온다".into(), "seconds=2".into()]).unwrap(),
        [
            ("action".to_owned(), "비=온다".to_owned()),
            ("seconds".to_owned(), "2".to_owned())
        ]
    );
    assert!(
        parse_assignments(&["action".into()])
            .unwrap_err()
            .contains("FIELD=VALUE")
    );
}

fn an_edit() -> impl Strategy<Value = Edit> {
    let shot = (1_u64..=4).prop_map(|n| n.to_string());
    prop_oneof![
        (shot.clone(), "[a-z가-힣 ]{0,8}").prop_map(|(s, v)| set(&s, &[("action", v.as_str())])),
        (shot.clone(), 1_u64..200)
            .prop_map(|(s, f)| set(&s, &[("frames", f.to_string().as_str())])),
        (
            shot.clone(),
            prop_oneof![Just(""), Just("민지"), Just("민지, Joon")]
        )
            .prop_map(|(s, c)| set(&s, &[("characters", c)])),
        (shot.clone(), prop_oneof![Just(""), Just("Noir")])
            .prop_map(|(s, l)| set(&s, &[("look", l)])),
        (shot.clone(), shot.clone()).prop_map(|(s, t)| Edit::ShotMove {
            shot: s,
            to: Place::After(t)
        }),
        shot.clone().prop_map(|s| Edit::ShotMove {
            shot: s,
            to: Place::Start
        }),
        shot.clone().prop_map(|s| Edit::ShotDuplicate { shot: s }),
        shot.prop_map(|s| Edit::Review {
            shot: s,
            verdict: Verdict::Approve
        }),
        Just(Edit::ShotAdd {
            after: None,
            values: vec![]
        }),
    ]
}

proptest! {
    /// Any sequence of edits, undone newest first, gives the project back as it
    /// was (shots it added stay in the trash, which the project does not show).
    #[test]
    fn undoing_every_edit_in_reverse_gives_the_project_back(edits in proptest::collection::vec(an_edit(), 1..12)) {
        let mut doc = doc_with(4);
        let before = doc.project().unwrap();
        let mut done = Vec::new();
        for edit in &edits {
            // An edit may be refused (a shot a duplicate has not made yet): it
            // writes nothing and has nothing to undo.
            if let Ok(applied) = apply(&mut doc, edit) {
                done.push(applied);
            }
        }
        for applied in done.iter().rev() {
            undo(&mut doc, applied);
        }
        prop_assert_eq!(doc.project().unwrap(), before);
    }
}

#[test]
fn accepting_advice_sets_each_advised_workflow_in_one_undo_step() {
    let mut doc = doc_with(3);
    let advice = |workflow: &str, error: &str| crate::model::Advice {
        workflow: workflow.into(),
        reason: "움직임이 많다".into(),
        source: "qwen2.5:7b".into(),
        at_ms: 1,
        confidence: Some(0.8),
        frames: Some(72),
        error: error.into(),
    };
    let mut project = doc.project().unwrap();
    project.shots[0].advice = Some(advice("ltx2", ""));
    project.shots[1].advice = Some(advice(
        "",
        "the model answered 'veo3', which no node offers",
    ));
    project.shots[2].advice = Some(advice("fflf", ""));
    project.shots[2].workflow = "wan_animate".into();
    for shot in &project.shots {
        doc.update_shot(shot).unwrap();
    }
    // Advice survives the document: read back whole, the error too.
    let read = doc.project().unwrap();
    assert_eq!(read.shots[1].advice, project.shots[1].advice);

    let applied = apply(&mut doc, &Edit::AdviceAccept { shots: vec![] }).unwrap();
    assert!(
        applied.summary.contains("2 shots (2 changed)"),
        "{}",
        applied.summary
    );
    let after = doc.project().unwrap();
    let workflows: Vec<&str> = after.shots.iter().map(|s| s.workflow.as_str()).collect();
    assert_eq!(workflows, ["ltx2", "", "fflf"]);
    undo(&mut doc, &applied);
    let undone = doc.project().unwrap();
    let workflows: Vec<&str> = undone.shots.iter().map(|s| s.workflow.as_str()).collect();
    assert_eq!(workflows, ["", "", "wan_animate"]);

    // One shot by code; a shot whose advice is an error is refused with the reason.
    apply(
        &mut doc,
        &Edit::AdviceAccept {
            shots: vec!["SHT-00003".into()],
        },
    )
    .unwrap();
    assert_eq!(doc.project().unwrap().shots[2].workflow, "fflf");
    let refused = apply(
        &mut doc,
        &Edit::AdviceAccept {
            shots: vec!["SHT-00002".into()],
        },
    )
    .unwrap_err()
    .to_string();
    assert!(refused.contains("no usable advice"), "{refused}");

    // A peer's advice that is not valid JSON reads as none, never a panic.
    let shot_id = after.shots[0].shot_id.clone();
    doc.put_raw_shot_field(&shot_id, "advice", "{not json")
        .unwrap();
    assert_eq!(doc.project().unwrap().shots[0].advice, None);
}
