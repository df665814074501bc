//! The raft transport, server side: hands peers' RPCs to the local openraft node.
//!
//! AppendEntries come as unary `Append` calls or, from a leader that can, on one
//! long-lived `AppendStream` whose replies go back in order: the requests of one stream
//! are served one after the other, as openraft sends them (one in flight per follower).

use std::collections::BTreeSet;
use std::io::Cursor;
use std::pin::Pin;
use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::{Raft, Snapshot, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::warn;
use warden_proto::raft::raft_server::Raft as RaftRpc;
use warden_proto::raft::{RaftMessage, SnapshotChunk, snapshot_chunk};
use warden_storage::{NodeId, SnapshotMeta, TypeConfig};

use crate::health::LeaderCommit;
use crate::identity::identity;
use crate::network::Faults;
use warden_proto::FROM_METADATA;

/// Serves openraft's RPCs to peers.
pub(crate) struct RaftService {
    me: NodeId,
    raft: Raft<TypeConfig>,
    faults: Faults,
    /// With peer TLS: the identities a peer's certificate may name (the members').
    members: Option<BTreeSet<String>>,
    /// The leader's commit index, from the AppendEntries this member accepts (for
    /// `/health`: how far behind the leader this member is).
    leader_commit: Arc<LeaderCommit>,
    /// Set when the leader says this member was removed.
    removal: crate::removal::Removal,
}

impl RaftService {
    /// The service of node `me`.
    pub(crate) fn new(
        me: NodeId,
        raft: Raft<TypeConfig>,
        faults: Faults,
        members: Option<BTreeSet<String>>,
        leader_commit: Arc<LeaderCommit>,
        removal: crate::removal::Removal,
    ) -> RaftService {
        RaftService { me, raft, faults, members, leader_commit, removal }
    }

    /// With peer TLS, refuses a caller whose certificate names no member: the CA may sign
    /// clients too, and only members may append, vote or install snapshots.
    fn check_member<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(members) = &self.members else { return Ok(()) };
        let certs = request.peer_certs();
        let Some(cert) = certs.as_deref().and_then(|c| c.first()) else {
            return Err(Status::permission_denied(
                "raft RPCs need a member's client certificate; none was presented",
            ));
        };
        let who = identity(cert).map_err(|e| Status::permission_denied(e.to_string()))?;
        if members.contains(&who) {
            return Ok(());
        }
        warn!(identity = %who, "raft RPC refused: the caller's certificate names no member");
        Err(Status::permission_denied(format!(
            "{who:?} is not a member of this cluster; raft RPCs are for members only (initial_members[].identity)"
        )))
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.check_member(request)?;
        self.check_link(request)
    }

    /// Refuses requests over a link cut by a test, as an unreachable peer would.
    fn check_link<T>(&self, request: &Request<T>) -> Result<(), Status> {
        link_open(&self.faults, sender(request), self.me)
    }
}

/// The member that sent `request`, as it says.
fn sender<T>(request: &Request<T>) -> Option<NodeId> {
    request.metadata().get(FROM_METADATA).and_then(|v| v.to_str().ok()?.parse::<NodeId>().ok())
}

/// UNAVAILABLE when a test cut the link from `from` to `me`.
fn link_open(faults: &Faults, from: Option<NodeId>, me: NodeId) -> Result<(), Status> {
    match from {
        Some(from) if faults.is_cut(from, me) => {
            Err(Status::unavailable(format!("link {from} -> {me} is cut by a fault injection")))
        }
        _ => Ok(()),
    }
}

/// Hands one AppendEntries to `raft` and encodes its answer; notes the leader's commit
/// index when the request is accepted. Also says whether the answer is raft's fatal error
/// (it has stopped: this member is shutting down).
async fn append_entries(
    raft: &Raft<TypeConfig>,
    leader_commit: &LeaderCommit,
    payload: &[u8],
) -> Result<(RaftMessage, bool), Status> {
    let rpc: AppendEntriesRequest<TypeConfig> = decode(payload)?;
    let commit = rpc.leader_commit.map(|l| l.index);
    let answer = raft.append_entries(rpc).await;
    // A stale leader's request is refused (a higher vote): its commit is not heard.
    if matches!(&answer, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
        leader_commit.heard(commit);
    }
    Ok((encode(&answer)?, answer.is_err()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    warden_core::codec::decode_from_slice(bytes)
        .map(|(v, _)| v)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<RaftMessage, Status> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map(|payload| RaftMessage { payload: payload.into() })
        .map_err(|e| Status::internal(format!("cannot encode a raft reply: {e}")))
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    encode(value).map(Response::new)
}

/// The replies of an `AppendStream`, one per request, in order.
type AppendReplies = Pin<Box<dyn Stream<Item = Result<RaftMessage, Status>> + Send>>;

#[tonic::async_trait]
impl RaftRpc for RaftService {
    type AppendStreamStream = AppendReplies;
    /// Leader transfer (see `leader_transfer`): campaign now, if the leader that asks is
    /// still the one this member follows.
    async fn timeout_now(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.check(&request)?;
        let vote: Vote<NodeId> = decode(&request.into_inner().payload)?;
        let (mine, state) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.vote, m.state)
        };
        if mine != vote || state != openraft::ServerState::Follower || self.removal.is_removed() {
            warn!(%vote, %mine, ?state, "leader transfer: not campaigning (the leader changed, or this member cannot)");
            return Err(Status::failed_precondition(format!(
                "not campaigning: this member follows {mine} as a {state:?}, not {vote}"
            )));
        }
        tracing::info!(%vote, "leader transfer: campaigning at the leader's request");
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| Status::unavailable(format!("raft stopped: {e}")))?;
        Ok(Response::new(RaftMessage { payload: Default::default() }))
    }

    /// The leader removed this member from the cluster.
    async fn removed(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.check(&request)?;
        let leader: NodeId = decode(&request.into_inner().payload)?;
        self.raft.runtime_config().elect(false);
        self.removal.mark(leader);
        Ok(Response::new(RaftMessage { payload: Default::default() }))
    }

    async fn append(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.check(&request)?;
        append_entries(&self.raft, &self.leader_commit, &request.into_inner().payload)
            .await
            .map(|(reply, _)| Response::new(reply))
    }

    /// Serves the requests of the stream in order, each as [`RaftRpc::append`] would. The
    /// stream ends after an error, and after raft's fatal answer: a member shutting down
    /// must not keep the leader's stream (and its connection, and so its storage) open.
    async fn append_stream(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<AppendReplies>, Status> {
        self.check(&request)?;
        let from = sender(&request);
        let (me, faults) = (self.me, self.faults.clone());
        let (raft, leader_commit) = (self.raft.clone(), Arc::clone(&self.leader_commit));
        let replies =
            futures::stream::unfold((request.into_inner(), false), move |(mut requests, ended)| {
                let (raft, leader_commit, faults) =
                    (raft.clone(), Arc::clone(&leader_commit), faults.clone());
                async move {
                    if ended {
                        return None;
                    }
                    let message = requests.next().await?;
                    let reply = async {
                        // A link cut while the stream is open is cut for its next request.
                        link_open(&faults, from, me)?;
                        append_entries(&raft, &leader_commit, &message?.payload).await
                    }
                    .await;
                    let end = reply.as_ref().map_or(true, |(_, fatal)| *fatal);
                    Some((reply.map(|(message, _)| message), (requests, end)))
                }
            });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.check(&request)?;
        let rpc = decode(&request.into_inner().payload)?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.check(&request)?;
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(SnapshotChunk { chunk: Some(snapshot_chunk::Chunk::Header(h)) })) => h,
            Some(Err(status)) => return Err(status),
            _ => {
                return Err(Status::invalid_argument(
                    "a snapshot stream must start with its header",
                ));
            }
        };
        let (vote, meta): (Vote<NodeId>, SnapshotMeta) = decode(&header)?;
        let mut data = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk?.chunk {
                Some(snapshot_chunk::Chunk::Data(d)) => data.extend_from_slice(&d),
                _ => return Err(Status::invalid_argument("a snapshot header may only come first")),
            }
        }
        let snapshot = Snapshot { meta, snapshot: Box::new(Cursor::new(data)) };
        reply(&self.raft.install_full_snapshot(vote, snapshot).await)
    }
}
