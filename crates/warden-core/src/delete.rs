//! A client's delete: the namespace's delete with the lock rule in front.
//!
//! Only a release, a revoke and the end of a session take a session out of a lock. A plain
//! delete that would remove a waiter node, a lock with holders or waiters, or a lock under
//! its lock-delay (directly, or anywhere under a recursive delete) is refused with
//! [`CoreError::LockInUse`], which names the lock and how to revoke it. A delete that asks
//! to revoke (`revoke_locks`) is a revoke of each of those sessions first: holders are told
//! on their session stream, and a revoked holder starts its lock's lock-delay. A lock under
//! a lock-delay is kept until the delay ends (then it goes, as any empty lock does), and so
//! are the nodes above it up to the deleted one, which become containers and go with it.
//! Deleting the lock would let the next acquirer in at once, which is what the delay is
//! there to prevent.

use std::collections::BTreeSet;

use crate::command::HoldRef;
use crate::error::CoreError;
use crate::ids::SessionId;
use crate::namespace::{Mutation, check_version};
use crate::node::NodeKind;
use crate::path;
use crate::queue_data::{self, WaiterInfo};
use crate::recipe::{self, Leaving};
use crate::response::Output;
use crate::tree::Tree;

/// A session's place in a lock that a delete reaches.
struct Reached {
    lock: String,
    session: SessionId,
    held: bool,
}

/// Deletes `path` (and its descendants if `recursive`) as a client asked; see the module
/// documentation for what happens to the locks it reaches.
pub(crate) fn delete(
    m: &mut Mutation<'_>,
    target: &str,
    expected_version: Option<u64>,
    recursive: bool,
    revoke_locks: bool,
) -> Result<Output, CoreError> {
    path::validate(target, m.limits())?;
    if target == path::ROOT {
        return Err(CoreError::RootNotDeletable);
    }
    let node = m.tree().get(target).ok_or_else(|| CoreError::no_node(target))?;
    check_version(target, node, expected_version)?;
    // A lock's waiters go with it; anything else below (the locks below a lock) needs a
    // recursive delete.
    let waiters =
        if node.kind == NodeKind::Queue { waiter_children(m.tree(), target).len() } else { 0 };
    let others = node.stat.num_children - waiters as u64;
    if !recursive && others > 0 {
        return Err(CoreError::NotEmpty { path: target.to_owned(), children: others });
    }
    let now = m.time_ms();
    let scope = scope(m.tree(), target, recursive);
    let reached = reached(m.tree(), &scope);
    if !revoke_locks {
        refuse_if_locked(m.tree(), target, &scope, &reached, now)?;
    }
    let mark = m.mark();
    for r in &reached {
        recipe::leave(m, r.session, &r.lock, &HoldRef::Any, Leaving::Revoked)?;
    }
    let revoked = reached.len() as u64;
    if !m.tree().contains(target) {
        // The last waiter took its lock (and emptied containers above) with it.
        return Ok(Output::Deleted { count: m.deleted_since(mark), revoked, kept: 0 });
    }
    let keep = kept(m.tree(), target, recursive, now);
    let kept = keep.iter().filter(|p| is_lock(m.tree(), p)).count() as u64;
    m.delete_keeping(target, &keep);
    Ok(Output::Deleted { count: m.deleted_since(mark), revoked, kept })
}

fn is_lock(tree: &Tree, p: &str) -> bool {
    tree.get(p).is_some_and(|n| n.kind == NodeKind::Queue)
}

/// The nodes the delete removes: `target`, and its descendants if `recursive`.
fn scope(tree: &Tree, target: &str, recursive: bool) -> Vec<String> {
    let mut scope = vec![target.to_owned()];
    if recursive {
        scope.extend(tree.descendants(target));
    } else if is_lock(tree, target) {
        // Deleting a lock reaches its waiters.
        scope.extend(waiter_children(tree, target));
    }
    scope
}

/// The waiters of the lock at `lock`.
fn waiter_children(tree: &Tree, lock: &str) -> Vec<String> {
    tree.children(lock)
        .filter(|(p, n)| n.kind == NodeKind::Ephemeral && recipe::queue_of_waiter(p).is_some())
        .map(|(p, _)| p.to_owned())
        .collect()
}

/// The waiters among `scope`, as the sessions and locks they belong to.
fn reached(tree: &Tree, scope: &[String]) -> Vec<Reached> {
    scope
        .iter()
        .filter_map(|p| {
            let lock = recipe::queue_of_waiter(p).filter(|l| is_lock(tree, l))?;
            let node = tree.get(p).filter(|n| n.kind == NodeKind::Ephemeral)?;
            let held = WaiterInfo::decode(&node.data).is_some_and(|i| i.token.is_some());
            Some(Reached { lock: lock.to_owned(), session: node.stat.ephemeral_owner, held })
        })
        .collect()
}

/// Refuses a delete that reaches a waiter or a lock under its lock-delay.
fn refuse_if_locked(
    tree: &Tree,
    target: &str,
    scope: &[String],
    reached: &[Reached],
    now: u64,
) -> Result<(), CoreError> {
    if let Some(first) = reached.first() {
        let of_lock: Vec<&Reached> = reached.iter().filter(|r| r.lock == first.lock).collect();
        let holders: Vec<String> =
            of_lock.iter().filter(|r| r.held).map(|r| r.session.to_string()).collect();
        let waiting = of_lock.iter().filter(|r| !r.held).count();
        let mut what = match holders.as_slice() {
            [] => "held by no session".to_owned(),
            [one] => format!("held by session {one}"),
            many => format!("held by sessions {}", many.join(", ")),
        };
        if waiting > 0 {
            what.push_str(&format!(", {waiting} waiting"));
        }
        let others = reached.iter().filter(|r| r.lock != first.lock).count();
        if others > 0 {
            what.push_str(&format!(" (and {others} holds or waits of other locks)"));
        }
        return Err(CoreError::LockInUse {
            path: target.to_owned(),
            lock: first.lock.clone(),
            what,
        });
    }
    let blocked = scope.iter().find_map(|p| {
        let until = tree.get(p).and_then(queue_data::blocked_until)?;
        (until > now).then(|| (p.clone(), until))
    });
    if let Some((lock, until)) = blocked {
        return Err(CoreError::LockInUse {
            path: target.to_owned(),
            lock,
            what: format!("which is under its lock-delay until {until} ms (leader clock)"),
        });
    }
    Ok(())
}

/// The nodes to keep: locks in the delete's reach still under a lock-delay, and the nodes
/// between them and `target`.
fn kept(tree: &Tree, target: &str, recursive: bool, now: u64) -> BTreeSet<String> {
    let mut keep = BTreeSet::new();
    for p in scope(tree, target, recursive) {
        let blocked =
            tree.get(&p).and_then(queue_data::blocked_until).is_some_and(|until| until > now);
        if !blocked {
            continue;
        }
        let mut current = Some(p.as_str());
        while let Some(c) = current {
            if !keep.insert(c.to_owned()) || c == target {
                break;
            }
            current = path::parent(c);
        }
    }
    keep
}
