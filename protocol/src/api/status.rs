//! What a node says about itself and its peers (`reelmesh status`, the editor's
//! worker panel): plain data, peer ids as strings, no libp2p type.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wire::{NodeStatus, Presence};

/// A snapshot of the node for `reelmesh status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatusReport {
    /// This node's peer id.
    pub node_id: String,
    /// Where it listens.
    pub listen_addrs: Vec<String>,
    /// Projects it holds: (id, name or "waiting for sync", shot count).
    pub projects: Vec<ProjectSummary>,
    /// This node first, then every peer heard from or connected.
    pub peers: Vec<PeerRow>,
    /// Addresses this node keeps failing to connect with, and why (absent from a
    /// node older than this field).
    #[serde(default)]
    pub failing_peers: Vec<FailingPeer>,
}

/// One project in a status report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProjectSummary {
    /// The project id.
    pub project_id: String,
    /// Its name, or `None` while a replica waits for its first sync.
    pub name: Option<String>,
    /// Live shots.
    pub shots: usize,
}

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

/// Who opened the failing connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// This node dialled the address.
    Outgoing,
    /// Connections from the address to this node failed.
    Incoming,
}

/// A peer this node keeps failing to connect with (`reelmesh status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingPeer {
    /// The address dialled (without `/p2p/..`), or for incoming connections the
    /// remote IP alone (`/ip4/127.0.0.1`).
    pub address: String,
    /// The peer, when known (dialled by peer id).
    #[serde(default)]
    pub peer_id: Option<String>,
    /// Who opened the connections.
    pub direction: Direction,
    /// Failures in a row.
    pub failures: u64,
    /// The first of them (Unix milliseconds).
    pub since_ms: u64,
    /// The latest (Unix milliseconds).
    #[serde(default)]
    pub last_ms: u64,
    /// The latest failure's kind.
    pub kind: FailureKind,
    /// Why, short ("not in this mesh: another mesh key?", "connection refused").
    pub reason: String,
    /// The underlying error.
    #[serde(default)]
    pub error: String,
}

/// What kind of failure, as far as the node can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The private mesh layer refused the peer: it holds another mesh key (or
    /// speaks another version of the layer).
    NotInThisMesh,
    /// Anything else: refused, unreachable, timed out, another node at the address.
    #[serde(other)]
    Other,
}

impl PeerRow {
    /// The row for a peer's presence, heard `age` ago (`None`: never).
    #[must_use]
    pub fn from_presence(
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

/// What a node tells those who follow it (the editor's status feed): plain data,
/// peer ids and addresses as strings. Ephemeral: nothing here is in the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The node listens on an address.
    Listening {
        /// The address.
        address: String,
    },
    /// First connection to a peer.
    PeerConnected {
        /// The peer.
        peer_id: String,
    },
    /// Last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer_id: String,
    },
    /// A project changed and was saved.
    DocChanged {
        /// The project.
        project_id: String,
        /// Its new heads.
        heads: Vec<String>,
        /// The peer the change came from; `None`: an edit on this node.
        from_peer: Option<String>,
    },
    /// A peer's presence (GPU, status, job) arrived or changed.
    Presence {
        /// The peer.
        peer_id: String,
    },
    /// A peer sent something malformed and was dropped.
    PeerRejected {
        /// The peer.
        peer_id: String,
        /// What was wrong.
        reason: String,
    },
    /// A connection failed (a mesh key mismatch, a peer away).
    ConnectionFailed(FailingPeer),
    /// A render job moved or made progress (here or, by gossip, elsewhere).
    Job(crate::jobs::JobUpdate),
    /// A node's standing offer to run jobs arrived or changed.
    Offer(crate::placement::Offer),
    /// The follower fell behind and missed events: read the state again.
    Lagged {
        /// How many were missed.
        missed: u64,
    },
}
