//! Edits of a project as its clients ask for them: the editor's buttons and cells,
//! `reelmesh shot|character|look|template|review|take|catalog`, and scripts.
//!
//! An [`Edit`] names records as people do (a shot by its code `SHT-00003`, its
//! number `3` or its id; a character or a look by its name or id) and sets fields
//! by name from text (`action=비가 내린다`, `seconds=2.5`, `characters=민지, 준`), so
//! every client sends the same thing. [`apply`] checks everything first and writes
//! nothing when a value is wrong: the error names the record, the field and why.
//!
//! Every applied edit comes with the edits that undo it ([`Applied::undo`]): new
//! edits that put back what this one changed, field by field. Undo is a change like
//! any other, so it merges with what others did meanwhile (a field another client
//! changed since is put back too, as the last word of this client; records it
//! added go to the trash, never away).

use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::document::{DocError, Position, ProjectDoc};
use crate::model::{
    Character, CinematicOption, LookField, Project, Shot, ShotCode, ShotStatus, new_record_id,
};

/// Seconds a new shot lasts when the edit gives no length.
pub const NEW_SHOT_SECONDS: f64 = 2.0;

/// One edit of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Edit {
    /// A new shot with these values, at the end or right after `after`.
    ShotAdd {
        /// The shot it goes after (default: the end).
        #[serde(default)]
        after: Option<String>,
        /// Field values (see [`SHOT_FIELDS`]).
        #[serde(default)]
        values: Vec<(String, String)>,
    },
    /// Set fields of a shot.
    ShotSet {
        /// The shot.
        shot: String,
        /// Field values.
        values: Vec<(String, String)>,
    },
    /// Move a shot to the trash (its code stays taken).
    ShotDelete {
        /// The shot.
        shot: String,
    },
    /// Bring a shot back from the trash.
    ShotRestore {
        /// The shot.
        shot: String,
    },
    /// Move a shot in the timeline.
    ShotMove {
        /// The shot.
        shot: String,
        /// Where to.
        to: Place,
    },
    /// A copy of a shot right after it, with the next code (no takes, pending).
    ShotDuplicate {
        /// The shot.
        shot: String,
    },
    /// A new character of the bible.
    CharacterAdd {
        /// Its name (unique).
        name: String,
        /// Field values (see [`CHARACTER_FIELDS`]).
        #[serde(default)]
        values: Vec<(String, String)>,
    },
    /// Set fields of a character.
    CharacterSet {
        /// The character (name or id).
        character: String,
        /// Field values.
        values: Vec<(String, String)>,
    },
    /// Move a character to the trash.
    CharacterDelete {
        /// The character (name or id).
        character: String,
    },
    /// Bring a character back from the trash.
    CharacterRestore {
        /// The character's id.
        character: String,
    },
    /// A new look (cinematic option).
    LookAdd {
        /// Its name (unique).
        name: String,
        /// Field values (see [`LOOK_FIELDS`]).
        #[serde(default)]
        values: Vec<(String, String)>,
    },
    /// Set fields of a look.
    LookSet {
        /// The look (name or id).
        look: String,
        /// Field values.
        values: Vec<(String, String)>,
    },
    /// Move a look to the trash.
    LookDelete {
        /// The look (name or id).
        look: String,
    },
    /// Bring a look back from the trash.
    LookRestore {
        /// The look's id.
        look: String,
    },
    /// The project's prompt template.
    TemplateSet {
        /// The template (`{style} image of {subject}, ...`).
        template: String,
    },
    /// A review of a shot: approve it, or ask for a revision with a note.
    Review {
        /// The shot.
        shot: String,
        /// The verdict.
        verdict: Verdict,
    },
    /// The take a shot shows on the storyboard.
    TakeSelect {
        /// The shot.
        shot: String,
        /// A take of that shot (id or unique prefix); empty: the latest.
        take: String,
    },
    /// A value this project adds to a catalog (a dropdown of look values).
    CatalogAdd {
        /// The catalog (`camera_body`, `lens_type`, ...).
        catalog: String,
        /// The value.
        value: String,
    },
    /// Take a value this project added back out of a catalog.
    CatalogRemove {
        /// The catalog.
        catalog: String,
        /// The value.
        value: String,
    },
}

/// Where a shot goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "place", content = "shot", rename_all = "snake_case")]
pub enum Place {
    /// First.
    Start,
    /// Last.
    End,
    /// Right before this shot.
    Before(String),
    /// Right after this shot.
    After(String),
}

/// A review's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Signed off.
    Approve,
    /// Needs another take: what to change.
    Revise {
        /// The note.
        note: String,
    },
}

/// What an applied edit did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// In words, for the CLI and the editor's status line ("added SHT-00006").
    pub summary: String,
    /// The record it made or changed (a shot, character or look id), if one.
    #[serde(default)]
    pub record_id: Option<String>,
    /// The edits that undo it, in order.
    pub undo: Vec<Edit>,
}

/// Why an edit was refused (nothing was written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// No such shot.
    #[error("no shot '{0}' in the project (give a code like SHT-00003, a number or a shot id)")]
    NoShot(String),
    /// No such character.
    #[error("no character '{0}' in the project")]
    NoCharacter(String),
    /// No such look.
    #[error("no look '{0}' in the project")]
    NoLook(String),
    /// No such take of the shot.
    #[error("{shot} has no take '{take}'")]
    NoTake {
        /// The shot's code.
        shot: String,
        /// The take asked for.
        take: String,
    },
    /// A name another record has.
    #[error("a {kind} named '{name}' exists already")]
    NameTaken {
        /// `character` or `look`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A field the record does not have.
    #[error("a {kind} has no field '{field}' (fields: {known})")]
    UnknownField {
        /// `shot`, `character` or `look`.
        kind: &'static str,
        /// The field asked for.
        field: String,
        /// The fields it has.
        known: String,
    },
    /// A value the field does not take.
    #[error("{record}, {field}: {value:?} {reason}")]
    InvalidValue {
        /// The record (`SHT-00003`, a character's name).
        record: String,
        /// The field.
        field: String,
        /// The value given.
        value: String,
        /// Why not.
        reason: String,
    },
    /// The document refused the write.
    #[error("the project document: {0}")]
    Doc(#[from] DocError),
}

/// The fields of a shot an edit sets, by name (case, spaces and `-` do not matter).
pub const SHOT_FIELDS: &str = "scene, action, characters, look, prompt, frames, seconds, \
     status, workflow, notes, review_note, reference_images, the look fields (camera_body, \
     focal_length, lens_type, film_stock, style, look_and_feel, lighting_source, \
     lighting_style, environment, atmosphere, lens_filter, aspect_ratio), extra.NAME";
/// The fields of a character.
pub const CHARACTER_FIELDS: &str = "name, appearance, reference_sheet, lora, lora_strength, \
     trigger_words, clothing_options, default_clothing, style_keywords, extra.NAME";
/// The fields of a look.
pub const LOOK_FIELDS: &str = "name, notes, camera_body, focal_length, lens_type, film_stock, \
     style, look_and_feel, lighting_source, lighting_style, environment, atmosphere, \
     lens_filter, aspect_ratio, extra.NAME";

/// Apply an edit to a project's document. Everything is checked before anything is
/// written; a refused edit writes nothing.
///
/// # Errors
/// [`EditError`] naming the record, the field and why.
pub fn apply(doc: &mut ProjectDoc, edit: &Edit) -> Result<Applied, EditError> {
    let project = doc.project()?;
    match edit {
        Edit::ShotAdd { after, values } => add_shot(doc, &project, after.as_deref(), values),
        Edit::ShotSet { shot, values } => {
            let shot = find_shot(&project, shot)?.clone();
            set_shot(doc, &project, shot, values)
        }
        Edit::ShotDelete { shot } => {
            let shot = find_shot(&project, shot)?;
            doc.delete_shot(&shot.shot_id)?;
            Ok(applied(
                format!("moved {} to the trash", shot.code),
                &shot.shot_id,
                vec![Edit::ShotRestore {
                    shot: shot.shot_id.clone(),
                }],
            ))
        }
        Edit::ShotRestore { shot } => {
            let all = doc.all_shots()?;
            let (found, deleted) = all
                .iter()
                .find(|(s, _)| s.shot_id == *shot || s.code.to_string() == *shot)
                .ok_or_else(|| EditError::NoShot(shot.clone()))?;
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
        Edit::ShotMove { shot, to } => move_shot(doc, &project, shot, to),
        Edit::ShotDuplicate { shot } => duplicate_shot(doc, &project, shot),
        Edit::CharacterAdd { name, values } => add_character(doc, &project, name, values),
        Edit::CharacterSet { character, values } => {
            let found = find_character(&project, character)?.clone();
            set_character(doc, &project, found, values)
        }
        Edit::CharacterDelete { character } => {
            let found = find_character(&project, character)?;
            doc.set_record_deleted("characters", &found.character_id, true)?;
            Ok(applied(
                format!("moved character '{}' to the trash", found.name),
                &found.character_id,
                vec![Edit::CharacterRestore {
                    character: found.character_id.clone(),
                }],
            ))
        }
        Edit::CharacterRestore { character } => {
            doc.set_record_deleted("characters", character, false)
                .map_err(|_| EditError::NoCharacter(character.clone()))?;
            Ok(applied(
                "restored a character".into(),
                character,
                vec![Edit::CharacterDelete {
                    character: character.clone(),
                }],
            ))
        }
        Edit::LookAdd { name, values } => add_look(doc, &project, name, values),
        Edit::LookSet { look, values } => {
            let found = find_look(&project, look)?.clone();
            set_look(doc, &project, found, values)
        }
        Edit::LookDelete { look } => {
            let found = find_look(&project, look)?;
            doc.set_record_deleted("cinematics", &found.cinematic_id, true)?;
            Ok(applied(
                format!("moved look '{}' to the trash", found.name),
                &found.cinematic_id,
                vec![Edit::LookRestore {
                    look: found.cinematic_id.clone(),
                }],
            ))
        }
        Edit::LookRestore { look } => {
            doc.set_record_deleted("cinematics", look, false)
                .map_err(|_| EditError::NoLook(look.clone()))?;
            Ok(applied(
                "restored a look".into(),
                look,
                vec![Edit::LookDelete { look: look.clone() }],
            ))
        }
        Edit::TemplateSet { template } => {
            crate::prompt::check_template(template).map_err(|reason| EditError::InvalidValue {
                record: "the project".into(),
                field: "template".into(),
                value: template.clone(),
                reason,
            })?;
            let old = project.settings.prompt_template.clone();
            doc.set_prompt_template(template)?;
            Ok(Applied {
                summary: "set the prompt template".into(),
                record_id: None,
                undo: vec![Edit::TemplateSet { template: old }],
            })
        }
        Edit::Review { shot, verdict } => review(doc, &project, shot, verdict),
        Edit::TakeSelect { shot, take } => select_take(doc, &project, shot, take),
        Edit::CatalogAdd { catalog, value } => add_to_catalog(doc, &project, catalog, value),
        Edit::CatalogRemove { catalog, value } => {
            let added = project
                .catalog_additions
                .get(catalog)
                .is_some_and(|list| list.iter().any(|v| v == value.trim()));
            doc.remove_catalog_value(catalog, value)?;
            Ok(Applied {
                summary: format!("took '{}' out of catalog {catalog}", value.trim()),
                record_id: None,
                undo: if added {
                    vec![Edit::CatalogAdd {
                        catalog: catalog.clone(),
                        value: value.clone(),
                    }]
                } else {
                    Vec::new()
                },
            })
        }
    }
}

fn applied(summary: String, record_id: &str, undo: Vec<Edit>) -> Applied {
    Applied {
        summary,
        record_id: Some(record_id.to_owned()),
        undo,
    }
}

/// A field name as written by a person: lower case, `-` and spaces as `_`.
fn field_key(field: &str) -> String {
    field
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == '-' || c == ' ' { '_' } else { c })
        .collect()
}

/// A comma-separated list, each item trimmed, empty ones left out.
fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

// ---- finding records -------------------------------------------------------------

/// A live shot by code (`SHT-00003`), number (`3`) or id.
///
/// # Errors
/// [`EditError::NoShot`].
pub fn find_shot<'p>(project: &'p Project, name: &str) -> Result<&'p Shot, EditError> {
    let wanted = name.trim();
    let code: Option<u64> = wanted
        .parse::<ShotCode>()
        .ok()
        .map(|c| c.0)
        .or_else(|| wanted.parse().ok());
    project
        .shots
        .iter()
        .find(|s| s.shot_id == wanted || Some(s.code.0) == code)
        .ok_or_else(|| EditError::NoShot(wanted.to_owned()))
}

/// A live character by name (case does not matter) or id.
///
/// # Errors
/// [`EditError::NoCharacter`].
pub fn find_character<'p>(project: &'p Project, name: &str) -> Result<&'p Character, EditError> {
    let wanted = name.trim();
    project
        .characters
        .iter()
        .find(|c| c.character_id == wanted)
        .or_else(|| {
            project
                .characters
                .iter()
                .find(|c| c.name.to_lowercase() == wanted.to_lowercase())
        })
        .ok_or_else(|| EditError::NoCharacter(wanted.to_owned()))
}

/// A live look by name (case does not matter) or id.
///
/// # Errors
/// [`EditError::NoLook`].
pub fn find_look<'p>(project: &'p Project, name: &str) -> Result<&'p CinematicOption, EditError> {
    let wanted = name.trim();
    project
        .cinematics
        .iter()
        .find(|c| c.cinematic_id == wanted)
        .or_else(|| {
            project
                .cinematics
                .iter()
                .find(|c| c.name.to_lowercase() == wanted.to_lowercase())
        })
        .ok_or_else(|| EditError::NoLook(wanted.to_owned()))
}

// ---- shots -------------------------------------------------------------------------

/// A shot's field as text, as [`set_shot_value`] takes it back (characters and the
/// look by id, the length in frames).
fn shot_value(shot: &Shot, key: &str) -> Option<(String, String)> {
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
fn set_shot_value(
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

fn set_shot(
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

fn add_shot(
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

fn duplicate_shot(
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

fn move_shot(
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

fn review(
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

fn select_take(
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

// ---- characters and looks ---------------------------------------------------------

fn character_value(character: &Character, key: &str) -> Option<(String, String)> {
    let value = match key {
        "name" => character.name.clone(),
        "appearance" => character.appearance.clone(),
        "reference_sheet" => character.reference_sheet.clone(),
        "lora" | "lora_path" => return Some(("lora".into(), character.lora_path.clone())),
        "lora_strength" => character.lora_strength.to_string(),
        "trigger_words" => character.trigger_words.join(", "),
        "clothing_options" => character.clothing_options.join(", "),
        "default_clothing" => character.default_clothing.clone(),
        "style_keywords" => character.style_keywords.join(", "),
        other => character
            .extra
            .get(other.strip_prefix("extra.")?)
            .cloned()
            .unwrap_or_default(),
    };
    Some((key.to_owned(), value))
}

fn set_character_value(
    project: &Project,
    character: &mut Character,
    field: &str,
    value: &str,
) -> Result<(), EditError> {
    let key = field_key(field);
    let invalid = |reason: &str| EditError::InvalidValue {
        record: format!("character '{}'", character.name),
        field: field.trim().to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    match key.as_str() {
        "name" => {
            let name = value.trim();
            if name.is_empty() {
                return Err(invalid("is empty: a character needs a name"));
            }
            if project.characters.iter().any(|c| {
                c.character_id != character.character_id
                    && c.name.to_lowercase() == name.to_lowercase()
            }) {
                return Err(EditError::NameTaken {
                    kind: "character",
                    name: name.to_owned(),
                });
            }
            name.clone_into(&mut character.name);
        }
        "appearance" => character.appearance = value.trim().to_owned(),
        "reference_sheet" => character.reference_sheet = value.trim().to_owned(),
        "lora" | "lora_path" => character.lora_path = value.trim().to_owned(),
        "lora_strength" => {
            let strength: f64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("is not a number"))?;
            if !(0.0..=1.0).contains(&strength) {
                return Err(invalid("is outside 0.0..=1.0"));
            }
            character.lora_strength = strength;
        }
        "trigger_words" => character.trigger_words = list(value),
        "clothing_options" => character.clothing_options = list(value),
        "default_clothing" => character.default_clothing = value.trim().to_owned(),
        "style_keywords" => character.style_keywords = list(value),
        other => match other.strip_prefix("extra.") {
            Some(name) if value.trim().is_empty() => {
                character.extra.remove(name);
            }
            Some(name) => {
                character
                    .extra
                    .insert(name.to_owned(), value.trim().to_owned());
            }
            None => {
                return Err(EditError::UnknownField {
                    kind: "character",
                    field: field.trim().to_owned(),
                    known: CHARACTER_FIELDS.to_owned(),
                });
            }
        },
    }
    Ok(())
}

fn add_character(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
    values: &[(String, String)],
) -> Result<Applied, EditError> {
    let mut character = Character::new(name.trim());
    set_character_value(project, &mut character, "name", name)?;
    for (field, value) in values {
        set_character_value(project, &mut character, field, value)?;
    }
    doc.put_character(&character)?;
    Ok(applied(
        format!("added character '{}'", character.name),
        &character.character_id,
        vec![Edit::CharacterDelete {
            character: character.character_id.clone(),
        }],
    ))
}

fn set_character(
    doc: &mut ProjectDoc,
    project: &Project,
    mut character: Character,
    values: &[(String, String)],
) -> Result<Applied, EditError> {
    let mut old = Vec::new();
    for (field, value) in values {
        let key = field_key(field);
        let before = character_value(&character, &key).ok_or_else(|| EditError::UnknownField {
            kind: "character",
            field: field.trim().to_owned(),
            known: CHARACTER_FIELDS.to_owned(),
        })?;
        if !old.iter().any(|(k, _): &(String, String)| *k == before.0) {
            old.push(before);
        }
        set_character_value(project, &mut character, field, value)?;
    }
    doc.put_character(&character)?;
    Ok(applied(
        format!("edited character '{}'", character.name),
        &character.character_id,
        vec![Edit::CharacterSet {
            character: character.character_id.clone(),
            values: old,
        }],
    ))
}

fn look_value(look: &CinematicOption, key: &str) -> Option<(String, String)> {
    let value = match key {
        "name" => look.name.clone(),
        "notes" => look.notes.clone(),
        other => match other.strip_prefix("extra.") {
            Some(name) => look.extra.get(name).cloned().unwrap_or_default(),
            None => look.look.get(LookField::from_key(other)?).to_owned(),
        },
    };
    Some((key.to_owned(), value))
}

fn set_look_value(
    project: &Project,
    look: &mut CinematicOption,
    field: &str,
    value: &str,
) -> Result<(), EditError> {
    let key = field_key(field);
    match key.as_str() {
        "name" => {
            let name = value.trim();
            if name.is_empty() {
                return Err(EditError::InvalidValue {
                    record: format!("look '{}'", look.name),
                    field: field.trim().to_owned(),
                    value: value.to_owned(),
                    reason: "is empty: a look needs a name".into(),
                });
            }
            if project.cinematics.iter().any(|c| {
                c.cinematic_id != look.cinematic_id && c.name.to_lowercase() == name.to_lowercase()
            }) {
                return Err(EditError::NameTaken {
                    kind: "look",
                    name: name.to_owned(),
                });
            }
            name.clone_into(&mut look.name);
        }
        "notes" => look.notes = value.to_owned(),
        other => {
            if let Some(name) = other.strip_prefix("extra.") {
                if value.trim().is_empty() {
                    look.extra.remove(name);
                } else {
                    look.extra.insert(name.to_owned(), value.trim().to_owned());
                }
            } else if let Some(look_field) = LookField::from_key(other) {
                *look.look.get_mut(look_field) = value.trim().to_owned();
            } else {
                return Err(EditError::UnknownField {
                    kind: "look",
                    field: field.trim().to_owned(),
                    known: LOOK_FIELDS.to_owned(),
                });
            }
        }
    }
    Ok(())
}

fn add_look(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
    values: &[(String, String)],
) -> Result<Applied, EditError> {
    let mut look = CinematicOption::new(name.trim());
    set_look_value(project, &mut look, "name", name)?;
    for (field, value) in values {
        set_look_value(project, &mut look, field, value)?;
    }
    doc.put_cinematic(&look)?;
    Ok(applied(
        format!("added look '{}'", look.name),
        &look.cinematic_id,
        vec![Edit::LookDelete {
            look: look.cinematic_id.clone(),
        }],
    ))
}

fn set_look(
    doc: &mut ProjectDoc,
    project: &Project,
    mut look: CinematicOption,
    values: &[(String, String)],
) -> Result<Applied, EditError> {
    let mut old = Vec::new();
    for (field, value) in values {
        let key = field_key(field);
        let before = look_value(&look, &key).ok_or_else(|| EditError::UnknownField {
            kind: "look",
            field: field.trim().to_owned(),
            known: LOOK_FIELDS.to_owned(),
        })?;
        if !old.iter().any(|(k, _): &(String, String)| *k == before.0) {
            old.push(before);
        }
        set_look_value(project, &mut look, field, value)?;
    }
    doc.put_cinematic(&look)?;
    Ok(applied(
        format!("edited look '{}'", look.name),
        &look.cinematic_id,
        vec![Edit::LookSet {
            look: look.cinematic_id.clone(),
            values: old,
        }],
    ))
}

fn add_to_catalog(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
    value: &str,
) -> Result<Applied, EditError> {
    let Some(found) = catalog::catalog(name) else {
        let names: Vec<&str> = catalog::CATALOGS.iter().map(|c| c.name).collect();
        return Err(EditError::InvalidValue {
            record: "the catalogs".into(),
            field: "catalog".into(),
            value: name.to_owned(),
            reason: format!("is not a catalog ({})", names.join(", ")),
        });
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(EditError::InvalidValue {
            record: format!("catalog {name}"),
            field: "value".into(),
            value: value.to_owned(),
            reason: "is empty".into(),
        });
    }
    let known = found.defaults.contains(&value)
        || project
            .catalog_additions
            .get(name)
            .is_some_and(|list| list.iter().any(|v| v == value));
    if known {
        return Ok(Applied {
            summary: format!("catalog {name} has '{value}' already"),
            record_id: None,
            undo: Vec::new(),
        });
    }
    doc.add_catalog_value(name, value)?;
    Ok(Applied {
        summary: format!("added '{value}' to catalog {name}"),
        record_id: None,
        undo: vec![Edit::CatalogRemove {
            catalog: name.to_owned(),
            value: value.to_owned(),
        }],
    })
}

/// The values a shot edit names, as `field=value` pairs parsed from the CLI's
/// `--set` arguments.
///
/// # Errors
/// The argument without `=`, in words.
pub fn parse_assignments(args: &[String]) -> Result<Vec<(String, String)>, String> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some((field, value)) if !field.trim().is_empty() => {
                Ok((field.trim().to_owned(), value.to_owned()))
            }
            _ => Err(format!("'{arg}' is not FIELD=VALUE")),
        })
        .collect()
}

#[cfg(test)]
#[path = "edit_tests.rs"]
mod tests;
