//! The gauges read at a scrape, and one registry per member.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::{CommittedLeaderId, LogId, RaftMetrics, ServerState};
use warden_core::queue_counts::KindCount;
use warden_proto::convert::lock;

use super::*;

fn log_id(index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(3, 1), index)
}

/// The value of the one sample of `series` (`name` or `name{labels}`) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_scrape_reads_raft_the_sessions_and_the_queues() {
    let metrics = Metrics::new().unwrap();
    // A second member in the same process has its own registry (the global one would
    // refuse the same names twice).
    let other = Metrics::new().unwrap();
    other.proposals.with_label_values(&[APPLIED]).inc();

    let mut raft = RaftMetrics::new_initial(1);
    raft.current_term = 3;
    raft.current_leader = Some(1);
    raft.state = ServerState::Leader;
    raft.last_log_index = Some(120);
    raft.last_applied = Some(log_id(118));
    raft.snapshot = Some(log_id(100));
    raft.purged = Some(log_id(90));
    raft.replication =
        Some(BTreeMap::from([(1, Some(log_id(120))), (2, Some(log_id(117))), (3, None)]));
    let queues = [
        KindCount { kind: lock::MUTEX_NAME, holders: 2, waiters: 5 },
        KindCount { kind: lock::SEMAPHORE_NAME, holders: 1, waiters: 0 },
    ];
    let scrape = Scrape {
        raft: &raft,
        commit_index: Some(119),
        sessions: 4,
        queues: &queues,
        lock_prefixes: &[],
    };
    metrics.snapshot_built(Duration::from_millis(20), 4_096);
    let text = metrics.render(&scrape).unwrap();
    let expect = [
        ("warden_raft_term", 3.0),
        ("warden_raft_leader_id", 1.0),
        ("warden_raft_is_leader", 1.0),
        ("warden_raft_last_log_index", 120.0),
        ("warden_raft_commit_index", 119.0),
        ("warden_raft_applied_index", 118.0),
        ("warden_raft_snapshot_index", 100.0),
        ("warden_raft_log_entries", 30.0),
        ("warden_raft_replication_lag_entries{member=\"2\"}", 3.0),
        ("warden_raft_replication_lag_entries{member=\"3\"}", 121.0),
        ("warden_sessions", 4.0),
        ("warden_lock_holders{kind=\"mutex\"}", 2.0),
        ("warden_lock_waiters{kind=\"mutex\"}", 5.0),
        ("warden_lock_holders{kind=\"semaphore\"}", 1.0),
        ("warden_snapshot_duration_seconds_count{kind=\"built\"}", 1.0),
        ("warden_snapshot_duration_seconds_count{kind=\"installed\"}", 0.0),
        ("warden_snapshot_size_bytes", 4_096.0),
        ("warden_proposals_total{result=\"applied\"}", 0.0),
        ("warden_proposals_total{result=\"failed\"}", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    assert_eq!(sample(&text, "warden_raft_replication_lag_entries{member=\"1\"}"), None);

    // A member that stops leading reports no replication lag.
    raft.state = ServerState::Follower;
    raft.current_leader = Some(2);
    raft.replication = None;
    let scrape = Scrape {
        raft: &raft,
        commit_index: Some(119),
        sessions: 4,
        queues: &queues,
        lock_prefixes: &[],
    };
    let text = metrics.render(&scrape).unwrap();
    assert_eq!(sample(&text, "warden_raft_is_leader"), Some(0.0));
    assert!(!text.contains("warden_raft_replication_lag_entries{"), "{text}");
}
