//! The current snapshot, one file: `snapshot/current`.
//!
//! Layout: magic `WSNP`, the metadata's length (u64 little-endian), the bincode metadata,
//! then the core's snapshot bytes. It is written to a temporary file, fsynced, renamed over
//! `current`, and the directory fsynced, so a crash leaves either the old or the new
//! snapshot, never a torn one.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::codec::{decode, encode};
use crate::error::StorageError;
use crate::types::SnapshotMeta;

const MAGIC: &[u8; 4] = b"WSNP";

/// Where the current snapshot lives. Writes are serialized: openraft may build a
/// snapshot while it installs one.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotFile {
    dir: PathBuf,
    writing: Arc<Mutex<()>>,
    temp: Arc<AtomicU64>,
}

/// Whether a write may replace an older snapshot only, or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// A snapshot this node built: never replaces one with a later last log id.
    IfNotOlder,
    /// A snapshot from the leader: always replaces.
    Always,
}

impl SnapshotFile {
    pub(crate) fn open(dir: &Path) -> Result<SnapshotFile, StorageError> {
        fs::create_dir_all(dir).map_err(StorageError::io("creating the snapshot directory"))?;
        Ok(SnapshotFile {
            dir: dir.to_owned(),
            writing: Arc::new(Mutex::new(())),
            temp: Arc::new(AtomicU64::new(0)),
        })
    }

    fn current(&self) -> PathBuf {
        self.dir.join("current")
    }

    /// Replaces the current snapshot, durably; returns false if `replace` kept a later one.
    pub(crate) fn write(
        &self,
        meta: &SnapshotMeta,
        data: &[u8],
        replace: Replace,
    ) -> Result<bool, StorageError> {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        if replace == Replace::IfNotOlder
            && let Some(current) = self.read_meta()?
            && current.last_log_id > meta.last_log_id
        {
            return Ok(false);
        }
        let meta_bytes = encode("snapshot metadata", meta)?;
        let tmp =
            self.dir.join(format!("current.tmp.{}", self.temp.fetch_add(1, Ordering::Relaxed)));
        let mut file =
            fs::File::create(&tmp).map_err(StorageError::io("creating a snapshot file"))?;
        file.write_all(MAGIC)
            .and_then(|()| file.write_all(&(meta_bytes.len() as u64).to_le_bytes()))
            .and_then(|()| file.write_all(&meta_bytes))
            .and_then(|()| file.write_all(data))
            .and_then(|()| file.sync_all())
            .map_err(StorageError::io("writing a snapshot file"))?;
        fs::rename(&tmp, self.current()).map_err(StorageError::io("renaming a snapshot file"))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(StorageError::io("syncing the snapshot directory"))?;
        Ok(true)
    }

    /// The current snapshot's metadata, reading only the file's header.
    pub(crate) fn read_meta(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        let mut file = match fs::File::open(self.current()) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StorageError::Io { context: "opening the snapshot file", source: e });
            }
        };
        let corrupt = |reason: &str| StorageError::Decode {
            what: "snapshot file",
            reason: reason.to_owned(),
        };
        let mut header = [0u8; 12];
        file.read_exact(&mut header).map_err(|_| corrupt("truncated header"))?;
        let (magic, len) = header.split_at(4);
        if magic != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let len = len.try_into().map(u64::from_le_bytes).map_err(|_| corrupt("bad header"))?;
        let len = usize::try_from(len).map_err(|_| corrupt("bad metadata length"))?;
        let mut meta = vec![0u8; len.min(1 << 20)];
        file.read_exact(&mut meta).map_err(|_| corrupt("truncated metadata"))?;
        decode("snapshot metadata", &meta).map(Some)
    }

    /// The current snapshot, if one was written.
    pub(crate) fn read(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StorageError> {
        let bytes = match fs::read(self.current()) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StorageError::Io { context: "reading the snapshot file", source: e });
            }
        };
        let corrupt = |reason: &str| StorageError::Decode {
            what: "snapshot file",
            reason: reason.to_owned(),
        };
        let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| corrupt("bad magic"))?;
        let (len, rest) =
            rest.split_first_chunk::<8>().ok_or_else(|| corrupt("truncated header"))?;
        let len = usize::try_from(u64::from_le_bytes(*len))
            .map_err(|_| corrupt("bad metadata length"))?;
        if rest.len() < len {
            return Err(corrupt("truncated metadata"));
        }
        let (meta, data) = rest.split_at(len);
        Ok(Some((decode("snapshot metadata", meta)?, data.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId};

    use super::*;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), index)),
            last_membership: Default::default(),
            snapshot_id: format!("s{index}"),
        }
    }

    #[test]
    fn a_built_snapshot_never_replaces_a_later_one() -> Result<(), StorageError> {
        let dir = std::env::temp_dir().join(format!("warden-snapfile-{}", std::process::id()));
        let file = SnapshotFile::open(&dir)?;
        assert!(file.read()?.is_none() && file.read_meta()?.is_none());
        assert!(file.write(&meta(10), b"ten", Replace::IfNotOlder)?);
        assert!(!file.write(&meta(5), b"five", Replace::IfNotOlder)?);
        assert_eq!(
            file.read()?.map(|(m, d)| (m.snapshot_id, d)),
            Some(("s10".into(), b"ten".to_vec()))
        );
        assert!(file.write(&meta(5), b"five", Replace::Always)?);
        assert_eq!(file.read_meta()?.map(|m| m.snapshot_id), Some("s5".into()));
        fs::remove_dir_all(&dir).ok();
        Ok(())
    }
}
