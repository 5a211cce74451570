//! Import of shot lists: workbooks (.xlsx, .xlsm, .xlsb, .xls, .ods), CSV/TSV exports
//! (Airtable, Google Sheets) and JSON (reelmesh's own export, the seed's data model,
//! or any `{"shots": [...], "characters": [...], "cinematic_options": [...]}`).
//!
//! Data flow: the file is read into text tables ([`table`], [`json`]), each table is
//! recognised by its sheet name or its headers and every header is matched to a field
//! ([`columns`]), and every row is checked and turned into model values ([`sheets`])
//! against one snapshot of the document. The result is a [`Plan`]: everything the
//! import would write. Only when the plan has no problem is it applied ([`apply`]), so
//! a file with one bad cell changes nothing and the user sees every problem at once
//! ([`report`] summarises them). A file reelmesh exported remembers the project
//! version it was made from; re-importing it compares three ways ([`merge`]), so only
//! the cells edited in the file since then are written.
//!
//! Matching rules:
//! - Shots: a Shot ID naming a live shot updates it (only the columns the sheet has);
//!   otherwise a Record ID naming a live shot updates it; otherwise a new shot is added
//!   at the end, keeping the given code (or taking the next free one) and the Record ID
//!   as its internal id when that id is free. New shots are added in one batch. In a
//!   three-way import the Record ID comes first (codes may have been renumbered).
//! - Characters and cinematic options: by Record ID, else by name (case-insensitive),
//!   else created. Shots link them by name or by record id; a name nothing defines
//!   creates a record of that name (`strict`: an error).
//! - A shot's look columns (camera, lens, film, ...) are the shot's own values; empty
//!   cells leave the linked look's values showing through.
//! - Length: Frame Count wins; Duration alone is converted at the project frame rate;
//!   both must agree within one frame; neither gives a new shot [`DEFAULT_SECONDS`].
//! - Unknown columns are kept as extra fields under their header and reported with the
//!   nearest field; a column of the sheet's own assembled prompt is not imported.

pub(crate) mod columns;
#[cfg(test)]
mod fixture_tests;
mod json;
mod merge;
pub mod report;
mod sheets;
pub(crate) mod table;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use reelmesh_protocol::document::{DocError, Position, ProjectDoc};
use reelmesh_protocol::model::{
    Character, CinematicOption, Project, Shot, ShotCode, new_record_id,
};
use reelmesh_protocol::timecode::FrameRate;
use serde::{Deserialize, Serialize};

use columns::{Mapping, Mappings, normalize};
pub use report::{
    BaseReport, CellError, ColumnReport, Conflict, ImportReport, RecordChange, SheetReport,
};

/// Length of a new shot whose row gives neither Frame Count nor Duration, in seconds.
pub const DEFAULT_SECONDS: f64 = 2.0;

pub use reelmesh_protocol::api::import::ImportOptions;

/// The project version an export was made from, as the file remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportMark {
    /// The project's id.
    pub project_id: String,
    /// Its heads when the file was written.
    pub heads: Vec<String>,
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
    /// An option is wrong (a `--map` naming no field).
    #[error("{0}")]
    Usage(String),
    /// Some cells are bad; the report lists every one.
    #[error(
        "{}: nothing was imported, {}:\n{}",
        .report.file,
        report::count_problems(.report.problems.len()),
        report::summarize_problems(&.report.problems, false).trim_end()
    )]
    Invalid {
        /// What the import understood, with every problem.
        report: Box<ImportReport>,
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

/// Import a file into the project, format by extension, with default options.
pub fn import_file(doc: &mut ProjectDoc, path: &Path) -> Result<ImportReport, ImportError> {
    import_file_with(doc, path, &ImportOptions::default())
}

/// Import a file into the project, format by extension.
pub fn import_file_with(
    doc: &mut ProjectDoc,
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ImportError::Unreadable {
        file: file.clone(),
        reason: format!("cannot be read ({e})"),
    })?;
    import_bytes_with(doc, &bytes, &file, options)
}

/// Import bytes named `file_name` with default options.
pub fn import_bytes(
    doc: &mut ProjectDoc,
    bytes: &[u8],
    file_name: &str,
) -> Result<ImportReport, ImportError> {
    import_bytes_with(doc, bytes, file_name, &ImportOptions::default())
}

/// The mappings of this import: `--map` (checked) over the project's remembered ones.
fn mappings(options: &ImportOptions, project: &Project) -> Result<Mappings, ImportError> {
    let mut mappings = Mappings::default();
    for given in &options.maps {
        let Some((header, field)) = given.rsplit_once('=') else {
            return Err(ImportError::Usage(format!(
                "--map '{given}': write it as HEADER=FIELD (e.g. --map '외형 묘사=appearance')"
            )));
        };
        let key = normalize(header);
        if key.is_empty() {
            return Err(ImportError::Usage(format!(
                "--map '{given}': the header is empty"
            )));
        }
        let mapping = Mapping::parse(field)
            .map_err(|e| ImportError::Usage(format!("--map '{given}': {e}")))?;
        mappings.given.insert(key, mapping);
    }
    for (header, field) in &project.settings.header_map {
        if let Ok(mapping) = Mapping::parse(field) {
            mappings.remembered.insert(header.clone(), mapping);
        }
    }
    Ok(mappings)
}

/// Import bytes named `file_name` (its extension picks the format: xlsx, xlsm, xlsb,
/// xls, ods, csv, tsv or json). Nothing is written unless the whole file is valid,
/// nor with `dry_run`; a file with problems is an [`ImportError::Invalid`] (a dry run
/// returns its report, problems included).
pub fn import_bytes_with(
    doc: &mut ProjectDoc,
    bytes: &[u8],
    file_name: &str,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let parsed = parse(bytes, file_name)?;
    import_parsed_with(doc, parsed, options)
}

/// A file read into tables (or reelmesh's own JSON), before it meets a project:
/// the slow part of an import (a workbook's XML, 10,000 rows), done away from the
/// node's task that serves peers (see [`parse_file`]).
pub struct Parsed {
    file: String,
    extension: String,
    source: json::Source,
    mark: Option<ExportMark>,
}

/// Read and parse a file (on a blocking thread: it may be large).
///
/// # Errors
/// [`ImportError::Unreadable`] naming the file.
pub fn parse_file(path: &Path) -> Result<Parsed, ImportError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ImportError::Unreadable {
        file: file.clone(),
        reason: format!("cannot be read ({e})"),
    })?;
    parse(&bytes, &file)
}

/// Parse bytes named `file_name` (its extension picks the format).
///
/// # Errors
/// [`ImportError::Unreadable`] naming the file.
pub fn parse(bytes: &[u8], file_name: &str) -> Result<Parsed, ImportError> {
    let unreadable = |reason: String| ImportError::Unreadable {
        file: file_name.to_owned(),
        reason,
    };
    let extension = Path::new(file_name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if !matches!(
        extension.as_str(),
        "xlsx" | "xlsm" | "xlsb" | "xls" | "ods" | "csv" | "tsv" | "json"
    ) {
        return Err(unreadable(format!(
            "unsupported file type '{extension}' (use .xlsx, .xls, .ods, .csv or .json)"
        )));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(unreadable("the file is empty".to_owned()));
    }
    let (source, mark) = match extension.as_str() {
        "json" => json::read(bytes).map_err(&unreadable)?,
        "csv" => (
            json::Source::Tables(table::read_delimited(bytes, b',').map_err(&unreadable)?),
            None,
        ),
        "tsv" => (
            json::Source::Tables(table::read_delimited(bytes, b'\t').map_err(&unreadable)?),
            None,
        ),
        _ => {
            let mut tables = table::read_workbook(bytes).map_err(&unreadable)?;
            let mark = table::take_mark(&mut tables);
            (json::Source::Tables(tables), mark)
        }
    };
    Ok(Parsed {
        file: file_name.to_owned(),
        extension,
        source,
        mark,
    })
}

/// Import a parsed file into a project. Nothing is written unless the whole file
/// is valid, nor with `dry_run`; a file with problems is an
/// [`ImportError::Invalid`] (a dry run returns its report, problems included).
///
/// # Errors
/// As [`import_bytes_with`].
pub fn import_parsed_with(
    doc: &mut ProjectDoc,
    parsed: Parsed,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let Parsed {
        file,
        extension,
        source,
        mark,
    } = parsed;
    let file_name = file.as_str();
    let unreadable = |reason: String| ImportError::Unreadable {
        file: file_name.to_owned(),
        reason,
    };
    let document = |source: DocError| ImportError::Document {
        file: file_name.to_owned(),
        source: Box::new(source),
    };
    let state = DocState::read(doc).map_err(document)?;
    let mappings = mappings(options, &state.project)?;
    let mut notes = Vec::new();
    let base = match &mark {
        Some(_) if options.plain => {
            notes.push(
                "imported as a plain file (--plain): every cell of it is the truth".to_owned(),
            );
            None
        }
        Some(mark) if mark.project_id != state.project.project_id => {
            notes.push(format!(
                "exported from another project ({}): imported as a plain file",
                mark.project_id
            ));
            None
        }
        Some(mark) => match doc.project_at(&mark.heads) {
            Ok(base) => Some((mark, base)),
            Err(DocError::NotFound { .. }) => {
                return Err(unreadable(format!(
                    "it was exported from a version of this project that this copy does not have yet ({}): let the node sync with the mesh first, or import it with --plain to make every cell the truth",
                    short_heads(&mark.heads)
                )));
            }
            Err(e) => return Err(document(e)),
        },
        None => None,
    };
    let reading = sheets::Reading {
        named_sheets: !matches!(extension.as_str(), "csv" | "tsv"),
        strict: options.strict,
        mappings: &mappings,
        from_reelmesh: mark.is_some(),
        record_id_first: base.is_some(),
        base_frames: base
            .iter()
            .flat_map(|(_, project)| &project.shots)
            .map(|shot| (shot.shot_id.clone(), shot.frame_count))
            .collect(),
    };
    let planned = match source {
        json::Source::Tables(tables) => sheets::plan(&state, tables, &reading),
        json::Source::Own(export) => json::plan_own(&state, &export, &reading),
    };
    let mut planned = match planned {
        Ok(planned) => planned,
        Err(Failure::Unreadable(reason)) => return Err(unreadable(reason)),
    };
    notes.append(&mut planned.notes);
    let mut report = ImportReport {
        file: file_name.to_owned(),
        sheets: planned.sheets,
        notes,
        problems: planned.problems,
        ..ImportReport::default()
    };
    if !report.problems.is_empty() {
        if options.dry_run {
            return Ok(report);
        }
        return Err(ImportError::Invalid {
            report: Box::new(report),
        });
    }
    let mut plan = planned.plan;
    if let Some((mark, base)) = &base {
        report.base = Some(merge::three_way(
            &mut plan,
            base,
            &state,
            options.keep_project,
            &mut report.conflicts,
            &mark.heads,
        ));
    }
    tally(&state, &plan, &mut report);
    for (header, mapping) in &mappings.given {
        if state
            .project
            .settings
            .header_map
            .get(header)
            .map(String::as_str)
            != Some(mapping.as_str())
        {
            report
                .remembered
                .push((header.clone(), mapping.as_str().to_owned()));
        }
    }
    report.remembered.sort();
    if options.dry_run {
        return Ok(report);
    }
    apply(doc, &state, plan).map_err(document)?;
    for (header, field) in &report.remembered {
        doc.set_header_mapping(header, Some(field))
            .map_err(document)?;
    }
    report.written = true;
    Ok(report)
}

/// The first head, shortened, and how many more.
fn short_heads(heads: &[String]) -> String {
    match heads {
        [] => "no heads".to_owned(),
        [one] => one.chars().take(12).collect(),
        [first, rest @ ..] => format!(
            "{} and {} more",
            first.chars().take(12).collect::<String>(),
            rest.len()
        ),
    }
}

/// Why planning failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The file as a whole is unusable.
    Unreadable(String),
}

/// The document as the import sees it: read once, before any row is looked at.
pub(crate) struct DocState {
    /// The project now.
    pub(crate) project: Project,
    /// Codes of trashed shots (reserved: a new shot must not take them).
    pub(crate) trashed_codes: HashSet<ShotCode>,
    /// Trashed shots by id.
    pub(crate) trashed: HashMap<String, Shot>,
    /// Ids of every shot, trashed ones included.
    pub(crate) shot_ids: HashSet<String>,
    /// One above every code in the document.
    pub(crate) next_code: u64,
}

impl DocState {
    /// Every shot, live and trashed, by id.
    fn shots_by_id(&self) -> HashMap<&str, &Shot> {
        self.project
            .shots
            .iter()
            .map(|s| (s.shot_id.as_str(), s))
            .chain(self.trashed.iter().map(|(id, s)| (id.as_str(), s)))
            .collect()
    }

    fn read(doc: &ProjectDoc) -> Result<DocState, DocError> {
        let all = doc.all_shots()?;
        let next_code = all.iter().map(|(s, _)| s.code.0).max().unwrap_or(0) + 1;
        let trashed_codes = all
            .iter()
            .filter(|(_, deleted)| *deleted)
            .map(|(s, _)| s.code)
            .collect();
        let shot_ids = all.iter().map(|(s, _)| s.shot_id.clone()).collect();
        let trashed = all
            .into_iter()
            .filter(|(_, deleted)| *deleted)
            .map(|(s, _)| (s.shot_id.clone(), s))
            .collect();
        Ok(DocState {
            project: doc.project()?,
            trashed_codes,
            trashed,
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
    /// Trashed shots the file edits (three-way only): the edit is kept inside them.
    pub(crate) trashed_shots: Vec<Shot>,
    /// Names of the characters created because the shots name them.
    pub(crate) created_characters: Vec<String>,
    /// Names of the cinematic options created because the shots name them.
    pub(crate) created_cinematics: Vec<String>,
}

/// Count the planned records that are new (`create`d when only a shot named them)
/// and those that change: (added, updated).
fn tally_records<'a, T: PartialEq + 'a>(
    kind: &str,
    records: impl Iterator<Item = (&'a T, Option<&'a T>, &'a str)>,
    created: &[String],
    changes: &mut Vec<report::RecordChange>,
) -> (usize, usize) {
    let (mut added, mut updated) = (0, 0);
    for (planned, now, name) in records {
        let change = match now {
            None if created.iter().any(|n| n == name) => "create",
            None => "add",
            Some(now) if now != planned => "update",
            Some(_) => continue,
        };
        if change == "update" {
            updated += 1;
        } else {
            added += 1;
        }
        changes.push(report::RecordChange {
            kind: kind.to_owned(),
            record: name.to_owned(),
            change: change.to_owned(),
        });
    }
    (added, updated)
}

/// Count what the plan changes, as [`apply`] will write it, and list the records.
fn tally(state: &DocState, plan: &Plan, report: &mut ImportReport) {
    let mut changes = Vec::new();
    (report.characters_added, report.characters_updated) = tally_records(
        "characters",
        plan.characters
            .iter()
            .map(|c| (c, state.project.character(&c.character_id), c.name.as_str())),
        &plan.created_characters,
        &mut changes,
    );
    (report.cinematics_added, report.cinematics_updated) = tally_records(
        "cinematic_options",
        plan.cinematics
            .iter()
            .map(|c| (c, state.project.cinematic(&c.cinematic_id), c.name.as_str())),
        &plan.created_cinematics,
        &mut changes,
    );
    for shot in &plan.new_shots {
        changes.push(report::RecordChange {
            kind: "shots".to_owned(),
            record: shot.code.to_string(),
            change: "add".to_owned(),
        });
    }
    report.changes = changes;
    report.shots_added = plan.new_shots.len();
    let live = state.shots_by_id();
    let updated: Vec<&Shot> = plan
        .updated_shots
        .iter()
        .chain(&plan.trashed_shots)
        .filter(|shot| live.get(shot.shot_id.as_str()) != Some(shot))
        .collect();
    report.shots_updated = updated.len();
    for shot in updated {
        report.changes.push(report::RecordChange {
            kind: "shots".to_owned(),
            record: shot.code.to_string(),
            change: "update".to_owned(),
        });
    }
    report
        .created_characters
        .clone_from(&plan.created_characters);
    report
        .created_cinematics
        .clone_from(&plan.created_cinematics);
}

/// Write a checked plan. Only values that differ are written.
fn apply(doc: &mut ProjectDoc, state: &DocState, plan: Plan) -> Result<(), DocError> {
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
    for character in &plan.characters {
        if state.project.character(&character.character_id) != Some(character) {
            doc.put_character(character)?;
        }
    }
    for option in &plan.cinematics {
        if state.project.cinematic(&option.cinematic_id) != Some(option) {
            doc.put_cinematic(option)?;
        }
    }
    if !plan.new_shots.is_empty() {
        doc.add_shots(&plan.new_shots, &Position::End)?;
    }
    let live = state.shots_by_id();
    for shot in plan.updated_shots.iter().chain(&plan.trashed_shots) {
        if live.get(shot.shot_id.as_str()) != Some(&shot) {
            doc.update_shot(shot)?;
        }
    }
    Ok(())
}

/// Where a row of shots goes.
#[derive(Debug)]
pub(crate) enum ShotTarget {
    /// Update this live shot (a copy of it, code already set).
    Update(Shot),
    /// Create this new shot (id and code set, other fields empty).
    Create(Shot),
    /// Edit this trashed shot (three-way imports only: the file's row is a shot
    /// deleted since the export).
    Trashed(Shot),
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
    /// Match by Record ID before the code; a Record ID naming a trashed shot means it.
    record_id_first: bool,
}

impl<'a> ShotMatcher<'a> {
    /// A matcher for a file whose rows name `named_codes` explicitly.
    pub(crate) fn new(
        state: &'a DocState,
        named_codes: HashSet<ShotCode>,
        record_id_first: bool,
    ) -> ShotMatcher<'a> {
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
            record_id_first,
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
        let record_id = record_id.trim();
        if self.record_id_first
            && let Some(trashed) = self.state.trashed.get(record_id)
            && self.used_ids.insert(record_id.to_owned())
        {
            return Ok(ShotTarget::Trashed(trashed.clone()));
        }
        let live = if self.record_id_first {
            self.live_by_id
                .get(record_id)
                .copied()
                .filter(|i| !self.claimed.contains_key(i))
                .or(by_code)
        } else {
            by_code.or_else(by_id)
        };
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
