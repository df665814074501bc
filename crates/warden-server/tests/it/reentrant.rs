//! Reentrant locks on a real cluster: a session and owner count their acquires of a lock
//! they hold, releases give the counts back one by one and the next session is granted
//! only at zero, another owner of the session is refused, and a retried request (same
//! id) counts once. Over gRPC as the wire has it, and through the client's guards.

use std::time::Duration;

use tonic::Code;
use warden_client::LockError;
use warden_proto::v1 as pb;
use warden_proto::v1::lock_client::LockClient;
use warden_proto::{ERROR_METADATA, ErrorKind};

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

type Locks = LockClient<tonic::transport::Channel>;

fn id(seq: u64) -> Option<pb::RequestId> {
    Some(pb::RequestId { seq, lowest_pending: seq })
}

fn take(session_id: u64, owner: &str, seq: u64) -> pb::AcquireRequest {
    pb::AcquireRequest {
        path: "/re".into(),
        session_id,
        owner: owner.into(),
        request_id: id(seq),
        ..Default::default()
    }
}

fn kind(status: &tonic::Status) -> Option<ErrorKind> {
    ErrorKind::parse(status.metadata().get(ERROR_METADATA)?.to_str().ok()?)
}

async fn waiters(locks: &mut Locks, path: &str) -> Vec<pb::LockWaiter> {
    locks.status(pb::LockStatusRequest { path: path.into() }).await.unwrap().into_inner().waiters
}

/// Each waiter of `path` as (session, owner, holds, whether it holds).
async fn places(locks: &mut Locks, path: &str) -> Vec<(u64, String, u32, bool)> {
    let ws = waiters(locks, path).await;
    ws.into_iter().map(|w| (w.session_id, w.owner, w.holds, w.token.is_some())).collect()
}

/// Polls (at most 5 s) until the places of `path` are `expected`.
async fn until_places(locks: &mut Locks, path: &str, expected: &[(u64, &str, u32, bool)]) {
    let expected = owned(expected);
    let mut seen = Vec::new();
    for _ in 0..250 {
        seen = places(locks, path).await;
        if seen == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the places of {path} are {seen:?}, not {expected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_hold_passes_on_at_zero_and_a_retry_counts_once() {
    let cluster = TestCluster::start_tls_if_asked(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let a = client.open_session(Duration::from_secs(30)).await.unwrap();
    let b = client.open_session(Duration::from_secs(30)).await.unwrap();
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let mut locks = LockClient::new(cluster.channel(leader).await);

    // A takes the lock three times as one owner: one hold, one token.
    let first = locks.acquire(take(a.id(), "task-7", 1)).await.unwrap().into_inner();
    for seq in 2..=3 {
        let again = locks.acquire(take(a.id(), "task-7", seq)).await.unwrap().into_inner();
        assert_eq!((again.token, again.waiter.as_str()), (first.token, first.waiter.as_str()));
    }
    // B waits; the same request sent again (a retry) waits for the same place.
    let mut waiting = locks.clone();
    let b_id = b.id();
    let waited = tokio::spawn(async move { waiting.acquire(take(b_id, "worker", 1)).await });
    until_places(&mut locks, "/re", &[(a.id(), "task-7", 3, true), (b_id, "worker", 1, false)])
        .await;
    let mut retrying = locks.clone();
    let retried = tokio::spawn(async move { retrying.acquire(take(b_id, "worker", 1)).await });

    // A retry of A's third acquire is answered as the first time: no fourth count.
    let again = locks.acquire(take(a.id(), "task-7", 3)).await.unwrap().into_inner();
    assert_eq!(again.token, first.token);
    // Another owner of A, or none, is refused, and counts nothing.
    let other = locks.acquire(take(a.id(), "task-8", 4)).await.unwrap_err();
    assert_eq!(
        (other.code(), kind(&other)),
        (Code::FailedPrecondition, Some(ErrorKind::OtherOwner))
    );
    assert!(other.message().contains("\"task-7\""), "{other:?}");
    let none = locks.acquire(take(a.id(), "", 5)).await.unwrap_err();
    assert_eq!(kind(&none), Some(ErrorKind::OtherOwner), "{none:?}");
    let expected = [(a.id(), "task-7", 3, true), (b_id, "worker", 1, false)];
    assert_eq!(places(&mut locks, "/re").await, owned(&expected));

    // Two releases leave it held (a retried one counts once); B still waits.
    let give = |seq| pb::ReleaseRequest {
        path: "/re".into(),
        session_id: a.id(),
        token: Some(first.token),
        request_id: id(seq),
    };
    let released = locks.release(give(6)).await.unwrap().into_inner();
    assert_eq!((released.held, released.remaining), (true, 2));
    let released = locks.release(give(6)).await.unwrap().into_inner();
    assert_eq!((released.held, released.remaining), (true, 2), "a retry is the first answer");
    let released = locks.release(give(7)).await.unwrap().into_inner();
    assert_eq!((released.held, released.remaining), (true, 1));
    assert_eq!(
        places(&mut locks, "/re").await,
        owned(&[(a.id(), "task-7", 1, true), (b_id, "worker", 1, false)])
    );
    assert!(!waited.is_finished() && !retried.is_finished(), "granted before the count was 0");

    // The third grants B: both its calls get the one hold, counted once.
    let released = locks.release(give(8)).await.unwrap().into_inner();
    assert_eq!((released.held, released.remaining), (true, 0));
    let granted = waited.await.unwrap().unwrap().into_inner();
    assert!(granted.token > first.token);
    let granted_again = retried.await.unwrap().unwrap().into_inner();
    assert_eq!(granted_again.token, granted.token);
    assert_eq!(places(&mut locks, "/re").await, owned(&[(b_id, "worker", 1, true)]));
    cluster.stop().await;
}

/// Places as `places` gives them.
fn owned(expected: &[(u64, &str, u32, bool)]) -> Vec<(u64, String, u32, bool)> {
    expected.iter().map(|(s, o, n, h)| (*s, (*o).to_owned(), *n, *h)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_guard_of_a_reentrant_lock_gives_back_one_count() {
    let cluster = TestCluster::start_tls_if_asked(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let session = client.open_session(Duration::from_secs(30)).await.unwrap();
    let other = client.open_session(Duration::from_secs(30)).await.unwrap();
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let mut locks = LockClient::new(cluster.channel(leader).await);
    let lock = client.mutex(&session, "/rc").with_owner("task-7");
    let first = lock.acquire().await.unwrap();
    let second = lock.acquire().await.unwrap();
    let third = lock.try_acquire().await.unwrap();
    assert_eq!((second.token(), third.token()), (first.token(), first.token()));
    let status = client.lock_status("/rc").await.unwrap();
    let holder = &status.holders[0];
    assert_eq!((holder.owner.as_deref(), holder.holds), (Some("task-7"), 3));

    let contender = client.mutex(&other, "/rc");
    let waited = tokio::spawn(async move { contender.acquire().await.map(|g| g.token()) });
    let refused = client.mutex(&session, "/rc").with_owner("task-8").try_acquire().await;
    assert!(matches!(refused, Err(LockError::OtherOwner { .. })), "{refused:?}");

    // A dropped guard gives its count back in the background, a released one at once.
    let token = first.token();
    drop(first);
    until_places(
        &mut locks,
        "/rc",
        &[(session.id(), "task-7", 2, true), (other.id(), "", 1, false)],
    )
    .await;
    second.release().await.unwrap();
    assert_eq!(client.lock_status("/rc").await.unwrap().holders[0].holds, 1);
    assert!(!waited.is_finished(), "granted before the last count was given back");
    assert!(!third.is_lost());
    third.release().await.unwrap();
    let granted = tokio::time::timeout(Duration::from_secs(10), waited).await.unwrap();
    assert!(granted.unwrap().unwrap() > token);
    cluster.stop().await;
}
