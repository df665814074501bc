//! Hierarchical locks and priorities on a real cluster, through the client library: a
//! subtree lock waits for the locks held below it and then keeps them out; a request that
//! asked later does not pass it even for a free lock it covers; a deadlock across the
//! hierarchy is refused; a higher priority is served first. With `WARDEN_TEST_TLS=1` the
//! clusters run with mutual TLS.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use warden_client::LockScope as Scope;
use warden_client::{Client, LockError, LockGuard, Session};

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

/// How long a grant that should follow a release, or a refusal, may take at most.
const BOUND: Duration = Duration::from_secs(10);

fn spawn(lock: warden_client::Lock) -> JoinHandle<Result<LockGuard, LockError>> {
    tokio::spawn(async move { lock.acquire().await })
}

/// Waits (at most 5 s) until `path` has `waiting` waiters besides its holders.
async fn until_waiting(client: &Client, path: &str, waiting: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = client.lock_status(path).await.map(|s| s.waiters.len()).unwrap_or(0);
        if now == waiting {
            return;
        }
        assert!(Instant::now() < deadline, "{path} has {now} waiters, not {waiting}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sessions(client: &Client, n: usize) -> Vec<Session> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(client.open_session(Duration::from_secs(10)).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subtree_lock_waits_for_the_locks_below_and_nobody_passes_it() {
    let cluster = TestCluster::start_tls_if_asked(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let s = sessions(&client, 3).await;
    let below = client.write_lock(&s[0], "/tree/x").acquire().await.unwrap();
    let subtree = spawn(client.write_lock(&s[1], "/tree").with_subtree());
    until_waiting(&client, "/tree", 1).await;
    let status = client.lock_status("/tree").await.unwrap();
    assert_eq!(status.waiters[0].scope, Scope::Subtree, "{status:?}");

    // /tree/y is free, but the subtree request came first and covers it.
    let later = client.write_lock(&s[2], "/tree/y");
    let later = later.acquire_timeout(Duration::from_millis(500)).await;
    assert!(matches!(later, Err(LockError::Timeout { .. })), "{:?}", later.map(|g| g.token()));
    assert!(!subtree.is_finished());

    below.release().await.unwrap();
    let whole = tokio::time::timeout(BOUND, subtree).await.unwrap().unwrap().unwrap();
    let kept_out = spawn(client.read_lock(&s[2], "/tree/x/deep"));
    until_waiting(&client, "/tree/x/deep", 1).await;
    whole.release().await.unwrap();
    let reader = tokio::time::timeout(BOUND, kept_out).await.unwrap().unwrap().unwrap();
    reader.release().await.unwrap();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_across_the_hierarchy_is_refused_and_priorities_go_first() {
    let cluster = TestCluster::start_tls_if_asked(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let s = sessions(&client, 3).await;

    // a holds a lock below /dl, b holds /u and waits for all of /dl: a asking for /u
    // would wait for b, which waits for a.
    let x = client.write_lock(&s[0], "/dl/x").acquire().await.unwrap();
    let u = client.write_lock(&s[1], "/u").acquire().await.unwrap();
    let b_waits = spawn(client.write_lock(&s[1], "/dl").with_subtree());
    until_waiting(&client, "/dl", 1).await;
    match tokio::time::timeout(BOUND, client.write_lock(&s[0], "/u").acquire()).await.unwrap() {
        Err(LockError::Deadlock { path, message }) => {
            assert_eq!(path, "/u");
            assert!(message.contains("/dl"), "{message}");
        }
        other => panic!("not refused as a deadlock: {:?}", other.map(|g| g.token())),
    }
    x.release().await.unwrap();
    let all = tokio::time::timeout(BOUND, b_waits).await.unwrap().unwrap().unwrap();
    all.release().await.unwrap();

    // /u is held by b; a asks at priority 0, then c at priority 9: c is served first.
    let low = spawn(client.write_lock(&s[0], "/u"));
    until_waiting(&client, "/u", 1).await;
    let high = spawn(client.write_lock(&s[2], "/u").with_priority(9));
    until_waiting(&client, "/u", 2).await;
    u.release().await.unwrap();
    let first = tokio::time::timeout(BOUND, high).await.unwrap().unwrap().unwrap();
    assert!(!low.is_finished(), "the lower priority waits");
    first.release().await.unwrap();
    let second = tokio::time::timeout(BOUND, low).await.unwrap().unwrap().unwrap();
    second.release().await.unwrap();
    cluster.stop().await;
}
