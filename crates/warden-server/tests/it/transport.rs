//! The client against members that fail as a transport does, not as warden does: a status
//! without `warden-error` (an h2 GOAWAY read as RESOURCE_EXHAUSTED), a connection dropped
//! once the request is in, a message over the size limit. Fake members, so each failure
//! happens exactly when the test wants it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use warden_client::{Client, ClientError};
use warden_core::CreateMode;
use warden_proto::MAX_CLIENT_MESSAGE_BYTES;
use warden_proto::v1 as pb;
use warden_proto::v1::kv_server::{Kv, KvServer};
use warden_testkit::free_port;

/// How a fake member answers.
#[derive(Clone, Copy)]
enum Answer {
    /// As hyper does when the connection got a GOAWAY (ENHANCE_YOUR_CALM): no metadata.
    GoAway,
    /// Gets and creates succeed.
    Serve,
    /// Gets answer a value larger than any client accepts.
    Huge,
}

#[derive(Clone)]
struct FakeKv {
    answer: Answer,
    creates: Arc<AtomicUsize>,
    gets: Arc<AtomicUsize>,
}

fn go_away() -> Status {
    Status::resource_exhausted("h2 protocol error: error reading a body from connection")
}

#[tonic::async_trait]
impl Kv for FakeKv {
    async fn get(&self, _: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let data = match self.answer {
            Answer::GoAway => return Err(go_away()),
            Answer::Serve => bytes::Bytes::from_static(b"fake"),
            Answer::Huge => bytes::Bytes::from(vec![b'x'; MAX_CLIENT_MESSAGE_BYTES + 1]),
        };
        Ok(Response::new(pb::GetResponse { header: None, data, stat: None }))
    }

    async fn children(
        &self,
        _: Request<pb::ChildrenRequest>,
    ) -> Result<Response<pb::ChildrenResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn create(
        &self,
        request: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::CreateResponse>, Status> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        match self.answer {
            Answer::GoAway => Err(go_away()),
            Answer::Serve | Answer::Huge => Ok(Response::new(pb::CreateResponse {
                header: None,
                path: request.into_inner().path,
                stat: None,
            })),
        }
    }

    async fn set(&self, _: Request<pb::SetRequest>) -> Result<Response<pb::SetResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn delete(
        &self,
        _: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn txn(&self, _: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

/// Starts a fake member; its address.
async fn fake(kv: FakeKv) -> String {
    let listener = TcpListener::bind(("127.0.0.1", free_port())).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        Server::builder()
            .add_service(KvServer::new(kv))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

fn fake_kv(answer: Answer) -> FakeKv {
    FakeKv { answer, creates: Arc::default(), gets: Arc::default() }
}

/// Starts a member that speaks just enough HTTP/2 to take a request, and closes the
/// connection once the bytes of `marker` (in the request's body) have arrived.
async fn dropper(marker: &'static str) -> String {
    let listener = TcpListener::bind(("127.0.0.1", free_port())).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                // The server preface: an empty SETTINGS frame.
                socket.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.ok();
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = socket.read(&mut buf).await {
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn client(endpoints: Vec<String>) -> Client {
    Client::with_deadline(endpoints, Duration::from_secs(3)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_without_warden_error_is_the_transport_failing_whatever_its_code() {
    let refusing = fake_kv(Answer::GoAway);
    let serving = fake_kv(Answer::Serve);
    let endpoints = vec![fake(refusing.clone()).await, fake(serving.clone()).await];

    // A plain write may have been applied before the connection went away.
    let write = client(endpoints.clone()).create("/w", "v", CreateMode::PERSISTENT).await;
    assert!(
        matches!(&write, Err(ClientError::OutcomeUnknown { endpoint, .. }) if *endpoint == endpoints[0]),
        "{write:?}"
    );
    assert_eq!(refusing.creates.load(Ordering::SeqCst), 1);
    assert_eq!(serving.creates.load(Ordering::SeqCst), 0, "a plain write is not sent twice");

    // A read is retried on the next member.
    let read = client(endpoints.clone()).get("/r").await.unwrap();
    assert_eq!(&read.data[..], b"fake");
    assert_eq!(refusing.gets.load(Ordering::SeqCst), 1);
    assert_eq!(serving.gets.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_after_the_request_is_an_unknown_outcome() {
    let serving = fake_kv(Answer::Serve);
    let endpoints = vec![dropper("MARKER").await, fake(serving.clone()).await];

    let write =
        client(endpoints.clone()).create("/w", "MARKER-value", CreateMode::PERSISTENT).await;
    assert!(
        matches!(&write, Err(ClientError::OutcomeUnknown { endpoint, .. }) if *endpoint == endpoints[0]),
        "{write:?}"
    );
    assert_eq!(serving.creates.load(Ordering::SeqCst), 0, "a plain write is not sent twice");

    let read = client(endpoints.clone()).get("/MARKER-path").await.unwrap();
    assert_eq!(&read.data[..], b"fake");
    assert_eq!(serving.gets.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_is_a_clear_error_not_retried() {
    let first = fake_kv(Answer::Huge);
    let second = fake_kv(Answer::Serve);
    let endpoints = vec![fake(first.clone()).await, fake(second.clone()).await];

    // A request too large is refused before it leaves: nothing is applied anywhere.
    let value = vec![b'v'; MAX_CLIENT_MESSAGE_BYTES + 1];
    let write = client(endpoints.clone()).create("/big", value, CreateMode::PERSISTENT).await;
    let Err(ClientError::MessageTooLarge { limit, .. }) = &write else {
        panic!("a request over the limit: {write:?}");
    };
    assert_eq!(*limit, MAX_CLIENT_MESSAGE_BYTES);
    assert_eq!(first.creates.load(Ordering::SeqCst) + second.creates.load(Ordering::SeqCst), 0);

    // An answer too large would be too large from any member: not retried.
    let read = client(endpoints.clone()).get("/r").await;
    let Err(ClientError::MessageTooLarge { limit, .. }) = &read else {
        panic!("an answer over the limit: {read:?}");
    };
    assert_eq!(*limit, MAX_CLIENT_MESSAGE_BYTES);
    assert_eq!(first.gets.load(Ordering::SeqCst), 1);
    assert_eq!(second.gets.load(Ordering::SeqCst), 0);
}
