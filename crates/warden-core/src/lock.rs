//! Locks on the namespace (DESIGN §5): mutexes, read-write locks and semaphores, with
//! fencing tokens and lock-delay.
//!
//! A lock is a queue of the recipe framework ([`crate::recipe`]) whose kind is one of the
//! lock kinds; this module holds only what is particular to locks: which kinds and modes an
//! acquire may ask for, and the longest lock-delay. Joining, leaving, granting, tokens and
//! the delay itself are the framework's.
//!
//! Lock-delay (Chubby): when a holder's session *expires* (not when it releases or closes),
//! the lock is blocked until the entry's time plus the lock's delay: nothing is granted and
//! the lock node stays even if empty.
//!
//! An acquire whose wait would close a cycle of sessions waiting for each other is refused
//! ([`crate::deadlock`]).

use crate::command::AcquireOptions;
use crate::deadlock;
use crate::error::CoreError;
use crate::ids::SessionId;
use crate::namespace::Mutation;
use crate::queue::{LockKind, MAX_PRIORITY, Scope, WaitMode};
use crate::queue_data::{QueueConfig, WaiterInfo};
use crate::recipe::{self, Joined};

/// The longest lock-delay, in ms.
pub const MAX_LOCK_DELAY_MS: u64 = 60_000;

/// Queues `session` on the lock at `lock` (creating it), or returns its existing place.
/// (A path under a resource kind is refused before, by the dispatch: only the kind's own
/// acquire locks its ids, through here.)
pub(crate) fn acquire(
    m: &mut Mutation<'_>,
    session: SessionId,
    lock: &str,
    kind: LockKind,
    mode: WaitMode,
    delay_ms: u64,
    options: &AcquireOptions,
) -> Result<Joined, CoreError> {
    if !kind.is_lock() {
        return Err(CoreError::InvalidLockRequest {
            reason: format!("{kind:?} is not a kind of lock; use the {} calls", kind.recipe()),
        });
    }
    if delay_ms > MAX_LOCK_DELAY_MS {
        return Err(CoreError::InvalidLockRequest {
            reason: format!(
                "a lock-delay of {delay_ms} ms is longer than the limit of {MAX_LOCK_DELAY_MS} ms"
            ),
        });
    }
    check_options(kind, options)?;
    let config = QueueConfig { kind, delay_ms, blocked_until_ms: 0 };
    // Acquiring again returns the same place: no new wait, nothing to check.
    let again = m.tree().ephemerals_of(session).any(|p| recipe::queue_of_waiter(p) == Some(lock));
    let request =
        WaiterInfo { scope: options.scope, priority: options.priority, ..WaiterInfo::new(mode) };
    let joined = recipe::join(m, session, lock, config, request, &[])?;
    if !again {
        deadlock::check(m.tree(), session, lock, &joined.waiter)?;
    }
    Ok(joined)
}

/// Checks an acquire's options against its kind.
fn check_options(kind: LockKind, options: &AcquireOptions) -> Result<(), CoreError> {
    let refuse = |reason: String| Err(CoreError::InvalidLockRequest { reason });
    if options.scope == Scope::Subtree && !matches!(kind, LockKind::Mutex | LockKind::ReadWrite) {
        return refuse(format!(
            "a {kind} cannot cover a subtree; only mutexes and read-write locks can"
        ));
    }
    if options.priority > MAX_PRIORITY {
        return refuse(format!(
            "priority {} is above the highest, {MAX_PRIORITY}; ask for 0 to {MAX_PRIORITY}",
            options.priority
        ));
    }
    if options.owner.is_some() {
        return refuse("reentrancy is not served yet".to_owned());
    }
    Ok(())
}
