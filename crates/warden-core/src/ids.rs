//! The leaf types every other module names: ids and the context a log entry is applied
//! with. This module imports nothing from the crate, so every module can import it without
//! making an import circle.

use serde::{Deserialize, Serialize};

/// A session's id: the log index of the entry that opened it. Never 0.
pub type SessionId = u64;

/// A client's id for one mutating request within its session (Raft thesis §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestId {
    /// The request's sequence number in its session, from 1.
    pub seq: u64,
    /// The lowest sequence number the client has not yet seen a response for: everything
    /// below it may be forgotten.
    pub lowest_pending: u64,
}

/// What a command is applied with, from its log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyContext {
    /// The entry's log index (from 1); becomes the id of a session it opens.
    pub index: u64,
    /// The leader's clock when it proposed the entry, in ms since the Unix epoch.
    pub time_ms: u64,
    /// The raft term the entry was appended in.
    pub term: u64,
}
