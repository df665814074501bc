//! Limits that protect the cluster from oversized input.
//!
//! Limits decide whether a command succeeds, so every replica must use the same ones: they
//! are part of the replicated [`State`](crate::State) and travel in its snapshot rather than
//! being read from each node's local configuration at apply time.

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
        }
    }
}
