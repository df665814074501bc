//! The Rust client on its own: these tests name no other warden crate. Transactions with
//! the re-exported core types, a lock's holders apart from its waiters, the sequencer
//! check, a watcher as a `Stream`, and sessions and guards that end when dropped, even
//! where no tokio runtime runs.

use std::time::Duration;

use futures::StreamExt;
use tokio::time::{Instant, sleep, timeout};
use warden_client::{
    Check, Client, Code, Compare, CompareOp, CreateMode, LockKind, Scope, Session, TxnOp,
    TxnOpResult, WaitMode,
};

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

/// Waits up to `within` for `check` to hold.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if check().await {
            return true;
        }
        sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn gone(client: &Client, path: &str) -> bool {
    matches!(client.get(path).await, Err(e) if e.code() == Some(Code::NotFound))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_lock_status_and_sequencers_with_the_client_crate_alone() {
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();

    let create =
        TxnOp::Create { path: "/t".into(), data: "v0".into(), mode: CreateMode::PERSISTENT };
    let done = client.txn(vec![], vec![create]).await.unwrap();
    assert!(done.succeeded);
    let TxnOpResult::Created { path, stat } = &done.results[0] else { panic!("{done:?}") };
    assert_eq!((path.as_str(), stat.version), ("/t", 0));
    let at_version = |v| Compare { path: "/t".into(), check: Check::Version(CompareOp::Equal, v) };
    let set = || TxnOp::Set { path: "/t".into(), data: "v1".into(), expected_version: None };
    let missing = Compare { path: "/nope".into(), check: Check::Exists(true) };
    let refused = client.txn(vec![at_version(0), missing], vec![set()]).await.unwrap();
    assert_eq!((refused.succeeded, refused.failed_compare), (false, Some(1)));
    assert!(refused.results.is_empty());
    let applied = client.txn(vec![at_version(0)], vec![set()]).await.unwrap();
    assert!(matches!(applied.results[..], [TxnOpResult::Set { stat }] if stat.version == 1));
    assert_eq!(&client.get("/t").await.unwrap().data[..], b"v1");

    // A holder and a waiter, told apart; the holder's token is good, no other is.
    let (holder, waiter) = (
        client.open_session(Duration::from_secs(30)).await.unwrap(),
        client.open_session(Duration::from_secs(30)).await.unwrap(),
    );
    let guard = client.mutex(&holder, "/m").acquire().await.unwrap();
    let waiting = client.mutex(&waiter, "/m");
    let next = tokio::spawn(async move { waiting.acquire().await });
    assert!(
        eventually(Duration::from_secs(5), || async {
            client.lock_status("/m").await.is_ok_and(|s| s.waiters.len() == 1)
        })
        .await,
        "the second session never queued"
    );
    let status = client.lock_status("/m").await.unwrap();
    assert_eq!(status.kind, LockKind::Mutex);
    assert_eq!(status.holders.len(), 1);
    assert_eq!(status.holders[0].session_id, holder.id());
    assert_eq!(status.holders[0].token, Some(guard.token()));
    assert_eq!(status.holders[0].mode, WaitMode::Exclusive);
    assert_eq!((status.waiters[0].session_id, status.waiters[0].token), (waiter.id(), None));
    assert!(client.check_sequencer("/m", guard.token()).await.unwrap());
    assert!(!client.check_sequencer("/m", guard.token() + 1).await.unwrap());
    assert!(!client.check_sequencer("/no-lock", guard.token()).await.unwrap());
    let old = guard.token();
    guard.release().await.unwrap();
    let next = timeout(Duration::from_secs(5), next).await.unwrap().unwrap().unwrap();
    assert!(!client.check_sequencer("/m", old).await.unwrap(), "a released token is no good");
    assert!(client.check_sequencer("/m", next.token()).await.unwrap());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_is_a_stream_of_batches() {
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    client.create("/s", "", CreateMode::PERSISTENT).await.unwrap();
    let watcher = client.watch("/s", Scope::Prefix, 0, false).await.unwrap();
    let mut revisions = Vec::new();
    for i in 0..3 {
        revisions.push(client.put(&format!("/s/k{i}"), "v").await.unwrap().mod_revision);
    }
    let got: Vec<u64> = timeout(
        Duration::from_secs(10),
        watcher
            .filter_map(|batch| async move {
                let batch = batch.unwrap();
                (!batch.events.is_empty()).then_some(batch.revision)
            })
            .take(3)
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the stream stalled");
    assert_eq!(got, revisions);
    cluster.stop().await;
}

/// Holds `/d` and makes an ephemeral node in a session of 30 s: long enough that only a
/// close, not an expiry, ends them within the test.
async fn holding(client: &Client) -> (Session, warden_client::LockGuard) {
    let session = client.open_session(Duration::from_secs(30)).await.unwrap();
    client.create_in(&session, "/e", "", CreateMode::EPHEMERAL).await.unwrap();
    let guard = client.mutex(&session, "/d").acquire().await.unwrap();
    (session, guard)
}

/// Whether another session can take `/d` within `within`.
async fn lock_free(client: &Client, within: Duration) -> bool {
    let other = client.open_session(Duration::from_secs(30)).await.unwrap();
    let lock = client.mutex(&other, "/d");
    let free = eventually(within, || async {
        match lock.try_acquire().await {
            Ok(guard) => guard.release().await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
    other.close().await.unwrap();
    free
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_session_is_closed_now_and_its_guards_say_why() {
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let (session, guard) = holding(&client).await;
    drop(session);
    timeout(Duration::from_secs(1), guard.lost()).await.expect("the guard was not told");
    assert_eq!(guard.lost_reason().as_deref(), Some("session closed"));
    assert!(eventually(Duration::from_secs(3), || gone(&client, "/e")).await, "not closed");
    assert!(lock_free(&client, Duration::from_secs(3)).await, "the lock stayed held");
    drop(guard);

    // Dropped where no runtime runs: closed all the same.
    let (session, guard) = holding(&client).await;
    std::thread::spawn(move || drop(session)).join().unwrap();
    assert!(eventually(Duration::from_secs(3), || gone(&client, "/e")).await, "not closed");
    assert!(guard.is_lost());
    drop(guard);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_dropped_where_no_runtime_runs_still_releases() {
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let (session, guard) = holding(&client).await;
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert!(lock_free(&client, Duration::from_secs(3)).await, "the dropped guard held on");
    // The session lives on: only the guard was dropped.
    assert!(client.get("/e").await.is_ok());
    session.close().await.unwrap();
    cluster.stop().await;
}
