//! (a) Replicas applying the same commands agree byte for byte; (b) a snapshot taken at any
//! point and restored continues exactly as if it had never been taken.

use proptest::prelude::*;

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
}
