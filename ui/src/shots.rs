//! The shot table: Airtable-like, virtualised (`egui_table` draws only the rows in
//! view, so 10,000 shots cost what 40 do), with a sticky header and code column.
//!
//! - Every field edits in place: double-click a cell. Text and numbers are typed (`2.5` seconds, `48` frames) and checked by
//!   the node, which says what is wrong; status, look and the look fields are
//!   dropdowns (a typed look value that is not in the catalog joins the project's
//!   catalog); characters are a multi-select.
//! - With several rows selected, an edit of one of them applies to all (bulk edit).
//! - Click selects, Ctrl-click toggles, Shift-click extends. Drag a row by its
//!   handle (≡) to move the shot in the timeline (not while sorted).
//! - Search matches code, scene, action, characters, look, notes and prompt; the
//!   status filter keeps the statuses ticked; a header click sorts (the timeline
//!   order stays what it is).
//! - Columns can be hidden or shown and resized; both are remembered in the data
//!   dir (`crate::settings`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use egui::{Color32, Id, RichText, Sense};
use reelmesh_protocol::api::edit::{Edit, Place};
use reelmesh_protocol::catalog;
use reelmesh_protocol::model::{LookField, Project, Shot, ShotStatus};

use crate::editor::Editor;
use crate::link::ProjectView;
use crate::table::ShotRow;

/// Row height in points (room for a thumbnail).
pub const ROW_HEIGHT: f32 = 30.0;

/// A column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Col {
    /// `SHT-00001`, with the drag handle.
    Code,
    /// The selected take's thumbnail.
    Take,
    /// Timecode in.
    In,
    /// Timecode out.
    Out,
    /// Length in frames.
    Frames,
    /// Length in seconds.
    Seconds,
    /// Status chip.
    Status,
    /// Scene description.
    Scene,
    /// Action.
    Action,
    /// Linked characters.
    Characters,
    /// Linked look.
    Look,
    /// One of the shot's own look values.
    LookValue(LookField),
    /// Video workflow.
    Workflow,
    /// The advised workflow (an LLM's or the rules'), with its reason on hover.
    Advice,
    /// Notes.
    Notes,
    /// The prompt (assembled, or the override).
    Prompt,
}

impl Col {
    /// Every column, in table order.
    #[must_use]
    pub fn all() -> Vec<Col> {
        let mut all = vec![
            Col::Code,
            Col::Take,
            Col::In,
            Col::Out,
            Col::Frames,
            Col::Seconds,
            Col::Status,
            Col::Scene,
            Col::Action,
            Col::Characters,
            Col::Look,
        ];
        all.extend(LookField::ALL.into_iter().map(Col::LookValue));
        all.extend([Col::Workflow, Col::Advice, Col::Notes, Col::Prompt]);
        all
    }

    /// The header.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Col::Code => "Shot",
            Col::Take => "Take",
            Col::In => "In",
            Col::Out => "Out",
            Col::Frames => "Frames",
            Col::Seconds => "Seconds",
            Col::Status => "Status",
            Col::Scene => "Scene",
            Col::Action => "Action",
            Col::Characters => "Characters",
            Col::Look => "Look",
            Col::LookValue(field) => field.label(),
            Col::Workflow => "Workflow",
            Col::Advice => "Advice",
            Col::Notes => "Notes",
            Col::Prompt => "Prompt",
        }
    }

    /// The shot field an edit of this column sets (see `SHOT_FIELDS`); `None`
    /// when it is derived.
    #[must_use]
    pub fn field(self) -> Option<&'static str> {
        match self {
            Col::Code | Col::Take | Col::In | Col::Out | Col::Advice => None,
            Col::Frames => Some("frames"),
            Col::Seconds => Some("seconds"),
            Col::Status => Some("status"),
            Col::Scene => Some("scene"),
            Col::Action => Some("action"),
            Col::Characters => Some("characters"),
            Col::Look => Some("look"),
            Col::LookValue(field) => Some(field.key()),
            Col::Workflow => Some("workflow"),
            Col::Notes => Some("notes"),
            Col::Prompt => Some("prompt"),
        }
    }

    /// A name for settings files (stable across versions).
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Col::Code => "code",
            Col::Take => "take",
            Col::In => "in",
            Col::Out => "out",
            Col::Advice => "advice",
            other => other.field().unwrap_or("?"),
        }
    }

    /// Width when first shown.
    fn width(self) -> f32 {
        match self {
            Col::Code => 110.0,
            Col::Take => 60.0,
            Col::In | Col::Out => 96.0,
            Col::Frames | Col::Seconds => 70.0,
            Col::Status => 120.0,
            Col::Scene | Col::Action => 240.0,
            Col::Prompt => 420.0,
            Col::Advice => 220.0,
            _ => 140.0,
        }
    }

    /// Hidden until asked for (the shot's own look values, mostly empty).
    fn hidden_by_default(self) -> bool {
        matches!(self, Col::LookValue(_) | Col::Out)
    }

    /// The text of this column for a row (what search and sort read).
    fn text(self, row: &ShotRow, shot: &Shot) -> String {
        match self {
            Col::Code => row.code.clone(),
            Col::Take => shot.selected_take.clone(),
            Col::In => row.timecode_in.clone(),
            Col::Out => row.timecode_out.clone(),
            Col::Frames => row.frames.to_string(),
            Col::Seconds => format!("{:.2}", row.duration_s),
            Col::Status => row.status.clone(),
            Col::Scene => row.scene.clone(),
            Col::Action => row.action.clone(),
            Col::Characters => row.characters.join(", "),
            Col::Look => row.cinematic.clone(),
            Col::LookValue(field) => shot.look.get(field).to_owned(),
            Col::Workflow => shot.workflow.clone(),
            Col::Advice => match &shot.advice {
                Some(a) if a.usable() => a.workflow.clone(),
                Some(a) => format!("no advice: {}", a.error),
                None => String::new(),
            },
            Col::Notes => shot.notes.clone(),
            Col::Prompt => row.prompt.clone(),
        }
    }
}

/// A cell being edited.
#[derive(Debug, Clone)]
pub struct CellEdit {
    /// The shot.
    pub shot_id: String,
    /// The column.
    pub col: Col,
    /// The text typed so far.
    pub text: String,
    /// Focus the field on the next frame.
    pub focus: bool,
}

/// A shot being dragged to another place.
#[derive(Debug, Clone)]
struct DragShot(String);

/// The table's state.
#[derive(Debug, Default)]
pub struct ShotTable {
    /// Selected shots (ids).
    pub selected: BTreeSet<String>,
    /// Where a Shift-click extends from.
    anchor: Option<String>,
    /// The search text.
    pub search: String,
    /// Put the cursor in the search field on the next frame.
    pub focus_search: bool,
    /// Statuses shown (empty: all).
    pub status_filter: BTreeSet<ShotStatus>,
    /// Sorted by a column, ascending when true.
    pub sort: Option<(Col, bool)>,
    /// Columns the user hid or showed (over the defaults).
    pub toggled: HashSet<Col>,
    /// The cell being edited.
    pub editing: Option<CellEdit>,
    /// Row indices in display order, and what they were computed from.
    order: Vec<usize>,
    order_key: Option<OrderKey>,
    /// The bulk edit bar's field and value.
    bulk_col: Option<Col>,
    bulk_value: String,
    /// Column widths remembered from the last run, by key (applied once).
    pub remembered_widths: BTreeMap<String, f32>,
}

#[derive(Debug, Clone, PartialEq)]
struct OrderKey {
    heads: Vec<String>,
    search: String,
    status: BTreeSet<ShotStatus>,
    sort: Option<(Col, bool)>,
}

impl ShotTable {
    /// A new project snapshot: selection keeps the shots that are still there.
    pub fn project_changed(&mut self, view: &ProjectView) {
        let live: HashSet<&str> = view.rows.iter().map(|r| r.shot_id.as_str()).collect();
        self.selected.retain(|id| live.contains(id.as_str()));
        if let Some(edit) = &self.editing
            && !live.contains(edit.shot_id.as_str())
        {
            self.editing = None;
        }
        self.order_key = None;
    }

    /// Whether `col` shows.
    #[must_use]
    pub fn visible(&self, col: Col) -> bool {
        col.hidden_by_default() == self.toggled.contains(&col)
    }

    /// The layout to remember.
    #[must_use]
    pub fn settings(&self) -> crate::settings::Settings {
        crate::settings::Settings {
            columns: (!self.toggled.is_empty()).then(|| {
                Col::all()
                    .into_iter()
                    .filter(|c| self.visible(*c))
                    .map(|c| c.key().to_owned())
                    .collect()
            }),
            widths: self.remembered_widths.clone(),
        }
    }

    /// Take up a remembered layout.
    pub fn apply(&mut self, settings: &crate::settings::Settings) {
        self.toggled.clear();
        if let Some(columns) = &settings.columns {
            for col in Col::all() {
                let shown = col == Col::Code || columns.iter().any(|k| k == col.key());
                if shown == col.hidden_by_default() {
                    self.toggled.insert(col);
                }
            }
        }
        self.remembered_widths.clone_from(&settings.widths);
    }

    /// The selected shot that was clicked last (or any selected one).
    #[must_use]
    pub fn last_selected(&self) -> Option<String> {
        self.anchor
            .clone()
            .filter(|a| self.selected.contains(a))
            .or_else(|| self.selected.iter().next().cloned())
    }

    /// The selected shots in timeline order.
    #[must_use]
    pub fn selected_in_order(&self, view: Option<&ProjectView>) -> Vec<String> {
        view.map(|v| {
            v.rows
                .iter()
                .filter(|r| self.selected.contains(&r.shot_id))
                .map(|r| r.shot_id.clone())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Select only `shot_id`.
    pub fn select_only(&mut self, shot_id: &str) {
        self.selected.clear();
        self.selected.insert(shot_id.to_owned());
        self.anchor = Some(shot_id.to_owned());
    }

    /// The rows shown, in display order (indices into the view's rows).
    pub fn order(&mut self, view: &ProjectView) -> &[usize] {
        let key = OrderKey {
            heads: view.read.heads.clone(),
            search: self.search.clone(),
            status: self.status_filter.clone(),
            sort: self.sort,
        };
        if self.order_key.as_ref() != Some(&key) || self.order.len() > view.rows.len() {
            self.order = display_order(view, &key);
            self.order_key = Some(key);
        }
        &self.order
    }

    /// A click on a row, with the modifiers held.
    fn click(&mut self, shot_id: &str, modifiers: egui::Modifiers, order: &[String]) {
        if modifiers.command {
            if !self.selected.remove(shot_id) {
                self.selected.insert(shot_id.to_owned());
            }
            self.anchor = Some(shot_id.to_owned());
        } else if modifiers.shift
            && let Some(anchor) = &self.anchor
            && let (Some(a), Some(b)) = (
                order.iter().position(|id| id == anchor),
                order.iter().position(|id| id == shot_id),
            )
        {
            let (from, to) = (a.min(b), a.max(b));
            self.selected.extend(order[from..=to].iter().cloned());
        } else {
            self.select_only(shot_id);
        }
    }
}

/// The indices of the rows that pass the search and the status filter, sorted.
fn display_order(view: &ProjectView, key: &OrderKey) -> Vec<usize> {
    let words: Vec<String> = key
        .search
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let shots = &view.read.project.shots;
    let mut order: Vec<usize> = (0..view.rows.len())
        .filter(|i| {
            let (row, shot) = (&view.rows[*i], &shots[*i]);
            (key.status.is_empty() || key.status.contains(&shot.status))
                && (words.is_empty() || {
                    let haystack = [
                        Col::Code,
                        Col::Scene,
                        Col::Action,
                        Col::Characters,
                        Col::Look,
                        Col::Notes,
                        Col::Prompt,
                    ]
                    .iter()
                    .map(|c| c.text(row, shot))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .to_lowercase();
                    words.iter().all(|w| haystack.contains(w.as_str()))
                })
        })
        .collect();
    if let Some((col, ascending)) = key.sort {
        let number = |i: usize| match col {
            Col::Frames | Col::Seconds | Col::In | Col::Out => Some(view.rows[i].frames),
            _ => None,
        };
        order.sort_by(|a, b| {
            let ordering = match (col, number(*a), number(*b)) {
                (Col::In | Col::Out, ..) => a.cmp(b),
                (_, Some(x), Some(y)) => x.cmp(&y),
                _ => col
                    .text(&view.rows[*a], &shots[*a])
                    .to_lowercase()
                    .cmp(&col.text(&view.rows[*b], &shots[*b]).to_lowercase()),
            };
            if ascending {
                ordering
            } else {
                ordering.reverse()
            }
        });
    }
    order
}

/// The colour of a status chip.
#[must_use]
pub fn status_color(status: ShotStatus) -> Color32 {
    match status {
        ShotStatus::Pending => Color32::from_rgb(120, 120, 130),
        ShotStatus::Generating => Color32::from_rgb(70, 130, 220),
        ShotStatus::Completed => Color32::from_rgb(150, 110, 210),
        ShotStatus::NeedsRevision => Color32::from_rgb(225, 140, 50),
        ShotStatus::Approved => Color32::from_rgb(60, 170, 90),
    }
}

/// The blob of the take a shot shows: the selected one, else the latest (a clip
/// shows its first frame).
#[must_use]
pub fn shown_take_blob(
    jobs: Option<&reelmesh_protocol::api::JobsRead>,
    shot: &Shot,
) -> Option<String> {
    let jobs = jobs?;
    let takes = || jobs.takes.iter().filter(|t| t.shot_id == shot.shot_id);
    takes()
        .find(|t| !shot.selected_take.is_empty() && t.take_id == shot.selected_take)
        .or_else(|| takes().max_by_key(|t| t.finished_at_ms))
        .map(|t| t.blob.clone())
}

/// A status as a coloured chip.
pub fn status_chip(ui: &mut egui::Ui, status: ShotStatus) -> egui::Response {
    let text = RichText::new(status.as_str()).color(Color32::WHITE).small();
    egui::Frame::new()
        .fill(status_color(status))
        .corner_radius(8.0)
        .inner_margin(egui::Margin::symmetric(6, 1))
        .show(ui, |ui| ui.add(egui::Label::new(text).selectable(false)))
        .response
}

/// What the table asked for this frame (applied after it is drawn).
enum Action {
    Set {
        shots: Vec<String>,
        field: &'static str,
        value: String,
    },
    Move {
        shot: String,
        to: Place,
    },
    CatalogAdd {
        catalog: String,
        value: String,
    },
    AcceptAdvice {
        shots: Vec<String>,
    },
}

/// The shot table view: toolbar, bulk bar, table.
pub fn show(editor: &mut Editor, ui: &mut egui::Ui) {
    let Some(view) = editor.project.clone() else {
        return;
    };
    toolbar(editor, ui);
    if editor.shots.selected.len() > 1 {
        bulk_bar(editor, ui, &view);
    }
    ui.add_space(4.0);
    let cols: Vec<Col> = Col::all()
        .into_iter()
        .filter(|c| editor.shots.visible(*c))
        .collect();
    let order: Vec<usize> = editor.shots.order(&view).to_vec();
    if order.is_empty() {
        ui.label(if view.rows.is_empty() {
            "no shots yet: add one (Ctrl+N) or import a shot list (Ctrl+I)"
        } else {
            "no shot matches the search and the filter"
        });
        return;
    }
    let shot_order: Vec<String> = order
        .iter()
        .map(|i| view.rows[*i].shot_id.clone())
        .collect();
    let mut grid = Grid {
        view: &view,
        jobs: editor.jobs.clone(),
        cols: &cols,
        order: &order,
        shot_order: &shot_order,
        table: &mut editor.shots,
        images: &mut editor.images,
        actions: Vec::new(),
    };
    let table = egui_table::Table::new()
        .id_salt("shots")
        .num_rows(order.len() as u64)
        .columns(
            cols.iter()
                .map(|c| {
                    egui_table::Column::new(c.width())
                        .range(36.0..=1200.0)
                        .id(column_id(*c))
                })
                .collect::<Vec<_>>(),
        )
        .num_sticky_cols(1)
        .headers([egui_table::HeaderRow::new(24.0)]);
    // Start from the columns' own widths, not a fit to the first rows' text (the
    // table's sizing pass would squeeze truncated text to a few letters).
    let table_id = table.get_id(ui);
    if egui_table::TableState::load(ui.ctx(), table_id).is_none() {
        let mut state = egui_table::TableState::default();
        for col in Col::all() {
            let width = grid
                .table
                .remembered_widths
                .get(col.key())
                .copied()
                .unwrap_or_else(|| col.width());
            state.col_widths.insert(column_id(col), width);
        }
        state.store(ui.ctx(), table_id);
    }
    table.show(ui, &mut grid);
    let actions = std::mem::take(&mut grid.actions);
    // What to remember: the widths once a resize is over.
    // (Only when a click or a drag ends: a resize or a column toggled.)
    if ui.input(|i| i.pointer.any_released())
        && let Some(state) = egui_table::TableState::load(ui.ctx(), table_id)
    {
        editor.shots.remembered_widths = Col::all()
            .into_iter()
            .filter_map(|col| {
                let width = state.col_widths.get(&column_id(col))?;
                (*width != col.width()).then(|| (col.key().to_owned(), *width))
            })
            .collect();
    }
    for action in actions {
        match action {
            Action::Set {
                shots,
                field,
                value,
            } => {
                for shot in shots {
                    editor.edit(Edit::ShotSet {
                        shot,
                        values: vec![(field.to_owned(), value.clone())],
                    });
                }
            }
            Action::Move { shot, to } => editor.edit(Edit::ShotMove { shot, to }),
            Action::CatalogAdd { catalog, value } => {
                editor.edit(Edit::CatalogAdd { catalog, value });
            }
            Action::AcceptAdvice { shots } => editor.edit(Edit::AdviceAccept { shots }),
        }
    }
}

fn toolbar(editor: &mut Editor, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        let search = egui::TextEdit::singleline(&mut editor.shots.search)
            .hint_text("Search shots (code, scene, action, names, prompt)")
            .desired_width(280.0);
        let response = ui.add(search).accessible_name("Search shots");
        if editor.shots.focus_search {
            response.request_focus();
            editor.shots.focus_search = false;
        }
        let filter = if editor.shots.status_filter.is_empty() {
            "Status: all".to_owned()
        } else {
            format!("Status: {}", editor.shots.status_filter.len())
        };
        // Ticking statuses keeps the menu open (several at once); a click outside closes it.
        let stay_open = egui::containers::menu::MenuConfig::new()
            .close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside);
        egui::containers::menu::MenuButton::new(filter)
            .config(stay_open.clone())
            .ui(ui, |ui| {
                for status in ShotStatus::ALL {
                    let mut on = editor.shots.status_filter.contains(&status);
                    if ui.checkbox(&mut on, status.as_str()).changed() {
                        if on {
                            editor.shots.status_filter.insert(status);
                        } else {
                            editor.shots.status_filter.remove(&status);
                        }
                    }
                }
                if ui.button("Show all").clicked() {
                    editor.shots.status_filter.clear();
                }
            });
        egui::containers::menu::MenuButton::new("Columns")
            .config(stay_open)
            .ui(ui, |ui| {
                for col in Col::all().into_iter().filter(|c| *c != Col::Code) {
                    let mut on = editor.shots.visible(col);
                    if ui.checkbox(&mut on, col.title()).changed()
                        && !editor.shots.toggled.remove(&col)
                    {
                        editor.shots.toggled.insert(col);
                    }
                }
            });
        if let Some((col, ascending)) = editor.shots.sort {
            let arrow = if ascending { "▲" } else { "▼" };
            if ui
                .button(format!("Sorted by {} {arrow}  ×", col.title()))
                .on_hover_text("back to timeline order")
                .clicked()
            {
                editor.shots.sort = None;
            }
        }
        ui.separator();
        for command in [
            crate::commands::Command::AddShot,
            crate::commands::Command::DuplicateShots,
            crate::commands::Command::DeleteShots,
            crate::commands::Command::RenderSelected,
        ] {
            let needs_selection = command != crate::commands::Command::AddShot;
            let enabled = !needs_selection || !editor.shots.selected.is_empty();
            if ui
                .add_enabled(enabled, egui::Button::new(command.label()))
                .clicked()
            {
                editor.run_command(command);
            }
        }
    });
}

fn bulk_bar(editor: &mut Editor, ui: &mut egui::Ui, view: &ProjectView) {
    let count = editor.shots.selected.len();
    ui.horizontal(|ui| {
        ui.label(format!("{count} shots selected: set"));
        let current = editor.shots.bulk_col.unwrap_or(Col::Status);
        egui::ComboBox::from_id_salt("bulk-field")
            .selected_text(current.title())
            .show_ui(ui, |ui| {
                for col in Col::all().into_iter().filter(|c| c.field().is_some()) {
                    ui.selectable_value(&mut editor.shots.bulk_col, Some(col), col.title());
                }
            })
            .response
            .accessible_name("Bulk field");
        // A field with fixed choices gets a dropdown; the rest a text field.
        let choices: Option<Vec<String>> = match current {
            Col::Status => Some(
                ShotStatus::ALL
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
            ),
            Col::Look => Some(
                std::iter::once("none".to_owned())
                    .chain(view.read.project.cinematics.iter().map(|c| c.name.clone()))
                    .collect(),
            ),
            _ => None,
        };
        match choices {
            Some(choices) => {
                egui::ComboBox::from_id_salt("bulk-value")
                    .selected_text(editor.shots.bulk_value.clone())
                    .show_ui(ui, |ui| {
                        for choice in choices {
                            ui.selectable_value(
                                &mut editor.shots.bulk_value,
                                choice.clone(),
                                choice,
                            );
                        }
                    })
                    .response
                    .accessible_name("Bulk value");
            }
            None => {
                ui.add(
                    egui::TextEdit::singleline(&mut editor.shots.bulk_value)
                        .hint_text("value")
                        .desired_width(200.0),
                )
                .accessible_name("Bulk value");
            }
        }
        if ui
            .add_enabled(
                current.field().is_some(),
                egui::Button::new(format!("Apply to {count} shots")),
            )
            .clicked()
            && let Some(field) = current.field()
        {
            let shots = editor.shots.selected_in_order(Some(view));
            let value = editor.shots.bulk_value.clone();
            for shot in shots {
                editor.edit(Edit::ShotSet {
                    shot,
                    values: vec![(field.to_owned(), value.clone())],
                });
            }
        }
    });
}

/// The table's delegate for one frame.
struct Grid<'a> {
    view: &'a ProjectView,
    jobs: Option<Arc<reelmesh_protocol::api::JobsRead>>,
    cols: &'a [Col],
    order: &'a [usize],
    shot_order: &'a [String],
    table: &'a mut ShotTable,
    images: &'a mut crate::images::Images,
    actions: Vec<Action>,
}

impl Grid<'_> {
    fn project(&self) -> &Project {
        &self.view.read.project
    }

    /// The shots an edit of `shot_id` applies to: every selected one when it is
    /// among them, else it alone.
    fn targets(&self, shot_id: &str) -> Vec<String> {
        if self.table.selected.len() > 1 && self.table.selected.contains(shot_id) {
            self.table.selected_in_order(Some(self.view))
        } else {
            vec![shot_id.to_owned()]
        }
    }

    fn set(&mut self, shot_id: &str, col: Col, value: String) {
        if let Some(field) = col.field() {
            let shots = self.targets(shot_id);
            self.actions.push(Action::Set {
                shots,
                field,
                value,
            });
        }
    }

    /// The take a row shows (see [`shown_take_blob`]).
    fn take_blob(&self, shot: &Shot) -> Option<String> {
        shown_take_blob(self.jobs.as_deref(), shot)
    }

    /// The cell being edited: a dropdown, a multi-select or a text field. `done`
    /// becomes `Some(Some(value))` to set, `Some(None)` to cancel.
    fn edit_cell(&mut self, ui: &mut egui::Ui, shot: &Shot, col: Col) {
        let Some(mut edit) = self.table.editing.take() else {
            return;
        };
        let name = format!("{} of {}", col.title(), shot.code);
        let done = match col {
            Col::Status => {
                let statuses = ShotStatus::ALL.iter().map(|s| s.as_str().to_owned());
                choose(ui, &name, &edit.text, statuses.collect())
            }
            Col::Look => {
                let mut looks = vec!["(none)".to_owned()];
                looks.extend(self.project().cinematics.iter().map(|c| c.name.clone()));
                choose(ui, &name, &edit.text, looks)
                    .map(|v| v.filter(|v| v != "(none)").or(Some("none".to_owned())))
            }
            Col::Characters => {
                let names: Vec<String> = self
                    .project()
                    .characters
                    .iter()
                    .map(|c| c.name.clone())
                    .collect();
                pick_many(ui, &name, &mut edit.text, &names)
            }
            Col::Workflow => {
                // What some node of the mesh can run first, then what it knows but
                // cannot run now; any other id may still be typed.
                let mut values: Vec<String> = Vec::new();
                if let Some(jobs) = &self.jobs {
                    for offer in &jobs.offers {
                        values.extend(offer.workflows.iter().cloned());
                    }
                    for offer in &jobs.offers {
                        values.extend(offer.unavailable.iter().map(|(w, _)| w.clone()));
                    }
                }
                let mut seen = std::collections::HashSet::new();
                values.retain(|w| w != "card" && seen.insert(w.clone()));
                type_or_pick(ui, &name, &mut edit, &values)
            }
            Col::LookValue(field) => {
                let catalog_name = field.key();
                let mut values: Vec<String> = catalog::catalog(catalog_name)
                    .map(|c| c.defaults.iter().map(|v| (*v).to_owned()).collect())
                    .unwrap_or_default();
                if let Some(added) = self.project().catalog_additions.get(catalog_name) {
                    values.extend(added.iter().cloned());
                }
                let done = type_or_pick(ui, &name, &mut edit, &values);
                if let Some(Some(value)) = &done
                    && !value.is_empty()
                    && !values.contains(value)
                {
                    // A typed value joins the project's catalog.
                    self.actions.push(Action::CatalogAdd {
                        catalog: catalog_name.to_owned(),
                        value: value.clone(),
                    });
                }
                done
            }
            _ => type_text(ui, &name, &mut edit),
        };
        match done {
            Some(Some(value)) => self.set(&shot.shot_id, col, value),
            Some(None) => {}
            None => self.table.editing = Some(edit),
        }
    }
}

/// A dropdown of `choices`, open at once; the one clicked.
fn choose(
    ui: &mut egui::Ui,
    name: &str,
    current: &str,
    choices: Vec<String>,
) -> Option<Option<String>> {
    let mut done = None;
    let response = egui::ComboBox::from_label(name)
        .selected_text(current)
        .show_ui(ui, |ui| {
            for choice in choices {
                if ui.selectable_label(current == choice, &choice).clicked() {
                    done = Some(Some(choice));
                }
            }
        });
    if ui.input(|i| i.key_pressed(egui::Key::Escape)) {
        return Some(None);
    }
    if done.is_none() && response.inner.is_none() && response.response.clicked_elsewhere() {
        return Some(None);
    }
    done
}

/// A multi-select of `names` (comma-separated in `text`), set with "Done".
fn pick_many(
    ui: &mut egui::Ui,
    name: &str,
    text: &mut String,
    names: &[String],
) -> Option<Option<String>> {
    let mut chosen: Vec<String> = text
        .split(',')
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    let mut done = None;
    let shown = if chosen.is_empty() {
        "(none)".to_owned()
    } else {
        chosen.join(", ")
    };
    ui.menu_button(shown, |ui| {
        for candidate in names {
            let mut on = chosen.contains(candidate);
            if ui.checkbox(&mut on, candidate).changed() {
                if on {
                    chosen.push(candidate.clone());
                } else {
                    chosen.retain(|n| n != candidate);
                }
            }
        }
        ui.separator();
        if ui.button("Done").clicked() {
            done = Some(Some(chosen.join(", ")));
            ui.close();
        }
    })
    .response
    .accessible_name(name);
    *text = chosen.join(", ");
    if ui.input(|i| i.key_pressed(egui::Key::Escape)) {
        return Some(None);
    }
    done
}

/// A text field with the catalog's values that contain what is typed offered
/// below it; Enter or leaving the field sets what is typed.
fn type_or_pick(
    ui: &mut egui::Ui,
    name: &str,
    edit: &mut CellEdit,
    values: &[String],
) -> Option<Option<String>> {
    let response = ui
        .add(egui::TextEdit::singleline(&mut edit.text).desired_width(f32::INFINITY))
        .accessible_name(name);
    if edit.focus {
        response.request_focus();
        edit.focus = false;
    }
    let mut done = None;
    // A press on a suggestion takes the focus from the field before the click
    // ends: the list stays open while the pointer is on it (where it was drawn last
    // frame), and the field's value is not taken meanwhile.
    let key = response.id.with("suggestions");
    let (last, deferred): (Option<egui::Rect>, bool) = ui.data(|d| {
        (
            d.get_temp(key),
            d.get_temp(key.with("deferred")).unwrap_or(false),
        )
    });
    let pointer_in = last.is_some_and(|rect| {
        ui.input(|i| {
            i.pointer
                .interact_pos()
                .or(i.pointer.hover_pos())
                .is_some_and(|p| rect.contains(p))
        })
    });
    let shown = egui::Popup::from_response(&response)
        .open(response.has_focus() || pointer_in)
        .show(|ui| {
            let typed = edit.text.to_lowercase();
            for value in values
                .iter()
                .filter(|v| v.to_lowercase().contains(&typed))
                .take(12)
            {
                if ui.selectable_label(false, value).clicked() {
                    done = Some(Some(value.clone()));
                }
            }
        });
    ui.data_mut(|d| match &shown {
        Some(inner) => {
            d.insert_temp(key, inner.response.rect);
        }
        None => d.remove::<egui::Rect>(key),
    });
    let left = response.lost_focus() || (deferred && !response.has_focus());
    if done.is_none() && left {
        if pointer_in {
            ui.data_mut(|d| d.insert_temp(key.with("deferred"), true));
        } else {
            done = Some(if ui.input(|i| i.key_pressed(egui::Key::Escape)) {
                None
            } else {
                Some(edit.text.trim().to_owned())
            });
        }
    }
    if done.is_some() {
        ui.data_mut(|d| d.remove::<bool>(key.with("deferred")));
    }
    done
}

/// A text field; Enter or leaving it sets what is typed, Escape cancels.
fn type_text(ui: &mut egui::Ui, name: &str, edit: &mut CellEdit) -> Option<Option<String>> {
    let response = ui
        .add(egui::TextEdit::singleline(&mut edit.text).desired_width(f32::INFINITY))
        .accessible_name(name);
    if edit.focus {
        response.request_focus();
        edit.focus = false;
    }
    response.lost_focus().then(|| {
        if ui.input(|i| i.key_pressed(egui::Key::Escape)) {
            None
        } else {
            Some(edit.text.clone())
        }
    })
}

impl egui_table::TableDelegate for Grid<'_> {
    fn header_cell_ui(&mut self, ui: &mut egui::Ui, cell: &egui_table::HeaderCellInfo) {
        let Some(col) = self.cols.get(cell.col_range.start).copied() else {
            return;
        };
        let arrow = match self.table.sort {
            Some((sorted, true)) if sorted == col => " ▲",
            Some((sorted, false)) if sorted == col => " ▼",
            _ => "",
        };
        egui::Frame::NONE
            .inner_margin(egui::Margin::symmetric(4, 2))
            .show(ui, |ui| {
                let button =
                    egui::Button::new(RichText::new(format!("{}{arrow}", col.title())).strong())
                        .frame(false);
                if ui
                    .add(button)
                    .on_hover_text("sort by this column")
                    .clicked()
                {
                    self.table.sort = match self.table.sort {
                        Some((sorted, true)) if sorted == col => Some((col, false)),
                        Some((sorted, false)) if sorted == col => None,
                        _ => Some((col, true)),
                    };
                }
            });
    }

    fn row_ui(&mut self, ui: &mut egui::Ui, row_nr: u64) {
        let Some(shot_id) = self.shot_order.get(row_nr as usize).cloned() else {
            return;
        };
        let rect = ui.max_rect();
        if self.table.selected.contains(&shot_id) {
            ui.painter().rect_filled(
                rect,
                0.0,
                ui.visuals().selection.bg_fill.gamma_multiply(0.6),
            );
        } else if row_nr % 2 == 1 {
            ui.painter()
                .rect_filled(rect, 0.0, ui.visuals().faint_bg_color);
        }
        let response = ui.response();
        // A shot dropped on this row goes before it (upper half) or after it.
        if self.table.sort.is_none()
            && let Some(pointer) = ui.ctx().pointer_interact_pos()
            && rect.contains(pointer)
        {
            let before = pointer.y < rect.center().y;
            if response.dnd_hover_payload::<DragShot>().is_some() {
                let y = if before { rect.top() } else { rect.bottom() };
                ui.painter().hline(
                    rect.x_range(),
                    y,
                    egui::Stroke::new(2.0, ui.visuals().selection.stroke.color),
                );
            }
            if let Some(dragged) = response.dnd_release_payload::<DragShot>()
                && dragged.0 != shot_id
            {
                let to = if before {
                    Place::Before(shot_id)
                } else {
                    Place::After(shot_id)
                };
                self.actions.push(Action::Move {
                    shot: dragged.0.clone(),
                    to,
                });
            }
        }
    }

    fn cell_ui(&mut self, ui: &mut egui::Ui, cell: &egui_table::CellInfo) {
        let egui_table::CellInfo { row_nr, col_nr, .. } = *cell;
        let (Some(&index), Some(&col)) = (self.order.get(row_nr as usize), self.cols.get(col_nr))
        else {
            return;
        };
        let view = self.view;
        let (row, shot) = (&view.rows[index], &view.read.project.shots[index]);
        let editing = self
            .table
            .editing
            .as_ref()
            .is_some_and(|e| e.shot_id == shot.shot_id && e.col == col);
        if editing {
            egui::Frame::NONE
                .inner_margin(egui::Margin::symmetric(4, 2))
                .show(ui, |ui| self.edit_cell(ui, shot, col));
            return;
        }
        // The cell takes clicks before its content is drawn (labels are not
        // selectable here), so a click anywhere in it selects the row and a
        // double-click edits the cell.
        let cell_response = ui.interact(
            ui.max_rect(),
            Id::unique(("shot-cell", &shot.shot_id, col_nr)),
            Sense::click(),
        );
        if cell_response.clicked() {
            let modifiers = ui.input(|i| i.modifiers);
            self.table.click(&shot.shot_id, modifiers, self.shot_order);
        }
        if cell_response.double_clicked() && col.field().is_some() {
            self.table.select_only(&shot.shot_id);
            self.table.editing = Some(CellEdit {
                shot_id: shot.shot_id.clone(),
                col,
                text: match col {
                    Col::Frames => row.frames.to_string(),
                    Col::Seconds => format!("{}", row.duration_s),
                    Col::Look if shot.cinematic.is_none() => String::new(),
                    Col::Prompt => shot.prompt_override.clone().unwrap_or_default(),
                    _ => col.text(row, shot),
                },
                focus: true,
            });
        }
        egui::Frame::NONE
            .inner_margin(egui::Margin::symmetric(4, 2))
            .show(ui, |ui| match col {
                Col::Code => {
                    ui.dnd_drag_source(
                        Id::unique(("drag-shot", &shot.shot_id)),
                        DragShot(shot.shot_id.clone()),
                        |ui| ui.label(RichText::new(format!("≡ {}", row.code)).monospace()),
                    )
                    .response
                    .on_hover_text("drag to move the shot in the timeline");
                }
                Col::Take => {
                    if let Some(blob) = self.take_blob(shot) {
                        match self.images.thumbnail(ui.ctx(), &blob) {
                            Some(texture) => {
                                ui.add(
                                    egui::Image::new(&texture)
                                        .max_size(egui::vec2(48.0, ROW_HEIGHT - 4.0))
                                        .alt_text(format!("take of {}", row.code)),
                                );
                            }
                            None => {
                                ui.spinner();
                            }
                        }
                    }
                }
                Col::Status => {
                    status_chip(ui, shot.status);
                }
                Col::Advice => {
                    if let Some(shots) = advice_cell(ui, shot, &row.code) {
                        let targets = self.targets(&shot.shot_id);
                        self.actions.push(Action::AcceptAdvice {
                            shots: if shots {
                                targets
                            } else {
                                vec![shot.shot_id.clone()]
                            },
                        });
                    }
                }
                Col::Frames => {
                    ui.add(egui::Label::new(format!("{} f", row.frames)).selectable(false));
                }
                Col::Seconds => {
                    ui.add(egui::Label::new(format!("{:.2} s", row.duration_s)).selectable(false));
                }
                Col::Prompt if row.prompt_overridden => {
                    ui.add(
                        egui::Label::new(RichText::new(one_line(&row.prompt)).italics())
                            .selectable(false)
                            .truncate(),
                    );
                }
                _ => {
                    ui.add(
                        egui::Label::new(one_line(&col.text(row, shot)))
                            .selectable(false)
                            .truncate(),
                    );
                }
            });
    }

    fn default_row_height(&self) -> f32 {
        ROW_HEIGHT
    }
}

/// A shot's advice: the workflow and confidence (the reason and who advised on
/// hover) and an Accept button while it differs from the shot's workflow; the
/// error in the warning colour. Returns `Some(true)` when Accept was clicked with
/// the selection as the target, `Some(false)` for this shot alone.
fn advice_cell(ui: &mut egui::Ui, shot: &Shot, code: &str) -> Option<bool> {
    let advice = shot.advice.as_ref()?;
    if !advice.usable() {
        ui.add(
            egui::Label::new(RichText::new("no advice").color(ui.visuals().warn_fg_color))
                .selectable(false),
        )
        .on_hover_text(format!("{} ({})", advice.error, advice.source));
        return None;
    }
    let mut accepted = None;
    ui.horizontal(|ui| {
        let text = match advice.confidence {
            Some(c) => format!("{} {:.0}%", advice.workflow, c * 100.0),
            None => advice.workflow.clone(),
        };
        let rule = advice.source == reelmesh_protocol::model::Advice::RULES;
        ui.add(
            egui::Label::new(if rule {
                RichText::new(text).italics()
            } else {
                RichText::new(text)
            })
            .selectable(false),
        )
        .on_hover_text(format!(
            "{}\n— {}{}",
            advice.reason,
            if rule {
                "the rule-based advisor"
            } else {
                advice.source.as_str()
            },
            advice
                .frames
                .map_or_else(String::new, |f| format!(", suggests {f} frames"))
        ));
        if shot.workflow != advice.workflow {
            let button = ui
                .small_button("Accept")
                .on_hover_text("set the shot's workflow to the advised one");
            let button = button.accessible_name(format!("Accept advice for {code}"));
            if button.clicked() {
                accepted = Some(ui.input(|i| i.modifiers.shift || i.modifiers.command));
            }
        } else {
            ui.label(RichText::new("in use").weak())
                .on_hover_text("the shot uses the advised workflow");
        }
    });
    accepted
}

/// The id a column's width is kept under.
fn column_id(col: Col) -> Id {
    Id::unique(("shot-column", format!("{col:?}")))
}

/// Line breaks and tabs as spaces, so a multi-line cell stays on its row.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r', '\t'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_taken_up_again_shows_the_same_columns_and_widths() {
        let mut table = ShotTable::default();
        assert!(
            table.settings().columns.is_none(),
            "defaults are not written out"
        );
        // Hide the scene, show the camera body (hidden by default), widen the action.
        let camera = Col::LookValue(LookField::CameraBody);
        table.toggled.insert(Col::Scene);
        table.toggled.insert(camera);
        table.remembered_widths.insert("action".into(), 333.0);
        let settings = table.settings();
        let json = serde_json::to_string(&settings).expect("json");

        let mut again = ShotTable::default();
        again.apply(&serde_json::from_str(&json).expect("read"));
        for col in Col::all() {
            assert_eq!(again.visible(col), table.visible(col), "{col:?}");
        }
        assert!(!again.visible(Col::Scene));
        assert!(again.visible(camera));
        assert_eq!(again.remembered_widths.get("action"), Some(&333.0));
    }
}
