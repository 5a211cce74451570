//! Dialogs, one at a time, each a modal: the command palette, import (a dry run
//! first: how each column reads, what would change, every problem; then the
//! import), export, render (with the workflows the mesh can run now, and why the
//! others cannot), a revision note, and the invite ticket (hidden until asked: it
//! holds the mesh secret).

use std::path::PathBuf;

use egui::{Id, RichText};
use reelmesh_protocol::api::edit::{Edit, Verdict};
use reelmesh_protocol::api::import::{ImportOptions, ImportReport};
use reelmesh_protocol::api::render::RenderRequest;
use reelmesh_protocol::api::{Reply, Request};
use reelmesh_protocol::publish::{PageLayout, PublishOptions};

use crate::commands::Command;
use crate::editor::{Editor, Pending};

/// The open dialog.
#[derive(Debug, Clone)]
pub enum Dialog {
    /// The command palette.
    Palette {
        /// What was typed.
        query: String,
    },
    /// Import a shot list.
    Import {
        /// The file.
        path: String,
        /// The dry run's report, once it came.
        preview: Option<Box<ImportReport>>,
        /// A request is in flight.
        waiting: bool,
        /// Refuse names nothing defines.
        strict: bool,
        /// Keep the project's side of a conflict.
        keep_project: bool,
    },
    /// Export the project.
    Export {
        /// The file.
        path: String,
    },
    /// Publish the cut.
    Publish {
        /// The file, or the folder with `all`.
        path: String,
        /// Every format into the folder.
        all: bool,
        /// Layout and burn-in.
        options: PublishOptions,
        /// A publish is under way.
        waiting: bool,
        /// What the last publish wrote.
        written: Vec<String>,
    },
    /// Render the selected shots.
    Render {
        /// The shots (codes, comma-separated).
        shots: String,
        /// The workflow.
        workflow: String,
        /// Higher runs first.
        priority: i64,
    },
    /// Render the clips of shots with their own workflows (the video batch).
    RenderVideos {
        /// The shots (codes, comma-separated, or `all`).
        shots: String,
        /// Render a still first where a shot has none.
        stills_first: bool,
        /// Interpolate each clip after it is made.
        interpolate: bool,
    },
    /// Which LLM advises.
    Llm {
        /// Base URL.
        url: String,
        /// Model.
        model: String,
        /// Requests in flight.
        parallel: String,
        /// What the node said: the LLM in use, and whether the key is set.
        status: Option<(Option<(String, String)>, bool)>,
    },
    /// Ask for a revision.
    Revision {
        /// The shot.
        shot: String,
        /// What to change.
        note: String,
    },
    /// The invite ticket.
    Invite {
        /// The ticket, once the node gave it.
        ticket: Option<String>,
        /// Shown on screen.
        shown: bool,
    },
}

impl Dialog {
    /// The import dialog.
    #[must_use]
    pub fn import() -> Dialog {
        Dialog::Import {
            path: String::new(),
            preview: None,
            waiting: false,
            strict: false,
            keep_project: false,
        }
    }

    /// The export dialog.
    #[must_use]
    pub fn export() -> Dialog {
        Dialog::Export {
            path: String::new(),
        }
    }

    /// The publish dialog.
    #[must_use]
    pub fn publish() -> Dialog {
        Dialog::Publish {
            path: String::new(),
            all: false,
            options: PublishOptions::default(),
            waiting: false,
            written: Vec::new(),
        }
    }

    /// The video batch dialog for `codes` (all when empty).
    #[must_use]
    pub fn render_videos(codes: &[String]) -> Dialog {
        Dialog::RenderVideos {
            shots: if codes.is_empty() {
                "all".to_owned()
            } else {
                codes.join(",")
            },
            stills_first: false,
            interpolate: false,
        }
    }

    /// The LLM settings dialog (filled when the node answers).
    #[must_use]
    pub fn llm() -> Dialog {
        Dialog::Llm {
            url: String::new(),
            model: String::new(),
            parallel: String::new(),
            status: None,
        }
    }

    /// The command palette.
    #[must_use]
    pub fn palette() -> Dialog {
        Dialog::Palette {
            query: String::new(),
        }
    }

    /// The render dialog for the selected shots.
    #[must_use]
    pub fn render(editor: &Editor) -> Dialog {
        let codes: Vec<String> = editor
            .shots
            .selected_in_order(editor.project.as_deref())
            .iter()
            .filter_map(|id| {
                editor.project.as_ref().and_then(|p| {
                    p.rows
                        .iter()
                        .find(|r| &r.shot_id == id)
                        .map(|r| r.code.clone())
                })
            })
            .collect();
        let workflow = runnable(editor).first().cloned().unwrap_or_default();
        Dialog::Render {
            shots: if codes.is_empty() {
                "all".to_owned()
            } else {
                codes.join(",")
            },
            workflow,
            priority: 0,
        }
    }

    /// The revision note for `shot`.
    #[must_use]
    pub fn revision(shot: String) -> Dialog {
        Dialog::Revision {
            shot,
            note: String::new(),
        }
    }

    /// The invite dialog.
    #[must_use]
    pub fn invite() -> Dialog {
        Dialog::Invite {
            ticket: None,
            shown: false,
        }
    }
}

/// Workflows some node of the mesh can run now.
#[must_use]
pub fn runnable(editor: &Editor) -> Vec<String> {
    let mut all: Vec<String> = editor
        .offers
        .iter()
        .filter(|o| o.paused.is_none())
        .flat_map(|o| o.workflows.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Why no node can run `workflow` now, node by node (empty when one can).
#[must_use]
pub fn why_not(editor: &Editor, workflow: &str) -> Vec<String> {
    if runnable(editor).iter().any(|w| w == workflow) {
        return Vec::new();
    }
    editor
        .offers
        .iter()
        .filter_map(|o| {
            o.unavailable
                .iter()
                .find(|(w, _)| w == workflow)
                .map(|(_, why)| format!("{}: {why}", o.host))
        })
        .collect()
}

/// Draw the open dialog.
pub fn show(editor: &mut Editor, ctx: &egui::Context) {
    let Some(mut dialog) = editor.dialog.take() else {
        return;
    };
    let modal = egui::Modal::new(Id::unique("dialog")).show(ctx, |ui| {
        ui.set_min_width(520.0);
        match &mut dialog {
            Dialog::Palette { query } => palette(editor, ui, query),
            Dialog::Import {
                path,
                preview,
                waiting,
                strict,
                keep_project,
            } => import(editor, ui, path, preview, waiting, (strict, keep_project)),
            Dialog::Export { path } => export(editor, ui, path),
            Dialog::Publish {
                path,
                all,
                options,
                waiting,
                written,
            } => publish(editor, ui, path, all, options, waiting, written),
            Dialog::Render {
                shots,
                workflow,
                priority,
            } => render(editor, ui, shots, workflow, priority),
            Dialog::RenderVideos {
                shots,
                stills_first,
                interpolate,
            } => render_videos(editor, ui, shots, stills_first, interpolate),
            Dialog::Llm {
                url,
                model,
                parallel,
                status,
            } => llm(editor, ui, (url, model, parallel), status.as_ref()),
            Dialog::Revision { shot, note } => revision(editor, ui, shot, note),
            Dialog::Invite { ticket, shown } => invite(editor, ui, ticket, shown),
        }
    });
    match modal.inner {
        Close::Keep if !modal.should_close() => editor.dialog = Some(dialog),
        Close::Keep | Close::Done => {}
        Close::Then(command) => editor.run_command(command),
    }
}

/// What a dialog's frame decided.
enum Close {
    Keep,
    Done,
    Then(Command),
}

fn palette(editor: &mut Editor, ui: &mut egui::Ui, query: &mut String) -> Close {
    ui.heading("Command palette");
    let field = ui
        .add(
            egui::TextEdit::singleline(query)
                .hint_text("Type a command")
                .desired_width(f32::INFINITY),
        )
        .accessible_name("Command");
    field.request_focus();
    let matching = Command::matching(query);
    let enter = ui.input(|i| i.key_pressed(egui::Key::Enter));
    if enter && let Some(first) = matching.first() {
        return Close::Then(*first);
    }
    let _ = editor;
    let mut chosen = None;
    egui::ScrollArea::vertical()
        .max_height(360.0)
        .show(ui, |ui| {
            for command in matching {
                let mut button = egui::Button::new(command.label()).frame(false);
                if let Some(shortcut) = command.shortcut() {
                    button = button.shortcut_text(ui.ctx().format_shortcut(&shortcut));
                }
                if ui.add_sized([ui.available_width(), 22.0], button).clicked() {
                    chosen = Some(command);
                }
            }
        });
    chosen.map_or(Close::Keep, Close::Then)
}

fn import(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    path: &mut String,
    preview: &mut Option<Box<ImportReport>>,
    waiting: &mut bool,
    (strict, keep_project): (&mut bool, &mut bool),
) -> Close {
    ui.heading("Import a shot list");
    ui.label(
        "Excel (.xlsx, .xls), LibreOffice (.ods), CSV or JSON; Korean headers are understood.",
    );
    if let Some(dropped) = ui.input(|i| i.raw.dropped_files.first().map(|f| f.path().to_owned())) {
        *path = dropped.display().to_string();
        *preview = None;
    }
    let field = ui
        .add(
            egui::TextEdit::singleline(path)
                .hint_text("File path (or drop the file on the window)")
                .desired_width(f32::INFINITY),
        )
        .accessible_name("File to import");
    if field.changed() {
        *preview = None;
    }
    ui.checkbox(
        strict,
        "Refuse characters and looks the shots name but nothing defines",
    );
    ui.checkbox(
        keep_project,
        "In a conflict, keep the project's value (default: the file's)",
    );
    let options = |dry_run: bool| ImportOptions {
        dry_run,
        strict: *strict,
        keep_project: *keep_project,
        ..ImportOptions::default()
    };
    if let Some(report) = preview.as_deref() {
        import_preview(ui, report);
    }
    let mut close = Close::Keep;
    ui.horizontal(|ui| {
        let ready = !path.trim().is_empty() && !*waiting;
        if ui
            .add_enabled(ready, egui::Button::new("Preview (dry run)"))
            .clicked()
        {
            *waiting = true;
            send_import(editor, path, options(true));
        }
        let clean = preview.as_ref().is_some_and(|r| r.problems.is_empty());
        if ui
            .add_enabled(ready && clean, egui::Button::new("Import"))
            .clicked()
        {
            *waiting = true;
            send_import(editor, path, options(false));
        }
        if ui.button("Cancel").clicked() {
            close = Close::Done;
        }
        if *waiting {
            ui.spinner();
        }
    });
    close
}

fn send_import(editor: &mut Editor, path: &str, options: ImportOptions) {
    let dry_run = options.dry_run;
    let project = editor.project_id();
    editor.send(
        Request::Import {
            project,
            path: PathBuf::from(path.trim()),
            options,
        },
        Pending::Import { dry_run },
    );
}

fn import_preview(ui: &mut egui::Ui, report: &ImportReport) {
    ui.separator();
    egui::ScrollArea::vertical().max_height(380.0).show(ui, |ui| {
        for sheet in &report.sheets {
            match &sheet.kind {
                None => {
                    ui.label(format!("sheet '{}': not imported", sheet.name));
                }
                Some(kind) => {
                    ui.label(RichText::new(format!("sheet '{}' ({kind}, {} rows)", sheet.name, sheet.rows)).strong());
                    for column in &sheet.columns {
                        let mut line = format!("  {} → {}", column.header, column.reads_as);
                        if let Some(note) = &column.note {
                            line.push_str(&format!(" ({note})"));
                        }
                        ui.label(line);
                    }
                }
            }
        }
        ui.add_space(6.0);
        if report.problems.is_empty() {
            ui.label(format!(
                "would add {} shots and update {}; add {} characters and update {}; add {} looks and update {}",
                report.shots_added,
                report.shots_updated,
                report.characters_added,
                report.characters_updated,
                report.cinematics_added,
                report.cinematics_updated
            ));
            for conflict in &report.conflicts {
                ui.label(format!(
                    "conflict: {} {}: the file says {:?}, the project {:?}; keeps the {}'s",
                    conflict.record, conflict.field, conflict.file, conflict.project, conflict.kept
                ));
            }
            for note in &report.notes {
                ui.label(note);
            }
        } else {
            let red = egui::Color32::from_rgb(220, 80, 70);
            ui.label(RichText::new(format!("{} problems: nothing would be imported", report.problems.len())).color(red));
            for problem in report.problems.iter().take(200) {
                ui.label(RichText::new(problem.to_string()).color(red));
            }
        }
    });
}

/// An import's report arrived: a dry run fills the dialog, an import closes it.
pub fn import_answered(editor: &mut Editor, report: ImportReport, dry_run: bool) {
    if dry_run {
        if let Some(Dialog::Import {
            preview, waiting, ..
        }) = &mut editor.dialog
        {
            *waiting = false;
            *preview = Some(Box::new(report));
        }
        return;
    }
    if report.problems.is_empty() {
        editor.say(
            format!(
                "imported {}: {} shots added, {} updated",
                report.file, report.shots_added, report.shots_updated
            ),
            false,
        );
        editor.dialog = None;
    } else {
        editor.say(
            format!(
                "{}: nothing was imported, {} problems",
                report.file,
                report.problems.len()
            ),
            true,
        );
        if let Some(Dialog::Import {
            preview, waiting, ..
        }) = &mut editor.dialog
        {
            *waiting = false;
            *preview = Some(Box::new(report));
        }
    }
}

fn export(editor: &mut Editor, ui: &mut egui::Ui, path: &mut String) -> Close {
    ui.heading("Export the project");
    ui.label("An .xlsx workbook (Shots, Characters, Cinematic Options, Project) or .json; importing it back after edits merges with what changed here since.");
    ui.add(
        egui::TextEdit::singleline(path)
            .hint_text("File path ending in .xlsx or .json")
            .desired_width(f32::INFINITY),
    )
    .accessible_name("File to export to");
    let mut close = Close::Keep;
    ui.horizontal(|ui| {
        let ok = path.ends_with(".xlsx") || path.ends_with(".json");
        if ui.add_enabled(ok, egui::Button::new("Export")).clicked() {
            let project = editor.project_id();
            editor.send(
                Request::Export {
                    project,
                    path: PathBuf::from(path.trim()),
                },
                Pending::Export,
            );
            close = Close::Done;
        }
        if ui.button("Cancel").clicked() {
            close = Close::Done;
        }
    });
    close
}

/// Which format a file's extension names, for the dialog to say before it is written.
fn publish_format(path: &str) -> Option<&'static str> {
    let ext = std::path::Path::new(path.trim())
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    Some(match ext.as_str() {
        "edl" => "CMX3600 EDL (stills are rendered to clips first)",
        "otio" => "OpenTimelineIO",
        "fcpxml" => "FCPXML 1.10 (Final Cut Pro, DaVinci Resolve)",
        "xml" => "FCP7 XML (Premiere)",
        "mp4" => "animatic (H.264)",
        "pdf" => "storyboard PDF",
        _ => return None,
    })
}

fn publish(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    path: &mut String,
    all: &mut bool,
    options: &mut PublishOptions,
    waiting: &mut bool,
    written: &mut Vec<String>,
) -> Close {
    ui.heading("Publish the cut");
    ui.label(
        "Each shot's selected take (else its latest) in timeline order, with the media \
         copied beside the file under readable names (SHT-00012_take3.png).",
    );
    ui.add_enabled_ui(!*waiting, |ui| {
        ui.checkbox(
            all,
            "Every format into a folder, with the approved takes and the project archive",
        );
        let hint = if *all {
            "Folder to publish into"
        } else {
            "File: .edl, .otio, .fcpxml, .xml (Premiere), .mp4 (animatic) or .pdf (storyboard)"
        };
        ui.add(
            egui::TextEdit::singleline(path)
                .hint_text(hint)
                .desired_width(f32::INFINITY),
        )
        .accessible_name(if *all {
            "Folder to publish into"
        } else {
            "File to publish"
        });
        ui.horizontal(|ui| {
            ui.label("Storyboard pages:");
            ui.radio_value(&mut options.layout, PageLayout::Grid3x3, "3 × 3");
            ui.radio_value(&mut options.layout, PageLayout::Large2x3, "2 × 3 large");
        });
        ui.checkbox(
            &mut options.burn_in,
            "Burn shot code, timecode and action into the animatic",
        );
    });
    let format = publish_format(path);
    let ok = !path.trim().is_empty() && (*all || format.is_some());
    if !*all && !path.trim().is_empty() {
        match format {
            Some(format) => ui.label(format!("Writes: {format}")),
            None => ui.colored_label(
                ui.visuals().error_fg_color,
                "Not a format publish writes: end the name in .edl, .otio, .fcpxml, .xml, .mp4 or .pdf",
            ),
        };
    }
    if *waiting {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("publishing… (an animatic or an EDL's clips take a while)");
        });
    }
    for line in written.iter() {
        ui.label(line);
    }
    let mut close = Close::Keep;
    ui.horizontal(|ui| {
        if ui
            .add_enabled(ok && !*waiting, egui::Button::new("Publish"))
            .clicked()
        {
            let project = editor.project_id();
            written.clear();
            *waiting = true;
            editor.send(
                Request::Publish {
                    project,
                    path: PathBuf::from(path.trim()),
                    all: *all,
                    options: *options,
                },
                Pending::Publish,
            );
        }
        if ui.button("Close").clicked() {
            close = Close::Done;
        }
    });
    close
}

fn render_videos(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    shots: &mut String,
    stills: &mut bool,
    smooth: &mut bool,
) -> Close {
    ui.heading("Render videos");
    ui.label(
        "Each shot renders its own workflow (accept the advice first) with its still as the \
         first frame, the next shot's still as the last frame (FFLF) and its style reference \
         (style transfer); the clip is as long as the shot. A shot that cannot start is left \
         out, saying why.",
    );
    ui.add(egui::TextEdit::singleline(shots).desired_width(f32::INFINITY))
        .accessible_name("Shots to render as clips");
    ui.checkbox(
        stills,
        "Render a still first where a shot has none (flux_basic)",
    );
    ui.checkbox(
        smooth,
        "Interpolate each clip afterwards (rife_interpolate, 2× frames)",
    );
    let (stills, smooth) = (*stills, *smooth);
    let missing = editor.project.as_ref().map_or(0, |p| {
        p.read
            .project
            .shots
            .iter()
            .filter(|s| s.workflow.is_empty())
            .count()
    });
    if missing > 0 {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!("{missing} shots have no workflow yet: Advise, then Accept"),
        );
    }
    queue_or_cancel(editor, ui, true, || RenderRequest {
        shots: shots.trim().to_owned(),
        video: Some(reelmesh_protocol::api::render::VideoBatch {
            stills_first: stills.then(|| "flux_basic".to_owned()),
            then: if smooth {
                vec!["rife_interpolate".to_owned()]
            } else {
                Vec::new()
            },
        }),
        ..RenderRequest::default()
    })
}

fn llm(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    (url, model, parallel): (&mut String, &mut String, &mut String),
    status: Option<&(Option<(String, String)>, bool)>,
) -> Close {
    ui.heading("LLM settings");
    ui.label(
        "The LLM that advises video workflows: OpenAI, or any OpenAI-compatible server \
         (Ollama: http://127.0.0.1:11434/v1, LM Studio: http://127.0.0.1:1234/v1). Saved in \
         the node's llm.toml. The API key is read from OPENAI_API_KEY where the node runs; \
         it is never saved, sent to peers or logged.",
    );
    ui.add(
        egui::TextEdit::singleline(url)
            .hint_text("https://api.openai.com/v1")
            .desired_width(f32::INFINITY),
    )
    .accessible_name("LLM base URL");
    ui.add(
        egui::TextEdit::singleline(model)
            .hint_text("model name, e.g. gpt-4o-mini or qwen2.5:7b")
            .desired_width(f32::INFINITY),
    )
    .accessible_name("LLM model");
    ui.add(
        egui::TextEdit::singleline(parallel)
            .hint_text("requests at once (4)")
            .desired_width(200.0),
    )
    .accessible_name("LLM requests at once");
    match status {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("asking the node…");
            });
        }
        Some((in_use, key_set)) => {
            ui.label(match in_use {
                Some((url, model)) => format!("in use: {model} at {url}"),
                None => "in use: none (the rule-based advisor answers)".to_owned(),
            });
            ui.label(if *key_set {
                "OPENAI_API_KEY: set for the node"
            } else {
                "OPENAI_API_KEY: not set (fine for local servers)"
            });
        }
    }
    let mut close = Close::Keep;
    ui.horizontal(|ui| {
        let parallel_ok = parallel.trim().is_empty() || parallel.trim().parse::<usize>().is_ok();
        if ui
            .add_enabled(parallel_ok, egui::Button::new("Save"))
            .clicked()
        {
            let blank = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
            let settings = reelmesh_protocol::advice::LlmSettings {
                base_url: blank(url),
                model: blank(model),
                parallel: parallel.trim().parse().ok(),
                timeout_secs: None,
            };
            editor.send(
                Request::LlmSettings {
                    set: Some(settings),
                },
                Pending::LlmSettings,
            );
        }
        if ui.button("Close").clicked() {
            close = Close::Done;
        }
    });
    close
}

/// A publish failed: the dialog lets the user try again (the error is in the
/// status line).
pub fn publish_failed(editor: &mut Editor) {
    if let Some(Dialog::Publish { waiting, .. }) = &mut editor.dialog {
        *waiting = false;
    }
}

fn render(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    shots: &mut String,
    workflow: &mut String,
    priority: &mut i64,
) -> Close {
    ui.heading("Render");
    ui.horizontal(|ui| {
        ui.label("Shots");
        ui.add(egui::TextEdit::singleline(shots).desired_width(360.0))
            .accessible_name("Shots to render");
    });
    let runnable = runnable(editor);
    let mut all: Vec<String> = runnable.clone();
    for offer in editor.offers.iter() {
        all.extend(offer.unavailable.iter().map(|(w, _)| w.clone()));
    }
    all.sort();
    all.dedup();
    egui::ComboBox::from_label("Workflow")
        .selected_text(workflow.clone())
        .show_ui(ui, |ui| {
            for name in &all {
                let label = if runnable.contains(name) {
                    name.clone()
                } else {
                    format!("{name} (no node can run it now)")
                };
                ui.selectable_value(workflow, name.clone(), label);
            }
        });
    for reason in why_not(editor, workflow) {
        ui.label(RichText::new(reason).color(egui::Color32::from_rgb(225, 140, 50)));
    }
    if all.is_empty() {
        ui.label("no node of the mesh has offered to run jobs yet");
    }
    ui.add(egui::DragValue::new(priority).prefix("Priority "));
    let ok = !workflow.is_empty() && !shots.trim().is_empty();
    queue_or_cancel(editor, ui, ok, || RenderRequest {
        shots: shots.trim().to_owned(),
        workflow: workflow.clone(),
        priority: *priority,
        ..RenderRequest::default()
    })
}

/// The Queue and Cancel buttons of a render dialog: Queue (when `ok`) sends
/// `request()` for the mesh and closes.
fn queue_or_cancel(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    ok: bool,
    request: impl FnOnce() -> RenderRequest,
) -> Close {
    let mut close = Close::Keep;
    ui.horizontal(|ui| {
        if ui.add_enabled(ok, egui::Button::new("Queue")).clicked() {
            let project = editor.project_id();
            editor.send(
                Request::Render {
                    project,
                    request: request(),
                    queue_only: true,
                },
                Pending::Render,
            );
            close = Close::Done;
        }
        if ui.button("Cancel").clicked() {
            close = Close::Done;
        }
    });
    close
}

fn revision(editor: &mut Editor, ui: &mut egui::Ui, shot: &str, note: &mut String) -> Close {
    ui.heading("Needs revision");
    let field = ui
        .add(
            egui::TextEdit::multiline(note)
                .hint_text("What to change")
                .desired_rows(4)
                .desired_width(f32::INFINITY),
        )
        .accessible_name("Revision note");
    field.request_focus();
    let mut close = Close::Keep;
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!note.trim().is_empty(), egui::Button::new("Send back"))
            .clicked()
        {
            editor.edit(Edit::Review {
                shot: shot.to_owned(),
                verdict: Verdict::Revise {
                    note: note.trim().to_owned(),
                },
            });
            close = Close::Done;
        }
        if ui.button("Cancel").clicked() {
            close = Close::Done;
        }
    });
    close
}

fn invite(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    ticket: &mut Option<String>,
    shown: &mut bool,
) -> Close {
    ui.heading("Invite a machine");
    ui.label("On the other machine: `reelmesh join TICKET`, then `reelmesh`. The ticket holds the mesh secret: share it only with machines of your studio.");
    if ticket.is_none()
        && let Some(received) = editor.panels.ticket.take()
    {
        *ticket = Some(received);
    }
    let mut close = Close::Keep;
    match ticket {
        None => {
            if ui.button("Make a ticket").clicked() {
                let project = editor.project_id();
                editor.send(Request::Invite { project }, Pending::Invite);
            }
        }
        Some(ticket) => {
            if *shown {
                ui.add(
                    egui::TextEdit::multiline(&mut ticket.as_str())
                        .desired_width(f32::INFINITY)
                        .font(egui::TextStyle::Monospace),
                )
                .accessible_name("Ticket");
            } else if ui.button("Show the ticket").clicked() {
                *shown = true;
            }
            if ui.button("Copy the ticket").clicked() {
                ui.ctx().copy_text(ticket.clone());
                editor.say("the ticket is on the clipboard", false);
            }
        }
    }
    if ui.button("Close").clicked() {
        close = Close::Done;
    }
    close
}

/// The answers some dialogs wait for.
pub fn answered(editor: &mut Editor, reply: Reply) {
    match reply {
        Reply::Exported { path, shots } => {
            editor.say(
                format!("exported {shots} shots to {}", path.display()),
                false,
            );
        }
        Reply::Published { lines } => {
            if let Some(first) = lines.first() {
                editor.say(first.clone(), false);
            }
            if let Some(Dialog::Publish {
                waiting, written, ..
            }) = &mut editor.dialog
            {
                *waiting = false;
                *written = lines;
            }
        }
        Reply::LlmSettings {
            saved,
            in_use,
            key_set,
        } => {
            if let Some(Dialog::Llm {
                url,
                model,
                parallel,
                status,
            }) = &mut editor.dialog
            {
                let was_loaded = status.is_some();
                *status = Some((in_use.clone(), key_set));
                if !was_loaded {
                    *url = saved.base_url.unwrap_or_default();
                    *model = saved.model.unwrap_or_default();
                    *parallel = saved.parallel.map(|p| p.to_string()).unwrap_or_default();
                } else {
                    editor.say(
                        match in_use {
                            Some((_, model)) => format!("saved: advice now asks {model}"),
                            None => "saved: no LLM, the rule-based advisor answers".to_owned(),
                        },
                        false,
                    );
                }
            }
        }
        Reply::Invite { ticket } => editor.panels.ticket = Some(ticket),
        _ => {}
    }
}
