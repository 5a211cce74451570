//! How records are written as Automerge fields, and read back from hydrated maps.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) enum Field {
    Str(String),
    /// Text whose empty value is no key at all (most fields of most records are
    /// empty: not writing them keeps large projects small and quick to load).
    Text(String),
    Uint(u64),
    Int(i64),
    F64(f64),
    Bool(bool),
    /// Ordered set / dictionary stored as a map of scalars.
    Set(Vec<(String, ScalarValue)>),
    Dict(Vec<(String, ScalarValue)>),
    Absent,
}

impl Field {
    pub(super) fn scalar(&self) -> ScalarValue {
        match self {
            Field::Str(s) | Field::Text(s) => ScalarValue::Str(s.as_str().into()),
            Field::Uint(n) => ScalarValue::Uint(*n),
            Field::Int(n) => ScalarValue::Int(*n),
            Field::F64(x) => ScalarValue::F64(*x),
            Field::Bool(b) => ScalarValue::Boolean(*b),
            Field::Set(_) | Field::Dict(_) | Field::Absent => ScalarValue::Null,
        }
    }
}

pub(super) fn set(items: &[String]) -> Field {
    let mut seen = Vec::new();
    for item in items {
        if !seen.iter().any(|(k, _): &(String, ScalarValue)| k == item) {
            let position = i64::try_from(seen.len()).unwrap_or(i64::MAX);
            seen.push((item.clone(), ScalarValue::Int(position)));
        }
    }
    Field::Set(seen)
}

pub(super) fn to_hydrate(fields: &[(&str, Field)]) -> HValue {
    let mut map: HashMap<String, HValue> = HashMap::new();
    for (key, field) in fields {
        let value = match field {
            Field::Set(items) | Field::Dict(items) => {
                let inner: HashMap<String, HValue> = items
                    .iter()
                    .map(|(k, v)| (k.clone(), HValue::Scalar(v.clone())))
                    .collect();
                HValue::Map(HMap::from(inner))
            }
            Field::Absent => continue,
            Field::Text(text) if text.is_empty() => continue,
            scalar => HValue::Scalar(scalar.scalar()),
        };
        map.insert((*key).to_owned(), value);
    }
    HValue::Map(HMap::from(map))
}

pub(super) fn shot_fields(shot: &Shot) -> Vec<(&'static str, Field)> {
    let mut fields = vec![
        ("code", Field::Uint(shot.code.0)),
        ("scene", Field::Text(shot.scene.clone())),
        ("action", Field::Text(shot.action.clone())),
        ("characters", set(&shot.characters)),
        (
            "cinematic",
            Field::Text(shot.cinematic.clone().unwrap_or_default()),
        ),
        (
            "prompt_override",
            shot.prompt_override
                .clone()
                .map_or(Field::Absent, Field::Str),
        ),
        ("reference_images", set(&shot.reference_images)),
        ("frame_count", Field::Uint(shot.frame_count)),
        ("status", Field::Str(shot.status.as_str().to_owned())),
        ("workflow", Field::Text(shot.workflow.clone())),
        ("notes", Field::Text(shot.notes.clone())),
        ("selected_take", Field::Text(shot.selected_take.clone())),
        ("review_note", Field::Text(shot.review_note.clone())),
        ("extra", dict(&shot.extra)),
        // One JSON value, written whole: two peers advising at once leave one
        // side's advice, never a mix of both.
        (
            "advice",
            shot.advice
                .as_ref()
                .and_then(|a| serde_json::to_string(a).ok())
                .map_or(Field::Absent, Field::Str),
        ),
    ];
    // The shot's own look values: one flat key each (no nested map to create on an
    // old shot), present only when set, so a shot without overrides costs nothing.
    for (field, key) in LookField::ALL.into_iter().zip(SHOT_LOOK_KEYS) {
        fields.push((key, Field::Text(shot.look.get(field).to_owned())));
    }
    fields
}

/// The stored keys of a shot's own look values, in [`LookField::ALL`] order.
pub(super) const SHOT_LOOK_KEYS: [&str; 12] = [
    "look_camera_body",
    "look_focal_length",
    "look_lens_type",
    "look_film_stock",
    "look_style",
    "look_look_and_feel",
    "look_lighting_source",
    "look_lighting_style",
    "look_environment",
    "look_atmosphere",
    "look_lens_filter",
    "look_aspect_ratio",
];

pub(super) fn dict(map: &BTreeMap<String, String>) -> Field {
    Field::Dict(
        map.iter()
            .map(|(k, v)| (k.clone(), ScalarValue::Str(v.as_str().into())))
            .collect(),
    )
}

pub(super) fn character_fields(c: &Character) -> Vec<(&'static str, Field)> {
    vec![
        ("name", Field::Str(c.name.clone())),
        ("appearance", Field::Text(c.appearance.clone())),
        ("reference_sheet", Field::Text(c.reference_sheet.clone())),
        ("lora_path", Field::Text(c.lora_path.clone())),
        ("lora_strength", Field::F64(c.lora_strength)),
        ("trigger_words", set(&c.trigger_words)),
        ("clothing_options", set(&c.clothing_options)),
        ("default_clothing", Field::Text(c.default_clothing.clone())),
        ("style_keywords", set(&c.style_keywords)),
        ("extra", dict(&c.extra)),
    ]
}

pub(super) fn cinematic_fields(c: &CinematicOption) -> Vec<(&'static str, Field)> {
    let mut fields = vec![
        ("name", Field::Str(c.name.clone())),
        ("notes", Field::Text(c.notes.clone())),
        ("extra", dict(&c.extra)),
    ];
    fields.extend(
        LookField::ALL
            .into_iter()
            .map(|field| (field.key(), Field::Text(c.look.get(field).to_owned()))),
    );
    fields
}

pub(super) fn str_of(map: &HMap, key: &str) -> String {
    match map.get(key) {
        Some(HValue::Scalar(ScalarValue::Str(s))) => s.to_string(),
        Some(HValue::Text(t)) => String::from(t),
        _ => String::new(),
    }
}

pub(super) fn uint_of(map: &HMap, key: &str) -> u64 {
    match map.get(key) {
        Some(HValue::Scalar(ScalarValue::Uint(n))) => *n,
        Some(HValue::Scalar(ScalarValue::Int(n))) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

pub(super) fn bool_of(map: &HMap, key: &str) -> bool {
    matches!(
        map.get(key),
        Some(HValue::Scalar(ScalarValue::Boolean(true)))
    )
}
