//! What several benchmarks share: percentiles, milliseconds, a node on loopback.
//! Each bench includes this file (`#[path = "support/common.rs"] mod common;`) and
//! uses part of it.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use libp2p::Multiaddr;
use reelmesh_node::node::{Node, NodeConfig};

/// The `p` quantile (0..=1) of sorted samples, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A node on 127.0.0.1 dialling `peers`, and the address others dial it at.
pub async fn loopback(dir: &Path, peers: Vec<Multiaddr>) -> (Node, Multiaddr) {
    let node = Node::start(NodeConfig::loopback(dir.to_owned(), peers))
        .await
        .expect("start");
    let addr = node.listen_addrs()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(node.handle().peer_id()));
    (node, addr)
}
