//! The raft transport, server side: hands peers' RPCs to the local openraft node.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::{Raft, Snapshot, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_stream::StreamExt;
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
        let from = request
            .metadata()
            .get(FROM_METADATA)
            .and_then(|v| v.to_str().ok()?.parse::<NodeId>().ok());
        match from {
            Some(from) if self.faults.is_cut(from, self.me) => Err(Status::unavailable(format!(
                "link {from} -> {} is cut by a fault injection",
                self.me
            ))),
            _ => Ok(()),
        }
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    warden_core::codec::decode_from_slice(bytes)
        .map(|(v, _)| v)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map(|payload| Response::new(RaftMessage { payload: payload.into() }))
        .map_err(|e| Status::internal(format!("cannot encode a raft reply: {e}")))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
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
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&request.into_inner().payload)?;
        let leader_commit = rpc.leader_commit.map(|l| l.index);
        let answer = self.raft.append_entries(rpc).await;
        // A stale leader's request is refused (a higher vote): its commit is not heard.
        if matches!(&answer, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
            self.leader_commit.heard(leader_commit);
        }
        reply(&answer)
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
