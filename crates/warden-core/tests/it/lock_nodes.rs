//! (d) Only a release, a revoke and the end of a session take a session out of a recipe's
//! queue (and a resign, a barrier member leaving, a barrier's removal, each for its own):
//! no other command (a plain delete, a recursive delete of a parent, a transaction) removes
//! a waiter node or a queue that has waiters, and an empty lock (under its lock-delay) goes
//! only when the delay is woken. A delete that asks to revoke is a revoke.

use std::collections::BTreeMap;

use proptest::prelude::*;
use warden_core::queue_data::{QueueConfig, WaiterInfo};
use warden_core::{Command, HoldRef, NodeKind, Request, State, TxnOp};

use crate::steps::{Runner, cases, steps};

/// A lock node or a waiter, as the property looks at it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// A lock with waiters, or a waiter.
    busy: bool,
    /// A waiter's session (0 for a lock node).
    owner: u64,
    /// A waiter's token, once granted.
    token: Option<u64>,
    /// A lock's lock-delay end (leader clock, ms), 0 if none.
    blocked_until: u64,
}

/// Every lock node and every waiter.
fn lock_nodes(state: &State) -> BTreeMap<String, Seen> {
    let tree = state.tree();
    let is_lock = |p: &str| tree.get(p).is_some_and(|n| n.kind == NodeKind::Queue);
    tree.iter()
        .filter_map(|(p, n)| {
            let seen = if n.kind == NodeKind::Queue {
                let blocked_until = QueueConfig::decode(&n.data).map_or(0, |c| c.blocked_until_ms);
                Seen { busy: n.stat.num_children > 0, owner: 0, token: None, blocked_until }
            } else if warden_core::path::parent(p).is_some_and(is_lock) {
                let token = WaiterInfo::decode(&n.data).and_then(|i| i.token);
                Seen { busy: true, owner: n.stat.ephemeral_owner, token, blocked_until: 0 }
            } else {
                return None;
            };
            Some((p.to_owned(), seen))
        })
        .collect()
}

/// Whether the hold a release names is the waiter at `path`.
fn names(hold: &HoldRef, path: &str, seen: Seen) -> bool {
    match hold {
        HoldRef::Any => true,
        HoldRef::Token(t) => seen.token == Some(*t),
        HoldRef::Wait(w) => w == path && seen.token.is_none(),
    }
}

/// Whether `request` may remove the waiter `path` (or, with an owner of 0, a lock node
/// whose last waiter it removed).
fn may_remove(request: &Request, path: &str, seen: Seen) -> bool {
    let session = seen.owner;
    let revokes =
        |ops: &[TxnOp]| ops.iter().any(|op| matches!(op, TxnOp::Delete { revoke_locks: true, .. }));
    match &request.command {
        Command::Release { hold, .. } => {
            session == 0 || (request.session == Some(session) && names(hold, path, seen))
        }
        Command::Revoke { session: s, .. } => session == 0 || *s == session,
        Command::CloseSession { id } => session == 0 || *id == session,
        Command::ExpireSessions { ids, .. } => session == 0 || ids.contains(&session),
        Command::Delete { revoke_locks, .. } => *revoke_locks,
        Command::Resign { token, .. } => {
            session == 0 || (request.session == Some(session) && seen.token == Some(*token))
        }
        Command::LeaveBarrier { .. } => session == 0 || request.session == Some(session),
        // A forced rotation revokes what is left in the old version.
        Command::ForceRotation { .. } => true,
        // Removing a barrier lets its waiters through: they go with it.
        Command::RemoveBarrier { path: barrier } => {
            path == barrier || warden_core::path::parent(path) == Some(barrier.as_str())
        }
        Command::Txn { ops, .. } => revokes(ops),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn only_release_revoke_and_session_end_remove_lock_nodes(steps in steps(100)) {
        let mut runner = Runner::new();
        for step in &steps {
            let before = lock_nodes(&runner.state);
            let (request, _) = runner.apply(step);
            let after = lock_nodes(&runner.state);
            for (path, seen) in &before {
                if after.contains_key(path) {
                    continue;
                }
                let (waiter, owner) = (seen.owner != 0, seen.owner);
                let allowed = if waiter || seen.busy {
                    // A lock with waiters goes with its last one.
                    may_remove(&request, path, *seen)
                } else {
                    // An empty lock is one under its lock-delay: only the wake-up ends it,
                    // unless the delay is over (then it is an idle lock waiting for the
                    // wake-up, and deleting it ends nothing).
                    matches!(request.command, Command::WakeLocks)
                        || seen.blocked_until <= runner.time_ms()
                };
                prop_assert!(allowed, "{:?} removed {} ({})", request, path,
                    if waiter { format!("waiter of session {owner}") } else { "lock".to_owned() });
            }
        }
    }
}
