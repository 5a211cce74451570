//! Header and sheet names the importer understands, in English and Korean.
//!
//! Matching is forgiving: a header is compared after [`normalize`] (lowercase, no
//! spaces, `_`, `-`, `(` or `)`), so "Frame Count", "frame_count" and "FRAMECOUNT"
//! are one header. The first name of every column is the English header the exporter
//! writes, so an exported workbook always reads back.

use reelmesh_protocol::model::CinematicOption;

/// `header` lowercased, without whitespace, `_`, `-`, `(` and `)`.
pub(crate) fn normalize(header: &str) -> String {
    header
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '(' | ')'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn matches_any(key: &str, names: &[&str]) -> bool {
    names.iter().any(|name| normalize(name) == key)
}

/// What a sheet holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SheetKind {
    /// The shot list.
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

    /// The kind a sheet name says, if any.
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
                    "샷",
                    "샷 리스트",
                    "샷 목록",
                    "샷리스트",
                ],
            ),
            (
                SheetKind::Characters,
                &[
                    "Characters",
                    "Character",
                    "Character Bible",
                    "캐릭터",
                    "캐릭터 바이블",
                    "등장인물",
                ],
            ),
            (
                SheetKind::Cinematics,
                &[
                    "Cinematic Options",
                    "Cinematic Option",
                    "Cinematics",
                    "Looks",
                    "시네마틱 옵션",
                    "시네마틱",
                    "룩",
                ],
            ),
            (
                SheetKind::Project,
                &["Project", "Settings", "프로젝트", "설정"],
            ),
        ];
        kinds
            .into_iter()
            .find(|(_, names)| matches_any(&key, names))
            .map(|(kind, _)| kind)
    }

    /// The kind a table's headers say: the kind with the most columns only it has.
    /// `None` when no header is recognised.
    pub(crate) fn from_headers(headers: &[String]) -> Option<SheetKind> {
        let mut counts = [
            (SheetKind::Shots, 0_usize),
            (SheetKind::Characters, 0),
            (SheetKind::Cinematics, 0),
        ];
        for header in headers {
            let key = normalize(header);
            if key.is_empty() {
                continue;
            }
            if ShotColumn::find(&key).is_some_and(ShotColumn::is_distinctive) {
                counts[0].1 += 1;
            }
            if CharacterColumn::find(&key)
                .is_some_and(|c| c != CharacterColumn::Name && c != CharacterColumn::RecordId)
            {
                counts[1].1 += 1;
            }
            if matches!(CinematicColumn::find(&key), Some(CinematicColumn::Field(_))) {
                counts[2].1 += 1;
            }
        }
        // Ties go to shots (the first entry): a plain list is a shot list.
        let mut best = counts[0];
        for candidate in &counts[1..] {
            if candidate.1 > best.1 {
                best = *candidate;
            }
        }
        (best.1 > 0).then_some(best.0)
    }
}

/// A column of the shot sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShotColumn {
    Code,
    Scene,
    Action,
    Characters,
    Cinematic,
    PromptOverride,
    ReferenceImages,
    FrameCount,
    Duration,
    TimecodeIn,
    TimecodeOut,
    Status,
    Workflow,
    Notes,
    RecordId,
}

impl ShotColumn {
    /// Every column, in export order.
    pub(crate) const ALL: [ShotColumn; 15] = [
        ShotColumn::Code,
        ShotColumn::Scene,
        ShotColumn::Action,
        ShotColumn::Characters,
        ShotColumn::Cinematic,
        ShotColumn::PromptOverride,
        ShotColumn::ReferenceImages,
        ShotColumn::FrameCount,
        ShotColumn::Duration,
        ShotColumn::TimecodeIn,
        ShotColumn::TimecodeOut,
        ShotColumn::Status,
        ShotColumn::Workflow,
        ShotColumn::Notes,
        ShotColumn::RecordId,
    ];

    /// Accepted names; the first is the exported English header.
    fn names(self) -> &'static [&'static str] {
        match self {
            ShotColumn::Code => &[
                "Shot ID",
                "Shot",
                "Shot Code",
                "Shot No",
                "Shot Number",
                "샷 번호",
                "샷 ID",
                "샷",
                "샷 코드",
            ],
            ShotColumn::Scene => &[
                "Scene Description",
                "Scene",
                "Description",
                "장면 설명",
                "씬 설명",
                "장면",
                "씬",
            ],
            ShotColumn::Action => &["Action", "액션", "동작"],
            ShotColumn::Characters => &["Characters", "Character", "캐릭터", "등장인물"],
            ShotColumn::Cinematic => &[
                "Cinematic Option",
                "Cinematic",
                "Look",
                "시네마틱 옵션",
                "시네마틱",
                "룩",
            ],
            ShotColumn::PromptOverride => &[
                "Prompt Override",
                "Prompt",
                "프롬프트",
                "프롬프트 오버라이드",
            ],
            ShotColumn::ReferenceImages => &[
                "Reference Images",
                "Reference Image",
                "References",
                "참조 이미지",
                "레퍼런스 이미지",
            ],
            ShotColumn::FrameCount => &["Frame Count", "Frames", "프레임 수", "프레임"],
            ShotColumn::Duration => &[
                "Duration (s)",
                "Duration",
                "Duration (sec)",
                "Seconds",
                "길이(초)",
                "길이",
                "시간(초)",
            ],
            ShotColumn::TimecodeIn => &["Timecode In", "TC In", "타임코드 인"],
            ShotColumn::TimecodeOut => &["Timecode Out", "TC Out", "타임코드 아웃"],
            ShotColumn::Status => &["Status", "상태"],
            ShotColumn::Workflow => &["Workflow", "워크플로", "워크플로우"],
            ShotColumn::Notes => &["Notes", "Note", "비고", "메모"],
            ShotColumn::RecordId => &["Record ID", "레코드 ID"],
        }
    }

    /// The English header the exporter writes.
    pub(crate) fn header(self) -> &'static str {
        self.names()[0]
    }

    /// The column a normalized header names.
    pub(crate) fn find(key: &str) -> Option<ShotColumn> {
        ShotColumn::ALL
            .into_iter()
            .find(|c| matches_any(key, c.names()))
    }

    /// Whether the column tells a shot list apart from other tables.
    fn is_distinctive(self) -> bool {
        !matches!(
            self,
            ShotColumn::Notes | ShotColumn::RecordId | ShotColumn::Characters
        )
    }
}

/// A column of the character sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CharacterColumn {
    Name,
    Appearance,
    ReferenceSheet,
    LoraPath,
    LoraStrength,
    TriggerWords,
    ClothingOptions,
    DefaultClothing,
    StyleKeywords,
    RecordId,
}

impl CharacterColumn {
    /// Every column, in export order.
    pub(crate) const ALL: [CharacterColumn; 10] = [
        CharacterColumn::Name,
        CharacterColumn::Appearance,
        CharacterColumn::ReferenceSheet,
        CharacterColumn::LoraPath,
        CharacterColumn::LoraStrength,
        CharacterColumn::TriggerWords,
        CharacterColumn::ClothingOptions,
        CharacterColumn::DefaultClothing,
        CharacterColumn::StyleKeywords,
        CharacterColumn::RecordId,
    ];

    fn names(self) -> &'static [&'static str] {
        match self {
            CharacterColumn::Name => &[
                "Name",
                "Character",
                "Character Name",
                "이름",
                "캐릭터 이름",
                "캐릭터",
            ],
            CharacterColumn::Appearance => &["Appearance", "외형", "외모"],
            CharacterColumn::ReferenceSheet => &["Reference Sheet", "레퍼런스 시트", "참조 시트"],
            CharacterColumn::LoraPath => &["LoRA Path", "LoRA", "LoRA File", "LoRA 경로"],
            CharacterColumn::LoraStrength => &["LoRA Strength", "LoRA Weight", "LoRA 강도"],
            CharacterColumn::TriggerWords => &[
                "Trigger Words",
                "Trigger Word",
                "Triggers",
                "트리거 단어",
                "트리거",
            ],
            CharacterColumn::ClothingOptions => {
                &["Clothing Options", "Clothing", "의상", "의상 옵션"]
            }
            CharacterColumn::DefaultClothing => &["Default Clothing", "기본 의상"],
            CharacterColumn::StyleKeywords => &["Style Keywords", "스타일 키워드"],
            CharacterColumn::RecordId => &["Record ID", "레코드 ID"],
        }
    }

    /// The English header the exporter writes.
    pub(crate) fn header(self) -> &'static str {
        self.names()[0]
    }

    /// The column a normalized header names.
    pub(crate) fn find(key: &str) -> Option<CharacterColumn> {
        CharacterColumn::ALL
            .into_iter()
            .find(|c| matches_any(key, c.names()))
    }
}

/// Reads or writes one text field of a cinematic option.
pub(crate) type CinematicGet = fn(&CinematicOption) -> &String;
/// Mutable access to one text field of a cinematic option.
pub(crate) type CinematicSet = fn(&mut CinematicOption) -> &mut String;

/// One text field of a cinematic option: accepted names (English header first) and accessors.
pub(crate) struct CinematicField {
    pub(crate) names: &'static [&'static str],
    pub(crate) get: CinematicGet,
    pub(crate) get_mut: CinematicSet,
}

/// The fields of a cinematic option besides name and id, in export order.
pub(crate) const CINEMATIC_FIELDS: &[CinematicField] = &[
    CinematicField {
        names: &["Camera Body", "Camera", "카메라", "카메라 바디"],
        get: |c| &c.camera_body,
        get_mut: |c| &mut c.camera_body,
    },
    CinematicField {
        names: &["Focal Length", "초점 거리"],
        get: |c| &c.focal_length,
        get_mut: |c| &mut c.focal_length,
    },
    CinematicField {
        names: &["Lens Type", "Lens", "렌즈", "렌즈 타입"],
        get: |c| &c.lens_type,
        get_mut: |c| &mut c.lens_type,
    },
    CinematicField {
        names: &["Film Stock", "Film", "필름", "필름 스톡"],
        get: |c| &c.film_stock,
        get_mut: |c| &mut c.film_stock,
    },
    CinematicField {
        names: &["Style", "스타일"],
        get: |c| &c.style,
        get_mut: |c| &mut c.style,
    },
    CinematicField {
        names: &["Look and Feel", "Look & Feel", "룩앤필", "룩 앤 필"],
        get: |c| &c.look_and_feel,
        get_mut: |c| &mut c.look_and_feel,
    },
    CinematicField {
        names: &["Lighting Source", "조명 소스"],
        get: |c| &c.lighting_source,
        get_mut: |c| &mut c.lighting_source,
    },
    CinematicField {
        names: &["Lighting Style", "조명 스타일"],
        get: |c| &c.lighting_style,
        get_mut: |c| &mut c.lighting_style,
    },
    CinematicField {
        names: &["Environment", "환경"],
        get: |c| &c.environment,
        get_mut: |c| &mut c.environment,
    },
    CinematicField {
        names: &["Atmosphere", "Mood", "분위기"],
        get: |c| &c.atmosphere,
        get_mut: |c| &mut c.atmosphere,
    },
    CinematicField {
        names: &["Lens Filter", "Filter", "필터", "렌즈 필터"],
        get: |c| &c.lens_filter,
        get_mut: |c| &mut c.lens_filter,
    },
    CinematicField {
        names: &["Aspect Ratio", "화면비", "화면 비율"],
        get: |c| &c.aspect_ratio,
        get_mut: |c| &mut c.aspect_ratio,
    },
];

/// A column of the cinematic option sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CinematicColumn {
    Name,
    /// Index into [`CINEMATIC_FIELDS`].
    Field(usize),
    Notes,
    RecordId,
}

/// Header names of the cinematic sheet's fixed columns (English first).
pub(crate) const CINEMATIC_NAME: &[&str] = &[
    "Name",
    "Look",
    "Cinematic Option",
    "이름",
    "룩",
    "시네마틱 옵션",
];
pub(crate) const CINEMATIC_NOTES: &[&str] = &["Notes", "Note", "비고", "메모"];
pub(crate) const RECORD_ID: &[&str] = &["Record ID", "레코드 ID"];

impl CinematicColumn {
    /// The column a normalized header names.
    pub(crate) fn find(key: &str) -> Option<CinematicColumn> {
        if matches_any(key, CINEMATIC_NAME) {
            return Some(CinematicColumn::Name);
        }
        if matches_any(key, CINEMATIC_NOTES) {
            return Some(CinematicColumn::Notes);
        }
        if matches_any(key, RECORD_ID) {
            return Some(CinematicColumn::RecordId);
        }
        CINEMATIC_FIELDS
            .iter()
            .position(|f| matches_any(key, f.names))
            .map(CinematicColumn::Field)
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
    /// The key in column A of a Project sheet row.
    pub(crate) fn find(text: &str) -> Option<ProjectKey> {
        if let Some((prefix, catalog)) = text.split_once(':')
            && matches_any(&normalize(prefix), &["Catalog", "카탈로그"])
        {
            return Some(ProjectKey::Catalog(catalog.trim().to_owned()));
        }
        let key = normalize(text);
        let keys: [(ProjectKey, &[&str]); 5] = [
            (
                ProjectKey::Name,
                &[PROJECT_NAME, "Project Name", "이름", "프로젝트 이름"],
            ),
            (
                ProjectKey::FrameRate,
                &[PROJECT_FRAME_RATE, "FPS", "프레임 레이트", "프레임레이트"],
            ),
            (
                ProjectKey::PromptTemplate,
                &[PROJECT_TEMPLATE, "프롬프트 템플릿"],
            ),
            (ProjectKey::ProjectId, &[PROJECT_ID, "프로젝트 ID"]),
            (ProjectKey::Header, &[PROJECT_HEADER[0], "항목", "설정"]),
        ];
        keys.into_iter()
            .find(|(_, names)| matches_any(&key, names))
            .map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_forgivingly_in_both_languages() {
        assert_eq!(normalize(" Duration (s) "), "durations");
        assert_eq!(
            ShotColumn::find(&normalize("frame_count")),
            Some(ShotColumn::FrameCount)
        );
        assert_eq!(
            ShotColumn::find(&normalize("길이(초)")),
            Some(ShotColumn::Duration)
        );
        assert_eq!(
            ShotColumn::find(&normalize("샷 번호")),
            Some(ShotColumn::Code)
        );
        assert_eq!(ShotColumn::find(&normalize("무드보드")), None);
        assert_eq!(
            CharacterColumn::find(&normalize("LoRA 강도")),
            Some(CharacterColumn::LoraStrength)
        );
        assert_eq!(
            CinematicColumn::find(&normalize("룩앤필")),
            Some(CinematicColumn::Field(5))
        );
        assert_eq!(
            SheetKind::from_sheet_name("샷 리스트"),
            Some(SheetKind::Shots)
        );
        assert_eq!(
            SheetKind::from_sheet_name("Character Bible"),
            Some(SheetKind::Characters)
        );
        assert_eq!(
            SheetKind::from_sheet_name("Looks"),
            Some(SheetKind::Cinematics)
        );
        assert_eq!(SheetKind::from_sheet_name("Budget"), None);
        let headers = |h: &[&str]| h.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            SheetKind::from_headers(&headers(&["이름", "외형", "트리거 단어"])),
            Some(SheetKind::Characters)
        );
        assert_eq!(
            SheetKind::from_headers(&headers(&["Name", "Camera", "Lens"])),
            Some(SheetKind::Cinematics)
        );
        assert_eq!(
            SheetKind::from_headers(&headers(&["Shot", "Action"])),
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
}
