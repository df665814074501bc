//! Latency and throughput over a measured window: each worker records into its own
//! histogram (no shared lock on the hot path), merged at the end.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// When the warm-up ends and the measured window closes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Start of the measured window.
    pub(crate) start: Instant,
    /// End of it: workers stop here.
    pub(crate) end: Instant,
}

impl Window {
    pub(crate) fn new(warmup: Duration, duration: Duration) -> Window {
        let start = Instant::now() + warmup;
        Window { start, end: start + duration }
    }

    /// Whether an operation that started at `at` counts.
    pub(crate) fn counts(&self, at: Instant) -> bool {
        at >= self.start && at < self.end
    }

    pub(crate) fn over(&self) -> bool {
        Instant::now() >= self.end
    }

    pub(crate) fn length(&self) -> Duration {
        self.end - self.start
    }
}

/// One worker's (or the merged) record: latencies in µs, and counts.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) latency: Histogram<u64>,
    /// A second latency some workloads report (acquire within a lock cycle).
    pub(crate) secondary: Histogram<u64>,
    pub(crate) ops: u64,
    pub(crate) errors: u64,
    /// Broken invariants (two lock holders at once, a lost event).
    pub(crate) violations: u64,
    /// held-locks: the busiest member's resident memory before and after, bytes.
    pub(crate) memory: Option<(u64, u64)>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            latency: histogram(),
            secondary: histogram(),
            ops: 0,
            errors: 0,
            violations: 0,
            memory: None,
        }
    }
}

/// 1 µs to 10 min at 3 significant figures.
fn histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Record {
    /// An operation that took `took`.
    pub(crate) fn op(&mut self, took: Duration) {
        self.ops += 1;
        self.latency.saturating_record(micros(took));
    }

    /// The secondary latency of the last operation.
    pub(crate) fn secondary(&mut self, took: Duration) {
        self.secondary.saturating_record(micros(took));
    }

    pub(crate) fn merge(&mut self, other: &Record) {
        self.latency.add(&other.latency).ok();
        self.secondary.add(&other.secondary).ok();
        self.ops += other.ops;
        self.errors += other.errors;
        self.violations += other.violations;
    }
}
