//! The character bible and the looks: a list on the left, the chosen record's
//! card on the right, every field editable (set when the field is left).
//!
//! A character's reference sheet is an image in the blob store: drop a file on the
//! window (or type its path) and it is stored by hash and linked. A look's fields
//! are the catalogs' dropdowns (a typed value joins the project's catalog); the
//! card lists the shots that use the look and the shots that override its values.

use egui::{Color32, RichText};
use reelmesh_protocol::api::Request;
use reelmesh_protocol::api::edit::Edit;
use reelmesh_protocol::catalog;
use reelmesh_protocol::model::{Character, CinematicOption, LookField, Project};

use super::{field, labelled};
use crate::editor::{Editor, Pending};

/// The character bible.
pub fn characters(editor: &mut Editor, ui: &mut egui::Ui) {
    let Some(view) = editor.project.clone() else {
        return;
    };
    let project = &view.read.project;
    egui::Panel::left("character-list")
        .default_size(200.0)
        .show(ui, |ui| {
            ui.heading("Characters");
            new_record(editor, ui, "New character name", |name| {
                Edit::CharacterAdd {
                    name,
                    values: Vec::new(),
                }
            });
            ui.separator();
            egui::ScrollArea::vertical().show(ui, |ui| {
                for character in &project.characters {
                    let selected =
                        editor.panels.character.as_deref() == Some(&character.character_id);
                    let uses = project
                        .shots
                        .iter()
                        .filter(|s| s.characters.contains(&character.character_id))
                        .count();
                    let label = format!("{} ({uses} shots)", character.name);
                    if ui.selectable_label(selected, label).clicked() {
                        editor.panels.character = Some(character.character_id.clone());
                    }
                }
            });
        });
    let chosen = editor
        .panels
        .character
        .as_deref()
        .and_then(|id| project.character(id))
        .or_else(|| project.characters.first())
        .cloned();
    egui::CentralPanel::default().show(ui, |ui| match chosen {
        Some(character) => character_card(editor, ui, project, &character),
        None => {
            ui.label("No characters yet: name one on the left, or import a shot list whose shots name them.");
        }
    });
}

fn character_card(editor: &mut Editor, ui: &mut egui::Ui, project: &Project, c: &Character) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading(&c.name);
            if ui.button("Move to trash").clicked() {
                editor.edit(Edit::CharacterDelete {
                    character: c.character_id.clone(),
                });
                editor.panels.character = None;
            }
        });
        reference_sheet(editor, ui, c);
        let id = &c.character_id;
        let lists = |list: &[String]| list.join(", ");
        let fields: [(&str, &str, String, bool); 7] = [
            ("name", "Name", c.name.clone(), false),
            (
                "appearance",
                "Appearance (the prompt's subject)",
                c.appearance.clone(),
                true,
            ),
            ("lora", "LoRA file", c.lora_path.clone(), false),
            (
                "trigger_words",
                "Trigger words (comma-separated)",
                lists(&c.trigger_words),
                false,
            ),
            (
                "clothing_options",
                "Clothing options (comma-separated)",
                lists(&c.clothing_options),
                false,
            ),
            (
                "default_clothing",
                "Default clothing",
                c.default_clothing.clone(),
                false,
            ),
            (
                "style_keywords",
                "Style keywords (comma-separated)",
                lists(&c.style_keywords),
                false,
            ),
        ];
        for (name, label, current, multiline) in fields {
            labelled(ui, label, |ui| {
                let key = format!("{id}/{name}");
                if let Some(value) = field(
                    ui,
                    &mut editor.panels.buffers,
                    &key,
                    label,
                    &current,
                    multiline,
                ) {
                    editor.edit(Edit::CharacterSet {
                        character: id.clone(),
                        values: vec![(name.to_owned(), value)],
                    });
                }
            });
        }
        if !c.clothing_options.is_empty() && !c.clothing_options.contains(&c.default_clothing) {
            ui.label(
                RichText::new("the default clothing is not one of the options")
                    .color(Color32::from_rgb(225, 140, 50)),
            );
        }
        labelled(ui, "LoRA strength", |ui| {
            let mut strength = c.lora_strength;
            let response =
                ui.add(egui::Slider::new(&mut strength, 0.0..=1.0).text("LoRA strength"));
            if response.drag_stopped() || (response.changed() && !response.dragged()) {
                editor.edit(Edit::CharacterSet {
                    character: id.clone(),
                    values: vec![("lora_strength".to_owned(), format!("{strength:.2}"))],
                });
            }
        });
        let shots: Vec<String> = project
            .shots
            .iter()
            .filter(|s| s.characters.contains(id))
            .map(|s| s.code.to_string())
            .collect();
        ui.label(format!("in {} shots: {}", shots.len(), shots.join(", ")));
    });
}

/// The reference sheet: its image, and how to set one.
fn reference_sheet(editor: &mut Editor, ui: &mut egui::Ui, c: &Character) {
    let sheet = c.reference_sheet.trim();
    if sheet.len() == 64 && sheet.bytes().all(|b| b.is_ascii_hexdigit()) {
        match editor.images.thumbnail(ui.ctx(), sheet) {
            Some(texture) => {
                ui.add(
                    egui::Image::new(&texture)
                        .max_height(200.0)
                        .alt_text(format!("reference sheet of {}", c.name)),
                );
            }
            None => {
                ui.label(
                    editor
                        .images
                        .problem(sheet)
                        .unwrap_or_else(|| "loading…".into()),
                );
            }
        }
    } else if !sheet.is_empty() {
        ui.label(format!("reference sheet: {sheet}"));
    }
    // A file dropped on the window while this card shows becomes the sheet.
    let dropped = ui.input(|i| i.raw.dropped_files.first().map(|f| f.path().to_owned()));
    if let Some(path) = dropped {
        editor.panels.image_path = path.display().to_string();
    }
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut editor.panels.image_path)
                .hint_text("Image file for the reference sheet (or drop it here)")
                .desired_width(320.0),
        )
        .accessible_name("Reference sheet file");
        let path = editor.panels.image_path.trim().to_owned();
        if ui
            .add_enabled(!path.is_empty(), egui::Button::new("Set reference sheet"))
            .clicked()
        {
            editor.send(
                Request::AddBlob { path: path.into() },
                Pending::ReferenceSheet(c.character_id.clone()),
            );
            editor.panels.image_path.clear();
        }
    });
}

/// The looks.
pub fn looks(editor: &mut Editor, ui: &mut egui::Ui) {
    let Some(view) = editor.project.clone() else {
        return;
    };
    let project = &view.read.project;
    egui::Panel::left("look-list")
        .default_size(200.0)
        .show(ui, |ui| {
            ui.heading("Looks");
            new_record(editor, ui, "New look name", |name| Edit::LookAdd {
                name,
                values: Vec::new(),
            });
            ui.separator();
            egui::ScrollArea::vertical().show(ui, |ui| {
                for look in &project.cinematics {
                    let selected = editor.panels.look.as_deref() == Some(&look.cinematic_id);
                    let uses = project
                        .shots
                        .iter()
                        .filter(|s| s.cinematic.as_deref() == Some(&look.cinematic_id))
                        .count();
                    if ui
                        .selectable_label(selected, format!("{} ({uses} shots)", look.name))
                        .clicked()
                    {
                        editor.panels.look = Some(look.cinematic_id.clone());
                    }
                }
            });
        });
    let chosen = editor
        .panels
        .look
        .as_deref()
        .and_then(|id| project.cinematic(id))
        .or_else(|| project.cinematics.first())
        .cloned();
    egui::CentralPanel::default().show(ui, |ui| match chosen {
        Some(look) => look_card(editor, ui, project, &look),
        None => {
            ui.label("No looks yet: name one on the left.");
        }
    });
}

fn look_card(editor: &mut Editor, ui: &mut egui::Ui, project: &Project, look: &CinematicOption) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.heading(&look.name);
            if ui.button("Move to trash").clicked() {
                editor.edit(Edit::LookDelete {
                    look: look.cinematic_id.clone(),
                });
                editor.panels.look = None;
            }
        });
        let id = &look.cinematic_id;
        for (name, label, current) in [
            ("name", "Name", &look.name),
            ("notes", "Notes", &look.notes),
        ] {
            labelled(ui, label, |ui| {
                let key = format!("{id}/{name}");
                if let Some(value) =
                    field(ui, &mut editor.panels.buffers, &key, label, current, false)
                {
                    editor.edit(Edit::LookSet {
                        look: id.clone(),
                        values: vec![(name.to_owned(), value)],
                    });
                }
            });
        }
        egui::Grid::new(("look-fields", id))
            .num_columns(2)
            .show(ui, |ui| {
                for field in LookField::ALL {
                    ui.label(field.label());
                    let current = look.look.get(field).to_owned();
                    if let Some(value) = catalog_choice(ui, project, field, &current) {
                        if !value.is_empty() && !catalog_values(project, field).contains(&value) {
                            editor.edit(Edit::CatalogAdd {
                                catalog: field.key().to_owned(),
                                value: value.clone(),
                            });
                        }
                        editor.edit(Edit::LookSet {
                            look: id.clone(),
                            values: vec![(field.key().to_owned(), value)],
                        });
                    }
                    ui.end_row();
                }
            });
        let using: Vec<&reelmesh_protocol::model::Shot> = project
            .shots
            .iter()
            .filter(|s| s.cinematic.as_deref() == Some(id))
            .collect();
        ui.separator();
        ui.label(format!(
            "used by {} shots: {}",
            using.len(),
            using
                .iter()
                .map(|s| s.code.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for shot in using {
            let overrides: Vec<String> = LookField::ALL
                .into_iter()
                .filter(|f| !shot.look.get(*f).trim().is_empty())
                .map(|f| format!("{} = {}", f.label(), shot.look.get(f)))
                .collect();
            if !overrides.is_empty() {
                ui.label(
                    RichText::new(format!("{} overrides: {}", shot.code, overrides.join("; ")))
                        .color(Color32::from_rgb(90, 160, 230)),
                );
            }
        }
    });
}

/// The catalog's values for `field`: the defaults, then the project's additions.
fn catalog_values(project: &Project, field: LookField) -> Vec<String> {
    let mut values: Vec<String> = catalog::catalog(field.key())
        .map(|c| c.defaults.iter().map(|v| (*v).to_owned()).collect())
        .unwrap_or_default();
    if let Some(added) = project.catalog_additions.get(field.key()) {
        values.extend(added.iter().cloned());
    }
    values
}

/// A dropdown of the catalog with a field for a value of one's own; the value
/// chosen or typed (Enter), if one was.
fn catalog_choice(
    ui: &mut egui::Ui,
    project: &Project,
    field: LookField,
    current: &str,
) -> Option<String> {
    let mut chosen = None;
    let id = ui.make_persistent_id(("custom", field.key()));
    egui::ComboBox::from_id_salt(("catalog", field.key()))
        .selected_text(if current.is_empty() { "—" } else { current })
        .width(260.0)
        .show_ui(ui, |ui| {
            if ui
                .selectable_label(current.is_empty(), "— (none)")
                .clicked()
            {
                chosen = Some(String::new());
            }
            for value in catalog_values(project, field) {
                if ui.selectable_label(current == value, &value).clicked() {
                    chosen = Some(value);
                }
            }
            ui.separator();
            let mut custom: String = ui.data_mut(|d| d.get_temp(id).unwrap_or_default());
            let response = ui
                .add(egui::TextEdit::singleline(&mut custom).hint_text("Your own value, Enter"))
                .accessible_name(format!("own {}", field.label()));
            if response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                chosen = Some(custom.trim().to_owned());
                custom.clear();
            }
            ui.data_mut(|d| d.insert_temp(id, custom));
        })
        .response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, field.label()));
    chosen
}

/// A field and a button that add a record named by what was typed.
fn new_record(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    hint: &str,
    make: impl FnOnce(String) -> Edit,
) {
    ui.horizontal(|ui| {
        let response = ui
            .add(
                egui::TextEdit::singleline(&mut editor.panels.new_name)
                    .hint_text(hint)
                    .desired_width(130.0),
            )
            .accessible_name(hint);
        let name = editor.panels.new_name.trim().to_owned();
        let enter = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if (ui
            .add_enabled(!name.is_empty(), egui::Button::new("Add"))
            .clicked()
            || enter)
            && !name.is_empty()
        {
            editor.edit(make(name));
            editor.panels.new_name.clear();
        }
    });
}
