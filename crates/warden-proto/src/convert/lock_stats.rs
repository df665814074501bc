//! Lock statistics: a lock's counts and histograms ([`pb::LockStats`],
//! [`pb::DurationHistogram`]), and the Stats request and answer, both ways.
//!
//! A histogram carries its bucket bounds, so a reader can tell its layout; one whose bounds
//! are not the core's power-of-two buckets is refused rather than read into the wrong
//! buckets.

use warden_core::lock_stats::{
    BUCKETS, Histogram, LockStats, LockStatsEntry, LockStatsReport, report_size,
};

use super::ConvertError;
use crate::v1 as pb;

/// What a reader of statistics accepts as a histogram's layout.
const LAYOUT: &str = "this side reads the buckets 1, 2, 4, ... 1048576 ms and one for the rest";

/// A Stats request as the prefix and the number of locks to list (0: the default; past
/// the maximum: the maximum).
pub fn stats_request(r: &pb::LockStatsRequest) -> (String, usize) {
    (r.prefix.clone(), report_size(u64::from(r.limit)))
}

/// The bounds of the core's buckets, ms.
fn bounds() -> Vec<u64> {
    (0..BUCKETS).filter_map(Histogram::bound_ms).collect()
}

/// A histogram as protobuf, with its bucket bounds.
pub fn pb_histogram(h: &Histogram) -> pb::DurationHistogram {
    pb::DurationHistogram {
        bounds_ms: bounds(),
        counts: h.counts.to_vec(),
        count: h.count,
        sum_ms: h.sum_ms,
    }
}

/// A histogram from protobuf (field `field` of `within`); an error if it is missing or its
/// buckets are not the core's.
pub fn histogram(
    h: Option<&pb::DurationHistogram>,
    field: &'static str,
    within: &str,
) -> Result<Histogram, ConvertError> {
    let h =
        h.ok_or_else(|| ConvertError::unset(field, within, "a member sends both histograms"))?;
    let counts: Option<[u64; BUCKETS]> = h.counts.as_slice().try_into().ok();
    match counts {
        Some(counts) if h.bounds_ms == bounds() => {
            Ok(Histogram { counts, count: h.count, sum_ms: h.sum_ms })
        }
        _ => Err(ConvertError::unknown(
            field,
            "histogram layout",
            format!("{:?} ({} counts)", h.bounds_ms, h.counts.len()),
            within,
            LAYOUT,
        )),
    }
}

/// A lock's statistics (or a total) as protobuf.
pub fn pb_lock_stats(e: &LockStatsEntry) -> pb::LockStats {
    pb::LockStats {
        path: e.path.clone(),
        acquisitions: e.stats.acquisitions,
        contended: e.stats.contended,
        holders: e.holders,
        waiters: e.waiters,
        wait: Some(pb_histogram(&e.stats.wait)),
        hold: Some(pb_histogram(&e.stats.hold)),
        last_revision: e.stats.last_revision,
    }
}

/// A lock's statistics from protobuf; an error for a missing or unreadable histogram.
pub fn lock_stats(s: &pb::LockStats) -> Result<LockStatsEntry, ConvertError> {
    let within = format!("the statistics of {:?}", s.path);
    Ok(LockStatsEntry {
        path: s.path.clone(),
        stats: LockStats {
            acquisitions: s.acquisitions,
            contended: s.contended,
            wait: histogram(s.wait.as_ref(), "wait", &within)?,
            hold: histogram(s.hold.as_ref(), "hold", &within)?,
            last_revision: s.last_revision,
        },
        holders: s.holders,
        waiters: s.waiters,
    })
}

/// A report as the Stats answer.
pub fn pb_stats_response(header: pb::ResponseHeader, r: &LockStatsReport) -> pb::LockStatsResponse {
    pb::LockStatsResponse {
        header: Some(header),
        total: Some(pb_lock_stats(&r.total)),
        matched: r.matched,
        locks: r.locks.iter().map(pb_lock_stats).collect(),
    }
}

/// The Stats answer as a report; an error for statistics this side cannot read.
pub fn stats_report(r: &pb::LockStatsResponse) -> Result<LockStatsReport, ConvertError> {
    let total = r.total.as_ref().ok_or_else(|| {
        ConvertError::unset("total", "a lock statistics answer", "a member always sends it")
    })?;
    Ok(LockStatsReport {
        total: lock_stats(total)?,
        matched: r.matched,
        locks: r.locks.iter().map(lock_stats).collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use warden_core::lock_stats::{DEFAULT_REPORT_LOCKS, MAX_REPORT_LOCKS};

    use super::*;

    fn entry(path: &str) -> LockStatsEntry {
        let mut stats = LockStats { acquisitions: 3, contended: 1, ..LockStats::default() };
        for ms in [0, 7, 3_000_000] {
            stats.wait.record(ms);
        }
        stats.hold.record(12);
        stats.last_revision = 9;
        LockStatsEntry { path: path.into(), stats, holders: 1, waiters: 2 }
    }

    #[test]
    fn statistics_go_there_and_back() {
        let report = LockStatsReport {
            total: entry("/a"),
            matched: 5,
            locks: vec![entry("/a/x"), entry("/a/y")],
        };
        let header = pb::ResponseHeader::default();
        let wire = pb_stats_response(header, &report);
        assert_eq!(stats_report(&wire), Ok(report));
        let h = wire.total.and_then(|t| t.wait).unwrap_or_default();
        assert_eq!(h.bounds_ms.len() + 1, h.counts.len());
        assert_eq!((h.bounds_ms.first(), h.bounds_ms.last()), (Some(&1), Some(&(1 << 20))));
    }

    #[test]
    fn a_histogram_of_other_buckets_or_none_is_refused() {
        let mut wire = pb_lock_stats(&entry("/l"));
        wire.hold = None;
        assert_eq!(lock_stats(&wire).err().map(|e| (e.field, e.value)), Some(("hold", None)));
        let mut wire = pb_lock_stats(&entry("/l"));
        if let Some(h) = wire.wait.as_mut() {
            h.bounds_ms[3] = 10;
        }
        let e = lock_stats(&wire).err();
        assert_eq!(e.as_ref().map(|e| e.field), Some("wait"));
        assert!(e.map(|e| e.to_string()).unwrap_or_default().contains("\"/l\""));
        let mut wire = pb_lock_stats(&entry("/l"));
        if let Some(h) = wire.wait.as_mut() {
            h.counts.push(1);
        }
        assert!(lock_stats(&wire).is_err());
        let r = pb::LockStatsResponse::default();
        assert_eq!(stats_report(&r).err().map(|e| e.field), Some("total"));
    }

    #[test]
    fn a_request_lists_the_default_or_at_most_the_maximum() {
        let r = |limit| pb::LockStatsRequest { prefix: "/p".into(), limit };
        assert_eq!(stats_request(&r(0)), ("/p".into(), DEFAULT_REPORT_LOCKS));
        assert_eq!(stats_request(&r(7)).1, 7);
        assert_eq!(stats_request(&r(u32::MAX)).1, MAX_REPORT_LOCKS);
    }
}
