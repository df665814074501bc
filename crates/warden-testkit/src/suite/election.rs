//! The suite's election workload: candidates campaign in one election, each leader writes
//! twice through the cluster with a transaction fenced by its candidate node (applied only
//! while it leads), then resigns; an observer follows every change of leader. Judged by
//! [`crate::elections`]: one leader per term, fenced writes by leaders only, and an Observe
//! history that misses no leadership.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use warden_client::{Check, ClientError, Compare, LeaderChange, SessionState, TxnOp};

use super::{ELECTION_OPS, ELECTION_WRITES, LEADER_CHANGES, Run, lock};
use crate::elections::{self, Change, FencedTxn, Seen, Term};

/// The election the candidates campaign in.
pub(super) const NAME: &str = "/elect/e";
/// The node leaders write to.
pub(super) const FENCED: &str = "/elect/fenced";

/// How far past another's grant a deposed leader may still act: its client counts its ttl
/// from the renewal's send and gives up at once, so about a scheduling delay; a loaded
/// 2-core runner gets a generous one.
const MARGIN: Duration = Duration::from_secs(2);

/// What the workload recorded.
#[derive(Default)]
pub(super) struct Recorded {
    terms: Mutex<Vec<Term>>,
    writes: Mutex<Vec<FencedTxn>>,
    streams: Mutex<Vec<Vec<Change>>>,
}

impl Recorded {
    /// The checkers' findings: (checker, violations).
    pub(super) fn judge(&self) -> [(&'static str, Vec<String>); 3] {
        let terms = lock(&self.terms).clone();
        let margin = u64::try_from(MARGIN.as_nanos()).unwrap_or(u64::MAX);
        [
            ("leader_terms", elections::terms(&terms, margin)),
            ("leader_fencing", elections::fenced(&lock(&self.writes))),
            ("leader_observe", elections::observed(&lock(&self.streams), &terms)),
        ]
    }
}

/// A candidate: campaign, write twice with the token, resign; again until the run ends.
pub(super) async fn candidate(run: Arc<Run>, client_id: u64) {
    let client = run.client();
    let ttl = Duration::from_secs(3);
    let recorded = &run.recorded.elections;
    let mut round = 0u64;
    'sessions: while let Some(session) = run.session(&client, ttl).await {
        while !run.done() {
            if session.state() == SessionState::Lost {
                continue 'sessions;
            }
            round += 1;
            let campaigned_at = run.now();
            let campaign = client
                .election(&session, NAME)
                .campaign(format!("c{client_id}-{round}"), Some(Duration::from_secs(5)))
                .await;
            let Ok(leadership) = campaign else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let granted_at = run.now();
            let token = leadership.token();
            let fence =
                Compare { path: leadership.leader().candidate.clone(), check: Check::Exists(true) };
            let mut last_believed_at = granted_at;
            for _ in 0..2 {
                // Taken before asking: with no loss known then, it believed it led then.
                let now = run.now();
                if leadership.is_lost() {
                    break;
                }
                last_believed_at = now;
                let write = TxnOp::Set {
                    path: FENCED.into(),
                    data: format!("{token} c{client_id}").into(),
                    expected_version: None,
                };
                if let Ok(r) = client.txn_in(&session, vec![fence.clone()], vec![write]).await {
                    lock(&recorded.writes).push(FencedTxn {
                        client: client_id,
                        token,
                        applied: r.succeeded,
                        revision: r.revision,
                    });
                    run.op(ELECTION_WRITES);
                }
            }
            let resigned_at = leadership.resign().await.is_ok().then(|| run.now());
            lock(&recorded.terms).push(Term {
                client: client_id,
                session: session.id(),
                token,
                campaigned_at,
                granted_at,
                last_believed_at,
                resigned_at,
            });
            run.op(ELECTION_OPS);
        }
        session.close().await.ok();
        return;
    }
}

fn change(c: LeaderChange) -> Change {
    let leader =
        c.leader.map(|l| Seen { token: l.token, session: l.session_id, value: l.value.to_vec() });
    Change { revision: c.revision, leader }
}

/// Follows the election's changes. A stream the cluster can no longer continue (its
/// history is gone, as after every member restarted) is kept and a new one started from
/// the present.
pub(super) async fn observer(run: Arc<Run>) {
    let client = run.client();
    while !run.done() {
        let opened =
            tokio::time::timeout(Duration::from_secs(2), client.observe_election(NAME, 0)).await;
        let mut observe = match opened {
            Ok(Ok(observe)) => observe,
            Ok(Err(e)) => {
                tracing::info!(error = %e, "observe could not start; trying again");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(_) => continue,
        };
        let mut stream = Vec::new();
        while !run.done() {
            match tokio::time::timeout(Duration::from_millis(500), observe.next()).await {
                Ok(Ok(c)) => {
                    stream.push(change(c));
                    run.op(LEADER_CHANGES);
                }
                Ok(Err(ClientError::Unavailable { .. })) | Err(_) => {}
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "observe stream ended; starting another");
                    break;
                }
            }
        }
        lock(&run.recorded.elections.streams).push(stream);
    }
}
