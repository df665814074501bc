//! The raft transport, client side: openraft's RPCs sent to peers over gRPC.
//!
//! Messages are openraft's own types in bincode, wrapped in one protobuf `bytes` field.
//! Snapshots are sent whole as one client stream (`InstallSnapshot`), in 1 MiB chunks.
//! A [`Faults`] table lets tests cut links between members; a cut link fails like an
//! unreachable peer.
//!
//! AppendEntries, the message of every commit, go on one long-lived `AppendStream` per
//! follower: a request message answered by a reply message, without an HTTP/2 stream and
//! its headers set up per round (openraft 0.9 keeps one AppendEntries in flight per
//! follower, so replies cannot be mixed up). Any failure drops the stream and the next
//! round opens another; a peer that does not know the call gets unary `Append`s.

// openraft's RPC error types are large by design; the functions here return them as
// openraft's traits require.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, Snapshot, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use warden_proto::FROM_METADATA;
use warden_proto::raft::raft_client::RaftClient;
use warden_proto::raft::{RaftMessage, SnapshotChunk, snapshot_chunk};
use warden_storage::{NodeId, TypeConfig, WardenNode};

use crate::peer_health::PeerHealth;

/// The largest raft message accepted or sent (a batch of entries, a snapshot chunk).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// Links cut by a test: `(from, to)` pairs whose requests fail as unreachable.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    cut: Arc<RwLock<BTreeSet<(NodeId, NodeId)>>>,
}

impl Faults {
    /// Cuts both directions between `a` and `b`.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        let mut cut = self.cut.write().unwrap_or_else(PoisonError::into_inner);
        cut.insert((a, b));
        cut.insert((b, a));
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.write().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Whether requests from `from` to `to` are cut.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut.read().unwrap_or_else(PoisonError::into_inner).contains(&(from, to))
    }
}

/// Makes a [`PeerClient`] per target.
#[derive(Clone)]
pub struct Network {
    me: NodeId,
    faults: Faults,
    /// Addresses that replace the membership's for some peers.
    routes: std::collections::BTreeMap<NodeId, String>,
    /// What this member says about its peers' reachability (openraft asks for a new
    /// client per vote, so it is kept here, not in the client).
    health: Arc<PeerHealth>,
    /// Mutual TLS to peers (`tls.peer_ca`); None: plain HTTP/2.
    tls: Option<ClientTlsConfig>,
    /// Peers whose AppendEntries are held back during a leader transfer.
    hold: Arc<crate::leader_transfer::AppendHold>,
}

impl Network {
    /// The network of node `me`.
    pub fn new(me: NodeId, faults: Faults) -> Network {
        Network {
            me,
            faults,
            routes: std::collections::BTreeMap::new(),
            health: Arc::new(PeerHealth::default()),
            tls: None,
            hold: Arc::default(),
        }
    }

    /// The peers' reachability as this member's RPCs find it (shared with the clients it
    /// makes).
    pub(crate) fn health(&self) -> Arc<PeerHealth> {
        Arc::clone(&self.health)
    }

    /// The hold of AppendEntries a leader transfer puts on peers (shared with the clients
    /// it makes).
    pub(crate) fn hold(&self) -> Arc<crate::leader_transfer::AppendHold> {
        Arc::clone(&self.hold)
    }

    /// A raft client to `target` at `node`'s peer address (or its route), for the RPCs
    /// warden adds to openraft's (leader transfer, removal notices).
    pub(crate) fn dial(
        &self,
        target: NodeId,
        node: &WardenNode,
    ) -> Result<RaftClient<Channel>, String> {
        let addr = self.routes.get(&target).unwrap_or(&node.raft_addr);
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Endpoint::from_shared(format!("{scheme}://{addr}"))
            .and_then(|e| match &self.tls {
                Some(tls) => e.tls_config(tls.clone()),
                None => Ok(e),
            })
            .map(|e| {
                RaftClient::new(
                    e.connect_timeout(Duration::from_secs(1)).tcp_nodelay(true).connect_lazy(),
                )
            })
            .map_err(|e| format!("bad peer address {addr:?} of node {target}: {e}"))
    }

    /// Speaks mutual TLS to peers with `tls` (the members' CA and this member's identity).
    /// The name checked in a peer's certificate is the host of its address (a name or an
    /// IP), so members' certificates must carry their addresses as SANs.
    pub(crate) fn with_tls(mut self, tls: Option<ClientTlsConfig>) -> Network {
        self.tls = tls;
        self
    }

    /// Sends raft traffic for each `(peer, addr)` to `addr` instead of the peer's address.
    pub fn with_routes(mut self, routes: impl IntoIterator<Item = (NodeId, String)>) -> Network {
        self.routes.extend(routes);
        self
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &WardenNode) -> PeerClient {
        let addr = self.routes.get(&target).unwrap_or(&node.raft_addr);
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .and_then(|e| match &self.tls {
                Some(tls) => e.tls_config(tls.clone()),
                None => Ok(e),
            })
            .map(|e| {
                let channel =
                    e.connect_timeout(Duration::from_secs(1)).tcp_nodelay(true).connect_lazy();
                RaftClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES)
            })
            .map_err(|e| format!("bad peer address {addr:?} of node {target}: {e}"));
        PeerClient {
            me: self.me,
            target,
            addr: addr.clone(),
            client,
            faults: self.faults.clone(),
            health: Arc::clone(&self.health),
            hold: Arc::clone(&self.hold),
            stream: None,
            unary_only: false,
        }
    }
}

/// Sends raft RPCs to one peer.
pub struct PeerClient {
    me: NodeId,
    target: NodeId,
    addr: String,
    client: Result<RaftClient<Channel>, String>,
    faults: Faults,
    health: Arc<PeerHealth>,
    hold: Arc<crate::leader_transfer::AppendHold>,
    /// The open AppendStream to the peer, if any.
    stream: Option<AppendStream>,
    /// The peer answered AppendStream with UNIMPLEMENTED: unary Appends only.
    unary_only: bool,
}

/// One open `AppendStream`: requests go out on `requests`, their replies come back in
/// order on `replies`.
struct AppendStream {
    requests: mpsc::Sender<RaftMessage>,
    replies: Streaming<RaftMessage>,
}

fn any_error(message: String) -> AnyError {
    AnyError::error(message)
}

/// A transport failure as openraft sees it: refused or cut connections make openraft back
/// off (unreachable); other failures are retried at once (network).
fn transport_error<E: std::error::Error>(
    status: &tonic::Status,
) -> RPCError<NodeId, WardenNode, E> {
    let error = any_error(format!("{}: {}", status.code(), status.message()));
    match status.code() {
        tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&error)),
        _ => RPCError::Network(NetworkError::new(&error)),
    }
}

fn encode<T: Serialize, E: std::error::Error>(
    value: &T,
) -> Result<Vec<u8>, RPCError<NodeId, WardenNode, E>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| {
        RPCError::Network(NetworkError::new(&any_error(format!("encoding a raft message: {e}"))))
    })
}

fn decode<T: DeserializeOwned, E: std::error::Error>(
    bytes: &[u8],
) -> Result<T, RPCError<NodeId, WardenNode, E>> {
    warden_core::codec::decode_from_slice(bytes).map(|(v, _)| v).map_err(|e| {
        RPCError::Network(NetworkError::new(&any_error(format!("decoding a raft reply: {e}"))))
    })
}

impl PeerClient {
    fn ready<E: std::error::Error>(
        &self,
    ) -> Result<RaftClient<Channel>, RPCError<NodeId, WardenNode, E>> {
        if self.faults.is_cut(self.me, self.target) {
            let error = any_error(format!(
                "link {} -> {} is cut by a fault injection",
                self.me, self.target
            ));
            return Err(RPCError::Unreachable(Unreachable::new(&error)));
        }
        self.client.clone().map_err(|e| RPCError::Unreachable(Unreachable::new(&any_error(e))))
    }

    fn request<T>(&self, message: T, option: &RPCOption) -> tonic::Request<T> {
        let mut request = self.tagged(message);
        request.set_timeout(option.hard_ttl());
        request
    }

    /// A request saying which member sends it.
    fn tagged<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(from) = self.me.to_string().parse() {
            request.metadata_mut().insert(FROM_METADATA, from);
        }
        request
    }

    /// Sends one AppendEntries: on the open AppendStream (opening one if there is none)
    /// unless the peer does not know it, else as a unary Append.
    async fn send_append(
        &mut self,
        client: RaftClient<Channel>,
        payload: Bytes,
        option: &RPCOption,
    ) -> Result<RaftMessage, tonic::Status> {
        // A message too large for the stream is refused by the unary call, which tells
        // openraft to send fewer entries.
        if !self.unary_only && payload.len() < MAX_MESSAGE_BYTES - 1024 {
            match self.streamed(client.clone(), payload.clone(), option).await {
                Err(s) if s.code() == tonic::Code::Unimplemented => {
                    tracing::info!(
                        peer = self.target,
                        "the peer does not know AppendStream (an older warden); using unary appends"
                    );
                    self.unary_only = true;
                }
                other => return other,
            }
        }
        let mut client = client;
        client.append(self.request(RaftMessage { payload }, option)).await.map(|r| r.into_inner())
    }

    /// One request and its reply on the AppendStream, within the RPC's deadline. The
    /// stream is kept only when the exchange succeeded.
    async fn streamed(
        &mut self,
        mut client: RaftClient<Channel>,
        payload: Bytes,
        option: &RPCOption,
    ) -> Result<RaftMessage, tonic::Status> {
        let ttl = option.hard_ttl();
        let late = || tonic::Status::deadline_exceeded(format!("no answer within {ttl:?}"));
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => {
                let (requests, queued) = mpsc::channel(1);
                let open = client.append_stream(self.tagged(ReceiverStream::new(queued)));
                let replies =
                    tokio::time::timeout(ttl, open).await.map_err(|_| late())??.into_inner();
                AppendStream { requests, replies }
            }
        };
        let target = self.target;
        let exchange = async {
            let gone = || {
                tonic::Status::unavailable(format!("the append stream to member {target} closed"))
            };
            stream.requests.send(RaftMessage { payload }).await.map_err(|_| gone())?;
            stream.replies.message().await?.ok_or_else(gone)
        };
        let reply = tokio::time::timeout(ttl, exchange).await.unwrap_or_else(|_| Err(late()));
        if reply.is_ok() {
            self.stream = Some(stream);
        }
        reply
    }

    /// Sends one unary RPC with `call` and decodes its reply (see [`PeerClient::outcome`]).
    async fn unary<Req, R, E, F, Fut>(
        &mut self,
        rpc: &Req,
        option: &RPCOption,
        call: F,
    ) -> Result<R, RPCError<NodeId, WardenNode, E>>
    where
        Req: Serialize,
        R: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: FnOnce(RaftClient<Channel>, tonic::Request<RaftMessage>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftMessage>, tonic::Status>>,
    {
        let client = self.ready()?;
        let payload = encode(rpc)?;
        let reply =
            call(client, self.request(RaftMessage { payload: payload.into() }, option)).await;
        self.outcome(reply.map(tonic::Response::into_inner), 0)
    }

    /// Decodes the `Result<R, E>` in a peer's reply, noting whether the peer was reached.
    /// A message of `entries` entries refused as too large asks openraft to send half as
    /// many.
    fn outcome<R, E>(
        &self,
        reply: Result<RaftMessage, tonic::Status>,
        entries: usize,
    ) -> Result<R, RPCError<NodeId, WardenNode, E>>
    where
        R: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if let Err(s) = &reply
            && s.code() == tonic::Code::Unavailable
        {
            self.health.unreachable(self.target, &self.addr, s.message());
        }
        let reply = reply.map_err(|s| match s.code() {
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted if entries > 1 => {
                RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint((entries / 2) as u64))
            }
            _ => transport_error(&s),
        })?;
        let result: Result<R, E> = decode(&reply.payload)?;
        // Only its raft's answer counts as reached: a member shutting down may still hold
        // connections whose server answers with its raft's fatal error.
        match &result {
            Ok(_) => self.health.reached(self.target),
            Err(e) => self.health.unreachable(self.target, &self.addr, &e.to_string()),
        }
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, WardenNode, RaftError<NodeId>>>
    {
        if self.hold.holds(self.target) {
            let error =
                any_error(format!("appends to {} are held for a leader transfer", self.target));
            return Err(RPCError::Unreachable(Unreachable::new(&error)));
        }
        let client = self.ready()?;
        let payload: Bytes = encode(&rpc)?.into();
        let reply = self.send_append(client, payload, &option).await;
        let answer = self.outcome(reply, rpc.entries.len());
        if matches!(answer, Err(RPCError::RemoteError(_))) {
            // The peer's raft has stopped (it is shutting down): a new stream reaches the
            // member that takes its place.
            self.stream = None;
        }
        answer
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, WardenNode, RaftError<NodeId>>> {
        self.unary(&rpc, &option, |mut c, r| async move { c.vote(r).await }).await
    }

    /// Not used: warden overrides [`RaftNetwork::full_snapshot`] to stream whole snapshots,
    /// and openraft calls this chunk-at-a-time method only from the default `full_snapshot`.
    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, WardenNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let error = any_error(
            "warden streams whole snapshots with full_snapshot; chunked install is not used".into(),
        );
        Err(RPCError::Network(NetworkError::new(&error)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let mut client = self.ready::<Fatal<NodeId>>().map_err(streaming_error)?;
        let header =
            encode::<_, Fatal<NodeId>>(&(vote, &snapshot.meta)).map_err(streaming_error)?;
        let data = snapshot.snapshot.into_inner();
        let mut chunks =
            vec![SnapshotChunk { chunk: Some(snapshot_chunk::Chunk::Header(header.into())) }];
        chunks.extend(data.chunks(SNAPSHOT_CHUNK_BYTES).map(|c| SnapshotChunk {
            chunk: Some(snapshot_chunk::Chunk::Data(bytes::Bytes::copy_from_slice(c))),
        }));
        let mut request = self.request(tokio_stream::iter(chunks), &option);
        // A snapshot may take longer than one RPC's ttl; it is bounded by `cancel` instead.
        request.set_timeout(Duration::from_secs(600));
        let reply = tokio::select! {
            reply = client.install_snapshot(request) => reply,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        let reply = reply.map_err(|s| streaming_error(transport_error::<Fatal<NodeId>>(&s)))?;
        let result: Result<SnapshotResponse<NodeId>, Fatal<NodeId>> =
            decode::<_, Fatal<NodeId>>(&reply.into_inner().payload).map_err(streaming_error)?;
        result.map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn streaming_error(
    e: RPCError<NodeId, WardenNode, Fatal<NodeId>>,
) -> StreamingError<TypeConfig, Fatal<NodeId>> {
    match e {
        RPCError::Timeout(t) => StreamingError::Timeout(t),
        RPCError::Unreachable(u) => StreamingError::Unreachable(u),
        RPCError::PayloadTooLarge(p) => StreamingError::Network(NetworkError::new(&p)),
        RPCError::Network(n) => StreamingError::Network(n),
        RPCError::RemoteError(r) => StreamingError::RemoteError(r),
    }
}

#[cfg(test)]
#[path = "network_test.rs"]
mod tests;
