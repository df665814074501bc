//! The Lock service: a thin adapter from the lock RPCs to the core's Acquire and Release,
//! plus the server-side wait for a grant.
//!
//! An Acquire that is not granted at once waits on the node's watch hub for its waiter's
//! grant (the token written into the waiter). A timeout, or the caller going away, removes
//! the wait with one Release entry that names the wait (`HoldRef::Wait`): if the grant
//! raced it, the grant is kept and the timed-out caller is answered with it, so a grant is
//! never lost between the server and the client, and a late cancel can never end a hold
//! the session got since (another guard of the same hold, a re-attached acquire).

use std::sync::Arc;
use std::time::Duration;

use tonic::{Code, Request, Response, Status};
use tracing::debug;
use warden_core::lock::WaiterInfo;
use warden_core::{Command, EventKind, HoldRef, Output, WatchFilter};
use warden_proto::ErrorKind;
use warden_proto::convert::lock;
use warden_proto::v1 as pb;
use warden_proto::v1::lock_server::Lock;
use warden_proto::v1::semaphore_server::Semaphore;

use crate::shared::Shared;
use crate::status;
use crate::watch_hub::{WatchHub, WatchMessage};

/// Serves locks.
pub(crate) struct LockService {
    shared: Shared,
    hub: Arc<WatchHub>,
}

impl LockService {
    pub(crate) fn new(shared: Shared, hub: Arc<WatchHub>) -> LockService {
        LockService { shared, hub }
    }
}

fn session(id: u64) -> Result<u64, Status> {
    if id == 0 {
        return Err(status::server(
            Code::InvalidArgument,
            ErrorKind::SessionRequired,
            "a lock needs a session_id",
        ));
    }
    Ok(id)
}

/// Removes the wait if the acquire's caller goes away before a grant. A grant that raced
/// the cancel stays with the session (the client re-attaches to it, or it goes with the
/// session): the cancel cannot know whether another call of the session holds it.
struct CancelOnDrop {
    shared: Shared,
    path: String,
    waiter: String,
    session: u64,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let (shared, session) = (self.shared.clone(), self.session);
            let command = Command::Release {
                path: self.path.clone(),
                hold: HoldRef::Wait(self.waiter.clone()),
            };
            tokio::spawn(async move {
                let released = shared.write(Some(session), None, command).await;
                debug!(?released, "abandoned lock wait removed");
            });
        }
    }
}

/// What withdrawing a wait did.
enum Withdrawn {
    /// The wait is gone.
    Removed,
    /// It was granted first: the revision and the token.
    Granted(u64, u64),
}

impl LockService {
    /// Queues the session; returns the revision, the waiter and its token if granted.
    async fn queue(&self, r: &pb::AcquireRequest) -> Result<(u64, String, Option<u64>), Status> {
        let command = lock::acquire(r).map_err(status::unconvertible)?;
        let session = session(r.session_id)?;
        match self.shared.write(Some(session), None, command).await? {
            (revision, Output::LockQueued { waiter, token, .. }) => Ok((revision, waiter, token)),
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    /// Withdraws the wait of `waiter` (a timed-out or try acquire), unless it was granted
    /// meanwhile. A wait that is already gone (its session ended) counts as removed.
    async fn withdraw(&self, r: &pb::AcquireRequest, waiter: &str) -> Result<Withdrawn, Status> {
        let command =
            Command::Release { path: r.path.clone(), hold: HoldRef::Wait(waiter.to_owned()) };
        match self.shared.write(Some(r.session_id), None, command).await {
            Ok((_, Output::LockReleased { .. })) => Ok(Withdrawn::Removed),
            Ok((revision, Output::LockQueued { token: Some(token), .. })) => {
                Ok(Withdrawn::Granted(revision, token))
            }
            Err(e) if status::kind(&e) == Some(ErrorKind::NotHeld) => Ok(Withdrawn::Removed),
            Err(e) => Err(e),
            Ok((_, other)) => Err(status::unexpected(&other)),
        }
    }

    /// Takes a session out of a lock (a release or a revoke); returns the header and
    /// whether it held.
    async fn leave(
        &self,
        session: Option<u64>,
        command: Command,
    ) -> Result<(pb::ResponseHeader, bool), Status> {
        match self.shared.write(session, None, command).await? {
            (revision, Output::LockReleased { held }) => Ok((self.shared.header(revision), held)),
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    /// The answer to an acquire that holds.
    fn granted(&self, revision: u64, waiter: String, token: u64) -> Response<pb::AcquireResponse> {
        Response::new(pb::AcquireResponse {
            header: Some(self.shared.header(revision)),
            waiter,
            token,
        })
    }

    /// Why the wait of `waiter` ended without a grant: an operator revoked it, its session
    /// ended, or (the session lives on) the wait was cancelled, most likely by an earlier
    /// call of the same acquire that broke (its cancel landed after this call re-attached
    /// to the wait): the client asks again.
    fn wait_ended(&self, waiter: &str, session: u64, revoked: bool) -> Status {
        if revoked {
            return status::server(
                Code::Aborted,
                ErrorKind::WaitRevoked,
                format!(
                    "the wait for the lock ended: {waiter} was revoked by an operator (`warden lock revoke`, or a delete with --revoke-locks); the session lives on"
                ),
            );
        }
        let alive = self.shared.state_machine.read(|a| a.core.session(session).is_some());
        if alive {
            return status::server(
                Code::Aborted,
                ErrorKind::WaitCancelled,
                format!(
                    "the wait for the lock ended: {waiter} was cancelled (an earlier call of this acquire went away); acquire again"
                ),
            );
        }
        status::server(
            Code::Aborted,
            ErrorKind::WaitEnded,
            format!("the wait for the lock ended: {waiter} went with its session {session}"),
        )
    }

    /// Waits until `waiter` (of `session`) is granted (its token) or deleted (an error).
    async fn wait_for_grant(&self, waiter: &str, session: u64, from: u64) -> Result<u64, Status> {
        let limits = self.shared.state_machine.read(|a| a.core.limits().clone());
        let mut start = from;
        loop {
            let filter = WatchFilter::key(waiter, &limits).map_err(|e| status::core_error(&e))?;
            let mut registration = match self.hub.register(filter, start, false) {
                Ok(r) => r,
                Err(_) => return Err(status::member_stopped()),
            };
            // An operator's revoke marks the waiter before deleting it.
            let mut revoked = false;
            loop {
                match registration.recv().await {
                    Some(WatchMessage::Events(_, events)) => {
                        for event in events {
                            match event.kind {
                                EventKind::Data => {
                                    let data = event.data.as_deref().unwrap_or_default();
                                    if warden_core::lock::is_revoked(data) {
                                        revoked = true;
                                        continue;
                                    }
                                    let info = WaiterInfo::decode(data);
                                    if let Some(token) = info.and_then(|i| i.token) {
                                        self.hub.unregister(registration.id);
                                        return Ok(token);
                                    }
                                }
                                EventKind::Deleted => {
                                    self.hub.unregister(registration.id);
                                    return Err(self.wait_ended(waiter, session, revoked));
                                }
                                _ => {}
                            }
                        }
                    }
                    Some(WatchMessage::Progress(_)) => {}
                    None => break,
                }
            }
            // The hub cancelled the watcher (slow, snapshot, shutdown): look at the state,
            // then watch again from where it is.
            let (revision, found) = self.shared.state_machine.read(|a| {
                let found = a
                    .core
                    .tree()
                    .get(waiter)
                    .map(|n| WaiterInfo::decode(&n.data).and_then(|i| i.token));
                (a.core.revision(), found)
            });
            match found {
                Some(Some(token)) => return Ok(token),
                Some(None) => start = revision + 1,
                None => return Err(self.wait_ended(waiter, session, false)),
            }
        }
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
            return Ok(self.granted(revision, waiter, token));
        }
        let mut guard = CancelOnDrop {
            shared: self.shared.clone(),
            path: r.path.clone(),
            waiter: waiter.clone(),
            session: r.session_id,
            armed: true,
        };
        let waited = if r.timeout_ms == 0 {
            self.wait_for_grant(&waiter, r.session_id, revision + 1).await
        } else {
            match tokio::time::timeout(
                Duration::from_millis(r.timeout_ms),
                self.wait_for_grant(&waiter, r.session_id, revision + 1),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => {
                    guard.armed = false;
                    // One entry removes the wait; a grant that raced the timeout is kept
                    // and answered, never leaked and never released behind a guard.
                    if let Withdrawn::Granted(revision, token) = self.withdraw(&r, &waiter).await? {
                        return Ok(self.granted(revision, waiter, token));
                    }
                    return Err(status::server(
                        Code::DeadlineExceeded,
                        ErrorKind::Timeout,
                        format!(
                            "the lock {:?} was not granted within {} ms; the wait was removed",
                            r.path, r.timeout_ms
                        ),
                    ));
                }
            }
        };
        match waited {
            Ok(token) => {
                guard.armed = false;
                let revision = self.shared.state_machine.read(|a| a.core.revision());
                Ok(self.granted(revision, waiter, token))
            }
            Err(e) => {
                guard.armed = e.code() != Code::Aborted;
                Err(e)
            }
        }
    }

    async fn try_acquire(
        &self,
        request: Request<pb::AcquireRequest>,
    ) -> Result<Response<pb::AcquireResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let (revision, waiter, token) = self.queue(&r).await?;
        if let Some(token) = token {
            return Ok(self.granted(revision, waiter, token));
        }
        if let Withdrawn::Granted(revision, token) = self.withdraw(&r, &waiter).await? {
            return Ok(self.granted(revision, waiter, token));
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
        let (header, held) = self.leave(Some(session), lock::release(r)).await?;
        Ok(Response::new(pb::ReleaseResponse { header: Some(header), held }))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let identity = self.shared.access.admit(&request)?.identity;
        let r = request.into_inner();
        let target = session(r.session_id)?;
        let command = Command::Revoke { path: r.path.clone(), session: target };
        let (header, held) = self.leave(None, command).await?;
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
        let (revision, (config, waiters)) = self
            .shared
            .read(false, |a| {
                let (config, waiters) = a.core.lock(&path)?;
                let identity =
                    |id| a.core.session(id).map(|s| s.identity.clone()).unwrap_or_default();
                let waiters: Vec<pb::LockWaiter> =
                    waiters.iter().map(|w| lock::lock_waiter(w, identity(w.session))).collect();
                Ok((config, waiters))
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
        }))
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
