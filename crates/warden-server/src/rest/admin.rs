//! Operators' calls: the cluster status (the document of `GET /cluster/status` and
//! `warden cluster status -o json`, here behind the Cluster service's ACL check) and who
//! the caller is. Lock statistics are in `locks`, sessions (with their count) in `sessions`.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use warden_proto::v1 as pb;
use warden_proto::v1::cluster_server::Cluster;

use super::json::{self, Header};
use super::{ApiError, RestState, request};
use crate::caller::Caller;
use crate::cluster_status::ClusterStatus;

pub(crate) async fn cluster_status(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let status = rest.cluster.status(request(&caller, pb::StatusRequest {})).await?;
    Ok(json::ok(&ClusterStatus::of_member(status.get_ref()).json()))
}

#[derive(Serialize)]
struct WhoAmI {
    header: Header,
    identity: String,
}

pub(crate) async fn whoami(
    State(rest): State<RestState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let w = rest.cluster.who_am_i(request(&caller, pb::WhoAmIRequest {})).await?.into_inner();
    Ok(json::ok(&WhoAmI { header: json::header(w.header), identity: w.identity }))
}
