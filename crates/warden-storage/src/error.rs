//! The storage error type, and its conversion into openraft's.
//!
//! Any error here is fatal to the node: openraft stops the raft core when storage fails,
//! and the server exits with the message. Nothing is retried, because a failed fsync
//! leaves the file's state unknown (the "fsyncgate" lesson).

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};

use crate::types::RaftStorageError;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// fjall failed (I/O, corruption, a poisoned database after a failed fsync, a lock held
    /// by another process).
    #[error("fjall storage error in {context}: {source}")]
    Fjall {
        /// What the store was doing.
        context: &'static str,
        /// fjall's error.
        source: fjall::Error,
    },
    /// A file operation failed (snapshot files; injected log write failures).
    #[error("I/O error in {context}: {source}")]
    Io {
        /// What the store was doing.
        context: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Stored bytes could not be decoded: the data directory is corrupt or from an
    /// incompatible version.
    #[error("cannot decode {what} from the data directory: {reason}")]
    Decode {
        /// What was decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A backup file or a data directory to restore into could not be read or written.
    #[error("{context} {}: {source}", path.display())]
    BackupIo {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What was being done to it.
        context: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a warden backup.
    #[error("{} is not a warden backup: {reason}", path.display())]
    NotABackup {
        /// The file.
        path: std::path::PathBuf,
        /// Why not.
        reason: String,
    },
    /// The backup's bytes do not match its checksum: it was damaged after it was written.
    #[error(
        "{} is damaged: its SHA-256 is {computed}, and it was written as {stored}; use another copy of the backup",
        path.display()
    )]
    BackupChecksum {
        /// The file.
        path: std::path::PathBuf,
        /// The checksum stored in it.
        stored: String,
        /// The checksum of its bytes now.
        computed: String,
    },
    /// The backup was written in a format this build does not read.
    #[error(
        "{} is a backup of format version {version}, and this warden reads version {}; restore it with the warden that wrote it",
        path.display(),
        crate::backup::BACKUP_FORMAT_VERSION
    )]
    BackupVersion {
        /// The file.
        path: std::path::PathBuf,
        /// Its format version.
        version: u32,
    },
    /// A restore was pointed at a data directory that holds something.
    #[error(
        "the data directory {} is not empty: a restore writes a fresh one; give a new or empty directory (a member's old data is never overwritten)",
        dir.display()
    )]
    DataDirNotEmpty {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// The new cluster's members, as given for a restore, are not usable.
    #[error("cannot restore: {reason}")]
    BadMembers {
        /// What is wrong with them.
        reason: String,
    },
    /// Writing the restored state failed.
    #[error("restoring the backup failed: {reason}")]
    Restore {
        /// Why.
        reason: String,
    },
    /// A blocking storage task panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(String),
}

impl StorageError {
    pub(crate) fn fjall(context: &'static str) -> impl FnOnce(fjall::Error) -> StorageError {
        move |source| StorageError::Fjall { context, source }
    }

    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> StorageError {
        move |source| StorageError::Io { context, source }
    }

    /// This error as openraft's storage error, on `subject` while doing `verb`.
    pub fn into_raft(self, subject: ErrorSubject<u64>, verb: ErrorVerb) -> RaftStorageError {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}
