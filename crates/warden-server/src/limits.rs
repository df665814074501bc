//! The `[limits]` section of the configuration: every limit, with its default.
//!
//! Two kinds live here. Most are the cluster's: they decide whether a command applies, so
//! every replica must check the same ones. They are taken from the founder's configuration
//! once, when it forms the cluster (it proposes them as
//! [`Command::SetLimits`](warden_core::Command::SetLimits)), and are part of the replicated
//! state from then on: changing them in a configuration later, or in another member's,
//! changes nothing. The rest are this member's own, read from its configuration at start:
//! the size of one request, and the watch streams one connection may hold open.

use serde::{Deserialize, Serialize};
use warden_core::Limits;
use warden_proto::MAX_CLIENT_MESSAGE_BYTES;

use crate::error::ServerError;

/// The smallest `limits.max_request_bytes` accepted: below it, ordinary requests fail.
pub const MIN_REQUEST_BYTES: usize = 64 << 10;

/// Every limit (`[limits]`); see the module docs for which are the cluster's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// This member's: the largest request it reads, in bytes (a larger one is refused as
    /// RESOURCE_EXHAUSTED before it is read). 4 MiB by default, what the Rust client sends
    /// at most; it must be larger than `max_value_bytes`.
    pub max_request_bytes: usize,
    /// This member's: the most watch streams one client connection may have open at once.
    /// The Rust client opens a connection of its own for each watch.
    pub max_watchers_per_connection: usize,
    /// The cluster's: longest path, in bytes.
    pub max_path_bytes: usize,
    /// The cluster's: longest path segment, in bytes.
    pub max_segment_bytes: usize,
    /// The cluster's: most segments in a path.
    pub max_path_depth: usize,
    /// The cluster's: largest node value, in bytes.
    pub max_value_bytes: usize,
    /// The cluster's: most operations in one transaction.
    pub max_txn_ops: usize,
    /// The cluster's: most compares in one transaction.
    pub max_txn_compares: usize,
    /// The cluster's: largest transaction (paths and values together), in bytes.
    pub max_txn_bytes: usize,
    /// The cluster's: most live sessions of one client identity (clients without a
    /// certificate share one, the anonymous identity).
    pub max_sessions_per_identity: usize,
    /// The cluster's: most sessions holding or waiting for one lock.
    pub max_waiters_per_lock: usize,
    /// The cluster's: shortest session ttl, ms.
    pub min_session_ttl_ms: u64,
    /// The cluster's: longest session ttl, ms.
    pub max_session_ttl_ms: u64,
    /// The cluster's: most responses a session remembers for retries.
    pub max_remembered_responses: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let cluster = Limits::default();
        LimitsConfig {
            max_request_bytes: MAX_CLIENT_MESSAGE_BYTES,
            max_watchers_per_connection: 1_024,
            max_path_bytes: cluster.max_path_bytes,
            max_segment_bytes: cluster.max_segment_bytes,
            max_path_depth: cluster.max_path_depth,
            max_value_bytes: cluster.max_value_bytes,
            max_txn_ops: cluster.max_txn_ops,
            max_txn_compares: cluster.max_txn_compares,
            max_txn_bytes: cluster.max_txn_bytes,
            max_sessions_per_identity: cluster.max_sessions_per_identity,
            max_waiters_per_lock: cluster.max_waiters_per_lock,
            min_session_ttl_ms: cluster.min_session_ttl_ms,
            max_session_ttl_ms: cluster.max_session_ttl_ms,
            max_remembered_responses: cluster.max_remembered_responses,
        }
    }
}

impl LimitsConfig {
    /// The cluster's limits, as the founder proposes them.
    pub fn cluster(&self) -> Limits {
        Limits {
            max_path_bytes: self.max_path_bytes,
            max_segment_bytes: self.max_segment_bytes,
            max_value_bytes: self.max_value_bytes,
            max_txn_ops: self.max_txn_ops,
            max_txn_compares: self.max_txn_compares,
            min_session_ttl_ms: self.min_session_ttl_ms,
            max_session_ttl_ms: self.max_session_ttl_ms,
            max_remembered_responses: self.max_remembered_responses,
            max_path_depth: self.max_path_depth,
            max_sessions_per_identity: self.max_sessions_per_identity,
            max_waiters_per_lock: self.max_waiters_per_lock,
            max_txn_bytes: self.max_txn_bytes,
        }
    }

    /// Checks the limits, naming the first problem found.
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |msg: String| Err(ServerError::Config(msg));
        let positive = [
            ("max_watchers_per_connection", self.max_watchers_per_connection),
            ("max_path_bytes", self.max_path_bytes),
            ("max_segment_bytes", self.max_segment_bytes),
            ("max_path_depth", self.max_path_depth),
            ("max_txn_ops", self.max_txn_ops),
            ("max_txn_compares", self.max_txn_compares),
            ("max_txn_bytes", self.max_txn_bytes),
            ("max_sessions_per_identity", self.max_sessions_per_identity),
            ("max_waiters_per_lock", self.max_waiters_per_lock),
            ("max_remembered_responses", self.max_remembered_responses),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return bad(format!("limits.{key} must be positive"));
        }
        if self.max_request_bytes < MIN_REQUEST_BYTES {
            return bad(format!(
                "limits.max_request_bytes ({}) is below {MIN_REQUEST_BYTES} (64 KiB); the default is {MAX_CLIENT_MESSAGE_BYTES}",
                self.max_request_bytes
            ));
        }
        if self.max_request_bytes <= self.max_value_bytes {
            return bad(format!(
                "limits.max_request_bytes ({}) must be larger than limits.max_value_bytes ({}), or a value of the largest size could not be sent",
                self.max_request_bytes, self.max_value_bytes
            ));
        }
        if self.max_segment_bytes > self.max_path_bytes {
            return bad(format!(
                "limits.max_segment_bytes ({}) is larger than limits.max_path_bytes ({})",
                self.max_segment_bytes, self.max_path_bytes
            ));
        }
        if self.min_session_ttl_ms > self.max_session_ttl_ms {
            return bad(format!(
                "limits.min_session_ttl_ms ({}) is larger than limits.max_session_ttl_ms ({})",
                self.min_session_ttl_ms, self.max_session_ttl_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(l: &LimitsConfig) -> String {
        l.validate().err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn defaults_are_valid_and_the_cores() {
        let limits = LimitsConfig::default();
        assert!(limits.validate().is_ok());
        assert_eq!(limits.cluster(), Limits::default());
    }

    #[test]
    fn every_cluster_limit_reaches_the_core() {
        let limits = LimitsConfig {
            max_path_bytes: 1,
            max_segment_bytes: 2,
            max_path_depth: 3,
            max_value_bytes: 4,
            max_txn_ops: 5,
            max_txn_compares: 6,
            max_txn_bytes: 7,
            max_sessions_per_identity: 8,
            max_waiters_per_lock: 9,
            min_session_ttl_ms: 10,
            max_session_ttl_ms: 11,
            max_remembered_responses: 12,
            ..LimitsConfig::default()
        };
        let core = limits.cluster();
        let got = [
            core.max_path_bytes,
            core.max_segment_bytes,
            core.max_path_depth,
            core.max_value_bytes,
            core.max_txn_ops,
            core.max_txn_compares,
            core.max_txn_bytes,
            core.max_sessions_per_identity,
            core.max_waiters_per_lock,
            core.min_session_ttl_ms as usize,
            core.max_session_ttl_ms as usize,
            core.max_remembered_responses,
        ];
        assert_eq!(got, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn names_each_problem() {
        let ok = LimitsConfig::default();
        let zero = LimitsConfig { max_waiters_per_lock: 0, ..ok.clone() };
        assert!(problem(&zero).contains("limits.max_waiters_per_lock must be positive"));
        let tiny = LimitsConfig { max_request_bytes: 1_000, ..ok.clone() };
        assert!(problem(&tiny).contains("limits.max_request_bytes (1000) is below"));
        let small = LimitsConfig { max_request_bytes: 1 << 20, ..ok.clone() };
        assert!(problem(&small).contains("larger than limits.max_value_bytes"));
        let segment = LimitsConfig { max_segment_bytes: 2_000, ..ok.clone() };
        assert!(problem(&segment).contains("limits.max_segment_bytes (2000)"));
        let ttl = LimitsConfig { min_session_ttl_ms: 10, max_session_ttl_ms: 5, ..ok };
        assert!(problem(&ttl).contains("limits.min_session_ttl_ms (10)"));
    }
}
