//! Counting holders and waiters by kind, through `State::apply`.

use bytes::Bytes;

use super::*;
use crate::command::{AcquireOptions, Command, Request};
use crate::ids::{ApplyContext, SessionId};
use crate::node::CreateMode;
use crate::queue::{LockKind, WaitMode};
use crate::response::Output;

struct Harness {
    state: State,
    index: u64,
}

impl Harness {
    fn ok(&mut self, session: Option<SessionId>, command: Command) -> Output {
        self.index += 1;
        let ctx = ApplyContext { index: self.index, time_ms: 1_000 + self.index, term: 1 };
        let applied = self.state.apply(Request { session, id: None, command }, &ctx);
        applied.response.outcome.unwrap_or_else(|e| panic!("{e}"))
    }

    fn open(&mut self) -> SessionId {
        match self.ok(None, Command::OpenSession { ttl_ms: 5_000, identity: "c".into() }) {
            Output::SessionOpened { id, .. } => id,
            other => panic!("{other:?}"),
        }
    }

    fn acquire(&mut self, s: SessionId, path: &str, kind: LockKind, mode: WaitMode) {
        let command = Command::Acquire {
            path: path.into(),
            kind,
            mode,
            delay_ms: 0,
            options: AcquireOptions::default(),
        };
        self.ok(Some(s), command);
    }

    /// (holders, waiters) of `kind`.
    fn of(&self, kind: &str) -> (u64, u64) {
        let counts = count(&self.state);
        assert_eq!(counts.iter().map(|c| c.kind).collect::<Vec<_>>(), KINDS);
        let c = counts.iter().find(|c| c.kind == kind).unwrap_or_else(|| panic!("{kind}"));
        (c.holders, c.waiters)
    }
}

#[test]
fn counts_holders_and_waiters_by_kind() {
    let mut h = Harness { state: State::default(), index: 0 };
    assert!(count(&h.state).iter().all(|c| c.holders == 0 && c.waiters == 0));
    let [a, b, c] = [h.open(), h.open(), h.open()];
    for s in [a, b, c] {
        h.acquire(s, "/m", LockKind::Mutex, WaitMode::Exclusive);
    }
    assert_eq!(h.of("mutex"), (1, 2));
    let semaphore = LockKind::Semaphore { permits: 2 };
    h.acquire(a, "/s", semaphore, WaitMode::Permits(1));
    h.acquire(b, "/s", semaphore, WaitMode::Permits(1));
    h.acquire(c, "/s", semaphore, WaitMode::Permits(2));
    assert_eq!(h.of("semaphore"), (2, 1));
    h.acquire(a, "/rw", LockKind::ReadWrite, WaitMode::Shared);
    h.acquire(b, "/rw", LockKind::ReadWrite, WaitMode::Shared);
    assert_eq!(h.of("rwlock"), (2, 0));
    for s in [a, b] {
        h.ok(Some(s), Command::Campaign { path: "/e".into(), value: Bytes::from_static(b"v") });
    }
    assert_eq!(h.of("election"), (1, 1));
    h.ok(Some(a), Command::EnterBarrier { path: "/d".into(), count: 2 });
    assert_eq!(h.of("double_barrier"), (0, 1));
    assert_eq!(h.of("barrier"), (0, 0));

    // An ephemeral node named like a waiter, under a node that is not a queue, is not one.
    let plain = CreateMode::PERSISTENT;
    h.ok(None, Command::Create { path: "/p".into(), data: Bytes::new(), mode: plain });
    let create = Command::Create {
        path: "/p/w-0000000001".into(),
        data: Bytes::from_static(b"mode=exclusive token=3"),
        mode: CreateMode::EPHEMERAL,
    };
    h.ok(Some(c), create);
    assert_eq!(h.of("mutex"), (1, 2));

    // A session that ends leaves every queue: its holds and waits are no longer counted.
    h.ok(None, Command::CloseSession { id: a });
    assert_eq!(h.of("mutex"), (1, 1), "b now holds the mutex, c waits");
    assert_eq!(h.of("semaphore"), (1, 1), "b holds one permit, c still waits for two");
    assert_eq!(h.of("election"), (1, 0));
    assert_eq!(h.of("double_barrier"), (0, 0));
}
