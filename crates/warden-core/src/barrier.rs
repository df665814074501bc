//! Barriers (Curator's DistributedBarrier and DistributedDoubleBarrier), on the recipe
//! framework.
//!
//! A **barrier** at `P` is a queue node of kind [`QueueKind::Barrier`] that stays while it is
//! set, even without waiters. Waiting on a set barrier joins its queue (the wait is visible,
//! and goes with its session); the rule lets nobody through. Removing the barrier grants
//! every waiter (token = the removal's revision) and deletes them with the node, in one
//! command, so a waiter sees its grant before its deletion. Waiting on a barrier that is not
//! set passes at once.
//!
//! A **double barrier** of N at `P` is a queue of kind [`QueueKind::DoubleBarrier`]:
//! entering joins it, and the rule grants nobody until N members are in, then all of them
//! (and anyone entering while members are still in). Leaving takes the member out; the
//! node goes with the last member, which is what a leaving member waits for. A member
//! whose session ends leaves.

use crate::command::HoldRef;
use crate::error::CoreError;
use crate::ids::SessionId;
use crate::namespace::Mutation;
use crate::path;
use crate::queue::{QueueKind, WaitMode};
use crate::queue_data::{self, QueueConfig, WaiterInfo};
use crate::recipe::{self, Joined, Leaving, WaiterView};
use crate::response::Output;
use crate::tree::Tree;

const BARRIER: QueueConfig =
    QueueConfig { kind: QueueKind::Barrier, delay_ms: 0, blocked_until_ms: 0 };

/// Sets the barrier at `path` (creating missing ancestors as containers).
pub(crate) fn set(m: &mut Mutation<'_>, path: &str) -> Result<Output, CoreError> {
    path::validate(path, m.limits())?;
    if recipe::existing(m.tree(), path, QueueKind::Barrier)?.is_some() {
        return Ok(Output::BarrierSet { created: false });
    }
    recipe::create_queue(m, path, BARRIER)?;
    Ok(Output::BarrierSet { created: true })
}

/// Removes the barrier at `path`, letting every waiter through.
pub(crate) fn remove(m: &mut Mutation<'_>, path: &str) -> Result<Output, CoreError> {
    path::validate(path, m.limits())?;
    if recipe::existing(m.tree(), path, QueueKind::Barrier)?.is_none() {
        return Ok(Output::BarrierRemoved { removed: false, released: 0 });
    }
    let waiters = recipe::waiters(m.tree(), path).map(|(_, ws)| ws).unwrap_or_default();
    let revision = m.revision();
    for w in &waiters {
        let value =
            m.tree().get(&w.path).map(|n| queue_data::value_of(&n.data)).unwrap_or_default();
        let through =
            WaiterInfo { token: Some(revision), granted_ms: Some(m.time_ms()), ..w.info.clone() };
        m.set_internal(&w.path, through.with_value(None, &value));
    }
    m.delete(path, None, true)?;
    Ok(Output::BarrierRemoved { removed: true, released: waiters.len() as u64 })
}

/// Waits on the barrier at `path`: passes at once if it is not set, joins it otherwise.
pub(crate) fn wait(
    m: &mut Mutation<'_>,
    session: SessionId,
    path: &str,
) -> Result<Output, CoreError> {
    path::validate(path, m.limits())?;
    if recipe::existing(m.tree(), path, QueueKind::Barrier)?.is_none() {
        return Ok(Output::BarrierPassed);
    }
    recipe::join(m, session, path, BARRIER, WaiterInfo::new(WaitMode::Member), &[])
        .map(Joined::output)
}

/// Enters the double barrier of `count` at `path` (creating it), or returns the member's
/// existing place.
pub(crate) fn enter(
    m: &mut Mutation<'_>,
    session: SessionId,
    path: &str,
    count: u32,
) -> Result<Joined, CoreError> {
    let config =
        QueueConfig { kind: QueueKind::DoubleBarrier { count }, delay_ms: 0, blocked_until_ms: 0 };
    recipe::join(m, session, path, config, WaiterInfo::new(WaitMode::Member), &[])
}

/// Takes `session` out of the double barrier at `path`; answers how many members are still
/// in.
pub(crate) fn leave(
    m: &mut Mutation<'_>,
    session: SessionId,
    path: &str,
) -> Result<Output, CoreError> {
    path::validate(path, m.limits())?;
    let kind = QueueKind::DoubleBarrier { count: 1 };
    if recipe::existing(m.tree(), path, kind)?.is_none() {
        return Err(CoreError::NotHeld { path: path.to_owned(), session });
    }
    recipe::leave(m, session, path, &HoldRef::Any, Leaving::Released)?;
    let remaining = m.tree().get(path).map_or(0, |n| n.stat.num_children);
    Ok(Output::BarrierLeft { remaining })
}

/// The barrier or double barrier at `path`: its settings and members in order.
pub fn status(tree: &Tree, path: &str) -> Option<(QueueConfig, Vec<WaiterView>)> {
    let (config, waiters) = recipe::waiters(tree, path)?;
    matches!(config.kind, QueueKind::Barrier | QueueKind::DoubleBarrier { .. })
        .then_some((config, waiters))
}
