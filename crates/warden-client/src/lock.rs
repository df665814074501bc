//! Lock guards over the Lock service: mutexes, read-write locks and semaphores held by a
//! session, each grant carrying its fencing token.
//!
//! An acquire is idempotent on the server (acquiring again returns the same hold or wait),
//! so when the member serving a wait fails, the client re-issues it on another member and
//! re-attaches to the same place in the queue. A guard is released by
//! [`LockGuard::release`], or in the background when dropped (where no tokio runtime runs,
//! on a thread of its own: see `background.rs`); it is lost when its session is (closed,
//! dropped or expired), or when an operator revokes it ([`LockGuard::lost`]): the session's
//! keepalive stream carries the news.
//!
//! A release names its hold by the fencing token, so a guard whose hold already ended
//! (revoked, then the session acquired the lock again) cannot end the later hold. Guards
//! of one hold (the session acquired a lock it held: the same hold comes back) are
//! counted: the hold is released with the last of them, so one guard's release or drop
//! never ends the hold another still relies on.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use warden_proto::ErrorKind;
use warden_proto::v1 as pb;

use crate::connection::{self, Connection, Retry};
use crate::error::ClientError;
use crate::session::{Holds, Session, SessionState};

/// Why a lock was not obtained.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another session holds it (a try-acquire).
    #[error("the lock {path:?} is held by another session")]
    AlreadyLocked {
        /// The lock.
        path: String,
    },
    /// It was not granted in time.
    #[error("the lock {path:?} was not granted within {waited:?}")]
    Timeout {
        /// The lock.
        path: String,
        /// How long the acquire waited.
        waited: Duration,
    },
    /// The session ended, and every lock and wait with it.
    #[error("the session holding or waiting for {path:?} was lost")]
    SessionLost {
        /// The lock.
        path: String,
    },
    /// An operator took the session out of the lock's queue while it waited (`warden lock
    /// revoke`, or a delete that revoked the locks under it); the session lives on.
    #[error("the wait for {path:?} was revoked by an operator")]
    Revoked {
        /// The lock.
        path: String,
    },
    /// A release of a hold that had already ended (revoked, or gone with its session):
    /// nothing was released, and any later hold of the session is untouched.
    #[error(
        "the hold of {path:?} with token {token} had already ended ({reason}); nothing was released"
    )]
    HoldEnded {
        /// The lock.
        path: String,
        /// The ended hold's token.
        token: u64,
        /// What the cluster said.
        reason: String,
    },
    /// The cluster refused or could not be reached.
    #[error(transparent)]
    Backend(#[from] ClientError),
}

/// The familiar shape of a distributed lock (Postgres advisory locks, Redis locks).
pub trait DistributedLock {
    /// What a successful acquire returns.
    type Guard;
    /// Waits until the lock is held.
    fn acquire(&self) -> impl Future<Output = Result<Self::Guard, LockError>> + Send;
    /// Takes the lock only if it is free now.
    fn try_acquire(&self) -> impl Future<Output = Result<Self::Guard, LockError>> + Send;
    /// Releases a held lock.
    fn release(&self, guard: Self::Guard) -> impl Future<Output = Result<(), LockError>> + Send;
}

/// Settings for [`crate::Client::lock_with`]: a lock with its own session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    /// The ttl of the lock's session: how long a crashed holder keeps the lock.
    pub ttl: Duration,
    /// How long to wait between tries of [`Lock::acquire_retrying`].
    pub retry_interval: Duration,
    /// How many tries [`Lock::acquire_retrying`] makes.
    pub max_retries: u32,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            ttl: Duration::from_secs(10),
            retry_interval: Duration::from_millis(100),
            max_retries: 50,
        }
    }
}

/// A lock a session can acquire.
#[derive(Clone)]
pub struct Lock {
    connection: Arc<Connection>,
    session_id: u64,
    session_state: watch::Receiver<SessionState>,
    holds: Arc<Holds>,
    request: pb::AcquireRequest,
    retry_interval: Duration,
    max_retries: u32,
}

/// A held lock. Released by [`LockGuard::release`], or in the background when dropped.
pub struct LockGuard {
    connection: Arc<Connection>,
    path: String,
    session_id: u64,
    token: u64,
    session_state: watch::Receiver<SessionState>,
    holds: Arc<Holds>,
    /// `Some(reason)` once the cluster reports this hold lost.
    hold_lost: watch::Receiver<Option<String>>,
    released: bool,
}

impl Lock {
    pub(crate) fn new(
        connection: Arc<Connection>,
        session: &Session,
        request: pb::AcquireRequest,
    ) -> Lock {
        Lock {
            connection,
            session_id: session.id(),
            session_state: session.watch_state(),
            holds: session.holds(),
            request: pb::AcquireRequest { session_id: session.id(), ..request },
            retry_interval: LockConfig::default().retry_interval,
            max_retries: LockConfig::default().max_retries,
        }
    }

    /// Sets the lock-delay a new lock gets: after a holder's session expires, nobody gets
    /// the lock for this long (at most 60 s).
    pub fn with_delay(mut self, delay: Duration) -> Lock {
        self.request.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Sets the retry interval and count of [`Lock::acquire_retrying`].
    pub fn with_retries(mut self, retry_interval: Duration, max_retries: u32) -> Lock {
        self.retry_interval = retry_interval;
        self.max_retries = max_retries;
        self
    }

    fn lost(&self) -> bool {
        *self.session_state.borrow() == SessionState::Lost
    }

    fn guard(&self, response: pb::AcquireResponse) -> LockGuard {
        LockGuard {
            connection: Arc::clone(&self.connection),
            path: self.request.path.clone(),
            session_id: self.session_id,
            token: response.token,
            session_state: self.session_state.clone(),
            holds: Arc::clone(&self.holds),
            hold_lost: self.holds.track(&self.request.path, response.token),
            released: false,
        }
    }

    async fn call(&self, timeout_ms: u64, try_only: bool) -> Result<LockGuard, LockError> {
        let path = self.request.path.clone();
        let request = pb::AcquireRequest { timeout_ms, ..self.request.clone() };
        loop {
            if self.lost() {
                return Err(LockError::SessionLost { path });
            }
            // A waiting acquire is not cut client-side: that would drop the call and the
            // server would remove the wait. A timed one gets its timeout plus a margin.
            let attempt = match (try_only, timeout_ms) {
                (false, 0) => None,
                (false, ms) => Some(Duration::from_millis(ms) + Duration::from_secs(10)),
                (true, _) => Some(Duration::from_secs(10)),
            };
            let result = self
                .connection
                .run_within(Retry::Idempotent, attempt, |c| {
                    let request = request.clone();
                    async move {
                        let mut client = connection::lock(c);
                        let response = if try_only {
                            client.try_acquire(request).await
                        } else {
                            client.acquire(request).await
                        };
                        response.map(|r| r.into_inner())
                    }
                })
                .await;
            match result {
                Ok(response) => return Ok(self.guard(response)),
                Err(ClientError::Server { kind: Some(ErrorKind::AlreadyLocked), .. }) => {
                    return Err(LockError::AlreadyLocked { path });
                }
                Err(ClientError::Server { kind: Some(ErrorKind::Timeout), .. }) => {
                    return Err(LockError::Timeout {
                        path,
                        waited: Duration::from_millis(timeout_ms),
                    });
                }
                Err(ClientError::Server {
                    kind: Some(ErrorKind::WaitEnded | ErrorKind::SessionExpired),
                    ..
                }) => {
                    return Err(LockError::SessionLost { path });
                }
                Err(ClientError::Server { kind: Some(ErrorKind::WaitRevoked), .. }) => {
                    return Err(LockError::Revoked { path });
                }
                // The cancel of an earlier, broken call of this acquire removed the wait
                // this call re-attached to: queue again.
                Err(ClientError::Server { kind: Some(ErrorKind::WaitCancelled), .. })
                    if !try_only =>
                {
                    continue;
                }
                // A wait longer than one call's time limit, or a member that failed: the
                // acquire is idempotent, so ask again and re-attach to the same wait.
                Err(ClientError::Unavailable { .. }) if !try_only && timeout_ms == 0 => continue,
                Err(e) => return Err(LockError::Backend(e)),
            }
        }
    }

    /// Waits until the lock is held (or the session is lost).
    pub async fn acquire(&self) -> Result<LockGuard, LockError> {
        self.call(0, false).await
    }

    /// Takes the lock only if it is free now.
    pub async fn try_acquire(&self) -> Result<LockGuard, LockError> {
        self.call(0, true).await
    }

    /// Waits at most `timeout`; the wait is removed on the server if it runs out.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, LockError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        self.call(ms, false).await
    }

    /// Tries, then tries again every retry interval, up to the retry count (the loop of
    /// Redis-style locks; [`Lock::acquire`] waits on the server instead).
    pub async fn acquire_retrying(&self) -> Result<LockGuard, LockError> {
        let mut tries = 0;
        loop {
            match self.try_acquire().await {
                Err(LockError::AlreadyLocked { path }) if tries + 1 >= self.max_retries.max(1) => {
                    return Err(LockError::Timeout { path, waited: self.retry_interval * tries });
                }
                Err(LockError::AlreadyLocked { .. }) => {
                    tries += 1;
                    tokio::time::sleep(self.retry_interval).await;
                }
                other => return other,
            }
        }
    }
}

impl DistributedLock for Lock {
    type Guard = LockGuard;

    fn acquire(&self) -> impl Future<Output = Result<LockGuard, LockError>> + Send {
        Lock::acquire(self)
    }

    fn try_acquire(&self) -> impl Future<Output = Result<LockGuard, LockError>> + Send {
        Lock::try_acquire(self)
    }

    fn release(&self, guard: LockGuard) -> impl Future<Output = Result<(), LockError>> + Send {
        guard.release()
    }
}

/// Releases the hold of `path` with `token`.
async fn release(
    connection: &Connection,
    path: String,
    session_id: u64,
    token: u64,
) -> Result<(), LockError> {
    let request = pb::ReleaseRequest { path: path.clone(), session_id, token: Some(token) };
    let attempts = AtomicU32::new(0);
    let result = connection
        .run(Retry::Idempotent, |c| {
            attempts.fetch_add(1, Ordering::Relaxed);
            let request = request.clone();
            async move { connection::lock(c).release(request).await.map(|r| r.into_inner()) }
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        // A retry of a release whose answer was lost finds the hold ended by itself.
        Err(ClientError::Server { kind: Some(ErrorKind::HoldEnded), .. })
            if attempts.load(Ordering::Relaxed) > 1 =>
        {
            Ok(())
        }
        Err(ClientError::Server {
            kind: Some(ErrorKind::HoldEnded | ErrorKind::SessionExpired),
            message,
            ..
        }) => Err(LockError::HoldEnded { path, token, reason: message }),
        Err(e) => Err(LockError::Backend(e)),
    }
}

impl LockGuard {
    /// The fencing token of this hold: pass it to the resources the lock protects, which
    /// should refuse any token lower than the highest they have seen.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The lock's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the hold is gone: its session ended, or the cluster reported it revoked.
    pub fn is_lost(&self) -> bool {
        *self.session_state.borrow() == SessionState::Lost || self.hold_lost.borrow().is_some()
    }

    /// Why the hold is gone, if it is.
    pub fn lost_reason(&self) -> Option<String> {
        if let Some(reason) = self.hold_lost.borrow().clone() {
            return Some(reason);
        }
        (*self.session_state.borrow() == SessionState::Lost).then(|| "session lost".to_owned())
    }

    /// Resolves when the hold is lost: with its session, or revoked.
    pub async fn lost(&self) {
        let (mut state, mut hold) = (self.session_state.clone(), self.hold_lost.clone());
        loop {
            if *state.borrow_and_update() == SessionState::Lost
                || hold.borrow_and_update().is_some()
            {
                return;
            }
            tokio::select! {
                changed = state.changed() => if changed.is_err() { return },
                // The flag's sender goes once the hold is reported or released: from then
                // on only the session can end it.
                changed = hold.changed() => if changed.is_err() && hold.borrow().is_none() {
                    state.wait_for(|s| *s == SessionState::Lost).await.ok();
                    return;
                },
            }
        }
    }

    /// Releases the lock now; if another guard of the same hold is alive, the hold stays
    /// until that one is released. Fails with [`LockError::HoldEnded`] if the hold had
    /// already ended (nothing is released then, not even a later hold of the session).
    pub async fn release(mut self) -> Result<(), LockError> {
        self.released = true;
        if !self.holds.untrack(&self.path, self.token) {
            return Ok(());
        }
        release(&self.connection, self.path.clone(), self.session_id, self.token).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released || !self.holds.untrack(&self.path, self.token) {
            return;
        }
        // A hold reported lost (revoked, or its session closed) has nothing to release.
        if self.hold_lost.borrow().is_some() {
            return;
        }
        let (path, session, token) = (self.path.clone(), self.session_id, self.token);
        crate::background::spawn("lock-release", &self.connection, move |connection| async move {
            match release(&connection, path, session, token).await {
                Ok(()) | Err(LockError::HoldEnded { .. }) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "background release failed; the lock goes with the session");
                }
            }
        });
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard").field("path", &self.path).field("token", &self.token).finish()
    }
}

/// Which lock a [`Lock`] is.
pub(crate) fn request(
    path: &str,
    r#type: pb::LockType,
    shared: bool,
    permits: u32,
    weight: u32,
) -> pb::AcquireRequest {
    pb::AcquireRequest {
        path: path.to_owned(),
        r#type: r#type.into(),
        shared,
        permits,
        weight,
        ..pb::AcquireRequest::default()
    }
}
