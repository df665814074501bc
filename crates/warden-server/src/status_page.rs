//! The status page: `GET /` is one HTML page (`status_page.html`, no outside resources)
//! whose script reads `GET /status` every two seconds and draws it; `GET /status` is the
//! JSON document built here from what this member knows:
//!
//! - the member (role, term, indexes) and its `/health` verdict;
//! - the members, with their replication lag when this member leads (only the leader
//!   knows what each follower has); on a follower, its own lag behind the leader's commit
//!   as last heard, and the others' as unknown;
//! - sessions, and holders and waiters by kind of queue;
//! - the busiest locks (most total wait, `warden_core::lock_stats`) with their holders
//!   (session, identity, token, mode) and how many wait;
//! - the last leader changes this member saw (`leadership`).
//!
//! Like the rest of the HTTP port it shows no value. It does show lock paths and holders'
//! identities: when an access policy is in force they are left out (the locks' counts
//! stay), since the operators' endpoints make no ACL check (on plain HTTP they cannot
//! tell who asks); `warden lock stats` and `warden lock status`, and the REST API, show
//! them to whoever the policy lets read them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use warden_core::State as CoreState;
use warden_core::queue_counts::KindCount;
use warden_core::recipe;
use warden_proto::convert::lock::wait_mode_name;

use crate::health::{Health, assess};
use crate::http::{HttpState, facts, json};
use crate::leadership::LeaderChange;

/// The page itself.
const PAGE: &str = include_str!("status_page.html");

/// How many of the busiest locks the page lists.
pub(crate) const BUSIEST_LOCKS: usize = 10;
/// How many holders of one lock it lists (a semaphore may have many).
pub(crate) const HOLDERS_SHOWN: usize = 10;

/// `GET /`.
pub(crate) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page loads nothing from elsewhere and runs only its own script.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        PAGE,
    )
        .into_response()
}

/// A member as the page shows it.
#[derive(Debug, Serialize)]
struct MemberRow {
    id: u64,
    client_addr: String,
    raft_addr: String,
    /// "voter" or "learner".
    membership: String,
    leader: bool,
    /// Log entries it is behind the leader's last entry, when known here.
    lag_entries: Option<u64>,
}

/// One holder of a lock.
#[derive(Debug, Serialize)]
struct Holder {
    session: u64,
    identity: String,
    token: Option<u64>,
    mode: String,
}

/// One of the busiest locks.
#[derive(Debug, Serialize)]
struct BusyLock {
    path: String,
    acquisitions: u64,
    contended: u64,
    mean_wait_ms: Option<u64>,
    mean_hold_ms: Option<u64>,
    /// Its holders now, at most [`HOLDERS_SHOWN`].
    holders: Vec<Holder>,
    /// How many hold now (all of them).
    holding: u64,
    waiting: u64,
}

/// The locks section.
#[derive(Debug, Serialize)]
struct Locks {
    /// Holders and waiters by kind of queue.
    by_kind: Vec<KindRow>,
    /// How many locks have statistics.
    tracked: u64,
    /// The busiest, most total wait first; empty when `hidden`.
    busiest: Vec<BusyLock>,
    /// Why lock paths and identities are not shown, if they are not.
    hidden: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct KindRow {
    kind: &'static str,
    holders: u64,
    waiters: u64,
}

/// The whole document.
#[derive(Debug, Serialize)]
struct Overview {
    health: Health,
    revision: u64,
    members: Vec<MemberRow>,
    sessions: usize,
    locks: Locks,
    leader_changes: Vec<LeaderChange>,
}

/// What is left out when a policy is in force.
const HIDDEN: &str = "an access policy is in force: lock paths and identities are not shown on this page; use `warden lock stats` and `warden lock status`";

fn kind_rows(counts: &[KindCount]) -> Vec<KindRow> {
    counts
        .iter()
        .map(|c| KindRow { kind: c.kind, holders: c.holders, waiters: c.waiters })
        .collect()
}

/// The locks section, read from the state in one go.
fn locks(core: &CoreState) -> Locks {
    let by_kind = kind_rows(&warden_core::queue_counts::count(core));
    let tracked = core.lock_stats_table().len() as u64;
    if core.policy().is_some() {
        return Locks { by_kind, tracked, busiest: Vec::new(), hidden: Some(HIDDEN) };
    }
    let report = core.lock_stats(warden_core::path::ROOT, BUSIEST_LOCKS).unwrap_or_default();
    let busiest = report
        .locks
        .into_iter()
        .map(|entry| {
            let holders = recipe::waiters(core.tree(), &entry.path)
                .map(|(_, waiters)| {
                    waiters
                        .iter()
                        .filter(|w| w.info.token.is_some())
                        .take(HOLDERS_SHOWN)
                        .map(|w| Holder {
                            session: w.session,
                            identity: core
                                .session(w.session)
                                .map(|s| s.identity.clone())
                                .unwrap_or_default(),
                            token: w.info.token,
                            mode: wait_mode_name(w.info.mode),
                        })
                        .collect()
                })
                .unwrap_or_default();
            BusyLock {
                path: entry.path,
                acquisitions: entry.stats.acquisitions,
                contended: entry.stats.contended,
                mean_wait_ms: entry.stats.wait.mean_ms(),
                mean_hold_ms: entry.stats.hold.mean_ms(),
                holders,
                holding: entry.holders,
                waiting: entry.waiters,
            }
        })
        .collect();
    Locks { by_kind, tracked, busiest, hidden: None }
}

/// The members, with the lag this member knows.
fn members(state: &HttpState, health: &Health) -> Vec<MemberRow> {
    let metrics = state.shared.raft.metrics().borrow().clone();
    let (members, leader) = crate::membership::members(&state.shared);
    let last = metrics.last_log_index.unwrap_or(0);
    members
        .into_iter()
        .map(|m| {
            let lag_entries = match &metrics.replication {
                // The leader knows every member's matched index.
                Some(_) if m.id == state.shared.id => Some(0),
                Some(replication) => replication
                    .get(&m.id)
                    .map(|matched| matched.map_or(last + 1, |i| last.saturating_sub(i.index))),
                // A follower knows only its own lag.
                None if m.id == state.shared.id => {
                    health.commit_index.map(|commit| commit.saturating_sub(health.applied_index))
                }
                None => None,
            };
            MemberRow {
                id: m.id,
                leader: m.id == leader,
                client_addr: m.client_addr,
                raft_addr: m.raft_addr,
                membership: m.membership,
                lag_entries,
            }
        })
        .collect()
}

/// `GET /status`.
pub(crate) async fn status(State(state): State<Arc<HttpState>>) -> Response {
    let health =
        assess(&facts(&state).await, state.max_lag_entries, state.shared.quorum_lost_after_ms);
    let members = members(&state, &health);
    let (revision, sessions, locks) = state
        .shared
        .state_machine
        .read(|a| (a.core.revision(), a.core.sessions().count(), locks(&a.core)));
    let overview = Overview {
        health,
        revision,
        members,
        sessions,
        locks,
        leader_changes: state.leader_history.recent(),
    };
    json(StatusCode::OK, &overview)
}

#[cfg(test)]
mod tests {
    use warden_core::queue::{LockKind, WaitMode};
    use warden_core::{AcquireOptions, ApplyContext, Command, Request};

    use super::*;

    fn run(state: &mut CoreState, index: u64, session: Option<u64>, command: Command) {
        let ctx = ApplyContext { index, time_ms: 1_000 + index, term: 1 };
        let applied = state.apply(Request { session, id: None, command }, &ctx);
        assert!(applied.response.outcome.is_ok(), "{:?}", applied.response.outcome);
    }

    #[test]
    fn lock_paths_and_identities_are_left_out_once_a_policy_is_in_force() {
        let mut state = CoreState::default();
        run(&mut state, 1, None, Command::OpenSession { ttl_ms: 10_000, identity: "ops".into() });
        let session = state.sessions().next().map(|s| s.id);
        let acquire = Command::Acquire {
            path: "/jobs/a".into(),
            kind: LockKind::Mutex,
            mode: WaitMode::Exclusive,
            delay_ms: 0,
            options: AcquireOptions::default(),
        };
        run(&mut state, 2, session, acquire);
        let shown = locks(&state);
        assert_eq!(shown.hidden, None);
        assert_eq!(shown.busiest.first().map(|l| l.path.as_str()), Some("/jobs/a"));
        let holder = shown.busiest.first().and_then(|l| l.holders.first());
        assert_eq!(holder.map(|h| h.identity.as_str()), Some("ops"));

        let policy =
            "[[rule]]\nidentities = [\"ops\"]\npermissions = [\"all\"]\npaths = [\"/\", \"/**\"]\n";
        run(&mut state, 3, None, Command::SetPolicy { text: policy.into() });
        let hidden = locks(&state);
        assert!(hidden.busiest.is_empty());
        assert_eq!(hidden.hidden, Some(HIDDEN));
        assert_eq!(hidden.tracked, 1, "the counts stay");
        let mutex = warden_core::queue_counts::kind_name(&warden_core::queue::QueueKind::Mutex);
        let mutexes = hidden.by_kind.iter().find(|k| k.kind == mutex).map(|k| k.holders);
        assert_eq!(mutexes, Some(1));
    }
}
