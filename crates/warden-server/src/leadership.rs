//! A line for operators when leadership changes: who leads, in which term. openraft's own
//! logs are off by default (they report every retried RPC and ignored vote as an error or
//! a warning); this and the peer reachability lines (`peer_health`) say what matters.
//! The last [`HISTORY`] changes are also kept, with the wall-clock time this member saw
//! them, for the status page.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use openraft::{Raft, ServerState};
use prometheus::IntCounter;
use tracing::info;
use warden_storage::TypeConfig;

/// How often raft's metrics are looked at (not on every change: they change several times
/// per write).
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// How many leader changes [`LeaderHistory`] keeps.
pub(crate) const HISTORY: usize = 20;

/// A change of leader as this member saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LeaderChange {
    /// When this member noticed it (its wall clock, ms since the Unix epoch; members'
    /// clocks differ, and the notice is up to [`LOOK_EVERY`] late).
    pub at_unix_ms: u64,
    /// The term.
    pub term: u64,
    /// The new leader.
    pub leader_id: u64,
}

/// The last [`HISTORY`] leader changes this member saw, oldest first.
#[derive(Debug, Default)]
pub(crate) struct LeaderHistory(Mutex<VecDeque<LeaderChange>>);

impl LeaderHistory {
    fn push(&self, change: LeaderChange) {
        let mut changes = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if changes.len() == HISTORY {
            changes.pop_front();
        }
        changes.push_back(change);
    }

    /// The changes kept, newest first.
    pub(crate) fn recent(&self) -> Vec<LeaderChange> {
        let changes = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        changes.iter().rev().cloned().collect()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Logs each change of leader, forever (a term that passes without a leader, as a lone
/// member's elections do, is not a change), and counts in `changes` (and keeps in
/// `history`) each leader (or term under a leader) seen that differs from the last one.
pub(crate) async fn log_changes(
    raft: Raft<TypeConfig>,
    changes: IntCounter,
    history: std::sync::Arc<LeaderHistory>,
) {
    let metrics = raft.metrics();
    let mut ticker = tokio::time::interval(LOOK_EVERY);
    let mut last = None;
    let mut last_leader = None;
    loop {
        ticker.tick().await;
        let (leader, term, leads) = {
            let m = metrics.borrow();
            (m.current_leader, m.current_term, m.state == ServerState::Leader)
        };
        let key = leader.map(|l| (l, term, leads));
        if last == Some(key) {
            continue;
        }
        last = Some(key);
        if let Some((leader, term, _)) = key
            && last_leader.replace((leader, term)) != Some((leader, term))
        {
            changes.inc();
            history.push(LeaderChange { at_unix_ms: unix_ms(), term, leader_id: leader });
        }
        match key {
            Some((_, term, true)) => info!(term, "this member is the leader"),
            Some((leader, term, false)) => info!(leader, term, "following the leader"),
            None => info!(term, "no leader known; an election is under way"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_last_changes_newest_first() {
        let history = LeaderHistory::default();
        for term in 1..=(HISTORY as u64 + 5) {
            history.push(LeaderChange { at_unix_ms: term * 10, term, leader_id: term % 3 + 1 });
        }
        let recent = history.recent();
        assert_eq!(recent.len(), HISTORY);
        assert_eq!(recent.first().map(|c| c.term), Some(HISTORY as u64 + 5));
        assert_eq!(recent.last().map(|c| c.term), Some(6));
    }
}
