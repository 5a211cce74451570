//! `reelmesh demo`: the main job, end to end, on this machine.
//!
//! It builds the demo project from the sample shot list shipped in the repo
//! (`node/assets/demo_shotlist.xlsx`, Korean headers) in an "editor" data dir, then
//! starts a private mesh of three real nodes on loopback (the editor and two render
//! nodes, each with its own data dir, libp2p over TCP with the mesh key): the render
//! nodes receive the whole project by sync, an edit on one of them reaches the
//! editor, and the demo prints the worker table and the shots as a render node
//! holds them. Rendering across the mesh arrives with issue [4/8].

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reelmesh_protocol::model::{Project, ShotCode, ShotStatus};
use reelmesh_protocol::timecode::FrameRate;

use crate::cli::{print_prompts, print_shots};
use crate::import;
use crate::mesh::keys;
use crate::node::{Node, NodeConfig};
use crate::store::{DataDir, ProjectStore};

/// The sample shot list, embedded so the demo runs from any working directory.
const SAMPLE: &[u8] = include_bytes!("../assets/demo_shotlist.xlsx");
const SAMPLE_NAME: &str = "demo_shotlist.xlsx";

/// Run the demo; `data_dir` None uses a temporary dir (removed unless `keep`).
pub fn run(out: &mut dyn Write, data_dir: Option<&Path>, keep: bool) -> Result<()> {
    let temp = tempfile::Builder::new()
        .prefix("reelmesh-demo-")
        .tempdir()
        .context("creating a temp data dir")?;
    let root = data_dir.map_or_else(|| temp.path().to_owned(), Path::to_owned);
    let data = DataDir::open(&root.join("editor"))?;
    let mesh_key = keys::init_mesh_key(data.root())
        .map(|_| ())
        .or_else(|e| match e {
            keys::KeyError::MeshKeyExists(_) => Ok(()),
            other => Err(other),
        })
        .and_then(|()| keys::mesh_key_bytes(data.root()))?;
    writeln!(out, "== reelmesh demo: data dir {}", root.display())?;

    let started = Instant::now();
    let mut store = data.create_project("밤의 골목 (Night Alley)")?;
    store.doc_mut().set_frame_rate(FrameRate::Fps24)?;
    let report = import::import_bytes(store.doc_mut(), SAMPLE, SAMPLE_NAME)?;
    store.save()?;
    writeln!(
        out,
        "imported {SAMPLE_NAME}: {} shots, {} characters, {} cinematic options in {:.1} ms",
        report.shots_added,
        report.characters_added,
        report.cinematics_added,
        started.elapsed().as_secs_f64() * 1e3
    )?;
    for line in import::report::created_lines(&report, false)
        .iter()
        .chain(&report.notes)
    {
        writeln!(out, "{line}")?;
    }

    let dir = store.dir().to_owned();
    drop(store);
    let opened = Instant::now();
    let store = ProjectStore::open(&dir)?;
    let project = store.doc().project()?;
    writeln!(
        out,
        "reopened from disk in {:.1} ms\n",
        opened.elapsed().as_secs_f64() * 1e3
    )?;

    let project_id = project.project_id;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let synced = runtime.block_on(mesh_demo(out, &root, mesh_key, &project_id))?;

    writeln!(
        out,
        "\n== the project as render-1 holds it (received by sync)"
    )?;
    print_shots(out, &synced)?;
    writeln!(out)?;
    print_prompts(out, &synced)?;

    if data_dir.is_none() && keep {
        let kept = temp.keep();
        writeln!(out, "\nkept the demo data dir: {}", kept.display())?;
    }
    Ok(())
}

const WAIT: Duration = Duration::from_secs(30);

fn node_config(root: &Path, peers: Vec<libp2p::Multiaddr>) -> Result<NodeConfig> {
    let mut config = NodeConfig::loopback(root.to_owned(), peers);
    config.heartbeat = Duration::from_millis(300);
    Ok(config)
}

/// Three nodes on loopback; returns the project as render-1 holds it at the end.
async fn mesh_demo(
    out: &mut dyn Write,
    root: &Path,
    mesh_key: [u8; 32],
    project_id: &str,
) -> Result<Project> {
    writeln!(out, "== a private mesh of three nodes on loopback")?;
    // The editor plans and reviews; the render nodes render.
    let mut editor_config = node_config(&root.join("editor"), vec![])?;
    editor_config.run_jobs = false;
    let editor = Node::start(editor_config).await?;
    let editor_addr = editor.listen_addrs()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(editor.handle().peer_id()));
    writeln!(
        out,
        "editor    {} on {editor_addr}",
        editor.handle().peer_id()
    )?;
    let (_, _, heads) = editor.handle().project(None).await?;
    let mut render = Vec::new();
    for name in ["render-1", "render-2"] {
        let dir = root.join(name);
        let data = DataDir::open(&dir)?;
        keys::store_mesh_key(&dir, mesh_key)?;
        data.add_replica(project_id)?;
        data.set_current_project(project_id)?;
        let started = Instant::now();
        let node = Node::start(node_config(&dir, vec![editor_addr.clone()])?).await?;
        node.handle()
            .wait_for_heads(None, heads.clone(), WAIT)
            .await
            .with_context(|| format!("{name} did not receive the project"))?;
        writeln!(
            out,
            "{name:<9} {} joined and received the project in {:.1} ms",
            node.handle().peer_id(),
            started.elapsed().as_secs_f64() * 1e3
        )?;
        render.push(node);
    }

    render_cards(out, &render, &editor).await?;
    // The reviewer on render-2 approves once the takes are in front of them (an
    // approval concurrent with the runner's status write would be a tie on one field).
    let (_, _, rendered) = editor.handle().project(None).await?;
    for node in &render {
        node.handle()
            .wait_for_heads(None, rendered.clone(), WAIT)
            .await?;
    }

    // An edit on render-2 reaches the editor without any polling.
    let started = Instant::now();
    let (_, heads) = render[1]
        .handle()
        .edit(None, |doc| {
            let project = doc.project().map_err(|e| e.to_string())?;
            let mut shot = project
                .shot_by_code(ShotCode(3))
                .cloned()
                .ok_or("the demo has no SHT-00003")?;
            shot.status = ShotStatus::Approved;
            doc.update_shot(&shot).map_err(|e| e.to_string())?;
            Ok(doc.heads())
        })
        .await?;
    editor
        .handle()
        .wait_for_heads(None, heads.clone(), WAIT)
        .await?;
    let at_editor = started.elapsed();
    render[0].handle().wait_for_heads(None, heads, WAIT).await?;
    writeln!(
        out,
        "render-2 approved SHT-00003; the editor had it {:.1} ms later, render-1 (via the editor) {:.1} ms",
        at_editor.as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3
    )?;

    // The worker table as the editor sees it, once both render nodes announced themselves.
    let mut events = editor.handle().subscribe();
    let deadline = tokio::time::Instant::now() + WAIT;
    let status = loop {
        let status = editor.handle().status().await?;
        if status.peers.iter().filter(|p| p.status == "idle").count() >= 3 {
            break status;
        }
        // Any event (a heartbeat arriving, most likely) is a reason to look again.
        if tokio::time::timeout_at(deadline, events.recv())
            .await
            .is_err()
        {
            break status;
        }
    };
    writeln!(
        out,
        "\n== peers as the editor sees them (`reelmesh status`)"
    )?;
    crate::cli::print_peers(out, &status.peers)?;

    let synced = render[0].handle().project(None).await?.1;
    for node in render {
        node.stop().await?;
    }
    editor.stop().await?;
    Ok(synced)
}

/// render-1 renders every shot with the built-in card renderer (no GPU needed); the
/// takes reach the editor by sync.
async fn render_cards(out: &mut dyn Write, render: &[Node], editor: &Node) -> Result<()> {
    writeln!(
        out,
        "== the editor queues every shot with the card renderer (`reelmesh render --shots all --workflow card --queue`);\n   the render nodes bid for each job on gossip and the placement rule picks one"
    )?;
    let handle = editor.handle();
    let names: std::collections::BTreeMap<String, &str> = render
        .iter()
        .zip(["render-1", "render-2"])
        .map(|(node, name)| (node.handle().peer_id().to_string(), name))
        .collect();
    let started = Instant::now();
    let request = crate::jobs::queue::RenderRequest {
        shots: "all".into(),
        workflow: "card".into(),
        seed: None,
        priority: 0,
        inputs: Default::default(),
        deadline_secs: None,
        video: None,
    };
    let queued = crate::jobs::queue_on(&handle, None, request, true).await?;
    let ids: Vec<String> = queued.queued.iter().map(|q| q.job_id.clone()).collect();
    let jobs = crate::jobs::follow::watch_jobs(&handle, None, &ids, WAIT, |_| {}).await?;
    let rendered_in = started.elapsed();
    let (_, takes) = editor
        .handle()
        .read(None, |doc| doc.takes().unwrap_or_default())
        .await?;
    let codes: std::collections::BTreeMap<&str, &str> = queued
        .queued
        .iter()
        .map(|q| (q.job_id.as_str(), q.shot_code.as_str()))
        .collect();
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            let take = takes.iter().find(|t| t.job_id == job.job_id);
            vec![
                codes
                    .get(job.job_id.as_str())
                    .copied()
                    .unwrap_or("?")
                    .to_owned(),
                job.state.to_string(),
                names
                    .get(&job.claimant)
                    .map_or_else(|| job.claimant.clone(), |n| (*n).to_owned()),
                take.map(|t| format!("{}x{} {}", t.width, t.height, t.media))
                    .unwrap_or_default(),
                take.map(|t| format!("{} ms", t.render_ms))
                    .unwrap_or_default(),
                take.map(|t| t.blob.chars().take(16).collect())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    crate::cli::print_table(
        out,
        &["SHOT", "JOB", "NODE", "TAKE", "DRAWN IN", "BLAKE3"],
        &rows,
    )?;
    writeln!(
        out,
        "{} jobs in {:.0} ms across the render nodes; the editor holds all {} takes",
        jobs.len(),
        rendered_in.as_secs_f64() * 1e3,
        takes.len()
    )?;
    // The images themselves: fetched by hash from the nodes that hold them.
    let started = Instant::now();
    let mut bytes = 0;
    for take in &takes {
        let hash = take
            .blob
            .parse()
            .map_err(|e: String| anyhow::anyhow!("take {}: {e}", take.take_id))?;
        bytes += editor.handle().fetch_blob(hash).await?.blob.size;
    }
    writeln!(
        out,
        "the editor fetched the {} images ({:.0} KiB) from the render nodes by BLAKE3 hash, verified, in {:.1} ms",
        takes.len(),
        bytes as f64 / 1024.0,
        started.elapsed().as_secs_f64() * 1e3
    )?;
    writeln!(out)?;
    Ok(())
}
