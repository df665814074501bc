//! A plain `warden rm` never ends someone else's lock: deleting a waiter node or a subtree
//! holding locks is refused and names the lock; `rm -r --revoke-locks` revokes each hold
//! and wait, and the `warden lock` holding it is told at once and exits 4. With
//! `WARDEN_TEST_TLS=1` the members and the CLI speak mutual TLS.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::processes::{ProcessCluster, exit_within, wait_for_holder};

fn warden(connect: &[String], args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden")).args(connect).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `warden lock PATH -- sleep 60`, its stderr captured.
fn holder(connect: &[String], path: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(connect)
        .args(["lock", path, "--ttl", "30s", "--", "sleep", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_rm_never_ends_a_lock_and_rm_revoke_locks_tells_the_holder() {
    let cluster = ProcessCluster::start_tls_if_asked(3);
    cluster.leader().await;
    let e = cluster.cli_args();
    assert_eq!(warden(&e, &["put", "/jobs", ""]).0, Some(0));
    let mut first = holder(&e, "/jobs/x");
    let client = cluster.client();
    let session = wait_for_holder(&client, "/jobs/x").await;
    let mut second = holder(&e, "/jobs/x");
    let started = Instant::now();
    while client.lock_status("/jobs/x").await.unwrap().waiters.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the second holder never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = client.lock_status("/jobs/x").await.unwrap();
    let token = status.holders[0].token.unwrap();
    let waiter = status.holders[0].waiter.clone();
    assert_eq!(waiter, "/jobs/x/w-0000000000");

    // A plain delete of the holder's waiter, of the lock, or of the subtree: refused, and
    // the message names the lock and how to revoke.
    for args in [vec!["rm", waiter.as_str()], vec!["rm", "/jobs/x"], vec!["rm", "-r", "/jobs"]] {
        let (code, err) = warden(&e, &args);
        assert_ne!(code, Some(0), "{args:?} was not refused");
        assert!(err.contains("\"/jobs/x\""), "{args:?}: {err}");
        assert!(err.contains("warden lock revoke /jobs/x --session"), "{args:?}: {err}");
        assert!(err.contains(&format!("held by session {session}")), "{args:?}: {err}");
    }
    let status = client.lock_status("/jobs/x").await.unwrap();
    let queue = (status.holders.len(), status.waiters.len());
    assert_eq!(queue, (1, 1), "a refused delete changed the queue");
    assert_eq!((status.holders[0].session_id, status.holders[0].token), (session, Some(token)));
    assert!(first.try_wait().unwrap().is_none(), "the holder stopped");

    // Asking to revoke: the holder is told at once and exits 4; the waiter is taken out
    // too (exit 4, its command never ran); nothing is left.
    let revoked_at = Instant::now();
    let (code, err) = warden(&e, &["rm", "-r", "--revoke-locks", "/jobs"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = exit_within(&mut first, Duration::from_secs(10)).await;
    eprintln!("holder told of the revoke after {:?}", revoked_at.elapsed());
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("revoked"), "{err}");
    let (code, err) = exit_within(&mut second, Duration::from_secs(10)).await;
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("revoked"), "{err}");
    let (code, err) = warden(&e, &["get", "/jobs"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("does not exist"), "{err}");
}
