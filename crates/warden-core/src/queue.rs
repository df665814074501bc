//! The rule that decides who holds, for every waiting recipe (DESIGN §5).
//!
//! All recipes share one waiter queue, in arrival order (the waiters' sequence numbers),
//! and differ only in a small rule over it. A new recipe is another arm here, not a new
//! mechanism:
//!
//! - **mutex**: the first waiter holds;
//! - **read-write** (Curator's rules): a writer holds when it is first; a reader holds when
//!   no writer is ahead of it, so readers share until a writer arrives, and readers that
//!   come after a waiting writer queue behind it (writers do not starve);
//! - **semaphore** of N permits: waiters hold in order while the permits they ask for fit,
//!   and nobody overtakes: a large request at the head makes smaller ones behind it wait;
//! - **election**: the first candidate leads (a mutex whose holder is the leader);
//! - **barrier** (set): nobody passes while it is set; removing it lets every waiter
//!   through at once (the removal grants them, it is not this rule);
//! - **double barrier** of N: nobody holds until N members are in, then all of them do,
//!   and from then on, while any member is still in, a member entering holds at once.
//!
//! In every rule the holders are a prefix of the queue. New waiters join at the end and
//! leaving never adds a constraint, so a waiter that holds keeps holding until it leaves:
//! a grant is never taken back by the queue, only by its holder leaving (release, cancel,
//! or the end of its session).
//!
//! This module is the rule only; [`crate::recipe`] wires it to waiter nodes, grants,
//! tokens and lock-delay, once for every recipe.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// What kind of queue a path is: which recipe, and its rule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueKind {
    /// One holder at a time.
    Mutex,
    /// Many readers or one writer.
    ReadWrite,
    /// Up to `permits` permits held at once.
    Semaphore {
        /// The number of permits.
        permits: u32,
    },
    /// An election: the first candidate leads.
    Election,
    /// A barrier (set while the node exists): nobody passes.
    Barrier,
    /// A double barrier of `count` members.
    DoubleBarrier {
        /// How many members must enter before any passes.
        count: u32,
    },
}

impl std::fmt::Display for QueueKind {
    /// For people: "mutex", "read-write lock", "semaphore of 3 permits", "election",
    /// "barrier", "double barrier of 8 members".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueKind::Mutex => f.write_str("mutex"),
            QueueKind::ReadWrite => f.write_str("read-write lock"),
            QueueKind::Semaphore { permits } => write!(f, "semaphore of {permits} permits"),
            QueueKind::Election => f.write_str("election"),
            QueueKind::Barrier => f.write_str("barrier"),
            QueueKind::DoubleBarrier { count } => write!(f, "double barrier of {count} members"),
        }
    }
}

/// The kinds of queue a lock may be: [`QueueKind::Mutex`], [`QueueKind::ReadWrite`] and
/// [`QueueKind::Semaphore`] (an acquire of any other kind is refused).
pub type LockKind = QueueKind;

impl QueueKind {
    /// Whether this is one of the lock kinds.
    pub fn is_lock(self) -> bool {
        matches!(self, QueueKind::Mutex | QueueKind::ReadWrite | QueueKind::Semaphore { .. })
    }

    /// The recipe's name, for people: "lock", "election", "barrier", "double barrier".
    pub fn recipe(self) -> &'static str {
        match self {
            QueueKind::Mutex | QueueKind::ReadWrite | QueueKind::Semaphore { .. } => "lock",
            QueueKind::Election => "election",
            QueueKind::Barrier => "barrier",
            QueueKind::DoubleBarrier { .. } => "double barrier",
        }
    }

    /// Whether the queue node stays when its last waiter leaves (a set barrier does; the
    /// others go, like containers, unless a lock-delay holds them).
    pub fn persists(self) -> bool {
        self == QueueKind::Barrier
    }

    /// Whether the queue keeps a copy of its first holder (the leader) in its own data, so
    /// that one key's watch follows every change of leader.
    pub fn records_head(self) -> bool {
        self == QueueKind::Election
    }
}

/// What a waiter asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitMode {
    /// The whole lock (a mutex holder, a writer).
    Exclusive,
    /// A share of it (a reader).
    Shared,
    /// Some permits of a semaphore.
    Permits(u32),
    /// A place among a barrier's members.
    Member,
}

/// What a lock hold covers (hierarchical locks, DESIGN §5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// The lock's own path only.
    #[default]
    Node,
    /// The lock's path and every lock below it: it conflicts with locks held on any
    /// descendant and with subtree locks on any ancestor, by shared/exclusive
    /// compatibility.
    Subtree,
}

/// The highest priority an acquire may ask for; 0 is the default and the lowest.
pub const MAX_PRIORITY: u32 = 10;

/// Checks that `mode` makes sense for a lock of `kind`.
pub fn validate(kind: LockKind, mode: WaitMode) -> Result<(), CoreError> {
    let reason = match (kind, mode) {
        (LockKind::Mutex, WaitMode::Exclusive) => return Ok(()),
        (LockKind::ReadWrite, WaitMode::Exclusive | WaitMode::Shared) => return Ok(()),
        (LockKind::Semaphore { permits }, WaitMode::Permits(n)) if n == 0 || n > permits => {
            format!("asks for {n} permits of a semaphore of {permits}; ask for 1 to {permits}")
        }
        (LockKind::Semaphore { .. }, WaitMode::Permits(_)) => return Ok(()),
        (QueueKind::Election, WaitMode::Exclusive) => return Ok(()),
        (QueueKind::DoubleBarrier { count: 0 }, _) => {
            "a double barrier needs a count of at least 1".to_owned()
        }
        (QueueKind::Barrier | QueueKind::DoubleBarrier { .. }, WaitMode::Member) => {
            return Ok(());
        }
        (kind, mode) => format!("a {mode:?} wait does not fit a {kind:?} {}", kind.recipe()),
    };
    Err(CoreError::InvalidLockRequest { reason })
}

/// How many of `queue`'s first waiters hold a queue of `kind` (they are always a prefix),
/// when the first `granted` of them already hold. Waiters whose mode does not fit the kind
/// count as exclusive.
pub fn holders(kind: QueueKind, queue: &[WaitMode], granted: usize) -> usize {
    match kind {
        QueueKind::Mutex | QueueKind::Election => usize::from(!queue.is_empty()),
        QueueKind::Barrier => 0,
        QueueKind::DoubleBarrier { count } => {
            let all_in = queue.len() >= count as usize;
            if granted > 0 || all_in { queue.len() } else { 0 }
        }
        LockKind::ReadWrite => match queue.first() {
            None => 0,
            Some(WaitMode::Shared) => queue.iter().take_while(|m| **m == WaitMode::Shared).count(),
            Some(_) => 1,
        },
        LockKind::Semaphore { permits } => {
            let mut used: u64 = 0;
            queue
                .iter()
                .take_while(|mode| {
                    let asked = match mode {
                        WaitMode::Permits(n) => u64::from(*n),
                        _ => u64::from(permits),
                    };
                    used += asked;
                    used <= u64::from(permits)
                })
                .count()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WaitMode::{Exclusive as X, Permits as P, Shared as S};

    #[test]
    fn mutex_the_first_holds() {
        assert_eq!(holders(LockKind::Mutex, &[], 0), 0);
        assert_eq!(holders(LockKind::Mutex, &[X, X, X], 0), 1);
    }

    #[test]
    fn readers_share_until_a_writer_is_ahead() {
        let rw = LockKind::ReadWrite;
        assert_eq!(holders(rw, &[S, S, S], 0), 3);
        assert_eq!(holders(rw, &[S, S, X, S], 0), 2, "the reader behind the writer waits");
        assert_eq!(holders(rw, &[X, S, S], 0), 1);
        assert_eq!(holders(rw, &[X, X], 0), 1);
    }

    #[test]
    fn semaphore_fills_in_order_without_overtaking() {
        let sem = LockKind::Semaphore { permits: 3 };
        assert_eq!(holders(sem, &[P(1), P(1), P(1), P(1)], 0), 3);
        assert_eq!(holders(sem, &[P(2), P(2), P(1)], 0), 1, "the small request does not overtake");
        assert_eq!(holders(sem, &[P(3)], 0), 1);
    }

    #[test]
    fn an_election_is_led_by_its_first_candidate() {
        assert_eq!(holders(QueueKind::Election, &[], 0), 0);
        assert_eq!(holders(QueueKind::Election, &[X, X], 0), 1);
        assert_eq!(holders(QueueKind::Election, &[X, X], 1), 1);
    }

    #[test]
    fn barriers_hold_nobody_while_set_and_everybody_once_all_are_in() {
        use WaitMode::Member as M;
        assert_eq!(holders(QueueKind::Barrier, &[M, M, M], 0), 0);
        let double = QueueKind::DoubleBarrier { count: 3 };
        assert_eq!(holders(double, &[M, M], 0), 0, "two of three are in");
        assert_eq!(holders(double, &[M, M, M], 0), 3, "all three are in");
        assert_eq!(holders(double, &[M, M, M, M], 3), 4, "a late member passes at once");
        assert_eq!(holders(double, &[M], 1), 1, "two left: the one still in keeps holding");
    }

    #[test]
    fn modes_are_checked_against_the_kind() {
        assert!(validate(QueueKind::Election, X).is_ok());
        assert!(validate(QueueKind::Election, S).is_err());
        assert!(validate(QueueKind::Barrier, WaitMode::Member).is_ok());
        assert!(validate(QueueKind::DoubleBarrier { count: 2 }, WaitMode::Member).is_ok());
        assert!(validate(QueueKind::DoubleBarrier { count: 0 }, WaitMode::Member).is_err());
        assert!(validate(QueueKind::Mutex, WaitMode::Member).is_err());
        assert!(validate(LockKind::Mutex, X).is_ok());
        assert!(validate(LockKind::Mutex, S).is_err());
        assert!(validate(LockKind::ReadWrite, S).is_ok());
        assert!(validate(LockKind::Semaphore { permits: 2 }, P(2)).is_ok());
        assert!(validate(LockKind::Semaphore { permits: 2 }, P(3)).is_err());
        assert!(validate(LockKind::Semaphore { permits: 2 }, P(0)).is_err());
        assert!(validate(LockKind::Semaphore { permits: 2 }, X).is_err());
    }
}
