//! Lock statistics against a recount: random command sequences (acquires, releases,
//! revokes, closes, expiries, deletes, rotations, elections and barriers among them), and
//! after every step the state's statistics equal what a model counts from the events
//! alone: grants from the waiters' value events, waits from their creation events, holds
//! from their deletion events. The model reads no grant time from the waiters' data and no
//! deleted node, so it checks the state's own way of counting.

use std::collections::BTreeMap;

use proptest::prelude::*;
use warden_core::lock_stats::{Histogram, LockStats};
use warden_core::queue_data::WaiterInfo;
use warden_core::recipe::queue_of_waiter;
use warden_core::{EventKind, State};

use crate::steps::{KIND, Runner, cases, steps};

/// Whether the queue at `path` is one of the model's locks (the others are its election
/// and barriers); every queue under the resource kind is a mutex.
fn is_lock(path: &str) -> bool {
    ["/a/m", "/b/rw", "/a/b/s"].contains(&path) || path.starts_with(&format!("{KIND}/"))
}

/// What the model counts.
#[derive(Default)]
struct Model {
    /// Per waiter alive: when it was made (time, revision), and when it was granted.
    waiters: BTreeMap<String, (u64, u64, Option<u64>)>,
    stats: BTreeMap<String, LockStats>,
}

impl Model {
    fn step(&mut self, revision: u64, time_ms: u64, events: &[warden_core::Event]) {
        for e in events {
            let Some(queue) = queue_of_waiter(&e.path).filter(|q| is_lock(q)) else { continue };
            match e.kind {
                EventKind::Created => {
                    self.waiters.insert(e.path.clone(), (time_ms, revision, None));
                }
                EventKind::Data => {
                    let token =
                        e.data.as_deref().and_then(WaiterInfo::decode).and_then(|i| i.token);
                    let Some(w) = self.waiters.get_mut(&e.path) else { continue };
                    if w.2.is_some() || token.is_none() {
                        continue;
                    }
                    w.2 = Some(time_ms);
                    let (made_ms, made_revision) = (w.0, w.1);
                    let s = self.stats.entry(queue.to_owned()).or_default();
                    s.acquisitions += 1;
                    s.contended += u64::from(made_revision != revision);
                    s.wait.record(time_ms - made_ms);
                    s.last_revision = revision;
                }
                EventKind::Deleted => {
                    let Some((_, _, granted)) = self.waiters.remove(&e.path) else { continue };
                    if let Some(granted) = granted {
                        let s = self.stats.entry(queue.to_owned()).or_default();
                        s.hold.record(time_ms - granted);
                        s.last_revision = revision;
                    }
                }
                EventKind::Children => {}
            }
        }
    }
}

fn tracked(state: &State) -> BTreeMap<String, LockStats> {
    state.lock_stats_table().iter().map(|(p, s)| (p.to_owned(), *s)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn statistics_equal_a_recount_from_the_events(steps in steps(100)) {
        let mut runner = Runner::new();
        let mut model = Model::default();
        for step in &steps {
            let (_, applied) = runner.apply(step);
            model.step(applied.response.revision, runner.time_ms(), &applied.events);
            prop_assert_eq!(&tracked(&runner.state), &model.stats);
        }
        // The report over everything: its total is the sum, its holders and waiters are
        // the locks' now, its order the busiest first, and a restored state reports the same.
        let report = runner.state.lock_stats("/", 1_000).unwrap_or_default();
        prop_assert_eq!(report.matched as usize, model.stats.len());
        let mut total = LockStats::default();
        for s in model.stats.values() {
            total.merge(s);
        }
        prop_assert_eq!(report.total.stats, total);
        prop_assert_eq!(report.total.stats.wait.count, total.acquisitions);
        for entry in &report.locks {
            let (holders, waiters) = match runner.state.lock(&entry.path) {
                Ok((_, ws)) => {
                    let held = ws.iter().filter(|w| w.info.token.is_some()).count() as u64;
                    (held, ws.len() as u64 - held)
                }
                Err(_) => (0, 0),
            };
            prop_assert_eq!((entry.holders, entry.waiters), (holders, waiters), "{}", entry.path);
        }
        for pair in report.locks.windows(2) {
            prop_assert!(warden_core::lock_stats::busier(&pair[0], &pair[1]).is_lt());
        }
        // By prefix: every lock counted once, bounded, summing to the same total.
        for (segments, max) in [(0, 3), (1, 2), (2, 1), (3, 100)] {
            let prefixes = runner.state.lock_stats_table().by_prefix(segments, max);
            prop_assert!(prefixes.len() <= max + 1);
            let mut sum = LockStats::default();
            for p in &prefixes {
                sum.merge(&p.stats);
            }
            prop_assert_eq!(sum, total);
            prop_assert_eq!(prefixes.iter().map(|p| p.locks).sum::<u64>(), report.matched);
        }
        let restored = runner.restored();
        prop_assert_eq!(restored.state.lock_stats("/", 1_000).ok(), Some(report));
    }
}

#[test]
fn a_histogram_counts_each_duration_once() {
    let mut h = Histogram::default();
    for ms in 0..5_000 {
        h.record(ms);
    }
    assert_eq!(h.counts.iter().sum::<u64>(), 5_000);
    assert_eq!(h.sum_ms, (0..5_000).sum::<u64>());
}
