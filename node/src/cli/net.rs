//! Mesh commands: `node`, `mesh init|invite`, `join`, `status`, `heads`,
//! `wait-for`, and the control-socket side of the project commands.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use libp2p::Multiaddr;
use reelmesh_protocol::model::Project;
use serde::{Deserialize, Serialize};

use crate::api::{Reply, Request};
use crate::mesh::keys::{self, Ticket};
use crate::node::{Node, NodeConfig, NodeStatusReport, PeerRow};
use crate::store::{DataDir, write_atomic};

const PEERS_FILE: &str = "peers.json";

/// `reelmesh node` options.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Run without the editor (GPU boxes, servers, scripts).
    #[arg(long)]
    pub headless: bool,
    /// Listen address (repeatable). The default port is fixed so that tickets and
    /// `--peer` addresses stay valid across restarts.
    #[arg(long = "listen", default_value = "/ip4/0.0.0.0/tcp/47410")]
    pub listen: Vec<Multiaddr>,
    /// A peer to dial and keep dialling, e.g. /ip4/10.0.0.2/tcp/47410 (repeatable).
    #[arg(long = "peer")]
    pub peers: Vec<Multiaddr>,
    /// Do not look for peers on the LAN with mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// The local ComfyUI (GPU figures come from it when NVML is not available).
    #[arg(long, env = "REELMESH_COMFY_URL")]
    pub comfy: Option<String>,
    /// Presence heartbeat interval, in milliseconds.
    #[arg(long, default_value = "2000")]
    pub heartbeat_ms: u64,
    /// A node that claimed jobs and has been silent this long (no heartbeat) loses
    /// them to the queue, in seconds. Every node should use the same value.
    #[arg(long, default_value = "10")]
    pub lease_secs: u64,
    /// The LLM that advises workflows: an OpenAI-compatible API's base URL
    /// (`http://127.0.0.1:11434/v1` for Ollama; default OPENAI_BASE_URL, then OpenAI).
    #[arg(long, value_name = "URL")]
    pub llm_url: Option<String>,
    /// The LLM's model name (default REELMESH_LLM_MODEL, then `<data dir>/llm.toml`;
    /// none: rule-based advice). The key is read from OPENAI_API_KEY, never stored.
    #[arg(long, value_name = "NAME")]
    pub llm_model: Option<String>,
}

/// `reelmesh mesh ...`
#[derive(Debug, Subcommand)]
pub enum MeshCommand {
    /// Make the mesh key (once, on the first machine).
    Init,
    /// Print a ticket another machine joins with (`reelmesh join TICKET`).
    Invite {
        /// Address to put in the ticket (default: the running node's addresses).
        #[arg(long = "addr")]
        addrs: Vec<Multiaddr>,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PeersFile {
    peers: Vec<String>,
}

fn stored_peers(root: &Path) -> Vec<Multiaddr> {
    std::fs::read(root.join(PEERS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<PeersFile>(&b).ok())
        .map(|f| f.peers.iter().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// The node's configuration from its arguments.
fn node_config(root: &Path, args: NodeArgs) -> NodeConfig {
    let mut config = NodeConfig::new(root.to_owned());
    config.listen = args.listen;
    config.peers = args.peers;
    config.peers.extend(stored_peers(root));
    config.mesh.mdns = !args.no_mdns;
    config.comfy_url = args.comfy;
    config.heartbeat = Duration::from_millis(args.heartbeat_ms.max(100));
    config.offline_after = config.heartbeat * 3 + config.heartbeat / 2;
    config.lease = Duration::from_secs(args.lease_secs.max(1)).max(config.offline_after);
    if args.llm_url.is_some() || args.llm_model.is_some() {
        let choice = crate::advise::LlmChoice {
            url: args.llm_url,
            model: args.llm_model,
        };
        match crate::advise::LlmConfig::resolve(root, &choice) {
            Ok(llm) => config.llm = llm,
            Err(e) => eprintln!("reelmesh: the LLM is not set up: {e}"),
        }
    }
    config
}

/// `edit` (and `node` without `--headless`): the editor window, with a node started
/// here (offline without a mesh key) or attached to the running one.
pub fn edit(root: &Path, project: Option<String>, args: NodeArgs) -> Result<()> {
    if args.headless {
        anyhow::bail!(
            "`--headless` opens no window: run `reelmesh node --headless` for a node without the editor"
        );
    }
    let config = if root.join(keys::MESH_KEY_FILE).exists() {
        node_config(root, args)
    } else {
        eprintln!(
            "no mesh key in {}: the editor works offline (`reelmesh mesh init` or `reelmesh join TICKET` to join a mesh)",
            root.display()
        );
        let mut config = NodeConfig::offline(root.to_owned());
        // The CLI's commands go through the window's node meanwhile.
        config.control_socket = true;
        config
    };
    crate::editor::run(crate::editor::EditorOptions {
        data_dir: root.to_owned(),
        project,
        config: Some(config),
    })
}

/// Run the node until SIGINT/SIGTERM.
pub fn run_node(root: &Path, args: NodeArgs) -> Result<()> {
    if !args.headless {
        return edit(root, None, args);
    }
    let config = node_config(root, args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("reelmesh-node")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let node = Node::start(config).await?;
        let handle = node.handle();
        println!("node {} running on {}", handle.peer_id(), root.display());
        for addr in node.listen_addrs() {
            println!("listening on {addr}/p2p/{}", handle.peer_id());
        }
        let stop = handle.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            stop.shutdown();
        });
        node.join().await?;
        Ok::<(), anyhow::Error>(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `mesh init` / `mesh invite`.
pub fn mesh(out: &mut dyn Write, root: &Path, command: MeshCommand) -> Result<()> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    match command {
        MeshCommand::Init => {
            let key = keys::init_mesh_key(root)?;
            keys::load_or_create_identity(root)?;
            writeln!(
                out,
                "made a mesh key (fingerprint {}) in {}; share it with `reelmesh mesh invite`",
                key.fingerprint(),
                root.join(keys::MESH_KEY_FILE).display()
            )?;
            Ok(())
        }
        MeshCommand::Invite { addrs } => {
            let mesh_key = keys::mesh_key_bytes(root)?;
            let identity = keys::load_or_create_identity(root)?;
            let peer_id = identity.public().to_peer_id();
            let status = status_via_node(root)?;
            let mut addrs = addrs;
            if addrs.is_empty() {
                let Some(status) = &status else {
                    bail!(
                        "no node is running on {}: start `reelmesh node --headless` or pass --addr",
                        root.display()
                    );
                };
                addrs = keys::invite_addrs(&status.listen_addrs);
            }
            let addrs = addrs
                .into_iter()
                .map(|a| {
                    if a.iter()
                        .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
                    {
                        a
                    } else {
                        a.with(libp2p::multiaddr::Protocol::P2p(peer_id))
                    }
                })
                .collect();
            let project_id = match &status {
                Some(_) => project_via_node(root, None)?.map(|(p, _)| p.project_id),
                None => DataDir::open(root)?.current_project(),
            };
            let ticket = Ticket {
                mesh_key,
                addrs,
                project_id,
            };
            writeln!(out, "{}", ticket.encode())?;
            Ok(())
        }
    }
}

/// Listen addresses worth putting in a ticket: not loopback unless that is all.
/// `join TICKET`: store the mesh key, the peers and an empty replica of the project.
pub fn join(out: &mut dyn Write, root: &Path, ticket: &str) -> Result<()> {
    let ticket: Ticket = ticket.parse()?;
    let data = DataDir::open(root)?;
    let _lock = data
        .lock()
        .context("joining needs the node stopped (stop it, join, start it again)")?;
    keys::store_mesh_key(root, ticket.mesh_key)?;
    keys::load_or_create_identity(root)?;
    let mut peers = PeersFile {
        peers: stored_peers(root).iter().map(ToString::to_string).collect(),
    };
    for addr in &ticket.addrs {
        let addr = addr.to_string();
        if !peers.peers.contains(&addr) {
            peers.peers.push(addr);
        }
    }
    write_atomic(
        &root.join(PEERS_FILE),
        &serde_json::to_vec_pretty(&peers).unwrap_or_default(),
    )?;
    if let Some(project_id) = &ticket.project_id {
        data.add_replica(project_id)?;
        data.set_current_project(project_id)?;
    }
    writeln!(
        out,
        "joined the mesh{}; start the node with `reelmesh node --headless` to sync",
        ticket
            .project_id
            .map(|p| format!(" for project {p}"))
            .unwrap_or_default()
    )?;
    Ok(())
}

fn status_via_node(root: &Path) -> Result<Option<NodeStatusReport>> {
    match super::via_node(root, &Request::Status)? {
        None => Ok(None),
        Some(Reply::Status(report)) => Ok(Some(report)),
        Some(other) => Err(super::unexpected(&other)),
    }
}

/// The project from the running node, with its heads; `None` if no node runs.
pub fn project_via_node(
    root: &Path,
    project: Option<&str>,
) -> Result<Option<(Project, Vec<String>)>> {
    let request = Request::Project {
        project: project.map(str::to_owned),
    };
    match super::via_node(root, &request)? {
        None => Ok(None),
        Some(Reply::Project(read)) => Ok(Some((read.project, read.heads))),
        Some(other) => Err(super::unexpected(&other)),
    }
}

/// `projects`.
pub fn projects(out: &mut dyn Write, root: &Path) -> Result<()> {
    let summaries = match super::ask(root, Request::Projects)? {
        Reply::Projects { projects } => projects,
        other => return Err(super::unexpected(&other)),
    };
    for p in summaries {
        match p.name {
            Some(name) => writeln!(out, "{}  {name}  ({} shots)", p.project_id, p.shots)?,
            None => writeln!(out, "{}  (waiting for its first sync)", p.project_id)?,
        }
    }
    Ok(())
}

/// `status`.
pub fn status(out: &mut dyn Write, root: &Path, json: bool) -> Result<()> {
    let Some(report) = status_via_node(root)? else {
        if json {
            writeln!(
                out,
                "{}",
                serde_json::json!({"running": false, "data_dir": root})
            )?;
        } else {
            writeln!(
                out,
                "no node is running on {} (start one with `reelmesh node --headless`)",
                root.display()
            )?;
        }
        return Ok(());
    };
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["running"] = serde_json::Value::Bool(true);
        serde_json::to_writer_pretty(&mut *out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "node {}", report.node_id)?;
    for addr in &report.listen_addrs {
        writeln!(out, "  listening on {addr}")?;
    }
    for p in &report.projects {
        let name = p
            .name
            .clone()
            .unwrap_or_else(|| "(waiting for its first sync)".into());
        writeln!(out, "  project {} {name} ({} shots)", p.project_id, p.shots)?;
    }
    writeln!(out)?;
    print_peers(out, &report.peers)?;
    print_failing(out, &report.failing_peers)
}

/// Addresses this node keeps failing to connect with, and why: what a user with a
/// mistyped ticket or another mesh's key needs to see.
fn print_failing(out: &mut dyn Write, failing: &[crate::node::FailingPeer]) -> Result<()> {
    if failing.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "failing to connect:")?;
    let width = crate::cli::terminal_width();
    for row in failing {
        let who = match (&row.peer_id, row.direction) {
            (Some(peer), crate::node::Direction::Outgoing) => {
                format!("dialling {} (peer {peer})", row.address)
            }
            (None, crate::node::Direction::Outgoing) => format!("dialling {}", row.address),
            (_, crate::node::Direction::Incoming) => format!("connections from {}", row.address),
        };
        writeln!(
            out,
            "  {who}: {} ({} time{} since {})",
            row.reason,
            row.failures,
            if row.failures == 1 { "" } else { "s" },
            crate::jobs::clock_time(row.since_ms)
        )?;
        if row.error != row.reason && !row.error.is_empty() {
            for line in crate::cli::wrap(&row.error, width, "      ") {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}

/// The worker table.
pub fn print_peers(out: &mut dyn Write, peers: &[PeerRow]) -> Result<()> {
    let header = [
        "NODE",
        "HOST",
        "GPU",
        "VRAM",
        "UTIL",
        "STATUS",
        "JOB",
        "COMFYUI",
        "CAN RUN",
        "HEARTBEAT",
        "LINK",
    ];
    let rows: Vec<Vec<String>> = peers.iter().map(peer_cells).collect();
    crate::cli::print_table(out, &header, &rows)
}

fn gib(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let g = bytes as f64 / f64::from(1_u32 << 30);
    format!("{g:.1}")
}

fn peer_cells(row: &PeerRow) -> Vec<String> {
    let short = row
        .node_id
        .get(row.node_id.len().saturating_sub(8)..)
        .unwrap_or(&row.node_id);
    vec![
        if row.this_node {
            format!("{short} (this)")
        } else {
            short.to_owned()
        },
        row.host_name.clone(),
        row.gpu.clone(),
        match (row.vram_used, row.vram_total) {
            (Some(used), Some(total)) => format!("{}/{} GiB", gib(used), gib(total)),
            _ => "-".into(),
        },
        row.utilization
            .map_or_else(|| "-".into(), |u| format!("{u}%")),
        match &row.status_detail {
            Some(detail) if row.status == "error" => format!("error: {detail}"),
            _ => row.status.clone(),
        },
        row.current_job.clone().unwrap_or_else(|| "-".into()),
        row.comfy_url.clone().unwrap_or_else(|| "-".into()),
        capabilities_cell(&row.capabilities),
        row.last_heartbeat_secs
            .map_or_else(|| "never".into(), |s| format!("{s:.1}s ago")),
        if row.this_node {
            "-".into()
        } else if row.connected {
            "direct".into()
        } else {
            "via mesh".into()
        },
    ]
}

/// Workflows a node can run: all of them up to three, else the first three and a
/// count (`reelmesh status --json` has the full list).
fn capabilities_cell(capabilities: &[String]) -> String {
    match capabilities.len() {
        0 => "-".into(),
        1..=3 => capabilities.join(", "),
        n => format!("{} +{}", capabilities[..3].join(", "), n - 3),
    }
}

/// `heads`.
pub fn heads(root: &Path, project: Option<&str>) -> Result<Vec<String>> {
    if let Some((_, heads)) = project_via_node(root, project)? {
        return Ok(heads);
    }
    let data = DataDir::open(root)?;
    let _lock = data.lock()?;
    let mut store = data.open_project(project)?;
    Ok(store.doc_mut().heads())
}

/// `wait-for`.
pub fn wait_for(
    root: &Path,
    project: Option<String>,
    heads: Vec<String>,
    timeout: u64,
) -> Result<()> {
    let request = Request::WaitHeads {
        project,
        heads,
        timeout_ms: timeout.saturating_mul(1000),
    };
    match super::via_node(root, &request)? {
        Some(_) => Ok(()),
        None => Err(anyhow!("no node is running on {}", root.display())),
    }
}
