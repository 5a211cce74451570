//! Benchmarks of issue 17: a flat 10,000-row shot list as studios keep it.
//!
//! Run: `cargo bench -p reelmesh-node --bench shotlist` (release build; python3 with
//! openpyxl writes the workbook and runs the anchor: `pip install openpyxl`).
//!
//! The workbook is written by openpyxl, not by reelmesh: one flat `샷 리스트` sheet of
//! 10,000 rows and 20 columns with Korean headers, every row carrying its own look
//! columns and naming its characters, and no Characters sheet (they are created).
//! Measured, in one run:
//! - import into a fresh project in this process, including the document write (the
//!   fsynced save), median of 5;
//! - the anchor: openpyxl `read_only=True` iterating the same file's rows, median of 3,
//!   and the ratio;
//! - the `reelmesh` binary, whole process: `import` into a fresh data dir, `shots`
//!   right after it (the document is read) and `shots` again (its cached view is
//!   read), wall time and peak resident memory (each run in a metering child that
//!   reads the command's rusage), median of 5.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reelmesh_node::import::import_bytes;
use reelmesh_node::store::DataDir;

const ROWS: usize = 10_000;

/// Writes the flat sheet; argv[1] is the path.
const WRITE_WORKBOOK: &str = r#"
import sys
from openpyxl import Workbook
wb = Workbook(write_only=True)
ws = wb.create_sheet("샷 리스트")
ws.append(["샷 번호", "장면 설명", "액션", "캐릭터", "카메라", "초점거리", "렌즈", "필름", "스타일",
           "룩앤필", "조명", "조명 스타일", "환경", "분위기", "필터", "화면비", "길이(초)", "상태",
           "워크플로우", "비고"])
cameras = ["Arri Alexa 35", "Sony FX6", "RED V-Raptor", "Canon C300 Mark III"]
focal = ["24mm", "35mm", "50mm", "85mm"]
lenses = ["anamorphic", "spherical prime", "vintage"]
films = ["Kodak Vision3 500T", "Kodak Portra 400", "digital"]
styles = ["photorealistic", "cinematic", "anime"]
looks = ["Blade Runner 2049", "Chungking Express", "Roma", "Dune"]
sources = ["neon", "natural", "fluorescent", "golden hour sun"]
light_styles = ["low key", "high key", "Rembrandt", "soft diffused"]
places = ["비 내리는 서울 뒷골목", "편의점 앞", "한강 다리 위", "옥상", "지하철 승강장"]
moods = ["tense", "hopeful", "lonely", "melancholic"]
filters = ["Black Pro-Mist 1/4", "none", "", "polarizer"]
ratios = ["2.39:1", "16:9", "1.85:1"]
statuses = ["대기", "완료", "수정 필요", "승인"]
people = ["민아", "준", "민아, 준"]
for i in range(1, int(sys.argv[2]) + 1):
    ws.append([f"SHT-{i:05d}", f"{places[i % 5]}, 밤 — 장면 {i}", f"민아가 골목으로 들어선다 (take {i})",
               people[i % 3], cameras[i % 4], focal[i % 4], lenses[i % 3], films[i % 3], styles[i % 3],
               looks[i % 4], sources[i % 4], light_styles[(i // 4) % 4], places[i % 5], moods[i % 4],
               filters[i % 4], ratios[i % 3], 1 + i % 6, statuses[i % 4], "ltx2_i2v" if i % 2 else "",
               "메모" if i % 7 == 0 else ""])
wb.save(sys.argv[1])
"#;

/// Iterates the rows read-only; prints seconds and rows.
const ANCHOR: &str = r#"
import sys, time, openpyxl
t = time.perf_counter()
wb = openpyxl.load_workbook(sys.argv[1], read_only=True)
n = sum(1 for _ in wb["샷 리스트"].iter_rows(values_only=True))
print(time.perf_counter() - t, n)
"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--meter") {
        meter(&args[2..]);
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let workbook = tmp.path().join("flat_10k.xlsx");
    let written = Command::new("python3")
        .args(["-c", WRITE_WORKBOOK])
        .arg(&workbook)
        .arg(ROWS.to_string())
        .status();
    if !written.is_ok_and(|s| s.success()) {
        println!(
            "shotlist bench NOT RUN: python3 with openpyxl writes its workbook (pip install openpyxl)"
        );
        return;
    }
    let bytes = std::fs::read(&workbook).expect("read");
    println!(
        "workbook: {ROWS} rows x 20 columns, written by openpyxl, {:.2} MiB",
        bytes.len() as f64 / (1024.0 * 1024.0)
    );

    let mut runs = 0;
    let import = median(5, || {
        runs += 1;
        let data = DataDir::open(&tmp.path().join(format!("lib-{runs}"))).expect("data");
        let mut store = data.create_project("bench").expect("create");
        let started = Instant::now();
        let bytes = std::fs::read(&workbook).expect("read");
        let report = import_bytes(store.doc_mut(), &bytes, "flat_10k.xlsx").expect("import");
        store.save().expect("save");
        let took = started.elapsed();
        assert_eq!(report.shots_added, ROWS);
        assert_eq!(report.created_characters.len(), 2);
        took
    });
    println!(
        "import into a fresh project, document written: {:.0} ms (median of 5; goal < 1000 ms)",
        ms(import)
    );
    let anchor = median(3, || openpyxl_anchor(&workbook));
    println!(
        "anchor: openpyxl read_only iterating the same rows: {:.0} ms (median of 3); reelmesh is {:.1}x faster (goal >= 4x)",
        ms(anchor),
        anchor.as_secs_f64() / import.as_secs_f64()
    );

    let binary = env!("CARGO_BIN_EXE_reelmesh");
    let mut imports = Vec::new();
    for run in 0..5 {
        let dir = tmp.path().join(format!("cli-import-{run}"));
        run_quiet(binary, &dir, &["init", "bench"]);
        imports.push(metered(
            binary,
            &dir,
            &["import", workbook.to_str().expect("path")],
        ));
    }
    let (wall, rss) = median_pair(imports);
    println!(
        "`reelmesh import` whole process, fresh data dir: {:.0} ms, peak memory {:.0} MiB (median of 5)",
        ms(wall),
        rss
    );
    // `shots` right after an import reads the document (and caches its view);
    // later runs find the view of exactly these files.
    let mut cold = Vec::new();
    for run in 0..5 {
        let dir = tmp.path().join(format!("cli-import-{run}"));
        cold.push(metered(binary, &dir, &["shots"]));
    }
    let (wall, rss) = median_pair(cold);
    println!(
        "`reelmesh shots` on the 10,000-shot project, whole process, first run after the import: {:.0} ms, peak memory {:.0} MiB (median of 5)",
        ms(wall),
        rss
    );
    let dir = tmp.path().join("cli-import-0");
    let warm: Vec<(Duration, f64)> = (0..5).map(|_| metered(binary, &dir, &["shots"])).collect();
    let (wall, rss) = median_pair(warm);
    println!(
        "`reelmesh shots` again, nothing changed: {:.0} ms (goal < 400 ms), peak memory {:.0} MiB (median of 5)",
        ms(wall),
        rss
    );
}

/// Child mode: run the command with its output discarded; print its wall time (s)
/// and peak resident memory (KiB) as this process's only child.
fn meter(command: &[String]) {
    let started = Instant::now();
    let status = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::null())
        .status()
        .expect("run");
    let wall = started.elapsed();
    assert!(status.success(), "{command:?} failed");
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("rusage");
    println!("{} {}", wall.as_secs_f64(), usage.max_rss());
}

/// Wall time and peak memory (MiB) of `reelmesh --data-dir DIR ARGS`.
fn metered(binary: &str, dir: &Path, args: &[&str]) -> (Duration, f64) {
    let output = Command::new(std::env::current_exe().expect("self"))
        .arg("--meter")
        .arg(binary)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("meter");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.split_whitespace();
    let seconds: f64 = fields.next().and_then(|s| s.parse().ok()).expect("wall");
    let kib: f64 = fields.next().and_then(|s| s.parse().ok()).expect("rss");
    (Duration::from_secs_f64(seconds), kib / 1024.0)
}

fn run_quiet(binary: &str, dir: &Path, args: &[&str]) {
    let status = Command::new(binary)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("run");
    assert!(status.success(), "{args:?}");
}

fn openpyxl_anchor(workbook: &Path) -> Duration {
    let output = Command::new("python3")
        .args(["-c", ANCHOR])
        .arg(workbook)
        .output()
        .expect("python3");
    assert!(output.status.success(), "anchor failed");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.split_whitespace();
    let seconds: f64 = fields.next().and_then(|s| s.parse().ok()).expect("seconds");
    let rows: usize = fields.next().and_then(|s| s.parse().ok()).expect("rows");
    assert_eq!(rows, ROWS + 1, "the anchor read every row");
    Duration::from_secs_f64(seconds)
}

fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(|_| f()).collect();
    times.sort();
    times[runs / 2]
}

fn median_pair(mut runs: Vec<(Duration, f64)>) -> (Duration, f64) {
    runs.sort_by_key(|r| r.0);
    let wall = runs[runs.len() / 2].0;
    let mut rss: Vec<f64> = runs.iter().map(|r| r.1).collect();
    rss.sort_by(f64::total_cmp);
    (wall, rss[rss.len() / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
