//! The HTTP port (`http_addr`): operators' endpoints, started and stopped with the member.
//!
//! - `GET /health`: ready or not, as JSON, 200 or 503 (`health`);
//! - `GET /health/live`: 200 while the process serves;
//! - `GET /metrics`: Prometheus text (`metrics`);
//! - `GET /cluster/status`: the cluster status document, as this member knows it
//!   (`cluster_status`);
//! - `GET /`: the status page, and `GET /status`, the JSON document it draws
//!   (`status_page`);
//! - `/v1/...`: the REST API (`rest`), which calls the client port's services.
//!
//! Plain HTTP unless `[tls] cert` and `key` are set; then HTTPS, with client certificates
//! required under `tls.client_ca`, as on the client port (`http_tls`): the REST API reads
//! and writes locks. Every request carries its connection's [`Caller`] (anonymous without
//! a client certificate), which the REST API passes to the services' ACL checks. The
//! operators' endpoints have no ACL check and hold no value; the status page shows lock
//! paths and holders' identities only while no access policy is in force.
//!
//! [`router`] is where the endpoints are routed: the REST API and a status page join it
//! as routers of their own. [`serve`] is the accept loop, written here rather than taken
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
use axum::routing::{MethodRouter, get};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{Instrument, debug, warn};

use crate::caller::Caller;
use crate::cluster_status::ClusterStatus;
use crate::config::MetricsConfig;
use crate::health::{Facts, LeaderCommit, assess};
use crate::http_tls::{ConnectionCaller, HttpTls};
use crate::leadership::LeaderHistory;
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
    /// `[metrics]`: how lock statistics are grouped.
    pub lock_metrics: MetricsConfig,
    /// The last leader changes this member saw.
    pub leader_history: Arc<LeaderHistory>,
}

/// The endpoints (see the module docs).
pub(crate) fn router(state: Arc<HttpState>, rest: crate::rest::RestState) -> Router {
    let mut router = Router::new();
    for (path, handler) in routes() {
        router = router.route(path, handler);
    }
    router.fallback(not_found).with_state(state).merge(crate::rest::router(rest))
}

/// The operators' endpoints (all GET), apart from the REST API's: the router is built from
/// this list, which the OpenAPI document's test compares with `docs/openapi.json`.
pub(crate) fn routes() -> Vec<(&'static str, MethodRouter<Arc<HttpState>>)> {
    vec![
        ("/health", get(health)),
        ("/health/live", get(live)),
        ("/metrics", get(metrics)),
        ("/cluster/status", get(cluster_status)),
        ("/", get(crate::status_page::page)),
        ("/status", get(crate::status_page::status)),
    ]
}

pub(crate) fn json(code: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (code, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => internal(&format!("cannot encode the answer as JSON: {e}")),
    }
}

fn internal(why: &str) -> Response {
    warn!(why, "an HTTP endpoint failed");
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n")).into_response()
}

pub(crate) async fn facts(state: &HttpState) -> Facts {
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
    let grouping = &state.lock_metrics;
    let (sessions, queues, lock_prefixes) = state.shared.state_machine.read(|a| {
        (
            a.core.sessions().count(),
            warden_core::queue_counts::count(&a.core),
            a.core
                .lock_stats_table()
                .by_prefix(grouping.lock_prefix_segments, grouping.lock_prefixes),
        )
    });
    let usage = state.shared.state_machine.read(|a| a.core.usage());
    let alarms = crate::space::alarms(&state.shared);
    state.metrics.set_space(&alarms, &usage, state.shared.space.free());
    let scrape = Scrape {
        raft: &raft,
        commit_index,
        sessions,
        queues: &queues,
        lock_prefixes: &lock_prefixes,
    };
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
        "no such endpoint; this port serves GET / (the status page), /status, /health, /health/live, /metrics, /cluster/status and the REST API under /v1/ (GET /v1/openapi.json)\n",
    )
        .into_response()
}

/// Serves `router` on `listener` (with `tls`, if any) until `stopped` resolves; then stops
/// accepting and drops every open connection.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<HttpTls>>,
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
        let (router, tls) = (router.clone(), tls.clone());
        connections.spawn(
            async move {
                let _slot = slot;
                let served = async {
                    match tls {
                        None => {
                            connection(TokioIo::new(stream), router, Ok(Caller::default())).await
                        }
                        Some(tls) => {
                            let (stream, caller) =
                                tokio::time::timeout(HEADER_TIMEOUT, tls.accept(stream))
                                    .await
                                    .map_err(|_| "the TLS handshake took too long".to_owned())?
                                    .map_err(|e| format!("TLS handshake: {e}"))?;
                            connection(TokioIo::new(stream), router, caller).await
                        }
                    }
                };
                match tokio::time::timeout(CONNECTION_LIFETIME, served).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(%peer, error = %e, "HTTP connection failed"),
                    Err(_) => debug!(%peer, "HTTP connection closed after {CONNECTION_LIFETIME:?}"),
                }
            }
            .in_current_span(),
        );
    }
}

/// Serves one connection's requests, each with the connection's caller in its extensions
/// (or refused, when the client certificate names nobody). A client that hangs up ends
/// the connection, which drops the request being served: a blocking call is cancelled.
async fn connection<I>(
    io: TokioIo<I>,
    router: Router,
    caller: ConnectionCaller,
) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(
        move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            let router = router.clone();
            let caller = caller.clone();
            async move {
                let caller = match caller {
                    Ok(caller) => caller,
                    Err(refused) => return Ok::<_, Infallible>(refused.into_response()),
                };
                request.extensions_mut().insert(caller);
                Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|e| match e {}))
            }
        },
    );
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    builder.serve_connection(io, service).await.map_err(|e| e.to_string())
}
