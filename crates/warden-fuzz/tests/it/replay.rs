//! Every file of every corpus in `fuzz/corpus/<target>/` through its target's body, as
//! the fuzzer ran it: the corpora are the fuzzing's regression tests. A target without a
//! corpus, or with an empty one, fails: it would otherwise replay nothing unnoticed.

use std::path::{Path, PathBuf};

use warden_fuzz::TARGETS;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

fn replay(target: &str, body: warden_fuzz::Body) -> usize {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!("no corpus for target {target} at {}: {e}; seed one (fuzz/README.md)", dir.display())
    });
    let mut replayed = 0;
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path();
        if !path.is_file() {
            continue;
        }
        let data =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target} fails on {}", path.display());
        replayed += 1;
    }
    replayed
}

#[test]
fn every_corpus_replays_without_a_failure() {
    for (target, body) in TARGETS {
        let replayed = replay(target, *body);
        assert!(replayed > 0, "the corpus of {target} ({}) is empty", corpus_dir(target).display());
    }
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", manifest.display()));
    for (target, _) in TARGETS {
        assert!(
            text.contains(&format!("name = \"{target}\"")),
            "{target} has no [[bin]] in {}",
            manifest.display()
        );
    }
}
