//! When this node's offer goes out on gossip: the sequence, the last offer sent and
//! when, and whether a change waits for the coalescing window. Plain state; the
//! runner builds the offer and sends it.

use std::time::Instant;

use reelmesh_protocol::placement::Offer;

use super::super::{OFFER_COALESCE, TICK};

/// What to do with the offer as it stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::jobs) enum Decision {
    /// Keep it: nothing changed, or only what can wait for the coalescing window
    /// (then [`Publisher::deferred_until`] says when).
    Wait,
    /// Send it now.
    Send {
        /// It differs from the last one sent (beyond the busy time).
        changed: bool,
        /// It opens slots the last one did not have.
        opened: bool,
    },
}

/// The offers this node sent.
#[derive(Debug)]
pub(in crate::jobs) struct Publisher {
    /// Sequence of the last offer sent; starts at the clock so that a restarted
    /// node's offers are newer than its previous run's.
    seq: u64,
    last: Option<Offer>,
    sent_at: Option<Instant>,
    /// A change waits for the coalescing window.
    deferred: bool,
}

impl Publisher {
    pub(in crate::jobs) fn new(first_seq: u64) -> Self {
        Self {
            seq: first_seq,
            last: None,
            sent_at: None,
            deferred: false,
        }
    }

    /// The last offer sent.
    pub(in crate::jobs) fn last(&self) -> Option<&Offer> {
        self.last.as_ref()
    }

    /// The sequence the next offer built now would carry (the last one's).
    pub(in crate::jobs) fn seq(&self) -> u64 {
        self.seq
    }

    /// When a deferred change is due to go out.
    pub(in crate::jobs) fn deferred_until(&self) -> Option<Instant> {
        self.sent_at
            .filter(|_| self.deferred)
            .map(|sent| sent + OFFER_COALESCE)
    }

    /// Whether `offer` goes out now. It does every [`TICK`] (peers learn the node
    /// is there and its busy time), at once when it changes what others decide on
    /// (slots, pause, workflows, what is unavailable, utilization, a new intent or
    /// a new held job that was not an intent), and within [`OFFER_COALESCE`] for
    /// other changes. The busy time alone is not a change: it shrinks as the GPU
    /// works and goes out with the next send.
    pub(in crate::jobs) fn decide(&mut self, offer: &Offer, now: Instant) -> Decision {
        let since_sent = |at: Instant| now.saturating_duration_since(at);
        let changed = self.last.as_ref().is_none_or(|last| {
            let mut same = last.clone();
            same.seq = offer.seq;
            same.sent_ms = offer.sent_ms;
            same.busy_ms = offer.busy_ms;
            same != *offer
        });
        let refresh = self.sent_at.is_none_or(|at| since_sent(at) >= TICK);
        let urgent = self.last.as_ref().is_none_or(|last| urgent(last, offer));
        let coalesced = self
            .sent_at
            .is_none_or(|at| since_sent(at) >= OFFER_COALESCE);
        if !refresh && !(changed && (urgent || coalesced)) {
            self.deferred |= changed;
            return Decision::Wait;
        }
        let opened = self
            .last
            .as_ref()
            .is_some_and(|last| offer.slots > last.slots);
        Decision::Send { changed, opened }
    }

    /// `offer` is about to go out: it takes the next sequence and `sent_ms`.
    pub(in crate::jobs) fn stamp(&mut self, offer: &mut Offer, sent_ms: u64) {
        self.seq += 1;
        offer.seq = self.seq;
        offer.sent_ms = sent_ms;
    }

    /// `offer` went out at `now`.
    pub(in crate::jobs) fn sent(&mut self, offer: Offer, now: Instant) {
        self.deferred = false;
        self.last = Some(offer);
        self.sent_at = Some(now);
    }
}

/// A change that others decide on at once.
fn urgent(last: &Offer, offer: &Offer) -> bool {
    offer.slots != last.slots
        || offer.paused != last.paused
        || offer.workflows != last.workflows
        || offer.unavailable != last.unavailable
        || offer.utilization != last.utilization
        || offer.intents.iter().any(|i| !last.intents.contains(i))
        || offer
            .holding
            .iter()
            .any(|h| !last.holding.contains(h) && !last.intents.contains(h))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const WINDOW: Duration = OFFER_COALESCE;

    fn offer() -> Offer {
        Offer {
            node_id: "n".into(),
            host: "h".into(),
            seq: 0,
            workflows: vec!["flux".into()],
            utilization: 0,
            queue_len: 0,
            slots: 1,
            paused: None,
            unavailable: Vec::new(),
            holding: Vec::new(),
            mean_run_ms: None,
            intents: Vec::new(),
            sent_ms: 0,
            busy_ms: None,
            rates: Vec::new(),
            overhead_ms: 0,
            renderer_down: None,
        }
    }

    fn send(publisher: &mut Publisher, offer: &Offer, now: Instant) -> Decision {
        let decision = publisher.decide(offer, now);
        if let Decision::Send { .. } = decision {
            let mut out = offer.clone();
            publisher.stamp(&mut out, 0);
            publisher.sent(out, now);
        }
        decision
    }

    #[test]
    fn the_first_offer_goes_out_and_an_unchanged_one_only_every_tick() {
        let t0 = Instant::now();
        let mut publisher = Publisher::new(100);
        let first = send(&mut publisher, &offer(), t0);
        assert_eq!(
            first,
            Decision::Send {
                changed: true,
                opened: false
            }
        );
        assert_eq!(publisher.last().map(|o| o.seq), Some(101));
        assert_eq!(
            send(&mut publisher, &offer(), t0 + TICK / 2),
            Decision::Wait
        );
        // The busy time alone is no change.
        let mut busy = offer();
        busy.busy_ms = Some(900);
        assert_eq!(send(&mut publisher, &busy, t0 + TICK / 2), Decision::Wait);
        assert_eq!(publisher.deferred_until(), None);
        let tick = send(&mut publisher, &busy, t0 + TICK);
        assert_eq!(
            tick,
            Decision::Send {
                changed: false,
                opened: false
            }
        );
        assert_eq!(publisher.seq(), 102);
    }

    #[test]
    fn what_others_decide_on_goes_at_once_and_slots_opening_are_told() {
        let t0 = Instant::now();
        let mut publisher = Publisher::new(0);
        let mut full = offer();
        full.slots = 0;
        send(&mut publisher, &full, t0);
        let opened = send(&mut publisher, &offer(), t0 + Duration::from_millis(1));
        assert_eq!(
            opened,
            Decision::Send {
                changed: true,
                opened: true
            }
        );
        let mut intent = offer();
        intent.intents = vec![("job".into(), 1)];
        let claimed = send(&mut publisher, &intent, t0 + Duration::from_millis(2));
        assert_eq!(
            claimed,
            Decision::Send {
                changed: true,
                opened: false
            }
        );
        // The intent becoming a held job is no news: it waits for the window.
        let mut held = offer();
        held.holding = vec![("job".into(), 1)];
        held.intents = Vec::new();
        assert_eq!(
            send(&mut publisher, &held, t0 + Duration::from_millis(3)),
            Decision::Wait
        );
    }

    #[test]
    fn other_changes_wait_for_the_coalescing_window() {
        let t0 = Instant::now();
        let mut publisher = Publisher::new(0);
        send(&mut publisher, &offer(), t0);
        let mut slower = offer();
        slower.mean_run_ms = Some(4000);
        let early = t0 + WINDOW / 2;
        assert_eq!(send(&mut publisher, &slower, early), Decision::Wait);
        assert_eq!(publisher.deferred_until(), Some(t0 + WINDOW));
        let due = send(&mut publisher, &slower, t0 + WINDOW);
        assert_eq!(
            due,
            Decision::Send {
                changed: true,
                opened: false
            }
        );
        assert_eq!(publisher.deferred_until(), None);
    }
}
