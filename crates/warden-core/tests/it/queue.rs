//! The who-holds rule over random arrivals and departures: at most one exclusive holder,
//! never more permits than the semaphore has, holders always the earliest waiters (FIFO),
//! someone always holds when anyone waits (an election is led whenever it has candidates; a
//! double barrier lets nobody through before all its members are in, then everybody), a
//! set barrier lets nobody through, and a grant is never taken back by the queue.

use proptest::prelude::*;
use warden_core::queue::{LockKind, QueueKind, WaitMode, holders, validate};

use crate::steps::cases;

#[derive(Debug, Clone)]
enum Op {
    Arrive(WaitMode),
    /// Leave: the waiter at this position (modulo the queue's length).
    Leave(usize),
}

fn kind() -> impl Strategy<Value = LockKind> {
    prop_oneof![
        Just(LockKind::Mutex),
        Just(LockKind::ReadWrite),
        (1u32..5).prop_map(|permits| LockKind::Semaphore { permits }),
        Just(QueueKind::Election),
        Just(QueueKind::Barrier),
        (1u32..5).prop_map(|count| QueueKind::DoubleBarrier { count }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop_oneof![
            Just(WaitMode::Exclusive),
            Just(WaitMode::Shared),
            (0u32..6).prop_map(WaitMode::Permits),
            Just(WaitMode::Member),
        ]
        .prop_map(Op::Arrive),
        2 => any::<usize>().prop_map(Op::Leave),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn the_rule_is_safe_fair_live_and_stable(kind in kind(), ops in prop::collection::vec(op(), 1..80)) {
        // (waiter id, mode), in arrival order.
        let mut queue: Vec<(u32, WaitMode)> = Vec::new();
        let mut next_id = 0;
        let mut held: Vec<u32> = Vec::new();
        for op in ops {
            match op {
                Op::Arrive(mode) => {
                    // Requests that do not fit the lock are refused before they queue.
                    if validate(kind, mode).is_ok() {
                        queue.push((next_id, mode));
                        next_id += 1;
                    }
                }
                Op::Leave(i) if !queue.is_empty() => {
                    let i = i % queue.len();
                    queue.remove(i);
                }
                Op::Leave(_) => {}
            }
            let modes: Vec<WaitMode> = queue.iter().map(|(_, m)| *m).collect();
            let granted = queue.iter().take_while(|(id, _)| held.contains(id)).count();
            let h = holders(kind, &modes, granted);
            let holding: Vec<u32> = queue[..h].iter().map(|(id, _)| *id).collect();
            prop_assert!(h <= queue.len());
            match kind {
                QueueKind::Barrier => prop_assert_eq!(h, 0, "a set barrier lets nobody through"),
                QueueKind::DoubleBarrier { count } => {
                    let open = granted > 0 || queue.len() >= count as usize;
                    prop_assert_eq!(h, if open { queue.len() } else { 0 }, "all or none of the members");
                }
                _ => prop_assert_eq!(h > 0, !queue.is_empty(), "someone holds whenever anyone waits"),
            }
            match kind {
                LockKind::Mutex | QueueKind::Election => prop_assert!(h <= 1),
                LockKind::ReadWrite => {
                    let exclusive = modes[..h].contains(&WaitMode::Exclusive);
                    prop_assert!(!exclusive || h == 1, "a writer holds alone");
                }
                LockKind::Semaphore { permits } => {
                    let used: u32 = modes[..h].iter().map(|m| match m { WaitMode::Permits(n) => *n, _ => permits }).sum();
                    prop_assert!(used <= permits, "{} permits of {} used", used, permits);
                }
                QueueKind::Barrier | QueueKind::DoubleBarrier { .. } => {}
            }
            // A grant is taken back only by its holder leaving.
            for id in &held {
                if queue.iter().any(|(w, _)| w == id) {
                    prop_assert!(holding.contains(id), "waiter {} lost its grant", id);
                }
            }
            held = holding;
        }
    }
}
