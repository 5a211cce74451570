//! Document sync with peers, all of it: pushes of what this node just wrote (an
//! outbox per project, one push in flight per peer), Automerge's sync exchange for
//! the rest (one `SyncState` per peer and project, request → acknowledgement),
//! asking for announced heads this node lacks, relaying to peers the sender does
//! not reach, and the sessions' state. See ARCHITECTURE.md, "Document sync".

pub(super) mod sessions;

#[allow(clippy::wildcard_imports)]
use super::*;

impl Runtime {
    /// The projects of which this node still lacks heads `peer` announced at least
    /// [`HEADS_GRACE`] ago: a push lost on the way, or one that never came because a
    /// relay missed this node. Newer heads may still be on their way; each peer's
    /// heads are kept for a check once that time has passed.
    pub(super) fn lacking_heads(
        &mut self,
        peer: PeerId,
        heads: &BTreeMap<String, Vec<String>>,
    ) -> Vec<(String, Vec<String>)> {
        let now = Instant::now();
        let due = self
            .heads_checks
            .get(&peer)
            .is_none_or(|(at, _)| now.duration_since(*at) >= HEADS_GRACE);
        if !due {
            return Vec::new();
        }
        let Some((_, announced)) = self.heads_checks.insert(peer, (now, heads.clone())) else {
            return Vec::new();
        };
        announced
            .into_iter()
            .filter(|(project_id, heads)| {
                self.projects
                    .get_mut(project_id)
                    .is_some_and(|store| !store.doc_mut().has_heads(heads))
            })
            .collect()
    }

    /// Ask for changes `peer` has (these `heads` and what they depend on) by sync:
    /// from `peer` if it is connected, else from every connected peer (one of them
    /// relays for it).
    pub(super) fn ask_for(&mut self, peer: PeerId, project_id: &str, heads: &[String]) {
        debug!(
            "project {project_id}: {peer} announced changes this node has not got; asking by sync"
        );
        let ask = if self.connected.contains(&peer) {
            vec![peer]
        } else {
            self.sessions.peers()
        };
        for peer in ask {
            if let Some(session) = self.sessions.get(&peer, project_id) {
                session.state.peer_has(heads);
            }
            self.offer(peer, project_id);
        }
    }

    /// After changes from `from` merged: answer it if they came by sync (`answer`),
    /// and pass them on to the peers
    /// it is not connected to (as its last presence said). Those it is connected to
    /// get them from it, or from whoever it got them from (each relay skips the
    /// peers of its own source, and the author sends to all its peers): in a full
    /// mesh nobody relays, instead of every node sending every change to every
    /// other. The presence list is a hint: a peer missed because of a stale one
    /// gets the changes at the next retry tick or change.
    pub(super) fn relay(&mut self, from: PeerId, project_id: &str, answer: bool) {
        let reached = self.presence.reaches(&from);
        let targets: Vec<PeerId> = self
            .sessions
            .peers()
            .into_iter()
            .filter(|peer| {
                if *peer == from {
                    answer
                } else {
                    !reached.is_some_and(|r| r.contains(peer))
                }
            })
            .collect();
        for peer in targets {
            if peer == from {
                self.answer(peer, project_id);
            } else {
                self.offer(peer, project_id);
            }
        }
    }

    /// Open a sync exchange with (peer, project): send the next message (or, if
    /// one is in flight, once it is answered).
    pub(super) fn offer(&mut self, peer: PeerId, project_id: &str) {
        self.send_sync(peer, project_id, Say::Open);
    }

    /// Tell the peer this node's new heads after its changes came by sync, within
    /// the exchange's replies: without it, the peer keeps its old idea of what this
    /// node has, and sends that again.
    pub(super) fn answer(&mut self, peer: PeerId, project_id: &str) {
        self.send_sync(peer, project_id, Say::Answer);
    }

    /// Go on with an exchange: send the next sync message only if it carries or
    /// asks for changes (`ProjectDoc::generate_sync_reply`), within the exchange's
    /// replies.
    pub(super) fn reply(&mut self, peer: PeerId, project_id: &str) {
        self.send_sync(peer, project_id, Say::Reply);
    }

    pub(super) fn send_sync(&mut self, peer: PeerId, project_id: &str, say: Say) {
        let Some(store) = self.projects.get_mut(project_id) else {
            return;
        };
        let Some(session) = self.sessions.get(&peer, project_id) else {
            return;
        };
        if session.in_flight.is_some() {
            match say {
                Say::Open => session.offer_pending = true,
                Say::Answer => session.answer_pending = true,
                Say::Reply => {}
            }
            return;
        }
        if session
            .refused_until
            .is_some_and(|until| Instant::now() < until)
        {
            return;
        }
        session.refused_until = None;
        if say == Say::Open {
            session.offer_pending = false;
            session.start_exchange();
        } else if !session.may_reply() {
            return;
        }
        if say != Say::Reply {
            session.answer_pending = false;
        }
        let message = if say == Say::Reply {
            store.doc_mut().generate_sync_reply(&mut session.state)
        } else {
            store.doc_mut().generate_sync_message(&mut session.state)
        };
        match message {
            Ok(Some(message)) => {
                let frame = SyncRequest {
                    project_id: project_id.to_owned(),
                    message,
                }
                .encode();
                if frame.len() > self.config.mesh.max_sync_bytes {
                    error!(
                        "project {project_id}: a sync message of {} bytes is over the {}-byte frame limit; raise it",
                        frame.len(),
                        self.config.mesh.max_sync_bytes
                    );
                    return;
                }
                let request = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, Frame::Bytes(frame));
                self.sessions.sent(request, peer, project_id);
            }
            Ok(None) => {}
            Err(e) => {
                self.sessions.reset(&peer, project_id);
                self.reject_peer(peer, format!("project {project_id}: {e}"));
            }
        }
    }

    // ---- pushing local changes --------------------------------------------------

    /// Push one edit's changes to every peer: built once, sent to each session
    /// whose previous push has been answered (the others get it with their next).
    pub(super) fn push_changes(&mut self, project_id: &str, changes: Changes) {
        if changes.is_empty() || !self.config.mesh.push_changes {
            return;
        }
        let seq = self
            .outboxes
            .entry(project_id.to_owned())
            .or_default()
            .add(changes);
        for peer in self.sessions.peers() {
            if let Some(session) = self.sessions.get(&peer, project_id) {
                session.push_next.get_or_insert(seq);
            }
            self.push(peer, project_id);
        }
        self.trim_outbox(project_id);
    }

    /// Send this peer what the outbox holds for it, unless a push is in flight.
    pub(super) fn push(&mut self, peer: PeerId, project_id: &str) {
        let Some(outbox) = self.outboxes.get(project_id) else {
            return;
        };
        let Some(session) = self.sessions.get(&peer, project_id) else {
            return;
        };
        if session.push_in_flight.is_some()
            || session
                .refused_until
                .is_some_and(|until| Instant::now() < until)
        {
            return;
        }
        let Some(next) = session.push_next else {
            return;
        };
        if next >= outbox.end() {
            return;
        }
        let limit = self.config.mesh.max_sync_bytes.saturating_sub(256);
        let Some((changes, upto)) = outbox.from(next, limit) else {
            // Fell too far behind: the sync exchange sends the rest.
            session.push_next = Some(outbox.end());
            self.offer(peer, project_id);
            return;
        };
        let sent = changes.without_bytes();
        let frame = ChangesPush {
            project_id: project_id.to_owned(),
            changes: changes.chunks,
        }
        .encode();
        if frame.len() > self.config.mesh.max_sync_bytes {
            // One edit bigger than a frame: leave it to the sync exchange, which
            // says so if it cannot send it either.
            session.push_next = Some(upto);
            self.offer(peer, project_id);
            return;
        }
        session.state.mark_sent(&sent);
        let request = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, Frame::Bytes(frame));
        self.sessions.pushed(
            request,
            Pushed {
                peer,
                project_id: project_id.to_owned(),
                upto,
                changes: sent,
            },
        );
    }

    pub(super) fn trim_outbox(&mut self, project_id: &str) {
        if let Some(outbox) = self.outboxes.get_mut(project_id) {
            let lowest = self
                .sessions
                .lowest_push(project_id)
                .unwrap_or_else(|| outbox.end());
            outbox.trim(lowest);
        }
    }

    /// Pushed changes that still wait on the same changes as [`MISSING_CHANGES_AFTER`]
    /// ago: ask their pusher by sync.
    pub(super) fn ask_for_missing_changes(&mut self) {
        let now = Instant::now();
        while let Some((due, _, _, _)) = self.missing.front() {
            if *due > now {
                break;
            }
            let Some((_, peer, project_id, hashes)) = self.missing.pop_front() else {
                break;
            };
            let Some(store) = self.projects.get_mut(&project_id) else {
                continue;
            };
            let still = store.doc_mut().missing_changes();
            let hashes: Vec<String> = hashes.into_iter().filter(|h| still.contains(h)).collect();
            if !hashes.is_empty() {
                debug!(
                    "project {project_id}: changes {peer} pushed still wait on others; asking it by sync"
                );
                if let Some(session) = self.sessions.get(&peer, &project_id) {
                    session.state.peer_has(&hashes);
                }
                self.offer(peer, &project_id);
            }
        }
        self.missing_check_due = self.missing.front().map(|(due, _, _, _)| *due);
    }

    pub(super) fn on_sync_event(&mut self, event: request_response::Event<Frame, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => match request {
                    Frame::Bytes(bytes) => self.on_sync_request(peer, &bytes, channel),
                    Frame::TooLarge { limit } => {
                        respond(
                            &mut self.swarm,
                            channel,
                            &SyncResponse::Rejected(format!("over the {limit}-byte limit")),
                        );
                        self.reject_peer(peer, format!("sync request over the {limit}-byte limit"));
                    }
                },
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(pushed) = self.sessions.push_answered(request_id) {
                        self.on_push_answered(pushed, &response);
                        return;
                    }
                    let Some((peer, project_id)) = self.sessions.answered(request_id) else {
                        return;
                    };
                    if response.is_empty() {
                        // The peer dropped the request without an answer (it is
                        // shutting down, or busy): start the exchange over later.
                        debug!("peer {peer} did not answer a sync request for {project_id}");
                        self.sessions.reset(&peer, &project_id);
                        return;
                    }
                    match SyncResponse::decode(&response) {
                        Ok(SyncResponse::Accepted) => {
                            let say = self.sessions.get(&peer, &project_id).map_or(
                                Say::Reply,
                                |session| {
                                    if session.offer_pending {
                                        Say::Open
                                    } else if session.answer_pending {
                                        Say::Answer
                                    } else {
                                        Say::Reply
                                    }
                                },
                            );
                            self.send_sync(peer, &project_id, say);
                        }
                        Ok(SyncResponse::Rejected(reason)) => {
                            debug!("peer {peer} refused project {project_id}: {reason}");
                            if let Some(session) = self.sessions.get(&peer, &project_id) {
                                session.refused_until =
                                    Some(Instant::now() + Duration::from_secs(30));
                                session.state = reelmesh_protocol::document::SyncState::new();
                            }
                        }
                        Err(e) => self.reject_peer(peer, format!("malformed sync response: {e}")),
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.sessions.failed(request_id);
                match error {
                    request_response::OutboundFailure::Io(e)
                        if e.kind() == std::io::ErrorKind::InvalidData =>
                    {
                        self.reject_peer(peer, format!("unreadable sync response: {e}"));
                    }
                    other => debug!("sync request to {peer} failed: {other}"),
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => match error {
                request_response::InboundFailure::Io(e) => {
                    self.reject_peer(peer, format!("unreadable sync request: {e}"));
                }
                other => debug!("sync request from {peer} failed: {other}"),
            },
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// A push was answered: on to the next entries, or (refused) leave this peer to
    /// the sync exchange for a while, as a refused sync message does.
    pub(super) fn on_push_answered(&mut self, pushed: Pushed, response: &[u8]) {
        let Pushed {
            peer,
            project_id,
            upto,
            changes,
        } = pushed;
        let project_id = project_id.as_str();
        match SyncResponse::decode(response) {
            Ok(SyncResponse::Accepted) => {
                if let Some(session) = self.sessions.get(&peer, project_id) {
                    session.push_next = Some(upto);
                    session.state.pushed_to_peer(&changes);
                }
                self.push(peer, project_id);
                self.trim_outbox(project_id);
            }
            Ok(SyncResponse::Rejected(reason)) => {
                debug!("peer {peer} refused changes of project {project_id}: {reason}");
                if let Some(session) = self.sessions.get(&peer, project_id) {
                    session.push_next = None;
                    session.refused_until = Some(Instant::now() + Duration::from_secs(30));
                    session.state = reelmesh_protocol::document::SyncState::new();
                }
                self.trim_outbox(project_id);
            }
            Err(_) if response.is_empty() => {
                // Dropped unanswered (the peer is shutting down or busy): the sync
                // exchange finds out later what it has.
                self.sessions.reset(&peer, project_id);
                self.trim_outbox(project_id);
            }
            Err(e) => self.reject_peer(peer, format!("malformed sync response: {e}")),
        }
    }

    pub(super) fn on_sync_request(
        &mut self,
        peer: PeerId,
        frame: &[u8],
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let request = match SyncFrame::decode(frame) {
            Ok(request) => request,
            Err(e) => {
                respond(
                    &mut self.swarm,
                    channel,
                    &SyncResponse::Rejected(e.to_string()),
                );
                self.reject_peer(peer, format!("malformed sync request: {e}"));
                return;
            }
        };
        let project_id = request.project_id().to_owned();
        let Some(store) = self.projects.get_mut(&project_id) else {
            respond(
                &mut self.swarm,
                channel,
                &SyncResponse::Rejected(format!("unknown project {project_id}")),
            );
            return;
        };
        let Some(session) = self.sessions.get(&peer, &project_id) else {
            respond(
                &mut self.swarm,
                channel,
                &SyncResponse::Rejected("not connected".into()),
            );
            return;
        };
        let pushed = matches!(request, SyncFrame::Changes(_));
        let applied = match &request {
            SyncFrame::Sync(request) => {
                session.received();
                store.doc_mut().receive_sync_message(
                    &mut session.state,
                    &request.message,
                    &project_id,
                )
            }
            SyncFrame::Changes(push) => store.doc_mut().apply_changes(&push.changes, &project_id),
        };
        let applied = match applied {
            Ok(applied) => applied,
            Err(e) => {
                self.reload(&project_id);
                respond(
                    &mut self.swarm,
                    channel,
                    &SyncResponse::Rejected(e.to_string()),
                );
                self.reject_peer(peer, format!("project {project_id}: {e}"));
                return;
            }
        };
        if applied.changed {
            self.unsynced.insert(project_id.clone());
            self.disk_sync_due
                .get_or_insert_with(|| Instant::now() + DISK_SYNC_AFTER);
        }
        respond(&mut self.swarm, channel, &SyncResponse::Accepted);
        if pushed {
            let missing = store.doc_mut().missing_changes();
            if let Some(session) = self.sessions.get(&peer, &project_id) {
                session
                    .state
                    .pushed_by_peer(&applied.pushed, missing.is_empty());
            }
            // The pusher pushes the same changes to every peer it reaches: an
            // exchange of ours with those need not send them too. (A peer that
            // lacks them anyway asks by name, and gets them.)
            if let Some(reached) = self.presence.reaches(&peer) {
                for other in reached {
                    if let Some(session) = self.sessions.get(other, &project_id) {
                        session.state.mark_sent(&applied.pushed);
                    }
                }
            }
            let queued = self
                .missing
                .iter()
                .any(|(_, p, id, _)| *p == peer && *id == project_id);
            if !missing.is_empty() && !queued {
                let due = Instant::now() + MISSING_CHANGES_AFTER;
                self.missing
                    .push_back((due, peer, project_id.clone(), missing));
                self.missing_check_due.get_or_insert(due);
            }
        }
        if applied.changed {
            if applied.renumbered > 0 {
                info!(
                    "project {project_id}: {} shot codes renumbered after merging {peer}'s changes",
                    applied.renumbered
                );
            }
            let heads = store.doc_mut().heads();
            self.emit(NodeEvent::DocChanged {
                project_id: project_id.clone(),
                heads,
                origin: ChangeOrigin::Peer(peer),
            });
            self.push_changes(&project_id, applied.renumbering);
            self.relay(peer, &project_id, !pushed);
            self.wake_waiters(&project_id);
        } else if !pushed {
            self.reply(peer, &project_id);
        }
    }

    /// Before stopping, let the pushes under way be answered (at most
    /// [`FAREWELL`]): the last edits (the job runner's jobs given back, a result
    /// written as it stopped) reach the peers now rather than with the next sync.
    pub(super) async fn farewell(&mut self) {
        let deadline = tokio::time::sleep(FAREWELL);
        tokio::pin!(deadline);
        while self.sessions.pushes_in_flight() {
            tokio::select! {
                biased;
                () = &mut deadline => {
                    debug!("stopping with pushes unanswered; peers get them by sync");
                    break;
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
            }
        }
    }

    /// Write the changes received from peers since the last time, and fsync them
    /// on the blocking pool: this task, which serves every peer and every local
    /// request, does not wait for a busy disk (17 nodes on one disk made it wait
    /// 0.3-0.6 s now and then). They are in the file at once (a crash of the
    /// process loses nothing); until the fsync ends a power cut may lose them, and
    /// peers send them again. If the disk refuses, the project goes back to what
    /// is on disk and every sync session of it starts over, so peers send those
    /// changes again. Local edits still wait for their own fsync.
    pub(super) fn sync_to_disk(&mut self) {
        self.disk_sync_due = None;
        for project_id in std::mem::take(&mut self.unsynced) {
            let Some(store) = self.projects.get_mut(&project_id) else {
                continue;
            };
            match store.append().and_then(|()| store.sync_handle()) {
                Ok(Some((file, path))) => {
                    let failed = self.disk_failed_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = file.sync_data() {
                            let _ =
                                failed.try_send((project_id, format!("{}: {e}", path.display())));
                        }
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    error!("project {project_id}: writing received changes to disk failed: {e}");
                    self.reload(&project_id);
                }
            }
        }
    }
}
