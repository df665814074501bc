//! Lock statistics on a real member: locks contended by several sessions are counted
//! (Stats by prefix, busiest first, and a lock's own in Status), and the counts are still
//! there after the member restarts.

use std::time::Duration;

use tokio::time::Instant;
use warden_client::{Client, LockStatsReport};
use warden_proto::v1 as pb;
use warden_proto::v1::lock_client::LockClient;

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

/// Waits (at most 10 s) until the lock at `path` has `n` holders and waiters.
async fn queued(client: &Client, path: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let queue = client.lock_status(path).await.map(|s| s.holders.len() + s.waiters.len());
        if queue.as_ref().is_ok_and(|q| *q == n) {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never had {n} in its queue: {queue:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The statistics under /stats, read until the member answers (it may be electing itself).
async fn stats(client: &Client) -> LockStatsReport {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.lock_stats("/stats", 10).await {
            Ok(report) => return report,
            Err(e) => assert!(Instant::now() < deadline, "no statistics: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contended_locks_are_counted_and_the_counts_survive_a_restart() {
    let mut cluster = TestCluster::start_tls_if_asked(1, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let ttl = Duration::from_secs(30);
    let (a, b, c) = (
        client.open_session(ttl).await.unwrap(),
        client.open_session(ttl).await.unwrap(),
        client.open_session(ttl).await.unwrap(),
    );
    // /stats/db: a holds, b and c queue behind it; each passes it on.
    let first = client.mutex(&a, "/stats/db").acquire().await.unwrap();
    let (second, third) = (client.mutex(&b, "/stats/db"), client.mutex(&c, "/stats/db"));
    let second = tokio::spawn(async move { second.acquire().await });
    queued(&client, "/stats/db", 2).await;
    let third = tokio::spawn(async move { third.acquire().await });
    queued(&client, "/stats/db", 3).await;
    let status = client.lock_status("/stats/db").await.unwrap();
    let counted = status.stats.expect("a member counts");
    assert_eq!((counted.stats.acquisitions, counted.holders, counted.waiters), (1, 1, 2));
    first.release().await.unwrap();
    second.await.unwrap().unwrap().release().await.unwrap();
    third.await.unwrap().unwrap().release().await.unwrap();
    // /stats/quiet: one grant, nobody waits. /statsx is not under /stats.
    client.mutex(&a, "/stats/quiet").acquire().await.unwrap().release().await.unwrap();
    client.mutex(&a, "/statsx").acquire().await.unwrap().release().await.unwrap();

    let report = stats(&client).await;
    assert_eq!(report.matched, 2);
    let order: Vec<&str> = report.locks.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(order, ["/stats/db", "/stats/quiet"], "the lock that made sessions wait first");
    let db = &report.locks[0];
    assert_eq!((db.stats.acquisitions, db.stats.contended), (3, 2));
    assert_eq!((db.stats.wait.count, db.stats.hold.count), (3, 3));
    assert_eq!((db.holders, db.waiters), (0, 0));
    let quiet = &report.locks[1].stats;
    assert_eq!((quiet.acquisitions, quiet.contended, quiet.wait.sum_ms), (1, 0, 0));
    assert_eq!((report.total.stats.acquisitions, report.total.stats.hold.count), (4, 4));

    // The raw RPC: a limit lists fewer, the total and the count stay.
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let mut locks = LockClient::new(cluster.channel(leader).await);
    let one = locks
        .stats(pb::LockStatsRequest { prefix: "/stats".into(), limit: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((one.locks.len(), one.matched), (1, 2));
    assert_eq!(one.total.map(|t| t.acquisitions), Some(4));

    // A restart keeps them (from the member's own storage). Nothing is left connected
    // first: an in-process member's open connections would keep its storage open.
    for session in [a, b, c] {
        session.close().await.unwrap();
    }
    drop((client, locks));
    cluster.kill(1).await;
    cluster.restart_when_released(1).await;
    cluster.leader(Duration::from_secs(10)).await;
    let client = cluster.client();
    assert_eq!(stats(&client).await, report);
    cluster.stop().await;
}
