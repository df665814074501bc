//! The replicated commands: what a log entry asks the state machine to do.
//!
//! A log entry holds a [`LogCommand`], a versioned envelope around a [`Request`], so the
//! format can evolve: a new variant is added for a new version and old entries still decode.
//! Reads are not commands; they are answered from [`State`](crate::State) directly.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::ids::RequestId;
use crate::ids::SessionId;
use crate::limits::Limits;
use crate::node::CreateMode;
use crate::queue::{LockKind, Scope, WaitMode};

/// What an acquire asks for beyond its kind and mode (issue 15): the default is a plain
/// lock of the path alone, at the lowest priority, not reentrant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquireOptions {
    /// What the hold covers: the path alone, or its subtree.
    pub scope: Scope,
    /// Higher is granted first (0 to [`crate::queue::MAX_PRIORITY`]).
    pub priority: u32,
    /// Makes the acquire reentrant: the same session and owner taking the lock again
    /// adds to a hold count instead of queueing.
    pub owner: Option<String>,
}

/// One command with the session it is made in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The session the request is made in: it owns the ephemeral nodes the request creates,
    /// and it must be live for the request to apply.
    pub session: Option<SessionId>,
    /// Makes a retry return the first response instead of applying twice. Needs a session.
    pub id: Option<RequestId>,
    /// What to do.
    pub command: Command,
}

impl Request {
    /// A request outside any session.
    pub fn new(command: Command) -> Request {
        Request { session: None, id: None, command }
    }

    /// A request made in `session`.
    pub fn in_session(session: SessionId, command: Command) -> Request {
        Request { session: Some(session), id: None, command }
    }

    /// This request with a request id.
    pub fn with_id(self, seq: u64, lowest_pending: u64) -> Request {
        Request { id: Some(RequestId { seq, lowest_pending }), ..self }
    }
}

/// A mutating command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Opens a session; its id is the entry's log index.
    OpenSession {
        /// Lifetime without keepalives, in ms.
        ttl_ms: u64,
        /// The client identity.
        identity: String,
    },
    /// Closes a session, deleting its ephemeral nodes.
    CloseSession {
        /// The session.
        id: SessionId,
    },
    /// Ends sessions whose deadline passed on the leader, deleting their ephemeral nodes.
    /// Sessions already gone are skipped.
    ExpireSessions {
        /// The sessions.
        ids: Vec<SessionId>,
        /// The raft term in which the leader decided the expiry. The command is refused
        /// unless its log entry was appended in that same term, so a leader that lost and
        /// regained leadership cannot act on deadlines it tracked before.
        term: u64,
    },
    /// Records each session's remaining time to live. Sessions already gone are skipped.
    ///
    /// No longer proposed (issue 11): a new leader gives every session a full ttl from its
    /// takeover, because starting from a checkpoint could end a session that the old
    /// leader renewed after it. The variant stays, in its place, so that logs and
    /// snapshots written before still decode, and it applies as it always did so that
    /// replaying them gives the same state.
    CheckpointSessions {
        /// `(session, remaining ms)` pairs.
        remaining: Vec<(SessionId, u64)>,
    },
    /// Queues the request's session on the lock at `path` (creating the lock), or
    /// returns its place if it already holds or waits there. Needs a session.
    Acquire {
        /// The lock's path (missing ancestors are created as containers).
        path: String,
        /// The kind of lock; must match the lock's if it exists.
        kind: LockKind,
        /// What the session asks for.
        mode: WaitMode,
        /// Lock-delay for a new lock, ms (at most 60,000); ignored if the lock exists.
        delay_ms: u64,
        /// Scope, priority and reentrancy.
        options: AcquireOptions,
    },
    /// Takes the request's session out of the lock at `path`: the hold or wait `hold`
    /// names (a release, or a cancelled or timed-out wait). Only this, [`Command::Revoke`]
    /// (and a delete that asks to revoke) and the end of a session remove a waiter.
    Release {
        /// The lock's path.
        path: String,
        /// Which hold or wait ends.
        hold: HoldRef,
    },
    /// Ends the lock-delays that are over (proposed by the leader when one ends).
    WakeLocks,
    /// Creates a node.
    Create {
        /// Its path; for a sequential node, the prefix the counter is appended to.
        path: String,
        /// Its value.
        data: Bytes,
        /// Its kind and whether it is sequential.
        mode: CreateMode,
    },
    /// Sets a node's value.
    Set {
        /// The node.
        path: String,
        /// The new value.
        data: Bytes,
        /// Apply only if the node is at this version.
        expected_version: Option<u64>,
    },
    /// Deletes a node.
    Delete {
        /// The node.
        path: String,
        /// Apply only if the node is at this version.
        expected_version: Option<u64>,
        /// Delete its descendants too; without it a node with children is refused.
        recursive: bool,
        /// Revoke the holds and waits of the locks the delete reaches (as
        /// [`Command::Revoke`] does, lock-delay included) instead of refusing it.
        revoke_locks: bool,
    },
    /// Compares, then operations, all or nothing.
    Txn {
        /// All must hold for the operations to run.
        compares: Vec<Compare>,
        /// Applied in order; if one fails none is applied.
        ops: Vec<TxnOp>,
    },
    /// An operator takes `session` out of the lock at `path`, whether it holds or waits
    /// (breaking a stuck hold). A revoked holder did not let go, so the lock's lock-delay
    /// applies as on an expiry. Needs no session of its own.
    Revoke {
        /// The lock's path.
        path: String,
        /// The session to take out.
        session: SessionId,
    },
    /// Puts an access policy in force (the text of an ACL file, checked whole: a bad one is
    /// refused and the policy in force stays). Kept at [`crate::acl::POLICY_PATH`].
    SetPolicy {
        /// The policy file's text.
        text: String,
    },
    /// Sets the limits every later command is checked against. Proposed once, by the
    /// founder when it forms the cluster, with the limits of its configuration, so that
    /// every replica checks the same limits. Nodes, sessions and locks already there are
    /// kept even if they are over the new limits. Needs no session.
    SetLimits {
        /// The new limits.
        limits: Limits,
    },
    /// Queues the request's session as a candidate in the election at `path` (creating
    /// the election), or returns its place. The first candidate leads. Needs a session.
    Campaign {
        /// The election's path (missing ancestors are created as containers).
        path: String,
        /// The candidate's value, announced while it leads.
        value: Bytes,
    },
    /// The leader (the request's session, with `token`) announces a new value.
    Proclaim {
        /// The election's path.
        path: String,
        /// The leader's token.
        token: u64,
        /// The new value.
        value: Bytes,
    },
    /// The leader (the request's session, with `token`) gives up the election.
    Resign {
        /// The election's path.
        path: String,
        /// The leader's token.
        token: u64,
    },
    /// Sets the barrier at `path`. Needs no session.
    SetBarrier {
        /// The barrier's path.
        path: String,
    },
    /// Removes the barrier at `path`, letting its waiters through. Needs no session.
    RemoveBarrier {
        /// The barrier's path.
        path: String,
    },
    /// Waits on the barrier at `path` in the request's session: passes at once if it is
    /// not set, queues otherwise.
    WaitBarrier {
        /// The barrier's path.
        path: String,
    },
    /// Enters the double barrier of `count` members at `path` in the request's session.
    EnterBarrier {
        /// The double barrier's path.
        path: String,
        /// Its number of members; must match an existing double barrier's.
        count: u32,
    },
    /// Takes the request's session out of the double barrier at `path`.
    LeaveBarrier {
        /// The double barrier's path.
        path: String,
    },
    /// Makes the resource kind at `path` at `version` (one already there stays as it is).
    /// Needs no session.
    InitResource {
        /// The kind's path.
        path: String,
        /// Its first version (one path segment).
        version: String,
    },
    /// Queues the request's session on the lock of `id` of the resource kind at `path`,
    /// in the version that grants now (or, while the kind rotates, the new one, or fails,
    /// as `draining` says). Needs a session.
    AcquireResource {
        /// The kind's path.
        path: String,
        /// The id (one path segment).
        id: String,
        /// The kind of lock, as for [`Command::Acquire`].
        kind: LockKind,
        /// What the session asks for.
        mode: WaitMode,
        /// Lock-delay for a new lock, ms.
        delay_ms: u64,
        /// What to do while the kind rotates.
        draining: WhileDraining,
    },
    /// Begins the rotation of the resource kind at `path` to version `to`. Needs no
    /// session; idempotent.
    BeginRotation {
        /// The kind's path.
        path: String,
        /// The new version (one path segment).
        to: String,
    },
    /// Forces the rotation under way: revokes every hold and wait left in the old version.
    ForceRotation {
        /// The kind's path.
        path: String,
    },
    /// Sets the cluster's data-size quota ([`crate::quota`]), kept at
    /// [`crate::quota::QUOTA_PATH`]; 0 removes it. Proposed by the founder when it forms
    /// the cluster, from its `[space] quota_backend_bytes`. Needs no session. Added last,
    /// so that the log entries written before it still decode.
    SetQuota {
        /// The quota, in bytes; 0 is none.
        bytes: u64,
    },
}

/// What an acquire of an id of a resource kind does while the kind drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WhileDraining {
    /// Queue in the new version's lock, granted after the switch.
    Wait,
    /// Fail at once with [`CoreError::Draining`](crate::CoreError::Draining).
    Fail,
}

/// Which of a session's places in a lock's queue a [`Command::Release`] ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldRef {
    /// Whatever the session has there, held or waiting.
    Any,
    /// The hold granted with this fencing token. A hold that already ended (released,
    /// revoked, gone with its session) is not confused with a later hold of the same
    /// session: the release changes nothing and fails with
    /// [`CoreError::HoldEnded`](crate::CoreError::HoldEnded).
    Token(u64),
    /// The wait of this waiter node, only while it is not granted: a grant that raced the
    /// cancel is kept, and the release answers it as [`Output::LockQueued`] with its token
    /// (so a caller cancelling a timed-out acquire learns it holds after all).
    ///
    /// [`Output::LockQueued`]: crate::Output::LockQueued
    Wait(String),
}

/// A condition on one node, evaluated before a transaction's operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The node.
    pub path: String,
    /// What must hold.
    pub check: Check,
}

/// What a [`Compare`] checks. A value check on a missing node is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Check {
    /// The node exists (`true`) or does not (`false`).
    Exists(bool),
    /// The node's data version compared with a value.
    Version(CompareOp, u64),
    /// The node's mod revision compared with a value.
    ModRevision(CompareOp, u64),
    /// The node's create revision compared with a value.
    CreateRevision(CompareOp, u64),
}

/// How a node's field is compared with the given value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// field == value
    Equal,
    /// field != value
    NotEqual,
    /// field < value
    Less,
    /// field > value
    Greater,
}

impl CompareOp {
    /// Whether `field <op> value` holds.
    pub fn holds(self, field: u64, value: u64) -> bool {
        match self {
            CompareOp::Equal => field == value,
            CompareOp::NotEqual => field != value,
            CompareOp::Less => field < value,
            CompareOp::Greater => field > value,
        }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// As [`Command::Create`].
    Create {
        /// The path or sequential prefix.
        path: String,
        /// The value.
        data: Bytes,
        /// Kind and sequential flag.
        mode: CreateMode,
    },
    /// As [`Command::Set`].
    Set {
        /// The node.
        path: String,
        /// The new value.
        data: Bytes,
        /// Apply only at this version.
        expected_version: Option<u64>,
    },
    /// As [`Command::Delete`].
    Delete {
        /// The node.
        path: String,
        /// Apply only at this version.
        expected_version: Option<u64>,
        /// Delete descendants too.
        recursive: bool,
        /// Revoke the locks the delete reaches instead of refusing it.
        revoke_locks: bool,
    },
}

/// The versioned envelope stored in the raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogCommand {
    /// Format 1.
    V1(Request),
    /// Format 1, several requests proposed together by a leader: applied in order, each as
    /// if it were an entry of its own with the same index, time and term (a session opened
    /// by the second one gets the next free id). Batching lets many concurrent writes share
    /// one log entry, one append and one replication message.
    Batch(Vec<Request>),
}

impl LogCommand {
    /// The requests, in the current format and in order.
    pub fn into_requests(self) -> Vec<Request> {
        match self {
            LogCommand::V1(r) => vec![r],
            LogCommand::Batch(rs) => rs,
        }
    }

    /// Encodes for the log.
    pub fn encode(&self) -> Result<Vec<u8>, CoreError> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).map_err(|e| {
            CoreError::Decode { what: "log command (encoding)".to_owned(), reason: e.to_string() }
        })
    }

    /// Decodes from the log.
    pub fn decode(bytes: &[u8]) -> Result<LogCommand, CoreError> {
        let (command, used) = crate::codec::decode_from_slice(bytes).map_err(|e| {
            CoreError::Decode { what: "log command".to_owned(), reason: e.to_string() }
        })?;
        if used != bytes.len() {
            return Err(CoreError::Decode {
                what: "log command".to_owned(),
                reason: format!("{} trailing bytes", bytes.len() - used),
            });
        }
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_ops() {
        assert!(CompareOp::Equal.holds(3, 3));
        assert!(!CompareOp::Equal.holds(3, 4));
        assert!(CompareOp::NotEqual.holds(3, 4));
        assert!(CompareOp::Less.holds(3, 4));
        assert!(!CompareOp::Less.holds(4, 4));
        assert!(CompareOp::Greater.holds(5, 4));
        assert!(!CompareOp::Greater.holds(4, 4));
    }

    #[test]
    fn log_command_round_trips_and_rejects_garbage() {
        let cmd = LogCommand::V1(
            Request::in_session(
                9,
                Command::Create {
                    path: "/a".into(),
                    data: Bytes::from_static(b"x"),
                    mode: CreateMode::EPHEMERAL,
                },
            )
            .with_id(2, 1),
        );
        let bytes = cmd.encode().ok();
        let decoded = bytes.as_deref().map(LogCommand::decode);
        assert_eq!(decoded, Some(Ok(cmd)));
        assert!(matches!(LogCommand::decode(&[0xff, 0xff, 0xff]), Err(CoreError::Decode { .. })));
        assert!(matches!(LogCommand::decode(&[]), Err(CoreError::Decode { .. })));
    }
}
