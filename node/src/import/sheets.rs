//! Turning text tables into a checked [`Plan`]: recognise each table, map its headers,
//! parse and check every cell, link shots to characters and looks by name.
//!
//! Every problem is collected as a [`CellError`]; the plan is only returned when there
//! are none, so the caller writes all or nothing.

use std::collections::{HashMap, HashSet};

use reelmesh_protocol::catalog;
use reelmesh_protocol::model::{Character, CinematicOption, ShotCode, ShotStatus};
use reelmesh_protocol::prompt::check_template;
use reelmesh_protocol::timecode::FrameRate;

use super::columns::{
    CINEMATIC_FIELDS, CharacterColumn, CinematicColumn, ProjectKey, SheetKind, ShotColumn,
    normalize,
};
use super::table::Table;
use super::{CellError, DEFAULT_SECONDS, DocState, Failure, Plan, ShotMatcher, ShotTarget};

/// Check `tables` against the document and plan the import. `workbook`: the tables are
/// named sheets (sheet names count); otherwise a single CSV table.
pub(crate) fn plan(state: &DocState, tables: Vec<Table>, workbook: bool) -> Result<Plan, Failure> {
    if tables.is_empty() {
        return Err(Failure::Unreadable("the file has no rows".to_owned()));
    }
    let single = tables.len() == 1;
    let mut planner = Planner {
        state,
        plan: Plan::default(),
        errors: Vec::new(),
    };
    let mut sheets: Vec<(SheetKind, Table)> = Vec::new();
    let mut ignored = Vec::new();
    for mut table in tables {
        let kind = workbook
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
            None => ignored.push(table.name),
        }
    }
    if !sheets.iter().any(|(kind, _)| *kind != SheetKind::Project) {
        let names: Vec<String> = sheets
            .iter()
            .map(|(_, t)| &t.name)
            .chain(&ignored)
            .map(|name| format!("'{name}'"))
            .collect();
        return Err(Failure::Unreadable(format!(
            "no sheet of shots, characters or cinematic options (found {})",
            names.join(", ")
        )));
    }
    for name in ignored {
        planner
            .plan
            .kept_columns
            .push(format!("{name}: whole sheet (not imported)"));
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
    let mut characters = Claims::default();
    for table in of_kind(SheetKind::Characters) {
        planner.characters_sheet(table, &mut characters);
    }
    let mut cinematics = Claims::default();
    for table in of_kind(SheetKind::Cinematics) {
        planner.cinematics_sheet(table, &mut cinematics);
    }
    let shot_tables: Vec<&Table> = of_kind(SheetKind::Shots).collect();
    planner.shot_sheets(&shot_tables);
    if planner.errors.is_empty() {
        Ok(planner.plan)
    } else {
        Err(Failure::Cells(planner.errors))
    }
}

/// Records already taken by a row: lowercase name and record id, with the row.
#[derive(Default)]
struct Claims {
    names: HashMap<String, (String, usize)>,
    ids: HashMap<String, (String, usize)>,
}

struct Planner<'a> {
    state: &'a DocState,
    plan: Plan,
    errors: Vec<CellError>,
}

/// How a header maps: a known column of type `C`, or an unknown one kept by header.
enum Mapped<C> {
    Known(C),
    Unknown(String),
    Skip,
}

/// Split a multi-value cell on commas, semicolons and newlines.
pub(crate) fn split_list(cell: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for item in cell.split([',', ';', '\n', '\r', '、', '，']) {
        let item = item.trim();
        if !item.is_empty() && !items.iter().any(|i| i == item) {
            items.push(item.to_owned());
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

impl Planner<'_> {
    fn error(&mut self, table: &Table, row: usize, column: usize, message: String) {
        self.errors.push(CellError {
            sheet: table.name.clone(),
            row,
            column: header_of(table, column),
            message,
        });
    }

    /// Map every header with `find`; a column named twice is an error on the header row.
    fn map_headers<C: Copy + PartialEq>(
        &mut self,
        table: &Table,
        find: impl Fn(&str) -> Option<C>,
    ) -> Vec<Mapped<C>> {
        let mut mapped: Vec<Mapped<C>> = Vec::new();
        let mut seen_unknown: HashSet<String> = HashSet::new();
        for (index, header) in table.headers.iter().enumerate() {
            let key = normalize(header);
            let entry = if key.is_empty() {
                let has_data = table
                    .rows
                    .iter()
                    .any(|(_, cells)| !Table::cell(cells, index).trim().is_empty());
                if has_data {
                    Mapped::Unknown(header_of(table, index))
                } else {
                    Mapped::Skip
                }
            } else if let Some(column) = find(&key) {
                if mapped
                    .iter()
                    .any(|m| matches!(m, Mapped::Known(c) if *c == column))
                {
                    let message =
                        format!("'{}' is a second column of the same kind", header.trim());
                    self.error(table, table.header_row, index, message);
                    Mapped::Skip
                } else {
                    Mapped::Known(column)
                }
            } else {
                let name = header_of(table, index);
                if seen_unknown.insert(name.clone()) {
                    Mapped::Unknown(name)
                } else {
                    let message = format!("'{name}' is a second column with the same header");
                    self.error(table, table.header_row, index, message);
                    Mapped::Skip
                }
            };
            mapped.push(entry);
        }
        mapped
    }

    /// Report unknown columns of a sheet whose unknown data is not kept.
    fn note_dropped<C>(&mut self, table: &Table, mapped: &[Mapped<C>]) {
        for m in mapped {
            if let Mapped::Unknown(header) = m {
                self.plan
                    .kept_columns
                    .push(format!("{}: {header} (not imported)", table.name));
            }
        }
    }

    fn project_sheet(&mut self, table: &Table) {
        let rows = std::iter::once((table.header_row, &table.headers))
            .chain(table.rows.iter().map(|(row, cells)| (*row, cells)));
        for (row, cells) in rows {
            let key_text = Table::cell(cells, 0).trim();
            let value = Table::cell(cells, 1);
            let bad = |planner: &mut Self, message: String| {
                planner.errors.push(CellError {
                    sheet: table.name.clone(),
                    row,
                    column: key_text.to_owned(),
                    message,
                });
            };
            match ProjectKey::find(key_text) {
                Some(ProjectKey::Header | ProjectKey::ProjectId) => {}
                Some(ProjectKey::Name) => {
                    if !value.trim().is_empty() {
                        self.plan.name = Some(value.trim().to_owned());
                    }
                }
                Some(ProjectKey::FrameRate) => match value.parse::<FrameRate>() {
                    Ok(rate) => self.plan.frame_rate = Some(rate),
                    Err(e) => bad(self, e.to_string()),
                },
                Some(ProjectKey::PromptTemplate) => {
                    if !value.trim().is_empty() {
                        match check_template(value) {
                            Ok(()) => self.plan.prompt_template = Some(value.to_owned()),
                            Err(e) => bad(self, e),
                        }
                    }
                }
                Some(ProjectKey::Catalog(name)) => {
                    if catalog::catalog(&name).is_none() {
                        bad(self, format!("'{name}' is not a catalog"));
                    } else if !value.trim().is_empty() {
                        self.plan
                            .catalog_values
                            .push((name, value.trim().to_owned()));
                    }
                }
                None if key_text.is_empty() => {}
                None => self
                    .plan
                    .kept_columns
                    .push(format!("{}: {key_text} (not imported)", table.name)),
            }
        }
    }

    /// Where the Name column is; an error if the sheet has none.
    fn name_column<C: PartialEq + Copy>(
        &mut self,
        table: &Table,
        mapped: &[Mapped<C>],
        name: C,
    ) -> Option<usize> {
        let found = mapped
            .iter()
            .position(|m| matches!(m, Mapped::Known(c) if *c == name));
        if found.is_none() {
            self.errors.push(CellError {
                sheet: table.name.clone(),
                row: table.header_row,
                column: "Name".to_owned(),
                message: "the sheet has no Name column".to_owned(),
            });
        }
        found
    }

    /// Check a row's name and record id, and find the existing record it means.
    /// Returns None (after reporting) when the row is unusable.
    #[allow(clippy::too_many_arguments)]
    fn claim<'r, T>(
        &mut self,
        table: &Table,
        row: usize,
        (name_at, id_at): (usize, Option<usize>),
        cells: &[String],
        claims: &mut Claims,
        existing: &'r [T],
        id_of: impl Fn(&T) -> &str,
        name_of: impl Fn(&T) -> &str,
    ) -> Option<(String, String, Option<&'r T>)> {
        let name = Table::cell(cells, name_at).trim().to_owned();
        let record_id = id_at
            .map_or("", |i| Table::cell(cells, i).trim())
            .to_owned();
        if name.is_empty() {
            self.error(table, row, name_at, "a name is required".to_owned());
            return None;
        }
        let key = name.to_lowercase();
        if let Some((sheet, other)) = claims.names.get(&key) {
            let message = format!("'{name}' is also named in {sheet}, row {other}");
            self.error(table, row, name_at, message);
            return None;
        }
        claims.names.insert(key.clone(), (table.name.clone(), row));
        let mut found = None;
        if !record_id.is_empty() {
            if let Some((sheet, other)) = claims.ids.get(&record_id) {
                let message = format!("'{record_id}' is also used in {sheet}, row {other}");
                self.error(table, row, id_at.unwrap_or(name_at), message);
                return None;
            }
            claims
                .ids
                .insert(record_id.clone(), (table.name.clone(), row));
            found = existing.iter().find(|r| id_of(r) == record_id);
        }
        if found.is_none() {
            let same_name: Vec<&T> = existing
                .iter()
                .filter(|r| name_of(r).to_lowercase() == key)
                .collect();
            if same_name.len() > 1 {
                let message = format!(
                    "{} records of the project are called '{name}'; add a Record ID column to pick one",
                    same_name.len()
                );
                self.error(table, row, name_at, message);
                return None;
            }
            found = same_name.first().copied();
        }
        if let Some(record) = found {
            let id = id_of(record).to_owned();
            if let Some((sheet, other)) = claims.ids.get(&id).filter(|(_, r)| *r != row) {
                let message = format!("this is the same record as {sheet}, row {other}");
                self.error(table, row, name_at, message);
                return None;
            }
            claims.ids.insert(id, (table.name.clone(), row));
        }
        Some((name, record_id, found))
    }

    fn characters_sheet(&mut self, table: &Table, claims: &mut Claims) {
        let mapped = self.map_headers(table, CharacterColumn::find);
        self.note_dropped(table, &mapped);
        let Some(name_at) = self.name_column(table, &mapped, CharacterColumn::Name) else {
            return;
        };
        let id_at = mapped
            .iter()
            .position(|m| matches!(m, Mapped::Known(CharacterColumn::RecordId)));
        let existing = &self.state.project.characters;
        for (row, cells) in &table.rows {
            let Some((name, record_id, found)) = self.claim(
                table,
                *row,
                (name_at, id_at),
                cells,
                claims,
                existing,
                |c: &Character| &c.character_id,
                |c: &Character| &c.name,
            ) else {
                continue;
            };
            let mut character = found.cloned().unwrap_or_else(|| {
                let mut new = Character::new(&name);
                if !record_id.is_empty() {
                    new.character_id = record_id;
                }
                new
            });
            character.name = name;
            let mut good = true;
            for (index, m) in mapped.iter().enumerate() {
                let Mapped::Known(column) = m else { continue };
                let cell = Table::cell(cells, index);
                let text = || cell.trim().to_owned();
                match column {
                    CharacterColumn::Name | CharacterColumn::RecordId => {}
                    CharacterColumn::Appearance => character.appearance = text(),
                    CharacterColumn::ReferenceSheet => character.reference_sheet = text(),
                    CharacterColumn::LoraPath => character.lora_path = text(),
                    CharacterColumn::LoraStrength => {
                        if cell.trim().is_empty() {
                            continue;
                        }
                        match cell.trim().parse::<f64>() {
                            Ok(x) if (0.0..=1.0).contains(&x) => character.lora_strength = x,
                            _ => {
                                let message = format!(
                                    "'{cell}' is not a LoRA strength (a number from 0 to 1)"
                                );
                                self.error(table, *row, index, message);
                                good = false;
                            }
                        }
                    }
                    CharacterColumn::TriggerWords => character.trigger_words = split_list(cell),
                    CharacterColumn::ClothingOptions => {
                        character.clothing_options = split_list(cell);
                    }
                    CharacterColumn::DefaultClothing => character.default_clothing = text(),
                    CharacterColumn::StyleKeywords => character.style_keywords = split_list(cell),
                }
            }
            if good {
                self.plan.characters.push(character);
            }
        }
    }

    fn cinematics_sheet(&mut self, table: &Table, claims: &mut Claims) {
        let mapped = self.map_headers(table, CinematicColumn::find);
        self.note_dropped(table, &mapped);
        let Some(name_at) = self.name_column(table, &mapped, CinematicColumn::Name) else {
            return;
        };
        let id_at = mapped
            .iter()
            .position(|m| matches!(m, Mapped::Known(CinematicColumn::RecordId)));
        let existing = &self.state.project.cinematics;
        for (row, cells) in &table.rows {
            let Some((name, record_id, found)) = self.claim(
                table,
                *row,
                (name_at, id_at),
                cells,
                claims,
                existing,
                |c: &CinematicOption| &c.cinematic_id,
                |c: &CinematicOption| &c.name,
            ) else {
                continue;
            };
            let mut option = found.cloned().unwrap_or_else(|| {
                let mut new = CinematicOption::new(&name);
                if !record_id.is_empty() {
                    new.cinematic_id = record_id;
                }
                new
            });
            option.name = name;
            for (index, m) in mapped.iter().enumerate() {
                let text = Table::cell(cells, index).trim().to_owned();
                match m {
                    Mapped::Known(CinematicColumn::Field(field)) => {
                        if let Some(field) = CINEMATIC_FIELDS.get(*field) {
                            *(field.get_mut)(&mut option) = text;
                        }
                    }
                    Mapped::Known(CinematicColumn::Notes) => option.notes = text,
                    _ => {}
                }
            }
            self.plan.cinematics.push(option);
        }
    }

    /// Lowercase name → id of every character (or cinematic option) after this import;
    /// `Err(n)` when n records share the name.
    fn name_index<'r>(
        records: impl Iterator<Item = (&'r str, &'r str)>,
    ) -> HashMap<String, Result<String, usize>> {
        let mut names: HashMap<&str, &str> = HashMap::new();
        for (id, name) in records {
            names.insert(id, name);
        }
        let mut index: HashMap<String, Result<String, usize>> = HashMap::new();
        for (id, name) in names {
            index
                .entry(name.to_lowercase())
                .and_modify(|entry| {
                    *entry = Err(match entry {
                        Ok(_) => 2,
                        Err(n) => *n + 1,
                    });
                })
                .or_insert_with(|| Ok(id.to_owned()));
        }
        index
    }

    fn shot_sheets(&mut self, tables: &[&Table]) {
        let project = &self.state.project;
        let characters = Self::name_index(
            project
                .characters
                .iter()
                .map(|c| (c.character_id.as_str(), c.name.as_str()))
                .chain(
                    self.plan
                        .characters
                        .iter()
                        .map(|c| (c.character_id.as_str(), c.name.as_str())),
                ),
        );
        let looks = Self::name_index(
            project
                .cinematics
                .iter()
                .map(|c| (c.cinematic_id.as_str(), c.name.as_str()))
                .chain(
                    self.plan
                        .cinematics
                        .iter()
                        .map(|c| (c.cinematic_id.as_str(), c.name.as_str())),
                ),
        );
        let rate = self.plan.frame_rate.unwrap_or(project.settings.frame_rate);
        let mut layouts = Vec::new();
        let mut named_codes = HashSet::new();
        for table in tables {
            let mapped = self.map_headers(table, ShotColumn::find);
            let mut at = [None; ShotColumn::ALL.len()];
            for (index, m) in mapped.iter().enumerate() {
                match m {
                    Mapped::Known(column) => at[*column as usize] = Some(index),
                    Mapped::Unknown(header) => self
                        .plan
                        .kept_columns
                        .push(format!("{}: {header}", table.name)),
                    Mapped::Skip => {}
                }
            }
            if let Some(code_at) = at[ShotColumn::Code as usize] {
                named_codes.extend(
                    table.rows.iter().filter_map(|(_, cells)| {
                        Table::cell(cells, code_at).parse::<ShotCode>().ok()
                    }),
                );
            }
            layouts.push((mapped, at));
        }
        let state = self.state;
        let mut matcher = ShotMatcher::new(state, named_codes);
        let context = ShotContext {
            characters: &characters,
            looks: &looks,
            rate,
        };
        for (table, (mapped, at)) in tables.iter().zip(&layouts) {
            for (row, cells) in &table.rows {
                self.shot_row(table, *row, cells, mapped, at, &context, &mut matcher);
            }
        }
    }

    #[allow(clippy::too_many_arguments, clippy::too_many_lines)]
    fn shot_row(
        &mut self,
        table: &Table,
        row: usize,
        cells: &[String],
        mapped: &[Mapped<ShotColumn>],
        at: &[Option<usize>; ShotColumn::ALL.len()],
        context: &ShotContext<'_>,
        matcher: &mut ShotMatcher<'_>,
    ) {
        let errors_before = self.errors.len();
        let cell_of = |column: ShotColumn| at[column as usize].map(|i| (i, Table::cell(cells, i)));
        let code = match cell_of(ShotColumn::Code) {
            Some((index, cell)) if !cell.trim().is_empty() => match cell.parse::<ShotCode>() {
                Ok(code) => Some(code),
                Err(e) => {
                    self.error(table, row, index, e);
                    None
                }
            },
            _ => None,
        };
        let link_characters = cell_of(ShotColumn::Characters).map(|(index, cell)| {
            let mut ids = Vec::new();
            for name in split_list(cell) {
                match context.characters.get(&name.to_lowercase()) {
                    Some(Ok(id)) => {
                        if !ids.contains(id) {
                            ids.push(id.clone());
                        }
                    }
                    Some(Err(n)) => self.error(
                        table,
                        row,
                        index,
                        format!("'{name}' names {n} characters; rename one of them"),
                    ),
                    None => self.error(
                        table,
                        row,
                        index,
                        format!(
                            "'{name}' is not a character (not in the project or a Characters sheet)"
                        ),
                    ),
                }
            }
            ids
        });
        let look = cell_of(ShotColumn::Cinematic).map(|(index, cell)| {
            let name = cell.trim();
            if name.is_empty() {
                return None;
            }
            match context.looks.get(&name.to_lowercase()) {
                Some(Ok(id)) => Some(id.clone()),
                Some(Err(n)) => {
                    let message = format!("'{name}' names {n} cinematic options; rename one of them");
                    self.error(table, row, index, message);
                    None
                }
                None => {
                    let message = format!(
                        "'{name}' is not a cinematic option (not in the project or a Cinematic Options sheet)"
                    );
                    self.error(table, row, index, message);
                    None
                }
            }
        });
        let frames = match cell_of(ShotColumn::FrameCount) {
            Some((index, cell)) if !cell.trim().is_empty() => match parse_whole(cell) {
                Ok(frames) => Some(frames),
                Err(e) => {
                    self.error(table, row, index, e);
                    None
                }
            },
            _ => None,
        };
        let from_duration = match cell_of(ShotColumn::Duration) {
            Some((index, cell)) if !cell.trim().is_empty() => {
                let converted = parse_seconds(cell).and_then(|seconds| {
                    context
                        .rate
                        .seconds_to_frames(seconds)
                        .map_err(|e| e.to_string())
                });
                match converted {
                    Ok(duration_frames) => match frames {
                        Some(frames) if frames.abs_diff(duration_frames) > 1 => {
                            let message = format!(
                                "'{cell}' seconds is {duration_frames} frames at {}, but Frame Count says {frames}",
                                context.rate.label()
                            );
                            self.error(table, row, index, message);
                            None
                        }
                        _ => Some(duration_frames),
                    },
                    Err(e) => {
                        self.error(table, row, index, e);
                        None
                    }
                }
            }
            _ => None,
        };
        let status = match cell_of(ShotColumn::Status) {
            Some((index, cell)) => match cell.parse::<ShotStatus>() {
                Ok(status) => Some(status),
                Err(e) => {
                    self.error(table, row, index, e);
                    None
                }
            },
            None => None,
        };
        let code_failed =
            cell_of(ShotColumn::Code).is_some_and(|(_, c)| !c.trim().is_empty()) && code.is_none();
        if code_failed {
            return;
        }
        let record_id = cell_of(ShotColumn::RecordId).map_or("", |(_, c)| c.trim());
        let target = match matcher.resolve(row, code, record_id) {
            Ok(target) => target,
            Err(message) => {
                let index = at[ShotColumn::Code as usize]
                    .or(at[ShotColumn::RecordId as usize])
                    .unwrap_or(0);
                self.error(table, row, index, message);
                return;
            }
        };
        if self.errors.len() > errors_before {
            return;
        }
        let (mut shot, is_new) = match target {
            ShotTarget::Update(shot) => (shot, false),
            ShotTarget::Create(shot) => (shot, true),
        };
        let text = |column: ShotColumn| cell_of(column).map(|(_, c)| c.trim().to_owned());
        if let Some(scene) = text(ShotColumn::Scene) {
            shot.scene = scene;
        }
        if let Some(action) = text(ShotColumn::Action) {
            shot.action = action;
        }
        if let Some(ids) = link_characters {
            shot.characters = ids;
        }
        if let Some(look) = look {
            shot.cinematic = look;
        }
        if let Some(prompt) = text(ShotColumn::PromptOverride) {
            shot.prompt_override = (!prompt.is_empty()).then_some(prompt);
        }
        if let Some((_, cell)) = cell_of(ShotColumn::ReferenceImages) {
            shot.reference_images = split_list(cell);
        }
        if let Some(frames) = frames.or(from_duration) {
            shot.frame_count = frames;
        } else if is_new {
            shot.frame_count = context
                .rate
                .seconds_to_frames(DEFAULT_SECONDS)
                .unwrap_or_default();
        }
        if let Some(status) = status {
            shot.status = status;
        }
        if let Some(workflow) = text(ShotColumn::Workflow) {
            shot.workflow = workflow;
        }
        if let Some(notes) = text(ShotColumn::Notes) {
            shot.notes = notes;
        }
        for (index, m) in mapped.iter().enumerate() {
            if let Mapped::Unknown(header) = m {
                let value = Table::cell(cells, index).trim();
                if value.is_empty() {
                    shot.extra.remove(header);
                } else {
                    shot.extra.insert(header.clone(), value.to_owned());
                }
            }
        }
        if is_new {
            self.plan.new_shots.push(shot);
        } else {
            self.plan.updated_shots.push(shot);
        }
    }
}

/// What every shot row is checked against.
struct ShotContext<'a> {
    characters: &'a HashMap<String, Result<String, usize>>,
    looks: &'a HashMap<String, Result<String, usize>>,
    rate: FrameRate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_semicolons_and_newlines() {
        assert_eq!(
            split_list("민아, 준;\nMina\r\n민아 ,"),
            ["민아", "준", "Mina"]
        );
        assert!(split_list("  ").is_empty());
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
