//! Leader transfer: making a named voter the leader, on openraft 0.9.25, which has no
//! transfer API.
//!
//! Raft's own recipe (the thesis, §3.10) is: the leader stops taking new entries, brings
//! the target up to date, and sends it `TimeoutNow`, on which the target campaigns at once.
//! openraft 0.9.25 adds a leader lease to its vote handling: a member whose vote is a
//! committed leader's refuses every vote request until `leader_lease` (warden sets it to
//! the election timeout T) has passed since it last heard from that leader
//! (`Engine::handle_vote_req`). A target told to campaign while the leader still sends
//! heartbeats is refused by everyone. So here:
//!
//! 0. It waits (at most 5 s) until the target has every entry the leader had when asked.
//! 1. The leader holds back AppendEntries (heartbeats included) to every voter but the
//!    target ([`AppendHold`]), and notes its last log index L: nothing past L reaches
//!    them.
//! 2. It waits (at most T/4) until the target has matched L, then holds the target's
//!    appends too. The target's log is now at least as long as any other follower's, so
//!    none refuses it for its log.
//! 3. It waits out the lease: T plus a margin (a heartbeat, at most T/8) for appends
//!    already in flight.
//! 4. It sends the target `TimeoutNow` (the peer API) carrying its vote; the target calls
//!    `raft.trigger().elect()` only while that vote is still the one it follows.
//! 5. The target campaigns in term + 1. The followers' leases have expired, its log is
//!    up to date: they grant. The old leader steps down when the new leader's first
//!    append (or vote request) reaches it. The holds are lifted in every case.
//!
//! A follower campaigns by itself only after lease + its own election timeout (at least
//! 1.5 T) without a leader, so the target, campaigning at most T/4 + T + T/8 after the
//! others last heard from the leader, goes first.
//!
//! Safety is raft's: the target wins only with a majority's votes in a new term, so there
//! are never two leaders in one term, and its log holds every committed entry (or the
//! voters would refuse it). A transfer that goes wrong costs an election, never data.
//!
//! Limits: while the appends are held (about 1.2 T) the leader commits nothing, so writes
//! wait (or fail NoQuorum and are retried by the client). With two voters the old leader
//! must vote for the target and refuses if it appended entries the target lacks. If the
//! target dies or is cut off in between, the transfer fails and the voters elect a leader
//! on their own after their election timeout.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use openraft::ServerState;
use tokio::time::{Instant, sleep};
use tonic::Code;
use tracing::{info, warn};
use warden_proto::ErrorKind;
use warden_proto::raft::RaftMessage;
use warden_storage::NodeId;

use crate::membership::MemberChanges;
use crate::shared::Shared;
use crate::status;

/// The peers whose AppendEntries the leader holds back (a transfer under way).
#[derive(Debug, Default)]
pub(crate) struct AppendHold {
    held: Mutex<BTreeSet<NodeId>>,
}

impl AppendHold {
    /// Whether appends to `peer` are held.
    pub(crate) fn holds(&self, peer: NodeId) -> bool {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).contains(&peer)
    }

    fn hold(&self, peers: impl IntoIterator<Item = NodeId>) {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).extend(peers);
    }

    fn release(&self) {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// Lifts every hold when the transfer ends, however it ends.
struct Released<'a>(&'a AppendHold);

impl Drop for Released<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// How long the target may take to catch up before anything is held.
const PRE_CATCH_UP: Duration = Duration::from_secs(5);

/// How often the transfer looks at raft's metrics while it waits.
const POLL: Duration = Duration::from_millis(10);

/// Makes voter `target` the leader; this member must lead. Returns the new term.
pub(crate) async fn transfer(
    shared: &Shared,
    changes: &MemberChanges,
    target: NodeId,
) -> Result<u64, tonic::Status> {
    let t = Duration::from_millis(changes.election_timeout_ms);
    let margin = Duration::from_millis(changes.heartbeat_ms).min(t / 8);
    let metrics = shared.raft.metrics();
    let (vote, voters, node, term) = {
        let m = metrics.borrow();
        if m.state != ServerState::Leader {
            return Err(crate::membership::not_leader(shared));
        }
        let membership = m.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let node = membership.get_node(&target).cloned();
        (m.vote, voters, node, m.current_term)
    };
    let Some(node) = node.filter(|_| voters.contains(&target)) else {
        return Err(status::server(
            Code::FailedPrecondition,
            ErrorKind::Membership,
            format!("member {target} is not a voter; only a voter can lead"),
        ));
    };
    if !changes.health.answered_within(target, changes.answer_window()) {
        return Err(status::server(
            Code::FailedPrecondition,
            ErrorKind::TransferFailed,
            format!(
                "member {target} has not answered the leader for {} ms; nothing was changed (check that it runs, see warden member list)",
                changes.answer_window().as_millis()
            ),
        ));
    }
    // First without holding anything: under load the target trails by what the last
    // round trips carried, and the hold below must be short.
    let start = metrics.borrow().last_log_index.unwrap_or(0);
    let near = Instant::now() + PRE_CATCH_UP;
    while matched(shared, target) < start {
        if Instant::now() >= near {
            return Err(status::server(
                Code::FailedPrecondition,
                ErrorKind::TransferFailed,
                format!(
                    "member {target} is behind the leader (it has {} of {start} entries) and did not catch up within {}s; nothing was changed",
                    matched(shared, target),
                    PRE_CATCH_UP.as_secs()
                ),
            ));
        }
        sleep(POLL).await;
    }
    info!(target, term, "leader transfer: holding appends to the other voters");
    let _released = Released(&changes.hold);
    changes.hold.hold(voters.iter().copied().filter(|v| *v != target && *v != shared.id));
    let last = metrics.borrow().last_log_index.unwrap_or(0);
    let caught_up = Instant::now() + t / 4;
    loop {
        let matched = matched(shared, target);
        if matched >= last {
            break;
        }
        if Instant::now() >= caught_up {
            return Err(status::server(
                Code::FailedPrecondition,
                ErrorKind::TransferFailed,
                format!(
                    "member {target} did not catch up with the leader in time (it has {matched} of {last} entries); nothing was changed; retry, or pick another member"
                ),
            ));
        }
        sleep(POLL).await;
    }
    changes.hold.hold([target]);
    sleep(t + margin).await;
    let payload = bincode::serde::encode_to_vec(vote, bincode::config::standard())
        .map_err(|e| status::server(Code::Internal, ErrorKind::Internal, e.to_string()))?;
    let mut client = changes
        .network
        .dial(target, &node)
        .map_err(|e| status::server(Code::FailedPrecondition, ErrorKind::TransferFailed, e))?;
    if let Err(e) = client.timeout_now(RaftMessage { payload: payload.into() }).await {
        warn!(target, error = %e, "leader transfer: the target was not told to campaign");
    }
    let elected = Instant::now() + 2 * t;
    loop {
        let (leader, now_term) = {
            let m = metrics.borrow();
            (m.current_leader, m.current_term)
        };
        if leader == Some(target) && now_term > term {
            info!(target, term = now_term, "leader transfer done");
            return Ok(now_term);
        }
        if Instant::now() >= elected {
            let who = leader.map_or("no member".to_owned(), |l| format!("member {l}"));
            return Err(status::server(
                Code::Unavailable,
                ErrorKind::TransferFailed,
                format!(
                    "the transfer to member {target} did not complete in time; {who} leads now (term {now_term}); retry"
                ),
            ));
        }
        sleep(POLL).await;
    }
}

/// The last log index `peer` has matched, as the leader knows it (0 if unknown).
fn matched(shared: &Shared, peer: NodeId) -> u64 {
    let metrics = shared.raft.metrics();
    let m = metrics.borrow();
    m.replication.as_ref().and_then(|r| r.get(&peer).cloned().flatten()).map_or(0, |l| l.index)
}

/// The last log index `peer` has matched (for [`crate::membership`]).
pub(crate) fn matched_index(shared: &Shared, peer: NodeId) -> u64 {
    matched(shared, peer)
}
