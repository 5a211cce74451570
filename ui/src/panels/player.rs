//! The animatic player: the cut played at the project rate, each shot's take (a
//! still held for its length, a clip's frames decoded with ffmpeg ahead of the
//! playhead), black with the code where there is no take. Play / pause (Space),
//! step a frame (← →), scrub, loop the selected shot (L), full screen (F); the
//! shot code and timecode over the picture; the table's selection and the
//! timeline's playhead follow.

use egui::{Color32, RichText};
use reelmesh_protocol::jobs::TakeMedia;
use reelmesh_protocol::timecode::Timecode;

use crate::editor::Editor;

/// The player's state between frames.
#[derive(Debug, Default)]
pub struct PlayerState {
    /// Playing since (input time, frame then).
    pub playing: Option<(f64, u64)>,
    /// Loop the selected shot's frames.
    pub loop_shot: bool,
    /// Full screen.
    pub full_screen: bool,
    /// The clip decoder (made on first use).
    pub clips: Option<crate::clips::Clips>,
    /// How the current (or last) playback went.
    pub stats: PlaybackStats,
}

/// How a playback went, counted from when Play was pressed: frames of the cut
/// shown, frames skipped because a frame of the window came too late, and frames
/// shown without their picture (still or clip frame not decoded in time).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PlaybackStats {
    /// The playback these count (its start time).
    since: Option<u64>,
    /// Frames of the cut shown.
    pub shown: u64,
    /// Frames of the cut never shown.
    pub dropped: u64,
    /// Frames shown without their picture.
    pub late: u64,
    last: Option<u64>,
}

impl PlaybackStats {
    /// Count frame `frame` of a playback that started at `since` (seconds, bit
    /// pattern) within `range`, `pictured` when its picture was on screen.
    fn count(&mut self, since: f64, frame: u64, range: (u64, u64), pictured: bool) {
        if self.since != Some(since.to_bits()) {
            *self = PlaybackStats {
                since: Some(since.to_bits()),
                ..PlaybackStats::default()
            };
        }
        if self.last == Some(frame) {
            return;
        }
        if let Some(last) = self.last {
            // A loop's wrap is not a drop: count what was skipped on each side.
            let skipped = if frame > last {
                frame - last - 1
            } else {
                (range.1.saturating_sub(last + 1)) + frame.saturating_sub(range.0)
            };
            self.dropped += skipped;
        }
        self.shown += 1;
        if !pictured {
            self.late += 1;
        }
        self.last = Some(frame);
    }
}

/// What is under the playhead.
enum Picture {
    Still(String),
    Clip(String, (u64, u64)),
    Nothing,
}

struct Segment {
    shot: String,
    code: String,
    start: u64,
    frames: u64,
    picture: Picture,
}

/// The player view.
pub fn player(editor: &mut Editor, ui: &mut egui::Ui) {
    let Some(view) = editor.project.clone() else {
        return;
    };
    let rate = view.read.project.settings.frame_rate;
    let (num, den) = rate.rational();
    let segments = segments(editor, &view);
    let total: u64 = segments.iter().map(|s| s.frames).sum();
    if total == 0 {
        ui.label("no shots to play");
        return;
    }
    let now = ui.input(|i| i.time);
    let selected = editor.shots.last_selected();
    let range = selected
        .as_deref()
        .and_then(|id| segments.iter().find(|s| s.shot == id))
        .filter(|_| editor.panels.player.loop_shot)
        .map_or((0, total), |s| (s.start, s.start + s.frames));
    keys(editor, ui, now, range, total);
    let state = &mut editor.panels.player;
    let mut playhead = editor.panels.timeline.playhead.min(total - 1);
    let playing = state.playing;
    if let Some((since, from)) = state.playing {
        // Frame-accurate: the frame is the elapsed time times the exact rate.
        let elapsed = ((now - since).max(0.0) * f64::from(num) / f64::from(den)).floor() as u64;
        let mut frame = from + elapsed;
        if frame >= range.1 {
            if state.loop_shot {
                frame = range.0 + (frame - range.0) % (range.1 - range.0).max(1);
            } else {
                frame = range.1 - 1;
                state.playing = None;
            }
        }
        playhead = frame;
        ui.ctx().request_repaint();
    }
    editor.panels.timeline.playhead = playhead;
    let Some(current) = segments
        .iter()
        .find(|s| playhead >= s.start && playhead < s.start + s.frames)
    else {
        return;
    };
    // The table follows the playhead.
    if selected.as_deref() != Some(current.shot.as_str()) && state.playing.is_some() {
        editor.shots.select_only(&current.shot);
    }
    controls(editor, ui, now, playhead, total, rate, &current.code);
    let pictured = picture(editor, ui, current, playhead, ((num, den), rate), &segments);
    if let Some((since, _)) = playing {
        editor
            .panels
            .player
            .stats
            .count(since, playhead, range, pictured);
    }
}

fn segments(editor: &Editor, view: &crate::link::ProjectView) -> Vec<Segment> {
    let mut at = 0;
    view.rows
        .iter()
        .zip(&view.read.project.shots)
        .map(|(row, shot)| {
            let take = editor.jobs.as_ref().and_then(|jobs| {
                let own = || jobs.takes.iter().filter(|t| t.shot_id == shot.shot_id);
                own()
                    .find(|t| !shot.selected_take.is_empty() && t.take_id == shot.selected_take)
                    .or_else(|| own().max_by_key(|t| t.finished_at_ms))
            });
            let picture = match take {
                Some(t) if t.media == TakeMedia::Video || t.media == TakeMedia::AnimatedImage => {
                    Picture::Clip(t.blob.clone(), (t.width, t.height))
                }
                Some(t) => Picture::Still(t.blob.clone()),
                None => Picture::Nothing,
            };
            let segment = Segment {
                shot: shot.shot_id.clone(),
                code: row.code.clone(),
                start: at,
                frames: row.frames,
                picture,
            };
            at += row.frames;
            segment
        })
        .collect()
}

/// Space, ← →, Home, L and F while no text field has the keyboard.
fn keys(editor: &mut Editor, ui: &egui::Ui, now: f64, range: (u64, u64), total: u64) {
    if ui.ctx().memory(|m| m.focused().is_some()) {
        return;
    }
    let pressed = |key| ui.input(|i| i.key_pressed(key));
    let playhead = editor.panels.timeline.playhead;
    let state = &mut editor.panels.player;
    if pressed(egui::Key::Space) {
        state.playing = match state.playing {
            Some(_) => None,
            None => Some((
                now,
                if playhead + 1 >= range.1 {
                    range.0
                } else {
                    playhead
                },
            )),
        };
    }
    if pressed(egui::Key::ArrowRight) {
        state.playing = None;
        editor.panels.timeline.playhead = (playhead + 1).min(total - 1);
    }
    if pressed(egui::Key::ArrowLeft) {
        state.playing = None;
        editor.panels.timeline.playhead = playhead.saturating_sub(1);
    }
    if pressed(egui::Key::Home) {
        state.playing = None;
        editor.panels.timeline.playhead = range.0;
    }
    if pressed(egui::Key::L) {
        state.loop_shot = !state.loop_shot;
    }
    if pressed(egui::Key::F) {
        state.full_screen = !state.full_screen;
        ui.ctx()
            .send_viewport_cmd(egui::ViewportCommand::Fullscreen(state.full_screen));
    }
}

fn controls(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    now: f64,
    playhead: u64,
    total: u64,
    rate: reelmesh_protocol::timecode::FrameRate,
    code: &str,
) {
    ui.horizontal(|ui| {
        let state = &mut editor.panels.player;
        let label = if state.playing.is_some() {
            "Pause"
        } else {
            "Play"
        };
        if ui.button(label).on_hover_text("Space").clicked() {
            state.playing = match state.playing {
                Some(_) => None,
                None => Some((now, if playhead + 1 >= total { 0 } else { playhead })),
            };
        }
        if ui.button("Frame back").on_hover_text("←").clicked() {
            state.playing = None;
            editor.panels.timeline.playhead = playhead.saturating_sub(1);
        }
        let state = &mut editor.panels.player;
        if ui.button("Frame forward").on_hover_text("→").clicked() {
            state.playing = None;
            editor.panels.timeline.playhead = (playhead + 1).min(total - 1);
        }
        let state = &mut editor.panels.player;
        ui.checkbox(&mut state.loop_shot, "Loop the selected shot")
            .on_hover_text("L");
        if ui
            .checkbox(&mut state.full_screen, "Full screen")
            .on_hover_text("F")
            .changed()
        {
            ui.ctx()
                .send_viewport_cmd(egui::ViewportCommand::Fullscreen(state.full_screen));
        }
        ui.label(
            RichText::new(format!(
                "{code}  {} / {}",
                Timecode::from_frames(playhead, rate),
                Timecode::from_frames(total, rate)
            ))
            .monospace(),
        );
        let stats = editor.panels.player.stats;
        if stats.shown > 0 {
            let text = format!(
                "played {} frames · dropped {} · late {}",
                stats.shown, stats.dropped, stats.late
            );
            let bad = stats.dropped + stats.late > 0;
            ui.label(if bad {
                RichText::new(text).color(ui.visuals().warn_fg_color)
            } else {
                RichText::new(text).weak()
            })
            .on_hover_text(
                "since Play: frames of the cut shown; never shown because the window \
                 was late; shown before their picture was decoded",
            );
        }
    });
    let mut scrub = playhead;
    ui.spacing_mut().slider_width = (ui.available_width() - 60.0).max(100.0);
    let response = ui.add(
        egui::Slider::new(&mut scrub, 0..=total - 1)
            .show_value(false)
            .text("frame"),
    );
    let response = response.accessible_name("Playhead");
    if response.changed() {
        editor.panels.player.playing = None;
        editor.panels.timeline.playhead = scrub;
    }
}

fn picture(
    editor: &mut Editor,
    ui: &mut egui::Ui,
    current: &Segment,
    playhead: u64,
    (rate, project_rate): ((u32, u32), reelmesh_protocol::timecode::FrameRate),
    segments: &[Segment],
) -> bool {
    let reader = editor.images.reader();
    let waker = editor.images.waker();
    let clips = editor
        .panels
        .player
        .clips
        .get_or_insert_with(|| crate::clips::Clips::new(reader, waker));
    clips.receive();
    // Decode this clip and the next one ahead of the playhead.
    let index = segments
        .iter()
        .position(|s| s.shot == current.shot)
        .unwrap_or(0);
    for segment in segments.iter().skip(index).take(2) {
        if let Picture::Clip(blob, size) = &segment.picture {
            clips.want(blob, *size, rate);
        }
    }
    // The next shots' stills decode ahead too, so a cut to them is on time.
    for segment in segments.iter().skip(index + 1).take(3) {
        if let Picture::Still(blob) = &segment.picture {
            let _ = editor.images.full(blob);
        }
    }
    let (texture, note) = match &current.picture {
        Picture::Still(blob) => (editor.images.full(blob), String::new()),
        Picture::Clip(blob, _) => {
            let offset = usize::try_from(playhead - current.start).unwrap_or(0);
            match clips.frame(ui.ctx(), blob, offset) {
                Ok(Some(texture)) => (Some(texture), String::new()),
                Ok(None) => (None, "decoding the clip…".to_owned()),
                Err(why) => (None, why),
            }
        }
        Picture::Nothing => (None, "no take".to_owned()),
    };
    // Black with the code is the picture of a shot without a take.
    let pictured = texture.is_some() || matches!(current.picture, Picture::Nothing);
    let available = ui.available_size();
    let (rect, _) = ui.allocate_exact_size(available, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::BLACK);
    if let Some(texture) = texture {
        let size = texture.size_vec2();
        let scale = (rect.width() / size.x).min(rect.height() / size.y);
        let shown = egui::Rect::from_center_size(rect.center(), size * scale);
        painter.image(
            texture.id(),
            shown,
            egui::Rect::from_min_max(egui::Pos2::ZERO, egui::pos2(1.0, 1.0)),
            Color32::WHITE,
        );
    } else if !note.is_empty() {
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            note,
            egui::FontId::proportional(16.0),
            Color32::GRAY,
        );
    }
    let overlay = format!(
        "{}  {}",
        current.code,
        Timecode::from_frames(playhead, project_rate)
    );
    painter.text(
        rect.left_top() + egui::vec2(12.0, 10.0),
        egui::Align2::LEFT_TOP,
        &overlay,
        egui::FontId::monospace(16.0),
        Color32::WHITE,
    );
    pictured
}

#[cfg(test)]
mod tests {
    use super::PlaybackStats;

    #[test]
    fn stats_count_skipped_frames_and_late_pictures_and_restart_with_play() {
        let mut stats = PlaybackStats::default();
        for (frame, pictured) in [(0, true), (0, true), (1, false), (3, true), (4, true)] {
            stats.count(1.0, frame, (0, 10), pictured);
        }
        assert_eq!((stats.shown, stats.dropped, stats.late), (4, 1, 1));
        // 4 then 8 skips 5 to 7; a loop over 0..10 wrapping from 9 to 1 skips 0.
        for frame in [8, 9, 1] {
            stats.count(1.0, frame, (0, 10), true);
        }
        assert_eq!((stats.shown, stats.dropped), (7, 1 + 3 + 1));
        // Play pressed again: counting starts over.
        stats.count(5.0, 40, (0, 100), true);
        assert_eq!((stats.shown, stats.dropped, stats.late), (1, 0, 0));
    }
}
