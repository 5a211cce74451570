//! The storyboard timeline under the shot table: a block per shot, as wide as its
//! frames, in timeline order, with the take's thumbnail, the code and the status
//! colour; a timecode ruler and a playhead; a marker on the ruler for each shot
//! with notes (hover: the note; click: the playhead goes there). Drag a
//! block's right edge to change its length (whole frames; the new length and out
//! timecode show while dragging), drag a block to move the shot; each is one edit
//! (one undo step) and the table, the timecodes and the peers follow.

use egui::{Color32, Id, Pos2, Rect, Sense, Stroke, StrokeKind, pos2, vec2};
use reelmesh_protocol::api::edit::{Edit, Place};
use reelmesh_protocol::timecode::{FrameRate, Timecode};

use crate::editor::Editor;

/// Height of the ruler and of a block, points.
const RULER: f32 = 18.0;
const BLOCK: f32 = 64.0;
/// Width of a block's trim handle, points.
const HANDLE: f32 = 6.0;

/// What a drag on the timeline is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum TimelineDrag {
    /// Changing a shot's length.
    Trim {
        /// The shot.
        shot: String,
        /// Its length while dragging, frames.
        frames: u64,
        /// Where the pointer took the edge, points right of the block's end.
        grab: f32,
    },
    /// Moving a shot.
    Move {
        /// The shot.
        shot: String,
    },
}

/// The timeline's state between frames.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineState {
    /// Points per frame.
    pub zoom: f32,
    /// The playhead, frames from the start.
    pub playhead: u64,
    /// A drag in progress.
    pub drag: Option<TimelineDrag>,
}

impl Default for TimelineState {
    fn default() -> Self {
        TimelineState {
            zoom: 1.5,
            playhead: 0,
            drag: None,
        }
    }
}

struct Block {
    shot: String,
    code: String,
    start: u64,
    frames: u64,
    /// Its length in the document (before a trim in progress).
    original: u64,
    color: Color32,
    /// The shot's notes (empty: none).
    notes: String,
    thumbnail: Option<egui::TextureHandle>,
}

/// A shot's length as the document has it (the block list shows the trim).
fn block_frames_before(blocks: &[Block], shot: &str) -> u64 {
    blocks
        .iter()
        .find(|b| b.shot == shot)
        .map_or(0, |b| b.original)
}

/// The timeline panel.
pub fn timeline(editor: &mut Editor, ui: &mut egui::Ui) {
    let Some(view) = editor.project.clone() else {
        return;
    };
    let rate = view.read.project.settings.frame_rate;
    let trim = match &editor.panels.timeline.drag {
        Some(TimelineDrag::Trim { shot, frames, .. }) => Some((shot.clone(), *frames)),
        _ => None,
    };
    let mut blocks = Vec::with_capacity(view.rows.len());
    let mut at = 0;
    for (row, shot) in view.rows.iter().zip(&view.read.project.shots) {
        let frames = match &trim {
            Some((id, frames)) if *id == shot.shot_id => *frames,
            _ => row.frames,
        };
        let thumbnail = crate::shots::shown_take_blob(editor.jobs.as_deref(), shot)
            .and_then(|blob| editor.images.thumbnail(ui.ctx(), &blob));
        blocks.push(Block {
            shot: shot.shot_id.clone(),
            code: row.code.clone(),
            start: at,
            frames,
            original: row.frames,
            color: crate::shots::status_color(shot.status),
            notes: shot.notes.trim().to_owned(),
            thumbnail,
        });
        at += frames;
    }
    let total = at;
    let state = &mut editor.panels.timeline;
    ui.horizontal(|ui| {
        ui.strong("Timeline");
        ui.label(format!(
            "{} shots · {} · playhead {}",
            blocks.len(),
            Timecode::from_frames(total, rate),
            Timecode::from_frames(state.playhead, rate)
        ));
        ui.add(
            egui::Slider::new(&mut state.zoom, 0.05..=16.0)
                .logarithmic(true)
                .text("zoom"),
        )
        .accessible_name("Timeline zoom");
    });
    let mut edits = Vec::new();
    let mut select = None;
    egui::ScrollArea::horizontal()
        .id_salt("timeline-scroll")
        .show(ui, |ui| {
            let width = total as f32 * state.zoom + 80.0;
            let (rect, _) =
                ui.allocate_exact_size(vec2(width, RULER + BLOCK + 8.0), Sense::hover());
            ruler(ui, rect, rate, total, state);
            note_markers(ui, rect, &blocks, state, &mut select);
            for block in &blocks {
                block_ui(
                    ui,
                    rect,
                    block,
                    rate,
                    state,
                    &blocks,
                    &mut edits,
                    &mut select,
                );
            }
            let x = rect.left() + state.playhead as f32 * state.zoom;
            ui.painter().vline(
                x,
                rect.y_range(),
                Stroke::new(1.5, Color32::from_rgb(230, 70, 60)),
            );
        });
    if let Some(shot) = select {
        editor.shots.select_only(&shot);
    }
    for edit in edits {
        editor.edit(edit);
    }
}

/// The timecode ruler; a click or drag on it moves the playhead.
fn ruler(ui: &mut egui::Ui, rect: Rect, rate: FrameRate, total: u64, state: &mut TimelineState) {
    let ruler = Rect::from_min_size(rect.min, vec2(rect.width(), RULER));
    let response = ui
        .interact(ruler, Id::unique("timeline-ruler"), Sense::click_and_drag())
        .on_hover_text("click or drag to move the playhead");
    if (response.clicked() || response.dragged())
        && let Some(pointer) = response.interact_pointer_pos()
    {
        let frame = ((pointer.x - rect.left()) / state.zoom).max(0.0).round();
        state.playhead = (frame as u64).min(total);
    }
    let painter = ui.painter();
    painter.rect_filled(ruler, 0.0, ui.visuals().faint_bg_color);
    let (num, den) = rate.rational();
    let fps = f64::from(num) / f64::from(den);
    // A label every N seconds so labels sit at least 70 points apart.
    let per_second = fps as f32 * state.zoom;
    let step = [1_u64, 2, 5, 10, 30, 60, 300, 600]
        .into_iter()
        .find(|s| per_second * *s as f32 >= 70.0)
        .unwrap_or(600);
    let seconds = (total as f64 / fps).ceil() as u64;
    for second in (0..=seconds).step_by(step as usize) {
        let frame = (second as f64 * fps).round() as u64;
        let x = rect.left() + frame as f32 * state.zoom;
        painter.vline(x, ruler.y_range(), Stroke::new(1.0, Color32::GRAY));
        painter.text(
            pos2(x + 3.0, ruler.top() + 2.0),
            egui::Align2::LEFT_TOP,
            Timecode::from_frames(frame, rate).to_string(),
            egui::FontId::monospace(10.0),
            ui.visuals().weak_text_color(),
        );
    }
}

/// A marker on the ruler where each shot with notes starts: hovering shows the
/// note, a click puts the playhead there and selects the shot.
fn note_markers(
    ui: &mut egui::Ui,
    rect: Rect,
    blocks: &[Block],
    state: &mut TimelineState,
    select: &mut Option<String>,
) {
    let color = Color32::from_rgb(240, 190, 60);
    for block in blocks.iter().filter(|b| !b.notes.is_empty()) {
        let x = rect.left() + block.start as f32 * state.zoom;
        let marker = Rect::from_min_size(pos2(x, rect.top() + RULER - 10.0), vec2(10.0, 10.0));
        let response = ui
            .interact(
                marker,
                Id::unique(("note-marker", &block.shot)),
                Sense::click(),
            )
            .on_hover_text(format!("{}: {}", block.code, block.notes));
        response.widget_info(|| {
            egui::WidgetInfo::labeled(
                egui::Role::Button,
                true,
                format!("note on {}: {}", block.code, block.notes),
            )
        });
        if response.clicked() {
            state.playhead = block.start;
            *select = Some(block.shot.clone());
        }
        let fill = if response.hovered() {
            color.gamma_multiply(1.3)
        } else {
            color
        };
        ui.painter().add(egui::Shape::convex_polygon(
            vec![
                pos2(x, marker.top()),
                pos2(x + 9.0, marker.top()),
                pos2(x + 9.0, marker.top() + 5.0),
                pos2(x, marker.bottom()),
            ],
            fill,
            Stroke::NONE,
        ));
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one block in one frame: where it is, the shared drag state, and the edits and selection it produces"
)]
fn block_ui(
    ui: &mut egui::Ui,
    rect: Rect,
    block: &Block,
    rate: FrameRate,
    state: &mut TimelineState,
    blocks: &[Block],
    edits: &mut Vec<Edit>,
    select: &mut Option<String>,
) {
    let top = rect.top() + RULER + 4.0;
    let x0 = rect.left() + block.start as f32 * state.zoom;
    let x1 = x0 + block.frames as f32 * state.zoom;
    let body = Rect::from_min_max(
        pos2(x0, top),
        pos2((x1 - HANDLE).max(x0 + 1.0), top + BLOCK),
    );
    let edge = Rect::from_min_max(pos2(x1 - HANDLE, top), pos2(x1 + 2.0, top + BLOCK));
    let name = format!("{} on the timeline", block.code);
    let response = ui
        .interact(
            body,
            Id::unique(("timeline-block", &block.shot)),
            Sense::click_and_drag(),
        )
        .on_hover_text(format!("{} · {} f", block.code, block.frames));
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &name));
    let handle = ui.interact(
        edge,
        Id::unique(("timeline-edge", &block.shot)),
        Sense::drag(),
    );
    handle.widget_info(|| {
        egui::WidgetInfo::labeled(egui::Role::Splitter, true, format!("end of {}", block.code))
    });
    if handle.hovered() || handle.dragged() {
        ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
    }
    if response.clicked() {
        *select = Some(block.shot.clone());
    }

    // Trim: the length follows the pointer in whole frames.
    if handle.drag_started()
        && let Some(pointer) = ui.ctx().pointer_interact_pos()
    {
        state.drag = Some(TimelineDrag::Trim {
            shot: block.shot.clone(),
            frames: block.frames,
            grab: pointer.x - x1,
        });
    }
    if handle.dragged()
        && let Some(pointer) = ui.ctx().pointer_interact_pos()
        && let Some(TimelineDrag::Trim { frames, grab, .. }) = &mut state.drag
    {
        // The block's own start: `x0` is where it is drawn, unchanged by the trim.
        *frames = ((pointer.x - *grab - x0) / state.zoom).round().max(1.0) as u64;
        let frames = *frames;
        egui::Tooltip::always_open(
            ui.ctx().clone(),
            ui.layer_id(),
            Id::unique("timeline-trim-tip"),
            egui::PopupAnchor::Pointer,
        )
        .show(|ui| {
            ui.label(format!(
                "{} · {frames} f · {:.2} s · out {}",
                block.code,
                rate.frames_to_seconds(frames),
                Timecode::from_frames(block.start + frames, rate)
            ));
        });
    }
    if handle.drag_stopped()
        && let Some(TimelineDrag::Trim { shot, frames, .. }) = state.drag.take()
        && shot == block.shot
        && frames != block_frames_before(blocks, &shot)
    {
        edits.push(Edit::ShotSet {
            shot,
            values: vec![("frames".into(), frames.to_string())],
        });
    }

    let moving = move_drag(ui, rect, block, &response, state, blocks, edits);
    paint_block(
        ui,
        block,
        Rect::from_min_max(pos2(x0, top), pos2(x1, top + BLOCK)),
        moving,
    );
}

/// A block: status colour, thumbnail, code, a notes mark, the outline.
fn paint_block(ui: &egui::Ui, block: &Block, whole: Rect, moving: bool) {
    // Paint: status colour, thumbnail, code, a notes mark.
    let painter = ui.painter();
    let (x0, x1, top) = (whole.left(), whole.right(), whole.top());
    painter.rect_filled(whole, 3.0, block.color.gamma_multiply(0.35));
    painter.rect_filled(
        Rect::from_min_size(whole.min, vec2(whole.width(), 4.0)),
        0.0,
        block.color,
    );
    if let Some(texture) = &block.thumbnail {
        let size = texture.size_vec2();
        let height = BLOCK - 22.0;
        let width = (size.x / size.y.max(1.0) * height).min(whole.width() - 4.0);
        if width > 8.0 {
            let image = Rect::from_min_size(pos2(x0 + 2.0, top + 6.0), vec2(width, height));
            painter.image(
                texture.id(),
                image,
                Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0)),
                Color32::WHITE,
            );
        }
    }
    if whole.width() > 30.0 {
        painter.text(
            pos2(x0 + 3.0, top + BLOCK - 3.0),
            egui::Align2::LEFT_BOTTOM,
            &block.code,
            egui::FontId::monospace(10.0),
            ui.visuals().strong_text_color(),
        );
    }
    if !block.notes.is_empty() {
        painter.circle_filled(
            pos2(x1 - 8.0, top + 10.0),
            3.5,
            Color32::from_rgb(240, 190, 60),
        );
    }
    let outline = if moving {
        Stroke::new(2.0, ui.visuals().selection.stroke.color)
    } else {
        Stroke::new(1.0, ui.visuals().widgets.noninteractive.bg_stroke.color)
    };
    painter.rect_stroke(whole, 3.0, outline, StrokeKind::Inside);
}

/// Moving a block: drop it before the block whose middle is right of the pointer.
/// Returns whether this block is the one moving.
fn move_drag(
    ui: &egui::Ui,
    rect: Rect,
    block: &Block,
    response: &egui::Response,
    state: &mut TimelineState,
    blocks: &[Block],
    edits: &mut Vec<Edit>,
) -> bool {
    let top = rect.top() + RULER + 4.0;
    if response.drag_started() {
        state.drag = Some(TimelineDrag::Move {
            shot: block.shot.clone(),
        });
    }
    let moving = matches!(&state.drag, Some(TimelineDrag::Move { shot }) if *shot == block.shot);
    let target = |pointer: Pos2| {
        blocks
            .iter()
            .find(|b| {
                let middle = rect.left() + (b.start as f32 + b.frames as f32 / 2.0) * state.zoom;
                pointer.x < middle
            })
            .map(|b| b.shot.clone())
    };
    if moving
        && response.dragged()
        && let Some(pointer) = ui.ctx().pointer_interact_pos()
    {
        let x = target(pointer)
            .and_then(|id| blocks.iter().find(|b| b.shot == id))
            .map_or(
                rect.left() + blocks.iter().map(|b| b.frames).sum::<u64>() as f32 * state.zoom,
                |b| rect.left() + b.start as f32 * state.zoom,
            );
        ui.painter().vline(
            x,
            top..=top + BLOCK,
            Stroke::new(3.0, ui.visuals().selection.stroke.color),
        );
    }
    if moving
        && response.drag_stopped()
        && let Some(pointer) = ui.ctx().pointer_interact_pos()
    {
        state.drag = None;
        let to = match target(pointer) {
            Some(id) if id == block.shot => None,
            Some(id) => {
                // Dropping just right of itself leaves it where it is.
                let index = blocks.iter().position(|b| b.shot == block.shot);
                let next = index.and_then(|i| blocks.get(i + 1)).map(|b| &b.shot);
                (next != Some(&id)).then_some(Place::Before(id))
            }
            None => (blocks.last().map(|b| &b.shot) != Some(&block.shot)).then_some(Place::End),
        };
        if let Some(to) = to {
            edits.push(Edit::ShotMove {
                shot: block.shot.clone(),
                to,
            });
        }
    }

    moving
}
