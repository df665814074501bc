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
//!
//! Reentrancy (issue 15): an acquire that names an owner (a thread, a task) makes the
//! session's place in the lock that owner's. When the same session and owner acquire a
//! lock they hold, the hold counts one more acquire, and the same hold (token) is the
//! answer: no new wait, no deadlock check, no new grant. A release takes one count away,
//! and the hold ends with the last ([`crate::recipe::leave`]); a revoke, or the end of the
//! session, ends it whatever its count. A session's place in a lock is one hold: an
//! acquire by another owner of the same session, or with an owner where the place has
//! none (or none where it has one), is refused ([`CoreError::OtherOwner`]).

use crate::command::AcquireOptions;
use crate::deadlock;
use crate::error::CoreError;
use crate::ids::SessionId;
use crate::namespace::Mutation;
use crate::queue::{LockKind, MAX_PRIORITY, Scope, WaitMode};
use crate::queue_data::{self, QueueConfig, WaiterInfo};
use crate::recipe::{self, Joined, WaiterView};

/// The longest lock-delay, in ms.
pub const MAX_LOCK_DELAY_MS: u64 = 60_000;

/// The longest owner of a reentrant acquire, in bytes.
pub const MAX_OWNER_BYTES: usize = 128;

/// The most acquires one reentrant hold counts; one more is refused
/// ([`CoreError::TooManyHolds`]).
pub const MAX_HOLDS: u32 = 10_000;

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
    if let Some(joined) = reenter(m, session, lock, kind, mode, options.owner.as_deref())? {
        return Ok(joined);
    }
    let config = QueueConfig { kind, delay_ms, blocked_until_ms: 0 };
    // Acquiring again returns the same place: no new wait, nothing to check.
    let again = m.tree().ephemerals_of(session).any(|p| recipe::queue_of_waiter(p) == Some(lock));
    let request = WaiterInfo {
        scope: options.scope,
        priority: options.priority,
        owner: options.owner.clone(),
        ..WaiterInfo::new(mode)
    };
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
    if let Some(owner) = &options.owner {
        check_owner(owner).or_else(refuse)?;
    }
    Ok(())
}

/// Checks the owner of a reentrant acquire: one word of at most [`MAX_OWNER_BYTES`], as
/// the waiter's header line keeps it (`owner=O`). Returns why not.
pub(crate) fn check_owner(owner: &str) -> Result<(), String> {
    if owner.is_empty() {
        return Err("an owner cannot be empty; name one (a thread, a task), or send none for a lock that is not reentrant".to_owned());
    }
    if owner.len() > MAX_OWNER_BYTES {
        return Err(format!(
            "an owner of {} bytes is longer than the limit of {MAX_OWNER_BYTES}; use a shorter name",
            owner.len()
        ));
    }
    if let Some(c) = owner.chars().find(|c| c.is_whitespace() || c.is_control() || *c == '=') {
        return Err(format!(
            "the owner {owner:?} holds {c:?}; an owner cannot hold whitespace, control characters or '='"
        ));
    }
    Ok(())
}

/// A reentrant acquire (or an acquire of a session with a reentrant place): the session's
/// place in the lock at `lock` again, one count more if it holds; `None` when the join
/// decides (no such lock, or no place of the session in it, or neither names an owner).
/// An owner that is not the place's, or a mode the place does not cover, is refused.
fn reenter(
    m: &mut Mutation<'_>,
    session: SessionId,
    lock: &str,
    kind: LockKind,
    mode: WaitMode,
    owner: Option<&str>,
) -> Result<Option<Joined>, CoreError> {
    // Another kind of queue, or something else at the path: the join says what is wrong.
    if !matches!(recipe::existing(m.tree(), lock, kind), Ok(Some(c)) if c.kind == kind) {
        return Ok(None);
    }
    let Some((_, waiters)) = recipe::waiters(m.tree(), lock) else { return Ok(None) };
    let Some((position, w)) = waiters.into_iter().enumerate().find(|(_, w)| w.session == session)
    else {
        return Ok(None);
    };
    if w.info.owner.as_deref() != owner {
        return Err(CoreError::OtherOwner {
            path: lock.to_owned(),
            session,
            granted: w.info.token.is_some(),
            held: w.info.owner.clone(),
            asked: owner.map(str::to_owned),
        });
    }
    let Some(owner) = owner else { return Ok(None) };
    if !covers(w.info.mode, mode) {
        return Err(CoreError::InvalidLockRequest {
            reason: format!(
                "owner {owner:?} of session {session} {} the lock {lock:?} {}, and a reentrant acquire may ask only for what its place gives, not {}: release every count of it, then acquire anew",
                if w.info.token.is_some() { "holds" } else { "waits for" },
                describe(w.info.mode),
                describe(mode)
            ),
        });
    }
    let Some(token) = w.info.token else {
        // Not granted yet: a retry of the waiting call, counted once.
        return Ok(Some(Joined { waiter: w.path, token: None, position: position as u64 }));
    };
    count_one_more(m, lock, session, owner, &w)?;
    Ok(Some(Joined { waiter: w.path, token: Some(token), position: position as u64 }))
}

/// Adds one acquire to the count of the hold `w`, up to [`MAX_HOLDS`].
fn count_one_more(
    m: &mut Mutation<'_>,
    lock: &str,
    session: SessionId,
    owner: &str,
    w: &WaiterView,
) -> Result<(), CoreError> {
    if w.info.holds >= MAX_HOLDS {
        return Err(CoreError::TooManyHolds {
            path: lock.to_owned(),
            session,
            owner: owner.to_owned(),
            max: MAX_HOLDS,
        });
    }
    let info = WaiterInfo { holds: w.info.holds + 1, ..w.info.clone() };
    let value = m.tree().get(&w.path).map(|n| queue_data::value_of(&n.data)).unwrap_or_default();
    m.set_internal(&w.path, info.with_value(None, &value));
    Ok(())
}

/// Whether a place that asks for `held` gives what an acquire asking for `asked` needs:
/// the same, shared under exclusive, or fewer permits.
fn covers(held: WaitMode, asked: WaitMode) -> bool {
    match (held, asked) {
        (WaitMode::Exclusive, WaitMode::Exclusive | WaitMode::Shared) => true,
        (WaitMode::Permits(h), WaitMode::Permits(a)) => a <= h,
        (h, a) => h == a,
    }
}

/// A mode for people.
fn describe(mode: WaitMode) -> String {
    match mode {
        WaitMode::Exclusive => "exclusively".to_owned(),
        WaitMode::Shared => "shared".to_owned(),
        WaitMode::Permits(n) => format!("with {n} permits"),
        WaitMode::Member => "as a member".to_owned(),
    }
}

#[cfg(test)]
#[path = "lock_test.rs"]
mod tests;
