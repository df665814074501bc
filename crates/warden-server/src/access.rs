//! Who may do what: the one authorization decision for every client-port request.
//!
//! Each request message says what it needs ([`Guarded::needs`], all in this module, so the
//! whole table can be read in one place), and every handler starts with
//! [`Access::admit`], which identifies the caller (from the [`Caller`] the caller layer put
//! into the request) and decides with the access policy in force. The policy is part of the
//! replicated state (`warden-core`'s `acl`), so every member decides alike at the same
//! revision. Until one is applied ACLs are off and everything is allowed, as before,
//! except on a member configured for them (`acl.file` or `acl.admins`), which admits only
//! its admins until then.
//!
//! Identities named in the member's `acl.admins` hold every permission whatever the policy
//! says: they bootstrap a cluster and cannot lock themselves out. Every denial is refused
//! PERMISSION_DENIED, saying who was refused what where and what to do, and logged.

use std::sync::Arc;

use tonic::{Request, Status};
use tracing::warn;
use warden_core::acl::{Permission, Policy};
use warden_core::{NodeKind, State, path};
use warden_proto::ErrorKind;
use warden_proto::v1 as pb;
use warden_storage::StateMachineStore;

use crate::audit::Audit;
use crate::caller::Caller;

/// What a request needs to be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need {
    /// The permission on the path.
    On(Permission, String),
    /// `delete` on the path and on every node under it now (a recursive delete), and
    /// `admin` there if one of those nodes belongs to a session of another identity (a
    /// lock's holder or waiter, an ephemeral node): one client does not end another's lock.
    Delete {
        /// The node.
        path: String,
        /// Its descendants go too.
        recursive: bool,
    },
    /// The session must be the caller's own (opened with the same identity), or the caller
    /// needs `admin`.
    OwnSession(u64),
    /// `admin` on the whole namespace: cluster-wide operations.
    Cluster,
    /// Nothing: any caller the client port let in.
    Nothing,
}

/// A request message that can say what it needs.
pub(crate) trait Guarded {
    /// The RPC, for errors and the log (`KV.Get`).
    const RPC: &'static str;
    /// What the request needs.
    fn needs(&self) -> Vec<Need>;
}

/// The permission decision of one member.
#[derive(Clone)]
pub(crate) struct Access {
    state: StateMachineStore,
    admins: Arc<[String]>,
    /// The policy while none is in force: none (ACLs off), or, on a member configured
    /// for ACLs (`acl.file` or `acl.admins`), one that grants nothing, so that a new
    /// cluster is not open to every client until its initial policy is applied.
    until_applied: Option<Arc<Policy>>,
    /// Every denial gets a line.
    audit: Audit,
}

/// Why a request was refused: who, what, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denial {
    /// The permission missing.
    pub permission: Permission,
    /// Where.
    pub path: String,
    /// Why, beyond "no rule grants it".
    pub because: Option<String>,
}

impl Access {
    /// The decision over the state of `state`, with `admins` always allowed; `secure`
    /// denies everything but `admins` until a policy is in force.
    pub(crate) fn new(
        state: StateMachineStore,
        admins: Vec<String>,
        secure: bool,
        audit: Audit,
    ) -> Access {
        let until_applied = secure.then(|| Arc::new(Policy::deny_all()));
        Access { state, admins: admins.into(), until_applied, audit }
    }

    /// The caller of `request`, if it may make it; PERMISSION_DENIED (logged) if not.
    pub(crate) fn admit<T: Guarded>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = Caller::of(request)?.clone();
        // The request's span (node.rs) names the caller from here on.
        tracing::Span::current().record("identity", caller.identity.as_str());
        self.check(&caller, T::RPC, &request.get_ref().needs())?;
        Ok(caller)
    }

    /// Whether `caller` may do what `needs` says; PERMISSION_DENIED (logged) if not.
    pub(crate) fn check(&self, caller: &Caller, rpc: &str, needs: &[Need]) -> Result<(), Status> {
        match self.state.read(|a| self.denial(&a.core, &caller.identity, needs)) {
            None => Ok(()),
            Some(denial) => Err(self.refuse(caller, rpc, &denial)),
        }
    }

    /// Whether `caller` is one of this member's `acl.admins`.
    pub(crate) fn is_admin(&self, caller: &Caller) -> bool {
        !caller.identity.is_empty() && self.admins.contains(&caller.identity)
    }

    /// Whether `identity` holds `permission` on `path` under `policy` (everything while
    /// there is none), for callers that read the policy with other state at once.
    pub(crate) fn allows(
        &self,
        policy: Option<&Arc<Policy>>,
        identity: &str,
        permission: Permission,
        path: &str,
    ) -> bool {
        match policy.or(self.until_applied.as_ref()) {
            None => true,
            Some(_) if !identity.is_empty() && self.admins.iter().any(|a| *a == identity) => true,
            Some(policy) => policy.allows(identity, permission, path),
        }
    }

    /// The first need of `needs` that `identity` does not meet in `state`.
    fn denial(&self, state: &State, identity: &str, needs: &[Need]) -> Option<Denial> {
        let policy = state.policy();
        policy.or(self.until_applied.as_ref())?;
        let lacks = |permission: Permission, path: &str| {
            (!self.allows(policy, identity, permission, path)).then(|| Denial {
                permission,
                path: path.to_owned(),
                because: None,
            })
        };
        needs.iter().find_map(|need| match need {
            Need::On(permission, path) => lacks(*permission, path),
            Need::Cluster => lacks(Permission::Admin, path::ROOT),
            Need::Nothing => None,
            Need::OwnSession(id) => match state.session(*id) {
                Some(s) if s.identity == identity => None,
                // A session that is gone is the core's to report (SessionExpired).
                None => None,
                Some(_) => lacks(Permission::Admin, path::ROOT).map(|d| Denial {
                    because: Some(format!("session {id} was opened by another identity")),
                    ..d
                }),
            },
            Need::Delete { path, recursive } => {
                let tree = state.tree();
                let mut nodes = vec![path.clone()];
                if *recursive && tree.get(path).is_some() {
                    nodes.extend(tree.descendants(path));
                }
                // A lock's waiters (its holders among them) are what deleting it would end.
                let waiters: Vec<String> = nodes
                    .iter()
                    .filter(|n| tree.get(n).is_some_and(|node| node.kind == NodeKind::Queue))
                    .flat_map(|n| tree.children(n).map(|(p, _)| p.to_owned()))
                    .collect();
                nodes.extend(waiters);
                nodes.iter().find_map(|node| {
                    lacks(Permission::Delete, node).or_else(|| {
                        let owner = state.tree().get(node)?.stat.ephemeral_owner;
                        let other = state.session(owner).filter(|s| s.identity != identity)?;
                        lacks(Permission::Admin, node).map(|d| Denial {
                            because: Some(format!(
                                "{node:?} belongs to session {} of {}; only an admin may delete another identity's node or lock (warden lock revoke)",
                                other.id,
                                shown(&other.identity)
                            )),
                            ..d
                        })
                    })
                })
            }
        })
    }

    fn refuse(&self, caller: &Caller, rpc: &str, denial: &Denial) -> Status {
        let who = shown(&caller.identity);
        warn!(identity = %caller.identity, rpc, permission = %denial.permission, path = %denial.path, "request denied");
        let hint = if caller.identity.is_empty() {
            "ACLs are on: connect with a client certificate (--cert, --key) whose identity the policy grants it".to_owned()
        } else {
            format!(
                "ask an administrator to grant {who} {} on it (warden acl get shows the policy in force)",
                denial.permission
            )
        };
        let because = denial.because.as_deref().map(|b| format!(" ({b})")).unwrap_or_default();
        let reason = denial.because.as_deref().unwrap_or("no rule of the access policy grants it");
        self.audit.denied(&caller.identity, rpc, denial.permission.name(), &denial.path, reason);
        crate::status::server(
            tonic::Code::PermissionDenied,
            ErrorKind::PermissionDenied,
            format!(
                "{rpc}: {who} may not {} {:?}{because}; {hint}",
                denial.permission, denial.path
            ),
        )
    }
}

/// An identity as people read it.
pub(crate) fn shown(identity: &str) -> String {
    if identity.is_empty() { "the anonymous caller".to_owned() } else { format!("{identity:?}") }
}

/// The path a watch of `path` in `scope` is checked on: the path itself, or a glob's
/// literal head (the segments before the first one with a glob character).
pub(crate) fn watch_base(path: &str, scope: i32) -> String {
    if pb::WatchScope::try_from(scope) != Ok(pb::WatchScope::Glob) {
        return path.to_owned();
    }
    let mut base = String::new();
    for segment in path.split('/').skip(1) {
        if segment.contains(['*', '?', '[', ']', '{', '}', '\\']) {
            break;
        }
        base.push('/');
        base.push_str(segment);
    }
    if base.is_empty() { path::ROOT.to_owned() } else { base }
}

fn on(permission: Permission, path: &str) -> Vec<Need> {
    vec![Need::On(permission, path.to_owned())]
}

/// A session's own request, or an admin's.
fn own(session: u64) -> Need {
    if session == 0 { Need::Nothing } else { Need::OwnSession(session) }
}

fn origin_session(origin: Option<&pb::Origin>) -> u64 {
    origin.map_or(0, |o| o.session_id)
}

impl Guarded for pb::GetRequest {
    const RPC: &'static str = "KV.Get";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Read, &self.path)
    }
}

impl Guarded for pb::ChildrenRequest {
    const RPC: &'static str = "KV.Children";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Read, &self.path)
    }
}

/// The path a create makes: a sequential node's with a placeholder counter, so that a
/// rule on `/queue/*` covers `/queue/job-` + counter.
fn created_path(path: &str, sequential: bool) -> String {
    if sequential { format!("{path}{:010}", 0) } else { path.to_owned() }
}

impl Guarded for pb::CreateRequest {
    const RPC: &'static str = "KV.Create";
    fn needs(&self) -> Vec<Need> {
        vec![
            Need::On(Permission::Create, created_path(&self.path, self.sequential)),
            own(origin_session(self.origin.as_ref())),
        ]
    }
}

impl Guarded for pb::SetRequest {
    const RPC: &'static str = "KV.Set";
    fn needs(&self) -> Vec<Need> {
        vec![
            Need::On(Permission::Write, self.path.clone()),
            own(origin_session(self.origin.as_ref())),
        ]
    }
}

impl Guarded for pb::DeleteRequest {
    const RPC: &'static str = "KV.Delete";
    fn needs(&self) -> Vec<Need> {
        let mut needs = vec![
            Need::Delete { path: self.path.clone(), recursive: self.recursive },
            own(origin_session(self.origin.as_ref())),
        ];
        if self.revoke_locks {
            needs.push(Need::On(Permission::Admin, self.path.clone()));
        }
        needs
    }
}

impl Guarded for pb::TxnRequest {
    const RPC: &'static str = "KV.Txn";
    fn needs(&self) -> Vec<Need> {
        let mut needs: Vec<Need> =
            self.compares.iter().map(|c| Need::On(Permission::Read, c.path.clone())).collect();
        for op in &self.ops {
            match &op.op {
                Some(pb::txn_op::Op::Create(c)) => {
                    needs.push(Need::On(Permission::Create, created_path(&c.path, c.sequential)))
                }
                Some(pb::txn_op::Op::Set(s)) => {
                    needs.push(Need::On(Permission::Write, s.path.clone()));
                }
                Some(pb::txn_op::Op::Delete(d)) => {
                    needs.push(Need::Delete { path: d.path.clone(), recursive: d.recursive });
                    if d.revoke_locks {
                        needs.push(Need::On(Permission::Admin, d.path.clone()));
                    }
                }
                None => {}
            }
        }
        needs.push(own(origin_session(self.origin.as_ref())));
        needs
    }
}

impl Guarded for pb::WatchRequest {
    const RPC: &'static str = "Watch.Watch";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Watch, &watch_base(&self.path, self.scope))
    }
}

impl Guarded for pb::OpenSessionRequest {
    const RPC: &'static str = "Session.Open";
    fn needs(&self) -> Vec<Need> {
        vec![Need::Nothing]
    }
}

impl Guarded for pb::CloseSessionRequest {
    const RPC: &'static str = "Session.Close";
    fn needs(&self) -> Vec<Need> {
        vec![own(self.session_id)]
    }
}

impl Guarded for pb::SessionInfoRequest {
    const RPC: &'static str = "Session.Info";
    fn needs(&self) -> Vec<Need> {
        // 0 lists every session: an operator's view.
        if self.session_id == 0 { vec![Need::Cluster] } else { vec![own(self.session_id)] }
    }
}

impl Guarded for pb::AcquireRequest {
    const RPC: &'static str = "Lock.Acquire";
    fn needs(&self) -> Vec<Need> {
        vec![Need::On(Permission::Lock, self.path.clone()), own(self.session_id)]
    }
}

impl Guarded for pb::SemaphoreAcquireRequest {
    const RPC: &'static str = "Semaphore.Acquire";
    fn needs(&self) -> Vec<Need> {
        vec![Need::On(Permission::Lock, self.path.clone()), own(self.session_id)]
    }
}

impl Guarded for pb::ReleaseRequest {
    const RPC: &'static str = "Lock.Release";
    fn needs(&self) -> Vec<Need> {
        vec![Need::On(Permission::Lock, self.path.clone()), own(self.session_id)]
    }
}

impl Guarded for pb::RevokeRequest {
    const RPC: &'static str = "Lock.Revoke";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Admin, &self.path)
    }
}

impl Guarded for pb::LockStatusRequest {
    const RPC: &'static str = "Lock.Status";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Read, &self.path)
    }
}

impl Guarded for pb::LockStatsRequest {
    const RPC: &'static str = "Lock.Stats";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Read, &self.prefix)
    }
}

impl Guarded for pb::CheckSequencerRequest {
    const RPC: &'static str = "Lock.CheckSequencer";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Read, &self.path)
    }
}

impl Guarded for pb::CampaignRequest {
    const RPC: &'static str = "Election.Campaign";
    fn needs(&self) -> Vec<Need> {
        vec![Need::On(Permission::Lock, self.name.clone()), own(self.session_id)]
    }
}

impl Guarded for pb::ProclaimRequest {
    const RPC: &'static str = "Election.Proclaim";
    fn needs(&self) -> Vec<Need> {
        vec![Need::On(Permission::Lock, self.name.clone()), own(self.session_id)]
    }
}

impl Guarded for pb::ResignRequest {
    const RPC: &'static str = "Election.Resign";
    fn needs(&self) -> Vec<Need> {
        vec![Need::On(Permission::Lock, self.name.clone()), own(self.session_id)]
    }
}

impl Guarded for pb::LeaderRequest {
    const RPC: &'static str = "Election.Leader";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Read, &self.name)
    }
}

impl Guarded for pb::ObserveRequest {
    const RPC: &'static str = "Election.Observe";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Watch, &self.name)
    }
}

impl Guarded for pb::BarrierSetRequest {
    const RPC: &'static str = "Barrier.Set";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Lock, &self.name)
    }
}

impl Guarded for pb::BarrierRemoveRequest {
    const RPC: &'static str = "Barrier.Remove";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Lock, &self.name)
    }
}

impl Guarded for pb::BarrierWaitRequest {
    const RPC: &'static str = "Barrier.Wait";
    fn needs(&self) -> Vec<Need> {
        vec![Need::On(Permission::Lock, self.name.clone()), own(self.session_id)]
    }
}

impl Guarded for pb::BarrierEnterRequest {
    const RPC: &'static str = "Barrier.Enter";
    fn needs(&self) -> Vec<Need> {
        vec![Need::On(Permission::Lock, self.name.clone()), own(self.session_id)]
    }
}

impl Guarded for pb::BarrierLeaveRequest {
    const RPC: &'static str = "Barrier.Leave";
    fn needs(&self) -> Vec<Need> {
        vec![Need::On(Permission::Lock, self.name.clone()), own(self.session_id)]
    }
}

impl Guarded for pb::BarrierStatusRequest {
    const RPC: &'static str = "Barrier.Status";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Read, &self.name)
    }
}

impl Guarded for pb::ResourceInitRequest {
    const RPC: &'static str = "Resource.Init";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Admin, &self.kind)
    }
}

impl Guarded for pb::ResourceAcquireRequest {
    const RPC: &'static str = "Resource.Acquire";
    fn needs(&self) -> Vec<Need> {
        vec![Need::On(Permission::Lock, self.kind.clone()), own(self.session_id)]
    }
}

impl Guarded for pb::RotationRequest {
    const RPC: &'static str = "Resource.Rotate";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Admin, &self.kind)
    }
}

impl Guarded for pb::ForceRotationRequest {
    const RPC: &'static str = "Resource.Force";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Admin, &self.kind)
    }
}

impl Guarded for pb::ResourceStatusRequest {
    const RPC: &'static str = "Resource.Status";
    fn needs(&self) -> Vec<Need> {
        on(Permission::Read, &self.kind)
    }
}

impl Guarded for pb::StatusRequest {
    const RPC: &'static str = "Cluster.Status";
    fn needs(&self) -> Vec<Need> {
        // Members, leader and term: what a client needs to route its calls, no data.
        vec![Need::Nothing]
    }
}

impl Guarded for pb::WhoAmIRequest {
    const RPC: &'static str = "Cluster.WhoAmI";
    fn needs(&self) -> Vec<Need> {
        vec![Need::Nothing]
    }
}

impl Guarded for pb::ApplyAclRequest {
    const RPC: &'static str = "Cluster.ApplyAcl";
    fn needs(&self) -> Vec<Need> {
        vec![Need::Cluster]
    }
}

impl Guarded for pb::GetAclRequest {
    const RPC: &'static str = "Cluster.GetAcl";
    fn needs(&self) -> Vec<Need> {
        vec![Need::Cluster]
    }
}

impl Guarded for pb::MemberListRequest {
    const RPC: &'static str = "Cluster.MemberList";
    fn needs(&self) -> Vec<Need> {
        // Ids and addresses, as Cluster.Status shows them.
        vec![Need::Nothing]
    }
}

impl Guarded for pb::SnapshotRequest {
    const RPC: &'static str = "Maintenance.Snapshot";
    fn needs(&self) -> Vec<Need> {
        // A backup holds everything: every node, session and the policy itself.
        vec![Need::Cluster]
    }
}

impl Guarded for pb::HealthRequest {
    const RPC: &'static str = "Maintenance.Health";
    fn needs(&self) -> Vec<Need> {
        // Whether this member can serve, as its HTTP /health says to anyone: no data.
        vec![Need::Nothing]
    }
}

impl Guarded for pb::MemberAddRequest {
    const RPC: &'static str = "Cluster.MemberAdd";
    fn needs(&self) -> Vec<Need> {
        vec![Need::Cluster]
    }
}

impl Guarded for pb::MemberRemoveRequest {
    const RPC: &'static str = "Cluster.MemberRemove";
    fn needs(&self) -> Vec<Need> {
        vec![Need::Cluster]
    }
}

impl Guarded for pb::LeaderTransferRequest {
    const RPC: &'static str = "Cluster.LeaderTransfer";
    fn needs(&self) -> Vec<Need> {
        vec![Need::Cluster]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_watch_is_checked_on_its_literal_head() {
        let glob = pb::WatchScope::Glob as i32;
        assert_eq!(watch_base("/config/**", glob), "/config");
        assert_eq!(watch_base("/a/b*/c", glob), "/a");
        assert_eq!(watch_base("/**", glob), "/");
        assert_eq!(watch_base("/a/b", glob), "/a/b");
        assert_eq!(watch_base("/a/*", pb::WatchScope::Prefix as i32), "/a/*");
    }

    #[test]
    fn a_sequential_create_is_checked_on_the_name_it_makes() {
        let r =
            pb::CreateRequest { path: "/q/job-".into(), sequential: true, ..Default::default() };
        assert_eq!(r.needs()[0], Need::On(Permission::Create, "/q/job-0000000000".into()));
    }
}
