//! Reading records out of the document without hydrating it.
//!
//! Automerge's `hydrate` builds a hash map per object with conflict information and
//! owned keys; reading 10,000 shots that way cost half a second. Here each record is
//! read with one `map_range` walk into a small sorted list of its keys (the walk
//! yields them in key order), nested sets and dictionaries with one more walk each:
//! the same values (each key's winning value), a fraction of the work.

use std::borrow::Cow;
use std::collections::BTreeMap;

use automerge::{AutoCommit, ChangeHash, ObjId, ReadDoc, ScalarValueRef, ValueRef};

use crate::model::{Character, CinematicOption, Look, LookField, Shot, ShotCode, ShotStatus};

use super::fields::SHOT_LOOK_KEYS;

/// One key's winning value (text borrowed from the document).
pub(super) enum Val<'a> {
    Str(Cow<'a, str>),
    Uint(u64),
    Int(i64),
    F64(f64),
    Bool(bool),
    Obj(ObjId),
    Other,
}

/// A record's keys and values, sorted by key, borrowed from the document.
pub(super) struct Fields<'a>(Vec<(Cow<'a, str>, Val<'a>)>);

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&Val<'a>> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// The text at `key` ("" when absent or not text).
    pub(super) fn str(&self, key: &str) -> String {
        match self.get(key) {
            Some(Val::Str(s)) => s.to_string(),
            _ => String::new(),
        }
    }

    /// Whether `key` is present.
    pub(super) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn uint(&self, key: &str) -> u64 {
        match self.get(key) {
            Some(Val::Uint(n)) => *n,
            Some(Val::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        }
    }

    pub(super) fn bool(&self, key: &str) -> bool {
        matches!(self.get(key), Some(Val::Bool(true)))
    }

    fn f64(&self, key: &str) -> Option<f64> {
        match self.get(key) {
            Some(Val::F64(x)) => Some(*x),
            _ => None,
        }
    }

    fn obj(&self, key: &str) -> Option<&ObjId> {
        match self.get(key) {
            Some(Val::Obj(id)) => Some(id),
            _ => None,
        }
    }

    /// The entries of the map, in key order.
    pub(super) fn into_entries(self) -> Vec<(Cow<'a, str>, Val<'a>)> {
        self.0
    }
}

/// Reads the document now, or as it was at `heads`.
pub(super) struct Reader<'a> {
    pub(super) doc: &'a AutoCommit,
    pub(super) heads: Option<&'a [ChangeHash]>,
}

impl<'d> Reader<'d> {
    /// Every key of the map `obj` with its winning value.
    pub(super) fn fields(&self, obj: &ObjId) -> Fields<'d> {
        let range = match self.heads {
            Some(heads) => self.doc.map_range_at(obj, .., heads),
            None => self.doc.map_range(obj, ..),
        };
        let mut entries: Vec<(Cow<'d, str>, Val<'d>)> = range
            .map(|item| {
                let value = match item.value {
                    ValueRef::Object(_) => Val::Obj(item.id()),
                    ValueRef::Scalar(scalar) => match scalar {
                        ScalarValueRef::Str(s) => Val::Str(s),
                        ScalarValueRef::Uint(n) => Val::Uint(n),
                        ScalarValueRef::Int(n) => Val::Int(n),
                        ScalarValueRef::F64(x) => Val::F64(x),
                        ScalarValueRef::Boolean(b) => Val::Bool(b),
                        _ => Val::Other,
                    },
                };
                (item.key, value)
            })
            .collect();
        // Automerge walks a map in key order; sort anyway so lookups never miss.
        if !entries.is_sorted_by(|a, b| a.0 <= b.0) {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Fields(entries)
    }

    /// A set stored as a map value → position, in position order.
    fn set(&self, fields: &Fields<'_>, key: &str) -> Vec<String> {
        let Some(obj) = fields.obj(key) else {
            return Vec::new();
        };
        let mut entries: Vec<(i64, Cow<'_, str>)> = self
            .fields(obj)
            .0
            .into_iter()
            .map(|(k, v)| match v {
                Val::Int(p) => (p, k),
                _ => (i64::MAX, k),
            })
            .collect();
        entries.sort();
        entries.into_iter().map(|(_, k)| k.into_owned()).collect()
    }

    /// A dictionary of text values.
    fn dict(&self, fields: &Fields<'_>, key: &str) -> BTreeMap<String, String> {
        let Some(obj) = fields.obj(key) else {
            return BTreeMap::new();
        };
        self.fields(obj)
            .0
            .into_iter()
            .filter_map(|(k, v)| match v {
                Val::Str(s) => Some((k.into_owned(), s.into_owned())),
                _ => None,
            })
            .collect()
    }

    pub(super) fn shot(&self, shot_id: &str, f: &Fields<'_>) -> Shot {
        let cinematic = f.str("cinematic");
        let mut look = Look::default();
        for (field, key) in LookField::ALL.into_iter().zip(SHOT_LOOK_KEYS) {
            *look.get_mut(field) = f.str(key);
        }
        Shot {
            shot_id: shot_id.to_owned(),
            code: ShotCode(f.uint("code")),
            scene: f.str("scene"),
            action: f.str("action"),
            characters: self.set(f, "characters"),
            cinematic: (!cinematic.is_empty()).then_some(cinematic),
            look,
            prompt_override: f.has("prompt_override").then(|| f.str("prompt_override")),
            reference_images: self.set(f, "reference_images"),
            frame_count: f.uint("frame_count"),
            status: f.str("status").parse().unwrap_or(ShotStatus::Pending),
            workflow: f.str("workflow"),
            notes: f.str("notes"),
            selected_take: f.str("selected_take"),
            review_note: f.str("review_note"),
            extra: self.dict(f, "extra"),
            // A peer's advice that does not parse is no advice (peers are untrusted).
            advice: f
                .has("advice")
                .then(|| serde_json::from_str(&f.str("advice")).ok())
                .flatten(),
        }
    }

    pub(super) fn character(&self, character_id: &str, f: &Fields<'_>) -> Character {
        Character {
            character_id: character_id.to_owned(),
            name: f.str("name"),
            appearance: f.str("appearance"),
            reference_sheet: f.str("reference_sheet"),
            lora_path: f.str("lora_path"),
            lora_strength: f.f64("lora_strength").unwrap_or(0.0),
            trigger_words: self.set(f, "trigger_words"),
            clothing_options: self.set(f, "clothing_options"),
            default_clothing: f.str("default_clothing"),
            style_keywords: self.set(f, "style_keywords"),
            extra: self.dict(f, "extra"),
        }
    }

    pub(super) fn cinematic(&self, cinematic_id: &str, f: &Fields<'_>) -> CinematicOption {
        let mut option = CinematicOption {
            cinematic_id: cinematic_id.to_owned(),
            name: f.str("name"),
            notes: f.str("notes"),
            extra: self.dict(f, "extra"),
            ..Default::default()
        };
        for field in LookField::ALL {
            *option.look.get_mut(field) = f.str(field.key());
        }
        option
    }

    /// The records of a top-level table (`shots`, `characters`, ...): id → fields.
    pub(super) fn table(&self, table: &ObjId) -> Vec<(String, Fields<'d>)> {
        self.fields(table)
            .0
            .into_iter()
            .filter_map(|(id, v)| match v {
                Val::Obj(obj) => Some((id.into_owned(), self.fields(&obj))),
                _ => None,
            })
            .collect()
    }

    /// A map of maps' keys (the catalogs: catalog → its values).
    pub(super) fn keys_of(&self, obj: &ObjId) -> Vec<String> {
        self.fields(obj)
            .0
            .into_iter()
            .map(|(k, _)| k.into_owned())
            .collect()
    }
}
