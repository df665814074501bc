//! What the storage tells whoever measures it (a member's metrics): how long each fsync of
//! the raft log took, and each snapshot built or installed. Nothing is measured until an
//! observer is set ([`crate::Storage::set_observer`]); the cost is a clock read and a read
//! lock per fsync, next to the fsync itself.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// Told what the storage's durable writes cost. Called on the storage's threads (the log
/// flusher, tokio's blocking pool): it must be quick and must not block.
pub trait StorageObserver: Send + Sync {
    /// A durable write of the raft log (a group of appends, a vote, a truncation or a
    /// purge) took `took`, its fsync included.
    fn log_synced(&self, took: Duration);
    /// This member built a snapshot of `bytes` (encoded, fsynced, written) in `took`.
    fn snapshot_built(&self, took: Duration, bytes: usize);
    /// This member installed a snapshot of `bytes` from the leader in `took`.
    fn snapshot_installed(&self, took: Duration, bytes: usize);
}

/// Where the observer is once set: shared by the log store, its flusher thread and the
/// state machine.
#[derive(Clone, Default)]
pub(crate) struct ObserverSlot(Arc<RwLock<Option<Arc<dyn StorageObserver>>>>);

impl ObserverSlot {
    /// The observer, if one is set.
    pub(crate) fn get(&self) -> Option<Arc<dyn StorageObserver>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Sets the observer, replacing any.
    pub(crate) fn set(&self, observer: Arc<dyn StorageObserver>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(observer);
    }
}
