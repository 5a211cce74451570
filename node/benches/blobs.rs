//! Benchmark of issue [4/8]: a 1 GiB blob between two loopback nodes, verified.
//!
//! Run: `cargo bench -p reelmesh-node --bench blobs` (release build). Real nodes:
//! libp2p over loopback TCP with the mesh key (pnet + Noise + Yamux), 1 MiB pieces
//! each checked against the BLAKE3 outboard before it is written, the file fsynced
//! and renamed into the store at the end. The holder's outboard (the piece hashes)
//! was kept when the blob was stored; a second fetch, after the holder's outboard is
//! deleted, shows a holder computing it on the first request (one read + hash of
//! the whole blob, inside the time: blobs stored before outboards were kept).
//!
//! Anchor, same run, same file: `cp` of the blob to a new file plus `sync` (a local
//! copy on the same disk: no network, no encryption, no verification), and `rsync`
//! of it over `ssh localhost` plus `sync` when rsync is installed and this user can
//! log in there without a password (`apt-get install rsync openssh-server`, a key
//! in `~/.ssh/authorized_keys`; BENCHMARKS.md has the steps).

use std::process::Command;
use std::time::{Duration, Instant};

use libp2p::Multiaddr;
use reelmesh_node::mesh::keys;
use reelmesh_node::node::{Node, NodeConfig, NodeHandle};
use reelmesh_node::store::blobs::BlobStore;

const KEY: [u8; 32] = [0x33; 32];
const SIZE: usize = 1 << 30;

async fn node(dir: &tempfile::TempDir, peers: Vec<Multiaddr>) -> (Node, Multiaddr) {
    keys::store_mesh_key(dir.path(), KEY).expect("key");
    let node = Node::start(NodeConfig::loopback(dir.path().to_owned(), peers))
        .await
        .expect("start");
    let addr = node.listen_addrs()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(node.handle().peer_id()));
    (node, addr)
}

async fn wait_connected(handle: &NodeHandle) {
    let mut events = handle.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = handle.status().await.expect("status");
        if status.peers.iter().any(|p| p.connected && !p.this_node) {
            return;
        }
        tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("connected within 30 s")
            .expect("events");
    }
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let mb = bytes as f64 / 1e6;
    mb / elapsed.as_secs_f64()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let a_dir = tempfile::tempdir().expect("tmp");
        let b_dir = tempfile::tempdir().expect("tmp");
        // 1 GiB of pseudo-random bytes (xorshift), written through the store.
        let store = BlobStore::open(a_dir.path()).expect("store");
        let mut writer = store.writer().expect("writer");
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut piece = vec![0_u8; 1 << 20];
        for _ in 0..SIZE >> 20 {
            for word in piece.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            writer.write(&piece).expect("write");
        }
        let blob = writer.finish().expect("finish");
        println!(
            "== [4/8] a 1 GiB blob between two loopback nodes ({})",
            blob.hash
        );

        let (a, a_addr) = node(&a_dir, vec![]).await;
        let (b, _) = node(&b_dir, vec![a_addr]).await;
        wait_connected(&b.handle()).await;
        let started = Instant::now();
        let fetched = b.handle().fetch_blob(blob.hash).await.expect("fetch");
        let elapsed = started.elapsed();
        assert_eq!(fetched.blob.size as usize, SIZE);
        let ours = mb_per_s(SIZE, elapsed);
        println!(
            "reelmesh fetch (verified, fsynced)  {:>7.2} s  {ours:>7.1} MB/s (outboard kept when stored)",
            elapsed.as_secs_f64()
        );
        // Fetched again, the holder computing the outboard on the request.
        std::fs::remove_file(
            BlobStore::open(b_dir.path())
                .expect("store")
                .path(&blob.hash),
        )
        .expect("remove");
        std::fs::remove_file(store.path(&blob.hash).with_extension("ob")).expect("remove outboard");
        let started = Instant::now();
        b.handle().fetch_blob(blob.hash).await.expect("fetch");
        let cold = started.elapsed();
        println!(
            "reelmesh fetch, outboard on request {:>7.2} s  {:>7.1} MB/s",
            cold.as_secs_f64(),
            mb_per_s(SIZE, cold)
        );
        b.stop().await.expect("stop");
        a.stop().await.expect("stop");

        let source = store.path(&blob.hash);
        let copy = b_dir.path().join("cp-copy");
        let mut cp = Command::new("cp");
        cp.arg(&source).arg(&copy);
        anchor("cp + sync, same disk", &mut cp, ours);
        rsync_anchor(&source, &b_dir.path().join("rsync-copy"), ours);
    });
}

/// The anchor: `rsync` of the same file over `ssh localhost` (encrypted,
/// checked, written and synced like ours), when rsync is installed and this user
/// can `ssh localhost` without a password (BENCHMARKS.md says how to set that up).
fn rsync_anchor(source: &std::path::Path, target: &std::path::Path, ours: f64) {
    let ssh = "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new";
    let rsync = Command::new("rsync").arg("--version").output().is_ok();
    let login = rsync
        && Command::new("sh")
            .arg("-c")
            .arg(format!("{ssh} localhost true"))
            .output()
            .is_ok_and(|o| o.status.success());
    if !login {
        println!(
            "(no rsync-over-ssh anchor in this run: needs rsync and a password-less `ssh localhost`)"
        );
        return;
    }
    let mut rsync = Command::new("rsync");
    rsync
        .arg("--whole-file")
        .arg("-e")
        .arg(ssh)
        .arg(source)
        .arg(format!("localhost:{}", target.display()));
    anchor("rsync over ssh localhost + sync", &mut rsync, ours);
}

/// Time `copy` of the blob plus `sync`, and print it beside our figure.
fn anchor(what: &str, copy: &mut Command, ours: f64) {
    let started = Instant::now();
    let ok = copy.status().expect(what);
    assert!(ok.success(), "{what} failed");
    let ok = Command::new("sync").status().expect("sync");
    assert!(ok.success());
    let took = started.elapsed();
    let anchor = mb_per_s(SIZE, took);
    println!(
        "anchor: {what:<34} {:>7.2} s  {anchor:>7.1} MB/s   ratio reelmesh / anchor: {:.2}",
        took.as_secs_f64(),
        ours / anchor
    );
}
