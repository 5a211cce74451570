//! Character, look and catalog edits.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A character's field as text, as [`set_character_value`] takes it back.
pub(super) fn character_value(character: &Character, key: &str) -> Option<(String, String)> {
    let value = match key {
        "name" => character.name.clone(),
        "appearance" => character.appearance.clone(),
        "reference_sheet" => character.reference_sheet.clone(),
        "lora" | "lora_path" => return Some(("lora".into(), character.lora_path.clone())),
        "lora_strength" => character.lora_strength.to_string(),
        "trigger_words" => character.trigger_words.join(", "),
        "clothing_options" => character.clothing_options.join(", "),
        "default_clothing" => character.default_clothing.clone(),
        "style_keywords" => character.style_keywords.join(", "),
        other => character
            .extra
            .get(other.strip_prefix("extra.")?)
            .cloned()
            .unwrap_or_default(),
    };
    Some((key.to_owned(), value))
}

/// Sets one field of `character` from text; the error names the field and why.
pub(super) fn set_character_value(
    project: &Project,
    character: &mut Character,
    field: &str,
    value: &str,
) -> Result<(), EditError> {
    let key = field_key(field);
    let invalid = |reason: &str| EditError::InvalidValue {
        record: format!("character '{}'", character.name),
        field: field.trim().to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    match key.as_str() {
        "name" => {
            let name = value.trim();
            if name.is_empty() {
                return Err(invalid("is empty: a character needs a name"));
            }
            if project.characters.iter().any(|c| {
                c.character_id != character.character_id
                    && c.name.to_lowercase() == name.to_lowercase()
            }) {
                return Err(EditError::NameTaken {
                    kind: "character",
                    name: name.to_owned(),
                });
            }
            name.clone_into(&mut character.name);
        }
        "appearance" => character.appearance = value.trim().to_owned(),
        "reference_sheet" => character.reference_sheet = value.trim().to_owned(),
        "lora" | "lora_path" => character.lora_path = value.trim().to_owned(),
        "lora_strength" => {
            let strength: f64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("is not a number"))?;
            if !(0.0..=1.0).contains(&strength) {
                return Err(invalid("is outside 0.0..=1.0"));
            }
            character.lora_strength = strength;
        }
        "trigger_words" => character.trigger_words = list(value),
        "clothing_options" => character.clothing_options = list(value),
        "default_clothing" => character.default_clothing = value.trim().to_owned(),
        "style_keywords" => character.style_keywords = list(value),
        other => match other.strip_prefix("extra.") {
            Some(name) if value.trim().is_empty() => {
                character.extra.remove(name);
            }
            Some(name) => {
                character
                    .extra
                    .insert(name.to_owned(), value.trim().to_owned());
            }
            None => {
                return Err(EditError::UnknownField {
                    kind: "character",
                    field: field.trim().to_owned(),
                    known: CHARACTER_FIELDS.to_owned(),
                });
            }
        },
    }
    Ok(())
}

/// Adds a character with the given fields (a name is required and unique).
pub(super) fn add_character(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
    values: &[(String, String)],
) -> Result<Applied, EditError> {
    let mut character = Character::new(name.trim());
    set_character_value(project, &mut character, "name", name)?;
    for (field, value) in values {
        set_character_value(project, &mut character, field, value)?;
    }
    doc.put_character(&character)?;
    Ok(applied(
        format!("added character '{}'", character.name),
        &character.character_id,
        vec![Edit::CharacterDelete {
            character: character.character_id.clone(),
        }],
    ))
}

/// Sets fields of a character; the undo puts back the values it had.
pub(super) fn set_character(
    doc: &mut ProjectDoc,
    project: &Project,
    mut character: Character,
    values: &[(String, String)],
) -> Result<Applied, EditError> {
    let mut old = Vec::new();
    for (field, value) in values {
        let key = field_key(field);
        let before = character_value(&character, &key).ok_or_else(|| EditError::UnknownField {
            kind: "character",
            field: field.trim().to_owned(),
            known: CHARACTER_FIELDS.to_owned(),
        })?;
        if !old.iter().any(|(k, _): &(String, String)| *k == before.0) {
            old.push(before);
        }
        set_character_value(project, &mut character, field, value)?;
    }
    doc.put_character(&character)?;
    Ok(applied(
        format!("edited character '{}'", character.name),
        &character.character_id,
        vec![Edit::CharacterSet {
            character: character.character_id.clone(),
            values: old,
        }],
    ))
}

/// A look's field as text, as [`set_look_value`] takes it back.
pub(super) fn look_value(look: &CinematicOption, key: &str) -> Option<(String, String)> {
    let value = match key {
        "name" => look.name.clone(),
        "notes" => look.notes.clone(),
        other => match other.strip_prefix("extra.") {
            Some(name) => look.extra.get(name).cloned().unwrap_or_default(),
            None => look.look.get(LookField::from_key(other)?).to_owned(),
        },
    };
    Some((key.to_owned(), value))
}

/// Sets one field of `look` from text; the error names the field and why.
pub(super) fn set_look_value(
    project: &Project,
    look: &mut CinematicOption,
    field: &str,
    value: &str,
) -> Result<(), EditError> {
    let key = field_key(field);
    match key.as_str() {
        "name" => {
            let name = value.trim();
            if name.is_empty() {
                return Err(EditError::InvalidValue {
                    record: format!("look '{}'", look.name),
                    field: field.trim().to_owned(),
                    value: value.to_owned(),
                    reason: "is empty: a look needs a name".into(),
                });
            }
            if project.cinematics.iter().any(|c| {
                c.cinematic_id != look.cinematic_id && c.name.to_lowercase() == name.to_lowercase()
            }) {
                return Err(EditError::NameTaken {
                    kind: "look",
                    name: name.to_owned(),
                });
            }
            name.clone_into(&mut look.name);
        }
        "notes" => look.notes = value.to_owned(),
        other => {
            if let Some(name) = other.strip_prefix("extra.") {
                if value.trim().is_empty() {
                    look.extra.remove(name);
                } else {
                    look.extra.insert(name.to_owned(), value.trim().to_owned());
                }
            } else if let Some(look_field) = LookField::from_key(other) {
                *look.look.get_mut(look_field) = value.trim().to_owned();
            } else {
                return Err(EditError::UnknownField {
                    kind: "look",
                    field: field.trim().to_owned(),
                    known: LOOK_FIELDS.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Adds a look (cinematic option) with the given fields (a name is required and unique).
pub(super) fn add_look(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
    values: &[(String, String)],
) -> Result<Applied, EditError> {
    let mut look = CinematicOption::new(name.trim());
    set_look_value(project, &mut look, "name", name)?;
    for (field, value) in values {
        set_look_value(project, &mut look, field, value)?;
    }
    doc.put_cinematic(&look)?;
    Ok(applied(
        format!("added look '{}'", look.name),
        &look.cinematic_id,
        vec![Edit::LookDelete {
            look: look.cinematic_id.clone(),
        }],
    ))
}

/// Sets fields of a look; the undo puts back the values it had.
pub(super) fn set_look(
    doc: &mut ProjectDoc,
    project: &Project,
    mut look: CinematicOption,
    values: &[(String, String)],
) -> Result<Applied, EditError> {
    let mut old = Vec::new();
    for (field, value) in values {
        let key = field_key(field);
        let before = look_value(&look, &key).ok_or_else(|| EditError::UnknownField {
            kind: "look",
            field: field.trim().to_owned(),
            known: LOOK_FIELDS.to_owned(),
        })?;
        if !old.iter().any(|(k, _): &(String, String)| *k == before.0) {
            old.push(before);
        }
        set_look_value(project, &mut look, field, value)?;
    }
    doc.put_cinematic(&look)?;
    Ok(applied(
        format!("edited look '{}'", look.name),
        &look.cinematic_id,
        vec![Edit::LookSet {
            look: look.cinematic_id.clone(),
            values: old,
        }],
    ))
}

/// Adds a value to a catalog (the choices offered for a look field).
pub(super) fn add_to_catalog(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
    value: &str,
) -> Result<Applied, EditError> {
    let Some(found) = catalog::catalog(name) else {
        let names: Vec<&str> = catalog::CATALOGS.iter().map(|c| c.name).collect();
        return Err(EditError::InvalidValue {
            record: "the catalogs".into(),
            field: "catalog".into(),
            value: name.to_owned(),
            reason: format!("is not a catalog ({})", names.join(", ")),
        });
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(EditError::InvalidValue {
            record: format!("catalog {name}"),
            field: "value".into(),
            value: value.to_owned(),
            reason: "is empty".into(),
        });
    }
    let known = found.defaults.contains(&value)
        || project
            .catalog_additions
            .get(name)
            .is_some_and(|list| list.iter().any(|v| v == value));
    if known {
        return Ok(Applied {
            summary: format!("catalog {name} has '{value}' already"),
            record_id: None,
            undo: Vec::new(),
        });
    }
    doc.add_catalog_value(name, value)?;
    Ok(Applied {
        summary: format!("added '{value}' to catalog {name}"),
        record_id: None,
        undo: vec![Edit::CatalogRemove {
            catalog: name.to_owned(),
            value: value.to_owned(),
        }],
    })
}

/// Moves a character to the trash (shots keep their links; restoring brings it back).
pub(super) fn trash_character(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
) -> Result<Applied, EditError> {
    let found = find_character(project, name)?;
    doc.set_record_deleted("characters", &found.character_id, true)?;
    Ok(applied(
        format!("moved character '{}' to the trash", found.name),
        &found.character_id,
        vec![Edit::CharacterRestore {
            character: found.character_id.clone(),
        }],
    ))
}

/// Brings a character back from the trash, by id.
pub(super) fn restore_character(doc: &mut ProjectDoc, id: &str) -> Result<Applied, EditError> {
    doc.set_record_deleted("characters", id, false)
        .map_err(|_| EditError::NoCharacter(id.to_owned()))?;
    Ok(applied(
        "restored a character".into(),
        id,
        vec![Edit::CharacterDelete {
            character: id.to_owned(),
        }],
    ))
}

/// Moves a look to the trash (shots keep their links; restoring brings it back).
pub(super) fn trash_look(
    doc: &mut ProjectDoc,
    project: &Project,
    name: &str,
) -> Result<Applied, EditError> {
    let found = find_look(project, name)?;
    doc.set_record_deleted("cinematics", &found.cinematic_id, true)?;
    Ok(applied(
        format!("moved look '{}' to the trash", found.name),
        &found.cinematic_id,
        vec![Edit::LookRestore {
            look: found.cinematic_id.clone(),
        }],
    ))
}

/// Brings a look back from the trash, by id.
pub(super) fn restore_look(doc: &mut ProjectDoc, id: &str) -> Result<Applied, EditError> {
    doc.set_record_deleted("cinematics", id, false)
        .map_err(|_| EditError::NoLook(id.to_owned()))?;
    Ok(applied(
        "restored a look".into(),
        id,
        vec![Edit::LookDelete {
            look: id.to_owned(),
        }],
    ))
}

/// Sets the project's prompt template once it parses.
pub(super) fn set_template(
    doc: &mut ProjectDoc,
    project: &Project,
    template: &str,
) -> Result<Applied, EditError> {
    crate::prompt::check_template(template).map_err(|reason| EditError::InvalidValue {
        record: "the project".into(),
        field: "template".into(),
        value: template.to_owned(),
        reason,
    })?;
    let old = project.settings.prompt_template.clone();
    doc.set_prompt_template(template)?;
    Ok(Applied {
        summary: "set the prompt template".into(),
        record_id: None,
        undo: vec![Edit::TemplateSet { template: old }],
    })
}

/// Takes a value out of a catalog; undone by adding it back when it was one this
/// project had added.
pub(super) fn remove_from_catalog(
    doc: &mut ProjectDoc,
    project: &Project,
    catalog: &str,
    value: &str,
) -> Result<Applied, EditError> {
    let added = project
        .catalog_additions
        .get(catalog)
        .is_some_and(|list| list.iter().any(|v| v == value.trim()));
    doc.remove_catalog_value(catalog, value)?;
    Ok(Applied {
        summary: format!("took '{}' out of catalog {catalog}", value.trim()),
        record_id: None,
        undo: if added {
            vec![Edit::CatalogAdd {
                catalog: catalog.to_owned(),
                value: value.to_owned(),
            }]
        } else {
            Vec::new()
        },
    })
}
