//! Watch fan-out at scale, measured (ignored: a few minutes of CPU). W watchers of one
//! prefix, each reading everything, while 1,000 writes go in: how long the writes take with
//! and without them, how long until every watcher has every write, and how much memory the
//! process peaks at. Where the watchers are placed is chosen by `WARDEN_FANOUT_ON`: `leader`
//! (all through the leader, as a client of it alone), `follower` (all on one follower), or
//! `spread` (a client of every member, which spreads them itself).
//!
//! `WARDEN_FANOUT_ON=leader cargo test -p warden-server --test it fanout -- --ignored --nocapture`
//!
//! Measured on the 2-core machine (debug build, shared with other builds), 2,000 watchers,
//! 1,000 writes of 100 bytes ten at a time; the writes alone took 1.9-2.3 s each run:
//!
//! | code                         | placement              | writes  | peak RSS |
//! |------------------------------|------------------------|---------|----------|
//! | before (all on one member)   | leader                 | 107 s   | 237 MiB  |
//! | before                       | one follower           | 103 s   | 267 MiB  |
//! | after (spread, 256 MiB cap)  | spread: 0/1000/1000    | 72 s    | 236 MiB  |
//! | after                        | leader (a client of it)| 89 s    | 243 MiB  |
//!
//! In one process the members and the 2,000 clients share the two cores, so a watcher on a
//! follower costs the leader's writes almost as much as one on the leader; the gain of
//! spreading shows between processes. Every watcher here keeps up (at most 5.4 MiB was
//! queued on any member), so the buffer cap does not act: the member-side growth to 1 GB
//! needs a member whose streams fall behind the writes, which one process does not make
//! (the cap is tested in `watch.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::{Instant, timeout};
use warden_client::{Client, CreateMode, Scope};

use crate::cluster::{DEFAULT_TIMING, TestCluster, no_snapshots};

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// `writes` puts under /fan, ten at a time; how long they took.
async fn timed_writes(client: &Arc<Client>, writes: usize, round: usize) -> Duration {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..10 {
        let client = Arc::clone(client);
        tasks.spawn(async move {
            for i in (t..writes).step_by(10) {
                client.put(&format!("/fan/r{round}-k{i}"), vec![b'v'; 100]).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    started.elapsed()
}

/// The process's peak and current resident memory, MiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: thousands of watchers, minutes of CPU"]
async fn fanout() {
    let watchers: usize = setting("WARDEN_FANOUT_WATCHERS", "2000").parse().unwrap();
    let writes: usize = setting("WARDEN_FANOUT_WRITES", "1000").parse().unwrap();
    let on = setting("WARDEN_FANOUT_ON", "spread");
    let cluster = TestCluster::start(3, DEFAULT_TIMING, no_snapshots()).await;
    let writer = Arc::new(cluster.client());
    writer.create("/fan", "", CreateMode::PERSISTENT).await.unwrap();
    let alone = timed_writes(&writer, writes, 0).await;

    let leader = cluster.leader(Duration::from_secs(5)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let client = Arc::new(match on.as_str() {
        "leader" => cluster.client_of(leader),
        "follower" => cluster.client_of(follower),
        _ => cluster.client(),
    });
    let opening = Instant::now();
    let mut streams = Vec::new();
    for _ in 0..watchers {
        streams.push(client.watch("/fan", Scope::Prefix, 0, false).await.unwrap());
    }
    let opened = opening.elapsed();
    // Each watcher reads until it has seen every write of the measured round.
    let behind = Arc::new(AtomicU64::new(watchers as u64));
    let mut readers = tokio::task::JoinSet::new();
    for mut stream in streams {
        let behind = Arc::clone(&behind);
        readers.spawn(async move {
            let mut seen = 0;
            while seen < writes {
                let batch = stream.next().await.unwrap();
                seen += batch.events.iter().filter(|e| e.path.starts_with("/fan/r1-")).count();
            }
            behind.fetch_sub(1, Ordering::Relaxed);
        });
    }
    let placed: Vec<usize> = (1..=3).map(|id| cluster.node(id).watch_hub().watchers()).collect();
    let started = Instant::now();
    // The most any member buffered for its watchers, sampled while the writes go in.
    let mut buffered = 0;
    let writes_done = timed_writes(&writer, writes, 1);
    tokio::pin!(writes_done);
    let with = loop {
        tokio::select! {
            took = &mut writes_done => break took,
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                for id in 1..=3 {
                    buffered = buffered.max(cluster.node(id).watch_hub().buffered_bytes());
                }
            }
        }
    };
    let (peak_during, _) = memory();
    timeout(Duration::from_secs(600), async {
        while let Some(done) = readers.join_next().await {
            done.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} watchers still behind", behind.load(Ordering::Relaxed)));
    let delivered = started.elapsed();
    let (peak, now) = memory();
    eprintln!(
        "fanout: watchers={watchers} on={on} placed(leader={leader})={placed:?} writes={writes} \
         alone={alone:?} opened={opened:?} with_watchers={with:?} all_delivered={delivered:?} \
         max_member_buffered={}KiB peak_rss_during_writes={peak_during}MiB peak_rss={peak}MiB \
         rss_after={now}MiB",
        buffered >> 10
    );
    cluster.stop().await;
}
