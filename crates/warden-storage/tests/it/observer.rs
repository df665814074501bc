//! The storage observer hears of every durable log write and every snapshot, with its size.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, RaftSnapshotBuilder, Vote};
use tempfile::TempDir;
use warden_core::{Command, CreateMode, Limits, LogCommand, Request};
use warden_storage::{Entry, LogId, Proposal, StorageObserver};

#[derive(Default)]
struct Counts {
    synced: AtomicU64,
    built: AtomicUsize,
    installed: AtomicUsize,
}

impl StorageObserver for Counts {
    fn log_synced(&self, _took: Duration) {
        self.synced.fetch_add(1, Ordering::SeqCst);
    }
    fn snapshot_built(&self, _took: Duration, bytes: usize) {
        self.built.store(bytes, Ordering::SeqCst);
    }
    fn snapshot_installed(&self, _took: Duration, bytes: usize) {
        self.installed.store(bytes, Ordering::SeqCst);
    }
}

fn create(index: u64, path: &str) -> Entry {
    let command =
        Command::Create { path: path.into(), data: "v".into(), mode: CreateMode::PERSISTENT };
    let proposal =
        Proposal { time_ms: 1_000 + index, command: LogCommand::V1(Request::new(command)) };
    let log_id = LogId::new(CommittedLeaderId::new(1, 1), index);
    Entry { log_id, payload: EntryPayload::Normal(proposal) }
}

#[tokio::test]
async fn hears_of_log_syncs_and_snapshots() {
    let dir = TempDir::new().unwrap();
    let mut source = warden_storage::open(&dir.path().join("a"), Limits::default()).unwrap();
    let counts = Arc::new(Counts::default());
    source.set_observer(Arc::clone(&counts) as Arc<dyn StorageObserver>);

    source.log.save_vote(&Vote::new(1, 1)).await.unwrap();
    assert_eq!(counts.synced.load(Ordering::SeqCst), 1, "a vote is a durable write");
    source.log.blocking_append(vec![create(1, "/a"), create(2, "/b")]).await.unwrap();
    assert!(counts.synced.load(Ordering::SeqCst) >= 2, "an append is fsynced by the flusher");

    source.state_machine.apply(vec![create(1, "/a"), create(2, "/b")]).await.unwrap();
    let snapshot = source.state_machine.build_snapshot().await.unwrap();
    let bytes = snapshot.snapshot.get_ref().len();
    assert!(bytes > 0);
    assert_eq!(counts.built.load(Ordering::SeqCst), bytes);

    let mut target = warden_storage::open(&dir.path().join("b"), Limits::default()).unwrap();
    target.set_observer(Arc::clone(&counts) as Arc<dyn StorageObserver>);
    target.state_machine.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
    assert_eq!(counts.installed.load(Ordering::SeqCst), bytes);
}
