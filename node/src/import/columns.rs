//! The header matcher: one way to read a header, for workbook sheets, CSV and JSON
//! keys alike, in English, Korean and the Korean-English that Korean artists write.
//!
//! A header is first [`normalize`]d (Unicode NFKC, lowercase, only letters and
//! digits: "Frame Count", "frame_count", "ＦＲＡＭＥ－ＣＯＵＮＴ" and "Frame-Count:"
//! are one header; decomposed Hangul from a macOS file name composes). It is then
//! looked up, for the kind of sheet it is in, in this order:
//!
//! 1. a `--map HEADER=FIELD` given to this import;
//! 2. a mapping remembered in the project (`--map` stores what it was given);
//! 3. the synonym table ([`columns_of`]): the English header the exporter writes
//!    first, then English variants, the seed's snake_case keys, Korean and
//!    Korean-English spellings;
//! 4. a fuzzy match: a header within a small edit distance of one synonym, of one
//!    field only, is taken and the report says which field it chose.
//!
//! A header that still means nothing is kept as an extra field; the report names the
//! nearest field, so the user can `--map` it.

use std::collections::HashMap;
use std::sync::LazyLock;

use reelmesh_protocol::model::LookField;
use unicode_normalization::UnicodeNormalization;

mod names;

use names::{LOOK_NAMES, NOTES_NAMES, RECORD_ID_NAMES, shot_or_character_names};

/// `header` as the matcher compares it: NFKC, lowercase, letters and digits only
/// ("#" alone becomes "no", so a "#" column reads as a number column).
pub(crate) fn normalize(header: &str) -> String {
    let key: String = header
        .nfkc()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    if key.is_empty() && header.trim() == "#" {
        return "no".to_owned();
    }
    key
}

/// What a sheet holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SheetKind {
    /// The shot list (flat or linked).
    Shots,
    /// The character bible.
    Characters,
    /// Cinematic options (looks).
    Cinematics,
    /// Project settings as key/value rows.
    Project,
}

impl SheetKind {
    /// The English sheet name the exporter writes (and CSV tables are called).
    pub(crate) fn label(self) -> &'static str {
        match self {
            SheetKind::Shots => "Shots",
            SheetKind::Characters => "Characters",
            SheetKind::Cinematics => "Cinematic Options",
            SheetKind::Project => "Project",
        }
    }

    /// The name used in reports and `--json` (`shots`, `characters`, ...).
    pub(crate) fn key(self) -> &'static str {
        match self {
            SheetKind::Shots => "shots",
            SheetKind::Characters => "characters",
            SheetKind::Cinematics => "cinematic_options",
            SheetKind::Project => "project",
        }
    }

    /// The kind a sheet name (or a JSON list's key) says, if any.
    pub(crate) fn from_sheet_name(name: &str) -> Option<SheetKind> {
        let key = normalize(name);
        let kinds: [(SheetKind, &[&str]); 4] = [
            (
                SheetKind::Shots,
                &[
                    "Shots",
                    "Shot",
                    "Shot List",
                    "Shotlist",
                    "Storyboard",
                    "샷",
                    "샷 리스트",
                    "샷 목록",
                    "샷리스트",
                    "컷",
                    "컷 리스트",
                    "콘티",
                    "스토리보드",
                ],
            ),
            (
                SheetKind::Characters,
                &[
                    "Characters",
                    "Character",
                    "Character Bible",
                    "Cast",
                    "캐릭터",
                    "캐릭터 바이블",
                    "캐릭터 시트",
                    "등장인물",
                    "인물",
                ],
            ),
            (
                SheetKind::Cinematics,
                &[
                    "Cinematic Options",
                    "Cinematic Option",
                    "Cinematics",
                    "Looks",
                    "Look",
                    "Looks Library",
                    "시네마틱 옵션",
                    "시네마틱",
                    "룩",
                    "룩 라이브러리",
                ],
            ),
            (
                SheetKind::Project,
                &["Project", "Settings", "프로젝트", "설정"],
            ),
        ];
        kinds
            .into_iter()
            .find(|(_, names)| names.iter().any(|n| normalize(n) == key))
            .map(|(kind, _)| kind)
    }

    /// The kind a table's headers say. A shot column (scene, action, length,
    /// status...) makes a shot list even with look columns beside it (the flat
    /// layout); character columns outnumbering shot columns make a character bible;
    /// look columns alone make a looks sheet. `None` when no header is recognised.
    pub(crate) fn from_headers(headers: &[String]) -> Option<SheetKind> {
        let (mut shots, mut characters, mut looks) = (0_usize, 0_usize, 0_usize);
        for header in headers {
            let key = normalize(header);
            if key.is_empty() {
                continue;
            }
            if synonym(SheetKind::Shots, &key).is_some_and(Column::tells_shots) {
                shots += 1;
            }
            if synonym(SheetKind::Characters, &key).is_some_and(Column::tells_characters) {
                characters += 1;
            }
            if matches!(synonym(SheetKind::Cinematics, &key), Some(Column::Look(_))) {
                looks += 1;
            }
        }
        if characters > shots && characters >= looks {
            Some(SheetKind::Characters)
        } else if shots > 0 {
            Some(SheetKind::Shots)
        } else if looks > 0 {
            Some(SheetKind::Cinematics)
        } else if characters > 0 {
            Some(SheetKind::Characters)
        } else {
            None
        }
    }
}

/// A field a column can fill. One enum for every kind of sheet: shared fields (name,
/// notes, record id, the look fields) mean the same thing wherever they appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Column {
    // Shots.
    Code,
    Scene,
    Action,
    Characters,
    Cinematic,
    PromptOverride,
    /// The sheet's own assembled prompt (a formula, or an export's reading copy):
    /// derived, never imported.
    AssembledPrompt,
    ReferenceImages,
    FrameCount,
    Duration,
    TimecodeIn,
    TimecodeOut,
    Status,
    Workflow,
    // Shared.
    Name,
    Notes,
    RecordId,
    Look(LookField),
    // Characters.
    Appearance,
    ReferenceSheet,
    LoraPath,
    LoraStrength,
    TriggerWords,
    ClothingOptions,
    DefaultClothing,
    StyleKeywords,
}

impl Column {
    /// The English header the exporter writes.
    pub(crate) fn header(self) -> &'static str {
        match self {
            Column::Look(field) => field.label(),
            Column::Name => "Name",
            Column::Notes => "Notes",
            Column::RecordId => "Record ID",
            other => shot_or_character_names(other)[0],
        }
    }

    /// The field name users give to `--map` and see in reports.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Column::Code => "code",
            Column::Scene => "scene",
            Column::Action => "action",
            Column::Characters => "characters",
            Column::Cinematic => "cinematic",
            Column::PromptOverride => "prompt_override",
            Column::AssembledPrompt => "prompt",
            Column::ReferenceImages => "reference_images",
            Column::FrameCount => "frame_count",
            Column::Duration => "duration",
            Column::TimecodeIn => "timecode_in",
            Column::TimecodeOut => "timecode_out",
            Column::Status => "status",
            Column::Workflow => "workflow",
            Column::Name => "name",
            Column::Notes => "notes",
            Column::RecordId => "record_id",
            Column::Look(field) => field.key(),
            Column::Appearance => "appearance",
            Column::ReferenceSheet => "reference_sheet",
            Column::LoraPath => "lora_path",
            Column::LoraStrength => "lora_strength",
            Column::TriggerWords => "trigger_words",
            Column::ClothingOptions => "clothing_options",
            Column::DefaultClothing => "default_clothing",
            Column::StyleKeywords => "style_keywords",
        }
    }

    /// The column of `kind` that `--map` names `key` (its field name, or any of its
    /// headers).
    pub(crate) fn from_key(kind: SheetKind, key: &str) -> Option<Column> {
        let wanted = normalize(key);
        columns_of(kind)
            .iter()
            .map(|(column, _)| *column)
            .find(|column| normalize(column.key()) == wanted)
            .or_else(|| synonym(kind, &wanted))
    }

    /// Whether this column tells a shot list apart from other tables.
    fn tells_shots(self) -> bool {
        !matches!(
            self,
            Column::Notes | Column::RecordId | Column::Characters | Column::Name | Column::Look(_)
        )
    }

    /// Whether this column tells a character bible apart from other tables.
    fn tells_characters(self) -> bool {
        !matches!(self, Column::Name | Column::RecordId | Column::Notes)
    }
}

/// The columns of one kind of sheet, each with its names.
type ColumnTable = Vec<(Column, Vec<&'static str>)>;

/// Every column a sheet of `kind` can have, with its names (the exported English
/// header first), in export order.
pub(crate) fn columns_of(kind: SheetKind) -> &'static [(Column, Vec<&'static str>)] {
    static TABLES: LazyLock<[ColumnTable; 3]> = LazyLock::new(|| {
        let names = |column: Column| -> Vec<&'static str> {
            match column {
                Column::Look(field) => LOOK_NAMES[LookField::ALL
                    .iter()
                    .position(|f| *f == field)
                    .unwrap_or_default()]
                .to_vec(),
                Column::RecordId => RECORD_ID_NAMES.to_vec(),
                Column::Notes => NOTES_NAMES.to_vec(),
                other => shot_or_character_names(other).to_vec(),
            }
        };
        let looks = LookField::ALL.map(Column::Look);
        let shots: Vec<Column> = [
            Column::Code,
            Column::Scene,
            Column::Action,
            Column::Characters,
            Column::Cinematic,
        ]
        .into_iter()
        .chain(looks)
        .chain([
            Column::PromptOverride,
            Column::AssembledPrompt,
            Column::ReferenceImages,
            Column::FrameCount,
            Column::Duration,
            Column::TimecodeIn,
            Column::TimecodeOut,
            Column::Status,
            Column::Workflow,
            Column::Notes,
            Column::RecordId,
        ])
        .collect();
        let characters = [
            Column::Name,
            Column::Appearance,
            Column::ReferenceSheet,
            Column::LoraPath,
            Column::LoraStrength,
            Column::TriggerWords,
            Column::ClothingOptions,
            Column::DefaultClothing,
            Column::StyleKeywords,
            Column::RecordId,
        ];
        let cinematics: Vec<Column> = std::iter::once(Column::Name)
            .chain(looks)
            .chain([Column::Notes, Column::RecordId])
            .collect();
        let character_names = [
            "Name",
            "Character",
            "Character Name",
            "이름",
            "캐릭터 이름",
            "캐릭터",
            "캐릭터명",
            "인물",
            "배역",
        ];
        let look_names = [
            "Name",
            "Look",
            "Look Name",
            "Cinematic Option",
            "Preset",
            "이름",
            "룩",
            "룩 이름",
            "시네마틱 옵션",
            "프리셋",
        ];
        let table = |columns: &[Column], name_names: &[&'static str]| {
            columns
                .iter()
                .map(|column| {
                    let list = if *column == Column::Name {
                        name_names.to_vec()
                    } else {
                        names(*column)
                    };
                    (*column, list)
                })
                .collect::<Vec<_>>()
        };
        [
            table(&shots, &[]),
            table(&characters, &character_names),
            table(&cinematics, &look_names),
        ]
    });
    match kind {
        SheetKind::Shots => &TABLES[0],
        SheetKind::Characters => &TABLES[1],
        SheetKind::Cinematics => &TABLES[2],
        SheetKind::Project => &[],
    }
}

/// Every name of every column of a kind, normalized once: (column, [(normalized,
/// as written)]), the field's key last.
type NormalizedNames = Vec<(Column, Vec<(String, &'static str)>)>;

fn normalized_names(kind: SheetKind) -> &'static NormalizedNames {
    static LISTS: LazyLock<[NormalizedNames; 3]> = LazyLock::new(|| {
        let build = |kind: SheetKind| {
            columns_of(kind)
                .iter()
                .map(|(column, names)| {
                    let all = names
                        .iter()
                        .copied()
                        .chain(std::iter::once(column.key()))
                        .map(|name| (normalize(name), name))
                        .collect();
                    (*column, all)
                })
                .collect()
        };
        [
            build(SheetKind::Shots),
            build(SheetKind::Characters),
            build(SheetKind::Cinematics),
        ]
    });
    static EMPTY: NormalizedNames = Vec::new();
    match kind {
        SheetKind::Shots => &LISTS[0],
        SheetKind::Characters => &LISTS[1],
        SheetKind::Cinematics => &LISTS[2],
        SheetKind::Project => &EMPTY,
    }
}

/// Normalized synonym → column, per kind. The first column of the kind's table that
/// claims a name keeps it (its key before its names).
fn synonyms(kind: SheetKind) -> &'static HashMap<String, Column> {
    static MAPS: LazyLock<[HashMap<String, Column>; 3]> = LazyLock::new(|| {
        let build = |kind: SheetKind| {
            let mut map = HashMap::new();
            for (column, names) in normalized_names(kind) {
                map.entry(normalize(column.key())).or_insert(*column);
                for (name, _) in names {
                    map.entry(name.clone()).or_insert(*column);
                }
            }
            map
        };
        [
            build(SheetKind::Shots),
            build(SheetKind::Characters),
            build(SheetKind::Cinematics),
        ]
    });
    static EMPTY: LazyLock<HashMap<String, Column>> = LazyLock::new(HashMap::new);
    match kind {
        SheetKind::Shots => &MAPS[0],
        SheetKind::Characters => &MAPS[1],
        SheetKind::Cinematics => &MAPS[2],
        SheetKind::Project => &EMPTY,
    }
}

/// The column a normalized header names in a sheet of `kind`, by the synonym table.
pub(crate) fn synonym(kind: SheetKind, key: &str) -> Option<Column> {
    synonyms(kind).get(key).copied()
}

/// Where a column's values go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A field of the record.
    Field(Column),
    /// Kept as an extra field under the header.
    Extra,
    /// Not imported.
    Skip,
}

/// How a header was understood (shown by `--dry-run` and in the report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum How {
    /// The header is one of the field's names.
    Named,
    /// `--map` on this import.
    Mapped,
    /// A mapping remembered in the project.
    Remembered,
    /// Close to one of the field's names (the name it was taken for).
    Fuzzy(&'static str),
    /// Unknown; the nearest field, if any is near.
    Unknown(Option<Column>),
}

/// What the user said a header means: a field name, `extra` or `skip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mapping {
    /// A field name (checked against the sheet's kind when used).
    Field(String),
    /// Keep as an extra field.
    Extra,
    /// Do not import.
    Skip,
}

impl Mapping {
    /// Parse the right side of `--map HEADER=FIELD`.
    pub(crate) fn parse(field: &str) -> Result<Mapping, String> {
        let key = normalize(field);
        match key.as_str() {
            "extra" | "keep" => return Ok(Mapping::Extra),
            "skip" | "ignore" | "none" => return Ok(Mapping::Skip),
            _ => {}
        }
        let known = [
            SheetKind::Shots,
            SheetKind::Characters,
            SheetKind::Cinematics,
        ]
        .iter()
        .any(|kind| Column::from_key(*kind, field).is_some());
        if known {
            Ok(Mapping::Field(field.trim().to_owned()))
        } else {
            Err(format!(
                "'{field}' is not a field (fields: {}, or extra, skip)",
                all_field_keys().join(", ")
            ))
        }
    }

    /// The stored spelling.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Mapping::Field(field) => field,
            Mapping::Extra => "extra",
            Mapping::Skip => "skip",
        }
    }
}

/// Every field name `--map` accepts, in table order, each once.
pub(crate) fn all_field_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for kind in [
        SheetKind::Shots,
        SheetKind::Characters,
        SheetKind::Cinematics,
    ] {
        for (column, _) in columns_of(kind) {
            if !keys.contains(&column.key()) {
                keys.push(column.key());
            }
        }
    }
    keys
}

/// The mappings an import applies: this import's `--map` first, then the project's.
#[derive(Debug, Default)]
pub(crate) struct Mappings {
    /// Normalized header → mapping, from `--map`.
    pub(crate) given: HashMap<String, Mapping>,
    /// Normalized header → mapping, remembered in the project.
    pub(crate) remembered: HashMap<String, Mapping>,
}

/// Match one header of a sheet of `kind`.
pub(crate) fn match_header(kind: SheetKind, header: &str, mappings: &Mappings) -> (Target, How) {
    let key = normalize(header);
    for (map, how) in [
        (&mappings.given, How::Mapped),
        (&mappings.remembered, How::Remembered),
    ] {
        match map.get(&key) {
            Some(Mapping::Extra) => return (Target::Extra, how),
            Some(Mapping::Skip) => return (Target::Skip, how),
            Some(Mapping::Field(field)) => {
                if let Some(column) = Column::from_key(kind, field) {
                    return (Target::Field(column), how);
                }
            }
            None => {}
        }
    }
    if let Some(column) = synonym(kind, &key) {
        return (Target::Field(column), How::Named);
    }
    match fuzzy(kind, &key) {
        Nearest::Close(column, name) => (Target::Field(column), How::Fuzzy(name)),
        Nearest::Suggest(column) => (Target::Extra, How::Unknown(Some(column))),
        Nearest::Nothing => (Target::Extra, How::Unknown(None)),
    }
}

enum Nearest {
    /// Close enough to take: the column and the name it is close to.
    Close(Column, &'static str),
    /// Too far to take, near enough to suggest.
    Suggest(Column),
    Nothing,
}

/// The edit distance a header may be from a name and still be taken for it: none
/// under 5 letters (Korean words are short and one syllable changes the meaning),
/// 1 up to 8, 2 up to 13, then 3.
fn allowed_edits(chars: usize) -> usize {
    match chars {
        0..=4 => 0,
        5..=8 => 1,
        9..=13 => 2,
        _ => 3,
    }
}

fn fuzzy(kind: SheetKind, key: &str) -> Nearest {
    if key.is_empty() {
        return Nearest::Nothing;
    }
    let length = key.chars().count();
    let mut close: Option<(Column, &'static str, usize)> = None;
    let mut ambiguous = false;
    let mut suggestion: Option<(Column, f64)> = None;
    for (column, names) in normalized_names(kind) {
        for (candidate, name) in names {
            let distance = strsim::damerau_levenshtein(key, candidate);
            let longest = length.max(candidate.chars().count());
            if distance <= allowed_edits(longest) && distance > 0 {
                match close {
                    Some((other, _, best)) if distance == best && other != *column => {
                        ambiguous = true;
                    }
                    Some((_, _, best)) if distance >= best => {}
                    _ => {
                        close = Some((*column, name, distance));
                        ambiguous = false;
                    }
                }
            }
            // A suggestion: similar enough, or one holds the other (외형 묘사 ⊃ 외형).
            let similarity = 1.0 - distance as f64 / longest.max(1) as f64;
            // A contained name must say something: two Hangul syllables, four letters.
            let meaningful = |text: &str| {
                let chars = text.chars().count();
                chars >= 4 || (chars >= 2 && !text.is_ascii())
            };
            let contains = (meaningful(candidate) && key.contains(candidate.as_str()))
                || (meaningful(key) && candidate.contains(key));
            let score = if contains {
                similarity.max(0.5) + 0.25
            } else {
                similarity
            };
            if score >= 0.5 && suggestion.is_none_or(|(_, best)| score > best) {
                suggestion = Some((*column, score));
            }
        }
    }
    match (close, ambiguous, suggestion) {
        (Some((column, name, _)), false, _) => Nearest::Close(column, name),
        (_, _, Some((column, _))) => Nearest::Suggest(column),
        _ => Nearest::Nothing,
    }
}

/// What a key of the Project sheet sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProjectKey {
    Name,
    FrameRate,
    PromptTemplate,
    /// Shown for information; never imported (a project keeps its own id).
    ProjectId,
    /// The header row of the sheet.
    Header,
    /// A value added to a catalog: "Catalog: camera_body".
    Catalog(String),
}

/// English keys the exporter writes in the Project sheet.
pub(crate) const PROJECT_NAME: &str = "Name";
pub(crate) const PROJECT_FRAME_RATE: &str = "Frame Rate";
pub(crate) const PROJECT_TEMPLATE: &str = "Prompt Template";
pub(crate) const PROJECT_ID: &str = "Project ID";
pub(crate) const PROJECT_CATALOG_PREFIX: &str = "Catalog: ";
pub(crate) const PROJECT_HEADER: [&str; 2] = ["Setting", "Value"];

impl ProjectKey {
    /// The key in column A of a Project sheet row (or a top-level JSON key).
    pub(crate) fn find(text: &str) -> Option<ProjectKey> {
        if let Some((prefix, catalog)) = text.split_once(':')
            && ["Catalog", "카탈로그"]
                .iter()
                .any(|n| normalize(n) == normalize(prefix))
        {
            return Some(ProjectKey::Catalog(catalog.trim().to_owned()));
        }
        let key = normalize(text);
        let keys: [(ProjectKey, &[&str]); 5] = [
            (
                ProjectKey::Name,
                &[
                    PROJECT_NAME,
                    "Project Name",
                    "Title",
                    "project_name",
                    "이름",
                    "프로젝트 이름",
                    "프로젝트명",
                    "제목",
                ],
            ),
            (
                ProjectKey::FrameRate,
                &[
                    PROJECT_FRAME_RATE,
                    "FPS",
                    "frame_rate",
                    "프레임 레이트",
                    "프레임레이트",
                    "프레임 속도",
                ],
            ),
            (
                ProjectKey::PromptTemplate,
                &[PROJECT_TEMPLATE, "prompt_template", "프롬프트 템플릿"],
            ),
            (ProjectKey::ProjectId, &[PROJECT_ID, "프로젝트 ID"]),
            (ProjectKey::Header, &[PROJECT_HEADER[0], "항목", "설정"]),
        ];
        keys.into_iter()
            .find(|(_, names)| names.iter().any(|n| normalize(n) == key))
            .map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(kind: SheetKind, header: &str) -> (Target, How) {
        match_header(kind, header, &Mappings::default())
    }

    #[test]
    fn headers_normalize_across_width_case_punctuation_and_hangul_forms() {
        assert_eq!(normalize(" Duration (s) "), "durations");
        assert_eq!(normalize("frame_count"), normalize("Frame-Count:"));
        assert_eq!(normalize("ＦＲＡＭＥ　ＣＯＵＮＴ"), "framecount");
        // 트리거 in decomposed jamo (as macOS writes file names) composes.
        let decomposed: String = "트리거 워드".nfd().collect();
        assert_ne!(decomposed, "트리거 워드");
        assert_eq!(normalize(&decomposed), "트리거워드");
        assert_eq!(normalize("#"), "no");
    }

    #[test]
    fn synonyms_cover_english_korean_and_korean_english() {
        let cases = [
            (SheetKind::Shots, "frame_count", Column::FrameCount),
            (SheetKind::Shots, "길이(초)", Column::Duration),
            (SheetKind::Shots, "샷 번호", Column::Code),
            (SheetKind::Shots, "scene_description", Column::Scene),
            (SheetKind::Shots, "character_ids", Column::Characters),
            (SheetKind::Shots, "cinematic_id", Column::Cinematic),
            (SheetKind::Shots, "workflow_type", Column::Workflow),
            (SheetKind::Shots, "duration_seconds", Column::Duration),
            (
                SheetKind::Shots,
                "초점거리",
                Column::Look(LookField::FocalLength),
            ),
            (
                SheetKind::Shots,
                "Lens Type",
                Column::Look(LookField::LensType),
            ),
            (
                SheetKind::Shots,
                "조명",
                Column::Look(LookField::LightingSource),
            ),
            (
                SheetKind::Shots,
                "에스펙트 비율",
                Column::Look(LookField::AspectRatio),
            ),
            (
                SheetKind::Shots,
                "룩앤필",
                Column::Look(LookField::LookAndFeel),
            ),
            (
                SheetKind::Shots,
                "Filter",
                Column::Look(LookField::LensFilter),
            ),
            (SheetKind::Shots, "Prompt", Column::AssembledPrompt),
            (SheetKind::Characters, "외형 설명", Column::Appearance),
            (SheetKind::Characters, "트리거 워드", Column::TriggerWords),
            (SheetKind::Characters, "description", Column::Appearance),
            (SheetKind::Characters, "LoRA 강도", Column::LoraStrength),
            (SheetKind::Characters, "id", Column::RecordId),
            (
                SheetKind::Cinematics,
                "filter",
                Column::Look(LookField::LensFilter),
            ),
            (SheetKind::Cinematics, "이름", Column::Name),
        ];
        for (kind, header, column) in cases {
            assert_eq!(
                mapped(kind, header),
                (Target::Field(column), How::Named),
                "{header}"
            );
        }
    }

    #[test]
    fn a_close_misspelling_is_taken_and_says_for_what() {
        assert_eq!(
            mapped(SheetKind::Shots, "Focal Lenght"),
            (
                Target::Field(Column::Look(LookField::FocalLength)),
                How::Fuzzy("Focal Length")
            )
        );
        assert_eq!(
            mapped(SheetKind::Characters, "Triger Words"),
            (
                Target::Field(Column::TriggerWords),
                How::Fuzzy("Trigger Words")
            )
        );
        // Short words are never guessed: "Lena" is not "Lens".
        assert!(matches!(
            mapped(SheetKind::Shots, "Lena"),
            (Target::Extra, How::Unknown(_))
        ));
    }

    #[test]
    fn an_unknown_header_is_kept_with_the_nearest_field() {
        assert_eq!(
            mapped(SheetKind::Characters, "외형 묘사"),
            (Target::Extra, How::Unknown(Some(Column::Appearance)))
        );
        assert_eq!(
            mapped(SheetKind::Shots, "무드보드"),
            (
                Target::Extra,
                How::Unknown(Some(Column::Look(LookField::Atmosphere)))
            )
        );
        assert_eq!(
            mapped(SheetKind::Shots, "Budget"),
            (Target::Extra, How::Unknown(None))
        );
    }

    #[test]
    fn maps_win_over_the_table_and_are_checked() {
        let mut mappings = Mappings::default();
        mappings.given.insert(
            normalize("외형 묘사"),
            Mapping::parse("appearance").unwrap(),
        );
        mappings
            .remembered
            .insert(normalize("Scene"), Mapping::Extra);
        assert_eq!(
            match_header(SheetKind::Characters, "외형 묘사", &mappings),
            (Target::Field(Column::Appearance), How::Mapped)
        );
        assert_eq!(
            match_header(SheetKind::Shots, "scene", &mappings),
            (Target::Extra, How::Remembered)
        );
        assert!(Mapping::parse("apperance").is_err_and(|e| e.contains("appearance")));
        assert_eq!(Mapping::parse("skip"), Ok(Mapping::Skip));
        assert_eq!(
            Mapping::parse("카메라"),
            Ok(Mapping::Field("카메라".into()))
        );
    }

    #[test]
    fn sheet_kinds_from_names_and_headers() {
        assert_eq!(
            SheetKind::from_sheet_name("샷 리스트"),
            Some(SheetKind::Shots)
        );
        assert_eq!(
            SheetKind::from_sheet_name("cinematic_options"),
            Some(SheetKind::Cinematics)
        );
        assert_eq!(SheetKind::from_sheet_name("Budget"), None);
        let headers = |h: &[&str]| h.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            SheetKind::from_headers(&headers(&["이름", "외형", "트리거 단어"])),
            Some(SheetKind::Characters)
        );
        assert_eq!(
            SheetKind::from_headers(&headers(&["Name", "Description", "LoRA", "Trigger"])),
            Some(SheetKind::Characters)
        );
        assert_eq!(
            SheetKind::from_headers(&headers(&["Name", "Camera", "Lens"])),
            Some(SheetKind::Cinematics)
        );
        // The flat layout: a shot list with every look column.
        assert_eq!(
            SheetKind::from_headers(&headers(&[
                "Shot",
                "Scene",
                "Action",
                "Camera Body",
                "Focal Length",
                "Lens Type",
                "Film Stock",
                "Style",
                "Look and Feel",
                "Lighting Source",
                "Lighting Style",
                "Environment",
                "Atmosphere",
                "Filter",
                "Aspect Ratio"
            ])),
            Some(SheetKind::Shots)
        );
        assert_eq!(
            SheetKind::from_headers(&headers(&["Budget", "Total"])),
            None
        );
        assert_eq!(
            ProjectKey::find("Catalog: camera_body"),
            Some(ProjectKey::Catalog("camera_body".into()))
        );
        assert_eq!(ProjectKey::find("frame rate"), Some(ProjectKey::FrameRate));
    }

    #[test]
    fn no_two_fields_of_a_kind_share_a_name() {
        for kind in [
            SheetKind::Shots,
            SheetKind::Characters,
            SheetKind::Cinematics,
        ] {
            let mut seen: HashMap<String, Column> = HashMap::new();
            for (column, names) in columns_of(kind) {
                for name in names {
                    if let Some(other) = seen.insert(normalize(name), *column) {
                        assert_eq!(
                            other, *column,
                            "{kind:?}: '{name}' names both {other:?} and {column:?}"
                        );
                    }
                }
            }
        }
    }
}
