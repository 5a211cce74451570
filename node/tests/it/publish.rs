//! `reelmesh publish` read back by the real consumers: OpenTimelineIO (its own
//! JSON, its CMX3600 and FCP7 XML adapters) and ffprobe for the clips an EDL needs.
//! The project runs at 29.97 drop-frame with a shot that crosses the first minute,
//! and one shot has no take (a gap).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reelmesh_node::jobs::{self, queue::RenderRequest};
use reelmesh_node::node::{Node, NodeConfig};
use reelmesh_node::store::DataDir;
use reelmesh_protocol::document::Position;
use reelmesh_protocol::model::{Shot, ShotCode};
use reelmesh_protocol::timecode::FrameRate;

/// Frames of the four shots: the first crosses 00:01:00;00 (1798 frames in).
const LENGTHS: [u64; 4] = [1900, 900, 30, 61];

/// Python with OpenTimelineIO and its cmx_3600 and fcp_xml adapters, or a loud
/// banner (mandatory where `REELMESH_REQUIRE_OTIO` is set, as in CI).
fn otio_or_skip(test: &str) -> bool {
    let found = Command::new("python3")
        .args([
            "-c",
            "import opentimelineio as o; n = o.adapters.available_adapter_names(); assert 'cmx_3600' in n and 'fcp_xml' in n",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let required = std::env::var_os("REELMESH_REQUIRE_OTIO").is_some();
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! {test} NOT RUN: python3 with OpenTimelineIO is missing.\n\
             !! It reads the published cut with the real OTIO and its adapters;\n\
             !! CI installs them and sets REELMESH_REQUIRE_OTIO=1.\n\
             !! Run: pip install opentimelineio otio-cmx3600-adapter otio-fcp-adapter\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        assert!(
            !required,
            "REELMESH_REQUIRE_OTIO is set but OpenTimelineIO is missing"
        );
    }
    found
}

/// A project at 29.97 DF with storyboard cards rendered for shots 1, 2 and 4.
fn project_with_takes(dir: &Path) {
    let data = DataDir::open(dir).expect("data dir");
    let mut store = data.create_project("밤의 골목").expect("project");
    store
        .doc_mut()
        .set_frame_rate(FrameRate::Fps29_97Df)
        .expect("rate");
    let shots: Vec<Shot> = LENGTHS
        .iter()
        .enumerate()
        .map(|(i, frames)| {
            let mut shot = Shot::new(ShotCode(i as u64 + 1), *frames);
            shot.action = format!("민아가 골목으로 들어선다 {i}");
            shot
        })
        .collect();
    store
        .doc_mut()
        .add_shots(&shots, &Position::End)
        .expect("shots");
    store.save().expect("save");
    drop(store);
    drop(data);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let node = Node::start(NodeConfig::offline(dir.to_owned()))
            .await
            .expect("node");
        let handle = node.handle();
        let request = RenderRequest {
            shots: "SHT-00001,SHT-00002,SHT-00004".into(),
            workflow: "card".into(),
            ..RenderRequest::default()
        };
        let queued = jobs::queue_on(&handle, None, request, true)
            .await
            .expect("queued");
        let ids: Vec<String> = queued.queued.into_iter().map(|q| q.job_id).collect();
        let ended = jobs::follow::watch_jobs(&handle, None, &ids, Duration::from_secs(60), |_| {})
            .await
            .expect("rendered");
        assert_eq!(ended.len(), 3);
        node.stop().await.expect("stop");
    });
}

fn publish(data: &Path, file: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_reelmesh"))
        .arg("--data-dir")
        .arg(data)
        .arg("publish")
        .arg(file)
        .output()
        .expect("reelmesh");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "publish {}: {text}",
        file.display()
    );
    text
}

#[test]
fn the_published_cut_reads_back_in_opentimelineio_with_every_clip_and_gap() {
    crate::logs();
    if !otio_or_skip("the_published_cut_reads_back_in_opentimelineio_with_every_clip_and_gap") {
        return;
    }
    let data = tempfile::tempdir().expect("tmp");
    project_with_takes(data.path());
    let out = tempfile::tempdir().expect("out");
    for ext in ["otio", "edl", "xml", "fcpxml"] {
        let said = publish(data.path(), &out.path().join(format!("cut.{ext}")));
        assert!(said.contains("3 shots with a take, 1 without"), "{said}");
    }
    let read = read_back(out.path());

    // OTIO: three clips and a gap, in order, with their lengths; the media exist.
    let otio = read["otio"].as_array().expect("otio");
    let kinds: Vec<&str> = otio.iter().map(|i| i[0].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, ["Clip", "Clip", "Gap", "Clip"]);
    let names: Vec<&str> = otio.iter().map(|i| i[1].as_str().unwrap_or("")).collect();
    assert_eq!(names[..2], ["SHT-00001", "SHT-00002"]);
    assert_eq!(names[3], "SHT-00004");
    let lengths: Vec<u64> = otio.iter().map(|i| i[2].as_u64().unwrap_or(0)).collect();
    assert_eq!(lengths, LENGTHS);
    for item in otio.iter().filter(|i| i[0] == "Clip") {
        let target = item[3].as_str().expect("target");
        assert!(out.path().join(target).is_file(), "{target} is not there");
        assert!(target.ends_with(".png"), "{target}: the still itself");
    }
    assert!((read["otio_rate"].as_f64().unwrap_or(0.0) - 30000.0 / 1001.0).abs() < 1e-9);

    // EDL through OTIO's CMX3600 adapter: the three clips with their lengths at
    // 29.97 and, where shot 3 has no take, the black event (a generator).
    let edl: Vec<(String, u64, String)> = read["edl"]
        .as_array()
        .expect("edl")
        .iter()
        .map(|c| {
            (
                c[0].as_str().unwrap_or("").to_owned(),
                c[1].as_u64().unwrap_or(0),
                c[2].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected = [
        ("SHT-00001_take1.mp4", 1900, "ExternalReference"),
        ("SHT-00002_take1.mp4", 900, "ExternalReference"),
        ("003", 30, "GeneratorReference"),
        ("SHT-00004_take1.mp4", 61, "ExternalReference"),
    ];
    assert_eq!(edl.len(), expected.len(), "{edl:?}");
    for (got, want) in edl.iter().zip(expected) {
        assert_eq!((got.0.as_str(), got.1, got.2.as_str()), want, "{edl:?}");
    }
    // The clips the EDL points at hold exactly those frames at 30000/1001.
    if let Some(probed) = probe(&out.path().join("cut_media/SHT-00001_take1.mp4")) {
        assert_eq!(probed, "30000/1001,1900");
    }

    // FCP7 XML through OTIO's fcp_xml adapter: clips, lengths, absolute file URLs.
    let xmeml = read["xmeml"].as_array().expect("xmeml");
    let got: Vec<(String, u64)> = xmeml
        .iter()
        .map(|c| {
            (
                c[0].as_str().unwrap_or("").to_owned(),
                c[1].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("SHT-00001".to_owned(), 1900),
            ("SHT-00002".to_owned(), 900),
            ("SHT-00004".to_owned(), 61)
        ]
    );
    assert!(xmeml[0][2].as_str().unwrap_or("").starts_with("file:///"));
    assert!((read["xmeml_rate"].as_f64().unwrap_or(0.0) - 30000.0 / 1001.0).abs() < 1e-6);

    check_fcpxml(out.path());
    // FCPXML through OTIO's FCP X adapter (written for FCPXML up to 1.8: the 1.10
    // `media-rep` it does not know, so its references come back missing; and it
    // truncates a format's rate to whole frames, 29 for 29.97, so lengths are
    // compared as durations in seconds, within one of its frames).
    if let Some(clips) = read.get("fcpxml").and_then(|c| c.as_array()) {
        let names: Vec<&str> = clips.iter().map(|c| c[0].as_str().unwrap_or("")).collect();
        assert_eq!(names, ["SHT-00001", "SHT-00002", "SHT-00004"]);
        for (clip, frames) in clips.iter().zip([1900_u64, 900, 61]) {
            let rate = clip[2].as_f64().unwrap_or(1.0);
            let seconds = clip[1].as_f64().unwrap_or(0.0) / rate;
            let exact = frames as f64 * 1001.0 / 30000.0;
            assert!(
                (seconds - exact).abs() < 1.0 / rate,
                "{clip}: {seconds} s, the cut says {exact} s"
            );
        }
    } else {
        assert!(
            std::env::var_os("REELMESH_REQUIRE_OTIO").is_none(),
            "CI installs otio-fcpx-xml-adapter"
        );
    }

    // The animatic: every frame of the cut at the project rate.
    let said = publish(data.path(), &out.path().join("animatic.mp4"));
    assert!(said.contains("3 shots with a take, 1 without"), "{said}");
    if let Some(probed) = probe(&out.path().join("animatic.mp4")) {
        let total: u64 = LENGTHS.iter().sum();
        assert_eq!(probed, format!("30000/1001,{total}"));
    }
}

/// ffprobe's "rate,frames" of a video file; `None` (loudly) without ffprobe, unless
/// CI requires it.
fn probe(file: &Path) -> Option<String> {
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=r_frame_rate,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output();
    match probe {
        Ok(p) if p.status.success() => Some(String::from_utf8_lossy(&p.stdout).trim().to_owned()),
        _ => {
            eprintln!("!! ffprobe missing: {} not checked", file.display());
            assert!(
                std::env::var_os("REELMESH_REQUIRE_FFPROBE").is_none(),
                "ffprobe is required here"
            );
            None
        }
    }
}

/// What OpenTimelineIO reads from the published files (JSON from a Python script).
fn read_back(out: &Path) -> serde_json::Value {
    let script = r#"
import json, os, sys
import opentimelineio as otio
out = sys.argv[1]
def items(t):
    return [(type(i).__name__, i.name, int(i.duration().value), getattr(getattr(i, "media_reference", None), "target_url", None))
            for i in t.tracks[0]]
result = {}
t = otio.adapters.read_from_file(os.path.join(out, "cut.otio"))
result["otio"] = items(t)
result["otio_rate"] = t.tracks[0][0].duration().rate
e = otio.adapters.read_from_file(os.path.join(out, "cut.edl"), adapter_name="cmx_3600", rate=30000/1001)
result["edl"] = [(c.name, int(c.duration().value), type(c.media_reference).__name__) for c in e.find_clips()]
x = otio.adapters.read_from_file(os.path.join(out, "cut.xml"), adapter_name="fcp_xml")
result["xmeml"] = [(c.name, int(c.duration().value), c.media_reference.target_url) for c in x.find_clips()]
result["xmeml_rate"] = list(x.find_clips())[0].duration().rate
if "fcpx_xml" in otio.adapters.available_adapter_names():
    f = otio.adapters.read_from_file(os.path.join(out, "cut.fcpxml"), adapter_name="fcpx_xml")
    result["fcpxml"] = [(c.name, int(c.duration().value), c.duration().rate) for c in f.find_clips()]
print(json.dumps(result))
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(out)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

/// The FCPXML is well formed, version 1.10, with an asset-clip per take and a gap.
fn check_fcpxml(out: &Path) {
    let fcpxml = std::fs::read_to_string(out.join("cut.fcpxml")).expect("fcpxml");
    let check = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); \
             print(r.get('version'), len(r.findall('.//asset-clip')), len(r.findall('.//gap')), len(r.findall('.//asset/media-rep')))",
        ])
        .arg(out.join("cut.fcpxml"))
        .output()
        .expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "1.10 3 1 3",
        "{fcpxml}"
    );
    assert!(fcpxml.contains("tcFormat=\"DF\""));
    assert!(fcpxml.contains("frameDuration=\"1001/30000s\""));
    validate_against_apple_dtd(&out.join("cut.fcpxml"));
}

/// Apple's FCPXML 1.10 DTD: `REELMESH_FCPXML_DTD`, or `../shared/fcpxml/FCPXMLv1_10.dtd`
/// beside the checkout. Apple publishes it inside Final Cut Pro and on its developer
/// site; the copy used here comes from CommandPost
/// (github.com/CommandPost/CommandPost, `src/extensions/cp/apple/fcpxml/dtd/FCPXMLv1_10.dtd`,
/// SHA-256 32cbad28022f9a2033acdc25d0583b16d2e12745dc5efe4fa8f16e27aa59ff53). It is
/// Apple's file, so it is not committed here.
fn apple_dtd() -> Option<PathBuf> {
    let path = std::env::var_os("REELMESH_FCPXML_DTD")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fcpxml/FCPXMLv1_10.dtd")
        });
    path.is_file().then_some(path)
}

/// `xmllint --dtdvalid` against Apple's DTD, or a loud banner when the DTD or xmllint
/// is missing (mandatory where `REELMESH_REQUIRE_FCPXML_DTD` is set).
fn validate_against_apple_dtd(file: &Path) {
    let xmllint = Command::new("xmllint").arg("--version").output().is_ok();
    let Some(dtd) = apple_dtd().filter(|_| xmllint) else {
        eprintln!(
            "\n!! FCPXML DTD validation NOT RUN: needs xmllint (apt-get install libxml2-utils)\n\
             !! and Apple's FCPXMLv1_10.dtd at ../shared/fcpxml/ or $REELMESH_FCPXML_DTD.\n"
        );
        assert!(
            std::env::var_os("REELMESH_REQUIRE_FCPXML_DTD").is_none(),
            "REELMESH_REQUIRE_FCPXML_DTD is set but xmllint or the DTD is missing"
        );
        return;
    };
    let output = Command::new("xmllint")
        .args(["--noout", "--dtdvalid"])
        .arg(&dtd)
        .arg(file)
        .output()
        .expect("xmllint");
    assert!(
        output.status.success(),
        "{} fails Apple's FCPXML 1.10 DTD:\n{}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn publish_names_an_unknown_format_and_writes_nothing() {
    crate::logs();
    let data = tempfile::tempdir().expect("tmp");
    let store = DataDir::open(data.path()).expect("data");
    store.create_project("형식").expect("project");
    let out = tempfile::tempdir().expect("out");
    let output = Command::new(env!("CARGO_BIN_EXE_reelmesh"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("publish")
        .arg(out.path().join("cut.docx"))
        .output()
        .expect("reelmesh");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("'docx' is not a format publish writes"),
        "{said}"
    );
    assert_eq!(std::fs::read_dir(out.path()).expect("dir").count(), 0);
}

/// `reelmesh` with `args` on the data dir `data`: success, and stdout then stderr.
pub fn reelmesh(data: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_reelmesh"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("reelmesh");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn an_archive_verifies_names_a_flipped_byte_and_opens_the_same_project_elsewhere() {
    crate::logs();
    let data = tempfile::tempdir().expect("tmp");
    project_with_takes(data.path());
    let out = tempfile::tempdir().expect("out");
    let archive = out.path().join("밤의 골목.rma");
    let archive_arg = archive.to_str().expect("utf-8");
    let (ok, said) = reelmesh(data.path(), &["archive", "create", archive_arg]);
    assert!(ok, "{said}");
    assert!(said.contains("with 3 blobs"), "{said}");
    let (ok, said) = reelmesh(data.path(), &["archive", "verify", archive_arg]);
    assert!(ok && said.contains("ok, 4 files match"), "{said}");

    // A flipped byte in the last blob's bytes: verify fails naming that entry.
    let mut bytes = std::fs::read(&archive).expect("read");
    let manifest = reelmesh_node::archive::verify(&archive).expect("verify").0;
    let last = manifest.files.last().expect("a blob").clone();
    // The entry's local header: the signature PK\x03\x04, 30 bytes before its name
    // (the manifest and the central directory name it too).
    let name = last.path.as_bytes();
    let name_at = (30..bytes.len() - name.len())
        .find(|&i| &bytes[i..i + name.len()] == name && bytes[i - 30..i - 26] == *b"PK\x03\x04")
        .expect("the entry's local header");
    let inside = name_at + last.path.len() + 100;
    bytes[inside] ^= 0x5a;
    let broken = out.path().join("broken.rma");
    std::fs::write(&broken, &bytes).expect("write");
    let (ok, said) = reelmesh(
        data.path(),
        &["archive", "verify", broken.to_str().expect("utf-8")],
    );
    assert!(!ok, "{said}");
    assert!(said.contains(&last.path), "names the entry: {said}");

    // Open on a fresh data dir: the same document, every blob.
    let fresh = tempfile::tempdir().expect("fresh");
    let (ok, said) = reelmesh(fresh.path(), &["archive", "open", archive_arg]);
    assert!(ok, "{said}");
    let original = DataDir::open(data.path())
        .expect("data")
        .open_project(None)
        .expect("project");
    let mut opened = DataDir::open(fresh.path())
        .expect("fresh")
        .open_project(None)
        .expect("opened");
    let mut original = original;
    assert_eq!(opened.doc_mut().heads(), original.doc_mut().heads());
    assert_eq!(
        opened.doc().project().expect("project"),
        original.doc().project().expect("project")
    );
    let blobs = reelmesh_node::store::blobs::BlobStore::open(fresh.path()).expect("blobs");
    for take in opened.doc().takes().expect("takes") {
        let hash = take.blob.parse().expect("hash");
        assert!(blobs.has(&hash), "{} is not in the fresh store", take.blob);
        assert_eq!(
            blake3::hash(&blobs.read(&hash).expect("read"))
                .to_hex()
                .to_string(),
            take.blob
        );
    }
    // Opening it again into the same data dir is refused, naming the project.
    let (ok, said) = reelmesh(fresh.path(), &["archive", "open", archive_arg]);
    assert!(!ok && said.contains("is already in"), "{said}");
}

/// `pdftotext` (poppler-utils), or a loud banner (mandatory where
/// `REELMESH_REQUIRE_PDFTOTEXT` is set, as in CI).
fn pdftotext(pdf: &Path) -> Option<String> {
    match Command::new("pdftotext")
        .arg("-layout")
        .arg(pdf)
        .arg("-")
        .output()
    {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        _ => {
            eprintln!(
                "\n!! storyboard PDF text NOT CHECKED: pdftotext (apt-get install poppler-utils) is missing;\n\
                 !! CI installs it and sets REELMESH_REQUIRE_PDFTOTEXT=1.\n"
            );
            assert!(
                std::env::var_os("REELMESH_REQUIRE_PDFTOTEXT").is_none(),
                "REELMESH_REQUIRE_PDFTOTEXT is set but pdftotext is missing"
            );
            None
        }
    }
}

#[test]
fn the_storyboard_pdf_has_a_frame_per_shot_with_its_korean_text() {
    crate::logs();
    let data = tempfile::tempdir().expect("tmp");
    project_with_takes(data.path());
    // Sixteen more shots without takes: 20 frames, three pages of 3 × 3.
    {
        let data = DataDir::open(data.path()).expect("data");
        let mut store = data.open_project(None).expect("project");
        let more: Vec<Shot> = (5..=20)
            .map(|i| {
                let mut shot = Shot::new(ShotCode(i), 24);
                shot.action = format!("준이 한강 다리 위를 걷는다 {i}");
                shot.notes = "대사 없음".into();
                shot
            })
            .collect();
        store
            .doc_mut()
            .add_shots(&more, &Position::End)
            .expect("shots");
        store.save().expect("save");
    }
    let out = tempfile::tempdir().expect("out");
    let pdf = out.path().join("storyboard.pdf");
    let said = publish(data.path(), &pdf);
    assert!(said.contains("3 shots with a take, 17 without"), "{said}");
    let bytes = std::fs::read(&pdf).expect("pdf");
    assert!(bytes.starts_with(b"%PDF-"));
    let Some(text) = pdftotext(&pdf) else { return };
    for i in 1..=20 {
        let code = format!("SHT-{i:05}");
        assert_eq!(text.matches(&code).count(), 1, "{code} once in:\n{text}");
    }
    assert!(text.contains("민아가 골목으로 들어선다 0"), "{text}");
    assert!(text.contains("준이 한강 다리 위를 걷는다 20"), "{text}");
    assert!(text.contains("대사 없음"));
    // Drop-frame timecodes with `;`, and three pages.
    assert!(text.contains("00:01:03;12"), "{text}");
    assert_eq!(text.matches('\u{c}').count(), 3, "three pages");

    // Two rows of three, larger: the same 20 frames take four pages.
    let large = out.path().join("large.pdf");
    let (ok, said) = reelmesh(
        data.path(),
        &["publish", &large.to_string_lossy(), "--layout", "2x3"],
    );
    assert!(ok, "{said}");
    let text = pdftotext(&large).expect("pdftotext ran above");
    assert_eq!(text.matches('\u{c}').count(), 4, "four pages of 2 × 3");
    for i in 1..=20 {
        assert_eq!(text.matches(&format!("SHT-{i:05}")).count(), 1);
    }
    let (ok, said) = reelmesh(
        data.path(),
        &["publish", &large.to_string_lossy(), "--layout", "4x4"],
    );
    assert!(!ok);
    assert!(
        said.contains("'4x4' is not a storyboard layout: use 3x3 or 2x3"),
        "{said}"
    );
}
