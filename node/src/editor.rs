//! Opening the editor window on a node.
//!
//! `reelmesh`, `reelmesh edit` and `reelmesh node` without `--headless` come here.
//! The window runs on the main thread (winit needs it); the node runs on a tokio
//! runtime beside it, in this process, so the editor is a mesh peer (offline when
//! the data dir has no mesh key). When a node already runs on the data dir (a GPU
//! box's service), the editor attaches to it over the control socket instead of
//! refusing the data dir. Either way the window talks to the node only through
//! [`reelmesh_ui::link`], answered by [`bridge::serve`] with the node's one API.

pub mod bridge;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use reelmesh_ui::images::{BlobReader, Images, ReadError};
use reelmesh_ui::{Editor, EditorApp};

use crate::mesh::keys;
use crate::node::{Node, NodeConfig};
use crate::store::blobs::{BlobHash, BlobStore};

/// What the editor's node is started with.
#[derive(Debug, Clone)]
pub struct EditorOptions {
    /// The data dir.
    pub data_dir: PathBuf,
    /// The project to open (id or name; `None`: the current one).
    pub project: Option<String>,
    /// The node's configuration when one is started here (`None`: the defaults of
    /// `reelmesh node`, offline without a mesh key).
    pub config: Option<NodeConfig>,
}

/// Why the window cannot open here, if it cannot: no display server to draw on.
#[must_use]
pub fn no_display() -> Option<String> {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if set("DISPLAY") || set("WAYLAND_DISPLAY") || set("WAYLAND_SOCKET") {
        return None;
    }
    Some(
        "no display to open the editor on ($DISPLAY and $WAYLAND_DISPLAY are not set); on a \
         machine without a screen run `reelmesh node --headless`"
            .to_owned(),
    )
}

/// Open the editor and run until its window closes; a node started here stops
/// (saving) after it.
///
/// # Errors
/// No display, a data dir that cannot be opened, or the window failing to start.
pub fn run(options: EditorOptions) -> Result<()> {
    if let Some(why) = no_display() {
        bail!(why);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("reelmesh-node")
        .build()
        .context("starting the async runtime")?;
    let data_dir = options.data_dir.clone();
    let attached = crate::control::node_running(&data_dir);
    let node = if attached {
        None
    } else {
        let config = options.config.unwrap_or_else(|| default_config(&data_dir));
        Some(runtime.block_on(Node::start(config))?)
    };
    let (link, end) = reelmesh_ui::link::link();
    let backend = match &node {
        Some(node) => bridge::Backend::Node(node.handle()),
        None => bridge::Backend::Socket(data_dir.clone()),
    };
    runtime.spawn(bridge::serve(backend, end));
    let mut link = link;
    let _ = link.open(options.project);
    let editor = Editor::new(link, Images::new(Some(blob_reader(&data_dir))))
        .with_settings(data_dir.join("editor.json"));
    let title = if attached {
        format!("reelmesh — {} (attached to its node)", data_dir.display())
    } else {
        format!("reelmesh — {}", data_dir.display())
    };
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(title)
            .with_app_id("reelmesh")
            .with_inner_size([1440.0, 900.0])
            .with_min_inner_size([800.0, 500.0]),
        renderer: eframe::Renderer::Glow,
        // A frame benchmark (REELMESH_FRAME_STATS) measures what a frame costs, not
        // the display's pace.
        glow_options: eframe::egui_glow::GlowConfiguration {
            vsync: std::env::var_os("REELMESH_FRAME_STATS").is_none(),
            ..Default::default()
        },
        ..Default::default()
    };
    let shown = eframe::run_native(
        "reelmesh",
        native,
        Box::new(move |cc| {
            let mut editor = editor;
            editor.setup(&cc.egui_ctx);
            Ok(Box::new(EditorApp::new(editor)))
        }),
    );
    if let Some(node) = node {
        runtime.block_on(node.stop())?;
    }
    shown.map_err(|e| anyhow::anyhow!("the editor window failed: {e}"))
}

/// The defaults of `reelmesh node`: on the mesh when the data dir has its key,
/// else offline (edits sync later, once the machine joins).
fn default_config(data_dir: &Path) -> NodeConfig {
    if data_dir.join(keys::MESH_KEY_FILE).exists() {
        let mut config = NodeConfig::new(data_dir.to_owned());
        config.listen = vec![
            "/ip4/0.0.0.0/tcp/47410"
                .parse()
                .unwrap_or_else(|_| libp2p::Multiaddr::empty()),
        ];
        config
    } else {
        let mut config = NodeConfig::offline(data_dir.to_owned());
        // The CLI's commands go through the window's node meanwhile.
        config.control_socket = true;
        config
    }
}

/// Reads take files from the data dir's blob store (the attached node's too: it
/// is the same data dir).
pub fn blob_reader(data_dir: &Path) -> BlobReader {
    let store = BlobStore::open(data_dir).ok();
    Arc::new(move |hash: &str| {
        let Some(store) = &store else {
            return Err(ReadError::Failed("the blob store cannot be opened".into()));
        };
        let hash: BlobHash = hash
            .parse()
            .map_err(|e| ReadError::Failed(format!("{hash}: {e}")))?;
        if store.size(&hash).is_none() {
            return Err(ReadError::NotHere);
        }
        store
            .read(&hash)
            .map_err(|e| ReadError::Failed(e.to_string()))
    })
}
