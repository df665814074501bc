//! Resource kinds and their version rotation, over the Resource service (DESIGN §5).
//!
//! A kind (a path, say `/orders`) keeps the locks of its ids at `KIND/<version>/<id>`.
//! [`Resource::acquire`] names only the kind and the id: the cluster picks the version in
//! the entry that queues the session, so no client can race a switch. While the kind
//! rotates, an acquire queues for the new version (granted at the switch) or, with
//! [`Resource::fail_while_draining`], fails at once with the error kind `Draining`.
//!
//! A grant is an ordinary lock hold at the lock path the cluster returns: the session's
//! keepalive lists it and reports its loss (a revoke, a forced rotation, the session's
//! end) as for any lock, so [`ResourceGuard`] is told the same way a lock guard is, and is
//! released through the Lock service at that path.
//!
//! The kind's own calls ([`ResourceKind::init`], [`ResourceKind::rotate`],
//! [`ResourceKind::force`], [`ResourceKind::status`]) need no session: every one is
//! idempotent on the cluster (a rotation begun twice is one rotation; a force finds
//! nothing left the second time), so each is retried like a read.

use std::sync::Arc;
use std::time::Duration;

use warden_proto::ErrorKind;
use warden_proto::v1 as pb;
use warden_proto::v1::resource_client::ResourceClient;

use crate::connection::{Connection, Retry};
use crate::error::ClientError;
use crate::hold::{SessionLink, Wait, wait_for_grant};
use crate::lock::{LockError, LockGuard};
use crate::lock_status::LockEntry;
use crate::session::Session;
use crate::{Client, revision};

/// A resource kind, for its own calls (no session needed): [`Client::resource_kind`].
#[derive(Clone)]
pub struct ResourceKind {
    connection: Arc<Connection>,
    kind: String,
}

/// A resource kind whose ids a session locks: [`Client::resource`].
///
/// Its locks are read-write locks, taken exclusive unless [`Resource::shared`] is called
/// (as `warden lock --resource` takes them), so the CLI and programs agree on the kind of
/// an id's lock; [`Resource::mutex`] and [`Resource::semaphore`] pick another kind, which
/// every user of the same id must then pick too.
#[derive(Clone)]
pub struct Resource {
    kind: ResourceKind,
    session: SessionLink,
    request: pb::ResourceAcquireRequest,
}

/// A held id of a resource kind. Released by [`ResourceGuard::release`], or in the
/// background when dropped; lost with its session, or when revoked (by an operator, or by
/// a forced rotation).
pub struct ResourceGuard {
    /// The hold is a lock's, released the same way.
    lock: LockGuard,
    version: String,
    id: String,
}

/// What [`ResourceKind::init`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInit {
    /// False when the kind was there already (it was left as it was).
    pub created: bool,
    /// Its current version.
    pub version: String,
}

/// Where a rotation is ([`ResourceKind::rotate`], [`ResourceKind::force`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The version rotated from.
    pub from: String,
    /// The version rotated to.
    pub to: String,
    /// The kind is at `to` now.
    pub switched: bool,
    /// Holds and waits revoked (by a forced rotation).
    pub revoked: u64,
}

/// A resource kind's version, rotation and holders ([`ResourceKind::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatus {
    /// The kind.
    pub kind: String,
    /// The version whose locks grant.
    pub version: String,
    /// The version a rotation under way goes to.
    pub rotating_to: Option<String>,
    /// The holders and waiters of `version`: while rotating, what is left to drain.
    pub current: Vec<ResourceHolder>,
    /// The acquisitions queued for `rotating_to`, granted at the switch.
    pub waiting: Vec<ResourceHolder>,
    /// The revision the status was read at.
    pub revision: u64,
}

/// One holder or waiter of an id's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceHolder {
    /// The id.
    pub id: String,
    /// The id's lock: `KIND/<version>/<id>`.
    pub lock: String,
    /// Its session, mode, token (`None` for a waiter), identity and wait start.
    pub entry: LockEntry,
}

impl ResourceStatus {
    /// The holders of the current version (those with a token).
    pub fn holders(&self) -> impl Iterator<Item = &ResourceHolder> {
        self.current.iter().filter(|h| h.entry.token.is_some())
    }

    /// Whether the kind is at `version` with no rotation under way.
    pub fn is_at(&self, version: &str) -> bool {
        self.version == version && self.rotating_to.is_none()
    }
}

impl Client {
    /// The resource kind at `kind` (a path), for its own calls: init, rotate, force,
    /// status.
    pub fn resource_kind(&self, kind: &str) -> ResourceKind {
        ResourceKind { connection: Arc::clone(&self.connection), kind: kind.to_owned() }
    }

    /// The resource kind at `kind` (a path), for `session` to lock its ids.
    pub fn resource(&self, session: &Session, kind: &str) -> Resource {
        Resource::new(self.resource_kind(kind), SessionLink::new(session))
    }
}

fn client(channel: tonic::transport::Channel) -> ResourceClient<tonic::transport::Channel> {
    ResourceClient::new(channel)
        .max_decoding_message_size(warden_proto::MAX_CLIENT_MESSAGE_BYTES)
        .max_encoding_message_size(warden_proto::MAX_CLIENT_MESSAGE_BYTES)
}

impl ResourceKind {
    /// The kind's path.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Makes the kind at `version` (one path segment); a kind already there is left as
    /// it is (`created` false, with its current version).
    pub async fn init(&self, version: &str) -> Result<ResourceInit, ClientError> {
        let request = pb::ResourceInitRequest { kind: self.kind.clone(), version: version.into() };
        let r = self
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { client(c).init(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(ResourceInit { created: r.created, version: r.version })
    }

    /// Begins the rotation to `to` (one path segment), or finds it under way or done
    /// (`switched`). A rotation to another version under way is refused
    /// (`InvalidResourceRequest`): let it finish, or force it, first.
    pub async fn rotate(&self, to: &str) -> Result<Rotation, ClientError> {
        let request = pb::RotationRequest { kind: self.kind.clone(), to: to.to_owned() };
        let r = self
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { client(c).rotate(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(rotation(r))
    }

    /// Forces the rotation under way: revokes every hold and wait left in the old version
    /// (holders are told; their lock-delays apply, and the switch waits for them). Needs
    /// `admin`. Asked again after a lost answer, it finds less (or nothing) to revoke.
    pub async fn force(&self) -> Result<Rotation, ClientError> {
        let request = pb::ForceRotationRequest { kind: self.kind.clone() };
        let r = self
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { client(c).force(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(rotation(r))
    }

    /// The kind's version, its rotation, and the holders and waiters of each side.
    pub async fn status(&self) -> Result<ResourceStatus, ClientError> {
        let request = pb::ResourceStatusRequest { kind: self.kind.clone() };
        let r = self
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { client(c).status(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        status(r)
    }
}

fn rotation(r: pb::RotationResponse) -> Rotation {
    Rotation { from: r.from, to: r.to, switched: r.switched, revoked: r.revoked }
}

/// The wire answer as a [`ResourceStatus`]; a mode this client cannot read is an error.
pub(crate) fn status(r: pb::ResourceStatusResponse) -> Result<ResourceStatus, ClientError> {
    let holders = |list: Vec<pb::ResourceHold>| {
        list.into_iter()
            .map(|h| {
                let w = h.waiter.ok_or_else(|| ClientError::UnexpectedResponse {
                    message: format!("the holder of {:?} came without its waiter", h.lock),
                })?;
                let entry = crate::lock_status::lock_entry(w)?;
                Ok(ResourceHolder { id: h.id, lock: h.lock, entry })
            })
            .collect::<Result<Vec<_>, ClientError>>()
    };
    Ok(ResourceStatus {
        revision: revision(r.header.as_ref()),
        current: holders(r.current)?,
        waiting: holders(r.waiting)?,
        rotating_to: Some(r.rotating_to).filter(|to| !to.is_empty()),
        kind: r.kind,
        version: r.version,
    })
}

/// The version in a lock path `KIND/<version>/<id>`, checked against the kind and id.
fn version_of(lock: &str, kind: &str, id: &str) -> Option<String> {
    let prefix = if kind == "/" { "/".to_owned() } else { format!("{kind}/") };
    let rest = lock.strip_prefix(&prefix)?;
    let (version, got) = rest.split_once('/')?;
    (got == id && !version.is_empty()).then(|| version.to_owned())
}

impl Resource {
    fn new(kind: ResourceKind, session: SessionLink) -> Resource {
        let request = pb::ResourceAcquireRequest {
            kind: kind.kind.clone(),
            session_id: session.id,
            r#type: pb::LockType::Rwlock.into(),
            shared: false,
            permits: 0,
            weight: 1,
            ..pb::ResourceAcquireRequest::default()
        };
        Resource { kind, session, request }
    }

    /// The kind's own calls.
    pub fn kind(&self) -> &ResourceKind {
        &self.kind
    }

    /// Takes the ids' read-write locks shared (read) rather than exclusive.
    pub fn shared(mut self) -> Resource {
        self.request.r#type = pb::LockType::Rwlock.into();
        self.request.shared = true;
        self
    }

    /// Takes the ids' locks as mutexes.
    pub fn mutex(mut self) -> Resource {
        self.request.r#type = pb::LockType::Mutex.into();
        self.request.shared = false;
        self
    }

    /// Takes `weight` permits of semaphores of `permits`.
    pub fn semaphore(mut self, permits: u32, weight: u32) -> Resource {
        self.request.r#type = pb::LockType::Semaphore.into();
        (self.request.shared, self.request.permits, self.request.weight) = (false, permits, weight);
        self
    }

    /// Sets the lock-delay a new id lock gets (at most 60 s).
    pub fn with_delay(mut self, delay: Duration) -> Resource {
        self.request.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// While the kind rotates, fail at once (the error kind `Draining`) instead of
    /// queueing for the new version.
    pub fn fail_while_draining(mut self) -> Resource {
        self.request.no_wait_while_draining = true;
        self
    }

    /// Waits until the id is held (or the session is lost). While the kind rotates, the
    /// wait is for the new version, granted at the switch.
    pub async fn acquire(&self, id: &str) -> Result<ResourceGuard, LockError> {
        self.call(id, Wait::Forever).await
    }

    /// Waits at most `timeout`; the wait is removed on the server if it runs out.
    pub async fn acquire_timeout(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<ResourceGuard, LockError> {
        self.call(id, Wait::For(timeout)).await
    }

    /// As [`ResourceKind::init`].
    pub async fn init(&self, version: &str) -> Result<ResourceInit, ClientError> {
        self.kind.init(version).await
    }

    /// As [`ResourceKind::rotate`].
    pub async fn rotate(&self, to: &str) -> Result<Rotation, ClientError> {
        self.kind.rotate(to).await
    }

    /// As [`ResourceKind::force`].
    pub async fn force(&self) -> Result<Rotation, ClientError> {
        self.kind.force().await
    }

    /// As [`ResourceKind::status`].
    pub async fn status(&self) -> Result<ResourceStatus, ClientError> {
        self.kind.status().await
    }

    async fn call(&self, id: &str, wait: Wait) -> Result<ResourceGuard, LockError> {
        // The version is not known before the grant.
        let path = format!("{}/<version>/{id}", self.kind.kind);
        let request = pb::ResourceAcquireRequest {
            id: id.to_owned(),
            timeout_ms: wait.timeout_ms(),
            ..self.request.clone()
        };
        let connection = &self.kind.connection;
        let result = wait_for_grant(connection, &self.session, wait, |c| {
            let request = request.clone();
            async move { client(c).acquire(request).await.map(|r| r.into_inner()) }
        })
        .await;
        match result {
            Ok(r) => {
                let Some(version) = version_of(&r.lock, &self.kind.kind, id) else {
                    // Granted, but not where this client can release it by name: its
                    // session keeps it until closed.
                    return Err(LockError::Backend(ClientError::UnexpectedResponse {
                        message: format!(
                            "the grant of id {id:?} of {:?} names the lock {:?}, not KIND/<version>/ID",
                            self.kind.kind, r.lock
                        ),
                    }));
                };
                let hold = self.session.track(connection, &r.lock, r.token);
                Ok(ResourceGuard { lock: LockGuard::of(hold), version, id: id.to_owned() })
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
            Err(e) => Err(LockError::Backend(e)),
        }
    }
}

impl ResourceGuard {
    /// The fencing token of this hold.
    pub fn token(&self) -> u64 {
        self.lock.token()
    }

    /// The lock that holds: `KIND/<version>/<id>`.
    pub fn lock_path(&self) -> &str {
        self.lock.path()
    }

    /// The version the id is held in.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the hold is gone: its session ended, or the cluster reported it revoked.
    pub fn is_lost(&self) -> bool {
        self.lock.is_lost()
    }

    /// Why the hold is gone, if it is.
    pub fn lost_reason(&self) -> Option<String> {
        self.lock.lost_reason()
    }

    /// Resolves when the hold is lost: with its session, or revoked (a forced rotation
    /// revokes what is left in the old version).
    pub async fn lost(&self) {
        self.lock.lost().await
    }

    /// Releases the id now (as [`LockGuard::release`]); dropping the guard releases it in
    /// the background.
    pub async fn release(self) -> Result<(), LockError> {
        self.lock.release().await
    }
}

impl std::fmt::Debug for ResourceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceGuard")
            .field("lock", &self.lock.path())
            .field("token", &self.lock.token())
            .finish()
    }
}

#[cfg(test)]
#[path = "resource_test.rs"]
mod tests;
