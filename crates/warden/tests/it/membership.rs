//! Membership changes with real `warden server` processes: grow 3 → 5 (by `--join`) and
//! shrink 5 → 3 (the leader among those removed) under a write and lock load, with no
//! acknowledged write lost and no two holders of the lock at once; and the CLI's
//! `member list|add|remove`, `leader transfer` and `server --join`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warden_client::{Client, ClientError};
use warden_testkit::checks::{self, FencedWrite, Hold};
use warden_testkit::free_port;

use crate::processes::{ProcessCluster, run_warden};

/// A member started with `warden server --join`, killed when dropped.
struct Joiner {
    id: usize,
    child: Child,
    client_addr: String,
    peer_addr: String,
    log: std::path::PathBuf,
}

impl Joiner {
    /// Writes member `id`'s config (its own entry only) under `dir` and starts it with
    /// `--join` to `endpoints`.
    fn start(dir: &Path, id: usize, endpoints: &str) -> Joiner {
        let (c, p, h) = (free_port(), free_port(), free_port());
        let config = format!(
            "node_id = {id}\nclient_addr = \"127.0.0.1:{c}\"\npeer_addr = \"127.0.0.1:{p}\"\n\
             http_addr = \"127.0.0.1:{h}\"\ndata_dir = \"{data}\"\n\
             heartbeat_ms = 50\nelection_timeout_ms = 400\n\n\
             [[initial_members]]\nid = {id}\npeer_addr = \"127.0.0.1:{p}\"\nclient_addr = \"127.0.0.1:{c}\"\n",
            data = dir.join(format!("node{id}")).display(),
        );
        let path = dir.join(format!("node{id}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = dir.join(format!("node{id}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["server", "--config"])
            .arg(&path)
            .args(["--join", endpoints])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Joiner {
            id,
            child,
            client_addr: format!("127.0.0.1:{c}"),
            peer_addr: format!("127.0.0.1:{p}"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log says `text`, for up to 10 s.
    async fn logged(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "member {} never logged {text:?}: {}",
                self.id,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Joiner {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Waits until the cluster lists `voters` voters, for up to `within`.
async fn wait_for_voters(client: &Client, voters: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(list) = client.member_list().await {
            let n = list.members.iter().filter(|m| m.membership == "voter").count();
            if n == voters && list.leader_id != 0 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "not {voters} voters within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the load recorded.
#[derive(Default)]
struct Recorded {
    acked: Mutex<Vec<String>>,
    holds: Mutex<Vec<Hold>>,
    writes: Mutex<Vec<FencedWrite>>,
    overlaps: Mutex<Vec<String>>,
}

/// Puts unique keys until `stop` (at most `max` of them); records those acknowledged.
async fn writer(client: Client, w: u64, max: u64, stop: Arc<AtomicBool>, rec: Arc<Recorded>) {
    for i in 0..max {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let path = format!("/grow-{w}-{i}");
        match client.put(&path, "v").await {
            Ok(_) => rec.acked.lock().unwrap().push(path),
            // Not acknowledged: it may or may not be there, and is not checked.
            Err(ClientError::OutcomeUnknown { .. } | ClientError::Unavailable { .. }) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("put {path}: {e}"),
        }
    }
}

/// Takes the lock `/grow-lock` again and again until `stop`; while holding it, checks that
/// nobody else does (`in_use`) and writes twice to the fenced resource.
async fn locker(
    client: Client,
    c: u64,
    start: Instant,
    in_use: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    rec: Arc<Recorded>,
) {
    let session = client.open_session(Duration::from_secs(10)).await.unwrap();
    let now = || start.elapsed().as_nanos() as u64;
    for _ in 0..2_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let requested_at = now();
        let guard = match client
            .mutex(&session, "/grow-lock")
            .acquire_timeout(Duration::from_secs(5))
            .await
        {
            Ok(g) => g,
            Err(_) => continue,
        };
        let token = guard.token();
        if in_use.fetch_add(1, Ordering::SeqCst) != 0 {
            rec.overlaps
                .lock()
                .unwrap()
                .push(format!("client {c} got token {token} while another held"));
        }
        for _ in 0..2 {
            rec.writes.lock().unwrap().push(FencedWrite {
                client: c,
                token,
                accepted: true,
                live_after: false,
            });
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        in_use.fetch_sub(1, Ordering::SeqCst);
        let released_at = guard.release().await.is_ok().then(now);
        rec.holds.lock().unwrap().push(Hold { client: c, token, requested_at, released_at });
    }
    session.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_three_to_five_and_shrink_back_under_writes_and_locks() {
    let started = Instant::now();
    let cluster = ProcessCluster::start(3);
    let client = cluster.client();
    let leader = cluster.leader().await;
    assert!(leader != 0);
    let stop = Arc::new(AtomicBool::new(false));
    let rec = Arc::new(Recorded::default());
    let in_use = Arc::new(AtomicU64::new(0));
    let mut load = tokio::task::JoinSet::new();
    for w in 0..2 {
        load.spawn(writer(cluster.client(), w, 5_000, Arc::clone(&stop), Arc::clone(&rec)));
    }
    for c in 0..3 {
        let (stop, rec, in_use) = (Arc::clone(&stop), Arc::clone(&rec), Arc::clone(&in_use));
        load.spawn(locker(cluster.client(), c, started, in_use, stop, rec));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Grow: two members join by themselves.
    let acked_before_grow = rec.acked.lock().unwrap().len();
    let endpoints = cluster.clients.join(",");
    let four = Joiner::start(cluster.dir.path(), 4, &endpoints);
    wait_for_voters(&client, 4, Duration::from_secs(20)).await;
    let five = Joiner::start(cluster.dir.path(), 5, &endpoints);
    wait_for_voters(&client, 5, Duration::from_secs(20)).await;
    four.logged("joined the cluster").await;
    five.logged("joined the cluster").await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Shrink: the leader goes (it hands over first), then a member that joined.
    let all: Vec<String> = cluster
        .clients
        .iter()
        .cloned()
        .chain([four.client_addr.clone(), five.client_addr.clone()])
        .collect();
    let everyone = Client::new(all).unwrap();
    let leader = cluster.leader().await;
    let acked_before_shrink = rec.acked.lock().unwrap().len();
    everyone
        .member_remove(leader)
        .await
        .unwrap_or_else(|e| panic!("removing leader {leader}: {e}"));
    everyone.member_remove(4).await.unwrap_or_else(|e| panic!("removing 4: {e}"));
    wait_for_voters(&everyone, 3, Duration::from_secs(20)).await;
    let list = everyone.member_list().await.unwrap();
    let ids: Vec<u64> = list.members.iter().map(|m| m.id).collect();
    assert!(!ids.contains(&leader) && !ids.contains(&4) && ids.contains(&5), "{ids:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;

    stop.store(true, Ordering::Relaxed);
    while let Some(done) = load.join_next().await {
        done.unwrap();
    }
    // Every acknowledged write is there, read linearizably through the members left.
    let acked = rec.acked.lock().unwrap().clone();
    // Writes were acknowledged in each phase (the counts depend on the disk: not checked).
    assert!(
        acked_before_grow > 0 && acked_before_shrink > acked_before_grow,
        "no writes while growing"
    );
    assert!(acked.len() > acked_before_shrink, "no writes while shrinking");
    let mut present = Vec::new();
    for path in &acked {
        match everyone.get(path).await {
            Ok(_) => present.push(path.clone()),
            Err(e) => panic!("acknowledged {path} is not readable: {e}"),
        }
    }
    let lost = checks::durability(&acked, &present);
    assert!(lost.is_empty(), "{lost:?}");
    // One holder at a time, fencing tokens strictly increasing.
    let holds = rec.holds.lock().unwrap().clone();
    assert!(holds.len() >= 10, "only {} holds", holds.len());
    let overlaps = rec.overlaps.lock().unwrap().clone();
    assert!(overlaps.is_empty(), "{overlaps:?}");
    let fencing = checks::fencing(&holds, &rec.writes.lock().unwrap());
    assert!(fencing.is_empty(), "{fencing:?}");
    let mut tokens: Vec<u64> = holds.iter().map(|h| h.token).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), holds.len(), "a token granted twice");
    eprintln!(
        "grow/shrink: {} writes acknowledged, {} holds, in {:?}",
        acked.len(),
        holds.len(),
        started.elapsed()
    );
    drop((four, five));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_adds_removes_members_and_transfers_the_leadership() {
    let cluster = ProcessCluster::start(3);
    cluster.leader().await;
    let endpoints = cluster.clients.join(",");
    let joiner = Joiner::start(cluster.dir.path(), 4, &endpoints);
    let limit = Duration::from_secs(30);
    let warden = |args: &[&str]| {
        let mut all = vec!["--endpoints", endpoints.as_str()];
        all.extend_from_slice(args);
        run_warden(&all, None, limit)
    };
    // --join: member 4 asks to be added and becomes a voter.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = warden(&["member", "list", "-o", "json"]);
        assert_eq!(listed.code, Some(0), "{}", listed.err);
        let doc: serde_json::Value = serde_json::from_str(listed.out.trim()).unwrap();
        let voters = doc["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["membership"] == "voter")
            .count();
        if voters == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "member 4 did not join: {}", joiner.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    joiner.logged("joined the cluster").await;
    let table = warden(&["member", "list"]);
    assert_eq!(table.code, Some(0));
    assert!(table.out.starts_with("ID"), "{}", table.out);
    assert!(
        table.out.contains(&joiner.client_addr) && table.out.contains("leader"),
        "{}",
        table.out
    );

    // Adding it again changes nothing; with other addresses it is refused (exit 6).
    let again = warden(&[
        "member",
        "add",
        "4",
        "--peer-addr",
        &joiner.peer_addr,
        "--client-addr",
        &joiner.client_addr,
    ]);
    assert_eq!(again.code, Some(0), "{}", again.err);
    assert!(again.out.contains("member 4 is a voter already"), "{}", again.out);
    let other = warden(&[
        "member",
        "add",
        "4",
        "--peer-addr",
        "127.0.0.1:1",
        "--client-addr",
        "127.0.0.1:2",
    ]);
    assert_eq!(other.code, Some(6), "{}", other.err);
    assert!(other.err.contains("already in the cluster"), "{}", other.err);

    // The leadership to member 4.
    let moved = warden(&["leader", "transfer", "4"]);
    assert_eq!(moved.code, Some(0), "{}", moved.err);
    assert!(moved.out.starts_with("member 4 leads (term "), "{}", moved.out);
    let status = cluster.client().status().await.unwrap();
    assert_eq!(status.leader_id, 4);

    // Removing: an unknown id is exit 5; the leader goes after handing over.
    let unknown = warden(&["member", "remove", "9"]);
    assert_eq!(unknown.code, Some(5), "{}", unknown.err);
    let removed = warden(&["member", "remove", "4"]);
    assert_eq!(removed.code, Some(0), "{}", removed.err);
    assert!(removed.out.contains("member 4 removed; 3 member(s) left"), "{}", removed.out);
    // The removed member says so, to clients (exit 7) and in its log.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = run_warden(&["--endpoints", &joiner.client_addr, "get", "/"], None, limit);
        if got.code == Some(7) && got.err.contains("this member was removed from the cluster") {
            break;
        }
        assert!(Instant::now() < deadline, "member 4 still serves: {:?} {}", got.code, got.err);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    joiner.logged("removed from the cluster").await;
    let put = warden(&["put", "/after", "v"]);
    assert_eq!(put.code, Some(0), "{}", put.err);
}
