//! This node's health as a renderer: failures in a row and the pause they cause
//! (see [`PAUSE_AFTER_FAILURES`]), and a renderer a run just lost (its workflows
//! stay out of the offer until it is looked at again, see [`RENDERER_RECHECK`]).
//! It owns its fields and decides alone; the runner asks it.

use std::time::{Duration, Instant};

use super::{FIRST_PAUSE, LONGEST_PAUSE, PAUSE_AFTER_FAILURES, RENDERER_RECHECK, clip};

/// Failures in a row, the pause, and a renderer under suspicion.
#[derive(Debug)]
pub(super) struct Health {
    /// Failed runs in a row.
    streak: u32,
    last_failure: String,
    /// Paused until then, with the reason.
    pause: Option<(Instant, String)>,
    next_pause: Duration,
    /// A run here just lost its renderer, with when and why.
    renderer_lost: Option<(Instant, String)>,
}

impl Health {
    pub(super) fn new() -> Health {
        Health {
            streak: 0,
            last_failure: String::new(),
            pause: None,
            next_pause: FIRST_PAUSE,
            renderer_lost: None,
        }
    }

    /// A run failed for a reason of its own (not a passing outage). Returns the
    /// reason of the pause this begins, if it begins one.
    pub(super) fn failed(&mut self, error: &str, now: Instant) -> Option<String> {
        self.streak += 1;
        error.clone_into(&mut self.last_failure);
        if self.streak < PAUSE_AFTER_FAILURES {
            return None;
        }
        let why = format!(
            "{} jobs failed in a row (last: {}); offering again in {} s",
            self.streak,
            clip(&self.last_failure, 100),
            self.next_pause.as_secs()
        );
        self.pause = Some((now + self.next_pause, why.clone()));
        self.next_pause = (self.next_pause * 2).min(LONGEST_PAUSE);
        Some(why)
    }

    /// A run succeeded: the streak and the pause length start over.
    pub(super) fn succeeded(&mut self) {
        self.streak = 0;
        self.next_pause = FIRST_PAUSE;
    }

    /// A run lost its renderer (ComfyUI went away or restarted).
    pub(super) fn renderer_lost(&mut self, why: &str, now: Instant) {
        self.renderer_lost = Some((now, clip(why, 300)));
    }

    /// Why the renderer is under suspicion, while it is (a run lost it less than
    /// [`RENDERER_RECHECK`] ago).
    pub(super) fn renderer_suspect(&self, now: Instant) -> Option<&str> {
        self.renderer_lost
            .as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < RENDERER_RECHECK)
            .map(|(_, why)| why.as_str())
    }

    /// Why this node takes no jobs now, while paused.
    pub(super) fn paused(&self) -> Option<&str> {
        self.pause.as_ref().map(|(_, why)| why.as_str())
    }

    /// When the pause ends, while paused.
    pub(super) fn pause_ends(&self) -> Option<Instant> {
        self.pause.as_ref().map(|(until, _)| *until)
    }

    /// End the pause if it is over at `now`; the node is then on probation: one
    /// more failure pauses it again, for longer. Returns whether it ended.
    pub(super) fn resume_if_over(&mut self, now: Instant) -> bool {
        if self.pause_ends().is_some_and(|until| now >= until) {
            self.pause = None;
            self.streak = PAUSE_AFTER_FAILURES - 1;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_in_a_row_pause_and_each_pause_is_longer() {
        let mut health = Health::new();
        let t0 = Instant::now();
        for n in 1..PAUSE_AFTER_FAILURES {
            assert_eq!(health.failed(&format!("boom {n}"), t0), None);
            assert_eq!(health.paused(), None);
        }
        let why = health.failed("CUDA out of memory", t0).expect("paused");
        assert_eq!(
            why,
            "5 jobs failed in a row (last: CUDA out of memory); offering again in 30 s"
        );
        assert_eq!(health.paused(), Some(why.as_str()));
        assert_eq!(health.pause_ends(), Some(t0 + FIRST_PAUSE));
        assert!(!health.resume_if_over(t0 + FIRST_PAUSE / 2));
        assert!(health.resume_if_over(t0 + FIRST_PAUSE));
        assert_eq!(health.paused(), None);
        // On probation: the next failure pauses again, for twice as long.
        let again = health.failed("boom", t0).expect("paused again");
        assert!(again.contains("offering again in 60 s"), "{again}");
        // A success ends the probation and resets the length.
        assert!(health.resume_if_over(t0 + Duration::from_secs(60)));
        health.succeeded();
        for _ in 1..PAUSE_AFTER_FAILURES {
            assert_eq!(health.failed("boom", t0), None);
        }
        assert!(
            health
                .failed("boom", t0)
                .expect("paused")
                .contains("in 30 s")
        );
    }

    #[test]
    fn pauses_grow_to_ten_minutes_at_most() {
        let mut health = Health::new();
        let t0 = Instant::now();
        let mut last = String::new();
        for _ in 0..12 {
            while health.paused().is_none() {
                if let Some(why) = health.failed("boom", t0) {
                    last = why;
                }
            }
            let until = health.pause_ends().expect("paused");
            assert!(until.duration_since(t0) <= LONGEST_PAUSE);
            health.resume_if_over(until);
        }
        assert!(last.contains("in 600 s"), "{last}");
    }

    #[test]
    fn a_lost_renderer_is_suspect_for_a_while() {
        let mut health = Health::new();
        let t0 = Instant::now();
        assert_eq!(health.renderer_suspect(t0), None);
        health.renderer_lost("comfyui at 127.0.0.1:8188: unreachable", t0);
        assert_eq!(
            health.renderer_suspect(t0 + Duration::from_secs(1)),
            Some("comfyui at 127.0.0.1:8188: unreachable")
        );
        assert_eq!(health.renderer_suspect(t0 + RENDERER_RECHECK), None);
        // A lost renderer is not a failure of the node: no streak, no pause.
        assert_eq!(health.paused(), None);
    }
}
