//! (a) Replicas applying the same commands agree byte for byte; (b) a snapshot taken at any
//! point and restored continues exactly as if it had never been taken; (d) a store that
//! writes only what `take_changes` reports holds the same state as a snapshot.

use std::collections::BTreeMap;

use proptest::prelude::*;
use warden_core::lock_stats::LockStats;
use warden_core::{Node, Session, State};

use crate::steps::{Runner, cases, steps};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn replicas_agree(steps in steps(80)) {
        let (mut a, mut b) = (Runner::new(), Runner::new());
        for step in &steps {
            let (_, from_a) = a.apply(step);
            let (_, from_b) = b.apply(step);
            prop_assert_eq!(from_a, from_b);
        }
        prop_assert_eq!(a.state.snapshot().ok(), b.state.snapshot().ok());
    }

    #[test]
    fn snapshot_restore_continue_equals_never_snapshotting(steps in steps(80), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(steps.len() + 1);
        let mut straight = Runner::new();
        for step in &steps[..cut] {
            straight.apply(step);
        }
        let mut restored = straight.restored();
        prop_assert_eq!(restored.state.snapshot().ok(), straight.state.snapshot().ok());
        for step in &steps[cut..] {
            let (_, expected) = straight.apply(step);
            let (_, got) = restored.apply(step);
            prop_assert_eq!(got, expected);
        }
        prop_assert_eq!(restored.state.snapshot().ok(), straight.state.snapshot().ok());
    }

    #[test]
    fn incremental_persistence_equals_the_state(steps in steps(80), flush_every in 1usize..8) {
        let mut runner = Runner::new();
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut sessions: BTreeMap<u64, Session> = BTreeMap::new();
        let mut lock_stats: BTreeMap<String, LockStats> = BTreeMap::new();
        for (i, step) in steps.iter().enumerate() {
            runner.apply(step);
            if i % flush_every != 0 && i + 1 != steps.len() {
                continue;
            }
            let changes = runner.state.take_changes();
            for path in changes.nodes {
                match runner.state.tree().get(&path) {
                    Some(node) => nodes.insert(path, node.clone()),
                    None => nodes.remove(&path),
                };
            }
            for id in changes.sessions {
                match runner.state.session(id) {
                    Some(session) => sessions.insert(id, session.clone()),
                    None => sessions.remove(&id),
                };
            }
            for path in changes.lock_stats {
                match runner.state.lock_stats_table().get(&path) {
                    Some(stats) => lock_stats.insert(path, *stats),
                    None => lock_stats.remove(&path),
                };
            }
            let loaded = State::from_parts(
                runner.state.meta(),
                nodes.iter().map(|(p, n)| (p.clone(), n.clone())),
                sessions.values().cloned(),
                lock_stats.iter().map(|(p, s)| (p.clone(), *s)),
            );
            prop_assert_eq!(loaded.snapshot().ok(), runner.state.snapshot().ok());
        }
    }
}
