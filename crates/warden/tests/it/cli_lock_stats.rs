//! `warden lock stats`: three `warden lock` processes contend for one lock (the first holds
//! it until the others have queued), and `warden lock stats PREFIX -o json` counts three
//! grants, two of them contended, and three holds, with nothing held or waited for after;
//! the table shows the lock and the total. With `WARDEN_TEST_TLS=1` the members and the
//! CLI speak mutual TLS.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::processes::{ProcessCluster, exit_within, run_warden, wait_for_holder, wait_for_queue};

const LIMIT: Duration = Duration::from_secs(30);

/// `warden lock PATH -- sh -c SCRIPT`, running in the background.
fn lock(connect: &[String], path: &str, script: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(connect)
        .args(["lock", path, "--timeout", "20s", "--", "sh", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_stats_counts_contended_warden_locks() {
    let cluster = ProcessCluster::start_tls_if_asked(1);
    cluster.leader().await;
    let connect = cluster.cli_args();
    let client = cluster.client();
    let gate = tempfile::TempDir::new().unwrap();
    let open = gate.path().join("open");
    // The first holder waits (at most 20 s) for the gate, opened once the others queue.
    let hold = format!(
        "for i in $(seq 400); do [ -e '{}' ] && exit 0; sleep 0.05; done; exit 1",
        open.display()
    );
    let mut first = lock(&connect, "/stats/job", &hold);
    wait_for_holder(&client, "/stats/job").await;
    let mut second = lock(&connect, "/stats/job", "true");
    wait_for_queue(&client, "/stats/job", 2).await;
    let mut third = lock(&connect, "/stats/job", "true");
    wait_for_queue(&client, "/stats/job", 3).await;
    // Another lock, uncontended; and one beside the prefix, not under it.
    for path in ["/stats/quiet", "/statsx"] {
        let mut quiet = lock(&connect, path, "true");
        assert_eq!(exit_within(&mut quiet, LIMIT).await.0, Some(0));
    }
    std::fs::write(&open, b"").unwrap();
    for child in [&mut first, &mut second, &mut third] {
        let (code, err) = exit_within(child, LIMIT).await;
        assert_eq!(code, Some(0), "{err}");
    }

    let stats = |extra: &[&str]| {
        let mut args: Vec<&str> = connect.iter().map(String::as_str).collect();
        args.extend(["lock", "stats", "/stats"]);
        args.extend_from_slice(extra);
        run_warden(&args, None, LIMIT)
    };
    let r = stats(&["-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let json: Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!(json["prefix"], "/stats");
    assert_eq!(json["matched"], 2, "{json}");
    let job = &json["locks"][0];
    assert_eq!(job["path"], "/stats/job", "the lock that made processes wait first: {json}");
    assert_eq!((job["acquisitions"].as_u64(), job["contended"].as_u64()), (Some(3), Some(2)));
    assert_eq!((job["holders"].as_u64(), job["waiters"].as_u64()), (Some(0), Some(0)));
    assert_eq!((job["wait"]["count"].as_u64(), job["hold"]["count"].as_u64()), (Some(3), Some(3)));
    assert_eq!(job["wait"]["buckets"].as_array().map(Vec::len), Some(22));
    assert_eq!(json["locks"][1]["path"], "/stats/quiet");
    assert_eq!(json["locks"][1]["contended"], 0);
    assert_eq!(json["total"]["acquisitions"], 4);

    let r = stats(&["--limit", "1"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.out);
    assert!(lines[0].contains("the busiest 1 of 2 locks"), "{}", r.out);
    assert!(lines[2].starts_with("/stats/job "), "{}", r.out);
    assert!(lines[3].starts_with("total (2 locks)"), "{}", r.out);

    let mut args: Vec<&str> = connect.iter().map(String::as_str).collect();
    args.extend(["lock", "status", "/stats/job", "--limit", "1"]);
    let r = run_warden(&args, None, LIMIT);
    assert_ne!(r.code, Some(0), "--limit is for stats only");
    assert!(r.err.contains("--limit goes with stats"), "{}", r.err);
}
