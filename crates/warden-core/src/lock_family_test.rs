//! Hierarchical locks and priorities, case by case through `State::apply`; the random
//! sequences against a brute-force model are in tests/it/hierarchy.rs.

use crate::command::{AcquireOptions, Command, HoldRef, Request};
use crate::error::CoreError;
use crate::ids::{ApplyContext, SessionId};
use crate::invariants;
use crate::queue::{LockKind, Scope, WaitMode};
use crate::response::Output;
use crate::state::State;

use WaitMode::{Exclusive as X, Shared as S};

struct Locks {
    state: State,
    index: u64,
    time_ms: u64,
}

impl Locks {
    fn new() -> Locks {
        Locks { state: State::default(), index: 0, time_ms: 1_000_000 }
    }

    fn run(&mut self, session: Option<SessionId>, command: Command) -> Result<Output, CoreError> {
        self.index += 1;
        self.time_ms += 1;
        let ctx = ApplyContext { index: self.index, time_ms: self.time_ms, term: 1 };
        let request = Request { session, id: None, command };
        let outcome = self.state.apply(request, &ctx).response.outcome;
        let broken = invariants::violations(&self.state);
        assert!(broken.is_empty(), "invariants broken: {broken:?}");
        outcome
    }

    fn open(&mut self) -> SessionId {
        match self.run(None, Command::OpenSession { ttl_ms: 10_000, identity: String::new() }) {
            Ok(Output::SessionOpened { id, .. }) => id,
            other => panic!("{other:?}"),
        }
    }

    /// Acquires; `Ok(true)` if granted at once.
    fn take(
        &mut self,
        s: SessionId,
        path: &str,
        kind: LockKind,
        mode: WaitMode,
        scope: Scope,
        priority: u32,
    ) -> Result<bool, CoreError> {
        let options = AcquireOptions { scope, priority, owner: None };
        let command = Command::Acquire { path: path.into(), kind, mode, delay_ms: 0, options };
        self.run(Some(s), command).map(|o| match o {
            Output::LockQueued { token, .. } => token.is_some(),
            other => panic!("{other:?}"),
        })
    }

    fn subtree(&mut self, s: SessionId, path: &str, mode: WaitMode) -> bool {
        self.take(s, path, LockKind::ReadWrite, mode, Scope::Subtree, 0)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn node(&mut self, s: SessionId, path: &str, mode: WaitMode) -> bool {
        self.take(s, path, LockKind::ReadWrite, mode, Scope::Node, 0)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn mutex(&mut self, s: SessionId, path: &str, priority: u32) -> bool {
        self.take(s, path, LockKind::Mutex, X, Scope::Node, priority)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn release(&mut self, s: SessionId, path: &str) {
        let release = Command::Release { path: path.into(), hold: HoldRef::Any };
        if let Err(e) = self.run(Some(s), release) {
            panic!("{e}");
        }
    }

    fn holders(&self, path: &str) -> Vec<SessionId> {
        let (_, ws) = self.state.lock(path).unwrap_or_else(|e| panic!("{e}"));
        ws.iter().filter(|w| w.info.token.is_some()).map(|w| w.session).collect()
    }
}

#[test]
fn a_subtree_writer_waits_for_the_locks_below_and_then_covers_them() {
    let mut l = Locks::new();
    let (a, b, c) = (l.open(), l.open(), l.open());
    assert!(l.node(a, "/t/x", X));
    assert!(!l.subtree(b, "/t", X), "a lock below is held");
    l.release(a, "/t/x");
    assert_eq!(l.holders("/t"), [b]);
    assert!(!l.node(c, "/t/x/y", S), "a reader below a subtree writer waits");
    l.release(b, "/t");
    assert_eq!(l.holders("/t/x/y"), [c]);
}

#[test]
fn a_node_scope_hold_covers_its_own_path_only() {
    let mut l = Locks::new();
    let (a, b) = (l.open(), l.open());
    assert!(l.node(a, "/t", X));
    assert!(l.node(b, "/t/x", X), "a plain hold above does not cover what is below");
}

#[test]
fn readers_share_a_subtree_and_writers_below_wait_for_them() {
    let mut l = Locks::new();
    let (a, b, c) = (l.open(), l.open(), l.open());
    assert!(l.subtree(a, "/t", S));
    assert!(l.node(b, "/t/x", S), "readers share across locks");
    assert!(!l.node(c, "/t/y", X), "a writer below a subtree reader waits");
    l.release(a, "/t");
    assert_eq!(l.holders("/t/y"), [c]);
}

#[test]
fn nobody_passes_a_conflicting_earlier_request_in_another_lock() {
    let mut l = Locks::new();
    let (a, b, c) = (l.open(), l.open(), l.open());
    assert!(l.node(a, "/t/x", X));
    assert!(!l.subtree(b, "/t", X));
    // /t/y is free, but b asked first for a subtree that covers it: c waits behind b.
    assert!(!l.node(c, "/t/y", X));
    l.release(a, "/t/x");
    assert_eq!(l.holders("/t"), [b]);
    assert!(l.holders("/t/y").is_empty());
    l.release(b, "/t");
    assert_eq!(l.holders("/t/y"), [c]);
}

#[test]
fn a_session_may_lock_below_its_own_subtree_hold() {
    let mut l = Locks::new();
    let (a, b) = (l.open(), l.open());
    assert!(l.subtree(a, "/t", X));
    assert!(l.node(a, "/t/x", X), "its own subtree hold does not keep it out");
    assert!(!l.node(b, "/t/z", S));
}

#[test]
fn a_path_holding_only_locks_becomes_a_lock_and_goes_with_them() {
    let mut l = Locks::new();
    let (a, b) = (l.open(), l.open());
    assert!(l.node(a, "/t/x/y", X));
    assert!(!l.subtree(b, "/t/x", X), "the container /t/x becomes a lock");
    l.release(a, "/t/x/y");
    l.release(b, "/t/x");
    assert!(l.state.get("/t").is_err(), "everything went with the last waiter");
}

#[test]
fn a_deadlock_across_the_hierarchy_is_refused() {
    let mut l = Locks::new();
    let (a, b) = (l.open(), l.open());
    assert!(l.node(a, "/t/x", X));
    assert!(l.node(b, "/u", X));
    assert!(!l.subtree(b, "/t", X), "b waits for a's lock below");
    let closing = l.take(a, "/u", LockKind::ReadWrite, X, Scope::Node, 0);
    assert!(matches!(closing, Err(CoreError::Deadlock { .. })), "{closing:?}");
}

#[test]
fn higher_priorities_go_first_and_first_come_first_served_within_one() {
    let mut l = Locks::new();
    let (a, b, c, d) = (l.open(), l.open(), l.open(), l.open());
    assert!(l.mutex(a, "/p", 0));
    assert!(!l.mutex(b, "/p", 0));
    assert!(!l.mutex(c, "/p", 5));
    assert!(!l.mutex(d, "/p", 5));
    l.release(a, "/p");
    assert_eq!(l.holders("/p"), [c]);
    l.release(c, "/p");
    assert_eq!(l.holders("/p"), [d]);
    l.release(d, "/p");
    assert_eq!(l.holders("/p"), [b]);
}

#[test]
fn a_waiter_ages_past_later_requests_of_a_higher_priority() {
    let mut l = Locks::new();
    let (a, b, c) = (l.open(), l.open(), l.open());
    assert!(l.mutex(a, "/p", 0));
    assert!(!l.mutex(b, "/p", 3));
    // b has waited longer than (10 - 3) s of aging when c asks with the highest priority.
    l.time_ms += super::overtaking_window_ms(3) + 1;
    assert!(!l.mutex(c, "/p", crate::queue::MAX_PRIORITY));
    l.release(a, "/p");
    assert_eq!(l.holders("/p"), [b]);
}

#[test]
fn scope_and_priority_are_checked() {
    let mut l = Locks::new();
    let a = l.open();
    let sem = LockKind::Semaphore { permits: 2 };
    let subtree = l.take(a, "/s", sem, WaitMode::Permits(1), Scope::Subtree, 0);
    assert!(matches!(subtree, Err(CoreError::InvalidLockRequest { .. })), "{subtree:?}");
    let high = l.take(a, "/m", LockKind::Mutex, X, Scope::Node, 11);
    assert!(matches!(high, Err(CoreError::InvalidLockRequest { .. })), "{high:?}");
    let waiter_like = l.take(a, "/m/w-0000000001/x", LockKind::Mutex, X, Scope::Node, 0);
    assert!(matches!(waiter_like, Err(CoreError::InvalidLockRequest { .. })), "{waiter_like:?}");
}
