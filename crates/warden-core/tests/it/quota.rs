//! The data-size quota ([`warden_core::quota`]) under random command sequences: a command
//! is refused for the quota exactly when it would grow the counted size past the quota,
//! and then changes nothing; commands that free space are never refused for it; the size
//! kept as commands run equals a recount after every step, and a snapshot keeps the size,
//! the quota and the rule.

use proptest::prelude::*;
use warden_core::{ApplyContext, Command, CoreError, Output, Request, State, invariants, quota};

use crate::steps::{Runner, cases, steps};

/// A runner whose cluster has a quota of `bytes`.
fn with_quota(bytes: u64) -> Runner {
    let mut runner = Runner::new();
    let ctx = ApplyContext { index: 0, time_ms: 0, term: 1 };
    let set = runner.state.apply(Request::new(Command::SetQuota { bytes }), &ctx);
    assert_eq!(set.response.outcome, Ok(Output::QuotaSet { bytes }));
    runner
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn growth_past_the_quota_is_refused_and_nothing_else_is(
        quota_bytes in 400u64..3_000,
        steps in steps(120),
    ) {
        let mut runner = with_quota(quota_bytes);
        // Request ids seen: a retry is answered with the first response, not run again.
        let mut seen = std::collections::BTreeSet::new();
        for step in &steps {
            let before = runner.state.data_bytes();
            let snapshot_before = runner.state.snapshot().unwrap_or_default();
            let (request, applied) = runner.apply(step);
            let after = runner.state.data_bytes();
            prop_assert_eq!(after, runner.state.recount_data_bytes(), "after {:?}", request);
            let retry = match (request.session, request.id) {
                (Some(session), Some(id)) => !seen.insert((session, id.seq)),
                _ => false,
            };
            match &applied.response.outcome {
                _ if retry => {}
                Err(CoreError::QuotaExceeded { used, needed, quota: q }) => {
                    prop_assert!(quota::may_grow(&request.command), "{:?}", request);
                    prop_assert_eq!(*used, before);
                    prop_assert_eq!(*q, quota_bytes);
                    prop_assert!(before + needed > quota_bytes);
                    prop_assert!(*needed > 0);
                    // Nothing changed but what a session remembers for retries.
                    prop_assert_eq!(after, before);
                    prop_assert!(applied.events.is_empty());
                    if request.id.is_none() {
                        prop_assert_eq!(runner.state.snapshot().unwrap_or_default(), snapshot_before);
                    }
                    prop_assert!(runner.state.usage().alarm);
                }
                _ if quota::may_grow(&request.command) => {
                    // Grown only within the quota.
                    prop_assert!(after <= before || after <= quota_bytes,
                        "{:?} grew {} -> {} past {}", request, before, after, quota_bytes);
                }
                _ => {}
            }
            let broken = invariants::violations(&runner.state);
            prop_assert!(broken.is_empty(), "after {:?}: {:?}", request, broken);
        }
        let restored = runner.restored();
        prop_assert_eq!(restored.state.data_bytes(), runner.state.data_bytes());
        prop_assert_eq!(restored.state.usage().quota, quota_bytes);
    }

    #[test]
    fn commands_that_free_space_are_never_refused_for_it(steps in steps(120)) {
        // A quota of 1 byte: every command that grows is refused, the others all pass.
        let mut runner = with_quota(1);
        let mut seen = std::collections::BTreeSet::new();
        for step in &steps {
            let before = runner.state.data_bytes();
            let (request, applied) = runner.apply(step);
            let refused = matches!(applied.response.outcome, Err(CoreError::QuotaExceeded { .. }));
            let retry = match (request.session, request.id) {
                (Some(session), Some(id)) => !seen.insert((session, id.seq)),
                _ => false,
            };
            if !quota::may_grow(&request.command) && !retry {
                prop_assert!(!refused, "{:?}", request);
            }
            prop_assert!(runner.state.data_bytes() <= before || !quota::may_grow(&request.command),
                "{:?} grew the state past a 1-byte quota", request);
        }
    }

    #[test]
    fn the_counted_size_survives_snapshot_and_restore(steps in steps(100)) {
        let mut runner = Runner::new();
        for step in &steps {
            runner.apply(step);
        }
        let restored = runner.restored();
        prop_assert_eq!(restored.state.data_bytes(), runner.state.data_bytes());
        prop_assert_eq!(restored.state.data_bytes(), restored.state.recount_data_bytes());
        let meta = runner.state.meta();
        let pieces = State::from_parts(
            meta,
            runner.state.tree().iter().map(|(p, n)| (p.to_owned(), n.clone())),
            runner.state.sessions().cloned(),
            Vec::new(),
        );
        prop_assert_eq!(pieces.data_bytes(), runner.state.data_bytes());
    }
}
