//! Claim intents: a node announces on gossip the jobs it is about to claim, waits one
//! short window, and writes to the document only the claims nobody contested.
//!
//! ```text
//!  node A                         gossip (offers)                        node B
//!  assign → J1, J2  ── intents [J1@1, J2@1] ──▶      ◀── intents [J2@1, J3@1] ── assign → J2, J3
//!  window: B also wants J2@1,                          window: A also wants J2@1,
//!  rank(J2,1,A) < rank(J2,1,B): keep                   rank(J2,1,B) > rank(J2,1,A): drop
//!  write claims J1, J2 (one change)                    write claim J3 (one change)
//! ```
//! Two nodes race for a job when they compute the placement from different views
//! of the offers (one has not heard the other's latest yet). Settling that in the
//! document costs a change from each, a merge, and a wait for the merge before
//! either may run; on gossip it costs one window, and the loser writes nothing.
//! [`claim_rank`] decides, so every node reaches the same answer whatever order the
//! announcements arrive in. A claim already written (in an offer's `holding`) wins
//! over any intent. If an intent arrives after the window closed (gossip slower than
//! measured), both claims reach the document and the merge decides, as before.
//!
//! The window follows the gossip delay: each offer carries its send time, and the
//! delay above the fastest delivery seen from that sender is its queueing delay
//! (clock offsets cancel out). The window is [`INTENT_WINDOW_MIN`] plus twice the recent
//! 90th percentile of that, because an intent crosses the mesh both ways before
//! two nodes know they raced. (The median was tried: twice the claim races and
//! jobs run twice under the throughput bench's load.) Only a node whose claims
//! raced lately waits the window before writing; see the runner.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use reelmesh_protocol::placement::{Offer, claim_rank};

/// The shortest intent window: a LAN delivers gossip in about a millisecond.
pub const INTENT_WINDOW_MIN: Duration = Duration::from_millis(20);
/// The longest intent window, however slow gossip has been.
pub const INTENT_WINDOW_MAX: Duration = Duration::from_secs(1);
/// Delay samples kept, over all senders, for the percentile.
const SAMPLES: usize = 128;
/// A sender's fastest delivery is the smallest offset (arrival − send time) seen in
/// the last this many minutes, kept per minute (as LEDBAT keeps its base delay):
/// long enough that a sustained queue is not taken for the base, short enough that
/// a sender whose clock was stepped is judged afresh.
const BASE_MINUTES: usize = 10;
/// An offset this much above a sender's base is a clock step, not a delay: the
/// sender's base starts over from it.
const CLOCK_STEP_MS: i64 = 10_000;

/// A job this node announced it will claim, not written yet.
#[derive(Debug, Clone)]
pub(super) struct Intent {
    pub project_id: String,
    pub job_id: String,
    /// The attempt the claim will count (the job's attempts + 1).
    pub attempt: u64,
    pub since: Instant,
    /// Another node's claim or better-ranked intent for the same attempt.
    pub lost_to: Option<String>,
}

/// Whether `intent` of node `me` gives way to what `offer` (another node's) says:
/// it holds the same attempt (its claim is written), or announces it with a lower
/// [`claim_rank`].
pub(super) fn loses_to(me: &str, job_id: &str, attempt: u64, offer: &Offer) -> bool {
    if offer.node_id == me {
        return false;
    }
    let same = |(id, a): &(String, u64)| id == job_id && *a == attempt;
    offer.holding.iter().any(same)
        || (offer.intents.iter().any(same)
            && claim_rank(job_id, attempt, &offer.node_id) < claim_rank(job_id, attempt, me))
}

/// Whether `offer` holds or announces this attempt of a job.
pub(super) fn names(offer: &Offer, job_id: &str, attempt: u64) -> bool {
    offer
        .holding
        .iter()
        .chain(&offer.intents)
        .any(|(id, a)| id == job_id && *a == attempt)
}

/// How late gossip arrives lately, above each sender's fastest delivery.
#[derive(Debug, Default)]
pub(super) struct GossipDelay {
    /// Per sender: (minute of arrival, smallest offset in it), oldest first.
    offsets: HashMap<String, VecDeque<(u64, i64)>>,
    recent: VecDeque<u64>,
    /// The 90th percentile of `recent`, kept current by [`GossipDelay::note`]
    /// (read on every step, changed only by a new sample).
    p90: Duration,
}

impl GossipDelay {
    /// Note an offer from `node` sent at `sent_ms` (its clock) and received at
    /// `received_ms` (ours).
    pub fn note(&mut self, node: &str, sent_ms: u64, received_ms: u64) {
        if sent_ms == 0 {
            return;
        }
        let offset = i64::try_from(received_ms).unwrap_or(i64::MAX)
            - i64::try_from(sent_ms).unwrap_or(i64::MAX);
        let minute = received_ms / 60_000;
        let minutes = self.offsets.entry(node.to_owned()).or_default();
        if minutes
            .iter()
            .map(|(_, o)| *o)
            .min()
            .is_some_and(|base| offset - base > CLOCK_STEP_MS)
        {
            minutes.clear();
        }
        match minutes.back_mut() {
            Some((m, least)) if *m == minute => *least = (*least).min(offset),
            _ => {
                if minutes.len() == BASE_MINUTES {
                    minutes.pop_front();
                }
                minutes.push_back((minute, offset));
            }
        }
        let base = minutes.iter().map(|(_, o)| *o).min().unwrap_or(offset);
        if self.recent.len() == SAMPLES {
            self.recent.pop_front();
        }
        self.recent
            .push_back(u64::try_from(offset - base).unwrap_or(0));
        let mut sorted: Vec<u64> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        let at = (sorted.len() * 9 / 10).min(sorted.len() - 1);
        self.p90 = Duration::from_millis(sorted[at]);
    }

    /// Forget a node that left (its clock offset may differ when it comes back).
    pub fn forget(&mut self, node: &str) {
        self.offsets.remove(node);
    }

    /// The 90th percentile of recent delays.
    pub fn p90(&self) -> Duration {
        self.p90
    }

    /// How long an intent waits for rival intents before it is written.
    pub fn window(&self) -> Duration {
        (INTENT_WINDOW_MIN + self.p90() * 2).min(INTENT_WINDOW_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(node: &str) -> Offer {
        Offer {
            node_id: node.into(),
            host: String::new(),
            seq: 1,
            workflows: vec!["card".into()],
            utilization: 0,
            queue_len: 0,
            slots: 1,
            paused: None,
            holding: Vec::new(),
            unavailable: Vec::new(),
            mean_run_ms: None,
            intents: Vec::new(),
            sent_ms: 0,
            busy_ms: None,
            rates: Vec::new(),
            overhead_ms: 0,
            renderer_down: None,
        }
    }

    #[test]
    fn a_written_claim_beats_an_intent_and_ranks_settle_intents_the_same_everywhere() {
        let mut a = offer("node-a");
        let mut b = offer("node-b");
        // Nobody else wants it: keep it.
        assert!(!loses_to("node-a", "j", 1, &b));
        // Its own offer never beats it.
        a.holding = vec![("j".into(), 1)];
        assert!(!loses_to("node-a", "j", 1, &a));
        // A written claim for the same attempt wins; for another attempt it says nothing.
        b.holding = vec![("j".into(), 1)];
        assert!(loses_to("node-a", "j", 1, &b));
        assert!(!loses_to("node-a", "j", 2, &b));
        // Both announce: exactly one of them gives way, the same one seen from
        // either side.
        a.holding.clear();
        b.holding.clear();
        for j in 0..50 {
            let job = format!("job-{j}");
            a.intents = vec![(job.clone(), 1)];
            b.intents = vec![(job.clone(), 1)];
            let a_yields = loses_to("node-a", &job, 1, &b);
            let b_yields = loses_to("node-b", &job, 1, &a);
            assert!(a_yields != b_yields, "{job}: a {a_yields}, b {b_yields}");
        }
    }

    #[test]
    fn the_window_follows_delay_variation_not_clock_offsets() {
        let mut delay = GossipDelay::default();
        assert_eq!(delay.window(), INTENT_WINDOW_MIN);
        // Node b's clock runs 5 s ahead of ours, node c's 3 s behind; both deliver in
        // 1-2 ms: the window stays near its minimum.
        for i in 0..100_u64 {
            let now = 1_000_000 + i * 10;
            delay.note("b", now + 5_000 - 1 - i % 2, now);
            delay.note("c", now - 3_000 - 1 - i % 2, now);
        }
        assert!(delay.p90() <= Duration::from_millis(1), "{:?}", delay.p90());
        assert!(delay.window() <= INTENT_WINDOW_MIN + Duration::from_millis(2));
        // Then c's messages queue for 40 ms, for minutes: the window grows to cover
        // a round trip, and stays grown (a lasting queue is not the new normal).
        for i in 0..300_u64 {
            let now = 1_010_000 + i * 1_000;
            delay.note("c", now - 3_000 - 41, now);
        }
        assert_eq!(delay.p90(), Duration::from_millis(40));
        assert_eq!(
            delay.window(),
            INTENT_WINDOW_MIN + Duration::from_millis(80)
        );
        // Unknown send times are ignored; the window never passes its cap.
        delay.note("d", 0, 5);
        for i in 0..200_u64 {
            delay.note("c", 2_000_000 - 3_000 - 5_000, 2_000_000 + i);
        }
        assert_eq!(delay.window(), INTENT_WINDOW_MAX);
        // A sender whose clock was stepped back by a minute is judged afresh at
        // once: the step is not a delay.
        for i in 0..200_u64 {
            let now = 3_000_000 + i * 1_000;
            delay.note("c", now - 3_000 - 60_000 - 1, now);
        }
        assert!(delay.p90() <= Duration::from_millis(1), "{:?}", delay.p90());
    }
}
