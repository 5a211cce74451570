//! Turning text tables into a checked [`Plan`]: recognise each table, map its headers
//! ([`super::columns`]), parse and check every cell, link shots to characters and
//! looks by name or record id, and create the characters and looks a shot names
//! that nothing defines.
//!
//! Every problem is collected as a [`CellError`]; the caller writes only a plan that
//! has none, so an import is all or nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use reelmesh_protocol::catalog;
use reelmesh_protocol::model::{Character, CinematicOption, LookField, Shot, ShotCode, ShotStatus};
use reelmesh_protocol::prompt::check_template;
use reelmesh_protocol::timecode::FrameRate;

use super::columns::{
    Column, How, Mappings, ProjectKey, SheetKind, Target, match_header, normalize,
};
use super::report::{ColumnReport, SheetReport};
use super::table::Table;
use super::{CellError, DEFAULT_SECONDS, DocState, Failure, Plan, ShotMatcher, ShotTarget};

mod records;

/// How to read the tables.
pub(crate) struct Reading<'a> {
    /// The tables are named sheets (sheet names count); otherwise one CSV table.
    pub(crate) named_sheets: bool,
    /// Refuse names that nothing defines instead of creating records for them.
    pub(crate) strict: bool,
    /// Header mappings to apply.
    pub(crate) mappings: &'a Mappings,
    /// The file carries reelmesh's export marker (its Prompt column is our own copy).
    pub(crate) from_reelmesh: bool,
    /// Match a row to its shot by Record ID before its code (a three-way import:
    /// codes may have been renumbered since the export).
    pub(crate) record_id_first: bool,
    /// Frame counts at the export, by shot id (three-way imports): tells which of
    /// Frame Count and Duration a user edited.
    pub(crate) base_frames: HashMap<String, u64>,
}

/// A checked plan and how the file was understood.
#[derive(Debug, Default)]
pub(crate) struct Planned {
    pub(crate) plan: Plan,
    pub(crate) sheets: Vec<SheetReport>,
    pub(crate) notes: Vec<String>,
    pub(crate) problems: Vec<CellError>,
}

/// Check `tables` against the document and plan the import.
pub(crate) fn plan(
    state: &DocState,
    tables: Vec<Table>,
    reading: &Reading<'_>,
) -> Result<Planned, Failure> {
    if tables.is_empty() {
        return Err(Failure::Unreadable("the file has no rows".to_owned()));
    }
    let single = tables.len() == 1;
    let mut planner = Planner {
        state,
        reading,
        out: Planned::default(),
        links: Links::default(),
    };
    let mut sheets: Vec<(SheetKind, Table)> = Vec::new();
    let mut ignored = Vec::new();
    for mut table in tables {
        let kind = reading
            .named_sheets
            .then(|| SheetKind::from_sheet_name(&table.name))
            .flatten()
            .or_else(|| SheetKind::from_headers(&table.headers))
            .or(single.then_some(SheetKind::Shots));
        match kind {
            Some(kind) => {
                if table.name.is_empty() {
                    kind.label().clone_into(&mut table.name);
                }
                sheets.push((kind, table));
            }
            None => ignored.push(table),
        }
    }
    if !sheets.iter().any(|(kind, _)| *kind != SheetKind::Project) {
        let names: Vec<String> = sheets
            .iter()
            .map(|(_, t)| &t.name)
            .chain(ignored.iter().map(|t| &t.name))
            .map(|name| format!("'{name}'"))
            .collect();
        return Err(Failure::Unreadable(format!(
            "no sheet of shots, characters or cinematic options (found {})",
            names.join(", ")
        )));
    }
    for table in &ignored {
        planner.out.notes.push(format!(
            "sheet '{}' is not a shot list, character bible or looks sheet: not imported",
            table.name
        ));
        planner.out.sheets.push(SheetReport {
            name: table.name.clone(),
            kind: None,
            rows: table.rows.len(),
            columns: Vec::new(),
        });
    }
    let of_kind = |wanted: SheetKind| {
        sheets
            .iter()
            .filter(move |(kind, _)| *kind == wanted)
            .map(|(_, table)| table)
    };
    for table in of_kind(SheetKind::Project) {
        planner.project_sheet(table);
    }
    let mut claims = Claims::default();
    for table in of_kind(SheetKind::Characters) {
        planner.characters_sheet(table, &mut claims);
    }
    let mut claims = Claims::default();
    for table in of_kind(SheetKind::Cinematics) {
        planner.cinematics_sheet(table, &mut claims);
    }
    let shot_tables: Vec<&Table> = of_kind(SheetKind::Shots).collect();
    planner.shot_sheets(&shot_tables);
    planner.note_created();
    // Sheets in file order for the report.
    let order: HashMap<&str, usize> = sheets
        .iter()
        .map(|(_, t)| t.name.as_str())
        .chain(ignored.iter().map(|t| t.name.as_str()))
        .enumerate()
        .map(|(i, name)| (name, i))
        .collect();
    planner
        .out
        .sheets
        .sort_by_key(|s| order.get(s.name.as_str()).copied().unwrap_or(usize::MAX));
    Ok(planner.out)
}

/// Records already taken by a row: lowercase name and record id, with the row.
#[derive(Default)]
struct Claims {
    names: HashMap<String, (String, usize)>,
    ids: HashMap<String, (String, usize)>,
}

/// How shots find the characters and looks they name.
#[derive(Default)]
struct Links {
    /// File Record ID → the id the record has in the project (when they differ).
    character_alias: HashMap<String, String>,
    cinematic_alias: HashMap<String, String>,
    /// Records created for names the shots gave and nothing defined, by lowercase name.
    created_characters: BTreeMap<String, Character>,
    created_cinematics: BTreeMap<String, CinematicOption>,
    /// Names that nothing defines, with the rows naming them (strict mode refuses them).
    created_order: Vec<(SheetKind, String)>,
}

struct Planner<'a> {
    state: &'a DocState,
    reading: &'a Reading<'a>,
    out: Planned,
    links: Links,
}

/// How one table's columns map.
struct Layout {
    /// Per column index.
    targets: Vec<Target>,
    /// The columns kept as extra fields: (index, header).
    extras: Vec<(usize, String)>,
    /// Where each known column is.
    at: HashMap<Column, usize>,
}

impl Layout {
    fn cell<'c>(&self, cells: &'c [String], column: Column) -> Option<(usize, &'c str)> {
        self.at
            .get(&column)
            .map(|index| (*index, Table::cell(cells, *index)))
    }
}

/// Split a multi-value cell on commas, semicolons and newlines, never inside
/// parentheses (an Airtable attachment is `name (url)`); each item once.
pub(crate) fn split_list(cell: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    let mut depth = 0_usize;
    let mut current = String::new();
    let push = |item: &str, items: &mut Vec<String>| {
        let item = item.trim();
        if !item.is_empty() && !items.iter().any(|i| i == item) {
            items.push(item.to_owned());
        }
    };
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 && matches!(c, ',' | ';' | '\n' | '\r' | '、' | '，') {
            push(&current, &mut items);
            current.clear();
        } else {
            current.push(c);
        }
    }
    push(&current, &mut items);
    items
}

/// The entries of a reference cell. Airtable exports attachments as
/// `name (url),name (url)`, and a file name may itself hold a comma: such a cell is
/// cut after each `(url)`; any other cell is a plain list ([`split_list`]).
pub(crate) fn split_references(cell: &str) -> Vec<String> {
    if !cell.contains(" (http") {
        return split_list(cell);
    }
    let mut items: Vec<String> = Vec::new();
    let mut rest = cell;
    while let Some(open) = rest.find(" (http") {
        let Some(close) = rest[open..].find(')').map(|i| open + i) else {
            break;
        };
        let entry = rest[..=close].trim().trim_start_matches([',', ';']).trim();
        if !entry.is_empty() && !items.iter().any(|i| i == entry) {
            items.push(entry.to_owned());
        }
        rest = &rest[close + 1..];
    }
    for item in split_list(rest) {
        if !items.contains(&item) {
            items.push(item);
        }
    }
    items
}

/// Spreadsheet column letters: 0 → A, 26 → AA.
fn column_letter(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(char::from(b'A' + (index % 26) as u8));
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.iter().rev().collect()
}

/// The header of column `index`, or "Column F" when it has none.
fn header_of(table: &Table, index: usize) -> String {
    match table.headers.get(index).map(|h| h.trim()) {
        Some(header) if !header.is_empty() => header.to_owned(),
        _ => format!("Column {}", column_letter(index)),
    }
}

fn parse_whole(cell: &str) -> Result<u64, String> {
    let text = cell.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n);
    }
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x < 9.0e15 => Ok(x as u64),
        _ => Err(format!("'{cell}' is not a whole number")),
    }
}

fn parse_seconds(cell: &str) -> Result<f64, String> {
    let text = cell.trim();
    let number = ["sec", "s", "초"]
        .iter()
        .find_map(|unit| text.strip_suffix(unit))
        .unwrap_or(text)
        .trim();
    match number.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("'{cell}' is not a duration in seconds")),
    }
}

/// What a column reads as, for the report: the field's name, "extra" or "skip".
fn target_label(target: Target) -> String {
    match target {
        Target::Field(column) => column.key().to_owned(),
        Target::Extra => "extra".to_owned(),
        Target::Skip => "skip".to_owned(),
    }
}

impl Planner<'_> {
    fn error(&mut self, table: &Table, row: usize, column: usize, message: String) {
        self.out.problems.push(CellError {
            sheet: table.name.clone(),
            row,
            column: header_of(table, column),
            message,
            entries: table.entries,
        });
    }

    /// Map every header of a table of `kind`; a field named twice is an error on the
    /// header row. Fills the sheet's report and notes.
    fn layout(&mut self, table: &Table, kind: SheetKind) -> Layout {
        let mut layout = Layout {
            targets: Vec::with_capacity(table.headers.len()),
            extras: Vec::new(),
            at: HashMap::new(),
        };
        let mut columns = Vec::new();
        let mut seen_extra: HashSet<String> = HashSet::new();
        for (index, raw) in table.headers.iter().enumerate() {
            let header = header_of(table, index);
            let has_data = || {
                table
                    .rows
                    .iter()
                    .any(|(_, cells)| !Table::cell(cells, index).trim().is_empty())
            };
            let (mut target, how) = if normalize(raw).is_empty() {
                if has_data() {
                    (Target::Extra, How::Unknown(None))
                } else {
                    (Target::Skip, How::Named)
                }
            } else {
                match_header(kind, raw, self.reading.mappings)
            };
            match target {
                Target::Field(column) => {
                    if let Some(first) = layout.at.get(&column) {
                        let message = format!(
                            "'{header}' is a second column for {} (the first is '{}'); --map '{header}=skip' to leave one out",
                            column.key(),
                            header_of(table, *first)
                        );
                        self.error(table, table.header_row, index, message);
                        target = Target::Skip;
                    } else {
                        layout.at.insert(column, index);
                    }
                }
                Target::Extra => {
                    if !seen_extra.insert(normalize(&header)) {
                        let message = format!("'{header}' is a second column with the same header");
                        self.error(table, table.header_row, index, message);
                        target = Target::Skip;
                    }
                }
                Target::Skip => {}
            }
            let note = self.column_notes(table, index, &header, kind, target, &how, &has_data);
            columns.push(ColumnReport {
                header,
                reads_as: target_label(target),
                how: match how {
                    How::Named => "named",
                    How::Mapped => "--map",
                    How::Remembered => "remembered",
                    How::Fuzzy(_) => "close match",
                    How::Unknown(_) => "unknown",
                }
                .to_owned(),
                note,
                formulas: table.formulas.get(&index).map_or(0, |f| f.cells),
            });
            if target == Target::Extra {
                layout.extras.push((index, header_of(table, index)));
            }
            layout.targets.push(target);
        }
        self.out.sheets.push(SheetReport {
            name: table.name.clone(),
            kind: Some(kind.key().to_owned()),
            rows: table.rows.len(),
            columns,
        });
        layout
    }

    /// What the report says of a column (a close match, an unknown header, the
    /// sheet's own prompt), and the problem of formulas saved without their values.
    #[allow(clippy::too_many_arguments)]
    fn column_notes(
        &mut self,
        table: &Table,
        index: usize,
        header: &str,
        kind: SheetKind,
        target: Target,
        how: &How,
        has_data: &dyn Fn() -> bool,
    ) -> Option<String> {
        let mut note = None;
        match (how, target) {
            (How::Fuzzy(name), Target::Field(column)) => {
                let text = format!(
                    "{}: '{header}' read as {} (close to '{name}'); --map '{header}=FIELD' if it is not",
                    table.name,
                    column.key()
                );
                note = Some(format!("close to '{name}'"));
                self.out.notes.push(text);
            }
            // A file reelmesh exported holds extra fields under their own headers.
            (How::Unknown(nearest), Target::Extra)
                if kind != SheetKind::Project && !self.reading.from_reelmesh =>
            {
                let hint = match nearest {
                    Some(column) => format!(
                        "; did you mean {}? --map '{header}={}'",
                        column.key(),
                        column.key()
                    ),
                    None => String::new(),
                };
                self.out.notes.push(format!(
                    "{}: '{header}' kept as an extra field{hint}",
                    table.name
                ));
                note = nearest.map(|c| format!("did you mean {}?", c.key()));
            }
            _ => {}
        }
        let formulas = table.formulas.get(&index).map_or(0, |f| f.cells);
        if let Target::Field(Column::AssembledPrompt) = target
            && formulas > 0
        {
            self.out.notes.push(format!(
                "{}: '{header}' holds the sheet's own prompt formula: not imported (reelmesh assembles the prompt from the same columns)",
                table.name
            ));
            note = Some("the sheet's formula: not imported".to_owned());
        } else if let Target::Field(Column::AssembledPrompt) = target
            && !self.reading.from_reelmesh
            && has_data()
            && !matches!(how, How::Mapped | How::Remembered)
        {
            self.out.notes.push(format!(
                "{}: '{header}' read as the assembled prompt and not imported (reelmesh assembles it from the same columns); --map '{header}=prompt_override' to keep it as each shot's manual prompt",
                table.name
            ));
            note = Some("derived: not imported".to_owned());
        }
        if let Some(formulas) = table.formulas.get(&index)
            && !matches!(
                target,
                Target::Skip | Target::Field(Column::AssembledPrompt)
            )
            && formulas.uncached > 0
        {
            let message = format!(
                "{} formula cells were saved without their value (the program that wrote the file does not calculate formulas, as openpyxl does not): open and save the file in Excel or LibreOffice, or --map '{header}=skip'",
                formulas.uncached
            );
            self.error(table, formulas.first_uncached_row, index, message);
        }
        note
    }

    /// The extra fields of a row: every column kept as extra, by header.
    fn extras(layout: &Layout, cells: &[String], extra: &mut BTreeMap<String, String>) {
        for (index, header) in &layout.extras {
            let value = Table::cell(cells, *index).trim();
            if value.is_empty() {
                extra.remove(header);
            } else {
                extra.insert(header.clone(), value.to_owned());
            }
        }
    }

    fn shot_sheets(&mut self, tables: &[&Table]) {
        let project = &self.state.project;
        let characters = NameIndex::new(
            project
                .characters
                .iter()
                .map(|c| (c.character_id.as_str(), c.name.as_str()))
                .chain(
                    self.out
                        .plan
                        .characters
                        .iter()
                        .map(|c| (c.character_id.as_str(), c.name.as_str())),
                ),
        );
        let looks = NameIndex::new(
            project
                .cinematics
                .iter()
                .map(|c| (c.cinematic_id.as_str(), c.name.as_str()))
                .chain(
                    self.out
                        .plan
                        .cinematics
                        .iter()
                        .map(|c| (c.cinematic_id.as_str(), c.name.as_str())),
                ),
        );
        let rate = self
            .out
            .plan
            .frame_rate
            .unwrap_or(project.settings.frame_rate);
        let mut layouts = Vec::new();
        let mut named_codes = HashSet::new();
        for table in tables {
            let layout = self.layout(table, SheetKind::Shots);
            if let Some(code_at) = layout.at.get(&Column::Code) {
                named_codes.extend(table.rows.iter().filter_map(|(_, cells)| {
                    Table::cell(cells, *code_at).parse::<ShotCode>().ok()
                }));
            }
            layouts.push(layout);
        }
        let state = self.state;
        let mut matcher = ShotMatcher::new(state, named_codes, self.reading.record_id_first);
        let context = ShotContext {
            characters,
            looks,
            rate,
        };
        for (table, layout) in tables.iter().zip(&layouts) {
            for (row, cells) in &table.rows {
                self.shot_row(table, *row, cells, layout, &context, &mut matcher);
            }
        }
    }

    /// The id a shot's link cell item means: a name, else a record id (the file's or
    /// the project's), else a record created for it (or, strict, an error).
    fn link(&mut self, kind: SheetKind, name: &str, index: &NameIndex) -> Result<String, String> {
        let key = name.to_lowercase();
        match index.by_name.get(&key) {
            Some(Ok(id)) => return Ok(id.clone()),
            Some(Err(n)) => {
                let what = match kind {
                    SheetKind::Characters => "characters",
                    _ => "cinematic options",
                };
                return Err(format!("'{name}' names {n} {what}; rename one of them"));
            }
            None => {}
        }
        let alias = match kind {
            SheetKind::Characters => &self.links.character_alias,
            _ => &self.links.cinematic_alias,
        };
        if let Some(id) = alias.get(name) {
            return Ok(id.clone());
        }
        if index.ids.contains(name) {
            return Ok(name.to_owned());
        }
        if self.reading.strict {
            return Err(match kind {
                SheetKind::Characters => format!(
                    "'{name}' is not a character (not in the project or a Characters sheet)"
                ),
                _ => format!(
                    "'{name}' is not a cinematic option (not in the project or a Cinematic Options sheet)"
                ),
            });
        }
        let id = match kind {
            SheetKind::Characters => {
                if let Some(created) = self.links.created_characters.get(&key) {
                    return Ok(created.character_id.clone());
                }
                let created = Character::new(name);
                let id = created.character_id.clone();
                self.links.created_characters.insert(key, created);
                id
            }
            _ => {
                if let Some(created) = self.links.created_cinematics.get(&key) {
                    return Ok(created.cinematic_id.clone());
                }
                let created = CinematicOption::new(name);
                let id = created.cinematic_id.clone();
                self.links.created_cinematics.insert(key, created);
                id
            }
        };
        self.links.created_order.push((kind, name.to_owned()));
        Ok(id)
    }

    fn shot_row(
        &mut self,
        table: &Table,
        row: usize,
        cells: &[String],
        layout: &Layout,
        context: &ShotContext,
        matcher: &mut ShotMatcher<'_>,
    ) {
        let errors_before = self.out.problems.len();
        let code = match layout.cell(cells, Column::Code) {
            Some((index, cell)) if !cell.trim().is_empty() => match cell.parse::<ShotCode>() {
                Ok(code) => Some(code),
                Err(e) => {
                    self.error(table, row, index, e);
                    None
                }
            },
            _ => None,
        };
        let (link_characters, look) = self.link_cells(table, row, cells, layout, context);
        let frames = match layout.cell(cells, Column::FrameCount) {
            Some((index, cell)) if !cell.trim().is_empty() => match parse_whole(cell) {
                Ok(frames) => Some(frames),
                Err(e) => {
                    self.error(table, row, index, e);
                    None
                }
            },
            _ => None,
        };
        let from_duration = match layout.cell(cells, Column::Duration) {
            Some((index, cell)) if !cell.trim().is_empty() => {
                let converted = parse_seconds(cell).and_then(|seconds| {
                    context
                        .rate
                        .seconds_to_frames(seconds)
                        .map_err(|e| e.to_string())
                });
                match converted {
                    Ok(duration_frames) => Some((duration_frames, index, cell)),
                    Err(e) => {
                        self.error(table, row, index, e);
                        None
                    }
                }
            }
            _ => None,
        };
        let status = match layout.cell(cells, Column::Status) {
            Some((index, cell)) => match cell.parse::<ShotStatus>() {
                Ok(status) => Some(status),
                Err(e) => {
                    self.error(table, row, index, e);
                    None
                }
            },
            None => None,
        };
        let code_failed = layout
            .cell(cells, Column::Code)
            .is_some_and(|(_, c)| !c.trim().is_empty())
            && code.is_none();
        if code_failed {
            return;
        }
        let record_id = layout
            .cell(cells, Column::RecordId)
            .map_or("", |(_, c)| c.trim());
        // A seed export names shots only by an id like "SHT-00012": that is the code.
        let code = code.or_else(|| {
            (!layout.at.contains_key(&Column::Code)
                && record_id.to_ascii_lowercase().starts_with("sht"))
            .then(|| record_id.parse::<ShotCode>().ok())
            .flatten()
        });
        let target = match matcher.resolve(row, code, record_id) {
            Ok(target) => target,
            Err(message) => {
                let index = layout
                    .at
                    .get(&Column::Code)
                    .or(layout.at.get(&Column::RecordId))
                    .copied()
                    .unwrap_or(0);
                self.error(table, row, index, message);
                return;
            }
        };
        let (mut shot, is_new, trashed) = match target {
            ShotTarget::Update(shot) => (shot, false, false),
            ShotTarget::Create(shot) => (shot, true, false),
            ShotTarget::Trashed(shot) => (shot, false, true),
        };
        let length = self.resolve_length(table, row, &shot, is_new, frames, from_duration, context);
        if self.out.problems.len() > errors_before {
            return;
        }
        let values = RowValues {
            characters: link_characters,
            look,
            length,
            status,
        };
        fill_shot(&mut shot, layout, cells, values, is_new, context);
        if is_new {
            self.out.plan.new_shots.push(shot);
        } else if trashed {
            self.out.plan.trashed_shots.push(shot);
        } else {
            self.out.plan.updated_shots.push(shot);
        }
    }

    /// A shot row's characters and look, linked by name (or id); a name that links
    /// to nothing is a problem of that cell.
    fn link_cells(
        &mut self,
        table: &Table,
        row: usize,
        cells: &[String],
        layout: &Layout,
        context: &ShotContext,
    ) -> (Option<Vec<String>>, Option<Option<String>>) {
        let characters = layout.cell(cells, Column::Characters).map(|(index, cell)| {
            let mut ids = Vec::new();
            for name in split_list(cell) {
                match self.link(SheetKind::Characters, &name, &context.characters) {
                    Ok(id) => {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                    Err(message) => self.error(table, row, index, message),
                }
            }
            ids
        });
        let look = layout.cell(cells, Column::Cinematic).map(|(index, cell)| {
            let name = cell.trim();
            if name.is_empty() {
                return None;
            }
            match self.link(SheetKind::Cinematics, name, &context.looks) {
                Ok(id) => Some(id),
                Err(message) => {
                    self.error(table, row, index, message);
                    None
                }
            }
        });
        (characters, look)
    }

    /// Frame Count and Duration both given and apart: one of them was edited and the
    /// other still says the length the shot had (at the export, or now); the
    /// edited one wins. Apart with neither the old length: a problem.
    #[allow(clippy::too_many_arguments)]
    fn resolve_length(
        &mut self,
        table: &Table,
        row: usize,
        shot: &Shot,
        is_new: bool,
        frames: Option<u64>,
        from_duration: Option<(u64, usize, &str)>,
        context: &ShotContext,
    ) -> Option<u64> {
        match (frames, from_duration) {
            (Some(frames), Some((duration_frames, index, cell)))
                if frames.abs_diff(duration_frames) > 1 =>
            {
                let had = (!is_new).then(|| {
                    self.reading
                        .base_frames
                        .get(&shot.shot_id)
                        .copied()
                        .unwrap_or(shot.frame_count)
                });
                match had {
                    Some(had) if frames == had => Some(duration_frames),
                    Some(had) if duration_frames.abs_diff(had) <= 1 => Some(frames),
                    _ => {
                        let message = format!(
                            "'{cell}' seconds is {duration_frames} frames at {}, but Frame Count says {frames}",
                            context.rate.label()
                        );
                        self.error(table, row, index, message);
                        None
                    }
                }
            }
            (Some(frames), _) => Some(frames),
            (None, duration) => duration.map(|(frames, _, _)| frames),
        }
    }

    /// Hand the created records to the plan (the report says so in one line per kind).
    fn note_created(&mut self) {
        let mut characters = Vec::new();
        let mut looks = Vec::new();
        for (kind, name) in &self.links.created_order {
            match kind {
                SheetKind::Characters => characters.push(name.clone()),
                _ => looks.push(name.clone()),
            }
        }
        let links = std::mem::take(&mut self.links);
        self.out
            .plan
            .characters
            .extend(links.created_characters.into_values());
        self.out
            .plan
            .cinematics
            .extend(links.created_cinematics.into_values());
        self.out.plan.created_characters = characters;
        self.out.plan.created_cinematics = looks;
    }
}

/// Names and ids of every character (or cinematic option) after this import.
/// What a shot row's linked and parsed cells say (`None`: absent or empty).
struct RowValues {
    characters: Option<Vec<String>>,
    look: Option<Option<String>>,
    length: Option<u64>,
    status: Option<ShotStatus>,
}

/// Write a row's cells into its shot (a new shot without a length gets the default).
fn fill_shot(
    shot: &mut Shot,
    layout: &Layout,
    cells: &[String],
    values: RowValues,
    is_new: bool,
    context: &ShotContext,
) {
    let text = |column: Column| layout.cell(cells, column).map(|(_, c)| c.trim().to_owned());
    if let Some(scene) = text(Column::Scene) {
        shot.scene = scene;
    }
    if let Some(action) = text(Column::Action) {
        shot.action = action;
    }
    if let Some(ids) = values.characters {
        shot.characters = ids;
    }
    if let Some(look) = values.look {
        shot.cinematic = look;
    }
    for field in LookField::ALL {
        if let Some(value) = text(Column::Look(field)) {
            *shot.look.get_mut(field) = value;
        }
    }
    if let Some(prompt) = text(Column::PromptOverride) {
        shot.prompt_override = (!prompt.is_empty()).then_some(prompt);
    }
    if let Some((_, cell)) = layout.cell(cells, Column::ReferenceImages) {
        shot.reference_images = split_references(cell);
    }
    if let Some(frames) = values.length {
        shot.frame_count = frames;
    } else if is_new {
        shot.frame_count = context
            .rate
            .seconds_to_frames(DEFAULT_SECONDS)
            .unwrap_or_default();
    }
    if let Some(status) = values.status {
        shot.status = status;
    }
    if let Some(workflow) = text(Column::Workflow) {
        shot.workflow = workflow;
    }
    if let Some(notes) = text(Column::Notes) {
        shot.notes = notes;
    }
    Planner::extras(layout, cells, &mut shot.extra);
}

struct NameIndex {
    /// Lowercase name → id; `Err(n)` when n records share the name.
    by_name: HashMap<String, Result<String, usize>>,
    ids: HashSet<String>,
}

impl NameIndex {
    fn new<'r>(records: impl Iterator<Item = (&'r str, &'r str)>) -> NameIndex {
        let mut names: HashMap<&str, &str> = HashMap::new();
        for (id, name) in records {
            names.insert(id, name);
        }
        let mut by_name: HashMap<String, Result<String, usize>> = HashMap::new();
        for (id, name) in &names {
            by_name
                .entry(name.to_lowercase())
                .and_modify(|entry| {
                    *entry = Err(match entry {
                        Ok(_) => 2,
                        Err(n) => *n + 1,
                    });
                })
                .or_insert_with(|| Ok((*id).to_owned()));
        }
        NameIndex {
            by_name,
            ids: names.keys().map(|id| (*id).to_owned()).collect(),
        }
    }
}

/// What every shot row is checked against.
struct ShotContext {
    characters: NameIndex,
    looks: NameIndex,
    rate: FrameRate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_semicolons_and_newlines_but_not_inside_parentheses() {
        assert_eq!(
            split_list("민아, 준;\nMina\r\n민아 ,"),
            ["민아", "준", "Mina"]
        );
        assert!(split_list("  ").is_empty());
        assert_eq!(
            split_list(
                "alley.jpg (https://dl.airtable.com/a/b,c.jpg), rain.png (https://x.test/r.png)"
            ),
            [
                "alley.jpg (https://dl.airtable.com/a/b,c.jpg)",
                "rain.png (https://x.test/r.png)"
            ]
        );
    }

    #[test]
    fn airtable_attachments_keep_commas_in_their_names() {
        assert_eq!(
            split_references(
                "alley.jpg (https://dl.airtable.com/a/alley.jpg),rain, night.png (https://dl.airtable.com/b/rain%2C%20night.png)"
            ),
            [
                "alley.jpg (https://dl.airtable.com/a/alley.jpg)",
                "rain, night.png (https://dl.airtable.com/b/rain%2C%20night.png)"
            ]
        );
        assert_eq!(
            split_references("ref/a.jpg, ref/b.jpg"),
            ["ref/a.jpg", "ref/b.jpg"]
        );
    }

    #[test]
    fn numbers_and_letters() {
        assert_eq!(parse_whole("72"), Ok(72));
        assert_eq!(parse_whole("72.0"), Ok(72));
        assert!(parse_whole("7.5").is_err());
        assert!(parse_whole("-1").is_err());
        assert_eq!(
            parse_whole("abc"),
            Err("'abc' is not a whole number".to_owned())
        );
        assert_eq!(parse_seconds("4s"), Ok(4.0));
        assert_eq!(parse_seconds("2.5 초"), Ok(2.5));
        assert!(parse_seconds("-3").is_err());
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27), "AB");
    }
}
