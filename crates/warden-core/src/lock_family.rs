//! Who may hold among locks that constrain one another: hierarchical locks and priorities
//! (DESIGN §5, issue 15).
//!
//! **Family.** A lock (a mutex, read-write lock or semaphore queue) may sit below another
//! lock's path. A hold with [`Scope::Subtree`] covers its lock's path and every lock below
//! it: it conflicts with the holds of any lock below, and the hold of any lock conflicts
//! with the subtree holds of the locks above it. Between two locks, shared holds (readers)
//! are compatible and anything else (a writer, a mutex's holder, a semaphore's permits) is
//! exclusive: the intention-lock semantics of a database's lock manager, with the intention
//! implied by the path. The locks that may constrain one another are the lock queues under
//! the topmost lock at or above one: its family. A lock with no lock above or below it is a
//! family of one, and then this is exactly the lock's own queue rule ([`crate::queue`]).
//!
//! **Order.** Waiters are served in one order across the family: by priority with aging,
//! then by arrival. A waiter's effective priority is its priority plus one for every
//! [`AGING_MS`] it has waited. Between two waiters the difference of their effective
//! priorities does not change while both wait, so the order is fixed when they join: the
//! arrival time (leader clock) minus priority × [`AGING_MS`], ties by arrival. A waiter is
//! therefore never passed by a request that arrives more than
//! ([`MAX_PRIORITY`] − its priority) × [`AGING_MS`] after it: the starvation bound. And
//! the order changes only when a command changes a queue, never with time alone, which
//! keeps the wait-for graph of [`crate::deadlock`] exact. (Arrival times are the leader's
//! clock; within one lock they are taken as never going back, so that a new leader's
//! slower clock cannot reorder a lock's waiters of one priority.)
//!
//! One session's holds never conflict with each other across locks: a session that holds
//! a subtree may lock below it (a transaction may, under its own intention locks).
//!
//! **Rule.** Holders keep holding. Going through the waiters in order, one is granted iff
//! it conflicts with no holder and no waiter before it (nobody overtakes a conflicting
//! request: fair), where within one lock its kind decides (mutex: everything conflicts;
//! read-write: readers share; semaphore: the permits of the holders, of the waiters before
//! it and its own must fit) and across locks the subtree rule above does. A lock under its
//! lock-delay, or in a resource kind's version that does not grant yet, grants nothing,
//! but its waiters keep their place in the order.

use std::collections::BTreeMap;

use crate::ids::SessionId;
use crate::node::NodeKind;
use crate::path;
use crate::queue::{MAX_PRIORITY, QueueKind, Scope, WaitMode};
use crate::queue_data::QueueConfig;
use crate::recipe::{self, WaiterView};
use crate::tree::Tree;

/// How long a waiter waits for its effective priority to rise by one, ms.
pub const AGING_MS: u64 = 1_000;

/// How long after a waiter a request may arrive and still be served before it, at most:
/// ([`MAX_PRIORITY`] − `priority`) × [`AGING_MS`].
pub fn overtaking_window_ms(priority: u32) -> u64 {
    u64::from(MAX_PRIORITY.saturating_sub(priority)) * AGING_MS
}

/// One lock of a family.
#[derive(Debug, Clone)]
pub struct FamilyLock {
    /// Its path.
    pub path: String,
    /// Its settings.
    pub config: QueueConfig,
    /// Whether it grants nothing now (a lock-delay, a version that does not grant yet).
    pub held_back: bool,
}

/// One waiter of a family, holder or not.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its lock, an index into [`Family::locks`].
    pub lock: usize,
    /// The waiter.
    pub waiter: WaiterView,
}

/// A family of locks: its locks sorted by path, its holders, then its other waiters in
/// the order they are served.
#[derive(Debug, Clone, Default)]
pub struct Family {
    /// The locks, sorted by path (so the locks below one are the ones right after it whose
    /// paths start with its child prefix).
    pub locks: Vec<FamilyLock>,
    /// Holders first (in lock and queue order), then waiters in service order.
    pub members: Vec<Member>,
    /// For each lock, the locks strictly above it.
    above: Vec<Vec<usize>>,
}

/// Whether a hold in `mode` is exclusive towards another lock.
fn exclusive(mode: WaitMode) -> bool {
    mode != WaitMode::Shared
}

/// The permits a hold in `mode` takes of a lock of `kind`.
fn permits(kind: QueueKind, mode: WaitMode) -> u64 {
    match (kind, mode) {
        (_, WaitMode::Permits(n)) => u64::from(n),
        (QueueKind::Semaphore { permits }, _) => u64::from(permits),
        _ => 1,
    }
}

/// The lock at `path` if it is a lock queue (mutex, read-write lock, semaphore).
fn lock_config(tree: &Tree, path: &str) -> Option<QueueConfig> {
    let node = tree.get(path).filter(|n| n.kind == NodeKind::Queue)?;
    QueueConfig::decode(&node.data).filter(|c| c.kind.is_lock())
}

/// The topmost lock at or above `lock` (the root of its family); `None` if `lock` is not
/// a lock queue.
pub fn root(tree: &Tree, lock: &str) -> Option<String> {
    lock_config(tree, lock)?;
    let mut top = lock;
    let mut current = path::parent(lock);
    while let Some(p) = current {
        if lock_config(tree, p).is_some() {
            top = p;
        }
        current = path::parent(p);
    }
    Some(top.to_owned())
}

/// The lock queues at and below `root`: the nodes between them are containers, and the
/// children of a lock that are not its waiters lead to the locks below it.
fn lock_paths(tree: &Tree, root: &str, out: &mut Vec<(String, QueueConfig)>) {
    if let Some(config) = lock_config(tree, root) {
        out.push((root.to_owned(), config));
    }
    for (child, node) in tree.children(root) {
        let waiter = node.kind == NodeKind::Ephemeral && recipe::queue_of_waiter(child).is_some();
        if !waiter && node.stat.num_children > 0 || node.kind == NodeKind::Queue {
            lock_paths(tree, child, out);
        }
    }
}

/// The family whose root is `root` (see [`root`]), with its members in order at `now`
/// (leader clock, ms).
pub fn family(tree: &Tree, root: &str, now: u64) -> Family {
    let mut paths = Vec::new();
    lock_paths(tree, root, &mut paths);
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    let mut holders = Vec::new();
    let mut waiting = Vec::new();
    let mut locks = Vec::with_capacity(paths.len());
    for (i, (path, config)) in paths.into_iter().enumerate() {
        let waiters = recipe::waiters(tree, &path).map(|(_, ws)| ws).unwrap_or_default();
        let mut arrived = 0;
        for waiter in waiters {
            // Arrival never goes back within one lock (see the module documentation).
            arrived = waiter.since_ms.max(arrived);
            if waiter.info.token.is_some() {
                holders.push(Member { lock: i, waiter });
            } else {
                let at =
                    i128::from(arrived) - i128::from(waiter.info.priority) * i128::from(AGING_MS);
                waiting.push(((at, waiter.joined_revision), Member { lock: i, waiter }));
            }
        }
        let held_back = config.blocked_until_ms > now || recipe::gated(tree, &path);
        locks.push(FamilyLock { path, config, held_back });
    }
    waiting.sort_by_key(|(order, _)| *order);
    holders.extend(waiting.into_iter().map(|(_, m)| m));
    let by_path: BTreeMap<&str, usize> =
        locks.iter().enumerate().map(|(j, l)| (l.path.as_str(), j)).collect();
    let above = locks
        .iter()
        .map(|l| {
            let mut out = Vec::new();
            let mut current = path::parent(&l.path);
            while let Some(p) = current {
                out.extend(by_path.get(p));
                current = path::parent(p);
            }
            out
        })
        .collect();
    Family { locks, members: holders, above }
}

/// What the holds and waits counted so far take of one lock.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    any: u64,
    exclusive: u64,
    subtree_any: u64,
    subtree_exclusive: u64,
    permits: u64,
}

/// The loads of a family's locks: of everyone, and of each session (one session's holds do
/// not conflict with each other across locks: a session holding a subtree may lock below
/// it, as a transaction may under its own intention locks).
struct Loads {
    total: Vec<Load>,
    of_session: BTreeMap<(usize, SessionId), Load>,
}

impl Loads {
    fn new(locks: usize) -> Loads {
        Loads { total: vec![Load::default(); locks], of_session: BTreeMap::new() }
    }

    fn add(&mut self, member: &Member, kind: QueueKind) {
        self.total[member.lock].add(kind, &member.waiter);
        if self.total.len() == 1 {
            // A lone lock: one session has one waiter in it, and no other lock to ask.
            return;
        }
        let key = (member.lock, member.waiter.session);
        self.of_session.entry(key).or_default().add(kind, &member.waiter);
    }

    /// What the sessions other than `session` take of lock `i`.
    fn others(&self, i: usize, session: SessionId) -> Load {
        let all = self.total[i];
        let Some(mine) = self.of_session.get(&(i, session)) else { return all };
        Load {
            any: all.any - mine.any,
            exclusive: all.exclusive - mine.exclusive,
            subtree_any: all.subtree_any - mine.subtree_any,
            subtree_exclusive: all.subtree_exclusive - mine.subtree_exclusive,
            permits: all.permits - mine.permits,
        }
    }
}

impl Load {
    fn add(&mut self, kind: QueueKind, waiter: &WaiterView) {
        let x = u64::from(exclusive(waiter.info.mode));
        self.any += 1;
        self.exclusive += x;
        if waiter.info.scope == Scope::Subtree {
            self.subtree_any += 1;
            self.subtree_exclusive += x;
        }
        self.permits += permits(kind, waiter.info.mode);
    }
}

impl Family {
    /// The indexes of the locks strictly below lock `i` (contiguous after it, by path).
    fn below(&self, i: usize) -> std::ops::Range<usize> {
        let prefix = path::child_prefix(&self.locks[i].path);
        let end = self.locks[i + 1..]
            .iter()
            .position(|l| !l.path.starts_with(&prefix))
            .map_or(self.locks.len(), |n| i + 1 + n);
        i + 1..end
    }

    /// Whether `member` conflicts with what `loads` counts of the locks: within its own
    /// lock by the lock's kind, across locks (other sessions only) by the subtree rule.
    fn blocked(&self, member: &Member, loads: &Loads) -> bool {
        let i = member.lock;
        let info = &member.waiter.info;
        let session = member.waiter.session;
        let x = exclusive(info.mode);
        let own = loads.total[i];
        let within = match self.locks[i].config.kind {
            QueueKind::ReadWrite if !x => own.exclusive > 0,
            QueueKind::Semaphore { permits: n } => {
                own.permits + permits(self.locks[i].config.kind, info.mode) > u64::from(n)
            }
            _ => own.any > 0,
        };
        if within {
            return true;
        }
        let from_above = self.above[i].iter().any(|&j| {
            let load = loads.others(j, session);
            if x { load.subtree_any > 0 } else { load.subtree_exclusive > 0 }
        });
        if from_above {
            return true;
        }
        info.scope == Scope::Subtree
            && self.below(i).any(|k| {
                let load = loads.others(k, session);
                if x { load.any > 0 } else { load.exclusive > 0 }
            })
    }

    /// The waiters to grant now: see the module documentation for the rule.
    pub fn grants(&self) -> Vec<&WaiterView> {
        let mut loads = Loads::new(self.locks.len());
        let mut granted = Vec::new();
        for m in &self.members {
            let kind = self.locks[m.lock].config.kind;
            if m.waiter.info.token.is_none()
                && !self.locks[m.lock].held_back
                && !self.blocked(m, &loads)
            {
                granted.push(&m.waiter);
            }
            loads.add(m, kind);
        }
        granted
    }

    /// Whether member `at` (a waiter that is not granted) waits for member `other`, which
    /// is served before it: within a mutex or a semaphore it waits for every one of them
    /// (any may hold what it needs); within a read-write lock, and across locks, for those
    /// whose holds conflict with its own. Never for its own session.
    pub fn waits_for(&self, me: &Member, other: &Member) -> bool {
        if other.waiter.session == me.waiter.session {
            return false;
        }
        let either_exclusive = exclusive(me.waiter.info.mode) || exclusive(other.waiter.info.mode);
        if other.lock == me.lock {
            return self.locks[me.lock].config.kind != QueueKind::ReadWrite || either_exclusive;
        }
        let from_above =
            self.above[me.lock].contains(&other.lock) && other.waiter.info.scope == Scope::Subtree;
        let from_below =
            me.waiter.info.scope == Scope::Subtree && self.below(me.lock).contains(&other.lock);
        (from_above || from_below) && either_exclusive
    }

    /// The members that member `at` (a waiter that is not granted) waits for: see
    /// [`Family::waits_for`].
    pub fn blockers(&self, at: usize) -> Vec<usize> {
        let Some(me) = self.members.get(at) else { return Vec::new() };
        (0..at).filter(|&j| self.waits_for(me, &self.members[j])).collect()
    }
}

#[cfg(test)]
#[path = "lock_family_test.rs"]
mod tests;
