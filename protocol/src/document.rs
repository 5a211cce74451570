//! The project document: one Automerge document per project, and the only place in
//! reelmesh that calls Automerge (everything else goes through [`ProjectDoc`]).
//!
//! Schema (root map):
//! ```text
//! schema      Uint 1
//! project_id  Str
//! settings    { name, frame_rate, prompt_template, "header_map/<header>": field }
//! shots       { <shot_id>: { code Uint, order Str, deleted Bool? (absent: false), scene, action,
//!               characters {<character_id>: position}, cinematic Str,
//!               look_<field> Str? (the shot's own look values, present when set),
//!               prompt_override Str?, reference_images {<ref>: position},
//!               frame_count Uint, status Str, workflow, notes, extra {<header>: Str} } }
//! characters  { <character_id>: { name, appearance, ..., trigger_words {<word>: position},
//!               extra {<header>: Str} } }
//! cinematics  { <cinematic_id>: { name, camera_body, ..., notes, extra {<header>: Str} } }
//! catalogs    { <catalog>: { <value>: true } }
//! jobs        { <job_id>: { shot_id, workflow, state, priority Int, attempts, ... } }
//! takes       { <take_id>: { shot_id, job_id, blob, media, size, ... } }
//! ```
//!
//! Merge rules, and why the schema looks like this:
//! - Records live in maps keyed by a random id, every field is its own key: concurrent
//!   edits to different fields of one shot both survive; concurrent edits to the same
//!   field resolve to Automerge's deterministic winner, the same on every peer.
//! - Shot order is an order key (fractional index) per shot, not a list: Automerge has
//!   no move, and delete+insert in a list duplicates items on concurrent moves. A move
//!   writes one key; concurrent moves of one shot pick one winner.
//! - Lists of links (characters, reference images, trigger words) are maps from value
//!   to position: concurrent additions both survive, nothing duplicates.
//! - Delete is soft (`deleted: true`): a shot deleted on one side and edited on the
//!   other ends **deleted, with the edit kept inside it**; restoring it brings the edit
//!   back. Deleted shots keep their code reserved.
//! - The skeleton (the top maps) is made once by [`ProjectDoc::create`] and reaches
//!   other peers by sync; it is never created lazily (concurrent `put_object` on one
//!   key hides one side's children).
//! - Shot codes: a new shot takes `max + 1` of every code in the document. Two offline
//!   copies can both take the same number; [`ProjectDoc::normalize_codes`] (run after
//!   every merge) keeps the number on the shot with the smallest `shot_id` and gives
//!   the others fresh numbers above the maximum, in (code, shot_id) order. The rule is
//!   a pure function of the document, so every peer computes the same renumbering, and
//!   writing the same value twice concurrently is harmless.

use std::collections::{BTreeMap, HashMap};

use automerge::hydrate::{Map as HMap, Value as HValue};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue};
use fractional_index::FractionalIndex;

use crate::catalog;
use crate::model::{
    Character, CinematicOption, LookField, Project, ProjectSettings, Shot, ShotCode, ShotId,
};
use crate::prompt;
use crate::timecode::FrameRate;

pub use sync::{Changes, SyncApplied, SyncState};

use fields::{
    Field, bool_of, character_fields, cinematic_fields, shot_fields, str_of, to_hydrate, uint_of,
};

/// Settings keys that hold a remembered import header mapping start with this.
const HEADER_MAP_PREFIX: &str = "header_map/";

/// Schema version written in new documents.
pub const SCHEMA_VERSION: u64 = 1;

/// What can go wrong reading or writing the document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// Automerge refused the bytes or the operation.
    #[error("project document: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// The document does not have the shape this version expects.
    #[error("project document: {0}")]
    Schema(String),
    /// An edit named a record that is not there.
    #[error("no {kind} with id '{id}' in the project")]
    NotFound {
        /// "shot", "character", ...
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// An edit carried a value the model does not allow.
    #[error("{0}")]
    Invalid(String),
    /// A sync message from a peer was refused; the document may hold part of it in
    /// memory, so the caller reloads the saved copy.
    #[error("sync message refused: {0}")]
    Sync(String),
}

/// Where to put a shot in the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// After the last shot.
    End,
    /// Right before this shot.
    Before(ShotId),
    /// Right after this shot.
    After(ShotId),
}

/// One project's Automerge document with its typed read/write API.
#[derive(Debug)]
pub struct ProjectDoc {
    doc: AutoCommit,
    /// Built on first use (see [`index`]).
    index: Option<index::ChangeIndex>,
    /// Inside [`ProjectDoc::in_one_change`]: the messages of the edits made so far,
    /// committed together at its end.
    one_change: Option<Vec<String>>,
    /// Shots added here since the last save (a hint for how to save).
    unsaved_shots: usize,
    /// The project as last read by [`ProjectDoc::project_now`].
    read_cache: Option<view::ReadCache>,
}

/// Maps every document must have.
const TOP_MAPS: [&str; 5] = ["settings", "shots", "characters", "cinematics", "catalogs"];
/// Maps added by [3/8]: made with the skeleton of new projects; a project made
/// before them gets them on its first job (see [`ProjectDoc::add_job`]).
const JOB_MAPS: [&str; 2] = ["jobs", "takes"];

impl ProjectDoc {
    /// A new project with its skeleton, default settings and the given id.
    pub fn create(name: &str, project_id: &str) -> Result<ProjectDoc, DocError> {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "schema", SCHEMA_VERSION)?;
        doc.put(ROOT, "project_id", project_id)?;
        for key in TOP_MAPS.iter().chain(&JOB_MAPS) {
            doc.put_object(ROOT, *key, ObjType::Map)?;
        }
        let mut this = ProjectDoc {
            doc,
            index: None,
            one_change: None,
            unsaved_shots: 0,
            read_cache: None,
        };
        let settings = this.obj(ROOT, "settings")?;
        this.doc.put(&settings, "name", name)?;
        this.doc
            .put(&settings, "frame_rate", FrameRate::Fps24.as_str())?;
        this.doc
            .put(&settings, "prompt_template", prompt::DEFAULT_TEMPLATE)?;
        this.commit("create project");
        Ok(this)
    }

    /// Load a saved document (a snapshot, optionally followed by incremental chunks).
    pub fn load(bytes: &[u8]) -> Result<ProjectDoc, DocError> {
        let this = ProjectDoc {
            doc: AutoCommit::load(bytes)?,
            index: None,
            one_change: None,
            unsaved_shots: 0,
            read_cache: None,
        };
        this.check_schema()?;
        Ok(this)
    }

    /// An empty replica waiting for its first sync: it has no skeleton of its own
    /// (making one here would hide the real one when they merge).
    #[must_use]
    pub fn empty() -> ProjectDoc {
        ProjectDoc {
            doc: AutoCommit::new(),
            index: None,
            one_change: None,
            unsaved_shots: 0,
            read_cache: None,
        }
    }

    /// Load a saved replica that may still be empty (no schema check).
    pub fn load_replica(bytes: &[u8]) -> Result<ProjectDoc, DocError> {
        Ok(ProjectDoc {
            doc: AutoCommit::load(bytes)?,
            index: None,
            one_change: None,
            unsaved_shots: 0,
            read_cache: None,
        })
    }

    /// The document has the reelmesh skeleton (false for a replica still waiting for
    /// its first sync).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.check_schema().is_ok()
    }

    /// The project id written in the document, once it has one.
    #[must_use]
    pub fn project_id(&self) -> Option<String> {
        match self.doc.get(ROOT, "project_id") {
            Ok(Some((automerge::Value::Scalar(v), _))) => match v.as_ref() {
                ScalarValue::Str(s) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Apply incremental changes (from [`ProjectDoc::save_incremental`]).
    pub fn load_incremental(&mut self, bytes: &[u8]) -> Result<(), DocError> {
        self.doc.load_incremental(bytes)?;
        Ok(())
    }

    fn check_schema(&self) -> Result<(), DocError> {
        match self.doc.get(ROOT, "schema")? {
            Some((automerge::Value::Scalar(v), _))
                if matches!(v.as_ref(), ScalarValue::Uint(1)) => {}
            Some(_) => {
                return Err(DocError::Schema(
                    "unsupported schema version (this reelmesh reads 1)".into(),
                ));
            }
            None => {
                return Err(DocError::Schema(
                    "not a reelmesh project (no schema version)".into(),
                ));
            }
        }
        for key in TOP_MAPS {
            self.obj(ROOT, key)?;
        }
        Ok(())
    }

    /// The whole document, compacted.
    pub fn save(&mut self) -> Vec<u8> {
        self.unsaved_shots = 0;
        self.doc.save()
    }

    /// Changes since the last save or incremental save.
    pub fn save_incremental(&mut self) -> Vec<u8> {
        self.unsaved_shots = 0;
        self.doc.save_incremental()
    }

    /// How many shots this replica added since the last save: a store writes a
    /// whole snapshot rather than an incremental chunk after a bulk import (the
    /// chunk of 10,000 new shots is 14 times the size of the snapshot, and
    /// encoding it costs twice as long).
    #[must_use]
    pub fn unsaved_shots(&self) -> usize {
        self.unsaved_shots
    }

    /// An independent copy with a new actor id (an offline replica, in tests and tools).
    pub fn fork(&mut self) -> ProjectDoc {
        ProjectDoc {
            doc: self.doc.fork(),
            index: None,
            one_change: None,
            unsaved_shots: 0,
            read_cache: None,
        }
    }

    /// Merge another copy's changes into this one, then restore unique shot codes.
    pub fn merge(&mut self, other: &mut ProjectDoc) -> Result<(), DocError> {
        self.doc.merge(&mut other.doc)?;
        if self.absorb()? {
            self.normalize_codes()?;
        }
        Ok(())
    }

    /// How many changes the document holds (its whole history).
    pub fn change_count(&mut self) -> usize {
        self.doc.get_changes_meta(&[]).len()
    }

    /// Heads of the document, hex-encoded (equal heads = identical documents).
    pub fn heads(&mut self) -> Vec<String> {
        self.doc
            .get_heads()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Run `edit` as one change: the edits it makes are committed together at its
    /// end (their messages joined), and nothing at all when it fails. Every change
    /// costs each peer the same to apply whatever it holds, so a node that records
    /// many jobs at once makes one change, not one per record. Inside, the change
    /// index is not brought up to date (that would close the change); edits that
    /// need it (shot statuses) see the takes recorded earlier in the same change.
    pub fn in_one_change<T, E>(
        &mut self,
        edit: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DocError>,
    {
        if self.one_change.is_some() {
            return edit(self);
        }
        self.absorb()?;
        self.one_change = Some(Vec::new());
        let out = edit(self);
        let mut messages = self.one_change.take().unwrap_or_default();
        match &out {
            Ok(_) if !messages.is_empty() => {
                messages.dedup();
                self.doc.commit_with(
                    automerge::transaction::CommitOptions::default()
                        .with_message(messages.join("; ")),
                );
            }
            Ok(_) => {}
            Err(_) => {
                self.doc.rollback();
            }
        }
        out
    }

    fn commit(&mut self, message: &str) {
        if let Some(messages) = &mut self.one_change {
            messages.push(message.to_owned());
            return;
        }
        self.doc.commit_with(
            automerge::transaction::CommitOptions::default().with_message(message.to_owned()),
        );
    }

    fn obj(&self, parent: impl AsRef<ObjId>, key: &str) -> Result<ObjId, DocError> {
        match self.doc.get(parent, key)? {
            Some((automerge::Value::Object(_), id)) => Ok(id),
            _ => Err(DocError::Schema(format!("missing map '{key}'"))),
        }
    }

    fn record(&self, table: &str, kind: &'static str, record_id: &str) -> Result<ObjId, DocError> {
        let parent = self.obj(ROOT, table)?;
        self.obj(parent, record_id).map_err(|_| DocError::NotFound {
            kind,
            id: record_id.to_owned(),
        })
    }

    // ---- reading -------------------------------------------------------------------

    /// The project's name and how many live shots it has, without reading the
    /// shots (for status lines, asked often).
    pub fn name_and_shot_count(&self) -> Result<(String, usize), DocError> {
        let settings = self.obj(ROOT, "settings")?;
        let name = match self.doc.get(&settings, "name")? {
            Some((automerge::Value::Scalar(v), _)) => match v.as_ref() {
                ScalarValue::Str(s) => s.to_string(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        let shots = self.obj(ROOT, "shots")?;
        let mut live = 0;
        for item in self.doc.map_range(&shots, ..) {
            let automerge::ValueRef::Object(_) = item.value else {
                continue;
            };
            let deleted = matches!(
                self.doc.get(item.id(), "deleted")?,
                Some((automerge::Value::Scalar(v), _)) if matches!(v.as_ref(), ScalarValue::Boolean(true))
            );
            live += usize::from(!deleted);
        }
        Ok((name, live))
    }

    /// The project as it is now: settings, live shots in order, characters and
    /// cinematic options by name, catalog additions.
    pub fn project(&self) -> Result<Project, DocError> {
        self.project_at_heads(None)
    }

    /// The project as it was at a version (hex heads, as [`ProjectDoc::heads`]
    /// gives them): the base of a three-way import. `NotFound` when a head is not
    /// in this replica (yet).
    pub fn project_at(&self, heads: &[String]) -> Result<Project, DocError> {
        let mut parsed = Vec::with_capacity(heads.len());
        for head in heads {
            let hash = head
                .parse::<automerge::ChangeHash>()
                .ok()
                .filter(|hash| self.doc.get_change_by_hash(hash).is_some())
                .ok_or_else(|| DocError::NotFound {
                    kind: "version",
                    id: head.clone(),
                })?;
            parsed.push(hash);
        }
        self.project_at_heads(Some(&parsed))
    }

    fn project_at_heads(
        &self,
        heads: Option<&[automerge::ChangeHash]>,
    ) -> Result<Project, DocError> {
        self.project_with_orders(heads).map(|(project, _)| project)
    }

    /// The project at `heads` (now when `None`) and each live shot's order key.
    fn project_with_orders(
        &self,
        heads: Option<&[automerge::ChangeHash]>,
    ) -> Result<(Project, HashMap<String, String>), DocError> {
        // Only the maps a project is made of: never the jobs and takes, which grow
        // with every render (reading them here once cost 17 % of a busy mesh's CPU).
        let reader = read::Reader {
            doc: &self.doc,
            heads,
        };
        let top = |key: &str| self.obj(ROOT, key);
        let settings = reader.fields(&top("settings")?);
        let frame_text = settings.str("frame_rate");
        let frame_rate = frame_text
            .parse::<FrameRate>()
            .map_err(|e| DocError::Schema(format!("settings.frame_rate: {e}")))?;
        let mut shots: Vec<(String, Shot)> = Vec::new();
        for (shot_id, fields) in reader.table(&top("shots")?) {
            if fields.bool("deleted") {
                continue;
            }
            shots.push((fields.str("order"), reader.shot(&shot_id, &fields)));
        }
        shots.sort_by(|a, b| (&a.0, &a.1.shot_id).cmp(&(&b.0, &b.1.shot_id)));
        // Characters and looks in the trash are not part of the project (a shot that
        // still links one shows nothing of it); they come back with `restore_*`.
        let mut characters: Vec<Character> = reader
            .table(&top("characters")?)
            .into_iter()
            .filter(|(_, fields)| !fields.bool("deleted"))
            .map(|(id, fields)| reader.character(&id, &fields))
            .collect();
        characters.sort_by(|a, b| (&a.name, &a.character_id).cmp(&(&b.name, &b.character_id)));
        let mut cinematics: Vec<CinematicOption> = reader
            .table(&top("cinematics")?)
            .into_iter()
            .filter(|(_, fields)| !fields.bool("deleted"))
            .map(|(id, fields)| reader.cinematic(&id, &fields))
            .collect();
        cinematics.sort_by(|a, b| (&a.name, &a.cinematic_id).cmp(&(&b.name, &b.cinematic_id)));
        let catalog_additions = reader
            .fields(&top("catalogs")?)
            .into_entries()
            .into_iter()
            .filter_map(|(name, value)| match value {
                read::Val::Obj(obj) => {
                    let mut list = reader.keys_of(&obj);
                    list.sort();
                    Some((name.into_owned(), list))
                }
                _ => None,
            })
            .filter(|(_, list)| !list.is_empty())
            .collect();
        let name = settings.str("name");
        let prompt_template = settings.str("prompt_template");
        let header_map = settings
            .into_entries()
            .into_iter()
            .filter_map(|(key, value)| {
                let header = key.strip_prefix(HEADER_MAP_PREFIX)?;
                match value {
                    read::Val::Str(field) => Some((header.to_owned(), field.into_owned())),
                    _ => None,
                }
            })
            .collect();
        let project_id = self.project_id().unwrap_or_default();
        let orders = shots
            .iter()
            .map(|(order, shot)| (shot.shot_id.clone(), order.clone()))
            .collect();
        let project = Project {
            project_id,
            settings: ProjectSettings {
                name,
                frame_rate,
                prompt_template,
                header_map,
            },
            shots: shots.into_iter().map(|(_, shot)| shot).collect(),
            characters,
            cinematics,
            catalog_additions,
        };
        Ok((project, orders))
    }

    /// Every shot, live and trashed, with its deleted flag (trash view, code checks).
    pub fn all_shots(&self) -> Result<Vec<(Shot, bool)>, DocError> {
        let reader = read::Reader {
            doc: &self.doc,
            heads: None,
        };
        let mut all: Vec<(Shot, bool)> = reader
            .table(&self.obj(ROOT, "shots")?)
            .into_iter()
            .map(|(id, fields)| (reader.shot(&id, &fields), fields.bool("deleted")))
            .collect();
        all.sort_by_key(|(shot, _)| shot.code);
        Ok(all)
    }

    // ---- settings ------------------------------------------------------------------

    /// Rename the project.
    pub fn set_name(&mut self, name: &str) -> Result<(), DocError> {
        self.put_setting("name", name, "rename project")
    }

    /// Change the timeline frame rate (frame counts stay; durations change).
    pub fn set_frame_rate(&mut self, rate: FrameRate) -> Result<(), DocError> {
        self.put_setting("frame_rate", rate.as_str(), "set frame rate")
    }

    /// Replace the prompt template (checked first).
    pub fn set_prompt_template(&mut self, template: &str) -> Result<(), DocError> {
        prompt::check_template(template).map_err(DocError::Invalid)?;
        self.put_setting("prompt_template", template, "set prompt template")
    }

    /// Remember (or, with `None`, forget) what an import header means: `header` as
    /// the import matcher normalizes it, `field` a field name. Each header is its own
    /// key of the settings map, so mappings made on two offline copies both survive.
    pub fn set_header_mapping(
        &mut self,
        header: &str,
        field: Option<&str>,
    ) -> Result<(), DocError> {
        if header.is_empty() {
            return Err(DocError::Invalid("a header mapping needs a header".into()));
        }
        let settings = self.obj(ROOT, "settings")?;
        let key = format!("{HEADER_MAP_PREFIX}{header}");
        match field {
            Some(field) => self.doc.put(&settings, key.as_str(), field)?,
            None => self.doc.delete(&settings, key.as_str())?,
        }
        self.commit("remember import header");
        Ok(())
    }

    fn put_setting(&mut self, key: &str, value: &str, message: &str) -> Result<(), DocError> {
        let settings = self.obj(ROOT, "settings")?;
        self.doc.put(&settings, key, value)?;
        self.commit(message);
        Ok(())
    }

    /// Add a value to a catalog of this project (a set: adding twice is harmless).
    pub fn add_catalog_value(&mut self, catalog_name: &str, value: &str) -> Result<(), DocError> {
        if catalog::catalog(catalog_name).is_none() {
            return Err(DocError::Invalid(format!(
                "'{catalog_name}' is not a catalog"
            )));
        }
        let catalogs = self.obj(ROOT, "catalogs")?;
        let list = match self.doc.get(&catalogs, catalog_name)? {
            Some((automerge::Value::Object(_), id)) => id,
            _ => self.doc.put_object(&catalogs, catalog_name, ObjType::Map)?,
        };
        self.doc.put(&list, value.trim(), true)?;
        self.commit("extend catalog");
        Ok(())
    }

    /// Take a value this project added back out of a catalog (the shipped defaults
    /// stay). Removing a value that is not there is harmless.
    pub fn remove_catalog_value(
        &mut self,
        catalog_name: &str,
        value: &str,
    ) -> Result<(), DocError> {
        let catalogs = self.obj(ROOT, "catalogs")?;
        if let Some((automerge::Value::Object(_), list)) = self.doc.get(&catalogs, catalog_name)? {
            self.doc.delete(&list, value.trim())?;
            self.commit("shrink catalog");
        }
        Ok(())
    }

    // ---- shots ---------------------------------------------------------------------

    /// The code a new shot gets: one above every code in the document, trash included.
    pub fn next_code(&self) -> Result<ShotCode, DocError> {
        let max = self
            .all_shots()?
            .iter()
            .map(|(s, _)| s.code.0)
            .max()
            .unwrap_or(0);
        Ok(ShotCode(max + 1))
    }

    /// Add shots at a position, in the given order, as one change. Each shot keeps
    /// its `shot_id` and `code` (callers take codes from [`ProjectDoc::next_code`]).
    pub fn add_shots(&mut self, shots: &[Shot], position: &Position) -> Result<(), DocError> {
        let (lower, upper) = self.order_bounds(position)?;
        let shots_obj = self.obj(ROOT, "shots")?;
        for shot in shots {
            validate_shot(shot)?;
        }
        let keys = order_keys(lower.as_ref(), upper.as_ref(), shots.len())?;
        // The order is in the keys, so the records may go in in any order: by
        // descending id each new key lands first in the shots map, which Automerge
        // splices cheapest (callgrind, 10,000 shots: 6.64 G instructions against
        // 6.91 G in file order and 9.20 G by ascending id).
        let mut keyed: Vec<_> = shots.iter().zip(keys).collect();
        keyed.sort_by(|a, b| b.0.shot_id.cmp(&a.0.shot_id));
        for (shot, key) in keyed {
            let mut fields = shot_fields(shot);
            fields.push(("order", Field::Str(key.to_string())));
            self.doc.batch_create_object(
                &shots_obj,
                shot.shot_id.as_str(),
                &to_hydrate(&fields),
                false,
            )?;
        }
        self.unsaved_shots += shots.len();
        self.commit("add shots");
        Ok(())
    }

    /// Move a shot to a new position (one order key is written).
    pub fn move_shot(&mut self, shot_id: &str, position: &Position) -> Result<(), DocError> {
        let obj = self.record("shots", "shot", shot_id)?;
        if matches!(position, Position::Before(id) | Position::After(id) if id == shot_id) {
            return Ok(());
        }
        let (lower, upper) = self.order_bounds_excluding(position, Some(shot_id))?;
        let key = FractionalIndex::new(lower.as_ref(), upper.as_ref())
            .ok_or_else(|| DocError::Schema("shot order keys are not in order".into()))?;
        self.doc.put(&obj, "order", key.to_string())?;
        self.commit("move shot");
        Ok(())
    }

    /// Write a shot's fields; only fields that differ from the document are written,
    /// so a concurrent edit to another field is never overwritten.
    pub fn update_shot(&mut self, shot: &Shot) -> Result<(), DocError> {
        validate_shot(shot)?;
        let obj = self.record("shots", "shot", &shot.shot_id)?;
        self.write_fields(&obj, &shot_fields(shot))?;
        self.commit("edit shot");
        Ok(())
    }

    /// Put a raw string under a shot's key, as a peer's change might (tests of what
    /// the reader makes of values it did not write).
    #[cfg(test)]
    pub(crate) fn put_raw_shot_field(
        &mut self,
        shot_id: &str,
        key: &str,
        value: &str,
    ) -> Result<(), DocError> {
        let obj = self.record("shots", "shot", shot_id)?;
        self.doc.put(&obj, key, value)?;
        self.commit("raw field");
        Ok(())
    }

    /// Move a shot to the trash (soft delete; its code stays reserved).
    pub fn delete_shot(&mut self, shot_id: &str) -> Result<(), DocError> {
        let obj = self.record("shots", "shot", shot_id)?;
        self.doc.put(&obj, "deleted", true)?;
        self.commit("delete shot");
        Ok(())
    }

    /// Bring a trashed shot back, with any edit made to it meanwhile.
    pub fn restore_shot(&mut self, shot_id: &str) -> Result<(), DocError> {
        let obj = self.record("shots", "shot", shot_id)?;
        self.doc.put(&obj, "deleted", false)?;
        self.commit("restore shot");
        Ok(())
    }

    /// Make shot codes unique again after a merge (see the module docs for the rule).
    /// Returns the renumbered shots as (shot_id, old code, new code).
    pub fn normalize_codes(&mut self) -> Result<Vec<(ShotId, ShotCode, ShotCode)>, DocError> {
        let all = self.all_shots()?;
        let changes = resolve_codes(all.iter().map(|(s, _)| (s.shot_id.as_str(), s.code)));
        if changes.is_empty() {
            return Ok(changes);
        }
        let shots_obj = self.obj(ROOT, "shots")?;
        for (shot_id, _, new) in &changes {
            let obj = self.obj(&shots_obj, shot_id)?;
            self.doc.put(&obj, "code", new.0)?;
        }
        self.commit("renumber colliding shot codes");
        Ok(changes)
    }

    fn live_order(
        &self,
        excluding: Option<&str>,
    ) -> Result<Vec<(FractionalIndex, ShotId)>, DocError> {
        let shots = self.obj(ROOT, "shots")?;
        let mut keys = Vec::new();
        for item in self.doc.map_range(&shots, ..) {
            let shot_id = item.key.to_string();
            if Some(shot_id.as_str()) == excluding {
                continue;
            }
            let obj = self.obj(&shots, &shot_id)?;
            let deleted = matches!(self.doc.get(&obj, "deleted")?, Some((automerge::Value::Scalar(v), _)) if matches!(v.as_ref(), ScalarValue::Boolean(true)));
            if deleted {
                continue;
            }
            if let Some((automerge::Value::Scalar(v), _)) = self.doc.get(&obj, "order")?
                && let ScalarValue::Str(s) = v.as_ref()
                && let Ok(key) = FractionalIndex::from_string(s)
            {
                keys.push((key, shot_id));
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn order_bounds(
        &self,
        position: &Position,
    ) -> Result<(Option<FractionalIndex>, Option<FractionalIndex>), DocError> {
        self.order_bounds_excluding(position, None)
    }

    fn order_bounds_excluding(
        &self,
        position: &Position,
        excluding: Option<&str>,
    ) -> Result<(Option<FractionalIndex>, Option<FractionalIndex>), DocError> {
        let keys = self.live_order(excluding)?;
        let find = |id: &str| {
            keys.iter()
                .position(|(_, s)| s == id)
                .ok_or_else(|| DocError::NotFound {
                    kind: "shot",
                    id: id.to_owned(),
                })
        };
        Ok(match position {
            Position::End => (keys.last().map(|k| k.0.clone()), None),
            Position::Before(id) => {
                let at = find(id)?;
                (
                    at.checked_sub(1).map(|i| keys[i].0.clone()),
                    Some(keys[at].0.clone()),
                )
            }
            Position::After(id) => {
                let at = find(id)?;
                (
                    Some(keys[at].0.clone()),
                    keys.get(at + 1).map(|k| k.0.clone()),
                )
            }
        })
    }

    // ---- characters and cinematic options -----------------------------------------

    /// Create or update a character (field-wise, like [`ProjectDoc::update_shot`]).
    pub fn put_character(&mut self, character: &Character) -> Result<(), DocError> {
        if !(0.0..=1.0).contains(&character.lora_strength) {
            return Err(DocError::Invalid(format!(
                "character '{}': LoRA strength {} is outside 0.0..=1.0",
                character.name, character.lora_strength
            )));
        }
        self.put_record(
            "characters",
            &character.character_id,
            &character_fields(character),
            "edit character",
        )
    }

    /// Create or update a cinematic option.
    pub fn put_cinematic(&mut self, option: &CinematicOption) -> Result<(), DocError> {
        self.put_record(
            "cinematics",
            &option.cinematic_id,
            &cinematic_fields(option),
            "edit cinematic option",
        )
    }

    /// Move a character or a look (`table`: `characters` or `cinematics`) to the
    /// trash, or (`deleted` false) bring it back with any edit made meanwhile.
    pub fn set_record_deleted(
        &mut self,
        table: &str,
        record_id: &str,
        deleted: bool,
    ) -> Result<(), DocError> {
        let kind = match table {
            "characters" => "character",
            "cinematics" => "cinematic option",
            other => return Err(DocError::Invalid(format!("'{other}' has no trash"))),
        };
        let obj = self.record(table, kind, record_id)?;
        self.doc.put(&obj, "deleted", deleted)?;
        self.commit(if deleted {
            "delete record"
        } else {
            "restore record"
        });
        Ok(())
    }

    fn put_record(
        &mut self,
        table: &str,
        record_id: &str,
        fields: &[(&str, Field)],
        message: &str,
    ) -> Result<(), DocError> {
        let parent = self.obj(ROOT, table)?;
        match self.doc.get(&parent, record_id)? {
            Some((automerge::Value::Object(_), obj)) => self.write_fields(&obj, fields)?,
            _ => {
                self.doc
                    .batch_create_object(&parent, record_id, &to_hydrate(fields), false)?;
            }
        }
        self.commit(message);
        Ok(())
    }

    fn write_fields(&mut self, obj: &ObjId, fields: &[(&str, Field)]) -> Result<(), DocError> {
        let HValue::Map(current) = self.doc.hydrate(obj, None)? else {
            return Err(DocError::Schema("record is not a map".into()));
        };
        for (key, field) in fields {
            let now = current.get(key);
            match field {
                Field::Set(items) | Field::Dict(items) => {
                    let sub = match self.doc.get(obj, *key)? {
                        Some((automerge::Value::Object(_), id)) => id,
                        // A record made before this field existed: make its map only
                        // when there is something to put in it (two peers making it
                        // at once would hide one side's entries).
                        _ if items.is_empty() => continue,
                        _ => self.doc.put_object(obj, *key, ObjType::Map)?,
                    };
                    let existing: HashMap<String, HValue> = match now {
                        Some(HValue::Map(m)) => m
                            .iter()
                            .map(|(k, v)| (k.clone(), v.value.clone()))
                            .collect(),
                        _ => HashMap::new(),
                    };
                    for name in existing.keys() {
                        if !items.iter().any(|(k, _)| k == name) {
                            self.doc.delete(&sub, name.as_str())?;
                        }
                    }
                    for (name, value) in items {
                        if existing.get(name) != Some(&HValue::Scalar(value.clone())) {
                            self.doc.put(&sub, name.as_str(), value.clone())?;
                        }
                    }
                }
                Field::Absent => {
                    if now.is_some() {
                        self.doc.delete(obj, *key)?;
                    }
                }
                Field::Text(text) if text.is_empty() => {
                    let blank =
                        matches!(now, Some(HValue::Scalar(ScalarValue::Str(s))) if s.is_empty());
                    if now.is_some() && !blank {
                        self.doc.delete(obj, *key)?;
                    }
                }
                scalar => {
                    let value = scalar.scalar();
                    if now != Some(&HValue::Scalar(value.clone())) {
                        self.doc.put(obj, *key, value)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `n` order keys in increasing order between `lower` and `upper` (either may be
/// open). They are made by halving the gap, so a batch of 10,000 shots gets keys of
/// about 15 bytes; taking each after the last, as one shot at a time does, grew
/// them by a byte every 32 shots (160 bytes by the 10,000th).
fn order_keys(
    lower: Option<&FractionalIndex>,
    upper: Option<&FractionalIndex>,
    n: usize,
) -> Result<Vec<FractionalIndex>, DocError> {
    fn fill(
        lower: Option<&FractionalIndex>,
        upper: Option<&FractionalIndex>,
        n: usize,
        out: &mut Vec<FractionalIndex>,
    ) -> Result<(), DocError> {
        if n == 0 {
            return Ok(());
        }
        let mid = FractionalIndex::new(lower, upper)
            .ok_or_else(|| DocError::Schema("shot order keys are not in order".into()))?;
        let left = n / 2;
        fill(lower, Some(&mid), left, out)?;
        out.push(mid.clone());
        fill(Some(&mid), upper, n - left - 1, out)
    }
    let mut keys = Vec::with_capacity(n);
    fill(lower, upper, n, &mut keys)?;
    Ok(keys)
}

/// The renumbering that makes codes unique: in each group sharing a number the
/// smallest `shot_id` keeps it; the rest get `max + 1, max + 2, ...` in (code, id) order.
#[must_use]
pub fn resolve_codes<'a>(
    shots: impl Iterator<Item = (&'a str, ShotCode)>,
) -> Vec<(ShotId, ShotCode, ShotCode)> {
    let mut by_code: BTreeMap<ShotCode, Vec<&str>> = BTreeMap::new();
    for (shot_id, code) in shots {
        by_code.entry(code).or_default().push(shot_id);
    }
    let mut next = by_code.keys().next_back().map_or(1, |c| c.0 + 1);
    let mut changes = Vec::new();
    for (code, mut ids) in by_code {
        ids.sort_unstable();
        for shot_id in ids.into_iter().skip(1) {
            changes.push((shot_id.to_owned(), code, ShotCode(next)));
            next += 1;
        }
    }
    changes
}

fn validate_shot(shot: &Shot) -> Result<(), DocError> {
    if shot.shot_id.is_empty() {
        return Err(DocError::Invalid("a shot needs a non-empty shot_id".into()));
    }
    if shot.code.0 == 0 {
        return Err(DocError::Invalid(format!(
            "shot {}: code 0 is not allowed",
            shot.shot_id
        )));
    }
    Ok(())
}

mod fields;
mod index;
mod jobs;
mod read;
mod sync;
mod view;

#[cfg(test)]
mod tests;
