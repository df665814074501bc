//! Values from files and standard input, compare-and-set from the shell, `get --prefix`,
//! `session close`, and `lock status` of a free lock.

use std::time::Duration;

use warden_core::CreateMode;

use crate::processes::{Finished, ProcessCluster, run_warden};

const LIMIT: Duration = Duration::from_secs(30);

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_from_files_and_stdin_and_compare_and_set() {
    let cluster = ProcessCluster::start(1);
    cluster.leader().await;
    let e = cluster.clients[0].clone();
    let client = cluster.client();
    let warden = |args: &[&str], stdin: Option<&[u8]>| -> Finished {
        let mut all = vec!["--endpoints", &e];
        all.extend_from_slice(args);
        run_warden(&all, stdin, LIMIT)
    };
    let bytes: &[u8] = b"line 1\nline 2\x00\xff";
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let file = file.path().to_str().unwrap();

    let r = warden(&["put", "/stdin", "-"], Some(bytes));
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(client.get("/stdin").await.unwrap().data, bytes);
    let r = warden(&["put", "/file", "--file", file], None);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(client.get("/file").await.unwrap().data, bytes);
    let r = warden(&["create", "/created", "-"], Some(b"from stdin"));
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(client.get("/created").await.unwrap().data, "from stdin");
    let r = warden(&["create", "/created-file", "--file", file], None);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(client.get("/created-file").await.unwrap().data, bytes);
    let r = warden(&["get", "/file", "-o", "json"], None);
    assert!(json_lines(&r.out)[0]["value_base64"].is_string(), "{}", r.out);
    let r = warden(&["put", "/both", "v", "--file", file], None);
    assert_eq!(r.code, Some(2), "a value and a file: {}", r.err);
    let r = warden(&["put", "/missing-file", "--file", "/nonexistent/value"], None);
    assert_eq!(r.code, Some(1), "{}", r.err);
    assert!(r.err.contains("cannot read the value from /nonexistent/value"), "{}", r.err);

    // Compare-and-set: only at the version given.
    client.put("/cas", "v0").await.unwrap();
    let r = warden(&["put", "/cas", "v1", "--version", "3"], None);
    assert_eq!(r.code, Some(6), "version mismatch: {}", r.err);
    assert_eq!(client.get("/cas").await.unwrap().data, "v0");
    let r = warden(&["put", "/cas", "v1", "--version", "0"], None);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(client.get("/cas").await.unwrap().stat.version, 1);
    let r = warden(&["put", "/cas-missing", "v", "--version", "0"], None);
    assert_eq!(r.code, Some(5), "--version never creates: {}", r.err);
    assert!(client.get("/cas-missing").await.is_err());
    let r = warden(&["rm", "/cas", "--version", "0"], None);
    assert_eq!(r.code, Some(6), "{}", r.err);
    let r = warden(&["rm", "/cas", "--version", "1"], None);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(client.get("/cas").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prefix_session_close_and_free_locks() {
    let cluster = ProcessCluster::start(1);
    cluster.leader().await;
    let e = cluster.clients[0].clone();
    let client = cluster.client();
    let warden = |args: &[&str]| -> Finished {
        let mut all = vec!["--endpoints", &e];
        all.extend_from_slice(args);
        run_warden(&all, None, LIMIT)
    };
    for (path, value) in
        [("/app", ""), ("/app/b", "2"), ("/app/a", "1"), ("/app/a/x", "deep"), ("/apple", "no")]
    {
        client.create(path, value, CreateMode::PERSISTENT).await.unwrap();
    }
    let r = warden(&["get", "/app", "--prefix"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(r.out, "/app\n/app/a 1\n/app/a/x deep\n/app/b 2\n");
    let r = warden(&["get", "/app", "--prefix", "-o", "json"]);
    let nodes = json_lines(&r.out);
    let paths: Vec<&str> = nodes.iter().map(|n| n["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/app", "/app/a", "/app/a/x", "/app/b"]);
    assert_eq!(nodes[2]["value"], "deep");
    let r = warden(&["get", "/nothing", "--prefix"]);
    assert_eq!(r.code, Some(5), "{}", r.err);
    let r = warden(&["get", "--help"]);
    assert!(r.out.contains("not one atomic snapshot"), "{}", r.out);

    // An operator closes a session by id: its ephemeral nodes go.
    let session = client.open_session(Duration::from_secs(30)).await.unwrap();
    client.create_in(&session, "/app/owned", "", CreateMode::EPHEMERAL).await.unwrap();
    let id = session.id().to_string();
    let r = warden(&["session", "close", &id, "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(json_lines(&r.out)[0]["deleted"], 1);
    assert!(client.get("/app/owned").await.is_err());
    assert!(client.sessions(0).await.unwrap().is_empty());
    let r = warden(&["session", "close", &id]);
    assert_eq!(r.code, Some(5), "{}", r.err);
    session.abandon();

    // A lock nobody holds is free, whether it never was taken or was released.
    let r = warden(&["lock", "status", "/app/never-locked"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(r.out.contains("free"), "{}", r.out);
    let r = warden(&["lock", "/app/job", "--timeout", "1.5s", "--", "true"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let r = warden(&["lock", "status", "/app/job", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(json_lines(&r.out)[0]["free"], true);
    let r = warden(&["lock", "status", "/app/b"]);
    assert_eq!(r.code, Some(1), "{}", r.err);
    assert!(r.err.contains("not a lock"), "{}", r.err);
}
