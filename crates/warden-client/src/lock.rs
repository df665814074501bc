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
//!
//! A reentrant lock ([`Lock::with_owner`]) counts on the cluster instead: each acquire by
//! the same session and owner adds one to its hold's count and gives a guard of its own,
//! each guard's release (or drop) takes one away, and the hold ends when the count is 0.
//! Those acquires and releases are not idempotent, so they carry request ids: a retry on
//! another member is answered as the first try was, and counts once.
//!
//! The waiting call and the hold are written once for every recipe (`hold.rs`): an
//! election's leadership is held, counted and reported lost the same way.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use warden_proto::ErrorKind;
use warden_proto::v1 as pb;

use crate::connection::{self, Connection};
use crate::error::ClientError;
use crate::hold::{Hold, SessionLink, Wait, end_hold, wait_for_grant_asking};
use crate::session::{RequestIds, Session};

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
    /// The session's place in the lock belongs to another owner, or to none while this
    /// acquire names one (or the other way round): FAILED_PRECONDITION, kind `OtherOwner`.
    /// A session has one place in a lock; that owner releases it first, or another
    /// session takes the lock.
    #[error("{message}")]
    OtherOwner {
        /// The lock.
        path: String,
        /// The cluster's message, naming the owner of the place.
        message: String,
    },
    /// The wait would have closed a cycle of sessions waiting for each other (ABORTED,
    /// kind `Deadlock`): it was refused, and nothing changed; the session keeps every
    /// other hold and wait. Let go of a lock this session holds or waits for and try
    /// again, or take locks in one order everywhere.
    #[error("{message}")]
    Deadlock {
        /// The lock.
        path: String,
        /// The cluster's message, naming the cycle: each session, its identity and the
        /// lock it waits on.
        message: String,
    },
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
    session: SessionLink,
    request: pb::AcquireRequest,
    retry_interval: Duration,
    max_retries: u32,
}

/// A held lock. Released by [`LockGuard::release`], or in the background when dropped.
pub struct LockGuard {
    hold: Hold,
    /// It is one count of a reentrant hold: its release gives that count back.
    reentrant: bool,
}

impl Lock {
    pub(crate) fn new(
        connection: Arc<Connection>,
        session: &Session,
        request: pb::AcquireRequest,
    ) -> Lock {
        Lock {
            connection,
            session: SessionLink::new(session),
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

    /// Makes the hold cover the subtree under the lock's path (mutexes and read-write locks):
    /// it conflicts with holds of the locks below it and with the subtree holds of the
    /// locks above it (readers share), and waits its turn with them, first come first
    /// served.
    pub fn with_subtree(mut self) -> Lock {
        self.request.scope = pb::LockScope::Subtree.into();
        self
    }

    /// Sets the priority of the acquire (0, the default, to 10): higher priorities are
    /// served first, first come first served within one; a waiter gains one priority for
    /// every second it waits, so a request is never passed by one that arrives more than
    /// (10 − its priority) seconds after it.
    pub fn with_priority(mut self, priority: u32) -> Lock {
        self.request.priority = priority;
        self
    }

    /// Sets the retry interval and count of [`Lock::acquire_retrying`].
    pub fn with_retries(mut self, retry_interval: Duration, max_retries: u32) -> Lock {
        self.retry_interval = retry_interval;
        self.max_retries = max_retries;
        self
    }

    /// Makes the lock reentrant for `owner` (a thread, a task: at most 128 bytes, one word
    /// without `=`): acquiring it while this session and owner hold it counts one more
    /// acquire and gives another guard of the same hold (same token) at once; each guard's
    /// release or drop gives one count back, and the lock goes to the next session when
    /// the last is given back. A revoke or the end of the session ends every count. The
    /// session's place in the lock is one owner's: an acquire by another owner (or
    /// without one) while it holds or waits fails with [`LockError::OtherOwner`]. An
    /// empty owner is none.
    pub fn with_owner(mut self, owner: impl Into<String>) -> Lock {
        self.request.owner = owner.into();
        self
    }

    fn guard(&self, response: pb::AcquireResponse) -> LockGuard {
        LockGuard {
            hold: self.session.track(&self.connection, &self.request.path, response.token),
            reentrant: !self.request.owner.is_empty(),
        }
    }

    async fn call(&self, wait: Wait) -> Result<LockGuard, LockError> {
        let path = self.request.path.clone();
        let request = pb::AcquireRequest { timeout_ms: wait.timeout_ms(), ..self.request.clone() };
        // A reentrant acquire counts: each asking is one request, with one id for all its
        // tries (a new asking, after a cancelled wait, gets a new one).
        let reentrant = !request.owner.is_empty();
        let requests = &self.session.requests;
        let mut ids: Vec<pb::RequestId> = Vec::new();
        let result = wait_for_grant_asking(&self.connection, &self.session, wait, |c, asking| {
            let mut request = request.clone();
            if reentrant {
                while ids.len() <= asking as usize {
                    ids.push(requests.begin());
                }
                request.request_id = ids.last().copied();
            }
            async move {
                let mut client = connection::lock(c);
                let response = if wait == Wait::No {
                    client.try_acquire(request).await
                } else {
                    client.acquire(request).await
                };
                response.map(|r| r.into_inner())
            }
        })
        .await;
        for id in &ids {
            requests.finish(id.seq);
        }
        match result {
            Ok(response) => Ok(self.guard(response)),
            Err(ClientError::Server { kind: Some(ErrorKind::AlreadyLocked), .. }) => {
                Err(LockError::AlreadyLocked { path })
            }
            Err(ClientError::Server { kind: Some(ErrorKind::Timeout), .. }) => {
                Err(LockError::Timeout { path, waited: Duration::from_millis(wait.timeout_ms()) })
            }
            Err(ClientError::Server {
                kind: Some(ErrorKind::WaitEnded | ErrorKind::SessionExpired),
                ..
            }) => Err(LockError::SessionLost { path }),
            Err(ClientError::Server { kind: Some(ErrorKind::WaitRevoked), .. }) => {
                Err(LockError::Revoked { path })
            }
            Err(ClientError::Server { kind: Some(ErrorKind::Deadlock), message, .. }) => {
                Err(LockError::Deadlock { path, message })
            }
            Err(ClientError::Server { kind: Some(ErrorKind::OtherOwner), message, .. }) => {
                Err(LockError::OtherOwner { path, message })
            }
            Err(e) => Err(LockError::Backend(e)),
        }
    }

    /// Waits until the lock is held (or the session is lost).
    pub async fn acquire(&self) -> Result<LockGuard, LockError> {
        self.call(Wait::Forever).await
    }

    /// Takes the lock only if it is free now.
    pub async fn try_acquire(&self) -> Result<LockGuard, LockError> {
        self.call(Wait::No).await
    }

    /// Waits at most `timeout`; the wait is removed on the server if it runs out.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, LockError> {
        self.call(Wait::For(timeout)).await
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

/// Releases the hold of `path` with `token`, or one count of it when `counted` gives the
/// session's request ids (a reentrant hold: the release must apply once).
async fn release(
    connection: &Connection,
    path: String,
    session_id: u64,
    token: u64,
    counted: Option<&RequestIds>,
) -> Result<(), LockError> {
    let request_id = counted.map(RequestIds::begin);
    let request =
        pb::ReleaseRequest { path: path.clone(), session_id, token: Some(token), request_id };
    let result = end_hold(connection, |c| {
        let request = request.clone();
        async move { connection::lock(c).release(request).await.map(|r| r.into_inner()) }
    })
    .await;
    if let (Some(requests), Some(id)) = (counted, request_id) {
        requests.finish(id.seq);
    }
    match result {
        Ok(()) => Ok(()),
        Err(ClientError::Server {
            kind: Some(ErrorKind::HoldEnded | ErrorKind::SessionExpired),
            message,
            ..
        }) => Err(LockError::HoldEnded { path, token, reason: message }),
        Err(e) => Err(LockError::Backend(e)),
    }
}

impl LockGuard {
    /// The guard of a hold another recipe's call got on a lock (a resource kind's id).
    pub(crate) fn of(hold: Hold) -> LockGuard {
        LockGuard { hold, reentrant: false }
    }

    /// The fencing token of this hold: pass it to the resources the lock protects, which
    /// should refuse any token lower than the highest they have seen.
    pub fn token(&self) -> u64 {
        self.hold.token
    }

    /// The lock's path.
    pub fn path(&self) -> &str {
        &self.hold.path
    }

    /// Whether the hold is gone: its session ended, or the cluster reported it revoked.
    pub fn is_lost(&self) -> bool {
        self.hold.is_lost()
    }

    /// Why the hold is gone, if it is.
    pub fn lost_reason(&self) -> Option<String> {
        self.hold.lost_reason()
    }

    /// Resolves when the hold is lost: with its session, or revoked.
    pub async fn lost(&self) {
        self.hold.lost().await
    }

    /// Releases the lock now; if another guard of the same hold is alive, the hold stays
    /// until that one is released. Fails with [`LockError::HoldEnded`] if the hold had
    /// already ended (nothing is released then, not even a later hold of the session).
    /// The guard of a reentrant lock gives back its count: the hold stays while others
    /// count.
    pub async fn release(mut self) -> Result<(), LockError> {
        let last = self.hold.let_go();
        if !last && !self.reentrant {
            return Ok(());
        }
        let hold = &self.hold;
        let counted = self.reentrant.then_some(&*hold.requests);
        release(&hold.connection, hold.path.clone(), hold.session_id, hold.token, counted).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // A hold reported lost (revoked, or its session closed) has nothing to release.
        let releases =
            if self.reentrant { self.hold.let_go_of_count() } else { self.hold.let_go_on_drop() };
        if !releases {
            return;
        }
        let (path, session, token) =
            (self.hold.path.clone(), self.hold.session_id, self.hold.token);
        let counted = self.reentrant.then(|| Arc::clone(&self.hold.requests));
        crate::background::spawn(
            "lock-release",
            &self.hold.connection,
            move |connection| async move {
                match release(&connection, path, session, token, counted.as_deref()).await {
                    Ok(()) | Err(LockError::HoldEnded { .. }) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "background release failed; the lock goes with the session");
                    }
                }
            },
        );
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("path", &self.hold.path)
            .field("token", &self.hold.token)
            .finish()
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

#[cfg(test)]
#[path = "lock_test.rs"]
mod tests;
