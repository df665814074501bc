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
