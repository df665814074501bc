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

impl ClusterService {
    /// Writes an admin action to the audit log.
    fn admin_action(&self, identity: &str, action: &str, what: &str) {
        self.shared.audit.admin(identity, action, "/", None, what);
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
    let (members, _) = crate::membership::members(shared);
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

    async fn member_list(
        &self,
        request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        self.shared.access.admit(&request)?;
        let (members, leader_id) = crate::membership::members(&self.shared);
        let revision = self.shared.state_machine.read(|a| a.core.revision());
        Ok(Response::new(pb::MemberListResponse {
            header: Some(self.shared.header(revision)),
            members,
            leader_id,
        }))
    }

    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let caller = self.shared.access.admit(&request)?;
        let request = request.into_inner();
        let id = request.id;
        let added =
            crate::membership::add(&self.shared, &self.shared.member_changes, request).await?;
        if added {
            self.admin_action(&caller.identity, "member.add", &format!("member {id} added"));
        }
        let (members, _) = crate::membership::members(&self.shared);
        let revision = self.shared.state_machine.read(|a| a.core.revision());
        Ok(Response::new(pb::MemberAddResponse {
            header: Some(self.shared.header(revision)),
            members,
            added,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let caller = self.shared.access.admit(&request)?;
        let id = request.get_ref().id;
        crate::membership::remove(&self.shared, &self.shared.member_changes, id).await?;
        self.admin_action(&caller.identity, "member.remove", &format!("member {id} removed"));
        let (members, _) = crate::membership::members(&self.shared);
        let revision = self.shared.state_machine.read(|a| a.core.revision());
        Ok(Response::new(pb::MemberRemoveResponse {
            header: Some(self.shared.header(revision)),
            members,
        }))
    }

    async fn leader_transfer(
        &self,
        request: Request<pb::LeaderTransferRequest>,
    ) -> Result<Response<pb::LeaderTransferResponse>, Status> {
        let caller = self.shared.access.admit(&request)?;
        let id = request.get_ref().id;
        let changes = &self.shared.member_changes;
        let term = {
            let _one = changes.busy.lock().await;
            let (members, _) = crate::membership::members(&self.shared);
            if !members.iter().any(|m| m.id == id) {
                return Err(status::server(
                    tonic::Code::NotFound,
                    ErrorKind::NoMember,
                    format!("no member has id {id}; see warden member list"),
                ));
            }
            let metrics = self.shared.raft.metrics().borrow().clone();
            if metrics.state != ServerState::Leader {
                return Err(crate::membership::not_leader(&self.shared));
            }
            if id == self.shared.id {
                metrics.current_term
            } else {
                let term = crate::leader_transfer::transfer(&self.shared, changes, id).await?;
                self.admin_action(
                    &caller.identity,
                    "leader.transfer",
                    &format!("leadership handed to member {id} (term {term})"),
                );
                term
            }
        };
        let revision = self.shared.state_machine.read(|a| a.core.revision());
        Ok(Response::new(pb::LeaderTransferResponse {
            header: Some(self.shared.header(revision)),
            leader_id: id,
            term,
        }))
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
