//! Re-importing an exported file without trampling: a three-way comparison of every
//! cell against the project as it was when the file was exported (the base).
//!
//! For each field of each record the file names:
//! - file = base: the file did not touch it. The project's value stays, so a
//!   teammate's newer edit survives.
//! - file ≠ base, project = base (or project = file): only the file changed it; the
//!   file's value is written.
//! - file ≠ base ≠ project ≠ file: both changed it. A [`Conflict`] with all three
//!   values is reported; the file's value wins unless `keep_project`.
//!
//! Records the base did not have (added to the file, or to the project, since the
//! export) are imported as a plain file would: every cell the file has.

use std::collections::{BTreeSet, HashMap};

use reelmesh_protocol::model::{Character, CinematicOption, LookField, Project, Shot};

use super::report::{BaseReport, Conflict};
use super::{DocState, Plan};

/// Compare the plan with `base` and the project now; keep the project's values the
/// file did not change, record conflicts.
pub(crate) fn three_way(
    plan: &mut Plan,
    base: &Project,
    state: &DocState,
    keep_project: bool,
    conflicts: &mut Vec<Conflict>,
    heads: &[String],
) -> BaseReport {
    let now = &state.project;
    let names = Names::new(base, now, plan);
    let mut merger = Merger {
        keep_project,
        conflicts,
        changed_in_file: 0,
        kept_from_project: 0,
    };
    merger.settings(plan, base, now);
    for character in &mut plan.characters {
        let (Some(then), Some(current)) = (
            base.character(&character.character_id),
            now.character(&character.character_id),
        ) else {
            continue;
        };
        let record = current.name.clone();
        merger.character(&record, character, then, current);
    }
    for option in &mut plan.cinematics {
        let (Some(then), Some(current)) = (
            base.cinematic(&option.cinematic_id),
            now.cinematic(&option.cinematic_id),
        ) else {
            continue;
        };
        let record = current.name.clone();
        merger.cinematic(&record, option, then, current);
    }
    let base_shots: HashMap<&str, &Shot> =
        base.shots.iter().map(|s| (s.shot_id.as_str(), s)).collect();
    let now_shots: HashMap<&str, &Shot> =
        now.shots.iter().map(|s| (s.shot_id.as_str(), s)).collect();
    for shot in &mut plan.updated_shots {
        let (Some(then), Some(current)) = (
            base_shots.get(shot.shot_id.as_str()),
            now_shots.get(shot.shot_id.as_str()),
        ) else {
            continue;
        };
        merger.shot(shot, then, current, &names);
    }
    merger.trashed_shots(plan, &base_shots, state, &names);
    BaseReport {
        heads: heads.to_vec(),
        changed_in_file: merger.changed_in_file,
        kept_from_project: merger.kept_from_project,
    }
}

/// Character and look names for showing links in conflicts.
struct Names {
    characters: HashMap<String, String>,
    cinematics: HashMap<String, String>,
}

impl Names {
    fn new(base: &Project, now: &Project, plan: &Plan) -> Names {
        let characters = base
            .characters
            .iter()
            .chain(&now.characters)
            .chain(&plan.characters)
            .map(|c| (c.character_id.clone(), c.name.clone()))
            .collect();
        let cinematics = base
            .cinematics
            .iter()
            .chain(&now.cinematics)
            .chain(&plan.cinematics)
            .map(|c| (c.cinematic_id.clone(), c.name.clone()))
            .collect();
        Names {
            characters,
            cinematics,
        }
    }
}

struct Merger<'c> {
    keep_project: bool,
    conflicts: &'c mut Vec<Conflict>,
    changed_in_file: usize,
    kept_from_project: usize,
}

impl Merger<'_> {
    /// The project's name, frame rate and prompt template, where the file has them.
    fn settings(&mut self, plan: &mut Plan, base: &Project, now: &Project) {
        if let Some(name) = plan.name.as_mut() {
            let mut value = name.clone();
            self.field(
                "project",
                "name",
                &mut value,
                &base.settings.name,
                &now.settings.name,
                &|v: &String| v.clone(),
            );
            *name = value;
        }
        if let Some(rate) = plan.frame_rate.as_mut() {
            self.field(
                "project",
                "frame_rate",
                rate,
                &base.settings.frame_rate,
                &now.settings.frame_rate,
                &|v| v.as_str().to_owned(),
            );
        }
        if let Some(template) = plan.prompt_template.as_mut() {
            self.field(
                "project",
                "prompt_template",
                template,
                &base.settings.prompt_template,
                &now.settings.prompt_template,
                &|v: &String| v.clone(),
            );
        }
    }

    /// Shots deleted in the project since the export: an unchanged row leaves them
    /// deleted; an edited row is a conflict (the edit goes inside the trashed shot,
    /// where restoring it brings it back, unless `keep_project`).
    fn trashed_shots(
        &mut self,
        plan: &mut Plan,
        base_shots: &HashMap<&str, &Shot>,
        state: &DocState,
        names: &Names,
    ) {
        let trashed = std::mem::take(&mut plan.trashed_shots);
        for mut shot in trashed {
            let (Some(then), Some(current)) = (
                base_shots.get(shot.shot_id.as_str()),
                state.trashed.get(&shot.shot_id),
            ) else {
                continue;
            };
            let before = self.conflicts.len();
            let changed = self.changed_in_file;
            let mut probe = Merger {
                keep_project: false,
                conflicts: &mut Vec::new(),
                changed_in_file: 0,
                kept_from_project: 0,
            };
            probe.shot(&mut shot, then, current, names);
            if probe.changed_in_file == 0 {
                continue;
            }
            self.conflicts.insert(
                before,
                Conflict {
                    record: current.code.to_string(),
                    field: "deleted".to_owned(),
                    base: "live".to_owned(),
                    file: format!("edited ({} cells)", probe.changed_in_file),
                    project: "deleted".to_owned(),
                    kept: if self.keep_project { "project" } else { "file" }.to_owned(),
                },
            );
            self.changed_in_file = changed + probe.changed_in_file;
            if !self.keep_project {
                plan.trashed_shots.push(shot);
            }
        }
    }

    /// Merge one field: `file` holds the file's value and ends with the one to write.
    fn field<V: PartialEq + Clone>(
        &mut self,
        record: &str,
        field: &str,
        file: &mut V,
        base: &V,
        now: &V,
        show: &dyn Fn(&V) -> String,
    ) {
        if file == base {
            if now != base {
                self.kept_from_project += 1;
                now.clone_into(file);
            }
            return;
        }
        if file == now {
            return;
        }
        self.changed_in_file += 1;
        if now != base {
            let kept = if self.keep_project { "project" } else { "file" };
            self.conflicts.push(Conflict {
                record: record.to_owned(),
                field: field.to_owned(),
                base: show(base),
                file: show(file),
                project: show(now),
                kept: kept.to_owned(),
            });
            if self.keep_project {
                now.clone_into(file);
            }
        }
    }

    /// Merge a map field key by key.
    fn map(
        &mut self,
        record: &str,
        field: &str,
        file: &mut std::collections::BTreeMap<String, String>,
        base: &std::collections::BTreeMap<String, String>,
        now: &std::collections::BTreeMap<String, String>,
    ) {
        let keys: BTreeSet<String> = file
            .keys()
            .chain(base.keys())
            .chain(now.keys())
            .cloned()
            .collect();
        for key in keys {
            let mut value = file.get(&key).cloned();
            self.field(
                record,
                &format!("{field} '{key}'"),
                &mut value,
                &base.get(&key).cloned(),
                &now.get(&key).cloned(),
                &|v: &Option<String>| v.clone().unwrap_or_default(),
            );
            match value {
                Some(value) => file.insert(key, value),
                None => file.remove(&key),
            };
        }
    }

    fn look(
        &mut self,
        record: &str,
        file: &mut reelmesh_protocol::model::Look,
        base: &reelmesh_protocol::model::Look,
        now: &reelmesh_protocol::model::Look,
    ) {
        for field in LookField::ALL {
            let mut value = file.get(field).to_owned();
            self.field(
                record,
                field.key(),
                &mut value,
                &base.get(field).to_owned(),
                &now.get(field).to_owned(),
                &|v: &String| v.clone(),
            );
            *file.get_mut(field) = value;
        }
    }

    fn shot(&mut self, file: &mut Shot, base: &Shot, now: &Shot, names: &Names) {
        let record = now.code.to_string();
        let text = |v: &String| v.clone();
        let list = |v: &Vec<String>| v.join(", ");
        self.field(
            &record,
            "code",
            &mut file.code,
            &base.code,
            &now.code,
            &|v| v.to_string(),
        );
        self.field(
            &record,
            "scene",
            &mut file.scene,
            &base.scene,
            &now.scene,
            &text,
        );
        self.field(
            &record,
            "action",
            &mut file.action,
            &base.action,
            &now.action,
            &text,
        );
        self.field(
            &record,
            "characters",
            &mut file.characters,
            &base.characters,
            &now.characters,
            &|ids: &Vec<String>| {
                ids.iter()
                    .map(|id| names.characters.get(id).unwrap_or(id).clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        self.field(
            &record,
            "cinematic",
            &mut file.cinematic,
            &base.cinematic,
            &now.cinematic,
            &|id: &Option<String>| {
                id.as_ref()
                    .map(|id| names.cinematics.get(id).unwrap_or(id).clone())
                    .unwrap_or_default()
            },
        );
        self.look(&record, &mut file.look, &base.look, &now.look);
        self.field(
            &record,
            "prompt_override",
            &mut file.prompt_override,
            &base.prompt_override,
            &now.prompt_override,
            &|v: &Option<String>| v.clone().unwrap_or_default(),
        );
        self.field(
            &record,
            "reference_images",
            &mut file.reference_images,
            &base.reference_images,
            &now.reference_images,
            &list,
        );
        self.field(
            &record,
            "frame_count",
            &mut file.frame_count,
            &base.frame_count,
            &now.frame_count,
            &|v| v.to_string(),
        );
        self.field(
            &record,
            "status",
            &mut file.status,
            &base.status,
            &now.status,
            &|v| v.to_string(),
        );
        self.field(
            &record,
            "workflow",
            &mut file.workflow,
            &base.workflow,
            &now.workflow,
            &text,
        );
        self.field(
            &record,
            "notes",
            &mut file.notes,
            &base.notes,
            &now.notes,
            &text,
        );
        self.map(&record, "extra", &mut file.extra, &base.extra, &now.extra);
    }

    fn character(&mut self, record: &str, file: &mut Character, base: &Character, now: &Character) {
        let text = |v: &String| v.clone();
        let list = |v: &Vec<String>| v.join(", ");
        self.field(record, "name", &mut file.name, &base.name, &now.name, &text);
        self.field(
            record,
            "appearance",
            &mut file.appearance,
            &base.appearance,
            &now.appearance,
            &text,
        );
        self.field(
            record,
            "reference_sheet",
            &mut file.reference_sheet,
            &base.reference_sheet,
            &now.reference_sheet,
            &text,
        );
        self.field(
            record,
            "lora_path",
            &mut file.lora_path,
            &base.lora_path,
            &now.lora_path,
            &text,
        );
        self.field(
            record,
            "lora_strength",
            &mut file.lora_strength,
            &base.lora_strength,
            &now.lora_strength,
            &|v| v.to_string(),
        );
        self.field(
            record,
            "trigger_words",
            &mut file.trigger_words,
            &base.trigger_words,
            &now.trigger_words,
            &list,
        );
        self.field(
            record,
            "clothing_options",
            &mut file.clothing_options,
            &base.clothing_options,
            &now.clothing_options,
            &list,
        );
        self.field(
            record,
            "default_clothing",
            &mut file.default_clothing,
            &base.default_clothing,
            &now.default_clothing,
            &text,
        );
        self.field(
            record,
            "style_keywords",
            &mut file.style_keywords,
            &base.style_keywords,
            &now.style_keywords,
            &list,
        );
        self.map(record, "extra", &mut file.extra, &base.extra, &now.extra);
    }

    fn cinematic(
        &mut self,
        record: &str,
        file: &mut CinematicOption,
        base: &CinematicOption,
        now: &CinematicOption,
    ) {
        let text = |v: &String| v.clone();
        self.field(record, "name", &mut file.name, &base.name, &now.name, &text);
        self.look(record, &mut file.look, &base.look, &now.look);
        self.field(
            record,
            "notes",
            &mut file.notes,
            &base.notes,
            &now.notes,
            &text,
        );
        self.map(record, "extra", &mut file.extra, &base.extra, &now.extra);
    }
}
