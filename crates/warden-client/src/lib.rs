//! # warden-client
//!
//! An async client for warden: give it the members' client addresses; it finds the leader,
//! follows redirects, retries reads on another member when one fails, keeps sessions alive
//! in the background, resumes watches on another member without missing or repeating a
//! revision, holds locks, read-write locks and semaphores with fencing tokens, campaigns
//! in elections ([`Election`]: the leader's token fences its writes), waits at barriers
//! ([`Barrier`], [`DoubleBarrier`]) and locks the ids of resource kinds whose versions
//! rotate ([`Resource`]).
//!
//! It is enough on its own: every type its calls take or return is its own or re-exported
//! here (the core's node and transaction types, `Bytes`, tonic's `Code`, and in [`proto`]
//! the few wire messages returned as they are).
//!
//! It speaks TLS to the members with [`Client::with_tls`] (the members' CA, and a client
//! certificate when the cluster asks for one). It does not retry a write whose outcome it
//! cannot know ([`ClientError::OutcomeUnknown`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), warden_client::ClientError> {
//! use std::time::Duration;
//!
//! use warden_client::{Client, CreateMode, Scope, SessionState};
//!
//! let client = Client::new(vec!["127.0.0.1:7400".into(), "127.0.0.1:7410".into()])?;
//!
//! // A session: its ephemeral node lives as long as this process keeps it alive.
//! let session = client.open_session(Duration::from_secs(10)).await?;
//! client.create("/members", "", CreateMode::PERSISTENT).await?;
//! client.create_in(&session, "/members/worker-1", "10.0.0.7", CreateMode::EPHEMERAL).await?;
//!
//! // A watch of the subtree from now on; it survives the failure of a member.
//! let mut members = client.watch("/members", Scope::Prefix, 0, false).await?;
//! tokio::select! {
//!     batch = members.next() => {
//!         for event in batch?.events {
//!             println!("{} {:?} {}", event.revision, event.kind, event.path);
//!         }
//!     }
//!     () = session.lost() => eprintln!("session lost: stop acting as worker-1"),
//! }
//! assert_ne!(session.state(), SessionState::Lost);
//! session.close().await?;
//! # Ok(()) }
//! ```

mod background;
mod barrier;
mod connection;
mod election;
mod endpoint;
mod error;
mod hold;
mod lock;
mod lock_status;
mod maintenance;
mod membership;
mod observe;
mod resource;
mod resume;
mod session;
#[cfg(test)]
mod test_support;
mod tls;
mod txn;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use warden_proto::convert::kv;
use warden_proto::v1 as pb;

pub use crate::barrier::{
    Barrier, BarrierKind, BarrierMember, BarrierRemoved, BarrierStatus, DoubleBarrier,
    DoubleBarrierGuard,
};
use crate::connection::{Connection, Retry};
pub use crate::election::{Election, Leader, LeaderChange, LeaderObserver, Leadership};
pub use crate::error::ClientError;
pub use crate::lock::{DistributedLock, Lock, LockConfig, LockError, LockGuard};
pub use crate::lock_status::{LockEntry, LockStatus};
pub use crate::maintenance::{SnapshotDownload, SnapshotPart};
pub use crate::resource::{
    Resource, ResourceGuard, ResourceHolder, ResourceInit, ResourceKind, ResourceStatus, Rotation,
};
pub use crate::session::{Session, SessionState};
pub use crate::tls::TlsFiles;
pub use crate::txn::{TxnOpResult, TxnResult};
pub use crate::watch::{Scope, WatchBatch, Watcher};
// The types of the API that are not the client's own: a program needs no other warden
// crate, nor `bytes` or `tonic`, to call it.
pub use bytes::Bytes;
pub use tonic::Code;
pub use warden_core::lock_stats::{Histogram, LockStats, LockStatsEntry, LockStatsReport};
pub use warden_core::queue::{LockKind, Scope as LockScope, WaitMode};
pub use warden_core::{
    Check, Compare, CompareOp, CreateMode, Event, EventKind, NodeKind, Stat, TxnOp,
};
pub use warden_proto::ErrorKind;

/// The wire types that some calls return as they are ([`Client::status`],
/// [`Client::member_status`], [`Client::sessions`]): the generated protobuf messages.
pub mod proto {
    pub use warden_proto::v1::{
        HealthResponse, Member, MemberAddResponse, MemberListResponse, ResponseHeader, SessionInfo,
        SnapshotHeader, StatusResponse,
    };
}

/// The README's Rust examples, compiled with the doctests so that they keep up with the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;

/// A node's value and metadata, and the revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeData {
    /// The value.
    pub data: Bytes,
    /// The metadata.
    pub stat: Stat,
    /// The revision the read reflects.
    pub revision: u64,
}

/// One page of a listing ([`Client::children_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildrenPage {
    /// Names and stats, sorted by name.
    pub children: Vec<(String, Stat)>,
    /// More children follow the last one.
    pub more: bool,
    /// The revision the page was read at.
    pub revision: u64,
}

/// What a delete did ([`Client::delete_revoking_locks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Nodes deleted.
    pub deleted: u64,
    /// Lock holds and waits revoked.
    pub revoked: u64,
    /// Locks kept until their lock-delay ends (with the nodes above them, as containers).
    pub kept: u64,
}

/// How a read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Confirmed with a quorum by the leader: sees every write acknowledged before it.
    #[default]
    Linearizable,
    /// From the replica of whichever member answers: fast, possibly stale.
    Serializable,
}

/// A cluster client. Cheap to share behind an `Arc`; calls may run concurrently.
pub struct Client {
    connection: Arc<Connection>,
}

fn revision(header: Option<&pb::ResponseHeader>) -> u64 {
    header.map(|h| h.revision).unwrap_or(0)
}

impl Client {
    /// A client of the members at `endpoints` (`host:port` each; `http://host:port` is the
    /// same, `https://` is refused: see [`Client::with_tls`]). Connects lazily; each call
    /// tries members for up to 10 s, or about 1 s if none accepts a connection.
    pub fn new(endpoints: Vec<String>) -> Result<Client, ClientError> {
        Client::with_deadline(endpoints, Duration::from_secs(10))
    }

    /// As [`Client::new`], trying members for up to `deadline` per call.
    pub fn with_deadline(
        endpoints: Vec<String>,
        deadline: Duration,
    ) -> Result<Client, ClientError> {
        Ok(Client { connection: Arc::new(Connection::new(endpoints, deadline, None)?) })
    }

    /// As [`Client::new`], over TLS: `tls` names the CA that signed the members'
    /// certificates and, for a cluster that asks clients for one, this client's certificate
    /// and key. Endpoints are `host:port` or `https://host:port`; the name checked in a
    /// member's certificate is the host. The files are read now: a missing or unusable one
    /// is a [`ClientError::Tls`] naming it.
    pub fn with_tls(endpoints: Vec<String>, tls: &TlsFiles) -> Result<Client, ClientError> {
        Client::with_tls_deadline(endpoints, tls, Duration::from_secs(10))
    }

    /// As [`Client::with_tls`], trying members for up to `deadline` per call.
    pub fn with_tls_deadline(
        endpoints: Vec<String>,
        tls: &TlsFiles,
        deadline: Duration,
    ) -> Result<Client, ClientError> {
        let tls = tls.load()?;
        let connection = Connection::new(endpoints, deadline, Some(tls))?;
        Ok(Client { connection: Arc::new(connection) })
    }

    /// A tonic endpoint for the member whose client address is `addr` (`host:port`), with
    /// this client's TLS settings: for calls this client has no method for.
    pub fn endpoint_to(&self, addr: &str) -> Result<tonic::transport::Endpoint, ClientError> {
        self.connection
            .endpoint_to(addr)
            .map_err(|reason| ClientError::InvalidEndpoint { endpoint: addr.to_owned(), reason })
    }

    /// Reads a node, linearizably.
    pub async fn get(&self, path: &str) -> Result<NodeData, ClientError> {
        self.get_with(path, Consistency::Linearizable).await
    }

    /// Reads a node with the given consistency.
    pub async fn get_with(
        &self,
        path: &str,
        consistency: Consistency,
    ) -> Result<NodeData, ClientError> {
        let request = pb::GetRequest {
            path: path.to_owned(),
            serializable: consistency == Consistency::Serializable,
        };
        let r = self
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { connection::kv(c).get(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(NodeData {
            data: r.data,
            stat: kv::core_stat(r.stat),
            revision: revision(r.header.as_ref()),
        })
    }

    /// The children of a node: names and stats, sorted by name, read page by page (see
    /// [`Client::children_page`]), so a directory of any size can be listed.
    pub async fn children(
        &self,
        path: &str,
        consistency: Consistency,
    ) -> Result<Vec<(String, Stat)>, ClientError> {
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.children_page(path, consistency, &after, 0).await?;
            all.extend(page.children);
            match all.last() {
                Some((last, _)) if page.more => after.clone_from(last),
                _ => return Ok(all),
            }
        }
    }

    /// One page of a node's children: those whose names sort after `start_after` ("" for
    /// the first), at most `limit` of them (0: as many as the member sends at once, which
    /// stays well inside the message limit). Each page is read at its own revision.
    pub async fn children_page(
        &self,
        path: &str,
        consistency: Consistency,
        start_after: &str,
        limit: u32,
    ) -> Result<ChildrenPage, ClientError> {
        let request = pb::ChildrenRequest {
            path: path.to_owned(),
            serializable: consistency == Consistency::Serializable,
            limit,
            start_after: start_after.to_owned(),
        };
        let r = self
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { connection::kv(c).children(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(ChildrenPage {
            children: r.children.into_iter().map(|c| (c.name, kv::core_stat(c.stat))).collect(),
            more: r.more,
            revision: revision(r.header.as_ref()),
        })
    }

    /// Creates a node; returns its path (with the counter, if sequential) and stat.
    pub async fn create(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        mode: CreateMode,
    ) -> Result<(String, Stat), ClientError> {
        self.create_with(None, path, data.into(), mode).await
    }

    /// A write with a request id may be sent again; one without may not.
    pub(crate) fn retry(origin: Option<&pb::Origin>) -> Retry {
        match origin {
            Some(pb::Origin { request_id: Some(_), .. }) => Retry::Idempotent,
            _ => Retry::Once,
        }
    }

    async fn create_with(
        &self,
        origin: Option<pb::Origin>,
        path: &str,
        data: Bytes,
        mode: CreateMode,
    ) -> Result<(String, Stat), ClientError> {
        let request = kv::create_request(path.to_owned(), data, mode, origin)
            .map_err(ClientError::unsendable)?;
        connection::within_limit(&request)?;
        let r = self
            .connection
            .run(Self::retry(request.origin.as_ref()), |c| {
                let request = request.clone();
                async move { connection::kv(c).create(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok((r.path, kv::core_stat(r.stat)))
    }

    /// Sets a node's value, if it is at `expected_version` (when given).
    pub async fn set(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        expected_version: Option<u64>,
    ) -> Result<Stat, ClientError> {
        self.set_with(None, path, data.into(), expected_version).await
    }

    async fn set_with(
        &self,
        origin: Option<pb::Origin>,
        path: &str,
        data: Bytes,
        expected_version: Option<u64>,
    ) -> Result<Stat, ClientError> {
        let request = pb::SetRequest { path: path.to_owned(), data, expected_version, origin };
        connection::within_limit(&request)?;
        let r = self
            .connection
            .run(Self::retry(request.origin.as_ref()), |c| {
                let request = request.clone();
                async move { connection::kv(c).set(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(kv::core_stat(r.stat))
    }

    /// Creates a persistent node, or sets it if it exists.
    pub async fn put(&self, path: &str, data: impl Into<Bytes>) -> Result<Stat, ClientError> {
        let data = data.into();
        loop {
            match self.set(path, data.clone(), None).await {
                Err(e) if e.code() == Some(Code::NotFound) => {}
                other => return other,
            }
            match self.create(path, data.clone(), CreateMode::PERSISTENT).await {
                Err(e) if e.code() == Some(Code::AlreadyExists) => {}
                other => return other.map(|(_, s)| s),
            }
        }
    }

    /// Deletes a node (and its descendants if `recursive`); returns how many nodes went.
    pub async fn delete(
        &self,
        path: &str,
        expected_version: Option<u64>,
        recursive: bool,
    ) -> Result<u64, ClientError> {
        self.delete_with(None, path, expected_version, recursive).await
    }

    /// Deletes a node (and its descendants if `recursive`), revoking the holds and waits
    /// of the locks the delete reaches instead of being refused: holders are told on their
    /// session stream and the lock-delay applies (a lock under its lock-delay is kept until
    /// the delay ends). A plain [`Client::delete`] never ends a lock: it fails with the
    /// error kind `LockInUse` naming the lock.
    pub async fn delete_revoking_locks(
        &self,
        path: &str,
        expected_version: Option<u64>,
        recursive: bool,
    ) -> Result<Deleted, ClientError> {
        let request = pb::DeleteRequest {
            path: path.to_owned(),
            expected_version,
            recursive,
            origin: None,
            revoke_locks: true,
        };
        self.delete_request(request).await
    }

    async fn delete_with(
        &self,
        origin: Option<pb::Origin>,
        path: &str,
        expected_version: Option<u64>,
        recursive: bool,
    ) -> Result<u64, ClientError> {
        let request = pb::DeleteRequest {
            path: path.to_owned(),
            expected_version,
            recursive,
            origin,
            revoke_locks: false,
        };
        Ok(self.delete_request(request).await?.deleted)
    }

    async fn delete_request(&self, request: pb::DeleteRequest) -> Result<Deleted, ClientError> {
        let r = self
            .connection
            .run(Self::retry(request.origin.as_ref()), |c| {
                let request = request.clone();
                async move { connection::kv(c).delete(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(Deleted { deleted: r.deleted, revoked: r.revoked, kept: r.kept })
    }

    /// Opens a session with the given ttl and keeps it alive in the background.
    pub async fn open_session(&self, ttl: Duration) -> Result<Session, ClientError> {
        Session::open(Arc::clone(&self.connection), ttl).await
    }

    /// Creates a node in `session` (required for an ephemeral node, which the session
    /// owns). The write carries a request id, so it is retried on any failure and still
    /// applied exactly once.
    pub async fn create_in(
        &self,
        session: &Session,
        path: &str,
        data: impl Into<Bytes>,
        mode: CreateMode,
    ) -> Result<(String, Stat), ClientError> {
        let origin = session.begin();
        let result = self.create_with(Some(origin), path, data.into(), mode).await;
        session.finish(origin.request_id.map(|r| r.seq).unwrap_or(0));
        result
    }

    /// Sets a node's value in `session`, exactly once (see [`Client::create_in`]).
    pub async fn set_in(
        &self,
        session: &Session,
        path: &str,
        data: impl Into<Bytes>,
        expected_version: Option<u64>,
    ) -> Result<Stat, ClientError> {
        let origin = session.begin();
        let result = self.set_with(Some(origin), path, data.into(), expected_version).await;
        session.finish(origin.request_id.map(|r| r.seq).unwrap_or(0));
        result
    }

    /// Deletes a node in `session`, exactly once (see [`Client::create_in`]).
    pub async fn delete_in(
        &self,
        session: &Session,
        path: &str,
        expected_version: Option<u64>,
        recursive: bool,
    ) -> Result<u64, ClientError> {
        let origin = session.begin();
        let result = self.delete_with(Some(origin), path, expected_version, recursive).await;
        session.finish(origin.request_id.map(|r| r.seq).unwrap_or(0));
        result
    }

    /// An exclusive lock at `path`, held by `session`.
    pub fn mutex(&self, session: &Session, path: &str) -> Lock {
        Lock::new(
            Arc::clone(&self.connection),
            session,
            lock::request(path, pb::LockType::Mutex, false, 0, 1),
        )
    }

    /// The read (shared) side of a read-write lock at `path`.
    pub fn read_lock(&self, session: &Session, path: &str) -> Lock {
        Lock::new(
            Arc::clone(&self.connection),
            session,
            lock::request(path, pb::LockType::Rwlock, true, 0, 1),
        )
    }

    /// The write (exclusive) side of a read-write lock at `path`.
    pub fn write_lock(&self, session: &Session, path: &str) -> Lock {
        Lock::new(
            Arc::clone(&self.connection),
            session,
            lock::request(path, pb::LockType::Rwlock, false, 0, 1),
        )
    }

    /// `weight` permits of a semaphore of `permits` at `path`.
    pub fn semaphore(&self, session: &Session, path: &str, permits: u32, weight: u32) -> Lock {
        let request = lock::request(path, pb::LockType::Semaphore, false, permits, weight);
        Lock::new(Arc::clone(&self.connection), session, request)
    }

    /// A mutex at `path` with a session of its own (ttl from `config`) and the retry
    /// settings of [`Lock::acquire_retrying`]. Keep the session: the lock goes with it.
    pub async fn lock_with(
        &self,
        path: &str,
        config: LockConfig,
    ) -> Result<(Session, Lock), ClientError> {
        let session = self.open_session(config.ttl).await?;
        let lock =
            self.mutex(&session, path).with_retries(config.retry_interval, config.max_retries);
        Ok((session, lock))
    }

    /// Takes session `session_id` out of the lock at `path` (an operator breaking a stuck
    /// hold); returns whether it held. A revoked holder's lock-delay applies, and its
    /// session is told on its keepalive stream.
    pub async fn revoke_lock(&self, path: &str, session_id: u64) -> Result<bool, ClientError> {
        let request = pb::RevokeRequest { path: path.to_owned(), session_id };
        let response = self
            .connection
            .run(Retry::Once, |c| {
                let request = request.clone();
                async move { connection::lock(c).revoke(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(response.held)
    }

    /// The sessions the leader tracks (or one, by id), with remaining time and ephemerals.
    pub async fn sessions(&self, id: u64) -> Result<Vec<pb::SessionInfo>, ClientError> {
        let response = self
            .connection
            .run(Retry::Idempotent, |c| async move {
                connection::session(c)
                    .info(pb::SessionInfoRequest { session_id: id })
                    .await
                    .map(|r| r.into_inner())
            })
            .await?;
        Ok(response.sessions)
    }

    /// Watches `path` (with `scope`) from revision `start` (0: from the next revision),
    /// with progress notices if `progress`. The watcher resumes on another member after a
    /// failure without missing or repeating a revision.
    ///
    /// The watch is registered on a member before this returns, and its start is fixed
    /// then: a watch from now delivers every write made after `watch` returns, however
    /// late the first [`Watcher::next`]. Bad input (a malformed glob) and a start no longer
    /// in any member's history ([`ClientError::Compacted`]) fail here.
    ///
    /// Watches are spread over the members: each starts at the next one in turn, skipping
    /// the leader when the client knows it (from its writes and redirects, or by asking
    /// once, at its first watch), as every member pays for each of its watchers on every
    /// write, and the leader already carries the writes. Each has a connection of its own,
    /// so that one left unread cannot stall the client's other calls.
    pub async fn watch(
        &self,
        path: &str,
        scope: Scope,
        start: u64,
        progress: bool,
    ) -> Result<Watcher, ClientError> {
        if self.connection.leader().is_none() && self.connection.endpoints().len() > 1 {
            self.learn_leader().await?;
        }
        let connection = Arc::new(self.connection.for_watch());
        Watcher::open(connection, path, scope, start, progress).await
    }

    /// Asks a member which member leads, to keep watches off it. A cluster that cannot be
    /// reached fails the watch here; a cluster without a leader for now is fine.
    async fn learn_leader(&self) -> Result<(), ClientError> {
        match self.status().await {
            Ok(status) => {
                let leader = status.members.iter().find(|m| m.id == status.leader_id);
                if let Some(leader) = leader {
                    self.connection.note_leader(&leader.client_addr, true);
                }
                Ok(())
            }
            Err(e @ ClientError::Unavailable { .. }) => Err(e),
            Err(_) => Ok(()),
        }
    }

    /// A channel to the member at `endpoint` alone: a call on it is not redirected.
    pub(crate) async fn direct_channel(
        &self,
        endpoint: &str,
    ) -> Result<tonic::transport::Channel, ClientError> {
        let endpoint = connection::endpoint(endpoint, self.connection.speaks_tls())?;
        self.connection
            .channel(&endpoint)
            .await
            .map_err(|last| ClientError::Unavailable { endpoints: endpoint.to_owned(), last })
    }

    /// The status of one member, asked directly (no redirect).
    pub async fn member_status(&self, endpoint: &str) -> Result<pb::StatusResponse, ClientError> {
        let channel = self.direct_channel(endpoint).await?;
        connection::cluster(channel)
            .status(pb::StatusRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(|s| connection::server_error(&s))
    }

    /// The status as seen by whichever member answers first.
    pub async fn status(&self) -> Result<pb::StatusResponse, ClientError> {
        self.connection
            .run(Retry::Idempotent, |c| async move {
                connection::cluster(c).status(pb::StatusRequest {}).await.map(|r| r.into_inner())
            })
            .await
    }

    /// The identity the cluster knows this client by: what its client certificate names
    /// (its first SAN URI, else its first SAN DNS name, else its CN), as recorded in the
    /// sessions it opens. Empty without a client certificate (anonymous).
    pub async fn whoami(&self) -> Result<String, ClientError> {
        self.connection
            .run(Retry::Idempotent, |c| async move {
                connection::cluster(c).who_am_i(pb::WhoAmIRequest {}).await.map(|r| r.into_inner())
            })
            .await
            .map(|r| r.identity)
    }

    /// Puts an access policy (the text of an ACL file) in force on every member; returns
    /// how many rules it has. A bad file is refused (INVALID_ARGUMENT, naming its line) and
    /// the policy in force stays; so is a policy that would take `admin` on `/` from the
    /// caller. Needs `admin`. Applying the same text twice is harmless, so it is retried.
    pub async fn apply_acl(&self, text: &str) -> Result<u64, ClientError> {
        let request = pb::ApplyAclRequest { text: text.to_owned() };
        connection::within_limit(&request)?;
        self.connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { connection::cluster(c).apply_acl(request).await.map(|r| r.into_inner()) }
            })
            .await
            .map(|r| r.rules)
    }

    /// The access policy in force (`enabled` false while none was ever applied: ACLs are
    /// off). Needs `admin`.
    pub async fn acl(&self) -> Result<pb::GetAclResponse, ClientError> {
        self.connection
            .run(Retry::Idempotent, |c| async move {
                connection::cluster(c).get_acl(pb::GetAclRequest {}).await.map(|r| r.into_inner())
            })
            .await
    }
}
