//! Wire messages between nodes, and how each one is checked on the way in.
//!
//! Two kinds of traffic cross the mesh:
//! - **Document sync** over request-response (`/reelmesh/sync/1`): a request carries
//!   one Automerge sync message for one project ([`SyncRequest`]), or changes their
//!   author pushes to every peer as it makes them ([`ChangesPush`]); the response is
//!   an acknowledgement sent after the receiver has applied what the request carried.
//!   Frames are binary (a sync message is binary and can be as big as the document).
//! - **Presence** on gossip (`reelmesh/presence/1`): a small JSON heartbeat. It is
//!   ephemeral and never goes into the document.
//!
//! Every decoder here treats its input as hostile: lengths are bounded before
//! anything is allocated, strings are checked, and nothing panics.

use serde::{Deserialize, Serialize};

/// The request-response protocol name for document sync.
pub const SYNC_PROTOCOL: &str = "/reelmesh/sync/1";
/// The gossip topic for presence heartbeats.
pub const PRESENCE_TOPIC: &str = "reelmesh/presence/1";
/// Largest presence message accepted (gossip's own cap is 64 KiB).
pub const MAX_PRESENCE_BYTES: usize = 16 * 1024;
/// Longest project id accepted on the wire.
pub const MAX_PROJECT_ID_LEN: usize = 128;

const SYNC_MAGIC: &[u8; 4] = b"RMS1";
const CHANGES_MAGIC: &[u8; 4] = b"RMC1";
const MAX_REASON_LEN: usize = 1024;

/// Why a wire message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The frame is shorter than its header says, or has no header.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// The frame does not start with the expected magic bytes.
    #[error("not a reelmesh sync frame (bad magic)")]
    BadMagic,
    /// A field is malformed.
    #[error("field '{field}': {why}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The message is larger than allowed.
    #[error("{what} is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Which message.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not valid JSON for the message type.
    #[error("malformed {what}: {why}")]
    Json {
        /// Which message.
        what: &'static str,
        /// The parser's words.
        why: String,
    },
}

fn field(field: &'static str, why: impl Into<String>) -> WireError {
    WireError::Field {
        field,
        why: why.into(),
    }
}

/// A project id as it may appear on the wire: 1..=128 of `[A-Za-z0-9_-]`.
pub fn check_project_id(project_id: &str) -> Result<(), WireError> {
    if project_id.is_empty() || project_id.len() > MAX_PROJECT_ID_LEN {
        return Err(field(
            "project_id",
            format!(
                "length {} not in 1..={MAX_PROJECT_ID_LEN}",
                project_id.len()
            ),
        ));
    }
    if !project_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(field("project_id", "only letters, digits, '-' and '_'"));
    }
    Ok(())
}

/// One Automerge sync message for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    /// The project the message belongs to.
    pub project_id: String,
    /// The encoded Automerge sync message.
    pub message: Vec<u8>,
}

impl SyncRequest {
    /// `RMS1 | u16be id length | project id | sync message`.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = frame_header(SYNC_MAGIC, &self.project_id, self.message.len());
        out.extend_from_slice(&self.message);
        out
    }

    /// Parse a frame; the project id is checked, the message is left to Automerge.
    pub fn decode(frame: &[u8]) -> Result<SyncRequest, WireError> {
        let (project_id, message) = split_frame(frame, SYNC_MAGIC, "sync request header")?;
        if message.is_empty() {
            return Err(field("message", "empty sync message"));
        }
        Ok(SyncRequest {
            project_id,
            message: message.to_vec(),
        })
    }
}

/// `magic | u16be id length | project id`, with room for `body` more bytes.
fn frame_header(magic: &[u8; 4], project_id: &str, body: usize) -> Vec<u8> {
    let id = project_id.as_bytes();
    let id_len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(6 + id.len() + body);
    out.extend_from_slice(magic);
    out.extend_from_slice(&id_len.to_be_bytes());
    out.extend_from_slice(&id[..usize::from(id_len).min(id.len())]);
    out
}

/// The checked project id of a frame made by [`frame_header`], and the rest.
fn split_frame<'a>(
    frame: &'a [u8],
    magic: &[u8; 4],
    what: &'static str,
) -> Result<(String, &'a [u8]), WireError> {
    let rest = frame
        .strip_prefix(magic.as_slice())
        .ok_or(if frame.len() < 4 {
            WireError::Truncated(what)
        } else {
            WireError::BadMagic
        })?;
    let (len, rest) = rest
        .split_first_chunk::<2>()
        .ok_or(WireError::Truncated(what))?;
    let id_len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < id_len {
        return Err(WireError::Truncated("project id"));
    }
    let (id, body) = rest.split_at(id_len);
    let project_id = std::str::from_utf8(id)
        .map_err(|_| field("project_id", "not UTF-8"))?
        .to_owned();
    check_project_id(&project_id)?;
    Ok((project_id, body))
}

/// Changes an author pushes to its peers as it makes them, outside Automerge's sync
/// exchange: encoded once for every peer, applied by each as they come. Sync still
/// runs when peers connect and on every retry tick, and fills in whatever a push
/// missed (a push that failed, changes that arrived before their dependencies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesPush {
    /// The project the changes belong to.
    pub project_id: String,
    /// Automerge change chunks, each as `Automerge::load_incremental` reads it.
    pub changes: Vec<Vec<u8>>,
}

impl ChangesPush {
    /// The most change chunks one push carries.
    pub const MAX_CHANGES: usize = 4096;

    /// `RMC1 | u16be id length | project id | u32be count | (u32be length | chunk)*`.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let body = 4 + self.changes.iter().map(|c| 4 + c.len()).sum::<usize>();
        let mut out = frame_header(CHANGES_MAGIC, &self.project_id, body);
        let count = u32::try_from(self.changes.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for change in &self.changes {
            let len = u32::try_from(change.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(change);
        }
        out
    }

    /// Parse a frame; lengths are checked against what is there before anything is
    /// copied, and the chunks themselves are left to Automerge.
    pub fn decode(frame: &[u8]) -> Result<ChangesPush, WireError> {
        let (project_id, body) = split_frame(frame, CHANGES_MAGIC, "changes push header")?;
        let (count, mut rest) = body
            .split_first_chunk::<4>()
            .ok_or(WireError::Truncated("changes push count"))?;
        let count = u32::from_be_bytes(*count) as usize;
        if count == 0 {
            return Err(field("changes", "no changes"));
        }
        if count > Self::MAX_CHANGES {
            return Err(WireError::TooLarge {
                what: "changes push count",
                len: count,
                max: Self::MAX_CHANGES,
            });
        }
        let mut changes = Vec::with_capacity(count.min(rest.len() / 4));
        for _ in 0..count {
            let (len, after) = rest
                .split_first_chunk::<4>()
                .ok_or(WireError::Truncated("changes push chunk length"))?;
            let len = u32::from_be_bytes(*len) as usize;
            if len == 0 {
                return Err(field("changes", "an empty change chunk"));
            }
            if after.len() < len {
                return Err(WireError::Truncated("changes push chunk"));
            }
            let (chunk, after) = after.split_at(len);
            changes.push(chunk.to_vec());
            rest = after;
        }
        if !rest.is_empty() {
            return Err(field(
                "changes",
                format!("{} bytes after the last chunk", rest.len()),
            ));
        }
        Ok(ChangesPush {
            project_id,
            changes,
        })
    }
}

/// Either request of the sync protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncFrame {
    /// A step of Automerge's sync exchange.
    Sync(SyncRequest),
    /// Changes pushed by their author (or a relay).
    Changes(ChangesPush),
}

impl SyncFrame {
    /// Parse either request by its magic.
    pub fn decode(frame: &[u8]) -> Result<SyncFrame, WireError> {
        if frame.starts_with(CHANGES_MAGIC) {
            ChangesPush::decode(frame).map(SyncFrame::Changes)
        } else {
            SyncRequest::decode(frame).map(SyncFrame::Sync)
        }
    }

    /// The project the request is about.
    #[must_use]
    pub fn project_id(&self) -> &str {
        match self {
            SyncFrame::Sync(request) => &request.project_id,
            SyncFrame::Changes(push) => &push.project_id,
        }
    }
}

/// The answer to a [`SyncRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncResponse {
    /// Applied and saved.
    Accepted,
    /// Refused, with the reason (unknown project, malformed message, ...).
    Rejected(String),
}

impl SyncResponse {
    /// `0x00`, or `0x01 | reason (UTF-8, at most 1 KiB)`.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        match self {
            SyncResponse::Accepted => vec![0],
            SyncResponse::Rejected(reason) => {
                let mut out = vec![1];
                out.extend_from_slice(truncate_utf8(reason, MAX_REASON_LEN).as_bytes());
                out
            }
        }
    }

    /// Parse a response frame.
    pub fn decode(frame: &[u8]) -> Result<SyncResponse, WireError> {
        match frame.split_first() {
            Some((0, [])) => Ok(SyncResponse::Accepted),
            Some((1, reason)) if reason.len() <= MAX_REASON_LEN => Ok(SyncResponse::Rejected(
                String::from_utf8_lossy(reason).into_owned(),
            )),
            Some((1, reason)) => Err(WireError::TooLarge {
                what: "sync rejection reason",
                len: reason.len(),
                max: MAX_REASON_LEN,
            }),
            Some(_) => Err(field("status", "unknown sync response status")),
            None => Err(WireError::Truncated("sync response")),
        }
    }
}

/// The longest prefix of `text` that is at most `max` bytes and ends on a character
/// boundary (Hangul is three bytes a character: never cut one in half).
#[must_use]
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What a node is doing, as it announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Ready for work.
    Idle,
    /// Running a job.
    Busy,
    /// Not heard from (set by the observer, never announced).
    Offline,
    /// Something is wrong (ComfyUI down, GPU error); see the detail.
    Error,
}

impl NodeStatus {
    /// Lowercase label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Idle => "idle",
            NodeStatus::Busy => "busy",
            NodeStatus::Offline => "offline",
            NodeStatus::Error => "error",
        }
    }
}

/// Where the GPU figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuSource {
    /// NVIDIA driver, read through NVML.
    Nvml,
    /// ComfyUI's `/system_stats`.
    Comfyui,
}

/// One GPU's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Device name ("NVIDIA GeForce RTX 4090").
    pub name: String,
    /// Total memory in bytes.
    pub vram_total: u64,
    /// Used memory in bytes.
    pub vram_used: u64,
    /// Utilization in percent, when the source reports it (NVML does, ComfyUI does not).
    pub utilization: Option<u8>,
    /// Where the figures came from.
    pub source: GpuSource,
}

/// A presence heartbeat: who a node is and what it can do right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The libp2p peer id of the sender (must match the signed gossip author).
    pub node_id: String,
    /// Host name.
    pub host_name: String,
    /// reelmesh version of the sender.
    pub version: String,
    /// The GPU, or `None` for a CPU-only node.
    pub gpu: Option<GpuInfo>,
    /// What the node is doing.
    pub status: NodeStatus,
    /// Why, when the status is `error`.
    pub status_detail: Option<String>,
    /// The job being run, if any.
    pub current_job: Option<String>,
    /// The ComfyUI address this node drives (local to that node).
    pub comfy_url: Option<String>,
    /// Capabilities (workflow ids, node classes, models) this node offers.
    pub capabilities: Vec<String>,
    /// Projects this node holds.
    pub projects: Vec<String>,
    /// Peers this node is connected to (at most [`MAX_PRESENCE_PEERS`]; a node with
    /// more lists none). Used to relay document changes only where the sender does
    /// not reach: a hint, never trusted for anything else.
    #[serde(default)]
    pub peers: Vec<String>,
    /// The heads of the projects it holds (at most [`MAX_PRESENCE_HEAD_PROJECTS`]
    /// projects of at most [`MAX_PRESENCE_HEADS`] heads; others are left out). A
    /// peer that still lacks some of them a heartbeat later asks it by sync: the
    /// check that nothing pushed was lost, at the cost of a heartbeat.
    #[serde(default)]
    pub heads: std::collections::BTreeMap<String, Vec<String>>,
    /// Sender's clock when sent, ms since the Unix epoch (informational only: the
    /// observer times heartbeats by its own clock).
    pub sent_at_ms: u64,
}

const MAX_TEXT: usize = 256;
const MAX_LIST: usize = 512;
/// Most peers a presence lists (see [`Presence::peers`]).
pub const MAX_PRESENCE_PEERS: usize = 128;
/// Most projects whose heads a presence lists (see [`Presence::heads`]).
pub const MAX_PRESENCE_HEAD_PROJECTS: usize = 16;
/// Most heads a presence lists for one project.
pub const MAX_PRESENCE_HEADS: usize = 32;

impl Presence {
    /// JSON bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parse and check a heartbeat that claims to come from `author` (a peer id string).
    pub fn decode(bytes: &[u8], author: &str) -> Result<Presence, WireError> {
        if bytes.len() > MAX_PRESENCE_BYTES {
            return Err(WireError::TooLarge {
                what: "presence",
                len: bytes.len(),
                max: MAX_PRESENCE_BYTES,
            });
        }
        let presence: Presence = serde_json::from_slice(bytes).map_err(|e| WireError::Json {
            what: "presence",
            why: e.to_string(),
        })?;
        presence.check(author)?;
        Ok(presence)
    }

    fn check(&self, author: &str) -> Result<(), WireError> {
        if self.node_id != author {
            return Err(field(
                "node_id",
                format!("claims {} but was signed by {author}", self.node_id),
            ));
        }
        let texts = [
            ("host_name", Some(&self.host_name)),
            ("version", Some(&self.version)),
            ("status_detail", self.status_detail.as_ref()),
            ("current_job", self.current_job.as_ref()),
            ("comfy_url", self.comfy_url.as_ref()),
            ("gpu.name", self.gpu.as_ref().map(|g| &g.name)),
        ];
        for (name, text) in texts {
            if text.is_some_and(|t| t.len() > MAX_TEXT) {
                return Err(field(name, format!("longer than {MAX_TEXT} bytes")));
            }
        }
        for (name, list) in [
            ("capabilities", &self.capabilities),
            ("projects", &self.projects),
        ] {
            if list.len() > MAX_LIST || list.iter().any(|t| t.len() > MAX_TEXT) {
                return Err(field(name, "too many entries or an entry too long"));
            }
        }
        if self.peers.len() > MAX_PRESENCE_PEERS || self.peers.iter().any(|t| t.len() > 128) {
            return Err(field("peers", "too many entries or an entry too long"));
        }
        if self.heads.len() > MAX_PRESENCE_HEAD_PROJECTS {
            return Err(field("heads", "too many projects"));
        }
        for (project_id, heads) in &self.heads {
            check_project_id(project_id)?;
            if heads.len() > MAX_PRESENCE_HEADS {
                return Err(field("heads", format!("too many for project {project_id}")));
            }
            if !heads
                .iter()
                .all(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(field("heads", "a head is not 64 hex digits"));
            }
        }
        if let Some(gpu) = &self.gpu {
            if gpu.vram_used > gpu.vram_total {
                return Err(field("gpu.vram_used", "more than vram_total"));
            }
            if gpu.utilization.is_some_and(|u| u > 100) {
                return Err(field("gpu.utilization", "over 100 percent"));
            }
        }
        if self.status == NodeStatus::Offline {
            return Err(field("status", "a node cannot announce itself offline"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn presence() -> Presence {
        Presence {
            node_id: "12D3KooWpeer".into(),
            host_name: "렌더-박스".into(),
            version: "0.1.0".into(),
            gpu: Some(GpuInfo {
                name: "NVIDIA H100".into(),
                vram_total: 80 << 30,
                vram_used: 1 << 30,
                utilization: Some(12),
                source: GpuSource::Nvml,
            }),
            status: NodeStatus::Idle,
            status_detail: None,
            current_job: None,
            comfy_url: Some("http://127.0.0.1:8188".into()),
            capabilities: vec!["card".into()],
            projects: vec!["p1".into()],
            peers: vec!["12D3KooWother".into()],
            heads: [("p1".to_owned(), vec!["ab".repeat(32)])].into(),
            sent_at_ms: 1,
        }
    }

    #[test]
    fn sync_request_round_trips() {
        let request = SyncRequest {
            project_id: "abc-123".into(),
            message: vec![0x42, 1, 2, 3],
        };
        assert_eq!(SyncRequest::decode(&request.encode()), Ok(request));
    }

    #[test]
    fn sync_request_rejects_bad_frames() {
        assert_eq!(
            SyncRequest::decode(b"RM"),
            Err(WireError::Truncated("sync request header"))
        );
        assert_eq!(
            SyncRequest::decode(b"XXXX\0\x01a\x42"),
            Err(WireError::BadMagic)
        );
        assert_eq!(
            SyncRequest::decode(b"RMS1\0\x09abc"),
            Err(WireError::Truncated("project id"))
        );
        assert!(matches!(
            SyncRequest::decode(b"RMS1\0\x03../\x42"),
            Err(WireError::Field {
                field: "project_id",
                ..
            })
        ));
        assert!(matches!(
            SyncRequest::decode(b"RMS1\0\x03abc"),
            Err(WireError::Field {
                field: "message",
                ..
            })
        ));
    }

    #[test]
    fn changes_push_round_trips_and_is_told_from_a_sync_request() {
        let push = ChangesPush {
            project_id: "p-1".into(),
            changes: vec![vec![0x85, 0x6f, 0x4a, 0x83, 1], vec![9; 300]],
        };
        let frame = push.encode();
        assert_eq!(ChangesPush::decode(&frame), Ok(push.clone()));
        assert_eq!(SyncFrame::decode(&frame), Ok(SyncFrame::Changes(push)));
        let sync = SyncRequest {
            project_id: "p".into(),
            message: vec![0x42],
        };
        assert_eq!(SyncFrame::decode(&sync.encode()), Ok(SyncFrame::Sync(sync)));
    }

    #[test]
    fn changes_push_rejects_bad_frames() {
        let good = ChangesPush {
            project_id: "p".into(),
            changes: vec![vec![1, 2, 3]],
        }
        .encode();
        // Every cut of a good frame is refused, none panics.
        for cut in 0..good.len() {
            assert!(ChangesPush::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good;
        trailing.push(0);
        assert!(matches!(
            ChangesPush::decode(&trailing),
            Err(WireError::Field {
                field: "changes",
                ..
            })
        ));
        assert!(matches!(
            ChangesPush::decode(b"RMC1\0\x01p\0\0\0\0"),
            Err(WireError::Field {
                field: "changes",
                ..
            })
        ));
        assert!(matches!(
            ChangesPush::decode(b"RMC1\0\x01p\xff\xff\xff\xff"),
            Err(WireError::TooLarge { .. })
        ));
        assert!(matches!(
            ChangesPush::decode(b"RMC1\0\x01p\0\0\0\x01\0\0\0\0"),
            Err(WireError::Field {
                field: "changes",
                ..
            })
        ));
        assert!(matches!(
            ChangesPush::decode(b"RMC1\0\x03../\0\0\0\x01\0\0\0\x01a"),
            Err(WireError::Field {
                field: "project_id",
                ..
            })
        ));
    }

    #[test]
    fn sync_response_round_trips() {
        for response in [
            SyncResponse::Accepted,
            SyncResponse::Rejected("unknown project 'x'".into()),
        ] {
            assert_eq!(SyncResponse::decode(&response.encode()), Ok(response));
        }
        assert!(SyncResponse::decode(&[7]).is_err());
        assert!(SyncResponse::decode(&[]).is_err());
        let long = "가".repeat(1000);
        let encoded = SyncResponse::Rejected(long).encode();
        assert!(encoded.len() <= 1 + MAX_REASON_LEN);
        assert!(SyncResponse::decode(&encoded).is_ok());
    }

    #[test]
    fn presence_round_trips_and_checks_its_author() {
        let p = presence();
        assert_eq!(Presence::decode(&p.encode(), "12D3KooWpeer"), Ok(p.clone()));
        let err = Presence::decode(&p.encode(), "12D3KooWother").unwrap_err();
        assert!(err.to_string().contains("signed by 12D3KooWother"), "{err}");
    }

    #[test]
    fn presence_rejects_lies() {
        let mut p = presence();
        p.gpu.as_mut().unwrap().vram_used = u64::MAX;
        assert!(Presence::decode(&p.encode(), &p.node_id).is_err());
        let mut p = presence();
        p.gpu.as_mut().unwrap().utilization = Some(250);
        assert!(Presence::decode(&p.encode(), &p.node_id).is_err());
        let mut p = presence();
        p.host_name = "x".repeat(10_000);
        assert!(Presence::decode(&p.encode(), &p.node_id).is_err());
        let mut p = presence();
        p.status = NodeStatus::Offline;
        assert!(Presence::decode(&p.encode(), &p.node_id).is_err());
        let mut p = presence();
        p.peers = vec!["12D3KooWx".into(); MAX_PRESENCE_PEERS + 1];
        let err = Presence::decode(&p.encode(), &p.node_id).unwrap_err();
        assert!(err.to_string().contains("peers"), "{err}");
        // An older node sends no peer list: accepted, read as none.
        let old = presence().encode();
        let text = String::from_utf8(old)
            .unwrap()
            .replace(",\"peers\":[\"12D3KooWother\"]", "");
        assert!(!text.contains("peers"), "{text}");
        assert!(
            Presence::decode(text.as_bytes(), "12D3KooWpeer")
                .unwrap()
                .peers
                .is_empty()
        );
        let mut p = presence();
        p.heads.insert("p2".into(), vec!["not a hash".into()]);
        let err = Presence::decode(&p.encode(), &p.node_id).unwrap_err();
        assert!(err.to_string().contains("heads"), "{err}");
        let mut p = presence();
        p.heads
            .insert("p2".into(), vec!["cd".repeat(32); MAX_PRESENCE_HEADS + 1]);
        assert!(Presence::decode(&p.encode(), &p.node_id).is_err());
        let mut p = presence();
        p.heads.insert("../x".into(), vec![]);
        assert!(Presence::decode(&p.encode(), &p.node_id).is_err());
        // Nor heads: read as none.
        let text = String::from_utf8(presence().encode()).unwrap();
        let cut = text.replace(
            &format!(",\"heads\":{{\"p1\":[\"{}\"]}}", "ab".repeat(32)),
            "",
        );
        assert!(!cut.contains("heads"), "{cut}");
        assert!(
            Presence::decode(cut.as_bytes(), "12D3KooWpeer")
                .unwrap()
                .heads
                .is_empty()
        );
        assert!(Presence::decode(&vec![b' '; MAX_PRESENCE_BYTES + 1], &p.node_id).is_err());
        assert!(Presence::decode(b"{\"node_id\":1}", &p.node_id).is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SyncRequest::decode(&bytes);
            let _ = SyncFrame::decode(&bytes);
            let _ = SyncResponse::decode(&bytes);
            let _ = Presence::decode(&bytes, "x");
        }

        #[test]
        fn a_changes_push_with_any_body_is_parsed_or_refused_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut frame = b"RMC1\0\x02p1".to_vec();
            frame.extend_from_slice(&tail);
            if let Ok(push) = ChangesPush::decode(&frame) {
                prop_assert_eq!(push.encode(), frame);
            }
        }

        #[test]
        fn garbage_after_a_valid_header_is_left_to_automerge(tail in proptest::collection::vec(any::<u8>(), 1..100)) {
            let mut frame = b"RMS1\0\x02p1".to_vec();
            frame.extend_from_slice(&tail);
            let request = SyncRequest::decode(&frame).unwrap();
            prop_assert_eq!(request.message, tail);
        }
    }
}

// ---- blobs ------------------------------------------------------------------------

/// Request-response protocol for blobs by hash.
pub const BLOB_PROTOCOL: &str = "/reelmesh/blob/1";
const BLOB_MAGIC: &[u8; 4] = b"RMB1";
/// Largest outboard a peer may send: 32 bytes per MiB, so blobs up to 256 GiB.
pub const MAX_OUTBOARD_CVS: usize = 256 * 1024;

/// A request for a blob: always a hash, never a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobRequest {
    /// "Do you have it? Its length and piece hashes, please."
    Outboard {
        /// The blob's BLAKE3 hash.
        hash: [u8; 32],
    },
    /// One piece ([`crate::blobtree::CHUNK`] bytes, the last one shorter).
    Chunk {
        /// The blob's BLAKE3 hash.
        hash: [u8; 32],
        /// Piece index.
        index: u64,
    },
}

impl BlobRequest {
    /// `RMB1 | kind (0 outboard, 1 chunk) | hash | index u64 be (chunk only)`.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = BLOB_MAGIC.to_vec();
        match self {
            BlobRequest::Outboard { hash } => {
                out.push(0);
                out.extend_from_slice(hash);
            }
            BlobRequest::Chunk { hash, index } => {
                out.push(1);
                out.extend_from_slice(hash);
                out.extend_from_slice(&index.to_be_bytes());
            }
        }
        out
    }

    /// Parse a peer's request.
    pub fn decode(bytes: &[u8]) -> Result<BlobRequest, String> {
        let body = bytes
            .strip_prefix(BLOB_MAGIC.as_slice())
            .ok_or("blob request: bad magic")?;
        let (&kind, rest) = body.split_first().ok_or("blob request: empty")?;
        let hash: [u8; 32] = rest
            .get(..32)
            .and_then(|h| h.try_into().ok())
            .ok_or("blob request: short hash")?;
        match (kind, rest.len()) {
            (0, 32) => Ok(BlobRequest::Outboard { hash }),
            (1, 40) => {
                let index = u64::from_be_bytes(
                    rest[32..40]
                        .try_into()
                        .map_err(|_| "blob request: short index")?,
                );
                Ok(BlobRequest::Chunk { hash, index })
            }
            _ => Err(format!(
                "blob request: kind {kind} with {} bytes",
                rest.len()
            )),
        }
    }
}

/// An answer to a [`BlobRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobResponse {
    /// The blob's length and piece chaining values.
    Outboard {
        /// Length in bytes.
        len: u64,
        /// One chaining value per piece (empty for a one-piece blob).
        cvs: Vec<[u8; 32]>,
    },
    /// A piece's bytes (shared with the frame they came in: no copy).
    Chunk(bytes::Bytes),
    /// Not here.
    NotFound,
}

impl BlobResponse {
    /// The first byte of an encoded [`BlobResponse::Chunk`]; a holder builds the
    /// frame as this byte followed by the piece, read straight in (no copy).
    pub const CHUNK_KIND: u8 = 1;

    /// `kind (0 outboard, 1 chunk, 2 not found) | ...`.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        match self {
            BlobResponse::Outboard { len, cvs } => {
                let mut out = Vec::with_capacity(9 + cvs.len() * 32);
                out.push(0);
                out.extend_from_slice(&len.to_be_bytes());
                for cv in cvs {
                    out.extend_from_slice(cv);
                }
                out
            }
            BlobResponse::Chunk(bytes) => {
                let mut out = Vec::with_capacity(1 + bytes.len());
                out.push(Self::CHUNK_KIND);
                out.extend_from_slice(bytes);
                out
            }
            BlobResponse::NotFound => vec![2],
        }
    }

    /// [`BlobResponse::decode`] keeping the frame: a piece's bytes are the
    /// frame's, not a copy.
    pub fn decode_owned(frame: Vec<u8>) -> Result<BlobResponse, String> {
        if frame.first() == Some(&Self::CHUNK_KIND) {
            return Ok(BlobResponse::Chunk(bytes::Bytes::from(frame).slice(1..)));
        }
        BlobResponse::decode(&frame)
    }

    /// Parse a peer's answer (the content is verified by the caller against the
    /// hash; this only checks the shape and the bounds).
    pub fn decode(bytes: &[u8]) -> Result<BlobResponse, String> {
        let (&kind, rest) = bytes.split_first().ok_or("blob response: empty")?;
        match kind {
            0 => {
                let len = u64::from_be_bytes(
                    rest.get(..8)
                        .and_then(|b| b.try_into().ok())
                        .ok_or("blob response: short length")?,
                );
                let cvs_bytes = &rest[8..];
                if cvs_bytes.len() % 32 != 0 || cvs_bytes.len() / 32 > MAX_OUTBOARD_CVS {
                    return Err(format!(
                        "blob response: outboard of {} bytes",
                        cvs_bytes.len()
                    ));
                }
                let cvs = cvs_bytes
                    .chunks_exact(32)
                    .map(|c| {
                        let mut cv = [0_u8; 32];
                        cv.copy_from_slice(c);
                        cv
                    })
                    .collect();
                Ok(BlobResponse::Outboard { len, cvs })
            }
            Self::CHUNK_KIND => Ok(BlobResponse::Chunk(bytes::Bytes::copy_from_slice(rest))),
            2 if rest.is_empty() => Ok(BlobResponse::NotFound),
            other => Err(format!("blob response: unknown kind {other}")),
        }
    }
}

#[cfg(test)]
mod blob_tests {
    use super::*;

    #[test]
    fn blob_messages_round_trip_and_garbage_is_refused() {
        let hash = [7_u8; 32];
        for request in [
            BlobRequest::Outboard { hash },
            BlobRequest::Chunk {
                hash,
                index: 1 << 40,
            },
        ] {
            assert_eq!(BlobRequest::decode(&request.encode()), Ok(request));
        }
        for response in [
            BlobResponse::Outboard {
                len: 5 << 20,
                cvs: vec![[1; 32], [2; 32]],
            },
            BlobResponse::Chunk(vec![9; 100].into()),
            BlobResponse::Chunk(bytes::Bytes::new()),
            BlobResponse::NotFound,
        ] {
            assert_eq!(
                BlobResponse::decode(&response.encode()),
                Ok(response.clone())
            );
            assert_eq!(BlobResponse::decode_owned(response.encode()), Ok(response));
        }
        assert!(BlobResponse::decode_owned(Vec::new()).is_err());
        assert!(BlobResponse::decode_owned(vec![2, 0]).is_err());
        assert!(BlobRequest::decode(b"RMB1").is_err());
        assert!(BlobRequest::decode(b"XXXX\x00aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_err());
        let mut long = BlobRequest::Outboard { hash }.encode();
        long.push(0);
        assert!(BlobRequest::decode(&long).is_err());
        assert!(BlobResponse::decode(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 5]).is_err());
        assert!(BlobResponse::decode(&[2, 0]).is_err());
        assert!(BlobResponse::decode(&[]).is_err());
    }
}

// ---- jobs gossip --------------------------------------------------------------------

/// Gossip topic for offers and job progress (ephemeral: never written to the
/// document).
pub const JOBS_TOPIC: &str = "reelmesh/jobs/1";
/// Largest jobs-topic message accepted (under the 64 KiB gossip frame).
pub const MAX_JOBS_GOSSIP_BYTES: usize = 60 * 1024;
/// Largest preview image carried in a progress message (base64 text).
pub const MAX_PREVIEW_BASE64: usize = 48 * 1024;
const MAX_ID: usize = 128;
const MAX_STEP: usize = 512;
/// Most jobs an offer may say it holds.
pub const MAX_HOLDING: usize = 64;
/// Longest "what is missing" text per workflow in an offer.
pub const MAX_REASON: usize = 2048;
const MAX_ERROR: usize = 4096;

/// A message on the jobs topic.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobsGossip {
    /// A node's standing offer to run jobs (its bid on every job it can run).
    Offer(crate::placement::Offer),
    /// A job moved or made progress on its claimant.
    Progress(crate::jobs::JobUpdate),
}

impl JobsGossip {
    /// JSON.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parse a message whose signed gossip author is `author`: the node it speaks
    /// for must be the author (nobody offers or reports in another node's name), and
    /// every text and list is bounded.
    pub fn decode(bytes: &[u8], author: &str) -> Result<JobsGossip, String> {
        if bytes.len() > MAX_JOBS_GOSSIP_BYTES {
            return Err(format!(
                "jobs message of {} bytes (limit {MAX_JOBS_GOSSIP_BYTES})",
                bytes.len()
            ));
        }
        let message: JobsGossip =
            serde_json::from_slice(bytes).map_err(|e| format!("malformed jobs message: {e}"))?;
        let speaker = match &message {
            JobsGossip::Offer(o) => &o.node_id,
            JobsGossip::Progress(p) => &p.node_id,
        };
        if speaker != author {
            return Err(format!(
                "a message in the name of {speaker} sent by {author}"
            ));
        }
        let too_long = |what: &str, text: &str, max: usize| -> Result<(), String> {
            if text.len() > max {
                Err(format!("{what} of {} bytes (limit {max})", text.len()))
            } else {
                Ok(())
            }
        };
        match &message {
            JobsGossip::Offer(o) => {
                too_long("host", &o.host, MAX_TEXT)?;
                if o.workflows.len() > MAX_LIST || o.unavailable.len() > MAX_LIST {
                    return Err(format!("an offer listing over {MAX_LIST} workflows"));
                }
                for w in &o.workflows {
                    too_long("workflow id", w, MAX_ID)?;
                }
                for (w, why) in &o.unavailable {
                    too_long("workflow id", w, MAX_ID)?;
                    too_long("reason", why, MAX_REASON)?;
                }
                too_long("pause reason", o.paused.as_deref().unwrap_or(""), MAX_STEP)?;
                too_long(
                    "renderer problem",
                    o.renderer_down.as_deref().unwrap_or(""),
                    MAX_REASON,
                )?;
                if o.holding.len() > MAX_HOLDING || o.intents.len() > MAX_HOLDING {
                    return Err(format!(
                        "an offer holding {} jobs and announcing {} (limit {MAX_HOLDING} each)",
                        o.holding.len(),
                        o.intents.len()
                    ));
                }
                for (id, _) in o.holding.iter().chain(&o.intents) {
                    too_long("job id", id, MAX_ID)?;
                }
                if o.rates.len() > MAX_LIST {
                    return Err(format!("an offer with rates for over {MAX_LIST} workflows"));
                }
                for (w, _) in &o.rates {
                    too_long("workflow id", w, MAX_ID)?;
                }
            }
            JobsGossip::Progress(p) => {
                for (what, text) in [
                    ("project id", &p.project_id),
                    ("job id", &p.job_id),
                    ("shot code", &p.shot_code),
                    ("workflow id", &p.workflow),
                    ("take id", p.take_id.as_ref().unwrap_or(&String::new())),
                ] {
                    too_long(what, text, MAX_ID)?;
                }
                too_long("step", &p.step, MAX_STEP)?;
                too_long("error", p.error.as_deref().unwrap_or(""), MAX_ERROR)?;
                too_long("waiting", p.waiting.as_deref().unwrap_or(""), MAX_ERROR)?;
                if let Some(preview) = &p.preview {
                    too_long("preview", &preview.base64, MAX_PREVIEW_BASE64)?;
                    too_long("preview type", &preview.mime, MAX_ID)?;
                }
                if !p.fraction.is_finite() || !(0.0..=1.0).contains(&p.fraction) {
                    return Err(format!("progress fraction {} is not in 0..=1", p.fraction));
                }
            }
        }
        Ok(message)
    }
}

#[cfg(test)]
mod jobs_gossip_tests {
    use super::*;
    use crate::jobs::{JobState, JobUpdate, Preview};
    use crate::placement::Offer;

    fn offer(node: &str) -> Offer {
        Offer {
            node_id: node.into(),
            host: "render-1".into(),
            seq: 3,
            workflows: vec!["card".into()],
            utilization: 10,
            queue_len: 1,
            slots: 1,
            paused: None,
            unavailable: vec![("flux_basic".into(), "model flux1-dev.safetensors".into())],
            holding: vec![("j1".into(), 2)],
            mean_run_ms: Some(850),
            intents: vec![("j2".into(), 1)],
            sent_ms: 1_700_000_000_000,
            busy_ms: Some(1_250),
            rates: vec![("card".into(), 1_500)],
            overhead_ms: 0,
            renderer_down: None,
        }
    }

    #[test]
    fn messages_round_trip_and_speak_only_for_their_author() {
        let o = JobsGossip::Offer(offer("peer-a"));
        assert_eq!(JobsGossip::decode(&o.encode(), "peer-a"), Ok(o.clone()));
        let err = JobsGossip::decode(&o.encode(), "peer-b").expect_err("forged");
        assert!(
            err.contains("in the name of peer-a sent by peer-b"),
            "{err}"
        );
        let p = JobsGossip::Progress(JobUpdate {
            node_id: "peer-a".into(),
            project_id: "p".into(),
            job_id: "j".into(),
            shot_code: "SHT-00001".into(),
            workflow: "card".into(),
            state: JobState::Running,
            fraction: 0.5,
            step: "KSampler 10/20 · 장면".into(),
            attempt: 1,
            preview: Some(Preview {
                mime: "image/jpeg".into(),
                base64: "AAAA".into(),
            }),
            ..JobUpdate::default()
        });
        assert_eq!(JobsGossip::decode(&p.encode(), "peer-a"), Ok(p));
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        assert!(JobsGossip::decode(b"{", "a").is_err());
        assert!(JobsGossip::decode(&vec![b' '; MAX_JOBS_GOSSIP_BYTES + 1], "a").is_err());
        let mut o = offer("a");
        o.workflows = vec!["x".repeat(MAX_ID + 1)];
        assert!(JobsGossip::decode(&JobsGossip::Offer(o).encode(), "a").is_err());
        let mut o = offer("a");
        o.rates = (0..=MAX_LIST).map(|i| (format!("w{i}"), 1)).collect();
        let err = JobsGossip::decode(&JobsGossip::Offer(o).encode(), "a").expect_err("bad");
        assert!(err.contains("rates"), "{err}");
        let mut o = offer("a");
        o.rates = vec![("x".repeat(MAX_ID + 1), 1)];
        assert!(JobsGossip::decode(&JobsGossip::Offer(o).encode(), "a").is_err());
        let p = JobUpdate {
            node_id: "a".into(),
            fraction: 7.0,
            ..JobUpdate::default()
        };
        let err = JobsGossip::decode(&JobsGossip::Progress(p).encode(), "a").expect_err("bad");
        assert!(err.contains("fraction"), "{err}");
    }
}
