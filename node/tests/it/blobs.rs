//! Blobs by hash between real nodes on loopback: fetched in verified 1 MiB pieces
//! from whichever peers have them; a peer that lies is dropped; a fetch resumes.
//! Adversaries and counting holders are bare swarms driven by the test.

#![allow(clippy::unwrap_used)] // test helpers panic on failure by design

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{Event, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use reelmesh_node::mesh::codec::Frame;
use reelmesh_node::mesh::{self, Behaviour, BehaviourEvent, MeshConfig, keys};
use reelmesh_node::node::fetch::FetchError;
use reelmesh_node::node::{Node, NodeConfig, NodeEvent, NodeHandle};
use reelmesh_node::store::blobs::{BlobHash, BlobStore};
use reelmesh_protocol::blobtree;
use reelmesh_protocol::wire::{BlobRequest, BlobResponse, SyncResponse};

const KEY: [u8; 32] = [0x42; 32];
const DEADLINE: Duration = Duration::from_secs(30);

fn bytes(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 131 + usize::from(salt)) % 251) as u8)
        .collect()
}

async fn node(peers: Vec<Multiaddr>) -> (Node, Multiaddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    keys::store_mesh_key(dir.path(), KEY).unwrap();
    let node = Node::start(NodeConfig::loopback(dir.path().to_owned(), peers))
        .await
        .unwrap();
    let addr = node.listen_addrs()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(node.handle().peer_id()));
    (node, addr, dir)
}

/// Wait until `handle` is connected to `count` peers.
async fn connected(handle: &NodeHandle, count: usize) {
    let mut events = handle.subscribe();
    tokio::time::timeout(DEADLINE, async {
        loop {
            let status = handle.status().await.unwrap();
            if status
                .peers
                .iter()
                .filter(|p| p.connected && !p.this_node)
                .count()
                >= count
            {
                return;
            }
            let _ = events.recv().await;
        }
    })
    .await
    .expect("peers connected");
}

/// How a bare-swarm holder answers.
#[derive(Clone, Copy)]
enum Holder {
    /// Every piece right.
    Honest,
    /// The outboard right, every piece with one byte flipped.
    Corrupt,
    /// The first `n` pieces it is asked for, then "not found".
    ServesOnly(u64),
}

/// A bare swarm in the mesh holding `blob`, answering blob requests as `mode` says
/// and counting the pieces it served. Runs until dropped.
async fn spawn_holder(
    blob: Vec<u8>,
    mode: Holder,
) -> (Multiaddr, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let mut swarm: Swarm<Behaviour> = mesh::build_swarm(
        &libp2p::identity::Keypair::generate_ed25519(),
        KEY,
        &MeshConfig {
            mdns: false,
            ..MeshConfig::default()
        },
    )
    .unwrap();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let peer_id = *swarm.local_peer_id();
    let (addr_tx, mut addr_rx) = tokio::sync::mpsc::unbounded_channel();
    let served = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&served);
    let root = *blake3::hash(&blob).as_bytes();
    let len = blob.len() as u64;
    let cvs = blobtree::outboard(&blob);
    let task = tokio::spawn(async move {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => {
                    let _ = addr_tx.send(address.with(libp2p::multiaddr::Protocol::P2p(peer_id)));
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(Event::Message {
                    message: Message::Request { channel, .. },
                    ..
                })) => {
                    let no = SyncResponse::Rejected("not interested".into());
                    let _ = swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, no.encode());
                }
                SwarmEvent::Behaviour(BehaviourEvent::Blobs(Event::Message {
                    message:
                        Message::Request {
                            request: Frame::Bytes(request),
                            channel,
                            ..
                        },
                    ..
                })) => {
                    let answer = match BlobRequest::decode(&request).unwrap() {
                        BlobRequest::Outboard { hash } if hash == root => BlobResponse::Outboard {
                            len,
                            cvs: cvs.clone(),
                        },
                        BlobRequest::Chunk { hash, index } if hash == root => {
                            let start = (index * blobtree::CHUNK) as usize;
                            let end = (start + blobtree::CHUNK as usize).min(blob.len());
                            let mut piece = blob[start..end].to_vec();
                            let count = counter.fetch_add(1, Ordering::SeqCst);
                            match mode {
                                Holder::Honest => BlobResponse::Chunk(piece.into()),
                                Holder::Corrupt => {
                                    piece[7] ^= 0x10;
                                    BlobResponse::Chunk(piece.into())
                                }
                                Holder::ServesOnly(n) if count < n => {
                                    BlobResponse::Chunk(piece.into())
                                }
                                Holder::ServesOnly(_) => BlobResponse::NotFound,
                            }
                        }
                        _ => BlobResponse::NotFound,
                    };
                    let _ = swarm
                        .behaviour_mut()
                        .blobs
                        .send_response(channel, answer.encode());
                }
                _ => {}
            }
        }
    });
    let addr = tokio::time::timeout(DEADLINE, addr_rx.recv())
        .await
        .unwrap()
        .unwrap();
    (addr, served, task)
}

#[tokio::test]
async fn a_blob_is_fetched_in_verified_pieces_from_the_peers_that_have_it() {
    let (a, a_addr, a_dir) = node(vec![]).await;
    let (b, b_addr, b_dir) = node(vec![a_addr.clone()]).await;
    let blob = bytes(5 * blobtree::CHUNK as usize + 12_345, 1);
    let stored = BlobStore::open(a_dir.path()).unwrap().put(&blob).unwrap();
    BlobStore::open(b_dir.path()).unwrap().put(&blob).unwrap();
    let (c, _, c_dir) = node(vec![a_addr, b_addr]).await;
    connected(&c.handle(), 2).await;

    let fetched = c.handle().fetch_blob(stored.hash).await.unwrap();
    assert_eq!(fetched.holders, 2);
    assert_eq!(fetched.pieces_fetched, 6);
    let store = BlobStore::open(c_dir.path()).unwrap();
    assert_eq!(store.read(&stored.hash).unwrap(), blob);
    // Already here: nothing fetched.
    assert_eq!(
        c.handle()
            .fetch_blob(stored.hash)
            .await
            .unwrap()
            .pieces_fetched,
        0
    );

    // Two fetches of one blob at once (a fetch ahead of a job, then the job's
    // own): one fetches every piece, the other waits and finds it whole.
    let second = bytes(3 * blobtree::CHUNK as usize + 7, 3);
    let second_hash = BlobStore::open(a_dir.path())
        .unwrap()
        .put(&second)
        .unwrap()
        .hash;
    let (h1, h2) = (c.handle(), c.handle());
    let (one, two) = tokio::join!(h1.fetch_blob(second_hash), h2.fetch_blob(second_hash));
    let mut pieces = [one.unwrap().pieces_fetched, two.unwrap().pieces_fetched];
    pieces.sort_unstable();
    assert_eq!(pieces, [0, 4]);
    assert_eq!(store.read(&second_hash).unwrap(), second);

    // A hash nobody has: a clear error, nothing written.
    let unknown = BlobHash::of(b"nobody has this");
    match c.handle().fetch_blob(unknown).await {
        Err(FetchError::NotFound { hash, asked }) => {
            assert_eq!(hash, unknown.to_hex());
            assert_eq!(asked, 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(!store.has(&unknown));
    for n in [c, b, a] {
        n.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_peer_serving_corrupt_pieces_is_dropped_and_the_blob_comes_from_another() {
    let blob = bytes(3 * blobtree::CHUNK as usize + 999, 2);
    let (liar_addr, lied, _liar) = spawn_holder(blob.clone(), Holder::Corrupt).await;
    let (honest_addr, honest_served, _honest) = spawn_holder(blob.clone(), Holder::Honest).await;
    let (c, _, c_dir) = node(vec![liar_addr.clone(), honest_addr]).await;
    connected(&c.handle(), 2).await;
    let mut events = c.handle().subscribe();

    let hash = BlobHash::of(&blob);
    let fetched = c.handle().fetch_blob(hash).await.unwrap();
    assert_eq!(fetched.holders, 2);
    assert_eq!(
        BlobStore::open(c_dir.path()).unwrap().read(&hash).unwrap(),
        blob
    );
    assert!(lied.load(Ordering::SeqCst) >= 1, "the liar was asked");
    assert!(honest_served.load(Ordering::SeqCst) >= 1);
    // The liar was named and dropped.
    let liar_id = match liar_addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(id)) => id,
        _ => panic!("no peer id"),
    };
    let reason = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(NodeEvent::PeerRejected { peer, reason }) = events.recv().await
                && peer == liar_id
            {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    assert!(reason.contains("corrupt piece"), "{reason}");
    c.stop().await.unwrap();
}

#[tokio::test]
async fn a_fetch_that_stopped_resumes_with_the_pieces_it_kept() {
    let blob = bytes(6 * blobtree::CHUNK as usize, 3);
    let hash = BlobHash::of(&blob);
    // The only holder serves three pieces, then has nothing more to give.
    let (flaky_addr, _, flaky) = spawn_holder(blob.clone(), Holder::ServesOnly(3)).await;
    let (c, _, c_dir) = node(vec![flaky_addr]).await;
    connected(&c.handle(), 1).await;
    match c.handle().fetch_blob(hash).await {
        Err(FetchError::HoldersFailed { done, total, .. }) => {
            assert_eq!((done, total), (3, 6));
        }
        other => panic!("{other:?}"),
    }
    let store = BlobStore::open(c_dir.path()).unwrap();
    assert!(!store.has(&hash), "nothing visible until whole");
    flaky.abort();

    // Another holder appears: only the three missing pieces are asked of it.
    let (good_addr, served, _good) = spawn_holder(blob.clone(), Holder::Honest).await;
    c.handle().dial(good_addr).await.unwrap();
    let mut events = c.handle().subscribe();
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(NodeEvent::PeerConnected(_)) = events.recv().await {
                return;
            }
        }
    })
    .await
    .unwrap();
    let fetched = c.handle().fetch_blob(hash).await.unwrap();
    assert_eq!(fetched.pieces_fetched, 3);
    assert_eq!(served.load(Ordering::SeqCst), 3);
    assert_eq!(store.read(&hash).unwrap(), blob);
    c.stop().await.unwrap();
}
