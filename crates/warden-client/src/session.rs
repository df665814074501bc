//! A session with background keepalive that tells the application when it is in jeopardy
//! (renewals failing, the ttl not yet spent) and when it is lost.
//!
//! The keepalive runs on the leader: a stream of renewals every ttl/3. When the stream
//! breaks, the session enters jeopardy and the client looks for the leader on every member
//! until a renewal succeeds (alive again) or the ttl since the last successful renewal has
//! passed (lost: the cluster has expired it, or will, and its ephemeral nodes go with it).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_stream::wrappers::ReceiverStream;
use warden_proto::v1 as pb;
use warden_proto::v1::session_client::SessionClient;

use crate::connection::{Connection, Retry};
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

/// A live session. Dropping it stops the keepalives (the session then expires after its
/// ttl); [`Session::close`] ends it at once.
pub struct Session {
    id: u64,
    ttl: Duration,
    connection: Arc<Connection>,
    state: watch::Receiver<SessionState>,
    last_renewal: watch::Receiver<Instant>,
    task: JoinHandle<()>,
    requests: RequestIds,
}

/// The ids of a session's writes (Raft thesis §6.3): a sequence number per write and the
/// lowest one still waiting for an answer, so the cluster applies each write once however
/// often it is sent, and forgets answers the client has seen.
#[derive(Default)]
struct RequestIds {
    last: AtomicU64,
    pending: Mutex<BTreeSet<u64>>,
}

impl RequestIds {
    fn begin(&self) -> pb::RequestId {
        let seq = self.last.fetch_add(1, Ordering::Relaxed) + 1;
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.insert(seq);
        let lowest_pending = pending.first().copied().unwrap_or(seq);
        pb::RequestId { seq, lowest_pending }
    }

    fn finish(&self, seq: u64) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&seq);
    }
}

impl Session {
    pub(crate) async fn open(
        connection: Arc<Connection>,
        ttl: Duration,
    ) -> Result<Session, ClientError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let opened = connection
            .run(Retry::Once, |c| async move {
                SessionClient::new(c)
                    .open(pb::OpenSessionRequest { ttl_ms })
                    .await
                    .map(|r| r.into_inner())
            })
            .await?;
        let ttl = Duration::from_millis(opened.ttl_ms);
        let (state_tx, state) = watch::channel(SessionState::Alive);
        let (renewal_tx, last_renewal) = watch::channel(Instant::now());
        let task = tokio::spawn(keep_alive(
            Arc::clone(&connection),
            opened.session_id,
            ttl,
            state_tx,
            renewal_tx,
        ));
        Ok(Session {
            id: opened.session_id,
            ttl,
            connection,
            state,
            last_renewal,
            task,
            requests: RequestIds::default(),
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

    /// When the last acknowledged renewal was sent. The leader that acknowledged it will
    /// not expire the session before this plus the ttl; a new leader may, if the client
    /// does not reach it within the grace it gives (an election timeout) past the last
    /// checkpoint, so a client should not count on more than the checkpointed time.
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
    /// ttl, as if this client had died.
    pub fn abandon(self) {
        self.task.abort();
    }

    /// Ends the session now; its ephemeral nodes are deleted. Returns how many.
    pub async fn close(self) -> Result<u64, ClientError> {
        self.task.abort();
        let session_id = self.id;
        let closed = self
            .connection
            .run(Retry::Once, |c| async move {
                SessionClient::new(c)
                    .close(pb::CloseSessionRequest { session_id })
                    .await
                    .map(|r| r.into_inner())
            })
            .await?;
        Ok(closed.deleted)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Changes the state, waking watchers only when it really changes.
fn set_state(state: &watch::Sender<SessionState>, new: SessionState) {
    state.send_if_modified(|current| {
        let changed = *current != new;
        *current = new;
        changed
    });
}

/// Renews `id` every ttl/3 until it is lost.
async fn keep_alive(
    connection: Arc<Connection>,
    id: u64,
    ttl: Duration,
    state: watch::Sender<SessionState>,
    renewal: watch::Sender<Instant>,
) {
    let interval = (ttl / 3).max(Duration::from_millis(50));
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
            connection.run(Retry::Idempotent, |c| async move {
                let (tx, rx) = mpsc::channel::<pb::KeepAliveRequest>(4);
                let sent = Instant::now();
                tx.try_send(pb::KeepAliveRequest { session_id: id }).ok();
                let responses =
                    SessionClient::new(c).keep_alive(ReceiverStream::new(rx)).await?.into_inner();
                Ok((tx, responses, sent))
            }),
        )
        .await;
        let (tx, mut responses, mut sent) = match stream {
            Ok(Ok(opened)) => opened,
            _ => {
                set_state(&state, SessionState::Jeopardy);
                sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        loop {
            match timeout(interval, responses.message()).await {
                Ok(Ok(Some(response))) if response.ttl_ms == 0 => {
                    state.send_replace(SessionState::Lost);
                    return;
                }
                Ok(Ok(Some(_))) => {
                    renewal.send_replace(sent);
                    set_state(&state, SessionState::Alive);
                }
                _ => {
                    set_state(&state, SessionState::Jeopardy);
                    // Do not hammer a member that just broke the stream.
                    sleep(Duration::from_millis(20)).await;
                    break;
                }
            }
            sleep(interval).await;
            sent = Instant::now();
            if tx.send(pb::KeepAliveRequest { session_id: id }).await.is_err() {
                break;
            }
        }
    }
}
