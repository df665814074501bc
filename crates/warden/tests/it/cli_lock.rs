//! `warden lock` leaves nothing behind: whatever way it exits, the session it opened is
//! closed, and `--timeout` bounds the whole command, opening the session included. With
//! `WARDEN_TEST_TLS=1` the members and the CLI speak mutual TLS.

use std::process::{Command, Stdio};
use std::time::Duration;

use warden_client::Client;

use crate::processes::{ProcessCluster, exit_within, run_warden, wait_for_holder, wait_for_queue};

const LIMIT: Duration = Duration::from_secs(30);

/// The ids of the cluster's live sessions.
async fn sessions(client: &Client) -> Vec<u64> {
    client.sessions(0).await.unwrap().iter().map(|s| s.session_id).collect()
}

/// Sends SIGINT (Ctrl-C) to `pid`.
fn interrupt(pid: u32) {
    let sent = Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
    assert!(sent.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_closes_its_session_on_every_way_out() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args_to(&cluster.clients[0]);
    let client = cluster.client();
    let holder = client.open_session(Duration::from_secs(30)).await.unwrap();
    let guard = client.write_lock(&holder, "/job").acquire().await.unwrap();
    let only_holder = vec![holder.id()];
    let lock = |args: &[&str]| {
        let mut all: Vec<&str> = connect.iter().map(String::as_str).collect();
        all.push("lock");
        all.extend_from_slice(args);
        run_warden(&all, None, LIMIT)
    };

    // Not granted in time.
    let r = lock(&["/job", "--timeout", "300ms", "--", "true"]);
    assert_eq!(r.code, Some(3), "{}", r.err);
    assert_eq!(sessions(&client).await, only_holder, "a timed-out warden lock left its session");

    // A flag the cluster refuses.
    let r = lock(&["/other", "--delay", "61s", "--", "true"]);
    assert_eq!(r.code, Some(1), "{}", r.err);
    assert!(r.err.contains("lock-delay"), "{}", r.err);
    assert_eq!(sessions(&client).await, only_holder, "a refused warden lock left its session");

    // A command that does not exist: 127, as env and timeout say it.
    let r = lock(&["/free", "--", "/nonexistent/command"]);
    assert_eq!(r.code, Some(127), "{}", r.err);
    assert!(r.err.contains("no such command"), "{}", r.err);
    assert_eq!(
        sessions(&client).await,
        only_holder,
        "warden lock of a missing command left its session"
    );

    // Ctrl-C while waiting for the lock.
    let mut waiting = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(&connect)
        .args(["lock", "/job", "--", "true"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_queue(&client, "/job", 2).await;
    interrupt(waiting.id());
    let (code, err) = exit_within(&mut waiting, Duration::from_secs(10)).await;
    assert_eq!(code, Some(130), "{err}");
    assert_eq!(sessions(&client).await, only_holder, "an interrupted wait left its session");
    let status = client.lock_status("/job").await.unwrap();
    assert_eq!((status.holders.len(), status.waiters.len()), (1, 0), "the wait went");

    // Ctrl-C while the command runs.
    let mut running = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(&connect)
        .args(["lock", "/running", "--", "sleep", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_holder(&client, "/running").await;
    interrupt(running.id());
    let (code, err) = exit_within(&mut running, Duration::from_secs(10)).await;
    assert_eq!(code, Some(130), "{err}");
    assert_eq!(sessions(&client).await, only_holder, "an interrupted hold left its session");
    guard.release().await.unwrap();
    holder.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_timeout_bounds_opening_the_session() {
    let mut cluster = ProcessCluster::start_tls_if_asked(3);
    cluster.leader().await;
    cluster.kill9(2);
    cluster.kill9(3);
    let lock = ["lock", "/nightly", "--timeout", "2s", "--", "true"];
    let with = |connect: Vec<String>| {
        let mut all = connect;
        all.extend(lock.iter().map(|a| (*a).to_owned()));
        all
    };
    let args = with(cluster.cli_args());
    let r = run_warden(&args.iter().map(String::as_str).collect::<Vec<_>>(), None, LIMIT);
    assert_eq!(r.code, Some(3), "{}", r.err);
    assert!(r.err.contains("not granted within 2s"), "{}", r.err);
    assert!(r.elapsed < Duration::from_secs(4), "took {:?} for --timeout 2s", r.elapsed);
    // Only members that are down (refused connections): the same, however fast the
    // client gives up on them.
    let down = format!("{},{}", cluster.clients[1], cluster.clients[2]);
    let args = with(cluster.cli_args_to(&down));
    let r = run_warden(&args.iter().map(String::as_str).collect::<Vec<_>>(), None, LIMIT);
    assert_eq!(r.code, Some(3), "{}", r.err);
    assert!(r.elapsed < Duration::from_secs(4), "took {:?} for --timeout 2s", r.elapsed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_subtree_waits_for_the_locks_below_and_priority_goes_first() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args_to(&cluster.clients[0]);
    let client = cluster.client();
    let holder = client.open_session(Duration::from_secs(30)).await.unwrap();
    let below = client.write_lock(&holder, "/jobs/db/orders").acquire().await.unwrap();
    let args = |extra: &[&str]| {
        let mut all: Vec<String> = connect.clone();
        all.extend(extra.iter().map(|a| (*a).to_owned()));
        all
    };
    let warden = |extra: &[&str]| {
        run_warden(&args(extra).iter().map(String::as_str).collect::<Vec<_>>(), None, LIMIT)
    };

    // The subtree lock waits for the lock held below it; status says why nobody holds it.
    let whole = args(&["lock", "--subtree", "/jobs/db", "--timeout", "20s", "--", "true"]);
    let mut subtree = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(&whole)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_queue(&client, "/jobs/db", 1).await;
    let status = warden(&["lock", "status", "/jobs/db"]);
    assert!(
        status.out.contains("not held, 1 waiting for locks above or below it"),
        "{}",
        status.out
    );
    assert!(status.out.contains("exclusive subtree"), "{}", status.out);
    // A free lock below it is not passed to a later request.
    let r = warden(&["lock", "/jobs/db/users", "--timeout", "500ms", "--", "true"]);
    assert_eq!(r.code, Some(3), "{}", r.err);
    below.release().await.unwrap();
    let (code, err) = exit_within(&mut subtree, LIMIT).await;
    assert_eq!(code, Some(0), "{err}");

    // Priorities: 0 then 9 wait behind a holder; 9 is served first.
    let held = client.write_lock(&holder, "/p").acquire().await.unwrap();
    let log = |name: &str| format!("echo {name} >> {}", cluster.dir.path().join("order").display());
    let spawn = |priority: &str, name: &str| {
        let all = args(&[
            "lock",
            "/p",
            "--priority",
            priority,
            "--timeout",
            "20s",
            "--",
            "sh",
            "-c",
            &log(name),
        ]);
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(&all)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut low = spawn("0", "low");
    wait_for_queue(&client, "/p", 2).await;
    let mut high = spawn("9", "high");
    wait_for_queue(&client, "/p", 3).await;
    held.release().await.unwrap();
    assert_eq!(exit_within(&mut high, LIMIT).await.0, Some(0));
    assert_eq!(exit_within(&mut low, LIMIT).await.0, Some(0));
    let order = std::fs::read_to_string(cluster.dir.path().join("order")).unwrap();
    assert_eq!(order, "high\nlow\n");
    let r = warden(&["lock", "/p", "--priority", "11", "--", "true"]);
    assert_eq!(r.code, Some(2), "{}", r.err);
    holder.close().await.unwrap();
}
