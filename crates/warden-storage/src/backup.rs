//! Backups: the replicated state in one self-checking file, and a fresh data directory
//! made from one for a member of a new cluster.
//!
//! A backup is what the `Maintenance.Snapshot` RPC streams and `warden snapshot save`
//! writes. Layout (format version 1), all integers little-endian:
//!
//! ```text
//! "WBAK" | format version u32 | revision u64 | applied index u64 | applied term u64
//!        | state length u64 | the core's snapshot bytes (State::snapshot)
//!        | SHA-256 of every byte before it (32 bytes)
//! ```
//!
//! The stream carries everything but the checksum in its chunks and the checksum in its
//! trailer; the file holds both, so a copy damaged anywhere later is refused.
//!
//! Restoring writes the state as an installed raft snapshot at the backup's applied index,
//! with the log purged up to it and the *new* cluster's members as its membership: the new
//! members start with the backup's state and revision, elect a leader among themselves
//! (term 1) and go on from the next index; a member added later receives the state as a
//! snapshot. Nothing of the old cluster's raft state (votes, log, members) is kept.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{CommittedLeaderId, Membership};

use crate::error::StorageError;
use crate::state_machine::StateMachineStore;
use crate::types::{LogId, NodeId, SnapshotMeta, StoredMembership, WardenNode};

/// The backup format this build writes (and the only one it reads).
pub const BACKUP_FORMAT_VERSION: u32 = 1;
/// Bytes of the checksum at the end of a backup file.
pub const CHECKSUM_BYTES: usize = 32;
const MAGIC: &[u8; 4] = b"WBAK";
/// Magic, version, four u64 fields.
const PREFIX_BYTES: usize = 4 + 4 + 4 * 8;

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupInfo {
    /// Its format version.
    pub format_version: u32,
    /// The namespace revision of the state.
    pub revision: u64,
    /// The index of the last log entry applied to the state.
    pub applied_index: u64,
    /// That entry's term.
    pub applied_term: u64,
    /// Bytes of the core's snapshot in it.
    pub state_bytes: u64,
}

impl BackupInfo {
    /// Bytes of the backup before its checksum (what a snapshot stream's chunks carry).
    pub fn total_bytes(&self) -> u64 {
        PREFIX_BYTES as u64 + self.state_bytes
    }
}

/// A backup of one member's state, taken at one applied log index, before its checksum:
/// `prefix` then `state` are its bytes.
#[derive(Debug, Clone)]
pub struct Backup {
    /// What it holds.
    pub info: BackupInfo,
    /// The format's fixed-size head.
    pub prefix: Vec<u8>,
    /// The core's snapshot bytes.
    pub state: Vec<u8>,
}

impl StateMachineStore {
    /// A backup of the applied state: encoded under the state machine's read lock, so it
    /// is one consistent cut at one applied index (applies wait while it is encoded; the
    /// caller streams it after the lock is released). Blocks: call it off the async threads.
    pub fn backup(&self) -> Result<Backup, StorageError> {
        let (revision, applied, state) = self
            .read(|a| a.core.snapshot().map(|bytes| (a.core.revision(), a.last_applied, bytes)))
            .map_err(|e| StorageError::Decode { what: "state", reason: e.to_string() })?;
        let info = BackupInfo {
            format_version: BACKUP_FORMAT_VERSION,
            revision,
            applied_index: applied.map_or(0, |l| l.index),
            applied_term: applied.map_or(0, |l| l.leader_id.term),
            state_bytes: state.len() as u64,
        };
        Ok(Backup { prefix: prefix(&info), info, state })
    }
}

fn prefix(info: &BackupInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&info.format_version.to_le_bytes());
    for field in [info.revision, info.applied_index, info.applied_term, info.state_bytes] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out
}

/// A running SHA-256, fed the bytes of a backup as they go by.
pub struct Checksum(ring::digest::Context);

impl Default for Checksum {
    fn default() -> Self {
        Checksum(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl Checksum {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The checksum of every byte added.
    pub fn finish(self) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }
}

/// Bytes as lowercase hex (how checksums are shown).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A backup file read and checked: its magic, checksum and format version.
#[derive(Debug, Clone)]
pub struct BackupFile {
    /// What it holds.
    pub info: BackupInfo,
    /// Its SHA-256 (checked).
    pub sha256: Vec<u8>,
    /// The core's snapshot bytes.
    pub state: Vec<u8>,
}

/// Reads and checks the backup file at `path` (not yet decoding the state in it).
pub fn read_backup(path: &Path) -> Result<BackupFile, StorageError> {
    let bytes = std::fs::read(path).map_err(|source| StorageError::BackupIo {
        path: path.to_owned(),
        context: "reading",
        source,
    })?;
    let bad =
        |reason: &str| StorageError::NotABackup { path: path.to_owned(), reason: reason.into() };
    if !bytes.starts_with(MAGIC) {
        return Err(bad(
            "it does not start with the backup magic \"WBAK\" (written by warden snapshot save)",
        ));
    }
    let Some(body_len) = bytes.len().checked_sub(CHECKSUM_BYTES).filter(|n| *n >= 8) else {
        return Err(bad("it is too short to hold a backup"));
    };
    let (body, stored) = bytes.split_at(body_len);
    let mut sum = Checksum::default();
    sum.update(body);
    let computed = sum.finish();
    if computed != stored {
        return Err(StorageError::BackupChecksum {
            path: path.to_owned(),
            stored: hex(stored),
            computed: hex(&computed),
        });
    }
    let field = |at: usize| -> u64 {
        body.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(u64::MAX)
    };
    let version = body.get(4..8).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let version = version.ok_or_else(|| bad("it is too short to hold a backup"))?;
    if version != BACKUP_FORMAT_VERSION {
        return Err(StorageError::BackupVersion { path: path.to_owned(), version });
    }
    if body.len() < PREFIX_BYTES {
        return Err(bad("it is too short to hold a backup"));
    }
    let info = BackupInfo {
        format_version: version,
        revision: field(8),
        applied_index: field(16),
        applied_term: field(24),
        state_bytes: field(32),
    };
    let state = body.get(PREFIX_BYTES..).unwrap_or_default();
    if state.len() as u64 != info.state_bytes {
        return Err(bad(&format!(
            "its header says {} bytes of state, and {} follow",
            info.state_bytes,
            state.len()
        )));
    }
    Ok(BackupFile { info, sha256: computed, state: state.to_vec() })
}

/// The member a restored data directory is for, and the members of its new cluster.
#[derive(Debug, Clone)]
pub struct RestoreTarget {
    /// The member whose data directory this is.
    pub node_id: NodeId,
    /// Every member of the new cluster (voters), by id.
    pub members: BTreeMap<NodeId, WardenNode>,
}

/// Writes a fresh data directory at `data_dir` for one member of a new cluster whose
/// state is the backup at `file`: see the module's documentation. Refuses a non-empty
/// `data_dir`, a file that is not a backup or fails its checksum, an unknown format
/// version and a state that does not decode, before writing anything.
pub async fn restore_backup(
    file: &Path,
    data_dir: &Path,
    target: &RestoreTarget,
) -> Result<BackupInfo, StorageError> {
    let bad_members = |reason: String| StorageError::BadMembers { reason };
    if target.members.is_empty() {
        return Err(bad_members("no members given".into()));
    }
    if target.members.contains_key(&0) {
        return Err(bad_members("member id 0: ids must be positive".into()));
    }
    if !target.members.contains_key(&target.node_id) {
        return Err(bad_members(format!(
            "node {} is not one of the members ({})",
            target.node_id,
            target.members.keys().map(u64::to_string).collect::<Vec<_>>().join(", ")
        )));
    }
    ensure_empty(data_dir)?;
    let backup = read_backup(file)?;
    // Decoded once here so that a state this build cannot read leaves nothing behind.
    warden_core::State::restore(&backup.state)
        .map_err(|e| StorageError::Decode { what: "backup state", reason: e.to_string() })?;
    std::fs::create_dir_all(data_dir).map_err(|source| StorageError::BackupIo {
        path: data_dir.to_owned(),
        context: "creating",
        source,
    })?;
    let storage = crate::open(data_dir, warden_core::Limits::default())?;
    let at: LogId = LogId::new(CommittedLeaderId::new(0, 0), backup.info.applied_index);
    let voters: BTreeSet<NodeId> = target.members.keys().copied().collect();
    let membership = Membership::new(vec![voters], target.members.clone());
    let meta = SnapshotMeta {
        last_log_id: Some(at),
        last_membership: StoredMembership::new(Some(at), membership),
        snapshot_id: format!("restored-{}-{}", backup.info.revision, backup.info.applied_index),
    };
    let raft = |e: openraft::StorageError<NodeId>| StorageError::Restore { reason: e.to_string() };
    let mut state_machine = storage.state_machine.clone();
    state_machine
        .install_snapshot(&meta, Box::new(Cursor::new(backup.state)))
        .await
        .map_err(raft)?;
    let mut log = storage.log.clone();
    // Purging persists with SyncAll: the state machine's keyspaces are durable with it.
    log.purge(at).await.map_err(raft)?;
    Ok(backup.info)
}

/// Fails unless `dir` is missing or an empty directory.
fn ensure_empty(dir: &Path) -> Result<(), StorageError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(StorageError::DataDirNotEmpty { dir: dir.to_owned() }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => {
            Err(StorageError::BackupIo { path: dir.to_owned(), context: "reading", source })
        }
    }
}
