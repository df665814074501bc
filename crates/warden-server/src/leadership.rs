//! A line for operators when leadership changes: who leads, in which term. openraft's own
//! logs are off by default (they report every retried RPC and ignored vote as an error or
//! a warning); this and the peer reachability lines (`peer_health`) say what matters.

use std::time::Duration;

use openraft::{Raft, ServerState};
use prometheus::IntCounter;
use tracing::info;
use warden_storage::TypeConfig;

/// How often raft's metrics are looked at (not on every change: they change several times
/// per write).
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Logs each change of leader, forever (a term that passes without a leader, as a lone
/// member's elections do, is not a change), and counts in `changes` each leader (or term
/// under a leader) seen that differs from the last one.
pub(crate) async fn log_changes(raft: Raft<TypeConfig>, changes: IntCounter) {
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
        }
        match key {
            Some((_, term, true)) => info!(term, "this member is the leader"),
            Some((leader, term, false)) => info!(leader, term, "following the leader"),
            None => info!(term, "no leader known; an election is under way"),
        }
    }
}
