//! The replicated state and the one function that changes it, [`State::apply`].
//!
//! `apply` is deterministic: the same state and the same request give the same response,
//! events and next state on every replica. Time and ids come from the [`ApplyContext`]
//! (the entry's log index and the leader's timestamp), never from the replica.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::acl::{self, Policy};
use crate::command::{Command, LogCommand, Request, TxnOp};
use crate::deadlock;
use crate::delete;
use crate::error::CoreError;
use crate::event::Event;
use crate::ids::ApplyContext;
use crate::ids::SessionId;
use crate::limits::Limits;
use crate::lock_stats::{self, LockStatsEntry, LockStatsReport, LockStatsTable};
use crate::namespace::{Finished, Mutation};
use crate::node::{Node, NodeKind, Stat};
use crate::path;
use crate::queue_data::QueueConfig;
use crate::quota;
use crate::response::{Output, Response};
use crate::session::{Session, SessionTable};
use crate::tree::Tree;
use crate::txn;
use crate::{barrier, election, recipe, recipe_commands, resource};

/// The result of applying one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The answer for the client.
    pub response: Response,
    /// The changes, for watchers; empty if nothing changed.
    pub events: Vec<Event>,
}

/// What changed in a state since the last [`State::take_changes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Paths created, set or deleted.
    pub nodes: BTreeSet<String>,
    /// Sessions opened, changed (remembered responses) or ended.
    pub sessions: BTreeSet<SessionId>,
    /// Locks whose statistics changed or were forgotten.
    pub lock_stats: BTreeSet<String>,
}

/// A resource kind as [`State::resource`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceView {
    /// Its version, and the one it rotates to.
    pub state: resource::ResourceState,
    /// The holders and waiters of its current version (the old one, while it rotates),
    /// with their locks.
    pub current: Vec<(String, recipe::WaiterView)>,
    /// The waiters queued for the version it rotates to.
    pub next: Vec<(String, recipe::WaiterView)>,
}

/// The scalar part of a [`State`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMeta {
    /// The limits.
    pub limits: Limits,
    /// The revision.
    pub revision: u64,
    /// The largest session id handed out.
    pub last_session_id: SessionId,
}

/// The whole replicated state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    limits: Limits,
    /// +1 for every command that changes the namespace.
    revision: u64,
    tree: Tree,
    sessions: SessionTable,
    /// Per-lock statistics (after `sessions`: a version 1 snapshot is this state without
    /// them, [`StateV1`]).
    lock_stats: LockStatsTable,
    /// The access policy in force, compiled from the node [`acl::POLICY_PATH`] (derived:
    /// rebuilt from the tree on restore, not serialized).
    #[serde(skip)]
    policy: Option<Arc<Policy>>,
    /// The data-size quota in force, from the node [`quota::QUOTA_PATH`] (derived, like
    /// `policy`); 0 is none.
    #[serde(skip)]
    quota: u64,
    /// What the command last refused for the quota needed, while it still would not fit:
    /// the quota alarm ([`State::usage`]). Not in snapshots (a replica restored from one
    /// starts without it, until the next refusal).
    #[serde(skip)]
    quota_refused_need: Option<u64>,
}

impl Default for State {
    fn default() -> Self {
        State::new(Limits::default())
    }
}

impl State {
    /// An empty namespace (the root only) at revision 0.
    pub fn new(limits: Limits) -> State {
        State {
            limits,
            revision: 0,
            tree: Tree::new(),
            sessions: SessionTable::default(),
            lock_stats: LockStatsTable::default(),
            policy: None,
            quota: quota::DEFAULT_QUOTA_BYTES,
            quota_refused_need: None,
        }
    }

    /// The counted size of the state, its quota and the quota alarm ([`crate::quota`]).
    pub fn usage(&self) -> quota::Usage {
        let used = self.data_bytes();
        quota::Usage {
            used,
            quota: self.quota,
            alarm: self.quota_refused_need.is_some_and(|need| self.quota_short_of(need)),
        }
    }

    /// The counted size of the nodes and sessions ([`crate::quota`]).
    pub fn data_bytes(&self) -> u64 {
        self.tree.bytes() + self.sessions.bytes()
    }

    /// [`State::data_bytes`] counted again from scratch (what tests compare it with).
    pub fn recount_data_bytes(&self) -> u64 {
        self.tree.recount_bytes() + self.sessions.recount_bytes()
    }

    /// Whether `need` more bytes would go past the quota.
    fn quota_short_of(&self, need: u64) -> bool {
        self.quota > 0 && self.data_bytes().saturating_add(need) > self.quota
    }

    /// Reads the quota from its node again (after a restore, or a command that set it).
    fn reload_quota(&mut self) {
        self.quota = self
            .tree
            .get(quota::QUOTA_PATH)
            .map_or(quota::DEFAULT_QUOTA_BYTES, |n| quota::parse(&n.data));
    }

    /// The access policy in force, if one was ever applied (ACLs are on from then).
    pub fn policy(&self) -> Option<&Arc<Policy>> {
        self.policy.as_ref()
    }

    /// Compiles the policy from its node again (after a restore, or a command that set it).
    fn reload_policy(&mut self) {
        self.policy = self
            .tree
            .get(acl::POLICY_PATH)
            .and_then(|n| std::str::from_utf8(&n.data).ok().and_then(|t| Policy::parse(t).ok()))
            .map(Arc::new);
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The limits commands are checked against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The tree, for reads that need more than [`State::get`].
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Result<&Node, CoreError> {
        path::validate(path, &self.limits)?;
        self.tree.get(path).ok_or_else(|| CoreError::no_node(path))
    }

    /// The children of `path`: names and stats, sorted by name.
    pub fn children(&self, path: &str) -> Result<Vec<(String, Stat)>, CoreError> {
        self.get(path)?;
        Ok(self.tree.children(path).map(|(p, n)| (path::name(p).to_owned(), n.stat)).collect())
    }

    /// The children of `path` whose names sort after `after` (all of them for ""): names
    /// and stats, sorted by name, for a listing read in pages.
    pub fn children_after<'a>(
        &'a self,
        path: &str,
        after: &'a str,
    ) -> Result<impl Iterator<Item = (&'a str, &'a Stat)> + 'a, CoreError> {
        self.get(path)?;
        Ok(self.tree.children_after(path, after).map(|(p, n)| (path::name(p), &n.stat)))
    }

    /// A live session.
    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// All live sessions, by id.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.iter()
    }

    /// How many live sessions `identity` has opened (what
    /// [`Limits::max_sessions_per_identity`] counts).
    pub fn sessions_of(&self, identity: &str) -> usize {
        self.sessions.count_of(identity)
    }

    /// The queue at `path` (a lock, an election, a barrier): its settings and waiters in
    /// queue order (holders first).
    pub fn lock(&self, path: &str) -> Result<(QueueConfig, Vec<recipe::WaiterView>), CoreError> {
        path::validate(path, &self.limits)?;
        recipe::waiters(&self.tree, path).ok_or_else(|| CoreError::no_node(path))
    }

    /// The statistics of the locks at or under `prefix` (by whole segments): their total
    /// and the `limit` busiest, busiest first, with their holders and waiters now
    /// ([`crate::lock_stats`]).
    pub fn lock_stats(&self, prefix: &str, limit: usize) -> Result<LockStatsReport, CoreError> {
        path::validate(prefix, &self.limits)?;
        Ok(self.lock_stats.report(&self.tree, prefix, limit))
    }

    /// The statistics of the lock at `path` (zero if none were kept) with its holders and
    /// waiters now.
    pub fn lock_stats_at(&self, path: &str) -> Result<LockStatsEntry, CoreError> {
        path::validate(path, &self.limits)?;
        Ok(self.lock_stats.entry(&self.tree, path))
    }

    /// Keeps the statistics of at most `capacity` locks from now on (tests of the bound).
    #[cfg(test)]
    pub(crate) fn set_lock_stats_capacity(&mut self, capacity: usize) {
        self.lock_stats = LockStatsTable::with_capacity(capacity);
    }

    /// Every lock's statistics, for a store that persists them.
    pub fn lock_stats_table(&self) -> &LockStatsTable {
        &self.lock_stats
    }

    /// Whether `token` is held now on the queue at `path` (Chubby's sequencer check): a
    /// lock's holder, an election's leader.
    pub fn check_sequencer(&self, path: &str, token: u64) -> bool {
        recipe::check_sequencer(&self.tree, path, token)
    }

    /// The leader of the election at `path`; `Ok(None)` when it has none.
    pub fn leader(&self, path: &str) -> Result<Option<election::Leader>, CoreError> {
        path::validate(path, &self.limits)?;
        Ok(election::leader(&self.tree, path))
    }

    /// The resource kind at `path`: its state, and the holders and waiters of its old
    /// version (while it rotates) and of its current or new one, by lock.
    pub fn resource(&self, path: &str) -> Result<ResourceView, CoreError> {
        path::validate(path, &self.limits)?;
        let state = resource::state(&self.tree, path)
            .ok_or_else(|| CoreError::NoResource { path: path.to_owned() })?;
        let current = resource::versions_waiters(&self.tree, path, &state.version);
        let next = state
            .to
            .as_deref()
            .map(|to| resource::versions_waiters(&self.tree, path, to))
            .unwrap_or_default();
        Ok(ResourceView { state, current, next })
    }

    /// The barrier or double barrier at `path`: its settings and members in order.
    pub fn barrier(&self, path: &str) -> Result<(QueueConfig, Vec<recipe::WaiterView>), CoreError> {
        path::validate(path, &self.limits)?;
        barrier::status(&self.tree, path).ok_or_else(|| CoreError::no_node(path))
    }

    /// The ephemeral nodes of a session, sorted.
    pub fn ephemerals_of(&self, id: SessionId) -> impl Iterator<Item = &str> {
        self.tree.ephemerals_of(id)
    }

    /// Applies one log entry's command: each of its requests in order, all with the
    /// entry's context.
    pub fn apply_entry(&mut self, command: LogCommand, ctx: &ApplyContext) -> Vec<Applied> {
        command.into_requests().into_iter().map(|r| self.apply(r, ctx)).collect()
    }

    /// Applies one request.
    pub fn apply(&mut self, request: Request, ctx: &ApplyContext) -> Applied {
        match self.admit(&request) {
            Ok(Some(remembered)) => {
                return Applied { response: remembered, events: Vec::new() };
            }
            Ok(None) => {}
            Err(error) => return self.refuse(error),
        }
        if let Some(path) = reserved_path(&request.command) {
            return self.refuse(CoreError::Reserved { path: path.to_owned() });
        }
        let next = self.revision + 1;
        let sets_policy = matches!(request.command, Command::SetPolicy { .. });
        let (outcome, events) = self.execute(request.command, request.session, next, ctx);
        if sets_policy && outcome.is_ok() {
            self.reload_policy();
        }
        if matches!(outcome, Ok(Output::QuotaSet { .. })) {
            self.reload_quota();
        }
        match &outcome {
            Err(CoreError::QuotaExceeded { needed, .. }) => self.quota_refused_need = Some(*needed),
            _ if self.quota_refused_need.is_some_and(|need| !self.quota_short_of(need)) => {
                self.quota_refused_need = None;
            }
            _ => {}
        }
        if !events.is_empty() {
            self.revision = next;
        }
        let response = Response { revision: self.revision, outcome };
        if let (Some(id), Some(rid)) = (request.session, request.id)
            && let Some(session) = self.sessions.get_mut(id)
        {
            session.remember(rid.seq, response.clone(), self.limits.max_remembered_responses);
        }
        Applied { response, events }
    }

    /// Checks the request's session and id; returns the remembered response of a retry.
    fn admit(&mut self, request: &Request) -> Result<Option<Response>, CoreError> {
        match (request.session, request.id) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(CoreError::InvalidRequestId {
                reason: "a request id needs a session; open one or send no id".to_owned(),
            }),
            (Some(id), rid) => {
                let session = self.sessions.get_mut(id).ok_or(CoreError::SessionExpired { id })?;
                match rid {
                    Some(rid) => session.recall(rid),
                    None => Ok(None),
                }
            }
        }
    }

    fn refuse(&self, error: CoreError) -> Applied {
        Applied {
            response: Response { revision: self.revision, outcome: Err(error) },
            events: Vec::new(),
        }
    }

    fn execute(
        &mut self,
        command: Command,
        session: Option<SessionId>,
        revision: u64,
        ctx: &ApplyContext,
    ) -> (Result<Output, CoreError>, Vec<Event>) {
        let quota_check = QuotaCheck::of(self, &command);
        if let (Some(check), Command::OpenSession { identity, .. }) = (&quota_check, &command) {
            let needed = quota::session_bytes(identity);
            if check.before + needed > check.quota {
                let error =
                    CoreError::QuotaExceeded { used: check.before, needed, quota: check.quota };
                return (Err(error), Vec::new());
            }
        }
        let sessions_bytes = self.sessions.bytes();
        let mut m = Mutation::new(&mut self.tree, &self.limits, revision, ctx.time_ms)
            .keeping_removed(lock_stats::counts_removed);
        let outcome = match command {
            Command::OpenSession { ttl_ms, identity } => {
                self.sessions.open(ttl_ms, identity, ctx, &self.limits)
            }
            Command::CloseSession { id } => match self.sessions.remove(id) {
                Some(_) => Ok(Output::SessionClosed { id, deleted: m.delete_ephemerals(id) }),
                None => Err(CoreError::SessionExpired { id }),
            },
            Command::ExpireSessions { term, .. } if term != ctx.term => {
                Err(CoreError::StaleTerm { decided: term, appended: ctx.term })
            }
            Command::ExpireSessions { ids, .. } => {
                let mut expired = Vec::new();
                let mut deleted = 0;
                for id in ids {
                    if self.sessions.remove(id).is_some() {
                        // Expiry, unlike a release or a close, is a holder failure.
                        recipe::block_on_holder_failure(&mut m, id);
                        deleted += m.delete_ephemerals(id);
                        expired.push(id);
                    }
                }
                Ok(Output::SessionsExpired { ids: expired, deleted })
            }
            Command::CheckpointSessions { remaining } => {
                let mut count = 0;
                for (id, ms) in remaining {
                    if let Some(session) = self.sessions.get_mut(id) {
                        session.checkpoint_remaining_ms = Some(ms.min(session.ttl_ms));
                        count += 1;
                    }
                }
                Ok(Output::SessionsCheckpointed { count })
            }
            command @ (Command::Acquire { .. }
            | Command::Release { .. }
            | Command::Revoke { .. }
            | Command::WakeLocks
            | Command::Campaign { .. }
            | Command::Proclaim { .. }
            | Command::Resign { .. }
            | Command::SetBarrier { .. }
            | Command::RemoveBarrier { .. }
            | Command::WaitBarrier { .. }
            | Command::EnterBarrier { .. }
            | Command::LeaveBarrier { .. }
            | Command::InitResource { .. }
            | Command::AcquireResource { .. }
            | Command::BeginRotation { .. }
            | Command::ForceRotation { .. }) => recipe_commands::apply(&mut m, command, session),
            Command::SetLimits { limits } => {
                // The namespace does not change (no events, no new revision); the mutation
                // borrows the old limits, so it ends before they are replaced.
                let _ = m.finish(true);
                self.limits = limits;
                return (Ok(Output::LimitsSet), Vec::new());
            }
            Command::Create { path, data, mode } => m
                .create(&path, data, mode, session)
                .map(|(path, stat)| Output::Created { path, stat }),
            Command::Set { path, data, expected_version } => {
                m.set(&path, data, expected_version).map(|stat| Output::Set { stat })
            }
            Command::Delete { path, expected_version, recursive, revoke_locks } => {
                delete::delete(&mut m, &path, expected_version, recursive, revoke_locks)
            }
            Command::SetPolicy { text } => set_policy(&mut m, text),
            Command::SetQuota { bytes } => set_quota(&mut m, bytes),
            Command::Txn { compares, ops } => txn::check_size(&compares, &ops, &self.limits)
                .and_then(|()| txn::first_failed(m.tree(), &compares, &self.limits))
                .and_then(|failed| match failed {
                    Some(index) => Ok(Output::TxnCompareFailed { index }),
                    None => txn::apply_ops(&mut m, ops, session)
                        .map(|results| Output::TxnCommitted { results }),
                }),
        };
        // The deadlock check sees only the tree; the sessions' identities are here.
        let outcome = outcome.map_err(|e| deadlock::name_sessions(e, &self.sessions));
        let quota_check = quota_check.map(|c| (c, sessions_bytes));
        let (outcome, done) = Self::finish(m, outcome, quota_check);
        if !done.events.is_empty() {
            self.lock_stats.count(&self.tree, revision, ctx.time_ms, &done.events, &done.removed);
        }
        (outcome, done.events)
    }

    /// Ends a command's mutation: what left a queue (a release, a deletion, an ended
    /// session) or changed a waiter may let the next waiters hold, then the changes stay or
    /// go with the outcome.
    ///
    /// A command the quota may refuse (`quota`: the check and the sessions' size, which
    /// commands of the tree do not change) is refused, and its changes undone, when it
    /// left the state larger than before and than the quota.
    fn finish(
        mut m: Mutation<'_>,
        mut outcome: Result<Output, CoreError>,
        quota: Option<(QuotaCheck, u64)>,
    ) -> (Result<Output, CoreError>, Finished) {
        if outcome.is_ok() {
            let changed = m.changed_paths();
            for touched in recipe::queues_touched(m.tree(), changed.iter().map(String::as_str)) {
                recipe::grant(&mut m, &touched);
            }
            // A resource kind whose old version this emptied switches to the new one.
            let changed = m.changed_paths();
            for kind in resource::rotating_touched(m.tree(), changed.iter().map(String::as_str)) {
                resource::settle(&mut m, &kind);
            }
            if let Some((check, sessions)) = quota {
                let after = m.tree().bytes() + sessions;
                if after > check.before && after > check.quota {
                    outcome = Err(CoreError::QuotaExceeded {
                        used: check.before,
                        needed: after - check.before,
                        quota: check.quota,
                    });
                }
            }
        }
        let done = m.finish(outcome.is_ok());
        (outcome, done)
    }
}

/// What the quota rule needs to know of a command before it runs: the size then, and the
/// quota. None when there is no quota, or the command is one the quota never refuses.
struct QuotaCheck {
    before: u64,
    quota: u64,
}

impl QuotaCheck {
    fn of(state: &State, command: &Command) -> Option<QuotaCheck> {
        (state.quota > 0 && quota::may_grow(command))
            .then(|| QuotaCheck { before: state.data_bytes(), quota: state.quota })
    }
}

/// The first path of a client command under [`acl::RESERVED_PREFIX`], which only
/// [`Command::SetPolicy`] writes.
fn reserved_path(command: &Command) -> Option<&str> {
    fn op_path(op: &TxnOp) -> &str {
        match op {
            TxnOp::Create { path, .. } | TxnOp::Set { path, .. } | TxnOp::Delete { path, .. } => {
                path
            }
        }
    }
    match command {
        Command::Create { path, .. }
        | Command::Set { path, .. }
        | Command::Delete { path, .. }
        | Command::Acquire { path, .. }
        | Command::Campaign { path, .. }
        | Command::SetBarrier { path }
        | Command::WaitBarrier { path }
        | Command::EnterBarrier { path, .. } => Some(path.as_str()),
        Command::Txn { ops, .. } => ops.iter().map(op_path).find(|p| acl::is_reserved(p)),
        _ => None,
    }
    .filter(|p| acl::is_reserved(p))
}

/// Puts the policy `text` in force: checked whole, then kept at [`acl::POLICY_PATH`].
fn set_policy(m: &mut Mutation<'_>, text: String) -> Result<Output, CoreError> {
    let policy = Policy::parse(&text)?;
    let len = text.len();
    if len > m.limits().max_value_bytes {
        return Err(CoreError::ValueTooLarge {
            path: acl::POLICY_PATH.to_owned(),
            len,
            max: m.limits().max_value_bytes,
        });
    }
    put_reserved(m, acl::POLICY_PATH, bytes::Bytes::from(text.into_bytes()))?;
    Ok(Output::PolicyApplied { rules: policy.rules() as u64 })
}

/// Puts `data` at `path` under the reserved prefix (made if missing): the replicated
/// settings (the access policy, the quota) live there as nodes.
fn put_reserved(m: &mut Mutation<'_>, path: &str, data: bytes::Bytes) -> Result<(), CoreError> {
    if m.tree().get(acl::RESERVED_PREFIX).is_none() {
        m.create_internal(
            acl::RESERVED_PREFIX,
            bytes::Bytes::new(),
            NodeKind::Persistent,
            0,
            false,
        )?;
    }
    if m.tree().get(path).is_some() {
        m.set_internal(path, data);
    } else {
        m.create_internal(path, data, NodeKind::Persistent, 0, false)?;
    }
    Ok(())
}

/// Sets the quota to `bytes`, kept as text at [`quota::QUOTA_PATH`] (0: none). The
/// default quota on a cluster that never set another writes nothing.
fn set_quota(m: &mut Mutation<'_>, bytes: u64) -> Result<Output, CoreError> {
    if bytes == quota::DEFAULT_QUOTA_BYTES && m.tree().get(quota::QUOTA_PATH).is_none() {
        return Ok(Output::QuotaSet { bytes });
    }
    put_reserved(m, quota::QUOTA_PATH, bytes::Bytes::from(bytes.to_string().into_bytes()))?;
    Ok(Output::QuotaSet { bytes })
}

#[path = "state_persist.rs"]
mod persist;

#[cfg(test)]
pub(crate) use persist::StateV1;

#[cfg(test)]
#[path = "state_test.rs"]
mod tests;
