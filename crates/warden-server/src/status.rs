//! The one place that turns errors into gRPC statuses.
//!
//! Codes follow their meaning: a missing node is NOT_FOUND, a version conflict ABORTED, a
//! state that forbids the operation FAILED_PRECONDITION, bad input (a limit on a request's
//! size or shape included) INVALID_ARGUMENT, a quota used up (sessions per identity,
//! waiters per lock, watchers per connection) RESOURCE_EXHAUSTED, and a member that cannot
//! serve (not the leader, no quorum) UNAVAILABLE with the leader's client address in the
//! `warden-leader` metadata. Every status also carries the error's kind in
//! `warden-error` for programs.

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use warden_core::CoreError;
use warden_proto::LEADER_METADATA;
use warden_storage::WardenNode;

/// The metadata key of the error's kind.
pub const ERROR_METADATA: &str = "warden-error";

fn with_kind(mut status: Status, kind: &str) -> Status {
    if let Ok(value) = MetadataValue::try_from(kind) {
        status.metadata_mut().insert(ERROR_METADATA, value);
    }
    status
}

/// The error kind a status carries (`warden-error`), empty if none.
pub(crate) fn kind(status: &Status) -> &str {
    status.metadata().get(ERROR_METADATA).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// A core error as a status.
pub(crate) fn core_error(error: &CoreError) -> Status {
    let (code, kind) = match error {
        CoreError::InvalidPath { .. } => (Code::InvalidArgument, "InvalidPath"),
        CoreError::InvalidGlob { .. } => (Code::InvalidArgument, "InvalidGlob"),
        CoreError::InvalidLockRequest { .. } => (Code::InvalidArgument, "InvalidLockRequest"),
        CoreError::NotHeld { .. } => (Code::FailedPrecondition, "NotHeld"),
        CoreError::HoldEnded { .. } => (Code::FailedPrecondition, "HoldEnded"),
        CoreError::LockInUse { .. } => (Code::FailedPrecondition, "LockInUse"),
        CoreError::LockManaged { .. } => (Code::FailedPrecondition, "LockManaged"),
        CoreError::StaleTerm { .. } => (Code::Aborted, "StaleTerm"),
        CoreError::ValueTooLarge { .. } => (Code::InvalidArgument, "ValueTooLarge"),
        CoreError::InvalidCreateMode { .. } => (Code::InvalidArgument, "InvalidCreateMode"),
        CoreError::InvalidTtl { .. } => (Code::InvalidArgument, "InvalidTtl"),
        CoreError::InvalidRequestId { .. } => (Code::InvalidArgument, "InvalidRequestId"),
        CoreError::TxnTooLarge { .. } => (Code::InvalidArgument, "TxnTooLarge"),
        CoreError::RootNotDeletable => (Code::InvalidArgument, "RootNotDeletable"),
        CoreError::NodeExists { .. } => (Code::AlreadyExists, "NodeExists"),
        CoreError::NoNode { .. } => (Code::NotFound, "NoNode"),
        CoreError::NoParent { .. } => (Code::FailedPrecondition, "NoParent"),
        CoreError::EphemeralParent { .. } => (Code::FailedPrecondition, "EphemeralParent"),
        CoreError::NotEmpty { .. } => (Code::FailedPrecondition, "NotEmpty"),
        CoreError::SequenceOverflow { .. } => (Code::FailedPrecondition, "SequenceOverflow"),
        CoreError::SessionRequired { .. } => (Code::FailedPrecondition, "SessionRequired"),
        CoreError::SessionExpired { .. } => (Code::FailedPrecondition, "SessionExpired"),
        CoreError::StaleRequest { .. } => (Code::FailedPrecondition, "StaleRequest"),
        CoreError::BadVersion { .. } => (Code::Aborted, "BadVersion"),
        CoreError::TxnOpFailed { error: inner, .. } => {
            // The inner error's code; the message names the op's index.
            let code = core_error(inner).code();
            return with_kind(Status::new(code, error.to_string()), "TxnOpFailed");
        }
        CoreError::Decode { .. } => (Code::Internal, "Decode"),
        CoreError::Reserved { .. } => (Code::PermissionDenied, "Reserved"),
        CoreError::InvalidPolicy { .. } => (Code::InvalidArgument, "InvalidPolicy"),
        CoreError::TooManySessions { .. } => (Code::ResourceExhausted, "TooManySessions"),
        CoreError::TooManyWaiters { .. } => (Code::ResourceExhausted, "TooManyWaiters"),
        CoreError::TxnBytesTooLarge { .. } => (Code::InvalidArgument, "TxnBytesTooLarge"),
    };
    with_kind(Status::new(code, error.to_string()), kind)
}

/// INTERNAL for an output of the state machine that does not answer the command sent: a
/// bug, reported rather than guessed around.
pub(crate) fn unexpected(output: &warden_core::Output) -> Status {
    server(
        Code::Internal,
        "Internal",
        format!("the state machine answered with an unexpected output: {output:?}"),
    )
}

/// UNAVAILABLE pointing at the leader, if one is known.
pub(crate) fn not_leader(forward: &ForwardToLeader<u64, WardenNode>) -> Status {
    let leader = forward.leader_node.as_ref().map(|n| n.client_addr.clone());
    let message = match (&forward.leader_id, &leader) {
        (Some(id), Some(addr)) => format!("this member is not the leader; retry on member {id} at {addr}"),
        _ => "this member is not the leader and no leader is known (an election may be running); retry shortly"
            .to_owned(),
    };
    let mut status = with_kind(Status::unavailable(message), "NotLeader");
    if let Ok(value) = MetadataValue::try_from(leader.unwrap_or_default()) {
        status.metadata_mut().insert(LEADER_METADATA, value);
    }
    status
}

/// A failed raft write as a status.
pub(crate) fn write_error(error: RaftError<u64, ClientWriteError<u64, WardenNode>>) -> Status {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(&f),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            with_kind(Status::failed_precondition(e.to_string()), "Membership")
        }
        RaftError::Fatal(f) => stopped(&f.to_string()),
    }
}

/// A failed read-index as a status.
pub(crate) fn read_error(error: RaftError<u64, CheckIsLeaderError<u64, WardenNode>>) -> Status {
    match error {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => not_leader(&f),
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)) => with_kind(
            Status::unavailable(format!(
                "the leader cannot reach a quorum to confirm a linearizable read ({e}); retry, or read with serializable"
            )),
            "NoQuorum",
        ),
        RaftError::Fatal(f) => stopped(&f.to_string()),
    }
}

/// UNAVAILABLE from a leader that has not heard from a quorum for `silent_ms`, before
/// anything was proposed: safe to retry, on this member or another.
pub(crate) fn no_quorum(silent_ms: u64) -> Status {
    with_kind(
        Status::unavailable(format!(
            "the leader cannot reach a quorum (no answer from a majority for {silent_ms} ms); nothing was proposed; retry once the members are back (see warden cluster status)"
        )),
        "NoQuorum",
    )
}

/// A status the server made itself (not from the core), with its kind, so that clients can
/// tell it from a transport failure.
pub(crate) fn server(code: Code, kind: &str, message: impl Into<String>) -> Status {
    with_kind(Status::new(code, message.into()), kind)
}

/// UNAVAILABLE from a member whose raft has stopped, before anything was proposed: safe
/// to retry anywhere.
pub(crate) fn member_stopped() -> Status {
    with_kind(
        Status::unavailable(
            "this member has stopped (shut down or failed); nothing was proposed; use another member",
        ),
        "MemberStopped",
    )
}

fn stopped(why: &str) -> Status {
    with_kind(
        Status::unavailable(format!("this member's raft has stopped ({why}); use another member")),
        "Stopped",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_meaning() {
        assert_eq!(core_error(&CoreError::NoNode { path: "/a".into() }).code(), Code::NotFound);
        assert_eq!(
            core_error(&CoreError::NodeExists { path: "/a".into() }).code(),
            Code::AlreadyExists
        );
        let conflict = CoreError::BadVersion { path: "/a".into(), expected: 1, actual: 2 };
        assert_eq!(core_error(&conflict).code(), Code::Aborted);
        let txn = CoreError::TxnOpFailed { index: 1, error: Box::new(conflict) };
        let status = core_error(&txn);
        assert_eq!(status.code(), Code::Aborted);
        assert!(status.message().contains("nothing was applied"));
        assert!(status.message().contains("operation 1 failed"), "{}", status.message());
        assert_eq!(
            status.metadata().get(ERROR_METADATA).and_then(|v| v.to_str().ok()),
            Some("TxnOpFailed")
        );
        // Limits: a request's size or shape is bad input, a quota used up is exhausted.
        let quota = CoreError::TooManySessions { identity: String::new(), count: 2, max: 2 };
        assert_eq!(core_error(&quota).code(), Code::ResourceExhausted);
        let waiters = CoreError::TooManyWaiters { path: "/l".into(), waiters: 1, max: 1 };
        assert_eq!(core_error(&waiters).code(), Code::ResourceExhausted);
        let bytes = CoreError::TxnBytesTooLarge { bytes: 2, max: 1 };
        assert_eq!(core_error(&bytes).code(), Code::InvalidArgument);
    }

    #[test]
    fn not_leader_carries_the_leader_address() {
        let node =
            WardenNode { raft_addr: "127.0.0.1:2".into(), client_addr: "127.0.0.1:1".into() };
        let status = not_leader(&ForwardToLeader::new(3, node));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status.metadata().get(LEADER_METADATA).and_then(|v| v.to_str().ok()),
            Some("127.0.0.1:1")
        );
        assert!(status.message().contains("member 3"));
        let unknown = not_leader(&ForwardToLeader::empty());
        assert_eq!(unknown.metadata().get(LEADER_METADATA).and_then(|v| v.to_str().ok()), Some(""));
    }
}
