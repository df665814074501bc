//! A member's Prometheus metrics: one [`prometheus::Registry`] per member (tests and
//! `warden dev` run several members in one process; the crate's global registry would
//! mix them), served as text on `GET /metrics`.
//!
//! Two kinds of metric:
//! - counted as things happen: leader changes (`leadership`), proposals and their latency
//!   (`batch`), watch streams and the events sent on them (`watch_service`), gRPC requests
//!   (`grpc_metrics`), the raft log's fsyncs and snapshots (the storage's observer);
//! - read at each scrape ([`Metrics::render`]): raft's term, leader and indexes (openraft's
//!   metrics), the sessions, and the holders and waiters of every queue by kind (counted
//!   by `warden_core::queue_counts` from the index of ephemeral nodes, under the state's
//!   read lock: a few milliseconds for 100,000 waiters, nothing proportional to the
//!   namespace), and the lock statistics by prefix (`lock_metrics`: the replicated
//!   statistics of at most 10,000 locks summed into a bounded number of prefixes).
//!
//! Labels are bounded: gRPC methods are the public API's (`warden_proto::CLIENT_METHODS`,
//! anything else is `unknown`), codes are gRPC's 17, queue kinds are six, and the
//! replication lag is labelled by member id (the membership's). Names follow Prometheus':
//! `warden_` first, the unit last (`_seconds`, `_bytes`, `_total` for counters).

use std::time::Duration;

use openraft::{RaftMetrics, ServerState};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use warden_storage::{NodeId, StorageObserver, WardenNode};

/// The content type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `result` of a proposal answered by the state machine.
pub(crate) const APPLIED: &str = "applied";
/// The `result` of a proposal that was not applied.
pub(crate) const FAILED: &str = "failed";

/// Buckets for request and proposal latencies, seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Buckets for fsyncs, seconds: 0.1 ms to 1 s.
const FSYNC_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Buckets for snapshots, seconds: 10 ms to 5 min.
const SNAPSHOT_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0];

/// One member's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    term: IntGauge,
    leader_id: IntGauge,
    is_leader: IntGauge,
    /// Leader changes this member saw (counted by `leadership`).
    pub(crate) leader_changes: IntCounter,
    last_log_index: IntGauge,
    commit_index: IntGauge,
    applied_index: IntGauge,
    snapshot_index: IntGauge,
    log_entries: IntGauge,
    replication_lag: IntGaugeVec,
    fsync_seconds: Histogram,
    snapshot_seconds: HistogramVec,
    snapshot_bytes: IntGauge,
    sessions: IntGauge,
    lock_holders: IntGaugeVec,
    lock_waiters: IntGaugeVec,
    /// Watch streams open on the client port.
    pub(crate) watch_streams: IntGauge,
    /// Events sent on watch streams.
    pub(crate) watch_events_sent: IntCounter,
    /// Requests proposed through raft (each batched request counts once), by result:
    /// `applied` (answered from the state machine, a refusal by the core included) or
    /// `failed` (not applied: not the leader, raft stopped, a lost leadership).
    pub(crate) proposals: IntCounterVec,
    /// From a request's proposal to its answer, for applied requests, seconds.
    pub(crate) proposal_seconds: Histogram,
    /// gRPC requests by method and code (counted by `grpc_metrics`).
    pub(crate) grpc_requests: IntCounterVec,
    /// gRPC request latency by method, seconds.
    pub(crate) grpc_seconds: HistogramVec,
    /// The space metrics (`crate::space`), set by [`Metrics::set_space`].
    space: SpaceGauges,
}

/// The alarms, the counted data and its quota, and the free disk.
struct SpaceGauges {
    alarm: IntGaugeVec,
    data_bytes: IntGauge,
    quota_bytes: IntGauge,
    disk_free_bytes: IntGauge,
}

impl SpaceGauges {
    fn new(r: &Registry) -> prometheus::Result<SpaceGauges> {
        let gauges = SpaceGauges {
            alarm: gauges(
                r,
                "warden_alarm",
                "1 while an alarm is in force on this member, by kind (nospace: its disk is below space.min_free_bytes; quota: the cluster's space.quota_backend_bytes is used up); writes that add data are refused meanwhile.",
                &["kind"],
            )?,
            data_bytes: gauge(
                r,
                "warden_data_size_bytes",
                "The cluster's data as its quota counts it (paths, values, per-node and per-session overhead), on this member's replica.",
            )?,
            quota_bytes: gauge(
                r,
                "warden_quota_bytes",
                "The cluster's data-size quota (space.quota_backend_bytes); 0 when none.",
            )?,
            disk_free_bytes: gauge(
                r,
                "warden_disk_free_bytes",
                "Bytes free on the disk under this member's data directory, as last read (every space.check_interval_ms).",
            )?,
        };
        // Every kind from the start, so that a dashboard sees 0 rather than nothing.
        for kind in warden_proto::ALL_ALARMS {
            gauges.alarm.with_label_values(&[*kind]).set(0);
        }
        Ok(gauges)
    }
}

/// What is read at a scrape besides openraft's metrics.
pub(crate) struct Scrape<'a> {
    /// Openraft's metrics of this member.
    pub raft: &'a RaftMetrics<NodeId, WardenNode>,
    /// The commit index this member knows, if any.
    pub commit_index: Option<u64>,
    /// Live sessions.
    pub sessions: usize,
    /// Holders and waiters by kind of queue.
    pub queues: &'a [warden_core::queue_counts::KindCount],
    /// Lock statistics by prefix (`crate::lock_metrics`).
    pub lock_prefixes: &'a [warden_core::lock_stats::PrefixStats],
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let gauge = IntGauge::new(name, help)?;
    registry.register(Box::new(gauge.clone()))?;
    Ok(gauge)
}

fn gauges(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let gauges = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(gauges.clone()))?;
    Ok(gauges)
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let counter = IntCounter::new(name, help)?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

fn counters(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let counters = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(counters.clone()))?;
    Ok(counters)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> prometheus::Result<Histogram> {
    let histogram = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
    registry.register(Box::new(histogram.clone()))?;
    Ok(histogram)
}

fn histograms(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let histograms = HistogramVec::new(opts, labels)?;
    registry.register(Box::new(histograms.clone()))?;
    Ok(histograms)
}

/// Entries in the log: from the one after the last purged to the last.
fn log_entries(raft: &RaftMetrics<NodeId, WardenNode>) -> u64 {
    match (raft.last_log_index, raft.purged) {
        (None, _) => 0,
        (Some(last), None) => last + 1,
        (Some(last), Some(purged)) => last.saturating_sub(purged.index),
    }
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Metrics {
    /// A member's metrics in a registry of their own. Fails only on a name or label that
    /// Prometheus refuses, or a name registered twice: a bug, found by any test.
    pub(crate) fn new() -> prometheus::Result<Metrics> {
        let r = Registry::new();
        let kind = &["kind"];
        let metrics = Metrics {
            term: gauge(&r, "warden_raft_term", "The raft term this member is in.")?,
            leader_id: gauge(
                &r,
                "warden_raft_leader_id",
                "The leader this member knows of; 0 when none.",
            )?,
            is_leader: gauge(
                &r,
                "warden_raft_is_leader",
                "1 while this member is the leader, else 0.",
            )?,
            leader_changes: counter(
                &r,
                "warden_raft_leader_changes_total",
                "Changes of leader (or of term under a leader) this member saw.",
            )?,
            last_log_index: gauge(
                &r,
                "warden_raft_last_log_index",
                "The index of the last entry in this member's log.",
            )?,
            commit_index: gauge(
                &r,
                "warden_raft_commit_index",
                "The commit index this member knows (a follower: the leader's, as it last told it).",
            )?,
            applied_index: gauge(
                &r,
                "warden_raft_applied_index",
                "The index of the last entry applied to this member's state.",
            )?,
            snapshot_index: gauge(
                &r,
                "warden_raft_snapshot_index",
                "The last entry covered by this member's current snapshot; 0 when none.",
            )?,
            log_entries: gauge(
                &r,
                "warden_raft_log_entries",
                "Entries in this member's log (not yet purged behind a snapshot).",
            )?,
            replication_lag: gauges(
                &r,
                "warden_raft_replication_lag_entries",
                "On the leader: entries in its log that a member has not acknowledged yet.",
                &["member"],
            )?,
            fsync_seconds: histogram(
                &r,
                "warden_storage_fsync_duration_seconds",
                "Durable writes of the raft log (group-committed appends, votes), fsync included.",
                FSYNC_BUCKETS,
            )?,
            snapshot_seconds: histograms(
                &r,
                "warden_snapshot_duration_seconds",
                "Snapshots this member built or installed (kind=built|installed), and how long each took.",
                SNAPSHOT_BUCKETS,
                kind,
            )?,
            snapshot_bytes: gauge(
                &r,
                "warden_snapshot_size_bytes",
                "The size of the last snapshot built or installed by this member.",
            )?,
            sessions: gauge(&r, "warden_sessions", "Live sessions.")?,
            lock_holders: gauges(
                &r,
                "warden_lock_holders",
                "Granted waiters of all queues, by kind (mutex, rwlock, semaphore, election, barrier, double_barrier).",
                kind,
            )?,
            lock_waiters: gauges(
                &r,
                "warden_lock_waiters",
                "Waiters not granted yet, by kind of queue.",
                kind,
            )?,
            watch_streams: gauge(
                &r,
                "warden_watch_streams",
                "Watch streams open on this member's client port.",
            )?,
            watch_events_sent: counter(
                &r,
                "warden_watch_events_sent_total",
                "Events this member sent on watch streams.",
            )?,
            proposals: counters(
                &r,
                "warden_proposals_total",
                "Requests this member proposed through raft, by result (applied: answered by the state machine; failed: not applied, e.g. not the leader).",
                &["result"],
            )?,
            proposal_seconds: histogram(
                &r,
                "warden_proposal_duration_seconds",
                "From a request's proposal to its answer, for requests applied.",
                LATENCY_BUCKETS,
            )?,
            grpc_requests: counters(
                &r,
                "warden_grpc_requests_total",
                "gRPC requests on the client port, by method and status code.",
                &["method", "code"],
            )?,
            grpc_seconds: histograms(
                &r,
                "warden_grpc_request_duration_seconds",
                "gRPC requests on the client port until their status, by method (a stream's whole life for Watch, KeepAlive and Observe).",
                LATENCY_BUCKETS,
                &["method"],
            )?,
            space: SpaceGauges::new(&r)?,
            registry: r,
        };
        // Both series from the start, so that a dashboard sees 0 rather than nothing.
        for kind in ["built", "installed"] {
            metrics.snapshot_seconds.with_label_values(&[kind]);
        }
        for result in [APPLIED, FAILED] {
            metrics.proposals.with_label_values(&[result]);
        }
        Ok(metrics)
    }

    /// Sets the space gauges: the alarms in force, the data's usage and the free disk.
    pub(crate) fn set_space(
        &self,
        alarms: &[crate::space::Alarm],
        usage: &warden_core::quota::Usage,
        disk_free: Option<u64>,
    ) {
        for kind in warden_proto::ALL_ALARMS {
            let on = alarms.iter().any(|a| a.kind == *kind);
            self.space.alarm.with_label_values(&[*kind]).set(i64::from(on));
        }
        self.space.data_bytes.set(int(usage.used));
        self.space.quota_bytes.set(int(usage.quota));
        self.space.disk_free_bytes.set(int(disk_free.unwrap_or(0)));
    }

    /// Reads the gauges from `scrape` and encodes every metric in the text format.
    pub(crate) fn render(&self, scrape: &Scrape<'_>) -> Result<String, prometheus::Error> {
        let raft = scrape.raft;
        self.term.set(int(raft.current_term));
        self.leader_id.set(int(raft.current_leader.unwrap_or(0)));
        self.is_leader.set(i64::from(raft.state == ServerState::Leader));
        self.last_log_index.set(int(raft.last_log_index.unwrap_or(0)));
        self.commit_index.set(int(scrape.commit_index.unwrap_or(0)));
        self.applied_index.set(int(raft.last_applied.map_or(0, |l| l.index)));
        self.snapshot_index.set(int(raft.snapshot.map_or(0, |l| l.index)));
        self.log_entries.set(int(log_entries(raft)));
        // Only the leader replicates; a member that stopped leading drops the series.
        self.replication_lag.reset();
        if let Some(replication) = &raft.replication {
            let last = raft.last_log_index.unwrap_or(0);
            for (member, matched) in replication.iter().filter(|(id, _)| **id != raft.id) {
                let lag = match matched {
                    Some(m) => last.saturating_sub(m.index),
                    None => last + 1,
                };
                self.replication_lag.with_label_values(&[&member.to_string()]).set(int(lag));
            }
        }
        self.sessions.set(int(scrape.sessions as u64));
        for count in scrape.queues {
            self.lock_holders.with_label_values(&[count.kind]).set(int(count.holders));
            self.lock_waiters.with_label_values(&[count.kind]).set(int(count.waiters));
        }
        let mut families = self.registry.gather();
        families.extend(crate::lock_metrics::families(scrape.lock_prefixes));
        let mut text = Vec::new();
        TextEncoder::new().encode(&families, &mut text)?;
        String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

impl StorageObserver for Metrics {
    fn log_synced(&self, took: Duration) {
        self.fsync_seconds.observe(took.as_secs_f64());
    }

    fn snapshot_built(&self, took: Duration, bytes: usize) {
        self.snapshot_seconds.with_label_values(&["built"]).observe(took.as_secs_f64());
        self.snapshot_bytes.set(int(bytes as u64));
    }

    fn snapshot_installed(&self, took: Duration, bytes: usize) {
        self.snapshot_seconds.with_label_values(&["installed"]).observe(took.as_secs_f64());
        self.snapshot_bytes.set(int(bytes as u64));
    }
}

#[cfg(test)]
#[path = "metrics_test.rs"]
mod tests;
