//! A small replica to apply fuzzed commands to: a few nodes, a live session owning an
//! ephemeral node and holding a lock, and a second session queued behind the first in an
//! election, a set barrier and a resource kind that rotates, so deletes, sessions, locks
//! and the recipes (elections, barriers, resource kinds) all have something to act on.
//! Built once, cloned for every input: inputs do not see each other's changes, so the
//! seeds of a recipe's RPCs act on the recipes this state already holds.

use std::sync::OnceLock;

use warden_core::queue::{LockKind, WaitMode};
use warden_core::resource::WhileDraining;
use warden_core::{
    Applied, ApplyContext, Command, CreateMode, LogCommand, Request, State, invariants,
};

/// The session the seed state opens first (its id is the index of the entry that opened
/// it): it holds `/l`, leads `/el`, is in the double barrier `/dbar` and holds `k1` of the
/// resource kind `/res`.
pub(crate) const SESSION: u64 = 1;

/// The second session (opened by the seed's sixth entry): a candidate behind
/// [`SESSION`] in `/el`, waiting on the barrier `/bar`, holding `k1` of the resource kind
/// `/rot` in its old version `v1` while `/rot` rotates to `v2`.
const OTHER: u64 = 6;

/// A request of the resource kind lock `id` of `path`, exclusive, in `session`.
fn acquire_resource(session: u64, path: &str, id: &str) -> Request {
    let command = Command::AcquireResource {
        path: path.into(),
        id: id.into(),
        kind: LockKind::Mutex,
        mode: WaitMode::Exclusive,
        delay_ms: 0,
        draining: WhileDraining::Wait,
    };
    Request::in_session(session, command)
}

/// The context every fuzzed command is applied in: after the seed's entries.
const CTX: ApplyContext = ApplyContext { index: 100, time_ms: 1_700_000_100_000, term: 1 };

fn seed() -> State {
    let mut state = State::default();
    let commands = [
        Request::new(Command::OpenSession { ttl_ms: 10_000, identity: "fuzz".into() }),
        Request::new(Command::Create {
            path: "/a".into(),
            data: "x".into(),
            mode: CreateMode::PERSISTENT,
        }),
        Request::new(Command::Create {
            path: "/a/b".into(),
            data: "y".into(),
            mode: CreateMode::PERSISTENT,
        }),
        Request::in_session(
            SESSION,
            Command::Create { path: "/e".into(), data: "z".into(), mode: CreateMode::EPHEMERAL },
        ),
        Request::in_session(
            SESSION,
            Command::Acquire {
                path: "/l".into(),
                kind: LockKind::Mutex,
                mode: WaitMode::Exclusive,
                delay_ms: 0,
                options: Default::default(),
            },
        ),
        Request::new(Command::OpenSession { ttl_ms: 10_000, identity: "fuzz-2".into() }),
        Request::in_session(SESSION, Command::Campaign { path: "/el".into(), value: "one".into() }),
        Request::in_session(OTHER, Command::Campaign { path: "/el".into(), value: "two".into() }),
        Request::new(Command::SetBarrier { path: "/bar".into() }),
        Request::in_session(OTHER, Command::WaitBarrier { path: "/bar".into() }),
        Request::in_session(SESSION, Command::EnterBarrier { path: "/dbar".into(), count: 2 }),
        Request::new(Command::InitResource { path: "/res".into(), version: "v1".into() }),
        acquire_resource(SESSION, "/res", "k1"),
        Request::new(Command::InitResource { path: "/rot".into(), version: "v1".into() }),
        acquire_resource(OTHER, "/rot", "k1"),
        Request::new(Command::BeginRotation { path: "/rot".into(), to: "v2".into() }),
    ];
    for (index, request) in (1..).zip(commands) {
        let ctx = ApplyContext { index, time_ms: 1_700_000_000_000 + index, term: 1 };
        let applied = state.apply(request, &ctx);
        assert!(applied.response.outcome.is_ok(), "the seed state does not build: {applied:?}");
    }
    state
}

/// A fresh copy of the seed state.
pub(crate) fn state() -> State {
    static SEED: OnceLock<State> = OnceLock::new();
    SEED.get_or_init(seed).clone()
}

/// Applies `requests` to a fresh seed state as one log entry, and panics if the state
/// then breaks an invariant; returns the state after the entry and each request's answer,
/// for what a service reads after its write.
pub(crate) fn apply_checked(requests: Vec<Request>) -> (State, Vec<Applied>) {
    let mut state = state();
    let command = match <[Request; 1]>::try_from(requests) {
        Ok([one]) => LogCommand::V1(one),
        Err(many) => LogCommand::Batch(many),
    };
    let kept = command.clone();
    let applied = state.apply_entry(command, &CTX);
    let broken = invariants::violations(&state);
    assert!(broken.is_empty(), "applying {kept:?} broke invariants: {broken:?}");
    (state, applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's recipes are where its doc says: the seeds of the recipe targets rely on it.
    #[test]
    fn the_seed_state_holds_its_recipes() {
        let state = state();
        // Token 5 is in the seeds of `election_request` (examples/seed_corpus.rs).
        let leader = state.leader("/el").ok().flatten().map(|l| (l.session, l.token));
        assert_eq!(leader, Some((SESSION, 5)));
        let barrier = state.barrier("/bar").map(|(_, ws)| ws.len());
        assert_eq!(barrier.ok(), Some(1));
        let double = state.barrier("/dbar").map(|(_, ws)| ws.len());
        assert_eq!(double.ok(), Some(1));
        let res = state.resource("/res").map(|v| (v.state.to, v.current.len()));
        assert_eq!(res.ok(), Some((None, 1)));
        let rot = state.resource("/rot").map(|v| (v.state.to, v.current.len()));
        assert_eq!(rot.ok(), Some((Some("v2".to_owned()), 1)));
    }
}
