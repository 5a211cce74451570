use proptest::prelude::*;

use super::*;
use crate::document::fields::SHOT_LOOK_KEYS;
use crate::model::ShotStatus;

fn doc_with(n: u64) -> ProjectDoc {
    let mut doc = ProjectDoc::create("test", "p1").expect("create");
    let shots: Vec<Shot> = (1..=n).map(|i| Shot::new(ShotCode(i), 24)).collect();
    doc.add_shots(&shots, &Position::End).expect("add");
    doc
}

fn shot_ids(doc: &ProjectDoc) -> Vec<String> {
    doc.project()
        .expect("read")
        .shots
        .iter()
        .map(|s| s.shot_id.clone())
        .collect()
}

/// The ids of the jobs changed since the last look, sorted.
fn changed_ids(doc: &mut ProjectDoc) -> Vec<String> {
    let mut ids: Vec<String> = doc
        .jobs_changed()
        .expect("changes")
        .expect("indexed")
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    ids.sort();
    ids
}

fn codes(doc: &ProjectDoc) -> Vec<u64> {
    doc.project()
        .expect("read")
        .shots
        .iter()
        .map(|s| s.code.0)
        .collect()
}

#[test]
fn new_document_reads_back_with_defaults() {
    let mut doc = ProjectDoc::create("밤의 골목", "p1").expect("create");
    let project = doc.project().expect("read");
    assert_eq!(project.settings.name, "밤의 골목");
    assert_eq!(project.settings.frame_rate, FrameRate::Fps24);
    assert_eq!(project.settings.prompt_template, prompt::DEFAULT_TEMPLATE);
    let reloaded = ProjectDoc::load(&doc.save()).expect("load");
    assert_eq!(reloaded.project().expect("read"), project);
}

#[test]
fn shots_keep_their_order_and_insertions_land_where_asked() {
    let mut doc = doc_with(3);
    let ids = shot_ids(&doc);
    let mut new = Shot::new(ShotCode(4), 10);
    new.action = "inserted".into();
    doc.add_shots(&[new], &Position::After(ids[0].clone()))
        .expect("add");
    assert_eq!(codes(&doc), vec![1, 4, 2, 3]);
    doc.move_shot(&ids[2], &Position::Before(ids[0].clone()))
        .expect("move");
    assert_eq!(codes(&doc), vec![3, 1, 4, 2]);
    doc.move_shot(&ids[2], &Position::End).expect("move");
    assert_eq!(codes(&doc), vec![1, 4, 2, 3]);
}

#[test]
fn a_shot_s_look_keys_are_its_look_fields_prefixed() {
    for (field, key) in LookField::ALL.into_iter().zip(SHOT_LOOK_KEYS) {
        assert_eq!(key, format!("look_{}", field.key()));
    }
}

#[test]
fn a_batch_of_shots_gets_short_order_keys_in_its_order_wherever_it_goes() {
    let mut doc = doc_with(2);
    let ids = shot_ids(&doc);
    let batch: Vec<Shot> = (10..10_010).map(|i| Shot::new(ShotCode(i), 24)).collect();
    doc.add_shots(&batch, &Position::After(ids[0].clone()))
        .expect("add");
    let codes = codes(&doc);
    let mut expected = vec![1];
    expected.extend(10..10_010);
    expected.push(2);
    assert_eq!(
        codes, expected,
        "the batch lands between the two, in its order"
    );
    assert_eq!(doc.all_shots().expect("read").len(), 10_002);
    let keys = order_keys(None, None, 10_000).expect("keys");
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    let max = keys.iter().map(|k| k.to_string().len()).max().unwrap_or(0);
    assert!(max <= 40, "longest order key {max} hex digits");
}

#[test]
fn concurrent_edits_to_different_fields_both_survive() {
    let mut a = doc_with(2);
    let mut b = a.fork();
    let mut shot_a = a.project().expect("read").shots[0].clone();
    shot_a.action = "runs".into();
    a.update_shot(&shot_a).expect("edit");
    let mut shot_b = b.project().expect("read").shots[0].clone();
    shot_b.notes = "메모: 비 오는 밤".into();
    shot_b.frame_count = 72;
    b.update_shot(&shot_b).expect("edit");
    a.merge(&mut b).expect("merge");
    b.merge(&mut a).expect("merge");
    let merged = a.project().expect("read").shots[0].clone();
    assert_eq!(merged.action, "runs");
    assert_eq!(merged.notes, "메모: 비 오는 밤");
    assert_eq!(merged.frame_count, 72);
    assert_eq!(a.project().expect("read"), b.project().expect("read"));
}

#[test]
fn offline_edits_to_a_look_and_to_a_shot_s_own_values_merge() {
    let mut a = doc_with(2);
    let mut noir = CinematicOption::new("Noir");
    noir.look.camera_body = "Arri Alexa 35".into();
    noir.look.lens_type = "anamorphic".into();
    a.put_cinematic(&noir).expect("look");
    let mut linked = a.project().expect("read").shots;
    for shot in &mut linked {
        shot.cinematic = Some(noir.cinematic_id.clone());
        a.update_shot(shot).expect("link");
    }
    let mut b = a.fork();
    // Offline on a: the look changes its camera and its film.
    noir.look.camera_body = "Sony Venice 2".into();
    noir.look.film_stock = "Kodak Vision3 500T".into();
    a.put_cinematic(&noir).expect("edit look");
    // Offline on b: the first shot gets its own lens and filter; the second its own camera.
    let mut first = linked[0].clone();
    first.look.lens_type = "vintage".into();
    first.look.lens_filter = "none".into();
    b.update_shot(&first).expect("edit shot");
    let mut second = linked[1].clone();
    second.look.camera_body = "16mm Bolex".into();
    b.update_shot(&second).expect("edit shot");
    a.merge(&mut b).expect("merge");
    b.merge(&mut a).expect("merge");
    let project = a.project().expect("read");
    assert_eq!(project, b.project().expect("read"));
    let first = &project.shots[0];
    assert_eq!(first.look.lens_type, "vintage");
    let look = project.effective_look(first);
    assert_eq!(
        look.camera_body, "Sony Venice 2",
        "the look's new camera shows through"
    );
    assert_eq!(look.film_stock, "Kodak Vision3 500T");
    assert_eq!(look.lens_type, "vintage", "the shot's own lens wins");
    let second = project.effective_look(&project.shots[1]);
    assert_eq!(
        second.camera_body, "16mm Bolex",
        "the shot's own camera wins over the look's edit"
    );
    assert_eq!(second.lens_type, "anamorphic");
    // Clearing a shot's own value brings the look's back, and stores nothing.
    let mut cleared = project.shots[1].clone();
    cleared.look.camera_body.clear();
    a.update_shot(&cleared).expect("clear");
    let project = a.project().expect("read");
    assert!(project.shots[1].look.is_empty());
    assert_eq!(
        project.effective_look(&project.shots[1]).camera_body,
        "Sony Venice 2"
    );
}

#[test]
fn an_old_version_reads_back_and_a_missing_one_is_refused() {
    let mut doc = doc_with(1);
    let before = doc.heads();
    let mut shot = doc.project().expect("read").shots[0].clone();
    shot.action = "later".into();
    doc.update_shot(&shot).expect("edit");
    let then = doc.project_at(&before).expect("old version");
    assert_eq!(then.shots[0].action, "");
    let now = doc.heads();
    assert_eq!(
        doc.project_at(&now).expect("now"),
        doc.project().expect("read")
    );
    let unknown = "ab".repeat(32);
    assert!(matches!(
        doc.project_at(&[unknown]),
        Err(DocError::NotFound {
            kind: "version",
            ..
        })
    ));
    assert!(doc.project_at(&["not hex".into()]).is_err());
}

#[test]
fn header_mappings_are_remembered_per_header_and_merge() {
    let mut a = doc_with(0);
    let mut b = a.fork();
    a.set_header_mapping("외형묘사", Some("appearance"))
        .expect("map");
    b.set_header_mapping("trigger", Some("trigger_words"))
        .expect("map");
    a.merge(&mut b).expect("merge");
    let map = a.project().expect("read").settings.header_map;
    assert_eq!(map.get("외형묘사").map(String::as_str), Some("appearance"));
    assert_eq!(
        map.get("trigger").map(String::as_str),
        Some("trigger_words")
    );
    a.set_header_mapping("trigger", None).expect("forget");
    assert_eq!(a.project().expect("read").settings.header_map.len(), 1);
}

#[test]
fn concurrent_edits_to_one_field_pick_the_same_winner_everywhere() {
    let mut a = doc_with(1);
    let mut b = a.fork();
    let mut c = a.fork();
    for (doc, text) in [(&mut a, "from a"), (&mut b, "from b"), (&mut c, "from c")] {
        let mut shot = doc.project().expect("read").shots[0].clone();
        shot.action = text.into();
        doc.update_shot(&shot).expect("edit");
    }
    // Merge in different orders on different peers.
    let mut ab = a.fork();
    ab.merge(&mut b).expect("merge");
    ab.merge(&mut c).expect("merge");
    let mut cb = c.fork();
    cb.merge(&mut b).expect("merge");
    cb.merge(&mut a).expect("merge");
    let winner = ab.project().expect("read").shots[0].action.clone();
    assert!(["from a", "from b", "from c"].contains(&winner.as_str()));
    assert_eq!(cb.project().expect("read").shots[0].action, winner);
}

#[test]
fn delete_on_one_side_and_edit_on_the_other_ends_trashed_with_the_edit_kept() {
    let mut a = doc_with(2);
    let mut b = a.fork();
    let shot_id = a.project().expect("read").shots[0].shot_id.clone();
    a.delete_shot(&shot_id).expect("delete");
    let mut edited = b.project().expect("read").shots[0].clone();
    edited.action = "edited offline".into();
    b.update_shot(&edited).expect("edit");
    a.merge(&mut b).expect("merge");
    b.merge(&mut a).expect("merge");
    for doc in [&a, &b] {
        let project = doc.project().expect("read");
        assert_eq!(
            project.shots.len(),
            1,
            "the deleted shot stays out of the shot list"
        );
        let (trashed, deleted) = doc
            .all_shots()
            .expect("all")
            .into_iter()
            .find(|(s, _)| s.shot_id == shot_id)
            .expect("kept");
        assert!(deleted);
        assert_eq!(trashed.action, "edited offline");
    }
    a.restore_shot(&shot_id).expect("restore");
    assert_eq!(a.project().expect("read").shots[0].action, "edited offline");
}

#[test]
fn concurrent_reorders_merge_without_duplicates() {
    let mut a = doc_with(4);
    let ids = shot_ids(&a);
    let mut b = a.fork();
    a.move_shot(&ids[3], &Position::Before(ids[0].clone()))
        .expect("move");
    b.move_shot(&ids[3], &Position::After(ids[1].clone()))
        .expect("move");
    b.move_shot(&ids[0], &Position::End).expect("move");
    a.merge(&mut b).expect("merge");
    b.merge(&mut a).expect("merge");
    let order_a = shot_ids(&a);
    let order_b = shot_ids(&b);
    assert_eq!(order_a, order_b);
    let mut sorted = order_a.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 4, "every shot exactly once: {order_a:?}");
}

#[test]
fn concurrent_link_additions_both_survive() {
    let mut a = doc_with(1);
    let mut b = a.fork();
    let mut shot = a.project().expect("read").shots[0].clone();
    shot.characters.push("mina".into());
    a.update_shot(&shot).expect("edit");
    let mut shot = b.project().expect("read").shots[0].clone();
    shot.characters.push("jun".into());
    b.update_shot(&shot).expect("edit");
    a.merge(&mut b).expect("merge");
    let mut linked = a.project().expect("read").shots[0].characters.clone();
    linked.sort();
    assert_eq!(linked, vec!["jun".to_owned(), "mina".to_owned()]);
}

#[test]
fn characters_and_options_round_trip_and_strength_is_checked() {
    let mut doc = doc_with(0);
    let mut mina = Character::new("민아");
    mina.trigger_words = vec!["m1na".into(), "red coat".into()];
    mina.lora_strength = 0.65;
    mina.extra.insert("Voice".into(), "alto".into());
    doc.put_character(&mina).expect("put");
    let mut look = CinematicOption::new("Noir");
    look.look.aspect_ratio = "2.39:1".into();
    look.extra.insert("무드보드".into(), "ref/mood.jpg".into());
    doc.put_cinematic(&look).expect("put");
    let project = doc.project().expect("read");
    assert_eq!(project.characters, vec![mina.clone()]);
    assert_eq!(project.cinematics, vec![look]);
    mina.lora_strength = 1.5;
    assert!(matches!(
        doc.put_character(&mina),
        Err(DocError::Invalid(_))
    ));
}

#[test]
fn garbage_bytes_and_foreign_documents_are_refused() {
    assert!(ProjectDoc::load(b"not automerge").is_err());
    let mut other = automerge::AutoCommit::new();
    other.put(ROOT, "hello", "world").expect("put");
    assert!(matches!(
        ProjectDoc::load(&other.save()),
        Err(DocError::Schema(_))
    ));
}

#[test]
fn code_resolution_keeps_the_smallest_id_and_renumbers_the_rest_above_max() {
    let changes = resolve_codes(
        [
            ("b", ShotCode(3)),
            ("a", ShotCode(3)),
            ("c", ShotCode(5)),
            ("d", ShotCode(5)),
        ]
        .into_iter(),
    );
    assert_eq!(
        changes,
        vec![
            ("b".to_owned(), ShotCode(3), ShotCode(6)),
            ("d".to_owned(), ShotCode(5), ShotCode(7))
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Two (or three) offline copies each add shots, with codes from their own view;
    /// after merging in any order every shot has a unique code, every peer shows the
    /// same codes, nothing is lost, and codes untouched by a collision never change.
    #[test]
    fn shot_codes_stay_unique_after_offline_adds_merge(
        base in 0_u64..5,
        adds in proptest::collection::vec(0_usize..6, 2..4),
    ) {
        let mut origin = doc_with(base);
        let mut copies: Vec<ProjectDoc> = adds.iter().map(|_| origin.fork()).collect();
        for (copy, count) in copies.iter_mut().zip(&adds) {
            for _ in 0..*count {
                let code = copy.next_code().expect("code");
                copy.add_shots(&[Shot::new(code, 12)], &Position::End).expect("add");
            }
        }
        let mut forward = origin.fork();
        for copy in &mut copies {
            forward.merge(copy).expect("merge");
        }
        let mut backward = origin.fork();
        for copy in copies.iter_mut().rev() {
            backward.merge(copy).expect("merge");
        }
        forward.merge(&mut backward).expect("merge");
        backward.merge(&mut forward).expect("merge");
        let total = base as usize + adds.iter().sum::<usize>();
        let got = codes(&forward);
        prop_assert_eq!(got.len(), total);
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        prop_assert_eq!(unique.len(), total, "codes collide: {:?}", got);
        let by_id = |d: &ProjectDoc| {
            let mut v: Vec<_> = d.project().expect("read").shots.iter().map(|s| (s.shot_id.clone(), s.code)).collect();
            v.sort();
            v
        };
        prop_assert_eq!(by_id(&forward), by_id(&backward));
        // Shots that existed before the split keep their codes.
        let before: Vec<u64> = (1..=base).collect();
        prop_assert!(before.iter().all(|c| got.contains(c)));
        // A further normalize is a no-op: the result is stable.
        prop_assert!(forward.normalize_codes().expect("normalize").is_empty());
    }
}

fn shot(action: &str) -> Shot {
    let mut shot = Shot::new(ShotCode(1), 24);
    shot.action = action.to_owned();
    shot
}

/// Runs Automerge sync between two documents until neither has anything to say;
/// returns the number of messages exchanged.
fn sync_until_quiet(a: &mut ProjectDoc, b: &mut ProjectDoc, project_id: &str) -> usize {
    let (mut a_state, mut b_state) = (SyncState::new(), SyncState::new());
    let mut messages = 0;
    loop {
        let mut quiet = true;
        if let Some(m) = a.generate_sync_message(&mut a_state).unwrap() {
            b.receive_sync_message(&mut b_state, &m, project_id)
                .expect("b applies");
            quiet = false;
            messages += 1;
        }
        if let Some(m) = b.generate_sync_message(&mut b_state).unwrap() {
            a.receive_sync_message(&mut a_state, &m, project_id)
                .expect("a applies");
            quiet = false;
            messages += 1;
        }
        assert!(messages < 50, "sync does not settle");
        if quiet {
            return messages;
        }
    }
}

#[test]
fn an_empty_replica_receives_the_whole_project_by_sync() {
    let mut origin = ProjectDoc::create("장편 영화", "p1").unwrap();
    origin
        .add_shots(&[shot("첫 장면")], &Position::End)
        .unwrap();
    let mut replica = ProjectDoc::empty();
    assert!(!replica.is_ready());
    sync_until_quiet(&mut origin, &mut replica, "p1");
    assert!(replica.is_ready());
    assert_eq!(replica.heads(), origin.heads());
    assert_eq!(replica.project().unwrap(), origin.project().unwrap());
    let heads = origin.heads();
    assert!(replica.has_heads(&heads));
    assert!(!replica.has_heads(&["00".repeat(32)]));
}

#[test]
fn sync_merges_concurrent_offline_adds_with_unique_codes() {
    let mut a = ProjectDoc::create("p", "p1").unwrap();
    let mut b = ProjectDoc::empty();
    sync_until_quiet(&mut a, &mut b, "p1");
    a.add_shots(&[shot("a side")], &Position::End).unwrap();
    b.add_shots(&[shot("b side")], &Position::End).unwrap();
    sync_until_quiet(&mut a, &mut b, "p1");
    assert_eq!(a.heads(), b.heads());
    let project = a.project().unwrap();
    let mut codes: Vec<_> = project.shots.iter().map(|s| s.code).collect();
    codes.dedup();
    assert_eq!(codes.len(), 2, "codes stay unique: {codes:?}");
    assert_eq!(project, b.project().unwrap());
}

#[test]
fn garbage_sync_messages_are_refused() {
    let mut doc = ProjectDoc::create("p", "p1").unwrap();
    let mut state = SyncState::new();
    for garbage in [&b"\x42garbage"[..], &[0xff; 64], &[0x43, 0, 0, 0]] {
        let err = doc
            .receive_sync_message(&mut state, garbage, "p1")
            .unwrap_err();
        assert!(matches!(err, DocError::Sync(_)), "{err}");
    }
    assert!(doc.is_ready());
}

#[test]
fn a_sync_message_for_another_project_is_refused() {
    let mut other = ProjectDoc::create("other", "p2").unwrap();
    let mut state = SyncState::new();
    let mut replica = ProjectDoc::empty();
    let mut replica_state = SyncState::new();
    // Let the other side learn what we (do not) have, then take its changes.
    let hello = replica
        .generate_sync_message(&mut replica_state)
        .unwrap()
        .unwrap();
    other
        .receive_sync_message(&mut state, &hello, "p2")
        .unwrap();
    let changes = other.generate_sync_message(&mut state).unwrap().unwrap();
    let err = replica
        .receive_sync_message(&mut replica_state, &changes, "p1")
        .unwrap_err();
    assert!(err.to_string().contains("carries project 'p2'"), "{err}");
}

#[test]
fn sync_state_survives_encode_decode() {
    let mut a = ProjectDoc::create("p", "p1").unwrap();
    let mut b = ProjectDoc::empty();
    let (mut a_state, mut b_state) = (SyncState::new(), SyncState::new());
    let m = a.generate_sync_message(&mut a_state).unwrap().unwrap();
    b.receive_sync_message(&mut b_state, &m, "p1").unwrap();
    let restored = SyncState::decode(&a_state.encode());
    assert_eq!(restored.encode(), a_state.encode());
    assert_eq!(
        SyncState::decode(b"junk").encode(),
        SyncState::new().encode()
    );
    // What pushes and heartbeats teach a state is kept the way Automerge encodes
    // it (sorted; debug builds assert it), in whatever order it came.
    let mut heads = vec!["ff".repeat(32), "00".repeat(32), "ff".repeat(32)];
    let mut taught = SyncState::new();
    taught.peer_has(&heads);
    heads.reverse();
    taught.peer_has(&heads);
    let edits = {
        let before = a.heads();
        a.add_shots(&[shot("x")], &Position::End).unwrap();
        let mid = a.heads();
        a.add_shots(&[shot("y")], &Position::End).unwrap();
        let mut both = a.changes_since(&mid);
        both.extend(&a.changes_since(&before));
        both
    };
    taught.pushed_by_peer(&edits, true);
    taught.pushed_to_peer(&edits);
    let _ = SyncState::decode(&taught.encode());
    assert!(a.generate_sync_message(&mut taught).is_ok());
}

#[test]
fn pushed_changes_apply_in_any_order_and_wait_for_what_they_depend_on() {
    let mut author = ProjectDoc::create("푸시", "p1").unwrap();
    let mut replica = ProjectDoc::empty();
    sync_until_quiet(&mut author, &mut replica, "p1");

    let before_first = author.heads();
    author
        .add_shots(&[Shot::new(ShotCode(1), 24)], &Position::End)
        .unwrap();
    let first = author.changes_since(&before_first).chunks;
    let before_second = author.heads();
    author
        .add_shots(&[Shot::new(ShotCode(2), 24)], &Position::End)
        .unwrap();
    let second = author.changes_since(&before_second).chunks;
    assert_eq!((first.len(), second.len()), (1, 1), "one change per edit");

    // The second overtakes the first: it waits, nothing shows.
    let applied = replica.apply_changes(&second, "p1").unwrap();
    assert!(!applied.changed);
    assert_eq!(replica.missing_changes().len(), 1);
    assert_eq!(replica.project().unwrap().shots.len(), 0);

    // The first arrives: both go in.
    let applied = replica.apply_changes(&first, "p1").unwrap();
    assert!(applied.changed);
    assert!(replica.missing_changes().is_empty());
    assert_eq!(replica.heads(), author.heads());
    assert_eq!(replica.project().unwrap(), author.project().unwrap());

    // The same changes again change nothing.
    assert!(!replica.apply_changes(&first, "p1").unwrap().changed);
}

#[test]
fn pushed_changes_that_break_the_project_or_belong_to_another_are_refused() {
    let mut replica = ProjectDoc::create("p", "p1").unwrap();
    for garbage in [vec![0xff; 40], b"\x85\x6f\x4a\x83junk".to_vec()] {
        let err = replica.apply_changes(&[garbage], "p1").unwrap_err();
        assert!(matches!(err, DocError::Sync(_)), "{err}");
        assert!(err.to_string().contains("change 1"), "{err}");
    }
    let mut other = ProjectDoc::create("other", "p2").unwrap();
    let all = other.changes_since(&[]).chunks;
    let mut fresh = ProjectDoc::empty();
    let err = fresh.apply_changes(&all, "p1").unwrap_err();
    assert!(err.to_string().contains("carries project 'p2'"), "{err}");
}

#[test]
fn renumbering_after_pushed_changes_is_handed_back_to_push() {
    let mut a = ProjectDoc::create("p", "p1").unwrap();
    let mut b = ProjectDoc::empty();
    sync_until_quiet(&mut a, &mut b, "p1");
    let (a_before, b_before) = (a.heads(), b.heads());
    a.add_shots(&[shot("a side")], &Position::End).unwrap();
    b.add_shots(&[shot("b side")], &Position::End).unwrap();
    let from_a = a.changes_since(&a_before).chunks;
    let from_b = b.changes_since(&b_before).chunks;
    // Both took code 1; the merge renumbers on each side, the same way.
    let on_b = b.apply_changes(&from_a, "p1").unwrap();
    let on_a = a.apply_changes(&from_b, "p1").unwrap();
    assert_eq!((on_a.renumbered, on_b.renumbered), (1, 1));
    assert_eq!(on_a.renumbering.chunks.len(), 1);
    // Each side's renumbering reaches the other; then they agree.
    a.apply_changes(&on_b.renumbering.chunks, "p1").unwrap();
    b.apply_changes(&on_a.renumbering.chunks, "p1").unwrap();
    assert_eq!(a.heads(), b.heads());
    let codes: std::collections::BTreeSet<_> =
        a.project().unwrap().shots.iter().map(|s| s.code).collect();
    assert_eq!(codes.len(), 2);
}

#[test]
fn a_sync_reply_is_sent_only_when_it_carries_or_asks_for_changes() {
    let mut a = ProjectDoc::create("p", "p1").unwrap();
    let mut b = ProjectDoc::empty();
    let (mut a_state, mut b_state) = (SyncState::new(), SyncState::new());
    // A fresh exchange: the opening message always goes, and the replica's
    // reply asks for everything.
    let hello = a.generate_sync_message(&mut a_state).unwrap().unwrap();
    b.receive_sync_message(&mut b_state, &hello, "p1").unwrap();
    let ask = b.generate_sync_reply(&mut b_state).unwrap().expect("asks");
    a.receive_sync_message(&mut a_state, &ask, "p1").unwrap();
    let changes = a.generate_sync_reply(&mut a_state).unwrap().expect("sends");
    assert!(
        b.receive_sync_message(&mut b_state, &changes, "p1")
            .unwrap()
            .changed
    );
    assert_eq!(a.heads(), b.heads());
    // Changes that came by sync are answered with the new heads, useful or not:
    // `a` would otherwise go on thinking `b` empty, and send it everything again.
    assert_eq!(b.generate_sync_reply(&mut b_state).unwrap(), None);
    let answer = b
        .generate_sync_message(&mut b_state)
        .unwrap()
        .expect("answers");
    a.receive_sync_message(&mut a_state, &answer, "p1").unwrap();

    // In step, then `a` moves on and pushes the change to `b`: a reply would
    // only tell new heads, so none goes and the state is as it was.
    let before = a.heads();
    a.add_shots(&[shot("pushed")], &Position::End).unwrap();
    let pushed = a.changes_since(&before);
    b.apply_changes(&pushed.chunks, "p1").unwrap();
    a_state.mark_sent(&pushed);
    let kept = a_state.encode();
    assert_eq!(a.generate_sync_reply(&mut a_state).unwrap(), None);
    assert_eq!(a_state.encode(), kept);
    // An opening message still goes (it is how an exchange starts).
    assert!(a.generate_sync_message(&mut a_state).unwrap().is_some());
}

#[test]
fn a_change_marked_sent_for_another_pusher_is_still_sent_when_the_peer_asks_for_it() {
    // `c` pushes a change to `a`, and `a` marks it sent in its state with `b`
    // (c pushes to b too). That push never reaches `b`, which asks `a` for the
    // change by name: `a` must send it despite the mark.
    let mut a = doc_with(1);
    let mut b = ProjectDoc::load(&a.save()).unwrap();
    let mut c = ProjectDoc::load(&a.save()).unwrap();
    let (mut a_state, mut b_state) = (SyncState::new(), SyncState::new());
    let before = c.heads();
    c.add_shots(&[shot("c의 장면")], &Position::End).unwrap();
    let pushed = c.changes_since(&before);
    assert!(a.apply_changes(&pushed.chunks, "p1").unwrap().changed);
    a_state.mark_sent(&pushed);
    assert!(!b.has_heads(&c.heads()));

    b_state.peer_has(&c.heads());
    ask_and_take_the_answer(&mut b, &mut b_state, &mut a, &mut a_state);
    assert!(b.has_heads(&c.heads()));
    assert_eq!(b.heads(), a.heads());
}

#[test]
fn an_ask_goes_even_when_the_last_message_was_never_answered() {
    // `b`'s last message of an exchange carries nothing `a` needs, so `a` does not
    // reply (a reply that only tells heads is not sent). Automerge's own state
    // then says `b` waits on a reply, and refuses another message while `b`'s
    // heads stay the same. Later `a` makes a change it does not push; `b` hears
    // the new heads announced and must be able to ask for them.
    let mut a = doc_with(1);
    let mut b = ProjectDoc::load(&a.save()).unwrap();
    let (mut a_state, mut b_state) = (SyncState::new(), SyncState::new());
    let hello = b.generate_sync_message(&mut b_state).unwrap().unwrap();
    a.receive_sync_message(&mut a_state, &hello, "p1").unwrap();
    assert_eq!(a.generate_sync_reply(&mut a_state).unwrap(), None);

    let before = a.heads();
    a.add_shots(&[shot("밀지 않은 장면")], &Position::End)
        .unwrap();
    assert_ne!(a.heads(), before);
    b_state.peer_has(&a.heads());
    ask_and_take_the_answer(&mut b, &mut b_state, &mut a, &mut a_state);
    assert!(b.has_heads(&a.heads()));
}

/// `asker` opens an exchange (it must have something to ask), `holder` answers
/// with changes, and they change `asker`'s document.
fn ask_and_take_the_answer(
    asker: &mut ProjectDoc,
    asker_state: &mut SyncState,
    holder: &mut ProjectDoc,
    holder_state: &mut SyncState,
) {
    let ask = asker
        .generate_sync_message(asker_state)
        .unwrap()
        .expect("the ask goes");
    holder
        .receive_sync_message(holder_state, &ask, "p1")
        .unwrap();
    let reply = holder
        .generate_sync_reply(holder_state)
        .unwrap()
        .expect("the changes are sent");
    assert!(
        asker
            .receive_sync_message(asker_state, &reply, "p1")
            .unwrap()
            .changed
    );
}

// ---- jobs and takes -------------------------------------------------------------

fn take_for(job: &crate::jobs::Job, blob_byte: char) -> crate::jobs::Take {
    crate::jobs::Take {
        take_id: crate::model::new_record_id(),
        shot_id: job.shot_id.clone(),
        job_id: job.job_id.clone(),
        blob: blob_byte.to_string().repeat(64),
        media: crate::jobs::TakeMedia::Card,
        extension: "png".into(),
        size: 1234,
        width: 1280,
        height: 720,
        frames: 1,
        fps: 0.0,
        duration_ms: 0,
        workflow: job.workflow.clone(),
        seed: job.seed,
        prompt: job.prompt.clone(),
        node_id: "node-a".into(),
        host: "box".into(),
        started_at_ms: 10,
        finished_at_ms: 20,
        render_ms: 9,
        cached: false,
    }
}

#[test]
fn jobs_and_takes_round_trip_and_drive_the_shot_status() {
    use crate::jobs::{Job, JobState};
    let mut doc = doc_with(2);
    let shot_id = doc.project().expect("read").shots[0].shot_id.clone();
    let mut job = Job::new(&shot_id, "card", 42, "node-a", 1000);
    job.prompt = "비 내리는 골목, 35mm".into();
    job.loras.insert("minji.safetensors".into(), 0.7);
    job.inputs.insert("first_frame".into(), "ab".repeat(32));
    job.priority = -3;
    job.work = 2_949.12;
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let mut wrong = job.clone();
        wrong.work = bad;
        let err = doc.add_job(&wrong).expect_err("refused");
        assert!(err.to_string().contains("work"), "{err}");
    }
    assert!(doc.jobs().expect("jobs").is_empty());
    doc.add_job(&job).expect("queue");
    assert_eq!(doc.jobs().expect("jobs"), vec![job.clone()]);
    // Queued is not generating: nothing runs yet.
    assert_eq!(
        doc.refresh_shot_status(&shot_id).expect("status"),
        ShotStatus::Pending
    );

    job.state = JobState::Claimed;
    job.attempts = 1;
    job.claimant = "node-a".into();
    doc.update_job(&job).expect("claim");
    assert_eq!(
        doc.project().expect("read").shots[0].status,
        ShotStatus::Generating,
        "a claim makes the shot generating"
    );
    // Given back (its node went away): pending again while it waits.
    job.state = JobState::Queued;
    job.claimant = String::new();
    doc.update_job(&job).expect("give back");
    assert_eq!(
        doc.project().expect("read").shots[0].status,
        ShotStatus::Pending
    );
    job.state = JobState::Running;
    job.claimant = "node-a".into();
    doc.update_job(&job).expect("run");
    assert_eq!(
        doc.project().expect("read").shots[0].status,
        ShotStatus::Generating
    );
    let take = take_for(&job, 'c');
    doc.add_take(&take).expect("take");
    job.state = JobState::Succeeded;
    job.take_id = take.take_id.clone();
    doc.update_job(&job).expect("done");
    assert_eq!(
        doc.refresh_shot_status(&shot_id).expect("status"),
        ShotStatus::Completed
    );

    let reloaded = ProjectDoc::load(&doc.save()).expect("load");
    assert_eq!(reloaded.job(&job.job_id).expect("job"), job);
    assert_eq!(
        reloaded.takes_for_shot(&shot_id).expect("takes"),
        vec![take.clone()]
    );
    assert_eq!(
        reloaded.project().expect("read").shots[0].status,
        ShotStatus::Completed
    );

    // Takes are history: never rewritten; ended jobs stay ended.
    assert!(doc.add_take(&take).is_err());
    job.state = JobState::Running;
    assert!(doc.update_job(&job).is_err());
}

#[test]
fn a_job_for_a_missing_or_trashed_shot_is_refused() {
    use crate::jobs::Job;
    let mut doc = doc_with(1);
    let shot_id = doc.project().expect("read").shots[0].shot_id.clone();
    assert!(matches!(
        doc.add_job(&Job::new("nope", "card", 1, "n", 1)),
        Err(DocError::NotFound { .. })
    ));
    doc.delete_shot(&shot_id).expect("trash");
    let err = doc
        .add_job(&Job::new(&shot_id, "card", 1, "n", 1))
        .expect_err("trashed");
    assert!(err.to_string().contains("trash"), "{err}");
    assert!(doc.jobs().expect("jobs").is_empty());
}

#[test]
fn a_cancel_and_a_state_change_made_concurrently_both_survive() {
    use crate::jobs::{Job, JobState};
    let mut a = doc_with(1);
    let shot_id = a.project().expect("read").shots[0].shot_id.clone();
    let mut job = Job::new(&shot_id, "flux_basic", 7, "a", 5);
    a.add_job(&job).expect("queue");
    let mut b = a.fork();
    job.state = JobState::Running;
    job.claimant = "a".into();
    a.update_job(&job).expect("run");
    b.request_cancel(&job.job_id).expect("cancel");
    a.merge(&mut b).expect("merge");
    let merged = a.job(&job.job_id).expect("job");
    assert_eq!(merged.state, JobState::Running);
    assert!(merged.cancel_requested);
}

#[test]
fn a_project_made_before_jobs_gets_its_job_maps_on_the_first_job() {
    use crate::jobs::Job;
    let mut doc = doc_with(1);
    doc.doc.delete(ROOT, "jobs").expect("drop");
    doc.doc.delete(ROOT, "takes").expect("drop");
    doc.commit("old layout");
    assert!(doc.is_ready());
    assert!(doc.jobs().expect("jobs").is_empty());
    let shot_id = doc.project().expect("read").shots[0].shot_id.clone();
    doc.add_job(&Job::new(&shot_id, "card", 1, "n", 1))
        .expect("queue");
    assert_eq!(doc.jobs().expect("jobs").len(), 1);
}

#[test]
fn codes_colliding_after_the_index_exists_are_still_renumbered() {
    // The index is built on the first sync; later merges must still see new codes.
    let mut a = doc_with(2);
    let mut b = ProjectDoc::empty();
    sync_until_quiet(&mut a, &mut b, "p1");
    // A jobs-only change syncs first (the index sees no code change)...
    let shot_id = a.project().expect("read").shots[0].shot_id.clone();
    a.add_job(&crate::jobs::Job::new(&shot_id, "card", 1, "a", 1))
        .expect("queue");
    sync_until_quiet(&mut a, &mut b, "p1");
    assert_eq!(codes(&b), vec![1, 2]);
    // ...then both sides add shot 3 offline.
    a.add_shots(&[Shot::new(ShotCode(3), 24)], &Position::End)
        .expect("a adds");
    b.add_shots(&[Shot::new(ShotCode(3), 24)], &Position::End)
        .expect("b adds");
    sync_until_quiet(&mut a, &mut b, "p1");
    assert_eq!(codes(&a), vec![1, 2, 3, 4]);
    assert_eq!(codes(&b), vec![1, 2, 3, 4]);
    // And a code edited on one side to collide is fixed on the other after merge.
    let mut c = b.fork();
    let mut moved = c.project().expect("read").shots[3].clone();
    moved.code = ShotCode(1);
    c.update_shot(&moved).expect("edit code");
    b.merge(&mut c).expect("merge");
    let mut after = codes(&b);
    after.sort_unstable();
    after.dedup();
    assert_eq!(after.len(), 4, "codes unique after merge: {:?}", codes(&b));
}

#[test]
fn jobs_changed_reports_local_and_merged_job_changes_only() {
    use crate::jobs::{Job, JobState};
    let mut a = doc_with(3);
    let shots = shot_ids(&a);
    let jobs: Vec<Job> = shots
        .iter()
        .map(|s| Job::new(s, "card", 1, "a", 1))
        .collect();
    a.add_jobs(&jobs).expect("queue");
    assert!(
        a.jobs_changed().expect("first").is_none(),
        "first read is whole"
    );
    assert_eq!(a.jobs_changed().expect("nothing"), Some(Vec::new()));
    // A shot edit is not a job change.
    let mut edited = a.project().expect("read").shots[0].clone();
    edited.action = "비가 그친다".into();
    a.update_shot(&edited).expect("edit");
    assert_eq!(a.jobs_changed().expect("no jobs"), Some(Vec::new()));
    // A local write and a merged one are both reported, once.
    let mut b = a.fork();
    let mut claimed = jobs[0].clone();
    claimed.state = JobState::Claimed;
    claimed.claimant = "a".into();
    a.update_jobs(std::slice::from_ref(&claimed))
        .expect("claim");
    b.request_cancel(&jobs[2].job_id).expect("cancel");
    a.merge(&mut b).expect("merge");
    let mut wanted = vec![jobs[0].job_id.clone(), jobs[2].job_id.clone()];
    wanted.sort();
    assert_eq!(changed_ids(&mut a), wanted);
    assert_eq!(a.jobs_changed().expect("drained"), Some(Vec::new()));
    // A map made inside a job on another replica, then written again there: both
    // writes are changes of that job.
    let mut c = a.fork();
    let mut failed = a.job(&jobs[1].job_id).expect("job");
    failed.failures.insert("node-b".into(), 1);
    c.update_jobs(std::slice::from_ref(&failed))
        .expect("first failure");
    a.merge(&mut c).expect("merge");
    let changed = a.jobs_changed().expect("changes").expect("indexed");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].failures.get("node-b"), Some(&1));
    failed.failures.insert("node-b".into(), 2);
    c.update_jobs(std::slice::from_ref(&failed))
        .expect("second failure");
    a.merge(&mut c).expect("merge");
    let changed = a.jobs_changed().expect("changes").expect("indexed");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].failures.get("node-b"), Some(&2));
}

#[test]
fn shot_status_follows_jobs_and_takes_merged_from_elsewhere() {
    use crate::jobs::{Job, JobState};
    let mut a = doc_with(2);
    let shot_id = a.project().expect("read").shots[0].shot_id.clone();
    let mut first = Job::new(&shot_id, "card", 1, "a", 1);
    let mut second = Job::new(&shot_id, "card", 2, "a", 2);
    a.add_jobs(&[first.clone(), second.clone()]).expect("queue");
    assert_eq!(
        a.project().expect("read").shots[0].status,
        ShotStatus::Pending
    );
    for job in [&mut first, &mut second] {
        job.state = JobState::Claimed;
        job.claimant = "a".into();
        job.attempts = 1;
    }
    a.update_jobs(&[first.clone(), second.clone()])
        .expect("claim");
    assert_eq!(
        a.project().expect("read").shots[0].status,
        ShotStatus::Generating
    );
    // Another node rendered the first job: its take arrives by merge.
    let mut b = a.fork();
    let take = take_for(&first, 'd');
    b.add_take(&take).expect("take");
    a.merge(&mut b).expect("merge");
    assert_eq!(a.takes_for_job(&first.job_id).expect("takes"), vec![take]);
    assert!(a.takes_for_job(&second.job_id).expect("none").is_empty());
    // One job ends: the other still runs, the shot keeps generating.
    let mut done = first;
    done.state = JobState::Canceled;
    a.update_jobs(std::slice::from_ref(&done))
        .expect("end first");
    assert_eq!(
        a.project().expect("read").shots[0].status,
        ShotStatus::Generating
    );
    // The last one ends: the merged take makes the shot completed.
    let mut done = second;
    done.state = JobState::Canceled;
    a.update_jobs(std::slice::from_ref(&done))
        .expect("end second");
    assert_eq!(
        a.project().expect("read").shots[0].status,
        ShotStatus::Completed
    );
}

#[test]
fn queueing_a_batch_is_all_or_nothing() {
    use crate::jobs::Job;
    let mut doc = doc_with(2);
    let shots = doc.project().expect("read").shots;
    doc.delete_shot(&shots[1].shot_id).expect("trash");
    let err = doc
        .add_jobs(&[
            Job::new(&shots[0].shot_id, "card", 1, "n", 1),
            Job::new(&shots[1].shot_id, "card", 1, "n", 1),
        ])
        .expect_err("trashed shot");
    assert!(err.to_string().contains(&shots[1].shot_id), "{err}");
    let job = Job::new(&shots[0].shot_id, "card", 1, "n", 1);
    doc.add_jobs(std::slice::from_ref(&job)).expect("queue");
    let again = doc.add_jobs(std::slice::from_ref(&job)).expect_err("twice");
    assert!(again.to_string().contains("exists already"), "{again}");
    assert_eq!(doc.jobs().expect("jobs"), vec![job]);
    assert_eq!(
        doc.project().expect("read").shots[0].status,
        ShotStatus::Pending
    );
}

#[test]
fn name_and_shot_count_skip_trashed_shots() {
    let mut doc = doc_with(3);
    doc.set_name("골목길").expect("rename");
    let first = doc.project().expect("read").shots[0].shot_id.clone();
    doc.delete_shot(&first).expect("trash");
    assert_eq!(
        doc.name_and_shot_count().expect("summary"),
        ("골목길".to_owned(), 2)
    );
}

#[test]
fn records_made_in_one_change_are_one_change_and_a_failure_writes_nothing() {
    use crate::jobs::{Job, JobState};
    let mut doc = doc_with(3);
    let shots = shot_ids(&doc);
    let jobs: Vec<Job> = shots
        .iter()
        .enumerate()
        .map(|(i, s)| Job::new(s, "card", i as u64, "a", i as u64))
        .collect();
    doc.add_jobs(&jobs).expect("queue");
    let running: Vec<Job> = jobs[..2]
        .iter()
        .map(|j| {
            let mut j = j.clone();
            j.state = JobState::Running;
            j.attempts = 1;
            j.claimant = "a".into();
            j
        })
        .collect();
    doc.update_jobs(&running).expect("run");
    doc.jobs_changed().expect("index");
    let before = doc.change_count();
    // Two jobs end with takes, a third is claimed: one change for all of it.
    let mut ended = Vec::new();
    for job in &jobs[..2] {
        let take = take_for(job, 'e');
        let mut done = job.clone();
        done.state = JobState::Succeeded;
        done.attempts = 1;
        done.claimant = "a".into();
        done.take_id = take.take_id.clone();
        ended.push((take, done));
    }
    let mut claimed = jobs[2].clone();
    claimed.state = JobState::Claimed;
    claimed.attempts = 1;
    claimed.claimant = "a".into();
    doc.in_one_change(|doc| -> Result<(), DocError> {
        for (take, _) in &ended {
            doc.add_take(take)?;
        }
        let states: Vec<Job> = ended.iter().map(|(_, j)| j.clone()).collect();
        doc.update_jobs(&states)?;
        doc.update_jobs(std::slice::from_ref(&claimed))
    })
    .expect("one change");
    assert_eq!(doc.change_count(), before + 1);
    // The shots saw the takes made in the same change.
    let project = doc.project().expect("read");
    let status = |id: &str| {
        project
            .shots
            .iter()
            .find(|s| s.shot_id == id)
            .map(|s| s.status)
    };
    assert_eq!(status(&shots[0]), Some(ShotStatus::Completed));
    assert_eq!(status(&shots[1]), Some(ShotStatus::Completed));
    assert_eq!(status(&shots[2]), Some(ShotStatus::Generating));
    let mut all: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    all.sort();
    assert_eq!(changed_ids(&mut doc), all);
    assert_eq!(doc.takes_for_job(&jobs[0].job_id).expect("takes").len(), 1);

    // A refused record refuses the whole change: nothing of it is written.
    let heads = doc.heads();
    let mut back = jobs[0].clone();
    back.state = JobState::Running;
    let mut fine = claimed.clone();
    fine.state = JobState::Running;
    let refused = doc.in_one_change(|doc| -> Result<(), DocError> {
        doc.update_jobs(std::slice::from_ref(&fine))?;
        doc.update_jobs(std::slice::from_ref(&back))
    });
    assert!(refused.is_err());
    assert_eq!(doc.heads(), heads);
    assert_eq!(
        doc.job(&claimed.job_id).expect("job").state,
        JobState::Claimed
    );
}
