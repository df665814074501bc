//! Lock statistics: the buckets, and what each way of taking and ending a hold counts,
//! through `State::apply`, with the invariants checked after every step.

use bytes::Bytes;

use super::*;
use crate::command::{Command, HoldRef, Request};
use crate::error::CoreError;
use crate::ids::{ApplyContext, SessionId};
use crate::invariants;
use crate::queue::{LockKind, WaitMode};
use crate::resource::WhileDraining;
use crate::response::Output;
use crate::state::State;

struct Harness {
    state: State,
    index: u64,
    time_ms: u64,
}

impl Harness {
    fn new() -> Self {
        Harness { state: State::default(), index: 0, time_ms: 10_000 }
    }

    /// Moves the leader's clock on by `ms` before the next command.
    fn later(&mut self, ms: u64) {
        self.time_ms += ms;
    }

    fn run(&mut self, session: Option<SessionId>, command: Command) -> Result<Output, CoreError> {
        self.index += 1;
        let ctx = ApplyContext { index: self.index, time_ms: self.time_ms, term: 1 };
        let applied = self.state.apply(Request { session, id: None, command }, &ctx);
        let broken = invariants::violations(&self.state);
        assert!(broken.is_empty(), "invariants broken: {broken:?}");
        applied.response.outcome
    }

    fn open(&mut self) -> SessionId {
        match self.run(None, Command::OpenSession { ttl_ms: 5_000, identity: "c".into() }) {
            Ok(Output::SessionOpened { id, .. }) => id,
            other => panic!("{other:?}"),
        }
    }

    fn acquire_as(&mut self, s: SessionId, path: &str, kind: LockKind, mode: WaitMode) {
        let command = Command::Acquire {
            path: path.into(),
            kind,
            mode,
            delay_ms: 0,
            options: Default::default(),
        };
        let out = self.run(Some(s), command);
        assert!(matches!(out, Ok(Output::LockQueued { .. })), "{out:?}");
    }

    fn acquire(&mut self, s: SessionId, path: &str) {
        self.acquire_as(s, path, LockKind::Mutex, WaitMode::Exclusive);
    }

    fn release(&mut self, s: SessionId, path: &str) {
        let out = self.run(Some(s), Command::Release { path: path.into(), hold: HoldRef::Any });
        assert!(matches!(out, Ok(Output::LockReleased { .. })), "{out:?}");
    }

    fn stats(&self, path: &str) -> LockStats {
        self.state.lock_stats_table().get(path).copied().unwrap_or_default()
    }
}

/// The durations a histogram counted, as (bucket, count) for the non-empty buckets.
fn filled(h: &Histogram) -> Vec<(usize, u64)> {
    h.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| (i, *c)).collect()
}

#[test]
fn durations_fall_in_power_of_two_buckets() {
    let cases = [
        (0, 0),
        (1, 1),
        (2, 2),
        (3, 2),
        (4, 3),
        (1_023, 10),
        (1_024, 11),
        ((1 << 20) - 1, 20),
        (1 << 20, 21),
        (u64::MAX, 21),
    ];
    for (ms, bucket) in cases {
        assert_eq!(Histogram::bucket_of(ms), bucket, "{ms} ms");
        if let Some(bound) = Histogram::bound_ms(bucket) {
            assert!(ms < bound, "{ms} ms is below its bucket's bound {bound}");
        }
        if let Some(below) = bucket.checked_sub(1).and_then(Histogram::bound_ms) {
            assert!(ms >= below, "{ms} ms is at least the previous bound {below}");
        }
    }
    assert_eq!(Histogram::bound_ms(0), Some(1));
    assert_eq!(Histogram::bound_ms(20), Some(1 << 20));
    assert_eq!(Histogram::bound_ms(21), None, "the overflow bucket has no bound");
    assert_eq!(BUCKETS, 22);
}

#[test]
fn a_histogram_counts_sums_merges_and_gives_percentiles() {
    let mut h = Histogram::default();
    assert_eq!((h.mean_ms(), h.percentile_bucket(50)), (None, None));
    for ms in [0, 0, 5, 5, 5, 5, 5, 5, 5, 3_000] {
        h.record(ms);
    }
    assert_eq!((h.count, h.sum_ms, h.mean_ms()), (10, 3_035, Some(303)));
    assert_eq!(filled(&h), [(0, 2), (3, 7), (12, 1)]);
    assert_eq!(h.percentile_bucket(0), Some(0));
    assert_eq!(h.percentile_bucket(20), Some(0));
    assert_eq!(h.percentile_bucket(21), Some(3));
    assert_eq!(h.percentile_bucket(50), Some(3));
    assert_eq!(h.percentile_bucket(90), Some(3));
    assert_eq!(h.percentile_bucket(99), Some(12));
    assert_eq!(h.percentile_bucket(100), Some(12));
    let mut sum = h;
    sum.merge(&h);
    assert_eq!((sum.count, sum.sum_ms), (20, 6_070));
    assert_eq!(filled(&sum), [(0, 4), (3, 14), (12, 2)]);
    let mut huge = Histogram::default();
    huge.record(u64::MAX);
    huge.record(u64::MAX);
    assert_eq!((huge.sum_ms, huge.percentile_bucket(50)), (u64::MAX, Some(BUCKETS - 1)));
}

#[test]
fn a_contended_mutex_counts_grants_waits_and_holds() {
    let mut h = Harness::new();
    let (a, b) = (h.open(), h.open());
    h.acquire(a, "/db");
    h.later(30);
    h.acquire(b, "/db");
    h.later(100);
    let before = h.state.revision();
    h.release(a, "/db");
    let s = h.stats("/db");
    assert_eq!((s.acquisitions, s.contended), (2, 1));
    // a waited 0 ms, b 100 ms; a held 130 ms.
    assert_eq!((s.wait.count, s.wait.sum_ms), (2, 100));
    assert_eq!(filled(&s.wait), [(0, 1), (7, 1)]);
    assert_eq!((s.hold.count, s.hold.sum_ms), (1, 130));
    assert_eq!(s.last_revision, before + 1);
    h.later(7);
    h.release(b, "/db");
    let s = h.stats("/db");
    assert_eq!((s.hold.count, s.hold.sum_ms), (2, 137));
    // The idle lock has no node, and keeps its statistics.
    assert!(h.state.get("/db").is_err());
    let entry = h.state.lock_stats_at("/db").unwrap_or_default();
    assert_eq!((entry.stats, entry.holders, entry.waiters), (s, 0, 0));
}

#[test]
fn acquiring_again_or_a_failed_command_counts_nothing() {
    let mut h = Harness::new();
    let (a, b) = (h.open(), h.open());
    h.acquire(a, "/db");
    h.acquire(a, "/db");
    let out = h.run(Some(b), Command::Release { path: "/db".into(), hold: HoldRef::Any });
    assert!(out.is_err(), "b holds nothing: {out:?}");
    let out = h.run(
        Some(b),
        Command::Acquire {
            path: "/db".into(),
            kind: LockKind::ReadWrite,
            mode: WaitMode::Shared,
            delay_ms: 0,
            options: Default::default(),
        },
    );
    assert!(out.is_err(), "not a read-write lock: {out:?}");
    let s = h.stats("/db");
    assert_eq!((s.acquisitions, s.contended, s.hold.count), (1, 0, 0));
}

#[test]
fn readers_and_semaphore_permits_are_counted_one_grant_each() {
    let mut h = Harness::new();
    let (r1, r2, w) = (h.open(), h.open(), h.open());
    h.acquire_as(r1, "/rw", LockKind::ReadWrite, WaitMode::Shared);
    h.acquire_as(r2, "/rw", LockKind::ReadWrite, WaitMode::Shared);
    h.acquire_as(w, "/rw", LockKind::ReadWrite, WaitMode::Exclusive);
    h.later(10);
    h.release(r1, "/rw");
    assert_eq!(h.stats("/rw").acquisitions, 2, "the writer still waits for r2");
    h.later(10);
    h.release(r2, "/rw");
    let s = h.stats("/rw");
    assert_eq!((s.acquisitions, s.contended, s.wait.sum_ms, s.hold.sum_ms), (3, 1, 20, 30));
    let sem = LockKind::Semaphore { permits: 2 };
    let (x, y, z) = (h.open(), h.open(), h.open());
    h.acquire_as(x, "/sem", sem, WaitMode::Permits(1));
    h.acquire_as(y, "/sem", sem, WaitMode::Permits(1));
    h.acquire_as(z, "/sem", sem, WaitMode::Permits(2));
    h.later(5);
    h.release(x, "/sem");
    h.release(y, "/sem");
    let s = h.stats("/sem");
    assert_eq!((s.acquisitions, s.contended, s.wait.sum_ms, s.hold.count), (3, 1, 5, 2));
    let entry = h.state.lock_stats_at("/sem").unwrap_or_default();
    assert_eq!((entry.holders, entry.waiters), (1, 0));
}

#[test]
fn every_way_a_hold_ends_is_a_hold_counted() {
    let mut h = Harness::new();
    // A revoke (with a lock-delay, which keeps the node).
    let (a, b) = (h.open(), h.open());
    h.acquire(a, "/revoked");
    h.acquire(b, "/revoked");
    h.later(40);
    let out = h.run(None, Command::Revoke { path: "/revoked".into(), session: a });
    assert!(out.is_ok(), "{out:?}");
    let s = h.stats("/revoked");
    assert_eq!((s.acquisitions, s.hold.count, s.hold.sum_ms), (2, 1, 40));
    // A close of the holder's session, and its expiry.
    let (c, d) = (h.open(), h.open());
    h.acquire(c, "/closed");
    h.acquire(d, "/expired");
    h.later(50);
    assert!(h.run(None, Command::CloseSession { id: c }).is_ok());
    assert!(h.run(None, Command::ExpireSessions { ids: vec![d], term: 1 }).is_ok());
    assert_eq!((h.stats("/closed").hold.count, h.stats("/closed").hold.sum_ms), (1, 50));
    assert_eq!((h.stats("/expired").hold.count, h.stats("/expired").hold.sum_ms), (1, 50));
    // A delete that revokes the locks it reaches.
    let e = h.open();
    h.acquire(e, "/dir/l");
    h.later(60);
    let delete = Command::Delete {
        path: "/dir".into(),
        expected_version: None,
        recursive: true,
        revoke_locks: true,
    };
    assert!(h.run(None, delete).is_ok());
    assert_eq!((h.stats("/dir/l").hold.count, h.stats("/dir/l").hold.sum_ms), (1, 60));
    // A forced rotation of a resource kind revokes the old version's holders.
    let f = h.open();
    assert!(
        h.run(None, Command::InitResource { path: "/orders".into(), version: "v1".into() }).is_ok()
    );
    let acquire = Command::AcquireResource {
        path: "/orders".into(),
        id: "42".into(),
        kind: LockKind::Mutex,
        mode: WaitMode::Exclusive,
        delay_ms: 0,
        draining: WhileDraining::Wait,
    };
    assert!(h.run(Some(f), acquire).is_ok());
    assert!(
        h.run(None, Command::BeginRotation { path: "/orders".into(), to: "v2".into() }).is_ok()
    );
    h.later(70);
    assert!(h.run(None, Command::ForceRotation { path: "/orders".into() }).is_ok());
    let s = h.stats("/orders/v1/42");
    assert_eq!((s.acquisitions, s.hold.count, s.hold.sum_ms), (1, 1, 70));
}

#[test]
fn a_cancelled_wait_is_no_hold_and_elections_and_barriers_are_not_counted() {
    let mut h = Harness::new();
    let (a, b) = (h.open(), h.open());
    h.acquire(a, "/l");
    h.acquire(b, "/l");
    h.later(9);
    h.release(b, "/l");
    let s = h.stats("/l");
    assert_eq!((s.acquisitions, s.hold.count), (1, 0));
    let campaign = |value: &'static str| Command::Campaign {
        path: "/e".into(),
        value: Bytes::from_static(value.as_bytes()),
    };
    assert!(h.run(Some(a), campaign("a")).is_ok());
    assert!(h.run(Some(b), campaign("b")).is_ok());
    assert!(h.run(None, Command::SetBarrier { path: "/bar".into() }).is_ok());
    assert!(h.run(Some(a), Command::WaitBarrier { path: "/bar".into() }).is_ok());
    assert!(h.run(None, Command::RemoveBarrier { path: "/bar".into() }).is_ok());
    assert!(h.run(None, Command::CloseSession { id: a }).is_ok());
    let tracked: Vec<&str> = h.state.lock_stats_table().iter().map(|(p, _)| p).collect();
    assert_eq!(tracked, ["/l"]);
}

#[test]
fn a_report_covers_a_prefix_by_segments_busiest_first_with_a_total() {
    let mut h = Harness::new();
    let (a, b) = (h.open(), h.open());
    // /a/x: one uncontended grant; /a/y: waits of 50 ms; /a: waits of 20 ms (twice);
    // /ab is not under /a.
    for (path, waits) in
        [("/a/x", vec![]), ("/a/y", vec![50]), ("/a", vec![10, 10]), ("/ab", vec![500])]
    {
        h.acquire(a, path);
        for ms in waits {
            h.acquire(b, path);
            h.later(ms);
            h.release(a, path);
            h.acquire(a, path);
            h.release(b, path);
        }
        h.release(a, path);
    }
    h.acquire(a, "/a/x");
    h.acquire(b, "/a/x");
    let report = h.state.lock_stats("/a", 10).unwrap_or_default();
    let order: Vec<&str> = report.locks.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(order, ["/a/y", "/a", "/a/x"], "most wait first");
    assert_eq!(report.matched, 3);
    assert_eq!(report.total.path, "/a");
    assert_eq!(report.total.stats.wait.sum_ms, 70);
    assert_eq!(report.total.stats.acquisitions, 2 + 3 + 5);
    assert_eq!((report.total.holders, report.total.waiters), (1, 1));
    let x = report.locks.iter().find(|e| e.path == "/a/x").cloned().unwrap_or_default();
    assert_eq!((x.holders, x.waiters), (1, 1));
    let top = h.state.lock_stats("/a", 1).unwrap_or_default();
    assert_eq!((top.locks.len(), top.matched, top.total), (1, 3, report.total.clone()));
    let all = h.state.lock_stats("/", 100).unwrap_or_default();
    assert_eq!(all.locks.first().map(|e| e.path.as_str()), Some("/ab"));
    assert_eq!(all.matched, 4);
    assert!(h.state.lock_stats("/a/", 1).is_err(), "not a path");
    assert_eq!(h.state.lock_stats("/nothing", 1).map(|r| r.matched), Ok(0));
}

#[test]
fn statistics_by_prefix_are_summed_by_leading_segments_and_bounded() {
    let mut h = Harness::new();
    let (a, b) = (h.open(), h.open());
    // /x/1 and /x/2 (prefix /x at depth 1) wait 30 ms in all; /y/1 waits 40 ms; /z and
    // /w/1 are uncontended, /z twice. A lock that waited was granted three times.
    for (path, waits) in [
        ("/x/1", vec![10]),
        ("/x/2", vec![20]),
        ("/y/1", vec![40]),
        ("/z", vec![]),
        ("/z", vec![]),
        ("/w/1", vec![]),
    ] {
        h.acquire(a, path);
        for ms in waits {
            h.acquire(b, path);
            h.later(ms);
            h.release(a, path);
            h.release(b, path);
            h.acquire(a, path);
        }
        h.release(a, path);
    }
    let table = h.state.lock_stats_table();
    let listed = |depth, max| -> Vec<(String, u64, u64, u64)> {
        table
            .by_prefix(depth, max)
            .into_iter()
            .map(|p| (p.prefix, p.locks, p.stats.acquisitions, p.stats.wait.sum_ms))
            .collect()
    };
    let s = |p: &str| p.to_owned();
    assert_eq!(
        listed(1, 10),
        [(s("/y"), 1, 3, 40), (s("/x"), 2, 6, 30), (s("/z"), 1, 2, 0), (s("/w"), 1, 1, 0)],
        "busiest (most wait) first, then acquisitions"
    );
    assert_eq!(
        listed(1, 2),
        [(s("/y"), 1, 3, 40), (s("/x"), 2, 6, 30), (s(OTHER_PREFIX), 2, 3, 0)],
        "past the bound, the rest are summed last"
    );
    assert_eq!(listed(0, 5), [(s("/"), 5, 12, 70)], "depth 0: all in one");
    assert_eq!(listed(2, 0), [(s(OTHER_PREFIX), 5, 12, 70)]);
    assert_eq!(
        listed(2, 10).into_iter().map(|e| e.0).collect::<Vec<_>>(),
        ["/y/1", "/x/2", "/x/1", "/z", "/w/1"],
        "a lock shallower than the depth is its own prefix"
    );
    assert!(LockStatsTable::default().by_prefix(1, 5).is_empty());
}

#[test]
fn equal_waits_are_ordered_by_acquisitions_then_path() {
    let entry = |path: &str, sum_ms, acquisitions| LockStatsEntry {
        path: path.into(),
        stats: LockStats {
            acquisitions,
            wait: Histogram { sum_ms, ..Histogram::default() },
            ..LockStats::default()
        },
        ..LockStatsEntry::default()
    };
    let mut v = [entry("/c", 5, 1), entry("/b", 5, 2), entry("/a", 5, 1), entry("/z", 9, 0)];
    v.sort_by(busier);
    let order: Vec<&str> = v.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(order, ["/z", "/b", "/a", "/c"]);
    assert_eq!(report_size(0), DEFAULT_REPORT_LOCKS);
    assert_eq!(report_size(3), 3);
    assert_eq!(report_size(u64::MAX), MAX_REPORT_LOCKS);
}

#[test]
fn the_least_recently_active_locks_are_forgotten_past_the_bound() {
    let mut h = Harness::new();
    h.state.set_lock_stats_capacity(3);
    let a = h.open();
    for path in ["/l1", "/l2", "/l3"] {
        h.acquire(a, path);
    }
    // /l1 is active again: /l2 is now the least recently active.
    h.release(a, "/l1");
    let _ = h.state.take_changes();
    h.acquire(a, "/l4");
    let tracked: Vec<&str> = h.state.lock_stats_table().iter().map(|(p, _)| p).collect();
    assert_eq!(tracked, ["/l1", "/l3", "/l4"]);
    let changes = h.state.take_changes();
    assert_eq!(changes.lock_stats.into_iter().collect::<Vec<_>>(), ["/l2", "/l4"]);
    // A lock forgotten and active again starts afresh.
    h.release(a, "/l2");
    let tracked: Vec<&str> = h.state.lock_stats_table().iter().map(|(p, _)| p).collect();
    assert_eq!(tracked, ["/l1", "/l2", "/l4"]);
    assert_eq!(h.stats("/l2").hold.count, 1);
    assert_eq!(h.stats("/l2").acquisitions, 0, "its grant was forgotten with it");
    assert_eq!(LockStatsTable::default().capacity, MAX_TRACKED_LOCKS);
}

#[test]
fn among_locks_equally_recent_the_smallest_path_is_forgotten_first() {
    let mut h = Harness::new();
    h.state.set_lock_stats_capacity(2);
    let a = h.open();
    for path in ["/t3", "/t1", "/t2"] {
        h.acquire(a, path);
    }
    let tracked: Vec<&str> = h.state.lock_stats_table().iter().map(|(p, _)| p).collect();
    assert_eq!(tracked, ["/t1", "/t2"], "/t3 was the least recent");
    // One command ends the three holds: all three are equally recent.
    assert!(h.run(None, Command::CloseSession { id: a }).is_ok());
    let tracked: Vec<&str> = h.state.lock_stats_table().iter().map(|(p, _)| p).collect();
    assert_eq!(tracked, ["/t2", "/t3"]);
}

#[test]
fn statistics_survive_a_snapshot_and_a_store_of_parts() {
    let mut h = Harness::new();
    let (a, b) = (h.open(), h.open());
    h.acquire(a, "/l");
    h.acquire(b, "/l");
    h.later(25);
    h.release(a, "/l");
    let bytes = h.state.snapshot().unwrap_or_default();
    let restored = State::restore(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(restored.lock_stats("/", 10), h.state.lock_stats("/", 10));
    let parts = State::from_parts(
        h.state.meta(),
        h.state.tree().iter().map(|(p, n)| (p.to_owned(), n.clone())),
        h.state.sessions().cloned(),
        h.state.lock_stats_table().iter().map(|(p, s)| (p.to_owned(), *s)),
    );
    assert_eq!(parts.snapshot().ok(), h.state.snapshot().ok());
    assert!(invariants::violations(&parts).is_empty());
    assert!(invariants::violations(&restored).is_empty());
}

#[test]
fn a_clock_that_steps_back_counts_zero() {
    let mut h = Harness::new();
    let (a, b) = (h.open(), h.open());
    h.acquire(a, "/l");
    h.acquire(b, "/l");
    h.time_ms -= 1_000;
    h.release(a, "/l");
    let s = h.stats("/l");
    assert_eq!((s.wait.sum_ms, s.hold.sum_ms, s.hold.count), (0, 0, 1));
}
