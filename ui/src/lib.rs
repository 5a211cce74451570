//! reelmesh-ui: the editor window and the views it is drawn from.
//!
//! It depends on `reelmesh-protocol` only, never on the network: the node crate
//! opens the window and connects it to a node through a [`link::Link`] (requests
//! out, snapshots, jobs, status and progress in). The shot table's view model
//! ([`table`]) is shared with the CLI's `reelmesh shots`.

pub mod clips;
pub mod commands;
pub mod dialogs;
pub mod editor;
pub mod fonts;
pub mod images;
pub mod link;
pub mod panels;
pub mod settings;
pub mod shots;
pub mod table;

pub use editor::{Editor, EditorApp};
