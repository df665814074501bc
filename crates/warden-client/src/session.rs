//! A session with background keepalive that tells the application when it is in jeopardy
//! (renewals failing, the ttl not yet spent) and when it is lost.
//!
//! The keepalive runs on the leader: a stream of renewals every ttl/3. When the stream
//! breaks, the session enters jeopardy and the client looks for the leader on every member
//! until a renewal succeeds (alive again) or the ttl since the last successful renewal has
//! passed (lost: the cluster has expired it, or will, and its ephemeral nodes go with it).
//!
//! The leader pushes a lost hold (a lock's, or an election's leadership) on the stream as
//! it happens, and the first renewal of each stream lists the holds the client believes it
//! has (the leader answers with the ones that are gone), so a guard learns of a lost hold
//! even across a change of leader.
//!
//! A session ends when its owner says so: [`Session::close`], or dropping it, which closes
//! it in the background (as a dropped guard releases) so that its locks and ephemeral nodes
//! go now rather than a ttl later, and tells its guards at once ("session closed").
//! [`Session::abandon`] is for a program that means to vanish (tests of a dead client): it
//! only stops the keepalives, and the cluster expires the session after its ttl.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_stream::wrappers::ReceiverStream;
use warden_proto::convert::session::{LOST_SESSION_ENDED, hold};
use warden_proto::v1 as pb;

use crate::connection::{self, Connection, Retry};
use crate::error::ClientError;

/// Where a session stands, as far as this client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// The last renewal succeeded.
    Alive,
    /// Renewals are failing; the session may still be alive on the cluster.
    Jeopardy,
    /// The session is gone (expired, closed, or its ttl passed without a renewal).
    Lost,
}

/// A live session. [`Session::close`] ends it and waits for the cluster's answer; dropping
/// it ends it too, in the background; [`Session::abandon`] lets it expire after its ttl.
pub struct Session {
    id: u64,
    ttl: Duration,
    connection: Arc<Connection>,
    state: watch::Receiver<SessionState>,
    /// The state's sender, shared with the keepalive, so that ending the session here
    /// tells its guards.
    state_tx: Arc<watch::Sender<SessionState>>,
    /// Closed or abandoned already: a drop has nothing left to do.
    ended: bool,
    last_renewal: watch::Receiver<Instant>,
    task: JoinHandle<()>,
    requests: Arc<RequestIds>,
    holds: Arc<Holds>,
}

/// The holds the client believes its session has (a lock's hold or an election's
/// leadership: a path and a token, whatever recipe made it), each with a flag the
/// keepalive sets (to the reason) when the cluster reports the hold lost, and the number
/// of guards that share it (acquiring a lock the session holds, or campaigning again while
/// leading, returns the same hold): the hold is ended when the last of them lets go.
#[derive(Default)]
pub(crate) struct Holds {
    held: Mutex<HoldFlags>,
}

/// One hold's lost flag and how many guards share it.
struct HoldEntry {
    lost: watch::Sender<Option<String>>,
    guards: usize,
}

/// Each hold, by path (the lock's, the election's) and token.
type HoldFlags = BTreeMap<(String, u64), HoldEntry>;

impl Holds {
    fn map(&self) -> std::sync::MutexGuard<'_, HoldFlags> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts reporting on the hold of `path` with `token` for one more guard: the
    /// receiver turns to `Some(reason)` if it is lost.
    pub(crate) fn track(&self, path: &str, token: u64) -> watch::Receiver<Option<String>> {
        let mut map = self.map();
        let entry = map
            .entry((path.to_owned(), token))
            .or_insert_with(|| HoldEntry { lost: watch::channel(None).0, guards: 0 });
        entry.guards += 1;
        entry.lost.subscribe()
    }

    /// One guard of the hold let go; true if it was the last one (or the hold was already
    /// reported lost), so the hold is to be released on the cluster.
    pub(crate) fn untrack(&self, path: &str, token: u64) -> bool {
        let mut map = self.map();
        let key = (path.to_owned(), token);
        let Some(entry) = map.get_mut(&key) else { return true };
        entry.guards = entry.guards.saturating_sub(1);
        if entry.guards > 0 {
            return false;
        }
        map.remove(&key);
        true
    }

    pub(crate) fn list(&self) -> Vec<pb::Hold> {
        self.map().keys().map(|(path, token)| hold(path.clone(), *token)).collect()
    }

    /// Reports every hold lost for `reason`: the session they belong to ended.
    fn mark_all_lost(&self, reason: &str) {
        for (_, entry) in std::mem::take(&mut *self.map()) {
            entry.lost.send_replace(Some(reason.to_owned()));
        }
    }

    fn mark_lost(&self, lost: &[pb::LockLost]) {
        let mut map = self.map();
        for l in lost {
            if let Some(entry) = map.remove(&(l.path.clone(), l.token)) {
                tracing::debug!(path = %l.path, token = l.token, reason = %l.reason, "hold lost; its guards say so");
                entry.lost.send_replace(Some(l.reason.clone()));
            }
        }
    }
}

/// The ids of a session's writes (Raft thesis §6.3): a sequence number per write and the
/// lowest one still waiting for an answer, so the cluster applies each write once however
/// often it is sent, and forgets answers the client has seen.
#[derive(Default)]
pub(crate) struct RequestIds {
    last: AtomicU64,
    pending: Mutex<BTreeSet<u64>>,
}

impl RequestIds {
    pub(crate) fn begin(&self) -> pb::RequestId {
        let seq = self.last.fetch_add(1, Ordering::Relaxed) + 1;
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.insert(seq);
        let lowest_pending = pending.first().copied().unwrap_or(seq);
        pb::RequestId { seq, lowest_pending }
    }

    pub(crate) fn finish(&self, seq: u64) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&seq);
    }
}

impl Session {
    pub(crate) async fn open(
        connection: Arc<Connection>,
        ttl: Duration,
    ) -> Result<Session, ClientError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        // The cluster counts the first ttl from after the request arrived: counting it here
        // from the send keeps this side's deadline the earlier one.
        let sent = Instant::now();
        let opened = connection
            .run(Retry::Once, |c| async move {
                connection::session(c)
                    .open(pb::OpenSessionRequest { ttl_ms })
                    .await
                    .map(|r| r.into_inner())
            })
            .await?;
        let ttl = Duration::from_millis(opened.ttl_ms);
        let (state_tx, state) = watch::channel(SessionState::Alive);
        let state_tx = Arc::new(state_tx);
        let (renewal_tx, last_renewal) = watch::channel(sent);
        let holds = Arc::new(Holds::default());
        let task = tokio::spawn(keep_alive(
            Arc::clone(&connection),
            opened.session_id,
            ttl,
            Arc::clone(&holds),
            Arc::clone(&state_tx),
            renewal_tx,
        ));
        Ok(Session {
            id: opened.session_id,
            ttl,
            connection,
            state,
            state_tx,
            ended: false,
            last_renewal,
            task,
            requests: Arc::default(),
            holds,
        })
    }

    /// The session's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The origin of a new write in this session, with a fresh request id; call
    /// [`Session::finish`] with the request id's `seq` once it is answered.
    pub(crate) fn begin(&self) -> pb::Origin {
        pb::Origin { session_id: self.id, request_id: Some(self.requests.begin()) }
    }

    /// The write with this sequence number was answered.
    pub(crate) fn finish(&self, seq: u64) {
        self.requests.finish(seq);
    }

    /// The request ids of this session's writes, for the recipes' writes that must apply
    /// once (a reentrant lock's acquires and releases).
    pub(crate) fn requests(&self) -> Arc<RequestIds> {
        Arc::clone(&self.requests)
    }

    /// The holds this session's keepalive reports on.
    pub(crate) fn holds(&self) -> Arc<Holds> {
        Arc::clone(&self.holds)
    }

    /// The session's ttl.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        *self.state.borrow()
    }

    /// A receiver that sees every state change.
    pub fn watch_state(&self) -> watch::Receiver<SessionState> {
        self.state.clone()
    }

    /// When the last acknowledged renewal was sent. The cluster will not end the session
    /// before this plus the ttl, even if the leader that acknowledged it dies: a new
    /// leader gives every session a full ttl from its takeover, which comes after any
    /// renewal the old leader acknowledged. It may end it later than that (up to a ttl
    /// after the latest leader change).
    pub fn last_renewal(&self) -> Instant {
        *self.last_renewal.borrow()
    }

    /// Resolves when the session is lost.
    pub async fn lost(&self) {
        let mut state = self.state.clone();
        while *state.borrow_and_update() != SessionState::Lost {
            if state.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops the keepalives without closing: the cluster expires the session after its
    /// ttl, as if this client had died. Its guards are not told until then.
    pub fn abandon(mut self) {
        self.ended = true;
        self.task.abort();
    }

    /// Ends the session now; its ephemeral nodes are deleted and its locks released.
    /// Returns how many nodes went. Its guards are lost ("session closed") however the
    /// call ends: the keepalives stop, so a session the call could not close expires.
    pub async fn close(mut self) -> Result<u64, ClientError> {
        self.ended = true;
        self.task.abort();
        let closed = close(&self.connection, self.id).await;
        self.end_here();
        Ok(closed?.deleted)
    }

    /// Marks the session lost here, and every hold it has: it is being closed.
    fn end_here(&self) {
        self.holds.mark_all_lost("session closed");
        self.state_tx.send_replace(SessionState::Lost);
    }
}

/// Closes session `id` on the cluster.
async fn close(
    connection: &Connection,
    session_id: u64,
) -> Result<pb::CloseSessionResponse, ClientError> {
    connection
        .run(Retry::Once, |c| async move {
            connection::session(c)
                .close(pb::CloseSessionRequest { session_id })
                .await
                .map(|r| r.into_inner())
        })
        .await
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        self.task.abort();
        if self.state() == SessionState::Lost {
            return;
        }
        self.end_here();
        let id = self.id;
        crate::background::spawn("session-close", &self.connection, move |connection| async move {
            match close(&connection, id).await {
                Ok(_) => tracing::debug!(session = id, "dropped session closed"),
                Err(error) => {
                    tracing::warn!(session = id, %error, "closing a dropped session failed; it expires after its ttl");
                }
            }
        });
    }
}

/// Changes the state, waking watchers only when it really changes. Lost is for good: a
/// renewal answered after the session was ended here does not bring it back.
fn set_state(state: &watch::Sender<SessionState>, new: SessionState) {
    state.send_if_modified(|current| {
        let changed = *current != new && *current != SessionState::Lost;
        if changed {
            *current = new;
        }
        changed
    });
}

/// Renews `id` every ttl/3 until it is lost, listing its holds and marking the ones the
/// cluster reports lost.
async fn keep_alive(
    connection: Arc<Connection>,
    id: u64,
    ttl: Duration,
    holds: Arc<Holds>,
    state: Arc<watch::Sender<SessionState>>,
    renewal: watch::Sender<Instant>,
) {
    let interval = (ttl / 3).max(Duration::from_millis(50));
    // The first renewal of each stream lists the holds: a new leader checks them, so holds
    // revoked while the client was away are found. Later renewals list none; the leader
    // pushes a revocation as it happens.
    let request = |holds: &Holds| pb::KeepAliveRequest { session_id: id, held: holds.list() };
    let plain = pb::KeepAliveRequest { session_id: id, held: Vec::new() };
    loop {
        let acked = *renewal.borrow();
        if acked.elapsed() >= ttl {
            state.send_replace(SessionState::Lost);
            return;
        }
        // Each attempt (the member tried, then the leader it points to) gets its own
        // request stream, opened with a first renewal.
        let stream = timeout(
            ttl.saturating_sub(acked.elapsed()),
            connection.run(Retry::Idempotent, |c| {
                let first = request(&holds);
                async move {
                    let (tx, rx) = mpsc::channel::<pb::KeepAliveRequest>(4);
                    let sent = Instant::now();
                    tx.try_send(first).ok();
                    let responses = connection::session(c)
                        .keep_alive(ReceiverStream::new(rx))
                        .await?
                        .into_inner();
                    Ok((tx, responses, sent))
                }
            }),
        )
        .await;
        let (tx, mut responses, mut sent) = match stream {
            Ok(Ok(opened)) => opened,
            _ => {
                set_state(&state, SessionState::Jeopardy);
                // Not past the ttl: the session is lost at its deadline, not a pause later
                // (the cluster may expire it then, and hand its holds to others).
                sleep(Duration::from_millis(50).min(ttl.saturating_sub(acked.elapsed()))).await;
                continue;
            }
        };
        // Whether the renewal sent at `sent` is still unanswered; the next renewal (or the
        // verdict that this one went unanswered) is due an interval after it was sent.
        let mut waiting = true;
        loop {
            let message = tokio::select! {
                message = responses.message() => message,
                () = tokio::time::sleep_until(sent + interval) => {
                    if waiting {
                        set_state(&state, SessionState::Jeopardy);
                        break;
                    }
                    sent = Instant::now();
                    waiting = true;
                    if tx.send(plain.clone()).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            match message {
                Ok(Some(response)) => {
                    holds.mark_lost(&response.lost);
                    if response.ended {
                        // Closed by an operator, or expired: pushed as it happened.
                        holds.mark_all_lost(LOST_SESSION_ENDED);
                        state.send_replace(SessionState::Lost);
                        return;
                    }
                    if response.pushed {
                        continue;
                    }
                    if response.ttl_ms == 0 {
                        state.send_replace(SessionState::Lost);
                        return;
                    }
                    waiting = false;
                    renewal.send_replace(sent);
                    set_state(&state, SessionState::Alive);
                }
                _ => {
                    set_state(&state, SessionState::Jeopardy);
                    // Do not hammer a member that just broke the stream (nor sleep past
                    // the deadline).
                    sleep(Duration::from_millis(20).min(ttl.saturating_sub(acked.elapsed()))).await;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member that takes connections and never answers (as across a partition): the
    /// session is lost exactly a ttl after its last renewal was sent, not later (the
    /// cluster counts the ttl from the renewal's arrival, so it expires the session no
    /// earlier). Virtual time: the clock is paused and jumps to each timer.
    #[tokio::test(start_paused = true)]
    async fn a_session_cut_off_is_lost_at_its_deadline_not_later() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
        let addr = silent.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string();
        let connection = Connection::new(vec![addr], Duration::from_secs(10), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let ttl = Duration::from_millis(1_000);
        let (state_tx, mut state) = watch::channel(SessionState::Alive);
        let sent = Instant::now();
        let (renewal, _last) = watch::channel(sent);
        let holds = Arc::new(Holds::default());
        tokio::spawn(keep_alive(Arc::new(connection), 1, ttl, holds, Arc::new(state_tx), renewal));
        state.wait_for(|s| *s == SessionState::Lost).await.unwrap_or_else(|e| panic!("{e}"));
        let lost = sent.elapsed();
        assert!(lost >= ttl, "lost {lost:?} after the last renewal: before its ttl");
        assert!(lost < ttl + Duration::from_millis(5), "lost {lost:?} after the last renewal");
        drop(silent);
    }
}
