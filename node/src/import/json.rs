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
use reelmesh_protocol::model::Project;
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
    let mut errors = Vec::new();
    let mut bad = |list: &str, row: usize, column: &str, message: String| {
        errors.push(CellError {
            sheet: list.to_owned(),
            row,
            column: column.to_owned(),
            message,
            entries: true,
        });
    };
    let mut plan = super::Plan {
        name: Some(file.settings.name.clone()),
        frame_rate: Some(file.settings.frame_rate),
        ..super::Plan::default()
    };
    match check_template(&file.settings.prompt_template) {
        Ok(()) => plan.prompt_template = Some(file.settings.prompt_template.clone()),
        Err(e) => bad("settings", 1, "prompt_template", e),
    }
    for (name, values) in &file.catalog_additions {
        if catalog::catalog(name).is_none() {
            bad(
                "catalog_additions",
                1,
                name,
                format!("'{name}' is not a catalog"),
            );
            continue;
        }
        for value in values {
            plan.catalog_values.push((name.clone(), value.clone()));
        }
    }

    let project = &state.project;
    // File id → id in the document, for links.
    let mut character_ids: HashMap<String, String> = HashMap::new();
    let mut taken: HashSet<String> = HashSet::new();
    for (index, character) in file.characters.iter().enumerate() {
        let mut character = character.clone();
        if !(0.0..=1.0).contains(&character.lora_strength) {
            let message = format!(
                "'{}' is not a LoRA strength (a number from 0 to 1)",
                character.lora_strength
            );
            bad("characters", index + 1, "lora_strength", message);
        }
        let existing = project
            .character(&character.character_id)
            .or_else(|| {
                let key = character.name.to_lowercase();
                let mut same = project
                    .characters
                    .iter()
                    .filter(|c| c.name.to_lowercase() == key);
                same.next().filter(|_| same.next().is_none())
            })
            .map(|c| c.character_id.clone());
        let file_id = character.character_id.clone();
        if let Some(id) = existing {
            character.character_id = id;
        } else if character.character_id.is_empty() {
            character.character_id = reelmesh_protocol::model::new_record_id();
        }
        if !taken.insert(character.character_id.clone()) {
            let message = format!(
                "'{}' is the same character as an earlier entry",
                character.name
            );
            bad("characters", index + 1, "character_id", message);
        }
        character_ids.insert(file_id, character.character_id.clone());
        plan.characters.push(character);
    }
    let mut cinematic_ids: HashMap<String, String> = HashMap::new();
    taken.clear();
    for (index, option) in file.cinematics.iter().enumerate() {
        let mut option = option.clone();
        let existing = project
            .cinematic(&option.cinematic_id)
            .or_else(|| {
                let key = option.name.to_lowercase();
                let mut same = project
                    .cinematics
                    .iter()
                    .filter(|c| c.name.to_lowercase() == key);
                same.next().filter(|_| same.next().is_none())
            })
            .map(|c| c.cinematic_id.clone());
        let file_id = option.cinematic_id.clone();
        if let Some(id) = existing {
            option.cinematic_id = id;
        } else if option.cinematic_id.is_empty() {
            option.cinematic_id = reelmesh_protocol::model::new_record_id();
        }
        if !taken.insert(option.cinematic_id.clone()) {
            let message = format!(
                "'{}' is the same cinematic option as an earlier entry",
                option.name
            );
            bad("cinematics", index + 1, "cinematic_id", message);
        }
        cinematic_ids.insert(file_id, option.cinematic_id.clone());
        plan.cinematics.push(option);
    }

    let named_codes = file.shots.iter().map(|s| s.code).collect();
    let mut matcher = ShotMatcher::new(state, named_codes, reading.record_id_first);
    for (index, shot) in file.shots.iter().enumerate() {
        let row = index + 1;
        let mut linked = Vec::new();
        for character_id in &shot.characters {
            match character_ids.get(character_id) {
                Some(id) => linked.push(id.clone()),
                None if project.character(character_id).is_some() => {
                    linked.push(character_id.clone());
                }
                None => bad(
                    "shots",
                    row,
                    "characters",
                    format!("'{character_id}' is not a character id of the file or the project"),
                ),
            }
        }
        let look = match &shot.cinematic {
            None => None,
            Some(id) => match cinematic_ids.get(id) {
                Some(mapped) => Some(mapped.clone()),
                None if project.cinematic(id).is_some() => Some(id.clone()),
                None => {
                    let message =
                        format!("'{id}' is not a cinematic option id of the file or the project");
                    bad("shots", row, "cinematic", message);
                    None
                }
            },
        };
        let target = match matcher.resolve(row, Some(shot.code), &shot.shot_id) {
            Ok(target) => target,
            Err(message) => {
                bad("shots", row, "code", message);
                continue;
            }
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
            ShotTarget::Update(_) => plan.updated_shots.push(imported),
            ShotTarget::Create(_) => plan.new_shots.push(imported),
            ShotTarget::Trashed(_) => plan.trashed_shots.push(imported),
        }
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
        plan,
        sheets,
        notes: vec!["reelmesh JSON export: records keep their ids".to_owned()],
        problems: errors,
    })
}
