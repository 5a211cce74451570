//! Gossip: this node's presence (heartbeats with GPU figures, status, heads) and
//! the jobs topic (offers, progress), published and received (signed, checked).

#[allow(clippy::wildcard_imports)]
use super::*;

impl Runtime {
    pub(super) fn my_presence(&self) -> Presence {
        let sample = self.gpu.borrow().clone();
        let worker = self.worker.borrow().clone();
        let paused = worker.paused.as_ref().map(|why| format!("paused: {why}"));
        let problem = paused
            .clone()
            .or_else(|| worker.problem.clone())
            .or(sample.problem);
        let status = if worker.current_job.is_some() {
            NodeStatus::Busy
        } else if paused.is_some() || (problem.is_some() && self.config.comfy_url.is_some()) {
            NodeStatus::Error
        } else {
            NodeStatus::Idle
        };
        Presence {
            node_id: self.peer_id.to_string(),
            host_name: self.host_name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            gpu: sample.gpu,
            status,
            status_detail: problem,
            current_job: worker.current_job,
            comfy_url: self.config.comfy_url.clone(),
            capabilities: worker.capabilities,
            projects: self
                .projects
                .iter()
                .filter(|(_, s)| s.doc().is_ready())
                .map(|(id, _)| id.clone())
                .collect(),
            peers: if self.connected.len() <= MAX_PRESENCE_PEERS {
                self.connected.iter().map(ToString::to_string).collect()
            } else {
                Vec::new()
            },
            heads: BTreeMap::new(),
            sent_at_ms: now_ms(),
        }
    }

    pub(super) fn self_row(&self) -> PeerRow {
        let mut row =
            PeerRow::from_presence(&self.my_presence(), Some(Duration::ZERO), true, false);
        row.this_node = true;
        row
    }

    pub(super) fn publish_presence(&mut self) {
        if self.config.offline {
            return;
        }
        let mut presence = self.my_presence();
        for (project_id, store) in self.projects.iter_mut().take(MAX_PRESENCE_HEAD_PROJECTS) {
            let heads = store.doc_mut().heads();
            if store.doc().is_ready() && heads.len() <= MAX_PRESENCE_HEADS {
                presence.heads.insert(project_id.clone(), heads);
            }
        }
        self.publish(mesh::presence_topic(), presence.encode(), "presence");
    }

    /// Publish on a gossip topic (nothing when offline; no subscriber yet is normal).
    pub(super) fn publish(&mut self, topic: gossipsub::IdentTopic, bytes: Vec<u8>, what: &str) {
        if self.config.offline {
            return;
        }
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            debug!("{what} not published: {e}");
        }
    }

    /// Refuse a gossip message that did not decode: the author is dropped when it
    /// sent it to us itself; a relayed one is only logged (the relay is not to blame).
    pub(super) fn refuse_gossip(
        &mut self,
        source: PeerId,
        author: PeerId,
        message_id: &gossipsub::MessageId,
        reason: String,
    ) {
        self.report(message_id, &source, gossipsub::MessageAcceptance::Reject);
        if source == author {
            self.reject_peer(source, reason);
        } else {
            warn!("peer {author} (relayed by {source}): {reason}");
        }
    }

    pub(super) fn on_jobs_gossip(
        &mut self,
        source: PeerId,
        message_id: &gossipsub::MessageId,
        message: &gossipsub::Message,
    ) {
        use reelmesh_protocol::wire::JobsGossip;
        let Some(author) = message.source else {
            self.report(message_id, &source, gossipsub::MessageAcceptance::Reject);
            return;
        };
        match JobsGossip::decode(&message.data, &author.to_string()) {
            Ok(JobsGossip::Offer(offer)) => {
                self.report(message_id, &source, gossipsub::MessageAcceptance::Accept);
                if self.jobs_view.offer(offer.clone()) {
                    self.emit(NodeEvent::Offer(offer));
                }
            }
            Ok(JobsGossip::Progress(update)) => {
                self.report(message_id, &source, gossipsub::MessageAcceptance::Accept);
                self.jobs_view.progress(&update);
                self.emit(NodeEvent::Job(update));
            }
            Err(e) => {
                self.refuse_gossip(source, author, message_id, format!("bad jobs message: {e}"));
            }
        }
    }

    /// This node's offer or progress: kept and published.
    pub(super) fn publish_jobs(&mut self, message: &reelmesh_protocol::wire::JobsGossip) {
        use reelmesh_protocol::wire::JobsGossip;
        match message {
            JobsGossip::Offer(offer) => {
                self.jobs_view.offer(offer.clone());
            }
            JobsGossip::Progress(update) => {
                // The runner shows its own progress locally (every step; gossip
                // carries fewer).
                self.jobs_view.progress(update);
            }
        }
        self.publish(mesh::jobs_topic(), message.encode(), "jobs message");
    }

    pub(super) fn on_presence(
        &mut self,
        source: PeerId,
        message_id: &gossipsub::MessageId,
        message: &gossipsub::Message,
    ) {
        let Some(author) = message.source else {
            self.report(message_id, &source, gossipsub::MessageAcceptance::Reject);
            return;
        };
        match Presence::decode(&message.data, &author.to_string()) {
            Ok(presence) => {
                self.report(message_id, &source, gossipsub::MessageAcceptance::Accept);
                let newly_offered: Vec<String> = presence
                    .projects
                    .iter()
                    .filter(|p| self.projects.contains_key(*p))
                    .cloned()
                    .collect();
                let behind = self.lacking_heads(author, &presence.heads);
                self.presence.record(author, presence);
                for (project_id, heads) in behind {
                    self.ask_for(author, &project_id, &heads);
                }
                self.emit(NodeEvent::Presence(author));
                // A peer that now holds a project it refused earlier gets offered it again.
                for project_id in newly_offered {
                    if let Some(session) = self.sessions.get(&author, &project_id)
                        && session.refused_until.take().is_some()
                    {
                        self.offer(author, &project_id);
                    }
                }
            }
            Err(e) => {
                self.refuse_gossip(source, author, message_id, format!("bad presence: {e}"));
            }
        }
    }

    pub(super) fn report(
        &mut self,
        message_id: &gossipsub::MessageId,
        source: &PeerId,
        acceptance: gossipsub::MessageAcceptance,
    ) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message_id, source, acceptance);
    }

    // ---- connections ----------------------------------------------------------
}
