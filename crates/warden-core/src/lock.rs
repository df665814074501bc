//! Locks on the namespace (DESIGN §5): acquire, release, grants with fencing tokens, and
//! lock-delay.
//!
//! A lock on `P` is a node of kind [`NodeKind::Lock`] at `P`, made by the first acquire
//! (missing ancestors are created as containers, as Curator's
//! `creatingParentContainersIfNeeded` does, so they go with the lock) and deleted, like a
//! container, when its last waiter leaves. Each
//! acquire adds an ephemeral sequential waiter `P/w-NNNNNNNNNN` owned by the session, so
//! the queue is the lock's children in order and a session that ends leaves every queue
//! it was in. The rule of [`crate::queue`] says which waiters hold; a waiter that comes to
//! hold gets the revision of the command that granted it as its fencing token, written in
//! its data (so watchers see the grant as an event). Tokens of one lock strictly increase.
//!
//! Both nodes keep their metadata as readable text in their data: the lock
//! `kind=mutex delay_ms=0 blocked_until_ms=0` (`permits=N` for a semaphore), a waiter
//! `mode=exclusive` then ` token=R` once granted. Clients cannot set or create under them.
//!
//! Lock-delay (Chubby): when a holder's session *expires* (not when it releases or closes),
//! the lock is blocked until the entry's time plus the lock's delay: nothing is granted and
//! the lock node stays even if empty. The leader proposes [`Command::WakeLocks`] when a
//! delay ends.
//!
//! [`Command::WakeLocks`]: crate::Command::WakeLocks

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::command::HoldRef;
use crate::error::CoreError;
use crate::namespace::Mutation;
use crate::node::{CreateMode, Node, NodeKind};
use crate::path;
use crate::queue::{self, LockKind, WaitMode};
use crate::response::Output;
use crate::session::SessionId;
use crate::tree::Tree;

/// The longest lock-delay, in ms.
pub const MAX_LOCK_DELAY_MS: u64 = 60_000;

/// A lock's settings and state, as kept in the lock node's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    /// What kind of lock.
    pub kind: LockKind,
    /// Lock-delay after a holder's session expires, ms.
    pub delay_ms: u64,
    /// Nothing is granted before this time (leader clock, ms); 0 when not blocked.
    pub blocked_until_ms: u64,
}

impl LockConfig {
    /// The text kept in the lock node.
    pub fn encode(&self) -> Bytes {
        let kind = match self.kind {
            LockKind::Mutex => "kind=mutex".to_owned(),
            LockKind::ReadWrite => "kind=rwlock".to_owned(),
            LockKind::Semaphore { permits } => format!("kind=semaphore permits={permits}"),
        };
        Bytes::from(format!(
            "{kind} delay_ms={} blocked_until_ms={}",
            self.delay_ms, self.blocked_until_ms
        ))
    }

    /// Reads the text of a lock node.
    pub fn decode(data: &[u8]) -> Option<LockConfig> {
        let text = std::str::from_utf8(data).ok()?;
        let field =
            |name: &str| text.split(' ').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='));
        let kind = match field("kind")? {
            "mutex" => LockKind::Mutex,
            "rwlock" => LockKind::ReadWrite,
            "semaphore" => LockKind::Semaphore { permits: field("permits")?.parse().ok()? },
            _ => return None,
        };
        Some(LockConfig {
            kind,
            delay_ms: field("delay_ms")?.parse().ok()?,
            blocked_until_ms: field("blocked_until_ms")?.parse().ok()?,
        })
    }
}

/// A waiter's request and grant, as kept in the waiter node's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaiterInfo {
    /// What it asks for.
    pub mode: WaitMode,
    /// Its fencing token, once granted.
    pub token: Option<u64>,
}

impl WaiterInfo {
    /// The text kept in the waiter node.
    pub fn encode(&self) -> Bytes {
        let mode = match self.mode {
            WaitMode::Exclusive => "mode=exclusive".to_owned(),
            WaitMode::Shared => "mode=shared".to_owned(),
            WaitMode::Permits(n) => format!("mode=permits:{n}"),
        };
        match self.token {
            Some(token) => Bytes::from(format!("{mode} token={token}")),
            None => Bytes::from(mode),
        }
    }

    /// Reads the text of a waiter node.
    pub fn decode(data: &[u8]) -> Option<WaiterInfo> {
        let text = std::str::from_utf8(data).ok()?;
        let field =
            |name: &str| text.split(' ').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='));
        let mode = match field("mode")? {
            "exclusive" => WaitMode::Exclusive,
            "shared" => WaitMode::Shared,
            m => WaitMode::Permits(m.strip_prefix("permits:")?.parse().ok()?),
        };
        let token = match field("token") {
            Some(t) => Some(t.parse().ok()?),
            None => None,
        };
        Some(WaiterInfo { mode, token })
    }
}

/// The word a revoked waiter carries in its last value (`... token=R revoked` for a
/// holder): the change event of that value is how a leader learns to tell the holder's
/// session, and how a waiting acquire tells an operator's revoke from its own cancel.
const REVOKED: &str = "revoked";

/// What a waiter's name starts with; the server appends its 10-digit sequence number.
const WAITER_PREFIX: &str = "w-";

/// The lock that `path` would be a waiter of, going by its name alone (`LOCK/w-` and
/// digits): whether the parent is still a lock is for the caller to check.
pub fn lock_of_waiter(path: &str) -> Option<&str> {
    let digits = path::name(path).strip_prefix(WAITER_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    path::parent(path)
}

/// Whether a waiter's value marks it revoked (the last value a revoked waiter gets, just
/// before it is deleted).
pub fn is_revoked(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok_and(|t| t.split(' ').any(|w| w == REVOKED))
}

/// One waiter of a lock, in queue order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiterView {
    /// The waiter node's path.
    pub path: String,
    /// Its session.
    pub session: SessionId,
    /// What it asks for and its token.
    pub info: WaiterInfo,
    /// When it started waiting (leader clock, ms).
    pub since_ms: u64,
}

/// The waiters of the lock at `lock`, in order; `None` if there is no lock there.
pub fn waiters(tree: &Tree, lock: &str) -> Option<(LockConfig, Vec<WaiterView>)> {
    let node = tree.get(lock).filter(|n| n.kind == NodeKind::Lock)?;
    let config = LockConfig::decode(&node.data)?;
    let waiters = tree
        .children(lock)
        .map(|(p, n)| WaiterView {
            path: p.to_owned(),
            session: n.stat.ephemeral_owner,
            // A waiter always has readable data: only the lock recipe writes it.
            info: WaiterInfo::decode(&n.data)
                .unwrap_or(WaiterInfo { mode: WaitMode::Exclusive, token: None }),
            since_ms: n.stat.ctime_ms,
        })
        .collect();
    Some((config, waiters))
}

/// Whether `token` is the token of a current holder of the lock at `lock` (Chubby's
/// sequencer check).
pub fn check_sequencer(tree: &Tree, lock: &str, token: u64) -> bool {
    waiters(tree, lock).is_some_and(|(_, ws)| ws.iter().any(|w| w.info.token == Some(token)))
}

/// Whether `session` still holds the lock at `lock` with the hold that got `token`: a
/// client asks this for every hold it believes it has, and learns of the ones it lost
/// (revoked, or gone with a session) from the answer.
pub fn still_holds(tree: &Tree, lock: &str, session: SessionId, token: u64) -> bool {
    waiters(tree, lock).is_some_and(|(_, ws)| {
        ws.iter().any(|w| w.session == session && w.info.token == Some(token))
    })
}

/// The earliest end of a lock-delay still pending, if any (leader clock, ms). Reads only
/// the tree's index of blocked locks: the leader calls it about twice a second.
pub fn next_wake(tree: &Tree) -> Option<u64> {
    tree.blocked_locks().filter_map(|p| blocked_until(tree.get(p)?)).min()
}

/// When the lock-delay of a lock node ends; `None` for any other node or a lock that is
/// not blocked.
pub(crate) fn blocked_until(node: &Node) -> Option<u64> {
    if node.kind != NodeKind::Lock {
        return None;
    }
    let until = LockConfig::decode(&node.data)?.blocked_until_ms;
    (until != 0).then_some(until)
}

/// Whether `path` is managed by a lock (a lock node or one of its waiters): clients may
/// not set it or create under it.
pub(crate) fn is_managed(tree: &Tree, path: &str) -> bool {
    let is_lock = |p: &str| tree.get(p).is_some_and(|n| n.kind == NodeKind::Lock);
    is_lock(path) || path::parent(path).is_some_and(is_lock)
}

/// What an acquire answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acquired {
    pub(crate) waiter: String,
    pub(crate) token: Option<u64>,
    pub(crate) position: u64,
}

/// Queues `session` on the lock at `lock` (creating it), or returns its existing place.
pub(crate) fn acquire(
    m: &mut Mutation<'_>,
    session: SessionId,
    lock: &str,
    kind: LockKind,
    mode: WaitMode,
    delay_ms: u64,
) -> Result<Acquired, CoreError> {
    queue::validate(kind, mode)?;
    if delay_ms > MAX_LOCK_DELAY_MS {
        return Err(CoreError::InvalidLockRequest {
            reason: format!(
                "a lock-delay of {delay_ms} ms is longer than the limit of {MAX_LOCK_DELAY_MS} ms"
            ),
        });
    }
    path::validate(lock, m.limits())?;
    let max_depth = m.limits().max_path_depth;
    if path::depth(lock) as usize >= max_depth {
        return Err(CoreError::InvalidLockRequest {
            reason: format!(
                "{lock:?} is at the deepest level paths may have (limits.max_path_depth = {max_depth}), and a lock's waiters are one level below it; lock a shorter path"
            ),
        });
    }
    match m.tree().get(lock) {
        None => {
            create_ancestors(m, lock)?;
            let config = LockConfig { kind, delay_ms, blocked_until_ms: 0 };
            m.create_internal(lock, config.encode(), NodeKind::Lock, 0, false)?;
        }
        Some(node) if node.kind != NodeKind::Lock => {
            return Err(CoreError::InvalidLockRequest {
                reason: format!(
                    "{lock:?} is a plain node, not a lock; lock a path that does not exist yet"
                ),
            });
        }
        Some(_) => {}
    }
    let Some((config, existing)) = waiters(m.tree(), lock) else {
        return Err(CoreError::InvalidLockRequest {
            reason: format!("{lock:?} holds unreadable lock data"),
        });
    };
    if config.kind != kind {
        return Err(CoreError::InvalidLockRequest {
            reason: format!("{lock:?} is a {:?} lock, not a {kind:?}", config.kind),
        });
    }
    if let Some((i, w)) = existing.iter().enumerate().find(|(_, w)| w.session == session) {
        // Acquiring again returns the same hold or wait.
        return Ok(Acquired { waiter: w.path.clone(), token: w.info.token, position: i as u64 });
    }
    let max = m.limits().max_waiters_per_lock;
    if existing.len() >= max {
        return Err(CoreError::TooManyWaiters {
            path: lock.to_owned(),
            waiters: existing.len(),
            max,
        });
    }
    let prefix = format!("{}{WAITER_PREFIX}", path::child_prefix(lock));
    let waiter = m.create_internal(
        &prefix,
        WaiterInfo { mode, token: None }.encode(),
        NodeKind::Ephemeral,
        session,
        true,
    )?;
    grant(m, lock);
    let (_, after) = waiters(m.tree(), lock).unwrap_or((config, Vec::new()));
    let position = after.iter().position(|w| w.path == waiter).unwrap_or(after.len()) as u64;
    let token = after.iter().find(|w| w.path == waiter).and_then(|w| w.info.token);
    Ok(Acquired { waiter, token, position })
}

/// Creates the missing ancestors of `lock` as containers, top down: they go once the lock
/// (their last child) does. An ancestor that is a lock is refused (`LockManaged`); one that
/// is ephemeral is refused by the create (`EphemeralParent`).
fn create_ancestors(m: &mut Mutation<'_>, lock: &str) -> Result<(), CoreError> {
    let mut missing = Vec::new();
    let mut current = path::parent(lock);
    while let Some(p) = current {
        match m.tree().get(p) {
            Some(n) if n.kind == NodeKind::Lock => {
                return Err(CoreError::LockManaged { path: p.to_owned() });
            }
            Some(_) => break,
            None => missing.push(p.to_owned()),
        }
        current = path::parent(p);
    }
    for p in missing.iter().rev() {
        m.create_internal(p, Bytes::new(), NodeKind::Container, 0, false)?;
    }
    Ok(())
}

/// Why a session leaves a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaving {
    /// It let go (a release, a cancelled or timed-out wait).
    Released,
    /// An operator took it out: a holder did not let go, so the lock-delay applies.
    Revoked,
}

/// Takes `session` out of the lock at `lock`: the place `hold` names. Answers
/// [`Output::LockReleased`], or [`Output::LockQueued`] with the token for a wait that was
/// granted before its cancel (which then keeps it).
pub(crate) fn release(
    m: &mut Mutation<'_>,
    session: SessionId,
    lock: &str,
    hold: &HoldRef,
    leaving: Leaving,
) -> Result<Output, CoreError> {
    path::validate(lock, m.limits())?;
    let mine = waiters(m.tree(), lock)
        .map(|(_, ws)| ws.into_iter().enumerate().find(|(_, w)| w.session == session));
    let Some(Some((position, w))) = mine else {
        return Err(match hold {
            HoldRef::Token(token) => CoreError::HoldEnded { path: lock.to_owned(), token: *token },
            _ => CoreError::NotHeld { path: lock.to_owned(), session },
        });
    };
    match hold {
        HoldRef::Any => {}
        HoldRef::Token(token) if w.info.token != Some(*token) => {
            return Err(CoreError::HoldEnded { path: lock.to_owned(), token: *token });
        }
        HoldRef::Token(_) => {}
        HoldRef::Wait(waiter) if *waiter != w.path => {
            return Err(CoreError::NotHeld { path: lock.to_owned(), session });
        }
        HoldRef::Wait(_) if w.info.token.is_some() => {
            // Granted before the cancel arrived: the caller learns it holds after all.
            return Ok(Output::LockQueued {
                waiter: w.path,
                token: w.info.token,
                position: position as u64,
            });
        }
        HoldRef::Wait(_) => {}
    }
    let held = w.info.token.is_some();
    if leaving == Leaving::Revoked {
        if held {
            block(m, lock);
        }
        let mut marked = w.info.encode().to_vec();
        marked.extend_from_slice(format!(" {REVOKED}").as_bytes());
        m.set_internal(&w.path, Bytes::from(marked));
    }
    m.delete(&w.path, None, false)?;
    Ok(Output::LockReleased { held })
}

/// Grants the lock at `lock` to every waiter the queue rule says holds, unless the lock is
/// blocked by a lock-delay.
pub(crate) fn grant(m: &mut Mutation<'_>, lock: &str) {
    let Some((config, ws)) = waiters(m.tree(), lock) else { return };
    if config.blocked_until_ms > m.time_ms() {
        return;
    }
    let modes: Vec<WaitMode> = ws.iter().map(|w| w.info.mode).collect();
    let holders = queue::holders(config.kind, &modes);
    let revision = m.revision();
    for w in ws.iter().take(holders).filter(|w| w.info.token.is_none()) {
        let granted = WaiterInfo { mode: w.info.mode, token: Some(revision) };
        m.set_internal(&w.path, granted.encode());
    }
}

/// The locks among `paths` and their parents.
pub(crate) fn locks_touched<'p>(
    tree: &Tree,
    paths: impl Iterator<Item = &'p str>,
) -> BTreeSet<String> {
    let mut locks = BTreeSet::new();
    for p in paths {
        for candidate in std::iter::once(p).chain(path::parent(p)) {
            if tree.get(candidate).is_some_and(|n| n.kind == NodeKind::Lock) {
                locks.insert(candidate.to_owned());
            }
        }
    }
    locks
}

/// Before `session`'s ephemeral nodes go because it expired: blocks every lock it held
/// whose delay is set.
pub(crate) fn block_on_holder_failure(m: &mut Mutation<'_>, session: SessionId) {
    let held: Vec<String> = m
        .tree()
        .ephemerals_of(session)
        .filter_map(|p| {
            let lock = path::parent(p)?;
            let info = WaiterInfo::decode(&m.tree().get(p)?.data)?;
            info.token.map(|_| lock.to_owned())
        })
        .collect();
    for lock in held {
        block(m, &lock);
    }
}

/// Starts the lock-delay of `lock` (if it has one) because a holder failed.
fn block(m: &mut Mutation<'_>, lock: &str) {
    let Some(config) = m.tree().get(lock).and_then(|n| LockConfig::decode(&n.data)) else {
        return;
    };
    if config.delay_ms == 0 {
        return;
    }
    let until = m.time_ms() + config.delay_ms;
    let blocked = LockConfig { blocked_until_ms: until.max(config.blocked_until_ms), ..config };
    m.set_internal(lock, blocked.encode());
}

/// Ends the lock-delays that are over: grants those locks, and deletes the empty ones.
/// Returns how many locks were woken.
pub(crate) fn wake(m: &mut Mutation<'_>) -> u64 {
    let now = m.time_ms();
    let tree = m.tree();
    let due: Vec<(String, LockConfig, u64)> = tree
        .blocked_locks()
        .filter_map(|p| {
            let n = tree.get(p)?;
            Some((p.to_owned(), LockConfig::decode(&n.data)?, n.stat.num_children))
        })
        .filter(|(_, c, _)| c.blocked_until_ms != 0 && c.blocked_until_ms <= now)
        .collect();
    for (lock, config, children) in &due {
        if *children == 0 {
            m.delete(lock, None, false).ok();
        } else {
            m.set_internal(lock, LockConfig { blocked_until_ms: 0, ..*config }.encode());
            grant(m, lock);
        }
    }
    due.len() as u64
}

/// The mode a client create may not use.
pub(crate) fn refuse_lock_kind(mode: &CreateMode) -> Result<(), CoreError> {
    if mode.kind == NodeKind::Lock {
        return Err(CoreError::InvalidCreateMode {
            reason: "lock nodes are made by acquiring a lock, not by create".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_waiter_names_its_lock_by_its_name() {
        assert_eq!(super::lock_of_waiter("/locks/a/w-0000000007"), Some("/locks/a"));
        assert_eq!(super::lock_of_waiter("/w-1"), Some("/"));
        assert_eq!(super::lock_of_waiter("/locks/a/w-"), None);
        assert_eq!(super::lock_of_waiter("/locks/a/w-12x"), None);
        assert_eq!(super::lock_of_waiter("/locks/a/x-0000000001"), None);
    }
    use super::*;

    #[test]
    fn metadata_round_trips_as_text() {
        for kind in [LockKind::Mutex, LockKind::ReadWrite, LockKind::Semaphore { permits: 3 }] {
            let config = LockConfig { kind, delay_ms: 5, blocked_until_ms: 9 };
            assert_eq!(LockConfig::decode(&config.encode()), Some(config));
        }
        for mode in [WaitMode::Exclusive, WaitMode::Shared, WaitMode::Permits(2)] {
            for token in [None, Some(42)] {
                let info = WaiterInfo { mode, token };
                assert_eq!(WaiterInfo::decode(&info.encode()), Some(info));
            }
        }
        assert_eq!(
            &LockConfig { kind: LockKind::Mutex, delay_ms: 0, blocked_until_ms: 0 }.encode()[..],
            b"kind=mutex delay_ms=0 blocked_until_ms=0"
        );
        assert_eq!(LockConfig::decode(b"kind=bogus delay_ms=0 blocked_until_ms=0"), None);
        assert_eq!(WaiterInfo::decode(b"\xff"), None);
    }
}
