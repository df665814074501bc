//! The Lock and Semaphore services: thin adapters from the lock RPCs to the core's Acquire
//! and Release; an Acquire that is not granted at once waits with the recipe framework's
//! [`Waits`] (a timeout or a dropped call removes the wait, never leaking a grant). Status
//! and Stats read the core's state (and its lock statistics) linearizably.

use std::sync::Arc;

use tonic::{Code, Request, Response, Status};
use warden_core::{Command, Output, RequestId};
use warden_proto::ErrorKind;
use warden_proto::convert::{kv, lock, lock_stats};
use warden_proto::v1 as pb;
use warden_proto::v1::lock_server::Lock;
use warden_proto::v1::semaphore_server::Semaphore;

use crate::recipe_wait::{Granted, Waits, Withdrawn};
use crate::shared::Shared;
use crate::status;

/// Serves locks.
pub(crate) struct LockService {
    shared: Shared,
    waits: Waits,
}

impl LockService {
    pub(crate) fn new(shared: Shared, waits: Waits) -> LockService {
        LockService { shared, waits }
    }
}

pub(crate) fn session(id: u64) -> Result<u64, Status> {
    if id == 0 {
        return Err(status::server(
            Code::InvalidArgument,
            ErrorKind::SessionRequired,
            "this call needs a session_id: open a session first (Session.Open)",
        ));
    }
    Ok(id)
}

impl LockService {
    /// Queues the session; returns the revision, the waiter and its token if granted.
    async fn queue(&self, r: &pb::AcquireRequest) -> Result<(u64, String, Option<u64>), Status> {
        let command = lock::acquire(r).map_err(status::unconvertible)?;
        let session = session(r.session_id)?;
        let id = kv::request_id(r.request_id.as_ref());
        match self.waits.join_once(session, id, command).await? {
            (revision, Output::LockQueued { waiter, token, .. }) => Ok((revision, waiter, token)),
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    /// Takes a session out of a lock, or one count from its reentrant hold (a release or a
    /// revoke, with the request id of a release); returns the header, whether it held,
    /// and the count that remains.
    async fn leave(
        &self,
        session: Option<u64>,
        id: Option<RequestId>,
        command: Command,
    ) -> Result<(pb::ResponseHeader, bool, u32), Status> {
        match self.shared.write(session, id, command).await? {
            (revision, Output::LockReleased { held, remaining }) => {
                Ok((self.shared.header(revision), held, remaining))
            }
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    /// The answer to an acquire that holds.
    fn granted(&self, g: Granted) -> Response<pb::AcquireResponse> {
        Response::new(pb::AcquireResponse {
            header: Some(self.shared.header(g.revision)),
            waiter: g.waiter,
            token: g.token,
        })
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn acquire(
        &self,
        request: Request<pb::AcquireRequest>,
    ) -> Result<Response<pb::AcquireResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let (revision, waiter, token) = self.queue(&r).await?;
        if let Some(token) = token {
            return Ok(self.granted(Granted { revision, waiter, token }));
        }
        let what = format!("the lock {:?}", r.path);
        let granted = self
            .waits
            .until_granted(&r.path, r.session_id, waiter, revision + 1, r.timeout_ms, &what)
            .await?;
        Ok(self.granted(granted))
    }

    async fn try_acquire(
        &self,
        request: Request<pb::AcquireRequest>,
    ) -> Result<Response<pb::AcquireResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let (revision, waiter, token) = self.queue(&r).await?;
        if let Some(token) = token {
            return Ok(self.granted(Granted { revision, waiter, token }));
        }
        if let Withdrawn::Granted(granted) =
            self.waits.withdraw(&r.path, r.session_id, &waiter).await?
        {
            return Ok(self.granted(granted));
        }
        Err(status::server(
            Code::FailedPrecondition,
            ErrorKind::AlreadyLocked,
            format!("the lock {:?} is held by another session; no wait was left behind", r.path),
        ))
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let session = session(r.session_id)?;
        let id = kv::request_id(r.request_id.as_ref());
        let (header, held, remaining) = self.leave(Some(session), id, lock::release(r)).await?;
        Ok(Response::new(pb::ReleaseResponse { header: Some(header), held, remaining }))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let identity = self.shared.access.admit(&request)?.identity;
        let r = request.into_inner();
        let target = session(r.session_id)?;
        let command = Command::Revoke { path: r.path.clone(), session: target };
        let (header, held, _) = self.leave(None, None, command).await?;
        let what = if held { "its hold" } else { "its wait" };
        self.shared.audit.admin(
            &identity,
            "lock.revoke",
            &r.path,
            Some(header.revision),
            &format!("revoked session {target}'s place in the lock ({what})"),
        );
        Ok(Response::new(pb::RevokeResponse { header: Some(header), held }))
    }

    async fn status(
        &self,
        request: Request<pb::LockStatusRequest>,
    ) -> Result<Response<pb::LockStatusResponse>, Status> {
        self.shared.access.admit(&request)?;
        let path = request.into_inner().path;
        let (revision, (config, waiters, stats)) = self
            .shared
            .read(false, |a| {
                let (config, waiters) = a.core.lock(&path)?;
                let identity =
                    |id| a.core.session(id).map(|s| s.identity.clone()).unwrap_or_default();
                let waiters: Vec<pb::LockWaiter> =
                    waiters.iter().map(|w| lock::lock_waiter(w, identity(w.session))).collect();
                let stats = lock_stats::pb_lock_stats(&a.core.lock_stats_at(&path)?);
                Ok((config, waiters, stats))
            })
            .await?;
        let (r#type, permits) = lock::lock_kind_name(config.kind);
        Ok(Response::new(pb::LockStatusResponse {
            header: Some(self.shared.header(revision)),
            r#type: r#type.into(),
            permits,
            delay_ms: config.delay_ms,
            blocked_until_ms: config.blocked_until_ms,
            waiters,
            stats: Some(stats),
        }))
    }

    async fn stats(
        &self,
        request: Request<pb::LockStatsRequest>,
    ) -> Result<Response<pb::LockStatsResponse>, Status> {
        self.shared.access.admit(&request)?;
        let (prefix, limit) = lock_stats::stats_request(request.get_ref());
        let (revision, report) =
            self.shared.read(false, |a| a.core.lock_stats(&prefix, limit)).await?;
        Ok(Response::new(lock_stats::pb_stats_response(self.shared.header(revision), &report)))
    }

    async fn check_sequencer(
        &self,
        request: Request<pb::CheckSequencerRequest>,
    ) -> Result<Response<pb::CheckSequencerResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let (revision, valid) =
            self.shared.read(false, |a| Ok(a.core.check_sequencer(&r.path, r.token))).await?;
        Ok(Response::new(pb::CheckSequencerResponse {
            header: Some(self.shared.header(revision)),
            valid,
        }))
    }
}

/// The Semaphore service: the Lock service's semaphores under their own name.
#[derive(Clone)]
pub(crate) struct SemaphoreService {
    locks: Arc<LockService>,
}

impl SemaphoreService {
    pub(crate) fn new(locks: Arc<LockService>) -> SemaphoreService {
        SemaphoreService { locks }
    }
}

/// A semaphore request as the lock request it is, keeping the request's metadata and
/// extensions (the caller) for the Lock service's own checks.
fn semaphore_request(request: Request<pb::SemaphoreAcquireRequest>) -> Request<pb::AcquireRequest> {
    let (metadata, extensions, r) = request.into_parts();
    Request::from_parts(metadata, extensions, lock::semaphore(r))
}

#[tonic::async_trait]
impl Semaphore for SemaphoreService {
    async fn acquire(
        &self,
        request: Request<pb::SemaphoreAcquireRequest>,
    ) -> Result<Response<pb::AcquireResponse>, Status> {
        self.locks.shared.access.admit(&request)?;
        Lock::acquire(&*self.locks, semaphore_request(request)).await
    }

    async fn try_acquire(
        &self,
        request: Request<pb::SemaphoreAcquireRequest>,
    ) -> Result<Response<pb::AcquireResponse>, Status> {
        self.locks.shared.access.admit(&request)?;
        Lock::try_acquire(&*self.locks, semaphore_request(request)).await
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        Lock::release(&*self.locks, request).await
    }

    async fn status(
        &self,
        request: Request<pb::LockStatusRequest>,
    ) -> Result<Response<pb::LockStatusResponse>, Status> {
        let path = request.get_ref().path.clone();
        let status = Lock::status(&*self.locks, request).await?;
        if status.get_ref().r#type != lock::SEMAPHORE_NAME {
            return Err(status::server(
                Code::FailedPrecondition,
                ErrorKind::InvalidLockRequest,
                format!(
                    "{path:?} is a {}, not a semaphore; ask the Lock service",
                    status.get_ref().r#type
                ),
            ));
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use warden_core::queue::LockKind;

    use super::*;

    fn acquire(r#type: i32) -> pb::AcquireRequest {
        pb::AcquireRequest { path: "/l".into(), session_id: 1, r#type, ..Default::default() }
    }

    #[test]
    fn an_unknown_lock_type_is_refused_by_field_and_value() {
        let refused = lock::acquire(&acquire(9))
            .map_err(status::unconvertible)
            .err()
            .unwrap_or_else(|| Status::ok(""));
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(status::kind(&refused), Some(ErrorKind::InvalidArgument));
        assert!(
            refused.message().contains("unknown lock type 9 in field `type` of the acquire"),
            "{refused:?}"
        );
        assert!(refused.message().contains("\"/l\""), "{refused:?}");
    }

    #[test]
    fn every_known_lock_type_converts() {
        for (r#type, expected) in [
            (pb::LockType::Mutex, LockKind::Mutex),
            (pb::LockType::Rwlock, LockKind::ReadWrite),
            (pb::LockType::Semaphore, LockKind::Semaphore { permits: 0 }),
        ] {
            match lock::acquire(&acquire(r#type.into())) {
                Ok(Command::Acquire { kind, .. }) => assert_eq!(kind, expected),
                other => panic!("{type:?}: {other:?}"),
            }
        }
    }
}
