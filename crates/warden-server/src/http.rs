//! The HTTP port (`http_addr`): operators' endpoints, started and stopped with the member.
//!
//! - `GET /health`: ready or not, as JSON, 200 or 503 (`health`);
//! - `GET /health/live`: 200 while the process serves;
//! - `GET /metrics`: Prometheus text (`metrics`);
//! - `GET /cluster/status`: the cluster status document, as this member knows it
//!   (`cluster_status`).
//!
//! Plain HTTP, even when `[tls]` secures the client and peer ports: it is an operator's
//! port (etcd serves its metrics the same way, on a listener of their own), to bind to
//! loopback or a private network. None of its answers holds a key or a value.
//!
//! [`router`] is where the endpoints are routed: a REST API or a status page join it as
//! routers of their own. [`serve`] is the accept loop, written here rather than taken
//! from `axum::serve` so that a client cannot hurt the member: at most
//! [`MAX_CONNECTIONS`] at once (more are closed as they arrive), a request's headers
//! within [`HEADER_TIMEOUT`] (an idle keep-alive connection is closed after as long), and
//! no connection lives longer than [`CONNECTION_LIFETIME`]. A connection that fails is
//! only logged at debug level.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{Instrument, debug, warn};

use crate::cluster_status::ClusterStatus;
use crate::health::{Facts, LeaderCommit, assess};
use crate::metrics::{Metrics, Scrape};
use crate::shared::Shared;

/// Connections served at once, at most; more are closed as they are accepted.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// A request's headers must arrive within this, and an idle connection is closed after it.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection is kept, whatever it does.
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// The pause after a failed accept (out of file descriptors), so as not to spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the endpoints read.
pub(crate) struct HttpState {
    /// The member.
    pub shared: Shared,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// The leader's commit index as this member last heard it.
    pub leader_commit: Arc<LeaderCommit>,
    /// Set when the member starts shutting down.
    pub shutting_down: Arc<AtomicBool>,
    /// `health.max_lag_entries`.
    pub max_lag_entries: u64,
}

/// The endpoints (see the module docs).
pub(crate) fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/metrics", get(metrics))
        .route("/cluster/status", get(cluster_status))
        .fallback(not_found)
        .with_state(state)
}

fn json(code: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (code, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => internal(&format!("cannot encode the answer as JSON: {e}")),
    }
}

fn internal(why: &str) -> Response {
    warn!(why, "an HTTP endpoint failed");
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n")).into_response()
}

async fn facts(state: &HttpState) -> Facts {
    Facts::observe(&state.shared, &state.leader_commit, state.shutting_down.load(Ordering::SeqCst))
        .await
}

async fn health(State(state): State<Arc<HttpState>>) -> Response {
    let health =
        assess(&facts(&state).await, state.max_lag_entries, state.shared.quorum_lost_after_ms);
    let code = if health.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json(code, &health)
}

/// Liveness: the process answers; nothing else is looked at.
#[derive(Serialize)]
struct Live {
    status: &'static str,
    member_id: u64,
}

async fn live(State(state): State<Arc<HttpState>>) -> Response {
    json(StatusCode::OK, &Live { status: "ok", member_id: state.shared.id })
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let commit_index = facts(&state).await.commit_index;
    let raft = state.shared.raft.metrics().borrow().clone();
    let (sessions, queues) = state
        .shared
        .state_machine
        .read(|a| (a.core.sessions().count(), warden_core::queue_counts::count(&a.core)));
    let usage = state.shared.state_machine.read(|a| a.core.usage());
    let alarms = crate::space::alarms(&state.shared);
    state.metrics.set_space(&alarms, &usage, state.shared.space.free());
    let scrape = Scrape { raft: &raft, commit_index, sessions, queues: &queues };
    match state.metrics.render(&scrape) {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => internal(&format!("cannot encode the metrics: {e}")),
    }
}

async fn cluster_status(State(state): State<Arc<HttpState>>) -> Response {
    let status = crate::cluster_service::member_status(&state.shared);
    json(StatusCode::OK, &ClusterStatus::of_member(&status).json())
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "no such endpoint; this port serves GET /health, /health/live, /metrics and /cluster/status\n",
    )
        .into_response()
}

/// Serves `router` on `listener` until `stopped` resolves; then stops accepting and drops
/// every open connection.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    stopped: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    tokio::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            () = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "the HTTP port cannot accept a connection; retrying");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            debug!(%peer, "HTTP connection closed: {MAX_CONNECTIONS} already open");
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |request| {
            let router = router.clone();
            async move {
                Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|e| match e {}))
            }
        });
        connections.spawn(
            async move {
                let _slot = slot;
                let mut builder = http1::Builder::new();
                builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(%peer, error = %e, "HTTP connection failed"),
                    Err(_) => debug!(%peer, "HTTP connection closed after {CONNECTION_LIFETIME:?}"),
                }
            }
            .in_current_span(),
        );
    }
}
