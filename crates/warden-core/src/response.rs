//! What applying a command answers.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::ids::SessionId;
use crate::node::Stat;

/// The answer to one command: the revision after it, and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The namespace revision after the command (unchanged if it changed nothing).
    pub revision: u64,
    /// What happened.
    pub outcome: Result<Output, CoreError>,
}

/// The result of a successful command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// A session was opened.
    SessionOpened {
        /// Its id.
        id: SessionId,
        /// Its ttl in ms.
        ttl_ms: u64,
    },
    /// A session was closed.
    SessionClosed {
        /// Its id.
        id: SessionId,
        /// How many ephemeral nodes went with it.
        deleted: u64,
    },
    /// Sessions were expired.
    SessionsExpired {
        /// The sessions that were live and are now gone, in the order given.
        ids: Vec<SessionId>,
        /// How many ephemeral nodes went with them.
        deleted: u64,
    },
    /// Session checkpoints were recorded (only from logs written before issue 11).
    SessionsCheckpointed {
        /// How many live sessions were updated.
        count: u64,
    },
    /// A lock acquire was queued, or found queued.
    LockQueued {
        /// The session's waiter node.
        waiter: String,
        /// Its fencing token, if it holds the lock.
        token: Option<u64>,
        /// Its place in the queue (0 is first).
        position: u64,
    },
    /// A session left a lock, or gave back one count of a reentrant hold.
    LockReleased {
        /// Whether it held the lock (rather than waited).
        held: bool,
        /// The acquires its reentrant hold still counts: the hold goes on while this is
        /// above 0 (0 once the session left the lock).
        remaining: u32,
    },
    /// Lock-delays that were over were ended.
    LocksWoken {
        /// How many locks.
        count: u64,
    },
    /// A node was created.
    Created {
        /// Its path, with the sequence number for a sequential node.
        path: String,
        /// Its stat.
        stat: Stat,
    },
    /// A node's value was set.
    Set {
        /// Its new stat.
        stat: Stat,
    },
    /// Nodes were deleted.
    Deleted {
        /// How many: the node, its descendants, and containers emptied by it.
        count: u64,
        /// Lock holds and waits revoked on the way (a delete that asked to revoke them).
        revoked: u64,
        /// Locks kept until their lock-delay ends, with the nodes above them up to the
        /// deleted one, which become containers and go with the lock.
        kept: u64,
    },
    /// A transaction's compares held and all its operations were applied.
    TxnCommitted {
        /// One [`Output::Created`], [`Output::Set`] or [`Output::Deleted`] per operation.
        results: Vec<Output>,
    },
    /// A transaction's compare did not hold; nothing was applied.
    TxnCompareFailed {
        /// The index of the first compare that did not hold.
        index: u32,
    },
    /// An access policy is in force from this command's revision on.
    PolicyApplied {
        /// How many rules it has.
        rules: u64,
    },
    /// The cluster's limits were set.
    LimitsSet,
    /// An election's leader announced a new value.
    Proclaimed,
    /// A barrier is set.
    BarrierSet {
        /// False if it already was.
        created: bool,
    },
    /// A barrier was removed.
    BarrierRemoved {
        /// False if it was not set.
        removed: bool,
        /// How many waiters it let through.
        released: u64,
    },
    /// A wait on a barrier that is not set: it passes at once.
    BarrierPassed,
    /// A member left a double barrier.
    BarrierLeft {
        /// How many members are still in.
        remaining: u64,
    },
    /// A resource kind was made (or found).
    ResourceInitialized {
        /// False if it was there already.
        created: bool,
        /// Its current version.
        version: String,
    },
    /// A rotation began, was found under way or done, or was forced.
    Rotation {
        /// The version it rotates from.
        from: String,
        /// The version it rotates to.
        to: String,
        /// Whether the kind is at `to` now.
        switched: bool,
        /// Holds and waits revoked (a forced rotation).
        revoked: u64,
    },
    /// The cluster's data-size quota was set (0: none).
    QuotaSet {
        /// The quota, in bytes.
        bytes: u64,
    },
}
