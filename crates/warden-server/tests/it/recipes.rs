//! Elections and barriers on a real 3-member cluster, over their gRPC services: leadership
//! handed over in order with increasing tokens, proclaims fenced by token, Observe seeing
//! every change (and replaying it from a revision), and barriers that hold their members
//! exactly until they may pass. With `WARDEN_TEST_TLS=1` the cluster runs with mutual TLS.

use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use warden_proto::v1 as pb;
use warden_proto::v1::barrier_client::BarrierClient;
use warden_proto::v1::election_client::ElectionClient;
use warden_proto::v1::lock_client::LockClient;
use warden_proto::{ERROR_METADATA, ErrorKind};

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

fn kind(status: &tonic::Status) -> Option<ErrorKind> {
    ErrorKind::parse(status.metadata().get(ERROR_METADATA)?.to_str().ok()?)
}

fn campaign(name: &str, session_id: u64, value: &str, timeout_ms: u64) -> pb::CampaignRequest {
    pb::CampaignRequest {
        name: name.into(),
        session_id,
        value: value.as_bytes().to_vec().into(),
        timeout_ms,
    }
}

/// The leader an Observe message names: (session, token, value), or None for no leader.
fn seen(m: &pb::ObserveResponse) -> Option<(u64, u64, String)> {
    m.leader
        .as_ref()
        .map(|l| (l.session_id, l.token, String::from_utf8_lossy(&l.value).into_owned()))
}

async fn next(stream: &mut tonic::Streaming<pb::ObserveResponse>) -> pb::ObserveResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an observe message within 10 s")
        .expect("the stream is open")
        .expect("a message, not an error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_passes_in_order_fenced_by_token_and_observed_change_by_change() {
    let cluster = TestCluster::start_tls_if_asked(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let a = client.open_session(Duration::from_secs(10)).await.unwrap();
    let b = client.open_session(Duration::from_secs(10)).await.unwrap();
    let leader_id = cluster.leader(Duration::from_secs(5)).await;
    // Observe through a follower: changes are applied there too.
    let follower = (1..=3).find(|id| *id != leader_id).unwrap();
    let mut observer = ElectionClient::new(cluster.channel(follower).await);
    let mut elections = ElectionClient::new(cluster.channel(leader_id).await);
    let observe = pb::ObserveRequest { name: "/svc/primary".into(), start_revision: 0 };
    let mut stream = observer.observe(observe).await.unwrap().into_inner();
    let first = next(&mut stream).await;
    assert_eq!(seen(&first), None, "no leader yet");

    let led =
        elections.campaign(campaign("/svc/primary", a.id(), "a:1", 0)).await.unwrap().into_inner();
    let t1 = led.leader.as_ref().unwrap().token;
    assert_eq!(seen(&next(&mut stream).await), Some((a.id(), t1, "a:1".into())));
    let mut waiting = elections.clone();
    let b_id = b.id();
    let second =
        tokio::spawn(
            async move { waiting.campaign(campaign("/svc/primary", b_id, "b:1", 0)).await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second candidate waits");

    let leader =
        elections.leader(pb::LeaderRequest { name: "/svc/primary".into(), serializable: false });
    let leader = leader.await.unwrap().into_inner().leader.unwrap();
    assert_eq!((leader.session_id, leader.token, &leader.value[..]), (a.id(), t1, &b"a:1"[..]));

    // Only the leader proclaims, with its token.
    let proclaim = |session_id, token, value: &str| pb::ProclaimRequest {
        name: "/svc/primary".into(),
        session_id,
        token,
        value: value.as_bytes().to_vec().into(),
    };
    let refused = elections.proclaim(proclaim(b.id(), t1, "b:x")).await.unwrap_err();
    assert_eq!(
        (refused.code(), kind(&refused)),
        (Code::FailedPrecondition, Some(ErrorKind::HoldEnded))
    );
    elections.proclaim(proclaim(a.id(), t1, "a:2")).await.unwrap();
    assert_eq!(seen(&next(&mut stream).await), Some((a.id(), t1, "a:2".into())));

    // A resign hands over to the next candidate with a higher token.
    elections
        .resign(pb::ResignRequest { name: "/svc/primary".into(), session_id: a.id(), token: t1 })
        .await
        .unwrap();
    let second = second.await.unwrap().unwrap().into_inner().leader.unwrap();
    assert_eq!(second.session_id, b.id());
    assert!(second.token > t1, "tokens strictly increase");
    assert_eq!(seen(&next(&mut stream).await), Some((b.id(), second.token, "b:1".into())));
    let deposed = elections.proclaim(proclaim(a.id(), t1, "a:3")).await.unwrap_err();
    assert_eq!(
        kind(&deposed),
        Some(ErrorKind::HoldEnded),
        "a deposed leader's proclaim is refused"
    );
    let mut locks = LockClient::new(cluster.channel(leader_id).await);
    let check = |token| pb::CheckSequencerRequest { path: "/svc/primary".into(), token };
    assert!(locks.check_sequencer(check(second.token)).await.unwrap().into_inner().valid);
    assert!(!locks.check_sequencer(check(t1)).await.unwrap().into_inner().valid);

    // The last candidate's session ends: no leader.
    let b_id = b.id();
    b.close().await.unwrap();
    assert_eq!(seen(&next(&mut stream).await), None);
    let none =
        elections.leader(pb::LeaderRequest { name: "/svc/primary".into(), serializable: false });
    let none = none.await.unwrap_err();
    assert_eq!((none.code(), kind(&none)), (Code::NotFound, Some(ErrorKind::NoLeader)));

    // Replayed from the first change's revision, the same changes in the same order.
    let from =
        pb::ObserveRequest { name: "/svc/primary".into(), start_revision: first.revision + 1 };
    let mut replay = observer.observe(from).await.unwrap().into_inner();
    let mut replayed = Vec::new();
    for _ in 0..4 {
        replayed.push(seen(&next(&mut replay).await));
    }
    let expected = vec![
        Some((a.id(), t1, "a:1".to_owned())),
        Some((a.id(), t1, "a:2".to_owned())),
        Some((b_id, second.token, "b:1".to_owned())),
        None,
    ];
    assert_eq!(replayed, expected);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_that_times_out_or_is_dropped_leaves_no_candidate() {
    let cluster = TestCluster::start_tls_if_asked(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let a = client.open_session(Duration::from_secs(10)).await.unwrap();
    let b = client.open_session(Duration::from_secs(10)).await.unwrap();
    let leader_id = cluster.leader(Duration::from_secs(5)).await;
    let mut elections = ElectionClient::new(cluster.channel(leader_id).await);
    let mut locks = LockClient::new(cluster.channel(leader_id).await);
    elections.campaign(campaign("/e", a.id(), "a", 0)).await.unwrap();
    let timed = elections.campaign(campaign("/e", b.id(), "b", 300)).await.unwrap_err();
    assert_eq!((timed.code(), kind(&timed)), (Code::DeadlineExceeded, Some(ErrorKind::Timeout)));
    let mut dropped = elections.clone();
    let b_id = b.id();
    let call = tokio::spawn(async move { dropped.campaign(campaign("/e", b_id, "b", 0)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let queue =
            locks.status(pb::LockStatusRequest { path: "/e".into() }).await.unwrap().into_inner();
        assert_eq!(queue.r#type, "election");
        if queue.waiters.len() == 1 {
            assert_eq!(queue.waiters[0].session_id, a.id());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dropped campaign's candidacy was not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A lock call on the election is refused by recipe.
    let acquire =
        pb::AcquireRequest { path: "/e".into(), session_id: b.id(), ..Default::default() };
    let wrong = locks.try_acquire(acquire).await.unwrap_err();
    assert_eq!(
        (wrong.code(), kind(&wrong)),
        (Code::FailedPrecondition, Some(ErrorKind::WrongRecipe))
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barriers_hold_their_members_until_they_may_pass() {
    let cluster = TestCluster::start_tls_if_asked(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(client.open_session(Duration::from_secs(10)).await.unwrap());
    }
    let ids: Vec<u64> = sessions.iter().map(|s| s.id()).collect();
    let leader_id = cluster.leader(Duration::from_secs(5)).await;
    let channel: Channel = cluster.channel(leader_id).await;
    let mut barriers = BarrierClient::new(channel);

    // A barrier: waits pass once it is removed, and at once when it is not set.
    let wait = |session_id, timeout_ms| pb::BarrierWaitRequest {
        name: "/go".into(),
        session_id,
        timeout_ms,
    };
    barriers.wait(wait(ids[0], 0)).await.unwrap();
    let set =
        barriers.set(pb::BarrierSetRequest { name: "/go".into() }).await.unwrap().into_inner();
    assert!(set.created);
    let timed = barriers.wait(wait(ids[0], 200)).await.unwrap_err();
    assert_eq!(kind(&timed), Some(ErrorKind::Timeout));
    let mut waiter = barriers.clone();
    let id = ids[1];
    let waiting = tokio::spawn(async move { waiter.wait(wait(id, 0)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = barriers
        .status(pb::BarrierStatusRequest { name: "/go".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.r#type.as_str(), status.set), ("barrier", true));
    assert_eq!(
        status.members.iter().map(|m| m.session_id).collect::<Vec<_>>(),
        [ids[1]],
        "the timed-out wait left"
    );
    assert!(!waiting.is_finished());
    let removed = barriers
        .remove(pb::BarrierRemoveRequest { name: "/go".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((removed.removed, removed.released), (true, 1));
    waiting.await.unwrap().unwrap();

    // A double barrier of 3: nobody is through before the third enters.
    let enter = |session_id| pb::BarrierEnterRequest {
        name: "/round".into(),
        session_id,
        count: 3,
        timeout_ms: 0,
    };
    let mut entering = Vec::new();
    for id in &ids[..2] {
        let mut b = barriers.clone();
        let request = enter(*id);
        entering.push(tokio::spawn(async move { b.enter(request).await }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(entering.iter().all(|e| !e.is_finished()), "two of three are in: nobody passes");
    let status = barriers
        .status(pb::BarrierStatusRequest { name: "/round".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.r#type.as_str(), status.set, status.count, status.members.len()),
        ("double", false, 3, 2)
    );
    barriers.enter(enter(ids[2])).await.unwrap();
    for e in entering {
        e.await.unwrap().unwrap();
    }
    // Leaving: nobody returns before all have left.
    let leave =
        |session_id| pb::BarrierLeaveRequest { name: "/round".into(), session_id, timeout_ms: 0 };
    let mut leaving = Vec::new();
    for id in &ids[..2] {
        let mut b = barriers.clone();
        let request = leave(*id);
        leaving.push(tokio::spawn(async move { b.leave(request).await }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(leaving.iter().all(|l| !l.is_finished()), "one member is still in");
    barriers.leave(leave(ids[2])).await.unwrap();
    for l in leaving {
        l.await.unwrap().unwrap();
    }
    let gone =
        barriers.status(pb::BarrierStatusRequest { name: "/round".into() }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "the double barrier went with its last member");
    let not_in = barriers.leave(leave(ids[0])).await.unwrap_err();
    assert_eq!(kind(&not_in), Some(ErrorKind::NotHeld));
    cluster.stop().await;
}
