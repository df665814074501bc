//! Sessions: `POST /v1/sessions`, `GET /v1/sessions[/{id}]`, `DELETE /v1/sessions/{id}`
//! and `POST /v1/sessions/{id}/keepalive`, over the Session service.
//!
//! A keepalive is one renewal: the handler opens the service's KeepAlive stream with one
//! request in it, reads the answer, and ends the stream, exactly as a gRPC client's
//! single renewal goes (the same leader and ownership checks, the same list of holds lost).

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;
use tonic::codec::Codec;
use tonic::{Code, Streaming};
use warden_proto::ErrorKind;
use warden_proto::v1 as pb;
use warden_proto::v1::session_server::Session;

use super::json::{self, Header, Lost};
use super::{ApiError, RestState, body, request};
use crate::caller::Caller;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenBody {
    ttl_ms: u64,
}

#[derive(Serialize)]
struct Opened {
    header: Header,
    session_id: u64,
    ttl_ms: u64,
}

pub(crate) async fn open(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: OpenBody = body::json(body, rest.max_body).await?;
    let r = pb::OpenSessionRequest { ttl_ms: b.ttl_ms };
    let o = rest.sessions.open(request(&caller, r)).await?.into_inner();
    let location = format!("/v1/sessions/{}", o.session_id);
    let opened =
        Opened { header: json::header(o.header), session_id: o.session_id, ttl_ms: o.ttl_ms };
    let mut response = json::answer(StatusCode::CREATED, &opened);
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// A session id from the URL path.
fn id(text: &str) -> Result<u64, ApiError> {
    match text.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::invalid(format!(
            "{text:?} is not a session id (a positive integer, as POST /v1/sessions answers)"
        ))),
    }
}

#[derive(Serialize)]
struct Listed {
    header: Header,
    count: usize,
    sessions: Vec<json::Session>,
}

pub(crate) async fn list(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let r = pb::SessionInfoRequest { session_id: 0 };
    let info = rest.sessions.info(request(&caller, r)).await?.into_inner();
    let sessions: Vec<json::Session> = info.sessions.into_iter().map(json::session).collect();
    Ok(json::ok(&Listed { header: json::header(info.header), count: sessions.len(), sessions }))
}

#[derive(Serialize)]
struct One {
    header: Header,
    #[serde(flatten)]
    session: json::Session,
}

pub(crate) async fn get(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    Path(session): Path<String>,
) -> Result<Response, ApiError> {
    let session = id(&session)?;
    let r = pb::SessionInfoRequest { session_id: session };
    let info = rest.sessions.info(request(&caller, r)).await?.into_inner();
    let Some(s) = info.sessions.into_iter().next() else {
        return Err(gone(session));
    };
    Ok(json::ok(&One { header: json::header(info.header), session: json::session(s) }))
}

fn gone(id: u64) -> ApiError {
    ApiError::new(
        Code::NotFound,
        ErrorKind::SessionExpired,
        format!(
            "session {id} does not exist (it was closed or expired); open a new one with POST /v1/sessions"
        ),
    )
}

#[derive(Serialize)]
struct Closed {
    header: Header,
    deleted: u64,
}

pub(crate) async fn close(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    Path(session): Path<String>,
) -> Result<Response, ApiError> {
    let r = pb::CloseSessionRequest { session_id: id(&session)? };
    let c = rest.sessions.close(request(&caller, r)).await?.into_inner();
    Ok(json::ok(&Closed { header: json::header(c.header), deleted: c.deleted }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Held {
    path: String,
    token: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeepAliveBody {
    #[serde(default)]
    held: Vec<Held>,
}

#[derive(Serialize)]
struct Renewed {
    header: Header,
    session_id: u64,
    ttl_ms: u64,
    lost: Vec<Lost>,
}

pub(crate) async fn keepalive(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    Path(session): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let session = id(&session)?;
    let b: KeepAliveBody = body::json(body, rest.max_body).await?;
    let held = b.held.into_iter().map(|h| pb::Hold { path: h.path, token: h.token }).collect();
    let renewed = renew(&rest, &caller, session, held).await?;
    Ok(json::ok(&Renewed {
        header: json::header(renewed.header),
        session_id: session,
        ttl_ms: renewed.ttl_ms,
        lost: renewed.lost.into_iter().map(json::lost).collect(),
    }))
}

/// One renewal of `session` through the Session service's KeepAlive stream, listing
/// `held`; a session that is gone (or going: past its deadline) is NOT_FOUND.
pub(crate) async fn renew(
    rest: &RestState,
    caller: &Caller,
    session: u64,
    held: Vec<pb::Hold>,
) -> Result<pb::KeepAliveResponse, ApiError> {
    let message = pb::KeepAliveRequest { session_id: session, held };
    let requests = one_message(&message, rest.max_body);
    let mut answers = rest.sessions.keep_alive(request(caller, requests)).await?.into_inner();
    let answer = match answers.next().await {
        Some(answer) => answer?,
        None => {
            return Err(ApiError::new(
                Code::Unavailable,
                ErrorKind::Stopped,
                "the keepalive ended without an answer (the member may be stopping); retry",
            ));
        }
    };
    if answer.ended || answer.ttl_ms == 0 {
        return Err(gone(session));
    }
    Ok(answer)
}

/// A request stream holding `message` alone, as tonic decodes a client's stream: one
/// gRPC frame (no compression flag, a 4-byte length, the message).
fn one_message(message: &pb::KeepAliveRequest, limit: usize) -> Streaming<pb::KeepAliveRequest> {
    let encoded = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + encoded.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(encoded.len()).unwrap_or(u32::MAX));
    frame.put_slice(&encoded);
    let body = http_body_util::Full::new(Bytes::from(frame));
    let decoder =
        tonic_prost::ProstCodec::<pb::KeepAliveResponse, pb::KeepAliveRequest>::default().decoder();
    Streaming::new_request(decoder, body, None, Some(limit))
}
