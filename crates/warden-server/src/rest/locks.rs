//! Locks and semaphores: acquire (try, or wait up to a timeout), release, renew, revoke,
//! status, sequencer check and statistics, over the Lock and Semaphore services.
//!
//! An acquire with `timeout_ms` 0 (the default) is the service's TryAcquire: granted at
//! once or refused 409 `AlreadyLocked`, leaving no wait behind. With a timeout (at most
//! [`MAX_WAIT_MS`]) it is Acquire: the request blocks until granted, or 504 `Timeout`;
//! a client that hangs up drops the call, which withdraws the wait as a dropped gRPC call
//! does. gRPC's "0 waits forever" is not offered: an HTTP answer must come within the
//! connection's lifetime.

use axum::Extension;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tonic::Code;
use warden_proto::ErrorKind;
use warden_proto::convert::lock::{EXCLUSIVE_NAME, PERMITS_PREFIX, SHARED_NAME};
use warden_proto::v1 as pb;
use warden_proto::v1::lock_server::Lock;
use warden_proto::v1::semaphore_server::Semaphore;

use super::body::{self, Query};
use super::json::{self, Header};
use super::{ApiError, MAX_WAIT_MS, RestState, request};
use crate::caller::Caller;

/// The kinds of lock the lock endpoints take (semaphores have their own).
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LockType {
    Mutex,
    Rwlock,
}

/// How a lock is held.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    #[default]
    Exclusive,
    Shared,
}

/// What a hold covers.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scope {
    #[default]
    Node,
    Subtree,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcquireBody {
    path: String,
    session_id: u64,
    /// Default: `rwlock` for a shared hold, else `mutex`.
    #[serde(default)]
    r#type: Option<LockType>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    timeout_ms: u64,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    scope: Scope,
    #[serde(default)]
    priority: u32,
    #[serde(default)]
    owner: String,
}

/// The answer to an acquire that holds.
#[derive(Serialize)]
struct Acquired {
    header: Header,
    path: String,
    session_id: u64,
    /// The waiter node that holds.
    waiter: String,
    /// The fencing token.
    token: u64,
    mode: String,
}

/// Whether to wait, and for how long.
fn wait(timeout_ms: u64) -> Result<Option<u64>, ApiError> {
    match timeout_ms {
        0 => Ok(None),
        ms if ms <= MAX_WAIT_MS => Ok(Some(ms)),
        ms => Err(ApiError::invalid(format!(
            "timeout_ms {ms} is over {MAX_WAIT_MS}: an HTTP call waits at most that long (0 does not wait); call again, or use the gRPC API to wait longer"
        ))),
    }
}

pub(crate) async fn acquire(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: AcquireBody = body::json(body, rest.max_body).await?;
    let shared = b.mode == Mode::Shared;
    let r#type = match (b.r#type, shared) {
        (Some(LockType::Mutex), true) => {
            return Err(ApiError::invalid(
                "a mutex has no shared mode: take a shared hold of an rwlock (type rwlock)",
            ));
        }
        (Some(LockType::Rwlock), _) | (None, true) => pb::LockType::Rwlock,
        (Some(LockType::Mutex), false) | (None, false) => pb::LockType::Mutex,
    };
    let timeout = wait(b.timeout_ms)?;
    let r = pb::AcquireRequest {
        path: b.path.clone(),
        session_id: b.session_id,
        r#type: r#type.into(),
        shared,
        delay_ms: b.delay_ms,
        timeout_ms: timeout.unwrap_or(0),
        scope: match b.scope {
            Scope::Node => pb::LockScope::Node,
            Scope::Subtree => pb::LockScope::Subtree,
        }
        .into(),
        priority: b.priority,
        owner: b.owner,
        ..Default::default()
    };
    let a = match timeout {
        None => rest.locks.try_acquire(request(&caller, r)).await?,
        Some(_) => rest.locks.acquire(request(&caller, r)).await?,
    }
    .into_inner();
    let mode = if shared { SHARED_NAME } else { EXCLUSIVE_NAME };
    Ok(json::ok(&acquired(b.path, b.session_id, a, mode.to_owned())))
}

fn acquired(path: String, session_id: u64, a: pb::AcquireResponse, mode: String) -> Acquired {
    Acquired {
        header: json::header(a.header),
        path,
        session_id,
        waiter: a.waiter,
        token: a.token,
        mode,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseBody {
    path: String,
    session_id: u64,
    #[serde(default)]
    token: Option<u64>,
}

#[derive(Serialize)]
struct Released {
    header: Header,
    held: bool,
    remaining: u32,
}

fn release_request(b: ReleaseBody) -> pb::ReleaseRequest {
    pb::ReleaseRequest { path: b.path, session_id: b.session_id, token: b.token, request_id: None }
}

fn released(r: pb::ReleaseResponse) -> Response {
    json::ok(&Released { header: json::header(r.header), held: r.held, remaining: r.remaining })
}

pub(crate) async fn release(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: ReleaseBody = body::json(body, rest.max_body).await?;
    let r = rest.locks.release(request(&caller, release_request(b))).await?.into_inner();
    Ok(released(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenewBody {
    path: String,
    session_id: u64,
    token: u64,
}

#[derive(Serialize)]
struct Renewed {
    header: Header,
    path: String,
    session_id: u64,
    token: u64,
    /// The session's renewed ttl.
    ttl_ms: u64,
}

/// A lock is kept by its session: renewing it is one keepalive of the session that also
/// checks the hold is still there (a hold that is gone is 409 `HoldEnded`).
pub(crate) async fn renew(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: RenewBody = body::json(body, rest.max_body).await?;
    let held = vec![pb::Hold { path: b.path.clone(), token: b.token }];
    let renewed = super::sessions::renew(&rest, &caller, b.session_id, held).await?;
    if let Some(lost) = renewed.lost.into_iter().next() {
        return Err(ApiError::new(
            Code::FailedPrecondition,
            ErrorKind::HoldEnded,
            format!(
                "session {} no longer holds {:?} with token {} ({}); the session itself was renewed",
                b.session_id, lost.path, lost.token, lost.reason
            ),
        ));
    }
    Ok(json::ok(&Renewed {
        header: json::header(renewed.header),
        path: b.path,
        session_id: b.session_id,
        token: b.token,
        ttl_ms: renewed.ttl_ms,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    path: String,
    session_id: u64,
}

#[derive(Serialize)]
struct Revoked {
    header: Header,
    held: bool,
}

pub(crate) async fn revoke(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: RevokeBody = body::json(body, rest.max_body).await?;
    let r = pb::RevokeRequest { path: b.path, session_id: b.session_id };
    let r = rest.locks.revoke(request(&caller, r)).await?.into_inner();
    Ok(json::ok(&Revoked { header: json::header(r.header), held: r.held }))
}

pub(crate) async fn status(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let path = Query::parse(query.as_deref()).required("path")?;
    let r = pb::LockStatusRequest { path: path.clone() };
    let s = rest.locks.status(request(&caller, r)).await?.into_inner();
    Ok(json::ok(&json::lock_status(path, s)))
}

#[derive(Serialize)]
struct Sequencer {
    header: Header,
    path: String,
    token: u64,
    valid: bool,
}

pub(crate) async fn sequencer(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref());
    let path = query.required("path")?;
    let token = query.required("token").and_then(|_| query.number("token", 0u64))?;
    let r = pb::CheckSequencerRequest { path: path.clone(), token };
    let c = rest.locks.check_sequencer(request(&caller, r)).await?.into_inner();
    Ok(json::ok(&Sequencer { header: json::header(c.header), path, token, valid: c.valid }))
}

#[derive(Serialize)]
struct Stats {
    header: Header,
    total: json::Stats,
    matched: u64,
    locks: Vec<json::Stats>,
}

pub(crate) async fn stats(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref());
    let prefix = query.optional("prefix").unwrap_or(warden_core::path::ROOT).to_owned();
    let limit = query.number("limit", 0u32)?;
    let r = pb::LockStatsRequest { prefix, limit };
    let s = rest.locks.stats(request(&caller, r)).await?.into_inner();
    Ok(json::ok(&Stats {
        header: json::header(s.header),
        total: json::stats(s.total),
        matched: s.matched,
        locks: s.locks.into_iter().map(|l| json::stats(Some(l))).collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SemaphoreBody {
    path: String,
    session_id: u64,
    permits: u32,
    #[serde(default)]
    weight: u32,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    timeout_ms: u64,
}

pub(crate) async fn semaphore_acquire(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: SemaphoreBody = body::json(body, rest.max_body).await?;
    let timeout = wait(b.timeout_ms)?;
    let r = pb::SemaphoreAcquireRequest {
        path: b.path.clone(),
        session_id: b.session_id,
        permits: b.permits,
        weight: b.weight,
        delay_ms: b.delay_ms,
        timeout_ms: timeout.unwrap_or(0),
    };
    let a = match timeout {
        None => rest.semaphores.try_acquire(request(&caller, r)).await?,
        Some(_) => Semaphore::acquire(&rest.semaphores, request(&caller, r)).await?,
    }
    .into_inner();
    let mode = format!("{PERMITS_PREFIX}{}", b.weight.max(1));
    Ok(json::ok(&acquired(b.path, b.session_id, a, mode)))
}

pub(crate) async fn semaphore_release(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: ReleaseBody = body::json(body, rest.max_body).await?;
    let r = Semaphore::release(&rest.semaphores, request(&caller, release_request(b))).await?;
    Ok(released(r.into_inner()))
}

pub(crate) async fn semaphore_status(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let path = Query::parse(query.as_deref()).required("path")?;
    let r = pb::LockStatusRequest { path: path.clone() };
    let s = Semaphore::status(&rest.semaphores, request(&caller, r)).await?.into_inner();
    Ok(json::ok(&json::lock_status(path, s)))
}
