//! Logs for operators: a healthy start and a clean restart print no warning or error, no
//! colours when stderr is not a terminal, a dead peer is mentioned every few seconds (not
//! per retried RPC), every line of `warden dev`'s members says which member wrote it, and
//! `--log-format json` writes one JSON object per line; a member listening beyond loopback
//! without TLS says so once per port. SIGTERM stops a member as cleanly as Ctrl-C.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::processes::ProcessCluster;

/// The lines of `log` at WARN or ERROR level.
fn alarms(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect()
}

/// Waits (at most 10 s) until the member at `endpoint` takes a write.
async fn serving(endpoint: String) {
    let client = warden_client::Client::new(vec![endpoint.clone()]).unwrap();
    let mut tries = 0;
    while client.put("/up", "1").await.is_err() {
        tries += 1;
        assert!(tries < 100, "{endpoint} did not serve");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_start_and_a_clean_restart_log_no_warning_or_error() {
    let mut cluster = ProcessCluster::start(3);
    cluster.leader().await;
    cluster.client().put("/kept", "yes").await.unwrap();
    for id in 1..=3 {
        cluster.stop(id);
    }
    for id in 1..=3 {
        cluster.spawn(id);
    }
    cluster.leader().await;
    assert_eq!(&cluster.client().get("/kept").await.unwrap().data[..], b"yes");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in 1..=3 {
        let log = cluster.log(id);
        assert!(alarms(&log).is_empty(), "member {id} logged:\n{}", alarms(&log).join("\n"));
        assert!(!log.contains('\u{1b}'), "member {id} wrote colours into a file:\n{log}");
        assert!(log.contains("node started"), "member {id} logged:\n{log}");
    }
}

/// systemd, Docker and Kubernetes stop a service with SIGTERM: a member stops as cleanly
/// as on Ctrl-C (exit status 0, its last line written), and starts again with its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_member_cleanly() {
    let mut cluster = ProcessCluster::start(3);
    cluster.leader().await;
    cluster.client().put("/kept", "yes").await.unwrap();
    let status = cluster.stop_with(1, "TERM").expect("member 1 ran");
    assert!(status.success(), "member 1 exited with {status} on SIGTERM:\n{}", cluster.log(1));
    let log = cluster.log(1);
    assert!(log.contains("SIGTERM: stopping") && log.contains("node stopped"), "{log}");
    assert!(alarms(&log).is_empty(), "member 1 logged:\n{}", alarms(&log).join("\n"));
    cluster.spawn(1);
    serving(cluster.clients[0].clone()).await;
    assert_eq!(&cluster.client().get("/kept").await.unwrap().data[..], b"yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_is_logged_every_few_seconds_not_per_retried_rpc() {
    let mut cluster = ProcessCluster::start(3);
    let leader = usize::try_from(cluster.leader().await).unwrap();
    let dead = if leader == 1 { 2 } else { 1 };
    let client = cluster.client();
    client.put("/x", "1").await.unwrap();
    // Only a member the leader has reached since it started is warned of; on a loaded
    // machine the member may still be starting, so wait until it has applied the write.
    let endpoint = cluster.clients[dead - 1].clone();
    let wrote = client.member_status(&cluster.clients[leader - 1]).await.unwrap().applied_index;
    let mut tries = 0;
    while client.member_status(&endpoint).await.map_or(true, |s| s.applied_index < wrote) {
        tries += 1;
        assert!(tries < 200, "member {dead} never applied the write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = cluster.log(leader).len();
    cluster.kill9(dead);
    // The leader replicates to the dead member many times a second meanwhile; it warns
    // once the member stayed away for 3 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let log = cluster.log(leader);
    let since = alarms(&log[before..]);
    assert!(!since.is_empty(), "the leader never said member {dead} is gone:\n{log}");
    assert!(since.len() <= 2, "{} alarms in 6 s:\n{}", since.len(), since.join("\n"));
    let said = since[0];
    assert!(said.contains("cannot reach member") && said.contains(&format!("peer={dead}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_lines_name_their_member_and_json_lines_parse() {
    let base = warden_testkit::free_ports(23);
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut dev = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["dev", "--base-port", &base.to_string()])
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    serving(format!("127.0.0.1:{base}")).await;
    Command::new("kill").args(["-INT", &dev.id().to_string()]).status().unwrap();
    dev.wait().unwrap();
    let text = std::fs::read_to_string(log.path()).unwrap();
    let from_members: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("warden_server") || l.contains("warden_storage"))
        .collect();
    assert!(from_members.len() >= 6, "{text}");
    for line in &from_members {
        assert!(line.contains("member{id="), "a member's line without its member: {line}");
    }
    assert!(alarms(&text).is_empty(), "{text}");

    // One member with --log-format json: every line is an object, with the member's span.
    let dir = tempfile::tempdir().unwrap();
    let ports = warden_testkit::members::loopback_ports(1);
    let config = warden_testkit::members::config_toml(&ports, 1, dir.path(), "");
    std::fs::write(dir.path().join("one.toml"), config).unwrap();
    let json_log = dir.path().join("json.log");
    let mut one = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["server", "--log-format", "json", "--config"])
        .arg(dir.path().join("one.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&json_log).unwrap())
        .spawn()
        .unwrap();
    serving(format!("127.0.0.1:{}", ports[0].0)).await;
    Command::new("kill").args(["-INT", &one.id().to_string()]).status().unwrap();
    one.wait().unwrap();
    let text = std::fs::read_to_string(&json_log).unwrap();
    assert!(text.lines().count() >= 3, "{text}");
    for line in text.lines() {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if object["target"].as_str().is_some_and(|t| t.starts_with("warden_server")) {
            assert_eq!(object["span"]["name"], "member", "{line}");
            assert_eq!(object["span"]["id"], 1, "{line}");
        }
    }
}

#[test]
fn a_member_beyond_loopback_without_tls_warns_once_per_port() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = (warden_testkit::free_port(), warden_testkit::free_port());
    let config = format!(
        "node_id = 1\nclient_addr = \"0.0.0.0:{c}\"\npeer_addr = \"0.0.0.0:{p}\"\ndata_dir = \"{}\"\n\
         [[initial_members]]\nid = 1\npeer_addr = \"127.0.0.1:{p}\"\nclient_addr = \"127.0.0.1:{c}\"\n",
        dir.path().join("data").display()
    );
    std::fs::write(dir.path().join("node.toml"), config).unwrap();
    let log_path = dir.path().join("node.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["server", "--config"])
        .arg(dir.path().join("node.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log_path).unwrap_or_default().contains("cluster founded")
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = std::fs::read_to_string(&log_path).unwrap();
    child.kill().ok();
    child.wait().ok();
    let warnings = alarms(&log);
    assert_eq!(warnings.len(), 2, "{log}");
    assert!(warnings[0].contains("client port listens beyond loopback without TLS"), "{log}");
    assert!(warnings[1].contains("peer port listens beyond loopback without TLS"), "{log}");
}
