//! Elections (etcd's v3election, Chubby's primary election), on the recipe framework.
//!
//! An election at `P` is a queue whose rule lets its first candidate lead
//! ([`QueueKind::Election`]); campaigning joins the queue with the candidate's value in its
//! waiter, and the leader's token is the revision at which it came to lead, so tokens of
//! one election strictly increase and fence what leaders write. The queue node keeps a copy
//! of its leader (waiter, token, session, value; see [`crate::queue_data::Head`]), so one
//! key's watch sees every change of leader, "no leader" (the node's deletion) included,
//! and can resume from any revision of the watch history. Leadership ends with a resign,
//! an operator's revoke, or the end of the leader's session: the framework takes care of
//! all three as it does for locks.

use bytes::Bytes;

use crate::command::HoldRef;
use crate::error::CoreError;
use crate::event::{Event, EventKind};
use crate::ids::SessionId;
use crate::namespace::Mutation;
use crate::path;
use crate::queue::{QueueKind, WaitMode};
use crate::queue_data::{self, Head, QueueConfig, WaiterInfo};
use crate::recipe::{self, Joined, Leaving};
use crate::response::Output;
use crate::tree::Tree;

/// Who leads an election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The leader's candidate node.
    pub candidate: String,
    /// Its session.
    pub session: SessionId,
    /// Its token: the revision at which it came to lead.
    pub token: u64,
    /// The value it campaigned with or last proclaimed.
    pub value: Bytes,
}

impl Leader {
    fn of(election: &str, head: Head) -> Leader {
        Leader {
            candidate: format!("{}{}", path::child_prefix(election), head.name),
            session: head.session,
            token: head.token,
            value: head.value,
        }
    }
}

const CONFIG: QueueConfig =
    QueueConfig { kind: QueueKind::Election, delay_ms: 0, blocked_until_ms: 0 };

/// Queues `session` as a candidate in the election at `path` (creating it), or returns its
/// existing place.
pub(crate) fn campaign(
    m: &mut Mutation<'_>,
    session: SessionId,
    path: &str,
    value: &[u8],
) -> Result<Joined, CoreError> {
    recipe::join(m, session, path, CONFIG, WaiterInfo::new(WaitMode::Exclusive), value)
}

/// The leader of `session` with `token` announces `value`. A deposed leader's proclaim (or
/// one with another token) changes nothing and fails with [`CoreError::HoldEnded`].
pub(crate) fn proclaim(
    m: &mut Mutation<'_>,
    session: SessionId,
    path: &str,
    token: u64,
    value: Bytes,
) -> Result<Output, CoreError> {
    path::validate(path, m.limits())?;
    if value.len() > m.limits().max_value_bytes {
        return Err(CoreError::ValueTooLarge {
            path: path.to_owned(),
            len: value.len(),
            max: m.limits().max_value_bytes,
        });
    }
    let ended = || CoreError::HoldEnded { path: path.to_owned(), token };
    recipe::existing(m.tree(), path, QueueKind::Election)?.ok_or_else(ended)?;
    let (_, waiters) = recipe::waiters(m.tree(), path).ok_or_else(ended)?;
    let mine = waiters
        .into_iter()
        .find(|w| w.session == session && w.info.token == Some(token))
        .ok_or_else(ended)?;
    let info = mine.info.clone();
    let current = m.tree().get(&mine.path).map(|n| queue_data::value_of(&n.data));
    if current.as_ref() != Some(&value) {
        m.set_internal(&mine.path, info.with_value(None, &value));
    }
    Ok(Output::Proclaimed)
}

/// The leader of `session` with `token` gives up the election; the next candidate leads.
/// The session is told on its stream, as of any leadership it loses.
pub(crate) fn resign(
    m: &mut Mutation<'_>,
    session: SessionId,
    path: &str,
    token: u64,
) -> Result<Output, CoreError> {
    path::validate(path, m.limits())?;
    if recipe::existing(m.tree(), path, QueueKind::Election)?.is_none() {
        return Err(CoreError::HoldEnded { path: path.to_owned(), token });
    }
    recipe::leave(m, session, path, &HoldRef::Token(token), Leaving::Resigned)
}

/// The leader of the election at `path`, if there is an election with a leader there.
pub fn leader(tree: &Tree, path: &str) -> Option<Leader> {
    let node = tree.get(path)?;
    let config = QueueConfig::decode(&node.data)?;
    if node.kind != crate::NodeKind::Queue || config.kind != QueueKind::Election {
        return None;
    }
    Head::decode(&node.data).map(|head| Leader::of(path, head))
}

/// What an event of the election node at `path` says about its leader: `Some(leader or
/// none)` for a change of the node itself, `None` for any other event.
pub fn leader_after(path: &str, event: &Event) -> Option<Option<Leader>> {
    if event.path != path {
        return None;
    }
    match event.kind {
        EventKind::Created | EventKind::Data => {
            let data = event.data.as_deref().unwrap_or_default();
            let config = QueueConfig::decode(data)?;
            if config.kind != QueueKind::Election {
                return None;
            }
            Some(Head::decode(data).map(|head| Leader::of(path, head)))
        }
        EventKind::Deleted => Some(None),
        EventKind::Children => None,
    }
}
