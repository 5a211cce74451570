//! Syncing the document with peers: the per-peer sync state, batches of changes,
//! and the [`ProjectDoc`] methods that make and take sync messages and changes.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Automerge sync state for one peer and one project. Keep one per (peer, project),
/// feed it messages in order, and persist only [`SyncState::encode`] between
/// connections.
#[derive(Debug, Default)]
pub struct SyncState(automerge::sync::State);

impl SyncState {
    /// A fresh state (nothing known about the peer).
    #[must_use]
    pub fn new() -> SyncState {
        SyncState::default()
    }

    /// What is worth keeping across connections (the shared heads).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    /// Most change hashes remembered as sent outside the exchange; past this the
    /// record is dropped (the cost: the next exchange may send some again).
    pub const MAX_MARKED_SENT: usize = 4096;

    /// These changes went to the peer by push (this node's, or another peer's
    /// that pushes to it too): the exchange need not send them again. Automerge
    /// forgets them once the peer's heads include them; a peer that asks for one
    /// by name gets it all the same (`receive_sync_message`).
    pub fn mark_sent(&mut self, changes: &Changes) {
        if self.0.sent_hashes.len() + changes.hashes.len() > Self::MAX_MARKED_SENT {
            self.0.sent_hashes.clear();
        }
        self.0.sent_hashes.extend(changes.hashes.iter().copied());
    }

    /// The peer pushed these changes (`applied`: and they are in this replica,
    /// not waiting on others). The exchange's idea of the peer follows: it has
    /// them, and if they went in, both sides do. Without this a session that
    /// began when one side was empty goes on believing it empty, and the next
    /// exchange sends it the whole document.
    pub fn pushed_by_peer(&mut self, changes: &Changes, applied: bool) {
        if changes.hashes.is_empty() {
            return;
        }
        let heads = sorted(&changes.hashes);
        if applied {
            self.0.shared_heads.clone_from(&heads);
        }
        self.0.their_heads = Some(heads);
    }

    /// The peer accepted these pushed changes: it holds them (it may still wait on
    /// what they depend on, so they are not counted as shared).
    pub fn pushed_to_peer(&mut self, changes: &Changes) {
        if !changes.hashes.is_empty() {
            self.0.their_heads = Some(sorted(&changes.hashes));
        }
    }

    /// The peer has these changes (its heartbeat announced them, or changes it
    /// pushed depend on them): the next message asks for those this replica lacks.
    /// Without this, a state that believes both sides in step has nothing to say.
    pub fn peer_has(&mut self, heads: &[String]) {
        let known = self.0.their_heads.get_or_insert_with(Vec::new);
        known.extend(
            heads
                .iter()
                .filter_map(|h| h.parse::<automerge::ChangeHash>().ok()),
        );
        // Automerge encodes heads sorted and panics otherwise.
        known.sort_unstable();
        known.dedup();
    }

    /// Restore from [`SyncState::encode`]; a damaged state falls back to a fresh one.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> SyncState {
        automerge::sync::State::decode(bytes).map_or_else(|_| SyncState::new(), SyncState)
    }
}

/// Heads as Automerge keeps them: sorted, each once.
fn sorted(hashes: &[automerge::ChangeHash]) -> Vec<automerge::ChangeHash> {
    let mut heads = hashes.to_vec();
    heads.sort_unstable();
    heads.dedup();
    heads
}

/// What applying a peer's sync message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncApplied {
    /// The document's heads changed (new changes arrived).
    pub changed: bool,
    /// Shots that were renumbered to keep codes unique after the merge.
    pub renumbered: usize,
    /// The change that renumbering made here (empty if none), to be pushed to
    /// peers like any local edit.
    pub renumbering: Changes,
    /// The changes a push carried (hashes only), for [`SyncState::pushed_by_peer`].
    pub pushed: Changes,
}

/// Changes to push to peers ([`ProjectDoc::changes_since`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Each change as a chunk [`ProjectDoc::apply_changes`] reads.
    pub chunks: Vec<Vec<u8>>,
    hashes: Vec<automerge::ChangeHash>,
}

impl Changes {
    /// No changes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Bytes on the wire, about.
    #[must_use]
    pub fn size(&self) -> usize {
        self.chunks.iter().map(|c| c.len() + 4).sum()
    }

    /// The same changes without their bytes (what a sync state needs to know).
    #[must_use]
    pub fn without_bytes(&self) -> Changes {
        Changes {
            chunks: Vec::new(),
            hashes: self.hashes.clone(),
        }
    }

    /// Add `other`'s changes after these.
    pub fn extend(&mut self, other: &Changes) {
        self.chunks.extend(other.chunks.iter().cloned());
        self.hashes.extend(other.hashes.iter().copied());
    }
}

impl From<Vec<automerge::Change>> for Changes {
    fn from(changes: Vec<automerge::Change>) -> Changes {
        Changes {
            chunks: changes.iter().map(|c| c.raw_bytes().to_vec()).collect(),
            hashes: changes.iter().map(automerge::Change::hash).collect(),
        }
    }
}

impl ProjectDoc {
    /// Whether every one of these (hex) heads is in the document.
    pub fn has_heads(&mut self, heads: &[String]) -> bool {
        heads.iter().all(|head| {
            head.parse::<automerge::ChangeHash>()
                .is_ok_and(|hash| self.doc.get_change_meta_by_hash(&hash).is_some())
        })
    }

    /// The next sync message for this peer, if there is anything to say.
    ///
    /// The state holds what the peer claimed (its heads and needs), which is
    /// untrusted: if Automerge panics on it, the error asks the caller to start a
    /// fresh state with that peer.
    pub fn generate_sync_message(
        &mut self,
        state: &mut SyncState,
    ) -> Result<Option<Vec<u8>>, DocError> {
        self.next_sync_message(state, false)
    }

    /// The next sync message only if it moves the exchange on: it carries changes,
    /// asks for some, or starts over. A message that would only tell the peer our new
    /// heads is not sent and leaves the state as it was.
    ///
    /// Replies and follow-ups use this. With changes pushed as they are made, the
    /// heads move all the time under load, and Automerge's plain exchange answers
    /// every new heads with more heads: two peers would trade messages for as long
    /// as the load lasts, each with a filter of every change since they last agreed.
    pub fn generate_sync_reply(
        &mut self,
        state: &mut SyncState,
    ) -> Result<Option<Vec<u8>>, DocError> {
        self.next_sync_message(state, true)
    }

    pub(super) fn next_sync_message(
        &mut self,
        state: &mut SyncState,
        only_if_useful: bool,
    ) -> Result<Option<Vec<u8>>, DocError> {
        use automerge::sync::SyncDoc;
        use std::panic::{AssertUnwindSafe, catch_unwind};
        catch_unwind(AssertUnwindSafe(|| {
            let kept = only_if_useful.then(|| {
                (
                    state.0.last_sent_heads.clone(),
                    state.0.have_responded,
                    state.0.in_flight,
                )
            });
            if !only_if_useful {
                // Automerge holds back a message while it thinks the last one
                // awaits a reply, and ours often gets none (a reply that only
                // tells heads is not sent): without this, a node whose heads stay
                // put could never ask again. The transport keeps one message in
                // flight per peer already.
                state.0.in_flight = false;
            }
            let message = self.doc.sync().generate_sync_message(&mut state.0)?;
            let useful = !message.changes.is_empty()
                || !message.need.is_empty()
                || message
                    .have
                    .first()
                    .is_none_or(|have| have.last_sync.is_empty());
            if let Some((last_sent_heads, have_responded, in_flight)) = kept
                && !useful
            {
                // Only heads and a filter: nothing was added to `sent_hashes`.
                state.0.last_sent_heads = last_sent_heads;
                state.0.have_responded = have_responded;
                state.0.in_flight = in_flight;
                return None;
            }
            Some(message.encode())
        }))
        .map_err(|_| DocError::Sync("automerge panicked answering the peer's state".into()))
    }

    /// Apply a peer's sync message. The bytes are untrusted: a message Automerge
    /// cannot decode or apply, one that panics inside Automerge, one that breaks the
    /// schema, or one that changes the project id is refused with
    /// [`DocError::Sync`]; after an error the in-memory document must be dropped and
    /// reloaded from disk. On success shot codes are made unique again.
    pub fn receive_sync_message(
        &mut self,
        state: &mut SyncState,
        bytes: &[u8],
        expected_project_id: &str,
    ) -> Result<SyncApplied, DocError> {
        use automerge::sync::SyncDoc;
        use std::panic::{AssertUnwindSafe, catch_unwind};
        let before = self.doc.get_heads();
        let was_ready = self.is_ready();
        let applied = catch_unwind(AssertUnwindSafe(|| {
            let message = automerge::sync::Message::decode(bytes)
                .map_err(|e| DocError::Sync(format!("undecodable: {e}")))?;
            self.doc
                .sync()
                .receive_sync_message(&mut state.0, message)
                .map_err(|e| DocError::Sync(format!("not applicable: {e}")))?;
            // What the peer asks for by name it lacks, whatever this side believed
            // sent (`mark_sent`: a change another peer was to push it): send it.
            if let Some(need) = &state.0.their_need {
                for hash in need {
                    state.0.sent_hashes.remove(hash);
                }
            }
            Ok::<(), DocError>(())
        }));
        match applied {
            Ok(result) => result?,
            Err(_) => return Err(DocError::Sync("automerge panicked applying it".into())),
        }
        self.merged(&before, was_ready, expected_project_id)
    }

    /// Apply changes a peer pushed ([`ProjectDoc::changes_since`] on its side). The
    /// bytes are untrusted and checked as [`ProjectDoc::receive_sync_message`] checks
    /// a sync message, with the same duty on error: reload from disk. Changes whose
    /// dependencies have not arrived wait inside Automerge (see
    /// [`ProjectDoc::missing_changes`]) and count once they apply.
    pub fn apply_changes(
        &mut self,
        chunks: &[Vec<u8>],
        expected_project_id: &str,
    ) -> Result<SyncApplied, DocError> {
        use std::panic::{AssertUnwindSafe, catch_unwind};
        let before = self.doc.get_heads();
        let was_ready = self.is_ready();
        let applied = catch_unwind(AssertUnwindSafe(|| {
            let changes = chunks
                .iter()
                .enumerate()
                .map(|(i, chunk)| {
                    automerge::Change::from_bytes(chunk.clone())
                        .map_err(|e| DocError::Sync(format!("change {}: {e}", i + 1)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let hashes: Vec<automerge::ChangeHash> =
                changes.iter().map(automerge::Change::hash).collect();
            self.doc
                .apply_changes(changes)
                .map_err(|e| DocError::Sync(format!("not applicable: {e}")))?;
            Ok::<_, DocError>(hashes)
        }));
        let hashes = match applied {
            Ok(result) => result?,
            Err(_) => return Err(DocError::Sync("automerge panicked applying them".into())),
        };
        let mut applied = self.merged(&before, was_ready, expected_project_id)?;
        applied.pushed = Changes {
            chunks: Vec::new(),
            hashes,
        };
        Ok(applied)
    }

    /// The changes made since `heads` (this replica's heads before an edit), built
    /// once to be pushed to every peer.
    pub fn changes_since(&mut self, heads: &[String]) -> Changes {
        let heads: Vec<automerge::ChangeHash> =
            heads.iter().filter_map(|head| head.parse().ok()).collect();
        Changes::from(self.doc.get_changes(&heads))
    }

    /// The changes that changes received wait on and this replica has not got (a
    /// push that overtook another, or one whose earlier part was lost), as hex.
    pub fn missing_changes(&mut self) -> Vec<String> {
        self.doc
            .get_missing_deps(&[])
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// After changes from a peer went in: check the schema and the project id, bring
    /// the index up to date and make shot codes unique again.
    pub(super) fn merged(
        &mut self,
        before: &[automerge::ChangeHash],
        was_ready: bool,
        expected_project_id: &str,
    ) -> Result<SyncApplied, DocError> {
        let changed = self.doc.get_heads() != before;
        if !changed {
            return Ok(SyncApplied {
                changed,
                renumbered: 0,
                renumbering: Changes::default(),
                pushed: Changes::default(),
            });
        }
        if was_ready || self.doc.get(ROOT, "schema")?.is_some() {
            self.check_schema()
                .map_err(|e| DocError::Sync(format!("breaks the project: {e}")))?;
        }
        if let Some(found) = self.project_id()
            && found != expected_project_id
        {
            return Err(DocError::Sync(format!(
                "carries project '{found}', not '{expected_project_id}'"
            )));
        }
        let merged_heads = self.doc.get_heads();
        let renumbered = if self.is_ready() && self.absorb()? {
            self.normalize_codes()?.len()
        } else {
            0
        };
        let renumbering = if renumbered > 0 {
            Changes::from(self.doc.get_changes(&merged_heads))
        } else {
            Changes::default()
        };
        Ok(SyncApplied {
            changed,
            renumbered,
            renumbering,
            pushed: Changes::default(),
        })
    }
}
