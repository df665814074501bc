//! (f) Hierarchical locks and priorities against a brute-force model: random acquires
//! (node or subtree scope, shared or exclusive, priorities 0 to 10), releases, session ends
//! and the passing of time over a few sessions and nested locks. After every step:
//!
//! - the state's invariants hold, among them the locks' rule read the slow way, pairwise
//!   (no two conflicting holds; nobody waits without a conflicting holder or a conflicting
//!   waiter served before it);
//! - no cycle stands in the wait-for graph, built whole and pairwise;
//! - an acquire is refused with `Deadlock` exactly when the waits it adds (its own, and
//!   those of the waiters it is served before) would close a cycle in that graph;
//! - nobody is passed by a request that arrived more than the starvation bound after it
//!   (`lock_family::overtaking_window_ms`).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use warden_core::lock_family::{AGING_MS, overtaking_window_ms};
use warden_core::queue::{LockKind, MAX_PRIORITY, Scope, WaitMode};
use warden_core::recipe::WaiterView;
use warden_core::{
    AcquireOptions, ApplyContext, Command, CoreError, HoldRef, Output, Request, SessionId, State,
    invariants,
};

use crate::steps::cases;

/// Nested locks: a read-write lock at the top, a mutex and a read-write lock below it, a
/// mutex below those, and a semaphore beside them.
const LOCKS: [(&str, LockKind); 5] = [
    ("/h", LockKind::ReadWrite),
    ("/h/a", LockKind::Mutex),
    ("/h/a/x", LockKind::ReadWrite),
    ("/h/a/x/y", LockKind::Mutex),
    ("/h/b", LockKind::Semaphore { permits: 2 }),
];

const SLOTS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Acquire { slot: usize, lock: usize, shared: bool, subtree: bool, priority: u32 },
    Release { slot: usize, lock: usize },
    Expire { slot: usize },
    Pass { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    let lock = 0..LOCKS.len();
    prop_oneof![
        10 => (slot.clone(), lock.clone(), any::<bool>(), prop::bool::weighted(0.4), prop::sample::select(vec![0u32, 0, 3, MAX_PRIORITY]))
            .prop_map(|(slot, lock, shared, subtree, priority)| Op::Acquire { slot, lock, shared, subtree, priority }),
        5 => (slot.clone(), lock).prop_map(|(slot, lock)| Op::Release { slot, lock }),
        1 => slot.prop_map(|slot| Op::Expire { slot }),
        2 => prop::sample::select(vec![100u64, 2_000, 15_000]).prop_map(|ms| Op::Pass { ms }),
    ]
}

/// One waiter of the model, holder or not.
#[derive(Debug, Clone)]
struct W {
    lock: &'static str,
    kind: LockKind,
    session: SessionId,
    mode: WaitMode,
    scope: Scope,
    held: bool,
    arrived: u64,
    /// The order waiters are served in: arrival minus priority × aging, then the join.
    order: (i128, u64),
}

fn order(arrived: u64, priority: u32, revision: u64) -> (i128, u64) {
    (i128::from(arrived) - i128::from(priority) * i128::from(AGING_MS), revision)
}

fn model(state: &State) -> Vec<W> {
    let mut all = Vec::new();
    for (lock, kind) in LOCKS {
        let Ok((_, ws)) = state.lock(lock) else { continue };
        let mut arrived = 0;
        for w in ws {
            let WaiterView { session, info, since_ms, joined_revision, .. } = w;
            arrived = since_ms.max(arrived);
            all.push(W {
                lock,
                kind,
                session,
                mode: info.mode,
                scope: info.scope,
                held: info.token.is_some(),
                arrived,
                order: order(arrived, info.priority, joined_revision),
            });
        }
    }
    all
}

fn above(a: &str, b: &str) -> bool {
    b.starts_with(&format!("{a}/"))
}

/// Whether `e`, waiting, waits for `f` (a holder, or a waiter served before it) of another
/// session: within a mutex or a semaphore always; within a read-write lock and across locks
/// when their holds conflict.
fn waits_for(e: &W, f: &W) -> bool {
    let shared = e.mode == WaitMode::Shared && f.mode == WaitMode::Shared;
    if e.lock == f.lock {
        return e.session != f.session && (e.kind != LockKind::ReadWrite || !shared);
    }
    let covers = (e.scope == Scope::Subtree && above(e.lock, f.lock))
        || (f.scope == Scope::Subtree && above(f.lock, e.lock));
    e.session != f.session && covers && !shared
}

type Graph = BTreeMap<SessionId, BTreeSet<SessionId>>;

fn graph(ws: &[W]) -> Graph {
    let mut g = Graph::new();
    for e in ws.iter().filter(|w| !w.held) {
        for f in ws.iter().filter(|f| f.held || f.order < e.order) {
            if waits_for(e, f) {
                g.entry(e.session).or_default().insert(f.session);
            }
        }
    }
    g
}

fn reaches(g: &Graph, from: SessionId, to: SessionId) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(s) = stack.pop() {
        for next in g.get(&s).into_iter().flatten() {
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

fn any_cycle(g: &Graph) -> Option<SessionId> {
    g.keys().copied().find(|s| reaches(g, *s, *s))
}

/// Whether `e` may be granted beside `ws` (nothing it may not pass conflicts with it, and
/// a semaphore has the permits), in the brute-force reading.
fn grantable(e: &W, ws: &[W]) -> bool {
    let before: Vec<&W> = ws.iter().filter(|f| f.held || f.order < e.order).collect();
    let conflict = before.iter().any(|f| match e.kind {
        LockKind::Semaphore { .. } if f.lock == e.lock => false,
        _ => waits_for(e, f),
    });
    let fits = match e.kind {
        LockKind::Semaphore { permits } => {
            let taken = |w: &W| match w.mode {
                WaitMode::Permits(n) => u64::from(n),
                _ => u64::from(permits),
            };
            let used: u64 = before.iter().filter(|f| f.lock == e.lock).map(|f| taken(f)).sum();
            used + taken(e) <= u64::from(permits)
        }
        _ => true,
    };
    !conflict && fits
}

struct Model {
    state: State,
    slots: [SessionId; SLOTS],
    index: u64,
    time: u64,
    refused: u64,
    waited: u64,
    crossed: u64,
}

impl Model {
    fn new() -> Model {
        let mut m = Model {
            state: State::default(),
            slots: [0; SLOTS],
            index: 0,
            time: 1_000_000,
            refused: 0,
            waited: 0,
            crossed: 0,
        };
        for slot in 0..SLOTS {
            m.reopen(slot);
        }
        m
    }

    fn ctx(&mut self) -> ApplyContext {
        self.index += 1;
        self.time += 10;
        ApplyContext { index: self.index, time_ms: self.time, term: 1 }
    }

    fn reopen(&mut self, slot: usize) {
        let ctx = self.ctx();
        let open = Command::OpenSession { ttl_ms: 10_000, identity: format!("c{slot}") };
        if let Ok(Output::SessionOpened { id, .. }) =
            self.state.apply(Request::new(open), &ctx).response.outcome
        {
            self.slots[slot] = id;
        }
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let before = model(&self.state);
        match *op {
            Op::Acquire { slot, lock, shared, subtree, priority } => {
                self.acquire(slot, lock, shared, subtree, priority)?;
            }
            Op::Release { slot, lock } => {
                let release = Command::Release { path: LOCKS[lock].0.into(), hold: HoldRef::Any };
                let ctx = self.ctx();
                self.state.apply(Request::in_session(self.slots[slot], release), &ctx);
            }
            Op::Expire { slot } => {
                let ctx = self.ctx();
                let expire = Command::ExpireSessions { ids: vec![self.slots[slot]], term: 1 };
                self.state.apply(Request::new(expire), &ctx);
                self.reopen(slot);
            }
            Op::Pass { ms } => self.time += ms,
        }
        let broken = invariants::violations(&self.state);
        prop_assert!(broken.is_empty(), "after {:?}: {:?}", op, broken);
        let after = model(&self.state);
        prop_assert_eq!(any_cycle(&graph(&after)), None, "a cycle stands after {:?}", op);
        self.check_bound(&before, &after)?;
        Ok(())
    }

    /// Nobody still waiting was passed by a grant to a conflicting request that arrived
    /// more than the bound after it.
    fn check_bound(&mut self, before: &[W], after: &[W]) -> Result<(), TestCaseError> {
        let was_held: BTreeSet<(&str, SessionId)> =
            before.iter().filter(|w| w.held).map(|w| (w.lock, w.session)).collect();
        for x in after.iter().filter(|w| w.held && !was_held.contains(&(w.lock, w.session))) {
            let conflicting = |w: &&W| match w.kind {
                LockKind::ReadWrite => w.mode != WaitMode::Shared || x.mode != WaitMode::Shared,
                _ => true,
            };
            // A waiter that another lock keeps out (a hold there, or a request served
            // before it, of the passer's own session, say) is not passed by this lock's
            // order.
            let kept_out = |w: &&W| {
                after
                    .iter()
                    .any(|f| (f.held || f.order < w.order) && f.lock != w.lock && waits_for(w, f))
            };
            let competing = after.iter().filter(|w| !w.held && w.lock == x.lock);
            for w in competing.filter(conflicting).filter(|w| !kept_out(w)) {
                let priority = priority_of(w);
                self.crossed += u64::from(x.arrived > w.arrived);
                prop_assert!(
                    x.arrived <= w.arrived + overtaking_window_ms(priority),
                    "{:?} passed {:?}, which waits since {} ms before it",
                    x,
                    w,
                    x.arrived - w.arrived
                );
            }
        }
        Ok(())
    }

    fn acquire(
        &mut self,
        slot: usize,
        lock: usize,
        shared: bool,
        subtree: bool,
        priority: u32,
    ) -> Result<(), TestCaseError> {
        let (path, kind) = LOCKS[lock];
        let session = self.slots[slot];
        let mode = match kind {
            LockKind::ReadWrite if shared => WaitMode::Shared,
            LockKind::Semaphore { .. } => WaitMode::Permits(1 + u32::from(shared)),
            _ => WaitMode::Exclusive,
        };
        let scope = if subtree { Scope::Subtree } else { Scope::Node };
        let options = AcquireOptions { scope, priority, owner: None };
        let command = Command::Acquire { path: path.into(), kind, mode, delay_ms: 0, options };
        let ws = model(&self.state);
        let snapshot = self.state.snapshot();
        let ctx = self.ctx();
        // The model of the new wait: where it goes in the order, whether it holds at once,
        // and the waits it adds (its own, and those of the waiters it goes before).
        let again = ws.iter().any(|w| w.lock == path && w.session == session);
        let last = ws.iter().filter(|w| w.lock == path).map(|w| w.arrived).max().unwrap_or(0);
        let arrived = ctx.time_ms.max(last);
        let mut new = W {
            lock: path,
            kind,
            session,
            mode,
            scope,
            held: false,
            arrived,
            order: order(arrived, priority, self.state.revision() + 1),
        };
        let semaphore_scope = subtree && matches!(kind, LockKind::Semaphore { .. });
        let waits = !again && !semaphore_scope && !grantable(&new, &ws);
        new.held = !waits;
        let mut with = ws.clone();
        with.push(new);
        // Granted at once or not, the new waiter may close a cycle: waiters it is served
        // before may wait for it, and its session may wait elsewhere.
        let closes = !again && !semaphore_scope && reaches(&graph(&with), session, session);

        let outcome =
            self.state.apply(Request::in_session(session, command), &ctx).response.outcome;
        match outcome {
            Err(CoreError::InvalidLockRequest { .. }) => prop_assert!(semaphore_scope),
            Err(CoreError::Deadlock { cycle }) => {
                prop_assert!(closes, "refused without a cycle: {:?}", cycle);
                prop_assert_eq!(self.state.snapshot(), snapshot, "a refusal changed the state");
                self.refused += 1;
            }
            Ok(Output::LockQueued { token, .. }) => {
                prop_assert!(!closes, "{} closed a cycle and was queued", path);
                if !again {
                    prop_assert_eq!(token.is_none(), waits, "the rule and the model disagree");
                }
                self.waited += u64::from(waits);
            }
            other => prop_assert!(false, "unexpected outcome {:?}", other),
        }
        Ok(())
    }
}

/// A waiter's priority, read back from its order.
fn priority_of(w: &W) -> u32 {
    let diff = i128::from(w.arrived) - w.order.0;
    u32::try_from(diff / i128::from(AGING_MS)).unwrap_or(u32::MAX)
}

#[test]
fn hierarchical_locks_with_priorities_follow_the_brute_force_model() {
    let mut runner = TestRunner::new(ProptestConfig::with_cases(cases()));
    let totals = std::cell::Cell::new((0u64, 0u64, 0u64));
    let result = runner.run(&prop::collection::vec(op(), 1..80), |ops| {
        let mut model = Model::new();
        for op in &ops {
            model.run(op)?;
        }
        let (refused, waited, crossed) = totals.get();
        totals.set((refused + model.refused, waited + model.waited, crossed + model.crossed));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Not vacuous: requests wait, deadlocks across the hierarchy are refused, and later
    // requests of a higher priority pass conflicting earlier ones.
    let (refused, waited, crossed) = totals.get();
    assert!(
        refused > 0 && waited > 0 && crossed > 0,
        "refused {refused}, waited {waited}, crossed {crossed}"
    );
}
