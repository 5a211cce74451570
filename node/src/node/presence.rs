//! The peers table: the last presence heard from each node, timed by this node's
//! own clock (a peer's clock is not trusted), plus connection state.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use reelmesh_protocol::wire::{NodeStatus, Presence};
use serde::{Deserialize, Serialize};

/// One row of `reelmesh status` (the seed's worker table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRow {
    /// Peer id.
    pub node_id: String,
    /// Host name (empty until its first heartbeat).
    pub host_name: String,
    /// GPU name, or "CPU only".
    pub gpu: String,
    /// Where the GPU figures come from ("nvml", "comfyui"), if any.
    pub gpu_source: Option<String>,
    /// Total VRAM, bytes.
    pub vram_total: Option<u64>,
    /// Used VRAM, bytes.
    pub vram_used: Option<u64>,
    /// GPU utilization, percent.
    pub utilization: Option<u8>,
    /// idle / busy / offline / error.
    pub status: String,
    /// Why, for error.
    pub status_detail: Option<String>,
    /// Job being run.
    pub current_job: Option<String>,
    /// ComfyUI address (local to that node).
    pub comfy_url: Option<String>,
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Seconds since its last heartbeat (`None`: never heard).
    pub last_heartbeat_secs: Option<f64>,
    /// Connected directly to this node.
    pub connected: bool,
    /// This row is this node.
    pub this_node: bool,
}

impl PeerRow {
    pub(super) fn from_presence(
        presence: &Presence,
        age: Option<Duration>,
        connected: bool,
        offline: bool,
    ) -> PeerRow {
        let gpu = presence.gpu.as_ref();
        PeerRow {
            node_id: presence.node_id.clone(),
            host_name: presence.host_name.clone(),
            gpu: gpu.map_or_else(|| "CPU only".to_owned(), |g| g.name.clone()),
            gpu_source: gpu.map(|g| {
                serde_json::to_value(g.source)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            }),
            vram_total: gpu.map(|g| g.vram_total),
            vram_used: gpu.map(|g| g.vram_used),
            utilization: gpu.and_then(|g| g.utilization),
            status: if offline {
                NodeStatus::Offline.as_str().to_owned()
            } else {
                presence.status.as_str().to_owned()
            },
            status_detail: presence.status_detail.clone(),
            current_job: presence.current_job.clone(),
            comfy_url: presence.comfy_url.clone(),
            capabilities: presence.capabilities.clone(),
            last_heartbeat_secs: age.map(|a| a.as_secs_f64()),
            connected,
            this_node: false,
        }
    }
}

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
