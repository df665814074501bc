//! The Cluster service: this member's view of the cluster, and who the caller is.

use openraft::ServerState;
use tonic::{Request, Response, Status};
use warden_proto::v1 as pb;
use warden_proto::v1::cluster_server::Cluster;

use crate::caller::Caller;
use crate::shared::Shared;

/// Answers cluster status.
pub(crate) struct ClusterService {
    shared: Shared,
}

impl ClusterService {
    /// The service over one node.
    pub(crate) fn new(shared: Shared) -> ClusterService {
        ClusterService { shared }
    }
}

/// A role as shown to operators.
pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let metrics = self.shared.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| pb::Member {
                id: *id,
                client_addr: node.client_addr.clone(),
                raft_addr: node.raft_addr.clone(),
                membership: if voters.contains(id) { "voter" } else { "learner" }.to_owned(),
            })
            .collect();
        let revision = self.shared.state_machine.read(|a| a.core.revision());
        Ok(Response::new(pb::StatusResponse {
            header: Some(self.shared.header(revision)),
            id: self.shared.id,
            leader_id: metrics.current_leader.unwrap_or(0),
            term: metrics.current_term,
            role: role_name(metrics.state).to_owned(),
            applied_index: metrics.last_applied.map(|l| l.index).unwrap_or(0),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            members,
        }))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let identity = Caller::of(&request)?.identity.clone();
        let revision = self.shared.state_machine.read(|a| a.core.revision());
        Ok(Response::new(pb::WhoAmIResponse {
            header: Some(self.shared.header(revision)),
            identity,
        }))
    }
}
