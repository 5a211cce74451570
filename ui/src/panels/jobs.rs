//! The render queue: every job of the project, active ones first, with its
//! progress bar and step from the mesh (ComfyUI's preview frame for a running
//! job), where it runs, its attempts, and why a queued job waits or how a failed
//! one failed, in full. Cancel an active job; retry an ended one (the same
//! workflow for its shot again).

use egui::{Color32, RichText};
use reelmesh_protocol::api::Request;
use reelmesh_protocol::api::render::RenderRequest;
use reelmesh_protocol::jobs::{Job, JobState};

use crate::editor::{Editor, Pending};

/// Height of one job row.
const ROW: f32 = 64.0;

/// The jobs view.
pub fn jobs(editor: &mut Editor, ui: &mut egui::Ui) {
    let Some(jobs) = editor.jobs.clone() else {
        ui.label("reading the jobs…");
        return;
    };
    let mut list: Vec<&Job> = jobs.jobs.iter().collect();
    // Active first (running, claimed, queued), then the newest.
    list.sort_by_key(|j| {
        let rank = match j.state {
            JobState::Running => 0,
            JobState::Claimed => 1,
            JobState::Queued => 2,
            _ => 3,
        };
        (rank, std::cmp::Reverse(j.created_at_ms))
    });
    let active = list.iter().filter(|j| j.state.is_active()).count();
    ui.horizontal(|ui| {
        ui.heading(format!("Jobs · {active} active of {}", list.len()));
        if ui.button("Render selected shots…").clicked() {
            editor.run_command(crate::commands::Command::RenderSelected);
        }
    });
    if list.is_empty() {
        ui.label("Nothing rendered yet: select shots and render them (Ctrl+R).");
        return;
    }
    let mut actions = Vec::new();
    egui::ScrollArea::vertical().show_rows(ui, ROW, list.len(), |ui, range| {
        for job in &list[range] {
            let code = jobs
                .shots
                .get(&job.shot_id)
                .map_or_else(|| "?".to_owned(), ToString::to_string);
            row(editor, ui, job, &code, &jobs.waiting, &mut actions);
        }
    });
    let project = editor.project_id();
    for action in actions {
        match action {
            Action::Cancel(job_id) => editor.send(
                Request::Cancel {
                    project: project.clone(),
                    job_ids: vec![job_id],
                },
                Pending::Quiet,
            ),
            Action::Retry { code, workflow } => editor.send(
                Request::Render {
                    project: project.clone(),
                    request: RenderRequest {
                        shots: code,
                        workflow,
                        ..RenderRequest::default()
                    },
                    queue_only: true,
                },
                Pending::Render,
            ),
        }
    }
}

enum Action {
    Cancel(String),
    Retry { code: String, workflow: String },
}

fn row(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    job: &Job,
    code: &str,
    waiting: &std::collections::BTreeMap<String, String>,
    actions: &mut Vec<Action>,
) {
    let progress = editor.progress.get(&job.job_id).cloned();
    ui.allocate_ui(egui::vec2(ui.available_width(), ROW - 4.0), |ui| {
        ui.horizontal(|ui| {
            if let Some(texture) = editor.images.preview_of(&job.job_id) {
                ui.add(
                    egui::Image::new(&texture)
                        .max_size(egui::vec2(96.0, ROW - 8.0))
                        .alt_text(format!("preview of {code}")),
                );
            }
            ui.vertical(|ui| {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(code).monospace().strong());
                    ui.label(&job.workflow);
                    ui.label(state_text(job.state));
                    ui.label(format!("attempt {} of {}", job.attempts, job.max_attempts));
                    if !job.claimant.is_empty() {
                        let host = editor
                            .status
                            .as_ref()
                            .and_then(|s| s.peers.iter().find(|p| p.node_id == job.claimant))
                            .map(|p| p.host_name.clone())
                            .filter(|h| !h.is_empty())
                            .unwrap_or_else(|| job.claimant.chars().take(12).collect());
                        ui.label(format!("on {host}"));
                    }
                    if job.state.is_active() {
                        if ui.small_button("Cancel").clicked() {
                            actions.push(Action::Cancel(job.job_id.clone()));
                        }
                    } else if job.state != JobState::Succeeded && ui.small_button("Retry").clicked()
                    {
                        actions.push(Action::Retry {
                            code: code.to_owned(),
                            workflow: job.workflow.clone(),
                        });
                    }
                });
                match job.state {
                    JobState::Running | JobState::Claimed => {
                        let (fraction, step) = progress
                            .as_ref()
                            .map_or((0.0, String::new()), |p| (p.fraction, p.step.clone()));
                        ui.add(
                            egui::ProgressBar::new(fraction)
                                .show_percentage()
                                .text(format!("{:.0} % {step}", fraction * 100.0)),
                        );
                    }
                    JobState::Queued => {
                        if let Some(why) = waiting.get(&job.job_id) {
                            ui.add(egui::Label::new(RichText::new(why).small()).wrap());
                        }
                    }
                    JobState::Failed | JobState::Canceled if !job.error.is_empty() => {
                        ui.add(
                            egui::Label::new(
                                RichText::new(&job.error)
                                    .small()
                                    .color(Color32::from_rgb(220, 80, 70)),
                            )
                            .wrap(),
                        );
                    }
                    _ => {}
                }
            });
        });
    });
    ui.separator();
}

fn state_text(state: JobState) -> RichText {
    let color = match state {
        JobState::Queued => Color32::from_rgb(150, 150, 160),
        JobState::Claimed | JobState::Running => Color32::from_rgb(70, 130, 220),
        JobState::Succeeded => Color32::from_rgb(60, 170, 90),
        JobState::Failed => Color32::from_rgb(220, 80, 70),
        JobState::Canceled => Color32::from_rgb(225, 140, 50),
        _ => Color32::GRAY,
    };
    RichText::new(state.as_str()).color(color).strong()
}
