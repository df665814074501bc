//! Watches over a real cluster: exactly-once, in-order delivery across a leader kill, and
//! the etcd watch regressions (resume after a partition, history compacted under a lagging
//! watcher, a start exactly at the compaction revision, a start in the future, a starved
//! watcher next to a healthy one).

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::timeout;
use warden_client::{ClientError, Scope, WatchBatch, Watcher};
use warden_core::CreateMode;

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

/// Collects event batches until one at `last` or later has arrived.
async fn until(watcher: &mut Watcher, last: u64) -> Vec<WatchBatch> {
    let mut got = Vec::new();
    loop {
        let batch = timeout(Duration::from_secs(20), watcher.next())
            .await
            .expect("the watch stalled")
            .expect("the watch failed");
        let revision = batch.revision;
        if !batch.events.is_empty() {
            got.push(batch);
        }
        if revision >= last {
            return got;
        }
    }
}

fn assert_contiguous(batches: &[WatchBatch], first: u64, last: u64) {
    let revisions: Vec<u64> = batches.iter().map(|b| b.revision).collect();
    let expected: Vec<u64> = (first..=last).collect();
    assert_eq!(revisions, expected, "every revision once, in order");
    for b in batches {
        assert!(b.events.iter().all(|e| e.revision == b.revision));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_watcher_sees_every_revision_once_across_a_leader_kill() {
    let mut cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let (_, stat) = client.create("/load", "", CreateMode::PERSISTENT).await.unwrap();
    let first = stat.create_revision;
    let watch_client = cluster.client();
    let mut watcher = watch_client.watch("/load", Scope::Prefix, first, true).await.unwrap();
    let mut acked = BTreeSet::from([first]);
    for i in 0..60 {
        if i == 30 {
            let leader = cluster.leader(Duration::from_secs(5)).await;
            cluster.kill(leader).await;
        }
        match client.put(&format!("/load/k{}", i % 7), format!("{i}")).await {
            Ok(stat) => {
                acked.insert(stat.mod_revision);
            }
            Err(ClientError::OutcomeUnknown { .. }) => {}
            Err(e) => panic!("put {i}: {e}"),
        }
    }
    let last = *acked.last().unwrap();
    let batches = until(&mut watcher, last).await;
    // Only this test writes, and everything it writes is under /load: the revisions seen
    // are exactly first..=last, and include every acknowledged write.
    assert_contiguous(&batches, first, last);
    let seen: BTreeSet<u64> = batches.iter().map(|b| b.revision).collect();
    assert!(acked.is_subset(&seen));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_a_partitioned_member_gets_everything_after_the_heal() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let (_, stat) = client.create("/p", "", CreateMode::PERSISTENT).await.unwrap();
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let isolated = (1..=3).find(|id| *id != leader).unwrap();
    let pinned = cluster.client_of(isolated);
    let mut watcher =
        pinned.watch("/p", Scope::Prefix, stat.create_revision + 1, false).await.unwrap();
    for other in (1..=3).filter(|id| *id != isolated) {
        cluster.faults.cut(isolated, other);
    }
    let majority = warden_client::Client::new(
        (1..=3).filter(|id| *id != isolated).map(|id| cluster.endpoint(id)).collect(),
    )
    .unwrap();
    let mut last = 0;
    for i in 0..10 {
        last = majority.put(&format!("/p/k{i}"), "v").await.unwrap().mod_revision;
    }
    cluster.faults.heal();
    let batches = until(&mut watcher, last).await;
    assert_contiguous(&batches, stat.create_revision + 1, last);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_lagging_watchers_future_starts_and_starvation() {
    let cluster = TestCluster::start_with(1, FAST_TIMING, |c| {
        c.watch.history_events = 20;
        c.watch.buffer = 4;
    })
    .await;
    let client = cluster.client();
    let (_, stat) = client.create("/w", "", CreateMode::PERSISTENT).await.unwrap();
    let base = stat.create_revision;

    // A start in the future waits for that revision.
    let mut future = client.watch("/w", Scope::Prefix, base + 5, false).await.unwrap();
    // A healthy watcher and a starved one (never read until the end).
    let mut healthy = client.watch("/w", Scope::Prefix, base + 1, false).await.unwrap();
    let mut starved = client.watch("/w", Scope::Prefix, base + 1, false).await.unwrap();
    // Open both streams before the writes.
    assert_eq!(healthy.next().await.unwrap().revision, base);
    assert_eq!(starved.next().await.unwrap().revision, base);
    assert_eq!(future.next().await.unwrap().revision, base + 4);

    let reader = tokio::spawn(async move {
        let batches = until(&mut healthy, base + 60).await;
        assert_contiguous(&batches, base + 1, base + 60);
    });
    // Large values, so the starved watcher's undelivered responses overflow the HTTP/2
    // windows and the member's buffers, whatever their sizes.
    let value = vec![b'x'; 128 * 1024];
    for i in 0..60 {
        client.put(&format!("/w/k{i}"), value.clone()).await.unwrap();
    }
    reader.await.unwrap();
    let batches = until(&mut future, base + 5).await;
    assert_eq!(batches[0].revision, base + 5, "a future start delivers from that revision");

    // The starved watcher was cancelled as too slow; resuming needs revisions that the
    // 20-event history no longer has, so it fails loudly rather than skipping them.
    let mut outcome = Ok(());
    for _ in 0..1_000 {
        match timeout(Duration::from_secs(10), starved.next()).await.expect("stalled") {
            Ok(_) => {}
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    let Err(ClientError::Compacted { oldest, .. }) = outcome else {
        panic!("the starved watcher was not told it lost history: {outcome:?}");
    };
    assert!(oldest > base + 1 && oldest <= base + 60, "oldest {oldest}");

    // Exactly at the compaction revision: refused; one after: served.
    let at = client.watch("/w", Scope::Prefix, oldest - 1, false).await;
    assert!(matches!(at, Err(ClientError::Compacted { oldest: o, .. }) if o == oldest));
    let mut after = client.watch("/w", Scope::Prefix, oldest, false).await.unwrap();
    let batches = until(&mut after, base + 60).await;
    assert_contiguous(&batches, oldest, base + 60);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_refused_by_a_restarted_member_is_served_by_one_with_the_history() {
    let mut cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let (_, stat) = client.create("/h", "", CreateMode::PERSISTENT).await.unwrap();
    let mut last = 0;
    for i in 0..5 {
        last = client.put(&format!("/h/k{i}"), "v").await.unwrap().mod_revision;
    }
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let restarted = (1..=3).find(|id| *id != leader).unwrap();
    cluster.wait_applied(cluster.applied(leader), Duration::from_secs(5)).await;
    cluster.kill(restarted).await;
    cluster.restart(restarted).await;
    // The restarted member's history starts at its current revision; the leader's does not.
    let restarted_first =
        warden_client::Client::new(vec![cluster.endpoint(restarted), cluster.endpoint(leader)])
            .unwrap();
    let only_restarted = cluster.client_of(restarted);
    let refused = only_restarted.watch("/h", Scope::Prefix, stat.create_revision, false).await;
    assert!(matches!(refused, Err(ClientError::Compacted { .. })));
    let mut watcher =
        restarted_first.watch("/h", Scope::Prefix, stat.create_revision, false).await.unwrap();
    let batches = until(&mut watcher, last).await;
    assert_contiguous(&batches, stat.create_revision, last);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_now_starts_when_watch_returns_not_at_the_first_next() {
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let mut watcher = client.watch("/now", Scope::Prefix, 0, false).await.unwrap();
    let (_, stat) = client.create("/now", "v", CreateMode::PERSISTENT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let batches = until(&mut watcher, stat.create_revision).await;
    assert_eq!(batches.len(), 1, "the write made before the first next() is delivered");
    assert_eq!(batches[0].revision, stat.create_revision);
    assert_eq!(batches[0].events[0].path, "/now");
    // Bad input fails at watch(), not at the first next().
    let bad = client.watch("/now/[", Scope::Glob, 0, false).await;
    assert!(
        matches!(&bad, Err(ClientError::Server { kind, .. }) if kind == "InvalidGlob"),
        "{:?}",
        bad.err()
    );
    cluster.stop().await;
}
