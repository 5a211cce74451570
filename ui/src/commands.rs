//! The editor's one list of commands (rerun's `UICommand` is the model): each has its
//! label, its keyboard shortcut and its menu, and the same list feeds the menu bar,
//! the shortcuts and the command palette (Ctrl+K). Adding a command is a variant
//! here and an arm in `Editor::run_command`.

use egui::{Key, KeyboardShortcut, Modifiers};

/// The menus of the menu bar, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Menu {
    /// Project files.
    File,
    /// Undo, redo, find.
    Edit,
    /// Which panel shows.
    View,
    /// The selected shots.
    Shot,
    /// Rendering and review.
    Render,
    /// The machines.
    Mesh,
}

impl Menu {
    /// Every menu, in menu-bar order.
    pub const ALL: [Menu; 6] = [
        Menu::File,
        Menu::Edit,
        Menu::View,
        Menu::Shot,
        Menu::Render,
        Menu::Mesh,
    ];

    /// The menu's title.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Menu::File => "File",
            Menu::Edit => "Edit",
            Menu::View => "View",
            Menu::Shot => "Shot",
            Menu::Render => "Render",
            Menu::Mesh => "Mesh",
        }
    }
}

/// Something the user can do from a menu, a shortcut or the palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Open the import dialog (dry run first).
    Import,
    /// Export the project to a file.
    Export,
    /// Publish the cut for an editor (EDL, OTIO, FCPXML, xmeml, animatic, PDF).
    Publish,
    /// Close the window (the node saves as it stops).
    Quit,
    /// Undo this editor's last edit.
    Undo,
    /// Redo what was undone.
    Redo,
    /// Put the cursor in the shot table's search field.
    Find,
    /// Open the command palette.
    Palette,
    /// Show the shot table.
    ShowShots,
    /// Show the character bible.
    ShowCharacters,
    /// Show the looks.
    ShowLooks,
    /// Show the takes of the selected shot, for review.
    ShowTakes,
    /// Show the render queue.
    ShowJobs,
    /// Show the machines of the mesh.
    ShowMesh,
    /// Show the animatic player.
    ShowPlayer,
    /// Show or hide the inspector (prompt, takes) beside the table.
    ToggleInspector,
    /// A new shot after the selected one (or at the end).
    AddShot,
    /// A copy of each selected shot, right after it.
    DuplicateShots,
    /// Move the selected shots to the trash.
    DeleteShots,
    /// Render the selected shots.
    RenderSelected,
    /// Approve the selected shot.
    Approve,
    /// Ask for a revision of the selected shot, with a note.
    NeedsRevision,
    /// A new take of the selected shot (old takes stay).
    Regenerate,
    /// Ask the LLM (or the rules) which video workflow each selected shot (or
    /// every shot) should use.
    Advise,
    /// Take every shot's advised workflow.
    AcceptAllAdvice,
    /// Render the clips of the selected shots (or all) with their workflows.
    RenderVideos,
    /// Which LLM advises (URL, model).
    LlmSettings,
    /// Show the ticket that lets another machine join (it holds the mesh secret).
    Invite,
}

impl Command {
    /// Every command, in palette order.
    pub const ALL: [Command; 28] = [
        Command::Import,
        Command::Export,
        Command::Publish,
        Command::Quit,
        Command::Undo,
        Command::Redo,
        Command::Find,
        Command::Palette,
        Command::ShowShots,
        Command::ShowCharacters,
        Command::ShowLooks,
        Command::ShowTakes,
        Command::ShowJobs,
        Command::ShowMesh,
        Command::ShowPlayer,
        Command::ToggleInspector,
        Command::AddShot,
        Command::DuplicateShots,
        Command::DeleteShots,
        Command::RenderSelected,
        Command::Approve,
        Command::NeedsRevision,
        Command::Regenerate,
        Command::Advise,
        Command::AcceptAllAdvice,
        Command::RenderVideos,
        Command::LlmSettings,
        Command::Invite,
    ];

    /// What the menu and the palette call it.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Command::Import => "Import shot list…",
            Command::Export => "Export…",
            Command::Publish => "Publish the cut…",
            Command::Quit => "Quit",
            Command::Undo => "Undo",
            Command::Redo => "Redo",
            Command::Find => "Find shots",
            Command::Palette => "Command palette…",
            Command::ShowShots => "Shots",
            Command::ShowCharacters => "Characters",
            Command::ShowLooks => "Looks",
            Command::ShowTakes => "Takes and review",
            Command::ShowJobs => "Jobs",
            Command::ShowMesh => "Mesh",
            Command::ShowPlayer => "Animatic player",
            Command::ToggleInspector => "Inspector",
            Command::AddShot => "Add shot",
            Command::DuplicateShots => "Duplicate shots",
            Command::DeleteShots => "Delete shots",
            Command::RenderSelected => "Render selected shots…",
            Command::Approve => "Approve",
            Command::NeedsRevision => "Needs revision…",
            Command::Regenerate => "Regenerate",
            Command::Advise => "Advise video workflows",
            Command::AcceptAllAdvice => "Accept all advice",
            Command::RenderVideos => "Render videos…",
            Command::LlmSettings => "LLM settings…",
            Command::Invite => "Invite a machine…",
        }
    }

    /// The menu it sits in.
    #[must_use]
    pub fn menu(self) -> Menu {
        match self {
            Command::Import | Command::Export | Command::Publish | Command::Quit => Menu::File,
            Command::Undo | Command::Redo | Command::Find | Command::Palette => Menu::Edit,
            Command::ShowShots
            | Command::ShowCharacters
            | Command::ShowLooks
            | Command::ShowTakes
            | Command::ShowJobs
            | Command::ShowMesh
            | Command::ShowPlayer
            | Command::ToggleInspector => Menu::View,
            Command::AddShot | Command::DuplicateShots | Command::DeleteShots => Menu::Shot,
            Command::RenderSelected
            | Command::Approve
            | Command::NeedsRevision
            | Command::Regenerate
            | Command::Advise
            | Command::AcceptAllAdvice
            | Command::RenderVideos
            | Command::LlmSettings => Menu::Render,
            Command::Invite => Menu::Mesh,
        }
    }

    /// Its keyboard shortcut (Ctrl on Linux and Windows, ⌘ on a Mac).
    #[must_use]
    pub fn shortcut(self) -> Option<KeyboardShortcut> {
        let cmd = Modifiers::COMMAND;
        let cmd_shift = Modifiers::COMMAND.plus(Modifiers::SHIFT);
        let key = |modifiers, key| Some(KeyboardShortcut::new(modifiers, key));
        match self {
            Command::Import => key(cmd, Key::I),
            Command::Export => key(cmd, Key::E),
            Command::Publish => key(cmd_shift, Key::E),
            Command::Quit => key(cmd, Key::Q),
            Command::Undo => key(cmd, Key::Z),
            Command::Redo => key(cmd_shift, Key::Z),
            Command::Find => key(cmd, Key::F),
            Command::Palette => key(cmd, Key::K),
            Command::ShowShots => key(cmd, Key::Num1),
            Command::ShowCharacters => key(cmd, Key::Num2),
            Command::ShowLooks => key(cmd, Key::Num3),
            Command::ShowTakes => key(cmd, Key::Num4),
            Command::ShowJobs => key(cmd, Key::Num5),
            Command::ShowMesh => key(cmd, Key::Num6),
            Command::ShowPlayer => key(cmd, Key::Num7),
            Command::ToggleInspector => key(cmd, Key::Backslash),
            Command::AddShot => key(cmd, Key::N),
            Command::DuplicateShots => key(cmd, Key::D),
            Command::DeleteShots => key(cmd, Key::Delete),
            Command::RenderSelected => key(cmd, Key::R),
            Command::Approve => key(cmd_shift, Key::A),
            Command::NeedsRevision => key(cmd_shift, Key::V),
            Command::Regenerate => key(cmd_shift, Key::R),
            Command::Advise => key(cmd_shift, Key::W),
            Command::RenderVideos => key(cmd_shift, Key::M),
            Command::AcceptAllAdvice | Command::LlmSettings => None,
            Command::Invite => None,
        }
    }

    /// The commands whose shortcut was pressed this frame (taken out of the input,
    /// so a text field does not see them). Shortcuts with more modifiers are looked
    /// at first, so Ctrl+Shift+Z is not read as Ctrl+Z.
    pub fn pressed(ctx: &egui::Context) -> Vec<Command> {
        let mut with_keys: Vec<(Command, KeyboardShortcut)> = Command::ALL
            .iter()
            .filter_map(|command| command.shortcut().map(|key| (*command, key)))
            .collect();
        with_keys.sort_by_key(|(_, key)| std::cmp::Reverse(modifier_count(key.modifiers)));
        with_keys
            .into_iter()
            .filter(|(_, key)| ctx.input_mut(|input| input.consume_shortcut(key)))
            .map(|(command, _)| command)
            .collect()
    }

    /// The commands whose label matches every word of `query` (case aside), in
    /// palette order.
    #[must_use]
    pub fn matching(query: &str) -> Vec<Command> {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        Command::ALL
            .iter()
            .copied()
            .filter(|command| {
                let label = command.label().to_lowercase();
                words.iter().all(|word| label.contains(word.as_str()))
            })
            .collect()
    }
}

fn modifier_count(modifiers: Modifiers) -> u8 {
    u8::from(modifiers.alt)
        + u8::from(modifiers.ctrl)
        + u8::from(modifiers.shift)
        + u8::from(modifiers.mac_cmd)
        + u8::from(modifiers.command)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_command_is_listed_once_with_its_own_shortcut() {
        let unique: HashSet<Command> = Command::ALL.iter().copied().collect();
        assert_eq!(unique.len(), Command::ALL.len());
        let shortcuts: Vec<KeyboardShortcut> =
            Command::ALL.iter().filter_map(|c| c.shortcut()).collect();
        let distinct: HashSet<String> = shortcuts.iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(
            distinct.len(),
            shortcuts.len(),
            "two commands share a shortcut"
        );
        for menu in Menu::ALL {
            assert!(
                Command::ALL.iter().any(|c| c.menu() == menu),
                "{menu:?} is empty"
            );
        }
    }

    #[test]
    fn the_palette_matches_every_word() {
        assert_eq!(Command::matching("shot add"), [Command::AddShot]);
        assert_eq!(
            Command::matching("RENDER"),
            [Command::RenderSelected, Command::RenderVideos]
        );
        assert_eq!(Command::matching("render video"), [Command::RenderVideos]);
        assert_eq!(
            Command::matching("advice accept"),
            [Command::AcceptAllAdvice]
        );
        assert_eq!(Command::matching("").len(), Command::ALL.len());
        assert!(Command::matching("nothing like this").is_empty());
    }

    #[test]
    fn ctrl_shift_z_is_redo_not_undo() {
        let ctx = egui::Context::default();
        let mut input = egui::RawInput::default();
        input.events.push(egui::Event::Key {
            key: Key::Z,
            physical_key: None,
            pressed: true,
            repeat: false,
            modifiers: Modifiers::COMMAND.plus(Modifiers::SHIFT),
        });
        let mut pressed = Vec::new();
        let mut output = ctx.run_ui(input, |ui| pressed = Command::pressed(ui.ctx()));
        output.textures_delta.clear();
        assert_eq!(pressed, [Command::Redo]);
    }
}
