//! The kinds of error a member names in a status's `warden-error` metadata.
//!
//! Server and client both use this one enum, so a kind misspelt on either side does not
//! compile, where a string would have compiled and silently broken a retry or a lock
//! wait. Each kind's text on the wire is its variant's name, generated from the one list
//! below, so the two cannot drift apart.

/// Declares the kinds once: the enum, its wire text, its parser and the list of all.
macro_rules! error_kinds {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The kind of a member's error, carried in the `warden-error` metadata
        /// ([`ERROR_METADATA`](crate::ERROR_METADATA)) of every status a member makes, so
        /// that programs can tell errors apart (and tell a member's refusal from a
        /// transport failure, which has none).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $($(#[$doc])* $name,)*
        }

        impl ErrorKind {
            /// Every kind, for tests and documentation.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$name,)*];

            /// The kind as it is written in the metadata.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorKind::$name => stringify!($name),)*
                }
            }

            /// The kind written as `text`; None for a kind this build does not know (from
            /// a newer member) or text that is no kind at all.
            pub fn parse(text: &str) -> Option<ErrorKind> {
                match text {
                    $(stringify!($name) => Some(ErrorKind::$name),)*
                    _ => None,
                }
            }
        }
    };
}

error_kinds! {
    // From the core's errors.
    /// INVALID_ARGUMENT: a path that is not absolute, has empty or reserved segments, or is too deep.
    InvalidPath,
    /// INVALID_ARGUMENT: a watch glob that cannot be parsed.
    InvalidGlob,
    /// INVALID_ARGUMENT (or FAILED_PRECONDITION for a semaphore call on another kind of lock):
    /// a lock request that does not fit the lock.
    InvalidLockRequest,
    /// FAILED_PRECONDITION: a release of a hold the session does not have.
    NotHeld,
    /// FAILED_PRECONDITION: the hold has ended (released, revoked, or its session expired).
    HoldEnded,
    /// FAILED_PRECONDITION: the lock has holders or waiters.
    LockInUse,
    /// FAILED_PRECONDITION: the node is a lock, managed by the lock calls.
    LockManaged,
    /// ABORTED: a fencing term older than the lock's.
    StaleTerm,
    /// INVALID_ARGUMENT: a value over the size limit.
    ValueTooLarge,
    /// INVALID_ARGUMENT: a create mode that cannot be used here.
    InvalidCreateMode,
    /// INVALID_ARGUMENT: a session TTL out of range.
    InvalidTtl,
    /// INVALID_ARGUMENT: a request id that cannot be right.
    InvalidRequestId,
    /// INVALID_ARGUMENT: a transaction with too many operations.
    TxnTooLarge,
    /// INVALID_ARGUMENT: a delete of the root.
    RootNotDeletable,
    /// ALREADY_EXISTS: the node exists.
    NodeExists,
    /// NOT_FOUND: no node at the path.
    NoNode,
    /// FAILED_PRECONDITION: the parent does not exist.
    NoParent,
    /// FAILED_PRECONDITION: an ephemeral node cannot have children.
    EphemeralParent,
    /// FAILED_PRECONDITION: the node has children.
    NotEmpty,
    /// FAILED_PRECONDITION: the parent's sequence counter is used up.
    SequenceOverflow,
    /// FAILED_PRECONDITION (INVALID_ARGUMENT for a lock call without one): the request needs a session.
    SessionRequired,
    /// FAILED_PRECONDITION: the session has expired.
    SessionExpired,
    /// FAILED_PRECONDITION: a request id older than the session's lowest pending.
    StaleRequest,
    /// ABORTED: the node's version is not the expected one.
    BadVersion,
    /// The code of the failed operation's error: a transaction operation failed, nothing was applied.
    TxnOpFailed,
    /// INTERNAL: stored data could not be decoded.
    Decode,
    /// PERMISSION_DENIED: a path reserved for the system.
    Reserved,
    /// INVALID_ARGUMENT: an access policy that cannot be parsed.
    InvalidPolicy,
    /// RESOURCE_EXHAUSTED: the identity has as many sessions as allowed.
    TooManySessions,
    /// RESOURCE_EXHAUSTED: the lock has as many waiters as allowed.
    TooManyWaiters,
    /// INVALID_ARGUMENT: a transaction carrying more bytes than allowed.
    TxnBytesTooLarge,
    // Made by the server.
    /// INVALID_ARGUMENT: a request the server cannot read (a missing field, an unknown enum value).
    InvalidArgument,
    /// INTERNAL: a bug in the member.
    Internal,
    /// UNAVAILABLE: this member is not the leader; `warden-leader` names the leader, if known.
    NotLeader,
    /// UNAVAILABLE: the leader cannot reach a quorum; nothing was proposed.
    NoQuorum,
    /// UNAVAILABLE: this member has stopped; nothing was proposed.
    MemberStopped,
    /// UNAVAILABLE: this member's raft has stopped; a write may or may not have been applied.
    Stopped,
    /// FAILED_PRECONDITION: a membership change that cannot be made now.
    Membership,
    /// FAILED_PRECONDITION: an access policy that would leave nobody able to change it.
    PolicyLockout,
    /// PERMISSION_DENIED: the caller's identity may not do this.
    PermissionDenied,
    /// UNAUTHENTICATED: no client certificate, or one that is refused.
    Unauthenticated,
    /// RESOURCE_EXHAUSTED: a request over `limits.max_request_bytes`; `warden-limit` holds it.
    RequestTooLarge,
    /// RESOURCE_EXHAUSTED: the connection has as many watch streams as allowed.
    TooManyWatchers,
    /// OUT_OF_RANGE: a watch's start revision is compacted; `warden-compact-revision` holds the oldest.
    Compacted,
    /// FAILED_PRECONDITION: a try-acquire of a lock held by another session.
    AlreadyLocked,
    /// DEADLINE_EXCEEDED: a lock was not granted in time; the wait was removed.
    Timeout,
    /// ABORTED: the wait for a lock was revoked by an operator; the session lives on.
    WaitRevoked,
    /// ABORTED: the wait for a lock was cancelled by a later call of the same acquire.
    WaitCancelled,
    /// ABORTED: the wait for a lock went with its session.
    WaitEnded,
    /// NOT_FOUND: the election has no leader now.
    NoLeader,
    /// FAILED_PRECONDITION: the path holds another recipe (a lock, an election, a barrier).
    WrongRecipe,
    /// ABORTED: the acquire's wait would have closed a cycle of sessions waiting for each
    /// other; it was refused and nothing changed (the message names the cycle).
    Deadlock,
    /// FAILED_PRECONDITION: a resource kind's call that cannot be made now (a rotation to
    /// another version under way; a recipe under a kind, whose locks only the kind makes).
    InvalidResourceRequest,
    /// NOT_FOUND: no resource kind at the path.
    NoResource,
    /// FAILED_PRECONDITION: the resource kind is rotating and the acquire asked not to wait.
    Draining,
    /// FAILED_PRECONDITION: the session's place in the lock belongs to another owner (or to
    /// none, or the acquire names none): a reentrant hold counts only its own owner.
    OtherOwner,
    /// RESOURCE_EXHAUSTED: a reentrant hold already counts the most acquires it may.
    TooManyHolds,
    // Membership changes (Cluster.MemberAdd, MemberRemove, LeaderTransfer).
    /// NOT_FOUND: no member has the id.
    NoMember,
    /// ALREADY_EXISTS: the id is a member already, with other addresses.
    MemberExists,
    /// FAILED_PRECONDITION: the change would leave the cluster without a quorum (the last
    /// voter, or fewer reachable voters than a quorum of those left).
    QuorumAtRisk,
    /// FAILED_PRECONDITION: a new member did not catch up with the leader in time; it stays
    /// a learner (retry once it is reachable, or remove it).
    NotCaughtUp,
    /// UNAVAILABLE: a leader transfer did not complete; the message says who leads now.
    TransferFailed,
    /// DEADLINE_EXCEEDED: a membership change was proposed but not committed in time (the
    /// members it needs do not answer); it completes by itself once they are back.
    ChangePending,
    /// UNAVAILABLE: this member was removed from the cluster; use another member.
    MemberRemoved,
    /// NOT_FOUND (HTTP 404, or 405 for a known path with another method): the REST API
    /// on the HTTP port has no such endpoint.
    NoEndpoint,
    /// RESOURCE_EXHAUSTED: the write would grow the data past the cluster's quota
    /// (`[space] quota_backend_bytes`); deletes still pass.
    QuotaExceeded,
    /// RESOURCE_EXHAUSTED: the disk under this member's data directory has less free space
    /// than its reserve (`[space] min_free_bytes`); nothing was proposed, deletes still pass.
    NoSpace,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn every_kind_reads_back_as_itself() {
        assert!(ErrorKind::ALL.len() > 40, "{}", ErrorKind::ALL.len());
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        let mut texts: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn unknown_text_is_no_kind() {
        assert_eq!(ErrorKind::parse("AlreadyLockd"), None);
        assert_eq!(ErrorKind::parse("alreadylocked"), None);
        assert_eq!(ErrorKind::parse(""), None);
    }
}
