//! The `warden-rotate` binary against an in-process member: its dry run, its timeout
//! (exit 3, the rotation left begun), a re-run that completes once the holder leaves, and
//! a kind that does not exist (exit 5).

#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::{Instant, sleep};
use warden_client::Client;
use warden_server::{Config, Faults, MemberConfig, Node};
use warden_testkit::free_port;

/// A one-member cluster on loopback that leads; its client address.
async fn member(dir: &TempDir) -> (Node, String) {
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
    let endpoint = node.client_addr().to_string();
    let client = Client::new(vec![endpoint.clone()]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(client.status().await, Ok(s) if s.leader_id == 1) {
        assert!(Instant::now() < deadline, "the member did not lead within 10 s");
        sleep(Duration::from_millis(50)).await;
    }
    (node, endpoint)
}

/// Runs `warden-rotate --endpoints ENDPOINT args...` off the runtime's threads (bounded by
/// the tool's own --timeout in every call here).
async fn rotate(endpoint: &str, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden-rotate"));
    command.args(["--endpoints", endpoint]).args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_plans_times_out_resumes_and_says_when_there_is_no_kind() {
    let dir = TempDir::new().unwrap();
    let (_node, endpoint) = member(&dir).await;
    let client = Client::new(vec![endpoint.clone()]).unwrap();
    client.resource_kind("/orders").init("v1").await.unwrap();
    let session = client.open_session(Duration::from_secs(10)).await.unwrap();
    let held = client.resource(&session, "/orders").acquire("42").await.unwrap();
    assert_eq!(held.lock_path(), "/orders/v1/42");

    let plan = rotate(&endpoint, &["/orders", "--to", "v2", "--dry-run"]).await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    assert!(text(&plan.stdout).contains("/orders/v1/42 session"), "{}", text(&plan.stdout));
    let status = client.resource_kind("/orders").status().await.unwrap();
    assert_eq!(status.rotating_to, None, "a dry run changes nothing");

    let timed_out = rotate(&endpoint, &["/orders", "--to", "v2", "--timeout", "300ms"]).await;
    assert_eq!(timed_out.status.code(), Some(3), "{}", text(&timed_out.stderr));
    let status = client.resource_kind("/orders").status().await.unwrap();
    assert_eq!(status.rotating_to.as_deref(), Some("v2"), "the rotation stays begun");

    // The holder leaves while a re-run waits: it picks the rotation up and finishes it.
    let leaving = async {
        sleep(Duration::from_millis(300)).await;
        held.release().await.unwrap();
    };
    let rerun = rotate(&endpoint, &["/orders", "--to", "v2", "--timeout", "20s", "-o", "json"]);
    let (done, ()) = tokio::join!(rerun, leaving);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let out = text(&done.stdout);
    assert!(out.contains("\"picked_up\":true") && out.contains("\"event\":\"done\""), "{out}");
    assert!(client.resource_kind("/orders").status().await.unwrap().is_at("v2"));

    let missing = rotate(&endpoint, &["/nothing", "--to", "v2"]).await;
    assert_eq!(missing.status.code(), Some(5), "{}", text(&missing.stderr));
    session.close().await.unwrap();
}
