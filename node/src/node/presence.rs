//! The peers table: the last presence heard from each node, timed by this node's
//! own clock (a peer's clock is not trusted), plus connection state.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use reelmesh_protocol::wire::Presence;

pub use reelmesh_protocol::api::status::PeerRow;

#[derive(Debug, Default)]
pub(super) struct PresenceTable {
    seen: HashMap<PeerId, (Presence, Instant)>,
    /// The peers each peer said it is connected to, parsed once per heartbeat
    /// (read on every received change, see `Runtime::relay`).
    reaches: HashMap<PeerId, HashSet<PeerId>>,
}

impl PresenceTable {
    /// The peers `peer` said it is connected to (empty when it said nothing).
    pub fn reaches(&self, peer: &PeerId) -> Option<&HashSet<PeerId>> {
        self.reaches.get(peer)
    }

    pub fn record(&mut self, peer: PeerId, presence: Presence) {
        let reaches = presence
            .peers
            .iter()
            .filter_map(|p| p.parse::<PeerId>().ok())
            .collect();
        self.reaches.insert(peer, reaches);
        self.seen.insert(peer, (presence, Instant::now()));
    }

    /// Rows for every peer heard from or connected, sorted by host then id.
    pub fn rows(&self, connected: &HashSet<PeerId>, offline_after: Duration) -> Vec<PeerRow> {
        let now = Instant::now();
        let mut rows: Vec<PeerRow> = self
            .seen
            .iter()
            .map(|(peer, (presence, at))| {
                let age = now.saturating_duration_since(*at);
                PeerRow::from_presence(
                    presence,
                    Some(age),
                    connected.contains(peer),
                    age >= offline_after,
                )
            })
            .collect();
        for peer in connected {
            if !self.seen.contains_key(peer) {
                rows.push(PeerRow {
                    node_id: peer.to_string(),
                    host_name: String::new(),
                    gpu: "unknown".into(),
                    gpu_source: None,
                    vram_total: None,
                    vram_used: None,
                    utilization: None,
                    status: "connecting".into(),
                    status_detail: None,
                    current_job: None,
                    comfy_url: None,
                    capabilities: Vec::new(),
                    last_heartbeat_secs: None,
                    connected: true,
                    this_node: false,
                });
            }
        }
        rows.sort_by(|a, b| (&a.host_name, &a.node_id).cmp(&(&b.host_name, &b.node_id)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelmesh_protocol::wire::NodeStatus;

    fn presence(node_id: &str) -> Presence {
        Presence {
            node_id: node_id.into(),
            host_name: "gpu-1".into(),
            version: "0".into(),
            gpu: None,
            status: NodeStatus::Idle,
            status_detail: None,
            current_job: None,
            comfy_url: None,
            capabilities: vec![],
            projects: vec![],
            peers: vec![],
            heads: std::collections::BTreeMap::new(),
            sent_at_ms: 0,
        }
    }

    #[test]
    fn silent_peers_are_shown_offline_and_connected_ones_without_presence_listed() {
        let mut table = PresenceTable::default();
        let heard = PeerId::random();
        let silent_connected = PeerId::random();
        table.record(heard, presence(&heard.to_string()));
        let connected: HashSet<_> = [silent_connected].into_iter().collect();
        let rows = table.rows(&connected, Duration::from_secs(60));
        assert_eq!(rows.len(), 2);
        let heard_row = rows
            .iter()
            .find(|r| r.node_id == heard.to_string())
            .unwrap();
        assert_eq!(heard_row.status, "idle");
        assert_eq!(heard_row.gpu, "CPU only");
        assert!(!heard_row.connected);
        let other = rows
            .iter()
            .find(|r| r.node_id == silent_connected.to_string())
            .unwrap();
        assert_eq!(other.status, "connecting");
        // With a zero offline threshold every heard peer is already offline.
        let rows = table.rows(&connected, Duration::ZERO);
        let heard_row = rows
            .iter()
            .find(|r| r.node_id == heard.to_string())
            .unwrap();
        assert_eq!(heard_row.status, "offline");
    }
}
