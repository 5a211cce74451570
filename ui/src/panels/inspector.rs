//! The inspector beside the table: the selected shot's prompt, live, with each
//! part of the formula and where it came from (the shot, its look, its
//! characters), the prompt override, the project's template, the selected take and
//! the review buttons.

use egui::{Color32, RichText};
use reelmesh_protocol::api::edit::Edit;
use reelmesh_protocol::model::Shot;
use reelmesh_protocol::prompt::{Source, prompt_parts};

use super::{field, labelled};
use crate::commands::Command;
use crate::editor::Editor;

/// The inspector panel.
pub fn inspector(editor: &mut Editor, ui: &mut egui::Ui) {
    let Some(view) = editor.project.clone() else {
        return;
    };
    let selected = editor.shots.last_selected();
    let Some((index, shot)) = selected.as_ref().and_then(|id| {
        view.read
            .project
            .shots
            .iter()
            .enumerate()
            .find(|(_, s)| &s.shot_id == id)
    }) else {
        ui.add_space(8.0);
        ui.label("Select a shot to see its prompt, takes and review.");
        template_editor(editor, ui);
        return;
    };
    let row = &view.rows[index];
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading(&row.code);
            crate::shots::status_chip(ui, shot.status);
        });
        ui.label(format!(
            "{} → {} · {} f · {:.2} s",
            row.timecode_in, row.timecode_out, row.frames, row.duration_s
        ));
        if !shot.review_note.is_empty() {
            ui.label(
                RichText::new(format!("revision note: {}", shot.review_note))
                    .color(Color32::from_rgb(225, 140, 50)),
            );
        }
        ui.separator();
        review_buttons(editor, ui);
        selected_take(editor, ui, shot);
        ui.separator();
        labelled(ui, "Prompt", |ui| {
            let mut text = row.prompt.as_str();
            ui.add(
                egui::TextEdit::multiline(&mut text)
                    .desired_rows(4)
                    .desired_width(f32::INFINITY),
            )
            .accessible_name("Prompt");
        });
        if row.prompt_overridden {
            ui.label(RichText::new("this shot's own prompt replaces the formula").italics());
        }
        parts(ui, &view.read.project, shot);
        ui.add_space(6.0);
        let key = format!("{}/prompt", shot.shot_id);
        let current = shot.prompt_override.clone().unwrap_or_default();
        if let Some(text) = field(
            ui,
            &mut editor.panels.buffers,
            &key,
            "Prompt override (empty: use the formula)",
            &current,
            true,
        ) {
            editor.edit(Edit::ShotSet {
                shot: shot.shot_id.clone(),
                values: vec![("prompt".to_owned(), text)],
            });
        }
        ui.separator();
        template_editor(editor, ui);
    });
}

fn review_buttons(editor: &mut Editor, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        for command in [
            Command::Approve,
            Command::NeedsRevision,
            Command::Regenerate,
            Command::RenderSelected,
        ] {
            let label = match command {
                Command::Approve => "Approve",
                Command::NeedsRevision => "Needs revision…",
                Command::Regenerate => "Regenerate",
                _ => "Render…",
            };
            if ui.button(label).clicked() {
                editor.run_command(command);
            }
        }
    });
}

/// The take the shot shows, as a thumbnail; a click opens the takes view.
fn selected_take(editor: &mut Editor, ui: &mut egui::Ui, shot: &Shot) {
    let Some(jobs) = editor.jobs.clone() else {
        return;
    };
    let mut takes: Vec<_> = jobs
        .takes
        .iter()
        .filter(|t| t.shot_id == shot.shot_id)
        .collect();
    if takes.is_empty() {
        ui.label("no takes yet");
        return;
    }
    takes.sort_by_key(|t| t.finished_at_ms);
    let chosen = takes
        .iter()
        .find(|t| t.take_id == shot.selected_take)
        .or(takes.last())
        .copied();
    if let Some(take) = chosen {
        let label = format!(
            "{} take{} · showing {} ({})",
            takes.len(),
            if takes.len() == 1 { "" } else { "s" },
            &take.take_id[..take.take_id.len().min(8)],
            take.workflow
        );
        ui.label(label);
        match editor.images.thumbnail(ui.ctx(), &take.blob) {
            Some(texture) => {
                let image = egui::Image::new(&texture)
                    .max_width(ui.available_width())
                    .alt_text(format!("selected take of {}", shot.code))
                    .sense(egui::Sense::click());
                if ui.add(image).clicked() {
                    editor.view = crate::editor::View::Takes;
                }
            }
            None => {
                let why = editor
                    .images
                    .problem(&take.blob)
                    .unwrap_or_else(|| "decoding…".to_owned());
                ui.label(why);
            }
        }
    }
}

/// Each placeholder, its value and where it came from.
fn parts(ui: &mut egui::Ui, project: &reelmesh_protocol::model::Project, shot: &Shot) {
    egui::CollapsingHeader::new("Where the prompt comes from")
        .default_open(true)
        .show(ui, |ui| {
            for part in prompt_parts(project, shot) {
                let (source, color) = match &part.source {
                    Source::Shot => ("from the shot".to_owned(), Color32::from_rgb(90, 160, 230)),
                    Source::Look(name) => (
                        format!("from look {name}"),
                        Color32::from_rgb(150, 110, 210),
                    ),
                    Source::Characters(names) => (
                        format!("from {}", names.join(", ")),
                        Color32::from_rgb(60, 170, 90),
                    ),
                    Source::Empty => ("empty: left out".to_owned(), Color32::GRAY),
                };
                ui.horizontal(|ui| {
                    ui.label(RichText::new(format!("{{{}}}", part.placeholder)).monospace());
                    ui.label(RichText::new(source).color(color).small());
                });
                if !part.value.is_empty() {
                    ui.indent(("part", &part.placeholder), |ui| {
                        ui.add(egui::Label::new(&part.value).wrap());
                    });
                }
                ui.add_space(2.0);
            }
        });
}

/// The project's prompt template, editable.
fn template_editor(editor: &mut Editor, ui: &mut egui::Ui) {
    let Some(view) = editor.project.clone() else {
        return;
    };
    let current = view.read.project.settings.prompt_template.clone();
    egui::CollapsingHeader::new("Prompt template (the whole project)")
        .default_open(false)
        .show(ui, |ui| {
            let text = editor
                .panels
                .template
                .get_or_insert_with(|| current.clone());
            ui.add(
                egui::TextEdit::multiline(text)
                    .desired_rows(4)
                    .desired_width(f32::INFINITY)
                    .font(egui::TextStyle::Monospace),
            )
            .accessible_name("Prompt template");
            ui.label(
                RichText::new(format!(
                    "placeholders: {}",
                    reelmesh_protocol::prompt::PLACEHOLDERS.join(", ")
                ))
                .small()
                .weak(),
            );
            let changed = *text != current;
            let template = text.clone();
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(changed, egui::Button::new("Save template"))
                    .clicked()
                {
                    editor.edit(Edit::TemplateSet { template });
                    editor.panels.template = None;
                }
                if ui
                    .add_enabled(changed, egui::Button::new("Revert"))
                    .clicked()
                {
                    editor.panels.template = None;
                }
            });
        });
}
