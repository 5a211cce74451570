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

/// A project named `name` in `dir` of `shots` shots with Korean scenes and actions
/// (`action` gets the shot number), each 1 to 5 s at 24 fps.
pub fn korean_project(dir: &Path, name: &str, shots: u64, action: &str) {
    use reelmesh_protocol::document::Position;
    use reelmesh_protocol::model::{Shot, ShotCode};
    let store = reelmesh_node::store::DataDir::open(dir).expect("data");
    let mut project = store.create_project(name).expect("project");
    let list: Vec<Shot> = (1..=shots)
        .map(|i| {
            let mut shot = Shot::new(ShotCode(i), 24 + (i * 37) % 96);
            shot.scene = format!("장면 {i}: 비 내리는 서울 뒷골목, 밤");
            shot.action = format!("{action} ({i})");
            shot
        })
        .collect();
    project
        .doc_mut()
        .add_shots(&list, &Position::End)
        .expect("shots");
    project.save().expect("save");
}
