//! The waiting-recipe framework: what locks, semaphores, elections and barriers share,
//! written once (DESIGN §5).
//!
//! A recipe at `P` is a queue node ([`NodeKind::Queue`]) at `P`, made by the first join
//! (missing ancestors are created as containers, as Curator's
//! `creatingParentContainersIfNeeded` does, so they go with it) and deleted, like a
//! container, when its last waiter leaves, unless its kind keeps it (a set barrier) or a
//! lock-delay holds it. Each join adds an ephemeral sequential waiter `P/w-NNNNNNNNNN`
//! owned by the session, so the queue is the node's children in order and a session that
//! ends leaves every queue it was in. The rule of [`crate::queue`] says which waiters hold;
//! a waiter that comes to hold gets the revision of the command that granted it as its
//! token, written in its data (so watchers, and the server waiting for a grant, see the
//! grant as an event). Tokens of one queue strictly increase, so they fence.
//!
//! What each recipe adds lives in its own module ([`crate::lock`], [`crate::election`],
//! [`crate::barrier`]): which kinds and modes it accepts, and its own commands. What the
//! data of the nodes holds is [`crate::queue_data`].
//!
//! Lock-delay (Chubby): when a holder's session *expires* (not when it leaves or closes),
//! or an operator revokes a holder, the queue is blocked until the entry's time plus its
//! delay: nothing is granted and the node stays even if empty. The leader proposes
//! [`Command::WakeLocks`](crate::Command::WakeLocks) when a delay ends.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::command::HoldRef;
use crate::error::CoreError;
use crate::event::{Event, EventKind};
use crate::ids::SessionId;
use crate::lock_family;
use crate::namespace::Mutation;
use crate::node::NodeKind;
use crate::path;
use crate::queue::{self, QueueKind, WaitMode};
use crate::queue_data::{self, Head, Mark, QueueConfig, ResourceState, WaiterInfo};
use crate::response::Output;
use crate::tree::Tree;

/// What a waiter's name starts with; the server appends its 10-digit sequence number.
const WAITER_PREFIX: &str = "w-";

/// The queue that `path` would be a waiter of, going by its name alone (`QUEUE/w-` and
/// digits): whether the parent is still a queue is for the caller to check.
pub fn queue_of_waiter(path: &str) -> Option<&str> {
    if !is_waiter_name(path::name(path)) {
        return None;
    }
    path::parent(path)
}

/// Whether `name` is a waiter's name: `w-` and digits.
fn is_waiter_name(name: &str) -> bool {
    name.strip_prefix(WAITER_PREFIX)
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// One waiter of a queue, in queue order.
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
    /// The revision of the command that queued it.
    pub joined_revision: u64,
}

/// The queue at `path`: its settings and waiters in order; `None` if there is no queue.
pub fn waiters(tree: &Tree, path: &str) -> Option<(QueueConfig, Vec<WaiterView>)> {
    let node = tree.get(path).filter(|n| n.kind == NodeKind::Queue)?;
    let config = QueueConfig::decode(&node.data)?;
    let waiters = tree
        .children(path)
        .filter(|(p, n)| n.kind == NodeKind::Ephemeral && queue_of_waiter(p).is_some())
        .map(|(p, n)| WaiterView {
            path: p.to_owned(),
            session: n.stat.ephemeral_owner,
            // A waiter always has readable data: only the recipes write it.
            info: WaiterInfo::decode(&n.data)
                .unwrap_or_else(|| WaiterInfo::new(WaitMode::Exclusive)),
            since_ms: n.stat.ctime_ms,
            joined_revision: n.stat.create_revision,
        })
        .collect();
    Some((config, waiters))
}

/// Whether `token` is the token of a current holder of the queue at `path` (Chubby's
/// sequencer check): a lock's holder, an election's leader.
pub fn check_sequencer(tree: &Tree, path: &str, token: u64) -> bool {
    waiters(tree, path).is_some_and(|(_, ws)| ws.iter().any(|w| w.info.token == Some(token)))
}

/// Whether `session` still holds the queue at `path` with the hold that got `token`: a
/// client asks this for every hold it believes it has (locks, leaderships), and learns of
/// the ones it lost from the answer.
pub fn still_holds(tree: &Tree, path: &str, session: SessionId, token: u64) -> bool {
    waiters(tree, path).is_some_and(|(_, ws)| {
        ws.iter().any(|w| w.session == session && w.info.token == Some(token))
    })
}

/// The hold an event takes from its session without the session letting go (a revoke, a
/// resign): the queue, the token and why, from the marked last value of a waiter. The
/// server pushes it on the session's stream.
pub fn lost_hold(event: &Event) -> Option<(&str, u64, Mark)> {
    if event.kind != EventKind::Data {
        return None;
    }
    let data = event.data.as_deref()?;
    let mark = queue_data::mark_of(data)?;
    let token = WaiterInfo::decode(data)?.token?;
    Some((path::parent(&event.path)?, token, mark))
}

/// The earliest end of a lock-delay still pending, if any (leader clock, ms). Reads only
/// the tree's index of blocked queues: the leader calls it about twice a second.
pub fn next_wake(tree: &Tree) -> Option<u64> {
    tree.blocked_queues().filter_map(|p| queue_data::blocked_until(tree.get(p)?)).min()
}

/// Whether the queue at `queue` is an id's lock in a version of a resource kind that is
/// not (yet) its current one: it grants nothing.
pub(crate) fn gated(tree: &Tree, queue: &str) -> bool {
    let Some(version_path) = path::parent(queue) else { return false };
    let Some(kind) = path::parent(version_path) else { return false };
    tree.get(kind)
        .filter(|n| n.kind == NodeKind::Resource)
        .and_then(|n| ResourceState::decode(&n.data))
        .is_some_and(|s| s.version != path::name(version_path))
}

/// What a join answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Joined {
    pub(crate) waiter: String,
    pub(crate) token: Option<u64>,
    pub(crate) position: u64,
}

impl Joined {
    /// The answer to the client.
    pub(crate) fn output(self) -> Output {
        Output::LockQueued { waiter: self.waiter, token: self.token, position: self.position }
    }
}

/// The queue at `path` if it is one of `kind`'s recipe; a clear error otherwise. `None`
/// when there is nothing at `path`.
pub(crate) fn existing(
    tree: &Tree,
    path: &str,
    kind: QueueKind,
) -> Result<Option<QueueConfig>, CoreError> {
    let Some(node) = tree.get(path) else { return Ok(None) };
    if node.kind == NodeKind::Container && kind.is_lock() && only_locks_below(tree, path) {
        // A path that only held locks below it becomes a lock itself (hierarchical locks).
        return Ok(None);
    }
    if node.kind != NodeKind::Queue {
        return Err(CoreError::WrongRecipe {
            path: path.to_owned(),
            is: "a plain node".to_owned(),
            asked: kind.recipe().to_owned(),
        });
    }
    let config = QueueConfig::decode(&node.data).ok_or_else(|| CoreError::InvalidLockRequest {
        reason: format!("{path:?} holds unreadable {} data", kind.recipe()),
    })?;
    if config.kind.recipe() != kind.recipe() {
        return Err(CoreError::WrongRecipe {
            path: path.to_owned(),
            is: format!("a {}", config.kind.recipe()),
            asked: kind.recipe().to_owned(),
        });
    }
    Ok(Some(config))
}

/// Whether everything below `path` is a lock, a lock's waiter, or a container between
/// them: nodes only the recipes made.
fn only_locks_below(tree: &Tree, path: &str) -> bool {
    tree.descendants(path).iter().all(|p| match tree.get(p).map(|n| n.kind) {
        Some(NodeKind::Container) => true,
        Some(NodeKind::Queue) => {
            tree.get(p).and_then(|n| QueueConfig::decode(&n.data)).is_some_and(|c| c.kind.is_lock())
        }
        Some(NodeKind::Ephemeral) => queue_of_waiter(p)
            .is_some_and(|q| tree.get(q).is_some_and(|n| n.kind == NodeKind::Queue)),
        _ => false,
    })
}

/// Queues `session` on the queue at `path` (creating it with `config`), asking for `mode`,
/// with `value` kept in its waiter; or returns its existing place. A queue of another
/// kind is refused.
pub(crate) fn join(
    m: &mut Mutation<'_>,
    session: SessionId,
    path: &str,
    config: QueueConfig,
    request: WaiterInfo,
    value: &[u8],
) -> Result<Joined, CoreError> {
    queue::validate(config.kind, request.mode)?;
    path::validate(path, m.limits())?;
    let max_depth = m.limits().max_path_depth;
    if path::depth(path) as usize >= max_depth {
        return Err(CoreError::InvalidLockRequest {
            reason: format!(
                "{path:?} is at the deepest level paths may have (limits.max_path_depth = {max_depth}), and a {}'s waiters are one level below it; use a shorter path",
                config.kind.recipe()
            ),
        });
    }
    if value.len() > m.limits().max_value_bytes {
        return Err(CoreError::ValueTooLarge {
            path: path.to_owned(),
            len: value.len(),
            max: m.limits().max_value_bytes,
        });
    }
    match existing(m.tree(), path, config.kind)? {
        None => create_queue(m, path, config)?,
        Some(found) if found.kind != config.kind => {
            return Err(CoreError::InvalidLockRequest {
                reason: format!(
                    "{path:?} is a {}, not a {}; ask for what it is, or use another path",
                    found.kind, config.kind
                ),
            });
        }
        Some(_) => {}
    }
    let existing = waiters(m.tree(), path).map(|(_, ws)| ws).unwrap_or_default();
    if let Some((i, w)) = existing.iter().enumerate().find(|(_, w)| w.session == session) {
        // Joining again returns the same place.
        return Ok(Joined { waiter: w.path.clone(), token: w.info.token, position: i as u64 });
    }
    let max = m.limits().max_waiters_per_lock;
    if existing.len() >= max {
        return Err(CoreError::TooManyWaiters {
            path: path.to_owned(),
            waiters: existing.len(),
            max,
        });
    }
    let prefix = format!("{}{WAITER_PREFIX}", path::child_prefix(path));
    let data = WaiterInfo { token: None, holds: 1, ..request }.with_value(None, value);
    let waiter = m.create_internal(&prefix, data, NodeKind::Ephemeral, session, true)?;
    grant(m, path);
    let after = waiters(m.tree(), path).map(|(_, ws)| ws).unwrap_or_default();
    let position = after.iter().position(|w| w.path == waiter).unwrap_or(after.len()) as u64;
    let token = after.iter().find(|w| w.path == waiter).and_then(|w| w.info.token);
    Ok(Joined { waiter, token, position })
}

/// Creates the queue node at `path` with `config`, and its missing ancestors.
pub(crate) fn create_queue(
    m: &mut Mutation<'_>,
    path: &str,
    config: QueueConfig,
) -> Result<(), CoreError> {
    if let Some(segment) = path.split('/').find(|s| is_waiter_name(s)) {
        return Err(CoreError::InvalidLockRequest {
            reason: format!(
                "{path:?} has a part named like a waiter ({segment:?}: w- and digits), which a lock above it would take for one; use another name"
            ),
        });
    }
    if m.retype_container(path, NodeKind::Queue, config.encode()) {
        return Ok(());
    }
    create_ancestors(m, path, config.kind)?;
    m.create_internal(path, config.encode(), NodeKind::Queue, 0, false)?;
    Ok(())
}

/// Creates the missing ancestors of `path` as containers, top down: they go once the queue
/// (their last child) does. An ancestor that is a queue is refused (`LockManaged`), unless
/// both are locks (a lock below a lock: hierarchical locks); one that is ephemeral is
/// refused by the create (`EphemeralParent`).
fn create_ancestors(m: &mut Mutation<'_>, path: &str, kind: QueueKind) -> Result<(), CoreError> {
    let mut missing = Vec::new();
    let mut current = path::parent(path);
    while let Some(p) = current {
        match m.tree().get(p) {
            Some(n) if n.kind == NodeKind::Queue => {
                let lock_above = QueueConfig::decode(&n.data).is_some_and(|c| c.kind.is_lock());
                if !(lock_above && kind.is_lock()) {
                    return Err(CoreError::LockManaged { path: p.to_owned() });
                }
                break;
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

/// Why a session leaves a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaving {
    /// It let go (a release, a cancelled or timed-out wait, a barrier member leaving).
    Released,
    /// An operator took it out: a holder did not let go, so the lock-delay applies, and
    /// its session is told.
    Revoked,
    /// A leader gave up its election: its session is told (another process of it may
    /// still act as the leader).
    Resigned,
}

/// Takes `session` out of the queue at `path`: the place `hold` names. Answers
/// [`Output::LockReleased`], or [`Output::LockQueued`] with the token for a wait that was
/// granted before its cancel (which then keeps it). A release of a reentrant hold that
/// counts more than one acquire takes one away and keeps the hold (`remaining` says how
/// many are left); a revoke ends it whatever its count.
pub(crate) fn leave(
    m: &mut Mutation<'_>,
    session: SessionId,
    path: &str,
    hold: &HoldRef,
    leaving: Leaving,
) -> Result<Output, CoreError> {
    path::validate(path, m.limits())?;
    let mine = waiters(m.tree(), path)
        .map(|(_, ws)| ws.into_iter().enumerate().find(|(_, w)| w.session == session));
    let Some(Some((position, w))) = mine else {
        return Err(match hold {
            HoldRef::Token(token) => CoreError::HoldEnded { path: path.to_owned(), token: *token },
            _ => CoreError::NotHeld { path: path.to_owned(), session },
        });
    };
    match hold {
        HoldRef::Any => {}
        HoldRef::Token(token) if w.info.token != Some(*token) => {
            return Err(CoreError::HoldEnded { path: path.to_owned(), token: *token });
        }
        HoldRef::Token(_) => {}
        HoldRef::Wait(waiter) if *waiter != w.path => {
            return Err(CoreError::NotHeld { path: path.to_owned(), session });
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
    let releases = leaving == Leaving::Released && !matches!(hold, HoldRef::Wait(_));
    if releases && held && w.info.holds > 1 {
        let remaining = w.info.holds - 1;
        let value =
            m.tree().get(&w.path).map(|n| queue_data::value_of(&n.data)).unwrap_or_default();
        let info = WaiterInfo { holds: remaining, ..w.info };
        m.set_internal(&w.path, info.with_value(None, &value));
        return Ok(Output::LockReleased { held, remaining });
    }
    let mark = match leaving {
        Leaving::Released => None,
        Leaving::Revoked => {
            if held {
                block(m, path);
            }
            Some(Mark::Revoked)
        }
        Leaving::Resigned => Some(Mark::Resigned),
    };
    if let Some(mark) = mark {
        let value =
            m.tree().get(&w.path).map(|n| queue_data::value_of(&n.data)).unwrap_or_default();
        m.set_internal(&w.path, w.info.with_value(Some(mark), &value));
    }
    m.delete(&w.path, None, false)?;
    Ok(Output::LockReleased { held, remaining: 0 })
}

/// Grants the queue at `path` to every waiter its rule says holds, unless a lock-delay
/// blocks it; then records its head, for a kind that keeps one.
pub(crate) fn grant(m: &mut Mutation<'_>, path: &str) {
    // An id's lock in a resource kind's version that does not grant yet (a rotation's
    // new version, until the switch).
    if gated(m.tree(), path) {
        return;
    }
    // Locks are granted with the locks above and below them (hierarchical locks).
    if let Some(root) = lock_family::root(m.tree(), path) {
        let family = lock_family::family(m.tree(), &root, m.time_ms());
        let grants: Vec<WaiterView> = family.grants().into_iter().cloned().collect();
        give(m, &grants);
        return;
    }
    let Some((config, ws)) = waiters(m.tree(), path) else { return };
    if config.blocked_until_ms > m.time_ms() {
        return;
    }
    let modes: Vec<WaitMode> = ws.iter().map(|w| w.info.mode).collect();
    let granted = ws.iter().take_while(|w| w.info.token.is_some()).count();
    let holders = queue::holders(config.kind, &modes, granted);
    let grants: Vec<WaiterView> =
        ws.into_iter().take(holders).filter(|w| w.info.token.is_none()).collect();
    give(m, &grants);
    if config.kind.records_head() {
        record_head(m, path, config);
    }
}

/// Grants `waiters`: each gets the command's revision as its token, and its time as the
/// grant's.
fn give(m: &mut Mutation<'_>, waiters: &[WaiterView]) {
    let (revision, now) = (m.revision(), m.time_ms());
    for w in waiters {
        let value =
            m.tree().get(&w.path).map(|n| queue_data::value_of(&n.data)).unwrap_or_default();
        let granted = WaiterInfo { token: Some(revision), granted_ms: Some(now), ..w.info.clone() };
        m.set_internal(&w.path, granted.with_value(None, &value));
    }
}

/// Writes the queue's first holder into the queue node, if it changed.
fn record_head(m: &mut Mutation<'_>, path: &str, config: QueueConfig) {
    let head = m.tree().children(path).next().and_then(|(p, n)| {
        let token = WaiterInfo::decode(&n.data)?.token?;
        Some(Head {
            name: path::name(p).to_owned(),
            token,
            session: n.stat.ephemeral_owner,
            value: queue_data::value_of(&n.data),
        })
    });
    let data = config.with_head(head.as_ref());
    if m.tree().get(path).is_some_and(|n| n.data != data) {
        m.set_internal(path, data);
    }
}

/// The queues among `paths` and their parents.
pub(crate) fn queues_touched<'p>(
    tree: &Tree,
    paths: impl Iterator<Item = &'p str>,
) -> BTreeSet<String> {
    let mut queues = BTreeSet::new();
    for p in paths {
        for candidate in std::iter::once(p).chain(path::parent(p)) {
            if tree.get(candidate).is_some_and(|n| n.kind == NodeKind::Queue) {
                queues.insert(candidate.to_owned());
            }
        }
    }
    queues
}

/// Before `session`'s ephemeral nodes go because it expired: blocks every queue it held
/// whose delay is set.
pub(crate) fn block_on_holder_failure(m: &mut Mutation<'_>, session: SessionId) {
    let held: Vec<String> = m
        .tree()
        .ephemerals_of(session)
        .filter_map(|p| {
            let queue = path::parent(p)?;
            let info = WaiterInfo::decode(&m.tree().get(p)?.data)?;
            info.token.map(|_| queue.to_owned())
        })
        .collect();
    for queue in held {
        block(m, &queue);
    }
}

/// Starts the lock-delay of `path` (if it has one) because a holder failed.
fn block(m: &mut Mutation<'_>, path: &str) {
    let Some(node) = m.tree().get(path) else { return };
    let Some(config) = QueueConfig::decode(&node.data) else { return };
    if config.delay_ms == 0 {
        return;
    }
    let until = m.time_ms() + config.delay_ms;
    let blocked = QueueConfig { blocked_until_ms: until.max(config.blocked_until_ms), ..config };
    let data = blocked.with_head(Head::decode(&node.data).as_ref());
    m.set_internal(path, data);
}

/// Ends the lock-delays that are over: grants those queues, and deletes the empty ones.
/// Returns how many queues were woken.
pub(crate) fn wake(m: &mut Mutation<'_>) -> u64 {
    let now = m.time_ms();
    let tree = m.tree();
    let due: Vec<(String, QueueConfig, u64, Option<Head>)> = tree
        .blocked_queues()
        .filter_map(|p| {
            let n = tree.get(p)?;
            let config = QueueConfig::decode(&n.data)?;
            Some((p.to_owned(), config, n.stat.num_children, Head::decode(&n.data)))
        })
        .filter(|(_, c, _, _)| c.blocked_until_ms != 0 && c.blocked_until_ms <= now)
        .collect();
    for (path, config, children, head) in &due {
        if *children == 0 && !config.kind.persists() {
            m.delete(path, None, false).ok();
        } else {
            let open = QueueConfig { blocked_until_ms: 0, ..*config };
            m.set_internal(path, open.with_head(head.as_ref()));
            grant(m, path);
        }
    }
    due.len() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_waiter_names_its_queue_by_its_name() {
        assert_eq!(super::queue_of_waiter("/locks/a/w-0000000007"), Some("/locks/a"));
        assert_eq!(super::queue_of_waiter("/w-1"), Some("/"));
        assert_eq!(super::queue_of_waiter("/locks/a/w-"), None);
        assert_eq!(super::queue_of_waiter("/locks/a/w-12x"), None);
        assert_eq!(super::queue_of_waiter("/locks/a/x-0000000001"), None);
    }
}
