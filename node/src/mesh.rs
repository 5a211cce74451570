//! The libp2p side of a node: transport, behaviours and the sync wire codec.
//!
//! Transport is TCP + the private mesh layer ([`private`]: libp2p's pnet design,
//! keyed by the mesh's pre-shared key, with XChaCha20) + Noise + Yamux. The private
//! layer wraps the raw socket before anything else is said, so a process without
//! the mesh key cannot finish a handshake or read a byte of any project (QUIC is
//! left out: nothing can wrap its packets that way). On top:
//! - `identify` (addresses, agent version), `ping` (a dead connection is closed by
//!   the node when pings fail);
//! - `gossipsub` for presence: signed messages, strict validation, every message
//!   checked by the node before it is forwarded, mesh parameters lowered so two- and
//!   three-node meshes work, flood publishing;
//! - `request_response` with [`codec::SyncCodec`] for document sync, whose frames
//!   are bounded but far above gossip's 64 KiB;
//! - `mdns` on the LAN (optional; it skips loopback, tests dial explicitly);
//! - connection limits.
//!
//! This module builds the swarm; the event loop that drives it is [`crate::node`].

pub mod codec;
pub mod failure;
pub mod keys;
pub mod private;

use std::time::Duration;

use libp2p::core::transport::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Swarm, Transport, connection_limits, gossipsub, identify, mdns, noise, ping, request_response,
    tcp, yamux,
};

use reelmesh_protocol::wire;

/// Knobs for the swarm (defaults suit a studio LAN).
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Largest sync frame accepted from a peer (a sync message can be the whole
    /// document, so this is large but bounded).
    pub max_sync_bytes: usize,
    /// How long a sync exchange may take (a full first sync of a big project).
    pub sync_timeout: Duration,
    /// Discover peers on the LAN with mDNS.
    pub mdns: bool,
    /// Gossip heartbeat (mesh maintenance), not the presence heartbeat.
    pub gossip_heartbeat: Duration,
    /// Push local changes to every peer as they are made. Off, they move only by
    /// sync exchanges (on connect, and when a peer's heartbeat shows heads it
    /// lacks), as with a node that does not push: for diagnosing sync.
    pub push_changes: bool,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            max_sync_bytes: 256 * 1024 * 1024,
            sync_timeout: Duration::from_secs(120),
            mdns: true,
            gossip_heartbeat: Duration::from_millis(500),
            push_changes: true,
        }
    }
}

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// Noise could not be set up with this identity.
    #[error("noise setup: {0}")]
    Noise(#[from] noise::Error),
    /// gossipsub rejected its configuration.
    #[error("gossipsub setup: {0}")]
    Gossipsub(String),
    /// mDNS could not start (no usable interface).
    #[error("mdns setup: {0}")]
    Mdns(#[from] std::io::Error),
}

/// Everything the node speaks, composed into one behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connection caps (total, pending, per peer).
    pub limits: connection_limits::Behaviour,
    /// Exchange of addresses and versions.
    pub identify: identify::Behaviour,
    /// Liveness of connections.
    pub ping: ping::Behaviour,
    /// Presence heartbeats.
    pub gossipsub: gossipsub::Behaviour,
    /// Document sync.
    pub sync: request_response::Behaviour<codec::SyncCodec>,
    /// Blobs by hash: outboards and 1 MiB pieces.
    pub blobs: request_response::Behaviour<codec::SyncCodec>,
    /// LAN discovery.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Largest blob frame either way: an outboard of [`wire::MAX_OUTBOARD_CVS`] chaining
/// values, or a piece, plus headers.
pub const MAX_BLOB_FRAME: usize = wire::MAX_OUTBOARD_CVS * 32 + 64;

/// The presence topic.
#[must_use]
pub fn presence_topic() -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(wire::PRESENCE_TOPIC)
}

/// The job bids topic.
#[must_use]
pub fn jobs_topic() -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(wire::JOBS_TOPIC)
}

/// Build a swarm for this identity in the private mesh whose key is `mesh_key`.
pub fn build_swarm(
    identity: &Keypair,
    mesh_key: [u8; 32],
    config: &MeshConfig,
) -> Result<Swarm<Behaviour>, MeshError> {
    let peer_id = identity.public().to_peer_id();
    let noise_config = noise::Config::new(identity)?;
    let transport = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .and_then(move |socket, _| async move { private::handshake(&mesh_key, socket).await })
        .upgrade(Version::V1Lazy)
        .authenticate(noise_config)
        .multiplex(yamux::Config::default())
        .timeout(Duration::from_secs(10))
        .boxed();

    let gossip_config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(config.gossip_heartbeat)
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .mesh_n(2)
        .mesh_n_low(1)
        .mesh_n_high(4)
        .mesh_outbound_min(0)
        .flood_publish(true)
        .max_transmit_size(64 * 1024)
        .build()
        .map_err(|e| MeshError::Gossipsub(e.to_string()))?;
    let mut gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(identity.clone()),
        gossip_config,
    )
    .map_err(|e| MeshError::Gossipsub(e.to_owned()))?;
    for topic in [presence_topic(), jobs_topic()] {
        gossipsub
            .subscribe(&topic)
            .map_err(|e| MeshError::Gossipsub(e.to_string()))?;
    }

    let mdns = if config.mdns {
        Some(mdns::tokio::Behaviour::new(
            mdns::Config::default(),
            peer_id,
        )?)
    } else {
        None
    };

    let behaviour = Behaviour {
        limits: connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_pending_incoming(Some(64))
                .with_max_pending_outgoing(Some(64))
                .with_max_established(Some(256))
                .with_max_established_per_peer(Some(2)),
        ),
        identify: identify::Behaviour::new(
            identify::Config::new("/reelmesh/1".to_owned(), identity.public())
                .with_agent_version(format!("reelmesh/{}", env!("CARGO_PKG_VERSION"))),
        ),
        ping: ping::Behaviour::new(
            ping::Config::new()
                .with_interval(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(10)),
        ),
        gossipsub,
        sync: request_response::Behaviour::with_codec(
            codec::SyncCodec::new(config.max_sync_bytes),
            [(
                libp2p::StreamProtocol::new(wire::SYNC_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(config.sync_timeout)
                .with_max_concurrent_streams(256),
        ),
        blobs: request_response::Behaviour::with_codec(
            // A piece is 1 MiB, an outboard up to 8 MiB (256 GiB blobs).
            // Room for a piece, its kind byte, and the end-of-stream probe.
            codec::SyncCodec::new(MAX_BLOB_FRAME)
                .expecting(reelmesh_protocol::blobtree::CHUNK as usize + 64),
            [(
                libp2p::StreamProtocol::new(wire::BLOB_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(Duration::from_secs(60))
                .with_max_concurrent_streams(64),
        ),
        mdns: Toggle::from(mdns),
    };

    let swarm = Swarm::new(
        transport,
        behaviour,
        peer_id,
        libp2p::swarm::Config::with_tokio_executor()
            .with_idle_connection_timeout(Duration::from_secs(3600)),
    );
    Ok(swarm)
}
