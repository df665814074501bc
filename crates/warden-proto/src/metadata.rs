//! The keys of the metadata warden puts on its statuses and peer requests, in one place
//! for server and client, so a key misspelt on one side does not compile.

/// The metadata key of the error's kind ([`ErrorKind`](crate::ErrorKind)) on every status
/// a member makes.
pub const ERROR_METADATA: &str = "warden-error";

/// The metadata key of the leader's client address in an UNAVAILABLE status of kind
/// `NotLeader` (empty when no leader is known).
pub const LEADER_METADATA: &str = "warden-leader";

/// The metadata key of the limit a request went over, in bytes, on a RESOURCE_EXHAUSTED
/// status of kind `RequestTooLarge` (a request larger than the member's
/// `limits.max_request_bytes`).
pub const LIMIT_METADATA: &str = "warden-limit";

/// The metadata key of the oldest revision a watch can start from, on an OUT_OF_RANGE
/// status of kind `Compacted`.
pub const COMPACT_REVISION_METADATA: &str = "warden-compact-revision";

/// The metadata key of the sending member's id on a peer (raft) request.
pub const FROM_METADATA: &str = "warden-from";

/// Every key above, for tests.
pub const ALL_METADATA: &[&str] =
    &[ERROR_METADATA, LEADER_METADATA, LIMIT_METADATA, COMPACT_REVISION_METADATA, FROM_METADATA];
