//! The typed project model: what a shot list *is*, independent of storage.
//!
//! These are plain values read out of (and written into) the Automerge document by
//! [`crate::document::ProjectDoc`]. They are also the JSON export format, so every
//! field has a stable serde name.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::timecode::FrameRate;

/// Internal, globally unique id of a shot (never shown to users; see [`ShotCode`]).
pub type ShotId = String;
/// Internal, globally unique id of a character.
pub type CharacterId = String;
/// Internal, globally unique id of a cinematic option.
pub type CinematicId = String;

/// A fresh random id (128 bits, hex) for a new record.
#[must_use]
pub fn new_record_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The human shot code `SHT-00001`. The number is stored; uniqueness after merges
/// is restored by [`crate::document::ProjectDoc::normalize_codes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShotCode(pub u64);

impl fmt::Display for ShotCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHT-{:05}", self.0)
    }
}

impl FromStr for ShotCode {
    type Err = String;
    /// Accepts `SHT-00012`, `sht-12`, `SHT12` and a bare `12`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let digits = trimmed
            .get(..3)
            .filter(|prefix| prefix.eq_ignore_ascii_case("sht"))
            .map_or(trimmed, |_| {
                trimmed[3..].trim_start_matches(['-', '_', ' '])
            });
        match digits.parse::<u64>() {
            Ok(number) if number > 0 && !digits.starts_with('+') => Ok(ShotCode(number)),
            _ => Err(format!(
                "'{text}' is not a shot code (like SHT-00012 or 12)"
            )),
        }
    }
}

impl TryFrom<String> for ShotCode {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<ShotCode> for String {
    fn from(code: ShotCode) -> Self {
        code.to_string()
    }
}

/// Where a shot is in its review life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ShotStatus {
    /// Nothing rendered yet.
    #[default]
    Pending,
    /// A render job is running.
    Generating,
    /// At least one take exists.
    Completed,
    /// A reviewer asked for changes.
    NeedsRevision,
    /// Signed off.
    Approved,
}

impl ShotStatus {
    /// Every status, in workflow order.
    pub const ALL: [ShotStatus; 5] = [
        ShotStatus::Pending,
        ShotStatus::Generating,
        ShotStatus::Completed,
        ShotStatus::NeedsRevision,
        ShotStatus::Approved,
    ];

    /// The stored and exported spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ShotStatus::Pending => "pending",
            ShotStatus::Generating => "generating",
            ShotStatus::Completed => "completed",
            ShotStatus::NeedsRevision => "needs_revision",
            ShotStatus::Approved => "approved",
        }
    }
}

impl fmt::Display for ShotStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ShotStatus {
    type Err = String;
    /// Case- and space-insensitive; understands Korean labels (대기, 생성 중, 완료, 수정 필요, 승인).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let key: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        Ok(match key.as_str() {
            "" | "pending" | "todo" | "대기" | "대기중" => ShotStatus::Pending,
            "generating" | "rendering" | "inprogress" | "생성중" | "진행중" => {
                ShotStatus::Generating
            }
            "completed" | "complete" | "done" | "완료" => ShotStatus::Completed,
            "needsrevision" | "revision" | "수정필요" | "수정" => ShotStatus::NeedsRevision,
            "approved" | "승인" | "승인됨" => ShotStatus::Approved,
            _ => {
                return Err(format!(
                    "'{text}' is not a status (pending, generating, completed, needs_revision, approved)"
                ));
            }
        })
    }
}

/// One shot of the shot list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shot {
    /// Internal id.
    pub shot_id: ShotId,
    /// Human code.
    pub code: ShotCode,
    /// Scene description.
    #[serde(default)]
    pub scene: String,
    /// What happens in the shot.
    #[serde(default)]
    pub action: String,
    /// Linked characters, in billing order.
    #[serde(default)]
    pub characters: Vec<CharacterId>,
    /// Linked cinematic option (the look).
    #[serde(default)]
    pub cinematic: Option<CinematicId>,
    /// The shot's own look values, over its linked look's (empty: not set).
    #[serde(default, skip_serializing_if = "Look::is_empty")]
    pub look: Look,
    /// A manual prompt that replaces the assembled one.
    #[serde(default)]
    pub prompt_override: Option<String>,
    /// Reference image paths or blob hashes.
    #[serde(default)]
    pub reference_images: Vec<String>,
    /// Length in frames at the project frame rate (the source of truth for length).
    pub frame_count: u64,
    /// Review status.
    #[serde(default)]
    pub status: ShotStatus,
    /// Preferred video workflow id (empty: not chosen yet).
    #[serde(default)]
    pub workflow: String,
    /// Free-form notes.
    #[serde(default)]
    pub notes: String,
    /// The take chosen for the storyboard (a take id; empty: the latest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selected_take: String,
    /// What the last review asked to change (set with `needs_revision`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub review_note: String,
    /// Columns from an imported sheet that have no field of their own, by header.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
    /// The last workflow advice for this shot (an LLM's or the rules'), if asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
}

/// Which video workflow a shot should use, and why: an LLM's answer (validated) or
/// the rule-based advisor's. Accepting it sets the shot's `workflow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Advice {
    /// The workflow recommended (empty when `error` says why there is none).
    #[serde(default)]
    pub workflow: String,
    /// Why, in a sentence.
    #[serde(default)]
    pub reason: String,
    /// Who advised: the model's name, or `rules`.
    #[serde(default)]
    pub source: String,
    /// When (ms since the epoch, advising node's clock).
    #[serde(default)]
    pub at_ms: u64,
    /// How sure, 0 to 1 (the model's; the rules give a fixed figure per rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// A suggested length in frames (absent: keep the shot's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
    /// Why no workflow could be recommended (the advisor's last error).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl Advice {
    /// The rule-based advisor's source name.
    pub const RULES: &'static str = "rules";

    /// A recommendation that can be accepted.
    #[must_use]
    pub fn usable(&self) -> bool {
        self.error.is_empty() && !self.workflow.is_empty()
    }
}

impl Shot {
    /// A new empty shot with a fresh id.
    #[must_use]
    pub fn new(code: ShotCode, frame_count: u64) -> Shot {
        Shot {
            shot_id: new_record_id(),
            code,
            scene: String::new(),
            action: String::new(),
            characters: Vec::new(),
            cinematic: None,
            look: Look::default(),
            prompt_override: None,
            reference_images: Vec::new(),
            frame_count,
            status: ShotStatus::Pending,
            workflow: String::new(),
            notes: String::new(),
            selected_take: String::new(),
            review_note: String::new(),
            extra: BTreeMap::new(),
            advice: None,
        }
    }
}

/// An entry of the character bible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Character {
    /// Internal id.
    pub character_id: CharacterId,
    /// Display name; shots link characters by it on import.
    pub name: String,
    /// Appearance description (goes into the prompt subject).
    #[serde(default)]
    pub appearance: String,
    /// Reference sheet image path or blob hash.
    #[serde(default)]
    pub reference_sheet: String,
    /// LoRA file path (as ComfyUI names it).
    #[serde(default)]
    pub lora_path: String,
    /// LoRA strength, 0.0..=1.0.
    #[serde(default = "default_lora_strength")]
    pub lora_strength: f64,
    /// LoRA trigger words, appended to every prompt of a shot the character is in.
    #[serde(default)]
    pub trigger_words: Vec<String>,
    /// Clothing options.
    #[serde(default)]
    pub clothing_options: Vec<String>,
    /// Default clothing (one of the options, or empty).
    #[serde(default)]
    pub default_clothing: String,
    /// Style keywords for consistency.
    #[serde(default)]
    pub style_keywords: Vec<String>,
    /// Columns from an imported sheet that have no field of their own, by header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

fn default_lora_strength() -> f64 {
    0.8
}

impl Character {
    /// A new character with a fresh id and default LoRA strength.
    #[must_use]
    pub fn new(name: &str) -> Character {
        Character {
            character_id: new_record_id(),
            name: name.to_owned(),
            appearance: String::new(),
            reference_sheet: String::new(),
            lora_path: String::new(),
            lora_strength: default_lora_strength(),
            trigger_words: Vec::new(),
            clothing_options: Vec::new(),
            default_clothing: String::new(),
            style_keywords: Vec::new(),
            extra: BTreeMap::new(),
        }
    }
}

/// One field of a look: the camera, lens, film, lighting and mood choices of the
/// seed's Cinematic Options table. A cinematic option (a named look) has all of
/// them; a shot may carry any of them itself, over its linked look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LookField {
    /// Camera body (Arri Alexa 35, ...).
    CameraBody,
    /// Focal length (35mm, ...).
    FocalLength,
    /// Lens type (anamorphic, ...).
    LensType,
    /// Film stock.
    FilmStock,
    /// Style (photorealistic, anime, ...).
    Style,
    /// Look and feel: a reference film.
    LookAndFeel,
    /// Lighting source (natural, neon, ...).
    LightingSource,
    /// Lighting style (Rembrandt, high key, ...).
    LightingStyle,
    /// Environment (where).
    Environment,
    /// Atmosphere (mood).
    Atmosphere,
    /// Lens filter.
    LensFilter,
    /// Aspect ratio (16:9, 2.39:1, ...).
    AspectRatio,
}

impl LookField {
    /// Every field, in the seed's column order.
    pub const ALL: [LookField; 12] = [
        LookField::CameraBody,
        LookField::FocalLength,
        LookField::LensType,
        LookField::FilmStock,
        LookField::Style,
        LookField::LookAndFeel,
        LookField::LightingSource,
        LookField::LightingStyle,
        LookField::Environment,
        LookField::Atmosphere,
        LookField::LensFilter,
        LookField::AspectRatio,
    ];

    /// The stored and exported key (`camera_body`), also its catalog's name.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            LookField::CameraBody => "camera_body",
            LookField::FocalLength => "focal_length",
            LookField::LensType => "lens_type",
            LookField::FilmStock => "film_stock",
            LookField::Style => "style",
            LookField::LookAndFeel => "look_and_feel",
            LookField::LightingSource => "lighting_source",
            LookField::LightingStyle => "lighting_style",
            LookField::Environment => "environment",
            LookField::Atmosphere => "atmosphere",
            LookField::LensFilter => "lens_filter",
            LookField::AspectRatio => "aspect_ratio",
        }
    }

    /// The English column header (`Camera Body`).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            LookField::CameraBody => "Camera Body",
            LookField::FocalLength => "Focal Length",
            LookField::LensType => "Lens Type",
            LookField::FilmStock => "Film Stock",
            LookField::Style => "Style",
            LookField::LookAndFeel => "Look and Feel",
            LookField::LightingSource => "Lighting Source",
            LookField::LightingStyle => "Lighting Style",
            LookField::Environment => "Environment",
            LookField::Atmosphere => "Atmosphere",
            LookField::LensFilter => "Lens Filter",
            LookField::AspectRatio => "Aspect Ratio",
        }
    }

    /// The field stored under `key`.
    #[must_use]
    pub fn from_key(key: &str) -> Option<LookField> {
        LookField::ALL.into_iter().find(|f| f.key() == key)
    }
}

/// The twelve look values. Empty text means "not set": on a shot, the linked look's
/// value shows through ([`Look::over`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Look {
    /// Camera body (Arri Alexa 35, ...).
    pub camera_body: String,
    /// Focal length (35mm, ...).
    pub focal_length: String,
    /// Lens type (anamorphic, ...).
    pub lens_type: String,
    /// Film stock.
    pub film_stock: String,
    /// Style (photorealistic, anime, ...).
    pub style: String,
    /// Look and feel: a reference film.
    pub look_and_feel: String,
    /// Lighting source (natural, neon, ...).
    pub lighting_source: String,
    /// Lighting style (Rembrandt, high key, ...).
    pub lighting_style: String,
    /// Environment (where).
    pub environment: String,
    /// Atmosphere (mood).
    pub atmosphere: String,
    /// Lens filter.
    pub lens_filter: String,
    /// Aspect ratio (16:9, 2.39:1, ...).
    pub aspect_ratio: String,
}

impl Look {
    /// The value of one field.
    #[must_use]
    pub fn get(&self, field: LookField) -> &str {
        match field {
            LookField::CameraBody => &self.camera_body,
            LookField::FocalLength => &self.focal_length,
            LookField::LensType => &self.lens_type,
            LookField::FilmStock => &self.film_stock,
            LookField::Style => &self.style,
            LookField::LookAndFeel => &self.look_and_feel,
            LookField::LightingSource => &self.lighting_source,
            LookField::LightingStyle => &self.lighting_style,
            LookField::Environment => &self.environment,
            LookField::Atmosphere => &self.atmosphere,
            LookField::LensFilter => &self.lens_filter,
            LookField::AspectRatio => &self.aspect_ratio,
        }
    }

    /// The value of one field, to change it.
    pub fn get_mut(&mut self, field: LookField) -> &mut String {
        match field {
            LookField::CameraBody => &mut self.camera_body,
            LookField::FocalLength => &mut self.focal_length,
            LookField::LensType => &mut self.lens_type,
            LookField::FilmStock => &mut self.film_stock,
            LookField::Style => &mut self.style,
            LookField::LookAndFeel => &mut self.look_and_feel,
            LookField::LightingSource => &mut self.lighting_source,
            LookField::LightingStyle => &mut self.lighting_style,
            LookField::Environment => &mut self.environment,
            LookField::Atmosphere => &mut self.atmosphere,
            LookField::LensFilter => &mut self.lens_filter,
            LookField::AspectRatio => &mut self.aspect_ratio,
        }
    }

    /// Whether no field is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        LookField::ALL
            .into_iter()
            .all(|field| self.get(field).trim().is_empty())
    }

    /// This look's values where set, else `base`'s: a shot's own values over its
    /// linked look.
    #[must_use]
    pub fn over(&self, base: &Look) -> Look {
        let mut merged = base.clone();
        for field in LookField::ALL {
            let own = self.get(field);
            if !own.trim().is_empty() {
                own.clone_into(merged.get_mut(field));
            }
        }
        merged
    }
}

/// A named look: a name, the twelve [`Look`] fields and notes. Shots link one and
/// may carry their own values over it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CinematicOption {
    /// Internal id.
    pub cinematic_id: CinematicId,
    /// Name shots link by on import.
    pub name: String,
    /// The look's values (flattened: the JSON keeps one level).
    #[serde(flatten)]
    pub look: Look,
    /// Free notes.
    pub notes: String,
    /// Columns from an imported sheet that have no field of their own, by header.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl CinematicOption {
    /// A new empty option with a fresh id.
    #[must_use]
    pub fn new(name: &str) -> CinematicOption {
        CinematicOption {
            cinematic_id: new_record_id(),
            name: name.to_owned(),
            ..Default::default()
        }
    }
}

/// Project-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectSettings {
    /// Project name.
    pub name: String,
    /// Frame rate of the timeline.
    pub frame_rate: FrameRate,
    /// The prompt template (see [`crate::prompt`]).
    pub prompt_template: String,
    /// Import header mapping remembered from `--map`: a header as the import
    /// matcher normalizes it → the field it means (`appearance`, `extra`, `skip`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header_map: BTreeMap<String, String>,
}

/// A whole project read out of the document at one moment: the unit of export,
/// import round trips and display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Stable project id (the document's identity on the mesh).
    pub project_id: String,
    /// Settings.
    pub settings: ProjectSettings,
    /// Live shots in timeline order (trashed shots are not listed).
    pub shots: Vec<Shot>,
    /// Character bible, by name.
    pub characters: Vec<Character>,
    /// Cinematic options, by name.
    pub cinematics: Vec<CinematicOption>,
    /// Per-project additions to the option catalogs, by catalog.
    #[serde(default)]
    pub catalog_additions: BTreeMap<String, Vec<String>>,
}

impl Project {
    /// The character with this id.
    #[must_use]
    pub fn character(&self, character_id: &str) -> Option<&Character> {
        self.characters
            .iter()
            .find(|c| c.character_id == character_id)
    }

    /// The cinematic option with this id.
    #[must_use]
    pub fn cinematic(&self, cinematic_id: &str) -> Option<&CinematicOption> {
        self.cinematics
            .iter()
            .find(|c| c.cinematic_id == cinematic_id)
    }

    /// The look a shot renders with: its own values over its linked look's.
    #[must_use]
    pub fn effective_look(&self, shot: &Shot) -> Look {
        match shot.cinematic.as_deref().and_then(|id| self.cinematic(id)) {
            Some(option) => shot.look.over(&option.look),
            None => shot.look.clone(),
        }
    }

    /// The live shot with this code.
    #[must_use]
    pub fn shot_by_code(&self, code: ShotCode) -> Option<&Shot> {
        self.shots.iter().find(|s| s.code == code)
    }

    /// Timecode in (inclusive) and out (exclusive) frames of every shot, in order.
    #[must_use]
    pub fn shot_frame_ranges(&self) -> Vec<(u64, u64)> {
        let mut start = 0_u64;
        self.shots
            .iter()
            .map(|shot| {
                let range = (start, start.saturating_add(shot.frame_count));
                start = range.1;
                range
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shot_codes_parse_and_print() {
        assert_eq!("SHT-00012".parse::<ShotCode>(), Ok(ShotCode(12)));
        assert_eq!("sht_7".parse::<ShotCode>(), Ok(ShotCode(7)));
        assert_eq!(" 3 ".parse::<ShotCode>(), Ok(ShotCode(3)));
        assert!("A12".parse::<ShotCode>().is_err());
        assert!("0".parse::<ShotCode>().is_err());
        assert!("SHT-".parse::<ShotCode>().is_err());
        assert_eq!(ShotCode(42).to_string(), "SHT-00042");
        assert_eq!(ShotCode(123_456).to_string(), "SHT-123456");
    }

    #[test]
    fn statuses_understand_korean_and_spelling_variants() {
        assert_eq!(
            "Needs Revision".parse::<ShotStatus>(),
            Ok(ShotStatus::NeedsRevision)
        );
        assert_eq!("승인".parse::<ShotStatus>(), Ok(ShotStatus::Approved));
        assert_eq!(
            "수정 필요".parse::<ShotStatus>(),
            Ok(ShotStatus::NeedsRevision)
        );
        assert_eq!("".parse::<ShotStatus>(), Ok(ShotStatus::Pending));
        assert!("maybe".parse::<ShotStatus>().is_err());
        for status in ShotStatus::ALL {
            assert_eq!(status.as_str().parse::<ShotStatus>(), Ok(status));
        }
    }
}
