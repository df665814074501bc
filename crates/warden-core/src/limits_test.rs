//! Each limit refuses what is over it, with its own error, and nothing is changed; what
//! is at the limit passes.

use bytes::Bytes;

use super::Limits;
use crate::command::{Check, Command, Compare, Request, TxnOp};
use crate::error::CoreError;
use crate::ids::ApplyContext;
use crate::ids::SessionId;
use crate::invariants;
use crate::node::CreateMode;
use crate::path::PathRule;
use crate::queue::{LockKind, WaitMode};
use crate::response::Output;
use crate::state::State;

struct Harness {
    state: State,
    index: u64,
}

impl Harness {
    fn new(limits: Limits) -> Harness {
        Harness { state: State::new(limits), index: 0 }
    }

    fn run(&mut self, request: Request) -> Result<Output, CoreError> {
        self.index += 1;
        let ctx = ApplyContext { index: self.index, time_ms: 1_000, term: 1 };
        let applied = self.state.apply(request, &ctx);
        let broken = invariants::violations(&self.state);
        assert!(broken.is_empty(), "invariants broken: {broken:?}");
        applied.response.outcome
    }

    fn cmd(&mut self, command: Command) -> Result<Output, CoreError> {
        self.run(Request::new(command))
    }

    fn open(&mut self, identity: &str) -> Result<SessionId, CoreError> {
        match self.cmd(Command::OpenSession { ttl_ms: 5_000, identity: identity.into() })? {
            Output::SessionOpened { id, .. } => Ok(id),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn acquire(&mut self, session: SessionId, path: &str) -> Result<Output, CoreError> {
        let command = Command::Acquire {
            path: path.into(),
            kind: LockKind::Mutex,
            mode: WaitMode::Exclusive,
            delay_ms: 0,
            options: Default::default(),
        };
        self.run(Request::in_session(session, command))
    }
}

fn create(path: &str) -> Command {
    Command::Create { path: path.into(), data: Bytes::new(), mode: CreateMode::PERSISTENT }
}

fn deep(depth: usize) -> String {
    (0..depth).map(|i| format!("/{i}")).collect()
}

#[test]
fn path_depth_is_limited_on_every_use_of_a_path() {
    let mut h = Harness::new(Limits { max_path_depth: 3, ..Limits::default() });
    for depth in 1..=3 {
        assert!(h.cmd(create(&deep(depth))).is_ok(), "depth {depth}");
    }
    let too_deep = deep(4);
    let refused = h.cmd(create(&too_deep));
    assert_eq!(
        refused,
        Err(CoreError::InvalidPath {
            path: too_deep.clone(),
            rule: PathRule::TooDeep { depth: 4, max: 3 }
        })
    );
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("4 segments") && message.contains("limits.max_path_depth"));
    assert!(h.state.get(&too_deep).is_err(), "reads check it too");
    assert!(!h.state.tree().contains(&too_deep));
}

#[test]
fn a_lock_at_the_deepest_level_is_refused_up_front() {
    let mut h = Harness::new(Limits { max_path_depth: 2, ..Limits::default() });
    let s = h.open("a").unwrap_or_default();
    assert!(h.acquire(s, "/locks/a").is_err_and(|e| matches!(
        &e, CoreError::InvalidLockRequest { reason } if reason.contains("limits.max_path_depth = 2")
    )));
    assert!(!h.state.tree().contains("/locks"), "nothing was created");
    assert!(matches!(h.acquire(s, "/a"), Ok(Output::LockQueued { .. })));
}

#[test]
fn sessions_per_identity_are_limited_and_freed_when_they_end() {
    let mut h = Harness::new(Limits { max_sessions_per_identity: 2, ..Limits::default() });
    let first = h.open("alice").unwrap_or_default();
    assert!(h.open("alice").is_ok());
    let refused = h.open("alice");
    assert_eq!(
        refused,
        Err(CoreError::TooManySessions { identity: "alice".into(), count: 2, max: 2 })
    );
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("identity \"alice\" already has 2 live sessions"), "{message}");
    assert!(message.contains("limits.max_sessions_per_identity"), "{message}");
    assert_eq!(h.state.sessions().count(), 2, "the refused open made no session");
    // Others have quotas of their own; the anonymous identity is one of them.
    assert!(h.open("bob").is_ok());
    assert!(h.open("").is_ok());
    assert!(h.open("").is_ok());
    let anonymous = h.open("").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(anonymous.contains("the anonymous identity"), "{anonymous}");
    // A session that ends gives its place back, by close or by expiry.
    assert!(h.cmd(Command::CloseSession { id: first }).is_ok());
    let again = h.open("alice").unwrap_or_default();
    assert!(h.open("alice").is_err());
    assert!(h.cmd(Command::ExpireSessions { ids: vec![again], term: 1 }).is_ok());
    assert!(h.open("alice").is_ok());
    assert_eq!(h.state.sessions_of("alice"), 2);
}

#[test]
fn the_count_of_sessions_per_identity_survives_a_snapshot() {
    let mut h = Harness::new(Limits { max_sessions_per_identity: 1, ..Limits::default() });
    assert!(h.open("alice").is_ok());
    let bytes = h.state.snapshot().unwrap_or_default();
    h.state = State::restore(&bytes).unwrap_or_default();
    assert_eq!(h.state.sessions_of("alice"), 1);
    assert!(matches!(h.open("alice"), Err(CoreError::TooManySessions { count: 1, .. })));
    let parts = State::from_parts(
        h.state.meta(),
        h.state.tree().iter().map(|(p, n)| (p.to_owned(), n.clone())),
        h.state.sessions().cloned(),
        [],
    );
    assert_eq!(parts.sessions_of("alice"), 1);
}

#[test]
fn waiters_per_lock_are_limited_and_a_holder_acquiring_again_is_not_counted() {
    let mut h = Harness::new(Limits { max_waiters_per_lock: 2, ..Limits::default() });
    let sessions: Vec<SessionId> = (0..3).map(|_| h.open("c").unwrap_or_default()).collect();
    assert!(h.acquire(sessions[0], "/l").is_ok());
    assert!(h.acquire(sessions[1], "/l").is_ok());
    let revision = h.state.revision();
    let refused = h.acquire(sessions[2], "/l");
    assert_eq!(refused, Err(CoreError::TooManyWaiters { path: "/l".into(), waiters: 2, max: 2 }));
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("limits.max_waiters_per_lock"), "{message}");
    assert_eq!(h.state.revision(), revision, "nothing changed");
    // Acquiring again returns the place a session has.
    assert!(matches!(h.acquire(sessions[1], "/l"), Ok(Output::LockQueued { position: 1, .. })));
    // Another lock has its own limit; a place is freed when a session leaves.
    assert!(h.acquire(sessions[2], "/other").is_ok());
    assert!(h.cmd(Command::CloseSession { id: sessions[0] }).is_ok());
    assert!(h.acquire(sessions[2], "/l").is_ok());
}

fn set_op(path: &str, len: usize) -> TxnOp {
    TxnOp::Set { path: path.into(), data: Bytes::from(vec![b'x'; len]), expected_version: None }
}

#[test]
fn transactions_are_limited_in_bytes() {
    // The compare's path, then each op's path and value: 2 + (2 + 60) + (2 + 32) + 2 = 100.
    let mut h = Harness::new(Limits { max_txn_bytes: 100, ..Limits::default() });
    assert!(h.cmd(create("/a")).is_ok());
    assert!(h.cmd(create("/b")).is_ok());
    let compares = vec![Compare { path: "/a".into(), check: Check::Exists(true) }];
    let at_limit = vec![
        set_op("/a", 60),
        set_op("/b", 32),
        TxnOp::Delete {
            path: "/b".into(),
            expected_version: None,
            recursive: false,
            revoke_locks: false,
        },
    ];
    assert_eq!(crate::txn::size_in_bytes(&compares, &at_limit), 100);
    let txn = |ops| Command::Txn { compares: compares.clone(), ops };
    assert!(matches!(h.cmd(txn(at_limit)), Ok(Output::TxnCommitted { .. })));
    let revision = h.state.revision();
    let over = vec![set_op("/a", 61), set_op("/b", 34)];
    let refused = h.cmd(txn(over));
    assert_eq!(refused, Err(CoreError::TxnBytesTooLarge { bytes: 101, max: 100 }));
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("101 bytes") && message.contains("limits.max_txn_bytes"), "{message}");
    assert_eq!(h.state.revision(), revision, "nothing applied");
}

#[test]
fn set_limits_applies_to_later_commands_and_keeps_what_is_there() {
    let mut h = Harness::new(Limits::default());
    assert!(h.cmd(create(&deep(1))).is_ok());
    assert!(h.cmd(create(&deep(2))).is_ok());
    let revision = h.state.revision();
    let tight = Limits { max_path_depth: 1, ..Limits::default() };
    // Applied without the harness: a node over the new limits is what this test keeps,
    // and the invariants hold every node to the limits in force.
    let ctx = ApplyContext { index: 10, time_ms: 1_000, term: 1 };
    let set = h.state.apply(Request::new(Command::SetLimits { limits: tight.clone() }), &ctx);
    assert_eq!(set.response.outcome, Ok(Output::LimitsSet));
    assert!(set.events.is_empty());
    assert_eq!(h.state.limits(), &tight);
    assert_eq!(h.state.revision(), revision, "the namespace did not change");
    assert!(h.state.tree().contains(&deep(2)), "existing nodes are kept");
    let deeper = h.state.apply(Request::new(create("/x/y")), &ctx).response.outcome;
    assert!(matches!(
        deeper,
        Err(CoreError::InvalidPath { rule: PathRule::TooDeep { depth: 2, max: 1 }, .. })
    ));
    // The limits are in the persisted meta and the snapshot.
    assert_eq!(h.state.meta().limits, tight);
    let bytes = h.state.snapshot().unwrap_or_default();
    assert_eq!(State::restore(&bytes).map(|s| s.limits().clone()), Ok(tight));
}
