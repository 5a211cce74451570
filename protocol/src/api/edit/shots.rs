//! Shot edits: fields as text, add, duplicate, move, review and take selection.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A shot's field as text, as [`set_shot_value`] takes it back (characters and the
/// look by id, the length in frames).
pub(super) fn shot_value(shot: &Shot, key: &str) -> Option<(String, String)> {
    let value = match key {
        "scene" => shot.scene.clone(),
        "action" => shot.action.clone(),
        "notes" => shot.notes.clone(),
        "workflow" => shot.workflow.clone(),
        "review_note" => shot.review_note.clone(),
        "characters" => shot.characters.join(","),
        "look" | "cinematic" => {
            return Some(("look".into(), shot.cinematic.clone().unwrap_or_default()));
        }
        "prompt" | "prompt_override" => {
            return Some((
                "prompt".into(),
                shot.prompt_override.clone().unwrap_or_default(),
            ));
        }
        "frames" | "frame_count" | "seconds" | "duration" => {
            return Some(("frames".into(), shot.frame_count.to_string()));
        }
        "status" => shot.status.as_str().to_owned(),
        "reference_images" => shot.reference_images.join(", "),
        other => {
            if let Some(name) = other.strip_prefix("extra.") {
                shot.extra.get(name).cloned().unwrap_or_default()
            } else {
                shot.look.get(LookField::from_key(other)?).to_owned()
            }
        }
    };
    Some((key.to_owned(), value))
}

/// Set one field of `shot` from text.
pub(super) fn set_shot_value(
    project: &Project,
    shot: &mut Shot,
    field: &str,
    value: &str,
) -> Result<(), EditError> {
    let key = field_key(field);
    let invalid = |reason: &str| EditError::InvalidValue {
        record: shot.code.to_string(),
        field: field.trim().to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    match key.as_str() {
        "scene" => shot.scene = value.trim().to_owned(),
        "action" => shot.action = value.trim().to_owned(),
        "notes" => shot.notes = value.to_owned(),
        "workflow" => shot.workflow = value.trim().to_owned(),
        "review_note" => shot.review_note = value.trim().to_owned(),
        "characters" => {
            let mut ids = Vec::new();
            for name in list(value) {
                let found = find_character(project, &name)?;
                if !ids.contains(&found.character_id) {
                    ids.push(found.character_id.clone());
                }
            }
            shot.characters = ids;
        }
        "look" | "cinematic" => {
            // "none", "-", "없음" unlink it, as they blank a look value.
            let name = value.trim();
            shot.cinematic = if crate::prompt::is_blank(name) {
                None
            } else {
                Some(find_look(project, name)?.cinematic_id.clone())
            };
        }
        "prompt" | "prompt_override" => {
            shot.prompt_override = (!value.trim().is_empty()).then(|| value.trim().to_owned());
        }
        "frames" | "frame_count" => {
            let frames: u64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("is not a whole number of frames"))?;
            if frames == 0 {
                return Err(invalid("is not a length: a shot lasts at least one frame"));
            }
            shot.frame_count = frames;
        }
        "seconds" | "duration" => {
            let seconds: f64 = value
                .trim()
                .trim_end_matches('s')
                .parse()
                .map_err(|_| invalid("is not a number of seconds"))?;
            let frames = project
                .settings
                .frame_rate
                .seconds_to_frames(seconds)
                .map_err(|e| invalid(&e.to_string()))?;
            if frames == 0 {
                return Err(invalid("is shorter than one frame"));
            }
            shot.frame_count = frames;
        }
        "status" => {
            shot.status = value.trim().parse().map_err(|_| {
                invalid(&format!(
                    "is not a status ({})",
                    ShotStatus::ALL.map(ShotStatus::as_str).join(", ")
                ))
            })?;
        }
        "reference_images" => shot.reference_images = list(value),
        other => {
            if let Some(name) = other.strip_prefix("extra.") {
                if value.trim().is_empty() {
                    shot.extra.remove(name);
                } else {
                    shot.extra.insert(name.to_owned(), value.trim().to_owned());
                }
            } else if let Some(look_field) = LookField::from_key(other) {
                *shot.look.get_mut(look_field) = value.trim().to_owned();
            } else {
                return Err(EditError::UnknownField {
                    kind: "shot",
                    field: field.trim().to_owned(),
                    known: SHOT_FIELDS.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Sets fields of a shot from text; the undo puts back the values it had.
pub(super) fn set_shot(
    doc: &mut ProjectDoc,
    project: &Project,
    mut shot: Shot,
    values: &[(String, String)],
) -> Result<Applied, EditError> {
    let mut old = Vec::new();
    for (field, value) in values {
        let key = field_key(field);
        let before = shot_value(&shot, &key).ok_or_else(|| EditError::UnknownField {
            kind: "shot",
            field: field.trim().to_owned(),
            known: SHOT_FIELDS.to_owned(),
        })?;
        if !old.iter().any(|(k, _): &(String, String)| *k == before.0) {
            old.push(before);
        }
        set_shot_value(project, &mut shot, field, value)?;
    }
    doc.update_shot(&shot)?;
    let names: Vec<&str> = values.iter().map(|(f, _)| f.trim()).collect();
    Ok(applied(
        format!("set {} of {}", names.join(", "), shot.code),
        &shot.shot_id,
        vec![Edit::ShotSet {
            shot: shot.shot_id.clone(),
            values: old,
        }],
    ))
}

/// Adds a shot at a place in the list, with the given fields.
pub(super) fn add_shot(
    doc: &mut ProjectDoc,
    project: &Project,
    after: Option<&str>,
    values: &[(String, String)],
) -> Result<Applied, EditError> {
    let position = match after {
        Some(name) => Position::After(find_shot(project, name)?.shot_id.clone()),
        None => Position::End,
    };
    let frames = project
        .settings
        .frame_rate
        .seconds_to_frames(NEW_SHOT_SECONDS)
        .unwrap_or(48)
        .max(1);
    let mut shot = Shot::new(doc.next_code()?, frames);
    for (field, value) in values {
        set_shot_value(project, &mut shot, field, value)?;
    }
    doc.add_shots(std::slice::from_ref(&shot), &position)?;
    Ok(applied(
        format!("added {}", shot.code),
        &shot.shot_id,
        vec![Edit::ShotDelete {
            shot: shot.shot_id.clone(),
        }],
    ))
}

/// Adds a copy of a shot right after it: a new id and code, pending, with no
/// selected take or review note.
pub(super) fn duplicate_shot(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
) -> Result<Applied, EditError> {
    let original = find_shot(project, name)?;
    let mut copy = original.clone();
    copy.shot_id = new_record_id();
    copy.code = doc.next_code()?;
    copy.status = ShotStatus::Pending;
    copy.selected_take.clear();
    copy.review_note.clear();
    doc.add_shots(
        std::slice::from_ref(&copy),
        &Position::After(original.shot_id.clone()),
    )?;
    Ok(applied(
        format!("duplicated {} as {}", original.code, copy.code),
        &copy.shot_id,
        vec![Edit::ShotDelete {
            shot: copy.shot_id.clone(),
        }],
    ))
}

/// Moves a shot to another place in the list.
pub(super) fn move_shot(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
    to: &Place,
) -> Result<Applied, EditError> {
    let shot = find_shot(project, name)?;
    let index = project
        .shots
        .iter()
        .position(|s| s.shot_id == shot.shot_id)
        .unwrap_or(0);
    // Where it is now, for the undo: after the shot before it, else first.
    let back = match index.checked_sub(1).and_then(|i| project.shots.get(i)) {
        Some(before) => Place::After(before.shot_id.clone()),
        None => Place::Start,
    };
    let position = match to {
        Place::End => Position::End,
        Place::Start => match project.shots.iter().find(|s| s.shot_id != shot.shot_id) {
            Some(first) => Position::Before(first.shot_id.clone()),
            None => Position::End,
        },
        Place::Before(other) => Position::Before(find_shot(project, other)?.shot_id.clone()),
        Place::After(other) => Position::After(find_shot(project, other)?.shot_id.clone()),
    };
    doc.move_shot(&shot.shot_id, &position)?;
    Ok(applied(
        format!("moved {}", shot.code),
        &shot.shot_id,
        vec![Edit::ShotMove {
            shot: shot.shot_id.clone(),
            to: back,
        }],
    ))
}

/// Approves a shot, or asks for a revision with a note.
pub(super) fn review(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
    verdict: &Verdict,
) -> Result<Applied, EditError> {
    let mut shot = find_shot(project, name)?.clone();
    let undo = vec![Edit::ShotSet {
        shot: shot.shot_id.clone(),
        values: vec![
            ("status".into(), shot.status.as_str().to_owned()),
            ("review_note".into(), shot.review_note.clone()),
        ],
    }];
    let summary = match verdict {
        Verdict::Approve => {
            shot.status = ShotStatus::Approved;
            shot.review_note.clear();
            format!("approved {}", shot.code)
        }
        Verdict::Revise { note } => {
            if note.trim().is_empty() {
                return Err(EditError::InvalidValue {
                    record: shot.code.to_string(),
                    field: "note".into(),
                    value: note.clone(),
                    reason: "is empty: say what to change".into(),
                });
            }
            shot.status = ShotStatus::NeedsRevision;
            note.trim().clone_into(&mut shot.review_note);
            format!("{} needs revision: {}", shot.code, shot.review_note)
        }
    };
    doc.update_shot(&shot)?;
    Ok(applied(summary, &shot.shot_id, undo))
}

/// Picks the take a shot uses on the timeline.
pub(super) fn select_take(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
    take: &str,
) -> Result<Applied, EditError> {
    let mut shot = find_shot(project, name)?.clone();
    let wanted = take.trim();
    let chosen = if wanted.is_empty() {
        String::new()
    } else {
        let takes = doc.takes_for_shot(&shot.shot_id)?;
        let matching: Vec<&str> = takes
            .iter()
            .map(|t| t.take_id.as_str())
            .filter(|id| *id == wanted || (wanted.len() >= 4 && id.starts_with(wanted)))
            .collect();
        match matching.as_slice() {
            [one] => (*one).to_owned(),
            _ => {
                return Err(EditError::NoTake {
                    shot: shot.code.to_string(),
                    take: wanted.to_owned(),
                });
            }
        }
    };
    let undo = vec![Edit::TakeSelect {
        shot: shot.shot_id.clone(),
        take: shot.selected_take.clone(),
    }];
    shot.selected_take.clone_from(&chosen);
    doc.update_shot(&shot)?;
    let summary = if chosen.is_empty() {
        format!("{} shows its latest take", shot.code)
    } else {
        format!(
            "{} shows take {}",
            shot.code,
            &chosen[..chosen.len().min(8)]
        )
    };
    Ok(applied(summary, &shot.shot_id, undo))
}

/// Moves a shot to the trash (its code stays reserved; restoring brings it back).
pub(super) fn trash_shot(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
) -> Result<Applied, EditError> {
    let shot = find_shot(project, name)?;
    doc.delete_shot(&shot.shot_id)?;
    Ok(applied(
        format!("moved {} to the trash", shot.code),
        &shot.shot_id,
        vec![Edit::ShotRestore {
            shot: shot.shot_id.clone(),
        }],
    ))
}

/// Brings a shot back from the trash, named by id or code (a live shot is left as
/// it is).
pub(super) fn restore_shot(doc: &mut ProjectDoc, name: &str) -> Result<Applied, EditError> {
    let all = doc.all_shots()?;
    let (found, deleted) = all
        .iter()
        .find(|(s, _)| s.shot_id == name || s.code.to_string() == name)
        .ok_or_else(|| EditError::NoShot(name.to_owned()))?;
    if *deleted {
        doc.restore_shot(&found.shot_id)?;
    }
    Ok(applied(
        format!("restored {}", found.code),
        &found.shot_id,
        vec![Edit::ShotDelete {
            shot: found.shot_id.clone(),
        }],
    ))
}

/// Each shot's advised workflow becomes its workflow; one undo step puts every one
/// back.
pub(super) fn accept_advice(
    doc: &mut ProjectDoc,
    project: &Project,
    names: &[String],
) -> Result<Applied, EditError> {
    let shots: Vec<Shot> = if names.is_empty() {
        project.shots.clone()
    } else {
        names
            .iter()
            .map(|name| find_shot(project, name).cloned())
            .collect::<Result<_, _>>()?
    };
    let mut undo = Vec::new();
    let mut accepted = Vec::new();
    let mut changed = Vec::new();
    for mut shot in shots {
        let Some(advice) = shot.advice.as_ref().filter(|a| a.usable()) else {
            continue;
        };
        accepted.push(shot.code.to_string());
        if shot.workflow == advice.workflow {
            continue;
        }
        undo.push(Edit::ShotSet {
            shot: shot.shot_id.clone(),
            values: vec![("workflow".into(), shot.workflow.clone())],
        });
        shot.workflow.clone_from(&advice.workflow);
        changed.push(shot);
    }
    if accepted.is_empty() {
        return Err(EditError::NoAdvice(if names.is_empty() {
            "any shot".into()
        } else {
            names.join(", ")
        }));
    }
    for shot in &changed {
        doc.update_shot(shot)?;
    }
    Ok(Applied {
        summary: format!(
            "accepted the advice for {} shot{} ({} changed)",
            accepted.len(),
            if accepted.len() == 1 { "" } else { "s" },
            changed.len()
        ),
        record_id: changed.first().map(|s| s.shot_id.clone()),
        undo,
    })
}
