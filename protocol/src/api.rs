//! The one vocabulary every client of a node speaks: the CLI, the control socket
//! (which serializes these same types as JSON lines) and the editor. Plain data
//! with no I/O and no libp2p type (peer ids are strings), so the editor (`ui`)
//! depends on nothing but this crate.
//!
//! - [`status`]: what a node says about itself and its peers;
//! - [`render`]: a render asked for and the jobs it queued;
//! - [`import`]: an import's options and its report;
//! - [`edit`]: edits of a project as clients ask for them, with their undo.

pub mod edit;
pub mod import;
pub mod render;
pub mod status;
