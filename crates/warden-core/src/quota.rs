//! The data-size quota (etcd's `--quota-backend-bytes`): how the state's size is counted,
//! and which commands the quota may refuse.
//!
//! The quota decides whether a command succeeds, so every replica must decide alike: the
//! size is not the size of any member's files (which differ between members and with
//! compaction) but a logical size computed from the replicated state, the same on every
//! replica at the same log index. It counts each node's path and value plus a fixed
//! [`NODE_OVERHEAD`] (its stat, kind and sequence counter), and each live session's
//! identity plus a fixed [`SESSION_OVERHEAD`]. The lock statistics and the responses a
//! session remembers for retries are not counted: both are bounded by other limits.
//!
//! The rule ([`State::apply`](crate::State::apply)): a command that leaves the counted size
//! larger than before and larger than the quota is refused with
//! [`CoreError::QuotaExceeded`](crate::CoreError::QuotaExceeded), and changes nothing.
//! Commands that shrink or keep the size pass, and so do, always, the commands that
//! [`may_grow`] says free space or are an operator's (closing and expiring sessions,
//! deletes, releases, resigns, the cluster's own settings): as in etcd, where a cluster over
//! its quota still takes deletes, the way out of a full quota is always open.
//!
//! The quota is part of the replicated state: the text of the node [`QUOTA_PATH`] (decimal
//! bytes; 0 is no quota), written by [`Command::SetQuota`](crate::Command::SetQuota) (a
//! leader proposes its configuration's `[space] quota_backend_bytes` when it differs from
//! the cluster's). Without the node the quota is [`DEFAULT_QUOTA_BYTES`], etcd's default,
//! so a cluster that keeps the default has no such node and its namespace is as before.
//! Kept in the namespace, like the access policy, the quota travels in snapshots and in the
//! piece-by-piece store without a change to either format.

use crate::command::{Command, TxnOp};
use crate::node::Node;

/// The node holding the cluster's quota, in bytes, as decimal text.
pub const QUOTA_PATH: &str = "/warden/quota";

/// The quota of a cluster without a [`QUOTA_PATH`] node: 2 GiB, etcd's default.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;

/// What one node costs beyond its path and value: its stat (9 counters), kind and
/// sequence counter, rounded up.
pub const NODE_OVERHEAD: u64 = 96;

/// What one live session costs beyond its identity: its id, ttl, times and bookkeeping.
pub const SESSION_OVERHEAD: u64 = 64;

/// The counted size of the node at `path`.
pub fn node_bytes(path: &str, node: &Node) -> u64 {
    NODE_OVERHEAD + path.len() as u64 + node.data.len() as u64
}

/// The counted size of a session opened by `identity`.
pub fn session_bytes(identity: &str) -> u64 {
    SESSION_OVERHEAD + identity.len() as u64
}

/// The quota in the text of [`QUOTA_PATH`]: 0 (no quota) for text that is not a number,
/// which [`Command::SetQuota`](crate::Command::SetQuota) never writes.
pub fn parse(text: &[u8]) -> u64 {
    std::str::from_utf8(text).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

/// Whether the quota (and a member short of disk space) may refuse `command`. False for
/// the commands that end things (sessions, nodes, holds, waits, candidacies), which must
/// pass when space is short so that it can be freed, for the leader's own bookkeeping
/// (session expiry and checkpoints, lock wake-ups) and for the operator's settings
/// (limits, quota, access policy), which are small and may be what frees the cluster. A
/// transaction may grow unless all its operations are deletes.
pub fn may_grow(command: &Command) -> bool {
    match command {
        Command::CloseSession { .. }
        | Command::ExpireSessions { .. }
        | Command::CheckpointSessions { .. }
        | Command::Delete { .. }
        | Command::Release { .. }
        | Command::Revoke { .. }
        | Command::Resign { .. }
        | Command::LeaveBarrier { .. }
        | Command::RemoveBarrier { .. }
        | Command::WakeLocks
        | Command::ForceRotation { .. }
        | Command::SetLimits { .. }
        | Command::SetPolicy { .. }
        | Command::SetQuota { .. } => false,
        Command::Txn { ops, .. } => !ops.iter().all(|op| matches!(op, TxnOp::Delete { .. })),
        Command::OpenSession { .. }
        | Command::Create { .. }
        | Command::Set { .. }
        | Command::Acquire { .. }
        | Command::Campaign { .. }
        | Command::Proclaim { .. }
        | Command::SetBarrier { .. }
        | Command::WaitBarrier { .. }
        | Command::EnterBarrier { .. }
        | Command::InitResource { .. }
        | Command::AcquireResource { .. }
        | Command::BeginRotation { .. } => true,
    }
}

/// The state's counted size and its quota, as a member reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// The counted size, in bytes.
    pub used: u64,
    /// The quota, in bytes; 0 is none.
    pub quota: u64,
    /// Whether a write was refused for the quota and would still not fit: the quota
    /// alarm. It clears by itself once enough is deleted, or the quota is raised, for
    /// that write to fit.
    pub alarm: bool,
}

#[cfg(test)]
#[path = "quota_test.rs"]
mod tests;
