//! reelmesh-node: the effects side of reelmesh (storage, import/export, the mesh,
//! sync, the job runner, the ComfyUI client, the CLI). It builds the one binary
//! `reelmesh`; the library form exists so benches and integration tests drive the
//! same code.

pub mod advise;
pub mod api;
pub mod archive;
pub mod card;
pub mod cli;
pub mod comfy;
pub mod control;
pub mod demo;
pub mod editor;
pub mod export;
pub mod gpu;
pub mod import;
pub mod jobs;
pub mod media;
pub mod mesh;
pub mod node;
pub mod publish;
pub mod store;
pub mod workflows;

/// Make ring rustls's crypto provider (libp2p already links ring): reqwest's TLS is
/// built without one of its own, so that HTTPS (the LLM; ComfyUI behind TLS) adds
/// no second crypto library. Every HTTP client is built after this; a second call
/// is harmless.
pub fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `text` with its first letter in lower case (error messages are lowercase; the
/// errors of other crates often start with a capital).
pub(crate) fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
