//! Resource kinds and their rotation through the CLI, against real `warden server`
//! processes: `warden resource init|status`, `warden lock --resource` (with
//! WARDEN_LOCK_PATH), and `warden rotate` waiting for a holder, its `--dry-run`,
//! `--timeout` (then a re-run that completes) and `--force-after` (whose revoked holder's
//! `warden lock` exits 4). Then the test: 16 clients lock random ids in a loop,
//! each hold writing to a fenced per-id node, while `warden rotate` runs twice, once with
//! the raft leader killed mid-rotation and once with the tool killed and run again: no id
//! is held under two versions at once (checked with the cluster's revisions, not clocks),
//! no live holder's write is refused, each rotation completes and the old subtree goes.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warden_client::{Client, Code, ErrorKind, LockError, ResourceStatus, Session};
use warden_testkit::rng::Rng;

use crate::processes::{ProcessCluster, exit_within, run_warden};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `warden CONNECT... args...`, bounded.
fn warden(cluster: &ProcessCluster, args: &[&str]) -> crate::processes::Finished {
    let connect = cluster.cli_args();
    let mut all: Vec<&str> = connect.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    run_warden(&all, None, LIMIT)
}

/// Starts `warden CONNECT... args...` with its output piped.
fn spawn_warden(cluster: &ProcessCluster, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(cluster.cli_args())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The standard output of an exited child.
fn stdout_of(child: &mut Child) -> String {
    let mut out = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        std::io::Read::read_to_string(&mut pipe, &mut out).unwrap();
    }
    out
}

/// Reads the kind until `done` holds of it (at most 10 s).
async fn status_until(
    client: &Client,
    kind: &str,
    what: &str,
    done: impl Fn(&ResourceStatus) -> bool,
) -> ResourceStatus {
    let started = Instant::now();
    loop {
        if let Ok(s) = client.resource_kind(kind).status().await
            && done(&s)
        {
            return s;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{kind}: never {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `file` exists and has a line (at most 10 s); returns it.
async fn line_in(file: &std::path::Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && text.ends_with('\n')
        {
            return text.trim().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{} never written", file.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn gone(result: Result<warden_client::NodeData, warden_client::ClientError>) -> bool {
    matches!(result, Err(e) if e.code() == Some(Code::NotFound))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_waits_for_its_holder_times_out_resumes_and_leaves_no_old_version() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let client = cluster.client();
    let dir = tempfile::TempDir::new().unwrap();

    // init, twice; status.
    let r = warden(&cluster, &["resource", "init", "/orders"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(r.out.trim(), "/orders: created at v1");
    let r = warden(&cluster, &["resource", "init", "/orders", "--version", "v9", "-o", "json"]);
    let again: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!((again["created"].as_bool(), again["version"].as_str()), (Some(false), Some("v1")));
    let r = warden(&cluster, &["resource", "status", "/nothing"]);
    assert_eq!(r.code, Some(5), "no such kind: {}", r.err);

    // A holder of id 42, told its lock path and token; it holds until `release` exists.
    let (seen, release) = (dir.path().join("seen"), dir.path().join("release"));
    let script = format!(
        "echo \"$WARDEN_LOCK_PATH $WARDEN_FENCING_TOKEN\" > {0}; while [ ! -e {1} ]; do sleep 0.05; done",
        seen.display(),
        release.display()
    );
    let mut holder =
        spawn_warden(&cluster, &["lock", "--resource", "/orders", "42", "--", "sh", "-c", &script]);
    let line = line_in(&seen).await;
    let (path, token) = line.split_once(' ').unwrap();
    assert_eq!(path, "/orders/v1/42");
    assert!(token.parse::<u64>().unwrap() > 0, "{line}");
    let r = warden(&cluster, &["resource", "status", "/orders", "-o", "json"]);
    let status: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(status["version"], "v1");
    assert!(status["rotating_to"].is_null());
    assert_eq!(status["current"][0]["lock"], "/orders/v1/42");
    assert_eq!(status["current"][0]["token"].as_u64(), token.parse().ok());

    // --dry-run: the plan names the holder; nothing changes.
    let r = warden(&cluster, &["rotate", "/orders", "--to", "v2", "--dry-run", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let plan: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!((plan["event"].as_str(), plan["to"].as_str()), (Some("plan"), Some("v2")));
    assert_eq!(plan["holders"][0]["lock"], "/orders/v1/42");
    let after = client.resource_kind("/orders").status().await.unwrap();
    assert_eq!((after.version.as_str(), after.rotating_to.as_deref()), ("v1", None));

    // --timeout: exit 3, the holder stays, the rotation stays begun.
    let r = warden(&cluster, &["rotate", "/orders", "--to", "v2", "--timeout", "500ms"]);
    assert_eq!(r.code, Some(3), "{}\n{}", r.out, r.err);
    assert!(r.out.contains("rotating /orders from v1 to v2"), "{}", r.out);
    assert!(r.out.contains("timed out"), "{}", r.out);
    let after = client.resource_kind("/orders").status().await.unwrap();
    assert_eq!((after.version.as_str(), after.rotating_to.as_deref()), ("v1", Some("v2")));
    assert!(holder.try_wait().unwrap().is_none(), "the holder was not disturbed");

    // While it drains, an acquire that will not wait fails at once.
    let r = warden(
        &cluster,
        &["lock", "--resource", "/orders", "7", "--no-wait-while-draining", "--", "true"],
    );
    assert_eq!(r.code, Some(1), "{}", r.err);
    assert!(r.err.contains("rotat") || r.err.contains("Draining"), "{}", r.err);
    // One that waits queues for v2: granted at the switch, with the new version's path.
    let seen_v2 = dir.path().join("seen-v2");
    let script_v2 = format!("echo \"$WARDEN_LOCK_PATH\" > {}", seen_v2.display());
    let mut waiter = spawn_warden(
        &cluster,
        &["lock", "--resource", "/orders", "42", "--", "sh", "-c", &script_v2],
    );
    status_until(&client, "/orders", "with a waiter for v2", |s| !s.waiting.is_empty()).await;

    // A re-run picks the rotation up; it ends when the holder leaves.
    let mut rerun = spawn_warden(&cluster, &["rotate", "/orders", "--to", "v2", "-o", "json"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rerun.try_wait().unwrap().is_none(), "the rotation ended with the holder still there");
    std::fs::write(&release, "").unwrap();
    let (code, err) = exit_within(&mut holder, LIMIT).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = exit_within(&mut rerun, LIMIT).await;
    assert_eq!(code, Some(0), "{err}");
    let events: Vec<serde_json::Value> =
        stdout_of(&mut rerun).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        events.first().map(|e| (e["event"].clone(), e["picked_up"].clone())),
        Some(("begun".into(), true.into()))
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "progress" && e["holders"][0]["lock"] == "/orders/v1/42")
    );
    assert_eq!(events.last().map(|e| e["event"].clone()), Some("done".into()));
    assert_eq!(line_in(&seen_v2).await, "/orders/v2/42");
    let (code, err) = exit_within(&mut waiter, LIMIT).await;
    assert_eq!(code, Some(0), "{err}");
    let done = client.resource_kind("/orders").status().await.unwrap();
    assert_eq!((done.version.as_str(), done.rotating_to.as_deref()), ("v2", None));
    assert!(gone(client.get("/orders/v1").await), "the old version's subtree is gone");

    // Rotating to where it is: done at once. To another version while one is under way:
    // refused.
    let r = warden(&cluster, &["rotate", "/orders", "--to", "v2"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let session = client.open_session(Duration::from_secs(10)).await.unwrap();
    let stuck = client.resource(&session, "/orders").acquire("1").await.unwrap();
    let r = warden(&cluster, &["rotate", "/orders", "--to", "v3", "--timeout", "100ms"]);
    assert_eq!(r.code, Some(3), "{}", r.err);
    let r = warden(&cluster, &["rotate", "/orders", "--to", "v4"]);
    assert_eq!(r.code, Some(1), "{}", r.err);
    assert!(r.err.contains("v3"), "{}", r.err);
    stuck.release().await.unwrap();
    status_until(&client, "/orders", "at v3", |s| s.is_at("v3")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_after_revokes_the_holder_left_whose_lock_exits_4() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let client = cluster.client();
    let r = warden(&cluster, &["resource", "init", "/jobs", "--version", "a"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let mut holder =
        spawn_warden(&cluster, &["lock", "--resource", "/jobs", "j1", "--", "sleep", "30"]);
    status_until(&client, "/jobs", "held", |s| s.holders().count() == 1).await;

    let r = warden(
        &cluster,
        &[
            "rotate",
            "/jobs",
            "--to",
            "b",
            "--force-after",
            "300ms",
            "--timeout",
            "10s",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.out, r.err);
    let events: Vec<serde_json::Value> =
        r.out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let forced = events.iter().find(|e| e["event"] == "forced").expect("a forced event");
    assert_eq!(forced["revoked"], 1);
    assert_eq!(events.last().map(|e| e["event"].clone()), Some("done".into()));

    let (code, err) = exit_within(&mut holder, LIMIT).await;
    assert_eq!(code, Some(4), "the revoked holder's warden lock: {err}");
    assert!(err.contains("lost"), "{err}");
    let done = client.resource_kind("/jobs").status().await.unwrap();
    assert_eq!((done.version.as_str(), done.rotating_to.as_deref()), ("b", None));
    assert!(gone(client.get("/jobs/a").await));
}

// The test.

/// One hold as a worker saw it: the id, the version, the grant's token (its revision) and
/// the revisions of its first and last fenced writes.
#[derive(Debug, Clone)]
struct HoldRecord {
    id: String,
    version: String,
    token: u64,
    first_write: u64,
    last_write: u64,
}

#[derive(Default)]
struct Tally {
    holds: Vec<HoldRecord>,
    /// A live holder's write refused, or a hold seen twice.
    violations: Vec<String>,
    /// Holds lost (not expected here; their writes do not count).
    lost: u64,
    /// Acquires that failed (a timeout during a failover).
    failed: u64,
}

const IDS: u64 = 8;

/// Writes `token` to the per-id node if the token stored there is not higher: read,
/// compare, write at the version read (exactly once, in the session). The revision of
/// the write, or why it was refused.
async fn fenced_write(
    client: &Client,
    session: &Session,
    path: &str,
    token: u64,
) -> Result<u64, String> {
    let started = Instant::now();
    loop {
        let node = client.get(path).await.map_err(|e| format!("read {path}: {e}"))?;
        let stored: u64 = String::from_utf8_lossy(&node.data).parse().unwrap_or(0);
        if stored > token {
            return Err(format!("{path} holds token {stored}, above this holder's {token}"));
        }
        match client.set_in(session, path, token.to_string(), Some(node.stat.version)).await {
            Ok(stat) => return Ok(stat.mod_revision),
            Err(e) if e.kind() == Some(ErrorKind::BadVersion) => {
                return Err(format!("{path} was written by someone else while held: {e}"));
            }
            // A failover: the write carries a request id, so it is applied once however
            // often it is sent.
            Err(_) if started.elapsed() < Duration::from_secs(15) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("write {path}: {e}")),
        }
    }
}

async fn worker(client: Arc<Client>, seed: u64, stop: Arc<AtomicBool>, tally: Arc<Mutex<Tally>>) {
    let mut rng = Rng::new(seed);
    let session = client.open_session(Duration::from_secs(10)).await.unwrap();
    let orders = client.resource(&session, "/orders");
    while !stop.load(Ordering::Relaxed) {
        let id = format!("id{}", rng.below(IDS));
        let guard = match orders.acquire_timeout(&id, Duration::from_secs(10)).await {
            Ok(guard) => guard,
            Err(LockError::Timeout { .. } | LockError::Backend(_)) => {
                tally.lock().unwrap().failed += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => panic!("worker {seed}: {e}"),
        };
        let path = format!("/data/{id}");
        let first = fenced_write(&client, &session, &path, guard.token()).await;
        tokio::time::sleep(Duration::from_millis(rng.between(1, 15))).await;
        let last = fenced_write(&client, &session, &path, guard.token()).await;
        let lost = guard.is_lost();
        let (version, token) = (guard.version().to_owned(), guard.token());
        match guard.release().await {
            Ok(()) | Err(LockError::HoldEnded { .. }) => {}
            Err(e) => panic!("worker {seed}: release: {e}"),
        }
        let mut tally = tally.lock().unwrap();
        match (first, last) {
            _ if lost => tally.lost += 1,
            (Ok(first_write), Ok(last_write)) => {
                tally.holds.push(HoldRecord { id, version, token, first_write, last_write })
            }
            (Err(e), _) | (_, Err(e)) => tally.violations.push(format!("live holder refused: {e}")),
        }
    }
    session.close().await.ok();
}

/// Checks that no id was held by two holds at once, in particular under two versions:
/// per id, in token order, each hold's last write comes before the next hold's grant, and
/// versions never go back.
fn check_holds(holds: &[HoldRecord]) -> Vec<String> {
    let mut problems = Vec::new();
    for n in 0..IDS {
        let id = format!("id{n}");
        let mut of_id: Vec<&HoldRecord> = holds.iter().filter(|h| h.id == id).collect();
        of_id.sort_by_key(|h| h.token);
        for h in &of_id {
            if !(h.token < h.first_write && h.first_write <= h.last_write) {
                problems.push(format!("{id}: a hold wrote before its grant: {h:?}"));
            }
        }
        for pair in of_id.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a.token == b.token {
                problems.push(format!("{id}: token {} granted twice", a.token));
            }
            if a.last_write >= b.token {
                problems.push(format!("{id}: held twice at once: {a:?} and {b:?}"));
            }
            if a.version > b.version {
                problems.push(format!("{id}: version went back: {a:?} then {b:?}"));
            }
        }
    }
    problems
}

/// Holds id "slow" in `session` (in the version current now), for a rotation to wait on.
async fn slow_hold(client: &Client, session: &Session) -> warden_client::ResourceGuard {
    client.resource(session, "/orders").acquire("slow").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_clients_and_two_rotations_through_a_leader_kill_and_a_killed_tool() {
    let mut cluster = ProcessCluster::start_tls_if_asked(3);
    cluster.leader().await;
    let client = Arc::new(cluster.client());
    client.resource_kind("/orders").init("v1").await.unwrap();
    client.put("/data", "").await.unwrap();
    for n in 0..IDS {
        client.put(&format!("/data/id{n}"), "0").await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let workers: Vec<_> = (0..16)
        .map(|i| {
            tokio::spawn(worker(
                Arc::clone(&client),
                1000 + i,
                Arc::clone(&stop),
                Arc::clone(&tally),
            ))
        })
        .collect();
    let slow_session = client.open_session(Duration::from_secs(10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Rotation 1, v1 -> v2, with the raft leader killed while it drains.
    let slow = slow_hold(&client, &slow_session).await;
    assert_eq!(slow.version(), "v1");
    let mut tool = spawn_warden(
        &cluster,
        &["rotate", "/orders", "--to", "v2", "--timeout", "30s", "-o", "json"],
    );
    status_until(&client, "/orders", "rotating to v2", |s| s.rotating_to.as_deref() == Some("v2"))
        .await;
    let leader = cluster.leader().await;
    cluster.kill9(usize::try_from(leader).unwrap());
    let started = Instant::now();
    while cluster.leader().await == leader {
        assert!(started.elapsed() < Duration::from_secs(10), "no new leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let draining = client.resource_kind("/orders").status().await.unwrap();
    assert_eq!(draining.rotating_to.as_deref(), Some("v2"), "the slow holder still holds v1");
    slow.release().await.unwrap();
    let (code, err) = exit_within(&mut tool, LIMIT).await;
    assert_eq!(code, Some(0), "rotation 1: {err}");
    assert!(stdout_of(&mut tool).contains("\"event\":\"done\""));
    let at = client.resource_kind("/orders").status().await.unwrap();
    assert_eq!((at.version.as_str(), at.rotating_to.as_deref()), ("v2", None));
    assert!(gone(client.get("/orders/v1").await), "v1's subtree is gone");

    // Rotation 2, v2 -> v3, with the tool killed while it drains and run again.
    let slow = slow_hold(&client, &slow_session).await;
    assert_eq!(slow.version(), "v2");
    let mut tool = spawn_warden(&cluster, &["rotate", "/orders", "--to", "v3", "-o", "json"]);
    status_until(&client, "/orders", "rotating to v3", |s| s.rotating_to.as_deref() == Some("v3"))
        .await;
    tool.kill().unwrap();
    tool.wait().unwrap();
    let mut rerun = spawn_warden(
        &cluster,
        &["rotate", "/orders", "--to", "v3", "--timeout", "30s", "-o", "json"],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    slow.release().await.unwrap();
    let (code, err) = exit_within(&mut rerun, LIMIT).await;
    assert_eq!(code, Some(0), "rotation 2, run again: {err}");
    let out = stdout_of(&mut rerun);
    assert!(out.contains("\"picked_up\":true") && out.contains("\"event\":\"done\""), "{out}");
    let at = client.resource_kind("/orders").status().await.unwrap();
    assert_eq!((at.version.as_str(), at.rotating_to.as_deref()), ("v3", None));
    assert!(gone(client.get("/orders/v2").await), "v2's subtree is gone");

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        tokio::time::timeout(LIMIT, w).await.expect("a worker did not stop").unwrap();
    }
    let tally = tally.lock().unwrap();
    assert!(tally.violations.is_empty(), "{:#?}", tally.violations);
    let problems = check_holds(&tally.holds);
    assert!(problems.is_empty(), "{problems:#?}");
    for version in ["v1", "v2", "v3"] {
        let n = tally.holds.iter().filter(|h| h.version == version).count();
        assert!(n > 0, "no hold in {version}: the test saw no rotation");
    }
    eprintln!(
        "{} holds ({} lost, {} acquires failed over), no id held twice",
        tally.holds.len(),
        tally.lost,
        tally.failed
    );
}

#[test]
fn the_overlap_check_finds_an_id_held_twice() {
    let hold = |version: &str, token, first_write, last_write| HoldRecord {
        id: "id1".into(),
        version: version.into(),
        token,
        first_write,
        last_write,
    };
    assert!(check_holds(&[hold("v1", 10, 11, 12), hold("v2", 13, 14, 15)]).is_empty());
    let overlap = check_holds(&[hold("v1", 10, 11, 14), hold("v2", 13, 15, 16)]);
    assert!(overlap.iter().any(|p| p.contains("held twice")), "{overlap:?}");
    let back = check_holds(&[hold("v2", 10, 11, 12), hold("v1", 13, 14, 15)]);
    assert!(back.iter().any(|p| p.contains("version went back")), "{back:?}");
}
