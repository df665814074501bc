//! The HTTP port of a real 3-member cluster: `/health` (200 with a leader, 503 with the
//! reason without one), `/health/live`, `/metrics` (Prometheus text whose counters move
//! with the traffic) and `/cluster/status`; a taken `http_addr` fails the start, and
//! idle connections past the cap do not take the port down for good.
//!
//! The client is a plain HTTP/1.0 GET over a TCP stream: nothing more is needed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};
use warden_client::Scope;
use warden_core::CreateMode;
use warden_server::{Config, Faults, Node};

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

/// An answer: status code, headers (lower-case names), body.
pub(crate) struct Answer {
    pub(crate) code: u16,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// `GET path` on `addr`, HTTP/1.0 (the server closes the connection after the answer).
/// A connection closed or reset without an answer is code 0.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Answer {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        if let Err(e) = stream.write_all(request.as_bytes()).await {
            // Closed by the member before the request went out (over its connection cap).
            return if e.kind() == std::io::ErrorKind::BrokenPipe
                || e.kind() == std::io::ErrorKind::ConnectionReset
            {
                Ok(Vec::new())
            } else {
                Err(e)
            };
        }
        let mut raw = Vec::new();
        match stream.read_to_end(&mut raw).await {
            Ok(_) => Ok(raw),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    };
    let raw = timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path} on {addr} timed out"))
        .unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"));
    let text = String::from_utf8(raw).expect("a text answer");
    // Code 0: the member closed the connection without answering.
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Answer { code: 0, headers: BTreeMap::new(), body: text };
    };
    let mut lines = head.lines();
    let status = lines.next().expect("a status line");
    let code = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect(status);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer { code, headers, body: body.to_owned() }
}

/// Asks `path` until `done` holds for the answer, for up to 15 s.
pub(crate) async fn get_until(
    addr: SocketAddr,
    path: &str,
    done: impl Fn(&Answer) -> bool,
) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = get(addr, path).await;
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} on {addr}: still {} {}",
            answer.code,
            answer.body
        );
        sleep(Duration::from_millis(50)).await;
    }
}

/// Checks that `text` is the Prometheus text format: every line is a comment or
/// `name{labels} value`, and every sample's name was declared by a `# TYPE` line (or is
/// a histogram's `_bucket`, `_sum` or `_count` of one). Returns the samples by series.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut declared = Vec::new();
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            match words[..] {
                ["TYPE", name, kind] => {
                    assert!(valid_name(name), "bad name in {line:?}");
                    let kinds = ["counter", "gauge", "histogram", "summary", "untyped"];
                    assert!(kinds.contains(&kind), "bad type in {line:?}");
                    declared.push(name.to_owned());
                }
                ["HELP", name, ..] => assert!(valid_name(name), "bad name in {line:?}"),
                _ => panic!("unexpected comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}"));
                for label in labels.split(',').filter(|l| !l.is_empty()) {
                    let (key, quoted) = label.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
                    assert!(valid_name(key), "bad label in {line:?}");
                    assert!(quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'));
                }
                name
            }
            None => series,
        };
        assert!(valid_name(name), "bad name in {line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| declared.iter().any(|d| d == f)))
            .unwrap_or(name);
        assert!(declared.iter().any(|d| d == family), "{name} has no # TYPE line");
        assert!(samples.insert(series.to_owned(), value).is_none(), "{series} twice");
    }
    samples
}

async fn metrics_of(node: &Node) -> BTreeMap<String, f64> {
    let answer = get(node.http_addr(), "/metrics").await;
    assert_eq!(answer.code, 200, "{}", answer.body);
    let content_type = answer.headers.get("content-type").cloned().unwrap_or_default();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    parse_prometheus(&answer.body)
}

/// The sum of `series` over every running member.
async fn sum(cluster: &TestCluster, series: &str) -> f64 {
    let mut total = 0.0;
    for node in cluster.running() {
        total += metrics_of(node).await.get(series).copied().unwrap_or(0.0);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_is_healthy_and_one_left_alone_says_no_leader() {
    let mut cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let leader = cluster.leader(Duration::from_secs(10)).await;
    for node in cluster.running() {
        let addr = node.http_addr();
        let health = get_until(addr, "/health", |a| a.code == 200).await;
        assert_eq!(
            health.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
        let health = health.json();
        assert_eq!(health["status"], "ok", "{health}");
        assert_eq!(health["member_id"], node.id());
        assert_eq!(health["role"], if node.id() == leader { "leader" } else { "follower" });
        assert_eq!(health["leader_id"], leader);
        assert_eq!(health["linearizable"], true);
        assert_eq!(health["reason"], Value::Null);
        assert!(health["term"].as_u64().is_some_and(|t| t >= 1), "{health}");
        assert!(health["commit_index"].as_u64().is_some(), "{health}");
        assert!(health["applied_index"].as_u64().is_some(), "{health}");
        let live = get(addr, "/health/live").await;
        assert_eq!((live.code, live.json()["member_id"].as_u64()), (200, Some(node.id())));
        let missing = get(addr, "/nowhere").await;
        assert_eq!(missing.code, 404);
        assert!(missing.body.contains("/health"), "{}", missing.body);
    }

    // A follower whose peers are all stopped loses its leader.
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    for id in (1..=3).filter(|id| *id != survivor) {
        cluster.kill(id).await;
    }
    let addr = cluster.node(survivor).http_addr();
    let alone = get_until(addr, "/health", |a| a.code == 503).await.json();
    assert_eq!(alone["status"], "unavailable", "{alone}");
    assert_eq!(alone["reason"], "no leader", "{alone}");
    assert_eq!(alone["linearizable"], false);
    assert_eq!(alone["leader_id"], Value::Null);
    assert_eq!(get(addr, "/health/live").await.code, 200, "the process still lives");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_left_alone_says_it_has_no_quorum() {
    let mut cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let leader = cluster.leader(Duration::from_secs(10)).await;
    for id in (1..=3).filter(|id| *id != leader) {
        cluster.kill(id).await;
    }
    let addr = cluster.node(leader).http_addr();
    let alone = get_until(addr, "/health", |a| a.code == 503).await.json();
    // openraft 0.9's leader does not step down without a quorum: it says why it is not
    // ready instead.
    let reason = alone["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("no quorum: the leader has not heard from a majority for"),
        "{alone}"
    );
    assert_eq!(alone["role"], "leader");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_and_move_with_the_traffic() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let names = [
        "warden_raft_term",
        "warden_raft_leader_id",
        "warden_raft_is_leader",
        "warden_raft_leader_changes_total",
        "warden_raft_last_log_index",
        "warden_raft_commit_index",
        "warden_raft_applied_index",
        "warden_raft_snapshot_index",
        "warden_raft_log_entries",
        "warden_snapshot_duration_seconds_count{kind=\"built\"}",
        "warden_snapshot_size_bytes",
        "warden_storage_fsync_duration_seconds_count",
        "warden_sessions",
        "warden_watch_streams",
        "warden_watch_events_sent_total",
        "warden_lock_holders{kind=\"mutex\"}",
        "warden_lock_waiters{kind=\"mutex\"}",
        "warden_proposals_total{result=\"applied\"}",
        "warden_proposals_total{result=\"failed\"}",
        "warden_proposal_duration_seconds_count",
    ];
    for node in cluster.running() {
        let samples = metrics_of(node).await;
        for name in names {
            assert!(samples.contains_key(name), "member {}: no {name}", node.id());
        }
        assert_eq!(samples["warden_raft_is_leader"], f64::from(node.id() == leader));
        assert!(samples["warden_storage_fsync_duration_seconds_count"] >= 1.0);
        // The leader is looked at a few times a second: its first sighting comes soon.
        let deadline = Instant::now() + Duration::from_secs(10);
        while metrics_of(node).await["warden_raft_leader_changes_total"] < 1.0 {
            assert!(Instant::now() < deadline, "member {}: no leader change counted", node.id());
            sleep(Duration::from_millis(50)).await;
        }
    }

    // A put of a new path is a Set refused NOT_FOUND, then a Create.
    let create = "warden_grpc_requests_total{code=\"OK\",method=\"/warden.v1.KV/Create\"}";
    let set = "warden_grpc_requests_total{code=\"NotFound\",method=\"/warden.v1.KV/Set\"}";
    let before = (sum(&cluster, create).await, sum(&cluster, set).await);
    let client = cluster.client();
    client.create("/m", "", CreateMode::PERSISTENT).await.unwrap();
    let mut watcher = client.watch("/m", Scope::Prefix, 0, false).await.unwrap();
    for i in 0..5 {
        client.put(&format!("/m/k{i}"), format!("{i}")).await.unwrap();
    }
    let after = (sum(&cluster, create).await, sum(&cluster, set).await);
    assert!(after.0 >= before.0 + 6.0, "Create requests counted: {before:?} then {after:?}");
    assert!(after.1 >= before.1 + 5.0, "Set refusals counted: {before:?} then {after:?}");
    let latency = "warden_grpc_request_duration_seconds_count{method=\"/warden.v1.KV/Create\"}";
    assert!(sum(&cluster, latency).await >= 5.0);
    let leader_metrics = metrics_of(cluster.node(leader)).await;
    assert!(leader_metrics["warden_proposals_total{result=\"applied\"}"] >= 6.0);
    assert!(leader_metrics["warden_proposal_duration_seconds_count"] >= 6.0);

    // The watch got the five puts: the events sent count them, wherever it is served.
    let mut seen = 0;
    while seen < 5 {
        let batch = timeout(Duration::from_secs(10), watcher.next()).await.unwrap().unwrap();
        seen += batch.events.len();
    }
    assert_eq!(sum(&cluster, "warden_watch_streams").await, 1.0);
    assert!(sum(&cluster, "warden_watch_events_sent_total").await >= 5.0);
    drop(watcher);

    // Sessions and locks are read from the state: every member sees them once applied.
    let sessions: Vec<_> = {
        let mut opened = Vec::new();
        for _ in 0..3 {
            opened.push(client.open_session(Duration::from_secs(10)).await.unwrap());
        }
        opened
    };
    let guard = client.mutex(&sessions[0], "/locks/a").acquire().await.unwrap();
    let waiting = client.mutex(&sessions[1], "/locks/a");
    let waiter = tokio::spawn(async move { waiting.acquire().await.map(|g| g.token()) });
    for node in cluster.running() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let samples = metrics_of(node).await;
            let got = (
                samples["warden_sessions"],
                samples["warden_lock_holders{kind=\"mutex\"}"],
                samples["warden_lock_waiters{kind=\"mutex\"}"],
            );
            if got == (3.0, 1.0, 1.0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member {}: sessions, holders, waiters {got:?}",
                node.id()
            );
            sleep(Duration::from_millis(50)).await;
        }
    }
    guard.release().await.unwrap();
    assert!(waiter.await.unwrap().is_ok());
    // The lock statistics by prefix (the first two segments: the lock itself here), from
    // the replicated state, on every member: two grants, one of them after a wait, and
    // the first hold ended (the second ends too once the waiter's dropped guard is
    // released).
    for node in cluster.running() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let samples = metrics_of(node).await;
            let of = |name: &str| samples.get(&format!("{name}{{prefix=\"/locks/a\"}}")).copied();
            let got = (
                of("warden_lock_acquisitions_total"),
                of("warden_lock_contended_acquisitions_total"),
                of("warden_lock_wait_seconds_count"),
                of("warden_lock_hold_seconds_count"),
            );
            if matches!(got, (Some(2.0), Some(1.0), Some(2.0), Some(holds)) if holds >= 1.0) {
                let all = "warden_lock_wait_seconds_bucket{prefix=\"/locks/a\",le=\"+Inf\"}";
                assert_eq!(samples.get(all), Some(&2.0));
                break;
            }
            assert!(Instant::now() < deadline, "member {}: lock statistics {got:?}", node.id());
            sleep(Duration::from_millis(50)).await;
        }
    }

    // A snapshot built is counted, with its size.
    cluster.node(leader).raft().trigger().snapshot().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = metrics_of(cluster.node(leader)).await;
        if samples["warden_snapshot_duration_seconds_count{kind=\"built\"}"] >= 1.0 {
            assert!(samples["warden_snapshot_size_bytes"] > 0.0);
            assert!(samples["warden_raft_snapshot_index"] > 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot counted");
        sleep(Duration::from_millis(50)).await;
    }
    drop(sessions);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_is_the_cli_document_as_one_member_knows_it() {
    let cluster = TestCluster::start(3, FAST_TIMING, no_snapshots()).await;
    let leader = cluster.leader(Duration::from_secs(10)).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let addr = cluster.node(follower).http_addr();
    let answer = get_until(addr, "/cluster/status", |a| a.json()["leader_id"] == leader).await;
    assert_eq!(answer.code, 200);
    let status = answer.json();
    assert!(status["term"].as_u64().is_some_and(|t| t >= 1), "{status}");
    let members = status["members"].as_array().expect("members");
    let ids: Vec<u64> = members.iter().filter_map(|m| m["id"].as_u64()).collect();
    assert_eq!(ids, [1, 2, 3], "{status}");
    for m in members {
        let id = m["id"].as_u64().unwrap_or_default();
        assert_eq!(m["client_addr"], cluster.endpoint(id), "{status}");
        let (role, applied_known) = match id {
            id if id == follower => ("follower", true),
            id if id == leader => ("leader", false),
            _ => ("unknown", false),
        };
        assert_eq!(m["role"], role, "{status}");
        assert_eq!(m["applied_index"].as_u64().is_some(), applied_known, "{status}");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn a_taken_http_port_fails_the_start_naming_http_addr() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let data = TempDir::new().unwrap();
    let mut config = Config {
        data_dir: data.path().join("node"),
        client_addr: "127.0.0.1:0".parse().unwrap(),
        peer_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: taken.local_addr().unwrap(),
        ..Config::default()
    };
    config.initial_members[0].peer_addr = "127.0.0.1:0".into();
    let error =
        Node::start(config, Faults::default()).await.err().expect("started on a taken port");
    let error = error.to_string();
    assert!(error.contains("http_addr"), "{error}");
    assert!(error.contains(&taken.local_addr().unwrap().to_string()), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_cap_do_not_take_the_member_down() {
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    let addr = cluster.node(1).http_addr();
    // More connections than the port serves, sending nothing.
    let mut idle = Vec::new();
    for _ in 0..80 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Those past the cap are closed by the member at once.
    let mut closed = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) = timeout(Duration::from_millis(200), stream.read(&mut byte)).await {
            closed += 1;
        }
    }
    assert!(closed >= 80 - 64, "only {closed} of 80 idle connections were closed");
    // The member still serves its clients, and the HTTP port comes back once the idle
    // connections time out.
    cluster.client().put("/still", "here").await.unwrap();
    let live = get_until(addr, "/health/live", |a| a.code == 200).await;
    assert_eq!(live.json()["status"], "ok");
    drop(idle);
    cluster.stop().await;
}
