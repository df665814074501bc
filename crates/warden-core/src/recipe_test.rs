//! Elections and barriers through `State::apply`, with the invariants checked after every
//! step (locks have theirs in `state_test.rs`).

use bytes::Bytes;

use crate::command::{Command, HoldRef, Request};
use crate::error::CoreError;
use crate::event::EventKind;
use crate::ids::{ApplyContext, SessionId};
use crate::invariants;
use crate::queue::{LockKind, QueueKind, WaitMode};
use crate::queue_data::Mark;
use crate::response::Output;
use crate::state::{Applied, State};
use crate::{election, recipe};

struct Harness {
    state: State,
    index: u64,
}

impl Harness {
    fn new() -> Self {
        Harness { state: State::default(), index: 0 }
    }

    fn run(&mut self, session: Option<SessionId>, command: Command) -> Applied {
        self.index += 1;
        let request = Request { session, id: None, command };
        let ctx = ApplyContext { index: self.index, time_ms: 1_000 + self.index, term: 1 };
        let applied = self.state.apply(request, &ctx);
        let broken = invariants::violations(&self.state);
        assert!(broken.is_empty(), "invariants broken: {broken:?}");
        applied
    }

    fn ok(&mut self, session: Option<SessionId>, command: Command) -> Output {
        match self.run(session, command).response.outcome {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        }
    }

    fn open(&mut self) -> SessionId {
        match self.ok(None, Command::OpenSession { ttl_ms: 5_000, identity: "c".into() }) {
            Output::SessionOpened { id, .. } => id,
            other => panic!("{other:?}"),
        }
    }

    fn campaign(&mut self, s: SessionId, value: &'static str) -> Option<u64> {
        let command =
            Command::Campaign { path: "/e".into(), value: Bytes::from_static(value.as_bytes()) };
        match self.ok(Some(s), command) {
            Output::LockQueued { token, .. } => token,
            other => panic!("{other:?}"),
        }
    }

    fn leader(&self) -> Option<(SessionId, u64, Bytes)> {
        let leader = self.state.leader("/e").unwrap_or_else(|e| panic!("{e}"));
        leader.map(|l| (l.session, l.token, l.value))
    }

    fn enter(&mut self, s: SessionId, count: u32) -> Option<u64> {
        match self.ok(Some(s), Command::EnterBarrier { path: "/d".into(), count }) {
            Output::LockQueued { token, .. } => token,
            other => panic!("{other:?}"),
        }
    }
}

fn lost(applied: &Applied) -> Vec<(String, u64, Mark)> {
    applied
        .events
        .iter()
        .filter_map(recipe::lost_hold)
        .map(|(q, t, m)| (q.to_owned(), t, m))
        .collect()
}

/// What the changes of `applied` say about the leader of `/e`, in order.
fn leader_changes(applied: &Applied) -> Vec<Option<SessionId>> {
    applied
        .events
        .iter()
        .filter_map(|e| election::leader_after("/e", e))
        .map(|l| l.map(|l| l.session))
        .collect()
}

#[test]
fn the_first_candidate_leads_and_leadership_passes_in_order_with_higher_tokens() {
    let mut h = Harness::new();
    let (s1, s2, s3) = (h.open(), h.open(), h.open());
    let t1 = h.campaign(s1, "one").unwrap_or_else(|| panic!("the first candidate leads"));
    assert_eq!(h.campaign(s2, "two"), None, "the second waits");
    assert_eq!(h.campaign(s3, "three"), None);
    assert_eq!(h.campaign(s1, "again"), Some(t1), "campaigning again returns the same place");
    assert_eq!(h.leader(), Some((s1, t1, Bytes::from_static(b"one"))));
    assert!(h.state.check_sequencer("/e", t1), "a leader's token is a sequencer");

    // Only the leader proclaims, and only with its token.
    let stale = Command::Proclaim { path: "/e".into(), token: t1 + 100, value: "x".into() };
    assert!(matches!(h.run(Some(s1), stale).response.outcome, Err(CoreError::HoldEnded { .. })));
    let not_leader = Command::Proclaim { path: "/e".into(), token: t1, value: "x".into() };
    assert!(matches!(
        h.run(Some(s2), not_leader).response.outcome,
        Err(CoreError::HoldEnded { .. })
    ));
    let proclaim = Command::Proclaim { path: "/e".into(), token: t1, value: "new".into() };
    let proclaimed = h.run(Some(s1), proclaim);
    assert_eq!(proclaimed.response.outcome, Ok(Output::Proclaimed));
    assert_eq!(leader_changes(&proclaimed), [Some(s1)], "one change of the node: the value");
    assert_eq!(h.leader(), Some((s1, t1, Bytes::from_static(b"new"))));

    // A resign passes leadership on, and tells the resigning session.
    let resigned = h.run(Some(s1), Command::Resign { path: "/e".into(), token: t1 });
    assert_eq!(resigned.response.outcome, Ok(Output::LockReleased { held: true, remaining: 0 }));
    assert_eq!(lost(&resigned), [("/e".to_owned(), t1, Mark::Resigned)]);
    assert_eq!(leader_changes(&resigned), [Some(s2)]);
    let (leader, t2, value) = h.leader().unwrap_or_else(|| panic!("s2 leads"));
    assert_eq!((leader, value), (s2, Bytes::from_static(b"two")));
    assert!(t2 > t1, "tokens strictly increase");
    assert!(!h.state.check_sequencer("/e", t1), "the old token no longer fences");
    let again = h.run(Some(s1), Command::Resign { path: "/e".into(), token: t1 });
    assert!(matches!(again.response.outcome, Err(CoreError::HoldEnded { .. })));

    // An operator's revoke does the same, marked as a revoke.
    let revoked = h.run(None, Command::Revoke { path: "/e".into(), session: s2 });
    assert_eq!(lost(&revoked), [("/e".to_owned(), t2, Mark::Revoked)]);
    let (leader, t3, _) = h.leader().unwrap_or_else(|| panic!("s3 leads"));
    assert_eq!(leader, s3);
    assert!(t3 > t2);

    // The last candidate's session ends: no leader, and the election is gone.
    let expired = h.run(None, Command::ExpireSessions { ids: vec![s3], term: 1 });
    assert_eq!(leader_changes(&expired), [None]);
    assert_eq!(h.leader(), None);
    assert!(h.state.get("/e").is_err());
}

#[test]
fn a_new_election_is_observed_from_its_first_leader() {
    let mut h = Harness::new();
    let s = h.open();
    let campaign = Command::Campaign { path: "/e".into(), value: "v".into() };
    let applied = h.run(Some(s), campaign);
    // Created without a leader, then the grant records it, in the same revision.
    assert_eq!(leader_changes(&applied), [None, Some(s)]);
    assert!(applied.events.iter().all(|e| e.revision == applied.response.revision));
}

#[test]
fn recipes_do_not_mix() {
    let mut h = Harness::new();
    let s = h.open();
    h.campaign(s, "v");
    let acquire = Command::Acquire {
        path: "/e".into(),
        kind: LockKind::Mutex,
        mode: WaitMode::Exclusive,
        delay_ms: 0,
        options: Default::default(),
    };
    assert!(matches!(h.run(Some(s), acquire).response.outcome, Err(CoreError::WrongRecipe { .. })));
    let set = h.run(None, Command::SetBarrier { path: "/e".into() });
    assert!(matches!(set.response.outcome, Err(CoreError::WrongRecipe { .. })));
    let as_lock = Command::Acquire {
        path: "/l".into(),
        kind: QueueKind::Election,
        mode: WaitMode::Exclusive,
        delay_ms: 0,
        options: Default::default(),
    };
    assert!(matches!(
        h.run(Some(s), as_lock).response.outcome,
        Err(CoreError::InvalidLockRequest { .. })
    ));
    let write = Command::Set { path: "/e".into(), data: "x".into(), expected_version: None };
    assert!(matches!(h.run(None, write).response.outcome, Err(CoreError::LockManaged { .. })));
    let no_session = Command::Campaign { path: "/f".into(), value: Bytes::new() };
    assert!(matches!(
        h.run(None, no_session).response.outcome,
        Err(CoreError::SessionRequired { .. })
    ));
    let reserved = Command::Campaign { path: "/warden/e".into(), value: Bytes::new() };
    assert!(matches!(h.run(Some(s), reserved).response.outcome, Err(CoreError::Reserved { .. })));
}

#[test]
fn a_barrier_holds_its_waiters_until_it_is_removed() {
    let mut h = Harness::new();
    let (s1, s2) = (h.open(), h.open());
    let wait = |h: &mut Harness, s| h.ok(Some(s), Command::WaitBarrier { path: "/b".into() });
    assert_eq!(wait(&mut h, s1), Output::BarrierPassed, "not set: passes at once");
    assert_eq!(
        h.ok(None, Command::SetBarrier { path: "/b".into() }),
        Output::BarrierSet { created: true }
    );
    assert_eq!(
        h.ok(None, Command::SetBarrier { path: "/b".into() }),
        Output::BarrierSet { created: false }
    );
    for s in [s1, s2] {
        assert!(matches!(wait(&mut h, s), Output::LockQueued { token: None, .. }));
    }
    // A waiter whose session ends leaves; the barrier stays set.
    h.ok(None, Command::CloseSession { id: s2 });
    assert_eq!(h.state.barrier("/b").map(|(_, ws)| ws.len()), Ok(1));
    let removed = h.run(None, Command::RemoveBarrier { path: "/b".into() });
    assert_eq!(removed.response.outcome, Ok(Output::BarrierRemoved { removed: true, released: 1 }));
    // The waiter sees its grant before its deletion.
    let waiter_events: Vec<EventKind> =
        removed.events.iter().filter(|e| e.path.starts_with("/b/w-")).map(|e| e.kind).collect();
    assert_eq!(waiter_events, [EventKind::Data, EventKind::Deleted]);
    assert!(h.state.get("/b").is_err());
    assert_eq!(
        h.ok(None, Command::RemoveBarrier { path: "/b".into() }),
        Output::BarrierRemoved { removed: false, released: 0 }
    );
    assert_eq!(wait(&mut h, s1), Output::BarrierPassed);
}

#[test]
fn a_double_barrier_lets_all_in_at_once_and_goes_with_its_last_member() {
    let mut h = Harness::new();
    let (s1, s2, s3, s4) = (h.open(), h.open(), h.open(), h.open());
    assert_eq!(h.enter(s1, 3), None);
    assert_eq!(h.enter(s2, 3), None);
    // A member that goes before all are in leaves: the others wait for another.
    h.ok(None, Command::CloseSession { id: s2 });
    assert_eq!(h.enter(s3, 3), None);
    let mismatch = h.run(Some(s4), Command::EnterBarrier { path: "/d".into(), count: 4 });
    assert!(matches!(mismatch.response.outcome, Err(CoreError::InvalidLockRequest { .. })));
    let t = h.enter(s4, 3).unwrap_or_else(|| panic!("the third member lets all in"));
    let (_, members) = h.state.barrier("/d").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        members.iter().map(|m| (m.session, m.info.token)).collect::<Vec<_>>(),
        [(s1, Some(t)), (s3, Some(t)), (s4, Some(t))]
    );
    // Leaving: the count goes down; the node goes with the last.
    let leave = |h: &mut Harness, s| h.ok(Some(s), Command::LeaveBarrier { path: "/d".into() });
    assert_eq!(leave(&mut h, s1), Output::BarrierLeft { remaining: 2 });
    let late = h.open();
    assert!(h.enter(late, 3).is_some(), "entering while members are still in passes at once");
    h.ok(None, Command::CloseSession { id: late });
    assert_eq!(leave(&mut h, s3), Output::BarrierLeft { remaining: 1 });
    assert_eq!(leave(&mut h, s4), Output::BarrierLeft { remaining: 0 });
    assert!(h.state.get("/d").is_err());
    let gone = h.run(Some(s4), Command::LeaveBarrier { path: "/d".into() });
    assert!(matches!(gone.response.outcome, Err(CoreError::NotHeld { .. })));
    // The next round starts afresh.
    assert_eq!(h.enter(s4, 2), None);
    let zero = h.run(Some(s1), Command::EnterBarrier { path: "/z".into(), count: 0 });
    assert!(matches!(zero.response.outcome, Err(CoreError::InvalidLockRequest { .. })));
}

#[test]
fn a_cancelled_candidacy_keeps_a_grant_that_raced_it() {
    let mut h = Harness::new();
    let (s1, s2) = (h.open(), h.open());
    let t1 = h.campaign(s1, "a").unwrap_or(0);
    h.campaign(s2, "b");
    let (_, ws) = h.state.lock("/e").unwrap_or_else(|e| panic!("{e}"));
    let wait = HoldRef::Wait(ws[1].path.clone());
    h.ok(Some(s1), Command::Resign { path: "/e".into(), token: t1 });
    match h.ok(Some(s2), Command::Release { path: "/e".into(), hold: wait }) {
        Output::LockQueued { token: Some(_), .. } => {}
        other => panic!("the cancel should answer the grant: {other:?}"),
    }
    assert_eq!(h.leader().map(|l| l.0), Some(s2));
}
