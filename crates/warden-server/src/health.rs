//! `GET /health`: whether this member is ready, for load balancers and orchestrators.
//!
//! Ready (200) means a linearizable request made through this member can succeed now:
//! it knows a leader, and
//! - as the leader, it heard from a quorum within an election timeout (the same window
//!   after which it refuses writes, see `Shared::write`);
//! - as a follower or learner (which send clients on to the leader), it is at most
//!   `health.max_lag_entries` entries behind the leader's commit index, as the leader last
//!   told it in an AppendEntries (see [`LeaderCommit`]).
//!
//! Otherwise 503 with the reason: shutting down, raft stopped, no leader, no quorum, N
//! entries behind the leader, or an alarm in force (`crate::space`: this member's disk
//! below its reserve, or the cluster's quota used up; as etcd's `/health` with a NOSPACE
//! alarm, although reads still work). The decision ([`assess`]) is a pure function of what the
//! member observed ([`Facts`]), tested case by case.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::ServerState;
use serde::Serialize;

use crate::cluster_service::role_name;
use crate::shared::Shared;
use crate::space::Alarm;

/// How long [`Facts::observe`] waits for raft's own committed index before it does
/// without (raft's loop is busy or stopped).
const RAFT_STATE_PATIENCE: Duration = Duration::from_millis(500);

/// The leader's commit index as this member last heard it (the `leader_commit` of the
/// AppendEntries it accepted). openraft's own committed index on a follower stops at the
/// end of the follower's log, so it cannot say how far behind a follower is; this can.
#[derive(Debug, Default)]
pub(crate) struct LeaderCommit(AtomicU64);

impl LeaderCommit {
    /// An accepted AppendEntries carried `index` as the leader's commit.
    pub(crate) fn heard(&self, index: Option<u64>) {
        if let Some(index) = index {
            // Stored plus one: 0 is "never heard" (index 0 is the first entry).
            self.0.fetch_max(index.saturating_add(1), Ordering::Relaxed);
        }
    }

    /// The largest commit index heard, if any.
    pub(crate) fn get(&self) -> Option<u64> {
        self.0.load(Ordering::Relaxed).checked_sub(1)
    }
}

/// What the member knows of itself, read at a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    /// This member's id.
    pub member_id: u64,
    /// Its raft role.
    pub state: ServerState,
    /// The leader it knows of.
    pub leader_id: Option<u64>,
    /// Its term.
    pub term: u64,
    /// The last entry applied to its state.
    pub applied_index: u64,
    /// The commit index it knows: its own, or the leader's as last heard, whichever is
    /// larger.
    pub commit_index: Option<u64>,
    /// As leader: how long since a quorum acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// Why raft stopped, if it did.
    pub stopped: Option<String>,
    /// The member is shutting down.
    pub shutting_down: bool,
    /// The member was removed from the cluster.
    pub removed: bool,
    /// The alarms in force (`crate::space`).
    pub alarms: Vec<Alarm>,
}

impl Facts {
    /// Reads them from the member's raft.
    pub(crate) async fn observe(
        shared: &Shared,
        leader_commit: &LeaderCommit,
        shutting_down: bool,
    ) -> Facts {
        let metrics = shared.raft.metrics().borrow().clone();
        let own = tokio::time::timeout(
            RAFT_STATE_PATIENCE,
            shared.raft.with_raft_state(|st| st.committed.map(|l| l.index)),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
        let commit_index = own.max(leader_commit.get());
        let stopped = match (&metrics.running_state, metrics.state) {
            (Err(fatal), _) => Some(fatal.to_string()),
            (Ok(()), ServerState::Shutdown) => Some("raft was shut down".to_owned()),
            _ => None,
        };
        Facts {
            member_id: shared.id,
            state: metrics.state,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            commit_index,
            millis_since_quorum_ack: metrics.millis_since_quorum_ack,
            stopped,
            shutting_down,
            removed: shared.removal.is_removed(),
            alarms: crate::space::alarms(shared),
        }
    }
}

/// The answer to `GET /health`, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// This member's id.
    pub member_id: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub role: &'static str,
    /// The leader this member knows of; null when none.
    pub leader_id: Option<u64>,
    /// Its term.
    pub term: u64,
    /// The last entry applied to its state.
    pub applied_index: u64,
    /// The commit index it knows; null when it knows none.
    pub commit_index: Option<u64>,
    /// Whether a linearizable request made through this member can succeed now.
    pub linearizable: bool,
    /// Why not, when not; null when ready.
    pub reason: Option<String>,
    /// The alarms in force: `{kind, message}`, kind `nospace` or `quota`.
    pub alarms: Vec<Alarm>,
}

impl Health {
    /// Whether the answer is 200 (else 503).
    pub(crate) fn ready(&self) -> bool {
        self.linearizable
    }
}

/// Why a member with these facts is not ready, if it is not.
fn not_ready(facts: &Facts, max_lag_entries: u64, quorum_window_ms: u64) -> Option<String> {
    if facts.shutting_down {
        return Some("shutting down".to_owned());
    }
    if facts.removed {
        return Some(crate::removal::REMOVED_MESSAGE.to_owned());
    }
    if let Some(why) = &facts.stopped {
        return Some(format!("raft stopped: {why}"));
    }
    if let Some(alarm) = facts.alarms.first() {
        return Some(format!("alarm {}: {}", alarm.kind, alarm.message));
    }
    if facts.leader_id.is_none() {
        return Some("no leader".to_owned());
    }
    if facts.state == ServerState::Leader {
        return facts
            .millis_since_quorum_ack
            .filter(|ms| *ms > quorum_window_ms)
            .map(|ms| format!("no quorum: the leader has not heard from a majority for {ms} ms"));
    }
    let behind = facts.commit_index.unwrap_or(0).saturating_sub(facts.applied_index);
    (behind > max_lag_entries).then(|| {
        format!("{behind} entries behind the leader (health.max_lag_entries is {max_lag_entries})")
    })
}

/// The health of a member with these facts: not ready past `max_lag_entries` behind the
/// leader, or as a leader not heard from a quorum for more than `quorum_window_ms`.
pub(crate) fn assess(facts: &Facts, max_lag_entries: u64, quorum_window_ms: u64) -> Health {
    let reason = not_ready(facts, max_lag_entries, quorum_window_ms);
    Health {
        status: if reason.is_none() { "ok" } else { "unavailable" },
        member_id: facts.member_id,
        role: role_name(facts.state),
        leader_id: facts.leader_id,
        term: facts.term,
        applied_index: facts.applied_index,
        commit_index: facts.commit_index,
        linearizable: reason.is_none(),
        reason,
        alarms: facts.alarms.clone(),
    }
}

#[cfg(test)]
#[path = "health_test.rs"]
mod tests;
