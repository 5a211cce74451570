//! The node's end of the editor's link: it answers the editor's requests through
//! the one API ([`crate::api::call`]) and keeps the editor's copies of the open
//! project, its jobs, the node's status and the live offers fresh, from the
//! node's status feed.
//!
//! Reads are coalesced: a burst of changes (an import, a busy mesh) costs one read
//! of each kind per [`PROJECT_EVERY`] / [`JOBS_EVERY`], and the shot table's rows
//! (10,000 prompts) are assembled here, on a blocking thread, never on the UI's.
//! Edits, undo and redo are answered in the order they were sent (one after the
//! other); slow requests (an import, a fetch) run beside them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reelmesh_protocol::api::status::Event;
use reelmesh_protocol::api::status::NodeStatusReport;
use reelmesh_protocol::api::{ApiError, Reply, Request};
use reelmesh_protocol::placement::Offer;
use reelmesh_ui::link::{FromNode, NodeEnd, ProjectView, ToNode};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::node::NodeHandle;

/// The node the editor talks to.
#[derive(Clone)]
pub enum Backend {
    /// A node in this process.
    Node(NodeHandle),
    /// The node already running on this data dir, through its control socket.
    Socket(std::path::PathBuf),
}

impl Backend {
    /// Answer `request` through the node's API.
    pub async fn call(&self, request: Request) -> Result<Reply, ApiError> {
        match self {
            Backend::Node(handle) => crate::api::call(handle, request).await,
            Backend::Socket(data_dir) => {
                let data_dir = data_dir.clone();
                let answer = tokio::task::spawn_blocking(move || {
                    crate::control::call(&data_dir, &request, |_| {})
                })
                .await;
                match answer {
                    Ok(Ok(Some(result))) => result,
                    Ok(Ok(None)) | Ok(Err(_)) | Err(_) => Err(ApiError::Stopped),
                }
            }
        }
    }

    /// The node's status feed.
    fn feed(&self) -> mpsc::Receiver<Event> {
        match self {
            Backend::Node(handle) => handle.feed(4096),
            Backend::Socket(data_dir) => {
                let (tx, rx) = mpsc::channel(4096);
                let data_dir = data_dir.clone();
                let spawned = std::thread::Builder::new()
                    .name("reelmesh-feed".into())
                    .spawn(move || {
                        // The feed ends (and the channel closes) when the node stops.
                        let _ = crate::control::follow(&data_dir, |event| {
                            tx.blocking_send(event).is_ok()
                        });
                    });
                if let Err(e) = spawned {
                    tracing::warn!("following the node's feed: {e}");
                }
                rx
            }
        }
    }
}

/// Least time between two reads of the open project.
pub const PROJECT_EVERY: Duration = Duration::from_millis(30);
/// Least time between two reads of its jobs.
pub const JOBS_EVERY: Duration = Duration::from_millis(200);
/// How often the status (peers, heartbeats) is read while nothing else says so.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Serve the editor's link with `backend` until the editor closes its end or the
/// node stops.
pub async fn serve(handle: Backend, mut end: NodeEnd) {
    let mut feed = handle.feed();
    let (calls_tx, calls_rx) = mpsc::channel::<(u64, Request)>(reelmesh_ui::link::CAPACITY);
    let calls = tokio::spawn(answer_in_order(
        handle.clone(),
        calls_rx,
        end.to_editor.clone(),
        end.waker.clone(),
    ));
    let mut state = Follow {
        project: None,
        project_id: None,
        project_due: None,
        jobs_due: None,
        status_due: Some(Instant::now()),
        offers: BTreeMap::new(),
        offers_due: None,
        status_sent: None,
        last_view: None,
    };
    loop {
        let wake = state
            .next_due()
            .unwrap_or_else(|| Instant::now() + STATUS_EVERY);
        tokio::select! {
            request = end.requests.recv() => match request {
                None => break,
                Some(ToNode::Call { id, request }) => {
                    if matches!(request, Request::Import { .. } | Request::Fetch { .. } | Request::WatchJobs { .. }) {
                        let (handle, to_editor, waker) = (handle.clone(), end.to_editor.clone(), end.waker.clone());
                        tokio::spawn(async move {
                            let result = handle.call(request).await;
                            let _ = to_editor.send(FromNode::Answer { id, result }).await;
                            waker.wake();
                        });
                    } else if calls_tx.send((id, request)).await.is_err() {
                        break;
                    }
                }
                Some(ToNode::Open { project }) => {
                    state.project = project;
                    state.project_id = None;
                    state.project_due = Some(Instant::now());
                    state.jobs_due = Some(Instant::now());
                }
            },
            event = feed.recv() => match event {
                None => {
                    let _ = end.send(FromNode::Stopped("it was shut down".into())).await;
                    break;
                }
                Some(event) => state.on_event(event, &end).await,
            },
            () = tokio::time::sleep_until(wake) => {
                if !state.refresh(&handle, &end).await {
                    break;
                }
            }
        }
    }
    calls.abort();
}

/// Answer calls one after the other, in the order the editor sent them.
async fn answer_in_order(
    handle: Backend,
    mut calls: mpsc::Receiver<(u64, Request)>,
    to_editor: mpsc::Sender<FromNode>,
    waker: reelmesh_ui::link::Waker,
) {
    while let Some((id, request)) = calls.recv().await {
        let result = handle.call(request).await;
        if to_editor
            .send(FromNode::Answer { id, result })
            .await
            .is_err()
        {
            break;
        }
        waker.wake();
    }
}

/// What the editor follows, and when each part is due to be read again.
struct Follow {
    /// The project as the editor named it.
    project: Option<String>,
    /// Its id, once read.
    project_id: Option<String>,
    project_due: Option<Instant>,
    jobs_due: Option<Instant>,
    status_due: Option<Instant>,
    offers: BTreeMap<String, Offer>,
    offers_due: Option<Instant>,
    /// The status last sent to the window.
    status_sent: Option<NodeStatusReport>,
    /// The project view last sent (the next one reuses its unchanged rows).
    last_view: Option<Arc<ProjectView>>,
}

impl Follow {
    fn next_due(&self) -> Option<Instant> {
        [
            self.project_due,
            self.jobs_due,
            self.status_due,
            self.offers_due,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn is_open(&self, project_id: &str) -> bool {
        self.project_id.as_deref() == Some(project_id)
            || (self.project_id.is_none() && self.project.is_none())
    }

    /// Mark `due` for at least `every` from now, keeping an earlier mark.
    fn due(slot: &mut Option<Instant>, every: Duration) {
        let at = Instant::now() + every;
        *slot = Some(slot.map_or(at, |due| due.min(at)));
    }

    async fn on_event(&mut self, event: Event, end: &NodeEnd) {
        match event {
            Event::DocChanged { project_id, .. } if self.is_open(&project_id) => {
                // An edit of this editor shows at once; a burst is read once.
                Self::due(&mut self.project_due, Duration::ZERO);
                Self::due(&mut self.jobs_due, JOBS_EVERY);
            }
            Event::DocChanged { .. } | Event::Listening { .. } => {}
            Event::Job(update) => {
                let open = self.is_open(&update.project_id);
                end.send(FromNode::Progress(update)).await;
                if open {
                    Self::due(&mut self.jobs_due, JOBS_EVERY);
                }
            }
            Event::Offer(offer) => {
                self.offers.insert(offer.node_id.clone(), offer);
                Self::due(&mut self.offers_due, JOBS_EVERY);
            }
            Event::PeerConnected { .. }
            | Event::PeerDisconnected { .. }
            | Event::Presence { .. } => {
                Self::due(&mut self.status_due, Duration::from_millis(100));
            }
            Event::PeerRejected { peer_id, reason } => {
                end.send(FromNode::Notice(format!(
                    "peer {peer_id} was dropped: {reason}"
                )))
                .await;
            }
            Event::ConnectionFailed(failing) => {
                Self::due(&mut self.status_due, Duration::from_millis(100));
                if failing.failures == 1 {
                    end.send(FromNode::Notice(format!(
                        "cannot connect with {}: {}",
                        failing.address, failing.reason
                    )))
                    .await;
                }
            }
            Event::Lagged { .. } => {
                for slot in [
                    &mut self.project_due,
                    &mut self.jobs_due,
                    &mut self.status_due,
                ] {
                    Self::due(slot, Duration::ZERO);
                }
            }
            _ => {}
        }
    }

    /// Read what is due; false when the editor is gone.
    async fn refresh(&mut self, handle: &Backend, end: &NodeEnd) -> bool {
        let now = Instant::now();
        let is_due = |slot: Option<Instant>| slot.is_some_and(|due| due <= now);
        if is_due(self.project_due) {
            self.project_due = None;
            let project = self.project_id.clone().or_else(|| self.project.clone());
            let message = match handle.call(Request::Project { project }).await {
                Ok(Reply::Project(read)) => {
                    self.project_id = Some(read.project_id.clone());
                    let previous = self.last_view.clone();
                    match tokio::task::spawn_blocking(move || {
                        ProjectView::after(read, previous.as_deref())
                    })
                    .await
                    {
                        Ok(view) => {
                            let view = Arc::new(view);
                            self.last_view = Some(Arc::clone(&view));
                            FromNode::Project(view)
                        }
                        Err(e) => FromNode::NoProject(format!("reading the project failed: {e}")),
                    }
                }
                Ok(_) => return true,
                Err(ApiError::Stopped) => FromNode::Stopped("it was shut down".into()),
                Err(error) => FromNode::NoProject(no_project_text(&error)),
            };
            if !end.send(message).await {
                return false;
            }
        }
        if is_due(self.jobs_due) {
            self.jobs_due = None;
            let project = self.project_id.clone().or_else(|| self.project.clone());
            if let Ok(Reply::Jobs(jobs)) = handle.call(Request::Jobs { project }).await {
                // Offers heard before the editor opened (gossip only brings news).
                for offer in &jobs.offers {
                    if !self.offers.contains_key(&offer.node_id) {
                        self.offers.insert(offer.node_id.clone(), offer.clone());
                        Self::due(&mut self.offers_due, Duration::ZERO);
                    }
                }
                if !end.send(FromNode::Jobs(Arc::new(jobs))).await {
                    return false;
                }
            }
        }
        if is_due(self.offers_due) {
            self.offers_due = None;
            let offers: Vec<Offer> = self.offers.values().cloned().collect();
            if !end.send(FromNode::Offers(Arc::new(offers))).await {
                return false;
            }
        }
        if is_due(self.status_due) || self.status_due.is_none() {
            self.status_due = Some(now + STATUS_EVERY);
            if let Ok(Reply::Status(status)) = handle.call(Request::Status).await {
                // Offers of peers that left are forgotten with them.
                let present: std::collections::HashSet<&str> =
                    status.peers.iter().map(|p| p.node_id.as_str()).collect();
                self.offers.retain(|id, _| present.contains(id.as_str()));
                // Sent only when something in it changed (the time since each
                // heartbeat always does: the window counts that on its own), so an
                // idle window is not woken every few seconds.
                let settled = |s: &NodeStatusReport| {
                    let mut s = s.clone();
                    for peer in &mut s.peers {
                        peer.last_heartbeat_secs = peer.last_heartbeat_secs.map(|_| 0.0);
                    }
                    s
                };
                let changed = self
                    .status_sent
                    .as_ref()
                    .is_none_or(|sent| settled(sent) != settled(&status));
                if changed {
                    self.status_sent = Some(status.clone());
                    if !end.send(FromNode::Status(Arc::new(status))).await {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// What the editor says when there is no project to show.
fn no_project_text(error: &ApiError) -> String {
    match error {
        ApiError::NoProject { message } => format!(
            "{message}\n\nCreate one with `reelmesh init NAME`, import a shot list (File → \
             Import), or join a mesh that has one (`reelmesh join TICKET`)."
        ),
        other => other.to_string(),
    }
}
