//! The rule that decides who holds a lock, for every lock recipe (DESIGN §5).
//!
//! All recipes share one waiter queue, in arrival order (the waiters' sequence numbers),
//! and differ only in a small rule over it:
//!
//! - **mutex**: the first waiter holds;
//! - **read-write** (Curator's rules): a writer holds when it is first; a reader holds when
//!   no writer is ahead of it, so readers share until a writer arrives, and readers that
//!   come after a waiting writer queue behind it (writers do not starve);
//! - **semaphore** of N permits: waiters hold in order while the permits they ask for fit,
//!   and nobody overtakes: a large request at the head makes smaller ones behind it wait.
//!
//! In every rule the holders are a prefix of the queue. New waiters join at the end and
//! leaving never adds a constraint, so a waiter that holds keeps holding until it leaves:
//! a grant is never taken back by the queue, only by its holder leaving (release, cancel,
//! or the end of its session).
//!
//! This module is the rule only. Wiring it to commands, waiter nodes, fencing tokens and
//! lock-delay is the lock issue's next step.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// What kind of lock a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockKind {
    /// One holder at a time.
    Mutex,
    /// Many readers or one writer.
    ReadWrite,
    /// Up to `permits` permits held at once.
    Semaphore {
        /// The number of permits.
        permits: u32,
    },
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
}

/// Checks that `mode` makes sense for a lock of `kind`.
pub fn validate(kind: LockKind, mode: WaitMode) -> Result<(), CoreError> {
    let reason = match (kind, mode) {
        (LockKind::Mutex, WaitMode::Exclusive) => return Ok(()),
        (LockKind::ReadWrite, WaitMode::Exclusive | WaitMode::Shared) => return Ok(()),
        (LockKind::Semaphore { permits }, WaitMode::Permits(n)) if n == 0 || n > permits => {
            format!("asks for {n} permits of a semaphore of {permits}; ask for 1 to {permits}")
        }
        (LockKind::Semaphore { .. }, WaitMode::Permits(_)) => return Ok(()),
        (kind, mode) => format!("a {mode:?} wait does not fit a {kind:?} lock"),
    };
    Err(CoreError::InvalidLockRequest { reason })
}

/// How many of `queue`'s first waiters hold a lock of `kind` (they are always a prefix).
/// Waiters whose mode does not fit the kind count as exclusive.
pub fn holders(kind: LockKind, queue: &[WaitMode]) -> usize {
    match kind {
        LockKind::Mutex => usize::from(!queue.is_empty()),
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
        assert_eq!(holders(LockKind::Mutex, &[]), 0);
        assert_eq!(holders(LockKind::Mutex, &[X, X, X]), 1);
    }

    #[test]
    fn readers_share_until_a_writer_is_ahead() {
        let rw = LockKind::ReadWrite;
        assert_eq!(holders(rw, &[S, S, S]), 3);
        assert_eq!(holders(rw, &[S, S, X, S]), 2, "the reader behind the writer waits");
        assert_eq!(holders(rw, &[X, S, S]), 1);
        assert_eq!(holders(rw, &[X, X]), 1);
    }

    #[test]
    fn semaphore_fills_in_order_without_overtaking() {
        let sem = LockKind::Semaphore { permits: 3 };
        assert_eq!(holders(sem, &[P(1), P(1), P(1), P(1)]), 3);
        assert_eq!(holders(sem, &[P(2), P(2), P(1)]), 1, "the small request does not overtake");
        assert_eq!(holders(sem, &[P(3)]), 1);
    }

    #[test]
    fn modes_are_checked_against_the_kind() {
        assert!(validate(LockKind::Mutex, X).is_ok());
        assert!(validate(LockKind::Mutex, S).is_err());
        assert!(validate(LockKind::ReadWrite, S).is_ok());
        assert!(validate(LockKind::Semaphore { permits: 2 }, P(2)).is_ok());
        assert!(validate(LockKind::Semaphore { permits: 2 }, P(3)).is_err());
        assert!(validate(LockKind::Semaphore { permits: 2 }, P(0)).is_err());
        assert!(validate(LockKind::Semaphore { permits: 2 }, X).is_err());
    }
}
