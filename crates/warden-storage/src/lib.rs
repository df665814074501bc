//! # warden-storage
//!
//! Durable storage for a warden node on [fjall]: the raft log, the vote and the committed
//! index ([`LogStore`]), the state machine ([`StateMachineStore`]) and its snapshots,
//! implementing openraft's v2 storage traits.
//!
//! It also owns the backup format: a backup of the applied state, and a fresh data
//! directory for a member of a new cluster made from one ([`backup`]).
//!
//! It is not the state machine's rules (those are `warden-core`'s, called from
//! [`StateMachineStore`]'s apply), nor replication or networking.
//!
//! Durability: a log append or a vote is fsynced before openraft hears it is done; an
//! applied batch is written atomically with its log id; a snapshot file is written,
//! fsynced and renamed into place. Any storage error is returned to openraft, which stops
//! the node: nothing is retried.
//!
//! ```no_run
//! # async fn open() -> Result<(), warden_storage::StorageError> {
//! let storage = warden_storage::open(std::path::Path::new("./warden-data"), warden_core::Limits::default())?;
//! let revision = storage.state_machine.read(|applied| applied.core.revision());
//! # Ok(()) }
//! ```

pub mod backup;
mod codec;
mod error;
mod log_store;
mod observer;
mod runtime;
mod snapshot_file;
mod state_machine;
mod types;

use std::path::Path;

use fjall::{Database, KeyspaceCreateOptions};
use warden_core::Limits;

pub use error::StorageError;
pub use log_store::LogStore;
pub use observer::StorageObserver;
pub use runtime::SpannedTokio;
pub use state_machine::{Applied, AppliedCommand, EventSink, StateMachineStore};
pub use types::{
    Entry, LogId, NodeId, Proposal, RaftStorageError, Reply, SnapshotMeta, StoredMembership,
    TypeConfig, WardenNode,
};

/// A node's storage: the log store and the state machine, sharing one database.
pub struct Storage {
    /// The raft log, vote and committed index.
    pub log: LogStore,
    /// The state machine.
    pub state_machine: StateMachineStore,
    observer: observer::ObserverSlot,
}

impl Storage {
    /// Tells `observer` from now on what the log's fsyncs and the snapshots cost (for
    /// metrics); it stays set on the log store and state machine after they are moved out.
    pub fn set_observer(&self, observer: std::sync::Arc<dyn StorageObserver>) {
        self.observer.set(observer);
    }
}

/// Opens (or creates) the storage in `dir`; `limits` are used only for a new state.
///
/// Fails if another process has the directory open (fjall locks it), or if its contents do
/// not decode.
pub fn open(dir: &Path, limits: Limits) -> Result<Storage, StorageError> {
    let db = Database::builder(dir.join("db"))
        .open()
        .map_err(StorageError::fjall("opening the database"))?;
    let keyspace = |name: &'static str| {
        db.keyspace(name, KeyspaceCreateOptions::default)
            .map_err(StorageError::fjall("opening a keyspace"))
    };
    let observer = observer::ObserverSlot::default();
    let log =
        LogStore::new(db.clone(), keyspace("raft_log")?, keyspace("raft_meta")?, observer.clone())?;
    let snapshots = snapshot_file::SnapshotFile::open(&dir.join("snapshot"))?;
    let keyspaces = [
        keyspace("sm_nodes")?,
        keyspace("sm_sessions")?,
        keyspace("sm_lock_stats")?,
        keyspace("sm_meta")?,
    ];
    let state_machine =
        StateMachineStore::open(db, keyspaces, snapshots, limits, observer.clone())?;
    Ok(Storage { log, state_machine, observer })
}
