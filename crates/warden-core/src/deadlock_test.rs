//! Sessions crossing locks: the acquire that closes a cycle is refused and changes nothing,
//! the other waits proceed once a holder lets go.

use super::CycleStep;
use crate::invariants;
use crate::queue::{LockKind, WaitMode};
use crate::{ApplyContext, Command, CoreError, HoldRef, Output, Request, SessionId, State};

const X: WaitMode = WaitMode::Exclusive;

struct Locks {
    state: State,
    index: u64,
}

impl Locks {
    fn new() -> Self {
        Locks { state: State::default(), index: 0 }
    }

    fn run(&mut self, request: Request) -> Result<Output, CoreError> {
        self.index += 1;
        let ctx = ApplyContext { index: self.index, time_ms: 1_000 + self.index, term: 1 };
        let outcome = self.state.apply(request, &ctx).response.outcome;
        let broken = invariants::violations(&self.state);
        assert!(broken.is_empty(), "invariants broken: {broken:?}");
        outcome
    }

    fn open(&mut self, identity: &str) -> SessionId {
        let open = Command::OpenSession { ttl_ms: 10_000, identity: identity.into() };
        match self.run(Request::new(open)) {
            Ok(Output::SessionOpened { id, .. }) => id,
            other => panic!("{other:?}"),
        }
    }

    fn acquire_as(
        &mut self,
        s: SessionId,
        path: &str,
        kind: LockKind,
        mode: WaitMode,
    ) -> Result<Option<u64>, CoreError> {
        let command = Command::Acquire {
            path: path.into(),
            kind,
            mode,
            delay_ms: 0,
            options: Default::default(),
        };
        self.run(Request::in_session(s, command)).map(|o| match o {
            Output::LockQueued { token, .. } => token,
            other => panic!("{other:?}"),
        })
    }

    /// A mutex acquire: whether it was granted at once.
    fn acquire(&mut self, s: SessionId, path: &str) -> Result<bool, CoreError> {
        self.acquire_as(s, path, LockKind::Mutex, X).map(|t| t.is_some())
    }

    fn release(&mut self, s: SessionId, path: &str) {
        let release = Command::Release { path: path.into(), hold: HoldRef::Any };
        assert!(self.run(Request::in_session(s, release)).is_ok());
    }

    fn holders(&self, path: &str) -> Vec<SessionId> {
        let (_, ws) = self.state.lock(path).unwrap_or_else(|e| panic!("{e}"));
        ws.iter().filter(|w| w.info.token.is_some()).map(|w| w.session).collect()
    }

    fn queue(&self, path: &str) -> Vec<SessionId> {
        self.state
            .lock(path)
            .map(|(_, ws)| ws.iter().map(|w| w.session).collect())
            .unwrap_or_default()
    }
}

fn step(session: SessionId, identity: &str, path: &str) -> CycleStep {
    CycleStep { session, identity: identity.into(), path: path.into() }
}

#[test]
fn two_sessions_crossing_two_mutexes() {
    let mut l = Locks::new();
    let (a, b) = (l.open("alice"), l.open("bob"));
    assert_eq!(l.acquire(a, "/x"), Ok(true));
    assert_eq!(l.acquire(b, "/y"), Ok(true));
    assert_eq!(l.acquire(a, "/y"), Ok(false), "alice waits for bob");
    let before = l.state.snapshot();
    let revision = l.state.revision();
    let refused = l.acquire(b, "/x");
    assert_eq!(
        refused,
        Err(CoreError::Deadlock { cycle: vec![step(b, "bob", "/x"), step(a, "alice", "/y")] })
    );
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains(&format!(
            "session {b} (\"bob\") waits for \"/x\" behind session {a} (\"alice\"); session {a} (\"alice\") waits for \"/y\" behind session {b} (\"bob\")"
        )),
        "{message}"
    );
    assert!(message.starts_with("acquiring \"/x\" would deadlock"), "{message}");
    // Nothing changed: no waiter left behind, no revision used.
    assert_eq!(l.state.revision(), revision);
    assert_eq!(l.state.snapshot(), before);
    assert_eq!(l.queue("/x"), [a]);
    // The other wait proceeds when its holder lets go.
    l.release(b, "/y");
    assert_eq!(l.holders("/y"), [a]);
    // And bob may now wait for /x: the cycle is gone.
    assert_eq!(l.acquire(b, "/x"), Ok(false));
    l.release(a, "/x");
    assert_eq!(l.holders("/x"), [b]);
}

#[test]
fn three_sessions_crossing_three_mutexes() {
    let mut l = Locks::new();
    let (a, b, c) = (l.open("a"), l.open(""), l.open("c"));
    for (s, p) in [(a, "/l/1"), (b, "/l/2"), (c, "/l/3")] {
        assert_eq!(l.acquire(s, p), Ok(true));
    }
    assert_eq!(l.acquire(a, "/l/2"), Ok(false));
    assert_eq!(l.acquire(b, "/l/3"), Ok(false));
    let refused = l.acquire(c, "/l/1");
    assert_eq!(
        refused,
        Err(CoreError::Deadlock {
            cycle: vec![step(c, "c", "/l/1"), step(a, "a", "/l/2"), step(b, "", "/l/3")]
        })
    );
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains(&format!("session {b} (anonymous)")), "{message}");
    assert_eq!(l.queue("/l/1"), [a]);
    // c gives up its lock: b gets it, then a gets b's once b lets go.
    l.release(c, "/l/3");
    assert_eq!(l.holders("/l/3"), [b]);
    l.release(b, "/l/2");
    assert_eq!(l.holders("/l/2"), [a]);
}

#[test]
fn a_session_waits_for_earlier_waiters_too() {
    let mut l = Locks::new();
    let (a, b, c) = (l.open("a"), l.open("b"), l.open("c"));
    assert_eq!(l.acquire(a, "/x"), Ok(true));
    assert_eq!(l.acquire(b, "/x"), Ok(false));
    assert_eq!(l.acquire(b, "/y"), Ok(true));
    // c waits behind a and b in /x: a wait of b's for c would close b -> c -> b.
    assert_eq!(l.acquire(c, "/x"), Ok(false));
    assert_eq!(l.acquire(c, "/z"), Ok(true));
    let refused = l.acquire(b, "/z");
    assert_eq!(
        refused,
        Err(CoreError::Deadlock { cycle: vec![step(b, "b", "/z"), step(c, "c", "/x")] })
    );
    // Acquiring a lock it already waits for returns the same place, with no new edge.
    assert_eq!(l.acquire(c, "/x"), Ok(false));
    assert_eq!(l.queue("/x"), [a, b, c]);
}

#[test]
fn readers_that_share_do_not_wait_and_writers_do() {
    let mut l = Locks::new();
    let (a, b) = (l.open("a"), l.open("b"));
    let rw = LockKind::ReadWrite;
    assert!(l.acquire_as(a, "/rw", rw, WaitMode::Shared).is_ok_and(|t| t.is_some()));
    assert_eq!(l.acquire(b, "/m"), Ok(true));
    assert_eq!(l.acquire(a, "/m"), Ok(false), "a waits for b");
    // A second reader is granted at once: no wait, no cycle.
    assert!(l.acquire_as(b, "/rw", rw, WaitMode::Shared).is_ok_and(|t| t.is_some()));
    l.release(b, "/rw");
    // A writer waits for the reader a, which waits for b.
    assert!(matches!(l.acquire_as(b, "/rw", rw, X), Err(CoreError::Deadlock { .. })));
    assert_eq!(l.queue("/rw"), [a]);
}

#[test]
fn a_semaphore_waiter_waits_for_every_permit_holder() {
    let mut l = Locks::new();
    let (a, b, c) = (l.open("a"), l.open("b"), l.open("c"));
    let sem = LockKind::Semaphore { permits: 2 };
    for s in [a, b] {
        assert!(l.acquire_as(s, "/s", sem, WaitMode::Permits(1)).is_ok_and(|t| t.is_some()));
    }
    assert_eq!(l.acquire(c, "/m"), Ok(true));
    assert_eq!(l.acquire(b, "/m"), Ok(false));
    let refused = l.acquire_as(c, "/s", sem, WaitMode::Permits(1));
    assert_eq!(
        refused,
        Err(CoreError::Deadlock { cycle: vec![step(c, "c", "/s"), step(b, "b", "/m")] })
    );
    // a alone is no cycle: once b leaves the semaphore, c may wait behind a.
    l.release(b, "/s");
    assert!(l.acquire_as(c, "/s", sem, WaitMode::Permits(2)).is_ok_and(|t| t.is_none()));
    l.release(a, "/s");
    assert_eq!(l.holders("/s"), [c]);
}

#[test]
fn elections_are_not_part_of_the_graph() {
    let mut l = Locks::new();
    let (a, b) = (l.open("a"), l.open("b"));
    let campaign = |path: &str| Command::Campaign { path: path.into(), value: "v".into() };
    assert!(l.run(Request::in_session(a, campaign("/e"))).is_ok());
    assert!(l.run(Request::in_session(b, campaign("/e"))).is_ok());
    assert_eq!(l.acquire(b, "/m"), Ok(true));
    // b waits to lead behind a, but that is no lock: a may wait for b's lock.
    assert_eq!(l.acquire(a, "/m"), Ok(false));
}

#[test]
fn a_refused_acquire_makes_no_event() {
    let mut l = Locks::new();
    let (a, b) = (l.open("a"), l.open("b"));
    l.acquire(a, "/x").ok();
    l.acquire(b, "/y").ok();
    l.acquire(a, "/y").ok();
    l.index += 1;
    let ctx = ApplyContext { index: l.index, time_ms: 5_000, term: 1 };
    let acquire = Command::Acquire {
        path: "/x".into(),
        kind: LockKind::Mutex,
        mode: X,
        delay_ms: 0,
        options: Default::default(),
    };
    let applied = l.state.apply(Request::in_session(b, acquire), &ctx);
    assert!(matches!(applied.response.outcome, Err(CoreError::Deadlock { .. })));
    assert!(applied.events.is_empty());
}

#[test]
fn a_search_reads_each_queue_once() {
    // 200 sessions wait in one lock, behind its holder, and each also holds a lock of its
    // own that nobody waits for: a new waiter reaches all of them.
    let mut l = Locks::new();
    let holder = l.open("h");
    assert_eq!(l.acquire(holder, "/q"), Ok(true));
    let mut waiting = Vec::new();
    for i in 0..200 {
        let s = l.open("w");
        assert_eq!(l.acquire(s, &format!("/own/{i}")), Ok(true));
        assert_eq!(l.acquire(s, "/q"), Ok(false));
        waiting.push(s);
    }
    let last = l.open("z");
    assert_eq!(l.acquire(last, "/q"), Ok(false));
    let (_, ws) = l.state.lock("/q").unwrap_or_else(|e| panic!("{e}"));
    let waiter = ws.last().map(|w| w.path.clone()).unwrap_or_default();
    let tree = l.state.tree();
    let s = super::search(tree, last, "/q", &waiter);
    assert!(s.cycle().is_none() && !s.reached.contains_key(&last));
    assert_eq!(s.reached.len(), 201, "the holder and every waiter ahead");
    // Each waiter of /q read once: not once more for every waiter ahead (that would be
    // about 200 * 200 / 2).
    assert_eq!(s.waiters_read, 201);
}
