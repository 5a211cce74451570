//! Sync sessions: one Automerge sync state per (peer, project), at most one sync
//! request in flight per session (Automerge's protocol assumes an in-order stream;
//! each direction is a chain of request → acknowledgement, so it gets one).
//! Between connections only the encoded state (the shared heads) is kept.
//!
//! Local changes do not wait for that exchange: their author pushes them to every
//! peer as it makes them ([`Outbox`]), built once for all. Each session has at most
//! one push in flight, so pushes arrive in order, and changes made meanwhile go
//! together in the next one.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use libp2p::PeerId;
use libp2p::request_response::OutboundRequestId;
use reelmesh_protocol::document::{Changes, SyncState};

/// One peer, one project.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub state: SyncState,
    pub in_flight: Option<OutboundRequestId>,
    /// The peer said it does not take this project; ask again after this.
    pub refused_until: Option<Instant>,
    /// The next outbox entry to push to this peer (`None`: nothing pushed yet;
    /// what came before is the sync exchange's to send).
    pub push_next: Option<u64>,
    pub push_in_flight: Option<OutboundRequestId>,
    /// Replies this side may still send in the exchange under way (see
    /// [`Session::may_reply`]), and when the peer's last sync message came.
    replies_left: u32,
    last_received: Option<Instant>,
    /// An exchange was asked for (or an answer was due) while a message was in
    /// flight: it starts (is sent) when that message is answered.
    pub offer_pending: bool,
    pub answer_pending: bool,
}

/// How many replies one side sends in one sync exchange. Under load the heads move
/// between any two messages and each side always has something the other's filter
/// does not show yet (it is on its way by push), so Automerge's exchange would go
/// on for as long as the load lasts. What it leaves behind is found by the next
/// heartbeat's heads.
pub(crate) const EXCHANGE_REPLIES: u32 = 4;
/// A sync message after this long without one opens a new exchange (the peer
/// started it); one that comes sooner belongs to the exchange under way.
pub(crate) const EXCHANGE_QUIET: std::time::Duration = std::time::Duration::from_secs(1);

impl Session {
    /// This side opens an exchange.
    pub fn start_exchange(&mut self) {
        self.replies_left = EXCHANGE_REPLIES;
    }

    /// A sync message came: it opens an exchange if the session was quiet.
    pub fn received(&mut self) {
        let now = Instant::now();
        if self
            .last_received
            .is_none_or(|at| now.duration_since(at) > EXCHANGE_QUIET)
        {
            self.start_exchange();
        }
        self.last_received = Some(now);
    }

    /// Whether this side may send one more reply in the exchange (and count it).
    pub fn may_reply(&mut self) -> bool {
        if self.replies_left == 0 {
            return false;
        }
        self.replies_left -= 1;
        true
    }
}

/// The local changes of one project, numbered, kept until every peer has been
/// pushed them. A peer that falls more than [`Outbox::MAX_ENTRIES`] behind gets the
/// rest by sync instead.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    first: u64,
    entries: VecDeque<Changes>,
}

impl Outbox {
    pub const MAX_ENTRIES: usize = 512;

    /// Add one edit's changes; returns its number.
    pub fn add(&mut self, changes: Changes) -> u64 {
        let seq = self.end();
        self.entries.push_back(changes);
        if self.entries.len() > Self::MAX_ENTRIES {
            self.entries.pop_front();
            self.first += 1;
        }
        seq
    }

    /// The number the next entry will get.
    pub fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// The entries from `next` on, together, at most `max_bytes` of them (but
    /// always the first entry, whatever its size), with the number after the last
    /// one taken. `None` if entry `next` was already dropped.
    pub fn from(&self, next: u64, max_bytes: usize) -> Option<(Changes, u64)> {
        let skip = usize::try_from(next.checked_sub(self.first)?).ok()?;
        let mut out = Changes::default();
        let mut upto = next;
        for entry in self.entries.iter().skip(skip) {
            if upto > next && out.size() + entry.size() > max_bytes {
                break;
            }
            out.extend(entry);
            upto += 1;
        }
        Some((out, upto))
    }

    /// Drop the entries every peer has been pushed (`lowest`: the smallest next
    /// entry of any session).
    pub fn trim(&mut self, lowest: u64) {
        while self.first < lowest && !self.entries.is_empty() {
            self.entries.pop_front();
            self.first += 1;
        }
    }
}

/// A push in flight: to whom, the project, the outbox entry after what it carries,
/// and what it carries (hashes only).
#[derive(Debug)]
pub(crate) struct Pushed {
    pub peer: PeerId,
    pub project_id: String,
    pub upto: u64,
    pub changes: Changes,
}

#[derive(Debug, Default)]
pub(crate) struct Sessions {
    live: HashMap<PeerId, HashMap<String, Session>>,
    saved: HashMap<(PeerId, String), Vec<u8>>,
    requests: HashMap<OutboundRequestId, (PeerId, String)>,
    /// Pushes in flight, with the outbox entry that follows what each carries.
    pushes: HashMap<OutboundRequestId, Pushed>,
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
        self.pushes.retain(|_, pushed| pushed.peer != *peer);
    }

    /// Forget everything about a peer (it misbehaved): the next session starts fresh.
    pub fn forget_peer(&mut self, peer: &PeerId) {
        self.live.remove(peer);
        self.saved.retain(|(p, _), _| p != peer);
        self.requests.retain(|_, (p, _)| p != peer);
        self.pushes.retain(|_, pushed| pushed.peer != *peer);
    }

    /// Whether any push still waits for its answer.
    pub fn pushes_in_flight(&self) -> bool {
        !self.pushes.is_empty()
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

    pub fn pushed(&mut self, request: OutboundRequestId, pushed: Pushed) {
        if let Some(session) = self.get(&pushed.peer, &pushed.project_id) {
            session.push_in_flight = Some(request);
        }
        self.pushes.insert(request, pushed);
    }

    /// Whether `request` was a push, and if so: the session may push again.
    pub fn push_answered(&mut self, request: OutboundRequestId) -> Option<Pushed> {
        let pushed = self.pushes.remove(&request)?;
        if let Some(session) = self.get(&pushed.peer, &pushed.project_id)
            && session.push_in_flight == Some(request)
        {
            session.push_in_flight = None;
        }
        Some(pushed)
    }

    /// The smallest next entry any live session of the project will push, if any
    /// session has been pushed anything.
    pub fn lowest_push(&self, project_id: &str) -> Option<u64> {
        self.live
            .values()
            .filter_map(|sessions| sessions.get(project_id)?.push_next)
            .min()
    }

    /// A request failed (timeout, closed stream): it is unknown what the peer got,
    /// so restart the exchange from the shared heads. A failed push is left to that
    /// exchange too: pushing starts again with the next change.
    pub fn failed(&mut self, request: OutboundRequestId) -> Option<(PeerId, String)> {
        if let Some(Pushed {
            peer, project_id, ..
        }) = self.push_answered(request)
        {
            let session = self.get(&peer, &project_id)?;
            session.push_next = None;
            session.state = SyncState::decode(&session.state.encode());
            return Some((peer, project_id));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use reelmesh_protocol::document::{Position, ProjectDoc};
    use reelmesh_protocol::model::{Shot, ShotCode};

    /// One real change per edit, of an Automerge project.
    fn edits(n: u64) -> Vec<Changes> {
        let mut doc = ProjectDoc::create("outbox", "p1").unwrap();
        (1..=n)
            .map(|i| {
                let before = doc.heads();
                doc.add_shots(&[Shot::new(ShotCode(i), 24)], &Position::End)
                    .unwrap();
                doc.changes_since(&before)
            })
            .collect()
    }

    #[test]
    fn the_outbox_hands_out_entries_in_order_within_a_size_and_forgets_what_all_have() {
        let edits = edits(4);
        let mut outbox = Outbox::default();
        for (i, edit) in edits.iter().enumerate() {
            assert_eq!(outbox.add(edit.clone()), i as u64);
        }
        assert_eq!(outbox.end(), 4);
        let (all, upto) = outbox.from(0, usize::MAX).unwrap();
        assert_eq!(upto, 4);
        let expected: Vec<Vec<u8>> = edits.iter().flat_map(|e| e.chunks.clone()).collect();
        assert_eq!(all.chunks, expected);
        // A size limit stops between entries, but one entry always goes.
        let (one, upto) = outbox.from(1, 1).unwrap();
        assert_eq!((one.chunks, upto), (edits[1].chunks.clone(), 2));
        let two = edits[2].size() + edits[3].size();
        let (rest, upto) = outbox.from(2, two).unwrap();
        assert_eq!((rest.chunks.len(), upto), (2, 4));
        // Nothing new for a peer that has everything.
        assert_eq!(outbox.from(4, usize::MAX).unwrap().1, 4);
        // Trimmed entries are gone: a peer that still wanted them falls back to sync.
        outbox.trim(3);
        assert!(outbox.from(2, usize::MAX).is_none());
        assert_eq!(
            outbox.from(3, usize::MAX).unwrap().0.chunks,
            edits[3].chunks
        );
    }

    #[test]
    fn an_outbox_keeps_a_bounded_number_of_entries() {
        let edit = edits(1).remove(0);
        let mut outbox = Outbox::default();
        for _ in 0..Outbox::MAX_ENTRIES + 10 {
            outbox.add(edit.clone());
        }
        assert_eq!(outbox.end(), Outbox::MAX_ENTRIES as u64 + 10);
        assert!(outbox.from(9, usize::MAX).is_none());
        assert!(outbox.from(10, 0).is_some());
    }

    #[test]
    fn an_exchange_has_a_budget_of_replies_and_a_quiet_session_opens_a_new_one() {
        let mut session = Session::default();
        // Nothing opened: no replies.
        assert!(!session.may_reply());
        session.start_exchange();
        for _ in 0..EXCHANGE_REPLIES {
            assert!(session.may_reply());
        }
        assert!(!session.may_reply());
        // The peer's first message after a quiet spell opens an exchange; the
        // messages that follow it at once belong to it.
        session.received();
        assert!(session.may_reply());
        session.last_received = Some(Instant::now());
        for _ in 1..EXCHANGE_REPLIES {
            session.received();
            assert!(session.may_reply());
        }
        session.received();
        assert!(
            !session.may_reply(),
            "a ping-pong does not renew its budget"
        );
        session.last_received = Instant::now().checked_sub(EXCHANGE_QUIET * 2);
        session.received();
        assert!(session.may_reply());
    }
}
