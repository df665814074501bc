//! (e) Deadlock detection against a brute-force model: after every step of random acquires,
//! releases, revokes and session ends over a few sessions and locks (mutexes, a read-write
//! lock, a semaphore), no cycle stands in the wait-for graph (built whole from every queue,
//! searched for any cycle); and an acquire is refused with `Deadlock` exactly when the
//! waits it asks for would close a cycle, naming a real one, and the refusal changes
//! nothing.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use warden_core::deadlock::CycleStep;
use warden_core::queue::{LockKind, WaitMode, holders};
use warden_core::{ApplyContext, Command, CoreError, HoldRef, Output, Request, SessionId, State};

use crate::steps::{Runner, cases, steps};

/// The model's locks: two mutexes, a read-write lock, a semaphore of 2 permits.
const LOCKS: [(&str, LockKind); 4] = [
    ("/d/m1", LockKind::Mutex),
    ("/d/m2", LockKind::Mutex),
    ("/d/rw", LockKind::ReadWrite),
    ("/e/s", LockKind::Semaphore { permits: 2 }),
];

/// How many sessions are alive at once (a slot whose session ends gets a new one).
const SLOTS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Acquire { slot: usize, lock: usize, shared: bool, permits: u32, delay: bool },
    Release { slot: usize, lock: usize },
    Revoke { slot: usize, lock: usize },
    Close { slot: usize },
    Expire { slot: usize },
    Wake,
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    let lock = 0..LOCKS.len();
    prop_oneof![
        10 => (slot.clone(), lock.clone(), any::<bool>(), 1u32..=2, prop::bool::weighted(0.2))
            .prop_map(|(slot, lock, shared, permits, delay)| Op::Acquire { slot, lock, shared, permits, delay }),
        4 => (slot.clone(), lock.clone()).prop_map(|(slot, lock)| Op::Release { slot, lock }),
        1 => (slot.clone(), lock).prop_map(|(slot, lock)| Op::Revoke { slot, lock }),
        1 => slot.clone().prop_map(|slot| Op::Close { slot }),
        1 => slot.prop_map(|slot| Op::Expire { slot }),
        1 => Just(Op::Wake),
    ]
}

/// The wait-for graph, built whole: for every waiter not granted, an edge to the session of
/// every waiter ahead of it (in a read-write lock, not a reader's to a reader: they share),
/// labelled with the lock.
pub(crate) type Graph = BTreeMap<SessionId, BTreeSet<(SessionId, String)>>;

/// Whether a waiter in `mode` of a lock of `kind` waits for one ahead in `ahead`.
fn waits_on(kind: LockKind, mode: WaitMode, ahead: WaitMode) -> bool {
    kind != LockKind::ReadWrite || mode != WaitMode::Shared || ahead != WaitMode::Shared
}

fn graph(state: &State) -> Graph {
    let mut g = Graph::new();
    for (path, kind) in LOCKS {
        let Ok((_, ws)) = state.lock(path) else { continue };
        for (i, w) in ws.iter().enumerate() {
            if w.info.token.is_none() {
                for ahead in ws[..i].iter().filter(|a| waits_on(kind, w.info.mode, a.info.mode)) {
                    g.entry(w.session).or_default().insert((ahead.session, path.to_owned()));
                }
            }
        }
    }
    g
}

/// Whether `to` can be reached from `from` (in one edge or more).
pub(crate) fn reaches(g: &Graph, from: SessionId, to: SessionId) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(s) = stack.pop() {
        for (next, _) in g.get(&s).into_iter().flatten() {
            if *next == to {
                return true;
            }
            if seen.insert(*next) {
                stack.push(*next);
            }
        }
    }
    false
}

/// Some session that lies on a cycle, if any does.
pub(crate) fn any_cycle(g: &Graph) -> Option<SessionId> {
    g.keys().copied().find(|s| reaches(g, *s, *s))
}

struct Model {
    state: State,
    slots: [SessionId; SLOTS],
    index: u64,
    refused: u64,
    waited: u64,
}

fn identity(slot: usize) -> String {
    // One slot is anonymous, as clients without a certificate are.
    if slot == 0 { String::new() } else { format!("client-{slot}") }
}

impl Model {
    fn new() -> Model {
        let mut m =
            Model { state: State::default(), slots: [0; SLOTS], index: 0, refused: 0, waited: 0 };
        for slot in 0..SLOTS {
            m.reopen(slot);
        }
        m
    }

    fn ctx(&mut self) -> ApplyContext {
        self.index += 1;
        ApplyContext { index: self.index, time_ms: 1_000 * self.index, term: 1 }
    }

    fn reopen(&mut self, slot: usize) {
        let ctx = self.ctx();
        let open = Command::OpenSession { ttl_ms: 10_000, identity: identity(slot) };
        if let Ok(Output::SessionOpened { id, .. }) =
            self.state.apply(Request::new(open), &ctx).response.outcome
        {
            self.slots[slot] = id;
        }
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Acquire { slot, lock, shared, permits, delay } => {
                let (path, kind) = LOCKS[lock];
                let mode = match kind {
                    LockKind::ReadWrite if shared => WaitMode::Shared,
                    LockKind::Semaphore { .. } => WaitMode::Permits(permits),
                    _ => WaitMode::Exclusive,
                };
                let delay_ms = if delay { 3_000 } else { 0 };
                self.acquire(slot, path, kind, mode, delay_ms)?;
            }
            Op::Release { slot, lock } => {
                let release = Command::Release { path: LOCKS[lock].0.into(), hold: HoldRef::Any };
                let ctx = self.ctx();
                self.state.apply(Request::in_session(self.slots[slot], release), &ctx);
            }
            Op::Revoke { slot, lock } => {
                let revoke =
                    Command::Revoke { path: LOCKS[lock].0.into(), session: self.slots[slot] };
                let ctx = self.ctx();
                self.state.apply(Request::new(revoke), &ctx);
            }
            Op::Close { slot } => {
                let ctx = self.ctx();
                self.state
                    .apply(Request::new(Command::CloseSession { id: self.slots[slot] }), &ctx);
                self.reopen(slot);
            }
            Op::Expire { slot } => {
                let ctx = self.ctx();
                let expire = Command::ExpireSessions { ids: vec![self.slots[slot]], term: 1 };
                self.state.apply(Request::new(expire), &ctx);
                self.reopen(slot);
            }
            Op::Wake => {
                let ctx = self.ctx();
                self.state.apply(Request::new(Command::WakeLocks), &ctx);
            }
        }
        let g = graph(&self.state);
        prop_assert_eq!(any_cycle(&g), None, "a cycle stands after {:?}: {:?}", op, g);
        Ok(())
    }

    /// An acquire, checked against what the model says it asks for.
    fn acquire(
        &mut self,
        slot: usize,
        path: &str,
        kind: LockKind,
        mode: WaitMode,
        delay_ms: u64,
    ) -> Result<(), TestCaseError> {
        let session = self.slots[slot];
        let before = self.state.snapshot();
        let revision = self.state.revision();
        let queue = self.state.lock(path).ok();
        let ctx = self.ctx();
        // The model: a session already in the queue keeps its place; a new waiter joins the
        // end, and waits unless a lock-delay blocks the queue or the rule does not let it
        // hold; a wait is for every session ahead (a reader's not for a reader's).
        let ws = queue.as_ref().map(|(_, ws)| ws.clone()).unwrap_or_default();
        let again = ws.iter().any(|w| w.session == session);
        let blocked = queue.as_ref().is_some_and(|(c, _)| c.blocked_until_ms > ctx.time_ms);
        let mut modes: Vec<WaitMode> = ws.iter().map(|w| w.info.mode).collect();
        modes.push(mode);
        let granted = ws.iter().take_while(|w| w.info.token.is_some()).count();
        let hold = if blocked { 0 } else { holders(kind, &modes, granted) };
        let waits = !again && hold < modes.len();
        let mut g = graph(&self.state);
        if !again {
            // The join grants whoever the rule lets hold now (earlier waiters too, when a
            // lock-delay ended but was not woken yet): their waits end.
            for w in ws.iter().take(hold) {
                if let Some(edges) = g.get_mut(&w.session) {
                    edges.retain(|(_, p)| p != path);
                }
            }
        }
        if waits {
            for w in ws.iter().filter(|w| waits_on(kind, mode, w.info.mode)) {
                g.entry(session).or_default().insert((w.session, path.to_owned()));
            }
        }
        let closes = waits && reaches(&g, session, session);

        let command = Command::Acquire {
            path: path.into(),
            kind,
            mode,
            delay_ms,
            options: Default::default(),
        };
        let outcome =
            self.state.apply(Request::in_session(session, command), &ctx).response.outcome;
        match outcome {
            Err(CoreError::Deadlock { cycle }) => {
                prop_assert!(closes, "refused without a cycle: {:?} in {:?}", cycle, g);
                self.refused += 1;
                prop_assert_eq!(&self.state.snapshot(), &before, "a refusal changed the state");
                prop_assert_eq!(self.state.revision(), revision);
                self.check_cycle(&cycle, session, path, &g)?;
            }
            Ok(Output::LockQueued { token, .. }) => {
                prop_assert!(!closes, "{} closed a cycle and was queued: {:?}", path, g);
                prop_assert_eq!(
                    token.is_none(),
                    waits
                        || (again
                            && ws.iter().any(|w| w.session == session && w.info.token.is_none()))
                );
                if waits {
                    self.waited += 1;
                }
            }
            other => prop_assert!(false, "unexpected outcome {:?}", other),
        }
        Ok(())
    }

    /// The cycle a refusal names is real: it starts with the request, each session waits on
    /// its lock for the next (the last for the first), and each identity is its session's.
    fn check_cycle(
        &self,
        cycle: &[CycleStep],
        session: SessionId,
        path: &str,
        g: &Graph,
    ) -> Result<(), TestCaseError> {
        prop_assert!(!cycle.is_empty());
        prop_assert_eq!(cycle[0].session, session);
        prop_assert_eq!(&cycle[0].path, path);
        let distinct: BTreeSet<SessionId> = cycle.iter().map(|s| s.session).collect();
        prop_assert_eq!(distinct.len(), cycle.len(), "a session twice in {:?}", cycle);
        for (i, step) in cycle.iter().enumerate() {
            let next = cycle[(i + 1) % cycle.len()].session;
            let edge = (next, step.path.clone());
            prop_assert!(
                g.get(&step.session).is_some_and(|e| e.contains(&edge)),
                "no edge {} -> {} on {} in {:?}",
                step.session,
                next,
                step.path,
                g
            );
            let known = self.state.session(step.session).map(|s| s.identity.clone());
            prop_assert_eq!(Some(&step.identity), known.as_ref());
        }
        Ok(())
    }
}

#[test]
fn no_cycle_stands_and_no_acquire_is_refused_without_one() {
    let mut runner = TestRunner::new(ProptestConfig::with_cases(cases()));
    let totals = std::cell::Cell::new((0u64, 0u64));
    let result = runner.run(&prop::collection::vec(op(), 1..80), |ops| {
        let mut model = Model::new();
        for op in &ops {
            model.run(op)?;
        }
        let (refused, waited) = totals.get();
        totals.set((refused + model.refused, waited + model.waited));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The property is not vacuous: the sequences close cycles, and wait without closing any.
    let (refused, waited) = totals.get();
    assert!(refused > 0 && waited > 0, "refused {refused}, waited {waited}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Over the general command mix (transactions, revoking deletes, elections, barriers),
    /// no cycle stands either.
    #[test]
    fn no_cycle_stands_over_any_commands(steps in steps(100)) {
        let mut runner = Runner::new();
        for step in &steps {
            runner.apply(step);
            let mut g = Graph::new();
            for (path, kind) in crate::steps::LOCKS {
                let Ok((_, ws)) = runner.state.lock(path) else { continue };
                if !kind.is_lock() {
                    continue;
                }
                for (i, w) in ws.iter().enumerate().filter(|(_, w)| w.info.token.is_none()) {
                    for ahead in ws[..i].iter().filter(|a| waits_on(kind, w.info.mode, a.info.mode)) {
                        g.entry(w.session).or_default().insert((ahead.session, path.to_owned()));
                    }
                }
            }
            prop_assert_eq!(any_cycle(&g), None, "a cycle stands after {:?}", step);
        }
    }
}
