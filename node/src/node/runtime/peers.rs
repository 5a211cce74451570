//! Connections: dialling configured and LAN peers (and again while they are away),
//! failed connections counted and told (another mesh key at WARN), peers that
//! misbehave dropped.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Runtime {
    pub(super) fn dial(&mut self, addr: &Multiaddr) {
        if self.dialed_up.contains_key(addr) {
            return;
        }
        if let Err(e) = self.swarm.dial(addr.clone()) {
            debug!("dial {addr}: {e}");
        }
    }

    /// Dial every peer mDNS found that is not connected (and not being dialled).
    pub(super) fn redial_lan_peers(&mut self) {
        for (peer, addrs) in &self.lan_peers {
            if self.connected.contains(peer) {
                continue;
            }
            let opts = DialOpts::peer_id(*peer)
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .addresses(addrs.clone())
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!("dial {peer} (found by mdns): {e}");
            }
        }
    }

    /// Redial, and every [`FULL_SYNC_EVERY`] ticks start a sync exchange for each
    /// project whose heads the peer's heartbeats do not announce (too many heads or
    /// projects, an older node): there, nothing else finds what a push lost.
    pub(super) fn retry(&mut self) {
        for addr in self.dial_targets.clone() {
            self.dial(&addr);
        }
        self.redial_lan_peers();
        self.retries += 1;
        if self.retries.is_multiple_of(FULL_SYNC_EVERY) {
            for peer in self.sessions.peers() {
                for project_id in self.projects.keys().cloned().collect::<Vec<_>>() {
                    let watched = self
                        .heads_checks
                        .get(&peer)
                        .is_some_and(|(_, heads)| heads.contains_key(&project_id));
                    if !watched {
                        self.offer(peer, &project_id);
                    }
                }
            }
        }
    }

    /// A dial failed: count it for each address tried (see [`FailingPeers`]).
    pub(super) fn on_dial_failed(&mut self, peer: Option<PeerId>, error: &DialError) {
        let failures = failure::dial_failures(error);
        if failures.is_empty() {
            debug!("dial to {peer:?} failed: {error}");
        }
        for (addr, failure) in failures {
            let (row, warn) = self.failing.record(
                Direction::Outgoing,
                &addr,
                peer,
                &failure,
                Instant::now(),
                now_ms(),
            );
            let who = match &row.peer_id {
                Some(peer) => format!("dial to {} (peer {peer})", row.address),
                None => format!("dial to {}", row.address),
            };
            log_failure(&who, &row, &failure, warn);
            self.emit(NodeEvent::ConnectionFailed(row));
        }
    }

    /// A connection from `from` failed before it was established (the peer id
    /// is rarely known: the private layer refuses before Noise names anyone).
    pub(super) fn on_incoming_failed(
        &mut self,
        from: &Multiaddr,
        peer: Option<PeerId>,
        error: &ListenError,
    ) {
        let Some(failure) = failure::incoming_failure(error) else {
            debug!("incoming connection from {from} failed: {error}");
            return;
        };
        let (row, warn) = self.failing.record(
            Direction::Incoming,
            from,
            peer,
            &failure,
            Instant::now(),
            now_ms(),
        );
        let who = match &row.peer_id {
            Some(peer) => format!("connection from {from} (peer {peer})"),
            None => format!("connection from {from}"),
        };
        log_failure(&who, &row, &failure, warn);
        self.emit(NodeEvent::ConnectionFailed(row));
    }

    pub(super) fn reject_peer(&mut self, peer: PeerId, reason: String) {
        self.sessions.forget_peer(&peer);
        let connections = self
            .swarm
            .network_info()
            .connection_counters()
            .num_established();
        let closing = self.swarm.disconnect_peer_id(peer).is_ok();
        warn!(
            "peer {peer}: {reason}; dropping its connection{}",
            if closing { "" } else { " (already gone)" }
        );
        debug!("{connections} connections established before the drop");
        self.emit(NodeEvent::PeerRejected { peer, reason });
    }
}
