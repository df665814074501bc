//! Reentrant locks through `State::apply`, with the invariants checked after every step:
//! counted acquires and releases, the owner a session's place belongs to, the end of every
//! count with a revoke, an expiry or a revoking delete, and retries answered once.

use super::{MAX_HOLDS, MAX_OWNER_BYTES};
use crate::invariants;
use crate::queue::{LockKind, Scope, WaitMode};
use crate::recipe::WaiterView;
use crate::{
    AcquireOptions, Applied, ApplyContext, Command, CoreError, HoldRef, Output, Request, SessionId,
    State,
};

const X: WaitMode = WaitMode::Exclusive;

struct Locks {
    state: State,
    index: u64,
}

impl Locks {
    fn new() -> Self {
        Locks { state: State::default(), index: 0 }
    }

    fn apply(&mut self, request: Request) -> Applied {
        self.index += 1;
        let ctx = ApplyContext { index: self.index, time_ms: 1_000 + self.index, term: 1 };
        let applied = self.state.apply(request, &ctx);
        let broken = invariants::violations(&self.state);
        assert!(broken.is_empty(), "invariants broken: {broken:?}");
        applied
    }

    fn run(&mut self, request: Request) -> Result<Output, CoreError> {
        self.apply(request).response.outcome
    }

    fn open(&mut self) -> SessionId {
        let open = Command::OpenSession { ttl_ms: 10_000, identity: String::new() };
        match self.run(Request::new(open)) {
            Ok(Output::SessionOpened { id, .. }) => id,
            other => panic!("{other:?}"),
        }
    }

    /// The token of an acquire of `path` by `s` as `owner` (None while it waits).
    fn acquire(
        &mut self,
        s: SessionId,
        path: &str,
        kind: LockKind,
        mode: WaitMode,
        owner: Option<&str>,
    ) -> Result<Option<u64>, CoreError> {
        self.run(Request::in_session(s, acquire(path, kind, mode, owner))).map(|o| match o {
            Output::LockQueued { token, .. } => token,
            other => panic!("{other:?}"),
        })
    }

    fn mutex(&mut self, s: SessionId, path: &str, owner: Option<&str>) -> Option<u64> {
        match self.acquire(s, path, LockKind::Mutex, X, owner) {
            Ok(token) => token,
            Err(e) => panic!("acquire: {e}"),
        }
    }

    fn release(&mut self, s: SessionId, path: &str, hold: HoldRef) -> Result<Output, CoreError> {
        self.run(Request::in_session(s, Command::Release { path: path.into(), hold }))
    }

    fn waiters(&self, path: &str) -> Vec<WaiterView> {
        self.state.lock(path).map(|(_, ws)| ws).unwrap_or_default()
    }

    /// `s`'s place in `path`: its token and count.
    fn place(&self, s: SessionId, path: &str) -> Option<(Option<u64>, u32)> {
        let ws = self.waiters(path);
        ws.iter().find(|w| w.session == s).map(|w| (w.info.token, w.info.holds))
    }
}

fn acquire(path: &str, kind: LockKind, mode: WaitMode, owner: Option<&str>) -> Command {
    let options = AcquireOptions { owner: owner.map(str::to_owned), ..Default::default() };
    Command::Acquire { path: path.into(), kind, mode, delay_ms: 0, options }
}

fn released(held: bool, remaining: u32) -> Result<Output, CoreError> {
    Ok(Output::LockReleased { held, remaining })
}

#[test]
fn a_hold_counts_its_owners_acquires_and_ends_with_the_last_release() {
    let mut l = Locks::new();
    let (a, b) = (l.open(), l.open());
    let token = l.mutex(a, "/r", Some("task-7"));
    assert!(token.is_some());
    let waiter = l.waiters("/r")[0].path.clone();
    for count in 2..=3 {
        let again =
            l.run(Request::in_session(a, acquire("/r", LockKind::Mutex, X, Some("task-7"))));
        assert_eq!(again, Ok(Output::LockQueued { waiter: waiter.clone(), token, position: 0 }));
        assert_eq!(l.place(a, "/r"), Some((token, count)));
    }
    assert_eq!(l.mutex(b, "/r", None), None, "another session waits");
    let info = &l.waiters("/r")[0].info;
    assert_eq!((info.owner.as_deref(), info.holds), (Some("task-7"), 3));

    // Two releases (by token, then of whatever the session has) leave it held.
    let by_token = HoldRef::Token(token.unwrap_or_default());
    assert_eq!(l.release(a, "/r", by_token.clone()), released(true, 2));
    assert_eq!(l.release(a, "/r", HoldRef::Any), released(true, 1));
    assert_eq!(l.place(a, "/r"), Some((token, 1)));
    assert_eq!(l.place(b, "/r"), Some((None, 1)), "granted before the count reached 0");
    // The third ends it, and the other session holds.
    assert_eq!(l.release(a, "/r", by_token.clone()), released(true, 0));
    assert_eq!(l.place(a, "/r"), None);
    assert!(l.place(b, "/r").is_some_and(|(t, _)| t > token));
    // Nothing is left to release: no count goes below zero.
    assert!(matches!(l.release(a, "/r", by_token), Err(CoreError::HoldEnded { .. })));
    assert!(matches!(l.release(a, "/r", HoldRef::Any), Err(CoreError::NotHeld { .. })));
}

#[test]
fn another_owner_of_the_session_or_none_is_refused_and_nothing_changes() {
    let mut l = Locks::new();
    let (a, b) = (l.open(), l.open());
    l.mutex(a, "/r", Some("t1"));
    l.mutex(b, "/r", Some("t1"));
    let refusals = [
        (a, Some("t2"), true, Some("t1"), "holds"),
        (a, None, true, Some("t1"), "holds"),
        (b, Some("t2"), false, Some("t1"), "waits for"),
    ];
    for (s, asked, granted, held, what) in refusals {
        let revision = l.state.revision();
        let applied = l.apply(Request::in_session(s, acquire("/r", LockKind::Mutex, X, asked)));
        let expected = CoreError::OtherOwner {
            path: "/r".into(),
            session: s,
            granted,
            held: held.map(str::to_owned),
            asked: asked.map(str::to_owned),
        };
        assert_eq!(applied.response.outcome.as_ref(), Err(&expected));
        let text = expected.to_string();
        assert!(text.contains(what) && text.contains("\"t1\""), "{text}");
        assert!(applied.events.is_empty());
        assert_eq!(l.state.revision(), revision);
    }
    assert_eq!(l.place(a, "/r").map(|(_, n)| n), Some(1));
    // A place without an owner refuses an owner.
    let c = l.open();
    l.mutex(c, "/plain", None);
    let refused = l.acquire(c, "/plain", LockKind::Mutex, X, Some("t1"));
    assert!(
        matches!(&refused, Err(CoreError::OtherOwner { held: None, granted: true, .. })),
        "{refused:?}"
    );
    let text = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("without an owner"), "{text}");
    // Acquiring again without an owner is what it always was: the same hold, uncounted.
    assert!(l.mutex(c, "/plain", None).is_some());
    assert_eq!(l.place(c, "/plain").map(|(_, n)| n), Some(1));
}

#[test]
fn a_waiting_place_acquired_again_is_the_same_wait_counted_once() {
    let mut l = Locks::new();
    let (a, b) = (l.open(), l.open());
    l.mutex(a, "/r", None);
    assert_eq!(l.mutex(b, "/r", Some("t")), None);
    let revision = l.state.revision();
    assert_eq!(l.mutex(b, "/r", Some("t")), None);
    assert_eq!(l.state.revision(), revision, "a retry of the wait changes nothing");
    assert_eq!(l.place(b, "/r"), Some((None, 1)));
    assert_eq!(l.release(a, "/r", HoldRef::Any), released(true, 0));
    let (token, holds) = l.place(b, "/r").unwrap_or_default();
    assert!(token.is_some());
    assert_eq!(holds, 1, "the grant keeps the owner and the count");
    assert_eq!(l.waiters("/r")[0].info.owner.as_deref(), Some("t"));
    assert_eq!(l.release(b, "/r", HoldRef::Any), released(true, 0));
    assert!(l.state.lock("/r").is_err(), "the lock went with its last place");
}

#[test]
fn a_revoke_an_expiry_or_a_revoking_delete_ends_every_count() {
    let mut l = Locks::new();
    let (a, b) = (l.open(), l.open());
    // A revoke: the whole hold goes, and the lock-delay applies.
    let delayed = |owner| {
        let options = AcquireOptions { owner: Some(owner), ..Default::default() };
        Command::Acquire {
            path: "/r".into(),
            kind: LockKind::Mutex,
            mode: X,
            delay_ms: 500,
            options,
        }
    };
    for _ in 0..3 {
        assert!(l.run(Request::in_session(a, delayed("t".into()))).is_ok());
    }
    assert_eq!(l.place(a, "/r").map(|(_, n)| n), Some(3));
    l.mutex(b, "/r", None);
    let revoke = Command::Revoke { path: "/r".into(), session: a };
    assert_eq!(l.run(Request::new(revoke)), released(true, 0));
    assert_eq!(l.place(a, "/r"), None);
    let (config, _) = l.state.lock("/r").unwrap_or_else(|e| panic!("{e}"));
    assert!(config.blocked_until_ms > 0, "a revoked holder blocks the lock for its delay");
    assert_eq!(l.place(b, "/r"), Some((None, 1)));

    // An expiry.
    l.mutex(a, "/e", Some("t"));
    l.mutex(a, "/e", Some("t"));
    let expire = Command::ExpireSessions { ids: vec![a], term: 1 };
    assert!(l.run(Request::new(expire)).is_ok());
    assert!(l.state.lock("/e").is_err(), "the hold went with its session, every count of it");

    // A delete that revokes the locks it reaches.
    let c = l.open();
    l.mutex(c, "/d/l", Some("t"));
    l.mutex(c, "/d/l", Some("t"));
    let delete = Command::Delete {
        path: "/d".into(),
        expected_version: None,
        recursive: true,
        revoke_locks: true,
    };
    assert!(matches!(l.run(Request::new(delete)), Ok(Output::Deleted { revoked: 1, .. })));
    assert!(l.state.lock("/d/l").is_err());
    // And a close.
    l.mutex(c, "/c", Some("t"));
    l.mutex(c, "/c", Some("t"));
    assert!(l.run(Request::new(Command::CloseSession { id: c })).is_ok());
    assert!(l.state.lock("/c").is_err());
}

#[test]
fn the_servers_cancel_of_a_wait_keeps_a_counted_hold_whole() {
    let mut l = Locks::new();
    let a = l.open();
    l.mutex(a, "/r", Some("t"));
    l.mutex(a, "/r", Some("t"));
    let waiter = l.waiters("/r")[0].path.clone();
    let cancel = l.release(a, "/r", HoldRef::Wait(waiter));
    assert!(matches!(cancel, Ok(Output::LockQueued { token: Some(_), .. })), "{cancel:?}");
    assert_eq!(l.place(a, "/r").map(|(_, n)| n), Some(2));
}

#[test]
fn owners_are_one_bounded_word() {
    let mut l = Locks::new();
    let a = l.open();
    let long = "o".repeat(MAX_OWNER_BYTES + 1);
    for bad in ["", "two words", "tab\there", "line\nbreak", "a=b", "nul\0", long.as_str()] {
        let refused = l.acquire(a, "/r", LockKind::Mutex, X, Some(bad));
        assert!(
            matches!(&refused, Err(CoreError::InvalidLockRequest { .. })),
            "{bad:?}: {refused:?}"
        );
    }
    assert!(l.state.lock("/r").is_err(), "nothing was queued");
    let longest = "o".repeat(MAX_OWNER_BYTES);
    assert!(l.mutex(a, "/r", Some(&longest)).is_some());
    assert!(l.mutex(a, "/u", Some("tâche-7")).is_some(), "an owner is any one word");
    // With subtree scope and a priority as well.
    let options = AcquireOptions { scope: Scope::Subtree, priority: 3, owner: Some("t".into()) };
    let both = Command::Acquire {
        path: "/s".into(),
        kind: LockKind::Mutex,
        mode: X,
        delay_ms: 0,
        options,
    };
    assert!(matches!(l.run(Request::in_session(a, both)), Ok(Output::LockQueued { .. })));
}

#[test]
fn a_reentrant_acquire_asks_for_what_its_place_gives_at_most() {
    let mut l = Locks::new();
    let a = l.open();
    let rw = LockKind::ReadWrite;
    assert!(l.acquire(a, "/rw", rw, X, Some("t")).is_ok_and(|t| t.is_some()));
    // A writer may read again: counted.
    assert!(l.acquire(a, "/rw", rw, WaitMode::Shared, Some("t")).is_ok_and(|t| t.is_some()));
    assert_eq!(l.place(a, "/rw").map(|(_, n)| n), Some(2));
    assert!(l.acquire(a, "/ro", rw, WaitMode::Shared, Some("t")).is_ok());
    let upgrade = l.acquire(a, "/ro", rw, X, Some("t"));
    assert!(
        matches!(&upgrade, Err(CoreError::InvalidLockRequest { reason }) if reason.contains("not exclusively")),
        "{upgrade:?}"
    );
    let sem = LockKind::Semaphore { permits: 3 };
    assert!(l.acquire(a, "/s", sem, WaitMode::Permits(2), Some("t")).is_ok());
    assert!(l.acquire(a, "/s", sem, WaitMode::Permits(1), Some("t")).is_ok());
    assert_eq!(l.place(a, "/s").map(|(_, n)| n), Some(2));
    let more = l.acquire(a, "/s", sem, WaitMode::Permits(3), Some("t"));
    assert!(matches!(more, Err(CoreError::InvalidLockRequest { .. })), "{more:?}");
    assert_eq!(l.place(a, "/s").map(|(_, n)| n), Some(2));
    // Another kind than the lock's is the join's refusal, as without an owner.
    let wrong = l.acquire(a, "/s", LockKind::Mutex, X, Some("t"));
    assert!(matches!(wrong, Err(CoreError::InvalidLockRequest { .. })), "{wrong:?}");
}

#[test]
fn a_hold_counts_at_most_max_holds() {
    let mut l = Locks::new();
    let a = l.open();
    for _ in 0..MAX_HOLDS {
        l.mutex(a, "/r", Some("t"));
    }
    assert_eq!(l.place(a, "/r").map(|(_, n)| n), Some(MAX_HOLDS));
    let refused = l.acquire(a, "/r", LockKind::Mutex, X, Some("t"));
    assert_eq!(
        refused,
        Err(CoreError::TooManyHolds {
            path: "/r".into(),
            session: a,
            owner: "t".into(),
            max: MAX_HOLDS
        })
    );
    assert_eq!(l.place(a, "/r").map(|(_, n)| n), Some(MAX_HOLDS));
    assert_eq!(l.release(a, "/r", HoldRef::Any), released(true, MAX_HOLDS - 1));
}

#[test]
fn a_retried_request_is_answered_once_and_counts_once() {
    let mut l = Locks::new();
    let a = l.open();
    let take =
        |seq| Request::in_session(a, acquire("/r", LockKind::Mutex, X, Some("t"))).with_id(seq, 1);
    let first = l.run(take(1));
    assert_eq!(l.run(take(1)), first);
    let second = l.run(take(2));
    assert_eq!(l.run(take(2)), second);
    assert_eq!(l.place(a, "/r").map(|(_, n)| n), Some(2));
    let give = |seq| {
        Request::in_session(a, Command::Release { path: "/r".into(), hold: HoldRef::Any })
            .with_id(seq, 1)
    };
    assert_eq!(l.run(give(3)), released(true, 1));
    assert_eq!(l.run(give(3)), released(true, 1), "the retry is the first answer");
    assert_eq!(l.place(a, "/r").map(|(_, n)| n), Some(1));
    // Without an id, each acquire counts: that is what the id is for.
    l.mutex(a, "/r", Some("t"));
    l.mutex(a, "/r", Some("t"));
    assert_eq!(l.place(a, "/r").map(|(_, n)| n), Some(3));
}

#[test]
fn the_invariants_catch_a_count_without_an_owner_or_a_grant() {
    let mut l = Locks::new();
    let (a, b) = (l.open(), l.open());
    l.mutex(a, "/r", Some("t"));
    l.mutex(b, "/r", Some("t"));
    let tampered = |path: &str, header: &[u8]| {
        let nodes = l.state.tree().iter().map(|(p, n)| {
            let mut n = n.clone();
            if p == path {
                n.data = bytes::Bytes::copy_from_slice(header);
            }
            (p.to_owned(), n)
        });
        let state =
            State::from_parts(l.state.meta(), nodes, l.state.sessions().cloned(), Vec::new());
        invariants::violations(&state)
    };
    let ws = l.waiters("/r");
    let (holder, waiter) = (ws[0].path.clone(), ws[1].path.clone());
    let token = ws[0].info.token.unwrap_or_default();
    assert!(
        tampered(&holder, format!("mode=exclusive token={token} owner=t holds=2").as_bytes())
            .is_empty()
    );
    for (path, header) in [
        (&holder, format!("mode=exclusive token={token} holds=2")),
        (&waiter, "mode=exclusive owner=t holds=2".to_owned()),
        (&holder, format!("mode=exclusive token={token} owner=t holds={}", MAX_HOLDS + 1)),
        (&holder, format!("mode=exclusive token={token} owner=a\u{7} holds=1")),
    ] {
        assert!(!tampered(path, header.as_bytes()).is_empty(), "{header}");
    }
}
