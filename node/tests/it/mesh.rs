//! Real nodes on loopback: libp2p, Automerge and the data dirs are the product's
//! own. Waiting is always on node events with a deadline, never on sleeps.

#![allow(clippy::unwrap_used)] // test helpers panic on failure by design

use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use reelmesh_node::mesh::{self, Behaviour, BehaviourEvent, MeshConfig, keys};
use reelmesh_node::node::{Node, NodeConfig, NodeEvent, NodeHandle};
use reelmesh_node::store::DataDir;
use reelmesh_protocol::document::{Position, ProjectDoc};
use reelmesh_protocol::model::Shot;
use reelmesh_protocol::wire::{NodeStatus, Presence, SyncRequest};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(30);

struct TestNode {
    node: Node,
    handle: NodeHandle,
    addr: Multiaddr,
    _dir: tempfile::TempDir,
}

fn config(dir: &std::path::Path, peers: Vec<Multiaddr>) -> NodeConfig {
    let mut config = NodeConfig::loopback(dir.to_owned(), peers);
    config.heartbeat = Duration::from_millis(200);
    config.retry_every = Duration::from_millis(500);
    config
}

/// A data dir in the mesh `key`, holding the project (`Some(name)`: created here)
/// or an empty replica of `project_id`.
fn data_dir(key: [u8; 32], project: Result<&str, &str>) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    keys::store_mesh_key(dir.path(), key).unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let project_id = match project {
        Ok(name) => {
            let store = data.create_project(name).unwrap();
            store.doc().project_id().unwrap()
        }
        Err(project_id) => {
            data.add_replica(project_id).unwrap();
            data.set_current_project(project_id).unwrap();
            project_id.to_owned()
        }
    };
    (dir, project_id)
}

async fn start(
    dir: tempfile::TempDir,
    peers: Vec<Multiaddr>,
    tweak: impl FnOnce(&mut NodeConfig),
) -> TestNode {
    crate::logs();
    let mut config = config(dir.path(), peers);
    tweak(&mut config);
    let node = Node::start(config).await.unwrap();
    let handle = node.handle();
    let addr = node.listen_addrs()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(handle.peer_id()));
    TestNode {
        node,
        handle,
        addr,
        _dir: dir,
    }
}

/// All events of several nodes on one channel.
fn merged_events(handles: &[NodeHandle]) -> mpsc::Receiver<(usize, NodeEvent)> {
    let (tx, rx) = mpsc::channel(4096);
    for (i, handle) in handles.iter().enumerate() {
        let mut events = handle.subscribe();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if tx.send((i, event)).await.is_err() {
                    break;
                }
            }
        });
    }
    rx
}

async fn add_shot(handle: &NodeHandle, action: &str) -> Vec<String> {
    let action = action.to_owned();
    handle
        .edit(None, move |doc: &mut ProjectDoc| {
            let code = doc.next_code().map_err(|e| e.to_string())?;
            let mut shot = Shot::new(code, 24);
            shot.action = action;
            doc.add_shots(&[shot], &Position::End)
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    handle.project(None).await.unwrap().2
}

/// Re-check `done` after every event until it holds or the deadline passes.
async fn until<F, Fut>(events: &mut mpsc::Receiver<(usize, NodeEvent)>, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if done().await {
            return;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("timed out waiting for: {what}"),
        }
    }
}

async fn all_identical(handles: &[NodeHandle]) -> bool {
    let mut first = None;
    for handle in handles {
        let Ok((_, project, heads)) = handle.project(None).await else {
            return false;
        };
        match &first {
            None => first = Some((project, heads)),
            Some(f) if *f != (project, heads) => return false,
            Some(_) => {}
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_share_every_edit_and_end_identical() {
    let key = [42; 32];
    let (dir, project_id) = data_dir(key, Ok("다섯 노드"));
    let mut nodes = vec![start(dir, vec![], |_| {}).await];
    // A chain 0 - 1 - 2 - 3 - 4: edits must also cross nodes that are not direct peers.
    for _ in 1..5 {
        let (dir, _) = data_dir(key, Err(&project_id));
        let previous = nodes.last().unwrap().addr.clone();
        nodes.push(start(dir, vec![previous], |_| {}).await);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(|n| n.handle.clone()).collect();
    let mut events = merged_events(&handles);
    until(
        &mut events,
        "every replica received the project",
        || async {
            let mut ready = 0;
            for h in &handles {
                ready += usize::from(h.project(None).await.is_ok());
            }
            ready == handles.len()
        },
    )
    .await;

    // Every node edits at once.
    for (i, handle) in handles.iter().enumerate() {
        add_shot(handle, &format!("노드 {i}의 장면")).await;
    }
    until(
        &mut events,
        "all five documents identical with all five edits",
        || async {
            if !all_identical(&handles).await {
                return false;
            }
            let (_, project, _) = handles[0].project(None).await.unwrap();
            (0..5).all(|i| {
                project
                    .shots
                    .iter()
                    .any(|s| s.action == format!("노드 {i}의 장면"))
            })
        },
    )
    .await;
    let (_, project, _) = handles[4].project(None).await.unwrap();
    assert_eq!(project.shots.len(), 5);
    let mut codes: Vec<_> = project.shots.iter().map(|s| s.code).collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 5, "shot codes unique after the merge");
    assert_eq!(project.settings.name, "다섯 노드");

    // An edit on the last node reaches the first through three relays.
    let heads = add_shot(&handles[4], "끝에서 처음으로").await;
    handles[0]
        .wait_for_heads(None, heads, DEADLINE)
        .await
        .unwrap();
    for node in nodes {
        node.node.stop().await.unwrap();
    }
}

/// Changes are pushed as they are made; what a push does not deliver (here: a node
/// that does not push at all) still arrives, because every heartbeat announces the
/// project's heads and a peer that lacks them two seconds later asks by sync. The
/// retry tick's full exchange is set far out of reach, and the connect-time sync
/// is over before the edit, so the heads are the only way left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_that_is_not_pushed_arrives_by_the_heads_its_author_announces() {
    let key = [43; 32];
    let slow_retry = |config: &mut NodeConfig| config.retry_every = Duration::from_secs(600);
    let (dir, project_id) = data_dir(key, Ok("밀지 않는 노드"));
    let quiet = start(dir, vec![], |config| {
        slow_retry(config);
        config.mesh.push_changes = false;
    })
    .await;
    let (dir, _) = data_dir(key, Err(&project_id));
    let pushing = start(dir, vec![quiet.addr.clone()], slow_retry).await;
    let handles = [quiet.handle.clone(), pushing.handle.clone()];
    let mut events = merged_events(&handles);
    until(&mut events, "the replica received the project", || async {
        all_identical(&handles).await
    })
    .await;
    // Let the connect-time exchange end (its last replies would carry the edit):
    // three heartbeats of the quiet node heard on the other.
    let mut heard = 0;
    while heard < 3 {
        match tokio::time::timeout(DEADLINE, events.recv()).await {
            Ok(Some((1, NodeEvent::Presence(peer)))) if peer == quiet.handle.peer_id() => {
                heard += 1;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("no heartbeats heard"),
        }
    }

    let started = tokio::time::Instant::now();
    let heads = add_shot(&quiet.handle, "밀지 않은 장면").await;
    pushing
        .handle
        .wait_for_heads(None, heads, DEADLINE)
        .await
        .expect("the unpushed edit arrived");
    // Through the heads check, not sooner: the grace is 2 s.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "arrived after {:?}: not by the heads check",
        started.elapsed()
    );

    // The other way a push carries it, well before a heads check could.
    let started = tokio::time::Instant::now();
    let heads = add_shot(&pushing.handle, "민 장면").await;
    quiet
        .handle
        .wait_for_heads(None, heads, DEADLINE)
        .await
        .expect("the pushed edit arrived");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a pushed edit took {:?}",
        started.elapsed()
    );
    quiet.node.stop().await.unwrap();
    pushing.node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_catches_up_and_offline_edits_merge() {
    let key = [7; 32];
    let (dir_a, project_id) = data_dir(key, Ok("offline"));
    let a = start(dir_a, vec![], |_| {}).await;
    let (dir_b, _) = data_dir(key, Err(&project_id));
    let b_path = dir_b.path().to_owned();
    let b = start(dir_b, vec![a.addr.clone()], |_| {}).await;
    let heads = add_shot(&a.handle, "before").await;
    b.handle
        .wait_for_heads(None, heads, DEADLINE)
        .await
        .unwrap();

    // b stops; both sides edit while apart (b edits its data dir with no node running).
    let TestNode {
        node, _dir: dir_b, ..
    } = b;
    node.stop().await.unwrap();
    add_shot(&a.handle, "a while apart").await;
    {
        let data = DataDir::open(&b_path).unwrap();
        let _lock = data.lock().unwrap();
        let mut store = data.open_project(None).unwrap();
        let code = store.doc().next_code().unwrap();
        let mut shot = Shot::new(code, 24);
        shot.action = "b while apart".into();
        store.doc_mut().add_shots(&[shot], &Position::End).unwrap();
        store.save().unwrap();
    }
    let b = start(dir_b, vec![a.addr.clone()], |_| {}).await;
    let handles = vec![a.handle.clone(), b.handle.clone()];
    let mut events = merged_events(&handles);
    until(
        &mut events,
        "both sides converge with both offline edits",
        || async {
            if !all_identical(&handles).await {
                return false;
            }
            let (_, project, _) = handles[0].project(None).await.unwrap();
            ["before", "a while apart", "b while apart"]
                .iter()
                .all(|a| project.shots.iter().any(|s| s.action == *a))
        },
    )
    .await;
    b.node.stop().await.unwrap();
    a.node.stop().await.unwrap();
}

/// A bare swarm driven by the test (an adversary or an outsider).
fn raw_swarm(key: [u8; 32]) -> Swarm<Behaviour> {
    let config = MeshConfig {
        mdns: false,
        ..MeshConfig::default()
    };
    let mut swarm =
        mesh::build_swarm(&libp2p::identity::Keypair::generate_ed25519(), key, &config).unwrap();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    swarm
}

/// Drive a swarm until `pick` returns a value, with a deadline.
async fn drive<T>(
    swarm: &mut Swarm<Behaviour>,
    mut pick: impl FnMut(&mut Swarm<Behaviour>, SwarmEvent<BehaviourEvent>) -> Option<T>,
) -> T {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = swarm.select_next_some().await;
            // Answer the node's own sync offers politely, so that only the garbage
            // under test can get the adversary dropped.
            if let SwarmEvent::Behaviour(BehaviourEvent::Sync(
                libp2p::request_response::Event::Message {
                    message: libp2p::request_response::Message::Request { channel, .. },
                    ..
                },
            )) = event
            {
                let no = reelmesh_protocol::wire::SyncResponse::Rejected("not interested".into());
                let _ = swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, no.encode());
                continue;
            }
            if let Some(value) = pick(swarm, event) {
                return value;
            }
        }
    })
    .await
    .expect("timed out driving the test swarm")
}

fn no_connection_events(events: &mut tokio::sync::broadcast::Receiver<NodeEvent>) {
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(
                event,
                NodeEvent::PeerConnected(_) | NodeEvent::DocChanged { .. }
            ),
            "an outsider got through: {event:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_mesh_key_nothing_connects_and_nothing_is_read() {
    let (dir, _) = data_dir([1; 32], Ok("secret"));
    let node = start(dir, vec![], |_| {}).await;
    let mut node_events = node.handle.subscribe();

    // A wrong key: the private layer's handshake fails and says why.
    let mut wrong = raw_swarm([2; 32]);
    wrong.dial(node.addr.clone()).unwrap();
    let error = drive(&mut wrong, |_, event| match event {
        SwarmEvent::OutgoingConnectionError { error, .. } => Some(error.to_string()),
        SwarmEvent::ConnectionEstablished { .. } => panic!("connected with a wrong key"),
        _ => None,
    })
    .await;
    assert!(error.contains("not in this mesh"), "{error}");

    // No key at all: plain TCP + Noise + Yamux, as any libp2p node would speak.
    let mut plain = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p::ping::Behaviour::default())
        .unwrap()
        .build();
    plain.dial(node.addr.clone()).unwrap();
    tokio::time::timeout(DEADLINE, async {
        loop {
            match plain.select_next_some().await {
                SwarmEvent::OutgoingConnectionError { .. } => break,
                SwarmEvent::ConnectionEstablished { .. } => panic!("connected without a key"),
                _ => {}
            }
        }
    })
    .await
    .expect("the keyless dial neither failed nor succeeded");

    // And the node's own dial to a keyless listener fails the same way.
    no_connection_events(&mut node_events);
    let status = node.handle.status().await.unwrap();
    assert_eq!(status.peers.len(), 1, "only itself: {:?}", status.peers);
    node.node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_with_different_mesh_keys_each_say_the_other_is_not_in_this_mesh() {
    // A mistyped ticket: b holds another mesh's key and dials a. Neither connects,
    // and both say why, naming the address, as an event and in their status.
    let (a_dir, _) = data_dir([1; 32], Ok("a"));
    let a = start(a_dir, vec![], |_| {}).await;
    let mut a_events = a.handle.subscribe();
    let (b_dir, _) = data_dir([2; 32], Ok("b"));
    let b = start(b_dir, vec![a.addr.clone()], |_| {}).await;
    let mut b_events = b.handle.subscribe();
    let refused = |events: &mut tokio::sync::broadcast::Receiver<NodeEvent>| {
        let mut events = events.resubscribe();
        async move {
            tokio::time::timeout(DEADLINE, async {
                loop {
                    if let Ok(NodeEvent::ConnectionFailed(row)) = events.recv().await
                        && row.reason == "not in this mesh: another mesh key?"
                    {
                        return row;
                    }
                }
            })
            .await
            .expect("a refusal by the private mesh layer")
        }
    };
    let (a_row, b_row) = tokio::join!(refused(&mut a_events), refused(&mut b_events));
    assert_eq!(a_row.direction, reelmesh_node::node::Direction::Incoming);
    assert_eq!(a_row.address, "/ip4/127.0.0.1");
    assert_eq!(b_row.direction, reelmesh_node::node::Direction::Outgoing);
    let a_tcp = a.addr.to_string();
    assert!(
        a_tcp.starts_with(&b_row.address),
        "b names the address it dialled: {b_row:?} ({a_tcp})"
    );
    assert_eq!(
        b_row.peer_id.as_deref(),
        Some(a.handle.peer_id().to_string().as_str())
    );
    for (node, row) in [(&a, &a_row), (&b, &b_row)] {
        let status = node.handle.status().await.unwrap();
        assert_eq!(status.peers.len(), 1, "only itself: {:?}", status.peers);
        assert!(
            status
                .failing_peers
                .iter()
                .any(|f| f.address == row.address && f.kind == row.kind && f.failures >= 1),
            "{:?}",
            status.failing_peers
        );
    }
    drop(a_events);
    drop(b_events);
    b.node.stop().await.unwrap();
    a.node.stop().await.unwrap();
}

async fn connect(adversary: &mut Swarm<Behaviour>, to: &Multiaddr) -> PeerId {
    adversary.dial(to.clone()).unwrap();
    drive(adversary, |_, event| match event {
        SwarmEvent::ConnectionEstablished { peer_id, .. } => Some(peer_id),
        SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial failed: {error}"),
        _ => None,
    })
    .await
}

async fn expect_dropped(
    adversary: &mut Swarm<Behaviour>,
    node_events: &mut tokio::sync::broadcast::Receiver<NodeEvent>,
    what: &str,
) -> String {
    drive(adversary, |_, event| {
        matches!(
            event,
            SwarmEvent::ConnectionClosed {
                num_established: 0,
                ..
            }
        )
        .then_some(())
    })
    .await;
    loop {
        match tokio::time::timeout(DEADLINE, node_events.recv()).await {
            Ok(Ok(NodeEvent::PeerRejected { reason, .. })) => return reason,
            Ok(Ok(_)) => {}
            other => panic!("no rejection logged for {what}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_garbage_is_dropped_and_the_node_survives() {
    let key = [9; 32];
    let (dir, project_id) = data_dir(key, Ok("target"));
    let node = start(dir, vec![], |c| {
        c.mesh.max_sync_bytes = 64 * 1024;
    })
    .await;
    add_shot(&node.handle, "kept").await;
    let (_, before, before_heads) = node.handle.project(None).await.unwrap();
    let mut node_events = node.handle.subscribe();
    let mut adversary = raw_swarm(key);

    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("bad magic", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        (
            "undecodable",
            SyncRequest {
                project_id: project_id.clone(),
                message: vec![0x42, 0xff, 0x00, 0x13, 0x37],
            }
            .encode(),
        ),
        ("65536-byte limit", vec![0_u8; 200 * 1024]),
    ];
    for (what, frame) in garbage {
        let peer = connect(&mut adversary, &node.addr).await;
        adversary
            .behaviour_mut()
            .sync
            .send_request(&peer, reelmesh_node::mesh::codec::Frame::Bytes(frame));
        let reason = expect_dropped(&mut adversary, &mut node_events, what).await;
        assert!(reason.contains(what), "expected '{what}' in: {reason}");
    }

    // A presence heartbeat that lies about who sent it.
    let peer = connect(&mut adversary, &node.addr).await;
    drive(&mut adversary, |_, event| match event {
        // The node subscribes to several topics: wait for the one published on.
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(
            libp2p::gossipsub::Event::Subscribed { topic, .. },
        )) if topic == mesh::presence_topic().hash() => Some(()),
        _ => None,
    })
    .await;
    let lie = Presence {
        node_id: peer.to_string(),
        host_name: "impostor".into(),
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
    };
    adversary
        .behaviour_mut()
        .gossipsub
        .publish(mesh::presence_topic(), lie.encode())
        .unwrap();
    let reason = expect_dropped(&mut adversary, &mut node_events, "lying presence").await;
    assert!(reason.contains("signed by"), "{reason}");

    // Nothing changed, and the node still syncs with an honest peer.
    let (_, after, after_heads) = node.handle.project(None).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(after_heads, before_heads);
    let (dir, _) = data_dir(key, Err(&project_id));
    let honest = start(dir, vec![node.addr.clone()], |_| {}).await;
    honest
        .handle
        .wait_for_heads(None, before_heads, DEADLINE)
        .await
        .unwrap();
    honest.node.stop().await.unwrap();
    node.node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_fills_the_peers_table_and_a_stopped_peer_goes_offline() {
    let key = [3; 32];
    let (dir, project_id) = data_dir(key, Ok("presence"));
    let a = start(dir, vec![], |c| {
        c.offline_after = Duration::from_millis(800);
    })
    .await;
    let (dir, _) = data_dir(key, Err(&project_id));
    let b = start(dir, vec![a.addr.clone()], |_| {}).await;
    let b_id = b.handle.peer_id().to_string();
    let mut events = merged_events(std::slice::from_ref(&a.handle));
    let row = |handle: NodeHandle, id: String| async move {
        handle
            .status()
            .await
            .unwrap()
            .peers
            .into_iter()
            .find(|r| r.node_id == id)
    };
    until(&mut events, "b's heartbeat on a", || async {
        row(a.handle.clone(), b_id.clone())
            .await
            .is_some_and(|r| r.status == "idle" && r.connected)
    })
    .await;
    let status = a.handle.status().await.unwrap();
    assert!(status.peers[0].this_node);
    let b_row = status.peers.iter().find(|r| r.node_id == b_id).unwrap();
    assert!(!b_row.host_name.is_empty());
    assert!(b_row.gpu == "CPU only" || b_row.vram_total.is_some());

    b.node.stop().await.unwrap();
    // a notices the connection close (an event)...
    until(&mut events, "a sees b disconnect", || async {
        row(a.handle.clone(), b_id.clone())
            .await
            .is_some_and(|r| !r.connected)
    })
    .await;
    let age = row(a.handle.clone(), b_id.clone())
        .await
        .unwrap()
        .last_heartbeat_secs
        .unwrap();
    assert_eq!(
        row(a.handle.clone(), b_id.clone()).await.unwrap().status,
        "idle",
        "not offline before its time"
    );
    // ...and offline is a matter of time passing: the row turns offline once b has
    // been silent for offline_after (800 ms) by a's clock, not before.
    let silent_for = Duration::from_secs_f64(age);
    tokio::time::sleep(Duration::from_millis(850).saturating_sub(silent_for)).await;
    let b_row = row(a.handle.clone(), b_id.clone()).await.unwrap();
    assert_eq!(b_row.status, "offline", "{b_row:?}");
    a.node.stop().await.unwrap();
}

/// The next event on a feed that `want` accepts (others are skipped).
async fn next_on_feed(
    feed: &mut mpsc::Receiver<reelmesh_protocol::api::status::Event>,
    what: &str,
    want: impl Fn(&reelmesh_protocol::api::status::Event) -> bool,
) -> reelmesh_protocol::api::status::Event {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = feed
                .recv()
                .await
                .expect("the feed runs while the node does");
            if want(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} on the feed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_feed_tells_peers_and_changes_as_plain_data() {
    use reelmesh_protocol::api::status::Event;
    let key = [17; 32];
    let (dir, project_id) = data_dir(key, Ok("피드"));
    let a = start(dir, vec![], |_| {}).await;
    let mut feed = a.handle.feed(64);
    let (dir, _) = data_dir(key, Err(&project_id));
    let b = start(dir, vec![a.addr.clone()], |_| {}).await;
    let b_id = b.handle.peer_id().to_string();
    next_on_feed(
        &mut feed,
        "PeerConnected",
        |e| matches!(e, Event::PeerConnected { peer_id } if *peer_id == b_id),
    )
    .await;
    // b receives the project, then edits it: a's feed says so, naming b.
    let mut b_events = b.handle.subscribe();
    tokio::time::timeout(DEADLINE, async {
        while b.handle.project(None).await.is_err() {
            let _ = b_events.recv().await;
        }
    })
    .await
    .expect("b got the project");
    let heads = add_shot(&b.handle, "피드에서 본 편집").await;
    let event = next_on_feed(
        &mut feed,
        "DocChanged from b",
        |e| matches!(e, Event::DocChanged { from_peer: Some(peer), .. } if *peer == b_id),
    )
    .await;
    let Event::DocChanged {
        project_id: changed,
        ..
    } = &event
    else {
        unreachable!()
    };
    assert_eq!(*changed, project_id);
    // The feed is JSON a client in any language reads.
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["event"], "doc_changed");
    assert_eq!(json["from_peer"], b_id);
    a.handle
        .wait_for_heads(None, heads, DEADLINE)
        .await
        .unwrap();
    b.node.stop().await.unwrap();
    a.node.stop().await.unwrap();
}
