//! `reelmesh demo`: the main job, end to end, on this machine.
//!
//! Today it builds the demo project from the sample shot list shipped in the repo
//! (`node/assets/demo_shotlist.xlsx`, Korean headers), saves it to a data dir, opens
//! it again from disk, and prints shots, timecodes and prompts. Later issues extend
//! it to a whole mesh on loopback.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use reelmesh_protocol::timecode::FrameRate;

use crate::cli::{print_kept_columns, print_prompts, print_shots};
use crate::import;
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
    let data = DataDir::open(&root)?;
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
        report.characters,
        report.cinematics,
        started.elapsed().as_secs_f64() * 1e3
    )?;
    print_kept_columns(out, &report)?;

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

    print_shots(out, &project)?;
    writeln!(out)?;
    print_prompts(out, &project)?;

    if data_dir.is_none() && keep {
        let kept = temp.keep();
        writeln!(out, "\nkept the demo data dir: {}", kept.display())?;
    }
    Ok(())
}
