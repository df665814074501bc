//! Sessions over a real cluster: a dead client's ephemeral nodes go after its ttl and never
//! before; live sessions survive the death of the leader.

use std::time::Duration;

use tokio::time::{Instant, sleep};
use warden_client::{ClientError, SessionState};
use warden_core::CreateMode;

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

async fn gone(client: &warden_client::Client, path: &str) -> bool {
    matches!(client.get(path).await, Err(ClientError::Server { code: tonic::Code::NotFound, .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_clients_ephemerals_go_after_the_ttl_and_never_before() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let ttl = Duration::from_secs(2);
    let session = client.open_session(ttl).await.unwrap();
    client.create_in(&session, "/alive", "x", CreateMode::EPHEMERAL).await.unwrap();
    // Let a few renewals happen, then die without closing.
    sleep(ttl).await;
    assert_eq!(session.state(), SessionState::Alive);
    let last_renewal = session.last_renewal();
    let died = Instant::now();
    session.abandon();
    while !gone(&client, "/alive").await {
        assert!(died.elapsed() < ttl + Duration::from_secs(3), "never expired");
        sleep(Duration::from_millis(20)).await;
    }
    let gone_at = Instant::now();
    eprintln!("ephemeral gone {:?} after the last renewal (ttl {ttl:?})", gone_at - last_renewal);
    assert!(gone_at >= last_renewal + ttl, "deleted before the ttl: {:?}", gone_at - last_renewal);
    assert!(
        gone_at <= died + ttl + Duration::from_secs(1),
        "deleted {:?} after death",
        gone_at - died
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sessions_survive_the_death_of_the_leader() {
    let mut cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let ttl = Duration::from_secs(3);
    let mut sessions = Vec::new();
    for i in 0..8 {
        let session = client.open_session(ttl).await.unwrap();
        client
            .create_in(&session, &format!("/member-{i}"), "x", CreateMode::EPHEMERAL)
            .await
            .unwrap();
        sessions.push(session);
    }
    // Past a checkpoint, so the new leader starts from checkpointed deadlines.
    sleep(Duration::from_millis(3_500)).await;
    let leader = cluster.leader(Duration::from_secs(5)).await;
    cluster.kill(leader).await;
    sleep(ttl * 2).await;
    for (i, session) in sessions.iter().enumerate() {
        assert_ne!(session.state(), SessionState::Lost, "session {i} lost");
        assert!(!gone(&client, &format!("/member-{i}")).await, "member-{i} expired");
    }
    let infos = client.sessions(0).await.unwrap();
    assert_eq!(infos.len(), 8);
    assert!(infos.iter().all(|s| s.ephemerals.len() == 1 && s.remaining_ms > 0));

    // Closing ends a session at once; abandoning, after its ttl.
    let mut sessions = sessions.into_iter();
    let closed = sessions.next().unwrap();
    assert_eq!(closed.close().await.unwrap(), 1);
    assert!(gone(&client, "/member-0").await);
    sessions.next().unwrap().abandon();
    sleep(ttl + Duration::from_millis(1_500)).await;
    assert!(gone(&client, "/member-1").await, "an abandoned session expired under the new leader");
    assert!(!gone(&client, "/member-2").await);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_quorum_keeps_no_session_alive() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let old = cluster.leader(Duration::from_secs(5)).await;
    // A client that can only reach the leader.
    let pinned = cluster.client_of(old);
    let ttl = Duration::from_secs(2);
    let session = pinned.open_session(ttl).await.unwrap();
    pinned.create_in(&session, "/holder", "x", CreateMode::EPHEMERAL).await.unwrap();
    for other in (1..=3).filter(|id| *id != old) {
        cluster.faults.cut(old, other);
    }
    // The isolated leader still thinks it leads, but it has no quorum: it must stop
    // renewing, so the client learns it lost the session while the majority expires it.
    let majority = warden_client::Client::new(
        (1..=3).filter(|id| *id != old).map(|id| cluster.endpoint(id)).collect(),
    )
    .unwrap();
    let deadline = Instant::now() + ttl * 4;
    while !gone(&majority, "/holder").await {
        assert!(Instant::now() < deadline, "the majority never expired the session");
        sleep(Duration::from_millis(50)).await;
    }
    let lost = tokio::time::timeout(ttl * 2, session.lost()).await;
    assert!(lost.is_ok(), "the client still believes in its session: {:?}", session.state());
    cluster.faults.heal();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_writes_are_retried_and_applied_exactly_once_across_a_leader_kill() {
    let mut cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    client.create("/log", "", CreateMode::PERSISTENT).await.unwrap();
    // The writer runs while the leader is killed, so some write is in flight at the kill.
    let writer_client = std::sync::Arc::new(cluster.client());
    let writer = {
        let client = std::sync::Arc::clone(&writer_client);
        tokio::spawn(async move {
            let session = client.open_session(Duration::from_secs(10)).await.unwrap();
            for i in 0..60 {
                // With a request id, a write whose answer was lost is sent again and the
                // cluster answers it from memory: the caller never sees "outcome unknown".
                client
                    .create_in(
                        &session,
                        "/log/op-",
                        format!("op{i}"),
                        CreateMode::PERSISTENT.sequential(),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("write {i}: {e}"));
                sleep(Duration::from_millis(10)).await;
            }
            session.close().await.unwrap();
        })
    };
    sleep(Duration::from_millis(300)).await;
    let leader = cluster.leader(Duration::from_secs(5)).await;
    cluster.kill(leader).await;
    writer.await.unwrap();
    let mut values = Vec::new();
    for (name, _) in
        client.children("/log", warden_client::Consistency::Linearizable).await.unwrap()
    {
        values.push(
            String::from_utf8(client.get(&format!("/log/{name}")).await.unwrap().data.to_vec())
                .unwrap(),
        );
    }
    let expected: Vec<String> = (0..60).map(|i| format!("op{i}")).collect();
    assert_eq!(values, expected, "every write once, in order");
    cluster.stop().await;
}
