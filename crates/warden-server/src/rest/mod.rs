//! The REST API for curl users, under `/v1/` on the HTTP port (issue 16 item 2; described
//! by `docs/openapi.json`, served at `GET /v1/openapi.json`, and `docs/rest.md`).
//!
//! There is one implementation of every call: a handler reads the JSON (or query), builds
//! the same request message a gRPC client sends, and calls the same service object the
//! client port serves ([`Rest`] holds them), with the caller's identity in the request's
//! extensions as the client port's caller layer puts it there. So the ACL decision
//! (`Access::admit`), the limits, the audit log and the waits (a dropped call withdraws its
//! wait) are those of gRPC; a gateway that skipped them was etcd's CVE-2018-16886. The
//! caller is the identity of the HTTP port's client certificate (`http_tls`), anonymous
//! without one.
//!
//! Locks, semaphores and elections are named by paths, which hold slashes, so they are
//! named in the body or the query (as etcd's JSON gateway and Consul do), not in the URL
//! path; sessions, named by numbers, are resources at `/v1/sessions/{id}`.

mod admin;
mod body;
mod elections;
mod error;
mod json;
mod locks;
mod openapi;
mod sessions;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{MethodRouter, any};
use tonic::Code;
use tracing::Instrument;
use warden_proto::ErrorKind;

pub(crate) use error::ApiError;

use crate::caller::Caller;
use crate::cluster_service::ClusterService;
use crate::election_service::ElectionService;
use crate::lock_service::{LockService, SemaphoreService};
use crate::session_service::SessionService;

/// The longest a blocking call (an acquire, a campaign) may wait, ms: less than the HTTP
/// port keeps a connection (`http::CONNECTION_LIFETIME`), so the answer can reach the
/// client.
pub(crate) const MAX_WAIT_MS: u64 = 50_000;

/// The services the REST API calls: the very objects the client port serves.
pub(crate) struct Rest {
    pub(crate) sessions: Arc<SessionService>,
    pub(crate) locks: Arc<LockService>,
    pub(crate) semaphores: SemaphoreService,
    pub(crate) elections: Arc<ElectionService>,
    pub(crate) cluster: Arc<ClusterService>,
    /// `limits.max_request_bytes`: the largest body read.
    pub(crate) max_body: usize,
}

/// The state of every handler.
pub(crate) type RestState = Arc<Rest>;

/// `message` as a request of `caller`'s, as the client port's caller layer makes it.
pub(crate) fn request<T>(caller: &Caller, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(caller.clone());
    request
}

/// One endpoint: its method, its path, and the handler.
pub(crate) type Route = (Method, &'static str, MethodRouter<RestState>);

fn get<H: Handler<T, RestState>, T: 'static>(path: &'static str, handler: H) -> Route {
    (Method::GET, path, axum::routing::get(handler))
}

fn post<H: Handler<T, RestState>, T: 'static>(path: &'static str, handler: H) -> Route {
    (Method::POST, path, axum::routing::post(handler))
}

fn delete<H: Handler<T, RestState>, T: 'static>(path: &'static str, handler: H) -> Route {
    (Method::DELETE, path, axum::routing::delete(handler))
}

/// Every endpoint. The router is built from this list only, so the OpenAPI test that
/// compares it with `docs/openapi.json` sees every route.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        post("/v1/sessions", sessions::open),
        get("/v1/sessions", sessions::list),
        get("/v1/sessions/{id}", sessions::get),
        delete("/v1/sessions/{id}", sessions::close),
        post("/v1/sessions/{id}/keepalive", sessions::keepalive),
        post("/v1/locks/acquire", locks::acquire),
        post("/v1/locks/release", locks::release),
        post("/v1/locks/renew", locks::renew),
        post("/v1/locks/revoke", locks::revoke),
        get("/v1/locks/status", locks::status),
        get("/v1/locks/sequencer", locks::sequencer),
        get("/v1/locks/stats", locks::stats),
        post("/v1/semaphores/acquire", locks::semaphore_acquire),
        post("/v1/semaphores/release", locks::semaphore_release),
        get("/v1/semaphores/status", locks::semaphore_status),
        post("/v1/elections/campaign", elections::campaign),
        post("/v1/elections/proclaim", elections::proclaim),
        post("/v1/elections/resign", elections::resign),
        get("/v1/elections/leader", elections::leader),
        get("/v1/cluster/status", admin::cluster_status),
        get("/v1/whoami", admin::whoami),
        get("/v1/openapi.json", openapi::document),
    ]
}

/// The REST API's router, to merge into the HTTP port's.
pub(crate) fn router(rest: RestState) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        router = router.route(path, handler);
    }
    router
        // Anything else under /v1/ is answered as an error of the API, in JSON.
        .route("/v1/{*rest}", any(no_endpoint))
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn(in_span))
        .with_state(rest)
}

/// Runs a request in a `request{rpc, identity}` span, as the client port does (the
/// identity is recorded by `Access::admit`).
async fn in_span(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        rpc = %request.uri().path(),
        method = %request.method(),
        identity = tracing::field::Empty
    );
    next.run(request).instrument(span).await
}

async fn no_endpoint(request: Request) -> ApiError {
    ApiError::new(
        Code::NotFound,
        ErrorKind::NoEndpoint,
        format!(
            "the REST API has no endpoint {} {}; GET /v1/openapi.json lists them",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn wrong_method(request: Request) -> ApiError {
    ApiError::new(
        Code::Unimplemented,
        ErrorKind::NoEndpoint,
        format!(
            "{} is not a method of {}; GET /v1/openapi.json lists each endpoint's",
            request.method(),
            request.uri().path()
        ),
    )
}
