//! reelmesh-node: the effects side of reelmesh (storage, import/export, CLI; later
//! the mesh, sync, job runner, ComfyUI client). It builds the one binary `reelmesh`;
//! the library form exists so benches and integration tests drive the same code.

pub mod card;
pub mod cli;
pub mod comfy;
pub mod control;
pub mod demo;
pub mod export;
pub mod gpu;
pub mod import;
pub mod jobs;
pub mod media;
pub mod mesh;
pub mod node;
pub mod store;
pub mod workflows;
