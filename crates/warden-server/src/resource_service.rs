//! The Resource service: a thin adapter from the resource RPCs to the core's resource
//! commands (`warden_core::resource`), with the recipe framework's wait for an acquire.

use tonic::{Request, Response, Status};
use warden_core::recipe::WaiterView;
use warden_core::resource::WhileDraining;
use warden_core::{Command, Output, State};
use warden_proto::convert::lock;
use warden_proto::v1 as pb;
use warden_proto::v1::resource_server::Resource;

use crate::lock_service::session;
use crate::recipe_wait::{Granted, Waits};
use crate::shared::Shared;
use crate::status;

/// Serves resource kinds.
pub(crate) struct ResourceService {
    shared: Shared,
    waits: Waits,
}

impl ResourceService {
    pub(crate) fn new(shared: Shared, waits: Waits) -> Self {
        ResourceService { shared, waits }
    }

    /// A rotation command's answer.
    async fn rotation(&self, command: Command) -> Result<Response<pb::RotationResponse>, Status> {
        match self.shared.write(None, None, command).await? {
            (revision, Output::Rotation { from, to, switched, revoked }) => {
                Ok(Response::new(pb::RotationResponse {
                    header: Some(self.shared.header(revision)),
                    from,
                    to,
                    switched,
                    revoked,
                }))
            }
            (_, other) => Err(status::unexpected(&other)),
        }
    }
}

/// The holds of a resource status, with their sessions' identities.
fn holds(state: &State, holds: &[(String, WaiterView)]) -> Vec<pb::ResourceHold> {
    holds
        .iter()
        .map(|(lock_path, w)| {
            let identity = state.session(w.session).map(|s| s.identity.clone()).unwrap_or_default();
            pb::ResourceHold {
                id: warden_core::path::name(lock_path).to_owned(),
                lock: lock_path.clone(),
                waiter: Some(lock::lock_waiter(w, identity)),
            }
        })
        .collect()
}

/// The lock a waiter node belongs to.
fn lock_of(waiter: &str) -> String {
    warden_core::path::parent(waiter).unwrap_or_default().to_owned()
}

#[tonic::async_trait]
impl Resource for ResourceService {
    async fn init(
        &self,
        request: Request<pb::ResourceInitRequest>,
    ) -> Result<Response<pb::ResourceInitResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let command = Command::InitResource { path: r.kind, version: r.version };
        match self.shared.write(None, None, command).await? {
            (revision, Output::ResourceInitialized { created, version }) => {
                Ok(Response::new(pb::ResourceInitResponse {
                    header: Some(self.shared.header(revision)),
                    created,
                    version,
                }))
            }
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    async fn acquire(
        &self,
        request: Request<pb::ResourceAcquireRequest>,
    ) -> Result<Response<pb::ResourceAcquireResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let s = session(r.session_id)?;
        let as_lock = lock::resource_lock(&r);
        let Command::Acquire { kind, mode, delay_ms, .. } =
            lock::acquire(&as_lock).map_err(status::unconvertible)?
        else {
            return Err(status::invalid("a resource acquire's lock fields do not make a lock"));
        };
        let draining =
            if r.no_wait_while_draining { WhileDraining::Fail } else { WhileDraining::Wait };
        let command = Command::AcquireResource {
            path: r.kind.clone(),
            id: r.id.clone(),
            kind,
            mode,
            delay_ms,
            draining,
        };
        let granted = match self.waits.join(s, command).await? {
            (revision, Output::LockQueued { waiter, token: Some(token), .. }) => {
                Granted { revision, waiter, token }
            }
            (revision, Output::LockQueued { waiter, token: None, .. }) => {
                let what = format!("the lock of {:?} of the resource kind {:?}", r.id, r.kind);
                let lock_path = lock_of(&waiter);
                self.waits
                    .until_granted(&lock_path, s, waiter, revision + 1, r.timeout_ms, &what)
                    .await?
            }
            (_, other) => return Err(status::unexpected(&other)),
        };
        Ok(Response::new(pb::ResourceAcquireResponse {
            header: Some(self.shared.header(granted.revision)),
            lock: lock_of(&granted.waiter),
            waiter: granted.waiter,
            token: granted.token,
        }))
    }

    async fn rotate(
        &self,
        request: Request<pb::RotationRequest>,
    ) -> Result<Response<pb::RotationResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        self.rotation(Command::BeginRotation { path: r.kind, to: r.to }).await
    }

    async fn force(
        &self,
        request: Request<pb::ForceRotationRequest>,
    ) -> Result<Response<pb::RotationResponse>, Status> {
        let identity = self.shared.access.admit(&request)?.identity;
        let kind = request.into_inner().kind;
        let answer = self.rotation(Command::ForceRotation { path: kind.clone() }).await?;
        let a = answer.get_ref();
        self.shared.audit.admin(
            &identity,
            "resource.force",
            &kind,
            a.header.as_ref().map(|h| h.revision),
            &format!(
                "forced the rotation from {} to {}: revoked {} holds and waits left in {}",
                a.from, a.to, a.revoked, a.from
            ),
        );
        Ok(answer)
    }

    async fn status(
        &self,
        request: Request<pb::ResourceStatusRequest>,
    ) -> Result<Response<pb::ResourceStatusResponse>, Status> {
        self.shared.access.admit(&request)?;
        let kind = request.into_inner().kind;
        let (revision, (state, current, waiting)) = self
            .shared
            .read(false, |a| {
                let view = a.core.resource(&kind)?;
                let current = holds(&a.core, &view.current);
                let waiting = holds(&a.core, &view.next);
                Ok((view.state, current, waiting))
            })
            .await?;
        Ok(Response::new(pb::ResourceStatusResponse {
            header: Some(self.shared.header(revision)),
            kind,
            version: state.version,
            rotating_to: state.to.unwrap_or_default(),
            current,
            waiting,
        }))
    }
}
