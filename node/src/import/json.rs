//! Import of reelmesh's JSON export (`serde_json` of [`Project`]): the same checks and
//! matching as a workbook, but records keep their ids, so a JSON round trip preserves
//! identity exactly. Problems are reported as "shots, row N, column 'field'", N being
//! the 1-based position in that list.

use std::collections::{HashMap, HashSet};

use reelmesh_protocol::catalog;
use reelmesh_protocol::model::Project;
use reelmesh_protocol::prompt::check_template;

use super::table::one_line;
use super::{CellError, DocState, Failure, Plan, ShotMatcher, ShotTarget};

/// Check a JSON export against the document and plan the import.
pub(crate) fn plan(state: &DocState, bytes: &[u8]) -> Result<Plan, Failure> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let file: Project = serde_json::from_slice(bytes).map_err(|e| {
        Failure::Unreadable(format!(
            "not a reelmesh JSON export ({})",
            one_line(&e.to_string())
        ))
    })?;
    let mut errors = Vec::new();
    let mut bad = |list: &str, row: usize, column: &str, message: String| {
        errors.push(CellError {
            sheet: list.to_owned(),
            row,
            column: column.to_owned(),
            message,
        });
    };
    let mut plan = Plan {
        name: Some(file.settings.name.clone()),
        frame_rate: Some(file.settings.frame_rate),
        ..Plan::default()
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
    let mut matcher = ShotMatcher::new(state, named_codes);
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
        let (ShotTarget::Update(existing) | ShotTarget::Create(existing)) = &target;
        let mut imported = shot.clone();
        imported.shot_id.clone_from(&existing.shot_id);
        imported.code = existing.code;
        imported.characters = linked;
        imported.cinematic = look;
        match target {
            ShotTarget::Update(_) => plan.updated_shots.push(imported),
            ShotTarget::Create(_) => plan.new_shots.push(imported),
        }
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(Failure::Cells(errors))
    }
}
