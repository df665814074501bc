//! Writes on any member are seen by linearizable reads through every member; a restarted
//! member with its data rejoins from its log, without a snapshot.

use std::time::Duration;

use warden_client::Consistency;
use warden_core::CreateMode;
use warden_server::SnapshotConfig;

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_any_member_is_read_linearizably_through_every_member() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    for writer in 1..=3 {
        let path = format!("/from-{writer}");
        cluster
            .client_of(writer)
            .create(&path, format!("v{writer}"), CreateMode::PERSISTENT)
            .await
            .unwrap();
        for reader in 1..=3 {
            let node = cluster.client_of(reader).get(&path).await.unwrap();
            assert_eq!(node.data, format!("v{writer}").as_bytes(), "read through member {reader}");
        }
    }
    // Serializable reads are local: each member has the writes once it has applied them.
    let last = (1..=3).map(|id| cluster.applied(id)).max().unwrap();
    cluster.wait_applied(last, Duration::from_secs(5)).await;
    for reader in 1..=3 {
        let children =
            cluster.client_of(reader).children("/", Consistency::Serializable).await.unwrap();
        assert_eq!(children.len(), 3, "member {reader}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_rejoins_from_its_log_without_a_snapshot() {
    // Snapshots are taken, but enough log is kept for a short absence.
    let snapshot = SnapshotConfig { logs_since_last: 20, keep_logs: 1_000 };
    let mut cluster = TestCluster::start(3, FAST_TIMING, snapshot).await;
    let client = cluster.client();
    for i in 0..30 {
        client.put(&format!("/k{i}"), "a").await.unwrap();
    }
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let follower = if leader == 1 { 2 } else { 1 };
    cluster.wait_applied(cluster.applied(leader), Duration::from_secs(5)).await;
    let applied_before = cluster.applied(follower);
    cluster.kill(follower).await;
    for i in 0..30 {
        client.put(&format!("/k{i}"), "b").await.unwrap();
    }
    cluster.restart(follower).await;
    // It resumed from its own disk, not from scratch.
    let loaded = cluster
        .node(follower)
        .state_machine()
        .read(|a| a.last_applied.map(|l| l.index).unwrap_or(0));
    assert!(
        loaded >= applied_before,
        "state loaded from disk at {loaded}, had applied {applied_before}"
    );
    cluster.wait_applied(cluster.applied(leader), Duration::from_secs(10)).await;
    assert_eq!(
        cluster.node(follower).state_machine().installed_snapshots(),
        0,
        "caught up from the log"
    );
    assert_eq!(cluster.state_bytes(follower), cluster.state_bytes(leader));
    cluster.stop().await;
}
