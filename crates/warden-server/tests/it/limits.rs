//! Limits over gRPC: the cluster's come from the founder's `[limits]`, equal on every
//! replica; each refusal is a status with the right code, naming the limit's config key.

use std::time::Duration;

use tokio::time::{Instant, sleep};
use tonic::Code;
use warden_client::ClientError;
use warden_core::{CreateMode, Limits};
use warden_proto::v1 as pb;
use warden_proto::v1::kv_client::KvClient;
use warden_proto::v1::watch_client::WatchClient;
use warden_proto::{ERROR_METADATA, ErrorKind, LIMIT_METADATA, MAX_CLIENT_MESSAGE_BYTES};

use crate::cluster::{FAST_TIMING, TestCluster};

/// Waits (bounded) until every running member applied `limits`.
async fn wait_for_limits(cluster: &TestCluster, limits: &Limits) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let applied: Vec<Limits> = cluster
            .running()
            .map(|n| n.state_machine().read(|a| a.core.limits().clone()))
            .collect();
        if applied.iter().all(|l| l == limits) {
            return;
        }
        assert!(Instant::now() < deadline, "limits not applied everywhere: {applied:?}");
        sleep(Duration::from_millis(20)).await;
    }
}

fn kind(status: &tonic::Status) -> Option<ErrorKind> {
    ErrorKind::parse(status.metadata().get(ERROR_METADATA)?.to_str().ok()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_takes_the_founders_limits() {
    // The founder (member 1) and the others are configured differently: the founder wins.
    let cluster = TestCluster::start_with(3, FAST_TIMING, |c| {
        c.limits.max_path_depth = if c.node_id == 1 { 5 } else { 50 };
        c.limits.max_waiters_per_lock = if c.node_id == 1 { 7 } else { 70 };
    })
    .await;
    let founders = cluster.configs[0].limits.cluster();
    assert_eq!((founders.max_path_depth, founders.max_waiters_per_lock), (5, 7));
    wait_for_limits(&cluster, &founders).await;
    let client = cluster.client();
    let refused = client.create("/1/2/3/4/5/6", "", CreateMode::PERSISTENT).await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::InvalidArgument), "{refused}");
    assert!(refused.to_string().contains("limits.max_path_depth) of 5"), "{refused}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_members_limit_is_resource_exhausted_naming_it() {
    let cluster = TestCluster::start_with(1, FAST_TIMING, |c| {
        c.limits.max_request_bytes = 2 << 20;
    })
    .await;
    let addr = format!("http://{}", cluster.endpoint(1));
    // A raw client sending 64 MB: refused before it is read, with a status of ours.
    let mut kv = KvClient::connect(addr).await.unwrap().max_encoding_message_size(usize::MAX);
    let huge = pb::SetRequest {
        path: "/big".into(),
        data: vec![b'x'; 64 << 20].into(),
        ..Default::default()
    };
    let status = kv.set(huge).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(kind(&status), Some(ErrorKind::RequestTooLarge));
    assert!(status.message().contains("limits.max_request_bytes"), "{status:?}");
    assert!(status.message().contains("67108875 bytes"), "{status:?}");
    let limit = status.metadata().get(LIMIT_METADATA).and_then(|v| v.to_str().ok());
    assert_eq!(limit, Some("2097152"));

    // The Rust client: 64 MB is over its own limit and never sent; 3 MiB is within it,
    // and over this member's, which refuses it. Both say the limit and that nothing was
    // applied.
    let client = cluster.client();
    let own = client.set("/big", vec![b'x'; 64 << 20], None).await.unwrap_err();
    assert!(
        matches!(&own, ClientError::MessageTooLarge { limit, .. } if *limit == MAX_CLIENT_MESSAGE_BYTES),
        "{own:?}"
    );
    let members = client.set("/big", vec![b'x'; 3 << 20], None).await.unwrap_err();
    let ClientError::MessageTooLarge { limit, .. } = &members else {
        panic!("a request over the member's limit: {members:?}");
    };
    assert_eq!(*limit, 2 << 20);
    let text = members.to_string();
    assert!(text.contains("limits.max_request_bytes") && text.contains("not applied"), "{text}");
    assert!(client.get("/big").await.is_err(), "nothing was applied");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cluster_limit_is_refused_with_its_code_and_key() {
    let cluster = TestCluster::start_with(1, FAST_TIMING, |c| {
        c.limits.max_sessions_per_identity = 2;
        c.limits.max_waiters_per_lock = 1;
        c.limits.max_txn_bytes = 100;
    })
    .await;
    wait_for_limits(&cluster, &cluster.configs[0].limits.cluster()).await;
    let client = cluster.client();

    // Sessions per identity: the anonymous identity has two.
    let first = client.open_session(Duration::from_secs(10)).await.unwrap();
    let second = client.open_session(Duration::from_secs(10)).await.unwrap();
    let Err(third) = client.open_session(Duration::from_secs(10)).await else {
        panic!("a third session of the anonymous identity was opened");
    };
    assert_eq!(third.code(), Some(Code::ResourceExhausted), "{third}");
    assert!(third.to_string().contains("the anonymous identity"), "{third}");
    assert!(third.to_string().contains("limits.max_sessions_per_identity) is 2"), "{third}");

    // Waiters per lock: one, the holder.
    let guard = client.mutex(&first, "/locks/a").acquire().await.unwrap();
    let waiter = client.mutex(&second, "/locks/a").acquire_timeout(Duration::from_secs(5)).await;
    let refused = waiter.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("limits.max_waiters_per_lock) is 1"), "{refused}");

    // Transaction bytes, over raw gRPC to see the code.
    let mut kv = KvClient::connect(format!("http://{}", cluster.endpoint(1))).await.unwrap();
    let op = pb::TxnOp {
        op: Some(pb::txn_op::Op::Create(pb::CreateRequest {
            path: "/t".into(),
            data: vec![b'x'; 200].into(),
            ..Default::default()
        })),
    };
    let request = pb::TxnRequest { compares: vec![], ops: vec![op], origin: None };
    let status = kv.txn(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(kind(&status), Some(ErrorKind::TxnBytesTooLarge));
    assert!(status.message().contains("limits.max_txn_bytes) of 100"), "{status:?}");

    guard.release().await.unwrap();
    second.close().await.unwrap();
    first.close().await.unwrap();
    cluster.stop().await;
}

fn watch_request() -> pb::WatchRequest {
    pb::WatchRequest {
        path: "/w".into(),
        scope: pb::WatchScope::Prefix.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_per_connection_are_limited() {
    let cluster = TestCluster::start_with(1, FAST_TIMING, |c| {
        c.limits.max_watchers_per_connection = 2;
    })
    .await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.endpoint(1)))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut watch = WatchClient::new(channel.clone());
    let first = watch.watch(watch_request()).await.unwrap().into_inner();
    let _second = watch.watch(watch_request()).await.unwrap().into_inner();
    let status = watch.watch(watch_request()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(kind(&status), Some(ErrorKind::TooManyWatchers));
    assert!(status.message().contains("limits.max_watchers_per_connection = 2"), "{status:?}");

    // Another connection has its own count.
    let mut other = WatchClient::connect(format!("http://{}", cluster.endpoint(1))).await.unwrap();
    let _elsewhere = other.watch(watch_request()).await.unwrap().into_inner();

    // A stream the client drops frees its place (once the member sees it gone).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match watch.watch(watch_request()).await {
            Ok(_) => break,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        }
        assert!(Instant::now() < deadline, "the dropped stream's place was never freed");
        sleep(Duration::from_millis(20)).await;
    }
    cluster.stop().await;
}
