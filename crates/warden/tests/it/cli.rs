//! The CLI against a one-member cluster: output formats and exit statuses.

use std::process::Command;
use std::time::Duration;

use crate::processes::{ProcessCluster, run_warden};

/// How long one CLI command may take before the test fails.
const LIMIT: Duration = Duration::from_secs(30);

fn warden(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["--endpoints", endpoint];
    all.extend_from_slice(args);
    let r = run_warden(&all, None, LIMIT);
    (r.code == Some(0), r.out, r.err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_print_text_and_json() {
    let cluster = ProcessCluster::start(1);
    cluster.leader().await;
    let e = cluster.clients[0].clone();
    assert!(warden(&e, &["put", "/cfg", "v1"]).0);
    let (ok, out, _) = warden(&e, &["whoami"]);
    assert!(ok);
    assert_eq!(out.trim(), "anonymous (no client certificate)");
    let (_, out, _) = warden(&e, &["whoami", "-o", "json"]);
    assert_eq!(out.trim(), r#"{"identity":""}"#);
    let (ok, out, _) = warden(&e, &["get", "/cfg"]);
    assert!(ok);
    assert_eq!(out.trim(), "v1");
    let (_, out, _) = warden(&e, &["get", "/cfg", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(json["value"], "v1");
    assert_eq!(json["stat"]["version"], 0);
    let (_, out, _) = warden(&e, &["create", "/cfg/q-", "x", "--sequential"]);
    assert_eq!(out.trim(), "/cfg/q-0000000000");
    let (_, out, _) = warden(&e, &["ls", "/cfg", "-o", "json"]);
    let child: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(child["path"], "/cfg/q-0000000000");
    let (ok, _, err) = warden(&e, &["rm", "/cfg"]);
    assert!(!ok);
    assert!(err.contains("delete them first or delete recursively"), "{err}");
    let (ok, out, _) = warden(&e, &["rm", "-r", "/cfg", "-o", "json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["deleted"], 2);
    let (ok, _, err) = warden(&e, &["get", "/cfg"]);
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");
    let (ok, _, err) = warden(&e, &["get", "no-slash"]);
    assert!(!ok);
    assert!(err.contains("must start with"), "{err}");
    let (ok, out, _) = warden(&e, &["cluster", "status", "-o", "json"]);
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(status["leader_id"], 1);
    assert_eq!(status["members"][0]["role"], "leader");
    assert!(status["members"][0]["applied_index"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_a_local_cluster_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let base = free_base_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut dev = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["dev", "--nodes", "3", "--base-port", &base.to_string()])
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    let endpoints = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("endpoints: ").map(str::to_owned))
        .unwrap_or_else(|| {
            let err = std::fs::read_to_string(log.path()).unwrap_or_default();
            panic!("dev printed no endpoints; stderr: {err}")
        });
    assert_eq!(endpoints.split(',').count(), 3);
    // The next line names each member's health URL; the first one answers.
    let http = lines.by_ref().map_while(Result::ok).find_map(|line| {
        let urls = line.strip_prefix("http: ")?.split_whitespace();
        Some(urls.filter(|w| w.starts_with("http://")).map(str::to_owned).collect())
    });
    let http: Vec<String> = http.unwrap_or_default();
    assert_eq!(http.len(), 3, "{http:?}");
    assert_eq!(http[0], format!("http://127.0.0.1:{}/health", base + 2));
    let client =
        warden_client::Client::new(endpoints.split(',').map(str::to_owned).collect()).unwrap();
    client.put("/dev", "ok").await.unwrap();
    let live = http_get(&http[0].replace("/health", "/health/live"));
    assert!(live.starts_with("HTTP/1.0 200") || live.starts_with("HTTP/1.1 200"), "{live}");
    let (ok, out, _) = warden(&endpoints, &["cluster", "status", "-o", "json"]);
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(status["members"].as_array().map(Vec::len), Some(3));
    let interrupted = Command::new("kill").args(["-INT", &dev.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let (code, _) = crate::processes::exit_within(&mut dev, LIMIT).await;
    drop(lines);
    let err = std::fs::read_to_string(log.path()).unwrap_or_default();
    assert_eq!(code, Some(0), "warden dev after Ctrl-C; stderr: {err}");
}

/// `GET url` (`http://host:port/path`) over HTTP/1.0; the whole answer as text.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// A port p such that the ports `warden dev --nodes 3 --base-port p` uses (p to p + 22) are
/// all free now, below the ephemeral range and reserved from the sequence every other
/// test's ports come from (`warden_testkit::free_ports`), so no other test takes one.
fn free_base_port() -> u16 {
    warden_testkit::free_ports(23)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_session_commands() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let cluster = ProcessCluster::start(1);
    cluster.leader().await;
    let e = cluster.clients[0].clone();
    let client = cluster.client();
    client.create("/cfg", "", warden_core::CreateMode::PERSISTENT).await.unwrap();
    let mut watch = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["--endpoints", &e, "watch", "/cfg", "--prefix", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sender.send(line).ok();
        }
    });
    // The watch starts from now, once the process is up: write until it prints, slowly.
    let started = std::time::Instant::now();
    let first = loop {
        client.put("/cfg/a", "v").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Ok(line) = lines.try_recv() {
            break line;
        }
        assert!(started.elapsed() < LIMIT, "warden watch printed nothing");
    };
    let event: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(event["path"], "/cfg/a");
    assert!(event["kind"] == "created" || event["kind"] == "data" || event["kind"] == "children");
    assert!(event["revision"].as_u64().unwrap() > 0);
    watch.kill().unwrap();
    crate::processes::exit_within(&mut watch, LIMIT).await;

    let session = client.open_session(std::time::Duration::from_secs(10)).await.unwrap();
    client
        .create_in(&session, "/cfg/owner", "me", warden_core::CreateMode::EPHEMERAL)
        .await
        .unwrap();
    let (ok, out, err) = warden(&e, &["session", "info", &session.id().to_string(), "-o", "json"]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(info["id"], session.id());
    assert_eq!(info["ephemerals"][0], "/cfg/owner");
    assert!(info["remaining_ms"].as_u64().unwrap() <= 10_000);
    let (ok, _, err) = warden(&e, &["create", "/cfg/e", "--ephemeral"]);
    assert!(!ok);
    assert!(err.contains("needs a session"), "{err}");
    session.close().await.unwrap();
    let (ok, _, err) = warden(&e, &["session", "info", "999999"]);
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_runs_a_command_holding_the_lock() {
    let cluster = ProcessCluster::start(1);
    cluster.leader().await;
    let e = cluster.clients[0].clone();
    let run = |args: &[&str]| {
        let mut all = vec!["--endpoints", &e];
        all.extend_from_slice(args);
        let r = run_warden(&all, None, LIMIT);
        (r.code, r.out, r.err)
    };
    // The command's exit status, with the token and path in its environment.
    let (code, out, _) = run(&[
        "lock",
        "/job",
        "--",
        "sh",
        "-c",
        "echo $WARDEN_LOCK_PATH $WARDEN_FENCING_TOKEN; exit 7",
    ]);
    assert_eq!(code, Some(7));
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words[0], "/job");
    assert!(words[1].parse::<u64>().unwrap() > 0);

    // Held by someone else: a timeout is exit status 3 and leaves no wait behind.
    let client = cluster.client();
    let session = client.open_session(std::time::Duration::from_secs(10)).await.unwrap();
    let guard = client.write_lock(&session, "/job").acquire().await.unwrap();
    let (code, _, err) = run(&["lock", "/job", "--timeout", "300ms", "--", "true"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("not granted"), "{err}");
    let (code, out, _) = run(&["lock", "status", "/job", "-o", "json"]);
    assert_eq!(code, Some(0));
    let status: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(status["waiters"].as_array().map(Vec::len), Some(1));
    assert_eq!(status["waiters"][0]["token"], guard.token());
    assert_eq!(
        (status["stats"]["holders"].as_u64(), status["stats"]["waiters"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(status["stats"]["acquisitions"].as_u64() >= Some(1), "{status}");
    guard.release().await.unwrap();

    // Shared holders share.
    let reader = client.read_lock(&session, "/job").acquire().await.unwrap();
    let (code, _, err) = run(&["lock", "/job", "--shared", "--timeout", "2s", "--", "true"]);
    assert_eq!(code, Some(0), "{err}");
    reader.release().await.unwrap();
    let (code, _, err) = run(&["lock", "/job"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nothing to run"), "{err}");
    // An operator revokes a stuck holder: the command is stopped and warden exits 4.
    let mut stuck = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["--endpoints", &e, "lock", "/stuck", "--", "sleep", "60"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let holder = crate::processes::wait_for_holder(&client, "/stuck").await;
    let (code, out, err) = run(&["lock", "revoke", "/stuck", "--session", &holder.to_string()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("revoked session"), "{out}");
    let (code, err) =
        crate::processes::exit_within(&mut stuck, std::time::Duration::from_secs(10)).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("revoked"), "{err}");
    let (code, _, err) = run(&["lock", "revoke", "/stuck"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--session"), "{err}");
}

#[test]
fn server_and_dev_take_only_their_own_options() {
    // Flags that would make the command fail at once if the client option were ignored.
    for (command, own) in
        [("server", ["--config", "/nonexistent/warden.toml"]), ("dev", ["--nodes", "0"])]
    {
        let help = run_warden(&[command, "--help"], None, LIMIT);
        assert_eq!(help.code, Some(0));
        for client_only in ["--endpoints", "--output", "WARDEN_ENDPOINTS"] {
            assert!(
                !help.out.contains(client_only),
                "warden {command} --help lists {client_only}:\n{}",
                help.out
            );
        }
        let r = run_warden(&["--endpoints", "127.0.0.1:1", command, own[0], own[1]], None, LIMIT);
        assert_eq!(r.code, Some(2), "{}", r.err);
        assert!(r.err.contains("an option of the client commands"), "{}", r.err);
        let r = run_warden(&[command, "-o", "json"], None, LIMIT);
        assert_eq!(r.code, Some(2), "{}", r.err);
    }
    let help = run_warden(&["get", "--help"], None, LIMIT);
    assert!(help.out.contains("--endpoints") && help.out.contains("--output"), "{}", help.out);
    let help = run_warden(&["session", "list", "--help"], None, LIMIT);
    assert!(help.out.contains("--endpoints"), "{}", help.out);
}
