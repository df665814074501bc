//! One result per run: a row of the human table, or one JSON object per line.

use serde::Serialize;

use crate::measure::{Record, Window};
use crate::procstat::Usage;
use crate::workloads::Workload;

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunResult {
    pub(crate) workload: &'static str,
    pub(crate) system: String,
    pub(crate) clients: usize,
    /// Operations per second in the window: lock cycles, hand-offs, writes, reads, watch
    /// deliveries; for `sessions`, the sessions alive at the end; for `held-locks`, the
    /// locks held.
    pub(crate) ops_per_s: f64,
    /// Latency: of a whole operation (a lock cycle), of a contended acquire's wait, or of
    /// a watch delivery.
    pub(crate) p50_us: u64,
    pub(crate) p95_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    pub(crate) errors: u64,
    /// Broken checks: two holders of one lock, a token that did not increase, a watch
    /// event missed or repeated, a session lost.
    pub(crate) violations: u64,
    /// Lock workloads: the acquire alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) acquire_p50_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) acquire_p99_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) watchers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sessions: Option<usize>,
    /// held-locks: locks held, and the busiest member's memory growth per held lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) locks: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) bytes_per_lock: Option<f64>,
    pub(crate) window_s: f64,
    #[serde(flatten)]
    pub(crate) usage: Usage,
}

impl RunResult {
    pub(crate) fn new(
        workload: Workload,
        system: &str,
        clients: usize,
        record: &Record,
        window: Window,
        usage: Usage,
    ) -> RunResult {
        let secs = window.length().as_secs_f64();
        let at = |q: f64| record.latency.value_at_quantile(q);
        let locks = matches!(workload, Workload::LockUncontended | Workload::LockContended);
        let secondary = |q: f64| {
            (locks && !record.secondary.is_empty()).then(|| record.secondary.value_at_quantile(q))
        };
        let ops_per_s = match workload {
            Workload::Sessions | Workload::HeldLocks => record.ops as f64,
            _ => record.ops as f64 / secs,
        };
        RunResult {
            workload: workload.name(),
            system: system.to_owned(),
            clients,
            ops_per_s,
            p50_us: at(0.50),
            p95_us: at(0.95),
            p99_us: at(0.99),
            max_us: record.latency.max(),
            errors: record.errors,
            violations: record.violations,
            acquire_p50_us: secondary(0.50),
            acquire_p99_us: secondary(0.99),
            watchers: None,
            sessions: None,
            locks: (workload == Workload::HeldLocks).then_some(record.ops),
            bytes_per_lock: record
                .memory
                .filter(|_| record.ops > 0)
                .map(|(before, after)| after.saturating_sub(before) as f64 / record.ops as f64),
            window_s: secs,
            usage,
        }
    }

    pub(crate) fn header() -> String {
        format!(
            "{:<17} {:<10} {:>7} {:>11} {:>9} {:>9} {:>9} {:>10} {:>7} {:>5} {:>9} {:>8} {:>7}",
            "workload",
            "system",
            "clients",
            "ops/s",
            "p50 µs",
            "p95 µs",
            "p99 µs",
            "max µs",
            "errors",
            "viol",
            "leader%",
            "RSS MiB",
            "other%"
        )
    }

    pub(crate) fn row(&self) -> String {
        format!(
            "{:<17} {:<10} {:>7} {:>11.0} {:>9} {:>9} {:>9} {:>10} {:>7} {:>5} {:>9.0} {:>8.0} {:>7.0}",
            self.workload,
            self.system,
            self.clients,
            self.ops_per_s,
            self.p50_us,
            self.p95_us,
            self.p99_us,
            self.max_us,
            self.errors,
            self.violations,
            self.usage.busiest_member_cpu_percent,
            self.usage.busiest_member_rss_mib,
            self.usage.other_cpu_percent,
        )
    }
}
