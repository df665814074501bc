//! The one place that turns errors into gRPC statuses.
//!
//! Codes follow their meaning: a missing node is NOT_FOUND, a version conflict ABORTED, a
//! deadlock victim ABORTED too (both are retried at a higher level, after re-reading or
//! letting go of a lock, not as they are), a state that forbids the operation FAILED_PRECONDITION, bad input (a limit on a request's
//! size or shape included) INVALID_ARGUMENT, a quota used up (sessions per identity,
//! waiters per lock, watchers per connection) RESOURCE_EXHAUSTED, and a member that cannot
//! serve (not the leader, no quorum) UNAVAILABLE with the leader's client address in the
//! `warden-leader` metadata. Every status also carries the error's kind in
//! `warden-error` for programs.

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use warden_core::CoreError;
use warden_proto::convert::ConvertError;
use warden_proto::{ERROR_METADATA, ErrorKind, LEADER_METADATA};
use warden_storage::WardenNode;

fn with_kind(mut status: Status, kind: ErrorKind) -> Status {
    status.metadata_mut().insert(ERROR_METADATA, MetadataValue::from_static(kind.as_str()));
    status
}

/// The error kind a status carries (`warden-error`), None if it has none (a status the
/// transport made) or one this member does not know.
pub(crate) fn kind(status: &Status) -> Option<ErrorKind> {
    ErrorKind::parse(status.metadata().get(ERROR_METADATA)?.to_str().ok()?)
}

/// Whether a status carries a `warden-error` kind at all.
pub(crate) fn has_kind(status: &Status) -> bool {
    status.metadata().contains_key(ERROR_METADATA)
}

/// A core error as a status.
pub(crate) fn core_error(error: &CoreError) -> Status {
    let (code, kind) = match error {
        CoreError::InvalidPath { .. } => (Code::InvalidArgument, ErrorKind::InvalidPath),
        CoreError::InvalidGlob { .. } => (Code::InvalidArgument, ErrorKind::InvalidGlob),
        CoreError::InvalidLockRequest { .. } => {
            (Code::InvalidArgument, ErrorKind::InvalidLockRequest)
        }
        CoreError::NotHeld { .. } => (Code::FailedPrecondition, ErrorKind::NotHeld),
        CoreError::HoldEnded { .. } => (Code::FailedPrecondition, ErrorKind::HoldEnded),
        CoreError::LockInUse { .. } => (Code::FailedPrecondition, ErrorKind::LockInUse),
        CoreError::LockManaged { .. } => (Code::FailedPrecondition, ErrorKind::LockManaged),
        CoreError::StaleTerm { .. } => (Code::Aborted, ErrorKind::StaleTerm),
        CoreError::ValueTooLarge { .. } => (Code::InvalidArgument, ErrorKind::ValueTooLarge),
        CoreError::InvalidCreateMode { .. } => {
            (Code::InvalidArgument, ErrorKind::InvalidCreateMode)
        }
        CoreError::InvalidTtl { .. } => (Code::InvalidArgument, ErrorKind::InvalidTtl),
        CoreError::InvalidRequestId { .. } => (Code::InvalidArgument, ErrorKind::InvalidRequestId),
        CoreError::TxnTooLarge { .. } => (Code::InvalidArgument, ErrorKind::TxnTooLarge),
        CoreError::RootNotDeletable => (Code::InvalidArgument, ErrorKind::RootNotDeletable),
        CoreError::NodeExists { .. } => (Code::AlreadyExists, ErrorKind::NodeExists),
        CoreError::NoNode { .. } => (Code::NotFound, ErrorKind::NoNode),
        CoreError::NoParent { .. } => (Code::FailedPrecondition, ErrorKind::NoParent),
        CoreError::EphemeralParent { .. } => (Code::FailedPrecondition, ErrorKind::EphemeralParent),
        CoreError::NotEmpty { .. } => (Code::FailedPrecondition, ErrorKind::NotEmpty),
        CoreError::SequenceOverflow { .. } => {
            (Code::FailedPrecondition, ErrorKind::SequenceOverflow)
        }
        CoreError::SessionRequired { .. } => (Code::FailedPrecondition, ErrorKind::SessionRequired),
        CoreError::SessionExpired { .. } => (Code::FailedPrecondition, ErrorKind::SessionExpired),
        CoreError::StaleRequest { .. } => (Code::FailedPrecondition, ErrorKind::StaleRequest),
        CoreError::BadVersion { .. } => (Code::Aborted, ErrorKind::BadVersion),
        CoreError::TxnOpFailed { error: inner, .. } => {
            // The inner error's code; the message names the op's index.
            let code = core_error(inner).code();
            return with_kind(Status::new(code, error.to_string()), ErrorKind::TxnOpFailed);
        }
        CoreError::Decode { .. } => (Code::Internal, ErrorKind::Decode),
        CoreError::Reserved { .. } => (Code::PermissionDenied, ErrorKind::Reserved),
        CoreError::InvalidPolicy { .. } => (Code::InvalidArgument, ErrorKind::InvalidPolicy),
        CoreError::TooManySessions { .. } => (Code::ResourceExhausted, ErrorKind::TooManySessions),
        CoreError::TooManyWaiters { .. } => (Code::ResourceExhausted, ErrorKind::TooManyWaiters),
        CoreError::TxnBytesTooLarge { .. } => (Code::InvalidArgument, ErrorKind::TxnBytesTooLarge),
        CoreError::WrongRecipe { .. } => (Code::FailedPrecondition, ErrorKind::WrongRecipe),
        // The victim of a concurrency conflict, as a refused transaction is: not to be sent
        // again as it is, but after the caller lets go of something (gRPC's ABORTED: retry
        // at a higher level). FAILED_PRECONDITION would say the state must be fixed first,
        // and nothing the caller did is invalid.
        CoreError::Deadlock { .. } => (Code::Aborted, ErrorKind::Deadlock),
        CoreError::InvalidResourceRequest { .. } => {
            (Code::FailedPrecondition, ErrorKind::InvalidResourceRequest)
        }
        CoreError::NoResource { .. } => (Code::NotFound, ErrorKind::NoResource),
        CoreError::Draining { .. } => (Code::FailedPrecondition, ErrorKind::Draining),
        // The session's place is another owner's: that owner releases it first.
        CoreError::OtherOwner { .. } => (Code::FailedPrecondition, ErrorKind::OtherOwner),
        CoreError::TooManyHolds { .. } => (Code::ResourceExhausted, ErrorKind::TooManyHolds),
        CoreError::QuotaExceeded { .. } => (Code::ResourceExhausted, ErrorKind::QuotaExceeded),
    };
    with_kind(Status::new(code, error.to_string()), kind)
}

/// INTERNAL for an output of the state machine that does not answer the command sent: a
/// bug, reported rather than guessed around.
pub(crate) fn unexpected(output: &warden_core::Output) -> Status {
    server(
        Code::Internal,
        ErrorKind::Internal,
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
    let mut status = with_kind(Status::unavailable(message), ErrorKind::NotLeader);
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
            with_kind(Status::failed_precondition(e.to_string()), ErrorKind::Membership)
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
            ErrorKind::NoQuorum,
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
        ErrorKind::NoQuorum,
    )
}

/// A status the server made itself (not from the core), with its kind, so that clients can
/// tell it from a transport failure.
pub(crate) fn server(code: Code, kind: ErrorKind, message: impl Into<String>) -> Status {
    with_kind(Status::new(code, message.into()), kind)
}

/// INVALID_ARGUMENT for a request the server cannot read (a missing field, an unknown
/// enum value): `message` names the field and what is wrong with it.
pub(crate) fn invalid(message: impl Into<String>) -> Status {
    server(Code::InvalidArgument, ErrorKind::InvalidArgument, message)
}

/// INVALID_ARGUMENT for a request with a field this member cannot convert (an unknown
/// enum value, a oneof left unset): its text names the field, the value and what is
/// accepted.
pub(crate) fn unconvertible(e: ConvertError) -> Status {
    invalid(e.to_string())
}

/// UNAVAILABLE from a member whose raft has stopped, before anything was proposed: safe
/// to retry anywhere.
pub(crate) fn member_stopped() -> Status {
    with_kind(
        Status::unavailable(
            "this member has stopped (shut down or failed); nothing was proposed; use another member",
        ),
        ErrorKind::MemberStopped,
    )
}

fn stopped(why: &str) -> Status {
    with_kind(
        Status::unavailable(format!("this member's raft has stopped ({why}); use another member")),
        ErrorKind::Stopped,
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
        assert_eq!(kind(&status), Some(ErrorKind::TxnOpFailed));
        // Limits: a request's size or shape is bad input, a quota used up is exhausted.
        let quota = CoreError::TooManySessions { identity: String::new(), count: 2, max: 2 };
        assert_eq!(core_error(&quota).code(), Code::ResourceExhausted);
        let waiters = CoreError::TooManyWaiters { path: "/l".into(), waiters: 1, max: 1 };
        assert_eq!(core_error(&waiters).code(), Code::ResourceExhausted);
        let bytes = CoreError::TxnBytesTooLarge { bytes: 2, max: 1 };
        assert_eq!(core_error(&bytes).code(), Code::InvalidArgument);
        // A deadlock victim is aborted, with the cycle in the message.
        let step = |session, path: &str| warden_core::deadlock::CycleStep {
            session,
            identity: String::new(),
            path: path.into(),
        };
        let deadlock = CoreError::Deadlock { cycle: vec![step(1, "/a"), step(2, "/b")] };
        let status = core_error(&deadlock);
        assert_eq!(status.code(), Code::Aborted);
        assert_eq!(kind(&status), Some(ErrorKind::Deadlock));
        assert!(
            status.message().contains("session 2 (anonymous) waits for \"/b\""),
            "{}",
            status.message()
        );
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
