//! The editor window driven as a user would (egui_kittest, through AccessKit:
//! labels and roles), on a real node in this process: every action must reach the
//! project document, and what changes in the document (here or on a peer) must
//! reach the window without any input. The accessibility check stays on: every
//! input widget has a name.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use reelmesh_node::editor::bridge::{self, Backend};
use reelmesh_node::node::{Node, NodeConfig, NodeHandle};
use reelmesh_node::store::DataDir;
use reelmesh_protocol::document::Position;
use reelmesh_protocol::model::{Project, Shot, ShotCode};
use reelmesh_ui::Editor;
use reelmesh_ui::images::Images;
use reelmesh_ui::link::Waker;

/// How long the window may take to show what the node did.
const SETTLE: Duration = Duration::from_secs(20);

/// An editor on an offline node whose project has `shots` shots.
pub struct Session {
    pub runtime: tokio::runtime::Runtime,
    pub node: Option<Node>,
    pub handle: NodeHandle,
    pub harness: Harness<'static, Editor>,
    waker: Waker,
    _dir: Option<tempfile::TempDir>,
}

/// The shots of a new project: Korean scenes, 2 s each.
pub fn scenes(count: u64) -> Vec<Shot> {
    (1..=count)
        .map(|i| {
            let mut shot = Shot::new(ShotCode(i), 48);
            shot.scene = format!("장면 {i}: 비 내리는 골목");
            shot.action = format!("action {i}");
            shot
        })
        .collect()
}

impl Session {
    pub fn start(shots: u64) -> Session {
        Session::start_with(shots, |_| {})
    }

    /// Like [`Session::start`], with the node's config set up by the caller.
    pub fn start_with(shots: u64, setup: impl FnOnce(&mut NodeConfig)) -> Session {
        crate::logs();
        let dir = tempfile::tempdir().expect("tmp");
        let data = DataDir::open(dir.path()).expect("data dir");
        let mut store = data.create_project("편집기").expect("project");
        store
            .doc_mut()
            .add_shots(&scenes(shots), &Position::End)
            .expect("shots");
        store.save().expect("save");
        drop(store);
        drop(data);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = NodeConfig::offline(dir.path().to_owned());
        setup(&mut config);
        let node = runtime.block_on(Node::start(config)).expect("node");
        let handle = node.handle();
        Session::attach(runtime, Some(node), handle, Some(dir))
    }

    pub fn attach(
        runtime: tokio::runtime::Runtime,
        node: Option<Node>,
        handle: NodeHandle,
        dir: Option<tempfile::TempDir>,
    ) -> Session {
        let (mut link, end) = reelmesh_ui::link::link();
        runtime.spawn(bridge::serve(Backend::Node(handle.clone()), end));
        link.open(None).expect("open");
        // Takes are read from the node's blob store, as in the real window.
        let reader = dir
            .as_ref()
            .map(|d| reelmesh_node::editor::blob_reader(d.path()));
        let editor = Editor::new(link, Images::new(reader));
        let waker = editor.waker();
        let harness = Harness::builder()
            .with_size([1400.0, 900.0])
            .with_context_setup(reelmesh_ui::fonts::install)
            .build_ui_state(|ui, editor: &mut Editor| editor.ui(ui), editor);
        let mut session = Session {
            runtime,
            node,
            handle,
            harness,
            waker,
            _dir: dir,
        };
        session.settle("the project's first snapshot", |e| e.project.is_some());
        session
    }

    /// Draw frames until `done` holds, waiting for the node between them (on its
    /// wake, not on a timer); panics naming `what` after [`SETTLE`].
    pub fn settle(&mut self, what: &str, done: impl Fn(&Editor) -> bool) {
        let deadline = Instant::now() + SETTLE;
        loop {
            self.harness.run_ok();
            if done(self.harness.state()) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let waker = self.waker.clone();
            let woken = self
                .runtime
                .block_on(async move { tokio::time::timeout(left, waker.woken()).await });
            assert!(
                woken.is_ok(),
                "the editor did not show {what} within {SETTLE:?}"
            );
        }
    }

    /// The project as the node has it now.
    pub fn project(&self) -> Project {
        self.runtime
            .block_on(self.handle.project(None))
            .expect("read")
            .1
    }

    /// Wait until the node's project satisfies `done` (the edit reached the document).
    pub fn until_document(&mut self, what: &str, done: impl Fn(&Project) -> bool) -> Project {
        let deadline = Instant::now() + SETTLE;
        let mut feed = {
            let _runtime = self.runtime.enter();
            self.handle.feed(64)
        };
        loop {
            let project = self.project();
            if done(&project) {
                return project;
            }
            self.harness.run_ok();
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .runtime
                .block_on(async { tokio::time::timeout(left, feed.recv()).await });
            assert!(
                event.is_ok(),
                "the document did not show {what} within {SETTLE:?}; it has {:#?}",
                project.shots
            );
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let _ = self.runtime.block_on(node.stop());
        }
    }
}

/// Two clicks 0.1 s apart on the widget labelled `label`. (egui tells a double
/// click by the input's clock, which the harness leaves unset: set it.)
pub fn double_click(harness: &mut Harness<'static, Editor>, label: &str) {
    // After the clock has run (a spinner's repaints), go on from where it is.
    let now = harness.ctx.input(|i| i.time);
    let t = harness.input().time.unwrap_or(0.0).max(now) + 1.0;
    harness.input_mut().time = Some(t);
    harness.get_by_label(label).click();
    harness.step();
    harness.input_mut().time = Some(t + 0.1);
    harness.get_by_label(label).click();
    harness.run_ok();
}

#[test]
fn a_cell_edited_in_the_table_changes_the_document() {
    let mut s = Session::start(3);
    double_click(&mut s.harness, "장면 2: 비 내리는 골목");
    let field = s.harness.get_by_label("Scene of SHT-00002");
    assert!(field.is_focused(), "the cell's field has the cursor");
    assert_eq!(field.value().as_deref(), Some("장면 2: 비 내리는 골목"));
    s.harness
        .key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    s.harness.run_ok();
    s.harness
        .get_by_label("Scene of SHT-00002")
        .type_text("새벽 한강 다리 위");
    s.harness.run_ok();
    s.harness.key_press(egui::Key::Enter);
    let project = s.until_document("the new scene", |p| p.shots[1].scene == "새벽 한강 다리 위");
    assert_eq!(
        project.shots[0].scene, "장면 1: 비 내리는 골목",
        "only that shot changed"
    );
    s.settle("the edited cell", |e| {
        e.project
            .as_ref()
            .is_some_and(|p| p.rows[1].scene == "새벽 한강 다리 위")
    });
    s.harness.get_by_label("새벽 한강 다리 위");
}

/// Render `count` storyboard cards of `shot` on the session's node (the built-in
/// card renderer: real takes with real PNG blobs) and wait for them.
fn card_takes(s: &Session, shot: &str, count: usize) {
    render_takes(s, shot, "card", count);
}

/// Render `shot` with `workflow` `count` times on the session's node and wait until
/// every job succeeded.
fn render_takes(s: &Session, shot: &str, workflow: &str, count: usize) {
    use reelmesh_node::jobs::{self, queue::RenderRequest};
    let handle = s.handle.clone();
    s.runtime.block_on(async move {
        let mut ids = Vec::new();
        for _ in 0..count {
            let request = RenderRequest {
                shots: shot.into(),
                workflow: workflow.into(),
                ..RenderRequest::default()
            };
            let queued = jobs::queue_on(&handle, None, request, true)
                .await
                .expect("queued");
            ids.extend(queued.queued.into_iter().map(|q| q.job_id));
        }
        let ended = jobs::follow::watch_jobs(&handle, None, &ids, SETTLE, |_| {})
            .await
            .expect("cards rendered");
        assert!(
            ended
                .iter()
                .all(|j| j.state == reelmesh_protocol::jobs::JobState::Succeeded),
            "{ended:#?}"
        );
    });
}

/// Click the navigation entry `name` and draw the panel.
fn open_panel(s: &mut Session, name: &str) {
    s.harness.get_by_label(name).click();
    s.harness.run_ok();
}

#[test]
fn a_review_selects_a_take_sends_it_back_with_a_note_then_approves_it() {
    let mut s = Session::start(2);
    card_takes(&s, "SHT-00001", 2);
    s.settle("both takes", |e| {
        e.jobs.as_ref().is_some_and(|j| j.takes.len() == 2)
    });
    open_panel(&mut s, "Takes and review");
    s.harness.get_by_label("SHT-00001 · 2 takes").click();
    s.harness.run_ok();
    // The gallery lists the newest first: select the older take.
    let older = {
        let jobs = s.harness.state().jobs.clone().expect("jobs");
        let mut takes = jobs.takes.clone();
        takes.sort_by_key(|t| t.finished_at_ms);
        takes[0].take_id.clone()
    };
    s.harness
        .get_by_label(&format!("Select take {}", &older[..8]))
        .click();
    let project = s.until_document("the chosen take", |p| p.shots[0].selected_take == older);
    assert_eq!(project.shots[1].selected_take, "", "only that shot changed");

    s.harness.get_by_label("Needs revision…").click();
    s.harness.run_ok();
    s.harness
        .get_by_label("Revision note")
        .type_text("비를 더 세게, 우산은 빨간색으로");
    s.harness.run_ok();
    s.harness.get_by_label("Send back").click();
    let project = s.until_document("the revision", |p| {
        p.shots[0].status == reelmesh_protocol::model::ShotStatus::NeedsRevision
    });
    assert_eq!(
        project.shots[0].review_note,
        "비를 더 세게, 우산은 빨간색으로"
    );
    s.settle("the note on screen", |e| {
        e.project
            .as_ref()
            .is_some_and(|p| p.read.project.shots[0].review_note.starts_with("비를"))
    });
    s.harness
        .get_by_label_contains("revision note: 비를 더 세게, 우산은 빨간색으로");

    s.harness.get_by_label("Approve").click();
    let project = s.until_document("the approval", |p| {
        p.shots[0].status == reelmesh_protocol::model::ShotStatus::Approved
    });
    assert_eq!(project.shots[0].review_note, "", "approval clears the note");
    assert_eq!(
        project.shots[0].selected_take, older,
        "the chosen take stays"
    );
}

/// Press the mouse on `from`, move it in steps to `to` and let go.
fn drag(harness: &mut Harness<'static, Editor>, from: egui::Pos2, to: egui::Pos2) {
    let button = |pos, pressed| egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    };
    harness
        .input_mut()
        .events
        .push(egui::Event::PointerMoved(from));
    harness.step();
    harness.input_mut().events.push(button(from, true));
    harness.step();
    for i in 1..=8 {
        let t = i as f32 / 8.0;
        harness
            .input_mut()
            .events
            .push(egui::Event::PointerMoved(from + (to - from) * t));
        harness.step();
    }
    harness.input_mut().events.push(button(to, false));
    harness.step();
    harness.run_ok();
}

#[test]
fn a_row_dragged_above_another_moves_the_shot_in_the_timeline() {
    let mut s = Session::start(4);
    let from = s.harness.get_by_label("≡ SHT-00004").rect().center();
    let target = s.harness.get_by_label("≡ SHT-00002").rect();
    // The upper half of SHT-00002's row: before it.
    let to = egui::pos2(target.center().x, target.top() + 2.0);
    drag(&mut s.harness, from, to);
    let project = s.until_document("the new order", |p| p.shots[1].code.0 == 4);
    let order: Vec<u64> = project.shots.iter().map(|s| s.code.0).collect();
    assert_eq!(order, [1, 4, 2, 3]);
    assert_eq!(
        project.shots[1].scene, "장면 4: 비 내리는 골목",
        "the shot moved with its fields"
    );
    // Timecodes follow the new order on screen.
    s.settle("the moved row", |e| {
        e.project
            .as_ref()
            .is_some_and(|p| p.rows[1].code == "SHT-00004")
    });
    assert_eq!(
        s.harness.state().project.as_ref().unwrap().rows[1].timecode_in,
        "00:00:02:00"
    );
}

/// The shot codes the table shows now, top to bottom.
fn visible_codes(harness: &Harness<'static, Editor>) -> Vec<String> {
    let mut rows: Vec<(f32, String)> = harness
        .query_all_by_label_contains("≡ SHT-")
        .map(|n| {
            // A label's text is its AccessKit value.
            let node = n.accesskit_node();
            let label = node.label().or_else(|| node.value()).unwrap_or_default();
            (n.rect().top(), label.trim_start_matches("≡ ").to_owned())
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    rows.into_iter().map(|(_, code)| code).collect()
}

#[test]
fn search_and_the_status_filter_narrow_the_table() {
    let mut s = Session::start(12);
    s.runtime
        .block_on(reelmesh_node::api::call(
            &s.handle,
            reelmesh_protocol::api::Request::Edit {
                project: None,
                client: "test".into(),
                edit: reelmesh_protocol::api::edit::Edit::ShotSet {
                    shot: "SHT-00003".into(),
                    values: vec![("status".into(), "approved".into())],
                },
            },
        ))
        .expect("edit");
    s.settle("the approved shot", |e| {
        e.project
            .as_ref()
            .is_some_and(|p| p.read.project.shots[2].status.as_str() == "approved")
    });
    assert_eq!(visible_codes(&s.harness).len(), 12);

    // Search: "장면 1" matches shots 1, 10, 11, 12 (scene text), in timeline order.
    s.harness.get_by_label("Search shots").click();
    s.harness.run_ok();
    s.harness.get_by_label("Search shots").type_text("장면 1");
    s.harness.run_ok();
    assert_eq!(
        visible_codes(&s.harness),
        ["SHT-00001", "SHT-00010", "SHT-00011", "SHT-00012"]
    );
    // Clear the search; filter by status: only the approved shot.
    s.harness
        .key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    s.harness.key_press(egui::Key::Backspace);
    s.harness.run_ok();
    assert_eq!(visible_codes(&s.harness).len(), 12);
    s.harness.get_by_label("Status: all").click();
    s.harness.run_ok();
    s.harness
        .get_by_role_and_label(egui::accesskit::Role::CheckBox, "approved")
        .click();
    s.harness.run_ok();
    assert_eq!(visible_codes(&s.harness), ["SHT-00003"]);
    s.harness.get_by_label("Show all").click();
    s.harness.run_ok();
    assert_eq!(visible_codes(&s.harness).len(), 12);
}

#[test]
fn three_rows_selected_with_shift_are_edited_at_once() {
    let mut s = Session::start(5);
    s.harness.get_by_label("장면 2: 비 내리는 골목").click();
    s.harness.run_ok();
    s.harness
        .get_by_label("장면 4: 비 내리는 골목")
        .click_modifiers(egui::Modifiers::SHIFT);
    s.harness.run_ok();
    s.harness.get_by_label("3 shots selected: set").hover();
    // Set the status of all three.
    s.harness.get_by_label("Bulk field").click();
    s.harness.run_ok();
    // The dropdown's entry (the column header has the same name; popups come last).
    s.harness
        .query_all_by_label("Status")
        .last()
        .expect("the Status entry")
        .click();
    s.harness.run_ok();
    s.harness.get_by_label("Bulk value").click();
    s.harness.run_ok();
    s.harness.get_by_label("approved").click();
    s.harness.run_ok();
    s.harness.get_by_label("Apply to 3 shots").click();
    let project = s.until_document("three approved shots", |p| {
        p.shots[1..4]
            .iter()
            .all(|s| s.status.as_str() == "approved")
    });
    assert_eq!(project.shots[0].status.as_str(), "pending");
    assert_eq!(project.shots[4].status.as_str(), "pending");
    // One undo per shot: three undos restore them.
    for _ in 0..3 {
        s.harness
            .key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::Z]);
        s.harness.run_ok();
    }
    s.until_document("the three undone", |p| {
        p.shots.iter().all(|s| s.status.as_str() == "pending")
    });
}

/// A GPU that reports one step with ComfyUI's own preview frame and then holds the
/// job until the test lets it go.
struct HeldGpu {
    release: std::sync::Arc<tokio::sync::Notify>,
}

/// A file recorded from a real ComfyUI server.
fn recorded(name: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/comfyui/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[async_trait::async_trait]
impl reelmesh_node::jobs::Executor for HeldGpu {
    fn declared(&self) -> Option<reelmesh_node::jobs::Declared> {
        Some(reelmesh_node::jobs::Declared {
            workflows: vec!["card".into(), "flux_basic".into()],
            unavailable: vec![(
                "wan_animate".into(),
                "not enough VRAM: needs 24 GB, this GPU has 12".into(),
            )],
            utilization: 0,
        })
    }

    async fn run(
        &self,
        ctx: reelmesh_node::jobs::RunContext,
    ) -> Result<reelmesh_node::jobs::Run, reelmesh_node::jobs::RunFailure> {
        use base64::Engine as _;
        let preview = reelmesh_protocol::jobs::Preview {
            mime: "image/png".into(),
            base64: base64::engine::general_purpose::STANDARD
                .encode(recorded("ws_binary_frame0.png")),
        };
        let _ = ctx
            .steps
            .send(reelmesh_node::jobs::Step {
                fraction: 0.4,
                step: "KSampler 8/20".into(),
                preview: Some(preview),
            })
            .await;
        tokio::select! {
            () = ctx.cancel.cancelled() => {
                return Err(reelmesh_node::jobs::RunFailure::new("canceled"));
            }
            () = self.release.notified() => {}
        }
        Ok(reelmesh_node::jobs::Run {
            outputs: vec![reelmesh_node::jobs::Produced {
                bytes: recorded("view_ok.png"),
                media: reelmesh_protocol::jobs::TakeMedia::Image,
                extension: "png".into(),
                width: 64,
                height: 64,
                frames: 1,
                fps: 0.0,
                duration_ms: 0,
            }],
            render_ms: 10,
            cached: false,
            submit_to_first_event: Duration::ZERO,
        })
    }
}

/// A GPU whose every run gives ComfyUI's recorded clip (an MP4 of 12 frames, 64×64,
/// at 12 fps) as a video take, whatever the workflow (flux_basic here: one that
/// needs no input image).
struct ClipGpu;

#[async_trait::async_trait]
impl reelmesh_node::jobs::Executor for ClipGpu {
    fn declared(&self) -> Option<reelmesh_node::jobs::Declared> {
        Some(reelmesh_node::jobs::Declared {
            workflows: vec!["card".into(), "flux_basic".into()],
            unavailable: Vec::new(),
            utilization: 0,
        })
    }

    async fn run(
        &self,
        _ctx: reelmesh_node::jobs::RunContext,
    ) -> Result<reelmesh_node::jobs::Run, reelmesh_node::jobs::RunFailure> {
        Ok(reelmesh_node::jobs::Run {
            outputs: vec![reelmesh_node::jobs::Produced {
                bytes: recorded("view_video.mp4"),
                media: reelmesh_protocol::jobs::TakeMedia::Video,
                extension: "mp4".into(),
                width: 64,
                height: 64,
                frames: 12,
                fps: 12.0,
                duration_ms: 1000,
            }],
            render_ms: 10,
            cached: false,
            submit_to_first_event: Duration::ZERO,
        })
    }
}

/// Draw frames until `label` is on screen, waking on the editor's decoders.
fn until_shown(s: &mut Session, label: &str) {
    let deadline = Instant::now() + SETTLE;
    while s.harness.query_by_label_contains(label).is_none() {
        assert!(Instant::now() < deadline, "'{label}' never showed");
        s.harness.run_ok();
        let waker = s.waker.clone();
        let _ = s.runtime.block_on(async move {
            tokio::time::timeout(Duration::from_millis(200), waker.woken()).await
        });
    }
}

#[test]
fn a_clip_take_shows_its_first_frame_in_the_table_and_plays_in_the_review() {
    if std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_err()
    {
        eprintln!("\n!! clip takes in the editor NOT RUN: ffmpeg is missing (CI requires it)\n");
        assert!(std::env::var_os("REELMESH_REQUIRE_FFPROBE").is_none());
        return;
    }
    let mut s = Session::start_with(2, |config| {
        config.executor = Some(reelmesh_node::jobs::ExecutorSlot(std::sync::Arc::new(
            ClipGpu,
        )));
    });
    render_takes(&s, "SHT-00001", "flux_basic", 1);
    s.settle("the clip take", |e| {
        e.jobs.as_ref().is_some_and(|j| j.takes.len() == 1)
    });
    // The table's Take cell and the timeline block show the clip's first frame.
    until_shown(&mut s, "take of SHT-00001");
    let take = s.harness.state().jobs.clone().expect("jobs").takes[0].clone();
    assert_eq!(take.media, reelmesh_protocol::jobs::TakeMedia::Video);

    // The review plays it in a loop at its own 12 fps: frame 1 at t = 100 s, frame
    // 7 half a second later, and frame 1 again a second after the start.
    open_panel(&mut s, "Takes and review");
    s.harness.get_by_label("SHT-00001 · 1 take").click();
    let short = &take.take_id[..8];
    s.harness.input_mut().time = Some(100.0);
    until_shown(&mut s, &format!("take {short} frame "));
    for (t, frame) in [(100.0, 1), (100.5, 7), (100.95, 12), (101.0, 1)] {
        s.harness.input_mut().time = Some(t);
        s.harness.step();
        s.harness
            .get_by_label(&format!("take {short} frame {frame} of 12"));
    }
    // The gallery says which takes are clips.
    s.harness
        .get_by_label_contains(&format!("clip · {short} · flux_basic"));
}

#[test]
fn a_render_queued_from_the_window_shows_its_progress_and_preview_in_the_jobs_panel() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let gpu = HeldGpu {
        release: release.clone(),
    };
    let mut s = Session::start_with(3, |config| {
        config.executor = Some(reelmesh_node::jobs::ExecutorSlot(std::sync::Arc::new(gpu)));
    });
    s.settle("this node's offer", |e| {
        e.offers
            .iter()
            .any(|o| o.workflows.iter().any(|w| w == "flux_basic"))
    });
    s.harness.get_by_label("장면 2: 비 내리는 골목").click();
    s.harness.run_ok();
    s.harness.get_by_label("Render selected shots…").click();
    s.harness.run_ok();
    assert_eq!(
        s.harness.get_by_label("Shots to render").value().as_deref(),
        Some("SHT-00002")
    );
    // The workflow comes from what the mesh can run; one it cannot says why.
    s.harness.get_by_label("Workflow").click();
    s.harness.run_ok();
    s.harness
        .get_by_label("wan_animate (no node can run it now)")
        .click();
    s.harness.run_ok();
    s.harness
        .get_by_label_contains("not enough VRAM: needs 24 GB, this GPU has 12");
    s.harness.get_by_label("Workflow").click();
    s.harness.run_ok();
    s.harness.get_by_label("flux_basic").click();
    s.harness.run_ok();
    s.harness.get_by_label("Queue").click();
    s.harness.run_ok();

    open_panel(&mut s, "Jobs");
    s.settle("the running job's progress", |e| {
        e.progress.values().any(|p| p.step == "KSampler 8/20")
            && e.jobs.as_ref().is_some_and(|j| {
                j.jobs
                    .iter()
                    .any(|j| j.state == reelmesh_protocol::jobs::JobState::Running)
            })
    });
    // Decoding the preview happens off the UI thread: wait for the image.
    let deadline = Instant::now() + SETTLE;
    while s.harness.query_by_label("preview of SHT-00002").is_none() {
        assert!(Instant::now() < deadline, "the preview never showed");
        s.settle("a frame", |_| true);
        let waker = s.waker.clone();
        let _ = s.runtime.block_on(async move {
            tokio::time::timeout(Duration::from_millis(200), waker.woken()).await
        });
    }
    s.harness.get_by_label_contains("40 % KSampler 8/20");
    s.harness.get_by_label_contains("running");

    release.notify_one();
    let project = s.until_document("the take", |p| {
        p.shots[1].status == reelmesh_protocol::model::ShotStatus::Completed
    });
    assert_eq!(project.shots[0].status.as_str(), "pending");
    s.settle("the finished job", |e| {
        e.jobs.as_ref().is_some_and(|j| {
            j.takes.len() == 1
                && j.jobs
                    .iter()
                    .all(|j| j.state == reelmesh_protocol::jobs::JobState::Succeeded)
        })
    });
    s.harness.run_ok();
    s.harness.get_by_label_contains("succeeded");
}

#[test]
fn an_edit_made_on_another_peer_appears_without_any_input() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mesh = runtime.block_on(crate::meshkit::mesh(3, vec![Box::new(|_| {})]));
    let peer = mesh.workers[0].handle();
    let here = mesh.editor.handle();
    let mut s = Session::attach(runtime, None, here, None);
    s.settle("the table", |e| {
        e.project.as_ref().is_some_and(|p| p.rows.len() == 3)
    });
    let edit = reelmesh_protocol::api::Request::Edit {
        project: None,
        client: "laptop".into(),
        edit: reelmesh_protocol::api::edit::Edit::ShotSet {
            shot: "SHT-00002".into(),
            values: vec![("action".into(), "민아가 뒤돌아본다".into())],
        },
    };
    s.runtime
        .block_on(reelmesh_node::api::call(&peer, edit))
        .expect("the peer's edit");
    // No input at all: frames are drawn only when the editor is woken.
    s.settle("the peer's edit", |e| {
        e.project
            .as_ref()
            .is_some_and(|p| p.rows[1].action == "민아가 뒤돌아본다")
    });
    s.harness.get_by_label("민아가 뒤돌아본다");
    s.runtime.block_on(mesh.stop());
}

#[test]
fn korean_typed_through_an_input_method_lands_in_the_cell() {
    let mut s = Session::start(2);
    double_click(&mut s.harness, "action 1");
    let field = s.harness.get_by_label("Action of SHT-00001");
    assert!(field.is_focused());
    s.harness
        .key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    s.harness.run_ok();
    // What egui-winit passes on from an input method composing 한강 (winit's
    // Preedit with the cursor at the end of the syllable, a Commit per finished
    // syllable, an empty Preedit when composition ends).
    let preedit = |text: &str| egui::ImeEvent::Preedit {
        text: text.to_owned(),
        active_range_chars: Some(text.chars().count()..text.chars().count()),
    };
    let ime = [
        preedit("ㅎ"),
        preedit("하"),
        preedit("한"),
        egui::ImeEvent::Commit("한".into()),
        preedit("ㄱ"),
        preedit("가"),
        preedit("강"),
        egui::ImeEvent::Commit("강".into()),
        egui::ImeEvent::Preedit {
            text: String::new(),
            active_range_chars: None,
        },
    ];
    for event in ime {
        s.harness.input_mut().events.push(egui::Event::Ime(event));
        s.harness.step();
    }
    s.harness.run_ok();
    assert_eq!(
        s.harness
            .get_by_label("Action of SHT-00001")
            .value()
            .as_deref(),
        Some("한강")
    );
    s.harness.key_press(egui::Key::Enter);
    s.until_document("the composed text", |p| p.shots[0].action == "한강");
}

#[test]
fn trimming_and_moving_blocks_on_the_timeline_change_the_document() {
    let mut s = Session::start(3);
    // Trim: drag SHT-00002's end right by 24 frames (1.5 points a frame).
    let edge = s.harness.get_by_label("end of SHT-00002").rect();
    let zoom = s.harness.state().panels.timeline.zoom;
    let from = edge.center();
    drag(&mut s.harness, from, from + egui::vec2(24.0 * zoom, 0.0));
    let project = s.until_document("the longer shot", |p| p.shots[1].frame_count == 72);
    assert_eq!(
        (project.shots[0].frame_count, project.shots[2].frame_count),
        (48, 48),
        "only that shot changed"
    );
    s.settle("the longer block", |e| {
        e.project.as_ref().is_some_and(|p| p.rows[1].frames == 72)
    });

    // Move: drag SHT-00003 before SHT-00001 (left of its middle).
    let block = s.harness.get_by_label("SHT-00003 on the timeline").rect();
    let first = s.harness.get_by_label("SHT-00001 on the timeline").rect();
    drag(
        &mut s.harness,
        block.center(),
        egui::pos2(first.left() + 4.0, first.center().y),
    );
    let project = s.until_document("the new order", |p| p.shots[0].code.0 == 3);
    let order: Vec<u64> = project.shots.iter().map(|s| s.code.0).collect();
    assert_eq!(order, [3, 1, 2]);
    // One undo puts the move back, a second the length.
    s.harness
        .key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::Z]);
    s.harness.run_ok();
    s.until_document("the move undone", |p| p.shots[0].code.0 == 1);
    s.harness
        .key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::Z]);
    s.harness.run_ok();
    s.until_document("the trim undone", |p| p.shots[1].frame_count == 48);

    // A note on a shot puts a marker on the ruler where the shot starts; a click
    // there moves the playhead to it and selects the shot.
    s.harness
        .state_mut()
        .edit(reelmesh_protocol::api::edit::Edit::ShotSet {
            shot: "SHT-00003".into(),
            values: vec![("notes".into(), "여기서 음악 시작".into())],
        });
    s.settle("the note marker", |e| {
        e.project
            .as_ref()
            .is_some_and(|p| p.read.project.shots[2].notes == "여기서 음악 시작")
    });
    let marker = s
        .harness
        .get_by_label("note on SHT-00003: 여기서 음악 시작")
        .rect();
    let block = s.harness.get_by_label("SHT-00003 on the timeline").rect();
    assert!(
        (marker.left() - block.left()).abs() < 1.0,
        "the marker sits where the shot starts: {marker:?} {block:?}"
    );
    assert_eq!(
        s.harness
            .query_all_by_label_contains("note on SHT-")
            .count(),
        1,
        "shots without notes have no marker"
    );
    s.harness
        .get_by_label("note on SHT-00003: 여기서 음악 시작")
        .click();
    s.harness.run_ok();
    let e = s.harness.state();
    assert_eq!(e.panels.timeline.playhead, 96);
    let selected = e.shots.selected_in_order(e.project.as_deref());
    assert_eq!(
        selected,
        [e.project.as_ref().expect("view").read.project.shots[2]
            .shot_id
            .clone()]
    );
}

#[test]
fn the_player_steps_plays_frame_accurately_and_the_table_follows() {
    let mut s = Session::start(3);
    open_panel(&mut s, "Animatic player");
    for _ in 0..50 {
        s.harness.key_press(egui::Key::ArrowRight);
    }
    s.harness.step();
    assert_eq!(s.harness.state().panels.timeline.playhead, 50);
    s.harness
        .get_by_label_contains("SHT-00002  00:00:02:02 / 00:00:06:00");
    // Play from frame 50 at t = 100 s; the input clock drives the frames.
    s.harness.input_mut().time = Some(100.0);
    s.harness.key_press(egui::Key::Space);
    s.harness.step();
    // Between two frames the earlier one shows (100.02 s is 0.48 of a frame in).
    for (t, frame) in [
        (100.02, 50),
        (100.5, 62),
        (101.0, 74),
        (102.0, 98),
        (103.0, 122),
    ] {
        s.harness.input_mut().time = Some(t);
        s.harness.step();
        assert_eq!(
            s.harness.state().panels.timeline.playhead,
            frame,
            "at {t} s (24 fps from frame 50 at 100 s)"
        );
    }
    // At frame 98 the playhead entered SHT-00003: the table selected it.
    let third = s.project().shots[2].shot_id.clone();
    assert_eq!(s.harness.state().shots.last_selected(), Some(third));
    // Past the end it stops on the last frame.
    s.harness.input_mut().time = Some(110.0);
    s.harness.step();
    assert_eq!(s.harness.state().panels.timeline.playhead, 143);
    assert!(s.harness.state().panels.player.playing.is_none());
}

#[test]
fn the_cut_published_from_the_window_reads_back_with_its_clips_and_gap() {
    let mut s = Session::start(3);
    card_takes(&s, "SHT-00001", 1);
    card_takes(&s, "SHT-00003", 2);
    let out = tempfile::tempdir().expect("out");
    let file = out.path().join("컷.otio");
    s.harness.key_combination_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        &[egui::Key::E],
    );
    s.harness.run_ok();
    s.harness.get_by_label("File to publish").focus();
    s.harness.run_ok();
    s.harness
        .get_by_label("File to publish")
        .type_text(&file.to_string_lossy());
    s.harness.run_ok();
    s.harness.get_by_label_contains("Writes: OpenTimelineIO");
    s.harness.get_by_label("Publish").click();
    s.harness.run_ok();
    s.settle("what the publish wrote", |e| {
        matches!(&e.dialog, Some(reelmesh_ui::dialogs::Dialog::Publish { written, .. }) if !written.is_empty())
    });
    // Said in the dialog and in the status line.
    assert_eq!(
        s.harness
            .query_all_by_label_contains("2 shots with a take, 1 without")
            .count(),
        2
    );
    // The file points at the copies beside it, named by shot and take.
    let otio: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("otio")).expect("json");
    let children = otio["tracks"]["children"][0]["children"]
        .as_array()
        .expect("track");
    let kinds: Vec<&str> = children
        .iter()
        .map(|c| c["OTIO_SCHEMA"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["Clip.1", "Gap.1", "Clip.1"]);
    let third = children[2]["media_reference"]["target_url"]
        .as_str()
        .expect("url");
    assert!(third.ends_with("SHT-00003_take2.png"), "{third}");
    assert!(out.path().join("컷_media/SHT-00003_take2.png").is_file());

    // A name publish cannot write is refused in the dialog before anything runs.
    s.harness.get_by_label("File to publish").focus();
    s.harness
        .key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    s.harness
        .get_by_label("File to publish")
        .type_text("/tmp/cut.mov");
    s.harness.run_ok();
    s.harness
        .get_by_label_contains("Not a format publish writes");
    {
        use egui_kittest::kittest::NodeT as _;
        assert!(
            s.harness
                .get_by_label("Publish")
                .accesskit_node()
                .is_disabled()
        );
    }
}

#[test]
fn advice_asked_from_the_window_is_accepted_one_shot_then_all_in_one_undo_step() {
    let ledger = crate::gpu_standin::Ledger::default();
    let gpu = crate::gpu_standin::GpuStandIn::new("RTX 4090", 24.0, &["ltx2", "fflf"], 0, &ledger);
    let mut s = Session::start_with(3, move |config| config.executor = Some(gpu.slot()));
    s.settle("this node's offer", |e| {
        e.offers
            .iter()
            .any(|o| o.workflows.iter().any(|w| w == "ltx2"))
    });
    // Ctrl+Shift+W: advice for every shot (no LLM set up: the rules answer).
    s.harness.key_combination_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        &[egui::Key::W],
    );
    s.harness.run_ok();
    s.settle("the advice column filled", |e| {
        e.project.as_ref().is_some_and(|p| {
            p.read
                .project
                .shots
                .iter()
                .all(|s| s.advice.as_ref().is_some_and(|a| a.usable()))
        })
    });
    s.harness
        .get_by_label_contains("advised 3 shots with the rule-based advisor");
    // Make room for the Advice column: hide the inspector, the scene and the action.
    s.harness
        .key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::Backslash]);
    s.harness.run_ok();
    s.harness.get_by_label("Columns").click();
    s.harness.run_ok();
    for column in ["Scene", "Action"] {
        s.harness
            .get_by_role_and_label(egui::accesskit::Role::CheckBox, column)
            .click();
        s.harness.run_ok();
    }
    // Close the menu (a click outside it, on the search field).
    s.harness.get_by_label("Search shots").click();
    s.harness.run_ok();
    assert!(
        s.harness
            .query_by_role_and_label(egui::accesskit::Role::CheckBox, "Scene")
            .is_none(),
        "the columns menu closed"
    );
    // One shot: its Accept button.
    s.harness
        .get_by_label("Accept advice for SHT-00002")
        .click();
    s.harness.run_ok();

    let project = s.until_document("shot 2's workflow", |p| p.shots[1].workflow == "ltx2");
    assert_eq!(
        (
            project.shots[0].workflow.as_str(),
            project.shots[2].workflow.as_str()
        ),
        ("", "")
    );
    s.settle("shot 2 shown as accepted", |e| {
        e.project
            .as_ref()
            .is_some_and(|p| p.read.project.shots[1].workflow == "ltx2")
    });
    assert!(
        s.harness
            .query_by_label("Accept advice for SHT-00002")
            .is_none()
    );
    // All: Render > Accept all advice.
    s.harness.get_by_label("Render").click();
    s.harness.run_ok();
    s.harness.get_by_label("Accept all advice").click();
    s.harness.run_ok();
    let project = s.until_document("every shot's workflow", |p| {
        p.shots.iter().all(|s| s.workflow == "ltx2")
    });
    assert!(
        project
            .shots
            .iter()
            .all(|s| s.advice.as_ref().is_some_and(|a| a.source == "rules"))
    );
    // One undo takes back the whole "accept all" (shot 2 keeps its own accept).
    s.harness
        .key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::Z]);
    s.harness.run_ok();
    let undone = s.until_document("accept all undone", |p| p.shots[0].workflow.is_empty());
    let workflows: Vec<&str> = undone.shots.iter().map(|s| s.workflow.as_str()).collect();
    assert_eq!(workflows, ["", "ltx2", ""]);
    // Change: the workflow cell offers what the mesh can run.
    s.settle("the undone workflows shown", |e| {
        e.project
            .as_ref()
            .is_some_and(|p| p.read.project.shots[0].workflow.is_empty())
    });
    double_click(&mut s.harness, "ltx2");
    s.harness
        .key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    s.harness
        .get_by_label("Workflow of SHT-00002")
        .type_text("ff");
    s.harness.run_ok();
    s.harness.get_by_label("fflf").click();
    s.harness.run_ok();
    s.until_document("shot 2 changed to fflf", |p| p.shots[1].workflow == "fflf");
}

#[test]
fn the_llm_settings_are_saved_to_the_nodes_llm_toml_and_the_key_is_not_among_them() {
    let mut s = Session::start(1);
    s.harness.get_by_label("Render").click();
    s.harness.run_ok();
    s.harness.get_by_label("LLM settings…").click();
    s.harness.run_ok();
    s.settle("what the node says", |e| {
        matches!(
            &e.dialog,
            Some(reelmesh_ui::dialogs::Dialog::Llm {
                status: Some(_),
                ..
            })
        )
    });
    s.harness
        .get_by_label_contains("in use: none (the rule-based advisor answers)");
    for (field, text) in [
        ("LLM base URL", "http://127.0.0.1:11434/v1"),
        ("LLM model", "qwen2.5:7b-instruct"),
        ("LLM requests at once", "6"),
    ] {
        s.harness.get_by_label(field).focus();
        s.harness.run_ok();
        s.harness.get_by_label(field).type_text(text);
        s.harness.run_ok();
    }
    s.harness.get_by_label("Save").click();
    s.harness.run_ok();
    s.settle("the node using it", |e| {
        e.messages
            .iter()
            .any(|m| m.text == "saved: advice now asks qwen2.5:7b-instruct")
    });
    let dir = s.handle.data_dir().to_owned();
    let saved = std::fs::read_to_string(dir.join("llm.toml")).expect("llm.toml");
    let file: toml::Table = toml::from_str(&saved).expect("toml");
    assert_eq!(file["base_url"].as_str(), Some("http://127.0.0.1:11434/v1"));
    assert_eq!(file["model"].as_str(), Some("qwen2.5:7b-instruct"));
    assert_eq!(file["parallel"].as_integer(), Some(6));
    assert!(!saved.contains("key"), "{saved}");
    s.harness
        .get_by_label_contains("in use: qwen2.5:7b-instruct at http://127.0.0.1:11434/v1");
}
