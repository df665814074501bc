//! The current snapshot, one file: `snapshot/current`.
//!
//! Layout: magic `WSNP`, the metadata's length (u64 little-endian), the bincode metadata,
//! then the core's snapshot bytes. It is written to a temporary file, fsynced, renamed over
//! `current`, and the directory fsynced, so a crash leaves either the old or the new
//! snapshot, never a torn one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::codec::{decode, encode};
use crate::error::StorageError;
use crate::types::SnapshotMeta;

const MAGIC: &[u8; 4] = b"WSNP";

/// Where the current snapshot lives.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotFile {
    dir: PathBuf,
}

impl SnapshotFile {
    pub(crate) fn open(dir: &Path) -> Result<SnapshotFile, StorageError> {
        fs::create_dir_all(dir).map_err(StorageError::io("creating the snapshot directory"))?;
        Ok(SnapshotFile { dir: dir.to_owned() })
    }

    fn current(&self) -> PathBuf {
        self.dir.join("current")
    }

    /// Replaces the current snapshot, durably.
    pub(crate) fn write(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let meta_bytes = encode("snapshot metadata", meta)?;
        let tmp = self.dir.join("current.tmp");
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
            .map_err(StorageError::io("syncing the snapshot directory"))
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
