use serde_json::Value;

use super::*;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot make a temporary folder: {e}"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn lock_record(n: u64) -> Record {
    Record {
        time_ms: 1_700_000_000_123,
        action: "grant".into(),
        identity: Some("spiffe://warden/alice".into()),
        path: "/app/lock".into(),
        revision: Some(n),
        extra: Extra::Lock { session: 7, token: Some(n) },
    }
}

#[test]
fn times_are_rfc3339_utc_with_milliseconds() {
    assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    // A leap day, and the last millisecond of a year.
    assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(rfc3339_ms(1_798_761_599_999), "2026-12-31T23:59:59.999Z");
}

#[test]
fn each_kind_has_its_fields() {
    let lock = lock_record(42).line(3).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lock.last(), Some(&b'\n'));
    let text = String::from_utf8(lock).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text.lines().count(), 1, "one record, one line: {text}");
    assert_eq!(
        json(&text),
        serde_json::json!({
            "time": "2023-11-14T22:13:20.123Z", "member": 3, "kind": "lock", "action": "grant",
            "identity": "spiffe://warden/alice", "path": "/app/lock", "revision": 42,
            "session": 7, "token": 42,
        })
    );
    let denied = Record {
        time_ms: 0,
        action: "Kv/Put".into(),
        identity: Some(String::new()),
        path: "/secret\n\"x\"".into(),
        revision: None,
        extra: Extra::Denied { permission: "write".into(), reason: "no rule grants it".into() },
    };
    let text = String::from_utf8(denied.line(1).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    // A path with a newline and quotes stays on one line.
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(
        json(&text),
        serde_json::json!({
            "time": "1970-01-01T00:00:00.000Z", "member": 1, "kind": "denied",
            "action": "Kv/Put", "identity": "", "path": "/secret\n\"x\"", "revision": null,
            "permission": "write", "reason": "no rule grants it",
        })
    );
    let admin = Record {
        time_ms: 0,
        action: "lock.revoke".into(),
        identity: None,
        path: "/l".into(),
        revision: Some(9),
        extra: Extra::Admin { detail: "session 5, held".into() },
    };
    let value = json(&String::from_utf8_lossy(&admin.line(2).unwrap_or_else(|e| panic!("{e}"))));
    assert_eq!(value["kind"], "admin");
    assert_eq!(value["identity"], Value::Null);
    assert_eq!(value["detail"], "session 5, held");
}

#[test]
fn rotates_by_size_keeping_the_newest_files() {
    let dir = dir();
    let path = dir.path().join("audit.log");
    let line = [b'x'; 99].iter().copied().chain([b'\n']).collect::<Vec<u8>>();
    // 250 bytes hold two 100-byte lines: the third starts a new file.
    let mut file = RotatingFile::new(path.clone(), 250, 2);
    for _ in 0..9 {
        file.write_line(&line).unwrap_or_else(|e| panic!("{e}"));
    }
    file.flush().unwrap_or_else(|e| panic!("{e}"));
    // Nine lines: files of 2, 2, 2, 2 and 1; the newest three are kept.
    assert_eq!(read(&path).len(), 100);
    assert_eq!(read(&rotated(&path, 1)).len(), 200);
    assert_eq!(read(&rotated(&path, 2)).len(), 200);
    assert!(!rotated(&path, 3).exists());
}

#[test]
fn a_restart_appends_and_a_full_file_is_rotated_first() {
    let dir = dir();
    let path = dir.path().join("audit.log");
    let line = b"0123456789\n";
    let mut first = RotatingFile::new(path.clone(), 30, 1);
    first.write_line(line).unwrap_or_else(|e| panic!("{e}"));
    first.flush().unwrap_or_else(|e| panic!("{e}"));
    drop(first);
    let mut again = RotatingFile::new(path.clone(), 30, 1);
    again.write_line(line).unwrap_or_else(|e| panic!("{e}"));
    again.write_line(line).unwrap_or_else(|e| panic!("{e}"));
    again.flush().unwrap_or_else(|e| panic!("{e}"));
    drop(again);
    // Appended after the restart (22 bytes), then rotated as the third line would make 33.
    assert_eq!(read(&path).len(), 11);
    assert_eq!(read(&rotated(&path, 1)).len(), 22);
    // keep = 0: the file starts over (11 + 11, then 33 > 30: removed, 11, 22).
    let mut none = RotatingFile::new(path.clone(), 30, 0);
    for _ in 0..3 {
        none.write_line(line).unwrap_or_else(|e| panic!("{e}"));
    }
    none.flush().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(&path).len(), 22);
    assert_eq!(read(&rotated(&path, 1)).len(), 22, "keep = 0 rotates nothing");
}

#[test]
fn a_line_longer_than_the_limit_gets_a_file_of_its_own() {
    let dir = dir();
    let path = dir.path().join("audit.log");
    let mut file = RotatingFile::new(path.clone(), 10, 3);
    file.write_line(b"short\n").unwrap_or_else(|e| panic!("{e}"));
    file.write_line(b"a line of twenty b.\n").unwrap_or_else(|e| panic!("{e}"));
    file.write_line(b"short\n").unwrap_or_else(|e| panic!("{e}"));
    file.flush().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(&path), "short\n");
    assert_eq!(read(&rotated(&path, 1)), "a line of twenty b.\n");
    assert_eq!(read(&rotated(&path, 2)), "short\n");
}

#[tokio::test]
async fn the_writer_writes_every_record_and_counts_failures() {
    let dir = dir();
    let path = dir.path().join("sub").join("audit.log");
    let audit = Audit::start(4, path.clone(), &AuditConfig::default());
    audit.denied("bob", "Kv/Get", "read", "/a", "no rule grants read on /a");
    audit.admin("ops", "lock.revoke", "/l", Some(12), "session 3");
    audit.send(lock_record(13));
    audit.close().await;
    let text = read(&path);
    let lines: Vec<Value> = text.lines().map(json).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["kind"], "denied");
    assert_eq!(lines[0]["identity"], "bob");
    assert_eq!(lines[1]["kind"], "admin");
    assert_eq!(lines[1]["revision"], 12);
    assert_eq!(lines[2]["token"], 13);
    assert!(lines.iter().all(|l| l["member"] == 4));
    assert_eq!((audit.written(), audit.dropped(), audit.failed()), (3, 0, 0));
    // After close, records are dropped and counted, never written.
    audit.admin("ops", "lock.revoke", "/l", None, "late");
    assert_eq!(audit.dropped(), 1);
    assert_eq!(read(&path).lines().count(), 3);

    // A file that cannot be opened (its folder is a file): counted, and nothing breaks.
    let blocked = dir.path().join("not-a-folder");
    fs::write(&blocked, b"").unwrap_or_else(|e| panic!("{e}"));
    let audit = Audit::start(4, blocked.join("audit.log"), &AuditConfig::default());
    audit.admin("ops", "x", "/", None, "");
    audit.close().await;
    assert_eq!((audit.written(), audit.failed()), (0, 1));
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_waiting() {
    // A queue of one that nobody reads: the second record cannot wait for room.
    let (queue, records) = std::sync::mpsc::sync_channel(1);
    let audit = Audit::from_parts(Some(queue), None, Arc::default());
    audit.admin("ops", "lock.revoke", "/a", Some(1), "first");
    audit.admin("ops", "lock.revoke", "/b", Some(2), "second");
    audit.denied("eve", "Kv/Get", "read", "/c", "third");
    assert_eq!(audit.dropped(), 2);
    let kept: Vec<String> = records.try_iter().map(|r| r.path).collect();
    assert_eq!(kept, ["/a"]);
}

#[tokio::test]
async fn the_writer_rotates_without_losing_or_splitting_a_line() {
    let dir = dir();
    let path = dir.path().join("audit.log");
    let config = AuditConfig { file: None, max_bytes: 1_000, keep: 100 };
    let audit = Audit::start(1, path.clone(), &config);
    for n in 0..60 {
        audit.send(lock_record(n));
    }
    audit.close().await;
    assert_eq!((audit.written(), audit.dropped(), audit.failed()), (60, 0, 0));
    // Oldest first: the highest rotated file, down to the current one.
    let mut files: Vec<PathBuf> = (1..=100).rev().map(|n| rotated(&path, n)).collect();
    files.retain(|f| f.exists());
    assert!(files.len() >= 5, "about 190 bytes a line, 5 a file: {files:?}");
    files.push(path.clone());
    let mut revisions = Vec::new();
    for file in &files {
        let text = read(file);
        assert!(text.len() <= 1_000, "{} has {} bytes", file.display(), text.len());
        revisions.extend(text.lines().map(|l| json(l)["revision"].as_u64().unwrap_or(u64::MAX)));
    }
    assert_eq!(revisions, (0..60).collect::<Vec<u64>>());
}
