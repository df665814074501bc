//! `warden lock stats PREFIX [--limit N]`: the statistics of the locks under a prefix, the
//! busiest first (most time waited), as a table with a total line, or one JSON object with
//! every count and bucket.
//!
//! The percentiles are read from the power-of-two buckets the cluster keeps, so they are
//! upper bounds known to a factor of two: `<64ms` says the percentile is at least 32 ms and
//! below 64 ms. The table says so in its header; the JSON has the buckets themselves.

use anyhow::Result;
use serde_json::{Value, json};
use warden_client::{Client, Histogram, LockStatsEntry, LockStatsReport};

use crate::cli::Output;
use crate::output::emit;

/// The percentiles shown.
const PERCENTILES: [u32; 2] = [50, 99];

/// Prints the statistics of the locks at or under `prefix`: at most `limit` of them (0:
/// the cluster's default).
pub(crate) async fn stats(client: &Client, out: Output, prefix: &str, limit: u32) -> Result<()> {
    let report = client.lock_stats(prefix, limit).await?;
    emit(out, &table(prefix, &report), &object(prefix, &report))
}

/// A duration for people: `2048ms`, `16.4s`, `17m28s` (the bounds of the buckets below
/// 10 s are shown exactly).
fn duration(ms: u64) -> String {
    match ms {
        0..10_000 => format!("{ms}ms"),
        10_000..600_000 => format!("{:.1}s", ms as f64 / 1_000.0),
        _ => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1_000),
    }
}

/// A percentile as the table shows it: `<64ms`, `>=17m28s` past the last bound, `-` when
/// nothing was counted.
fn percentile(h: &Histogram, percent: u32) -> String {
    let Some(bucket) = h.percentile_bucket(percent) else { return "-".to_owned() };
    match Histogram::bound_ms(bucket) {
        Some(bound) => format!("<{}", duration(bound)),
        None => {
            let last = bucket.checked_sub(1).and_then(Histogram::bound_ms).unwrap_or(0);
            format!(">={}", duration(last))
        }
    }
}

/// One row of the table: the counts, then p50 and p99 of waits and holds.
fn row(name: &str, e: &LockStatsEntry) -> Vec<String> {
    let mut cells = vec![
        name.to_owned(),
        e.stats.acquisitions.to_string(),
        e.stats.contended.to_string(),
        e.holders.to_string(),
        e.waiters.to_string(),
    ];
    for h in [&e.stats.wait, &e.stats.hold] {
        cells.extend(PERCENTILES.map(|p| percentile(h, p)));
    }
    cells
}

/// The report as a table: a header line, a row per lock, busiest first, and the total.
fn table(prefix: &str, r: &LockStatsReport) -> String {
    if r.matched == 0 {
        return format!("{prefix}: no lock statistics (no lock under it was granted yet)");
    }
    let mut rows = vec![
        [
            "LOCK",
            "ACQUIRED",
            "CONTENDED",
            "HOLDERS",
            "WAITERS",
            "WAIT p50",
            "WAIT p99",
            "HOLD p50",
            "HOLD p99",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    rows.extend(r.locks.iter().map(|e| row(&e.path, e)));
    let shown = if r.locks.len() as u64 == r.matched {
        format!("{} lock(s)", r.matched)
    } else {
        format!("the busiest {} of {} locks", r.locks.len(), r.matched)
    };
    rows.push(row(&format!("total ({} locks)", r.matched), &r.total));
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|cells| cells[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut lines = vec![format!(
        "{prefix}: {shown}, most time waited first; p50 and p99 are bounds of power-of-two buckets (approximate)"
    )];
    for cells in &rows {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| if i == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect();
        lines.push(line.join("  ").trim_end().to_owned());
    }
    lines.join("\n")
}

/// A histogram as JSON: count, sum, mean, the percentiles' bucket bounds and every bucket
/// (`below_ms` null for the last, which holds the rest).
fn histogram(h: &Histogram) -> Value {
    let bound = |percent| h.percentile_bucket(percent).and_then(Histogram::bound_ms);
    let buckets: Vec<Value> = h
        .counts
        .iter()
        .enumerate()
        .map(|(i, count)| json!({ "below_ms": Histogram::bound_ms(i), "count": count }))
        .collect();
    json!({
        "count": h.count, "sum_ms": h.sum_ms, "mean_ms": h.mean_ms(),
        "p50_below_ms": bound(50), "p99_below_ms": bound(99), "buckets": buckets,
    })
}

/// A lock's statistics (or the total) as JSON (`lock status -o json` has its lock's too).
pub(crate) fn entry(e: &LockStatsEntry) -> Value {
    json!({
        "path": e.path, "acquisitions": e.stats.acquisitions, "contended": e.stats.contended,
        "holders": e.holders, "waiters": e.waiters, "last_revision": e.stats.last_revision,
        "wait": histogram(&e.stats.wait), "hold": histogram(&e.stats.hold),
    })
}

/// The report as one JSON object.
fn object(prefix: &str, r: &LockStatsReport) -> Value {
    let locks: Vec<Value> = r.locks.iter().map(entry).collect();
    json!({ "prefix": prefix, "matched": r.matched, "total": entry(&r.total), "locks": locks })
}

#[cfg(test)]
mod tests {
    use warden_client::LockStats;

    use super::*;

    fn lock(path: &str, waits: &[u64], holds: &[u64]) -> LockStatsEntry {
        let mut stats = LockStats::default();
        for ms in waits {
            stats.acquisitions += 1;
            stats.contended += u64::from(*ms > 0);
            stats.wait.record(*ms);
        }
        for ms in holds {
            stats.hold.record(*ms);
        }
        LockStatsEntry { path: path.into(), stats, holders: 1, waiters: 0 }
    }

    #[test]
    fn durations_and_percentiles_read_as_bounds() {
        assert_eq!(duration(512), "512ms");
        assert_eq!(duration(8_192), "8192ms");
        assert_eq!(duration(16_384), "16.4s");
        assert_eq!(duration(1 << 20), "17m28s");
        let mut h = Histogram::default();
        assert_eq!(percentile(&h, 50), "-");
        for ms in [0, 40, 40, 40] {
            h.record(ms);
        }
        assert_eq!((percentile(&h, 50), percentile(&h, 20)), ("<64ms".into(), "<1ms".into()));
        h.record(u64::MAX);
        assert_eq!(percentile(&h, 99), ">=17m28s");
    }

    #[test]
    fn the_table_lists_the_locks_then_the_total_and_the_json_has_every_bucket() {
        let a = lock("/jobs/a", &[0, 120], &[300, 20]);
        let b = lock("/jobs/b", &[0], &[]);
        let mut total = LockStatsEntry { path: "/jobs".into(), holders: 2, ..Default::default() };
        total.stats.merge(&a.stats);
        total.stats.merge(&b.stats);
        let report = LockStatsReport { total, matched: 3, locks: vec![a, b] };
        let text = table("/jobs", &report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].contains("the busiest 2 of 3 locks"), "{text}");
        assert!(lines[1].starts_with("LOCK"), "{text}");
        assert!(lines[2].starts_with("/jobs/a"), "{text}");
        assert!(lines[2].contains("<128ms"), "{text}");
        assert!(lines[4].starts_with("total (3 locks)"), "{text}");
        let json = object("/jobs", &report);
        assert_eq!(json["matched"], 3);
        assert_eq!(json["locks"][0]["wait"]["buckets"].as_array().map(Vec::len), Some(22));
        assert_eq!(json["locks"][0]["wait"]["p99_below_ms"], 128);
        assert_eq!(json["total"]["hold"]["count"], 2);
        assert!(json["locks"][0]["wait"]["buckets"][21]["below_ms"].is_null());
        let empty = LockStatsReport::default();
        assert!(table("/none", &empty).contains("no lock statistics"));
    }
}
