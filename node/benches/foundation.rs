//! Benchmarks of issue [1/8]: workbook import, cold open, offline merge.
//!
//! Run: `cargo bench -p reelmesh-node --bench foundation` (release build). It writes
//! a 10,000-row shot workbook, imports it into a fresh document, and, when python3
//! with openpyxl is available, times the anchor (openpyxl read-only, only reading the
//! rows of the same file) in the same run and prints the ratio.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reelmesh_node::export::export_bytes;
use reelmesh_node::import::import_bytes;
use reelmesh_node::store::{DataDir, ProjectStore};
use reelmesh_protocol::document::{Position, ProjectDoc};
use reelmesh_protocol::model::{Character, CinematicOption, Shot, ShotCode, ShotStatus};

const SHOTS: u64 = 10_000;

fn main() {
    let tmp = tempfile::tempdir().expect("tmp");
    let workbook = tmp.path().join("shots_10k.xlsx");
    std::fs::write(
        &workbook,
        export_bytes(&big_project(), "xlsx").expect("export"),
    )
    .expect("write");

    let import = median(5, || {
        let mut doc = ProjectDoc::create("bench", "bench").expect("create");
        let bytes = std::fs::read(&workbook).expect("read");
        let started = Instant::now();
        let report = import_bytes(&mut doc, &bytes, "shots_10k.xlsx").expect("import");
        let took = started.elapsed();
        assert_eq!(report.shots_added as u64, SHOTS);
        took
    });
    println!(
        "import 10,000-row workbook: {:.0} ms (median of 5; goal < 1000 ms)",
        ms(import)
    );
    match openpyxl_anchor(&workbook) {
        Some(anchor) => println!(
            "anchor openpyxl read-only row read, same file: {:.0} ms; reelmesh is {:.1}x faster",
            ms(anchor),
            anchor.as_secs_f64() / import.as_secs_f64()
        ),
        None => println!("anchor skipped: python3 with openpyxl not found (pip install openpyxl)"),
    }

    let data = DataDir::open(&tmp.path().join("data")).expect("data");
    let mut store = data.create_project("bench").expect("create");
    import_bytes(
        store.doc_mut(),
        &std::fs::read(&workbook).expect("read"),
        "shots_10k.xlsx",
    )
    .expect("import");
    store.save().expect("save");
    let dir = store.dir().to_owned();
    drop(store);
    let cold_log = median(5, || {
        time(|| {
            ProjectStore::open(&dir)
                .expect("open")
                .doc()
                .project()
                .expect("read")
        })
    });
    let mut store = ProjectStore::open(&dir).expect("open");
    store.compact().expect("compact");
    drop(store);
    let cold = median(5, || {
        time(|| {
            ProjectStore::open(&dir)
                .expect("open")
                .doc()
                .project()
                .expect("read")
        })
    });
    println!(
        "cold open of 10,000 shots (load + read every shot): {:.0} ms after compaction, {:.0} ms as the import was saved (goal < 300 ms); size on disk {:.2} MiB",
        ms(cold),
        ms(cold_log),
        dir_size(&dir) as f64 / (1024.0 * 1024.0)
    );

    let (merge, size, edits) = merge_bench();
    println!(
        "merge of two copies with 1,000 offline edits each: {:.0} ms; merged document {:.1} KiB; {edits} edits present after merge",
        ms(merge),
        size as f64 / 1024.0
    );
}

fn big_project() -> reelmesh_protocol::model::Project {
    let mut doc = ProjectDoc::create("bench", "bench").expect("create");
    let mut mina = Character::new("민아");
    mina.trigger_words = vec!["m1na".into()];
    doc.put_character(&mina).expect("character");
    let look = CinematicOption::new("네온 누아르");
    doc.put_cinematic(&look).expect("look");
    let shots: Vec<Shot> = (1..=SHOTS)
        .map(|i| {
            let mut shot = Shot::new(ShotCode(i), 24 + i % 96);
            shot.scene = format!("비 내리는 서울 뒷골목, 밤 — 장면 {i}");
            shot.action = format!("민아가 골목으로 들어선다 (take {i})");
            shot.characters = vec![mina.character_id.clone()];
            shot.cinematic = Some(look.cinematic_id.clone());
            shot.status = ShotStatus::ALL[(i % 5) as usize];
            shot.notes = "note".into();
            shot
        })
        .collect();
    doc.add_shots(&shots, &Position::End).expect("add");
    doc.project().expect("read")
}

fn merge_bench() -> (Duration, usize, usize) {
    let mut base = ProjectDoc::create("merge", "merge").expect("create");
    let shots: Vec<Shot> = (1..=1000).map(|i| Shot::new(ShotCode(i), 24)).collect();
    base.add_shots(&shots, &Position::End).expect("add");
    let mut a = base.fork();
    let mut b = base.fork();
    let project = base.project().expect("read");
    for (i, shot) in project.shots.iter().enumerate() {
        let mut edited = shot.clone();
        edited.action = format!("a edit {i}");
        a.update_shot(&edited).expect("edit");
        let mut edited = shot.clone();
        edited.notes = format!("b edit {i}");
        b.update_shot(&edited).expect("edit");
    }
    let started = Instant::now();
    a.merge(&mut b).expect("merge");
    let took = started.elapsed();
    let merged = a.project().expect("read");
    let edits = merged
        .shots
        .iter()
        .filter(|s| s.action.starts_with("a edit"))
        .count()
        + merged
            .shots
            .iter()
            .filter(|s| s.notes.starts_with("b edit"))
            .count();
    (took, a.save().len(), edits)
}

fn openpyxl_anchor(workbook: &Path) -> Option<Duration> {
    let script = "import sys,time,openpyxl\n\
t=time.perf_counter()\n\
wb=openpyxl.load_workbook(sys.argv[1],read_only=True)\n\
n=sum(1 for _ in wb['Shots'].iter_rows(values_only=True))\n\
print(time.perf_counter()-t, n)";
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(workbook)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let seconds: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64(seconds))
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let started = Instant::now();
    black_box(f());
    started.elapsed()
}

fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(|_| f()).collect();
    times.sort();
    times[runs / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}
