//! `warden elect` against real members: the command runs leading, with its token and the
//! election's name; the next candidate leads once it exits, with a higher token;
//! `--timeout` exits 3 and an operator's revoke 4 (the command killed); `elect leader`
//! and `elect observe` print the leader and every change, and the session of every
//! `warden elect` is gone once it exits; a `warden elect` killed with SIGKILL is followed
//! only once its session has ended; on 3 members, a leader and a waiting candidate
//! ride out the loss of the raft leader. With `WARDEN_TEST_TLS=1` all of it over mutual
//! TLS.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_client::{Client, Consistency};

use crate::processes::{ProcessCluster, exit_within, run_warden};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `warden CONNECT... args...` to its end (at most [`LIMIT`]).
pub fn warden(connect: &[String], args: &[&str]) -> crate::processes::Finished {
    let mut all: Vec<&str> = connect.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    run_warden(&all, None, LIMIT)
}

/// Starts `warden CONNECT... args...` in the background, its stderr piped.
pub fn spawn_warden(connect: &[String], args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(connect)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `ready()` (at most `limit`), failing the test with `what` otherwise.
pub async fn wait_until(limit: Duration, what: &str, mut ready: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !ready().await {
        assert!(started.elapsed() < limit, "{what} (waited {limit:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of `path` once it exists and ends with a newline (at most 20 s).
pub async fn read_when_written(path: &Path) -> String {
    let mut text = String::new();
    wait_until(Duration::from_secs(20), &format!("{} never written", path.display()), async || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.ends_with('\n')
    })
    .await;
    text
}

/// The ids of the cluster's live sessions.
pub async fn sessions(client: &Client) -> Vec<u64> {
    client.sessions(0).await.unwrap().iter().map(|s| s.session_id).collect()
}

/// The candidates (leader included) queued in the election `name`.
async fn candidates(client: &Client, name: &str) -> usize {
    client.lock_status(name).await.map(|s| s.holders.len() + s.waiters.len()).unwrap_or(0)
}

/// A shell command that waits (at most 60 s) for the file `release` in `dir`, then exits 0.
fn until_released(dir: &Path) -> String {
    format!(
        "(for i in $(seq 600); do [ -e '{}/release' ] && exit 0; sleep 0.1; done; exit 9)",
        dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_runs_the_command_leading_and_the_next_leads_with_a_higher_token() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();
    let work = tempfile::TempDir::new().unwrap();
    let dir = work.path();
    let order = dir.join("order");

    let first_script = format!(
        "echo \"$WARDEN_FENCING_TOKEN $WARDEN_ELECTION_NAME\" > '{d}/first'; {wait}; code=$?; echo first-end >> '{o}'; exit $code",
        d = dir.display(),
        wait = until_released(dir),
        o = order.display(),
    );
    let mut first = spawn_warden(
        &connect,
        &["elect", "/svc/primary", "--value", "one", "--", "sh", "-c", &first_script],
    );
    let seen = read_when_written(&dir.join("first")).await;
    let (token, name) = seen.trim().split_once(' ').expect("token and name");
    let first_token: u64 = token.parse().expect("a numeric WARDEN_FENCING_TOKEN");
    assert_eq!(name, "/svc/primary");

    // The leader, as JSON: exactly the documented fields.
    let r = warden(&connect, &["elect", "leader", "/svc/primary", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let leader: Value = serde_json::from_str(r.out.trim()).expect("one JSON object");
    let mut keys: Vec<&str> = leader.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["identity", "name", "session", "token", "value"], "{leader}");
    assert_eq!((&leader["name"], &leader["value"]), (&"/svc/primary".into(), &"one".into()));
    assert_eq!(leader["token"].as_u64(), Some(first_token));
    let expected_identity = if warden_testkit::tls::requested() { "alice" } else { "" };
    assert_eq!(leader["identity"], expected_identity);
    let leader_session = leader["session"].as_u64().expect("a session id");
    assert_eq!(sessions(&client).await, [leader_session], "the leader's is the only session");
    // The same, for people.
    let r = warden(&connect, &["elect", "leader", "/svc/primary"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(r.out.starts_with(&format!("/svc/primary one token {first_token} ")), "{}", r.out);

    // A second candidate waits while the first leads.
    let second_script = format!(
        "echo \"$WARDEN_FENCING_TOKEN\" > '{d}/second'; echo second-start >> '{o}'",
        d = dir.display(),
        o = order.display(),
    );
    let mut second = spawn_warden(
        &connect,
        &["elect", "/svc/primary", "--value", "two", "--", "sh", "-c", &second_script],
    );
    wait_until(Duration::from_secs(20), "the second candidate never queued", async || {
        candidates(&client, "/svc/primary").await == 2
    })
    .await;
    assert!(!dir.join("second").exists(), "the second candidate ran while the first led");
    assert_eq!(first.try_wait().unwrap(), None, "the first warden elect exited early");

    std::fs::write(dir.join("release"), "").unwrap();
    let (code, err) = exit_within(&mut first, LIMIT).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = exit_within(&mut second, LIMIT).await;
    assert_eq!(code, Some(0), "{err}");
    let second_token: u64 = read_when_written(&dir.join("second")).await.trim().parse().unwrap();
    assert!(second_token > first_token, "token {second_token} after {first_token}");
    let events = std::fs::read_to_string(&order).unwrap();
    assert_eq!(events, "first-end\nsecond-start\n", "the second led before the first exited");

    // Nobody leads now; no session is left behind.
    let r = warden(&connect, &["elect", "leader", "/svc/primary", "-o", "json"]);
    assert_eq!(r.code, Some(5), "no leader is not found: {}", r.err);
    assert_eq!(r.out, "", "nothing on stdout without a leader");
    assert!(r.err.contains("no leader"), "{}", r.err);
    assert_eq!(sessions(&client).await, Vec::<u64>::new(), "warden elect left its session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_times_out_with_3_and_a_revoked_leader_exits_4() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();

    // Another session leads: not leading within the timeout is 3, and the candidacy goes.
    let holder = client.open_session(Duration::from_secs(30)).await.unwrap();
    let election = client.election(&holder, "/taken");
    let leadership = election.campaign("held", Some(LIMIT)).await.unwrap();
    let r = warden(&connect, &["elect", "/taken", "--timeout", "300ms", "--", "true"]);
    assert_eq!(r.code, Some(3), "{}", r.err);
    assert!(r.err.contains("not granted within 300ms"), "{}", r.err);
    assert_eq!(candidates(&client, "/taken").await, 1, "the timed-out candidacy stayed");
    assert_eq!(sessions(&client).await, [holder.id()], "a timed-out warden elect left its session");
    leadership.resign().await.unwrap();

    // An operator revokes the leader: the command is killed, warden exits 4.
    let work = tempfile::TempDir::new().unwrap();
    let pid_file = work.path().join("pid");
    let script = format!("echo $$ > '{}'; exec sleep 60", pid_file.display());
    let mut leading =
        spawn_warden(&connect, &["elect", "/revoked", "--ttl", "30s", "--", "sh", "-c", &script]);
    let pid = read_when_written(&pid_file).await.trim().to_owned();
    let leader = client.election_leader("/revoked", Consistency::Linearizable).await.unwrap();
    let session = leader.expect("warden elect leads").session_id.to_string();
    let r = warden(&connect, &["lock", "revoke", "/revoked", "--session", &session]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let (code, err) = exit_within(&mut leading, LIMIT).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("was lost"), "{err}");
    let alive = Command::new("kill").args(["-0", &pid]).stderr(Stdio::null()).status().unwrap();
    assert!(!alive.success(), "the command (pid {pid}) outlived the leadership");
    let r = warden(&connect, &["elect", "leader", "/revoked"]);
    assert_eq!(r.code, Some(5), "the revoked leader still leads: {}", r.out);
    assert_eq!(sessions(&client).await, [holder.id()], "a revoked warden elect left its session");
    holder.close().await.unwrap();
}

/// Reads `n` lines of `child`'s stdout in a thread, sending each, then closes the pipe.
fn read_lines(child: &mut Child, n: usize) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        for _ in 0..n {
            let Some(Ok(line)) = lines.next() else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next line of an observer, as JSON (at most 20 s).
async fn next_change(lines: &mpsc::Receiver<String>) -> Value {
    let started = Instant::now();
    loop {
        match lines.try_recv() {
            Ok(line) => return serde_json::from_str(&line).expect("a JSON line"),
            Err(mpsc::TryRecvError::Disconnected) => panic!("the observer's output ended"),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no change printed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_observe_prints_every_change_and_stops_quietly_once_its_reader_is_gone() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();
    let mut observer = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(&connect)
        .args(["elect", "observe", "/obs", "-o", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = read_lines(&mut observer, 4);

    // No leader yet: the first line says so.
    let first = next_change(&lines).await;
    assert_eq!(first["leader"], Value::Null, "{first}");
    let mut revision = first["revision"].as_u64().expect("a revision");

    let session = client.open_session(Duration::from_secs(30)).await.unwrap();
    let leadership = client.election(&session, "/obs").campaign("a", Some(LIMIT)).await.unwrap();
    let (token, session_id) = (leadership.token(), session.id());
    let mut expect = async |value: Option<&str>| {
        let change = next_change(&lines).await;
        let now = change["revision"].as_u64().expect("a revision");
        assert!(now > revision, "revision {now} after {revision}: {change}");
        revision = now;
        match value {
            None => assert_eq!(change["leader"], Value::Null, "{change}"),
            Some(v) => {
                assert_eq!(change["leader"]["value"], v, "{change}");
                assert_eq!(change["leader"]["token"].as_u64(), Some(token));
                assert_eq!(change["leader"]["session"].as_u64(), Some(session_id));
            }
        }
    };
    expect(Some("a")).await;
    leadership.proclaim("b").await.unwrap();
    expect(Some("b")).await;
    leadership.resign().await.unwrap();
    expect(None).await;

    // The reader is gone (it read its 4 lines): the observer ends quietly, without
    // waiting for another change to fail writing.
    wait_until(Duration::from_secs(20), "the reader never closed the pipe", async || {
        matches!(lines.try_recv(), Err(mpsc::TryRecvError::Disconnected))
    })
    .await;
    let (code, err) = exit_within(&mut observer, LIMIT).await;
    assert_eq!(code, Some(141), "a closed pipe is 128 + SIGPIPE: {err}");
    assert_eq!(err, "", "a closed pipe is not an error to report");
    session.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_and_a_candidate_ride_out_the_loss_of_the_raft_leader() {
    let mut cluster = ProcessCluster::start_tls_if_asked(3);
    let raft_leader = cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();
    let work = tempfile::TempDir::new().unwrap();
    let dir = work.path();

    let first_script = format!(
        "echo \"$WARDEN_FENCING_TOKEN\" > '{d}/first'; {wait}",
        d = dir.display(),
        wait = until_released(dir),
    );
    let mut first =
        spawn_warden(&connect, &["elect", "/ha", "--ttl", "10s", "--", "sh", "-c", &first_script]);
    let first_token: u64 = read_when_written(&dir.join("first")).await.trim().parse().unwrap();
    let second_script = format!("echo \"$WARDEN_FENCING_TOKEN\" > '{}/second'", dir.display());
    let mut second =
        spawn_warden(&connect, &["elect", "/ha", "--ttl", "10s", "--", "sh", "-c", &second_script]);
    wait_until(Duration::from_secs(20), "the second candidate never queued", async || {
        candidates(&client, "/ha").await == 2
    })
    .await;

    // The member the calls went to goes; the leadership and the candidacy stay.
    cluster.kill9(usize::try_from(raft_leader).unwrap());
    cluster.leader().await;
    wait_until(Duration::from_secs(20), "the election changed with the raft leader", async || {
        let leader = client.election_leader("/ha", Consistency::Linearizable).await;
        leader.ok().flatten().is_some_and(|l| l.token == first_token)
    })
    .await;
    assert!(!dir.join("second").exists(), "the second led while the first did");
    assert_eq!(first.try_wait().unwrap(), None, "the leader's warden elect exited");

    std::fs::write(dir.join("release"), "").unwrap();
    let (code, err) = exit_within(&mut first, LIMIT).await;
    assert_eq!(code, Some(0), "the leadership was not lost: {err}");
    let (code, err) = exit_within(&mut second, LIMIT).await;
    assert_eq!(code, Some(0), "{err}");
    let second_token: u64 = read_when_written(&dir.join("second")).await.trim().parse().unwrap();
    assert!(second_token > first_token, "token {second_token} after {first_token}");
    wait_until(Duration::from_secs(30), "a candidate's session stayed", async || {
        sessions(&client).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_9_is_followed_only_once_its_session_has_ended() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();
    let work = tempfile::TempDir::new().unwrap();
    let dir = work.path();

    let first_script = format!("echo $$ > '{}/first'; exec sleep 60", dir.display());
    let mut first =
        spawn_warden(&connect, &["elect", "/k", "--ttl", "2s", "--", "sh", "-c", &first_script]);
    let command_pid = read_when_written(&dir.join("first")).await.trim().to_owned();
    let leader = client.election_leader("/k", Consistency::Linearizable).await.unwrap();
    let leader = leader.expect("the first warden elect leads");
    // The second's command asks whether the first's session is still there when it runs
    // (`warden session info` exits 5 once it is gone).
    let second_script = format!(
        "echo \"$WARDEN_FENCING_TOKEN\" > '{d}/second'; \"$0\" \"$@\"; echo $? > '{d}/first-session'",
        d = dir.display()
    );
    let session = leader.session_id.to_string();
    let mut args = vec!["elect", "/k", "--", "sh", "-c", &second_script];
    args.push(env!("CARGO_BIN_EXE_warden"));
    args.extend(connect.iter().map(String::as_str));
    args.extend(["session", "info", &session]);
    let mut second = spawn_warden(&connect, &args);
    wait_until(Duration::from_secs(20), "the second candidate never queued", async || {
        candidates(&client, "/k").await == 2
    })
    .await;

    first.kill().unwrap();
    first.wait().unwrap();
    let (code, err) = exit_within(&mut second, LIMIT).await;
    Command::new("kill").arg(&command_pid).status().ok();
    assert_eq!(code, Some(0), "{err}");
    let second_token: u64 = read_when_written(&dir.join("second")).await.trim().parse().unwrap();
    assert!(second_token > leader.token, "token {second_token} after {}", leader.token);
    let seen = read_when_written(&dir.join("first-session")).await;
    assert_eq!(seen.trim(), "5", "the next leader ran while the killed one's session lived");
}
