//! `warden barrier` against real members: set, wait, remove and status; and 8 processes
//! through one double barrier (`warden barrier NAME --count 8 -- COMMAND`), checked by the
//! order of the events they append to one file: nobody runs COMMAND before all 8 have
//! arrived, and no `warden barrier` returns before all 8 COMMANDs are done; a member killed
//! while waiting to enter leaves (at once, its call dropped; its session after its ttl),
//! and a replacement completes the round; on 3 members, the round completes the same
//! through the loss of the raft leader while members leave (their Leave asked again).
//! With `WARDEN_TEST_TLS=1` all of it over mutual TLS.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use warden_client::Client;

use crate::cli_elect::{sessions, spawn_warden, wait_until, warden};
use crate::processes::{ProcessCluster, exit_within};

const LIMIT: Duration = Duration::from_secs(30);

/// The members (waiting or entered) of the barrier `name`; 0 when there is none.
async fn members(client: &Client, name: &str) -> usize {
    client.barrier_status(name).await.map(|s| s.members.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_holds_waiters_until_removed() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();

    let r = warden(&connect, &["barrier", "status", "/gate"]);
    assert_eq!(r.code, Some(5), "no barrier is not found: {}", r.err);
    // Not set: a wait passes at once.
    let r = warden(&connect, &["barrier", "wait", "/gate", "--timeout", "10s"]);
    assert_eq!(r.code, Some(0), "{}", r.err);

    let r = warden(&connect, &["barrier", "set", "/gate"]);
    assert_eq!((r.code, r.out.trim()), (Some(0), "set /gate"), "{}", r.err);
    let r = warden(&connect, &["barrier", "set", "/gate", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let set: Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!(set, serde_json::json!({"name": "/gate", "created": false}));

    // Set: a wait times out with 3, and leaves nothing behind.
    let r = warden(&connect, &["barrier", "wait", "/gate", "--timeout", "300ms"]);
    assert_eq!(r.code, Some(3), "{}", r.err);
    assert!(r.err.contains("still set"), "{}", r.err);
    assert_eq!(members(&client, "/gate").await, 0, "a timed-out wait stayed");

    // A wait without a timeout blocks until the barrier is removed.
    let mut waiting = spawn_warden(&connect, &["barrier", "wait", "/gate"]);
    wait_until(Duration::from_secs(20), "the waiter never showed", async || {
        members(&client, "/gate").await == 1
    })
    .await;
    let r = warden(&connect, &["barrier", "status", "/gate", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let status: Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!((&status["type"], &status["set"]), (&"barrier".into(), &true.into()), "{status}");
    let waiter = &status["members"][0];
    assert_eq!(waiter["token"], Value::Null, "a waiter is not through: {status}");
    assert_eq!(sessions(&client).await, [waiter["session"].as_u64().unwrap()]);
    let r = warden(&connect, &["barrier", "status", "/gate"]);
    assert!(r.out.starts_with("/gate: barrier, set\n"), "{}", r.out);
    assert_eq!(waiting.try_wait().unwrap(), None, "the wait returned while the barrier was set");

    let r = warden(&connect, &["barrier", "remove", "/gate", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let removed: Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!(removed, serde_json::json!({"name": "/gate", "removed": true, "released": 1}));
    let (code, err) = exit_within(&mut waiting, LIMIT).await;
    assert_eq!(code, Some(0), "{err}");
    let r = warden(&connect, &["barrier", "remove", "/gate"]);
    assert_eq!((r.code, r.out.trim()), (Some(0), "/gate was not set"), "{}", r.err);
    assert_eq!(sessions(&client).await, Vec::<u64>::new(), "warden barrier left a session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_barrier_not_full_in_time_exits_3_and_a_count_must_agree() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();

    let pair = ["barrier", "/pair", "--count", "2", "--timeout", "300ms", "--", "true"];
    let r = warden(&connect, &pair);
    assert_eq!(r.code, Some(3), "{}", r.err);
    assert!(r.err.contains("not all members were in"), "{}", r.err);
    assert_eq!(members(&client, "/pair").await, 0, "a timed-out member stayed");

    // One member waits in a barrier of 2; another that says 3 is refused, not queued.
    let mut waiting = spawn_warden(&connect, &["barrier", "/pair", "--count", "2", "--", "true"]);
    wait_until(Duration::from_secs(20), "the member never waited", async || {
        members(&client, "/pair").await == 1
    })
    .await;
    let r =
        warden(&connect, &["barrier", "/pair", "--count", "3", "--timeout", "5s", "--", "true"]);
    assert_eq!(r.code, Some(1), "a member with another count: {}", r.err);
    assert!(r.err.contains("cannot enter the double barrier \"/pair\""), "{}", r.err);
    assert_eq!(members(&client, "/pair").await, 1, "a member with another count queued");
    let r = warden(&connect, &["barrier", "/pair", "--count", "2", "--", "true"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let (code, err) = exit_within(&mut waiting, LIMIT).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(sessions(&client).await, Vec::<u64>::new(), "warden barrier left a session");
}

/// Processes started for a test, killed (each with its process group) when it ends.
struct Members(Vec<Child>);

impl Drop for Members {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let group = format!("-{}", child.id());
            Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status().ok();
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Starts member `i` of the double barrier `/round` of 8 (session ttl 2s): a shell that
/// appends `arrive i` to `events`, runs `warden barrier` (whose command appends `start i`,
/// pauses `i` tenths of a second, and appends `end i`), then appends `returned i STATUS`.
fn member(connect: &[String], events: &Path, i: usize) -> Child {
    member_with(connect, events, i, "2s", &format!("0.{i}"))
}

/// As [`member`], with the session's `ttl` and the command's `pause` (seconds).
fn member_with(connect: &[String], events: &Path, i: usize, ttl: &str, pause: &str) -> Child {
    let wrapper = "echo \"arrive $MEMBER\" >> \"$EVENTS\"; \"$0\" \"$@\"; code=$?; echo \"returned $MEMBER $code\" >> \"$EVENTS\"; exit $code";
    let command = "echo \"start $MEMBER\" >> \"$EVENTS\"; sleep \"$PAUSE\"; echo \"end $MEMBER\" >> \"$EVENTS\"";
    Command::new("sh")
        .args(["-c", wrapper, env!("CARGO_BIN_EXE_warden")])
        .args(connect)
        .args(["barrier", "/round", "--count", "8", "--ttl", ttl, "--timeout", "60s"])
        .args(["--", "sh", "-c", command])
        .env("EVENTS", events)
        .env("MEMBER", i.to_string())
        .env("PAUSE", pause)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// The events appended so far, as (what, member) pairs.
fn events(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut words = l.split(' ');
            let what = words.next().unwrap_or_default().to_owned();
            (what, words.next().unwrap_or_default().to_owned())
        })
        .collect()
}

/// Waits for every member to exit 0, then checks the order of the events: every member
/// arrived before any command started, and every command ended before any member returned.
async fn check_round(members: &mut Members, log: &Path, expected: &[usize]) {
    for child in &mut members.0 {
        let (code, err) = exit_within(child, Duration::from_secs(60)).await;
        assert_eq!(code, Some(0), "a member failed: {err}");
    }
    let events = events(log);
    let position = |what: &str, last: bool| {
        let mut at = events.iter().enumerate().filter(|(_, (w, _))| w == what).map(|(i, _)| i);
        if last { at.next_back() } else { at.next() }.unwrap_or_else(|| panic!("no {what}"))
    };
    for what in ["arrive", "start", "end", "returned"] {
        let mut who: Vec<usize> =
            events.iter().filter(|(w, _)| w == what).map(|(_, m)| m.parse().unwrap()).collect();
        who.sort_unstable();
        assert_eq!(who, expected, "the members that logged {what}: {events:?}");
    }
    assert!(
        position("arrive", true) < position("start", false),
        "a command started before all 8 were in: {events:?}"
    );
    assert!(
        position("end", true) < position("returned", false),
        "a warden barrier returned before every command was done: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_go_through_a_double_barrier_together() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();
    let work = tempfile::TempDir::new().unwrap();
    let log = work.path().join("events");

    let mut round = Members((0..7).map(|i| member(&connect, &log, i)).collect());
    wait_until(Duration::from_secs(30), "7 members never waited", async || {
        members(&client, "/round").await == 7
    })
    .await;
    let status = client.barrier_status("/round").await.unwrap();
    assert_eq!((status.count, status.set), (8, false), "{status:?}");
    assert!(status.members.iter().all(|m| m.token.is_none()), "in with 7 of 8: {status:?}");
    assert!(
        events(&log).iter().all(|(what, _)| what == "arrive"),
        "a command ran with 7 of 8 in: {:?}",
        events(&log)
    );
    round.0.push(member(&connect, &log, 7));
    check_round(&mut round, &log, &(0..8).collect::<Vec<_>>()).await;

    // The barrier went with its last member, and so did every session.
    assert_eq!(members(&client, "/round").await, 0);
    let r = warden(&connect, &["barrier", "status", "/round"]);
    assert_eq!(r.code, Some(5), "the barrier outlived its members: {}", r.out);
    assert_eq!(sessions(&client).await, Vec::<u64>::new(), "a member's session stayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_while_waiting_leaves_and_a_replacement_completes_the_round() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();
    let work = tempfile::TempDir::new().unwrap();
    let log = work.path().join("events");

    let mut round = Members((0..6).map(|i| member(&connect, &log, i)).collect());
    wait_until(Duration::from_secs(30), "6 members never waited", async || {
        members(&client, "/round").await == 6
    })
    .await;
    let sessions_of = async || {
        let status = client.barrier_status("/round").await.unwrap();
        let mut ids: Vec<u64> = status.members.iter().map(|m| m.session_id).collect();
        ids.sort_unstable();
        ids
    };
    let six = sessions_of().await;
    let victim = spawn_warden(
        &connect,
        &["barrier", "/round", "--count", "8", "--ttl", "2s", "--", "touch", "/nonexistent/x"],
    );
    let mut victim = Members(vec![victim]);
    wait_until(Duration::from_secs(30), "the 7th member never waited", async || {
        members(&client, "/round").await == 7
    })
    .await;
    let victim_session = sessions_of().await.into_iter().find(|s| !six.contains(s)).unwrap();
    victim.0[0].kill().unwrap();
    victim.0[0].wait().unwrap();
    let killed = std::time::Instant::now();
    // Its dropped Enter call takes the member out at once; were the call not seen to drop
    // (a host gone silent), the end of its session would, after the ttl. Either way it
    // leaves, and its session ends after its ttl.
    wait_until(Duration::from_secs(30), "the killed member never left", async || {
        members(&client, "/round").await == 6
    })
    .await;
    let member_left = killed.elapsed();
    assert_eq!(sessions_of().await, six, "not the killed member left");
    wait_until(Duration::from_secs(30), "the killed member's session never ended", async || {
        !sessions(&client).await.contains(&victim_session)
    })
    .await;
    eprintln!(
        "the killed member left {member_left:?} after its SIGKILL, its session (ttl 2s) ended after {:?}",
        killed.elapsed()
    );
    assert!(
        events(&log).iter().all(|(what, _)| what == "arrive"),
        "a command ran before 8 were in: {:?}",
        events(&log)
    );

    // Two more make 8 again; the round completes.
    round.0.push(member(&connect, &log, 6));
    wait_until(Duration::from_secs(30), "the replacement never waited", async || {
        members(&client, "/round").await == 7
    })
    .await;
    assert!(events(&log).iter().all(|(what, _)| what == "arrive"), "ran with 7 of 8 in");
    round.0.push(member(&connect, &log, 7));
    check_round(&mut round, &log, &(0..8).collect::<Vec<_>>()).await;
    assert_eq!(sessions(&client).await, Vec::<u64>::new(), "a member's session stayed");
}

/// A member whose host goes silent (stopped with SIGSTOP: its call stays open and its
/// keepalives stop) leaves when its session ends, after its ttl, never before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_gone_silent_while_waiting_leaves_after_its_ttl_never_before() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();
    let victim = spawn_warden(
        &connect,
        &["barrier", "/silent", "--count", "3", "--ttl", "3s", "--", "true"],
    );
    let mut victim = Members(vec![victim]);
    wait_until(Duration::from_secs(30), "the member never waited", async || {
        members(&client, "/silent").await == 1
    })
    .await;
    let pid = victim.0[0].id().to_string();
    let stopped = Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    assert!(stopped.success(), "kill -STOP {pid}");
    let since = std::time::Instant::now();
    // It renews every ttl/3, so its session lasts at least 2/3 of the ttl from the stop.
    while since.elapsed() < Duration::from_millis(1_800) {
        assert_eq!(
            members(&client, "/silent").await,
            1,
            "left {:?} after the stop",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until(Duration::from_secs(30), "the silent member never left", async || {
        members(&client, "/silent").await == 0
    })
    .await;
    eprintln!("the silent member (ttl 3s) left {:?} after it was stopped", since.elapsed());
    Command::new("kill").args(["-CONT", &pid]).status().ok();
    victim.0[0].kill().ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_finish_together_through_the_loss_of_the_raft_leader() {
    let mut cluster = ProcessCluster::start_tls_if_asked(3);
    let leader = cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();
    let work = tempfile::TempDir::new().unwrap();
    let log = work.path().join("events");

    // Commands of 1 to 2.4 s, so that the first members leave, and wait for the others,
    // while the raft leader is killed: their calls are asked again on the other members.
    let pause = |i: usize| format!("{}.{}", 1 + i / 5, (i % 5) * 2);
    let mut round =
        Members((0..8).map(|i| member_with(&connect, &log, i, "10s", &pause(i))).collect());
    wait_until(Duration::from_secs(60), "no command ended", async || {
        events(&log).iter().any(|(what, _)| what == "end")
    })
    .await;
    cluster.kill9(usize::try_from(leader).unwrap());
    check_round(&mut round, &log, &(0..8).collect::<Vec<_>>()).await;
    wait_until(Duration::from_secs(30), "a member's session stayed", async || {
        sessions(&client).await.is_empty()
    })
    .await;
}
