//! Import of shot lists: workbooks (.xlsx, .xlsm, .xlsb, .xls, .ods), CSV/TSV exports
//! (Airtable, Google Sheets) and reelmesh's own JSON export.
//!
//! Data flow: the file is read into text tables ([`table`]), each table is recognised
//! by its sheet name or its headers ([`columns`]), and every row is checked and turned
//! into model values ([`sheets`], [`json`]) against one snapshot of the document. The
//! result is a [`Plan`]: everything the import would write. Only when the plan has no
//! bad cell is it applied ([`apply`]), so a file with one bad cell changes nothing and
//! the user sees every bad cell at once.
//!
//! Matching rules:
//! - Shots: a Shot ID naming a live shot updates it (only the columns the sheet has);
//!   otherwise a Record ID naming a live shot updates it; otherwise a new shot is added
//!   at the end, keeping the given code (or taking the next free one) and the Record ID
//!   as its internal id when that id is free. New shots are added in one batch.
//! - Characters and cinematic options: by Record ID, else by name (case-insensitive),
//!   else created. Shots link them by name.
//! - Length: Frame Count wins; Duration alone is converted at the project frame rate;
//!   both must agree within one frame; neither gives a new shot [`DEFAULT_SECONDS`].
//! - Unknown shot columns are kept in `Shot::extra` under their header; unknown columns
//!   of the other sheets, and unrecognised sheets, are not imported but are listed in
//!   [`ImportReport::kept_columns`] so nothing disappears unnoticed.

pub(crate) mod columns;
mod json;
mod sheets;
mod table;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use reelmesh_protocol::document::{DocError, Position, ProjectDoc};
use reelmesh_protocol::model::{
    Character, CinematicOption, Project, Shot, ShotCode, new_record_id,
};
use reelmesh_protocol::timecode::FrameRate;

/// Length of a new shot whose row gives neither Frame Count nor Duration, in seconds.
pub const DEFAULT_SECONDS: f64 = 2.0;

/// What an import did.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ImportReport {
    /// New shots.
    pub shots_added: usize,
    /// Existing shots updated (matched by shot code or Record ID) that changed.
    pub shots_updated: usize,
    /// Characters created or changed.
    pub characters: usize,
    /// Cinematic options created or changed.
    pub cinematics: usize,
    /// Unknown headers kept as extra fields, as "sheet: header"; columns and sheets
    /// that were read but not imported end in "(not imported)".
    pub kept_columns: Vec<String>,
}

/// One bad cell: where it is, and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    /// Sheet name (for CSV: "Shots", "Characters" or "Cinematic Options").
    pub sheet: String,
    /// Spreadsheet row number, 1-based; the header is row 1 (for JSON: the entry number).
    pub row: usize,
    /// The column's header as written in the file.
    pub column: String,
    /// What is wrong, quoting the value.
    pub message: String,
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, row {}, column '{}': {}",
            self.sheet, self.row, self.column, self.message
        )
    }
}

/// Why an import changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be read as a shot list at all (empty, not a workbook, damaged,
    /// unsupported type, no recognisable sheet).
    #[error("{file}: {reason}")]
    Unreadable {
        /// The file name as given.
        file: String,
        /// One line saying what is wrong.
        reason: String,
    },
    /// Some cells are bad; every one is listed.
    #[error("{file}: nothing was imported, {}:\n{}", count(.cells), lines(.cells))]
    Invalid {
        /// The file name as given.
        file: String,
        /// Every bad cell, in sheet and row order.
        cells: Vec<CellError>,
    },
    /// The project document refused a read or a write.
    #[error("{file}: {source}")]
    Document {
        /// The file name as given.
        file: String,
        /// What the document said.
        #[source]
        source: Box<DocError>,
    },
}

fn count(cells: &[CellError]) -> String {
    match cells.len() {
        1 => "1 bad cell".to_owned(),
        n => format!("{n} bad cells"),
    }
}

fn lines(cells: &[CellError]) -> String {
    cells
        .iter()
        .map(|cell| format!("  {cell}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Import a file into the project, format by extension.
pub fn import_file(doc: &mut ProjectDoc, path: &Path) -> Result<ImportReport, ImportError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ImportError::Unreadable {
        file: file.clone(),
        reason: format!("cannot be read ({e})"),
    })?;
    import_bytes(doc, &bytes, &file)
}

/// Import bytes named `file_name` (its extension picks the format: xlsx, xlsm, xlsb,
/// xls, ods, csv, tsv or json). Nothing is written unless the whole file is valid.
pub fn import_bytes(
    doc: &mut ProjectDoc,
    bytes: &[u8],
    file_name: &str,
) -> Result<ImportReport, ImportError> {
    let unreadable = |reason: String| ImportError::Unreadable {
        file: file_name.to_owned(),
        reason,
    };
    let extension = Path::new(file_name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let read: fn(&[u8]) -> Result<Vec<table::Table>, String> = match extension.as_str() {
        "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" => table::read_workbook,
        "csv" => |bytes: &[u8]| table::read_delimited(bytes, b','),
        "tsv" => |bytes: &[u8]| table::read_delimited(bytes, b'\t'),
        "json" => |_: &[u8]| Ok(Vec::new()),
        _ => {
            return Err(unreadable(format!(
                "unsupported file type '{extension}' (use .xlsx, .xls, .ods, .csv or .json)"
            )));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(unreadable("the file is empty".to_owned()));
    }
    let state = DocState::read(doc).map_err(|source| ImportError::Document {
        file: file_name.to_owned(),
        source: Box::new(source),
    })?;
    let planned = if extension == "json" {
        json::plan(&state, bytes)
    } else {
        let tables = read(bytes).map_err(&unreadable)?;
        sheets::plan(&state, tables, extension != "csv" && extension != "tsv")
    };
    let plan = match planned {
        Ok(plan) => plan,
        Err(Failure::Unreadable(reason)) => return Err(unreadable(reason)),
        Err(Failure::Cells(cells)) => {
            return Err(ImportError::Invalid {
                file: file_name.to_owned(),
                cells,
            });
        }
    };
    apply(doc, &state, plan).map_err(|source| ImportError::Document {
        file: file_name.to_owned(),
        source: Box::new(source),
    })
}

/// Why planning failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The file as a whole is unusable.
    Unreadable(String),
    /// These cells are bad.
    Cells(Vec<CellError>),
}

/// The document as the import sees it: read once, before any row is looked at.
pub(crate) struct DocState {
    /// The project now.
    pub(crate) project: Project,
    /// Codes of trashed shots (reserved: a new shot must not take them).
    pub(crate) trashed_codes: HashSet<ShotCode>,
    /// Ids of every shot, trashed ones included.
    pub(crate) shot_ids: HashSet<String>,
    /// One above every code in the document.
    pub(crate) next_code: u64,
}

impl DocState {
    fn read(doc: &ProjectDoc) -> Result<DocState, DocError> {
        let all = doc.all_shots()?;
        let next_code = all.iter().map(|(s, _)| s.code.0).max().unwrap_or(0) + 1;
        let trashed_codes = all
            .iter()
            .filter(|(_, deleted)| *deleted)
            .map(|(s, _)| s.code)
            .collect();
        let shot_ids = all.into_iter().map(|(s, _)| s.shot_id).collect();
        Ok(DocState {
            project: doc.project()?,
            trashed_codes,
            shot_ids,
            next_code,
        })
    }
}

/// Everything an import will write, checked.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) name: Option<String>,
    pub(crate) frame_rate: Option<FrameRate>,
    pub(crate) prompt_template: Option<String>,
    /// (catalog, value) pairs to add.
    pub(crate) catalog_values: Vec<(String, String)>,
    /// Characters to create or update, whole.
    pub(crate) characters: Vec<Character>,
    /// Cinematic options to create or update, whole.
    pub(crate) cinematics: Vec<CinematicOption>,
    /// New shots, in file order.
    pub(crate) new_shots: Vec<Shot>,
    /// Existing shots with their new field values.
    pub(crate) updated_shots: Vec<Shot>,
    /// See [`ImportReport::kept_columns`].
    pub(crate) kept_columns: Vec<String>,
}

/// Write a checked plan. Only values that differ are written.
fn apply(doc: &mut ProjectDoc, state: &DocState, plan: Plan) -> Result<ImportReport, DocError> {
    let settings = &state.project.settings;
    if let Some(name) = plan.name.filter(|n| *n != settings.name) {
        doc.set_name(&name)?;
    }
    if let Some(rate) = plan.frame_rate.filter(|r| *r != settings.frame_rate) {
        doc.set_frame_rate(rate)?;
    }
    if let Some(template) = plan
        .prompt_template
        .filter(|t| *t != settings.prompt_template)
    {
        doc.set_prompt_template(&template)?;
    }
    for (catalog, value) in &plan.catalog_values {
        let known = state
            .project
            .catalog_additions
            .get(catalog)
            .is_some_and(|values| values.iter().any(|v| v == value.trim()));
        if !known {
            doc.add_catalog_value(catalog, value)?;
        }
    }
    let mut report = ImportReport {
        kept_columns: plan.kept_columns,
        ..ImportReport::default()
    };
    for character in &plan.characters {
        if state.project.character(&character.character_id) != Some(character) {
            doc.put_character(character)?;
            report.characters += 1;
        }
    }
    for option in &plan.cinematics {
        if state.project.cinematic(&option.cinematic_id) != Some(option) {
            doc.put_cinematic(option)?;
            report.cinematics += 1;
        }
    }
    if !plan.new_shots.is_empty() {
        doc.add_shots(&plan.new_shots, &Position::End)?;
        report.shots_added = plan.new_shots.len();
    }
    let live: HashMap<&str, &Shot> = state
        .project
        .shots
        .iter()
        .map(|s| (s.shot_id.as_str(), s))
        .collect();
    for shot in &plan.updated_shots {
        if live.get(shot.shot_id.as_str()) != Some(&shot) {
            doc.update_shot(shot)?;
            report.shots_updated += 1;
        }
    }
    Ok(report)
}

/// Where a row of shots goes.
#[derive(Debug)]
pub(crate) enum ShotTarget {
    /// Update this live shot (a copy of it, code already set).
    Update(Shot),
    /// Create this new shot (id and code set, other fields empty).
    Create(Shot),
}

/// Decides, row by row, which shot a row updates or which code and id a new shot gets,
/// and refuses codes used twice.
pub(crate) struct ShotMatcher<'a> {
    state: &'a DocState,
    live_by_code: HashMap<ShotCode, usize>,
    live_by_id: HashMap<&'a str, usize>,
    /// Codes some row names explicitly (auto codes skip them).
    named_codes: HashSet<ShotCode>,
    /// Live shots already taken, by index, with the row that took them.
    claimed: HashMap<usize, usize>,
    /// Codes taken so far, with the row.
    used_codes: HashMap<ShotCode, usize>,
    /// Ids given to new shots so far.
    used_ids: HashSet<String>,
    next_code: u64,
}

impl<'a> ShotMatcher<'a> {
    /// A matcher for a file whose rows name `named_codes` explicitly.
    pub(crate) fn new(state: &'a DocState, named_codes: HashSet<ShotCode>) -> ShotMatcher<'a> {
        let shots = &state.project.shots;
        ShotMatcher {
            state,
            live_by_code: shots.iter().enumerate().map(|(i, s)| (s.code, i)).collect(),
            live_by_id: shots
                .iter()
                .enumerate()
                .map(|(i, s)| (s.shot_id.as_str(), i))
                .collect(),
            named_codes,
            claimed: HashMap::new(),
            used_codes: HashMap::new(),
            used_ids: HashSet::new(),
            next_code: state.next_code,
        }
    }

    /// The target of the row numbered `row` with this code and Record ID (may be empty).
    pub(crate) fn resolve(
        &mut self,
        row: usize,
        code: Option<ShotCode>,
        record_id: &str,
    ) -> Result<ShotTarget, String> {
        if let Some(code) = code
            && let Some(other) = self.used_codes.get(&code)
        {
            return Err(format!("'{code}' is also used in row {other}"));
        }
        let shots = &self.state.project.shots;
        let by_code = code.and_then(|c| self.live_by_code.get(&c).copied());
        // A Record ID only claims a shot no row names by its code (a copied row with
        // its Shot ID cleared is a new shot, not the original again).
        let by_id = || {
            self.live_by_id
                .get(record_id)
                .copied()
                .filter(|i| !self.claimed.contains_key(i))
                .filter(|i| !self.named_codes.contains(&shots[*i].code))
        };
        let live = by_code.or_else(by_id);
        if let Some(index) = live {
            if let Some(other) = self.claimed.get(&index) {
                return Err(format!(
                    "row {other} already updates shot {}",
                    shots[index].code
                ));
            }
            let mut shot = shots[index].clone();
            if let Some(code) = code {
                self.check_not_trashed(code)?;
                shot.code = code;
            }
            self.claimed.insert(index, row);
            self.used_codes.insert(shot.code, row);
            return Ok(ShotTarget::Update(shot));
        }
        let code = match code {
            Some(code) => {
                self.check_not_trashed(code)?;
                code
            }
            None => self.allocate_code(),
        };
        self.used_codes.insert(code, row);
        let record_id = record_id.trim();
        let shot_id = if !record_id.is_empty()
            && !self.state.shot_ids.contains(record_id)
            && self.used_ids.insert(record_id.to_owned())
        {
            record_id.to_owned()
        } else {
            new_record_id()
        };
        let mut shot = Shot::new(code, 0);
        shot.shot_id = shot_id;
        Ok(ShotTarget::Create(shot))
    }

    fn check_not_trashed(&self, code: ShotCode) -> Result<(), String> {
        if self.state.trashed_codes.contains(&code) && !self.live_by_code.contains_key(&code) {
            return Err(format!(
                "'{code}' belongs to a shot in the trash (restore that shot, or leave the cell empty for a new code)"
            ));
        }
        Ok(())
    }

    fn allocate_code(&mut self) -> ShotCode {
        loop {
            let code = ShotCode(self.next_code);
            self.next_code += 1;
            if !self.named_codes.contains(&code) && !self.used_codes.contains_key(&code) {
                return code;
            }
        }
    }
}
