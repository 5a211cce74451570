//! The placement rule: which node runs a job, computed the same way on every node.
//!
//! Every node that can run a queued job publishes a [`Bid`]; after a short window
//! each node orders the bids it saw with [`rank`] and the first one claims the job.
//! Because the order is a pure function of the bids (ties broken by node id), two
//! nodes that saw the same bids pick the same winner; when they saw different bids
//! (a lost message, a partition) both may claim, and the document's merge decides
//! (see [`claim_winner`]).
//!
//! Order, from the product brief: the workflow is supported → the VRAM requirement
//! is met → the lowest GPU utilization → the shortest queue → node id. Job
//! priorities are honoured before placement: a node bids on its queued jobs in
//! priority order ([`job_order`]).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::jobs::Job;

/// A node's offer to run a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    /// The job.
    pub job_id: String,
    /// The bidder (libp2p peer id).
    pub node_id: String,
    /// It has the workflow (node classes and models).
    pub capable: bool,
    /// Its VRAM meets the workflow's minimum.
    pub vram_ok: bool,
    /// GPU utilization in percent (100 when unknown: an unknown load is not better
    /// than a known one).
    pub utilization: u8,
    /// Jobs it is running or holding locally.
    pub queue_len: u32,
}

/// Order two bids: the better bid first.
#[must_use]
pub fn compare(a: &Bid, b: &Bid) -> Ordering {
    b.capable
        .cmp(&a.capable)
        .then(b.vram_ok.cmp(&a.vram_ok))
        .then(a.utilization.cmp(&b.utilization))
        .then(a.queue_len.cmp(&b.queue_len))
        .then(a.node_id.cmp(&b.node_id))
}

/// The winning bid for a job among `bids` (only capable bids with enough VRAM can
/// win; `None` when there is none).
#[must_use]
pub fn rank<'a>(bids: impl IntoIterator<Item = &'a Bid>) -> Option<&'a Bid> {
    bids.into_iter()
        .filter(|b| b.capable && b.vram_ok)
        .min_by(|a, b| compare(a, b))
}

/// The order in which queued jobs are offered: higher priority first, then older,
/// then by id.
#[must_use]
pub fn job_order(a: &Job, b: &Job) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.created_at_ms.cmp(&b.created_at_ms))
        .then(a.job_id.cmp(&b.job_id))
}

/// Whether `node_id` keeps its run of a job after a merge: the claimant written in
/// the merged document is the one every node agrees on; any other node that was
/// running it cancels its run.
#[must_use]
pub fn claim_winner(job: &Job, node_id: &str) -> bool {
    job.claimant == node_id
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn bid(node: &str, capable: bool, vram_ok: bool, utilization: u8, queue_len: u32) -> Bid {
        Bid {
            job_id: "j".into(),
            node_id: node.into(),
            capable,
            vram_ok,
            utilization,
            queue_len,
        }
    }

    #[test]
    fn the_rule_orders_support_then_vram_then_load_then_queue_then_id() {
        let bids = [
            bid("a", false, true, 0, 0), // cannot run it
            bid("b", true, false, 0, 0), // not enough VRAM
            bid("c", true, true, 80, 0), // busy GPU
            bid("d", true, true, 10, 3), // idle-ish, long queue
            bid("e", true, true, 10, 1), // idle-ish, short queue
            bid("f", true, true, 10, 1), // same as e: the id decides
        ];
        assert_eq!(rank(&bids).map(|b| b.node_id.as_str()), Some("e"));
        assert_eq!(rank(&bids[..2]), None);
        assert_eq!(rank(&bids[..3]).map(|b| b.node_id.as_str()), Some("c"));
    }

    #[test]
    fn priorities_come_first_then_age() {
        let mut high = Job::new("s", "card", 1, "n", 50);
        high.priority = 5;
        let old = Job::new("s", "card", 1, "n", 10);
        let young = Job::new("s", "card", 1, "n", 20);
        let mut jobs = [young.clone(), old.clone(), high.clone()];
        jobs.sort_by(job_order);
        assert_eq!(
            jobs.iter().map(|j| j.job_id.clone()).collect::<Vec<_>>(),
            vec![high.job_id, old.job_id, young.job_id]
        );
    }

    proptest! {
        /// Every node that saw the same bids, in any order, picks the same winner.
        #[test]
        fn the_winner_does_not_depend_on_arrival_order(
            raw in proptest::collection::vec((any::<bool>(), any::<bool>(), 0_u8..=100, 0_u32..5, 0_u8..6), 1..12),
            seed in any::<u64>(),
        ) {
            let bids: Vec<Bid> = raw
                .iter()
                .enumerate()
                .map(|(i, (c, v, u, q, _))| bid(&format!("node-{i:02}"), *c, *v, *u, *q))
                .collect();
            let mut shuffled = bids.clone();
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let j = usize::try_from(state % (i as u64 + 1)).unwrap_or(0);
                shuffled.swap(i, j);
            }
            prop_assert_eq!(
                rank(&bids).map(|b| b.node_id.clone()),
                rank(&shuffled).map(|b| b.node_id.clone())
            );
            if let Some(winner) = rank(&bids) {
                for other in bids.iter().filter(|b| b.capable && b.vram_ok) {
                    prop_assert_ne!(compare(other, winner), Ordering::Less);
                }
            }
        }
    }
}
