//! The editor window: one [`Editor`] drawn each frame from what its node sent.
//!
//! Each frame: drain the [`Link`] (answers, project snapshots, jobs, status,
//! progress), run the commands whose shortcut was pressed, then draw the menu bar,
//! the navigation, the current view, the inspector and the status line. Actions
//! become API requests ([`Request`]) sent without waiting; their answers come back
//! in a later frame and say what happened in the status line. Nothing here touches
//! the disk or the network.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Color32, RichText};
use reelmesh_protocol::api::edit::{Edit, Verdict};
use reelmesh_protocol::api::status::NodeStatusReport;
use reelmesh_protocol::api::{ApiError, JobsRead, Reply, Request};
use reelmesh_protocol::jobs::JobUpdate;

use crate::commands::{Command, Menu};
use crate::images::Images;
use crate::link::{FromNode, Link, ProjectView, RequestId};
use crate::shots::ShotTable;
use crate::{dialogs, fonts, panels};

/// The undo stack the editor's edits go on (the CLI's is `cli`).
pub const CLIENT: &str = "editor";

/// How long a message stays in the status line.
const MESSAGE_FOR: Duration = Duration::from_secs(8);

/// Which view fills the middle of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// The shot table.
    #[default]
    Shots,
    /// The character bible.
    Characters,
    /// The looks.
    Looks,
    /// The selected shot's takes, for review.
    Takes,
    /// The render queue.
    Jobs,
    /// The machines.
    Mesh,
    /// The animatic player.
    Player,
}

impl View {
    /// Every view, in the navigation's order.
    pub const ALL: [View; 7] = [
        View::Shots,
        View::Characters,
        View::Looks,
        View::Takes,
        View::Jobs,
        View::Mesh,
        View::Player,
    ];

    /// Its name in the navigation.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            View::Shots => "Shots",
            View::Characters => "Characters",
            View::Looks => "Looks",
            View::Takes => "Takes and review",
            View::Jobs => "Jobs",
            View::Mesh => "Mesh",
            View::Player => "Animatic player",
        }
    }
}

/// A line of the status bar.
#[derive(Debug, Clone)]
pub struct Message {
    /// What to say.
    pub text: String,
    /// An error (shown in red, kept until the next message).
    pub error: bool,
    /// When it was said.
    pub at: Instant,
}

/// What a request in flight was for, so its answer can be told.
#[derive(Debug, Clone)]
pub enum Pending {
    /// An edit: its answer says what it did.
    Edit,
    /// Undo or redo.
    Undo,
    /// A render of these shots.
    Render,
    /// An import (dry run or for real).
    Import {
        /// Only a preview.
        dry_run: bool,
    },
    /// A blob to show: fetched from a peer first.
    Fetch(String),
    /// An export.
    Export,
    /// A publish of the cut.
    Publish,
    /// Workflow advice being asked.
    Advise,
    /// The LLM settings, read or saved.
    LlmSettings,
    /// An invite ticket.
    Invite,
    /// A character's reference sheet being stored: link it once stored.
    ReferenceSheet(String),
    /// Anything else: only errors are told.
    Quiet,
}

/// Everything the window shows, and the line to the node.
pub struct Editor {
    link: Link,
    /// The open project, as its node last sent it.
    pub project: Option<Arc<ProjectView>>,
    /// Why there is no project to show.
    pub no_project: Option<String>,
    /// Its jobs and takes.
    pub jobs: Option<Arc<JobsRead>>,
    /// The node and its peers.
    pub status: Option<Arc<NodeStatusReport>>,
    /// When `status` arrived (heartbeat ages are counted on from it).
    pub status_at: std::time::Instant,
    /// Every node's standing offer.
    pub offers: Arc<Vec<reelmesh_protocol::placement::Offer>>,
    /// The latest progress of each job, by job id.
    pub progress: HashMap<String, JobUpdate>,
    /// The middle view.
    pub view: View,
    /// The inspector (prompt, takes, review) beside the table.
    pub inspector: bool,
    /// The shot table's state (selection, sort, filter, the cell being edited).
    pub shots: ShotTable,
    /// Requests in flight.
    pending: HashMap<RequestId, Pending>,
    /// The status line, newest last.
    pub messages: VecDeque<Message>,
    /// The open dialog, if any.
    pub dialog: Option<dialogs::Dialog>,
    /// Decoded take images, by blob hash.
    pub images: Images,
    /// Set when the node stopped: the editor can only be closed.
    pub stopped: Option<String>,
    /// Per-panel state.
    pub panels: panels::PanelState,
    /// Set on the first frame (fonts installed, waker set).
    started: bool,
    /// Where the table's layout is remembered (none in tests).
    saver: Option<crate::settings::Saver>,
}

impl Editor {
    /// An editor talking to its node through `link`; `images` reads take files.
    #[must_use]
    pub fn new(link: Link, images: Images) -> Editor {
        Editor {
            link,
            project: None,
            no_project: None,
            jobs: None,
            status: None,
            status_at: std::time::Instant::now(),
            offers: Arc::default(),
            progress: HashMap::new(),
            view: View::default(),
            inspector: true,
            shots: ShotTable::default(),
            pending: HashMap::new(),
            messages: VecDeque::new(),
            dialog: None,
            images,
            stopped: None,
            panels: panels::PanelState::default(),
            started: false,
            saver: None,
        }
    }

    /// Remember the table's layout in `path` (read now; written when it changes).
    #[must_use]
    pub fn with_settings(mut self, path: std::path::PathBuf) -> Editor {
        let settings = match crate::settings::Settings::load(&path) {
            Ok(settings) => settings,
            Err(e) => {
                self.say(e.to_string(), true);
                crate::settings::Settings::default()
            }
        };
        self.shots.apply(&settings);
        self.saver = Some(crate::settings::Saver::new(path, settings));
        self
    }

    /// Install the editor's fonts (NanumSquare for Hangul, after egui's own) and
    /// wake this context when the node sends something.
    pub fn setup(&mut self, ctx: &egui::Context) {
        fonts::install(ctx);
        self.link.waker().set(ctx);
        self.images.set_waker(self.link.waker().clone());
        self.started = true;
    }

    /// Draw one frame.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        if !self.started {
            self.setup(ui.ctx());
        }
        self.receive();
        self.images.receive(ui.ctx());
        for command in Command::pressed(ui.ctx()) {
            self.run_command(command);
        }
        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_line(ui));
        if matches!(self.view, View::Shots | View::Player) && self.project.is_some() {
            egui::Panel::bottom("timeline")
                .resizable(true)
                .default_size(130.0)
                .show(ui, |ui| panels::timeline(self, ui));
        }
        egui::Panel::left("navigation")
            .resizable(false)
            .default_size(150.0)
            .show(ui, |ui| self.navigation(ui));
        if self.inspector && matches!(self.view, View::Shots | View::Jobs) {
            egui::Panel::right("inspector")
                .default_size(360.0)
                .size_range(240.0..=720.0)
                .show(ui, |ui| panels::inspector(self, ui));
        }
        egui::CentralPanel::default().show(ui, |ui| self.central(ui));
        dialogs::show(self, ui.ctx());
        // The layout changes only when a click or drag ends.
        if let Some(saver) = &mut self.saver
            && ui.input(|i| i.pointer.any_released())
        {
            saver.offer(&self.shots.settings());
        }
        // Messages fade on their own: look again when the oldest is due to go.
        if let Some(first) = self.messages.iter().find(|m| !m.error) {
            let left = MESSAGE_FOR.saturating_sub(first.at.elapsed());
            ui.ctx()
                .request_repaint_after(left + Duration::from_millis(10));
        }
    }

    /// Take in everything the node sent.
    fn receive(&mut self) {
        for message in self.link.drain() {
            match message {
                FromNode::Answer { id, result } => self.answered(id, result),
                FromNode::Project(view) => {
                    self.no_project = None;
                    self.shots.project_changed(&view);
                    self.project = Some(view);
                }
                FromNode::NoProject(why) => {
                    self.no_project = Some(why);
                    self.project = None;
                }
                FromNode::Jobs(jobs) => {
                    for (job_id, update) in &jobs.progress {
                        self.progress
                            .entry(job_id.clone())
                            .or_insert_with(|| update.clone());
                    }
                    self.jobs = Some(jobs);
                }
                FromNode::Status(status) => {
                    self.status = Some(status);
                    self.status_at = std::time::Instant::now();
                }
                FromNode::Offers(offers) => self.offers = offers,
                FromNode::Progress(update) => {
                    if let Some(preview) = &update.preview {
                        self.images.preview(&update.job_id, preview);
                    }
                    self.progress.insert(update.job_id.clone(), update);
                }
                FromNode::Notice(text) => self.say(text, false),
                FromNode::Stopped(why) => {
                    self.say(format!("the node stopped: {why}"), true);
                    self.stopped = Some(why);
                }
            }
        }
    }

    /// An answer came back.
    fn answered(&mut self, id: RequestId, result: Result<Reply, ApiError>) {
        let pending = self.pending.remove(&id).unwrap_or(Pending::Quiet);
        match (pending, result) {
            (Pending::Publish, Err(error)) => {
                dialogs::publish_failed(self);
                self.say(error.to_string(), true);
            }
            (_, Err(error)) => self.say(error.to_string(), true),
            (Pending::Edit, Ok(Reply::Edited { summary, .. })) => self.say(summary, false),
            (Pending::Undo, Ok(Reply::Undone { summary, .. })) => {
                let text = summary.unwrap_or_else(|| "nothing to undo".to_owned());
                self.say(text, false);
            }
            (Pending::Render, Ok(Reply::Queued(queued))) => {
                let count = queued.queued.len();
                self.say(
                    format!("queued {count} job{}", if count == 1 { "" } else { "s" }),
                    false,
                );
                for (shot, why) in &queued.refused {
                    self.say(format!("{shot}: not queued: {why}"), true);
                }
            }
            (Pending::Import { dry_run }, Ok(Reply::Imported { report, .. })) => {
                dialogs::import_answered(self, report, dry_run);
            }
            (Pending::Fetch(hash), Ok(Reply::Fetched { .. })) => self.images.fetched(&hash),
            (
                Pending::Export | Pending::Invite | Pending::Publish | Pending::LlmSettings,
                Ok(reply),
            ) => {
                dialogs::answered(self, reply);
            }
            (Pending::Advise, Ok(Reply::Advised { advice, stats, .. })) => {
                let without = advice.iter().filter(|(_, a)| !a.usable()).count();
                let source = advice
                    .iter()
                    .map(|(_, a)| a.source.clone())
                    .find(|s| !s.is_empty())
                    .unwrap_or_default();
                let how = if source == reelmesh_protocol::model::Advice::RULES {
                    "the rule-based advisor (no LLM set up: Render > LLM settings…)".to_owned()
                } else {
                    format!("{source}, {} requests", stats.requests)
                };
                self.say(
                    format!(
                        "advised {} shots with {how}{}",
                        advice.len(),
                        if without > 0 {
                            format!("; {without} without advice (hover the Advice column)")
                        } else {
                            String::new()
                        }
                    ),
                    without > 0,
                );
            }
            (Pending::ReferenceSheet(character), Ok(Reply::AddedBlob { hash, .. })) => {
                self.edit(Edit::CharacterSet {
                    character,
                    values: vec![("reference_sheet".to_owned(), hash)],
                });
            }
            (_, Ok(_)) => {}
        }
    }

    /// Say something in the status line.
    pub fn say(&mut self, text: impl Into<String>, error: bool) {
        self.messages.push_back(Message {
            text: text.into(),
            error,
            at: Instant::now(),
        });
        while self.messages.len() > 20 {
            self.messages.pop_front();
        }
    }

    /// Send `request`, remembering what it was for.
    pub fn send(&mut self, request: Request, pending: Pending) {
        if self.stopped.is_some() {
            self.say("the node stopped: nothing can be sent", true);
            return;
        }
        match self.link.call(request) {
            Ok(id) => {
                self.pending.insert(id, pending);
            }
            Err(busy) => self.say(busy.to_string(), true),
        }
    }

    /// Send an edit of the open project (it goes on the editor's undo stack).
    pub fn edit(&mut self, edit: Edit) {
        let project = self.project_id();
        self.send(
            Request::Edit {
                project,
                client: CLIENT.to_owned(),
                edit,
            },
            Pending::Edit,
        );
    }

    /// The open project's id (`None` before its first snapshot: the node's current).
    #[must_use]
    pub fn project_id(&self) -> Option<String> {
        self.project.as_ref().map(|p| p.read.project_id.clone())
    }

    /// Requests in flight (for the status line and the tests).
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Do `command`.
    pub fn run_command(&mut self, command: Command) {
        let project = self.project_id();
        match command {
            Command::Import => self.dialog = Some(dialogs::Dialog::import()),
            Command::Export => self.dialog = Some(dialogs::Dialog::export()),
            Command::Publish => self.dialog = Some(dialogs::Dialog::publish()),
            Command::Quit => self.panels.quit = true,
            Command::Undo | Command::Redo => {
                let client = CLIENT.to_owned();
                let request = if command == Command::Undo {
                    Request::Undo { project, client }
                } else {
                    Request::Redo { project, client }
                };
                self.send(request, Pending::Undo);
            }
            Command::Find => {
                self.view = View::Shots;
                self.shots.focus_search = true;
            }
            Command::Palette => self.dialog = Some(dialogs::Dialog::palette()),
            Command::ShowShots => self.view = View::Shots,
            Command::ShowCharacters => self.view = View::Characters,
            Command::ShowLooks => self.view = View::Looks,
            Command::ShowTakes => self.view = View::Takes,
            Command::ShowJobs => self.view = View::Jobs,
            Command::ShowMesh => self.view = View::Mesh,
            Command::ShowPlayer => self.view = View::Player,
            Command::ToggleInspector => self.inspector = !self.inspector,
            Command::AddShot => {
                let after = self.shots.last_selected();
                self.edit(Edit::ShotAdd {
                    after,
                    values: Vec::new(),
                });
            }
            Command::DuplicateShots => {
                for shot in self.shots.selected_in_order(self.project.as_deref()) {
                    self.edit(Edit::ShotDuplicate { shot });
                }
            }
            Command::DeleteShots => {
                for shot in self.shots.selected_in_order(self.project.as_deref()) {
                    self.edit(Edit::ShotDelete { shot });
                }
                self.shots.selected.clear();
            }
            Command::RenderSelected => self.dialog = Some(dialogs::Dialog::render(self)),
            Command::Approve => {
                if let Some(shot) = self.shots.last_selected() {
                    self.edit(Edit::Review {
                        shot,
                        verdict: Verdict::Approve,
                    });
                } else {
                    self.say("select a shot to approve", true);
                }
            }
            Command::NeedsRevision => match self.shots.last_selected() {
                Some(shot) => self.dialog = Some(dialogs::Dialog::revision(shot)),
                None => self.say("select a shot to send back for revision", true),
            },
            Command::Regenerate => match self.shots.last_selected() {
                Some(shot) => self.send(Request::Regenerate { project, shot }, Pending::Render),
                None => self.say("select a shot to regenerate", true),
            },
            Command::Advise => {
                let codes = self.selected_codes();
                let count = if codes.is_empty() {
                    self.project.as_ref().map_or(0, |p| p.rows.len())
                } else {
                    codes.len()
                };
                let shots = if codes.is_empty() {
                    "all".to_owned()
                } else {
                    codes.join(",")
                };
                self.send(
                    Request::Advise {
                        project,
                        shots,
                        llm: reelmesh_protocol::advice::LlmChoice::default(),
                    },
                    Pending::Advise,
                );
                self.say(
                    format!("asking for workflow advice on {count} shots…"),
                    false,
                );
            }
            Command::AcceptAllAdvice => self.edit(Edit::AdviceAccept { shots: Vec::new() }),
            Command::RenderVideos => {
                let codes = self.selected_codes();
                self.dialog = Some(dialogs::Dialog::render_videos(&codes));
            }
            Command::LlmSettings => {
                self.dialog = Some(dialogs::Dialog::llm());
                self.send(Request::LlmSettings { set: None }, Pending::LlmSettings);
            }
            Command::Invite => self.dialog = Some(dialogs::Dialog::invite()),
        }
    }

    /// The selected shots' codes, in timeline order.
    #[must_use]
    pub fn selected_codes(&self) -> Vec<String> {
        let Some(view) = self.project.as_deref() else {
            return Vec::new();
        };
        self.shots
            .selected_in_order(Some(view))
            .iter()
            .filter_map(|id| view.rows.iter().find(|r| &r.shot_id == id))
            .map(|r| r.code.clone())
            .collect()
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            for menu in Menu::ALL {
                ui.menu_button(menu.title(), |ui| {
                    for command in Command::ALL.iter().filter(|c| c.menu() == menu) {
                        let mut button = egui::Button::new(command.label());
                        if let Some(shortcut) = command.shortcut() {
                            button = button.shortcut_text(ui.ctx().format_shortcut(&shortcut));
                        }
                        if ui.add(button).clicked() {
                            self.run_command(*command);
                            ui.close();
                        }
                    }
                });
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if let Some(view) = &self.project {
                    ui.label(RichText::new(&view.read.project.settings.name).strong());
                }
            });
        });
    }

    fn navigation(&mut self, ui: &mut egui::Ui) {
        ui.add_space(6.0);
        for view in View::ALL {
            let label = match view {
                View::Shots => format!(
                    "{} ({})",
                    view.label(),
                    self.project.as_ref().map_or(0, |p| p.rows.len())
                ),
                View::Jobs => {
                    let active = self.jobs.as_ref().map_or(0, |j| {
                        j.jobs.iter().filter(|job| job.state.is_active()).count()
                    });
                    if active > 0 {
                        format!("{} ({active} active)", view.label())
                    } else {
                        view.label().to_owned()
                    }
                }
                _ => view.label().to_owned(),
            };
            if ui.selectable_label(self.view == view, label).clicked() {
                self.view = view;
            }
        }
    }

    fn central(&mut self, ui: &mut egui::Ui) {
        if let Some(why) = &self.no_project {
            ui.centered_and_justified(|ui| ui.label(why.clone()));
            return;
        }
        if self.project.is_none() {
            ui.centered_and_justified(|ui| ui.label("opening the project…"));
            return;
        }
        match self.view {
            View::Shots => crate::shots::show(self, ui),
            View::Characters => panels::characters(self, ui),
            View::Looks => panels::looks(self, ui),
            View::Takes => panels::takes(self, ui),
            View::Jobs => panels::jobs(self, ui),
            View::Mesh => panels::mesh(self, ui),
            View::Player => panels::player(self, ui),
        }
    }

    fn status_line(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(panels::sync_summary(self));
            ui.separator();
            let now = Instant::now();
            self.messages
                .retain(|m| m.error || now.duration_since(m.at) < MESSAGE_FOR);
            if let Some(message) = self.messages.back() {
                let color = if message.error {
                    Color32::from_rgb(220, 80, 70)
                } else {
                    ui.visuals().text_color()
                };
                ui.label(RichText::new(&message.text).color(color));
            }
            if !self.pending.is_empty() {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.spinner();
                });
            }
        });
    }

    /// Whether the line to the node is gone.
    #[must_use]
    pub fn link_closed(&self) -> bool {
        self.link.is_closed()
    }

    /// What the node's end wakes (to wait for the node without polling).
    #[must_use]
    pub fn waker(&self) -> crate::link::Waker {
        self.link.waker().clone()
    }
}

/// The window: an [`Editor`] as an eframe app.
pub struct EditorApp {
    /// The editor.
    pub editor: Editor,
    /// Frame timings for `node/scripts/editor-frame-bench` (none normally).
    pub frame_stats: Option<FrameStats>,
}

impl EditorApp {
    /// The app; with `REELMESH_FRAME_STATS=<file>` set, it repaints continuously and
    /// writes each frame's timings to that file when the window closes.
    #[must_use]
    pub fn new(editor: Editor) -> EditorApp {
        let frame_stats = std::env::var_os("REELMESH_FRAME_STATS").map(|path| FrameStats {
            path: path.into(),
            last: None,
            intervals_ms: Vec::new(),
            cpu_ms: Vec::new(),
            player: crate::panels::PlaybackStats::default(),
        });
        EditorApp {
            editor,
            frame_stats,
        }
    }
}

/// Frame timings of a benchmark run: the wall time from one frame's start to the
/// next (the whole frame: UI, tessellation, painting with the GL driver and the
/// buffer swap), and eframe's own CPU time of the frame (which leaves the swap out).
#[derive(Debug)]
pub struct FrameStats {
    path: std::path::PathBuf,
    last: Option<std::time::Instant>,
    intervals_ms: Vec<f64>,
    cpu_ms: Vec<f64>,
    /// The animatic player's last playback.
    player: crate::panels::PlaybackStats,
}

impl Drop for FrameStats {
    fn drop(&mut self) {
        let json = serde_json::json!({
            "interval_ms": self.intervals_ms,
            "cpu_ms": self.cpu_ms,
            "player": {
                "shown": self.player.shown,
                "dropped": self.player.dropped,
                "late": self.player.late,
            },
        });
        if let Err(e) = std::fs::write(&self.path, json.to_string()) {
            tracing::warn!(
                "could not write frame stats to {}: {e}",
                self.path.display()
            );
        }
    }
}

impl eframe::App for EditorApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        if let Some(stats) = &mut self.frame_stats {
            let now = std::time::Instant::now();
            if let Some(last) = stats.last.replace(now) {
                stats
                    .intervals_ms
                    .push(now.duration_since(last).as_secs_f64() * 1e3);
            }
            if let Some(cpu) = frame.info().cpu_usage {
                stats.cpu_ms.push(f64::from(cpu) * 1e3);
            }
            ui.ctx().request_repaint();
        }
        self.editor.ui(ui);
        if let Some(stats) = &mut self.frame_stats {
            stats.player = self.editor.panels.player.stats;
        }
        if self.editor.panels.quit {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }
}
