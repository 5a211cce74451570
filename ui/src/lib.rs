//! reelmesh-ui: views over a local project document.
//!
//! For now this holds the view model the shot table is drawn from (used by the CLI's
//! `reelmesh shots` and, later, the egui editor), so both show the same columns,
//! timecodes and prompts. It depends on `reelmesh-protocol` only, never on the
//! network.

pub mod fonts;
pub mod table;
