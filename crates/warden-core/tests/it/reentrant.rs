//! (f) Reentrant locks against a model: random interleavings of acquires (with one of two
//! owners, or none), releases, revokes, expiries, closes and retried requests over a few
//! sessions and one mutex. After every step the mutex's queue is the model's: each place
//! with its owner and a count equal to its acquires minus its releases (never below 1, so
//! never negative), the first place holding and keeping its token while its count lasts,
//! and the next granted only once that count reached 0 (or a revoke or the end of its
//! session ended it). A retried request (same id) is answered as the first time and
//! changes nothing.

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use warden_core::queue::{LockKind, WaitMode};
use warden_core::{
    AcquireOptions, ApplyContext, Command, CoreError, HoldRef, Output, Request, SessionId, State,
    invariants,
};

use crate::steps::cases;

const LOCK: &str = "/re/m";
const SLOTS: usize = 3;
const OWNERS: [Option<&str>; 3] = [None, Some("task-a"), Some("task-b")];

#[derive(Debug, Clone)]
enum Op {
    Acquire {
        slot: usize,
        owner: usize,
    },
    Release {
        slot: usize,
        by_token: bool,
    },
    Revoke {
        slot: usize,
    },
    Expire {
        slot: usize,
    },
    Close {
        slot: usize,
    },
    /// Sends the slot's last request again, with its id.
    Retry {
        slot: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    prop_oneof![
        10 => (slot.clone(), 0..OWNERS.len()).prop_map(|(slot, owner)| Op::Acquire { slot, owner }),
        7 => (slot.clone(), any::<bool>()).prop_map(|(slot, by_token)| Op::Release { slot, by_token }),
        1 => slot.clone().prop_map(|slot| Op::Revoke { slot }),
        1 => slot.clone().prop_map(|slot| Op::Expire { slot }),
        1 => slot.clone().prop_map(|slot| Op::Close { slot }),
        3 => slot.prop_map(|slot| Op::Retry { slot }),
    ]
}

/// A session's place in the model's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    session: SessionId,
    owner: Option<String>,
    /// Acquires minus releases while it holds (1 while it waits).
    count: u32,
    /// Its token, once it holds.
    token: Option<u64>,
}

struct Model {
    state: State,
    index: u64,
    slots: [SessionId; SLOTS],
    /// The mutex's queue, in order: the first holds.
    queue: Vec<Place>,
    /// Per slot: the last request sent with an id, and its answer.
    last: [Option<(Request, Result<Output, CoreError>)>; SLOTS],
    /// Per slot: the next sequence number.
    seq: [u64; SLOTS],
    counted: u64,
    handed_over: u64,
}

impl Model {
    fn new() -> Model {
        let mut m = Model {
            state: State::default(),
            index: 0,
            slots: [0; SLOTS],
            queue: Vec::new(),
            last: Default::default(),
            seq: [1; SLOTS],
            counted: 0,
            handed_over: 0,
        };
        for slot in 0..SLOTS {
            m.reopen(slot);
        }
        m
    }

    fn ctx(&mut self) -> ApplyContext {
        self.index += 1;
        ApplyContext { index: self.index, time_ms: 1_000 + self.index, term: 1 }
    }

    fn apply(&mut self, request: Request) -> Result<Output, CoreError> {
        let ctx = self.ctx();
        self.state.apply(request, &ctx).response.outcome
    }

    fn reopen(&mut self, slot: usize) {
        let open = Command::OpenSession { ttl_ms: 10_000, identity: String::new() };
        match self.apply(Request::new(open)) {
            Ok(Output::SessionOpened { id, .. }) => self.slots[slot] = id,
            other => panic!("{other:?}"),
        }
        self.last[slot] = None;
        self.seq[slot] = 1;
    }

    /// The next request of `slot`, with an id.
    fn request(&mut self, slot: usize, command: Command) -> Request {
        let seq = self.seq[slot];
        self.seq[slot] += 1;
        Request::in_session(self.slots[slot], command).with_id(seq, seq)
    }

    fn position(&self, session: SessionId) -> Option<usize> {
        self.queue.iter().position(|p| p.session == session)
    }

    /// The model's queue after the first place left: the next holds, with a new token.
    fn leave(&mut self, i: usize) {
        self.queue.remove(i);
        if i == 0 && !self.queue.is_empty() {
            self.handed_over += 1;
        }
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Acquire { slot, owner } => self.acquire(slot, OWNERS[owner])?,
            Op::Release { slot, by_token } => self.release(slot, by_token)?,
            Op::Revoke { slot } => {
                let session = self.slots[slot];
                let outcome =
                    self.apply(Request::new(Command::Revoke { path: LOCK.into(), session }));
                match self.position(session) {
                    Some(i) => {
                        let held = i == 0;
                        prop_assert_eq!(outcome, Ok(Output::LockReleased { held, remaining: 0 }));
                        self.leave(i);
                    }
                    None => prop_assert!(outcome.is_err()),
                }
            }
            Op::Expire { slot } | Op::Close { slot } => {
                let id = self.slots[slot];
                let command = match op {
                    Op::Expire { .. } => Command::ExpireSessions { ids: vec![id], term: 1 },
                    _ => Command::CloseSession { id },
                };
                prop_assert!(self.apply(Request::new(command)).is_ok());
                if let Some(i) = self.position(id) {
                    self.leave(i);
                }
                self.reopen(slot);
            }
            Op::Retry { slot } => {
                let Some((request, first)) = self.last[slot].clone() else { return Ok(()) };
                let before = self.state.snapshot();
                let again = self.apply(request);
                prop_assert_eq!(again, first, "a retry is answered as the first time");
                prop_assert!(self.state.snapshot() == before, "a retry changed the state");
            }
        }
        self.check()
    }

    fn acquire(&mut self, slot: usize, owner: Option<&str>) -> Result<(), TestCaseError> {
        let session = self.slots[slot];
        let options = AcquireOptions { owner: owner.map(str::to_owned), ..Default::default() };
        let command = Command::Acquire {
            path: LOCK.into(),
            kind: LockKind::Mutex,
            mode: WaitMode::Exclusive,
            delay_ms: 0,
            options,
        };
        let request = self.request(slot, command);
        let outcome = self.apply(request.clone());
        self.last[slot] = Some((request, outcome.clone()));
        match self.position(session) {
            Some(i) if self.queue[i].owner.as_deref() != owner => {
                prop_assert!(
                    matches!(outcome, Err(CoreError::OtherOwner { .. })),
                    "another owner was answered {:?}",
                    outcome
                );
            }
            Some(i) => {
                let place = &mut self.queue[i];
                let Ok(Output::LockQueued { token, position, .. }) = outcome else {
                    return Err(TestCaseError::fail(format!("acquire again: {outcome:?}")));
                };
                prop_assert_eq!(position, i as u64);
                prop_assert_eq!(token, place.token, "the same hold, the same token");
                if owner.is_some() && place.token.is_some() {
                    place.count += 1;
                    self.counted += 1;
                }
            }
            None => {
                let Ok(Output::LockQueued { token, .. }) = outcome else {
                    return Err(TestCaseError::fail(format!("acquire: {outcome:?}")));
                };
                prop_assert_eq!(token.is_some(), self.queue.is_empty(), "granted iff free");
                self.queue.push(Place {
                    session,
                    owner: owner.map(str::to_owned),
                    count: 1,
                    token,
                });
            }
        }
        Ok(())
    }

    fn release(&mut self, slot: usize, by_token: bool) -> Result<(), TestCaseError> {
        let session = self.slots[slot];
        let i = self.position(session);
        // By token: the place's, or (with no hold) a token no hold has.
        let hold = match (by_token, i.and_then(|i| self.queue[i].token)) {
            (true, Some(token)) => HoldRef::Token(token),
            (true, None) => HoldRef::Token(u64::MAX),
            (false, _) => HoldRef::Any,
        };
        let request =
            self.request(slot, Command::Release { path: LOCK.into(), hold: hold.clone() });
        let outcome = self.apply(request.clone());
        self.last[slot] = Some((request, outcome.clone()));
        let Some(i) = i else {
            prop_assert!(outcome.is_err(), "a release of nothing answered {:?}", outcome);
            return Ok(());
        };
        let place = &mut self.queue[i];
        if place.token.is_none() && matches!(hold, HoldRef::Token(_)) {
            prop_assert!(matches!(outcome, Err(CoreError::HoldEnded { .. })), "{:?}", outcome);
            return Ok(());
        }
        let held = place.token.is_some();
        if held && place.count > 1 {
            place.count -= 1;
            prop_assert_eq!(outcome, Ok(Output::LockReleased { held, remaining: place.count }));
            return Ok(());
        }
        prop_assert_eq!(outcome, Ok(Output::LockReleased { held, remaining: 0 }));
        self.leave(i);
        Ok(())
    }

    /// The state's queue is the model's; the first place's token is new when it was
    /// handed over.
    fn check(&mut self) -> Result<(), TestCaseError> {
        let broken = invariants::violations(&self.state);
        prop_assert!(broken.is_empty(), "invariants broken: {:?}", broken);
        let waiters = self.state.lock(LOCK).map(|(_, ws)| ws).unwrap_or_default();
        prop_assert_eq!(waiters.is_empty(), self.queue.is_empty(), "free exactly when no place");
        prop_assert_eq!(waiters.len(), self.queue.len());
        for (i, (w, place)) in waiters.iter().zip(self.queue.iter_mut()).enumerate() {
            prop_assert_eq!(w.session, place.session);
            prop_assert_eq!(&w.info.owner, &place.owner);
            prop_assert_eq!(w.info.holds, place.count, "the count of {:?}", place);
            prop_assert!(w.info.holds >= 1);
            prop_assert_eq!(w.info.token.is_some(), i == 0, "only the first holds");
            match place.token {
                Some(token) => prop_assert_eq!(w.info.token, Some(token), "the token changed"),
                // Newly granted: from now on its token must stay.
                None => place.token = w.info.token,
            }
        }
        Ok(())
    }
}

#[test]
fn counts_follow_acquires_and_releases_and_the_lock_passes_on_only_at_zero() {
    let mut runner = TestRunner::new(ProptestConfig::with_cases(cases()));
    let totals = std::cell::Cell::new((0u64, 0u64));
    let result = runner.run(&prop::collection::vec(op(), 1..120), |ops| {
        let mut model = Model::new();
        for op in &ops {
            model.run(op)?;
        }
        let (counted, handed) = totals.get();
        totals.set((counted + model.counted, handed + model.handed_over));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Not vacuous: holds counted past 1, and holds passed from one session to the next.
    let (counted, handed) = totals.get();
    assert!(counted > 0 && handed > 0, "counted {counted}, handed over {handed}");
}
