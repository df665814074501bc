//! Watches over a real cluster: exactly-once, in-order delivery across a leader kill, and
//! the etcd watch regressions (resume after a partition, history compacted under a lagging
//! watcher, a start exactly at the compaction revision, a start in the future, a starved
//! watcher next to a healthy one), a revision larger than a gRPC message, a watch from
//! now that starts when `watch` returns, watches spread over the followers, and the bound
//! on what a member buffers for all its watchers together.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;
use warden_client::{ClientError, ErrorKind, Scope, WatchBatch, Watcher};
use warden_core::{CreateMode, EventKind, Limits, WatchFilter};
use warden_proto::v1 as pb;

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
        matches!(&bad, Err(ClientError::Server { kind, .. }) if *kind == Some(ErrorKind::InvalidGlob)),
        "{:?}",
        bad.err()
    );
    cluster.stop().await;
}

/// Creates `paths` (persistent, empty) in transactions of 128, four at a time.
async fn create_all(client: &Arc<warden_client::Client>, paths: &[String]) {
    let mut tasks = tokio::task::JoinSet::new();
    for group in paths.chunks(paths.len().div_ceil(4)) {
        let client = Arc::clone(client);
        let group = group.to_vec();
        tasks.spawn(async move {
            for chunk in group.chunks(128) {
                let ops = chunk
                    .iter()
                    .map(|path| warden_client::TxnOp::Create {
                        path: path.clone(),
                        data: Default::default(),
                        mode: CreateMode::PERSISTENT,
                    })
                    .collect();
                let r = client.txn(vec![], ops).await.unwrap();
                assert!(r.succeeded);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// The issue-11 scenario: `rm -r` of 20,000 nodes with 250-byte names is one revision whose
/// events are larger than a gRPC message. Watchers of the prefix, of `/` and of `/**` get
/// all of it, in order, as one batch, and then the next write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_larger_than_a_message_is_delivered_whole_and_in_order() {
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let client = Arc::new(cluster.client());
    let prefix = "/bulk";
    client.create(prefix, "", CreateMode::PERSISTENT).await.unwrap();
    let paths: Vec<String> =
        (0..20_000).map(|i| format!("{prefix}/{i:05}-{}", "n".repeat(244))).collect();
    create_all(&client, &paths).await;

    // The watchers are left unread while the same client writes: each has a connection of
    // its own, so the large revision they hold back cannot stall the writer's calls (h2
    // returns a connection's flow-control window only as each stream is read).
    let limits = Limits::default();
    let mut watchers = Vec::new();
    for (path, scope) in [(prefix, Scope::Prefix), ("/", Scope::Prefix), ("/**", Scope::Glob)] {
        let filter = match scope {
            Scope::Glob => WatchFilter::glob(path, &limits),
            _ => WatchFilter::prefix(path, &limits),
        }
        .unwrap();
        let watcher = client.watch(path, scope, 0, false).await.unwrap();
        watchers.push((path, filter, watcher));
    }
    assert_eq!(client.delete(prefix, None, true).await.unwrap(), 20_001);
    let (_, stat) = client.create(prefix, "again", CreateMode::PERSISTENT).await.unwrap();
    let later = stat.create_revision;

    // Children deepest first, in path order; then the prefix; then its parent's children.
    let mut deletion: Vec<(EventKind, String)> =
        paths.iter().map(|p| (EventKind::Deleted, p.clone())).collect();
    deletion.push((EventKind::Deleted, prefix.to_owned()));
    deletion.push((EventKind::Children, "/".to_owned()));
    for (path, filter, mut watcher) in watchers {
        let batches = timeout(Duration::from_secs(60), until(&mut watcher, later))
            .await
            .unwrap_or_else(|_| panic!("the watcher of {path} stalled"));
        let revisions: Vec<u64> = batches.iter().map(|b| b.revision).collect();
        assert_eq!(revisions, [later - 1, later], "the watcher of {path}: one batch per revision");
        let got: Vec<(EventKind, String)> =
            batches[0].events.iter().map(|e| (e.kind, e.path.clone())).collect();
        let expected: Vec<(EventKind, String)> =
            deletion.iter().filter(|(_, p)| filter.matches(p)).cloned().collect();
        assert!(expected.len() > 20_000, "the watcher of {path} expects {}", expected.len());
        assert!(
            got == expected,
            "the watcher of {path}: {} events, {} expected",
            got.len(),
            expected.len()
        );
        assert!(batches[0].events.iter().all(|e| e.revision == later - 1));
        let created: Vec<(EventKind, &str)> =
            batches[1].events.iter().map(|e| (e.kind, e.path.as_str())).collect();
        assert_eq!(created[0], (EventKind::Created, prefix), "the watcher of {path}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_watches_are_spread_over_the_followers() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let leader = cluster.leader(Duration::from_secs(5)).await;
    // A client that has not written yet: it asks who leads at its first watch.
    let client = cluster.client();
    let mut watchers = Vec::new();
    for _ in 0..6 {
        watchers.push(client.watch("/spread", Scope::Prefix, 0, false).await.unwrap());
    }
    let on = |id: u64| cluster.node(id).watch_hub().watchers();
    let counts: Vec<usize> = (1..=3).map(on).collect();
    assert_eq!(on(leader), 0, "watchers on the leader: {counts:?}");
    assert!(counts.iter().all(|c| *c == 0 || *c == 3), "uneven: {counts:?}");
    // They work: a write reaches every one.
    let (_, stat) = client.create("/spread", "", CreateMode::PERSISTENT).await.unwrap();
    for watcher in &mut watchers {
        let batches = until(watcher, stat.create_revision).await;
        assert_eq!(batches.last().map(|b| b.revision), Some(stat.create_revision));
    }
    cluster.stop().await;
}

/// A raw watch stream (no client-side resume), from now, on a connection of its own.
async fn raw_watch(endpoint: &str) -> tonic::Streaming<pb::WatchResponse> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let request = pb::WatchRequest {
        path: "/cap".into(),
        scope: pb::WatchScope::Prefix.into(),
        ..Default::default()
    };
    pb::watch_client::WatchClient::new(channel).watch(request).await.unwrap().into_inner()
}

/// Many watchers reading as they go and one that does not, on a member that may buffer
/// 256 KiB for them all: the one that does not is cancelled with a reason naming the
/// limit; the others get every revision, and none is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_members_buffer_limit_the_slowest_watcher_goes_and_the_others_complete() {
    const WRITES: usize = 300;
    const LIMIT: usize = 256 << 10;
    let cluster =
        TestCluster::start_with(1, FAST_TIMING, |c| c.watch.max_buffered_bytes = LIMIT).await;
    let endpoint = cluster.endpoint(1);
    let client = cluster.client();
    client.create("/cap", "", CreateMode::PERSISTENT).await.unwrap();
    let mut slow = raw_watch(&endpoint).await;
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut stream = raw_watch(&endpoint).await;
        readers.spawn(async move {
            let mut revisions = Vec::new();
            while revisions.len() < WRITES {
                let response = stream.message().await.unwrap().expect("the stream ended");
                assert!(!response.canceled, "a reader was cancelled: {}", response.cancel_reason);
                if !response.events.is_empty() {
                    revisions.push(response.header.unwrap().revision);
                }
            }
            revisions
        });
    }
    // 16 KiB values: the unread stream's HTTP/2 window fills after a few MB at most, then
    // the member queues for it, past the limit within the 300 writes.
    let mut written = Vec::new();
    for i in 0..WRITES {
        let stat = client.put(&format!("/cap/k{}", i % 10), vec![b'v'; 16 << 10]).await.unwrap();
        written.push(stat.mod_revision);
    }
    while let Some(done) = readers.join_next().await {
        assert_eq!(done.unwrap(), written, "a reader missed or repeated a revision");
    }
    let reason = timeout(Duration::from_secs(20), async {
        loop {
            let response = slow.message().await.unwrap().expect("ended without a reason");
            if response.canceled {
                return response.cancel_reason;
            }
        }
    })
    .await
    .expect("the unread watcher was never cancelled");
    assert!(reason.contains("watch.max_buffered_bytes"), "{reason}");
    // What was queued for it has been dropped.
    let hub = cluster.node(1).watch_hub();
    let drained = timeout(Duration::from_secs(5), async {
        while hub.buffered_bytes() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(drained.is_ok(), "{} bytes still queued", hub.buffered_bytes());
    cluster.stop().await;
}
