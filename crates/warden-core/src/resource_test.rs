//! Resource kinds and rotation through `State::apply`, with the invariants (no id held in
//! two versions) checked after every step.

use crate::command::{Command, HoldRef, Request};
use crate::error::CoreError;
use crate::ids::{ApplyContext, SessionId};
use crate::invariants;
use crate::node::CreateMode;
use crate::queue::{LockKind, WaitMode};
use crate::resource::WhileDraining;
use crate::response::Output;
use crate::state::State;

struct Harness {
    state: State,
    index: u64,
    time_ms: u64,
}

impl Harness {
    fn new() -> Self {
        Harness { state: State::default(), index: 0, time_ms: 1_000 }
    }

    fn run(&mut self, session: Option<SessionId>, command: Command) -> Result<Output, CoreError> {
        self.index += 1;
        self.time_ms += 1;
        let ctx = ApplyContext { index: self.index, time_ms: self.time_ms, term: 1 };
        let applied = self.state.apply(Request { session, id: None, command }, &ctx);
        let broken = invariants::violations(&self.state);
        assert!(broken.is_empty(), "invariants broken: {broken:?}");
        applied.response.outcome
    }

    fn open(&mut self) -> SessionId {
        match self.run(None, Command::OpenSession { ttl_ms: 5_000, identity: "c".into() }) {
            Ok(Output::SessionOpened { id, .. }) => id,
            other => panic!("{other:?}"),
        }
    }

    /// Locks `id` of /orders: (waiter, token).
    fn lock(
        &mut self,
        s: SessionId,
        id: &str,
        draining: WhileDraining,
    ) -> Result<(String, Option<u64>), CoreError> {
        self.lock_with(s, id, draining, 0)
    }

    fn lock_with(
        &mut self,
        s: SessionId,
        id: &str,
        draining: WhileDraining,
        delay_ms: u64,
    ) -> Result<(String, Option<u64>), CoreError> {
        let command = Command::AcquireResource {
            path: "/orders".into(),
            id: id.into(),
            kind: LockKind::Mutex,
            mode: WaitMode::Exclusive,
            delay_ms,
            draining,
        };
        match self.run(Some(s), command)? {
            Output::LockQueued { waiter, token, .. } => Ok((waiter, token)),
            other => panic!("{other:?}"),
        }
    }

    fn release(&mut self, s: SessionId, lock: &str) {
        let command = Command::Release { path: lock.into(), hold: HoldRef::Any };
        self.run(Some(s), command).unwrap_or_else(|e| panic!("{e}"));
    }

    fn version(&self) -> (String, Option<String>) {
        let view = self.state.resource("/orders").unwrap_or_else(|e| panic!("{e}"));
        (view.state.version, view.state.to)
    }

    fn begin(&mut self, to: &str) -> Output {
        self.run(None, Command::BeginRotation { path: "/orders".into(), to: to.into() })
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn init(h: &mut Harness, version: &str) -> Result<Output, CoreError> {
    h.run(None, Command::InitResource { path: "/orders".into(), version: version.into() })
}

#[test]
fn an_acquire_picks_the_version_and_a_rotation_switches_when_the_old_one_empties() {
    let mut h = Harness::new();
    assert_eq!(
        init(&mut h, "v1"),
        Ok(Output::ResourceInitialized { created: true, version: "v1".into() })
    );
    assert_eq!(
        init(&mut h, "v9"),
        Ok(Output::ResourceInitialized { created: false, version: "v1".into() })
    );
    let (s1, s2, s3, s4) = (h.open(), h.open(), h.open(), h.open());
    let (w1, t1) = h.lock(s1, "a", WhileDraining::Wait).unwrap_or_else(|e| panic!("{e}"));
    assert!(w1.starts_with("/orders/v1/a/w-"), "{w1}");
    let t1 = t1.unwrap_or_else(|| panic!("the first holds"));
    let (_, t2) = h.lock(s2, "a", WhileDraining::Wait).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t2, None, "the second waits, in v1");

    let begun = h.begin("v2");
    assert_eq!(
        begun,
        Output::Rotation { from: "v1".into(), to: "v2".into(), switched: false, revoked: 0 }
    );
    assert_eq!(h.begin("v2"), begun, "beginning again changes nothing");
    assert!(matches!(
        h.run(None, Command::BeginRotation { path: "/orders".into(), to: "v3".into() }),
        Err(CoreError::InvalidResourceRequest { .. })
    ));
    // New acquisitions queue for v2 and are not granted; or fail at once, if asked.
    let (w3, t3) = h.lock(s3, "a", WhileDraining::Wait).unwrap_or_else(|e| panic!("{e}"));
    assert!(w3.starts_with("/orders/v2/a/w-") && t3.is_none(), "{w3} {t3:?}");
    let (w4, t4) = h.lock(s4, "b", WhileDraining::Wait).unwrap_or_else(|e| panic!("{e}"));
    assert!(w4.starts_with("/orders/v2/b/w-") && t4.is_none(), "an id nobody holds waits too");
    assert!(matches!(h.lock(s4, "c", WhileDraining::Fail), Err(CoreError::Draining { .. })));
    // Asking again keeps the place, in whichever version it is.
    assert_eq!(h.lock(s1, "a", WhileDraining::Wait).map(|(w, _)| w), Ok(w1.clone()));

    // The old version drains through: s2 gets it in v1, then the switch.
    h.release(s1, "/orders/v1/a");
    let granted = h.state.lock("/orders/v1/a").map(|(_, ws)| ws[0].info.token);
    assert!(matches!(granted, Ok(Some(_))), "the v1 waiter is granted in v1");
    assert_eq!(h.version(), ("v1".into(), Some("v2".into())));
    h.release(s2, "/orders/v1/a");
    assert_eq!(h.version(), ("v2".into(), None), "the last v1 holder's release switched");
    assert!(h.state.get("/orders/v1").is_err(), "the old subtree is gone");
    let tokens: Vec<Option<u64>> = ["/orders/v2/a", "/orders/v2/b"]
        .iter()
        .map(|l| h.state.lock(l).ok().and_then(|(_, ws)| ws[0].info.token))
        .collect();
    assert!(tokens.iter().all(|t| t.is_some_and(|t| t > t1)), "{tokens:?}");
    assert_eq!(
        h.begin("v2"),
        Output::Rotation { from: "v2".into(), to: "v2".into(), switched: true, revoked: 0 }
    );
}

#[test]
fn a_rotation_of_an_idle_kind_switches_at_once_and_a_forced_one_revokes_what_is_left() {
    let mut h = Harness::new();
    init(&mut h, "v1").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        h.begin("v2"),
        Output::Rotation { from: "v1".into(), to: "v2".into(), switched: true, revoked: 0 }
    );
    let (s1, s2) = (h.open(), h.open());
    h.lock(s1, "a", WhileDraining::Wait).unwrap_or_else(|e| panic!("{e}"));
    h.lock_with(s2, "d", WhileDraining::Wait, 3_000).unwrap_or_else(|e| panic!("{e}"));
    h.begin("v3");
    let forced = h.run(None, Command::ForceRotation { path: "/orders".into() });
    // Both were revoked; the lock with a lock-delay keeps v2 until the delay ends.
    assert_eq!(
        forced,
        Ok(Output::Rotation { from: "v2".into(), to: "v3".into(), switched: false, revoked: 2 })
    );
    assert_eq!(h.version(), ("v2".into(), Some("v3".into())));
    h.time_ms += 3_000;
    h.run(None, Command::WakeLocks).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.version(), ("v3".into(), None), "the delay's end switched");
    assert!(matches!(
        h.run(None, Command::ForceRotation { path: "/orders".into() }),
        Err(CoreError::InvalidResourceRequest { .. })
    ));
}

#[test]
fn nothing_but_the_kind_writes_under_it() {
    let mut h = Harness::new();
    init(&mut h, "v1").unwrap_or_else(|e| panic!("{e}"));
    let s = h.open();
    h.lock(s, "a", WhileDraining::Wait).unwrap_or_else(|e| panic!("{e}"));
    let direct = Command::Acquire {
        path: "/orders/v1/b".into(),
        kind: LockKind::Mutex,
        mode: WaitMode::Exclusive,
        delay_ms: 0,
        options: Default::default(),
    };
    assert!(matches!(h.run(Some(s), direct), Err(CoreError::InvalidResourceRequest { .. })));
    let campaign = Command::Campaign { path: "/orders/e".into(), value: bytes::Bytes::new() };
    assert!(matches!(h.run(Some(s), campaign), Err(CoreError::InvalidResourceRequest { .. })));
    let create = Command::Create {
        path: "/orders/v1/x".into(),
        data: bytes::Bytes::new(),
        mode: CreateMode::PERSISTENT,
    };
    assert!(matches!(h.run(None, create), Err(CoreError::LockManaged { .. })));
    let set =
        Command::Set { path: "/orders".into(), data: "version=v0".into(), expected_version: None };
    assert!(matches!(h.run(None, set), Err(CoreError::LockManaged { .. })));
    for bad in ["", "a/b", "..", "."] {
        let command = Command::AcquireResource {
            path: "/orders".into(),
            id: bad.into(),
            kind: LockKind::Mutex,
            mode: WaitMode::Exclusive,
            delay_ms: 0,
            draining: WhileDraining::Wait,
        };
        assert!(
            matches!(h.run(Some(s), command), Err(CoreError::InvalidLockRequest { .. })),
            "{bad:?}"
        );
    }
    let missing = Command::BeginRotation { path: "/users".into(), to: "v2".into() };
    assert!(matches!(h.run(None, missing), Err(CoreError::NoResource { .. })));
    let nested = Command::InitResource { path: "/orders/sub".into(), version: "v1".into() };
    assert!(matches!(h.run(None, nested), Err(CoreError::LockManaged { .. })));
    // Found by the resource_request fuzz target: a kind made under a queue was read as
    // one of its waiters (a double barrier one short let it in).
    let campaign = Command::Campaign { path: "/e".into(), value: bytes::Bytes::new() };
    h.run(Some(s), campaign).unwrap_or_else(|e| panic!("{e}"));
    let under_queue = Command::InitResource { path: "/e/x".into(), version: "v1".into() };
    assert!(matches!(h.run(None, under_queue), Err(CoreError::LockManaged { .. })));
}
