//! The editor window driven as a user would (egui_kittest, through AccessKit:
//! labels and roles), on a real node in this process: every action must reach the
//! project document, and what changes in the document (here or on a peer) must
//! reach the window without any input. The accessibility check stays on: every
//! input widget has a name.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
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
    _dir: tempfile::TempDir,
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
        let node = runtime
            .block_on(Node::start(NodeConfig::offline(dir.path().to_owned())))
            .expect("node");
        let handle = node.handle();
        Session::attach(runtime, Some(node), handle, dir)
    }

    pub fn attach(
        runtime: tokio::runtime::Runtime,
        node: Option<Node>,
        handle: NodeHandle,
        dir: tempfile::TempDir,
    ) -> Session {
        let (mut link, end) = reelmesh_ui::link::link();
        runtime.spawn(bridge::serve(Backend::Node(handle.clone()), end));
        link.open(None).expect("open");
        let editor = Editor::new(link, Images::new(None));
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
    let t = harness.input().time.unwrap_or(0.0) + 1.0;
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
