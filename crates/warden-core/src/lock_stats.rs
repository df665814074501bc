//! Lock statistics (issue 15): per lock, how often it was granted, how often a grant had
//! to wait, and how long the waits and the holds took, kept as replicated state.
//!
//! They are counted from what each command did, with the entry's leader time only, so
//! every replica counts the same:
//!
//! - a **grant** (an acquisition) is a waiter of a lock whose token became the command's
//!   revision; it is **contended** when the waiter was made by an earlier command (it had
//!   to wait); its **wait** is the grant's time minus the waiter's creation time (0 for an
//!   uncontended grant, so the wait histogram counts every acquisition);
//! - a **hold** ends when a granted waiter is deleted, whatever deletes it (a release, a
//!   revoke, the end of its session, a delete that revokes locks, a forced rotation); its
//!   length is the deletion's time minus the grant time the waiter keeps (` at=` in its
//!   data, [`WaiterInfo::granted_ms`]; a hold granted before grant times were kept ends
//!   without a length).
//!
//! Leader clocks may step back across a change of leader: a negative length counts as 0.
//! Lengths go in histograms of fixed power-of-two buckets of ms ([`Histogram`]), with a
//! count and a sum, so a mean is exact and a percentile is known to a factor of two.
//!
//! What is counted: mutexes, read-write locks and semaphores (queues of a kind that
//! [`QueueKind::is_lock`](crate::queue::QueueKind::is_lock)); elections and barriers are
//! not. Current holders and waiters are not kept: a report reads them from the tree.
//!
//! Bounded: at most [`MAX_TRACKED_LOCKS`] locks are tracked. A lock's statistics outlive
//! its node (an idle lock has none) until a lock with newer activity needs the room: then
//! the lock whose last activity is oldest (ties: the smallest path) is forgotten.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind};
use crate::node::{Node, NodeKind};
use crate::path;
use crate::queue_data::{QueueConfig, WaiterInfo};
use crate::recipe;
use crate::tree::Tree;

/// The most locks whose statistics are kept; past it, the least recently active go.
pub const MAX_TRACKED_LOCKS: usize = 10_000;
/// Buckets with an upper bound: `< 1 ms`, `< 2 ms`, `< 4 ms`, ..., `< 2^20 ms` (about 17
/// minutes).
pub const BOUNDED_BUCKETS: usize = 21;
/// All buckets of a [`Histogram`]: the bounded ones and the overflow (`>= 2^20 ms`).
pub const BUCKETS: usize = BOUNDED_BUCKETS + 1;
/// How many locks a report lists when the request says 0.
pub const DEFAULT_REPORT_LOCKS: usize = 20;
/// The most locks one report lists (a larger request gets this many; the report still
/// says how many matched).
pub const MAX_REPORT_LOCKS: usize = 1_000;

/// Durations in ms, counted in fixed power-of-two buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Per bucket: how many durations fell in it (see [`Histogram::bound_ms`]).
    pub counts: [u64; BUCKETS],
    /// How many durations were counted (the sum of `counts`).
    pub count: u64,
    /// Their sum, ms (saturating).
    pub sum_ms: u64,
}

impl Histogram {
    /// The exclusive upper bound of bucket `bucket`, ms: 1, 2, 4, ..., 2^20; `None` for
    /// the overflow bucket (and any index past it).
    pub fn bound_ms(bucket: usize) -> Option<u64> {
        (bucket < BOUNDED_BUCKETS).then(|| 1u64 << bucket)
    }

    /// The bucket a duration of `ms` falls in.
    pub fn bucket_of(ms: u64) -> usize {
        let bits = (u64::BITS - ms.leading_zeros()) as usize;
        bits.min(BOUNDED_BUCKETS)
    }

    /// Counts one duration.
    pub fn record(&mut self, ms: u64) {
        if let Some(c) = self.counts.get_mut(Self::bucket_of(ms)) {
            *c = c.saturating_add(1);
        }
        self.count = self.count.saturating_add(1);
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    /// Adds `other`'s counts to this one's.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine = mine.saturating_add(theirs);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
    }

    /// The mean duration, ms (rounded down); `None` when nothing was counted.
    pub fn mean_ms(&self) -> Option<u64> {
        self.sum_ms.checked_div(self.count)
    }

    /// The bucket that holds the `percent`-th percentile (0 to 100): the first bucket by
    /// which `percent`% of the durations are counted. The duration itself is below the
    /// bucket's bound and at least the previous bucket's, so known to a factor of two.
    /// `None` when nothing was counted.
    pub fn percentile_bucket(&self, percent: u32) -> Option<usize> {
        let total: u64 = self.counts.iter().fold(0, |a, c| a.saturating_add(*c));
        if total == 0 {
            return None;
        }
        let rank = (u128::from(total) * u128::from(percent.min(100))).div_ceil(100).max(1);
        let mut seen: u128 = 0;
        for (bucket, c) in self.counts.iter().enumerate() {
            seen += u128::from(*c);
            if seen >= rank {
                return Some(bucket);
            }
        }
        Some(BUCKETS - 1)
    }
}

/// What was counted for one lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockStats {
    /// Grants.
    pub acquisitions: u64,
    /// Grants whose waiter had to wait (was made by an earlier command).
    pub contended: u64,
    /// How long each grant waited, ms (one entry per acquisition).
    pub wait: Histogram,
    /// How long each ended hold lasted, ms.
    pub hold: Histogram,
    /// The revision of the last grant or end of a hold counted.
    pub last_revision: u64,
}

impl LockStats {
    /// Adds `other`'s counts to these (the last revision is the later one).
    pub fn merge(&mut self, other: &LockStats) {
        self.acquisitions = self.acquisitions.saturating_add(other.acquisitions);
        self.contended = self.contended.saturating_add(other.contended);
        self.wait.merge(&other.wait);
        self.hold.merge(&other.hold);
        self.last_revision = self.last_revision.max(other.last_revision);
    }
}

/// One lock's statistics with its current holders and waiters, as a report shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockStatsEntry {
    /// The lock's path (a report's total: the prefix).
    pub path: String,
    /// What was counted.
    pub stats: LockStats,
    /// Waiters that hold now.
    pub holders: u64,
    /// Waiters that wait now.
    pub waiters: u64,
}

/// The statistics of the locks under a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockStatsReport {
    /// The sum over every tracked lock under the prefix (its path is the prefix).
    pub total: LockStatsEntry,
    /// How many tracked locks are under the prefix.
    pub matched: u64,
    /// The busiest of them, busiest first ([`busier`]), at most the limit asked for.
    pub locks: Vec<LockStatsEntry>,
}

/// The order of a report, busiest first: more total wait time, then more acquisitions,
/// then the smaller path. Time spent waiting is what contention costs, so it comes first.
pub fn busier(a: &LockStatsEntry, b: &LockStatsEntry) -> std::cmp::Ordering {
    b.stats
        .wait
        .sum_ms
        .cmp(&a.stats.wait.sum_ms)
        .then(b.stats.acquisitions.cmp(&a.stats.acquisitions))
        .then_with(|| a.path.cmp(&b.path))
}

/// What the locks of one prefix counted together ([`LockStatsTable::by_prefix`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixStats {
    /// The prefix (the first segments of its locks' paths), or [`OTHER_PREFIX`].
    pub prefix: String,
    /// How many tracked locks it covers.
    pub locks: u64,
    /// Their statistics summed.
    pub stats: LockStats,
}

/// The name under which [`LockStatsTable::by_prefix`] sums the prefixes past its bound.
/// Not a path (paths start with `/`), so it cannot be a prefix's own name.
pub const OTHER_PREFIX: &str = "other";

/// How many locks a report lists for a request that asks for `requested` (0: the
/// default; more than the maximum: the maximum).
pub fn report_size(requested: u64) -> usize {
    match requested {
        0 => DEFAULT_REPORT_LOCKS,
        n => usize::try_from(n).unwrap_or(usize::MAX).min(MAX_REPORT_LOCKS),
    }
}

/// Whether a deleted node may end a hold, so the command's mutation keeps it for
/// [`LockStatsTable::count`]: a waiter (ephemeral, named as one), or a queue (what its
/// waiters were in, when it goes in the same command).
pub(crate) fn counts_removed(path: &str, node: &Node) -> bool {
    match node.kind {
        NodeKind::Ephemeral => recipe::queue_of_waiter(path).is_some(),
        NodeKind::Queue => true,
        _ => false,
    }
}

fn max_tracked() -> usize {
    MAX_TRACKED_LOCKS
}

/// The statistics of every tracked lock, by path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockStatsTable {
    locks: BTreeMap<String, LockStats>,
    /// Derived from `locks`: (last revision, path), oldest first, for eviction.
    #[serde(skip)]
    by_activity: BTreeSet<(u64, String)>,
    /// Locks changed or forgotten since the last [`LockStatsTable::take_dirty`].
    #[serde(skip)]
    dirty: BTreeSet<String>,
    /// The most locks kept ([`MAX_TRACKED_LOCKS`]; smaller in tests).
    #[serde(skip, default = "max_tracked")]
    capacity: usize,
}

impl Default for LockStatsTable {
    fn default() -> Self {
        LockStatsTable::with_capacity(MAX_TRACKED_LOCKS)
    }
}

impl LockStatsTable {
    /// An empty table that keeps at most `capacity` locks (at least 1).
    pub(crate) fn with_capacity(capacity: usize) -> LockStatsTable {
        LockStatsTable {
            locks: BTreeMap::new(),
            by_activity: BTreeSet::new(),
            dirty: BTreeSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// A table of the given statistics, as loaded from storage.
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (String, LockStats)>) -> Self {
        let mut table = LockStatsTable::default();
        table.locks.extend(entries);
        table.rebuild_index();
        table
    }

    /// Rebuilds the eviction order from the statistics (after a restore).
    pub(crate) fn rebuild_index(&mut self) {
        self.by_activity = self.locks.iter().map(|(p, s)| (s.last_revision, p.clone())).collect();
    }

    /// The statistics of the lock at `path`, if tracked.
    pub fn get(&self, path: &str) -> Option<&LockStats> {
        self.locks.get(path)
    }

    /// Every tracked lock, by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &LockStats)> {
        self.locks.iter().map(|(p, s)| (p.as_str(), s))
    }

    /// How many locks are tracked.
    pub fn len(&self) -> usize {
        self.locks.len()
    }

    /// Whether no lock is tracked.
    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    /// The locks whose statistics changed or were forgotten since the last call.
    pub(crate) fn take_dirty(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.dirty)
    }

    /// Whether the eviction order matches the statistics and the bound holds (for the
    /// invariant checker).
    pub(crate) fn index_is_sound(&self) -> bool {
        self.locks.len() <= self.capacity
            && self.by_activity.len() == self.locks.len()
            && self
                .by_activity
                .iter()
                .all(|(r, p)| self.locks.get(p).is_some_and(|s| s.last_revision == *r))
    }

    /// Counts what one committed command did at `revision` and `time_ms`: its `events`
    /// and the nodes it deleted (`removed`, as they were: at least those
    /// [`counts_removed`] chooses), with `tree` as it left it.
    pub(crate) fn count(
        &mut self,
        tree: &Tree,
        revision: u64,
        time_ms: u64,
        events: &[Event],
        removed: &[(String, Node)],
    ) {
        let gone: BTreeMap<&str, &Node> = removed.iter().map(|(p, n)| (p.as_str(), n)).collect();
        // The queue a waiter was in: as it went, if this command deleted it, else as it is.
        let is_lock = |queue: &str| {
            gone.get(queue)
                .copied()
                .or_else(|| tree.get(queue))
                .filter(|n| n.kind == NodeKind::Queue)
                .and_then(|n| QueueConfig::decode(&n.data))
                .is_some_and(|c| c.kind.is_lock())
        };
        let mut granted = BTreeSet::new();
        for e in events.iter().filter(|e| matches!(e.kind, EventKind::Created | EventKind::Data)) {
            let Some(queue) = recipe::queue_of_waiter(&e.path) else { continue };
            let Some(info) = e.data.as_deref().and_then(WaiterInfo::decode) else { continue };
            if info.token != Some(revision) || !granted.insert(e.path.as_str()) || !is_lock(queue) {
                continue;
            }
            let stats = self.touch(queue, revision);
            stats.acquisitions = stats.acquisitions.saturating_add(1);
            if e.stat.create_revision != revision {
                stats.contended = stats.contended.saturating_add(1);
            }
            stats.wait.record(time_ms.saturating_sub(e.stat.ctime_ms));
        }
        for (p, node) in removed {
            let Some(queue) = recipe::queue_of_waiter(p) else { continue };
            if node.kind != NodeKind::Ephemeral {
                continue;
            }
            let Some(info) = WaiterInfo::decode(&node.data) else { continue };
            if info.token.is_none() || !is_lock(queue) {
                continue;
            }
            let stats = self.touch(queue, revision);
            if let Some(at) = info.granted_ms {
                stats.hold.record(time_ms.saturating_sub(at));
            }
        }
        self.evict();
    }

    /// The statistics of `queue`, made if new, marked active at `revision` and dirty.
    fn touch(&mut self, queue: &str, revision: u64) -> &mut LockStats {
        match self.locks.get(queue).map(|s| s.last_revision) {
            Some(last) if last == revision => {}
            Some(last) => {
                self.by_activity.remove(&(last, queue.to_owned()));
                self.by_activity.insert((revision, queue.to_owned()));
            }
            None => {
                self.by_activity.insert((revision, queue.to_owned()));
            }
        }
        self.dirty.insert(queue.to_owned());
        let stats = self.locks.entry(queue.to_owned()).or_default();
        stats.last_revision = revision;
        stats
    }

    /// Forgets the least recently active locks until the bound holds.
    fn evict(&mut self) {
        while self.locks.len() > self.capacity {
            let Some((_, path)) = self.by_activity.pop_first() else { return };
            self.locks.remove(&path);
            self.dirty.insert(path);
        }
    }

    /// The lock at `path`: its statistics (zero if untracked) and its holders and waiters
    /// now.
    pub fn entry(&self, tree: &Tree, path: &str) -> LockStatsEntry {
        let (holders, waiters) = occupancy(tree, path);
        LockStatsEntry {
            path: path.to_owned(),
            stats: self.locks.get(path).copied().unwrap_or_default(),
            holders,
            waiters,
        }
    }

    /// Every tracked lock's statistics summed by prefix: a lock's prefix is the path of
    /// its first `segments` segments (the lock itself when it has no more). The `max`
    /// busiest prefixes are listed, busiest first (by total wait, then acquisitions, then
    /// name, as [`busier`]); the others are summed into one more entry, [`OTHER_PREFIX`],
    /// last. So whatever the namespace holds, at most `max + 1` entries come out: bounded
    /// labels for metrics.
    pub fn by_prefix(&self, segments: usize, max: usize) -> Vec<PrefixStats> {
        let mut sums: BTreeMap<&str, PrefixStats> = BTreeMap::new();
        for (lock, stats) in &self.locks {
            let prefix = path::truncate(lock, segments);
            let sum = sums.entry(prefix).or_insert_with(|| PrefixStats {
                prefix: prefix.to_owned(),
                ..PrefixStats::default()
            });
            sum.locks += 1;
            sum.stats.merge(stats);
        }
        let mut listed: Vec<PrefixStats> = sums.into_values().collect();
        listed.sort_by(|a, b| {
            b.stats
                .wait
                .sum_ms
                .cmp(&a.stats.wait.sum_ms)
                .then(b.stats.acquisitions.cmp(&a.stats.acquisitions))
                .then_with(|| a.prefix.cmp(&b.prefix))
        });
        if listed.len() > max {
            let mut other =
                PrefixStats { prefix: OTHER_PREFIX.to_owned(), ..PrefixStats::default() };
            for rest in listed.drain(max..) {
                other.locks += rest.locks;
                other.stats.merge(&rest.stats);
            }
            listed.push(other);
        }
        listed
    }

    /// The tracked locks at or under `prefix` (by whole path segments: `/a` covers `/a`
    /// and `/a/b`, not `/ab`): their total, and the `limit` busiest.
    pub fn report(&self, tree: &Tree, prefix: &str, limit: usize) -> LockStatsReport {
        let mut total = LockStatsEntry { path: prefix.to_owned(), ..LockStatsEntry::default() };
        let mut locks: Vec<LockStatsEntry> = self
            .locks
            .range(prefix.to_owned()..)
            .take_while(|(p, _)| p.starts_with(prefix))
            .filter(|(p, _)| path::is_within(p, prefix))
            .map(|(p, s)| {
                let (holders, waiters) = occupancy(tree, p);
                LockStatsEntry { path: p.clone(), stats: *s, holders, waiters }
            })
            .collect();
        for e in &locks {
            total.stats.merge(&e.stats);
            total.holders += e.holders;
            total.waiters += e.waiters;
        }
        let matched = locks.len() as u64;
        locks.sort_by(busier);
        locks.truncate(limit);
        LockStatsReport { total, matched, locks }
    }
}

/// How many waiters of the lock at `path` hold and how many wait (none if it is not a
/// lock now).
fn occupancy(tree: &Tree, path: &str) -> (u64, u64) {
    match recipe::waiters(tree, path) {
        Some((config, ws)) if config.kind.is_lock() => {
            let holders = ws.iter().filter(|w| w.info.token.is_some()).count() as u64;
            (holders, ws.len() as u64 - holders)
        }
        _ => (0, 0),
    }
}

#[cfg(test)]
#[path = "lock_stats_test.rs"]
mod tests;
