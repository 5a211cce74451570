//! JSON in: reelmesh's own export (`serde_json` of [`Project`], with the version it
//! was made from), imported with the same checks and matching as a workbook but
//! keeping every record's id, so a JSON round trip preserves identity exactly; and
//! any other JSON whose lists hold records: the seed's data model
//! (`{"characters": [...], "cinematic_options": [...], "shots": [...]}` with
//! `scene_description`, `character_ids`, `cinematic_id`...), an export of another
//! tool, or a bare list of shots. Those become tables, one per list, whose keys go
//! through the header matcher like a sheet's headers. Problems are reported as
//! "shots, entry N, key 'field'", N being the 1-based position in that list.

use std::collections::{HashMap, HashSet};

use reelmesh_protocol::catalog;
use reelmesh_protocol::model::{Project, Shot};
use reelmesh_protocol::prompt::check_template;
use serde_json::Value;

use super::columns::{ProjectKey, SheetKind};
use super::report::SheetReport;
use super::sheets::{Planned, Reading};
use super::table::{Table, one_line};
use super::{CellError, DocState, ExportMark, Failure, ShotMatcher, ShotTarget};

/// What a JSON file holds.
pub(crate) enum Source {
    /// Tables of text cells (also what workbooks and CSV files give).
    Tables(Vec<Table>),
    /// reelmesh's own export.
    Own(Box<Project>),
}

/// Read a JSON file: reelmesh's export (with its mark), or tables.
pub(crate) fn read(bytes: &[u8]) -> Result<(Source, Option<ExportMark>), String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("not valid JSON ({})", one_line(&e.to_string())))?;
    let own = value.as_object().is_some_and(|root| {
        root.contains_key("project_id")
            && root.contains_key("shots")
            && root
                .get("settings")
                .and_then(Value::as_object)
                .is_some_and(|settings| settings.contains_key("frame_rate"))
    });
    if own {
        let mark = value
            .get("exported_from")
            .and_then(|mark| serde_json::from_value::<ExportMark>(mark.clone()).ok());
        let project: Project = serde_json::from_value(value).map_err(|e| {
            format!(
                "not a readable reelmesh JSON export ({})",
                one_line(&e.to_string())
            )
        })?;
        return Ok((Source::Own(Box::new(project)), mark));
    }
    Ok((Source::Tables(tables(&value)?), None))
}

/// The text of a JSON value as a cell: strings as they are, numbers in their
/// shortest form, lists joined with ", ", null as empty, objects as JSON.
fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items
            .iter()
            .map(cell_text)
            .filter(|item| !item.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(_) => value.to_string(),
    }
}

/// One table per list of records; top-level scalars that are settings make a
/// Project table.
fn tables(value: &Value) -> Result<Vec<Table>, String> {
    let mut tables = Vec::new();
    let mut settings: Vec<(usize, Vec<String>)> = Vec::new();
    match value {
        Value::Array(items) => tables.push(list_table("shots", items)?),
        Value::Object(root) => {
            for (key, value) in root {
                match value {
                    Value::Array(items) => tables.push(list_table(key, items)?),
                    Value::Object(inner)
                        if SheetKind::from_sheet_name(key) == Some(SheetKind::Project) =>
                    {
                        for (setting, value) in inner {
                            settings.push((
                                settings.len() + 1,
                                vec![setting.clone(), cell_text(value)],
                            ));
                        }
                    }
                    scalar if ProjectKey::find(key).is_some() => {
                        settings.push((settings.len() + 1, vec![key.clone(), cell_text(scalar)]));
                    }
                    _ => {}
                }
            }
        }
        _ => {
            return Err(
                "the JSON holds no list of shots, characters or cinematic options".to_owned(),
            );
        }
    }
    if !settings.is_empty() {
        let mut rows = vec![(0, vec!["Setting".to_owned(), "Value".to_owned()])];
        rows.extend(settings);
        if let Some(mut table) = Table::from_rows("project".to_owned(), rows.into_iter()) {
            table.entries = true;
            tables.push(table);
        }
    }
    if tables.is_empty() {
        return Err("the JSON holds no list of shots, characters or cinematic options".to_owned());
    }
    Ok(tables)
}

/// A list of records as a table: headers are every key, in first-seen order.
fn list_table(name: &str, items: &[Value]) -> Result<Table, String> {
    let mut headers: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (position, item) in items.iter().enumerate() {
        let Value::Object(record) = item else {
            return Err(format!(
                "'{name}', entry {}: a record must be an object with keys, not {}",
                position + 1,
                one_line(&item.to_string())
                    .chars()
                    .take(40)
                    .collect::<String>()
            ));
        };
        for key in record.keys() {
            if !index.contains_key(key) {
                index.insert(key.clone(), headers.len());
                headers.push(key.clone());
            }
        }
    }
    let rows = items
        .iter()
        .enumerate()
        .filter_map(|(position, item)| {
            let record = item.as_object()?;
            let mut cells = vec![String::new(); headers.len()];
            for (key, value) in record {
                if let Some(at) = index.get(key) {
                    cells[*at] = cell_text(value);
                }
            }
            Some((position + 1, cells))
        })
        .filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()))
        .collect();
    Ok(Table {
        name: name.to_owned(),
        headers,
        header_row: 0,
        rows,
        formulas: std::collections::BTreeMap::new(),
        entries: true,
    })
}

/// Check reelmesh's own JSON export against the document and plan the import.
pub(crate) fn plan_own(
    state: &DocState,
    file: &Project,
    reading: &Reading<'_>,
) -> Result<Planned, Failure> {
    let mut own = OwnPlan {
        project: &state.project,
        plan: super::Plan {
            name: Some(file.settings.name.clone()),
            frame_rate: Some(file.settings.frame_rate),
            ..super::Plan::default()
        },
        problems: Vec::new(),
    };
    own.settings(file);
    let character_ids = own.characters(file);
    let cinematic_ids = own.cinematics(file);
    let named_codes = file.shots.iter().map(|s| s.code).collect();
    let mut matcher = ShotMatcher::new(state, named_codes, reading.record_id_first);
    for (index, shot) in file.shots.iter().enumerate() {
        own.shot(
            index + 1,
            shot,
            &mut matcher,
            &character_ids,
            &cinematic_ids,
        );
    }
    let sheets = [
        ("settings", 1),
        ("characters", file.characters.len()),
        ("cinematics", file.cinematics.len()),
        ("shots", file.shots.len()),
    ]
    .into_iter()
    .map(|(name, rows)| SheetReport {
        name: name.to_owned(),
        kind: Some(name.to_owned()),
        rows,
        columns: Vec::new(),
    })
    .collect();
    Ok(Planned {
        plan: own.plan,
        sheets,
        notes: vec!["reelmesh JSON export: records keep their ids".to_owned()],
        problems: own.problems,
    })
}

/// The import of reelmesh's own export being planned: the plan and the problems
/// found, entry by entry.
struct OwnPlan<'a> {
    project: &'a Project,
    plan: super::Plan,
    problems: Vec<CellError>,
}

impl OwnPlan<'_> {
    /// A problem with `key` of entry `entry` (1-based) of `list`.
    fn bad(&mut self, list: &str, entry: usize, key: &str, message: String) {
        self.problems.push(CellError {
            sheet: list.to_owned(),
            row: entry,
            column: key.to_owned(),
            message,
            entries: true,
        });
    }

    /// The prompt template and catalog additions.
    fn settings(&mut self, file: &Project) {
        match check_template(&file.settings.prompt_template) {
            Ok(()) => self.plan.prompt_template = Some(file.settings.prompt_template.clone()),
            Err(e) => self.bad("settings", 1, "prompt_template", e),
        }
        for (name, values) in &file.catalog_additions {
            if catalog::catalog(name).is_none() {
                let message = format!("'{name}' is not a catalog");
                self.bad("catalog_additions", 1, name, message);
                continue;
            }
            for value in values {
                self.plan.catalog_values.push((name.clone(), value.clone()));
            }
        }
    }

    /// The file's characters, each matched to the project's by id or else by a
    /// unique name; returns file id → id in the document, for links.
    fn characters(&mut self, file: &Project) -> HashMap<String, String> {
        let mut ids = HashMap::new();
        let mut taken = HashSet::new();
        for (index, character) in file.characters.iter().enumerate() {
            let mut character = character.clone();
            if !(0.0..=1.0).contains(&character.lora_strength) {
                let message = format!(
                    "'{}' is not a LoRA strength (a number from 0 to 1)",
                    character.lora_strength
                );
                self.bad("characters", index + 1, "lora_strength", message);
            }
            let existing = self
                .project
                .character(&character.character_id)
                .or_else(|| only_one_named(&self.project.characters, &character.name, |c| &c.name))
                .map(|c| c.character_id.clone());
            let file_id = character.character_id.clone();
            character.character_id = document_id(existing, file_id.clone());
            if !taken.insert(character.character_id.clone()) {
                let message = format!(
                    "'{}' is the same character as an earlier entry",
                    character.name
                );
                self.bad("characters", index + 1, "character_id", message);
            }
            ids.insert(file_id, character.character_id.clone());
            self.plan.characters.push(character);
        }
        ids
    }

    /// The file's cinematic options, matched like [`Self::characters`].
    fn cinematics(&mut self, file: &Project) -> HashMap<String, String> {
        let mut ids = HashMap::new();
        let mut taken = HashSet::new();
        for (index, option) in file.cinematics.iter().enumerate() {
            let mut option = option.clone();
            let existing = self
                .project
                .cinematic(&option.cinematic_id)
                .or_else(|| only_one_named(&self.project.cinematics, &option.name, |c| &c.name))
                .map(|c| c.cinematic_id.clone());
            let file_id = option.cinematic_id.clone();
            option.cinematic_id = document_id(existing, file_id.clone());
            if !taken.insert(option.cinematic_id.clone()) {
                let message = format!(
                    "'{}' is the same cinematic option as an earlier entry",
                    option.name
                );
                self.bad("cinematics", index + 1, "cinematic_id", message);
            }
            ids.insert(file_id, option.cinematic_id.clone());
            self.plan.cinematics.push(option);
        }
        ids
    }

    /// Shot entry `entry`: its links mapped to document ids, and matched to the
    /// project's shot it updates (or creates, or brings back from the trash).
    fn shot(
        &mut self,
        entry: usize,
        shot: &Shot,
        matcher: &mut ShotMatcher<'_>,
        character_ids: &HashMap<String, String>,
        cinematic_ids: &HashMap<String, String>,
    ) {
        let project = self.project;
        let mut linked = Vec::new();
        for character_id in &shot.characters {
            match character_ids.get(character_id) {
                Some(id) => linked.push(id.clone()),
                None if project.character(character_id).is_some() => {
                    linked.push(character_id.clone());
                }
                None => {
                    let message = format!(
                        "'{character_id}' is not a character id of the file or the project"
                    );
                    self.bad("shots", entry, "characters", message);
                }
            }
        }
        let look = shot
            .cinematic
            .as_ref()
            .and_then(|id| match cinematic_ids.get(id) {
                Some(mapped) => Some(mapped.clone()),
                None if project.cinematic(id).is_some() => Some(id.clone()),
                None => {
                    let message =
                        format!("'{id}' is not a cinematic option id of the file or the project");
                    self.bad("shots", entry, "cinematic", message);
                    None
                }
            });
        let target = match matcher.resolve(entry, Some(shot.code), &shot.shot_id) {
            Ok(target) => target,
            Err(message) => return self.bad("shots", entry, "code", message),
        };
        let (ShotTarget::Update(existing)
        | ShotTarget::Create(existing)
        | ShotTarget::Trashed(existing)) = &target;
        let mut imported = shot.clone();
        imported.shot_id.clone_from(&existing.shot_id);
        imported.code = existing.code;
        imported.characters = linked;
        imported.cinematic = look;
        match target {
            ShotTarget::Update(_) => self.plan.updated_shots.push(imported),
            ShotTarget::Create(_) => self.plan.new_shots.push(imported),
            ShotTarget::Trashed(_) => self.plan.trashed_shots.push(imported),
        }
    }
}

/// The one record of `records` whose name is `name` (case aside); none when no
/// record or several have it.
fn only_one_named<'r, R>(
    records: &'r [R],
    name: &str,
    name_of: impl Fn(&R) -> &String,
) -> Option<&'r R> {
    let key = name.to_lowercase();
    let mut same = records.iter().filter(|r| name_of(r).to_lowercase() == key);
    same.next().filter(|_| same.next().is_none())
}

/// The id an imported record gets: the matched record's, else its own from the
/// file, else a new one.
fn document_id(existing: Option<String>, file_id: String) -> String {
    match existing {
        Some(id) => id,
        None if file_id.is_empty() => reelmesh_protocol::model::new_record_id(),
        None => file_id,
    }
}
