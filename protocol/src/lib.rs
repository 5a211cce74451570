//! reelmesh-protocol: everything every node must agree on, with no I/O.
//!
//! - [`api`]: the typed operations, results and status feed every client of a node
//!   (CLI, control socket, editor) shares.
//! - [`blobtree`]: checking a blob piece by piece against its BLAKE3 name.
//! - [`model`]: the typed project (shots, characters, cinematic options, settings).
//! - [`document`]: the one Automerge document per project and its typed read/write
//!   layer; nothing outside this module touches Automerge directly.
//! - [`jobs`]: render jobs, takes, and how a shot's status follows them.
//! - [`placement`]: the rule that picks which node runs a job (bids, order).
//! - [`prompt`]: the prompt template engine.
//! - [`timecode`]: frames, seconds and SMPTE timecode (drop-frame included).
//! - [`catalog`]: option catalogs with their shipped defaults.
//! - [`wire`]: messages between nodes (sync frames, presence) and their input checks.

pub mod advice;
pub mod api;
pub mod blobtree;
pub mod catalog;
pub mod document;
pub mod jobs;
pub mod model;
pub mod placement;
pub mod prompt;
pub mod publish;
pub mod timecode;
pub mod wire;
