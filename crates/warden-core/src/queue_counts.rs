//! How many holders and waiters the queues (locks, semaphores, elections, barriers) have
//! right now, by kind of queue: what a member's metrics report as gauges.
//!
//! Counted from the tree's index of ephemeral nodes (every waiter is an ephemeral node
//! `QUEUE/w-N` owned by its session), not by walking the namespace: one lookup per
//! ephemeral node and one per queue, however many persistent nodes there are. A member
//! counts at each scrape, under the state's read lock; 100,000 waiters take a few
//! milliseconds.

use std::collections::HashMap;

use crate::node::NodeKind;
use crate::queue::QueueKind;
use crate::queue_data::{QueueConfig, WaiterInfo};
use crate::recipe::queue_of_waiter;
use crate::state::State;

/// The kinds of queue counted, by the name the metrics give them, in this order.
pub const KINDS: [&str; 6] =
    ["mutex", "rwlock", "semaphore", "election", "barrier", "double_barrier"];

/// The name of a kind of queue in [`KINDS`] (parameters such as a semaphore's permits
/// left out, so that there are only ever six).
pub fn kind_name(kind: &QueueKind) -> &'static str {
    KINDS[kind_index(kind)]
}

fn kind_index(kind: &QueueKind) -> usize {
    match kind {
        QueueKind::Mutex => 0,
        QueueKind::ReadWrite => 1,
        QueueKind::Semaphore { .. } => 2,
        QueueKind::Election => 3,
        QueueKind::Barrier => 4,
        QueueKind::DoubleBarrier { .. } => 5,
    }
}

/// The holders and waiters of every queue of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindCount {
    /// The kind, one of [`KINDS`].
    pub kind: &'static str,
    /// Waiters granted: a lock's holders (a semaphore's count once per holder, whatever
    /// its permits), an election's leader, a barrier's members that passed.
    pub holders: u64,
    /// Waiters not granted yet.
    pub waiters: u64,
}

/// The holders and waiters of all queues, one entry per kind of [`KINDS`] in that order
/// (zeros included, so that the series a member reports do not come and go).
pub fn count(state: &State) -> Vec<KindCount> {
    let mut counts: Vec<KindCount> =
        KINDS.iter().map(|kind| KindCount { kind, holders: 0, waiters: 0 }).collect();
    let tree = state.tree();
    // The kind of each queue met, by its path (a queue's waiters are often many).
    let mut kinds: HashMap<&str, Option<usize>> = HashMap::new();
    for session in tree.ephemeral_owners() {
        for path in tree.ephemerals_of(session) {
            let Some(queue) = queue_of_waiter(path) else { continue };
            let kind = *kinds.entry(queue).or_insert_with(|| {
                let node = tree.get(queue).filter(|n| n.kind == NodeKind::Queue)?;
                QueueConfig::decode(&node.data).map(|config| kind_index(&config.kind))
            });
            let Some(kind) = kind else { continue };
            let Some(info) = tree.get(path).and_then(|n| WaiterInfo::decode(&n.data)) else {
                continue;
            };
            let count = &mut counts[kind];
            match info.token {
                Some(_) => count.holders += 1,
                None => count.waiters += 1,
            }
        }
    }
    counts
}

#[cfg(test)]
#[path = "queue_counts_test.rs"]
mod tests;
