//! Lock statistics by prefix as Prometheus metric families, made at each scrape.
//!
//! The statistics are replicated state (`warden_core::lock_stats`): every member holds the
//! same counts, with their histograms in fixed power-of-two millisecond buckets. They are
//! not `prometheus` collectors that count as things happen, so each scrape turns what the
//! state holds into families here: per prefix (the first `segments` segments of a lock's
//! path, `[metrics] lock_prefix_segments`), at most `[metrics] lock_prefixes` of them, the
//! busiest; the rest are summed under the prefix `other`. The label set is bounded
//! whatever the namespace holds.
//!
//! - `warden_lock_acquisitions_total{prefix}`, `warden_lock_contended_acquisitions_total{prefix}`;
//! - `warden_lock_wait_seconds{prefix}` (one observation per acquisition, 0 when it did
//!   not wait) and `warden_lock_hold_seconds{prefix}` (one per ended hold): histograms whose
//!   `le` bounds are the core's buckets (1 ms, 2 ms, 4 ms, ... 2^20 ms) in seconds.
//!
//! Counters that come from replicated state go down when a lock is forgotten (past the
//! core's bound of tracked locks) or when a busier prefix pushes one into `other`;
//! Prometheus' `rate()` takes a decrease as a counter reset, which is what it is.

use prometheus::proto::{
    Bucket, Counter, Histogram as PromHistogram, LabelPair, Metric, MetricFamily, MetricType,
};
use warden_core::lock_stats::{BOUNDED_BUCKETS, Histogram, PrefixStats};

/// The label that names a prefix.
const PREFIX_LABEL: &str = "prefix";

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn labelled(prefix: &str) -> Metric {
    let mut label = LabelPair::default();
    label.set_name(PREFIX_LABEL.to_owned());
    label.set_value(prefix.to_owned());
    Metric::from_label(vec![label])
}

fn counter(prefix: &str, value: u64) -> Metric {
    let mut metric = labelled(prefix);
    let mut counter = Counter::default();
    counter.set_value(value as f64);
    metric.set_counter(counter);
    metric
}

/// A core histogram as a Prometheus one: cumulative counts at each bounded bucket's upper
/// bound, in seconds (the overflow bucket is `+Inf`, which the text format adds from the
/// count).
fn histogram(prefix: &str, h: &Histogram) -> Metric {
    let mut cumulative = 0;
    let buckets = (0..BOUNDED_BUCKETS)
        .filter_map(|b| {
            let bound_ms = Histogram::bound_ms(b)?;
            cumulative += h.counts.get(b).copied().unwrap_or(0);
            let mut bucket = Bucket::default();
            bucket.set_upper_bound(bound_ms as f64 / 1_000.0);
            bucket.set_cumulative_count(cumulative);
            Some(bucket)
        })
        .collect();
    let mut histogram = PromHistogram::default();
    histogram.set_sample_count(h.count);
    histogram.set_sample_sum(h.sum_ms as f64 / 1_000.0);
    histogram.set_bucket(buckets);
    let mut metric = labelled(prefix);
    metric.set_histogram(histogram);
    metric
}

/// The four families for `prefixes` (none when no lock was ever counted).
pub(crate) fn families(prefixes: &[PrefixStats]) -> Vec<MetricFamily> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    let each = |f: &dyn Fn(&PrefixStats) -> Metric| prefixes.iter().map(f).collect::<Vec<_>>();
    vec![
        family(
            "warden_lock_acquisitions_total",
            "Lock grants (mutexes, read-write locks, semaphore permits) by lock prefix.",
            MetricType::COUNTER,
            each(&|p| counter(&p.prefix, p.stats.acquisitions)),
        ),
        family(
            "warden_lock_contended_acquisitions_total",
            "Lock grants that had to wait, by lock prefix.",
            MetricType::COUNTER,
            each(&|p| counter(&p.prefix, p.stats.contended)),
        ),
        family(
            "warden_lock_wait_seconds",
            "How long each lock grant waited (0 when it did not), by lock prefix.",
            MetricType::HISTOGRAM,
            each(&|p| histogram(&p.prefix, &p.stats.wait)),
        ),
        family(
            "warden_lock_hold_seconds",
            "How long each ended lock hold lasted, by lock prefix.",
            MetricType::HISTOGRAM,
            each(&|p| histogram(&p.prefix, &p.stats.hold)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder, TextEncoder};
    use warden_core::lock_stats::{LockStats, OTHER_PREFIX};

    use super::*;

    fn text(prefixes: &[PrefixStats]) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&families(prefixes), &mut out).unwrap_or_default();
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn histograms_are_cumulative_in_seconds_with_the_count_and_sum() {
        let mut wait = Histogram::default();
        for ms in [0, 3, 3, 1500] {
            wait.record(ms);
        }
        let stats = LockStats { acquisitions: 4, contended: 3, wait, ..LockStats::default() };
        let prefixes = [
            PrefixStats { prefix: "/jobs".into(), locks: 2, stats },
            PrefixStats { prefix: OTHER_PREFIX.into(), locks: 1, stats: LockStats::default() },
        ];
        let text = text(&prefixes);
        for line in [
            "warden_lock_acquisitions_total{prefix=\"/jobs\"} 4",
            "warden_lock_contended_acquisitions_total{prefix=\"/jobs\"} 3",
            "warden_lock_acquisitions_total{prefix=\"other\"} 0",
            // 0 ms is below 1 ms; 3 ms below 4 ms; 1.5 s below 2.048 s.
            "warden_lock_wait_seconds_bucket{prefix=\"/jobs\",le=\"0.001\"} 1",
            "warden_lock_wait_seconds_bucket{prefix=\"/jobs\",le=\"0.002\"} 1",
            "warden_lock_wait_seconds_bucket{prefix=\"/jobs\",le=\"0.004\"} 3",
            "warden_lock_wait_seconds_bucket{prefix=\"/jobs\",le=\"1.024\"} 3",
            "warden_lock_wait_seconds_bucket{prefix=\"/jobs\",le=\"2.048\"} 4",
            "warden_lock_wait_seconds_bucket{prefix=\"/jobs\",le=\"+Inf\"} 4",
            "warden_lock_wait_seconds_sum{prefix=\"/jobs\"} 1.506",
            "warden_lock_wait_seconds_count{prefix=\"/jobs\"} 4",
            "warden_lock_hold_seconds_count{prefix=\"/jobs\"} 0",
            "# TYPE warden_lock_wait_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn no_statistics_no_families() {
        assert!(families(&[]).is_empty());
    }
}
