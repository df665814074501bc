//! The programs of the repository's `examples/` folder, run against an in-process member
//! on loopback, so that they keep up with the API and keep doing what they say they do:
//! the fenced store refuses the deposed leader, the workers pass the double barrier
//! together, the lock serializes its holders with increasing tokens, the config watcher
//! sees every change once.

#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[allow(dead_code)]
#[path = "../../../examples/config_watch.rs"]
mod config_watch;
#[allow(dead_code)]
#[path = "../../../examples/leader.rs"]
mod leader;
#[allow(dead_code)]
#[path = "../../../examples/lock.rs"]
mod lock;
#[allow(dead_code)]
#[path = "../../../examples/workers.rs"]
mod workers;

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::{Instant, sleep, timeout};
use warden_client::Client;
use warden_server::{Config, Faults, MemberConfig, Node};
use warden_testkit::free_port;

/// The longest an example may take here (each waits at most 30 s for anything).
const LIMIT: Duration = Duration::from_secs(60);

/// A one-member cluster on loopback, with its data in a temporary folder.
struct Member {
    node: Node,
    _dir: TempDir,
}

impl Member {
    /// Starts the member and waits (up to 10 s) until it leads.
    async fn start() -> Member {
        let dir = TempDir::new().unwrap();
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let (client_addr, peer_addr) = (addr(free_port()), addr(free_port()));
        let config = Config {
            node_id: 1,
            client_addr,
            peer_addr,
            http_addr: addr(free_port()),
            data_dir: dir.path().join("node1"),
            initial_members: vec![MemberConfig {
                id: 1,
                peer_addr: peer_addr.to_string(),
                client_addr: client_addr.to_string(),
                identity: None,
            }],
            ..Config::default()
        };
        let node = Node::start(config, Faults::default()).await.unwrap();
        let member = Member { node, _dir: dir };
        let client = member.client();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(client.status().await, Ok(s) if s.leader_id == 1) {
            assert!(Instant::now() < deadline, "the member did not lead within 10 s");
            sleep(Duration::from_millis(50)).await;
        }
        member
    }

    fn client(&self) -> Client {
        Client::new(vec![self.node.client_addr().to_string()]).unwrap()
    }
}

#[tokio::test]
async fn leader_fenced_store_refuses_the_deposed_leader() {
    let member = Member::start().await;
    let client = member.client();
    let outcome = timeout(LIMIT, leader::run(&client)).await.expect("in time").unwrap();
    let (a, b) = outcome.tokens;
    assert!(a < b, "B's token {b} is not above A's {a}");
    assert!(!outcome.stale_write_accepted, "the store took A's write after B led");
    assert_eq!(outcome.data, "from B");
    // The fence keeps the highest token: A is refused however often it tries.
    let again = leader::fenced_write(&client, a, "from A, once more").await.unwrap();
    assert_eq!(again, leader::Write::Refused(b));
    // The tokens are the election's: CheckSequencer takes a leader's, and not B's once
    // B resigned.
    let session = client.open_session(Duration::from_secs(10)).await.unwrap();
    let c = client
        .election(&session, "/examples/leader/election")
        .campaign("C", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(c.token() > b);
    assert!(client.check_sequencer("/examples/leader/election", c.token()).await.unwrap());
    assert!(!client.check_sequencer("/examples/leader/election", b).await.unwrap());
    session.close().await.unwrap();
    member.node.shutdown().await;
}

#[tokio::test]
async fn workers_pass_the_double_barrier_together() {
    let member = Member::start().await;
    let n = 4;
    let seen = timeout(LIMIT, workers::run(&member.client(), n)).await.expect("in time").unwrap();
    assert_eq!(seen.len(), n as usize);
    for (i, s) in seen.iter().enumerate() {
        // Workers arrive 300 ms apart: without the barrier, worker 0 would see 1 arrived.
        assert_eq!(s.arrived, n, "worker {i} entered before all had arrived: {seen:?}");
        assert_eq!(s.finished, n, "worker {i} left before all had finished: {seen:?}");
    }
    // Everyone left: the barrier is gone, and can be used again.
    let again = timeout(LIMIT, workers::run(&member.client(), 2)).await.expect("in time").unwrap();
    assert!(again.iter().all(|s| s.arrived == 2 && s.finished == 2), "{again:?}");
    member.node.shutdown().await;
}

#[tokio::test]
async fn lock_serializes_holders_with_increasing_tokens() {
    let member = Member::start().await;
    let (tasks, rounds) = (3, 3);
    let outcome =
        timeout(LIMIT, lock::run(&member.client(), tasks, rounds)).await.expect("in time").unwrap();
    // A plain read-then-write loses updates when two run at once: none was lost.
    assert_eq!(outcome.added, u64::from(tasks * rounds));
    assert_eq!(outcome.tokens.len(), (tasks * rounds) as usize);
    assert!(
        outcome.tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens not increasing in grant order: {:?}",
        outcome.tokens
    );
    assert!(!outcome.released_token_accepted, "a released token still held the lock");
    member.node.shutdown().await;
}

#[tokio::test]
async fn config_watch_sees_the_read_value_then_every_change() {
    let member = Member::start().await;
    let client = member.client();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Stops after the value read and four changes.
    let watcher = async {
        let mut left = 5;
        config_watch::run(&client, |config| {
            tx.send(config.clone()).unwrap();
            left -= 1;
            if left == 0 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .await
    };
    let writer = async {
        // The changes are made once the watcher has read the config: each must come as
        // a change, none folded into the read.
        let first = rx.recv().await.unwrap();
        assert_eq!(first.value.as_deref(), Some("level=info"), "the default, created");
        let path = config_watch::CONFIG;
        client.set(path, "level=debug", None).await.unwrap();
        client.set(path, "level=warn", None).await.unwrap();
        client.delete(path, None, false).await.unwrap();
        client.create(path, "level=error", warden_client::CreateMode::PERSISTENT).await.unwrap();
        first
    };
    let (watched, first) = timeout(LIMIT, async { tokio::join!(watcher, writer) }).await.unwrap();
    watched.unwrap();
    let mut seen = vec![first];
    while let Ok(config) = rx.try_recv() {
        seen.push(config);
    }
    let values: Vec<Option<&str>> = seen.iter().map(|c| c.value.as_deref()).collect();
    assert_eq!(
        values,
        [Some("level=info"), Some("level=debug"), Some("level=warn"), None, Some("level=error")]
    );
    assert!(seen.windows(2).all(|w| w[0].revision < w[1].revision), "{seen:?}");
    member.node.shutdown().await;
}
