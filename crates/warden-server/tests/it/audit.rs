//! The audit log on a real cluster: every member writes the same lock lines (grant,
//! expiry of a holder's session, revoke) with the holder's identity, and the member that
//! served an operator's revoke writes an admin line with the caller's identity.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use warden_client::{Client, TlsFiles};

use crate::cluster::TestCluster;
use crate::tls::{Pki, tls_cluster};

/// A client of every member of `cluster`, presenting alice's certificate.
fn alice(pki: &Pki, cluster: &TestCluster) -> Client {
    let files = TlsFiles {
        ca: pki.path("ca.crt"),
        cert: Some(pki.path("alice.crt")),
        key: Some(pki.path("alice.key")),
    };
    Client::with_tls((1..=3).map(|id| cluster.endpoint(id)).collect(), &files).unwrap()
}

/// The lines of an audit file so far (none if it is not there yet).
fn lines(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    // The writer writes whole lines; a line still half in its buffer is not complete.
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Whether `line` is a `kind` line of `action` on `path`.
fn is(line: &Value, kind: &str, action: &str, path: &str) -> bool {
    line["kind"] == kind && line["action"] == action && line["path"] == path
}

/// Waits (at most 20 s, 200 looks) until every member's file has a line matching each of
/// `wanted`; returns the members' lines.
async fn wait_for(cluster: &TestCluster, wanted: &[(&str, &str, &str)]) -> Vec<(u64, Vec<Value>)> {
    let started = Instant::now();
    for _ in 0..200 {
        let all: Vec<(u64, Vec<Value>)> =
            cluster.configs.iter().map(|c| (c.node_id, lines(&c.audit_file()))).collect();
        let complete = all
            .iter()
            .all(|(_, lines)| wanted.iter().all(|(k, a, p)| lines.iter().any(|l| is(l, k, a, p))));
        if complete || started.elapsed() > Duration::from_secs(20) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.configs.iter().map(|c| (c.node_id, lines(&c.audit_file()))).collect()
}

/// The one line of `lines` matching, failing with all of them if there is not exactly one.
fn one<'a>(lines: &'a [Value], kind: &str, action: &str, path: &str) -> &'a Value {
    let found: Vec<&Value> = lines.iter().filter(|l| is(l, kind, action, path)).collect();
    assert_eq!(found.len(), 1, "{kind} {action} {path}: {found:?} among {lines:#?}");
    found[0]
}

/// A line without its `member` field: what every member writes alike for a lock.
fn alike(line: &Value) -> Value {
    let mut line = line.clone();
    line.as_object_mut().map(|o| o.remove("member"));
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_audits_lock_grants_expiries_and_revokes_and_the_revoker() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki).await;
    cluster.leader(Duration::from_secs(10)).await;
    let client = alice(&pki, &cluster);

    // A hold an operator revokes.
    let kept = client.open_session(Duration::from_secs(30)).await.unwrap();
    let revoked = client.mutex(&kept, "/audit/revoked").acquire().await.unwrap();
    assert!(client.revoke_lock("/audit/revoked", kept.id()).await.unwrap(), "it held");

    // A hold whose session expires: the client vanishes holding it.
    let dying = client.open_session(Duration::from_secs(1)).await.unwrap();
    let dying_id = dying.id();
    let expired = client.mutex(&dying, "/audit/expired").acquire().await.unwrap();
    dying.abandon();

    // A delete that revokes the locks in its way: an admin action too.
    let swept = client.mutex(&kept, "/audit/tree/lock").acquire().await.unwrap();
    client.delete_revoking_locks("/audit/tree", None, true).await.unwrap();

    let wanted = [
        ("lock", "grant", "/audit/revoked"),
        ("lock", "revoke", "/audit/revoked"),
        ("lock", "grant", "/audit/expired"),
        ("lock", "expire", "/audit/expired"),
        ("lock", "grant", "/audit/tree/lock"),
        ("lock", "revoke", "/audit/tree/lock"),
    ];
    let members = wait_for(&cluster, &wanted).await;
    let first = &members[0].1;
    for (id, lines) in &members {
        for (kind, action, path) in wanted {
            let line = one(lines, kind, action, path);
            assert_eq!(line["member"], *id);
            assert_eq!(line["identity"], "alice", "{line}");
            // Lock lines come from the log: the same on every member, time included.
            assert_eq!(alike(line), alike(one(first, kind, action, path)), "member {id}");
        }
        let token = |action, path| one(lines, "lock", action, path)["token"].clone();
        assert_eq!(token("grant", "/audit/revoked"), revoked.token());
        assert_eq!(token("revoke", "/audit/revoked"), revoked.token());
        assert_eq!(token("grant", "/audit/expired"), expired.token());
        assert_eq!(token("expire", "/audit/expired"), expired.token());
        assert_eq!(token("revoke", "/audit/tree/lock"), swept.token());
        let expiry = one(lines, "lock", "expire", "/audit/expired");
        assert_eq!(expiry["session"], dying_id);
        assert!(expiry["revision"].as_u64() > Some(expired.token()), "{expiry}");
        let time = expiry["time"].as_str().unwrap_or_default();
        assert!(time.ends_with('Z') && time.len() == 24, "RFC 3339 with ms: {time}");
    }

    // The admin lines are written by the member that served them, once, as alice.
    let admin: Vec<&Value> =
        members.iter().flat_map(|(_, l)| l).filter(|l| l["kind"] == "admin").collect();
    let actions: Vec<(&str, &str)> = admin
        .iter()
        .map(|l| (l["action"].as_str().unwrap_or(""), l["path"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        actions,
        [("lock.revoke", "/audit/revoked"), ("delete.revoke_locks", "/audit/tree")],
        "{admin:#?}"
    );
    assert!(admin.iter().all(|l| l["identity"] == "alice" && l["revision"].is_u64()));
    for node in cluster.running() {
        assert_eq!((node.audit().dropped(), node.audit().failed()), (0, 0));
    }
    drop((revoked, expired, swept));
    kept.close().await.unwrap();
    cluster.stop().await;
}
