//! The client against members that fail as a transport does, not as warden does: a status
//! without `warden-error` (an h2 GOAWAY read as RESOURCE_EXHAUSTED), a connection dropped
//! once the request is in, a message over the size limit, a watch stream broken in the
//! middle of a revision sent in fragments. Fake members, so each failure happens exactly
//! when the test wants it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use warden_client::{Client, ClientError, Scope};
use warden_core::CreateMode;
use warden_proto::MAX_CLIENT_MESSAGE_BYTES;
use warden_proto::v1 as pb;
use warden_proto::v1::kv_server::{Kv, KvServer};
use warden_proto::v1::watch_server::{Watch, WatchServer};
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

/// What one stream of a fake watch member sends: responses, then an error or nothing more.
type Turn = (Vec<pb::WatchResponse>, Option<Status>);

/// A watch member: each stream sends the responses its turn is given (the first stream
/// the first list, ...), then ends with `end` or stays open.
#[derive(Clone)]
struct FakeWatch {
    turns: Arc<Mutex<Vec<Turn>>>,
    /// The start revision of each stream opened.
    starts: Arc<Mutex<Vec<u64>>>,
}

#[tonic::async_trait]
impl Watch for FakeWatch {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.starts.lock().unwrap().push(request.into_inner().start_revision);
        let (responses, end) = {
            let mut turns = self.turns.lock().unwrap();
            if turns.is_empty() { (Vec::new(), None) } else { turns.remove(0) }
        };
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            for r in responses {
                tx.send(Ok(r)).await.ok();
            }
            match end {
                Some(status) => {
                    tx.send(Err(status)).await.ok();
                }
                None => tx.closed().await,
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn response(revision: u64, paths: &[&str], fragment: bool) -> pb::WatchResponse {
    let events = paths
        .iter()
        .map(|p| pb::Event { revision, path: (*p).to_owned(), ..Default::default() })
        .collect();
    pb::WatchResponse {
        header: Some(pb::ResponseHeader { revision, ..Default::default() }),
        events,
        fragment,
        ..Default::default()
    }
}

async fn fake_watch(turns: Vec<Turn>) -> (String, FakeWatch) {
    let watch = FakeWatch { turns: Arc::new(Mutex::new(turns)), starts: Arc::default() };
    let listener = TcpListener::bind(("127.0.0.1", free_port())).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        Server::builder()
            .add_service(WatchServer::new(watch.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, watch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_in_fragments_is_one_batch_and_comes_again_whole_after_a_break() {
    let broken = Status::unknown("h2 protocol error: error reading a body from connection");
    let (addr, member) = fake_watch(vec![
        (vec![response(4, &[], false), response(5, &["/a"], true)], Some(broken)),
        (
            vec![
                response(4, &[], false),
                response(5, &["/a"], true),
                response(5, &["/b"], true),
                response(5, &["/c"], false),
                response(6, &["/d"], false),
            ],
            None,
        ),
    ])
    .await;
    let mut watcher = client(vec![addr]).watch("/", Scope::Prefix, 0, false).await.unwrap();
    assert_eq!(watcher.next().await.unwrap().revision, 4, "the start notice first");
    let batch = timeout_next(&mut watcher).await;
    assert_eq!(batch.revision, 5);
    let paths: Vec<&str> = batch.events.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/a", "/b", "/c"], "the revision whole, once, in order");
    assert_eq!(timeout_next(&mut watcher).await.revision, 6);
    // Resumed from the revision that was incomplete, not after it.
    assert_eq!(*member.starts.lock().unwrap(), [0, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_response_over_the_limit_ends_the_watch_with_an_error() {
    let mut huge = response(5, &["/big"], false);
    huge.events[0].data = Some(vec![b'x'; MAX_CLIENT_MESSAGE_BYTES].into());
    let (addr, member) = fake_watch(vec![(vec![response(4, &[], false), huge], None)]).await;
    let mut watcher = client(vec![addr]).watch("/", Scope::Prefix, 0, false).await.unwrap();
    assert_eq!(watcher.next().await.unwrap().revision, 4);
    let outcome = tokio::time::timeout(Duration::from_secs(10), watcher.next())
        .await
        .expect("the watch looped on a response it cannot read");
    assert!(
        matches!(&outcome, Err(ClientError::MessageTooLarge { limit, .. }) if *limit == MAX_CLIENT_MESSAGE_BYTES),
        "{outcome:?}"
    );
    assert_eq!(member.starts.lock().unwrap().len(), 1, "not resumed into the same refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_a_stream_a_watch_ends_after_an_error_it_cannot_pass() {
    use futures::StreamExt;
    let mut huge = response(5, &["/big"], false);
    huge.events[0].data = Some(vec![b'x'; MAX_CLIENT_MESSAGE_BYTES].into());
    let (addr, _member) = fake_watch(vec![(vec![response(4, &[], false), huge], None)]).await;
    let watcher = client(vec![addr]).watch("/", Scope::Prefix, 0, false).await.unwrap();
    let items: Vec<_> = tokio::time::timeout(Duration::from_secs(10), watcher.collect::<Vec<_>>())
        .await
        .expect("the stream did not end");
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_ref().map(|b| b.revision).ok(), Some(4));
    assert!(matches!(items[1], Err(ClientError::MessageTooLarge { .. })), "{items:?}");
}

/// The next batch with events (a resumed stream starts with a notice at the revision
/// before its start).
async fn timeout_next(watcher: &mut warden_client::Watcher) -> warden_client::WatchBatch {
    loop {
        let batch = tokio::time::timeout(Duration::from_secs(10), watcher.next())
            .await
            .expect("the watch stalled")
            .expect("the watch failed");
        if !batch.events.is_empty() {
            return batch;
        }
    }
}

/// An address nothing listens on: a connection to it is refused.
fn dead_endpoint() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_endpoint_costs_a_refusal_then_the_next_member_serves() {
    let serving = fake_kv(Answer::Serve);
    let endpoints = vec![dead_endpoint(), fake(serving.clone()).await];
    let started = std::time::Instant::now();
    let read = Client::new(endpoints).unwrap().get("/r").await.unwrap();
    assert_eq!(&read.data[..], b"fake");
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_refused_endpoints_fail_within_two_seconds_saying_so() {
    // The default 10 s deadline: refusals must not use it up.
    let client = Client::new(vec![dead_endpoint(), dead_endpoint()]).unwrap();
    let started = std::time::Instant::now();
    let read = client.get("/r").await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "a refused cluster took {elapsed:?} to report");
    let Err(ClientError::Unavailable { last, .. }) = &read else {
        panic!("not unavailable: {read:?}");
    };
    assert!(last.contains("no member accepted a connection"), "{last}");
    assert!(last.to_lowercase().contains("refused"), "the cause is named: {last}");
}
