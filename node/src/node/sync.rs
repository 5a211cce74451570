//! Sync sessions: one Automerge sync state per (peer, project), at most one sync
//! request in flight per session (Automerge's protocol assumes an in-order stream;
//! each direction is a chain of request → acknowledgement, so it gets one).
//! Between connections only the encoded state (the shared heads) is kept.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::PeerId;
use libp2p::request_response::OutboundRequestId;
use reelmesh_protocol::document::SyncState;

/// One peer, one project.
#[derive(Debug, Default)]
pub(super) struct Session {
    pub state: SyncState,
    pub in_flight: Option<OutboundRequestId>,
    /// The peer said it does not take this project; ask again after this.
    pub refused_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub(super) struct Sessions {
    live: HashMap<PeerId, HashMap<String, Session>>,
    saved: HashMap<(PeerId, String), Vec<u8>>,
    requests: HashMap<OutboundRequestId, (PeerId, String)>,
}

impl Sessions {
    pub fn connect(&mut self, peer: PeerId) {
        self.live.entry(peer).or_default();
    }

    /// Keep the shared heads of every session with this peer and drop the rest.
    pub fn disconnect(&mut self, peer: &PeerId) {
        if let Some(sessions) = self.live.remove(peer) {
            for (project_id, session) in sessions {
                self.saved
                    .insert((*peer, project_id), session.state.encode());
            }
        }
        self.requests.retain(|_, (p, _)| p != peer);
    }

    /// Forget everything about a peer (it misbehaved): the next session starts fresh.
    pub fn forget_peer(&mut self, peer: &PeerId) {
        self.live.remove(peer);
        self.saved.retain(|(p, _), _| p != peer);
        self.requests.retain(|_, (p, _)| p != peer);
    }

    pub fn peers(&self) -> Vec<PeerId> {
        self.live.keys().copied().collect()
    }

    /// The session, made from the saved state if there is one. `None` if the peer
    /// is not connected.
    pub fn get(&mut self, peer: &PeerId, project_id: &str) -> Option<&mut Session> {
        let sessions = self.live.get_mut(peer)?;
        if !sessions.contains_key(project_id) {
            let state = self
                .saved
                .remove(&(*peer, project_id.to_owned()))
                .map_or_else(SyncState::new, |bytes| SyncState::decode(&bytes));
            sessions.insert(
                project_id.to_owned(),
                Session {
                    state,
                    ..Session::default()
                },
            );
        }
        sessions.get_mut(project_id)
    }

    pub fn sent(&mut self, request: OutboundRequestId, peer: PeerId, project_id: &str) {
        self.requests.insert(request, (peer, project_id.to_owned()));
        if let Some(session) = self.get(&peer, project_id) {
            session.in_flight = Some(request);
        }
    }

    /// The acknowledgement (or failure) of a request arrived: the session may send again.
    pub fn answered(&mut self, request: OutboundRequestId) -> Option<(PeerId, String)> {
        let (peer, project_id) = self.requests.remove(&request)?;
        let session = self.get(&peer, &project_id)?;
        if session.in_flight == Some(request) {
            session.in_flight = None;
        }
        Some((peer, project_id))
    }

    /// A request failed (timeout, closed stream): it is unknown what the peer got,
    /// so restart the exchange from the shared heads.
    pub fn failed(&mut self, request: OutboundRequestId) -> Option<(PeerId, String)> {
        let (peer, project_id) = self.answered(request)?;
        if let Some(session) = self.get(&peer, &project_id) {
            session.state = SyncState::decode(&session.state.encode());
        }
        Some((peer, project_id))
    }

    /// Start this session over (after an error applying or generating a message).
    pub fn reset(&mut self, peer: &PeerId, project_id: &str) {
        if let Some(sessions) = self.live.get_mut(peer) {
            sessions.remove(project_id);
        }
        self.saved.remove(&(*peer, project_id.to_owned()));
    }
}
