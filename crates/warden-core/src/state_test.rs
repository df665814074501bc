//! A unit test for every rule of `State::apply` and every error it returns.

use bytes::Bytes;

use crate::command::{Check, Command, Compare, CompareOp, HoldRef, LogCommand, Request, TxnOp};
use crate::error::CoreError;
use crate::event::EventKind;
use crate::ids::SessionId;
use crate::invariants;
use crate::limits::Limits;
use crate::node::{CreateMode, MAX_SEQUENCE, NodeKind};
use crate::path::PathRule;
use crate::response::Output;
use crate::state::{Applied, ApplyContext, State};

struct Harness {
    state: State,
    index: u64,
}

impl Harness {
    fn new() -> Self {
        Harness { state: State::default(), index: 0 }
    }

    fn with_limits(limits: Limits) -> Self {
        Harness { state: State::new(limits), index: 0 }
    }

    fn run(&mut self, request: Request) -> Applied {
        self.index += 1;
        let applied = self.state.apply(
            request,
            &ApplyContext { index: self.index, time_ms: 1_000 + self.index, term: 1 },
        );
        let broken = invariants::violations(&self.state);
        assert!(broken.is_empty(), "invariants broken: {broken:?}");
        applied
    }

    fn cmd(&mut self, command: Command) -> Result<Output, CoreError> {
        self.run(Request::new(command)).response.outcome
    }

    fn create(&mut self, path: &str, mode: CreateMode) -> Result<Output, CoreError> {
        self.cmd(create(path, mode))
    }

    fn create_in(
        &mut self,
        session: SessionId,
        path: &str,
        mode: CreateMode,
    ) -> Result<Output, CoreError> {
        self.run(Request::in_session(session, create(path, mode))).response.outcome
    }

    fn open(&mut self) -> SessionId {
        match self.cmd(Command::OpenSession { ttl_ms: 5_000, identity: "client".into() }) {
            Ok(Output::SessionOpened { id, .. }) => id,
            other => panic!("open failed: {other:?}"),
        }
    }

    fn exists(&self, path: &str) -> bool {
        self.state.get(path).is_ok()
    }

    fn version(&self, path: &str) -> u64 {
        self.state.get(path).map(|n| n.stat.version).unwrap_or(u64::MAX)
    }
}

fn create(path: &str, mode: CreateMode) -> Command {
    Command::Create { path: path.into(), data: Bytes::from_static(b"v"), mode }
}

fn set(path: &str, data: &'static str, expected_version: Option<u64>) -> Command {
    Command::Set { path: path.into(), data: Bytes::from_static(data.as_bytes()), expected_version }
}

fn delete(path: &str, recursive: bool) -> Command {
    Command::Delete { path: path.into(), expected_version: None, recursive, revoke_locks: false }
}

fn kinds(applied: &Applied) -> Vec<(EventKind, &str)> {
    applied.events.iter().map(|e| (e.kind, e.path.as_str())).collect()
}

fn created_path(outcome: Result<Output, CoreError>) -> String {
    match outcome {
        Ok(Output::Created { path, .. }) => path,
        other => panic!("not created: {other:?}"),
    }
}

// ---- create ----

#[test]
fn create_sets_stat_parent_counters_and_events() {
    let mut h = Harness::new();
    h.create("/a", CreateMode::PERSISTENT).ok();
    let applied = h.run(Request::new(create("/a/b", CreateMode::PERSISTENT)));
    assert_eq!(applied.response.revision, 2);
    let Ok(Output::Created { path, stat }) = &applied.response.outcome else {
        panic!("{applied:?}");
    };
    assert_eq!(path, "/a/b");
    assert_eq!((stat.create_revision, stat.mod_revision, stat.version), (2, 2, 0));
    assert_eq!((stat.ctime_ms, stat.mtime_ms, stat.data_length), (1_002, 1_002, 1));
    assert_eq!(kinds(&applied), [(EventKind::Created, "/a/b"), (EventKind::Children, "/a")]);
    assert_eq!(applied.events[0].data, Some(Bytes::from_static(b"v")));
    assert!(applied.events.iter().all(|e| e.revision == 2));
    let parent = h.state.get("/a").map(|n| n.stat).ok();
    assert_eq!(
        parent.map(|s| (s.num_children, s.cversion, s.version, s.mod_revision)),
        Some((1, 1, 0, 1))
    );
}

#[test]
fn create_refuses_existing_missing_parent_and_root() {
    let mut h = Harness::new();
    h.create("/a", CreateMode::PERSISTENT).ok();
    assert_eq!(
        h.create("/a", CreateMode::PERSISTENT),
        Err(CoreError::NodeExists { path: "/a".into() })
    );
    assert_eq!(
        h.create("/", CreateMode::PERSISTENT),
        Err(CoreError::NodeExists { path: "/".into() })
    );
    assert_eq!(
        h.create("/x/y", CreateMode::PERSISTENT),
        Err(CoreError::NoParent { path: "/x/y".into(), parent: "/x".into() })
    );
    assert_eq!(h.state.revision(), 1, "failed creates do not bump the revision");
}

#[test]
fn create_checks_path_and_value() {
    let mut h = Harness::with_limits(Limits { max_value_bytes: 3, ..Limits::default() });
    assert!(matches!(
        h.create("/a//b", CreateMode::PERSISTENT),
        Err(CoreError::InvalidPath { rule: PathRule::EmptySegment, .. })
    ));
    assert!(matches!(
        h.create("/a/", CreateMode::PERSISTENT),
        Err(CoreError::InvalidPath { rule: PathRule::TrailingSlash, .. })
    ));
    let big = Command::Create {
        path: "/big".into(),
        data: Bytes::from_static(b"1234"),
        mode: CreateMode::PERSISTENT,
    };
    assert_eq!(h.cmd(big), Err(CoreError::ValueTooLarge { path: "/big".into(), len: 4, max: 3 }));
    assert!(!h.exists("/big"));
}

#[test]
fn ephemerals_need_a_live_session_and_cannot_have_children() {
    let mut h = Harness::new();
    assert_eq!(
        h.create("/e", CreateMode::EPHEMERAL),
        Err(CoreError::SessionRequired { path: "/e".into() })
    );
    let s = h.open();
    let applied = h.run(Request::in_session(s, create("/e", CreateMode::EPHEMERAL)));
    assert!(
        matches!(applied.response.outcome, Ok(Output::Created { stat, .. }) if stat.ephemeral_owner == s)
    );
    assert_eq!(h.state.ephemerals_of(s).collect::<Vec<_>>(), ["/e"]);
    assert_eq!(
        h.create_in(s, "/e/child", CreateMode::PERSISTENT),
        Err(CoreError::EphemeralParent { path: "/e/child".into(), parent: "/e".into() })
    );
    assert_eq!(
        h.create_in(999, "/f", CreateMode::EPHEMERAL),
        Err(CoreError::SessionExpired { id: 999 })
    );
    // A session on a persistent create does not make it ephemeral.
    assert!(
        matches!(h.create_in(s, "/p", CreateMode::PERSISTENT), Ok(Output::Created { stat, .. }) if stat.ephemeral_owner == 0)
    );
}

#[test]
fn sequential_names_count_per_parent_and_survive_deletes() {
    let mut h = Harness::new();
    h.create("/q", CreateMode::PERSISTENT).ok();
    h.create("/r", CreateMode::PERSISTENT).ok();
    let seq = CreateMode::PERSISTENT.sequential();
    assert_eq!(created_path(h.create("/q/job-", seq)), "/q/job-0000000000");
    assert_eq!(created_path(h.create("/q/", seq)), "/q/0000000001");
    assert_eq!(created_path(h.create("/r/x", seq)), "/r/x0000000000");
    h.cmd(delete("/q/0000000001", false)).ok();
    h.create("/q/plain", CreateMode::PERSISTENT).ok();
    assert_eq!(created_path(h.create("/q/job-", seq)), "/q/job-0000000002");
    let s = h.open();
    assert_eq!(
        created_path(h.create_in(s, "/q/e-", CreateMode::EPHEMERAL.sequential())),
        "/q/e-0000000003"
    );
}

#[test]
fn sequential_counter_never_wraps() {
    let mut h = Harness::new();
    h.create("/q", CreateMode::PERSISTENT).ok();
    h.state.tree.update("/q", |n| n.next_sequence = MAX_SEQUENCE);
    h.state.tree.commit();
    let seq = CreateMode::PERSISTENT.sequential();
    assert_eq!(created_path(h.create("/q/n", seq)), "/q/n9999999999");
    assert_eq!(h.create("/q/n", seq), Err(CoreError::SequenceOverflow { parent: "/q".into() }));
}

#[test]
fn sequential_name_taken_by_a_plain_node_is_refused() {
    let mut h = Harness::new();
    h.create("/q0000000000", CreateMode::PERSISTENT).ok();
    assert_eq!(
        h.create("/q", CreateMode::PERSISTENT.sequential()),
        Err(CoreError::NodeExists { path: "/q0000000000".into() })
    );
}

#[test]
fn container_cannot_be_sequential() {
    let mut h = Harness::new();
    assert!(matches!(
        h.create("/c", CreateMode::CONTAINER.sequential()),
        Err(CoreError::InvalidCreateMode { .. })
    ));
}

// ---- set ----

#[test]
fn set_bumps_version_and_revision() {
    let mut h = Harness::new();
    h.create("/a", CreateMode::PERSISTENT).ok();
    let applied = h.run(Request::new(set("/a", "two", Some(0))));
    let Ok(Output::Set { stat }) = applied.response.outcome else { panic!("{applied:?}") };
    assert_eq!(
        (stat.version, stat.mod_revision, stat.create_revision, stat.data_length),
        (1, 2, 1, 3)
    );
    assert_eq!(stat.mtime_ms, 1_002);
    assert_eq!(kinds(&applied), [(EventKind::Data, "/a")]);
    assert_eq!(applied.events[0].data, Some(Bytes::from_static(b"two")));
    assert_eq!(h.state.get("/a").map(|n| n.data.clone()), Ok(Bytes::from_static(b"two")));
    assert!(matches!(h.cmd(set("/a", "x", None)), Ok(Output::Set { stat }) if stat.version == 2));
}

#[test]
fn set_refuses_wrong_version_missing_node_and_big_value() {
    let mut h = Harness::with_limits(Limits { max_value_bytes: 4, ..Limits::default() });
    h.create("/a", CreateMode::PERSISTENT).ok();
    assert_eq!(
        h.cmd(set("/a", "x", Some(3))),
        Err(CoreError::BadVersion { path: "/a".into(), expected: 3, actual: 0 })
    );
    assert_eq!(h.cmd(set("/nope", "x", None)), Err(CoreError::NoNode { path: "/nope".into() }));
    assert!(matches!(h.cmd(set("/a", "12345", None)), Err(CoreError::ValueTooLarge { .. })));
    assert_eq!(h.version("/a"), 0);
    assert_eq!(h.state.revision(), 1);
}

#[test]
fn root_can_be_set_but_not_deleted() {
    let mut h = Harness::new();
    assert!(matches!(h.cmd(set("/", "cfg", None)), Ok(Output::Set { .. })));
    assert_eq!(h.cmd(delete("/", true)), Err(CoreError::RootNotDeletable));
}

// ---- delete ----

#[test]
fn delete_refuses_non_empty_and_wrong_version() {
    let mut h = Harness::new();
    h.create("/a", CreateMode::PERSISTENT).ok();
    h.create("/a/b", CreateMode::PERSISTENT).ok();
    assert_eq!(
        h.cmd(delete("/a", false)),
        Err(CoreError::NotEmpty { path: "/a".into(), children: 1 })
    );
    assert_eq!(
        h.cmd(Command::Delete {
            path: "/a/b".into(),
            expected_version: Some(1),
            recursive: false,
            revoke_locks: false,
        }),
        Err(CoreError::BadVersion { path: "/a/b".into(), expected: 1, actual: 0 })
    );
    assert_eq!(h.cmd(delete("/zz", false)), Err(CoreError::NoNode { path: "/zz".into() }));
    let applied = h.run(Request::new(Command::Delete {
        path: "/a/b".into(),
        expected_version: Some(0),
        recursive: false,
        revoke_locks: false,
    }));
    assert_eq!(applied.response.outcome, Ok(Output::Deleted { count: 1, revoked: 0, kept: 0 }));
    assert_eq!(kinds(&applied), [(EventKind::Deleted, "/a/b"), (EventKind::Children, "/a")]);
    assert_eq!(h.state.get("/a").map(|n| (n.stat.num_children, n.stat.cversion)), Ok((0, 2)));
}

#[test]
fn recursive_delete_goes_deepest_first() {
    let mut h = Harness::new();
    for p in ["/a", "/a/x", "/a/y", "/a/x/1", "/b"] {
        h.create(p, CreateMode::PERSISTENT).ok();
    }
    let s = h.open();
    h.create_in(s, "/a/y/e", CreateMode::EPHEMERAL).ok();
    let applied = h.run(Request::new(delete("/a", true)));
    assert_eq!(applied.response.outcome, Ok(Output::Deleted { count: 5, revoked: 0, kept: 0 }));
    assert_eq!(
        kinds(&applied),
        [
            (EventKind::Deleted, "/a/x/1"),
            (EventKind::Deleted, "/a/y/e"),
            (EventKind::Deleted, "/a/x"),
            (EventKind::Deleted, "/a/y"),
            (EventKind::Deleted, "/a"),
            (EventKind::Children, "/"),
        ]
    );
    assert!(h.exists("/b") && !h.exists("/a"));
    assert_eq!(h.state.ephemerals_of(s).count(), 0);
}

#[test]
fn containers_go_with_their_last_child_and_cascade() {
    let mut h = Harness::new();
    h.create("/locks", CreateMode::CONTAINER).ok();
    h.create("/locks/db", CreateMode::CONTAINER).ok();
    h.create("/locks/db/w1", CreateMode::PERSISTENT).ok();
    h.create("/locks/db/w2", CreateMode::PERSISTENT).ok();
    h.cmd(delete("/locks/db/w1", false)).ok();
    assert!(h.exists("/locks/db"), "a container with a child left stays");
    let applied = h.run(Request::new(delete("/locks/db/w2", false)));
    assert_eq!(applied.response.outcome, Ok(Output::Deleted { count: 3, revoked: 0, kept: 0 }));
    assert_eq!(
        kinds(&applied),
        [
            (EventKind::Deleted, "/locks/db/w2"),
            (EventKind::Children, "/locks/db"),
            (EventKind::Deleted, "/locks/db"),
            (EventKind::Children, "/locks"),
            (EventKind::Deleted, "/locks"),
            (EventKind::Children, "/"),
        ]
    );
}

#[test]
fn a_new_empty_container_stays() {
    let mut h = Harness::new();
    h.create("/c", CreateMode::CONTAINER).ok();
    h.create("/c/child", CreateMode::CONTAINER).ok();
    assert!(h.exists("/c") && h.exists("/c/child"));
    assert_eq!(h.state.get("/c").map(|n| n.kind), Ok(NodeKind::Container));
}

// ---- sessions ----

#[test]
fn sessions_get_the_log_index_as_id() {
    let mut h = Harness::new();
    h.create("/a", CreateMode::PERSISTENT).ok();
    let s = h.open();
    assert_eq!(s, 2);
    let session = h.state.session(s).cloned();
    assert_eq!(
        session.map(|x| (x.ttl_ms, x.identity, x.opened_ms)),
        Some((5_000, "client".into(), 1_002))
    );
    assert_eq!(h.state.revision(), 1, "opening a session does not change the namespace");
}

#[test]
fn session_ttl_must_be_in_range() {
    let mut h = Harness::new();
    assert_eq!(
        h.cmd(Command::OpenSession { ttl_ms: 10, identity: String::new() }),
        Err(CoreError::InvalidTtl { ttl_ms: 10, min_ms: 1_000, max_ms: 3_600_000 })
    );
    assert!(h.cmd(Command::OpenSession { ttl_ms: 3_600_001, identity: String::new() }).is_err());
    assert_eq!(h.state.sessions().count(), 0);
}

#[test]
fn closing_a_session_deletes_its_ephemerals_and_emptied_containers() {
    let mut h = Harness::new();
    let (s1, s2) = (h.open(), h.open());
    h.create("/lock", CreateMode::CONTAINER).ok();
    h.create_in(s1, "/lock/w-", CreateMode::EPHEMERAL.sequential()).ok();
    h.create_in(s1, "/e1", CreateMode::EPHEMERAL).ok();
    h.create_in(s2, "/e2", CreateMode::EPHEMERAL).ok();
    let applied = h.run(Request::new(Command::CloseSession { id: s1 }));
    assert_eq!(applied.response.outcome, Ok(Output::SessionClosed { id: s1, deleted: 3 }));
    assert_eq!(applied.events.iter().filter(|e| e.kind == EventKind::Deleted).count(), 3);
    assert!(!h.exists("/lock") && !h.exists("/e1") && h.exists("/e2"));
    assert_eq!(h.cmd(Command::CloseSession { id: s1 }), Err(CoreError::SessionExpired { id: s1 }));
    assert_eq!(
        h.create_in(s1, "/again", CreateMode::EPHEMERAL),
        Err(CoreError::SessionExpired { id: s1 })
    );
}

#[test]
fn expiry_skips_sessions_already_gone() {
    let mut h = Harness::new();
    let (s1, s2) = (h.open(), h.open());
    h.create_in(s2, "/e", CreateMode::EPHEMERAL).ok();
    h.cmd(Command::CloseSession { id: s1 }).ok();
    let applied = h.run(Request::new(Command::ExpireSessions { ids: vec![s1, s2, 77], term: 1 }));
    assert_eq!(applied.response.outcome, Ok(Output::SessionsExpired { ids: vec![s2], deleted: 1 }));
    assert_eq!(applied.response.revision, 2);
    assert_eq!(h.state.sessions().count(), 0);
    let none = h.run(Request::new(Command::ExpireSessions { ids: vec![s2], term: 1 }));
    assert_eq!(none.response.outcome, Ok(Output::SessionsExpired { ids: vec![], deleted: 0 }));
    assert_eq!(none.response.revision, 2, "expiring nothing does not bump the revision");
}

#[test]
fn expiry_decided_in_another_term_is_refused() {
    let mut h = Harness::new();
    let s = h.open();
    h.create_in(s, "/e", CreateMode::EPHEMERAL).ok();
    assert_eq!(
        h.cmd(Command::ExpireSessions { ids: vec![s], term: 0 }),
        Err(CoreError::StaleTerm { decided: 0, appended: 1 })
    );
    assert!(h.exists("/e") && h.state.session(s).is_some());
}

#[test]
fn checkpoints_record_remaining_ttl_without_a_revision() {
    let mut h = Harness::new();
    let (s1, s2) = (h.open(), h.open());
    let applied = h.run(Request::new(Command::CheckpointSessions {
        remaining: vec![(s1, 1_200), (s2, 99_999), (404, 1)],
    }));
    assert_eq!(applied.response.outcome, Ok(Output::SessionsCheckpointed { count: 2 }));
    assert!(applied.events.is_empty());
    assert_eq!(h.state.revision(), 0);
    assert_eq!(h.state.session(s1).and_then(|s| s.checkpoint_remaining_ms), Some(1_200));
    // Never more than the ttl.
    assert_eq!(h.state.session(s2).and_then(|s| s.checkpoint_remaining_ms), Some(5_000));
}

// ---- exactly-once requests ----

#[test]
fn a_retry_returns_the_first_response_and_changes_nothing() {
    let mut h = Harness::new();
    let s = h.open();
    let request =
        Request::in_session(s, create("/job-", CreateMode::PERSISTENT.sequential())).with_id(1, 1);
    let first = h.run(request.clone());
    let before = h.state.snapshot().ok();
    let retry = h.run(request);
    assert_eq!(retry.response, first.response);
    assert!(retry.events.is_empty());
    assert_eq!(h.state.snapshot().ok(), before);
    // The next id applies.
    let next = h.run(
        Request::in_session(s, create("/job-", CreateMode::PERSISTENT.sequential())).with_id(2, 1),
    );
    assert_eq!(created_path(next.response.outcome), "/job-0000000001");
}

#[test]
fn failures_are_remembered_too() {
    let mut h = Harness::new();
    let s = h.open();
    let request = Request::in_session(s, set("/missing", "x", None)).with_id(1, 1);
    let first = h.run(request.clone());
    h.create("/missing", CreateMode::PERSISTENT).ok();
    assert_eq!(h.run(request).response, first.response);
    assert_eq!(h.version("/missing"), 0);
}

#[test]
fn acknowledged_requests_are_refused_as_stale() {
    let mut h = Harness::new();
    let s = h.open();
    h.run(Request::in_session(s, create("/a", CreateMode::PERSISTENT)).with_id(1, 1));
    h.run(Request::in_session(s, create("/b", CreateMode::PERSISTENT)).with_id(2, 2));
    let stale = h.run(Request::in_session(s, create("/a", CreateMode::PERSISTENT)).with_id(1, 1));
    assert_eq!(
        stale.response.outcome,
        Err(CoreError::StaleRequest { session: s, seq: 1, floor: 2 })
    );
}

#[test]
fn request_ids_need_a_session() {
    let mut h = Harness::new();
    let outcome =
        h.run(Request::new(create("/a", CreateMode::PERSISTENT)).with_id(1, 1)).response.outcome;
    assert!(matches!(outcome, Err(CoreError::InvalidRequestId { .. })));
    assert!(!h.exists("/a"));
}

// ---- transactions ----

fn cmp(path: &str, check: Check) -> Compare {
    Compare { path: path.into(), check }
}

#[test]
fn txn_applies_all_ops_at_one_revision() {
    let mut h = Harness::new();
    h.create("/cfg", CreateMode::PERSISTENT).ok();
    let applied = h.run(Request::new(Command::Txn {
        compares: vec![
            cmp("/cfg", Check::Version(CompareOp::Equal, 0)),
            cmp("/new", Check::Exists(false)),
        ],
        ops: vec![
            TxnOp::Set { path: "/cfg".into(), data: "2".into(), expected_version: None },
            TxnOp::Create { path: "/new".into(), data: "n".into(), mode: CreateMode::PERSISTENT },
            TxnOp::Delete {
                path: "/new".into(),
                expected_version: Some(0),
                recursive: false,
                revoke_locks: false,
            },
        ],
    }));
    let Ok(Output::TxnCommitted { results }) = &applied.response.outcome else {
        panic!("{applied:?}")
    };
    assert_eq!(results.len(), 3);
    assert!(matches!(results[2], Output::Deleted { count: 1, revoked: 0, kept: 0 }));
    assert_eq!(applied.response.revision, 2);
    assert!(applied.events.iter().all(|e| e.revision == 2));
    assert_eq!(h.version("/cfg"), 1);
}

#[test]
fn txn_reports_the_failing_compare_and_changes_nothing() {
    let mut h = Harness::new();
    h.create("/a", CreateMode::PERSISTENT).ok();
    let ops = vec![TxnOp::Set { path: "/a".into(), data: "x".into(), expected_version: None }];
    let checks = [
        (Check::Exists(true), None),
        (Check::ModRevision(CompareOp::Greater, 0), None),
        (Check::CreateRevision(CompareOp::Less, 1), Some(1)),
        (Check::Version(CompareOp::NotEqual, 0), Some(1)),
    ];
    for (check, failed) in checks {
        let outcome = h.cmd(Command::Txn {
            compares: vec![cmp("/a", Check::Exists(true)), cmp("/a", check)],
            ops: Vec::new(),
        });
        let expected = match failed {
            Some(index) => Output::TxnCompareFailed { index },
            None => Output::TxnCommitted { results: vec![] },
        };
        assert_eq!(outcome, Ok(expected), "{check:?}");
    }
    // A value compare on a missing node is false; so is Exists on a missing node.
    let outcome = h.cmd(Command::Txn {
        compares: vec![cmp("/none", Check::Version(CompareOp::Equal, 0))],
        ops: ops.clone(),
    });
    assert_eq!(outcome, Ok(Output::TxnCompareFailed { index: 0 }));
    let outcome = h.cmd(Command::Txn { compares: vec![cmp("/none", Check::Exists(true))], ops });
    assert_eq!(outcome, Ok(Output::TxnCompareFailed { index: 0 }));
    assert_eq!(h.version("/a"), 0);
    assert_eq!(h.state.revision(), 1);
}

#[test]
fn txn_op_failure_rolls_back_every_earlier_op() {
    let mut h = Harness::new();
    h.create("/a", CreateMode::PERSISTENT).ok();
    h.create("/c", CreateMode::CONTAINER).ok();
    h.create("/c/only", CreateMode::PERSISTENT).ok();
    let before = h.state.snapshot().ok();
    let applied = h.run(Request::new(Command::Txn {
        compares: vec![],
        ops: vec![
            TxnOp::Set { path: "/a".into(), data: "x".into(), expected_version: None },
            TxnOp::Delete {
                path: "/c/only".into(),
                expected_version: None,
                recursive: false,
                revoke_locks: false,
            },
            TxnOp::Create {
                path: "/q/".into(),
                data: "x".into(),
                mode: CreateMode::PERSISTENT.sequential(),
            },
        ],
    }));
    assert_eq!(
        applied.response.outcome,
        Err(CoreError::TxnOpFailed {
            index: 2,
            error: Box::new(CoreError::NoParent { path: "/q/".into(), parent: "/q".into() })
        })
    );
    assert!(applied.events.is_empty());
    assert_eq!(h.state.snapshot().ok(), before);
}

#[test]
fn txn_size_is_limited_and_compare_paths_checked() {
    let mut h =
        Harness::with_limits(Limits { max_txn_ops: 1, max_txn_compares: 1, ..Limits::default() });
    let op = TxnOp::Delete {
        path: "/a".into(),
        expected_version: None,
        recursive: false,
        revoke_locks: false,
    };
    assert!(matches!(
        h.cmd(Command::Txn { compares: vec![], ops: vec![op.clone(), op] }),
        Err(CoreError::TxnTooLarge { count: 2, max: 1, .. })
    ));
    let c = cmp("/a", Check::Exists(true));
    assert!(matches!(
        h.cmd(Command::Txn { compares: vec![c.clone(), c], ops: vec![] }),
        Err(CoreError::TxnTooLarge { count: 2, max: 1, .. })
    ));
    assert!(matches!(
        h.cmd(Command::Txn { compares: vec![cmp("a", Check::Exists(true))], ops: vec![] }),
        Err(CoreError::InvalidPath { rule: PathRule::NotAbsolute, .. })
    ));
}

#[test]
fn txn_ephemeral_creates_use_the_request_session() {
    let mut h = Harness::new();
    let s = h.open();
    let txn = Command::Txn {
        compares: vec![],
        ops: vec![TxnOp::Create {
            path: "/e".into(),
            data: "".into(),
            mode: CreateMode::EPHEMERAL,
        }],
    };
    assert!(matches!(h.cmd(txn.clone()), Err(CoreError::TxnOpFailed { index: 0, .. })));
    assert!(matches!(
        h.run(Request::in_session(s, txn)).response.outcome,
        Ok(Output::TxnCommitted { .. })
    ));
    assert_eq!(h.state.ephemerals_of(s).collect::<Vec<_>>(), ["/e"]);
}

// ---- reads and snapshots ----

#[test]
fn reads_validate_and_list_sorted_children() {
    let mut h = Harness::new();
    for p in ["/b", "/a", "/a/z", "/a/y"] {
        h.create(p, CreateMode::PERSISTENT).ok();
    }
    let names: Vec<String> =
        h.state.children("/").map(|c| c.into_iter().map(|(n, _)| n).collect()).unwrap_or_default();
    assert_eq!(names, ["a", "b"]);
    let names: Vec<String> =
        h.state.children("/a").map(|c| c.into_iter().map(|(n, _)| n).collect()).unwrap_or_default();
    assert_eq!(names, ["y", "z"]);
    assert_eq!(h.state.children("/x").err(), Some(CoreError::NoNode { path: "/x".into() }));
    assert!(matches!(h.state.get("x"), Err(CoreError::InvalidPath { .. })));
}

#[test]
fn snapshot_round_trips_and_rejects_garbage() {
    let mut h = Harness::new();
    let s = h.open();
    h.create("/a", CreateMode::PERSISTENT).ok();
    h.create_in(s, "/a/e", CreateMode::EPHEMERAL).ok();
    let bytes = h.state.snapshot().unwrap_or_default();
    let restored = State::restore(&bytes);
    assert_eq!(restored.as_ref().ok().and_then(|r| r.snapshot().ok()), Some(bytes.clone()));
    assert_eq!(
        restored.map(|r| r.ephemerals_of(s).map(str::to_owned).collect::<Vec<_>>()),
        Ok(vec!["/a/e".to_owned()])
    );
    assert!(matches!(State::restore(b"nope"), Err(CoreError::Decode { .. })));
    assert!(matches!(State::restore(&bytes[..bytes.len() - 1]), Err(CoreError::Decode { .. })));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(State::restore(&longer), Err(CoreError::Decode { .. })));
}

// ---- locks ----

use crate::queue::{LockKind, WaitMode};

impl Harness {
    fn run_at(&mut self, request: Request, time_ms: u64) -> Applied {
        self.index += 1;
        let applied =
            self.state.apply(request, &ApplyContext { index: self.index, time_ms, term: 1 });
        let broken = invariants::violations(&self.state);
        assert!(broken.is_empty(), "invariants broken: {broken:?}");
        applied
    }

    fn acquire(
        &mut self,
        s: SessionId,
        path: &str,
        kind: LockKind,
        mode: WaitMode,
        delay_ms: u64,
    ) -> Output {
        let command = Command::Acquire {
            path: path.into(),
            kind,
            mode,
            delay_ms,
            options: Default::default(),
        };
        match self.run(Request::in_session(s, command)).response.outcome {
            Ok(o) => o,
            Err(e) => panic!("acquire: {e}"),
        }
    }

    fn holders(&self, path: &str) -> Vec<(SessionId, u64)> {
        let (_, ws) = self.state.lock(path).unwrap_or_else(|e| panic!("{e}"));
        ws.iter().filter_map(|w| w.info.token.map(|t| (w.session, t))).collect()
    }
}

fn queued(o: &Output) -> (Option<u64>, u64) {
    match o {
        Output::LockQueued { token, position, .. } => (*token, *position),
        other => panic!("{other:?}"),
    }
}

const X: WaitMode = WaitMode::Exclusive;

#[test]
fn a_mutex_is_granted_in_order_with_increasing_tokens() {
    let mut h = Harness::new();
    let (s1, s2) = (h.open(), h.open());
    let (t1, p1) = queued(&h.acquire(s1, "/db", LockKind::Mutex, X, 0));
    assert_eq!((p1, t1.is_some()), (0, true));
    assert_eq!(queued(&h.acquire(s2, "/db", LockKind::Mutex, X, 0)), (None, 1));
    // Acquiring again returns the same hold or wait.
    assert_eq!(queued(&h.acquire(s1, "/db", LockKind::Mutex, X, 0)).0, t1);
    assert_eq!(h.holders("/db"), [(s1, t1.unwrap_or(0))]);
    let released =
        h.run(Request::in_session(s1, Command::Release { path: "/db".into(), hold: HoldRef::Any }));
    assert_eq!(released.response.outcome, Ok(Output::LockReleased { held: true, remaining: 0 }));
    let holders = h.holders("/db");
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].0, s2);
    assert!(holders[0].1 > t1.unwrap_or(0), "tokens strictly increase");
    // The grant is an event on the waiter, with the token in its data.
    assert!(released.events.iter().any(|e| {
        e.kind == EventKind::Data
            && e.data
                .as_deref()
                .and_then(crate::queue_data::WaiterInfo::decode)
                .is_some_and(|i| i.token == Some(holders[0].1))
    }));
    assert!(h.state.check_sequencer("/db", holders[0].1));
    assert!(!h.state.check_sequencer("/db", t1.unwrap_or(0)));
    h.run(Request::in_session(s2, Command::Release { path: "/db".into(), hold: HoldRef::Any }));
    assert!(!h.exists("/db"), "an idle lock leaves no node");
}

#[test]
fn readers_share_and_semaphores_count_permits() {
    let mut h = Harness::new();
    let (r1, w, r2, r3) = (h.open(), h.open(), h.open(), h.open());
    h.acquire(r1, "/rw", LockKind::ReadWrite, WaitMode::Shared, 0);
    assert!(queued(&h.acquire(r2, "/rw", LockKind::ReadWrite, WaitMode::Shared, 0)).0.is_some());
    assert!(queued(&h.acquire(w, "/rw", LockKind::ReadWrite, X, 0)).0.is_none());
    assert!(
        queued(&h.acquire(r3, "/rw", LockKind::ReadWrite, WaitMode::Shared, 0)).0.is_none(),
        "behind a writer"
    );
    h.run(Request::in_session(r1, Command::Release { path: "/rw".into(), hold: HoldRef::Any }));
    h.run(Request::in_session(r2, Command::Release { path: "/rw".into(), hold: HoldRef::Any }));
    assert_eq!(h.holders("/rw").iter().map(|(s, _)| *s).collect::<Vec<_>>(), [w]);

    let sem = LockKind::Semaphore { permits: 2 };
    let (a, b, c) = (h.open(), h.open(), h.open());
    assert!(queued(&h.acquire(a, "/sem", sem, WaitMode::Permits(1), 0)).0.is_some());
    assert!(queued(&h.acquire(b, "/sem", sem, WaitMode::Permits(1), 0)).0.is_some());
    assert!(queued(&h.acquire(c, "/sem", sem, WaitMode::Permits(1), 0)).0.is_none());
    h.run(Request::new(Command::CloseSession { id: a }));
    assert_eq!(h.holders("/sem").len(), 2, "closing a session releases its permit");
}

#[test]
fn lock_delay_follows_expiry_only() {
    let mut h = Harness::new();
    let (s1, s2, s3) = (h.open(), h.open(), h.open());
    h.acquire(s1, "/l", LockKind::Mutex, X, 5_000);
    h.acquire(s2, "/l", LockKind::Mutex, X, 5_000);
    h.run_at(Request::new(Command::ExpireSessions { ids: vec![s1], term: 1 }), 100_000);
    assert!(h.holders("/l").is_empty(), "blocked by the lock-delay");
    h.run_at(Request::new(Command::WakeLocks), 104_999);
    assert!(h.holders("/l").is_empty(), "still blocked");
    h.run_at(Request::new(Command::WakeLocks), 105_000);
    assert_eq!(h.holders("/l").iter().map(|(s, _)| *s).collect::<Vec<_>>(), [s2]);
    // A close is not a failure: no delay.
    h.acquire(s3, "/l", LockKind::Mutex, X, 5_000);
    h.run_at(Request::new(Command::CloseSession { id: s2 }), 200_000);
    assert_eq!(h.holders("/l").iter().map(|(s, _)| *s).collect::<Vec<_>>(), [s3]);
    // The last holder expires: the empty lock stays blocked, then goes.
    h.run_at(Request::new(Command::ExpireSessions { ids: vec![s3], term: 1 }), 300_000);
    assert!(h.exists("/l"), "the lock-delay outlives the last waiter");
    let s4 = h.open();
    assert!(
        queued(&h.acquire(s4, "/l", LockKind::Mutex, X, 0)).0.is_none(),
        "nobody gets it during the delay"
    );
    h.run_at(
        Request::in_session(s4, Command::Release { path: "/l".into(), hold: HoldRef::Any }),
        301_000,
    );
    assert!(h.exists("/l"), "still blocked");
    h.run_at(Request::new(Command::WakeLocks), 305_000);
    assert!(!h.exists("/l"), "woken and empty: gone");
}

#[test]
fn revoke_takes_a_session_out_and_a_revoked_holder_starts_the_lock_delay() {
    let mut h = Harness::new();
    let (s1, s2, s3) = (h.open(), h.open(), h.open());
    h.acquire(s1, "/l", LockKind::Mutex, X, 2_000);
    h.acquire(s2, "/l", LockKind::Mutex, X, 2_000);
    h.acquire(s3, "/l", LockKind::Mutex, X, 2_000);
    // A waiter revoked: no delay, the holder keeps the lock; the waiter's last value is
    // marked (its acquire tells a revoke from its own cancel), with no token to report.
    let revoked = h.run_at(Request::new(Command::Revoke { path: "/l".into(), session: s2 }), 10);
    assert_eq!(revoked.response.outcome, Ok(Output::LockReleased { held: false, remaining: 0 }));
    let marked: Vec<_> = revoked
        .events
        .iter()
        .filter_map(|e| e.data.as_deref().filter(|d| crate::queue_data::mark_of(d).is_some()))
        .collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(crate::queue_data::WaiterInfo::decode(marked[0]).and_then(|i| i.token), None);
    assert_eq!(h.holders("/l").iter().map(|(s, _)| *s).collect::<Vec<_>>(), [s1]);
    // The holder revoked: it did not let go, so nobody holds until the delay ends.
    let token1 = h.holders("/l")[0].1;
    assert!(crate::recipe::still_holds(h.state.tree(), "/l", s1, token1));
    assert!(!crate::recipe::still_holds(h.state.tree(), "/l", s1, token1 + 1), "another hold");
    assert!(!crate::recipe::still_holds(h.state.tree(), "/l", s3, token1), "another session");
    let revoked = h.run_at(Request::new(Command::Revoke { path: "/l".into(), session: s1 }), 20);
    assert!(!crate::recipe::still_holds(h.state.tree(), "/l", s1, token1), "revoked");
    // Its waiter's last value is marked, so a leader can tell its session.
    let marked: Vec<_> = revoked
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Data && e.stat.ephemeral_owner == s1)
        .filter(|e| e.data.as_deref().is_some_and(|d| crate::queue_data::mark_of(d).is_some()))
        .collect();
    assert_eq!(marked.len(), 1, "{:?}", revoked.events);
    let info = crate::queue_data::WaiterInfo::decode(marked[0].data.as_deref().unwrap_or_default());
    assert_eq!(info.and_then(|i| i.token), Some(token1));
    assert_eq!(revoked.response.outcome, Ok(Output::LockReleased { held: true, remaining: 0 }));
    assert!(h.holders("/l").is_empty(), "blocked by the lock-delay");
    assert_eq!(crate::recipe::next_wake(h.state.tree()), Some(2_020));
    h.run_at(Request::new(Command::WakeLocks), 2_020);
    assert_eq!(h.holders("/l").iter().map(|(s, _)| *s).collect::<Vec<_>>(), [s3]);
    assert_eq!(crate::recipe::next_wake(h.state.tree()), None);
    // Revoking a session that is not there says so.
    assert_eq!(
        h.run(Request::new(Command::Revoke { path: "/l".into(), session: s1 })).response.outcome,
        Err(CoreError::NotHeld { path: "/l".into(), session: s1 })
    );
}

#[test]
fn lock_nodes_are_managed_and_requests_are_checked() {
    let mut h = Harness::new();
    let s = h.open();
    let (waiter, token) = match h.acquire(s, "/m", LockKind::Mutex, X, 0) {
        Output::LockQueued { waiter, token, .. } => (waiter, token),
        other => panic!("{other:?}"),
    };
    assert_eq!(h.cmd(set("/m", "x", None)), Err(CoreError::LockManaged { path: "/m".into() }));
    assert_eq!(
        h.cmd(set(&waiter, "x", None)),
        Err(CoreError::LockManaged { path: waiter.clone() })
    );
    assert_eq!(
        h.create("/m/x", CreateMode::PERSISTENT),
        Err(CoreError::LockManaged { path: "/m".into() })
    );
    let lock_mode = CreateMode { kind: NodeKind::Queue, sequential: false };
    assert!(matches!(h.create("/n", lock_mode), Err(CoreError::InvalidCreateMode { .. })));
    let other = h.open();
    let wrong = Command::Acquire {
        path: "/m".into(),
        kind: LockKind::ReadWrite,
        mode: X,
        delay_ms: 0,
        options: Default::default(),
    };
    assert!(matches!(
        h.run(Request::in_session(other, wrong)).response.outcome,
        Err(CoreError::InvalidLockRequest { .. })
    ));
    h.create("/plain", CreateMode::PERSISTENT).ok();
    let plain = Command::Acquire {
        path: "/plain".into(),
        kind: LockKind::Mutex,
        mode: X,
        delay_ms: 0,
        options: Default::default(),
    };
    assert!(matches!(
        h.run(Request::in_session(other, plain)).response.outcome,
        Err(CoreError::WrongRecipe { .. })
    ));
    let long = Command::Acquire {
        path: "/d".into(),
        kind: LockKind::Mutex,
        mode: X,
        delay_ms: 60_001,
        options: Default::default(),
    };
    assert!(matches!(
        h.run(Request::in_session(other, long)).response.outcome,
        Err(CoreError::InvalidLockRequest { .. })
    ));
    let nobody = Command::Acquire {
        path: "/m".into(),
        kind: LockKind::Mutex,
        mode: X,
        delay_ms: 0,
        options: Default::default(),
    };
    assert!(matches!(h.cmd(nobody), Err(CoreError::SessionRequired { .. })));
    let release =
        Request::in_session(other, Command::Release { path: "/m".into(), hold: HoldRef::Any });
    assert_eq!(
        h.run(release).response.outcome,
        Err(CoreError::NotHeld { path: "/m".into(), session: other })
    );
    // A plain delete of the holder's waiter is refused; one that asks to revoke is a revoke.
    h.acquire(other, "/m", LockKind::Mutex, X, 0);
    assert!(matches!(
        h.cmd(delete(&waiter, false)),
        Err(CoreError::LockInUse { ref lock, .. }) if lock == "/m"
    ));
    assert_eq!(h.holders("/m"), [(s, token.unwrap_or(0))], "nothing changed");
    let revoke = Command::Delete {
        path: waiter.clone(),
        expected_version: None,
        recursive: false,
        revoke_locks: true,
    };
    let applied = h.run(Request::new(revoke));
    assert_eq!(applied.response.outcome, Ok(Output::Deleted { count: 1, revoked: 1, kept: 0 }));
    assert!(
        applied.events.iter().any(|e| e.path == waiter
            && e.data.as_deref().is_some_and(|d| crate::queue_data::mark_of(d).is_some())),
        "the holder's waiter is marked revoked, so its session is told"
    );
    let holders = h.holders("/m");
    assert_eq!(holders.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [other]);
    assert!(holders[0].1 > token.unwrap_or(0));
}

fn delete_revoking(path: &str) -> Command {
    Command::Delete {
        path: path.into(),
        expected_version: None,
        recursive: true,
        revoke_locks: true,
    }
}

#[test]
fn a_delete_never_ends_a_lock_unless_it_asks_to_revoke() {
    let mut h = Harness::new();
    let (s1, s2) = (h.open(), h.open());
    h.create("/jobs", CreateMode::PERSISTENT).ok();
    h.create("/jobs/x", CreateMode::PERSISTENT).ok();
    h.create("/jobs/x/data", CreateMode::PERSISTENT).ok();
    h.create("/jobs/free", CreateMode::PERSISTENT).ok();
    let (t1, _) = queued(&h.acquire(s1, "/jobs/x/lock", LockKind::Mutex, X, 0));
    h.acquire(s2, "/jobs/x/lock", LockKind::Mutex, X, 0);
    let before = h.state.revision();
    for command in [delete("/jobs", true), delete("/jobs/x", true), delete("/jobs/x/lock", false)] {
        match h.cmd(command) {
            Err(CoreError::LockInUse { lock, what, .. }) => {
                assert_eq!(lock, "/jobs/x/lock");
                assert!(what.contains(&format!("held by session {s1}")), "{what}");
                assert!(what.contains("1 waiting"), "{what}");
            }
            other => panic!("{other:?}"),
        }
    }
    let txn = Command::Txn {
        compares: vec![],
        ops: vec![TxnOp::Delete {
            path: "/jobs".into(),
            expected_version: None,
            recursive: true,
            revoke_locks: false,
        }],
    };
    assert!(matches!(
        h.cmd(txn),
        Err(CoreError::TxnOpFailed { error, .. }) if matches!(*error, CoreError::LockInUse { .. })
    ));
    assert_eq!(h.state.revision(), before, "nothing changed");
    assert_eq!(h.holders("/jobs/x/lock"), [(s1, t1.unwrap_or(0))]);
    // Asking to revoke: both sessions are taken out, nobody is granted, all goes.
    let applied = h.run(Request::new(delete_revoking("/jobs")));
    assert_eq!(applied.response.outcome, Ok(Output::Deleted { count: 7, revoked: 2, kept: 0 }));
    assert!(!h.exists("/jobs"));
    assert!(
        !applied.events.iter().any(|e| e.data.as_deref().is_some_and(|d| {
            crate::queue_data::WaiterInfo::decode(d).is_some_and(|i| i.token.is_some())
                && crate::queue_data::mark_of(d).is_none()
        })),
        "no grant on the way out"
    );
}

#[test]
fn a_revoking_delete_keeps_a_lock_in_its_lock_delay_and_its_parents_as_containers() {
    let mut h = Harness::new();
    let s1 = h.open();
    h.create("/jobs", CreateMode::PERSISTENT).ok();
    h.create("/jobs/x", CreateMode::PERSISTENT).ok();
    h.create("/jobs/other", CreateMode::PERSISTENT).ok();
    h.acquire(s1, "/jobs/x/lock", LockKind::Mutex, X, 5_000);
    let applied = h.run_at(Request::new(delete_revoking("/jobs")), 100_000);
    assert_eq!(applied.response.outcome, Ok(Output::Deleted { count: 2, revoked: 1, kept: 1 }));
    assert!(!h.exists("/jobs/other"));
    assert_eq!(h.state.get("/jobs").map(|n| n.kind), Ok(NodeKind::Container));
    assert_eq!(h.state.get("/jobs/x").map(|n| n.kind), Ok(NodeKind::Container));
    // Nobody gets the lock in its delay, and a plain delete cannot end the delay.
    let s2 = h.open();
    assert_eq!(queued(&h.acquire(s2, "/jobs/x/lock", LockKind::Mutex, X, 5_000)).0, None);
    h.run(Request::new(Command::CloseSession { id: s2 }));
    assert!(matches!(h.cmd(delete("/jobs", true)), Err(CoreError::LockInUse { .. })));
    h.run_at(Request::new(Command::WakeLocks), 105_000);
    assert!(!h.exists("/jobs"), "the lock and the containers above it went when it woke");
}

#[test]
fn a_release_names_the_hold_it_ends() {
    let mut h = Harness::new();
    let s = h.open();
    let other = h.open();
    let release =
        |hold: HoldRef| Request::in_session(s, Command::Release { path: "/m".into(), hold });
    let (t1, _) = queued(&h.acquire(s, "/m", LockKind::Mutex, X, 0));
    let t1 = t1.unwrap_or(0);
    h.run(Request::new(Command::Revoke { path: "/m".into(), session: s }));
    let (t2, _) = queued(&h.acquire(s, "/m", LockKind::Mutex, X, 0));
    let t2 = t2.unwrap_or(0);
    assert!(t2 > t1);
    // A stale guard's release changes nothing, and says so.
    assert_eq!(
        h.run(release(HoldRef::Token(t1))).response.outcome,
        Err(CoreError::HoldEnded { path: "/m".into(), token: t1 })
    );
    assert_eq!(h.holders("/m"), [(s, t2)]);
    // A cancel of a wait that was granted meanwhile keeps the grant and reports it.
    let waiter = match h.acquire(other, "/m", LockKind::Mutex, X, 0) {
        Output::LockQueued { waiter, token: None, .. } => waiter,
        o => panic!("{o:?}"),
    };
    assert_eq!(
        h.run(release(HoldRef::Wait("/m/w-0000000099".into()))).response.outcome,
        Err(CoreError::NotHeld { path: "/m".into(), session: s })
    );
    match h
        .run(release(HoldRef::Wait(
            h.state.lock("/m").map(|(_, w)| w[0].path.clone()).unwrap_or_default(),
        )))
        .response
        .outcome
    {
        Ok(Output::LockQueued { token: Some(t), position: 0, .. }) => assert_eq!(t, t2),
        o => panic!("{o:?}"),
    }
    assert_eq!(
        h.run(release(HoldRef::Token(t2))).response.outcome,
        Ok(Output::LockReleased { held: true, remaining: 0 })
    );
    let t3 = h.holders("/m")[0].1;
    h.acquire(s, "/m", LockKind::Mutex, X, 0);
    let cancel = Request::in_session(
        other,
        Command::Release { path: "/m".into(), hold: HoldRef::Wait(waiter) },
    );
    assert_eq!(
        h.run(cancel).response.outcome,
        Ok(Output::LockQueued {
            waiter: h.state.lock("/m").map(|(_, w)| w[0].path.clone()).unwrap_or_default(),
            token: Some(t3),
            position: 0,
        })
    );
    // A wait not granted is removed by its cancel.
    let mine = h.state.lock("/m").map(|(_, w)| w[1].path.clone()).unwrap_or_default();
    assert_eq!(
        h.run(release(HoldRef::Wait(mine))).response.outcome,
        Ok(Output::LockReleased { held: false, remaining: 0 })
    );
    assert_eq!(h.holders("/m"), [(other, t3)]);
}

#[test]
fn a_batch_applies_each_request_in_order_with_the_entry_context() {
    let ctx = ApplyContext { index: 10, time_ms: 5_000, term: 2 };
    let open = || Request::new(Command::OpenSession { ttl_ms: 1_000, identity: String::new() });
    let create = |p: &str| {
        Request::new(Command::Create {
            path: p.into(),
            data: Bytes::new(),
            mode: CreateMode::PERSISTENT,
        })
    };
    let requests = vec![open(), create("/a"), open(), create("/a"), create("/b")];
    let mut batched = State::default();
    let applied = batched.apply_entry(LogCommand::Batch(requests.clone()), &ctx);
    let mut one_by_one = State::default();
    let each: Vec<Applied> = requests.into_iter().map(|r| one_by_one.apply(r, &ctx)).collect();
    assert_eq!(applied, each);
    assert_eq!(batched.snapshot().ok(), one_by_one.snapshot().ok());
    // Two sessions opened by one entry get distinct ids; the failed create fails alone.
    let ids: Vec<u64> = applied
        .iter()
        .filter_map(|a| match &a.response.outcome {
            Ok(Output::SessionOpened { id, .. }) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [10, 11]);
    assert!(matches!(applied[3].response.outcome, Err(CoreError::NodeExists { .. })));
    assert!(applied[4].response.outcome.is_ok());
    assert_eq!(applied[4].response.revision, 2, "one revision per namespace change");
}

#[test]
fn a_lock_creates_its_missing_ancestors_as_containers_that_go_with_it() {
    let mut h = Harness::new();
    let s = h.open();
    h.acquire(s, "/jobs/nightly/backup", LockKind::Mutex, X, 0);
    assert_eq!(h.state.get("/jobs").map(|n| n.kind), Ok(NodeKind::Container));
    assert_eq!(h.state.get("/jobs/nightly").map(|n| n.kind), Ok(NodeKind::Container));
    let release = Command::Release { path: "/jobs/nightly/backup".into(), hold: HoldRef::Any };
    h.run(Request::in_session(s, release));
    assert!(!h.exists("/jobs"), "the containers went with the lock");
    // Not under an ephemeral node, nor under a lock.
    h.create_in(s, "/eph", CreateMode::EPHEMERAL).ok();
    let under = |path: &str| Command::Acquire {
        path: path.into(),
        kind: LockKind::Mutex,
        mode: X,
        delay_ms: 0,
        options: Default::default(),
    };
    assert!(matches!(
        h.run(Request::in_session(s, under("/eph/a/lock"))).response.outcome,
        Err(CoreError::EphemeralParent { .. })
    ));
    // Under a lock only another lock (hierarchical locks), not another recipe.
    h.acquire(s, "/m", LockKind::Mutex, X, 0);
    let campaign = Command::Campaign { path: "/m/a/election".into(), value: "v".into() };
    assert_eq!(
        h.run(Request::in_session(s, campaign)).response.outcome,
        Err(CoreError::LockManaged { path: "/m".into() })
    );
    assert!(!h.exists("/eph/a") && !h.exists("/m/a"), "a refused acquire leaves nothing");
    h.acquire(s, "/m/a/lock", LockKind::Mutex, X, 0);
    assert_eq!(h.state.get("/m/a").map(|n| n.kind), Ok(NodeKind::Container));
}

const POLICY: &str =
    "[[rule]]\nidentities = [\"admin\"]\npermissions = [\"all\"]\npaths = [\"/**\"]\n";

#[test]
fn a_policy_is_kept_in_the_reserved_node_and_compiled() {
    let mut h = Harness::new();
    assert!(h.state.policy().is_none());
    assert_eq!(
        h.cmd(Command::SetPolicy { text: POLICY.into() }),
        Ok(Output::PolicyApplied { rules: 1 })
    );
    let policy = h.state.policy().cloned();
    assert_eq!(policy.as_ref().map(|p| p.text()), Some(POLICY));
    assert!(policy.is_some_and(|p| p.allows("admin", crate::acl::Permission::Admin, "/x")));
    assert_eq!(h.state.get(crate::acl::POLICY_PATH).map(|n| n.data.clone()), Ok(POLICY.into()));
    // A second policy replaces the first.
    let second = POLICY.replace("admin", "root");
    assert!(h.cmd(Command::SetPolicy { text: second.clone() }).is_ok());
    assert_eq!(h.state.policy().map(|p| p.text().to_owned()), Some(second.clone()));
    // Restored state (snapshot, or piece by piece) has the policy compiled again.
    let restored = h.state.snapshot().and_then(|b| State::restore(&b));
    assert_eq!(restored.ok().and_then(|s| s.policy().map(|p| p.text().to_owned())), Some(second));
}

#[test]
fn a_bad_policy_is_refused_and_the_one_in_force_stays() {
    let mut h = Harness::new();
    assert!(h.cmd(Command::SetPolicy { text: POLICY.into() }).is_ok());
    let revision = h.state.revision();
    let bad = "[[rule]]\nidentities = [\"a\"]\npermissions = [\"fly\"]\npaths = [\"/\"]\n";
    match h.cmd(Command::SetPolicy { text: bad.into() }) {
        Err(CoreError::InvalidPolicy { error }) => {
            assert_eq!(error.line, Some(3));
            assert!(error.reason.contains("fly"), "{error}");
        }
        other => panic!("bad policy not refused: {other:?}"),
    }
    assert_eq!(h.state.revision(), revision);
    assert_eq!(h.state.policy().map(|p| p.text()), Some(POLICY));
}

#[test]
fn clients_cannot_write_under_the_reserved_prefix() {
    let mut h = Harness::new();
    assert!(h.cmd(Command::SetPolicy { text: POLICY.into() }).is_ok());
    let reserved = |path: &str| Err(CoreError::Reserved { path: path.into() });
    assert_eq!(h.create("/warden/x", CreateMode::PERSISTENT), reserved("/warden/x"));
    assert_eq!(h.create("/warden", CreateMode::PERSISTENT), reserved("/warden"));
    assert_eq!(h.cmd(set(crate::acl::POLICY_PATH, "[[rule]]", None)), reserved("/warden/acl"));
    let delete = Command::Delete {
        path: "/warden".into(),
        expected_version: None,
        recursive: true,
        revoke_locks: true,
    };
    assert_eq!(h.cmd(delete), reserved("/warden"));
    let txn = Command::Txn {
        compares: vec![],
        ops: vec![
            TxnOp::Create { path: "/ok".into(), data: Bytes::new(), mode: CreateMode::PERSISTENT },
            TxnOp::Set { path: "/warden/acl".into(), data: Bytes::new(), expected_version: None },
        ],
    };
    assert_eq!(h.cmd(txn), reserved("/warden/acl"));
    assert!(!h.exists("/ok"));
    let s = h.open();
    let acquire = Command::Acquire {
        path: "/warden/lock".into(),
        kind: crate::queue::LockKind::Mutex,
        mode: crate::queue::WaitMode::Exclusive,
        delay_ms: 0,
        options: Default::default(),
    };
    assert_eq!(h.run(Request::in_session(s, acquire)).response.outcome, reserved("/warden/lock"));
    // A sibling that only shares the bytes is an ordinary path.
    assert!(h.create("/wardens", CreateMode::PERSISTENT).is_ok());
    assert_eq!(h.state.policy().map(|p| p.text()), Some(POLICY));
}
