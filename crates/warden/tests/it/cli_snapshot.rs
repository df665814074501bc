//! `warden snapshot save|status|restore`, `warden txn` and `warden endpoint health` as
//! processes against `warden server` processes: a backup saved from one cluster seeds a
//! new one (both forms of restore), damaged files and used data directories are refused
//! with clear messages; a transaction from a file or standard input succeeds, fails its
//! compare (exit 6) or is refused for a bad field (named by its JSON path); endpoint
//! health names a stopped member and exits 7.

use std::time::Duration;

use tempfile::TempDir;
use warden_server::Config;

use crate::processes::{Finished, ProcessCluster, run_warden};

const LIMIT: Duration = Duration::from_secs(30);

fn warden(cluster: &ProcessCluster, args: &[&str], stdin: Option<&[u8]>) -> Finished {
    let mut all = cluster.cli_args();
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run_warden(&all, stdin, LIMIT)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_snapshot_restores_into_a_new_cluster() {
    let source = ProcessCluster::start(3);
    source.leader().await;
    let client = source.client();
    client.put("/app", "config").await.unwrap();
    client.put("/app/db", "postgres://db").await.unwrap();
    let file = source.dir.path().join("backup.db");
    let at = file.to_str().unwrap();
    let saved = warden(&source, &["snapshot", "save", at, "-o", "json"], None);
    assert_eq!(saved.code, Some(0), "{}", saved.err);
    let saved = json(&saved.out);
    let revision = saved["revision"].as_u64().unwrap();
    assert!(revision >= 2, "{saved}");
    assert_eq!(saved["bytes"].as_u64(), Some(std::fs::metadata(&file).unwrap().len()));
    assert_eq!(saved["sha256"].as_str().map(str::len), Some(64));
    let status = run_warden(&["snapshot", "status", at], None, LIMIT);
    assert_eq!(status.code, Some(0), "{}", status.err);
    assert!(status.out.contains(&format!("revision {revision},")), "{}", status.out);
    assert!(status.out.contains("(ok)"), "{}", status.out);

    // A cluster that cannot be reached leaves no file.
    let nowhere = source.dir.path().join("nowhere.db");
    let args = ["--endpoints", "127.0.0.1:1", "snapshot", "save", nowhere.to_str().unwrap()];
    let failed = run_warden(&args, None, LIMIT);
    assert_eq!(failed.code, Some(7), "{}", failed.err);
    assert!(!nowhere.exists());
    let leftovers: Vec<_> = std::fs::read_dir(source.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".warden-snapshot-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A damaged copy is refused, by status and by restore, and nothing is written.
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let damaged = source.dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let damaged = damaged.to_str().unwrap();
    let status = run_warden(&["snapshot", "status", damaged], None, LIMIT);
    assert_eq!(status.code, Some(1));
    assert!(status.err.contains("is damaged"), "{}", status.err);

    // The new cluster: its configs, on new ports, written but not started.
    let target = ProcessCluster::configure(3, TempDir::new().unwrap(), |_| String::new());
    let fresh = target.dir.path().join("fresh");
    let restore_damaged = run_warden(
        &["snapshot", "restore", damaged, "--config", target.config_file(1).to_str().unwrap()],
        None,
        LIMIT,
    );
    assert_eq!(restore_damaged.code, Some(1));
    assert!(restore_damaged.err.contains("is damaged"), "{}", restore_damaged.err);
    assert!(!target.dir.path().join("node1").exists(), "a refused restore writes nothing");
    assert!(!fresh.exists());

    // Members 1 and 2 from their config files; member 3 from flags.
    for id in 1..=2 {
        let config = target.config_file(id);
        let r = run_warden(
            &["snapshot", "restore", at, "--config", config.to_str().unwrap()],
            None,
            LIMIT,
        );
        assert_eq!(r.code, Some(0), "{}", r.err);
        assert!(r.out.contains(&format!("revision {revision}")), "{}", r.out);
    }
    let config: Config =
        toml::from_str(&std::fs::read_to_string(target.config_file(3)).unwrap()).unwrap();
    let members: Vec<String> = config
        .initial_members
        .iter()
        .map(|m| format!("{}={}@{}", m.id, m.peer_addr, m.client_addr))
        .collect();
    let data_dir = config.data_dir.to_str().unwrap();
    let members = members.join(",");
    let flags = ["--data-dir", data_dir, "--node-id", "3", "--initial-members", &members];
    let restore = |extra: &[&str]| {
        let mut args = vec!["snapshot", "restore", at];
        args.extend_from_slice(extra);
        run_warden(&args, None, LIMIT)
    };
    let r = restore(&[&flags[..], &["-o", "json"]].concat());
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(json(&r.out)["revision"].as_u64(), Some(revision));
    // Again into the same, now used, directory: refused, and it is left as it was.
    let again = restore(&flags);
    assert_eq!(again.code, Some(1));
    assert!(again.err.contains("is not empty"), "{}", again.err);
    let bad_members = restore(&[
        "--data-dir",
        fresh.to_str().unwrap(),
        "--node-id",
        "3",
        "--initial-members",
        "3=127.0.0.1:1",
    ]);
    assert_eq!(bad_members.code, Some(1));
    assert!(bad_members.err.contains("ID=PEER_ADDR@CLIENT_ADDR"), "{}", bad_members.err);

    // The new cluster starts with the backup's state and revision, and takes writes.
    let mut target = target;
    for id in 1..=3 {
        target.spawn(id);
    }
    target.leader().await;
    let client = target.client();
    let read = client.get("/app/db").await.unwrap();
    assert_eq!(&read.data[..], b"postgres://db");
    assert_eq!(read.revision, revision, "no write since the restore");
    let after = client.put("/app/after", "x").await.unwrap();
    assert_eq!(after.mod_revision, revision + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_runs_a_json_transaction_from_a_file_or_standard_input() {
    let cluster = ProcessCluster::start(1);
    cluster.leader().await;
    cluster.client().put("/t", "1").await.unwrap();
    let doc = r#"{
        "compare": [{"path": "/t", "target": "version", "op": "=", "value": 0},
                    {"path": "/u", "target": "exists", "value": false}],
        "success": [{"set": {"path": "/t", "value": "2"}},
                    {"create": {"path": "/u", "value": "new"}}]
    }"#;
    let file = cluster.dir.path().join("txn.json");
    std::fs::write(&file, doc).unwrap();
    let file = file.to_str().unwrap();
    let ran = warden(&cluster, &["txn", file], None);
    assert_eq!(ran.code, Some(0), "{}", ran.err);
    assert!(ran.out.starts_with("SUCCESS (revision "), "{}", ran.out);
    assert!(
        ran.out.contains("set version 1") && ran.out.contains("created /u version 0"),
        "{}",
        ran.out
    );
    // The same again: /t is at version 1 now, so the first compare fails.
    let failed = warden(&cluster, &["txn", file, "-o", "json"], None);
    assert_eq!(failed.code, Some(6), "{}", failed.err);
    let answer = json(&failed.out);
    assert_eq!(
        (answer["succeeded"].as_bool(), answer["failed_compare"].as_u64()),
        (Some(false), Some(0))
    );
    assert_eq!(&cluster.client().get("/t").await.unwrap().data[..], b"2", "nothing applied");
    // From standard input, without a FILE and with -.
    let delete = br#"{"success": [{"delete": {"path": "/u"}}]}"#;
    let ran = warden(&cluster, &["txn", "-o", "json"], Some(delete));
    assert_eq!(ran.code, Some(0), "{}", ran.err);
    assert_eq!(json(&ran.out)["results"][0]["deleted"].as_u64(), Some(1));
    let create = br#"{"success": [{"create": {"path": "/u", "value_base64": "/w=="}}]}"#;
    let ran = warden(&cluster, &["txn", "-"], Some(create));
    assert_eq!(ran.code, Some(0), "{}", ran.err);
    assert_eq!(&cluster.client().get("/u").await.unwrap().data[..], [0xff]);
    // A bad field is named by its JSON path, and nothing is sent.
    let bad = br#"{"compare": [], "success": [{"set": {"path": "/t", "value": 3}}]}"#;
    let refused = warden(&cluster, &["txn"], Some(bad));
    assert_eq!(refused.code, Some(1));
    assert!(refused.err.contains("$.success[0].set.value: expected a string"), "{}", refused.err);
    let not_json = warden(&cluster, &["txn"], Some(b"{\"success\": ["));
    assert_eq!(not_json.code, Some(1));
    assert!(not_json.err.contains("not valid JSON"), "{}", not_json.err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_health_asks_every_member_and_names_a_stopped_one() {
    let mut cluster = ProcessCluster::start(3);
    cluster.leader().await;
    // Only member 1 given: the others come from the cluster's own list.
    let first = cluster.clients[0].clone();
    let health = |cluster: &ProcessCluster| {
        let mut args = cluster.cli_args_to(&first);
        args.extend(["endpoint", "health", "-o", "json", "--timeout", "2s"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_warden(&args, None, LIMIT)
    };
    // Followers are healthy once they have caught up: ask until all three say so.
    let mut all = None;
    for _ in 0..100 {
        let r = health(&cluster);
        if r.code == Some(0) {
            all = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = all.expect("the three members never all healthy");
    let lines: Vec<serde_json::Value> = all.out.lines().map(json).collect();
    assert_eq!(lines.len(), 3, "{}", all.out);
    assert!(lines.iter().all(|l| l["healthy"] == true), "{}", all.out);
    let mut endpoints: Vec<&str> = lines.iter().filter_map(|l| l["endpoint"].as_str()).collect();
    endpoints.sort_unstable();
    let mut expected: Vec<&str> = cluster.clients.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(endpoints, expected);

    let stopped = cluster.clients[2].clone();
    cluster.stop(3);
    let r = health(&cluster);
    assert_eq!(r.code, Some(7), "{}\n{}", r.out, r.err);
    let lines: Vec<serde_json::Value> = r.out.lines().map(json).collect();
    let down: Vec<&serde_json::Value> = lines.iter().filter(|l| l["healthy"] == false).collect();
    assert_eq!(down.len(), 1, "{}", r.out);
    assert_eq!(down[0]["endpoint"], stopped.as_str());
    assert!(down[0]["reason"].is_string());
    assert!(r.err.contains(&stopped), "{}", r.err);

    // --listed-only: member 1 alone (a container's health check of its own member), not
    // failed by the stopped one.
    let mut args = cluster.cli_args_to(&first);
    args.extend(["endpoint", "health", "--listed-only", "-o", "json"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let alone = run_warden(&args, None, LIMIT);
    assert_eq!(alone.code, Some(0), "{}\n{}", alone.out, alone.err);
    let lines: Vec<serde_json::Value> = alone.out.lines().map(json).collect();
    assert_eq!(lines.len(), 1, "{}", alone.out);
    assert_eq!(lines[0]["endpoint"], first.as_str());
}
