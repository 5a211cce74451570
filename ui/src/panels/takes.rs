//! The takes of the selected shot, for review: a gallery (newest first), one take
//! full size or two side by side, select the take the storyboard shows, approve,
//! ask for a revision with a note, or regenerate (a new take; the old ones stay).
//! Images are decoded off the UI thread ([`crate::images`]); a take rendered on
//! another machine is fetched from the peer that has it.

use egui::{Color32, RichText};
use reelmesh_protocol::api::edit::Edit;
use reelmesh_protocol::jobs::{Take, TakeMedia};

use crate::commands::Command;
use crate::editor::Editor;

/// The takes view.
pub fn takes(editor: &mut Editor, ui: &mut egui::Ui) {
    let Some(view) = editor.project.clone() else {
        return;
    };
    shot_list(editor, ui, &view);
    let Some(shot) = editor.shots.last_selected().and_then(|id| {
        view.read
            .project
            .shots
            .iter()
            .find(|s| s.shot_id == id)
            .cloned()
    }) else {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.label("Pick a shot on the left (or in the table) to review its takes.");
        });
        return;
    };
    egui::CentralPanel::default().show(ui, |ui| review(editor, ui, &shot));
}

/// The shots in timeline order with their status and take count: picking one here
/// selects it in the table too.
fn shot_list(editor: &mut Editor, ui: &mut egui::Ui, view: &crate::link::ProjectView) {
    let counts = editor.jobs.as_ref().map(|j| {
        let mut counts = std::collections::HashMap::<&str, usize>::new();
        for take in &j.takes {
            *counts.entry(take.shot_id.as_str()).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<std::collections::HashMap<String, usize>>()
    });
    let current = editor.shots.last_selected();
    let mut picked = None;
    egui::Panel::left("takes-shot-list")
        .default_size(230.0)
        .show(ui, |ui| {
            ui.heading("Shots");
            egui::ScrollArea::vertical().show_rows(ui, 22.0, view.rows.len(), |ui, range| {
                for (row, shot) in view.rows[range.clone()]
                    .iter()
                    .zip(&view.read.project.shots[range])
                {
                    let takes = counts
                        .as_ref()
                        .and_then(|c| c.get(&row.shot_id))
                        .copied()
                        .unwrap_or(0);
                    ui.horizontal(|ui| {
                        let (dot, _) =
                            ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                        ui.painter().circle_filled(
                            dot.center(),
                            4.0,
                            crate::shots::status_color(shot.status),
                        );
                        let label = format!("{} · {}", row.code, plural(takes, "take"));
                        let selected = current.as_deref() == Some(row.shot_id.as_str());
                        if ui.selectable_label(selected, label).clicked() {
                            picked = Some(row.shot_id.clone());
                        }
                    });
                }
            });
        });
    if let Some(id) = picked {
        editor.shots.select_only(&id);
    }
}

/// The review of one shot: buttons, the big view, the gallery.
fn review(editor: &mut Editor, ui: &mut egui::Ui, shot: &reelmesh_protocol::model::Shot) {
    let shot = shot.clone();
    let mut takes: Vec<Take> = editor
        .jobs
        .as_ref()
        .map(|j| {
            j.takes
                .iter()
                .filter(|t| t.shot_id == shot.shot_id)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    takes.sort_by_key(|t| std::cmp::Reverse(t.finished_at_ms));
    ui.horizontal(|ui| {
        ui.heading(format!("{} · {}", shot.code, plural(takes.len(), "take")));
        crate::shots::status_chip(ui, shot.status);
        for command in [
            Command::Approve,
            Command::NeedsRevision,
            Command::Regenerate,
        ] {
            if ui.button(command.label()).clicked() {
                editor.run_command(command);
            }
        }
    });
    if !shot.review_note.is_empty() {
        ui.label(
            RichText::new(format!("revision note: {}", shot.review_note))
                .color(Color32::from_rgb(225, 140, 50)),
        );
    }
    if takes.is_empty() {
        ui.label("No takes yet: render the shot (Ctrl+R).");
        return;
    }
    for hash in editor.images.take_missing() {
        editor.send(
            reelmesh_protocol::api::Request::Fetch {
                hashes: vec![hash.clone()],
            },
            crate::editor::Pending::Fetch(hash),
        );
    }
    editor
        .panels
        .compare
        .retain(|id| takes.iter().any(|t| &t.take_id == id));
    let shown: Vec<Take> = if editor.panels.compare.len() == 2 {
        takes
            .iter()
            .filter(|t| editor.panels.compare.contains(&t.take_id))
            .cloned()
            .collect()
    } else {
        editor
            .panels
            .full
            .as_ref()
            .and_then(|id| takes.iter().find(|t| &t.take_id == id))
            .or_else(|| takes.iter().find(|t| t.take_id == shot.selected_take))
            .or(takes.first())
            .into_iter()
            .cloned()
            .collect()
    };
    let gallery_height = 150.0;
    let big = (ui.available_height() - gallery_height - 40.0).max(160.0);
    ui.columns(shown.len().max(1), |columns| {
        for (column, take) in columns.iter_mut().zip(&shown) {
            big_take(
                editor,
                column,
                take,
                big,
                take.take_id == shot.selected_take,
            );
        }
    });
    ui.separator();
    egui::ScrollArea::horizontal().show(ui, |ui| {
        ui.horizontal(|ui| {
            for take in &takes {
                gallery_item(
                    editor,
                    ui,
                    &shot.shot_id,
                    take,
                    take.take_id == shot.selected_take,
                );
            }
        });
    });
}

fn short(take: &Take) -> &str {
    &take.take_id[..take.take_id.len().min(8)]
}

fn describe(take: &Take) -> String {
    match take.media {
        TakeMedia::Image => format!("{}×{} {}", take.width, take.height, take.extension),
        TakeMedia::Card => format!(
            "storyboard card {}×{} {}",
            take.width, take.height, take.extension
        ),
        _ => format!(
            "clip {} f · {:.1} s · {}",
            take.frames,
            take.duration_ms as f64 / 1000.0,
            take.extension
        ),
    }
}

fn big_take(editor: &mut Editor, ui: &mut egui::Ui, take: &Take, height: f32, selected: bool) {
    ui.label(format!(
        "take {}{} · {} · seed {} · {}",
        short(take),
        if selected { " (selected)" } else { "" },
        take.workflow,
        take.seed,
        describe(take)
    ));
    let (picture, alt) = match playing(editor, ui, take) {
        Some((texture, frame)) => (
            Some(texture),
            format!(
                "take {} frame {} of {}",
                short(take),
                frame + 1,
                take.frames
            ),
        ),
        None => (
            editor.images.full(&take.blob),
            format!("take {}", short(take)),
        ),
    };
    match picture {
        Some(texture) => {
            ui.add(
                egui::Image::new(&texture)
                    .max_height(height)
                    .max_width(ui.available_width())
                    .alt_text(alt),
            );
        }
        None => {
            ui.label(
                editor
                    .images
                    .problem(&take.blob)
                    .unwrap_or_else(|| "decoding…".to_owned()),
            );
        }
    }
}

/// A clip take plays in a loop at its own rate (its first frame shows, through the
/// image decoder, until the clip is decoded): the frame shown and its index.
fn playing(
    editor: &mut Editor,
    ui: &egui::Ui,
    take: &Take,
) -> Option<(egui::TextureHandle, usize)> {
    if take.media != TakeMedia::Video || take.frames == 0 {
        return None;
    }
    let rate = if take.fps > 0.0 {
        ((take.fps * 1000.0).round() as u32, 1000)
    } else {
        editor
            .project
            .as_ref()?
            .read
            .project
            .settings
            .frame_rate
            .rational()
    };
    let reader = editor.images.reader();
    let waker = editor.images.waker();
    let clips = editor
        .panels
        .review_clips
        .get_or_insert_with(|| crate::clips::Clips::new(reader, waker));
    clips.receive();
    clips.want(&take.blob, (take.width, take.height), rate);
    let frame_time = f64::from(rate.1) / f64::from(rate.0);
    let frame = (ui.input(|i| i.time) * f64::from(rate.0) / f64::from(rate.1)) as usize
        % take.frames as usize;
    let texture = clips.frame(ui.ctx(), &take.blob, frame).ok().flatten()?;
    ui.ctx()
        .request_repaint_after(std::time::Duration::from_secs_f64(frame_time));
    Some((texture, frame))
}

fn gallery_item(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    shot_id: &str,
    take: &Take,
    selected: bool,
) {
    ui.vertical(|ui| {
        ui.set_width(150.0);
        let frame = egui::Frame::new()
            .stroke(if selected {
                egui::Stroke::new(2.0, ui.visuals().selection.stroke.color)
            } else {
                egui::Stroke::NONE
            })
            .inner_margin(2.0);
        frame.show(ui, |ui| {
            match editor.images.thumbnail(ui.ctx(), &take.blob) {
                Some(texture) => {
                    let image = egui::Image::new(&texture)
                        .max_size(egui::vec2(146.0, 90.0))
                        .alt_text(format!("take {}", short(take)))
                        .sense(egui::Sense::click());
                    if ui.add(image).clicked() {
                        editor.panels.full = Some(take.take_id.clone());
                        editor.panels.compare.clear();
                    }
                }
                None => {
                    ui.label(describe(take));
                }
            }
        });
        let kind = if take.media == TakeMedia::Video {
            "clip · "
        } else {
            ""
        };
        ui.label(RichText::new(format!("{kind}{} · {}", short(take), take.workflow)).small());
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!selected, egui::Button::new("Select").small())
                .accessible_name(format!("Select take {}", short(take)))
                .on_hover_text("the storyboard shows this take")
                .clicked()
            {
                editor.edit(Edit::TakeSelect {
                    shot: shot_id.to_owned(),
                    take: take.take_id.clone(),
                });
            }
            let mut comparing = editor.panels.compare.contains(&take.take_id);
            if ui
                .checkbox(&mut comparing, "Compare")
                .accessible_name(format!("Compare take {}", short(take)))
                .changed()
            {
                if comparing {
                    editor.panels.compare.push(take.take_id.clone());
                    if editor.panels.compare.len() > 2 {
                        editor.panels.compare.remove(0);
                    }
                } else {
                    editor.panels.compare.retain(|id| id != &take.take_id);
                }
            }
        });
    });
}

/// `1 take`, `3 takes`.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
