//! Limits that protect the cluster from oversized input.
//!
//! Limits decide whether a command succeeds, so every replica must use the same ones: they
//! are part of the replicated [`State`](crate::State) and travel in its snapshot rather than
//! being read from each node's local configuration at apply time. A cluster takes the limits
//! of its founder's configuration once, when it is formed, through
//! [`Command::SetLimits`](crate::Command::SetLimits).
//!
//! Limits on a request's shape (sizes, depth) refuse it as bad input; limits on how much one
//! caller may hold at once (sessions per identity, waiters per lock) refuse it as a quota
//! that is used up, which may free up later.

use serde::{Deserialize, Serialize};

/// Size and count limits enforced when a command is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest path, in bytes.
    pub max_path_bytes: usize,
    /// Longest path segment, in bytes.
    pub max_segment_bytes: usize,
    /// Largest node value, in bytes.
    pub max_value_bytes: usize,
    /// Most operations in one transaction.
    pub max_txn_ops: usize,
    /// Most compares in one transaction.
    pub max_txn_compares: usize,
    /// Shortest session ttl, in milliseconds.
    pub min_session_ttl_ms: u64,
    /// Longest session ttl, in milliseconds.
    pub max_session_ttl_ms: u64,
    /// Most responses a session remembers for retries; the oldest is forgotten first.
    pub max_remembered_responses: usize,
    /// Most segments in a path (`/a/b` has 2). A lock's waiters are one level below it.
    pub max_path_depth: usize,
    /// Most live sessions opened by one client identity. Clients without a certificate
    /// share the anonymous identity (""), and so one quota.
    pub max_sessions_per_identity: usize,
    /// Most sessions holding or waiting for one lock.
    pub max_waiters_per_lock: usize,
    /// Largest transaction, in bytes: the paths of its compares and operations and the
    /// values it writes, together.
    pub max_txn_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_path_bytes: 1024,
            max_segment_bytes: 256,
            max_value_bytes: 1 << 20,
            max_txn_ops: 128,
            max_txn_compares: 128,
            min_session_ttl_ms: 1_000,
            max_session_ttl_ms: 3_600_000,
            max_remembered_responses: 256,
            max_path_depth: 64,
            max_sessions_per_identity: 20_000,
            max_waiters_per_lock: 1_000,
            max_txn_bytes: 2 << 20,
        }
    }
}

#[cfg(test)]
#[path = "limits_test.rs"]
mod tests;
