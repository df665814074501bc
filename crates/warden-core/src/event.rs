//! Change events: what watchers receive.
//!
//! Events come out of [`State::apply`](crate::State::apply), so a watcher never has to diff
//! states. All events of one command share its revision and are in the order the changes
//! were made.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::node::Stat;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The node was created.
    Created,
    /// The node's value was set.
    Data,
    /// The node was deleted.
    Deleted,
    /// A child of the node was created or deleted.
    Children,
}

/// One change to one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The revision of the command that made the change.
    pub revision: u64,
    /// What changed.
    pub kind: EventKind,
    /// The node.
    pub path: String,
    /// The node's stat after the change (before it, for a deletion).
    pub stat: Stat,
    /// The new value, for `Created` and `Data`.
    pub data: Option<Bytes>,
}
