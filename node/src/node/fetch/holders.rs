//! The bookkeeping of one fetch: which holders are still asked and how loaded
//! each is ([`Holders`]), and which pieces are done or still wanted ([`Pieces`]).
//! Plain state, no I/O but the `.have` record, so the rules are tested alone.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use libp2p::PeerId;
use tracing::warn;

use super::{MAX_BUSY, MAX_HOLDER_FAILURES, PER_HOLDER};
use crate::store::direct::PieceFile;

/// The peers a fetch asks for pieces, and how each is doing.
#[derive(Debug)]
pub(super) struct Holders {
    peers: Vec<PeerId>,
    /// Requests out to each peer.
    load: HashMap<PeerId, usize>,
    /// Failed requests in a row.
    failures: HashMap<PeerId, u32>,
    /// Busy answers since its last good piece.
    busy: HashMap<PeerId, u32>,
    /// Where the round robin goes on.
    next: usize,
}

impl Holders {
    pub(super) fn new(peers: Vec<PeerId>) -> Self {
        Self {
            peers,
            load: HashMap::new(),
            failures: HashMap::new(),
            busy: HashMap::new(),
            next: 0,
        }
    }

    /// No holder is left to ask.
    pub(super) fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The next holder with room for a request (fewer than [`PER_HOLDER`] out),
    /// round robin; the request is counted against it.
    pub(super) fn take(&mut self) -> Option<PeerId> {
        let count = self.peers.len();
        let at = (0..count)
            .map(|k| (self.next + k) % count)
            .find(|at| self.load.get(&self.peers[*at]).copied().unwrap_or(0) < PER_HOLDER)?;
        let peer = self.peers[at];
        self.next = at + 1;
        *self.load.entry(peer).or_default() += 1;
        Some(peer)
    }

    /// A request to `peer` came back, whatever the answer.
    pub(super) fn answered(&mut self, peer: PeerId) {
        if let Some(n) = self.load.get_mut(&peer) {
            *n = n.saturating_sub(1);
        }
    }

    /// `peer` sent a good piece: its failure and busy counts start over.
    pub(super) fn served(&mut self, peer: PeerId) {
        self.failures.remove(&peer);
        self.busy.remove(&peer);
    }

    /// `peer` said it is busy (it answered at once): it is left out after
    /// [`MAX_BUSY`] such answers without a good piece.
    pub(super) fn busy(&mut self, peer: PeerId) {
        let count = self.busy.entry(peer).or_default();
        *count += 1;
        if *count >= MAX_BUSY {
            self.leave_out(peer);
        }
    }

    /// A request to `peer` failed: it is left out after [`MAX_HOLDER_FAILURES`]
    /// failures in a row.
    pub(super) fn failed(&mut self, peer: PeerId) {
        let count = self.failures.entry(peer).or_default();
        *count += 1;
        if *count >= MAX_HOLDER_FAILURES {
            self.leave_out(peer);
        }
    }

    /// `peer` is not asked again in this fetch (it lied, timed out or answered
    /// something else).
    pub(super) fn leave_out(&mut self, peer: PeerId) {
        self.peers.retain(|p| *p != peer);
    }
}

/// Which pieces of the blob are done, and which are still wanted in what order.
#[derive(Debug)]
pub(super) struct Pieces {
    have: Vec<bool>,
    missing: VecDeque<u64>,
    /// Pieces fetched by this try.
    fetched: u64,
}

impl Pieces {
    /// The pieces an earlier try kept in `record` (all missing when there is no
    /// record or it does not fit a blob of `total` pieces).
    pub(super) fn load(record: &Path, total: u64) -> Self {
        let count = usize::try_from(total).unwrap_or(0);
        let have: Vec<bool> = match std::fs::read(record) {
            Ok(bytes) if bytes.len() == count => bytes.iter().map(|b| *b == 1).collect(),
            _ => vec![false; count],
        };
        let missing = (0..total).filter(|i| !have[Self::at(*i)]).collect();
        Self {
            have,
            missing,
            fetched: 0,
        }
    }

    fn at(index: u64) -> usize {
        usize::try_from(index).unwrap_or(usize::MAX)
    }

    /// The next piece to ask for.
    pub(super) fn next(&mut self) -> Option<u64> {
        self.missing.pop_front()
    }

    /// Whether no piece is waiting to be asked for.
    pub(super) fn none_wanted(&self) -> bool {
        self.missing.is_empty()
    }

    /// `index` failed with one holder: ask another first.
    pub(super) fn again_now(&mut self, index: u64) {
        self.missing.push_front(index);
    }

    /// `index` met a busy holder: ask again after the others.
    pub(super) fn again_later(&mut self, index: u64) {
        self.missing.push_back(index);
    }

    /// `index` is verified and written; true when it is time to save the record
    /// (every 64 pieces).
    pub(super) fn done(&mut self, index: u64) -> bool {
        if let Some(have) = self.have.get_mut(Self::at(index)) {
            *have = true;
        }
        self.fetched += 1;
        self.fetched.is_multiple_of(64)
    }

    /// Pieces fetched by this try.
    pub(super) fn fetched(&self) -> u64 {
        self.fetched
    }

    /// Pieces verified so far, by any try.
    pub(super) fn done_count(&self) -> u64 {
        self.have.iter().filter(|h| **h).count() as u64
    }

    /// Records the pieces done in `record`, after the data they name is on disk.
    pub(super) fn save(&self, file: &PieceFile, record: &Path) {
        if let Err(e) = file.sync_data() {
            warn!("{}: {e}", record.display());
            return;
        }
        let bytes: Vec<u8> = self.have.iter().map(|h| u8::from(*h)).collect();
        if let Err(e) = crate::store::write_atomic(record, &bytes) {
            warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(count: usize) -> Vec<PeerId> {
        (0..count).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn requests_go_round_robin_and_stop_at_the_per_holder_limit() {
        let all = peers(3);
        let mut holders = Holders::new(all.clone());
        let first: Vec<PeerId> = (0..6).filter_map(|_| holders.take()).collect();
        assert_eq!(first, [all[0], all[1], all[2], all[0], all[1], all[2]]);
        // Fill everyone up to the limit; then nobody has room.
        let more = (0..3 * PER_HOLDER).filter_map(|_| holders.take()).count();
        assert_eq!(more, 3 * PER_HOLDER - 6);
        assert_eq!(holders.take(), None);
        // One answer makes room at that holder only.
        holders.answered(all[1]);
        assert_eq!(holders.take(), Some(all[1]));
        assert_eq!(holders.take(), None);
    }

    #[test]
    fn failures_in_a_row_leave_a_holder_out_but_a_good_piece_forgives() {
        let all = peers(2);
        let mut holders = Holders::new(all.clone());
        for _ in 0..MAX_HOLDER_FAILURES - 1 {
            holders.failed(all[0]);
        }
        holders.served(all[0]);
        for _ in 0..MAX_HOLDER_FAILURES - 1 {
            holders.failed(all[0]);
        }
        assert_eq!(
            holders.take(),
            Some(all[0]),
            "still asked after a good piece"
        );
        holders.failed(all[0]);
        let asked: Vec<PeerId> = (0..4).filter_map(|_| holders.take()).collect();
        assert!(asked.iter().all(|p| *p == all[1]), "{asked:?}");
        holders.leave_out(all[1]);
        assert!(holders.is_empty());
        assert_eq!(holders.take(), None);
    }

    #[test]
    fn a_holder_that_is_always_busy_is_left_out_in_the_end() {
        let all = peers(1);
        let mut holders = Holders::new(all.clone());
        for _ in 0..MAX_BUSY - 1 {
            holders.busy(all[0]);
        }
        assert!(!holders.is_empty());
        holders.busy(all[0]);
        assert!(holders.is_empty());
    }

    #[test]
    fn pieces_resume_from_the_record_and_a_mismatched_record_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("blob.have");
        std::fs::write(&record, [1, 0, 1, 0]).unwrap();
        let mut pieces = Pieces::load(&record, 4);
        assert_eq!(pieces.done_count(), 2);
        assert_eq!(pieces.next(), Some(1));
        pieces.again_later(1);
        assert_eq!(pieces.next(), Some(3));
        pieces.again_now(3);
        assert_eq!(pieces.next(), Some(3));
        assert_eq!(pieces.next(), Some(1));
        assert!(pieces.none_wanted());
        assert!(!pieces.done(1));
        assert_eq!((pieces.fetched(), pieces.done_count()), (1, 3));

        // A record for another size is not trusted.
        let fresh = Pieces::load(&record, 5);
        assert_eq!(fresh.done_count(), 0);
        let mut fresh = fresh;
        assert_eq!((0..6).map_while(|_| fresh.next()).count(), 5);
    }

    #[test]
    fn the_record_is_saved_every_64_pieces_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("blob.have");
        let mut pieces = Pieces::load(&record, 130);
        let saves = (0..130).filter(|i| pieces.done(*i)).count();
        assert_eq!(saves, 2);
        let file = PieceFile::open(&dir.path().join("blob.partial"), 130).unwrap();
        pieces.save(&file, &record);
        assert_eq!(Pieces::load(&record, 130).done_count(), 130);
    }
}
