//! Sessions over a real cluster: a dead client's ephemeral nodes go after its ttl and never
//! before, even when the leader that acknowledged its last renewal dies (issue 11); live
//! sessions survive the death of the leader.

use std::time::Duration;

use futures::future::join_all;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tokio_stream::wrappers::ReceiverStream;
use warden_client::{ClientError, SessionState};
use warden_core::CreateMode;
use warden_proto::v1 as pb;
use warden_proto::v1::session_client::SessionClient;

use crate::cluster::{DEFAULT_TIMING, FAST_TIMING, TestCluster, no_snapshots};

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
    // A while into the ttl, so the new leader must carry deadlines the old one renewed.
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

/// A keepalive stream opened by hand on one member, renewing only when told to.
struct RawKeepAlive {
    id: u64,
    tx: mpsc::Sender<pb::KeepAliveRequest>,
    responses: tonic::Streaming<pb::KeepAliveResponse>,
}

impl RawKeepAlive {
    /// Opens the stream, retrying for a while if the member does not serve keepalives yet.
    async fn open(endpoint: &str, id: u64) -> RawKeepAlive {
        let mut client = SessionClient::connect(format!("http://{endpoint}")).await.unwrap();
        let until = Instant::now() + Duration::from_secs(3);
        loop {
            let (tx, rx) = mpsc::channel(4);
            match client.keep_alive(ReceiverStream::new(rx)).await {
                Ok(responses) => {
                    return RawKeepAlive { id, tx, responses: responses.into_inner() };
                }
                Err(e) if Instant::now() < until => {
                    eprintln!("keepalive stream on {endpoint} refused: {}", e.message());
                    sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("keepalive stream on {endpoint}: {e}"),
            }
        }
    }

    /// Sends one renewal and waits for its acknowledgement (the renewed ttl).
    async fn renew(&mut self) -> u64 {
        self.tx.send(pb::KeepAliveRequest { session_id: self.id, held: Vec::new() }).await.unwrap();
        loop {
            let answer = self.responses.message().await.unwrap().expect("an answer");
            if !answer.pushed {
                return answer.ttl_ms;
            }
        }
    }
}

/// The remaining ttl a member's state has for a session at its last checkpoint.
fn checkpointed(cluster: &TestCluster, member: u64, id: u64) -> Option<u64> {
    cluster
        .node(member)
        .state_machine()
        .read(|a| a.core.session(id).and_then(|s| s.checkpoint_remaining_ms))
}

/// Polls `member`'s checkpoint of `id` until `wanted` holds or `until` passes.
async fn checkpoint_where(
    cluster: &TestCluster,
    member: u64,
    id: u64,
    until: Instant,
    wanted: impl Fn(Option<u64>) -> bool,
) -> Option<u64> {
    loop {
        let seen = checkpointed(cluster, member, id);
        if wanted(seen) || Instant::now() >= until {
            return seen;
        }
        sleep(Duration::from_millis(5)).await;
    }
}

/// One round of issue 11: a client's last renewal is acknowledged long after the leader's
/// last checkpoint of its session, the client dies, and the leader dies right after. The
/// session must not end before that renewal plus the ttl. Returns how long after the
/// renewal was sent the session ended (a negative figure, in ms, is how early it was).
async fn renewal_then_leader_death_round() -> i64 {
    let ttl = Duration::from_secs(8);
    let ttl_ms = 8_000;
    let mut cluster = TestCluster::start(3, DEFAULT_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let session = client.open_session(ttl).await.unwrap();
    let id = session.id();
    client.create_in(&session, "/eph", "x", CreateMode::EPHEMERAL).await.unwrap();
    // The client dies; from here on only the raw stream renews.
    session.abandon();
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let mut keepalive = RawKeepAlive::open(&cluster.endpoint(leader), id).await;

    // Renew right after a checkpoint (at once if the leader takes none within its 3 s
    // period), so the next ones are taken 3 and 6 s after this renewal.
    let first = checkpoint_where(
        &cluster,
        leader,
        id,
        Instant::now() + Duration::from_millis(3_500),
        |c| c.is_some(),
    )
    .await;
    let aligned = Instant::now();
    assert_eq!(keepalive.renew().await, ttl_ms, "the aligning renewal");
    // Wait for the checkpoint that says more than 4.5 s of this renewal's ttl were spent
    // (the one taken ~6 s after it), so a new leader that started from it plus one election
    // timeout would end the session seconds before a fresh ttl. A leader that takes no
    // checkpoints (as since issue 11) is left 7 s into the ttl, 1 s before its deadline.
    let spent = checkpoint_where(&cluster, leader, id, aligned + Duration::from_secs(7), |c| {
        c != first && c.is_some_and(|ms| ms + 4_500 <= ttl_ms)
    })
    .await;
    // The renewal under test, then the leader's death before it can checkpoint again.
    let renewed = Instant::now();
    assert_eq!(keepalive.renew().await, ttl_ms, "the last renewal");
    cluster.kill(leader).await;
    let killed = renewed.elapsed();
    drop(keepalive);

    let survivors: Vec<u64> = (1..=3).filter(|m| *m != leader).collect();
    let gone = |cluster: &TestCluster| {
        survivors.iter().any(|m| {
            cluster
                .node(*m)
                .state_machine()
                .read(|a| a.core.session(id).is_none() || a.core.get("/eph").is_err())
        })
    };
    while !gone(&cluster) {
        assert!(renewed.elapsed() < ttl + Duration::from_secs(8), "the session never expired");
        sleep(Duration::from_millis(5)).await;
    }
    let after = renewed.elapsed();
    eprintln!(
        "last checkpoint before the last renewal (ms left): {spent:?}; leader {leader} \
         killed {killed:?} after it; session gone {after:?} after it (ttl {ttl:?})"
    );
    cluster.stop().await;
    i64::try_from(after.as_millis()).unwrap() - i64::try_from(ttl.as_millis()).unwrap()
}

/// Runs `rounds` rounds of [`renewal_then_leader_death_round`], `parallel` at a time, each on
/// its own cluster, and asserts that none ended the session early.
async fn renewal_then_leader_death_rounds(rounds: usize, parallel: usize) {
    let mut margins = Vec::new();
    let mut left = rounds;
    while left > 0 {
        let batch = left.min(parallel);
        let run = join_all((0..batch).map(|_| renewal_then_leader_death_round()));
        margins.extend(timeout(Duration::from_secs(90), run).await.expect("a batch of rounds"));
        left -= batch;
    }
    eprintln!("ms past renewal + ttl at which the session ended, per round: {margins:?}");
    let early: Vec<i64> = margins.iter().copied().filter(|m| *m < 0).collect();
    assert!(
        early.is_empty(),
        "{} of {rounds} rounds ended the session before renewal + ttl, by {:?} ms",
        early.len(),
        early.iter().map(|m| -m).collect::<Vec<_>>()
    );
}

/// Issue 11: renew, kill the client, kill the leader: the new leader must not end the
/// session before the renewal plus the ttl, whatever its last checkpoint said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_the_dead_leader_acknowledged_is_honoured_by_the_next() {
    renewal_then_leader_death_rounds(3, 3).await;
}

/// The long twin of the above: many rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 30 rounds, several minutes"]
async fn a_renewal_the_dead_leader_acknowledged_is_honoured_by_the_next_many_rounds() {
    renewal_then_leader_death_rounds(30, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_closed_by_an_operator_is_reported_to_its_holder_at_once() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    // Renewals every 20 s: hearing of the end within seconds means it was pushed.
    let session = client.open_session(Duration::from_secs(60)).await.unwrap();
    let guard = client.mutex(&session, "/held").acquire().await.unwrap();
    sleep(Duration::from_millis(300)).await;
    // An operator closes the session by its id (as `warden session close ID` does).
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let mut sessions =
        SessionClient::connect(format!("http://{}", cluster.endpoint(leader))).await.unwrap();
    let closed_at = Instant::now();
    sessions.close(pb::CloseSessionRequest { session_id: session.id() }).await.unwrap();
    timeout(Duration::from_secs(5), guard.lost()).await.expect("the holder was told within 5 s");
    eprintln!("holder told of its closed session after {:?}", closed_at.elapsed());
    // The guard hears first (its reason is set before the session's state changes).
    timeout(Duration::from_secs(1), session.lost()).await.expect("the session says lost");
    assert_eq!(guard.lost_reason().as_deref(), Some("session ended"));
    cluster.stop().await;
}
