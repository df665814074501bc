//! Limits under random sequences: sessions per identity as a model counts them, and
//! transactions refused exactly when their bytes are over the limit.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use warden_core::{
    ApplyContext, Check, Command, Compare, CoreError, CreateMode, Limits, Output, Request, State,
    TxnOp, invariants,
};

use crate::steps::cases;

#[derive(Debug, Clone)]
enum Step {
    /// Open a session for identity `0..3` ("" is the third).
    Open(usize),
    /// Close the n-th live session (modulo), if any.
    Close(usize),
    /// Expire the n-th live session (modulo), if any.
    Expire(usize),
}

const IDENTITIES: [&str; 3] = ["alice", "bob", ""];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..IDENTITIES.len()).prop_map(Step::Open),
        1 => any::<usize>().prop_map(Step::Close),
        1 => any::<usize>().prop_map(Step::Expire),
    ]
}

fn ctx(index: u64) -> ApplyContext {
    ApplyContext { index, time_ms: 1_000 + index, term: 1 }
}

fn op() -> impl Strategy<Value = TxnOp> {
    let path = prop::sample::select(vec!["/a", "/b", "/long/path/to/c"]);
    let data = (0usize..40).prop_map(|n| Bytes::from(vec![b'x'; n]));
    prop_oneof![
        (path.clone(), data.clone()).prop_map(|(p, data)| TxnOp::Create {
            path: p.into(),
            data,
            mode: CreateMode::PERSISTENT
        }),
        (path.clone(), data).prop_map(|(p, data)| TxnOp::Set {
            path: p.into(),
            data,
            expected_version: None
        }),
        path.prop_map(|p| TxnOp::Delete {
            path: p.into(),
            expected_version: None,
            recursive: false,
            revoke_locks: false
        }),
    ]
}

/// Counted here as the limit's documentation says: paths, and values written.
fn bytes_of(compares: &[Compare], ops: &[TxnOp]) -> usize {
    let ops: usize = ops
        .iter()
        .map(|op| match op {
            TxnOp::Create { path, data, .. } | TxnOp::Set { path, data, .. } => {
                path.len() + data.len()
            }
            TxnOp::Delete { path, .. } => path.len(),
        })
        .sum();
    compares.iter().map(|c| c.path.len()).sum::<usize>() + ops
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn no_identity_holds_more_sessions_than_the_limit(
        max in 1usize..4,
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let mut state = State::new(Limits { max_sessions_per_identity: max, ..Limits::default() });
        // The model: live sessions by id, with their identity.
        let mut live: BTreeMap<u64, &str> = BTreeMap::new();
        for (i, step) in steps.into_iter().enumerate() {
            let index = i as u64 + 1;
            match step {
                Step::Open(who) => {
                    let identity = IDENTITIES[who];
                    let held = live.values().filter(|i| **i == identity).count();
                    let command = Command::OpenSession { ttl_ms: 5_000, identity: identity.into() };
                    let outcome = state.apply(Request::new(command), &ctx(index)).response.outcome;
                    if held < max {
                        let Ok(Output::SessionOpened { id, .. }) = outcome else {
                            panic!("open {held}/{max} of {identity:?} refused: {outcome:?}");
                        };
                        live.insert(id, identity);
                    } else {
                        prop_assert_eq!(
                            outcome,
                            Err(CoreError::TooManySessions { identity: identity.into(), count: held, max })
                        );
                    }
                }
                Step::Close(n) | Step::Expire(n) => {
                    let Some(id) = live.keys().nth(n % live.len().max(1)).copied() else { continue };
                    let command = match step {
                        Step::Close(_) => Command::CloseSession { id },
                        _ => Command::ExpireSessions { ids: vec![id], term: 1 },
                    };
                    let outcome = state.apply(Request::new(command), &ctx(index)).response.outcome;
                    prop_assert!(outcome.is_ok(), "{:?}", outcome);
                    live.remove(&id);
                }
            }
            for identity in IDENTITIES {
                let held = live.values().filter(|i| **i == identity).count();
                prop_assert!(held <= max);
                prop_assert_eq!(state.sessions_of(identity), held);
            }
            let broken = invariants::violations(&state);
            prop_assert!(broken.is_empty(), "{:?}", broken);
        }
    }

    #[test]
    fn a_transaction_is_refused_exactly_when_its_bytes_are_over_the_limit(
        max in 0usize..200,
        compared in prop::collection::vec(prop::sample::select(vec!["/a", "/zz"]), 0..3),
        ops in prop::collection::vec(op(), 0..6),
    ) {
        let mut state = State::new(Limits { max_txn_bytes: max, ..Limits::default() });
        let compares: Vec<Compare> = compared
            .into_iter()
            .map(|p| Compare { path: p.into(), check: Check::Exists(false) })
            .collect();
        let bytes = bytes_of(&compares, &ops);
        let command = Command::Txn { compares, ops };
        let outcome = state.apply(Request::new(command), &ctx(1)).response.outcome;
        if bytes > max {
            prop_assert_eq!(outcome, Err(CoreError::TxnBytesTooLarge { bytes, max }));
        } else {
            prop_assert!(
                !matches!(outcome, Err(CoreError::TxnBytesTooLarge { .. })),
                "{} bytes within {}: {:?}", bytes, max, outcome
            );
        }
    }
}
