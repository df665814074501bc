//! Sessions: who they are, how long they live, and the responses they may ask for again.
//!
//! A session's ephemeral nodes are indexed by the [`Tree`](crate::tree::Tree); this table
//! holds the rest. Deadlines are not here: keepalives never enter the log, the leader tracks
//! them in memory and proposes an expiry (DESIGN §3).
//!
//! Exactly-once requests follow the client sessions of the Raft thesis (§6.3): a request
//! carries `(session, seq)` and the lowest sequence number the client still waits on. The
//! session remembers the response of every request at or above that mark (at most
//! [`Limits::max_remembered_responses`](crate::Limits)), so a retry after a lost response
//! gets the first response back, and concurrent requests of one session may commit in any
//! order.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::ids::{ApplyContext, RequestId, SessionId};
use crate::limits::Limits;
use crate::quota;
use crate::response::{Output, Response};

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// How long it lives without a keepalive, in ms.
    pub ttl_ms: u64,
    /// The client identity that opened it (from its certificate; empty without TLS).
    pub identity: String,
    /// When it was opened, on the leader's clock, in ms since the Unix epoch.
    pub opened_ms: u64,
    /// Its remaining time to live at the last checkpoint, if one was taken. Nothing reads
    /// it any more (checkpoints are no longer proposed, see
    /// [`Command::CheckpointSessions`](crate::Command::CheckpointSessions)); it stays so that
    /// snapshots written before, and logs that still carry checkpoints, decode and apply.
    pub checkpoint_remaining_ms: Option<u64>,
    /// Responses by sequence number, for retries.
    responses: BTreeMap<u64, Response>,
    /// Requests below this sequence number can no longer be answered.
    floor: u64,
}

impl Session {
    /// A new session with nothing remembered.
    pub fn new(id: SessionId, ttl_ms: u64, identity: String, opened_ms: u64) -> Session {
        Session {
            id,
            ttl_ms,
            identity,
            opened_ms,
            checkpoint_remaining_ms: None,
            responses: BTreeMap::new(),
            floor: 1,
        }
    }

    /// Forgets what the client has acknowledged, then returns the remembered response to
    /// `request`, if it was applied before.
    pub fn recall(&mut self, request: RequestId) -> Result<Option<Response>, CoreError> {
        if request.seq == 0 {
            return Err(CoreError::InvalidRequestId {
                reason: "sequence numbers start at 1".to_owned(),
            });
        }
        if request.lowest_pending > request.seq {
            return Err(CoreError::InvalidRequestId {
                reason: format!(
                    "request {} says every request below {} was answered, itself included",
                    request.seq, request.lowest_pending
                ),
            });
        }
        if request.lowest_pending > self.floor {
            self.responses = self.responses.split_off(&request.lowest_pending);
            self.floor = request.lowest_pending;
        }
        if request.seq < self.floor {
            return Err(CoreError::StaleRequest {
                session: self.id,
                seq: request.seq,
                floor: self.floor,
            });
        }
        Ok(self.responses.get(&request.seq).cloned())
    }

    /// Remembers the response to request `seq`, forgetting the oldest beyond `max`.
    pub fn remember(&mut self, seq: u64, response: Response, max: usize) {
        self.responses.insert(seq, response);
        while self.responses.len() > max.max(1) {
            if let Some((oldest, _)) = self.responses.pop_first() {
                self.floor = oldest + 1;
            }
        }
    }

    /// How many responses are remembered.
    pub fn remembered(&self) -> usize {
        self.responses.len()
    }
}

/// The live sessions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionTable {
    sessions: BTreeMap<SessionId, Session>,
    last_id: SessionId,
    /// Sessions opened, changed or ended since the last [`SessionTable::take_dirty`].
    #[serde(skip)]
    dirty: BTreeSet<SessionId>,
    /// Live sessions per identity, for [`Limits::max_sessions_per_identity`]; derived from
    /// `sessions`, so not serialized ([`SessionTable::rebuild_index`] after a restore).
    #[serde(skip)]
    per_identity: BTreeMap<String, usize>,
    /// Derived from `sessions`: their counted size ([`crate::quota::session_bytes`]).
    #[serde(skip)]
    bytes: u64,
}

impl SessionTable {
    /// Opens a session with the entry's log index as its id.
    pub fn open(
        &mut self,
        ttl_ms: u64,
        identity: String,
        ctx: &ApplyContext,
        limits: &Limits,
    ) -> Result<Output, CoreError> {
        let (min_ms, max_ms) = (limits.min_session_ttl_ms, limits.max_session_ttl_ms);
        if !(min_ms..=max_ms).contains(&ttl_ms) {
            return Err(CoreError::InvalidTtl { ttl_ms, min_ms, max_ms });
        }
        let count = self.per_identity.get(&identity).copied().unwrap_or(0);
        if count >= limits.max_sessions_per_identity {
            return Err(CoreError::TooManySessions {
                identity,
                count,
                max: limits.max_sessions_per_identity,
            });
        }
        *self.per_identity.entry(identity.clone()).or_default() += 1;
        self.bytes += quota::session_bytes(&identity);
        // A log index is unique and never 0; max() matters only to callers without a log.
        let id = ctx.index.max(self.last_id + 1);
        self.last_id = id;
        self.dirty.insert(id);
        self.sessions.insert(id, Session::new(id, ttl_ms, identity, ctx.time_ms));
        Ok(Output::SessionOpened { id, ttl_ms })
    }

    /// A live session.
    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// A live session, to change.
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        let session = self.sessions.get_mut(&id)?;
        self.dirty.insert(id);
        Some(session)
    }

    /// Ends a session, returning it.
    pub fn remove(&mut self, id: SessionId) -> Option<Session> {
        let session = self.sessions.remove(&id)?;
        self.dirty.insert(id);
        self.bytes = self.bytes.saturating_sub(quota::session_bytes(&session.identity));
        if let Some(count) = self.per_identity.get_mut(&session.identity) {
            *count -= 1;
            if *count == 0 {
                self.per_identity.remove(&session.identity);
            }
        }
        Some(session)
    }

    /// The sessions opened, changed or ended since the last call: each is either live now
    /// or gone.
    pub fn take_dirty(&mut self) -> BTreeSet<SessionId> {
        std::mem::take(&mut self.dirty)
    }

    /// The largest session id handed out so far.
    pub fn last_id(&self) -> SessionId {
        self.last_id
    }

    /// A table of the given sessions, as loaded from storage.
    pub fn from_sessions(
        last_id: SessionId,
        sessions: impl IntoIterator<Item = Session>,
    ) -> SessionTable {
        let mut table = SessionTable {
            sessions: sessions.into_iter().map(|s| (s.id, s)).collect(),
            last_id,
            dirty: BTreeSet::new(),
            per_identity: BTreeMap::new(),
            bytes: 0,
        };
        table.rebuild_index();
        table
    }

    /// Recounts the live sessions of each identity (after a restore from a snapshot).
    pub(crate) fn rebuild_index(&mut self) {
        self.per_identity.clear();
        self.bytes = 0;
        for session in self.sessions.values() {
            *self.per_identity.entry(session.identity.clone()).or_default() += 1;
            self.bytes += quota::session_bytes(&session.identity);
        }
    }

    /// The counted size of the live sessions ([`crate::quota`]).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The counted size of the live sessions, counted again from scratch.
    pub fn recount_bytes(&self) -> u64 {
        self.sessions.values().map(|s| quota::session_bytes(&s.identity)).sum()
    }

    /// How many live sessions `identity` has opened.
    pub fn count_of(&self, identity: &str) -> usize {
        self.per_identity.get(identity).copied().unwrap_or(0)
    }

    /// All live sessions, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(revision: u64) -> Response {
        Response { revision, outcome: Err(CoreError::RootNotDeletable) }
    }

    fn rid(seq: u64, lowest_pending: u64) -> RequestId {
        RequestId { seq, lowest_pending }
    }

    #[test]
    fn recalls_what_it_remembers() {
        let mut s = Session::new(1, 5_000, String::new(), 0);
        assert_eq!(s.recall(rid(1, 1)), Ok(None));
        s.remember(1, response(10), 8);
        assert_eq!(s.recall(rid(1, 1)), Ok(Some(response(10))));
        // Out of order: 3 commits before 2.
        s.remember(3, response(12), 8);
        assert_eq!(s.recall(rid(2, 1)), Ok(None));
        assert_eq!(s.recall(rid(3, 2)), Ok(Some(response(12))));
    }

    #[test]
    fn forgets_acknowledged_and_refuses_them() {
        let mut s = Session::new(4, 5_000, String::new(), 0);
        s.remember(1, response(1), 8);
        s.remember(2, response(2), 8);
        assert_eq!(s.recall(rid(3, 3)), Ok(None));
        assert_eq!(s.remembered(), 0);
        assert_eq!(
            s.recall(rid(2, 2)),
            Err(CoreError::StaleRequest { session: 4, seq: 2, floor: 3 })
        );
    }

    #[test]
    fn evicts_oldest_beyond_the_limit() {
        let mut s = Session::new(1, 5_000, String::new(), 0);
        for seq in 1..=5 {
            s.remember(seq, response(seq), 3);
        }
        assert_eq!(s.remembered(), 3);
        assert!(matches!(s.recall(rid(2, 1)), Err(CoreError::StaleRequest { floor: 3, .. })));
        assert_eq!(s.recall(rid(3, 1)), Ok(Some(response(3))));
    }

    #[test]
    fn refuses_malformed_ids() {
        let mut s = Session::new(1, 5_000, String::new(), 0);
        assert!(matches!(s.recall(rid(0, 0)), Err(CoreError::InvalidRequestId { .. })));
        assert!(matches!(s.recall(rid(2, 3)), Err(CoreError::InvalidRequestId { .. })));
    }
}
