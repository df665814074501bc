//! The fault-injection suite against real `warden server` processes (warden-testkit): a
//! short run in CI, a long one by flag. Its workloads include an election (one leader per
//! term, fenced writes by leaders, Observe) and a resource kind's version rotation (no id
//! held under two versions at once, fenced writes per id, every rotation switched), whose
//! counts both runs check.
//!
//! ```sh
//! cargo test -p warden --test it faults::smoke -- --nocapture
//! WARDEN_FAULT_SEED=7 cargo test --release -p warden --test it faults::long -- --ignored --nocapture
//! ```

use warden_testkit::suite::{RunConfig, Summary, run};

fn seed() -> u64 {
    std::env::var("WARDEN_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_261_124)
}

/// Prints the summary line (and the first violations) straight to stderr: libtest
/// captures `eprintln!`, and the run's summary must show in CI's log even when it passes.
fn report(summary: &Summary) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    writeln!(err, "{}", summary.line()).ok();
    for (checker, found) in &summary.violations {
        for v in found.iter().take(20) {
            writeln!(err, "  {checker}: {v}").ok();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke() {
    let config = RunConfig::smoke(env!("CARGO_BIN_EXE_warden"), seed());
    let summary = run(config).await.unwrap();
    report(&summary);
    assert_eq!(summary.total_violations(), 0, "{}", summary.line());
    assert!(summary.total_ops() >= 10_000, "too few operations: {}", summary.line());
    assert!(summary.fault_count >= 20, "too few faults: {}", summary.line());
    assert_workloads_ran(&summary, 20, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the long run: 5 members, 200,000 operations, 300 faults (run with --ignored)"]
async fn long() {
    let config = RunConfig::long(env!("CARGO_BIN_EXE_warden"), seed());
    let summary = run(config).await.unwrap();
    report(&summary);
    assert_eq!(summary.total_violations(), 0, "{}", summary.line());
    assert!(summary.total_ops() >= 200_000, "too few operations: {}", summary.line());
    assert!(summary.fault_count >= 300, "too few faults: {}", summary.line());
    assert_workloads_ran(&summary, 500, 50);
}

/// The election workload led at least `leaderships` times, its leaders' fenced writes
/// applied, and its observer saw changes; the rotation workload switched at least
/// `rotations` times and its holders' fenced writes applied: the election and rotation
/// checkers judged something.
fn assert_workloads_ran(summary: &Summary, leaderships: u64, rotations: u64) {
    let ops = |name: &str| summary.ops.get(name).copied().unwrap_or(0);
    assert!(ops("leaderships") >= leaderships, "too few leaderships: {}", summary.line());
    assert!(ops("leader_writes") > 0, "no fenced leader writes: {}", summary.line());
    assert!(ops("leader_changes") > 0, "no leader changes observed: {}", summary.line());
    assert!(ops("rotations") >= rotations, "too few rotations switched: {}", summary.line());
    assert!(ops("rot_holds") > 0, "no ids held: {}", summary.line());
    assert!(ops("rot_writes") > 0, "no fenced id writes applied: {}", summary.line());
}
