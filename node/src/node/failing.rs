//! Peers this node keeps failing to connect with, for `reelmesh status` and for
//! logs that do not repeat themselves.
//!
//! The runtime records every failed dial (by the address dialled) and every failed
//! incoming connection (by the remote IP: its port changes with every connection)
//! with the reason [`crate::mesh::failure`] found. A row goes when a dial to its
//! address or peer succeeds, or after [`FORGET_AFTER`] without a failure. Each
//! row also says whether this failure is worth a WARN: the first one, one whose
//! kind changed, and then one per [`WARN_EVERY`]; the rest go to debug.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::mesh::failure::ConnectionFailure;

/// One WARN per row this often at most (and the next failure after it).
pub const WARN_EVERY: Duration = Duration::from_secs(60);
/// A row with no failure for this long is dropped.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Most rows kept; the one that failed least recently goes first.
pub const MAX_ROWS: usize = 64;

pub use reelmesh_protocol::api::status::{Direction, FailingPeer};

struct Entry {
    row: FailingPeer,
    last_failed: Instant,
    last_warned: Option<Instant>,
}

/// The failing peers, keyed by direction and address.
#[derive(Default)]
pub(super) struct FailingPeers {
    entries: HashMap<(Direction, Multiaddr), Entry>,
}

impl FailingPeers {
    /// Count a failure. Returns the row as it is now, and whether to log it at
    /// WARN (otherwise debug).
    pub fn record(
        &mut self,
        direction: Direction,
        address: &Multiaddr,
        peer: Option<PeerId>,
        failure: &ConnectionFailure,
        now: Instant,
        now_ms: u64,
    ) -> (FailingPeer, bool) {
        self.forget_stale(now);
        let (address, peer) = key_address(direction, address, peer);
        let key = (direction, address);
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_ROWS {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_failed)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            row: FailingPeer {
                address: key.1.to_string(),
                peer_id: None,
                direction,
                failures: 0,
                since_ms: now_ms,
                last_ms: now_ms,
                kind: failure.kind,
                reason: String::new(),
                error: String::new(),
            },
            last_failed: now,
            last_warned: None,
        });
        let kind_changed = entry.row.failures > 0 && entry.row.kind != failure.kind;
        entry.row.failures += 1;
        entry.row.last_ms = now_ms;
        entry.row.kind = failure.kind;
        entry.row.reason = failure.reason();
        entry.row.error.clone_from(&failure.error);
        if let Some(peer) = peer {
            entry.row.peer_id = Some(peer.to_string());
        }
        entry.last_failed = now;
        let warn = kind_changed
            || entry
                .last_warned
                .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY);
        if warn {
            entry.last_warned = Some(now);
        }
        (entry.row.clone(), warn)
    }

    /// A dial to `address` reached `peer`: its rows (by address, or by peer) go.
    pub fn dial_succeeded(&mut self, address: &Multiaddr, peer: PeerId) {
        let (address, _) = key_address(Direction::Outgoing, address, Some(peer));
        let peer = peer.to_string();
        self.entries.retain(|(direction, key), entry| {
            *direction != Direction::Outgoing
                || (*key != address && entry.row.peer_id.as_ref() != Some(&peer))
        });
    }

    /// The rows, dials first, then by address.
    pub fn rows(&mut self, now: Instant) -> Vec<FailingPeer> {
        self.forget_stale(now);
        let mut rows: Vec<FailingPeer> = self.entries.values().map(|e| e.row.clone()).collect();
        rows.sort_by(|a, b| {
            (a.direction == Direction::Incoming, &a.address)
                .cmp(&(b.direction == Direction::Incoming, &b.address))
        });
        rows
    }

    fn forget_stale(&mut self, now: Instant) {
        self.entries
            .retain(|_, entry| now.saturating_duration_since(entry.last_failed) < FORGET_AFTER);
    }
}

/// The address a row is kept under, and the peer id it names: a dial's address
/// without its `/p2p/..` (taken as the peer when none is given); for incoming
/// connections, the IP (or DNS name) alone.
fn key_address(
    direction: Direction,
    address: &Multiaddr,
    peer: Option<PeerId>,
) -> (Multiaddr, Option<PeerId>) {
    let mut named = None;
    let mut key = Multiaddr::empty();
    for protocol in address {
        match protocol {
            Protocol::P2p(peer_id) => named = Some(peer_id),
            Protocol::Ip4(_)
            | Protocol::Ip6(_)
            | Protocol::Dns(_)
            | Protocol::Dns4(_)
            | Protocol::Dns6(_)
                if direction == Direction::Incoming =>
            {
                key.push(protocol);
            }
            _ if direction == Direction::Outgoing => key.push(protocol),
            _ => {}
        }
    }
    (key, peer.or(named))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::failure::FailureKind;

    fn not_in_mesh() -> ConnectionFailure {
        ConnectionFailure {
            kind: FailureKind::NotInThisMesh,
            error: "the peer is not in this mesh".into(),
        }
    }

    fn refused() -> ConnectionFailure {
        ConnectionFailure {
            kind: FailureKind::Other,
            error: "connection refused (os error 111)".into(),
        }
    }

    #[test]
    fn one_warn_per_minute_then_debug_and_again_when_the_reason_changes() {
        let mut table = FailingPeers::default();
        let peer = PeerId::random();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/4012/p2p/{peer}")
            .parse()
            .unwrap();
        let t0 = Instant::now();
        let (row, warn) = table.record(Direction::Outgoing, &addr, None, &not_in_mesh(), t0, 1_000);
        assert!(warn);
        assert_eq!(row.address, "/ip4/127.0.0.1/tcp/4012");
        assert_eq!(row.peer_id, Some(peer.to_string()));
        assert_eq!(row.reason, "not in this mesh: another mesh key?");
        for i in 1..10 {
            let at = t0 + Duration::from_secs(i * 3);
            let (_, warn) =
                table.record(Direction::Outgoing, &addr, None, &not_in_mesh(), at, 2_000);
            assert!(!warn, "failure {i} warned again");
        }
        let later = t0 + WARN_EVERY;
        let (row, warn) = table.record(
            Direction::Outgoing,
            &addr,
            None,
            &not_in_mesh(),
            later,
            9_000,
        );
        assert!(warn);
        assert_eq!(
            (row.failures, row.since_ms, row.last_ms),
            (11, 1_000, 9_000)
        );
        let (row, warn) = table.record(Direction::Outgoing, &addr, None, &refused(), later, 9_500);
        assert!(warn, "a new reason is said at once");
        assert_eq!(row.reason, "connection refused (os error 111)");
    }

    #[test]
    fn incoming_rows_are_by_ip_and_a_dial_that_succeeds_clears_its_rows() {
        let mut table = FailingPeers::default();
        let now = Instant::now();
        for port in [50_001, 50_002, 50_003] {
            let from: Multiaddr = format!("/ip4/10.0.0.7/tcp/{port}").parse().unwrap();
            table.record(Direction::Incoming, &from, None, &not_in_mesh(), now, 0);
        }
        let peer = PeerId::random();
        let dialled: Multiaddr = "/ip4/10.0.0.8/tcp/47410".parse().unwrap();
        table.record(
            Direction::Outgoing,
            &dialled,
            Some(peer),
            &refused(),
            now,
            0,
        );
        let rows = table.rows(now);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].address, "/ip4/10.0.0.8/tcp/47410");
        assert_eq!(rows[1].address, "/ip4/10.0.0.7");
        assert_eq!(
            (rows[1].direction, rows[1].failures),
            (Direction::Incoming, 3)
        );

        // Reached by another of its addresses: the row goes by peer id.
        let other: Multiaddr = format!("/ip4/10.0.0.9/tcp/47410/p2p/{peer}")
            .parse()
            .unwrap();
        table.dial_succeeded(&other, peer);
        let rows = table.rows(now);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].direction, Direction::Incoming);
        assert!(table.rows(now + FORGET_AFTER).is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let mut table = FailingPeers::default();
        let t0 = Instant::now();
        for i in 0..(MAX_ROWS as u64 + 10) {
            let addr: Multiaddr = format!("/ip4/10.0.0.1/tcp/{}", 1000 + i).parse().unwrap();
            let at = t0 + Duration::from_millis(i);
            table.record(Direction::Outgoing, &addr, None, &refused(), at, i);
        }
        let rows = table.rows(t0 + Duration::from_secs(1));
        assert_eq!(rows.len(), MAX_ROWS);
        assert!(
            rows.iter().all(|r| r.since_ms >= 10),
            "the oldest went first"
        );
    }

    #[test]
    fn a_status_from_an_older_node_still_parses() {
        let status: super::super::NodeStatusReport =
            serde_json::from_str(r#"{"node_id":"x","listen_addrs":[],"projects":[],"peers":[]}"#)
                .unwrap();
        assert!(status.failing_peers.is_empty());
        let row: FailingPeer = serde_json::from_str(
            r#"{"address":"/ip4/1.2.3.4/tcp/1","direction":"outgoing","failures":2,
                "since_ms":5,"kind":"banned","reason":"x"}"#,
        )
        .unwrap();
        assert_eq!((row.peer_id, row.kind), (None, FailureKind::Other));
    }
}
