//! A transaction's errors name the compare or operation at fault, over gRPC.

use std::time::Duration;

use tonic::Code;
use warden_proto::v1 as pb;
use warden_proto::v1::kv_client::KvClient;

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
