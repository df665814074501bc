//! Elections: campaign (waiting up to a timeout), proclaim, resign and leader, over the
//! Election service. Values are UTF-8 in `value`, else base64 in `value_base64`.
//!
//! A campaign must say how long it may wait (`timeout_ms`, 1 to [`MAX_WAIT_MS`]): the
//! Election service has no "try", and gRPC's "0 waits forever" cannot be answered within
//! an HTTP connection's lifetime. A timeout or a client that hangs up withdraws the
//! candidacy, as a dropped gRPC campaign does.

use axum::Extension;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use warden_proto::v1 as pb;
use warden_proto::v1::election_server::Election;

use super::body::{self, Query, value_bytes};
use super::json::{self, Header, Leader};
use super::{ApiError, MAX_WAIT_MS, RestState, request};
use crate::caller::Caller;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CampaignBody {
    name: String,
    session_id: u64,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_base64: Option<String>,
    timeout_ms: u64,
}

#[derive(Serialize)]
struct Leading {
    header: Header,
    leader: Leader,
}

pub(crate) async fn campaign(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: CampaignBody = body::json(body, rest.max_body).await?;
    if b.timeout_ms == 0 || b.timeout_ms > MAX_WAIT_MS {
        return Err(ApiError::invalid(format!(
            "timeout_ms must be 1 to {MAX_WAIT_MS}: how long the campaign may wait to lead (the gRPC API can wait longer)"
        )));
    }
    let r = pb::CampaignRequest {
        name: b.name,
        session_id: b.session_id,
        value: value_bytes(b.value, b.value_base64)?.into(),
        timeout_ms: b.timeout_ms,
    };
    let c = rest.elections.campaign(request(&caller, r)).await?.into_inner();
    Ok(json::ok(&Leading { header: json::header(c.header), leader: json::leader(c.leader) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProclaimBody {
    name: String,
    session_id: u64,
    token: u64,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_base64: Option<String>,
}

#[derive(Serialize)]
struct Done {
    header: Header,
}

pub(crate) async fn proclaim(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: ProclaimBody = body::json(body, rest.max_body).await?;
    let r = pb::ProclaimRequest {
        name: b.name,
        session_id: b.session_id,
        token: b.token,
        value: value_bytes(b.value, b.value_base64)?.into(),
    };
    let p = rest.elections.proclaim(request(&caller, r)).await?.into_inner();
    Ok(json::ok(&Done { header: json::header(p.header) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResignBody {
    name: String,
    session_id: u64,
    token: u64,
}

pub(crate) async fn resign(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: ResignBody = body::json(body, rest.max_body).await?;
    let r = pb::ResignRequest { name: b.name, session_id: b.session_id, token: b.token };
    let p = rest.elections.resign(request(&caller, r)).await?.into_inner();
    Ok(json::ok(&Done { header: json::header(p.header) }))
}

pub(crate) async fn leader(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref());
    let r = pb::LeaderRequest {
        name: query.required("name")?,
        serializable: query.flag("serializable")?,
    };
    let l = rest.elections.leader(request(&caller, r)).await?.into_inner();
    Ok(json::ok(&Leading { header: json::header(l.header), leader: json::leader(l.leader) }))
}
