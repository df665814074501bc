//! A transaction's errors name the compare or operation at fault, and unknown enum values
//! in any request are refused, naming the field, over gRPC.

use std::time::Duration;

use tonic::Code;
use warden_proto::v1 as pb;
use warden_proto::v1::kv_client::KvClient;
use warden_proto::v1::lock_client::LockClient;
use warden_proto::v1::watch_client::WatchClient;
use warden_proto::{ERROR_METADATA, ErrorKind};

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

fn create(path: &str) -> pb::TxnOp {
    pb::TxnOp {
        op: Some(pb::txn_op::Op::Create(pb::CreateRequest {
            path: path.into(),
            ..Default::default()
        })),
    }
}

fn refused(result: Result<tonic::Response<pb::TxnResponse>, tonic::Status>) -> (Code, String) {
    match result {
        Err(status) => (status.code(), status.message().to_owned()),
        Ok(other) => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_errors_name_the_compare_or_operation() {
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    client.create("/a", "", warden_core::CreateMode::PERSISTENT).await.unwrap();
    // Raw gRPC: the client library cannot even express a compare without a target.
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let mut kv = KvClient::connect(format!("http://{}", cluster.endpoint(leader))).await.unwrap();

    // A compare without a target is bad input, not "the node exists".
    let untargeted = pb::Compare { path: "/a".into(), ..Default::default() };
    let request =
        pb::TxnRequest { compares: vec![untargeted], ops: vec![create("/b")], origin: None };
    let (code, message) = refused(kv.txn(request).await);
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("compare 0"), "{message}");
    assert!(client.get("/b").await.is_err(), "nothing applied");

    // The second op fails: its index is in the message, with the op's own code.
    let request =
        pb::TxnRequest { compares: vec![], ops: vec![create("/c"), create("/a")], origin: None };
    let (code, message) = refused(kv.txn(request).await);
    assert_eq!(code, Code::AlreadyExists, "{message}");
    assert!(message.contains("operation 1 failed"), "{message}");
    assert!(client.get("/c").await.is_err(), "nothing applied");
    cluster.stop().await;
}

/// What a refusal of a request's unknown enum value must carry: INVALID_ARGUMENT of kind
/// InvalidArgument, naming the field and the value.
fn assert_unknown_value(status: &tonic::Status, names: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let kind = status.metadata().get(ERROR_METADATA).and_then(|v| v.to_str().ok());
    assert_eq!(kind, Some(ErrorKind::InvalidArgument.as_str()), "{status:?}");
    assert!(status.message().contains(names), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_enum_values_are_refused_not_defaulted() {
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    client.create("/a", "", warden_core::CreateMode::PERSISTENT).await.unwrap();
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let addr = format!("http://{}", cluster.endpoint(leader));
    let mut kv = KvClient::connect(addr.clone()).await.unwrap();

    // Taken as Equal, op 99 would compare version 0 = 0 and create /b.
    let compare =
        pb::Compare { path: "/a".into(), op: 99, target: Some(pb::compare::Target::Version(0)) };
    let request = pb::TxnRequest { compares: vec![compare], ops: vec![create("/b")], origin: None };
    let status = kv.txn(request).await.unwrap_err();
    assert_unknown_value(&status, "unknown compare op 99 in field `op`");
    assert!(client.get("/b").await.is_err(), "nothing applied");

    // Taken as persistent, kind 7 would create a node meant to go away.
    let request = pb::CreateRequest { path: "/k".into(), kind: 7, ..Default::default() };
    let status = kv.create(request).await.unwrap_err();
    assert_unknown_value(&status, "unknown node kind 7 in field `kind`");
    assert!(client.get("/k").await.is_err(), "nothing applied");

    // Taken as a mutex, lock type 9 would grant an exclusive hold nobody asked for.
    let mut locks = LockClient::connect(addr.clone()).await.unwrap();
    let request = pb::AcquireRequest { path: "/l".into(), r#type: 9, ..Default::default() };
    let status = locks.try_acquire(request).await.unwrap_err();
    assert_unknown_value(&status, "unknown lock type 9 in field `type`");

    // Taken as a key watch, scope 5 would miss the events under the path.
    let mut watches = WatchClient::connect(addr).await.unwrap();
    let request = pb::WatchRequest { path: "/a".into(), scope: 5, ..Default::default() };
    let status = watches.watch(request).await.unwrap_err();
    assert_unknown_value(&status, "unknown watch scope 5 in field `scope`");
    cluster.stop().await;
}
