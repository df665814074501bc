//! Restarts: the state machine resumes from disk, the log and vote survive, a snapshot
//! install survives a crash half-way, bad snapshot bytes replace nothing, and lock
//! statistics survive restarts and installs.

use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder, Vote};
use tempfile::TempDir;
use warden_core::queue::{LockKind, WaitMode};
use warden_core::{Command, CreateMode, HoldRef, Limits, LogCommand, Request};
use warden_storage::{Entry, LogId, Proposal, Storage};

fn open(dir: &Path) -> Storage {
    warden_storage::open(dir, Limits::default()).expect("open storage")
}

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn entry(index: u64, command: Command) -> Entry {
    let proposal =
        Proposal { time_ms: 1_000 + index, command: LogCommand::V1(Request::new(command)) };
    Entry { log_id: log_id(index), payload: EntryPayload::Normal(proposal) }
}

/// An entry at `index` whose request is made in `session`.
fn in_session(index: u64, session: u64, command: Command) -> Entry {
    let request = Request::in_session(session, command);
    let proposal = Proposal { time_ms: 1_000 + index, command: LogCommand::V1(request) };
    Entry { log_id: log_id(index), payload: EntryPayload::Normal(proposal) }
}

fn create(index: u64, path: &str) -> Entry {
    entry(
        index,
        Command::Create { path: path.into(), data: "v".into(), mode: CreateMode::PERSISTENT },
    )
}

/// Some nodes, a session with an ephemeral node, a set and a delete.
fn workload() -> Vec<Entry> {
    vec![
        create(1, "/a"),
        create(2, "/a/b"),
        entry(3, Command::OpenSession { ttl_ms: 5_000, identity: "c".into() }),
        create(4, "/c"),
        entry(5, Command::Set { path: "/a".into(), data: "w".into(), expected_version: None }),
        entry(
            6,
            Command::Delete {
                path: "/c".into(),
                expected_version: None,
                recursive: false,
                revoke_locks: false,
            },
        ),
    ]
}

fn snapshot_bytes(storage: &Storage) -> Vec<u8> {
    storage.state_machine.read(|a| a.core.snapshot().expect("snapshot"))
}

#[tokio::test]
async fn state_machine_resumes_from_disk() {
    let dir = TempDir::new().unwrap();
    let (before, applied) = {
        let mut storage = open(dir.path());
        let replies = storage.state_machine.apply(workload()).await.unwrap();
        assert_eq!(replies.len(), 6);
        assert_eq!(replies[5].revision, 5);
        (snapshot_bytes(&storage), storage.state_machine.applied_state().await.unwrap().0)
    };
    assert_eq!(applied, Some(log_id(6)));
    let mut storage = open(dir.path());
    assert_eq!(snapshot_bytes(&storage), before);
    assert_eq!(storage.state_machine.applied_state().await.unwrap().0, Some(log_id(6)));
    assert_eq!(storage.state_machine.read(|a| a.core.sessions().count()), 1);
    // Applying more continues from there.
    storage.state_machine.apply(vec![create(7, "/d")]).await.unwrap();
    assert_eq!(storage.state_machine.read(|a| a.core.revision()), 6);
}

#[tokio::test]
async fn log_and_vote_survive_a_restart() {
    let dir = TempDir::new().unwrap();
    {
        let mut storage = open(dir.path());
        storage.log.save_vote(&Vote::new(3, 2)).await.unwrap();
        storage.log.blocking_append(workload()).await.unwrap();
        storage.log.truncate(log_id(5)).await.unwrap();
        storage.log.purge(log_id(1)).await.unwrap();
    }
    let mut storage = open(dir.path());
    assert_eq!(storage.log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    let state = storage.log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1)));
    assert_eq!(state.last_log_id, Some(log_id(4)));
    let entries = storage.log.try_get_log_entries(2..5).await.unwrap();
    assert_eq!(entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(entries, workload()[1..4].to_vec());
}

#[tokio::test]
async fn snapshot_install_survives_restart_and_an_interrupted_install_is_finished() {
    let (source_dir, target_dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut source = open(source_dir.path());
    source.state_machine.apply(workload()).await.unwrap();
    let snapshot = source.state_machine.build_snapshot().await.unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(6)));
    let expected = snapshot_bytes(&source);
    // The snapshot is encoded from a fjall view, not from memory: the same bytes.
    assert_eq!(snapshot.snapshot.get_ref(), &expected);
    {
        let mut target = open(target_dir.path());
        target.state_machine.apply(vec![create(1, "/stale")]).await.unwrap();
        target.state_machine.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
        assert_eq!(snapshot_bytes(&target), expected);
        let current = target.state_machine.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);
    }
    let target = open(target_dir.path());
    assert_eq!(snapshot_bytes(&target), expected);
    drop(target);

    // A crash after the marker, the file and the clearing, before the rewrite: the next
    // open finishes the install from the snapshot file.
    let id = snapshot.meta.snapshot_id.clone();
    {
        let db = fjall::Database::builder(target_dir.path().join("db")).open().unwrap();
        let meta = db.keyspace("sm_meta", fjall::KeyspaceCreateOptions::default).unwrap();
        let nodes = db.keyspace("sm_nodes", fjall::KeyspaceCreateOptions::default).unwrap();
        meta.insert("installing", id.as_bytes()).unwrap();
        meta.remove("applied").unwrap();
        nodes.clear().unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let mut target = open(target_dir.path());
    assert_eq!(snapshot_bytes(&target), expected);
    assert_eq!(target.state_machine.applied_state().await.unwrap().0, Some(log_id(6)));
    target.state_machine.apply(vec![create(7, "/more")]).await.unwrap();
    let before = snapshot_bytes(&target);
    drop(target);

    // A crash after the marker of a newer install, before its file was written: nothing
    // else changed, so the next open drops the marker and loads the state as it was.
    {
        let db = fjall::Database::builder(target_dir.path().join("db")).open().unwrap();
        let meta = db.keyspace("sm_meta", fjall::KeyspaceCreateOptions::default).unwrap();
        meta.insert("installing", "a-snapshot-never-stored").unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let target = open(target_dir.path());
    assert_eq!(snapshot_bytes(&target), before);
}

#[tokio::test]
async fn undecodable_snapshot_replaces_nothing() {
    let dir = TempDir::new().unwrap();
    let mut storage = open(dir.path());
    storage.state_machine.apply(workload()).await.unwrap();
    let good = storage.state_machine.build_snapshot().await.unwrap();
    let before = snapshot_bytes(&storage);
    let garbage = Box::new(std::io::Cursor::new(b"not a snapshot".to_vec()));
    let mut meta = good.meta.clone();
    meta.snapshot_id = "bad".into();
    assert!(storage.state_machine.install_snapshot(&meta, garbage).await.is_err());
    assert_eq!(snapshot_bytes(&storage), before);
    let current = storage.state_machine.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, good.meta, "the current snapshot file is untouched");
}

/// Two sessions (ids 1 and 2) contend for `/l`: session 2 waits from entry 4 to 5, and
/// session 1 holds from entry 3 to 5.
fn contended_lock() -> Vec<Entry> {
    let acquire = || Command::Acquire {
        path: "/l".into(),
        kind: LockKind::Mutex,
        mode: WaitMode::Exclusive,
        delay_ms: 0,
        options: Default::default(),
    };
    vec![
        entry(1, Command::OpenSession { ttl_ms: 5_000, identity: "a".into() }),
        entry(2, Command::OpenSession { ttl_ms: 5_000, identity: "b".into() }),
        in_session(3, 1, acquire()),
        in_session(4, 2, acquire()),
        in_session(5, 1, Command::Release { path: "/l".into(), hold: HoldRef::Any }),
    ]
}

fn lock_stats(storage: &Storage) -> Option<warden_core::lock_stats::LockStats> {
    storage.state_machine.read(|a| a.core.lock_stats_table().get("/l").copied())
}

#[tokio::test]
async fn lock_statistics_survive_a_restart_and_a_snapshot_install() {
    let (dir, other) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let stats = {
        let mut storage = open(dir.path());
        storage.state_machine.apply(contended_lock()).await.unwrap();
        lock_stats(&storage).unwrap()
    };
    assert_eq!((stats.acquisitions, stats.contended), (2, 1));
    assert_eq!((stats.wait.sum_ms, stats.hold.count, stats.hold.sum_ms), (1, 1, 2));
    let mut storage = open(dir.path());
    assert_eq!(lock_stats(&storage), Some(stats), "kept by the keyspace across a restart");
    // Session 2 ends: its hold (granted at entry 5) is counted, and persisted.
    storage.state_machine.apply(vec![entry(6, Command::CloseSession { id: 2 })]).await.unwrap();
    let after = lock_stats(&storage).unwrap();
    assert_eq!((after.hold.count, after.hold.sum_ms), (2, 3));
    drop(storage);
    let mut storage = open(dir.path());
    assert_eq!(lock_stats(&storage), Some(after));
    // A snapshot carries them to another member, which keeps them across a restart.
    let snapshot = storage.state_machine.build_snapshot().await.unwrap();
    {
        let mut target = open(other.path());
        target.state_machine.install_snapshot(&snapshot.meta, snapshot.snapshot).await.unwrap();
        assert_eq!(lock_stats(&target), Some(after));
    }
    let target = open(other.path());
    assert_eq!(lock_stats(&target), Some(after));
    assert_eq!(snapshot_bytes(&target), snapshot_bytes(&storage));
}
