//! The Lock service on a real cluster: hand-off in order with increasing fencing tokens,
//! try-acquire and timeouts that leave no wait behind, and lock-delay after a holder dies.

use std::time::Duration;

use tokio::time::Instant;
use tonic::Code;
use warden_proto::v1 as pb;
use warden_proto::v1::lock_client::LockClient;

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

async fn lock_client(cluster: &TestCluster) -> LockClient<tonic::transport::Channel> {
    let leader = cluster.leader(Duration::from_secs(5)).await;
    LockClient::connect(format!("http://{}", cluster.endpoint(leader))).await.unwrap()
}

fn acquire(path: &str, session_id: u64, timeout_ms: u64, delay_ms: u64) -> pb::AcquireRequest {
    pb::AcquireRequest { path: path.into(), session_id, timeout_ms, delay_ms, ..Default::default() }
}

async fn waiters(
    locks: &mut LockClient<tonic::transport::Channel>,
    path: &str,
) -> Vec<pb::LockWaiter> {
    locks.status(pb::LockStatusRequest { path: path.into() }).await.unwrap().into_inner().waiters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutex_hands_off_in_order_and_leaves_nothing_behind() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let (a, b, c) = (
        client.open_session(Duration::from_secs(10)).await.unwrap(),
        client.open_session(Duration::from_secs(10)).await.unwrap(),
        client.open_session(Duration::from_secs(10)).await.unwrap(),
    );
    let mut locks = lock_client(&cluster).await;
    let first = locks.acquire(acquire("/job", a.id(), 0, 0)).await.unwrap().into_inner();
    // B waits server-side.
    let mut waiting = locks.clone();
    let b_id = b.id();
    let second = tokio::spawn(async move { waiting.acquire(acquire("/job", b_id, 0, 0)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(waiters(&mut locks, "/job").await.len(), 2);

    // Try-acquire and a short timeout fail and leave no wait behind.
    let tried = locks.try_acquire(acquire("/job", c.id(), 0, 0)).await.unwrap_err();
    assert_eq!(tried.code(), Code::FailedPrecondition);
    let timed = locks.acquire(acquire("/job", c.id(), 300, 0)).await.unwrap_err();
    assert_eq!(timed.code(), Code::DeadlineExceeded);
    assert_eq!(waiters(&mut locks, "/job").await.len(), 2, "no wait leaked");

    let check = |token| pb::CheckSequencerRequest { path: "/job".into(), token };
    assert!(locks.check_sequencer(check(first.token)).await.unwrap().into_inner().valid);
    let released = locks
        .release(pb::ReleaseRequest { path: "/job".into(), session_id: a.id() })
        .await
        .unwrap();
    assert!(released.into_inner().held);
    let second = second.await.unwrap().unwrap().into_inner();
    assert!(second.token > first.token, "tokens strictly increase");
    assert!(!locks.check_sequencer(check(first.token)).await.unwrap().into_inner().valid);
    assert!(locks.check_sequencer(check(second.token)).await.unwrap().into_inner().valid);
    let status = waiters(&mut locks, "/job").await;
    assert_eq!(
        (status.len(), status[0].session_id, status[0].token),
        (1, b.id(), Some(second.token))
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_loses_the_lock_after_ttl_plus_lock_delay_never_before() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let ttl = Duration::from_secs(2);
    let delay = Duration::from_millis(1_500);
    let holder = client.open_session(ttl).await.unwrap();
    let next = client.open_session(Duration::from_secs(30)).await.unwrap();
    let mut locks = lock_client(&cluster).await;
    let delay_ms = delay.as_millis() as u64;
    let first =
        locks.acquire(acquire("/leader", holder.id(), 0, delay_ms)).await.unwrap().into_inner();
    let mut waiting = locks.clone();
    let next_id = next.id();
    let second =
        tokio::spawn(async move { waiting.acquire(acquire("/leader", next_id, 0, 0)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last_renewal = holder.last_renewal();
    holder.abandon();
    let second = second.await.unwrap().unwrap().into_inner();
    let granted = Instant::now();
    eprintln!(
        "lock granted {:?} after the dead holder's last renewal (ttl {ttl:?} + delay {delay:?})",
        granted - last_renewal
    );
    assert!(granted >= last_renewal + ttl + delay, "granted before ttl + lock-delay");
    assert!(second.token > first.token);
    cluster.stop().await;
}
