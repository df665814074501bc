//! Exit statuses an operator can script on, and quiet exits into a closed pipe.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::processes::{ProcessCluster, exit_within, run_warden};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_has_its_exit_status() {
    let help = run_warden(&["--help"], None, LIMIT);
    assert_eq!(help.code, Some(0));
    for line in [
        "Exit status:",
        "3    timeout",
        "4    lock lost",
        "5    not found",
        "6    already exists",
        "7    unavailable",
        "8    permission denied",
    ] {
        assert!(help.out.contains(line), "warden --help lacks {line:?}:\n{}", help.out);
    }

    let cluster = ProcessCluster::start(1);
    cluster.leader().await;
    let e = cluster.clients[0].clone();
    let code = |args: &[&str]| {
        let mut all = vec!["--endpoints", &e];
        all.extend_from_slice(args);
        let r = run_warden(&all, None, LIMIT);
        (r.code, r.err)
    };
    assert_eq!(code(&["create", "/a", "x"]).0, Some(0));
    let (status, err) = code(&["get", "/missing"]);
    assert_eq!(status, Some(5), "not found: {err}");
    let (status, err) = code(&["session", "info", "999999"]);
    assert_eq!(status, Some(5), "no such session: {err}");
    let (status, err) = code(&["create", "/a"]);
    assert_eq!(status, Some(6), "already exists: {err}");
    let (status, err) = code(&["get", "no-slash"]);
    assert_eq!(status, Some(1), "a bad path is another error: {err}");
    let (status, err) = code(&["get"]);
    assert_eq!(status, Some(2), "usage: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_quorum_is_unavailable() {
    let mut cluster = ProcessCluster::start(3);
    cluster.leader().await;
    cluster.kill9(2);
    cluster.kill9(3);
    let endpoints = cluster.clients.join(",");
    let r = run_warden(&["--endpoints", &endpoints, "get", "/a"], None, LIMIT);
    assert_eq!(r.code, Some(7), "{}", r.err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_output_quietly() {
    let cluster = ProcessCluster::start(1);
    cluster.leader().await;
    let client = cluster.client();
    for i in 0..20 {
        client.create(&format!("/n{i}"), "", warden_core::CreateMode::PERSISTENT).await.unwrap();
    }
    // The reader goes away before warden prints a line (it has yet to connect).
    let mut ls = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["--endpoints", &cluster.clients[0], "ls", "/"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(ls.stdout.take());
    let (code, err) = exit_within(&mut ls, LIMIT).await;
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err, "", "nothing to say about a reader that left");
    assert_eq!(code, Some(141));

    // The same through a shell pipe: `warden ls / | head -1`.
    let warden = env!("CARGO_BIN_EXE_warden");
    let script = format!("{warden} --endpoints {} ls / | head -1", cluster.clients[0]);
    let mut shell = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = shell.stdout.take();
    let (code, err) = exit_within(&mut shell, LIMIT).await;
    assert_eq!(code, Some(0));
    assert!(!err.contains("panicked"), "{err}");
    let mut first = String::new();
    std::io::Read::read_to_string(&mut stdout.unwrap(), &mut first).unwrap();
    assert_eq!(first.trim(), "n0");
}
