//! A small replica to apply fuzzed commands to: a few nodes, a live session owning an
//! ephemeral node and holding a lock, so deletes, sessions and locks all have something
//! to act on. Built once, cloned for every input.

use std::sync::OnceLock;

use warden_core::queue::{LockKind, WaitMode};
use warden_core::{ApplyContext, Command, CreateMode, LogCommand, Request, State, invariants};

/// The session the seed state opens (its id is the index of the entry that opened it).
pub(crate) const SESSION: u64 = 1;

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
            },
        ),
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
/// then breaks an invariant.
pub(crate) fn apply_checked(requests: Vec<Request>) {
    let mut state = state();
    let command = match <[Request; 1]>::try_from(requests) {
        Ok([one]) => LogCommand::V1(one),
        Err(many) => LogCommand::Batch(many),
    };
    let kept = command.clone();
    state.apply_entry(command, &CTX);
    let broken = invariants::violations(&state);
    assert!(broken.is_empty(), "applying {kept:?} broke invariants: {broken:?}");
}
