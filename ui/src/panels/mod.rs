//! The views beside and inside the shot table: the inspector (prompt, takes,
//! review of the selected shot), the character bible, the looks, the takes of a
//! shot, the render queue and the mesh.

mod inspector;
mod jobs;
mod mesh;
mod player;
mod records;
mod takes;
mod timeline;

use std::collections::HashMap;

pub use inspector::inspector;
pub use jobs::jobs;
pub use mesh::{mesh, sync_summary};
pub use player::{PlaybackStats, PlayerState, player};
pub use records::{characters, looks};
pub use takes::takes;
pub use timeline::{TimelineDrag, TimelineState, timeline};

/// State the panels keep between frames.
#[derive(Debug, Default)]
pub struct PanelState {
    /// Close the window.
    pub quit: bool,
    /// An invite ticket the node made.
    pub ticket: Option<String>,
    /// Text being typed into a record's field, by `record/field`, until it is set.
    pub buffers: HashMap<String, String>,
    /// The character shown in the bible.
    pub character: Option<String>,
    /// The look shown.
    pub look: Option<String>,
    /// The name typed for a new character or look.
    pub new_name: String,
    /// A path typed for a reference image.
    pub image_path: String,
    /// Takes picked for side by side (take ids, at most two).
    pub compare: Vec<String>,
    /// The take shown full size.
    pub full: Option<String>,
    /// The template being edited.
    pub template: Option<String>,
    /// The storyboard timeline.
    pub timeline: TimelineState,
    /// The animatic player.
    pub player: PlayerState,
    /// The clip decoder of the takes view (made on first use): a clip take plays
    /// there in a loop.
    pub review_clips: Option<crate::clips::Clips>,
}

/// A text field bound to a record's field: it shows the record's value until the
/// user types, and returns the new value when they leave the field (or press
/// Enter in a one-line field). Escape puts the record's value back.
pub fn field(
    ui: &mut egui::Ui,
    buffers: &mut HashMap<String, String>,
    key: &str,
    label: &str,
    current: &str,
    multiline: bool,
) -> Option<String> {
    let mut text = buffers
        .get(key)
        .cloned()
        .unwrap_or_else(|| current.to_owned());
    let editor = if multiline {
        egui::TextEdit::multiline(&mut text).desired_rows(3)
    } else {
        egui::TextEdit::singleline(&mut text)
    };
    let response = ui
        .add(editor.hint_text(label).desired_width(f32::INFINITY))
        .accessible_name(label);
    if response.has_focus() {
        buffers.insert(key.to_owned(), text.clone());
    }
    if response.lost_focus() {
        buffers.remove(key);
        if ui.input(|i| i.key_pressed(egui::Key::Escape)) || text == current {
            return None;
        }
        return Some(text);
    }
    None
}

/// A label and, under it, what `add` draws.
pub fn labelled<R>(ui: &mut egui::Ui, label: &str, add: impl FnOnce(&mut egui::Ui) -> R) -> R {
    ui.label(egui::RichText::new(label).small().weak());
    add(ui)
}
