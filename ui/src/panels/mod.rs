//! The views beside and inside the shot table.

use crate::editor::Editor;

/// State the panels keep between frames.
#[derive(Debug, Default)]
pub struct PanelState {
    /// Close the window.
    pub quit: bool,
}

/// The inspector.
pub fn inspector(_editor: &mut Editor, _ui: &mut egui::Ui) {}
/// Characters.
pub fn characters(_editor: &mut Editor, _ui: &mut egui::Ui) {}
/// Looks.
pub fn looks(_editor: &mut Editor, _ui: &mut egui::Ui) {}
/// Takes.
pub fn takes(_editor: &mut Editor, _ui: &mut egui::Ui) {}
/// Jobs.
pub fn jobs(_editor: &mut Editor, _ui: &mut egui::Ui) {}
/// Mesh.
pub fn mesh(_editor: &mut Editor, _ui: &mut egui::Ui) {}
/// The sync state in a few words.
#[must_use]
pub fn sync_summary(_editor: &Editor) -> String {
    String::new()
}
