//! The locks' invariant, checked the slow way: a brute-force reading of the rule of
//! [`crate::lock_family`] over every pair of waiters, written without its bookkeeping, so
//! that the tests that check invariants after every step compare the two.
//!
//! Safety: no two holds conflict (within a lock by its kind; across locks when one covers
//! the other's path with a subtree hold, not both are shared, and they are of two
//! sessions), and a semaphore's
//! holders take no more than its permits. Liveness of the rule (nobody waits for nothing):
//! a waiter of a lock that is not held back is blocked by a conflicting holder, or by a
//! conflicting waiter served before it, or does not fit in its semaphore beside the
//! holders and the waiters before it.

use crate::node::NodeKind;
use crate::path;
use crate::queue::{QueueKind, Scope, WaitMode};
use crate::queue_data::QueueConfig;
use crate::recipe::{self, WaiterView};
use crate::tree::Tree;

/// One waiter of a lock, with what the check needs.
struct Wait<'t> {
    lock: &'t str,
    kind: QueueKind,
    held_back: bool,
    waiter: WaiterView,
    /// The order waiters are served in: arrival (never going back within a lock) minus
    /// priority times the aging step, then the revision it joined at.
    order: (i128, u64),
}

/// Whether `a` is a strict ancestor of `b`.
fn above(a: &str, b: &str) -> bool {
    a != b && (a == path::ROOT || b.starts_with(&path::child_prefix(a)))
}

/// Whether two holds (or a hold and a request) conflict, semaphore permits aside.
fn conflict(a: &Wait<'_>, b: &Wait<'_>) -> bool {
    let both_shared =
        a.waiter.info.mode == WaitMode::Shared && b.waiter.info.mode == WaitMode::Shared;
    if a.lock == b.lock {
        return match a.kind {
            QueueKind::Semaphore { .. } => false,
            _ => !both_shared,
        };
    }
    let covers =
        |x: &Wait<'_>, y: &Wait<'_>| x.waiter.info.scope == Scope::Subtree && above(x.lock, y.lock);
    // One session's holds do not conflict across locks.
    a.waiter.session != b.waiter.session && (covers(a, b) || covers(b, a)) && !both_shared
}

fn permits(w: &Wait<'_>) -> u64 {
    match (w.kind, w.waiter.info.mode) {
        (_, WaitMode::Permits(n)) => u64::from(n),
        (QueueKind::Semaphore { permits }, _) => u64::from(permits),
        _ => 1,
    }
}

/// Every lock waiter of the tree.
fn waits(tree: &Tree) -> Vec<Wait<'_>> {
    let mut all = Vec::new();
    for (lock, node) in tree.iter().filter(|(_, n)| n.kind == NodeKind::Queue) {
        let Some(config) = QueueConfig::decode(&node.data).filter(|c| c.kind.is_lock()) else {
            continue;
        };
        let held_back = config.blocked_until_ms != 0 || recipe::gated(tree, lock);
        let mut arrived = 0u64;
        for waiter in recipe::waiters(tree, lock).map(|(_, ws)| ws).unwrap_or_default() {
            arrived = arrived.max(waiter.since_ms);
            let at = i128::from(arrived)
                - i128::from(waiter.info.priority) * i128::from(crate::lock_family::AGING_MS);
            let order = (at, waiter.joined_revision);
            all.push(Wait { lock, kind: config.kind, held_back, waiter, order });
        }
    }
    all
}

/// What the locks of `tree` break of the rule.
pub(crate) fn violations(tree: &Tree) -> Vec<String> {
    let all = waits(tree);
    let mut found = Vec::new();
    let held = |w: &&Wait<'_>| w.waiter.info.token.is_some();
    for (i, a) in all.iter().enumerate().filter(|(_, w)| held(w)) {
        for b in all[i + 1..].iter().filter(held) {
            if a.waiter.session != b.waiter.session && conflict(a, b) {
                found.push(format!("{} and {} hold at once", a.waiter.path, b.waiter.path));
            }
        }
        if let QueueKind::Semaphore { permits: n } = a.kind {
            let used: u64 = all.iter().filter(held).filter(|w| w.lock == a.lock).map(permits).sum();
            if used > u64::from(n) {
                found.push(format!("semaphore {} gives {used} of {n} permits", a.lock));
            }
        }
    }
    for e in all.iter().filter(|w| !held(w) && !w.held_back) {
        let before = |w: &&Wait<'_>| held(w) || w.order < e.order;
        let blocker = all.iter().filter(before).any(|f| conflict(e, f));
        let over = match e.kind {
            QueueKind::Semaphore { permits: n } => {
                let used: u64 =
                    all.iter().filter(before).filter(|f| f.lock == e.lock).map(permits).sum();
                used + permits(e) > u64::from(n)
            }
            _ => false,
        };
        if !blocker && !over {
            found.push(format!(
                "{} waits, and nothing it may not pass holds or waits before it",
                e.waiter.path
            ));
        }
    }
    found
}
