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
    /// Take the advised workflow as each shot's workflow (shots without usable
    /// advice are left as they are; an empty list means every shot with advice).
    AdviceAccept {
        /// The shots (codes or ids); empty: all.
        #[serde(default)]
        shots: Vec<String>,
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
    /// Nothing to accept.
    #[error(
        "no usable advice to accept for {0}: run `reelmesh advise` first (a shot whose advice is an error keeps its workflow)"
    )]
    NoAdvice(String),
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
    let project = doc.project_now()?;
    match edit {
        Edit::ShotAdd { after, values } => add_shot(doc, &project, after.as_deref(), values),
        Edit::ShotSet { shot, values } => {
            let shot = find_shot(&project, shot)?.clone();
            set_shot(doc, &project, shot, values)
        }
        Edit::ShotDelete { shot } => trash_shot(doc, &project, shot),
        Edit::ShotRestore { shot } => restore_shot(doc, shot),
        Edit::ShotMove { shot, to } => move_shot(doc, &project, shot, to),
        Edit::ShotDuplicate { shot } => duplicate_shot(doc, &project, shot),
        Edit::CharacterAdd { name, values } => add_character(doc, &project, name, values),
        Edit::CharacterSet { character, values } => {
            let found = find_character(&project, character)?.clone();
            set_character(doc, &project, found, values)
        }
        Edit::CharacterDelete { character } => trash_character(doc, &project, character),
        Edit::CharacterRestore { character } => restore_character(doc, character),
        Edit::LookAdd { name, values } => add_look(doc, &project, name, values),
        Edit::LookSet { look, values } => {
            let found = find_look(&project, look)?.clone();
            set_look(doc, &project, found, values)
        }
        Edit::LookDelete { look } => trash_look(doc, &project, look),
        Edit::LookRestore { look } => restore_look(doc, look),
        Edit::TemplateSet { template } => set_template(doc, &project, template),
        Edit::Review { shot, verdict } => review(doc, &project, shot, verdict),
        Edit::TakeSelect { shot, take } => select_take(doc, &project, shot, take),
        Edit::AdviceAccept { shots } => accept_advice(doc, &project, shots),
        Edit::CatalogAdd { catalog, value } => add_to_catalog(doc, &project, catalog, value),
        Edit::CatalogRemove { catalog, value } => {
            remove_from_catalog(doc, &project, catalog, value)
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

mod records;
mod shots;

use records::{
    add_character, add_look, add_to_catalog, remove_from_catalog, restore_character, restore_look,
    set_character, set_look, set_template, trash_character, trash_look,
};
use shots::{
    accept_advice, add_shot, duplicate_shot, move_shot, restore_shot, review, select_take,
    set_shot, trash_shot,
};

#[cfg(test)]
mod tests;
