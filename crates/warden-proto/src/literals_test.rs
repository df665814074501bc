//! Checks that the server, the client and the CLI spell error kinds and metadata keys only
//! through [`ErrorKind`] and the `*_METADATA` constants: a string literal for either, left
//! anywhere in their sources, is a typo waiting to happen. The same holds in their `src`
//! for the names the wire carries as text (lock types and wait modes in a lock status, the
//! reason a hold was lost), which [`crate::convert`] spells once; tests that check what a
//! member sends may write them out.

use std::path::{Path, PathBuf};

use crate::convert::lock::{EXCLUSIVE_NAME, MUTEX_NAME, RWLOCK_NAME, SEMAPHORE_NAME};
use crate::convert::session::LOST_SESSION_ENDED;
use crate::{ALL_METADATA, ErrorKind};

/// The sources checked, relative to this crate's directory.
const CHECKED: &[&str] =
    &["../warden-server/src", "../warden-server/tests", "../warden-client/src", "../warden/src"];

/// The sources checked for wire names: the crates' code, not their black-box tests.
const CHECKED_FOR_NAMES: &[&str] =
    &["../warden-server/src", "../warden-client/src", "../warden/src"];

/// Wire names spelt only in [`crate::convert`]. ("shared", "revoked" and "permits:" are
/// left out: they are also ordinary words of the CLI's output and JSON keys.)
const WIRE_NAMES: &[&str] = &[
    MUTEX_NAME,
    RWLOCK_NAME,
    SEMAPHORE_NAME,
    EXCLUSIVE_NAME,
    LOST_SESSION_ENDED,
    crate::ALARM_NOSPACE,
];

/// `"warden-` literals that are not metadata keys (a thread name, directory prefixes).
const NOT_METADATA: &[&str] = &["\"warden-{what}\"", "\"warden-dev-certs\"", "\"warden-dev-\""];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Every literal in `source` that spells a kind or a metadata key, or is a `"warden-`
/// literal not known to be something else, with its line number.
fn offending(source: &str) -> Vec<(usize, String)> {
    let mut needles: Vec<String> =
        ErrorKind::ALL.iter().map(|k| format!("\"{}\"", k.as_str())).collect();
    needles.extend(ALL_METADATA.iter().map(|k| format!("\"{k}\"")));
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        for needle in &needles {
            if line.contains(needle.as_str()) {
                found.push((n + 1, needle.clone()));
            }
        }
        let mut rest = line;
        while let Some(at) = rest.find("\"warden-") {
            let literal = &rest[at..];
            let end = literal[1..].find('"').map_or(literal.len(), |e| e + 2);
            let literal = &literal[..end];
            if !NOT_METADATA.contains(&literal) && !needles.iter().any(|n| n == literal) {
                found.push((n + 1, literal.to_owned()));
            }
            rest = &rest[at + end..];
        }
    }
    found
}

#[test]
fn the_check_finds_what_it_looks_for() {
    let source = "let a = 1;\nif kind == \"AlreadyLocked\" {}\nget(\"warden-error\")\nget(\"warden-eror\")\nlet t = \"warden-{what}\";\n";
    assert_eq!(
        offending(source),
        vec![
            (2, "\"AlreadyLocked\"".to_owned()),
            (3, "\"warden-error\"".to_owned()),
            (4, "\"warden-eror\"".to_owned()),
        ]
    );
    assert!(offending("ErrorKind::AlreadyLocked, ERROR_METADATA").is_empty());
}

#[test]
fn kinds_and_metadata_keys_are_spelt_only_here() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in CHECKED {
        rust_files(&root.join(dir), &mut files);
    }
    // The walk found the crates' sources, not an empty or misplaced directory.
    assert!(files.len() >= 40, "only {} source files found under {CHECKED:?}", files.len());
    assert!(files.iter().any(|f| f.ends_with("warden-server/src/status.rs")));
    assert!(files.iter().any(|f| f.ends_with("warden-client/src/connection.rs")));
    let mut offences = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        for (line, literal) in offending(&source) {
            offences.push(format!("{}:{line}: {literal}", file.display()));
        }
    }
    assert!(
        offences.is_empty(),
        "use warden_proto::ErrorKind and the *_METADATA constants instead of these literals:\n{}",
        offences.join("\n")
    );
}

#[test]
fn wire_names_are_spelt_only_in_convert() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in CHECKED_FOR_NAMES {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.iter().any(|f| f.ends_with("warden-server/src/lock_service.rs")));
    assert!(files.iter().any(|f| f.ends_with("warden-client/src/lock_status.rs")));
    let needles: Vec<String> = WIRE_NAMES.iter().map(|n| format!("\"{n}\"")).collect();
    let mut offences = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        // Comments may name them: docs say what the CLI shows.
        let code = source.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//"));
        for (n, line) in code {
            for needle in needles.iter().filter(|needle| line.contains(needle.as_str())) {
                offences.push(format!("{}:{}: {needle}", file.display(), n + 1));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "use the names of warden_proto::convert instead of these literals:\n{}",
        offences.join("\n")
    );
}
