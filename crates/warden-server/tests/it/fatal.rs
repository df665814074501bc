//! A storage failure stops the node for good, with the error; the others go on.

use std::time::Duration;

use openraft::ServerState;

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots, put_retrying};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_log_write_stops_the_leader_and_is_not_retried() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    client.put("/before", "x").await.unwrap();
    let leader = cluster.leader(Duration::from_secs(5)).await;
    cluster.node(leader).log_store().inject_write_failure();

    // The leader cannot store the write. The client cannot know whether it was replicated
    // before the leader stopped, so it says the outcome is unknown; a put may be repeated.
    put_retrying(&client, "/after", "y").await;
    let reason = tokio::time::timeout(Duration::from_secs(5), cluster.node(leader).stopped())
        .await
        .expect("the leader stopped");
    assert!(reason.contains("injected write failure"), "the stop names the error: {reason}");

    // It stays stopped: nothing retried the write.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = cluster.node(leader).raft().metrics().borrow().clone();
    assert!(metrics.running_state.is_err());
    assert_ne!(metrics.state, ServerState::Leader);
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let status = client.status().await.unwrap();
    assert!(others.contains(&status.leader_id), "a survivor leads: {}", status.leader_id);
    assert_eq!(client.get("/after").await.unwrap().data, "y".as_bytes());
    cluster.stop().await;
}
