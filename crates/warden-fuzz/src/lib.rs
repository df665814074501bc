//! # warden-fuzz
//!
//! The bodies of warden's fuzz targets: one function per kind of bytes a member takes
//! from outside (client requests of every service, raft messages, log entries, snapshots, the config file,
//! ACL files, paths and watch globs). Each takes arbitrary bytes and panics only on a real bug: a
//! decoder that panics, a value that does not survive a round trip, or a request that
//! leaves the state machine breaking one of its [invariants](warden_core::invariants).
//!
//! It is not the fuzzer: the libFuzzer binaries in `fuzz/` (a cargo-fuzz project outside
//! the workspace, built with nightly) call these functions, and this crate's test replays
//! every file of `fuzz/corpus/<target>/` through the same functions on stable, so the
//! corpora run in CI as ordinary tests.
//!
//! A new target is one function here, one line in [`TARGETS`], one file in
//! `fuzz/fuzz_targets/` with its `[[bin]]` in `fuzz/Cargo.toml`, and a seeded
//! `fuzz/corpus/<target>/` (see `fuzz/README.md`).

mod raft;
mod replica;
mod requests;
mod stored;
mod text;

pub use raft::{raft_append, raft_snapshot, raft_vote};
pub use requests::{
    barrier_request, cluster_request, election_request, kv_request, lock_request, resource_request,
    semaphore_request, session_request, watch_request,
};
pub use stored::{log_command, snapshot};
pub use text::{acl_policy, config_toml, path, watch_glob};

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every target by name: the name of its binary in `fuzz/` and of its corpus directory.
pub const TARGETS: &[(&str, Body)] = &[
    ("kv_request", kv_request),
    ("lock_request", lock_request),
    ("semaphore_request", semaphore_request),
    ("session_request", session_request),
    ("watch_request", watch_request),
    ("cluster_request", cluster_request),
    ("election_request", election_request),
    ("barrier_request", barrier_request),
    ("resource_request", resource_request),
    ("raft_append", raft_append),
    ("raft_vote", raft_vote),
    ("raft_snapshot", raft_snapshot),
    ("log_command", log_command),
    ("snapshot", snapshot),
    ("config_toml", config_toml),
    ("path", path),
    ("watch_glob", watch_glob),
    ("acl_policy", acl_policy),
];
