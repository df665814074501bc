//! The Session service: open, keep alive (a stream), close, and inspect sessions; and the
//! leader's loop that expires and checkpoints them.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::error::ForwardToLeader;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};
use warden_core::{Command, Output};
use warden_proto::v1 as pb;
use warden_proto::v1::session_server::Session;

use crate::session_tracker::{SessionTracker, SessionView};
use crate::shared::Shared;
use crate::status;

/// How often the leader looks for expired sessions.
const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// How often the leader checkpoints remaining ttls.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(3);
/// Sessions per checkpoint entry.
const CHECKPOINT_BATCH: usize = 1_000;

/// Serves sessions.
pub(crate) struct SessionService {
    shared: Shared,
    tracker: Arc<SessionTracker>,
}

impl SessionService {
    pub(crate) fn new(shared: Shared, tracker: Arc<SessionTracker>) -> SessionService {
        SessionService { shared, tracker }
    }

    /// The term this node leads in, or UNAVAILABLE pointing at the leader.
    fn leading(&self) -> Result<u64, Status> {
        let metrics = self.shared.raft.metrics().borrow().clone();
        let term = self.tracker.term();
        if metrics.state == ServerState::Leader && term == metrics.current_term && term != 0 {
            return Ok(term);
        }
        let leader_node = metrics
            .current_leader
            .and_then(|id| metrics.membership_config.membership().get_node(&id).cloned());
        Err(status::not_leader(&ForwardToLeader { leader_id: metrics.current_leader, leader_node }))
    }
}

fn views(shared: &Shared) -> Vec<SessionView> {
    shared
        .state_machine
        .read(|a| a.core.sessions().map(|s| (s.id, s.ttl_ms, s.checkpoint_remaining_ms)).collect())
}

/// The leader's loop: track deadlines, propose expiries and checkpoints. Runs forever.
pub(crate) async fn track_sessions(shared: Shared, tracker: Arc<SessionTracker>) {
    let mut ticker = tokio::time::interval(EXPIRY_TICK);
    let mut last_checkpoint = Instant::now();
    loop {
        ticker.tick().await;
        let (state, term) = {
            let m = shared.raft.metrics();
            let m = m.borrow();
            (m.state, m.current_term)
        };
        let leading = (state == ServerState::Leader).then_some(term);
        let now = Instant::now();
        tracker.sync(leading, &views(&shared), now);
        if leading.is_none() {
            continue;
        }
        let (term, due) = tracker.due(now);
        if !due.is_empty() {
            debug!(sessions = ?due, term, "expiring sessions");
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(e) =
                    shared.write(None, None, Command::ExpireSessions { ids: due, term }).await
                {
                    warn!(error = %e, "session expiry not applied; it will be proposed again");
                }
            });
        }
        if now.duration_since(last_checkpoint) >= CHECKPOINT_EVERY {
            last_checkpoint = now;
            for chunk in tracker.remaining(now).chunks(CHECKPOINT_BATCH) {
                let command = Command::CheckpointSessions { remaining: chunk.to_vec() };
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = shared.write(None, None, command).await {
                        debug!(error = %e, "session checkpoint not applied");
                    }
                });
            }
        }
    }
}

type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<pb::KeepAliveResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Session for SessionService {
    async fn open(
        &self,
        request: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::OpenSessionResponse>, Status> {
        let ttl_ms = request.into_inner().ttl_ms;
        match self
            .shared
            .write(None, None, Command::OpenSession { ttl_ms, identity: String::new() })
            .await?
        {
            (revision, Output::SessionOpened { id, ttl_ms }) => {
                Ok(Response::new(pb::OpenSessionResponse {
                    header: Some(self.shared.header(revision)),
                    session_id: id,
                    ttl_ms,
                }))
            }
            (_, other) => Err(status::server(
                tonic::Code::Internal,
                "Internal",
                format!("unexpected output {other:?}"),
            )),
        }
    }

    type KeepAliveStream = KeepAliveStream;

    async fn keep_alive(
        &self,
        request: Request<Streaming<pb::KeepAliveRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        let term = self.leading()?;
        let shared = self.shared.clone();
        let tracker = Arc::clone(&self.tracker);
        let stream = request.into_inner().map(move |message| {
            let id = message?.session_id;
            // Leadership can end while the stream is open (or raft can stop under it).
            let still_leading = {
                let m = shared.raft.metrics();
                let m = m.borrow();
                m.state == ServerState::Leader && m.current_term == term
            };
            if !still_leading {
                return Err(Status::unavailable(
                    "this member stopped leading; reconnect to find the leader",
                ));
            }
            let ttl = shared.state_machine.read(|a| a.core.session(id).map(|s| s.ttl_ms));
            let renewed = match ttl {
                Some(ttl) if tracker.renew(term, id, ttl, Instant::now()) => ttl,
                Some(_) => {
                    return Err(Status::unavailable(
                        "this member stopped leading; reconnect to find the leader",
                    ));
                }
                None => 0,
            };
            let revision = shared.state_machine.read(|a| a.core.revision());
            Ok(pb::KeepAliveResponse {
                header: Some(shared.header(revision)),
                session_id: id,
                ttl_ms: renewed,
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn close(
        &self,
        request: Request<pb::CloseSessionRequest>,
    ) -> Result<Response<pb::CloseSessionResponse>, Status> {
        let id = request.into_inner().session_id;
        match self.shared.write(None, None, Command::CloseSession { id }).await? {
            (revision, Output::SessionClosed { deleted, .. }) => {
                Ok(Response::new(pb::CloseSessionResponse {
                    header: Some(self.shared.header(revision)),
                    deleted,
                }))
            }
            (_, other) => Err(status::server(
                tonic::Code::Internal,
                "Internal",
                format!("unexpected output {other:?}"),
            )),
        }
    }

    async fn info(
        &self,
        request: Request<pb::SessionInfoRequest>,
    ) -> Result<Response<pb::SessionInfoResponse>, Status> {
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
