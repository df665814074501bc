//! Deadlock detection over locks (DESIGN §5): the wait-for graph between sessions, and the
//! check that refuses the acquire that would close a cycle in it.
//!
//! A session whose waiter in lock `L` is not granted waits for every session with a waiter
//! ahead of it in `L`, holders and earlier waiters alike: the queue is FIFO and nobody
//! overtakes, so it cannot pass any of them. Only locks count (mutexes, read-write locks,
//! semaphores); an election's candidates and a barrier's members wait for something other
//! than a session letting go, and are not part of the graph.
//!
//! The graph is not kept beside the tree, it is read from it: a session's waiters are
//! among its ephemeral nodes, which the tree indexes by session. Only an acquire adds
//! edges (its new waiter joins the end of the queue, so the new edges all leave the
//! acquiring session); a release, a revoke, a grant and the end of a session only remove
//! them. So the graph never holds a cycle if every acquire that would close one is
//! refused, and that is the one check, [`check`], run for an acquire that made a new
//! waiter that is not granted at once. The refused acquire fails with
//! [`CoreError::Deadlock`], and like every failed command it changes nothing.
//!
//! Cost: a breadth-first search from the sessions ahead of the new waiter, looking for the
//! acquiring session. For each session it reaches it reads that session's ephemeral nodes,
//! and for each one that is a waiting waiter of a lock, the waiters ahead of it in that
//! lock that were not read yet (those ahead of a waiter are a prefix of its queue, so each
//! queue is read at most once in a search, up to its last waiting waiter reached). So it
//! walks only the part of the graph reachable from the new wait, never every lock, in time
//! linear in it (times the tree's lookups). It finds a shortest cycle, the same one on
//! every replica (every order is the tree's, sorted).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};

use crate::error::CoreError;
pub use crate::error::CycleStep;
use crate::ids::SessionId;
use crate::node::NodeKind;
use crate::queue_data::{QueueConfig, WaiterInfo};
use crate::recipe;
use crate::session::SessionTable;
use crate::tree::Tree;

/// The locks `session` waits on (its waiters there not granted), each with the sessions
/// ahead of it there, in queue order; by lock path.
pub fn waits_of(tree: &Tree, session: SessionId) -> Vec<(String, Vec<SessionId>)> {
    waiting(tree, session)
        .map(|(lock, waiter)| {
            let ahead = tree.children(lock).take_while(|(p, _)| *p != waiter);
            (lock.to_owned(), ahead.map(|(_, n)| n.stat.ephemeral_owner).collect())
        })
        .collect()
}

/// The waiters of `session` that wait (not granted) in a lock, with their lock.
fn waiting(tree: &Tree, session: SessionId) -> impl Iterator<Item = (&str, &str)> {
    tree.ephemerals_of(session).filter_map(move |waiter| {
        let lock = recipe::queue_of_waiter(waiter)?;
        let node = tree.get(lock).filter(|n| n.kind == NodeKind::Queue)?;
        if !QueueConfig::decode(&node.data)?.kind.is_lock() {
            return None;
        }
        if WaiterInfo::decode(&tree.get(waiter)?.data)?.token.is_some() {
            return None;
        }
        Some((lock, waiter))
    })
}

/// A breadth-first search of the wait-for graph for one session.
struct Search<'t> {
    tree: &'t Tree,
    /// The session looked for.
    target: SessionId,
    /// Each session reached, with the session that waits for it and the lock it waits on.
    reached: BTreeMap<SessionId, (SessionId, String)>,
    frontier: VecDeque<SessionId>,
    /// How far each lock's queue was read: the last waiter read. The sessions ahead of a
    /// waiter are a prefix of its queue, and every session of a prefix read is reached
    /// already, so each queue is read at most once, however many of its waiters wait.
    read: BTreeMap<&'t str, &'t str>,
    /// How many waiters were read, for the tests of the cost.
    #[cfg_attr(not(test), allow(dead_code))]
    waiters_read: usize,
}

impl<'t> Search<'t> {
    /// Follows the wait of `from` at `waiter` of the lock at `lock`: reaches the sessions
    /// ahead of it not reached yet. Returns whether the target is reached.
    fn follow(&mut self, from: SessionId, lock: &'t str, waiter: &str) -> bool {
        let start = self.read.get(lock).copied();
        if start.is_some_and(|last| last >= waiter) {
            // Waiter names are fixed-width sequence numbers: their order is the queue's.
            return false;
        }
        let after = start.map_or("", crate::path::name);
        for (p, n) in self.tree.children_after(lock, after).take_while(|(p, _)| *p != waiter) {
            self.waiters_read += 1;
            self.read.insert(lock, p);
            if let Entry::Vacant(e) = self.reached.entry(n.stat.ephemeral_owner) {
                e.insert((from, lock.to_owned()));
                self.frontier.push_back(n.stat.ephemeral_owner);
            }
        }
        self.reached.contains_key(&self.target)
    }

    /// Searches on from the sessions reached until the target is, or nothing is left.
    fn run(&mut self) -> bool {
        if self.reached.contains_key(&self.target) {
            return true;
        }
        while let Some(current) = self.frontier.pop_front() {
            let tree = self.tree;
            for (lock, waiter) in waiting(tree, current) {
                if self.follow(current, lock, waiter) {
                    return true;
                }
            }
        }
        false
    }

    /// The cycle found: from the target back to itself, every step reached from one
    /// reached before.
    fn cycle(&self) -> Option<Vec<CycleStep>> {
        let mut steps = Vec::new();
        let mut current = self.target;
        for _ in 0..self.reached.len() {
            let (from, path) = self.reached.get(&current)?;
            steps.push(CycleStep { session: *from, identity: String::new(), path: path.clone() });
            if *from == self.target {
                steps.reverse();
                return Some(steps);
            }
            current = *from;
        }
        None
    }
}

/// Searches from `session`'s new wait at `waiter` of the lock at `lock`.
fn search<'t>(tree: &'t Tree, session: SessionId, lock: &'t str, waiter: &str) -> Search<'t> {
    let mut s = Search {
        tree,
        target: session,
        reached: BTreeMap::new(),
        frontier: VecDeque::new(),
        read: BTreeMap::new(),
        waiters_read: 0,
    };
    if !s.follow(session, lock, waiter) {
        s.run();
    }
    s
}

/// The cycle that `session`'s new wait at `waiter` (not granted) of the lock at `lock`
/// closes, if any: a shortest one, starting with `session` waiting on `lock`. Identities
/// are left empty (the tree does not know them; see [`name_sessions`]).
pub fn cycle_closed_by(
    tree: &Tree,
    session: SessionId,
    lock: &str,
    waiter: &str,
) -> Option<Vec<CycleStep>> {
    let s = search(tree, session, lock, waiter);
    if s.reached.contains_key(&session) { s.cycle() } else { None }
}

/// Refuses `session`'s new wait at `waiter` of the lock at `lock` if it closes a cycle.
pub(crate) fn check(
    tree: &Tree,
    session: SessionId,
    lock: &str,
    waiter: &str,
) -> Result<(), CoreError> {
    match cycle_closed_by(tree, session, lock, waiter) {
        Some(cycle) => Err(CoreError::Deadlock { cycle }),
        None => Ok(()),
    }
}

/// Fills in the identities of a deadlock's sessions from the session table (the check
/// runs where only the tree is at hand); any other error is returned as it is.
pub(crate) fn name_sessions(error: CoreError, sessions: &SessionTable) -> CoreError {
    match error {
        CoreError::Deadlock { mut cycle } => {
            for step in &mut cycle {
                if let Some(s) = sessions.get(step.session) {
                    step.identity.clone_from(&s.identity);
                }
            }
            CoreError::Deadlock { cycle }
        }
        other => other,
    }
}

#[cfg(test)]
#[path = "deadlock_test.rs"]
mod tests;
