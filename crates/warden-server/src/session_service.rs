//! The Session service: open, keep alive (a stream that also reports lost lock holds),
//! close, and inspect sessions; and the leader's loop that expires them.
//!
//! The leader proposes no `CheckpointSessions` any more (issue 11): a new leader gives
//! every session a full ttl from its takeover (see `session_tracker`), and a checkpoint
//! could only have shortened that, which is unsafe. Not proposing them saves an entry per
//! 1,000 sessions every 3 s. The command stays in warden-core so that logs and snapshots
//! written before still decode.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::error::ForwardToLeader;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, warn};
use warden_core::{Command, Output};
use warden_proto::ErrorKind;
use warden_proto::convert::session::{LOST_REVOKED, LOST_SESSION_ENDED, lock_lost, lost_reason};
use warden_proto::v1 as pb;
use warden_proto::v1::session_server::Session;

use crate::caller::Caller;
use crate::session_tracker::{Renewal, SessionTracker, SessionView};
use crate::shared::Shared;
use crate::status;
use crate::watch_hub::{SessionNotice, WatchHub};

/// How often the leader looks for expired sessions.
const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// Lock-delays are checked every this many ticks (500 ms).
const WAKE_EVERY_TICKS: u64 = 5;

/// Serves sessions.
pub(crate) struct SessionService {
    shared: Shared,
    tracker: Arc<SessionTracker>,
    hub: Arc<WatchHub>,
    /// A renewal is acknowledged only if a quorum acknowledged this leader within this
    /// time (the shortest election timeout): a leader cut off from the others must not
    /// keep sessions alive that the majority's leader is expiring. It is also what makes a
    /// new leader's full ttl from its takeover safe: every renewal acknowledged here comes
    /// before the next leader can be elected (see `session_tracker`).
    lease: Duration,
}

impl SessionService {
    pub(crate) fn new(
        shared: Shared,
        tracker: Arc<SessionTracker>,
        hub: Arc<WatchHub>,
        lease: Duration,
    ) -> SessionService {
        SessionService { shared, tracker, hub, lease }
    }

    /// The term this node leads in, or UNAVAILABLE pointing at the leader.
    fn leading(&self) -> Result<u64, Status> {
        let term = self.tracker.term();
        if term != 0 && leads_with_quorum(&self.shared, term, self.lease) {
            return Ok(term);
        }
        let metrics = self.shared.raft.metrics().borrow().clone();
        let leader_node = metrics
            .current_leader
            .and_then(|id| metrics.membership_config.membership().get_node(&id).cloned());
        Err(status::not_leader(&ForwardToLeader { leader_id: metrics.current_leader, leader_node }))
    }
}

/// Whether `shared` leads in `term` with a quorum heard from within `lease`.
fn leads_with_quorum(shared: &Shared, term: u64, lease: Duration) -> bool {
    let m = shared.raft.metrics();
    let m = m.borrow();
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    m.state == ServerState::Leader
        && m.current_term == term
        && m.millis_since_quorum_ack.is_some_and(|ms| ms < lease_ms)
}

fn views(shared: &Shared) -> Vec<SessionView> {
    shared.state_machine.read(|a| a.core.sessions().map(|s| (s.id, s.ttl_ms)).collect())
}

/// The leader's loop: track deadlines, propose expiries, and end lock-delays that are
/// over. Runs forever.
pub(crate) async fn track_sessions(shared: Shared, tracker: Arc<SessionTracker>) {
    let mut ticker = tokio::time::interval(EXPIRY_TICK);
    // At most one expiry in flight: a leader without a quorum must not pile up proposals
    // that cannot commit.
    let expiring = Arc::new(AtomicBool::new(false));
    // Lock-delays are ended by a WakeLocks entry when they are over.
    let waking = Arc::new(AtomicBool::new(false));
    let mut ticks: u64 = 0;
    loop {
        ticker.tick().await;
        // Lead only once this term's first entry is applied: before it, sessions opened
        // under the previous leader may not be in the applied state yet.
        let leading = {
            let m = shared.raft.metrics();
            let m = m.borrow();
            let applied_term = m.last_applied.map(|l| l.leader_id.term);
            let leads = m.state == ServerState::Leader && applied_term == Some(m.current_term);
            leads.then_some(m.current_term)
        };
        let now = Instant::now();
        tracker.sync(leading, &views(&shared), now);
        if leading.is_none() {
            continue;
        }
        ticks += 1;
        if ticks.is_multiple_of(WAKE_EVERY_TICKS) {
            crate::recipe_wait::wake_due(&shared, &waking);
        }
        if !expiring.load(Ordering::Acquire) {
            let (term, due) = tracker.due(now);
            if !due.is_empty() {
                debug!(sessions = ?due, term, "expiring sessions");
                expiring.store(true, Ordering::Release);
                let (shared, expiring) = (shared.clone(), Arc::clone(&expiring));
                tokio::spawn(
                    async move {
                        let command = Command::ExpireSessions { ids: due, term };
                        if let Err(e) = shared.write(None, None, command).await {
                            warn!(error = %e, "session expiry not applied; it will be proposed again");
                        }
                        expiring.store(false, Ordering::Release);
                    }
                    .in_current_span(),
                );
            }
        }
    }
}

type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<pb::KeepAliveResponse, Status>> + Send + 'static>>;

/// One keepalive stream: answers each renewal (with the listed holds that are gone), and
/// pushes a message as soon as one of the session's holds is revoked.
struct KeepAlive {
    /// Who opened the stream: it renews only its own sessions (or any, as an admin).
    caller: Caller,
    shared: Shared,
    tracker: Arc<SessionTracker>,
    hub: Arc<WatchHub>,
    lease: Duration,
    term: u64,
}

impl KeepAlive {
    async fn run(
        self,
        mut requests: Streaming<pb::KeepAliveRequest>,
        tx: mpsc::Sender<Result<pb::KeepAliveResponse, Status>>,
    ) {
        // The session's notice of revoked holds, once the first renewal names the session.
        let mut session: Option<(u64, Arc<SessionNotice>)> = None;
        loop {
            let notice = session.as_ref().map(|(_, n)| Arc::clone(n));
            let message = tokio::select! {
                message = requests.next() => message,
                () = async { match &notice { Some(n) => n.notify.notified().await, None => std::future::pending().await } } => {
                    let Some((id, notice)) = &session else { continue };
                    // One of its ephemeral nodes went: the session itself may have ended.
                    let ended = notice.take_maybe_ended()
                        && self.shared.state_machine.read(|a| a.core.session(*id).is_none());
                    let lost: Vec<pb::LockLost> = notice
                        .take()
                        .into_iter()
                        .map(|(path, token, mark)| lock_lost(path, token, lost_reason(mark)))
                        .collect();
                    if lost.is_empty() && !ended {
                        continue;
                    }
                    let pushed = pb::KeepAliveResponse {
                        header: Some(self.shared.header(self.revision())),
                        session_id: *id,
                        ttl_ms: 0,
                        lost,
                        pushed: true,
                        ended,
                    };
                    if tx.send(Ok(pushed)).await.is_err() || ended {
                        return;
                    }
                    continue;
                }
                () = tx.closed() => return,
            };
            let request = match message {
                Some(Ok(request)) => request,
                Some(Err(e)) => {
                    debug!(error = %e, "keepalive stream broke");
                    return;
                }
                None => return,
            };
            let own = [crate::access::Need::OwnSession(request.session_id)];
            if let Err(denied) = self.shared.access.check(&self.caller, "Session.KeepAlive", &own) {
                let _ = tx.send(Err(denied)).await;
                return;
            }
            if session.as_ref().is_none_or(|(id, _)| *id != request.session_id) {
                session = Some((request.session_id, self.hub.session_notice(request.session_id)));
            }
            // The holds the client lists (it lists them when a stream opens, so holds lost
            // while it talked to another leader are found) are checked against the state.
            let answer = self.renew(request.session_id).map(|mut response| {
                response.lost = self.lost(request.session_id, &request.held);
                response
            });
            let failed = answer.is_err();
            if tx.send(answer).await.is_err() || failed {
                return;
            }
        }
    }

    fn revision(&self) -> u64 {
        self.shared.state_machine.read(|a| a.core.revision())
    }

    /// The holds of `held` that `id` no longer has.
    fn lost(&self, id: u64, held: &[pb::Hold]) -> Vec<pb::LockLost> {
        if held.is_empty() {
            return Vec::new();
        }
        self.shared.state_machine.read(|a| {
            let live = a.core.session(id).is_some();
            held.iter()
                .filter(|h| !warden_core::recipe::still_holds(a.core.tree(), &h.path, id, h.token))
                .map(|h| {
                    let reason = if live { LOST_REVOKED } else { LOST_SESSION_ENDED };
                    lock_lost(h.path.clone(), h.token, reason)
                })
                .collect()
        })
    }

    /// Renews `id`'s deadline.
    fn renew(&self, id: u64) -> Result<pb::KeepAliveResponse, Status> {
        // Leadership can end while the stream is open (or raft can stop under it), and a
        // leader cut off from a quorum must not keep sessions alive.
        if !leads_with_quorum(&self.shared, self.term, self.lease) {
            return Err(status::server(
                tonic::Code::Unavailable,
                ErrorKind::NotLeader,
                "this member is no longer a leader with a quorum; reconnect to find the leader",
            ));
        }
        let ttl = self.shared.state_machine.read(|a| a.core.session(id).map(|s| s.ttl_ms));
        let renewed =
            match ttl.map(|ttl| (ttl, self.tracker.renew(self.term, id, ttl, Instant::now()))) {
                Some((ttl, Renewal::Renewed)) => ttl,
                Some((_, Renewal::NotLeading)) => {
                    return Err(status::server(
                        tonic::Code::Unavailable,
                        ErrorKind::NotLeader,
                        "this member stopped leading; reconnect to find the leader",
                    ));
                }
                // Past its deadline (the expiry is under way) or already gone.
                Some((_, Renewal::Expiring)) | None => 0,
            };
        Ok(pb::KeepAliveResponse {
            header: Some(self.shared.header(self.revision())),
            session_id: id,
            ttl_ms: renewed,
            lost: Vec::new(),
            pushed: false,
            ended: ttl.is_none(),
        })
    }
}

#[tonic::async_trait]
impl Session for SessionService {
    async fn open(
        &self,
        request: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::OpenSessionResponse>, Status> {
        // The session records who opened it (shown by session info and lock status).
        let identity = self.shared.access.admit(&request)?.identity;
        let ttl_ms = request.into_inner().ttl_ms;
        match self.shared.write(None, None, Command::OpenSession { ttl_ms, identity }).await? {
            (revision, Output::SessionOpened { id, ttl_ms }) => {
                Ok(Response::new(pb::OpenSessionResponse {
                    header: Some(self.shared.header(revision)),
                    session_id: id,
                    ttl_ms,
                }))
            }
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    type KeepAliveStream = KeepAliveStream;

    async fn keep_alive(
        &self,
        request: Request<Streaming<pb::KeepAliveRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        let term = self.leading()?;
        let caller = Caller::of(&request)?.clone();
        let stream = KeepAlive {
            caller,
            shared: self.shared.clone(),
            tracker: Arc::clone(&self.tracker),
            hub: Arc::clone(&self.hub),
            lease: self.lease,
            term,
        };
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(stream.run(request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn close(
        &self,
        request: Request<pb::CloseSessionRequest>,
    ) -> Result<Response<pb::CloseSessionResponse>, Status> {
        self.shared.access.admit(&request)?;
        let id = request.into_inner().session_id;
        match self.shared.write(None, None, Command::CloseSession { id }).await? {
            (revision, Output::SessionClosed { deleted, .. }) => {
                Ok(Response::new(pb::CloseSessionResponse {
                    header: Some(self.shared.header(revision)),
                    deleted,
                }))
            }
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    async fn info(
        &self,
        request: Request<pb::SessionInfoRequest>,
    ) -> Result<Response<pb::SessionInfoResponse>, Status> {
        self.shared.access.admit(&request)?;
        let wanted = request.into_inner().session_id;
        // Remaining time lives on the leader.
        self.leading()?;
        let remaining: std::collections::HashMap<u64, u64> =
            self.tracker.remaining(Instant::now()).into_iter().collect();
        let (revision, sessions) = self.shared.state_machine.read(|a| {
            let sessions: Vec<pb::SessionInfo> = a
                .core
                .sessions()
                .filter(|s| wanted == 0 || s.id == wanted)
                .map(|s| pb::SessionInfo {
                    session_id: s.id,
                    ttl_ms: s.ttl_ms,
                    remaining_ms: remaining.get(&s.id).copied().unwrap_or(s.ttl_ms),
                    identity: s.identity.clone(),
                    opened_ms: s.opened_ms,
                    ephemerals: a.core.ephemerals_of(s.id).map(str::to_owned).collect(),
                })
                .collect();
            (a.core.revision(), sessions)
        });
        if wanted != 0 && sessions.is_empty() {
            return Err(status::core_error(&warden_core::CoreError::SessionExpired { id: wanted }));
        }
        Ok(Response::new(pb::SessionInfoResponse {
            header: Some(self.shared.header(revision)),
            sessions,
        }))
    }
}
