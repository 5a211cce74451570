//! Dialogs: import (with its dry run), export, render, revision note, invite, and
//! the command palette.

use reelmesh_protocol::api::import::ImportReport;

use crate::editor::Editor;

/// The open dialog.
#[derive(Debug, Clone)]
pub enum Dialog {
    /// The command palette.
    Palette {
        /// What was typed.
        query: String,
    },
}

impl Dialog {
    /// The import dialog.
    #[must_use]
    pub fn import() -> Dialog {
        Dialog::Palette { query: String::new() }
    }
    /// The export dialog.
    #[must_use]
    pub fn export() -> Dialog {
        Dialog::Palette { query: String::new() }
    }
    /// The command palette.
    #[must_use]
    pub fn palette() -> Dialog {
        Dialog::Palette { query: String::new() }
    }
    /// The render dialog for the selected shots.
    #[must_use]
    pub fn render(_editor: &Editor) -> Dialog {
        Dialog::Palette { query: String::new() }
    }
    /// The revision note for `shot`.
    #[must_use]
    pub fn revision(_shot: String) -> Dialog {
        Dialog::Palette { query: String::new() }
    }
    /// The invite dialog.
    #[must_use]
    pub fn invite() -> Dialog {
        Dialog::Palette { query: String::new() }
    }
}

/// Draw the open dialog.
pub fn show(_editor: &mut Editor, _ctx: &egui::Context) {}

/// An import's report arrived.
pub fn import_answered(editor: &mut Editor, report: ImportReport, _dry_run: bool) {
    editor.say(format!("{}", report.file), false);
}
