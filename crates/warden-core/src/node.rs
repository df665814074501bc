//! A node of the namespace: its value, its `Stat`, and how it was created.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::ids::SessionId;

/// The metadata of a node, as ZooKeeper's `Stat` with etcd's revision names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// The revision of the command that created the node.
    pub create_revision: u64,
    /// The revision of the command that last changed the node's value (or created it).
    pub mod_revision: u64,
    /// How many times the value was set since creation; 0 at creation.
    pub version: u64,
    /// How many times a child was created or deleted.
    pub cversion: u64,
    /// The owning session of an ephemeral node; 0 for any other node.
    pub ephemeral_owner: SessionId,
    /// The number of children.
    pub num_children: u64,
    /// When the node was created: the leader's clock in ms since the Unix epoch.
    pub ctime_ms: u64,
    /// When the value was last set: the leader's clock in ms since the Unix epoch.
    pub mtime_ms: u64,
    /// The length of the value in bytes.
    pub data_length: u64,
}

/// The lifetime rule of a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// Lives until deleted.
    #[default]
    Persistent,
    /// Deleted when its owning session ends; cannot have children.
    Ephemeral,
    /// Deleted once its last child is deleted.
    Container,
    /// A recipe's queue (a lock, an election, a barrier): made by the recipe, its children
    /// are the waiters, in order; deleted like a container once the last waiter leaves,
    /// unless its kind keeps it (a set barrier) or a lock-delay holds it. Clients cannot
    /// create one, write it, or create under it.
    Queue,
    /// A resource kind (`/orders`): its data is its current version and the one a
    /// rotation goes to; its children are the versions' lock namespaces `R/<version>/<id>`.
    /// Made and changed by the resource commands only; clients cannot write under it.
    Resource,
}

/// How to create a node: its kind, and whether the server appends a sequence number.
///
/// The combinations are ZooKeeper's: persistent, persistent sequential, ephemeral,
/// ephemeral sequential and container. A sequential container is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateMode {
    /// The node's kind.
    pub kind: NodeKind,
    /// Append a 10-digit, zero-padded counter kept by the parent to the name.
    pub sequential: bool,
}

impl CreateMode {
    /// A plain persistent node.
    pub const PERSISTENT: CreateMode = CreateMode { kind: NodeKind::Persistent, sequential: false };
    /// An ephemeral node.
    pub const EPHEMERAL: CreateMode = CreateMode { kind: NodeKind::Ephemeral, sequential: false };
    /// A container node.
    pub const CONTAINER: CreateMode = CreateMode { kind: NodeKind::Container, sequential: false };

    /// This mode with the sequential flag set.
    pub const fn sequential(self) -> CreateMode {
        CreateMode { kind: self.kind, sequential: true }
    }

    /// Refuses the combinations ZooKeeper does not allow.
    pub fn validate(&self) -> Result<(), CoreError> {
        if matches!(self.kind, NodeKind::Queue | NodeKind::Resource) {
            return Err(CoreError::InvalidCreateMode {
                reason: "queue and resource nodes are made by the recipes (acquiring a lock, campaigning, setting a barrier, warden resource init), not by create".to_owned(),
            });
        }
        if self.kind == NodeKind::Container && self.sequential {
            return Err(CoreError::InvalidCreateMode {
                reason: "a container node cannot be sequential; create a container parent and sequential children under it"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

/// The largest sequence number a parent hands out: 10 digits, never wrapping.
pub const MAX_SEQUENCE: u64 = 9_999_999_999;

/// A node as stored in the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The value.
    pub data: Bytes,
    /// The metadata.
    pub stat: Stat,
    /// The lifetime rule.
    pub kind: NodeKind,
    /// The next sequence number for a sequential child.
    pub next_sequence: u64,
}

impl Node {
    /// The root node as a fresh namespace has it.
    pub fn root() -> Node {
        Node {
            data: Bytes::new(),
            stat: Stat::default(),
            kind: NodeKind::Persistent,
            next_sequence: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_zookeeper_modes_only() {
        assert!(CreateMode::PERSISTENT.validate().is_ok());
        assert!(CreateMode::PERSISTENT.sequential().validate().is_ok());
        assert!(CreateMode::EPHEMERAL.validate().is_ok());
        assert!(CreateMode::EPHEMERAL.sequential().validate().is_ok());
        assert!(CreateMode::CONTAINER.validate().is_ok());
        assert!(matches!(
            CreateMode::CONTAINER.sequential().validate(),
            Err(CoreError::InvalidCreateMode { .. })
        ));
    }
}
