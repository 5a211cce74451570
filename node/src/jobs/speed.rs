//! How fast this node renders, measured on its own runs: the mean run time, the
//! time per unit of work of each workflow, and the overhead a job costs besides its
//! render (submitting, storing, starting the next). Running means (70 % old, 30 %
//! new), so a GPU that warms up or slows down is followed within a few jobs.
//! Placement reads them from the offer (`Offer::rates`, `overhead_ms`, `mean_run_ms`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// This node's measured speed.
#[derive(Debug, Default)]
pub(super) struct Speed {
    /// Running mean of the run times.
    mean_run: Option<Duration>,
    /// Run time per unit of work, per workflow, in ms.
    rates: HashMap<String, f64>,
    /// What a job costs besides its render time. Measured from one run's start to
    /// the next one's when a held job was waiting, so it holds every delay the GPU
    /// sat through.
    overhead: Option<Duration>,
    /// The run that just ended while another job was held: when it started and its
    /// render time, until the next run starts and the overhead can be measured.
    back_to_back: Option<(Instant, Duration)>,
}

fn mean(old: Option<Duration>, new: Duration) -> Duration {
    match old {
        Some(old) => old.mul_f64(0.7) + new.mul_f64(0.3),
        None => new,
    }
}

impl Speed {
    /// A run of `workflow` with `work` took `render`; `started` is when it began,
    /// and `more_held` whether another job waits here (then the time until the next
    /// run starts is overhead).
    pub(super) fn ran(
        &mut self,
        workflow: &str,
        work: f64,
        render: Duration,
        started: Instant,
        more_held: bool,
    ) {
        self.mean_run = Some(mean(self.mean_run, render));
        if work > 0.0 {
            let per_unit = render.as_secs_f64() * 1000.0 / work;
            self.rates
                .entry(workflow.to_owned())
                .and_modify(|r| *r = *r * 0.7 + per_unit * 0.3)
                .or_insert(per_unit);
        }
        self.back_to_back = more_held.then_some((started, render));
    }

    /// The next run starts now: the time since the previous one's start, less its
    /// render, is overhead (when a job was waiting).
    pub(super) fn next_started(&mut self, now: Instant) {
        if let Some((previous, render)) = self.back_to_back.take() {
            let spent = now
                .saturating_duration_since(previous)
                .saturating_sub(render);
            self.overhead = Some(mean(self.overhead, spent));
        }
    }

    /// How long a job of `workflow` with `work` should take here: the work × the
    /// time per unit, else the mean run time, plus the overhead (`None` before the
    /// first run).
    pub(super) fn estimate(&self, workflow: &str, work: f64) -> Option<Duration> {
        let overhead = self.overhead.unwrap_or_default();
        if work > 0.0
            && let Some(ms_per_unit) = self.rates.get(workflow)
        {
            return Some(
                overhead + Duration::from_secs_f64((work * ms_per_unit / 1000.0).clamp(0.0, 1e9)),
            );
        }
        self.mean_run.map(|m| m + overhead)
    }

    /// The mean run time, once there is one.
    pub(super) fn mean_run(&self) -> Option<Duration> {
        self.mean_run
    }

    /// The per-job overhead (zero until measured).
    pub(super) fn overhead(&self) -> Duration {
        self.overhead.unwrap_or_default()
    }

    /// ms per unit of work for `workflow`, once measured.
    pub(super) fn rate(&self, workflow: &str) -> Option<f64> {
        self.rates.get(workflow).copied()
    }

    /// The rates to announce (µs per unit) for the workflows in `runnable`.
    pub(super) fn announced_rates(&self, runnable: &[String]) -> Vec<(String, u64)> {
        let mut rates: Vec<(String, u64)> = self
            .rates
            .iter()
            .filter(|(w, _)| runnable.contains(w))
            .map(|(w, ms)| {
                // µs per unit, a finite non-negative mean.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let us = (ms * 1000.0).round().clamp(0.0, 1e15) as u64;
                (w.clone(), us)
            })
            .collect();
        rates.sort();
        rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_follow_the_measured_rate_and_the_overhead() {
        let mut speed = Speed::default();
        assert_eq!(speed.estimate("flux", 10.0), None, "nothing measured yet");
        let t0 = Instant::now();
        speed.ran("flux", 10.0, Duration::from_millis(1000), t0, true);
        // The next run starts 1.2 s after the first began: 200 ms of overhead.
        speed.next_started(t0 + Duration::from_millis(1200));
        assert_eq!(speed.overhead(), Duration::from_millis(200));
        assert_eq!(speed.rate("flux"), Some(100.0), "100 ms per unit");
        // 20 units: 2 s of render plus the overhead.
        assert_eq!(
            speed.estimate("flux", 20.0),
            Some(Duration::from_millis(2200))
        );
        // An unknown work uses the mean run time.
        assert_eq!(
            speed.estimate("flux", 0.0),
            Some(Duration::from_millis(1200))
        );
        assert_eq!(
            speed.estimate("wan", 5.0),
            Some(Duration::from_millis(1200))
        );
        // A slower run moves the means by 30 %.
        speed.ran("flux", 10.0, Duration::from_millis(2000), t0, false);
        assert!((speed.rate("flux").unwrap() - 130.0).abs() < 1e-9);
        assert_eq!(speed.mean_run(), Some(Duration::from_millis(1300)));
        // No job waited: the next start measures nothing.
        speed.next_started(t0 + Duration::from_secs(60));
        assert_eq!(speed.overhead(), Duration::from_millis(200));
        assert_eq!(
            speed.announced_rates(&["flux".to_owned()]),
            [("flux".to_owned(), 130_000)]
        );
        assert!(
            speed.announced_rates(&[]).is_empty(),
            "only what it can run now"
        );
    }
}
