//! A cluster of in-process nodes on loopback ports, with kill, restart and link cuts.
//! [`TestCluster::start_tls_if_asked`] runs it with mutual TLS under `WARDEN_TEST_TLS=1`
//! (see `warden_testkit::tls`); its [`TestCluster::client`] and [`TestCluster::channel`]
//! then present the client certificate `alice`.

use std::net::SocketAddr;
use std::time::Duration;

use openraft::ServerState;
use tempfile::TempDir;
use tokio::time::{Instant, sleep};
use tonic::transport::{Channel, Endpoint};
use warden_client::Client;
use warden_server::{Config, Faults, MemberConfig, Node, SnapshotConfig};

use warden_testkit::free_port;

use crate::tls::Pki;

pub struct TestCluster {
    _dir: TempDir,
    pub configs: Vec<Config>,
    pub nodes: Vec<Option<Node>>,
    pub faults: Faults,
    /// The certificates, when the members run with mutual TLS.
    pub pki: Option<Pki>,
}

/// Timing for tests: etcd's defaults unless a test needs faster elections.
#[derive(Clone, Copy)]
pub struct Timing {
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
}

pub const DEFAULT_TIMING: Timing = Timing { heartbeat_ms: 100, election_timeout_ms: 1_000 };
pub const FAST_TIMING: Timing = Timing { heartbeat_ms: 50, election_timeout_ms: 300 };

impl TestCluster {
    /// Starts `n` nodes (ids 1..=n) and waits for a leader.
    pub async fn start(n: u64, timing: Timing, snapshot: SnapshotConfig) -> TestCluster {
        TestCluster::start_with(n, timing, |c| c.snapshot = snapshot.clone()).await
    }

    /// As [`TestCluster::start`], with mutual TLS on both ports when `WARDEN_TEST_TLS=1`
    /// (for the tests that reach the members only through [`TestCluster::client`],
    /// [`TestCluster::client_of`] and [`TestCluster::channel`]).
    pub async fn start_tls_if_asked(
        n: u64,
        timing: Timing,
        snapshot: SnapshotConfig,
    ) -> TestCluster {
        if !warden_testkit::tls::requested() {
            return TestCluster::start(n, timing, snapshot).await;
        }
        assert!(n <= 3, "the test PKI has member certificates for members 1 to 3");
        let pki = Pki::new();
        warden_server::install_crypto_provider();
        let mut cluster = TestCluster::start_with(n, timing, |c| {
            c.snapshot = snapshot.clone();
            c.tls = pki.member_tls(c.node_id);
        })
        .await;
        // The switch is for running these tests under TLS: make sure they do.
        let plain = Client::with_deadline(vec![cluster.endpoint(1)], Duration::from_secs(2));
        assert!(plain.unwrap().status().await.is_err(), "member 1 served a plain-text client");
        cluster.pki = Some(pki);
        cluster
    }

    /// As [`TestCluster::start`], with each config changed by `tweak`.
    pub async fn start_with(n: u64, timing: Timing, tweak: impl Fn(&mut Config)) -> TestCluster {
        TestCluster::start_seeded(n, timing, tweak, async |_| {}).await
    }

    /// As [`TestCluster::start_with`], with `seed` given the configs before any member
    /// starts (to write their data directories, as a restore from a backup does).
    pub async fn start_seeded(
        n: u64,
        timing: Timing,
        tweak: impl Fn(&mut Config),
        seed: impl AsyncFnOnce(&[Config]),
    ) -> TestCluster {
        let dir = TempDir::new().unwrap();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let members: Vec<MemberConfig> = ports
            .iter()
            .enumerate()
            .map(|(i, (c, p))| MemberConfig {
                id: i as u64 + 1,
                peer_addr: addr(*p).to_string(),
                client_addr: addr(*c).to_string(),
                identity: None,
            })
            .collect();
        let configs: Vec<Config> = ports
            .iter()
            .enumerate()
            .map(|(i, (c, p))| {
                let mut config = Config {
                    node_id: i as u64 + 1,
                    client_addr: addr(*c),
                    peer_addr: addr(*p),
                    // Any free port: tests read it back with `Node::http_addr`.
                    http_addr: addr(0),
                    data_dir: dir.path().join(format!("node{}", i + 1)),
                    initial_members: members.clone(),
                    heartbeat_ms: timing.heartbeat_ms,
                    election_timeout_ms: timing.election_timeout_ms,
                    ..Config::default()
                };
                tweak(&mut config);
                config
            })
            .collect();
        seed(&configs).await;
        let mut cluster = TestCluster {
            _dir: dir,
            configs,
            nodes: Vec::new(),
            faults: Faults::default(),
            pki: None,
        };
        for i in 0..n as usize {
            let node =
                Node::start(cluster.configs[i].clone(), cluster.faults.clone()).await.unwrap();
            cluster.nodes.push(Some(node));
        }
        cluster.leader(Duration::from_secs(10)).await;
        cluster
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes[(id - 1) as usize].as_ref().expect("node is running")
    }

    pub fn endpoint(&self, id: u64) -> String {
        self.configs[(id - 1) as usize].client_addr.to_string()
    }

    /// A client of every member.
    pub fn client(&self) -> Client {
        self.client_to(self.configs.iter().map(|c| c.client_addr.to_string()).collect())
    }

    /// A client of one member only (it still follows leader redirects).
    pub fn client_of(&self, id: u64) -> Client {
        self.client_to(vec![self.endpoint(id)])
    }

    fn client_to(&self, endpoints: Vec<String>) -> Client {
        match &self.pki {
            None => Client::new(endpoints).unwrap(),
            Some(pki) => Client::with_tls(endpoints, &pki.client_files("alice")).unwrap(),
        }
    }

    /// A gRPC channel to member `id`'s client port, for calls the client has no method for.
    pub async fn channel(&self, id: u64) -> Channel {
        let addr = self.configs[(id - 1) as usize].client_addr;
        match &self.pki {
            None => {
                Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
            }
            Some(pki) => crate::tls::channel(addr, pki.client_tls(Some("alice"))).await.unwrap(),
        }
    }

    pub fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().flatten()
    }

    /// The id of the leader the running nodes agree on, waiting up to `within`.
    pub async fn leader(&self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            let leaders: Vec<u64> = self
                .running()
                .filter(|n| n.raft().metrics().borrow().state == ServerState::Leader)
                .map(|n| n.id())
                .collect();
            if let [leader] = leaders[..] {
                return leader;
            }
            assert!(Instant::now() < deadline, "no single leader within {within:?}: {leaders:?}");
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops a node (its storage is released; its data stays).
    pub async fn kill(&mut self, id: u64) {
        let node = self.nodes[(id - 1) as usize].take().expect("node is running");
        node.shutdown().await;
    }

    /// Starts a stopped node again from its data directory.
    pub async fn restart(&mut self, id: u64) {
        let config = self.configs[(id - 1) as usize].clone();
        let node = Node::start(config, self.faults.clone()).await.unwrap();
        self.nodes[(id - 1) as usize] = Some(node);
    }

    /// Starts a stopped node again once its storage is released (connections that were
    /// open to it close in the background, and keep its storage open until they have):
    /// tries for up to 10 s.
    pub async fn restart_when_released(&mut self, id: u64) {
        let config = self.configs[(id - 1) as usize].clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Node::start(config.clone(), self.faults.clone()).await {
                Ok(node) => {
                    self.nodes[(id - 1) as usize] = Some(node);
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("member {id} does not start yet: {e}");
                    sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("member {id} did not start again: {e}"),
            }
        }
    }

    /// Waits until every running node has applied at least `index`.
    pub async fn wait_applied(&self, index: u64, within: Duration) {
        for node in self.running() {
            node.raft()
                .wait(Some(within))
                .applied_index_at_least(Some(index), "catch up")
                .await
                .unwrap_or_else(|e| panic!("node {} did not apply {index}: {e}", node.id()));
        }
    }

    /// The applied index of a node.
    pub fn applied(&self, id: u64) -> u64 {
        self.node(id).raft().metrics().borrow().last_applied.map(|l| l.index).unwrap_or(0)
    }

    /// A node's whole state, as snapshot bytes.
    pub fn state_bytes(&self, id: u64) -> Vec<u8> {
        self.node(id).state_machine().read(|a| a.core.snapshot().unwrap())
    }

    /// Starts member `id` (the next after the last) that founds nothing (`join` set), to be
    /// added with `Cluster.MemberAdd`; it gets the first member's timing.
    pub async fn start_joiner(&mut self, id: u64) {
        assert_eq!(id as usize, self.configs.len() + 1, "members are numbered in order");
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let (client, peer) = (addr(free_port()), addr(free_port()));
        let config = Config {
            node_id: id,
            client_addr: client,
            peer_addr: peer,
            http_addr: addr(0),
            data_dir: self._dir.path().join(format!("node{id}")),
            initial_members: vec![MemberConfig {
                id,
                peer_addr: peer.to_string(),
                client_addr: client.to_string(),
                identity: None,
            }],
            join: vec![self.endpoint(1)],
            ..self.configs[0].clone()
        };
        let node = Node::start(config.clone(), self.faults.clone()).await.unwrap();
        self.configs.push(config);
        self.nodes.push(Some(node));
    }

    pub async fn stop(mut self) {
        for i in 0..self.nodes.len() {
            if let Some(node) = self.nodes[i].take() {
                node.shutdown().await;
            }
        }
    }
}

/// A put, repeated while its outcome is unknown (a put of the same value may be applied
/// twice without harm): what a client does after the member it wrote to died.
pub async fn put_retrying(client: &Client, path: &str, value: &str) -> warden_core::Stat {
    for _ in 0..100 {
        match client.put(path, value.to_owned()).await {
            Ok(stat) => return stat,
            Err(warden_client::ClientError::OutcomeUnknown { .. }) => {
                sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("put {path}: {e}"),
        }
    }
    panic!("put {path}: outcome unknown 100 times");
}

pub fn no_snapshots() -> SnapshotConfig {
    SnapshotConfig::default()
}
