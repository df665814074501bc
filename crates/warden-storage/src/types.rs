//! The openraft type configuration of warden and the payloads it carries.

use std::fmt;

use serde::{Deserialize, Serialize};
use warden_core::{LogCommand, Response};

openraft::declare_raft_types!(
    /// The openraft types of warden.
    pub TypeConfig:
        D = Proposal,
        R = Reply,
        NodeId = u64,
        Node = WardenNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = crate::runtime::SpannedTokio,
);

/// A node's id in the cluster.
pub type NodeId = u64;

/// How to reach a member: its raft (peer) and client addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WardenNode {
    /// `host:port` of the peer (raft) gRPC service.
    pub raft_addr: String,
    /// `host:port` of the client gRPC service.
    pub client_addr: String,
}

impl fmt::Display for WardenNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft {} client {}", self.raft_addr, self.client_addr)
    }
}

/// The payload of a normal log entry: a command with the leader's clock when proposed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The leader's clock, in ms since the Unix epoch: the time every replica applies with.
    pub time_ms: u64,
    /// The versioned command.
    pub command: LogCommand,
}

/// What applying one log entry answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The namespace revision after the entry.
    pub revision: u64,
    /// One response per request of the entry, in order; empty for raft's own entries
    /// (blank, membership).
    pub responses: Vec<Response>,
}

/// The openraft entry type.
pub type Entry = openraft::Entry<TypeConfig>;
/// The openraft log id type.
pub type LogId = openraft::LogId<NodeId>;
/// The openraft storage error type.
pub type RaftStorageError = openraft::StorageError<NodeId>;
/// Membership as stored with the state machine.
pub type StoredMembership = openraft::StoredMembership<NodeId, WardenNode>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, WardenNode>;
