//! The leader dies: a new one commits within 3 s (etcd's default timeouts), and the old
//! leader, restarted after the log it missed was purged, catches up through a snapshot.

use std::time::Duration;

use tokio::time::Instant;
use warden_server::SnapshotConfig;

use crate::cluster::{DEFAULT_TIMING, TestCluster, put_retrying};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_leader_commits_within_3s_and_the_old_one_catches_up_by_snapshot() {
    let snapshot = SnapshotConfig { logs_since_last: 20, keep_logs: 5 };
    let mut cluster = TestCluster::start(3, DEFAULT_TIMING, snapshot).await;
    let client = cluster.client();
    for i in 0..10 {
        client.put(&format!("/before-{i}"), "x").await.unwrap_or_else(|e| panic!("put {i}: {e}"));
    }
    let old = cluster.leader(Duration::from_secs(5)).await;
    let killed = Instant::now();
    cluster.kill(old).await;
    put_retrying(&client, "/after-failover", "x").await;
    let failover = killed.elapsed();
    eprintln!("failover: leader {old} killed, first write committed after {failover:?}");
    assert!(failover < Duration::from_secs(3), "failover took {failover:?}");

    let new = cluster.leader(Duration::from_secs(5)).await;
    // Enough entries for a snapshot and a purge batch (256) behind it.
    for i in 0..300 {
        client.put(&format!("/after-{i}"), "y").await.unwrap();
    }
    // The new leader has snapshotted and purged the log the old one missed.
    let purged = cluster.node(new).raft().metrics().borrow().purged.map(|p| p.index).unwrap_or(0);
    assert!(purged > 200, "the log was purged (up to {purged})");

    cluster.restart(old).await;
    cluster.wait_applied(cluster.applied(new), Duration::from_secs(10)).await;
    assert!(
        cluster.node(old).state_machine().installed_snapshots() >= 1,
        "caught up through a snapshot"
    );
    assert_eq!(cluster.state_bytes(old), cluster.state_bytes(new));
    cluster.stop().await;
}
