//! Deadlock detection on a real cluster: sessions served by different members cross their
//! locks; the acquire that closes the cycle fails at once with ABORTED, kind `Deadlock`,
//! naming the cycle, and leaves no wait behind; the waits already there proceed when a
//! holder lets go. With `WARDEN_TEST_TLS=1` the clusters run with mutual TLS.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Code;
use warden_client::{Client, ErrorKind, LockError, LockGuard, Session};
use warden_proto::ERROR_METADATA;
use warden_proto::v1 as pb;
use warden_proto::v1::lock_client::LockClient;

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

/// How long a call that should be refused at once, or a grant that should follow a
/// release, may take at most.
const BOUND: Duration = Duration::from_secs(10);

/// The sessions (in order) of the waiters of `path`, holders first.
async fn queue(cluster: &TestCluster, path: &str) -> Vec<u64> {
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let mut locks = LockClient::new(cluster.channel(leader).await);
    let status = locks.status(pb::LockStatusRequest { path: path.into() }).await;
    status
        .map(|s| s.into_inner().waiters.iter().map(|w| w.session_id).collect())
        .unwrap_or_default()
}

/// Waits (at most 5 s) until the queue of `path` is `expected`.
async fn until_queue(cluster: &TestCluster, path: &str, expected: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = queue(cluster, path).await;
        if now == expected {
            return;
        }
        assert!(Instant::now() < deadline, "the queue of {path} is {now:?}, not {expected:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Takes `path` at once in `session` (it must be free).
async fn hold(client: &Client, session: &Session, path: &str) -> LockGuard {
    client.mutex(session, path).try_acquire().await.unwrap()
}

/// Waits for `path` in `session` in the background.
fn wait(
    client: &Client,
    session: &Session,
    path: &str,
) -> JoinHandle<Result<LockGuard, LockError>> {
    let lock = client.mutex(session, path);
    tokio::spawn(async move { lock.acquire().await })
}

/// Whether `message` names `session` waiting for `path` behind `next`.
fn names(message: &str, session: u64, path: &str, next: u64) -> bool {
    let pattern = format!(") waits for {path:?} behind session {next} (");
    message.contains(&format!("session {session} (")) && message.contains(&pattern)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_crossing_locks_the_closing_acquire_is_aborted() {
    let cluster = TestCluster::start_tls_if_asked(3, FAST_TIMING, no_snapshots()).await;
    let (one, two) = (cluster.client_of(1), cluster.client_of(2));
    let a = one.open_session(Duration::from_secs(10)).await.unwrap();
    let b = two.open_session(Duration::from_secs(10)).await.unwrap();
    let x = hold(&one, &a, "/dl/x").await;
    let y = hold(&two, &b, "/dl/y").await;
    let a_waits = wait(&one, &a, "/dl/y");
    until_queue(&cluster, "/dl/y", &[b.id(), a.id()]).await;

    // Over the raw API: ABORTED, kind Deadlock, the cycle in the message.
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let mut locks = LockClient::new(cluster.channel(leader).await);
    let request =
        pb::AcquireRequest { path: "/dl/x".into(), session_id: b.id(), ..Default::default() };
    // Bounded: were the cycle not seen, the acquire would wait for ever.
    let refused = tokio::time::timeout(BOUND, locks.acquire(request)).await.unwrap().unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    let kind = refused.metadata().get(ERROR_METADATA).and_then(|v| v.to_str().ok());
    assert_eq!(kind, Some(ErrorKind::Deadlock.as_str()));
    let message = refused.message();
    assert!(names(message, b.id(), "/dl/x", a.id()), "{message}");
    assert!(names(message, a.id(), "/dl/y", b.id()), "{message}");

    // Through the client library: a lock error of its own, with the same cycle.
    match tokio::time::timeout(BOUND, two.mutex(&b, "/dl/x").acquire()).await.unwrap() {
        Err(LockError::Deadlock { path, message }) => {
            assert_eq!(path, "/dl/x");
            assert!(names(&message, b.id(), "/dl/x", a.id()), "{message}");
        }
        Err(e) => panic!("not a deadlock: {e:?}"),
        Ok(_) => panic!("a deadlocking acquire was granted"),
    }
    // Nothing was left behind, and the other wait proceeds when its holder lets go.
    assert_eq!(queue(&cluster, "/dl/x").await, [a.id()]);
    assert!(!a_waits.is_finished(), "a still waits");
    y.release().await.unwrap();
    let granted = tokio::time::timeout(BOUND, a_waits).await.unwrap().unwrap();
    let granted = granted.unwrap();
    assert_eq!(queue(&cluster, "/dl/y").await, [a.id()]);
    granted.release().await.unwrap();
    x.release().await.unwrap();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sessions_crossing_locks_the_closing_acquire_is_aborted() {
    let cluster = TestCluster::start_tls_if_asked(3, FAST_TIMING, no_snapshots()).await;
    let clients = [cluster.client_of(1), cluster.client_of(2), cluster.client_of(3)];
    let mut sessions = Vec::new();
    for c in &clients {
        sessions.push(c.open_session(Duration::from_secs(10)).await.unwrap());
    }
    let ids: Vec<u64> = sessions.iter().map(Session::id).collect();
    let paths = ["/dl3/a", "/dl3/b", "/dl3/c"];
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(hold(&clients[i], &sessions[i], paths[i]).await);
    }
    // 0 waits for 1's lock, 1 for 2's.
    let first = wait(&clients[0], &sessions[0], paths[1]);
    until_queue(&cluster, paths[1], &[ids[1], ids[0]]).await;
    let second = wait(&clients[1], &sessions[1], paths[2]);
    until_queue(&cluster, paths[2], &[ids[2], ids[1]]).await;

    // 2 asking for 0's lock closes 2 -> 0 -> 1 -> 2.
    let closing = clients[2].mutex(&sessions[2], paths[0]);
    let refused = tokio::time::timeout(BOUND, closing.acquire()).await.unwrap();
    let Err(LockError::Deadlock { message, .. }) = refused else {
        panic!("not a deadlock: {:?}", refused.err());
    };
    assert!(names(&message, ids[2], paths[0], ids[0]), "{message}");
    assert!(names(&message, ids[0], paths[1], ids[1]), "{message}");
    assert!(names(&message, ids[1], paths[2], ids[2]), "{message}");
    assert_eq!(queue(&cluster, paths[0]).await, [ids[0]], "no wait left behind");

    // 2 lets go of its lock: 1 gets it, then 0 gets 1's once 1 lets go of it.
    let mut held = held.into_iter();
    let (h0, h1, h2) = (held.next().unwrap(), held.next().unwrap(), held.next().unwrap());
    h2.release().await.unwrap();
    let got = tokio::time::timeout(BOUND, second).await.unwrap().unwrap();
    got.unwrap().release().await.unwrap();
    assert!(!first.is_finished(), "0 still waits for 1's lock");
    h1.release().await.unwrap();
    let got = tokio::time::timeout(BOUND, first).await.unwrap().unwrap();
    got.unwrap().release().await.unwrap();
    h0.release().await.unwrap();
    cluster.stop().await;
}
