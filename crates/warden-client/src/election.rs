//! Elections over the Election service (etcd's v3election, Chubby's primary election):
//! campaign in a session to lead, with a fencing token; who leads; every change of leader
//! as a stream.
//!
//! A leadership is a hold like a lock's (the election's path and the token), so it is
//! reported lost the same way ([`Leadership::lost`]: resigned elsewhere, revoked by an
//! operator, or gone with its session), resigned in the background when its guard is
//! dropped, and a campaign whose member fails is asked again on another member, which
//! re-attaches to the same candidate (see `hold.rs`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warden_proto::ErrorKind;
use warden_proto::v1 as pb;

use crate::connection::{self, Connection, Retry};
use crate::error::ClientError;
use crate::hold::{Hold, SessionLink, Wait, end_hold, wait_for_grant};
pub use crate::observe::LeaderObserver;
use crate::session::Session;
use crate::{Client, Consistency};

/// Who leads an election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The election's path.
    pub name: String,
    /// The value the leader campaigned with, or last proclaimed.
    pub value: Bytes,
    /// The leader's fencing token: the revision at which it came to lead.
    pub token: u64,
    /// The leader's session.
    pub session_id: u64,
    /// The identity that opened the leader's session (empty without TLS).
    pub identity: String,
    /// The leader's candidate node (`NAME/w-NNNNNNNNNN`).
    pub candidate: String,
}

impl From<pb::LeaderInfo> for Leader {
    fn from(l: pb::LeaderInfo) -> Leader {
        Leader {
            name: l.name,
            value: l.value,
            token: l.token,
            session_id: l.session_id,
            identity: l.identity,
            candidate: l.candidate,
        }
    }
}

/// One change of leader ([`Client::observe_election`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderChange {
    /// The revision of the change.
    pub revision: u64,
    /// The leader from this revision on (a new one, or a new value proclaimed); `None`
    /// when the election has no leader.
    pub leader: Option<Leader>,
}

/// An election a session can campaign in ([`Client::election`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), warden_client::ClientError> {
/// use std::time::Duration;
///
/// use warden_client::Client;
///
/// let client = Client::new(vec!["127.0.0.1:7400".into()])?;
/// let session = client.open_session(Duration::from_secs(10)).await?;
/// let election = client.election(&session, "/services/db-primary");
///
/// // Waits (up to a minute) until this session leads.
/// let leadership = election.campaign("10.0.0.7:5432", Some(Duration::from_secs(60))).await?;
/// println!("leading with token {}", leadership.token());
/// tokio::select! {
///     () = leadership.lost() => eprintln!("deposed: stop acting as primary"),
///     () = tokio::time::sleep(Duration::from_secs(30)) => leadership.resign().await?,
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Election {
    connection: Arc<Connection>,
    session: SessionLink,
    name: String,
}

/// This session's leadership of an election. Resigned by [`Leadership::resign`], or in
/// the background when dropped; lost when its session is, or when an operator revokes it
/// ([`Leadership::lost`]).
pub struct Leadership {
    hold: Hold,
    /// The leader as granted.
    leader: Leader,
}

impl Client {
    /// The election at `name` (a path), for `session` to campaign in.
    pub fn election(&self, session: &Session, name: &str) -> Election {
        Election {
            connection: Arc::clone(&self.connection),
            session: SessionLink::new(session),
            name: name.to_owned(),
        }
    }

    /// Who leads the election at `name`; `None` if nobody does.
    pub async fn election_leader(
        &self,
        name: &str,
        consistency: Consistency,
    ) -> Result<Option<Leader>, ClientError> {
        let request = pb::LeaderRequest {
            name: name.to_owned(),
            serializable: consistency == Consistency::Serializable,
        };
        let result = self
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { connection::election(c).leader(request).await.map(|r| r.into_inner()) }
            })
            .await;
        match result {
            Ok(response) => leader_of(response.leader).map(Some),
            Err(ClientError::Server { kind: Some(ErrorKind::NoLeader), .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every change of leader of the election at `name` from revision `start` (0: from
    /// now, beginning with the leader, or `None`, at the current revision), in order,
    /// "no leader" included. The stream resumes on another member after a failure without
    /// missing or repeating a change; it is open on a member before this returns, so a
    /// bad request, or a start no member's history still has ([`ClientError::Compacted`]),
    /// fails here.
    pub async fn observe_election(
        &self,
        name: &str,
        start: u64,
    ) -> Result<LeaderObserver, ClientError> {
        let connection = Arc::new(self.connection.for_watch());
        crate::observe::open(connection, name, start).await
    }
}

/// A leader in an answer that must have one.
fn leader_of(leader: Option<pb::LeaderInfo>) -> Result<Leader, ClientError> {
    leader.map(Leader::from).ok_or_else(|| ClientError::UnexpectedResponse {
        message: "an election answer without its leader".to_owned(),
    })
}

impl Election {
    /// The election's path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues this session as a candidate announcing `value`, and waits until it leads
    /// (for ever with no `timeout`). Campaigning again in a session that leads or waits
    /// returns its place (the same leadership: it is resigned with its last guard).
    ///
    /// Fails with the error kind `Timeout` (DEADLINE_EXCEEDED) if it did not lead in
    /// time (the candidacy is withdrawn), `WaitRevoked` if an operator took the candidate
    /// out, `WaitEnded` or `SessionExpired` if the session ended, `WrongRecipe` if the path
    /// holds a lock or a barrier.
    pub async fn campaign(
        &self,
        value: impl Into<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<Leadership, ClientError> {
        let wait = Wait::from_timeout(timeout);
        let request = pb::CampaignRequest {
            name: self.name.clone(),
            session_id: self.session.id,
            value: value.into(),
            timeout_ms: wait.timeout_ms(),
        };
        connection::within_limit(&request)?;
        let response = wait_for_grant(&self.connection, &self.session, wait, |c| {
            let request = request.clone();
            async move { connection::election(c).campaign(request).await.map(|r| r.into_inner()) }
        })
        .await?;
        let leader = leader_of(response.leader)?;
        let hold = self.session.track(&self.connection, &self.name, leader.token);
        Ok(Leadership { hold, leader })
    }

    /// Who leads this election now (read linearizably); `None` if nobody does.
    pub async fn leader(&self) -> Result<Option<Leader>, ClientError> {
        let client = Client { connection: Arc::clone(&self.connection) };
        client.election_leader(&self.name, Consistency::Linearizable).await
    }

    /// Every change of leader from now on (see [`Client::observe_election`]).
    pub async fn observe(&self) -> Result<LeaderObserver, ClientError> {
        let client = Client { connection: Arc::clone(&self.connection) };
        client.observe_election(&self.name, 0).await
    }
}

/// Resigns the leadership of `name` with `token`.
async fn resign(
    connection: &Connection,
    name: String,
    session_id: u64,
    token: u64,
) -> Result<(), ClientError> {
    let request = pb::ResignRequest { name, session_id, token };
    end_hold(connection, |c| {
        let request = request.clone();
        async move { connection::election(c).resign(request).await.map(|r| r.into_inner()) }
    })
    .await
}

impl Leadership {
    /// The fencing token of this leadership: pass it to what the leader writes to, which
    /// should refuse any token lower than the highest it has seen (or ask
    /// [`Client::check_sequencer`] with the election's path).
    pub fn token(&self) -> u64 {
        self.hold.token
    }

    /// The election's path.
    pub fn name(&self) -> &str {
        &self.hold.path
    }

    /// The leader as it was granted (the value it campaigned with; a later proclaim is not
    /// reflected here).
    pub fn leader(&self) -> &Leader {
        &self.leader
    }

    /// Whether the leadership is gone: its session ended, or the cluster reported it lost.
    pub fn is_lost(&self) -> bool {
        self.hold.is_lost()
    }

    /// Why the leadership is gone, if it is.
    pub fn lost_reason(&self) -> Option<String> {
        self.hold.lost_reason()
    }

    /// Resolves when the leadership is lost: resigned (by another guard of it), revoked by
    /// an operator, or gone with its session.
    pub async fn lost(&self) {
        self.hold.lost().await
    }

    /// Announces a new value as the leader (Observe and Leader show it). A leader that was
    /// deposed is refused: error kind `HoldEnded` (FAILED_PRECONDITION).
    pub async fn proclaim(&self, value: impl Into<Bytes>) -> Result<(), ClientError> {
        let request = pb::ProclaimRequest {
            name: self.hold.path.clone(),
            session_id: self.hold.session_id,
            token: self.hold.token,
            value: value.into(),
        };
        connection::within_limit(&request)?;
        self.hold
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { connection::election(c).proclaim(request).await.map(|r| r.into_inner()) }
            })
            .await
            .map(|_| ())
    }

    /// Resigns now (the next candidate leads); if another guard of the same leadership is
    /// alive, it stays until that one resigns. Fails with the error kind `HoldEnded` if the
    /// leadership had already ended (nothing is resigned then, not even a later
    /// leadership of the session).
    pub async fn resign(mut self) -> Result<(), ClientError> {
        if !self.hold.let_go() {
            return Ok(());
        }
        let hold = &self.hold;
        resign(&hold.connection, hold.path.clone(), hold.session_id, hold.token).await
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if !self.hold.let_go_on_drop() {
            return;
        }
        let (name, session, token) =
            (self.hold.path.clone(), self.hold.session_id, self.hold.token);
        crate::background::spawn("resign", &self.hold.connection, move |connection| async move {
            match resign(&connection, name, session, token).await {
                Ok(()) => {}
                Err(e) if e.kind() == Some(ErrorKind::HoldEnded) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "background resign failed; the leadership goes with the session");
                }
            }
        });
    }
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("name", &self.hold.path)
            .field("token", &self.hold.token)
            .finish()
    }
}

#[cfg(test)]
#[path = "election_test.rs"]
mod tests;
