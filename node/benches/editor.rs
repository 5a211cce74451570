//! Benchmarks of the editor (issue 20): the editor's own work per frame on a
//! 10,000-shot project while scrolling the shot table and while typing in a cell,
//! and edit-to-screen: an edit on one node of a loopback mesh until a second
//! editor's table shows it.
//!
//! Run: `cargo bench -p reelmesh-node --bench editor` (release build).
//!
//! "Own work" is what the editor costs the CPU each frame before the GPU backend:
//! `Editor::ui` (UI code and layout) plus egui's tessellation of the frame's
//! shapes, measured on a real `egui::Context` fed the same input events a window
//! would get. The whole frame with Mesa's software GL (painting included) is
//! measured on the real window by `node/scripts/editor-frame-bench`.
//! The editor runs on a real node (the bridge, the API, the Automerge document).

use std::time::{Duration, Instant};

use reelmesh_node::editor::bridge::{self, Backend};
use reelmesh_node::mesh::keys;
use reelmesh_node::node::{Node, NodeConfig, NodeHandle};
use reelmesh_node::store::DataDir;
use reelmesh_protocol::document::Position;
use reelmesh_protocol::model::{Character, CinematicOption, Shot, ShotCode};
use reelmesh_ui::Editor;
use reelmesh_ui::images::Images;
use reelmesh_ui::link::Waker;

#[path = "support/common.rs"]
mod common;
use common::{ms, percentile};

const SHOTS: u64 = 10_000;
const FRAMES: usize = 400;
const EDITS: usize = 200;
const KEY: [u8; 32] = [0x3c; 32];

fn summary(what: &str, mut samples: Vec<Duration>, goal: &str) {
    samples.sort();
    println!(
        "{what}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} ({goal})",
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.95)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().expect("samples")),
        samples.len()
    );
}

/// A data dir with a project of `SHOTS` shots: Korean scene and action text, one of
/// two characters and one of two looks per shot.
fn project(dir: &std::path::Path) {
    let data = DataDir::open(dir).expect("data dir");
    let mut store = data.create_project("만 개의 샷").expect("project");
    let doc = store.doc_mut();
    let mut mina = Character::new("민아");
    mina.appearance = "a Korean woman in her twenties with short black hair".into();
    let mut jun = Character::new("준");
    jun.appearance = "a tall Korean man with a tired face".into();
    doc.put_character(&mina).expect("character");
    doc.put_character(&jun).expect("character");
    let mut noir = CinematicOption::new("네온 누아르");
    "Arri Alexa 35".clone_into(
        noir.look
            .get_mut(reelmesh_protocol::model::LookField::CameraBody),
    );
    let dawn = CinematicOption::new("새벽 다큐");
    doc.put_cinematic(&noir).expect("look");
    doc.put_cinematic(&dawn).expect("look");
    let shots: Vec<Shot> = (1..=SHOTS)
        .map(|i| {
            let mut shot = Shot::new(ShotCode(i), 24 + i % 96);
            shot.scene = format!("장면 {i}: 비 내리는 서울 뒷골목, 밤");
            shot.action = format!("민아가 우산 없이 골목으로 들어선다 ({i})");
            shot.characters = vec![if i % 2 == 0 {
                mina.character_id.clone()
            } else {
                jun.character_id.clone()
            }];
            shot.cinematic = Some(if i % 3 == 0 {
                dawn.cinematic_id.clone()
            } else {
                noir.cinematic_id.clone()
            });
            shot
        })
        .collect();
    doc.add_shots(&shots, &Position::End).expect("shots");
    store.save().expect("save");
}

/// An editor on `handle` driven by hand on a plain egui context.
struct Window {
    ctx: egui::Context,
    editor: Editor,
    waker: Waker,
    time: f64,
}

impl Window {
    fn open(runtime: &tokio::runtime::Runtime, handle: NodeHandle) -> Window {
        let (mut link, end) = reelmesh_ui::link::link();
        runtime.spawn(bridge::serve(Backend::Node(handle), end));
        link.open(None).expect("open");
        let editor = Editor::new(link, Images::new(None));
        let waker = editor.waker();
        let mut window = Window {
            ctx: egui::Context::default(),
            editor,
            waker,
            time: 0.0,
        };
        // The first frames install the fonts and receive the project.
        let deadline = Instant::now() + Duration::from_secs(60);
        while window.editor.project.is_none() {
            assert!(Instant::now() < deadline, "no project");
            window.frame(Vec::new());
            let waker = window.waker.clone();
            let _ = runtime.block_on(async move {
                tokio::time::timeout(Duration::from_secs(5), waker.woken()).await
            });
        }
        for _ in 0..10 {
            window.frame(Vec::new());
        }
        window
    }

    /// One frame with `events`; returns the editor's own work (UI + tessellation).
    fn frame(&mut self, events: Vec<egui::Event>) -> Duration {
        self.time += 1.0 / 60.0;
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1440.0, 900.0),
            )),
            time: Some(self.time),
            events,
            ..egui::RawInput::default()
        };
        let started = Instant::now();
        let mut output = self.ctx.run_ui(input, |ui| self.editor.ui(ui));
        let shapes = std::mem::take(&mut output.shapes);
        let primitives = self.ctx.tessellate(shapes, output.pixels_per_point);
        let took = started.elapsed();
        std::hint::black_box(primitives);
        output.textures_delta.clear();
        took
    }
}

impl Window {
    /// The shot codes of the rows laid out in one more frame (read from the
    /// accessibility tree, as a screen reader would).
    fn rows_on_screen(&mut self) -> Vec<String> {
        self.ctx.enable_accesskit();
        self.time += 1.0 / 60.0;
        let mut output = self.ctx.run_ui(
            egui::RawInput {
                time: Some(self.time),
                ..egui::RawInput::default()
            },
            |ui| self.editor.ui(ui),
        );
        output.textures_delta.clear();
        let mut codes: Vec<String> = output
            .platform_output
            .accesskit_update
            .map(|update| {
                update
                    .nodes
                    .iter()
                    .filter_map(|(_, node)| node.value().or(node.label()).map(str::to_owned))
                    .filter_map(|text| text.strip_prefix("≡ ").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        codes.sort();
        codes.dedup();
        self.ctx.disable_accesskit();
        codes
    }
}

fn pointer(pos: egui::Pos2, pressed: bool) -> egui::Event {
    egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    }
}

fn frames(runtime: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("tmp");
    project(dir.path());
    let node = runtime
        .block_on(Node::start(NodeConfig::offline(dir.path().to_owned())))
        .expect("node");
    let mut window = Window::open(runtime, node.handle());
    assert_eq!(
        window.editor.project.as_ref().map(|p| p.rows.len()),
        Some(SHOTS as usize)
    );
    let over_table = egui::pos2(700.0, 400.0);
    window.frame(vec![egui::Event::PointerMoved(over_table)]);

    // Scrolling: a wheel notch (-50 points) every frame, down through the table.
    let scrolling: Vec<Duration> = (0..FRAMES)
        .map(|_| {
            window.frame(vec![egui::Event::MouseWheel {
                unit: egui::MouseWheelUnit::Point,
                delta: egui::vec2(0.0, -50.0),
                modifiers: egui::Modifiers::NONE,
                phase: egui::TouchPhase::Move,
                source: egui::MouseWheelSource::Wheel,
            }])
        })
        .collect();
    summary(
        "editor's own work per frame, 10,000-shot table, scrolling",
        scrolling,
        "goal p95 < 8 ms",
    );
    let shown = window.rows_on_screen();
    println!(
        "  after scrolling, the table shows {} … {} ({} rows laid out, of 10,000)",
        shown.first().map_or("-", String::as_str),
        shown.last().map_or("-", String::as_str),
        shown.len()
    );
    assert!(
        shown.first().is_some_and(|c| c.as_str() > "SHT-00100"),
        "the table did not scroll: {shown:?}"
    );

    // Typing: back to the top, double-click a scene cell, then a Hangul syllable
    // per frame (as an IME commits them).
    window.frame(vec![egui::Event::Key {
        key: egui::Key::Home,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: egui::Modifiers::NONE,
    }]);
    for _ in 0..200 {
        window.frame(vec![egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, 2000.0),
            modifiers: egui::Modifiers::NONE,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
        }]);
    }
    let cell = egui::pos2(700.0, 100.0);
    window.frame(vec![egui::Event::PointerMoved(cell)]);
    for _ in 0..2 {
        window.frame(vec![pointer(cell, true)]);
        window.frame(vec![pointer(cell, false)]);
    }
    window.frame(Vec::new());
    assert!(
        window.ctx.memory(|m| m.focused().is_some()),
        "a cell's text field has the cursor"
    );
    let syllables = ["한", "강", " ", "다", "리", " "];
    let typing: Vec<Duration> = (0..FRAMES)
        .map(|i| {
            window.frame(vec![egui::Event::Ime(egui::ImeEvent::Commit(
                syllables[i % syllables.len()].to_owned(),
            ))])
        })
        .collect();
    summary(
        "editor's own work per frame, 10,000-shot table, typing in a cell",
        typing,
        "goal p95 < 8 ms",
    );

    // Idle: leave the cell (Escape), let the last frames of the edit's answer
    // settle, then a frame with no input and nothing from the node: how soon does
    // the editor ask to be drawn again?
    window.frame(vec![egui::Event::Key {
        key: egui::Key::Escape,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: egui::Modifiers::NONE,
    }]);
    for _ in 0..30 {
        window.frame(Vec::new());
    }
    window.time += 5.0;
    let mut output = window.ctx.run_ui(
        egui::RawInput {
            time: Some(window.time),
            ..egui::RawInput::default()
        },
        |ui| window.editor.ui(ui),
    );
    output.textures_delta.clear();
    let repaint = output
        .viewport_output
        .values()
        .map(|v| v.repaint_delay)
        .min()
        .unwrap_or(Duration::MAX);
    println!(
        "idle: the next repaint egui is asked for is in {} (no input, no news)",
        if repaint == Duration::MAX {
            "never".to_owned()
        } else {
            format!("{:.0} ms", ms(repaint))
        }
    );
    runtime.block_on(node.stop()).expect("stop");
}

fn edit_to_screen(runtime: &tokio::runtime::Runtime, shots: u64) {
    let first = tempfile::tempdir().expect("tmp");
    let second = tempfile::tempdir().expect("tmp");
    keys::store_mesh_key(first.path(), KEY).expect("key");
    keys::store_mesh_key(second.path(), KEY).expect("key");
    let project_id = {
        let data = DataDir::open(first.path()).expect("data");
        let mut store = data.create_project("편집").expect("project");
        let shots: Vec<Shot> = (1..=shots)
            .map(|i| {
                let mut shot = Shot::new(ShotCode(i), 24);
                shot.scene = format!("장면 {i}: 비 내리는 서울 뒷골목, 밤");
                shot
            })
            .collect();
        store
            .doc_mut()
            .add_shots(&shots, &Position::End)
            .expect("shots");
        store.save().expect("save");
        store.doc().project_id().expect("id")
    };
    {
        let data = DataDir::open(second.path()).expect("data");
        data.add_replica(&project_id).expect("replica");
        data.set_current_project(&project_id).expect("current");
    }
    let (a, addr) = runtime.block_on(common::loopback(first.path(), vec![]));
    let (b, _) = runtime.block_on(common::loopback(second.path(), vec![addr]));
    let (_, _, heads) = runtime.block_on(a.handle().project(None)).expect("read");
    runtime
        .block_on(
            b.handle()
                .wait_for_heads(None, heads, Duration::from_secs(60)),
        )
        .expect("synced");
    let mut window = Window::open(runtime, b.handle());
    let origin = a.handle();
    let mut samples = Vec::with_capacity(EDITS);
    let mut calls = Vec::with_capacity(EDITS);
    for i in 0..EDITS {
        let text = format!("편집 {i}: 민아가 뒤돌아본다");
        let row = i % 20;
        let edit = reelmesh_protocol::api::Request::Edit {
            project: None,
            client: "bench".into(),
            edit: reelmesh_protocol::api::edit::Edit::ShotSet {
                shot: format!("SHT-{:05}", row + 1),
                values: vec![("action".into(), text.clone())],
            },
        };
        let started = Instant::now();
        runtime
            .block_on(reelmesh_node::api::call(&origin, edit))
            .expect("edit");
        calls.push(started.elapsed());
        // Frames are drawn only when the editor is woken (as in the window).
        loop {
            window.frame(Vec::new());
            if window
                .editor
                .project
                .as_ref()
                .is_some_and(|p| p.rows[row].action == text)
            {
                break;
            }
            let waker = window.waker.clone();
            let woken = runtime.block_on(async move {
                tokio::time::timeout(Duration::from_secs(10), waker.woken()).await
            });
            assert!(woken.is_ok(), "edit {i} never reached the second editor");
        }
        samples.push(started.elapsed());
    }
    summary(
        &format!(
            "edit-to-screen, {shots} shots: an edit on node A (API call, fsync) until node B's editor draws it, loopback"
        ),
        samples,
        "goal p99 < 100 ms",
    );
    summary("  of which the edit on node A (API call, fsync)", calls, "");
    runtime.block_on(a.stop()).expect("stop");
    runtime.block_on(b.stop()).expect("stop");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    frames(&runtime);
    edit_to_screen(&runtime, 500);
    edit_to_screen(&runtime, SHOTS);
}
