//! Backups: a backup restores into a fresh data directory with the same state, the new
//! members and a purged log; damaged files, unknown versions and used directories are
//! refused before anything is written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload};
use tempfile::TempDir;
use warden_core::{Command, CreateMode, Limits, LogCommand, Request};
use warden_storage::backup::{self, Checksum, RestoreTarget};
use warden_storage::{Entry, LogId, Proposal, StorageError, WardenNode};

fn entry(index: u64, command: Command) -> Entry {
    let proposal =
        Proposal { time_ms: 1_000 + index, command: LogCommand::V1(Request::new(command)) };
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(3, 1), index),
        payload: EntryPayload::Normal(proposal),
    }
}

fn create(index: u64, path: &str) -> Entry {
    let mode = CreateMode::PERSISTENT;
    entry(index, Command::Create { path: path.into(), data: "v".into(), mode })
}

/// A backup of a store holding a few nodes and a session, written as `warden snapshot
/// save` writes it; with the core's snapshot bytes it holds.
async fn saved(dir: &Path) -> (std::path::PathBuf, Vec<u8>, backup::BackupInfo) {
    let mut storage = warden_storage::open(&dir.join("source"), Limits::default()).unwrap();
    let session = Command::OpenSession { ttl_ms: 9_000, identity: "a".into() };
    let entries = vec![create(1, "/a"), create(2, "/a/b"), entry(3, session), create(4, "/c")];
    storage.state_machine.apply(entries).await.unwrap();
    let taken = storage.state_machine.backup().unwrap();
    let file = dir.join("backup.db");
    let mut sum = Checksum::default();
    sum.update(&taken.prefix);
    sum.update(&taken.state);
    let mut out = std::fs::File::create(&file).unwrap();
    out.write_all(&taken.prefix).unwrap();
    out.write_all(&taken.state).unwrap();
    out.write_all(&sum.finish()).unwrap();
    (file, taken.state, taken.info)
}

fn members() -> BTreeMap<u64, WardenNode> {
    (1..=3)
        .map(|id| {
            let node = WardenNode {
                raft_addr: format!("127.0.0.1:{}", 9001 + 10 * id),
                client_addr: format!("127.0.0.1:{}", 9000 + 10 * id),
            };
            (id, node)
        })
        .collect()
}

fn target(node_id: u64) -> RestoreTarget {
    RestoreTarget { node_id, members: members() }
}

#[tokio::test]
async fn a_restored_directory_holds_the_state_the_new_members_and_no_log() {
    let dir = TempDir::new().unwrap();
    let (file, state, info) = saved(dir.path()).await;
    // Three creates make revisions; opening a session does not.
    assert_eq!((info.revision, info.applied_index, info.applied_term), (3, 4, 3));
    let checked = backup::read_backup(&file).unwrap();
    assert_eq!(checked.info, info);
    assert_eq!(checked.state, state);

    let restored_dir = dir.path().join("restored");
    let restored = backup::restore_backup(&file, &restored_dir, &target(2)).await.unwrap();
    assert_eq!(restored, info);
    let mut storage = warden_storage::open(&restored_dir, Limits::default()).unwrap();
    let bytes = storage.state_machine.read(|a| a.core.snapshot().unwrap());
    assert_eq!(bytes, state, "the restored state is the backup's, byte for byte");
    let (applied, membership) = storage.state_machine.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| (l.leader_id.term, l.index)), Some((0, 4)));
    let voters: Vec<u64> = membership.membership().voter_ids().collect();
    assert_eq!(voters, [1, 2, 3]);
    let log = storage.log.get_log_state().await.unwrap();
    assert_eq!(log.last_purged_log_id, applied);
    assert_eq!(log.last_log_id, applied);
    assert_eq!(storage.log.read_vote().await.unwrap(), None, "no vote of the old cluster");
    assert_eq!(storage.state_machine.read(|a| a.core.sessions().count()), 1);
}

#[tokio::test]
async fn a_damaged_backup_is_refused_and_nothing_is_written() {
    let dir = TempDir::new().unwrap();
    let (file, _, _) = saved(dir.path()).await;
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let restored_dir = dir.path().join("restored");
    let e = backup::restore_backup(&file, &restored_dir, &target(1)).await.unwrap_err();
    assert!(matches!(e, StorageError::BackupChecksum { .. }), "{e}");
    assert!(e.to_string().contains("damaged"), "{e}");
    assert!(!restored_dir.exists(), "a refused restore writes nothing");
}

#[tokio::test]
async fn an_unknown_format_version_is_refused() {
    let dir = TempDir::new().unwrap();
    let (file, _, _) = saved(dir.path()).await;
    let bytes = std::fs::read(&file).unwrap();
    let mut body = bytes[..bytes.len() - backup::CHECKSUM_BYTES].to_vec();
    body[4..8].copy_from_slice(&99u32.to_le_bytes());
    let mut sum = Checksum::default();
    sum.update(&body);
    body.extend(sum.finish());
    std::fs::write(&file, &body).unwrap();
    let e = backup::read_backup(&file).unwrap_err();
    assert!(matches!(e, StorageError::BackupVersion { version: 99, .. }), "{e}");
    assert!(e.to_string().contains("format version 99"), "{e}");
}

#[tokio::test]
async fn a_used_data_directory_or_a_foreign_node_is_refused() {
    let dir = TempDir::new().unwrap();
    let (file, _, _) = saved(dir.path()).await;
    let used = dir.path().join("used");
    std::fs::create_dir_all(&used).unwrap();
    std::fs::write(used.join("keep-me"), "x").unwrap();
    let e = backup::restore_backup(&file, &used, &target(1)).await.unwrap_err();
    assert!(matches!(e, StorageError::DataDirNotEmpty { .. }), "{e}");
    assert_eq!(std::fs::read(used.join("keep-me")).unwrap(), b"x");
    let e = backup::restore_backup(&file, &dir.path().join("new"), &target(7)).await.unwrap_err();
    assert!(e.to_string().contains("node 7 is not one of the members"), "{e}");
    let not_a_backup = dir.path().join("notes.txt");
    std::fs::write(&not_a_backup, "hello, this is not a backup at all, sorry").unwrap();
    let e = backup::read_backup(&not_a_backup).unwrap_err();
    assert!(matches!(e, StorageError::NotABackup { .. }), "{e}");
}
