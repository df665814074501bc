//! A leader cut off from the others is a minority: it cannot commit, the majority elects a
//! new leader and goes on, and after the heal the old leader converges, its uncommitted
//! write gone.

use std::time::Duration;

use warden_core::CreateMode;

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_cannot_commit_and_converges_after_the_heal() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    cluster.client().put("/before", "x").await.unwrap();
    let old = cluster.leader(Duration::from_secs(5)).await;
    let others: Vec<u64> = (1..=3).filter(|id| *id != old).collect();
    for other in &others {
        cluster.faults.cut(old, *other);
    }

    // The isolated leader accepts the proposal but can never commit it.
    let isolated = cluster.client_of(old);
    let attempt = tokio::time::timeout(
        Duration::from_secs(2),
        isolated.create("/lost", "x", CreateMode::PERSISTENT),
    )
    .await;
    assert!(!matches!(attempt, Ok(Ok(_))), "a minority committed a write: {attempt:?}");

    // The majority elects a leader of its own and commits.
    let majority =
        warden_client::Client::new(others.iter().map(|id| cluster.endpoint(*id)).collect())
            .unwrap();
    for i in 0..10 {
        majority.put(&format!("/during-{i}"), "y").await.unwrap();
    }
    let new = majority.status().await.unwrap().leader_id;
    assert!(others.contains(&new), "the new leader {new} is in the majority");

    cluster.faults.heal();
    cluster.wait_applied(cluster.applied(new), Duration::from_secs(10)).await;
    assert_eq!(cluster.state_bytes(old), cluster.state_bytes(new));
    let lost = cluster.client().get("/lost").await;
    assert!(lost.is_err(), "the uncommitted write survived: {lost:?}");
    assert_eq!(cluster.client().get("/during-9").await.unwrap().data, "y".as_bytes());
    cluster.stop().await;
}

/// A leader whose followers are gone is reachable but cannot serve a linearizable read: the
/// client says so, not that it could not connect (the followers' refusals came last).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_a_quorum_is_reported_as_such() {
    let mut cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    cluster.client().put("/x", "1").await.unwrap();
    let leader = cluster.leader(Duration::from_secs(5)).await;
    // The leader first, so every round ends with the refusals of the dead followers.
    let mut endpoints = vec![cluster.endpoint(leader)];
    for id in (1..=3).filter(|id| *id != leader) {
        endpoints.push(cluster.endpoint(id));
        cluster.kill(id).await;
    }
    let client = warden_client::Client::with_deadline(endpoints, Duration::from_secs(2)).unwrap();
    let read = client.get("/x").await;
    let Err(warden_client::ClientError::Unavailable { last, .. }) = &read else {
        panic!("not unavailable: {read:?}");
    };
    assert!(last.contains("cannot reach a quorum"), "{last}");
    // A write is refused before it is proposed: the client is told the cluster has no
    // quorum, not that the write's outcome is unknown.
    let write = client.put("/y", "1").await;
    let Err(warden_client::ClientError::Unavailable { last, .. }) = &write else {
        panic!("not unavailable: {write:?}");
    };
    assert!(
        last.contains("cannot reach a quorum") && last.contains("nothing was proposed"),
        "{last}"
    );
    // A serializable read is still served by the leader's replica.
    let stale = client.get_with("/x", warden_client::Consistency::Serializable).await.unwrap();
    assert_eq!(&stale.data[..], b"1");
    cluster.stop().await;
}
