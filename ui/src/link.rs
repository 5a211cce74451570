//! The editor's line to its node.
//!
//! The UI never waits: requests go out with `try_send` on a bounded channel, and
//! answers, project snapshots, jobs, status and progress come back on another,
//! which the editor drains at the start of every frame. The node's side (in the
//! `node` crate: an in-process node, or the control socket of a node already
//! running on the data dir) answers each request through the node's one API and
//! wakes the UI ([`Waker::wake`]) after everything it sends, so nothing repaints
//! without a reason and nothing is missed.
//!
//! Every type crossing the line is plain data from `protocol` (ids as strings):
//! the UI knows nothing of libp2p.

use std::sync::{Arc, OnceLock};

use reelmesh_protocol::api::status::NodeStatusReport;
use reelmesh_protocol::api::{ApiError, JobsRead, ProjectRead, Reply, Request};
use reelmesh_protocol::jobs::JobUpdate;
use reelmesh_protocol::placement::Offer;
use tokio::sync::mpsc;

use crate::table::ShotRow;

/// Numbers a request so its answer finds the action that sent it.
pub type RequestId = u64;

/// What the editor asks of its node.
#[derive(Debug, Clone)]
pub enum ToNode {
    /// One operation of the API.
    Call {
        /// Matches the answer.
        id: RequestId,
        /// The operation.
        request: Request,
    },
    /// Follow this project (id or name; `None`: the node's current one): its
    /// snapshots and jobs come as they change.
    Open {
        /// The project.
        project: Option<String>,
    },
}

/// A project as the editor shows it: the project with its version, and the shot
/// table's rows (timecodes, names, prompts), computed on the node's side so the UI
/// thread never assembles 10,000 prompts.
#[derive(Debug, Clone)]
pub struct ProjectView {
    /// The project and its heads.
    pub read: ProjectRead,
    /// One row per live shot, in timeline order (shared with the views before it
    /// where the shot did not change).
    pub rows: Vec<Arc<ShotRow>>,
}

impl ProjectView {
    /// The view of `read`.
    #[must_use]
    pub fn of(read: ProjectRead) -> ProjectView {
        ProjectView::after(read, None)
    }

    /// The view of `read`, reusing the rows of `previous` for shots that did not
    /// change (a row's prompt is the costly part: 10,000 of them take 20 ms).
    #[must_use]
    pub fn after(read: ProjectRead, previous: Option<&ProjectView>) -> ProjectView {
        let rows = crate::table::shot_rows_after(
            &read.project,
            previous.map(|p| (&p.read.project, p.rows.as_slice())),
        );
        ProjectView { read, rows }
    }
}

/// What the node tells the editor.
#[derive(Debug, Clone)]
pub enum FromNode {
    /// The answer to [`ToNode::Call`].
    Answer {
        /// The request's id.
        id: RequestId,
        /// The reply, or why not.
        result: Result<Reply, ApiError>,
    },
    /// The followed project, after a change (here or from a peer).
    Project(Arc<ProjectView>),
    /// The followed project could not be read (missing, waiting for its first
    /// sync): the editor says why.
    NoProject(String),
    /// The followed project's jobs and takes, after a change.
    Jobs(Arc<JobsRead>),
    /// The node and its peers.
    Status(Arc<NodeStatusReport>),
    /// Every node's standing offer (what it can run now, and why not the rest).
    Offers(Arc<Vec<Offer>>),
    /// A job moved or made progress (its ComfyUI preview, when it has one).
    Progress(JobUpdate),
    /// Something the user should know now (a connection failed, a peer rejected).
    Notice(String),
    /// The node stopped: the editor can only be closed.
    Stopped(String),
}

/// Wakes the editor's window (set once the window exists), and whoever waits for
/// the node to say something ([`Waker::woken`]: the tests).
#[derive(Clone, Default)]
pub struct Waker(Arc<WakerInner>);

#[derive(Default)]
struct WakerInner {
    ctx: OnceLock<egui::Context>,
    notify: tokio::sync::Notify,
}

impl Waker {
    /// The window's context: wakes go to it from now on.
    pub fn set(&self, ctx: &egui::Context) {
        let _ = self.0.ctx.set(ctx.clone());
    }

    /// Ask the window to draw a frame (it reads what arrived).
    pub fn wake(&self) {
        if let Some(ctx) = self.0.ctx.get() {
            ctx.request_repaint();
        }
        self.0.notify.notify_one();
    }

    /// Until the next wake (one that came since the last wait counts).
    pub async fn woken(&self) {
        self.0.notify.notified().await;
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.ctx.get().is_some() {
            "Waker(set)"
        } else {
            "Waker(unset)"
        })
    }
}

/// The channel is full: the node is behind by [`CAPACITY`] requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node is busy ({CAPACITY} requests waiting): try again")]
pub struct Busy;

/// Requests and messages that may wait in each direction.
pub const CAPACITY: usize = 256;

/// The editor's end.
#[derive(Debug)]
pub struct Link {
    to_node: mpsc::Sender<ToNode>,
    from_node: mpsc::Receiver<FromNode>,
    next_id: RequestId,
    waker: Waker,
}

/// The node's end: take requests, send what the editor should know, wake it.
#[derive(Debug)]
pub struct NodeEnd {
    /// Requests from the editor.
    pub requests: mpsc::Receiver<ToNode>,
    /// To the editor.
    pub to_editor: mpsc::Sender<FromNode>,
    /// Wakes the editor after sending.
    pub waker: Waker,
}

/// A line between an editor and a node.
#[must_use]
pub fn link() -> (Link, NodeEnd) {
    let (to_node, requests) = mpsc::channel(CAPACITY);
    let (to_editor, from_node) = mpsc::channel(CAPACITY);
    let waker = Waker::default();
    (
        Link {
            to_node,
            from_node,
            next_id: 1,
            waker: waker.clone(),
        },
        NodeEnd {
            requests,
            to_editor,
            waker,
        },
    )
}

impl Link {
    /// Send `request`; its answer comes back as [`FromNode::Answer`] with the id.
    ///
    /// # Errors
    /// [`Busy`] when the node has [`CAPACITY`] requests waiting (nothing is sent).
    pub fn call(&mut self, request: Request) -> Result<RequestId, Busy> {
        let id = self.next_id;
        self.next_id += 1;
        self.to_node
            .try_send(ToNode::Call { id, request })
            .map_err(|_| Busy)?;
        Ok(id)
    }

    /// Follow `project` from now on.
    ///
    /// # Errors
    /// [`Busy`] as [`Link::call`].
    pub fn open(&mut self, project: Option<String>) -> Result<(), Busy> {
        self.to_node
            .try_send(ToNode::Open { project })
            .map_err(|_| Busy)
    }

    /// Everything that arrived since the last call, in order.
    pub fn drain(&mut self) -> Vec<FromNode> {
        let mut out = Vec::new();
        while let Ok(message) = self.from_node.try_recv() {
            out.push(message);
        }
        out
    }

    /// The waker the node's end uses: set it to the window's context.
    #[must_use]
    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Whether the node's end is gone (it stopped).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.to_node.is_closed()
    }
}

impl NodeEnd {
    /// Send `message` to the editor and wake it; false when the editor is gone.
    /// Waits while the editor's queue is full (the editor drains it every frame).
    pub async fn send(&self, message: FromNode) -> bool {
        let sent = self.to_editor.send(message).await.is_ok();
        self.waker.wake();
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_numbered_and_answers_drain_in_order() {
        let (mut editor, mut node) = link();
        let first = editor.call(Request::Status).expect("sent");
        let second = editor.call(Request::Projects).expect("sent");
        assert_eq!(second, first + 1);
        let Ok(ToNode::Call { id, .. }) = node.requests.try_recv() else {
            panic!("a call");
        };
        assert_eq!(id, first);
        for message in [FromNode::Notice("a".into()), FromNode::Notice("b".into())] {
            node.to_editor.try_send(message).expect("room");
        }
        let drained = editor.drain();
        assert!(
            matches!(&drained[..], [FromNode::Notice(a), FromNode::Notice(b)] if a == "a" && b == "b")
        );
        assert!(editor.drain().is_empty());
    }

    #[test]
    fn a_full_line_refuses_instead_of_waiting() {
        let (mut editor, _node) = link();
        for _ in 0..CAPACITY {
            editor.call(Request::Status).expect("room");
        }
        assert_eq!(editor.call(Request::Status), Err(Busy));
    }
}
