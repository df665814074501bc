//! AppendEntries on the AppendStream: one stream carries every round while it works, and a
//! peer that does not know the call (an older warden answers UNIMPLEMENTED) gets unary
//! Appends.
#![allow(clippy::unwrap_used)]

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use warden_proto::raft::raft_server::{Raft as RaftRpc, RaftServer};

use super::*;

/// A peer answering every AppendEntries with success, counting what it was sent.
#[derive(Clone, Default)]
struct Peer {
    /// Whether it knows AppendStream (a warden from before it does not).
    streams: bool,
    unary: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
    streamed: Arc<AtomicUsize>,
}

type Replies = Pin<Box<dyn Stream<Item = Result<RaftMessage, Status>> + Send>>;

fn success() -> RaftMessage {
    let ok: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
        Ok(AppendEntriesResponse::Success);
    let payload = bincode::serde::encode_to_vec(&ok, bincode::config::standard()).unwrap();
    RaftMessage { payload: payload.into() }
}

#[tonic::async_trait]
impl RaftRpc for Peer {
    type AppendStreamStream = Replies;

    async fn append(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.unary.fetch_add(1, SeqCst);
        Ok(Response::new(success()))
    }

    async fn append_stream(
        &self,
        request: Request<tonic::Streaming<RaftMessage>>,
    ) -> Result<Response<Replies>, Status> {
        if !self.streams {
            return Err(Status::unimplemented("unknown method AppendStream"));
        }
        self.opened.fetch_add(1, SeqCst);
        let streamed = Arc::clone(&self.streamed);
        let replies = request.into_inner().map(move |message| {
            message?;
            streamed.fetch_add(1, SeqCst);
            Ok(success())
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn vote(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn install_snapshot(
        &self,
        _: Request<tonic::Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn timeout_now(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn removed(&self, _: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// Serves `peer` on a loopback port; returns a client of it as member 1 would make.
async fn client_of(peer: Peer) -> PeerClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RaftServer::new(peer))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let node = WardenNode { raft_addr: addr.to_string(), client_addr: "127.0.0.1:1".into() };
    Network::new(1, Faults::default()).new_client(2, &node).await
}

fn heartbeat() -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    }
}

/// Sends three heartbeats to `peer`, each answered with success; returns the client.
async fn three_rounds(peer: Peer) -> PeerClient {
    let mut client = client_of(peer).await;
    for _ in 0..3 {
        let answer = client.append_entries(heartbeat(), RPCOption::new(Duration::from_secs(5)));
        assert!(matches!(answer.await, Ok(AppendEntriesResponse::Success)));
    }
    client
}

#[tokio::test]
async fn rounds_share_one_append_stream() {
    let peer = Peer { streams: true, ..Peer::default() };
    three_rounds(peer.clone()).await;
    assert_eq!(peer.opened.load(SeqCst), 1, "one stream for every round");
    assert_eq!(peer.streamed.load(SeqCst), 3);
    assert_eq!(peer.unary.load(SeqCst), 0);
}

#[tokio::test]
async fn a_peer_without_append_stream_gets_unary_appends() {
    let peer = Peer { streams: false, ..Peer::default() };
    let client = three_rounds(peer.clone()).await;
    assert_eq!(peer.unary.load(SeqCst), 3, "every round answered, by unary Append");
    assert!(client.unary_only, "the stream is not tried again");
}
