//! The Cluster service: this member's view of the cluster, and who the caller is.

use openraft::ServerState;
use tonic::{Request, Response, Status};
use warden_proto::ErrorKind;
use warden_proto::v1 as pb;
use warden_proto::v1::cluster_server::Cluster;

use warden_core::acl::{POLICY_PATH, Permission, Policy};
use warden_core::{Command, Output, path};

use crate::access::shown;
use crate::shared::Shared;
use crate::status;

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

/// This member's view of the cluster: what `Cluster.Status` answers, and what the HTTP
/// port's `/cluster/status` is made from.
pub(crate) fn member_status(shared: &Shared) -> pb::StatusResponse {
    let metrics = shared.raft.metrics().borrow().clone();
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
    let (revision, usage) = shared.state_machine.read(|a| (a.core.revision(), a.core.usage()));
    let alarms = crate::space::alarms(shared)
        .into_iter()
        .map(|a| pb::Alarm { kind: a.kind.to_owned(), message: a.message })
        .collect();
    pb::StatusResponse {
        header: Some(shared.header(revision)),
        id: shared.id,
        leader_id: metrics.current_leader.unwrap_or(0),
        term: metrics.current_term,
        role: role_name(metrics.state).to_owned(),
        applied_index: metrics.last_applied.map(|l| l.index).unwrap_or(0),
        last_log_index: metrics.last_log_index.unwrap_or(0),
        members,
        alarms,
        data_bytes: usage.used,
        quota_bytes: usage.quota,
        disk_free_bytes: shared.space.free().unwrap_or(0),
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.shared.access.admit(&request)?;
        Ok(Response::new(member_status(&self.shared)))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let identity = self.shared.access.admit(&request)?.identity;
        let revision = self.shared.state_machine.read(|a| a.core.revision());
        Ok(Response::new(pb::WhoAmIResponse {
            header: Some(self.shared.header(revision)),
            identity,
        }))
    }

    async fn apply_acl(
        &self,
        request: Request<pb::ApplyAclRequest>,
    ) -> Result<Response<pb::ApplyAclResponse>, Status> {
        let caller = self.shared.access.admit(&request)?;
        let text = request.into_inner().text;
        // Checked here first for the caller's sake (the core checks again when it applies):
        // a bad file is refused with its line, and a policy that would take `admin` from
        // the one applying it (who then could not repair it) is refused too.
        let policy = Policy::parse(&text)
            .map_err(|e| status::core_error(&warden_core::CoreError::from(e)))?;
        if !self.shared.access.is_admin(&caller)
            && !policy.allows(&caller.identity, Permission::Admin, path::ROOT)
        {
            return Err(status::server(
                tonic::Code::FailedPrecondition,
                ErrorKind::PolicyLockout,
                format!(
                    "the policy was not applied: it does not grant {} admin on \"/\", so nobody could change it afterwards (unless named in a member's acl.admins); add a rule granting your identity admin on \"/\"{}",
                    shown(&caller.identity),
                    if caller.identity.is_empty() {
                        ", and connect with a client certificate (ACLs need TLS client certificates to tell callers apart)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        match self.shared.write(None, None, Command::SetPolicy { text }).await? {
            (revision, Output::PolicyApplied { rules }) => {
                tracing::info!(identity = %caller.identity, rules, revision, "access policy applied");
                self.shared.audit.admin(
                    &caller.identity,
                    "acl.apply",
                    POLICY_PATH,
                    Some(revision),
                    &format!("a policy of {rules} rule(s) put in force"),
                );
                Ok(Response::new(pb::ApplyAclResponse {
                    header: Some(self.shared.header(revision)),
                    rules,
                }))
            }
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    async fn get_acl(
        &self,
        request: Request<pb::GetAclRequest>,
    ) -> Result<Response<pb::GetAclResponse>, Status> {
        self.shared.access.admit(&request)?;
        let (revision, (enabled, text, mod_revision)) = self
            .shared
            .read(false, |a| {
                let applied = a.core.policy().map(|p| p.text().to_owned());
                let mod_revision =
                    a.core.tree().get(POLICY_PATH).map_or(0, |n| n.stat.mod_revision);
                Ok((applied.is_some(), applied.unwrap_or_default(), mod_revision))
            })
            .await?;
        Ok(Response::new(pb::GetAclResponse {
            header: Some(self.shared.header(revision)),
            enabled,
            text,
            mod_revision,
        }))
    }
}
