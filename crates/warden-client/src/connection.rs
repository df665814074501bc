//! Which member to talk to: the endpoint list, the leader last seen, and the retry rules.
//!
//! A request goes to the member that last answered (the leader, usually). A member that is
//! not the leader answers UNAVAILABLE with the leader's address, which the client follows.
//! "Not the leader" is safe to follow for any request: openraft answers it before
//! proposing, or after the proposal was truncated from its log, which means it can never
//! commit.
//!
//! Every status a warden member makes carries `warden-error`; a status without it is the
//! transport's, whatever its code (an h2 GOAWAY reads as RESOURCE_EXHAUSTED, a body that
//! could not be read as UNKNOWN or INTERNAL). Such a failure is sorted by what it says
//! about the request ([`Failure`]): a member that could not be connected to is skipped, as
//! nothing was sent; a message over the size limit fails at once, as it would anywhere;
//! anything else may have happened after the request arrived, so it is retried only for
//! reads and writes with a request id, and a plain write's outcome is unknown.
//!
//! A call goes round the members until one serves it or its deadline (10 s by default)
//! passes. A member that answers but cannot serve (not the leader during an election, a
//! leader without a quorum, a member stopping) is worth asking again within that time; a
//! cluster none of whose members accepts a connection is not, so such a call fails after
//! about a second ([`UNREACHABLE_LIMIT`]). When a call fails, its error reports what the
//! last member that was reached said ("the leader cannot reach a quorum ...") before the
//! refusals of the others, which say less.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::{Instant, sleep};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use tracing::debug;
use warden_proto::v1::barrier_client::BarrierClient;
use warden_proto::v1::cluster_client::ClusterClient;
use warden_proto::v1::election_client::ElectionClient;
use warden_proto::v1::kv_client::KvClient;
use warden_proto::v1::lock_client::LockClient;
use warden_proto::v1::session_client::SessionClient;
use warden_proto::v1::watch_client::WatchClient;
use warden_proto::{
    COMPACT_REVISION_METADATA, ERROR_METADATA, ErrorKind, LEADER_METADATA, LIMIT_METADATA,
    MAX_CLIENT_MESSAGE_BYTES,
};

pub(crate) use crate::endpoint::endpoint;
use crate::error::ClientError;

/// How long one attempt of a call may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection to a member may take to open (a member that refuses it fails at
/// once; one that does not answer, a host down or a port filtered, takes this long).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a call keeps asking when no member accepts a connection at all. Retrying a
/// member that answered (not the leader, no quorum, stopping) is worth the whole deadline,
/// as an election or a restart ends within it; retrying members that refuse connections is
/// not: the endpoints are wrong or the cluster is down, and the caller should hear it now.
pub(crate) const UNREACHABLE_LIMIT: Duration = Duration::from_secs(1);

/// Whether a request may be sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// A read: retried on any member after any failure.
    Idempotent,
    /// A write: retried only when it surely was not applied.
    Once,
}

/// Endpoints and connections.
pub(crate) struct Connection {
    endpoints: Vec<String>,
    preferred: Mutex<Option<String>>,
    channels: Mutex<HashMap<String, Channel>>,
    deadline: Duration,
    /// The member last known to lead: a leader hint followed, or the member that served a
    /// plain write (only a leader does).
    leader: Mutex<Option<String>>,
    /// Watches started so far, to start each at the next member in turn.
    watches: AtomicUsize,
    /// TLS to the members; None: plain HTTP/2.
    tls: Option<ClientTlsConfig>,
}

/// The error kind a status carries (`warden-error`), None if it has none or one this
/// client does not know.
fn kind(status: &Status) -> Option<ErrorKind> {
    ErrorKind::parse(status.metadata().get(ERROR_METADATA)?.to_str().ok()?)
}

/// The error kind of a status, for the modules that sort answers themselves.
pub(crate) fn kind_of(status: &Status) -> Option<ErrorKind> {
    kind(status)
}

/// Whether a member made the status (it carries a `warden-error` kind, known or not), as
/// opposed to the transport.
fn has_kind(status: &Status) -> bool {
    status.metadata().contains_key(ERROR_METADATA)
}

impl Connection {
    pub(crate) fn new(
        endpoints: Vec<String>,
        deadline: Duration,
        tls: Option<ClientTlsConfig>,
    ) -> Result<Connection, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::InvalidEndpoint {
                endpoint: String::new(),
                reason: "no endpoint given; pass the members' client addresses, host:port each"
                    .into(),
            });
        }
        let endpoints =
            endpoints.iter().map(|e| endpoint(e, tls.is_some())).collect::<Result<Vec<_>, _>>()?;
        Ok(Connection {
            endpoints,
            preferred: Mutex::new(None),
            channels: Mutex::new(HashMap::new()),
            deadline,
            leader: Mutex::new(None),
            watches: AtomicUsize::new(0),
            tls,
        })
    }

    /// The same endpoints and deadline with connections of its own, for a watch: HTTP/2
    /// gives a connection's flow-control window back only as each stream is read, so a
    /// watch the application leaves unread would otherwise hold a share of it and, with a
    /// few more, stall every other call on the shared connection.
    pub(crate) fn apart(&self) -> Connection {
        Connection {
            endpoints: self.endpoints.clone(),
            preferred: Mutex::new(
                self.preferred.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            ),
            channels: Mutex::new(HashMap::new()),
            deadline: self.deadline,
            leader: Mutex::new(self.leader()),
            watches: AtomicUsize::new(0),
            tls: self.tls.clone(),
        }
    }

    /// A connection of its own (see [`Connection::apart`]) for a new watch, starting at
    /// the next member in turn other than the leader, if it is known and not the only
    /// member: a member pays for every watcher it serves, with each write, and the leader
    /// already carries every write; thousands of watchers on it slowed writes 25-fold.
    pub(crate) fn for_watch(&self) -> Connection {
        let leader = self.leader();
        let followers: Vec<&String> =
            self.endpoints.iter().filter(|e| leader.as_ref() != Some(*e)).collect();
        let pool = if followers.is_empty() { self.endpoints.iter().collect() } else { followers };
        let turn = self.watches.fetch_add(1, Ordering::Relaxed);
        let start = pool.get(turn % pool.len().max(1)).map(|e| (*e).clone());
        let connection = self.apart();
        connection.prefer(start);
        connection
    }

    /// The member last known to lead, if any.
    pub(crate) fn leader(&self) -> Option<String> {
        self.leader.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Notes that `addr` leads (`Some`), or that it does not.
    pub(crate) fn note_leader(&self, addr: &str, leads: bool) {
        let mut leader = self.leader.lock().unwrap_or_else(PoisonError::into_inner);
        if leads {
            *leader = Some(addr.to_owned());
        } else if leader.as_deref() == Some(addr) {
            *leader = None;
        }
    }

    /// The configured endpoints.
    pub(crate) fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// How long a call tries members.
    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    /// A connected channel to `addr`, reusing an open one.
    pub(crate) async fn channel(&self, addr: &str) -> Result<Channel, String> {
        if let Some(c) = self.channels.lock().unwrap_or_else(PoisonError::into_inner).get(addr) {
            return Ok(c.clone());
        }
        let endpoint = self.endpoint_to(addr)?;
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {addr}: {}", causes(&e)))?;
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Whether this client speaks TLS to the members.
    pub(crate) fn speaks_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An endpoint for the member at `addr` (`host:port`), over TLS if this client speaks it.
    pub(crate) fn endpoint_to(&self, addr: &str) -> Result<Endpoint, String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let endpoint =
            Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(|e| e.to_string())?;
        match &self.tls {
            Some(tls) => endpoint.tls_config(tls.clone()).map_err(|e| causes(&e)),
            None => Ok(endpoint),
        }
    }

    fn forget(&self, addr: &str) {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner).remove(addr);
    }

    fn prefer(&self, addr: Option<String>) {
        *self.preferred.lock().unwrap_or_else(PoisonError::into_inner) = addr;
    }

    /// Moves on from a failed member: the next call starts with the endpoint after it.
    fn prefer_after(&self, addr: &str) {
        let next = match self.endpoints.iter().position(|e| e == addr) {
            Some(i) => self.endpoints.get((i + 1) % self.endpoints.len()).cloned(),
            None => self.endpoints.first().cloned(),
        };
        self.prefer(next);
    }

    /// The order to try members in: the preferred one, then the list.
    fn candidates(&self) -> Vec<String> {
        let preferred = self.preferred.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let rest = self.endpoints.iter().filter(|e| preferred.as_ref() != Some(*e)).cloned();
        preferred.clone().into_iter().chain(rest).collect()
    }

    /// Runs `call` against members until one serves it, following leader hints. Each
    /// attempt may take up to 10 s.
    pub(crate) async fn run<T, F, Fut>(&self, retry: Retry, call: F) -> Result<T, ClientError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.run_within(retry, Some(ATTEMPT_TIMEOUT), call).await
    }

    /// As [`Connection::run`], with each attempt limited to `attempt` (`None`: as long as
    /// the server takes, for calls that wait on the server, such as a lock acquire, where
    /// giving up client-side would cancel the wait).
    ///
    /// Gives up after the connection's deadline, or after [`UNREACHABLE_LIMIT`] if no
    /// member could be connected to at all: members that refuse connections are not going
    /// to serve the call by being asked again for ten seconds.
    pub(crate) async fn run_within<T, F, Fut>(
        &self,
        retry: Retry,
        attempt: Option<Duration>,
        mut call: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let started = Instant::now();
        let mut tried = Tried::default();
        let mut round = 0u32;
        loop {
            let mut hinted: Option<String> = None;
            tried.unreachable.clear();
            for addr in self.candidates() {
                let channel = match self.channel(&addr).await {
                    Ok(c) => c,
                    Err(e) => {
                        tried.unreachable.push(e);
                        continue;
                    }
                };
                let outcome = match attempt {
                    Some(limit) => {
                        tokio::time::timeout(limit, call(channel)).await.unwrap_or_else(|_| {
                            Err(Status::cancelled(format!(
                                "no answer within {limit:?}: the member is overloaded, or is a leader that cannot reach a quorum (a write waits there, and may still be applied once it can)"
                            )))
                        })
                    }
                    None => call(channel).await,
                };
                let status = match outcome {
                    Ok(value) => {
                        if retry == Retry::Once {
                            // A plain write was served: only the leader commits one.
                            self.note_leader(&addr, true);
                        }
                        self.prefer(Some(addr));
                        return Ok(value);
                    }
                    Err(status) => status,
                };
                match (status.code(), kind(&status)) {
                    (
                        Code::Unavailable,
                        Some(ErrorKind::MemberStopped | ErrorKind::MemberRemoved),
                    ) => {
                        // Nothing was proposed (a removed member serves nothing): any
                        // request may go to the next member.
                        tried.answered(&addr, &status);
                        self.forget(&addr);
                    }
                    (Code::Unavailable, Some(ErrorKind::NoQuorum)) => {
                        // A leader without a quorum: nothing was proposed (or read), so
                        // any request may be asked again until the deadline.
                        tried.answered(&addr, &status);
                    }
                    (Code::Unavailable, Some(ErrorKind::NotLeader)) => {
                        tried.answered(&addr, &status);
                        self.note_leader(&addr, false);
                        let hint =
                            status.metadata().get(LEADER_METADATA).and_then(|v| v.to_str().ok());
                        if let Some(hint) = hint.filter(|h| !h.is_empty() && *h != addr) {
                            debug!(from = %addr, to = %hint, "following the leader");
                            self.note_leader(hint, true);
                            hinted = Some(hint.to_owned());
                            break;
                        }
                    }
                    (Code::Unavailable, _) if has_kind(&status) => {
                        // Only "not the leader" proves a write was not proposed; a member
                        // whose raft stopped may have replicated it first.
                        if retry == Retry::Once {
                            self.prefer_after(&addr);
                            return Err(ClientError::OutcomeUnknown {
                                endpoint: addr,
                                message: status.message().to_owned(),
                            });
                        }
                        tried.answered(&addr, &status);
                    }
                    _ if !has_kind(&status) => match failure(&status) {
                        Failure::TooLarge => return Err(too_large(&status)),
                        Failure::Refused => return Err(server_error(&status)),
                        Failure::NotSent => {
                            self.forget(&addr);
                            tried
                                .unreachable
                                .push(format!("cannot connect to {addr}: {}", status.message()));
                        }
                        Failure::MaybeSent => {
                            self.forget(&addr);
                            if retry == Retry::Once {
                                self.prefer_after(&addr);
                                return Err(ClientError::OutcomeUnknown {
                                    endpoint: addr,
                                    message: status.message().to_owned(),
                                });
                            }
                            debug!(member = %addr, error = %status, "transport failure; trying the next member");
                            tried.answered(&addr, &status);
                        }
                    },
                    _ => return Err(server_error(&status)),
                }
            }
            let elapsed = started.elapsed();
            if elapsed >= self.deadline || (!tried.reached && elapsed >= UNREACHABLE_LIMIT) {
                return Err(tried.error(&self.endpoints));
            }
            match hinted {
                Some(hint) => {
                    // A hint may point at a member that is not ready to serve yet (a new
                    // leader still applying its first entry, a leader that just died):
                    // after the first, follow hints with a short pause.
                    if round > 0 {
                        sleep(Duration::from_millis(u64::from(round.min(5)) * 20)).await;
                    }
                    round += 1;
                    self.prefer(Some(hint));
                }
                None => {
                    self.prefer(None);
                    round += 1;
                    sleep(Duration::from_millis(u64::from(round.min(5)) * 20)).await;
                }
            }
        }
    }
}

/// What the attempts of one call found, for its error if no member serves it.
#[derive(Default)]
struct Tried {
    /// What the last member that was reached said (or the transport, once the request was
    /// out): more telling than any failure to connect to the others.
    answer: Option<String>,
    /// The members of the last round that could not be connected to, and why.
    unreachable: Vec<String>,
    /// Whether any member was connected to during the call.
    reached: bool,
}

impl Tried {
    fn answered(&mut self, addr: &str, status: &Status) {
        self.reached = true;
        self.answer = Some(format!("{addr}: {}", described(status)));
    }

    fn error(&self, endpoints: &[String]) -> ClientError {
        let unreachable = self.unreachable.join("; ");
        let last = match (&self.answer, unreachable.is_empty()) {
            (Some(answer), true) => answer.clone(),
            (Some(answer), false) => format!("{answer} (and {unreachable})"),
            (None, _) => format!(
                "no member accepted a connection ({unreachable}); check that the members are running and that the endpoints are their client addresses"
            ),
        };
        ClientError::Unavailable { endpoints: endpoints.join(","), last }
    }
}

/// A refusal by the server as a client error.
pub(crate) fn server_error(status: &Status) -> ClientError {
    if kind(status) == Some(ErrorKind::Compacted) {
        let oldest = status
            .metadata()
            .get(COMPACT_REVISION_METADATA)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        return ClientError::Compacted { oldest, message: status.message().to_owned() };
    }
    if kind(status) == Some(ErrorKind::RequestTooLarge) {
        // A member's limits.max_request_bytes, below what this client sends at most.
        let limit = status
            .metadata()
            .get(LIMIT_METADATA)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(MAX_CLIENT_MESSAGE_BYTES);
        return ClientError::MessageTooLarge { limit, message: status.message().to_owned() };
    }
    ClientError::Server {
        code: status.code(),
        message: status.message().to_owned(),
        kind: kind(status),
    }
}

/// What a status without `warden-error` says about the request it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The request never left this process (no connection could be made): any member may
    /// be asked next.
    NotSent,
    /// A message over the size limit ([`MAX_CLIENT_MESSAGE_BYTES`]): refused before it was
    /// applied, and it would be refused by every member.
    TooLarge,
    /// UNIMPLEMENTED: the member's router does not know the call (an older member). A
    /// refusal, made before anything was applied.
    Refused,
    /// The request may have reached the member and been applied: the connection broke, the
    /// member sent a GOAWAY, no answer came in time.
    MaybeSent,
}

/// Sorts a status without `warden-error`, which the transport made, not a member.
pub(crate) fn failure(status: &Status) -> Failure {
    if is_too_large(status) {
        Failure::TooLarge
    } else if status.code() == Code::Unimplemented {
        Failure::Refused
    } else if never_connected(status) {
        Failure::NotSent
    } else {
        Failure::MaybeSent
    }
}

/// tonic's refusal of a message over the limit, on either side: "Error, encoded (or
/// decoded) message length too large: found N bytes, the limit is: M bytes".
pub(crate) fn is_too_large(status: &Status) -> bool {
    status.code() == Code::OutOfRange
        && !has_kind(status)
        && status.message().contains("message length too large")
}

/// The error for a message over the limit, with the limit that was hit.
pub(crate) fn too_large(status: &Status) -> ClientError {
    let limit = status
        .message()
        .rsplit_once("the limit is: ")
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(MAX_CLIENT_MESSAGE_BYTES);
    ClientError::MessageTooLarge { limit, message: status.message().to_owned() }
}

/// Refuses a request over the limit before it is sent. Left to tonic, the encoder's
/// refusal resets the stream after its headers went out, which reads as a broken
/// connection (an unknown outcome, for a write) rather than as what it is.
pub(crate) fn within_limit(request: &impl prost::Message) -> Result<(), ClientError> {
    let len = request.encoded_len();
    if len > MAX_CLIENT_MESSAGE_BYTES {
        return Err(ClientError::MessageTooLarge {
            limit: MAX_CLIENT_MESSAGE_BYTES,
            message: format!("the request is {len} bytes"),
        });
    }
    Ok(())
}

/// The generated clients, held to the client port's message limit (tonic's default is
/// 4 MiB to receive and no limit to send; a member refuses more than the limit).
pub(crate) fn kv(channel: Channel) -> KvClient<Channel> {
    KvClient::new(channel)
        .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
}

/// See [`kv`].
pub(crate) fn watch(channel: Channel) -> WatchClient<Channel> {
    WatchClient::new(channel)
        .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
}

/// See [`kv`].
pub(crate) fn session(channel: Channel) -> SessionClient<Channel> {
    SessionClient::new(channel)
        .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
}

/// See [`kv`].
pub(crate) fn lock(channel: Channel) -> LockClient<Channel> {
    LockClient::new(channel)
        .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
}

/// See [`kv`].
pub(crate) fn election(channel: Channel) -> ElectionClient<Channel> {
    ElectionClient::new(channel)
        .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
}

/// See [`kv`].
pub(crate) fn barrier(channel: Channel) -> BarrierClient<Channel> {
    BarrierClient::new(channel)
        .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
}

/// See [`kv`].
pub(crate) fn cluster(channel: Channel) -> ClusterClient<Channel> {
    ClusterClient::new(channel)
        .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
}

/// An error with its causes, which say more than tonic's "transport error" alone.
pub(crate) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A status's message with its causes: a TLS refusal (no client certificate, an unknown
/// CA) reaches the client as a bare "transport error" whose cause says which.
fn described(status: &Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether the call failed to connect, so the request never left this process.
fn never_connected(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        if error.to_string().contains("tcp connect error") {
            return true;
        }
        source = error.source();
    }
    status.message().contains("tcp connect error")
}

#[cfg(test)]
#[path = "connection_test.rs"]
mod tests;

/// See [`kv`]. A backup's chunks stay well inside the message limit.
pub(crate) fn maintenance(
    channel: Channel,
) -> warden_proto::v1::maintenance_client::MaintenanceClient<Channel> {
    warden_proto::v1::maintenance_client::MaintenanceClient::new(channel)
        .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
}
