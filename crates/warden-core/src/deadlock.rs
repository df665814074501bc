//! Deadlock detection over locks (DESIGN §5): the wait-for graph between sessions, and the
//! check that refuses the acquire that would close a cycle in it.
//!
//! A session whose waiter in lock `L` is not granted waits for the sessions of the holders
//! and of the waiters served before it ([`crate::lock_family`]: priority, then arrival)
//! that it may not pass: in a mutex or a semaphore all of them; in a read-write lock, and
//! in the locks above and below `L` (hierarchical locks), those whose holds conflict with
//! its own. Only locks count
//! (mutexes, read-write locks, semaphores); an election's candidates and a barrier's
//! members wait for something other than a session letting go, and are not part of the
//! graph.
//!
//! The graph is not kept beside the tree, it is read from it: a session's waiters are
//! among its ephemeral nodes, which the tree indexes by session. The order of a family's
//! waiters is fixed when they join (it does not move with time), so only an acquire adds
//! edges: those from its new waiter, and edges into it from the waiters it is served
//! before (a higher priority; a reader granted beside a reader that waits for a lock
//! above). Every new edge touches the acquiring session, so a cycle the acquire closes
//! passes through it, and leaves it by one of its waits; a release, a revoke, a grant and
//! the end of a session only remove edges. So the graph never holds a cycle if every
//! acquire that would close one is refused, and that is the one check, [`check`], run for
//! every acquire that made a new waiter, granted at once or not (it costs nothing when the
//! session waits nowhere). The refused acquire fails with
//! [`CoreError::Deadlock`], and like every failed command it changes nothing.
//!
//! Cost: a breadth-first search from the sessions the new waiter waits for, looking for the
//! acquiring session. For each session it reaches it reads that session's ephemeral nodes,
//! and for each one that is a waiting waiter of a lock, the members before it in that lock
//! that were not read yet (each lock's members are read at most once in a search: those
//! before a waiter are a prefix of its lock's order), plus the conflicting members of the
//! locks above and below it. Each lock family is read once per search. So it walks only
//! the part of the graph reachable from the new wait, never every lock. It finds a
//! shortest cycle, the same one on every replica (every order is the tree's, sorted).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};

use crate::error::CoreError;
pub use crate::error::CycleStep;
use crate::ids::SessionId;
use crate::lock_family::{self, Family};
use crate::node::NodeKind;
use crate::queue::{QueueKind, WaitMode};
use crate::queue_data::{QueueConfig, WaiterInfo};
use crate::recipe;
use crate::session::SessionTable;
use crate::tree::Tree;

/// The locks `session` waits on (its waiters there not granted), each with the sessions it
/// waits for there (see the module documentation), in the order they are served; by lock
/// path.
pub fn waits_of(tree: &Tree, session: SessionId) -> Vec<(String, Vec<SessionId>)> {
    let mut families = Families::default();
    waiting(tree, session)
        .filter_map(|(lock, waiter)| {
            let (family, at) = families.find(tree, lock, waiter)?;
            let blockers = family.blockers(at).into_iter();
            Some((lock.to_owned(), blockers.map(|j| family.members[j].waiter.session).collect()))
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

/// The lock families read by a search, each read once, by root.
#[derive(Default)]
struct Families {
    read: BTreeMap<String, ReadFamily>,
}

/// A family read, with its members indexed by waiter path, and how far each of its
/// locks' members were followed.
struct ReadFamily {
    family: Family,
    index: BTreeMap<String, usize>,
    followed: Vec<usize>,
}

impl Families {
    /// The family of `lock` and the index of `waiter` among its members.
    fn find(&mut self, tree: &Tree, lock: &str, waiter: &str) -> Option<(&Family, usize)> {
        let read = self.entry(tree, lock)?;
        let at = *read.index.get(waiter)?;
        Some((&read.family, at))
    }

    fn entry(&mut self, tree: &Tree, lock: &str) -> Option<&mut ReadFamily> {
        let root = lock_family::root(tree, lock)?;
        Some(self.read.entry(root).or_insert_with_key(|root| {
            // The order does not depend on the time; only which locks are held back does,
            // and the graph does not ask.
            let family = lock_family::family(tree, root, 0);
            let index = family
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| (m.waiter.path.clone(), i))
                .collect();
            let followed = vec![0; family.locks.len()];
            ReadFamily { family, index, followed }
        }))
    }
}

/// A breadth-first search of the wait-for graph for one session.
struct Search<'t> {
    tree: &'t Tree,
    /// The session looked for.
    target: SessionId,
    /// Each session reached, with the session that waits for it and the lock it waits on.
    reached: BTreeMap<SessionId, (SessionId, String)>,
    frontier: VecDeque<SessionId>,
    /// The families read. Within a lock, those a waiter waits for are the members before
    /// it, and every session of a prefix followed is reached already, so each lock's
    /// members are read at most once, however many of its waiters wait.
    families: Families,
    /// How many members were read within their lock, for the tests of the cost.
    #[cfg_attr(not(test), allow(dead_code))]
    waiters_read: usize,
}

impl<'t> Search<'t> {
    /// Follows the wait of `from` at `waiter` of the lock at `lock`: reaches the sessions
    /// it waits for not reached yet. Returns whether the target is reached.
    fn follow(&mut self, from: SessionId, lock: &str, waiter: &str) -> bool {
        let Some(read) = self.families.entry(self.tree, lock) else { return false };
        let Some(&at) = read.index.get(waiter) else { return false };
        let family = &read.family;
        let me = &family.members[at];
        if me.waiter.info.token.is_some() {
            return false;
        }
        let mine = me.lock;
        let mut reach = Vec::new();
        let shared_reader = family.locks[mine].config.kind == QueueKind::ReadWrite
            && me.waiter.info.mode == WaitMode::Shared;
        if family.locks.len() > 1 || shared_reader {
            reach.extend(family.blockers(at).into_iter().map(|j| family.members[j].waiter.session));
        } else {
            // A waiter of a lone mutex or semaphore waits for every member before it.
            let start = read.followed[mine];
            if start < at {
                for m in &family.members[start..at] {
                    self.waiters_read += 1;
                    reach.push(m.waiter.session);
                }
                read.followed[mine] = at;
            }
        }
        for session in reach {
            if let Entry::Vacant(e) = self.reached.entry(session) {
                e.insert((from, lock.to_owned()));
                self.frontier.push_back(session);
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
fn search<'t>(tree: &'t Tree, session: SessionId, lock: &str, waiter: &str) -> Search<'t> {
    let mut s = Search {
        tree,
        target: session,
        reached: BTreeMap::new(),
        frontier: VecDeque::new(),
        families: Families::default(),
        waiters_read: 0,
    };
    // The new wait first, then the session's other waits: a higher priority may have put
    // the new waiter before others, and a cycle through such an edge into the session
    // leaves it by any of its waits.
    let found = s.follow(session, lock, waiter)
        || waiting(tree, session)
            .filter(|(_, w)| *w != waiter)
            .any(|(l, w)| s.follow(session, l, w));
    if !found {
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
