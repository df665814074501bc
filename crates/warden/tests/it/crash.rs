//! SIGKILL: of the leader (a new one takes over; the old one rejoins), and of every member
//! at once during a write load (every acknowledged write survives, none is applied twice).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use warden_client::Consistency;
use warden_core::CreateMode;

use crate::processes::ProcessCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_with_sigkill_is_replaced_and_rejoins() {
    let mut cluster = ProcessCluster::start(3);
    let client = cluster.client();
    client.put("/before", "x").await.unwrap();
    let old = cluster.leader().await as usize;
    let killed = Instant::now();
    cluster.kill9(old);
    // A put sent on the connection to the dead leader comes back "outcome unknown"; a put
    // of the same value may be repeated, so it is retried.
    for attempt in 0.. {
        match client.put("/after", "y").await {
            Ok(_) => break,
            Err(warden_client::ClientError::OutcomeUnknown { .. }) if attempt < 100 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("put after failover: {e}"),
        }
    }
    eprintln!(
        "failover (processes, election_timeout_ms = 400): first write committed {:?} after SIGKILL",
        killed.elapsed()
    );
    cluster.spawn(old);
    let pinned = warden_client::Client::new(vec![cluster.clients[old - 1].clone()]).unwrap();
    for _ in 0..100 {
        if let Ok(node) = pinned.get_with("/after", Consistency::Serializable).await {
            assert_eq!(node.data, "y".as_bytes());
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the restarted leader never caught up");
}

/// Runs `writers` tasks creating sequential nodes whose values are op ids unique across
/// rounds, until
/// `stop`; returns the ids whose create was acknowledged.
async fn write_load(
    endpoints: Vec<String>,
    round: usize,
    writers: usize,
    stop: Instant,
) -> Vec<String> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let client = warden_client::Client::new(endpoints.clone()).unwrap();
        let acked = Arc::clone(&acked);
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < stop && n < 100_000 {
                let op = format!("r{round}-w{w}-{n}");
                n += 1;
                if client
                    .create("/log/op-", op.clone(), CreateMode::PERSISTENT.sequential())
                    .await
                    .is_ok()
                {
                    acked.lock().unwrap().push(op);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    acked.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_killed_during_writes_loses_nothing_acknowledged_and_applies_nothing_twice() {
    let mut cluster = ProcessCluster::start(3);
    cluster.client().create("/log", "", CreateMode::PERSISTENT).await.unwrap();
    let mut acked = Vec::new();
    for round in 0..2 {
        let stop = Instant::now() + Duration::from_millis(1_500);
        let load = tokio::spawn(write_load(
            cluster.clients.clone(),
            round,
            4,
            stop + Duration::from_secs(2),
        ));
        let killer = async {
            tokio::time::sleep_until(stop).await;
            for id in 1..=3 {
                cluster.kill9(id);
            }
        };
        killer.await;
        let mut round_acked = load.await.unwrap();
        eprintln!(
            "round {round}: {} writes acknowledged before SIGKILL of every member",
            round_acked.len()
        );
        assert!(!round_acked.is_empty(), "the load made progress");
        acked.append(&mut round_acked);
        for id in 1..=3 {
            cluster.spawn(id);
        }
        cluster.leader().await;
    }

    let client = cluster.client();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for (name, _) in client.children("/log", Consistency::Linearizable).await.unwrap() {
        let node = client.get(&format!("/log/{name}")).await.unwrap();
        *seen.entry(String::from_utf8(node.data.to_vec()).unwrap()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied twice: {twice:?}");
    let lost: Vec<_> = acked.iter().filter(|op| !seen.contains_key(*op)).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost, e.g. {:?}", lost.len(), lost.first());
    eprintln!("{} acknowledged writes all present once; {} nodes in all", acked.len(), seen.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_the_election_timeout_expires_no_live_session() {
    let cluster = ProcessCluster::start(3);
    let client = cluster.client();
    client.create("/workers", "", CreateMode::PERSISTENT).await.unwrap();
    let ttl = Duration::from_secs(4);
    let mut sessions = Vec::new();
    for i in 0..5 {
        let session = client.open_session(ttl).await.unwrap();
        client
            .create_in(&session, &format!("/workers/w{i}"), "x", CreateMode::EPHEMERAL)
            .await
            .unwrap();
        sessions.push(session);
    }
    // A while into the ttl, then SIGSTOP the leader for longer than the election timeout
    // (400 ms) but shorter than the ttl, and let it run again.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let leader = cluster.leader().await as usize;
    cluster.signal(leader, "STOP");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    cluster.signal(leader, "CONT");
    tokio::time::sleep(ttl * 2).await;
    let children = client.children("/workers", Consistency::Linearizable).await.unwrap();
    assert_eq!(children.len(), 5, "live sessions expired: {children:?}");
    for session in &sessions {
        assert_ne!(session.state(), warden_client::SessionState::Lost);
    }
}
