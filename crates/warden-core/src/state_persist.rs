//! How a [`State`] is persisted: piece by piece ([`State::take_changes`],
//! [`State::meta`], [`State::from_parts`]) by a store that writes what changed, and whole
//! in a snapshot ([`State::snapshot`], [`State::restore`], which also reads a version 1
//! snapshot, made before lock statistics were kept).

use serde::{Deserialize, Serialize};

use super::{Changes, State, StateMeta};
use crate::error::CoreError;
use crate::limits::Limits;
use crate::lock_stats::{LockStats, LockStatsTable};
use crate::node::Node;
use crate::session::{Session, SessionTable};
use crate::snapshot::Snapshot;
use crate::tree::Tree;

impl State {
    /// What changed since the last call, for a store that persists the state piece by
    /// piece: the paths, sessions and locks' statistics to write again (or delete, if
    /// gone).
    pub fn take_changes(&mut self) -> Changes {
        Changes {
            nodes: self.tree.take_dirty(),
            sessions: self.sessions.take_dirty(),
            lock_stats: self.lock_stats.take_dirty(),
        }
    }

    /// The scalar part of the state, persisted beside the nodes and sessions.
    pub fn meta(&self) -> StateMeta {
        StateMeta {
            limits: self.limits.clone(),
            revision: self.revision,
            last_session_id: self.sessions.last_id(),
        }
    }

    /// Reassembles a state persisted piece by piece ([`State::meta`], every node, every
    /// session, every lock's statistics).
    pub fn from_parts(
        meta: StateMeta,
        nodes: impl IntoIterator<Item = (String, Node)>,
        sessions: impl IntoIterator<Item = Session>,
        lock_stats: impl IntoIterator<Item = (String, LockStats)>,
    ) -> State {
        let mut state = State {
            limits: meta.limits,
            revision: meta.revision,
            tree: Tree::from_nodes(nodes),
            sessions: SessionTable::from_sessions(meta.last_session_id, sessions),
            lock_stats: LockStatsTable::from_entries(lock_stats),
            policy: None,
            quota: 0,
            quota_refused_need: None,
        };
        // (Set from the tree just below.)
        state.reload_policy();
        state.reload_quota();
        state
    }

    /// Serializes the whole state; equal states give equal bytes.
    pub fn snapshot(&self) -> Result<Vec<u8>, CoreError> {
        crate::snapshot::encode(self)
    }

    /// Restores a state from [`State::snapshot`]'s bytes, or from a version 1 snapshot
    /// (made before lock statistics were kept: they start empty).
    pub fn restore(bytes: &[u8]) -> Result<State, CoreError> {
        let mut state = match crate::snapshot::decode::<StateV1, State>(bytes)? {
            Snapshot::V1(old) => old.upgrade(),
            Snapshot::V2(state) => state,
        };
        state.tree.rebuild_index();
        state.lock_stats.rebuild_index();
        state.reload_policy();
        state.reload_quota();
        state.sessions.rebuild_index();
        Ok(state)
    }
}

/// The state as a version 1 snapshot holds it: without lock statistics. Its fields are
/// [`State`]'s first ones, in the same order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StateV1 {
    pub(crate) limits: Limits,
    pub(crate) revision: u64,
    pub(crate) tree: Tree,
    pub(crate) sessions: SessionTable,
}

impl StateV1 {
    /// The state it was, with no lock statistics yet.
    fn upgrade(self) -> State {
        State {
            limits: self.limits,
            revision: self.revision,
            tree: self.tree,
            sessions: self.sessions,
            lock_stats: LockStatsTable::default(),
            policy: None,
            quota: 0,
            quota_refused_need: None,
        }
    }
}
