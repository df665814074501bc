//! (c) The invariants hold after every step: live owners of ephemerals, right child counts
//! and cversions, strictly increasing revisions, unique sequential names per parent, no
//! ephemeral with children, and no request applied twice.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use warden_core::{
    Command, CoreError, EventKind, Node, Output, Request, Response, State, invariants,
};

use crate::steps::{Runner, cases, steps};

fn nodes(state: &State) -> Vec<(String, Node)> {
    state.tree().iter().map(|(p, n)| (p.to_owned(), n.clone())).collect()
}

/// Whether the request was refused before its command ran (so nothing was remembered).
fn refused_on_admission(request: &Request, response: &Response) -> bool {
    match &response.outcome {
        Err(CoreError::StaleRequest { .. } | CoreError::InvalidRequestId { .. }) => true,
        Err(CoreError::SessionExpired { id }) => request.session == Some(*id),
        _ => false,
    }
}

/// Every path a successful command created with the sequential flag.
fn sequential_creates(request: &Request, response: &Response) -> Vec<String> {
    let flags: Vec<bool> = match &request.command {
        Command::Create { mode, .. } => vec![mode.sequential],
        Command::Txn { ops, .. } => ops
            .iter()
            .map(|op| matches!(op, warden_core::TxnOp::Create { mode, .. } if mode.sequential))
            .collect(),
        _ => return Vec::new(),
    };
    let outputs = match &response.outcome {
        Ok(Output::TxnCommitted { results }) => results.clone(),
        Ok(o @ Output::Created { .. }) => vec![o.clone()],
        _ => return Vec::new(),
    };
    outputs
        .into_iter()
        .zip(flags)
        .filter_map(|(o, seq)| match o {
            Output::Created { path, .. } if seq => Some(path),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn invariants_hold_after_every_step(steps in steps(100)) {
        let mut runner = Runner::new();
        // (parent path, parent create revision) -> sequential names issued under it.
        let mut issued: BTreeMap<(String, u64), BTreeSet<String>> = BTreeMap::new();
        // (session, seq) -> the first response.
        let mut answered: BTreeMap<(u64, u64), Response> = BTreeMap::new();
        let mut revision = 0;
        // Per lock incarnation (create revision): the highest token granted so far.
        let mut highest: BTreeMap<(String, u64), u64> = BTreeMap::new();
        for step in &steps {
            let before = nodes(&runner.state);
            let (request, applied) = runner.apply(step);
            let broken = invariants::violations(&runner.state);
            prop_assert!(broken.is_empty(), "after {:?}: {:?}", request, broken);

            // Revisions: +1 exactly when something changed; every event carries it; a
            // response carries it, unless it is the remembered answer to a retry.
            let response = &applied.response;
            let expected = if applied.events.is_empty() { revision } else { revision + 1 };
            prop_assert_eq!(runner.state.revision(), expected);
            prop_assert!(applied.events.iter().all(|e| e.revision == expected));
            let replay = match (request.session, request.id) {
                (Some(session), Some(id)) => answered.get(&(session, id.seq)) == Some(response),
                _ => false,
            };
            if !replay {
                prop_assert_eq!(response.revision, expected);
            }
            revision = expected;
            if applied.events.is_empty() {
                prop_assert!(nodes(&runner.state) == before, "no event, yet the tree changed");
            }

            // Stats reported by events match the tree for nodes that still exist.
            for event in &applied.events {
                if event.kind != EventKind::Deleted
                    && let Ok(node) = runner.state.get(&event.path)
                    && applied.events.iter().rev().find(|e| e.path == event.path) == Some(event)
                {
                    prop_assert_eq!(node.stat, event.stat);
                }
            }

            // Fencing: a mutex's new holder, and an election's new leader, has a higher token
            // than every earlier one; there is at most one at any revision; the leader an
            // election reports is its holder.
            let exclusive = |k: &warden_core::queue::QueueKind| {
                matches!(k, warden_core::queue::QueueKind::Mutex | warden_core::queue::QueueKind::Election)
            };
            if let Ok(leader) = runner.state.leader(crate::steps::ELECTION) {
                let holder = runner.state.lock(crate::steps::ELECTION).ok().and_then(|(_, ws)| {
                    ws.into_iter().find(|w| w.info.token.is_some()).map(|w| (w.path, w.session, w.info.token))
                });
                prop_assert_eq!(leader.map(|l| (l.candidate, l.session, Some(l.token))), holder);
            }
            for (lock, _) in crate::steps::LOCKS.iter().filter(|(_, k)| exclusive(k)) {
                if let (Ok(node), Ok((_, waiters))) = (runner.state.get(lock), runner.state.lock(lock)) {
                    let key = (lock.to_string(), node.stat.create_revision);
                    for token in waiters.iter().filter_map(|w| w.info.token) {
                        let best = highest.entry(key.clone()).or_insert(0);
                        prop_assert!(token >= *best, "token {} after {} on {}", token, best, lock);
                        *best = token;
                    }
                    prop_assert!(waiters.iter().filter(|w| w.info.token.is_some()).count() <= 1);
                }
            }

            // Sequential names are never issued twice under one parent (a replayed answer
            // repeats a name without issuing it).
            let issued_now = if replay { Vec::new() } else { sequential_creates(&request, response) };
            for path in issued_now {
                let parent = warden_core::path::parent(&path).unwrap_or("/").to_owned();
                let parent_rev = runner.state.get(&parent).map(|n| n.stat.create_revision).unwrap_or(0);
                prop_assert!(issued.entry((parent, parent_rev)).or_default().insert(path.clone()), "{} issued twice", path);
            }

            // A request id is applied at most once: a repeat returns the first answer
            // unchanged, or is refused.
            if let (Some(session), Some(id)) = (request.session, request.id) {
                match answered.get(&(session, id.seq)) {
                    Some(first) => {
                        prop_assert!(
                            refused_on_admission(&request, response) || response == first,
                            "retry answered {:?}, first {:?}", response, first
                        );
                        prop_assert!(applied.events.is_empty());
                    }
                    None => {
                        if !refused_on_admission(&request, response) {
                            answered.insert((session, id.seq), response.clone());
                        }
                    }
                }
            }
        }
    }
}
