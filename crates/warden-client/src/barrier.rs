//! Barriers over the Barrier service: a barrier that holds waiters back while it is set
//! (Curator's DistributedBarrier), and a double barrier of N members (Curator's
//! DistributedDoubleBarrier): enter waits until all N are in, leave until all have left.
//!
//! Waiting calls (wait, enter, leave) are made in a session, as a lock's acquire is, and
//! retried the same way when the member serving them fails (see `hold.rs`): the waiting
//! member is a node its session owns, so a member whose session ends leaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tonic::Code;
use warden_proto::ErrorKind;
use warden_proto::v1 as pb;

use crate::Client;
use crate::connection::{self, Connection, Retry};
use crate::error::ClientError;
use crate::hold::{SessionLink, Wait, wait_for_grant};
use crate::session::Session;

/// Which barrier a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierKind {
    /// A barrier: set, waited on, removed.
    Barrier,
    /// A double barrier of N members.
    Double,
}

impl BarrierKind {
    /// The kind as the CLI and the wire name it: "barrier" or "double".
    pub fn name(self) -> &'static str {
        match self {
            BarrierKind::Barrier => "barrier",
            BarrierKind::Double => "double",
        }
    }
}

/// A barrier's state and members ([`Client::barrier_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarrierStatus {
    /// A barrier or a double barrier.
    pub kind: BarrierKind,
    /// A barrier: whether it is set. A double barrier: whether all its members have
    /// entered (members entering now pass at once) and not all have left yet.
    pub set: bool,
    /// A double barrier's number of members (0 for a barrier).
    pub count: u32,
    /// The waiting or entered members, in arrival order.
    pub members: Vec<BarrierMember>,
    /// The revision the status was read at.
    pub revision: u64,
}

/// One member of a barrier: a waiter, or a double barrier's entered member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarrierMember {
    /// Its node (`NAME/w-NNNNNNNNNN`).
    pub member: String,
    /// Its session.
    pub session_id: u64,
    /// Set once it is through (entered, for a double barrier).
    pub token: Option<u64>,
    /// When it started waiting (the leader's clock, ms since the Unix epoch).
    pub since_ms: u64,
    /// The identity that opened its session (empty without TLS).
    pub identity: String,
}

/// What removing a barrier did ([`Client::remove_barrier`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierRemoved {
    /// False when the barrier was not set.
    pub removed: bool,
    /// The waiters it let through.
    pub released: u64,
}

/// A barrier a session can wait on ([`Client::barrier`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), warden_client::ClientError> {
/// use std::time::Duration;
///
/// use warden_client::Client;
///
/// let client = Client::new(vec!["127.0.0.1:7400".into()])?;
/// // The coordinator sets the gate (no session needed) ...
/// client.set_barrier("/jobs/gate").await?;
/// // ... workers wait at it, each in its session ...
/// let session = client.open_session(Duration::from_secs(10)).await?;
/// let gate = client.barrier(&session, "/jobs/gate");
/// gate.wait(Some(Duration::from_secs(60))).await?;
/// // ... and go once the coordinator removes it: client.remove_barrier("/jobs/gate").
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Barrier {
    connection: Arc<Connection>,
    session: SessionLink,
    name: String,
}

/// A double barrier a session can enter ([`Client::double_barrier`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), warden_client::ClientError> {
/// use std::time::Duration;
///
/// use warden_client::Client;
///
/// let client = Client::new(vec!["127.0.0.1:7400".into()])?;
/// let session = client.open_session(Duration::from_secs(10)).await?;
/// // Three workers start together and finish together.
/// let round = client.double_barrier(&session, "/jobs/round-1", 3);
/// let entered = round.enter(Some(Duration::from_secs(60))).await?;
/// // ... all 3 are in: work ...
/// entered.leave(Some(Duration::from_secs(60))).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DoubleBarrier {
    connection: Arc<Connection>,
    session: SessionLink,
    name: String,
    count: u32,
}

/// A session's place in a double barrier, once all members are in. Leave with
/// [`DoubleBarrierGuard::leave`]; dropping it leaves in the background without waiting for
/// the others.
pub struct DoubleBarrierGuard {
    connection: Arc<Connection>,
    session: SessionLink,
    name: String,
    member: String,
    left: bool,
}

impl Client {
    /// The barrier at `name`, for `session` to wait on (set and remove need no session:
    /// see [`Client::set_barrier`]).
    pub fn barrier(&self, session: &Session, name: &str) -> Barrier {
        Barrier {
            connection: Arc::clone(&self.connection),
            session: SessionLink::new(session),
            name: name.to_owned(),
        }
    }

    /// The double barrier of `count` members at `name`, for `session` to enter (every
    /// member must give the same count; the first sets it).
    pub fn double_barrier(&self, session: &Session, name: &str, count: u32) -> DoubleBarrier {
        DoubleBarrier {
            connection: Arc::clone(&self.connection),
            session: SessionLink::new(session),
            name: name.to_owned(),
            count,
        }
    }

    /// Sets the barrier at `name`: waiters wait until it is removed. Returns false if it
    /// was set already (also when a retry, after a lost answer, finds the first try's
    /// barrier).
    pub async fn set_barrier(&self, name: &str) -> Result<bool, ClientError> {
        let request = pb::BarrierSetRequest { name: name.to_owned() };
        let response = self
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { connection::barrier(c).set(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(response.created)
    }

    /// Removes the barrier at `name`, letting its waiters through.
    pub async fn remove_barrier(&self, name: &str) -> Result<BarrierRemoved, ClientError> {
        let request = pb::BarrierRemoveRequest { name: name.to_owned() };
        let response = self
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { connection::barrier(c).remove(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(BarrierRemoved { removed: response.removed, released: response.released })
    }

    /// The state and members of the barrier (or double barrier) at `name`.
    pub async fn barrier_status(&self, name: &str) -> Result<BarrierStatus, ClientError> {
        status_of(&self.connection, name).await
    }
}

/// The state and members of the barrier (or double barrier) at `name`.
async fn status_of(connection: &Connection, name: &str) -> Result<BarrierStatus, ClientError> {
    let request = pb::BarrierStatusRequest { name: name.to_owned() };
    let response = connection
        .run(Retry::Idempotent, |c| {
            let request = request.clone();
            async move { connection::barrier(c).status(request).await.map(|r| r.into_inner()) }
        })
        .await?;
    barrier_status(response)
}

/// The wire answer as a [`BarrierStatus`]; a kind this client does not know is an error.
fn barrier_status(r: pb::BarrierStatusResponse) -> Result<BarrierStatus, ClientError> {
    let kind = match r.r#type.as_str() {
        "barrier" => BarrierKind::Barrier,
        "double" => BarrierKind::Double,
        other => {
            return Err(ClientError::UnexpectedResponse {
                message: format!("a barrier status with the unknown type {other:?}"),
            });
        }
    };
    let members = r
        .members
        .into_iter()
        .map(|m| BarrierMember {
            member: m.waiter,
            session_id: m.session_id,
            token: m.token,
            since_ms: m.since_ms,
            identity: m.identity,
        })
        .collect();
    Ok(BarrierStatus {
        kind,
        set: r.set,
        count: r.count,
        members,
        revision: r.header.map(|h| h.revision).unwrap_or(0),
    })
}

impl Barrier {
    /// The barrier's path.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn client(&self) -> Client {
        Client { connection: Arc::clone(&self.connection) }
    }

    /// Sets the barrier (see [`Client::set_barrier`]).
    pub async fn set(&self) -> Result<bool, ClientError> {
        self.client().set_barrier(&self.name).await
    }

    /// Removes the barrier (see [`Client::remove_barrier`]).
    pub async fn remove(&self) -> Result<BarrierRemoved, ClientError> {
        self.client().remove_barrier(&self.name).await
    }

    /// The barrier's state and waiters.
    pub async fn status(&self) -> Result<BarrierStatus, ClientError> {
        self.client().barrier_status(&self.name).await
    }

    /// Returns at once if the barrier is not set; otherwise waits until it is removed (for
    /// ever with no `timeout`). Fails with the error kind `Timeout` (DEADLINE_EXCEEDED) if
    /// it is still set at the timeout (the wait is withdrawn), `WaitEnded` or
    /// `SessionExpired` if the session ended, `WrongRecipe` if the path holds another
    /// recipe.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        let wait = Wait::from_timeout(timeout);
        let request = pb::BarrierWaitRequest {
            name: self.name.clone(),
            session_id: self.session.id,
            timeout_ms: wait.timeout_ms(),
        };
        wait_for_grant(&self.connection, &self.session, wait, |c| {
            let request = request.clone();
            async move { connection::barrier(c).wait(request).await.map(|r| r.into_inner()) }
        })
        .await
        .map(|_| ())
    }
}

/// Leaves the double barrier `name` in session `link`, waiting as `wait` says.
///
/// A leave asked again after its answer was lost (its member failed) finds the member out
/// already: the server says `NotHeld`, as it does to a session that never entered. On a
/// retry that means the first try left, and what is left to do is the wait for the others
/// ([`others_left`]); on a first try it is an error.
async fn leave(
    connection: &Connection,
    link: &SessionLink,
    name: &str,
    wait: Wait,
) -> Result<(), ClientError> {
    let request = pb::BarrierLeaveRequest {
        name: name.to_owned(),
        session_id: link.id,
        timeout_ms: wait.timeout_ms(),
    };
    let asked = Instant::now();
    let attempts = AtomicU32::new(0);
    let left = wait_for_grant(connection, link, wait, |c| {
        attempts.fetch_add(1, Ordering::Relaxed);
        let request = request.clone();
        async move { connection::barrier(c).leave(request).await.map(|r| r.into_inner()) }
    })
    .await;
    match left {
        Err(ClientError::Server { kind: Some(ErrorKind::NotHeld), .. })
            if attempts.load(Ordering::Relaxed) > 1 =>
        {
            let deadline = match wait {
                Wait::For(t) => Some(asked + t),
                Wait::No | Wait::Forever => None,
            };
            others_left(connection, name, deadline).await
        }
        other => other.map(|_| ()),
    }
}

/// Waits until every member of the double barrier `name` has left (its node is gone, or a
/// new round that is not full yet is there), reading its status every [`POLL`] until
/// `deadline` (then the error kind `Timeout`, as the server's wait says it).
async fn others_left(
    connection: &Connection,
    name: &str,
    deadline: Option<Instant>,
) -> Result<(), ClientError> {
    loop {
        match status_of(connection, name).await {
            Err(ClientError::Server { code: Code::NotFound, .. }) => return Ok(()),
            Ok(status) if !status.set => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(ClientError::Server {
                code: Code::DeadlineExceeded,
                message: format!(
                    "not every member had left the double barrier {name:?} in time (this one has left)"
                ),
                kind: Some(ErrorKind::Timeout),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How often a leave asked again reads the barrier's status while the others leave.
const POLL: Duration = Duration::from_millis(100);

impl DoubleBarrier {
    /// The barrier's path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of members.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Enters, and waits until all members are in (for ever with no `timeout`). Fails
    /// with the error kind `Timeout` (DEADLINE_EXCEEDED) if they were not all in at the
    /// timeout (this member is taken out again), `WaitEnded` or `SessionExpired` if the
    /// session ended, `WaitRevoked` if an operator took it out, `WrongRecipe` if the path
    /// holds another recipe.
    pub async fn enter(
        &self,
        timeout: Option<Duration>,
    ) -> Result<DoubleBarrierGuard, ClientError> {
        let wait = Wait::from_timeout(timeout);
        let request = pb::BarrierEnterRequest {
            name: self.name.clone(),
            session_id: self.session.id,
            count: self.count,
            timeout_ms: wait.timeout_ms(),
        };
        let response = wait_for_grant(&self.connection, &self.session, wait, |c| {
            let request = request.clone();
            async move { connection::barrier(c).enter(request).await.map(|r| r.into_inner()) }
        })
        .await?;
        Ok(DoubleBarrierGuard {
            connection: Arc::clone(&self.connection),
            session: self.session.clone(),
            name: self.name.clone(),
            member: response.member,
            left: false,
        })
    }

    /// Leaves (this session's member), and waits until every member has left (for ever
    /// with no `timeout`). The member has left even if this fails with the error kind
    /// `Timeout`: only the wait for the others ran out.
    pub async fn leave(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        leave(&self.connection, &self.session, &self.name, Wait::from_timeout(timeout)).await
    }

    /// The barrier's state and members.
    pub async fn status(&self) -> Result<BarrierStatus, ClientError> {
        Client { connection: Arc::clone(&self.connection) }.barrier_status(&self.name).await
    }
}

impl DoubleBarrierGuard {
    /// The barrier's path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This member's node.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// Leaves, and waits until every member has left (see [`DoubleBarrier::leave`]).
    pub async fn leave(mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.left = true;
        leave(&self.connection, &self.session, &self.name, Wait::from_timeout(timeout)).await
    }
}

impl Drop for DoubleBarrierGuard {
    fn drop(&mut self) {
        if self.left || self.session.is_lost() {
            return;
        }
        let (session, name) = (self.session.clone(), self.name.clone());
        crate::background::spawn("barrier-leave", &self.connection, move |connection| async move {
            // Leave without waiting for the others: a timeout then only says they are
            // still in.
            match leave(&connection, &session, &name, Wait::For(Duration::from_millis(1))).await {
                Ok(()) => {}
                Err(e) if e.kind() == Some(ErrorKind::Timeout) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "background leave failed; the member leaves with its session");
                }
            }
        });
    }
}

impl std::fmt::Debug for DoubleBarrierGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoubleBarrierGuard")
            .field("name", &self.name)
            .field("member", &self.member)
            .finish()
    }
}

#[cfg(test)]
#[path = "barrier_test.rs"]
mod tests;
