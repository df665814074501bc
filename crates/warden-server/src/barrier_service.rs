//! The Barrier service: a thin adapter from the barrier RPCs to the core's barrier and
//! double-barrier commands, with the recipe framework's waits.
//!
//! A wait on a set barrier, and an enter of a double barrier that is not full, wait for
//! their member's grant like a lock's acquire (a timeout or a dropped call takes the member
//! out; a grant that raced it is kept). A member that left a double barrier waits for the
//! barrier node to go with the last member.

use tonic::{Code, Request, Response, Status};
use warden_core::queue::QueueKind;
use warden_core::{Command, Output};
use warden_proto::ErrorKind;
use warden_proto::v1 as pb;
use warden_proto::v1::barrier_server::Barrier;

use crate::lock_service::session;
use crate::recipe_wait::Waits;
use crate::shared::Shared;
use crate::status;
use warden_proto::convert::lock::{self, lock_waiter as waiter};

/// Serves barriers.
pub(crate) struct BarrierService {
    shared: Shared,
    waits: Waits,
}

impl BarrierService {
    pub(crate) fn new(shared: Shared, waits: Waits) -> Self {
        BarrierService { shared, waits }
    }

    /// Whether the barrier at `name` is set now.
    fn is_set(&self, name: &str) -> bool {
        self.shared
            .state_machine
            .read(|a| a.core.barrier(name).is_ok_and(|(c, _)| c.kind == QueueKind::Barrier))
    }
}

#[tonic::async_trait]
impl Barrier for BarrierService {
    async fn set(
        &self,
        request: Request<pb::BarrierSetRequest>,
    ) -> Result<Response<pb::BarrierSetResponse>, Status> {
        self.shared.access.admit(&request)?;
        let name = request.into_inner().name;
        match self.shared.write(None, None, Command::SetBarrier { path: name }).await? {
            (revision, Output::BarrierSet { created }) => {
                Ok(Response::new(pb::BarrierSetResponse {
                    header: Some(self.shared.header(revision)),
                    created,
                }))
            }
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    async fn remove(
        &self,
        request: Request<pb::BarrierRemoveRequest>,
    ) -> Result<Response<pb::BarrierRemoveResponse>, Status> {
        self.shared.access.admit(&request)?;
        let name = request.into_inner().name;
        match self.shared.write(None, None, Command::RemoveBarrier { path: name }).await? {
            (revision, Output::BarrierRemoved { removed, released }) => {
                Ok(Response::new(pb::BarrierRemoveResponse {
                    header: Some(self.shared.header(revision)),
                    removed,
                    released,
                }))
            }
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    async fn wait(
        &self,
        request: Request<pb::BarrierWaitRequest>,
    ) -> Result<Response<pb::BarrierWaitResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let s = session(r.session_id)?;
        let command = Command::WaitBarrier { path: r.name.clone() };
        let revision = match self.waits.join(s, command).await? {
            (revision, Output::BarrierPassed | Output::LockQueued { token: Some(_), .. }) => {
                revision
            }
            (revision, Output::LockQueued { waiter, token: None, .. }) => {
                let what = format!("the barrier {:?}", r.name);
                match self
                    .waits
                    .until_granted(&r.name, s, waiter, revision + 1, r.timeout_ms, &what)
                    .await
                {
                    Ok(granted) => granted.revision,
                    // The waiter went without this member seeing its grant (its watch was
                    // cancelled and the barrier removed meanwhile): through, if the
                    // barrier is gone.
                    Err(e) if e.code() == Code::Aborted && !self.is_set(&r.name) => {
                        self.shared.state_machine.read(|a| a.core.revision())
                    }
                    Err(e) => return Err(e),
                }
            }
            (_, other) => return Err(status::unexpected(&other)),
        };
        Ok(Response::new(pb::BarrierWaitResponse { header: Some(self.shared.header(revision)) }))
    }

    async fn enter(
        &self,
        request: Request<pb::BarrierEnterRequest>,
    ) -> Result<Response<pb::BarrierEnterResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let s = session(r.session_id)?;
        let command = Command::EnterBarrier { path: r.name.clone(), count: r.count };
        let (revision, member) = match self.waits.join(s, command).await? {
            (revision, Output::LockQueued { waiter, token: Some(_), .. }) => (revision, waiter),
            (revision, Output::LockQueued { waiter, token: None, .. }) => {
                let what = format!("the double barrier {:?} (all {} members in)", r.name, r.count);
                let granted = self
                    .waits
                    .until_granted(&r.name, s, waiter, revision + 1, r.timeout_ms, &what)
                    .await?;
                (granted.revision, granted.waiter)
            }
            (_, other) => return Err(status::unexpected(&other)),
        };
        Ok(Response::new(pb::BarrierEnterResponse {
            header: Some(self.shared.header(revision)),
            member,
        }))
    }

    async fn leave(
        &self,
        request: Request<pb::BarrierLeaveRequest>,
    ) -> Result<Response<pb::BarrierLeaveResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let s = session(r.session_id)?;
        // The incarnation of the barrier the member leaves: a new round may start at once.
        let created = self
            .shared
            .state_machine
            .read(|a| a.core.get(&r.name).map(|n| n.stat.create_revision).ok());
        let command = Command::LeaveBarrier { path: r.name.clone() };
        let revision = match self.shared.write(Some(s), None, command).await {
            Ok((revision, Output::BarrierLeft { remaining: 0 })) => revision,
            Ok((revision, Output::BarrierLeft { .. })) => {
                let what = format!(
                    "every member leaving the double barrier {:?} (this one has left)",
                    r.name
                );
                let created = created.unwrap_or(0);
                self.waits
                    .until_deleted(&r.name, created, revision + 1, r.timeout_ms, &what)
                    .await?
            }
            Ok((_, other)) => return Err(status::unexpected(&other)),
            Err(e) if status::kind(&e) == Some(ErrorKind::NotHeld) => return Err(not_in(&r.name)),
            Err(e) => return Err(e),
        };
        Ok(Response::new(pb::BarrierLeaveResponse { header: Some(self.shared.header(revision)) }))
    }

    async fn status(
        &self,
        request: Request<pb::BarrierStatusRequest>,
    ) -> Result<Response<pb::BarrierStatusResponse>, Status> {
        self.shared.access.admit(&request)?;
        let name = request.into_inner().name;
        let (revision, (config, members)) = self
            .shared
            .read(false, |a| {
                let (config, members) = a.core.barrier(&name)?;
                let identity =
                    |id| a.core.session(id).map(|s| s.identity.clone()).unwrap_or_default();
                let members: Vec<pb::LockWaiter> =
                    members.iter().map(|w| waiter(w, identity(w.session))).collect();
                Ok((config, members))
            })
            .await?;
        let (r#type, set, count) = match config.kind {
            QueueKind::DoubleBarrier { count } => {
                let open = members.first().is_some_and(|m| m.token.is_some());
                (lock::DOUBLE_BARRIER_NAME, open, count)
            }
            _ => (lock::BARRIER_NAME, true, 0),
        };
        Ok(Response::new(pb::BarrierStatusResponse {
            header: Some(self.shared.header(revision)),
            r#type: r#type.into(),
            set,
            count,
            members,
        }))
    }
}

/// The error of a leave whose member was not in the double barrier.
fn not_in(name: &str) -> Status {
    status::server(
        Code::FailedPrecondition,
        ErrorKind::NotHeld,
        format!(
            "this session is not a member of the double barrier {name:?} (it left, or its session ended); enter first"
        ),
    )
}
