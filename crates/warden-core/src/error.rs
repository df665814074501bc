//! The one error type of the core.
//!
//! Errors are part of the replicated state: a retried request returns the cached outcome of
//! its first application, error included, so `CoreError` is serializable and comparable.
//! Every message says what was wrong and, where it helps, what to do instead. The server
//! maps each variant to a gRPC status code in one place.

use serde::{Deserialize, Serialize};

use crate::ids::SessionId;
use crate::path_rule::PathRule;

/// Everything a command or a query can fail with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CoreError {
    /// The path breaks one of the rules of DESIGN §2.
    #[error("invalid path {path:?}: {rule}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// The rule it broke.
        rule: PathRule,
    },
    /// A release by a session that neither holds nor waits for the lock.
    #[error("session {session} neither holds nor waits for the lock {path:?}")]
    NotHeld {
        /// The lock.
        path: String,
        /// The session.
        session: SessionId,
    },
    /// A release naming a hold (by its token) that already ended.
    #[error(
        "the hold of the lock {path:?} with token {token} has already ended (released, revoked, or gone with its session); nothing was changed"
    )]
    HoldEnded {
        /// The lock.
        path: String,
        /// The token of the ended hold.
        token: u64,
    },
    /// A delete that would remove a lock's holders or waiters (or a lock under its
    /// lock-delay) without asking to revoke them.
    #[error(
        "cannot delete {path:?}: it would end the lock {lock:?}, {what}; release it, revoke its sessions with `warden lock revoke {lock} --session ID`, or delete with --revoke-locks (holders are told, and the lock-delay applies)"
    )]
    LockInUse {
        /// The node the delete named.
        path: String,
        /// The lock it reaches.
        lock: String,
        /// Its holders and waiters, for people (e.g. "held by session 7, 1 waiting").
        what: String,
    },
    /// A write to a node a recipe manages (a lock, an election, a barrier, or a waiter).
    #[error(
        "{path:?} is managed by a recipe (a lock, an election or a barrier); use its calls (acquire and release, campaign and resign, barrier set and remove) instead of writing it"
    )]
    LockManaged {
        /// The node.
        path: String,
    },
    /// A lock request that does not fit the lock.
    #[error("invalid lock request: {reason}")]
    InvalidLockRequest {
        /// Why.
        reason: String,
    },
    /// A watch pattern that is not a valid glob.
    #[error("invalid glob pattern {pattern:?}: {reason}")]
    InvalidGlob {
        /// The pattern as given.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A value is larger than the configured limit.
    #[error("value of {len} bytes for {path:?} is larger than the limit of {max} bytes")]
    ValueTooLarge {
        /// The node the value was meant for.
        path: String,
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The node already exists.
    #[error("node {path:?} already exists")]
    NodeExists {
        /// The node.
        path: String,
    },
    /// The node does not exist.
    #[error("node {path:?} does not exist")]
    NoNode {
        /// The node.
        path: String,
    },
    /// The parent of a node to be created does not exist.
    #[error(
        "cannot create {path:?}: its parent {parent:?} does not exist; create the parent first"
    )]
    NoParent {
        /// The node to be created.
        path: String,
        /// Its missing parent.
        parent: String,
    },
    /// The parent of a node to be created is ephemeral.
    #[error(
        "cannot create {path:?}: its parent {parent:?} is ephemeral, and ephemeral nodes cannot have children"
    )]
    EphemeralParent {
        /// The node to be created.
        path: String,
        /// Its ephemeral parent.
        parent: String,
    },
    /// A non-recursive delete of a node with children.
    #[error("node {path:?} has {children} children; delete them first or delete recursively")]
    NotEmpty {
        /// The node.
        path: String,
        /// How many children it has.
        children: u64,
    },
    /// A conditional write whose expected version is not the node's version.
    #[error(
        "node {path:?} is at version {actual}, not the expected {expected}; re-read it and retry"
    )]
    BadVersion {
        /// The node.
        path: String,
        /// The version the request expected.
        expected: u64,
        /// The node's version.
        actual: u64,
    },
    /// The root node cannot be deleted.
    #[error("the root node \"/\" cannot be deleted")]
    RootNotDeletable,
    /// The combination of creation flags is not allowed.
    #[error("invalid create mode: {reason}")]
    InvalidCreateMode {
        /// Why.
        reason: String,
    },
    /// A parent's sequential counter would pass 9,999,999,999.
    #[error(
        "parent {parent:?} has used all 10-digit sequence numbers; create sequential nodes under a new parent"
    )]
    SequenceOverflow {
        /// The parent whose counter is exhausted.
        parent: String,
    },
    /// An ephemeral node was requested outside a session.
    #[error("ephemeral node {path:?} needs a session to own it; open a session first")]
    SessionRequired {
        /// The node.
        path: String,
    },
    /// The session does not exist: it was never opened, was closed, or expired.
    #[error("session {id} does not exist or has expired; open a new session")]
    SessionExpired {
        /// The session.
        id: SessionId,
    },
    /// A leader's decision carried into a later term than the one it was made in.
    #[error(
        "refused: decided in raft term {decided} but appended in term {appended}; the leader changed in between"
    )]
    StaleTerm {
        /// The term the decision was made in.
        decided: u64,
        /// The term of the log entry.
        appended: u64,
    },
    /// A session ttl outside the configured range.
    #[error("session ttl of {ttl_ms} ms is outside the allowed range {min_ms}..={max_ms} ms")]
    InvalidTtl {
        /// The ttl asked for.
        ttl_ms: u64,
        /// The smallest ttl allowed.
        min_ms: u64,
        /// The largest ttl allowed.
        max_ms: u64,
    },
    /// A request id below what the session still remembers: its response was already
    /// acknowledged or evicted, so it cannot be answered exactly once.
    #[error(
        "request {seq} of session {session} is older than the oldest remembered request {floor}; its response is gone, so it was not applied again"
    )]
    StaleRequest {
        /// The session.
        session: SessionId,
        /// The request's sequence number.
        seq: u64,
        /// The lowest sequence number still remembered.
        floor: u64,
    },
    /// A request id that is not allowed (sequence numbers start at 1).
    #[error("invalid request id: {reason}")]
    InvalidRequestId {
        /// Why.
        reason: String,
    },
    /// A transaction with more operations or compares than the limit.
    #[error("transaction has {count} {what}, more than the limit of {max}; split it")]
    TxnTooLarge {
        /// "operations" or "compares".
        what: String,
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An operation of a transaction failed; nothing in the transaction was applied.
    #[error("transaction operation {index} failed, nothing was applied: {error}")]
    TxnOpFailed {
        /// The index of the failing operation.
        index: u32,
        /// Why it failed.
        error: Box<CoreError>,
    },
    /// A snapshot or log entry could not be decoded.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The decoder's message.
        reason: String,
    },
    /// A client write under the subtree warden keeps for itself.
    #[error(
        "{path:?} is under {reserved}, which warden keeps for itself (the access policy is {policy}); change the policy with `warden acl apply FILE`"
    , reserved = crate::acl::RESERVED_PREFIX, policy = crate::acl::POLICY_PATH)]
    Reserved {
        /// The path the client named.
        path: String,
    },
    /// An access policy that does not parse; the policy in force stays.
    #[error("the access policy was refused, and the one in force stays: {error}")]
    InvalidPolicy {
        /// What is wrong, with its line.
        error: PolicyProblem,
    },
    /// An identity already has as many live sessions as the limit allows.
    #[error(
        "{} already has {count} live sessions, the limit (limits.max_sessions_per_identity) is {max}; close sessions it no longer needs, or raise the limit in the founder's [limits] before forming the cluster",
        identity_name(identity)
    )]
    TooManySessions {
        /// The identity ("" for clients without a certificate).
        identity: String,
        /// Its live sessions.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A lock already has as many holders and waiters as the limit allows.
    #[error(
        "the lock {path:?} already has {waiters} sessions holding or waiting, the limit (limits.max_waiters_per_lock) is {max}; retry later, or spread the work over more locks"
    )]
    TooManyWaiters {
        /// The lock.
        path: String,
        /// Its holders and waiters.
        waiters: usize,
        /// The limit.
        max: usize,
    },
    /// A transaction larger in bytes than the limit.
    #[error(
        "transaction is {bytes} bytes (paths and values), more than the limit (limits.max_txn_bytes) of {max}; split it"
    )]
    TxnBytesTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A resource kind's call that cannot be made.
    #[error("invalid resource request: {reason}")]
    InvalidResourceRequest {
        /// What is wrong and what to do.
        reason: String,
    },
    /// No resource kind at the path.
    #[error("there is no resource kind at {path:?}; make it with `warden resource init {path}`")]
    NoResource {
        /// The path.
        path: String,
    },
    /// An acquire that asked not to wait, on a kind that is rotating.
    #[error(
        "the resource kind {path:?} is rotating from version {from} to {to}: acquisitions wait for the switch; acquire without --no-wait-while-draining to queue for version {to}"
    )]
    Draining {
        /// The kind.
        path: String,
        /// The version it rotates from.
        from: String,
        /// The version it rotates to.
        to: String,
    },
    /// A recipe call on a path that holds something else (a plain node, another recipe).
    #[error(
        "{path:?} is {is}, not a {asked}; use the {asked} calls on a path that is not in use, or the calls of what is there"
    )]
    WrongRecipe {
        /// The path.
        path: String,
        /// What it is ("a plain node", "a lock", ...).
        is: String,
        /// The recipe the call is for.
        asked: String,
    },
    /// An acquire whose wait would close a cycle of sessions waiting for each other (see
    /// [`crate::deadlock`]); it was refused, and nothing changed.
    #[error(
        "acquiring {:?} would deadlock, so it was refused and nothing was changed: {}; release a lock this session holds or waits for and try again, or take locks in one order everywhere",
        cycle.first().map_or("", |s| s.path.as_str()),
        describe(cycle)
    )]
    Deadlock {
        /// The cycle, starting with the refused session and the lock it asked for: each
        /// session waits on its lock for the next one (the last for the first).
        cycle: Vec<CycleStep>,
    },
    /// An acquire whose owner is not the one of the session's place in the lock: another
    /// owner, or an owner where the place has none (or none where it has one). A session's
    /// place in a lock is one hold, whoever's it is.
    #[error(
        "session {session} already {what} the lock {path:?} {}, and this acquire asks {}; a session has one place in a lock, counted for one owner: release that place first (every count of it), or take the lock in another session",
        owned(held),
        owned(asked),
        what = if *granted { "holds" } else { "waits for" }
    )]
    OtherOwner {
        /// The lock.
        path: String,
        /// The session.
        session: SessionId,
        /// Whether its place holds the lock (rather than waits).
        granted: bool,
        /// The owner of its place (`None`: it is not reentrant).
        held: Option<String>,
        /// The owner the acquire named (`None`: none).
        asked: Option<String>,
    },
    /// A reentrant acquire past the most acquires a hold counts.
    #[error(
        "owner {owner:?} of session {session} holds the lock {path:?} {max} times, the most a hold counts; release it first (a count this high is most likely an acquire whose release never came)"
    )]
    TooManyHolds {
        /// The lock.
        path: String,
        /// The session.
        session: SessionId,
        /// The hold's owner.
        owner: String,
        /// The most acquires a hold counts.
        max: u32,
    },
    /// A command that would grow the state past the cluster's data-size quota.
    #[error(
        "the cluster's data-size quota is used up: the data takes {used} bytes, this request needs {needed} more, the quota ([space] quota_backend_bytes) is {quota}; delete data (nodes, sessions, locks) no longer needed, or raise the quota: set [space] quota_backend_bytes in every member's configuration and restart them one at a time"
    )]
    QuotaExceeded {
        /// The counted size before the command.
        used: u64,
        /// How much the command would have added.
        needed: u64,
        /// The quota.
        quota: u64,
    },
}

/// An owner (of a lock's place, or asked by an acquire) as a message names it.
fn owned(owner: &Option<String>) -> String {
    match owner {
        Some(o) => format!("as owner {o:?}"),
        None => "without an owner (not reentrantly)".to_owned(),
    }
}

/// Why a policy was refused, kept serializable for the replicated state (a retry returns
/// the cached outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}{reason}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct PolicyProblem {
    /// The line of the file, from 1.
    pub line: Option<u64>,
    /// What is wrong and what to do.
    pub reason: String,
}

impl From<crate::acl::PolicyError> for CoreError {
    fn from(e: crate::acl::PolicyError) -> Self {
        CoreError::InvalidPolicy {
            error: PolicyProblem { line: e.line.map(|l| l as u64), reason: e.reason },
        }
    }
}

/// One session of a deadlock cycle and the lock it waits on: it waits there for the next
/// step's session (the last step's, for the first's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleStep {
    /// The session.
    pub session: SessionId,
    /// The client identity that opened it ("" for clients without a certificate).
    pub identity: String,
    /// The lock it waits on.
    pub path: String,
}

/// A cycle for people: `session 3 ("alice") waits for "/a" behind session 4 (anonymous);
/// session 4 (anonymous) waits for "/b" behind session 3 ("alice")`.
fn describe(cycle: &[CycleStep]) -> String {
    let who = |s: &CycleStep| {
        if s.identity.is_empty() {
            format!("session {} (anonymous)", s.session)
        } else {
            format!("session {} ({:?})", s.session, s.identity)
        }
    };
    let mut text = Vec::with_capacity(cycle.len());
    for (i, step) in cycle.iter().enumerate() {
        let next = cycle.get(i + 1).or(cycle.first()).unwrap_or(step);
        text.push(format!("{} waits for {:?} behind {}", who(step), step.path, who(next)));
    }
    text.join("; ")
}

/// An identity as a message names it.
fn identity_name(identity: &str) -> String {
    if identity.is_empty() {
        "the anonymous identity (clients without a certificate share it)".to_owned()
    } else {
        format!("identity {identity:?}")
    }
}

impl CoreError {
    pub(crate) fn no_node(path: &str) -> Self {
        CoreError::NoNode { path: path.to_owned() }
    }
}
