//! The REST API's answers: the gRPC responses as JSON objects, field for field (names as in
//! the `.proto` files), with values per the CLI's contract (`body::Value`).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use warden_proto::v1 as pb;

use super::body::Value;

/// A JSON answer with `code` (ending with a newline, for the shell prompt after curl).
pub(crate) fn answer(code: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => super::ApiError::new(
            tonic::Code::Internal,
            warden_proto::ErrorKind::Internal,
            format!("cannot encode the answer as JSON: {e}"),
        )
        .into_response(),
    }
}

/// A 200 JSON answer.
pub(crate) fn ok(value: &impl Serialize) -> Response {
    answer(StatusCode::OK, value)
}

/// `ResponseHeader`.
#[derive(Serialize)]
pub(crate) struct Header {
    cluster_id: u64,
    member_id: u64,
    revision: u64,
    raft_term: u64,
}

/// The header of a response (an empty one if the service sent none, which it always does).
pub(crate) fn header(h: Option<pb::ResponseHeader>) -> Header {
    let h = h.unwrap_or_default();
    Header {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        revision: h.revision,
        raft_term: h.raft_term,
    }
}

/// `SessionInfo`.
#[derive(Serialize)]
pub(crate) struct Session {
    session_id: u64,
    ttl_ms: u64,
    remaining_ms: u64,
    identity: String,
    opened_ms: u64,
    ephemerals: Vec<String>,
}

pub(crate) fn session(s: pb::SessionInfo) -> Session {
    Session {
        session_id: s.session_id,
        ttl_ms: s.ttl_ms,
        remaining_ms: s.remaining_ms,
        identity: s.identity,
        opened_ms: s.opened_ms,
        ephemerals: s.ephemerals,
    }
}

/// `LockLost`.
#[derive(Serialize)]
pub(crate) struct Lost {
    pub(crate) path: String,
    pub(crate) token: u64,
    pub(crate) reason: String,
}

pub(crate) fn lost(l: pb::LockLost) -> Lost {
    Lost { path: l.path, token: l.token, reason: l.reason }
}

/// `LockWaiter`.
#[derive(Serialize)]
pub(crate) struct Waiter {
    waiter: String,
    session_id: u64,
    mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<u64>,
    since_ms: u64,
    identity: String,
    scope: &'static str,
    priority: u32,
    owner: String,
    holds: u32,
}

fn scope(scope: i32) -> &'static str {
    let scope = match pb::LockScope::try_from(scope) {
        Ok(pb::LockScope::Subtree) => warden_core::queue::Scope::Subtree,
        _ => warden_core::queue::Scope::Node,
    };
    warden_proto::convert::lock::scope_name(scope)
}

pub(crate) fn waiter(w: pb::LockWaiter) -> Waiter {
    Waiter {
        waiter: w.waiter,
        session_id: w.session_id,
        mode: w.mode,
        token: w.token,
        since_ms: w.since_ms,
        identity: w.identity,
        scope: scope(w.scope),
        priority: w.priority,
        owner: w.owner,
        holds: w.holds,
    }
}

/// `DurationHistogram`.
#[derive(Serialize)]
pub(crate) struct Histogram {
    bounds_ms: Vec<u64>,
    counts: Vec<u64>,
    count: u64,
    sum_ms: u64,
}

fn histogram(h: Option<pb::DurationHistogram>) -> Histogram {
    let h = h.unwrap_or_default();
    Histogram { bounds_ms: h.bounds_ms, counts: h.counts, count: h.count, sum_ms: h.sum_ms }
}

/// `LockStats`.
#[derive(Serialize)]
pub(crate) struct Stats {
    path: String,
    acquisitions: u64,
    contended: u64,
    holders: u64,
    waiters: u64,
    wait: Histogram,
    hold: Histogram,
    last_revision: u64,
}

pub(crate) fn stats(s: Option<pb::LockStats>) -> Stats {
    let s = s.unwrap_or_default();
    Stats {
        path: s.path,
        acquisitions: s.acquisitions,
        contended: s.contended,
        holders: s.holders,
        waiters: s.waiters,
        wait: histogram(s.wait),
        hold: histogram(s.hold),
        last_revision: s.last_revision,
    }
}

/// `LockStatusResponse`, with the lock's path.
#[derive(Serialize)]
pub(crate) struct LockStatus {
    header: Header,
    path: String,
    r#type: String,
    permits: u32,
    delay_ms: u64,
    blocked_until_ms: u64,
    waiters: Vec<Waiter>,
    stats: Stats,
}

pub(crate) fn lock_status(path: String, s: pb::LockStatusResponse) -> LockStatus {
    LockStatus {
        header: header(s.header),
        path,
        r#type: s.r#type,
        permits: s.permits,
        delay_ms: s.delay_ms,
        blocked_until_ms: s.blocked_until_ms,
        waiters: s.waiters.into_iter().map(waiter).collect(),
        stats: stats(s.stats),
    }
}

/// `LeaderInfo`.
#[derive(Serialize)]
pub(crate) struct Leader {
    name: String,
    #[serde(flatten)]
    value: Value,
    token: u64,
    session_id: u64,
    identity: String,
    candidate: String,
}

pub(crate) fn leader(l: Option<pb::LeaderInfo>) -> Leader {
    let l = l.unwrap_or_default();
    Leader {
        name: l.name,
        value: Value::of(&l.value),
        token: l.token,
        session_id: l.session_id,
        identity: l.identity,
        candidate: l.candidate,
    }
}
