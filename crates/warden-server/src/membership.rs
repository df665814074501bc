//! Membership changes on the leader: list, add (learner, catch up, promote), remove.
//!
//! openraft makes each change (`add_learner`, `change_membership`: joint consensus, then
//! the new configuration); this module decides whether a change may be made and in
//! which steps, and says why not. Only the leader changes the membership: any other
//! member answers UNAVAILABLE with the leader's address (the client follows it), as for
//! writes.
//!
//! Removing a voter takes two changes: first it becomes a learner (the leader keeps
//! replicating to it, so it learns it is no longer a voter and never campaigns, even when
//! restarted), then it leaves. openraft drops its replication stream to a member the
//! moment a configuration without it is appended, so a voter removed in one step would
//! keep the last configuration it saw, in which it is a voter, and campaign forever.
//! The leader then tells it over the peer port that it was removed (see `removal`).
//! Removing the leader itself first transfers the leadership (see `leader_transfer`),
//! then answers "not the leader": the client asks the new leader, which removes it.
//!
//! A change is judged before it is proposed: a voter counts as up only when it answered the
//! leader within [`MemberChanges::answer_window`] (a member killed a moment ago has no
//! failed RPC yet). It can still die between the check and the commit, so the leader
//! waits at most [`COMMIT_WAIT`] for a change to commit; the change goes on in the
//! background and completes once the members it needs answer, and the caller is told so.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use openraft::{ChangeMembers, ServerState};
use tokio::time::{Instant, sleep};
use tonic::{Code, Status};
use tracing::{info, warn};
use warden_proto::ErrorKind;
use warden_proto::raft::RaftMessage;
use warden_proto::v1 as pb;
use warden_storage::{NodeId, WardenNode};

use crate::leader_transfer::{AppendHold, matched_index, transfer};
use crate::network::Network;
use crate::peer_health::PeerHealth;
use crate::shared::Shared;
use crate::status;

/// How long a new learner may take to catch up before it is promoted.
pub(crate) const CATCH_UP: Duration = Duration::from_secs(20);

/// How long the leader waits for a voter being removed to learn it is a learner.
const DEMOTED: Duration = Duration::from_secs(3);

/// How often the leader looks at the replication while it waits.
const POLL: Duration = Duration::from_millis(20);

/// How long a caller waits for a membership change to commit.
pub(crate) const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// What the leader needs to change the membership.
pub(crate) struct MemberChanges {
    /// The raft timing (ms): a transfer waits out the followers' leader lease.
    pub election_timeout_ms: u64,
    pub heartbeat_ms: u64,
    /// Appends held back during a transfer (shared with the network).
    pub hold: Arc<AppendHold>,
    /// Which peers this member's RPCs reach.
    pub health: Arc<PeerHealth>,
    /// For the peer RPCs warden adds (TimeoutNow, Removed).
    pub network: Network,
    /// One change at a time on this member.
    pub busy: tokio::sync::Mutex<()>,
}

impl MemberChanges {
    /// How recently a peer must have answered the leader to count as up: two election
    /// timeouts (a follower not heard from for one has started to campaign, or is gone).
    pub(crate) fn answer_window(&self) -> Duration {
        Duration::from_millis(2 * self.election_timeout_ms.max(self.heartbeat_ms))
    }

    /// The voters of `voters` other than `me` that have not answered within the window.
    fn silent(&self, me: NodeId, voters: &[NodeId]) -> Vec<NodeId> {
        let window = self.answer_window();
        voters
            .iter()
            .copied()
            .filter(|v| *v != me && !self.health.answered_within(*v, window))
            .collect()
    }
}

/// UNAVAILABLE "not the leader", with the leader this member knows of.
pub(crate) fn not_leader(shared: &Shared) -> Status {
    let metrics = shared.raft.metrics();
    let m = metrics.borrow();
    let forward = match m.current_leader {
        Some(id) => match m.membership_config.membership().get_node(&id) {
            Some(node) => ForwardToLeader::new(id, node.clone()),
            None => ForwardToLeader::empty(),
        },
        None => ForwardToLeader::empty(),
    };
    status::not_leader(&forward)
}

fn leader_only(shared: &Shared) -> Result<(), Status> {
    if shared.raft.metrics().borrow().state == ServerState::Leader {
        Ok(())
    } else {
        Err(not_leader(shared))
    }
}

/// The members in this member's effective membership, and the leader it knows.
pub(crate) fn members(shared: &Shared) -> (Vec<pb::Member>, u64) {
    let metrics = shared.raft.metrics();
    let m = metrics.borrow();
    let membership = m.membership_config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, node)| pb::Member {
            id: *id,
            client_addr: node.client_addr.clone(),
            raft_addr: node.raft_addr.clone(),
            membership: if voters.contains(id) { "voter" } else { "learner" }.to_owned(),
        })
        .collect();
    (members, m.current_leader.unwrap_or(0))
}

fn change_error(e: RaftError<u64, ClientWriteError<u64, WardenNode>>) -> Status {
    status::write_error(e)
}

/// Proposes `change` and waits for it to commit, at most [`COMMIT_WAIT`]; returns the log
/// index it committed at. Past that the change goes on in the background (it commits once
/// the voters it needs answer) and the caller gets DEADLINE_EXCEEDED `ChangePending`;
/// `what` says what was proposed and `then` what to do once it completed.
async fn commit(
    shared: &Shared,
    changes: &MemberChanges,
    change: ChangeMembers<NodeId, WardenNode>,
    retain: bool,
    what: &str,
    then: &str,
) -> Result<u64, Status> {
    let raft = shared.raft.clone();
    let task = tokio::spawn(async move { raft.change_membership(change, retain).await });
    match tokio::time::timeout(COMMIT_WAIT, task).await {
        Ok(Ok(done)) => done.map(|r| r.log_id.index).map_err(change_error),
        Ok(Err(panicked)) => Err(status::server(
            Code::Internal,
            ErrorKind::Internal,
            format!("the membership change ({what}) failed inside the member: {panicked}"),
        )),
        Err(_) => {
            let voters: BTreeSet<NodeId> = shared
                .raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .get_joint_config()
                .iter()
                .flatten()
                .copied()
                .collect();
            let voters: Vec<NodeId> = voters.into_iter().collect();
            let silent = changes.silent(shared.id, &voters);
            warn!(what, ?silent, "membership change not committed in time; it goes on");
            let why = if silent.is_empty() {
                "every voter answers the leader, which may be overloaded; it completes by itself (see warden member list)".to_owned()
            } else {
                format!(
                    "members {silent:?} do not answer the leader, and the change needs them. It completes by itself once they are back, and writes wait until then: start them again (see warden member list)"
                )
            };
            Err(status::server(
                Code::DeadlineExceeded,
                ErrorKind::ChangePending,
                format!(
                    "{what} was proposed but not committed within {}s: {why}{then}",
                    COMMIT_WAIT.as_secs()
                ),
            ))
        }
    }
}

fn invalid_addr(what: &str, addr: &str) -> Option<String> {
    let (host, port) = addr.rsplit_once(':')?;
    (host.is_empty() || port.parse::<u16>().is_err())
        .then(|| format!("{what} {addr:?} is not host:port"))
}

/// Adds member `id` as a learner, waits until it caught up, promotes it. Returns whether
/// anything changed (false: it was a voter with these addresses already).
pub(crate) async fn add(
    shared: &Shared,
    changes: &MemberChanges,
    request: pb::MemberAddRequest,
) -> Result<bool, Status> {
    let pb::MemberAddRequest { id, peer_addr, client_addr } = request;
    if id == 0 {
        return Err(status::invalid("id: member ids are positive"));
    }
    for (what, addr) in [("peer_addr", &peer_addr), ("client_addr", &client_addr)] {
        if addr.is_empty() || !addr.contains(':') {
            return Err(status::invalid(format!("{what} {addr:?} is not host:port")));
        }
        if let Some(why) = invalid_addr(what, addr) {
            return Err(status::invalid(why));
        }
    }
    let _one = changes.busy.lock().await;
    leader_only(shared)?;
    let node = WardenNode { raft_addr: peer_addr.clone(), client_addr: client_addr.clone() };
    let (known, voter) = {
        let metrics = shared.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        for (other, n) in membership.nodes().filter(|(other, _)| **other != id) {
            if n.raft_addr == peer_addr || n.client_addr == client_addr {
                return Err(status::server(
                    Code::AlreadyExists,
                    ErrorKind::MemberExists,
                    format!(
                        "member {other} already uses these addresses (peer {}, client {}); pick other addresses, or remove member {other} first",
                        n.raft_addr, n.client_addr
                    ),
                ));
            }
        }
        let known = membership.get_node(&id).cloned();
        (known, membership.voter_ids().any(|v| v == id))
    };
    match known {
        Some(k) if k != node => {
            return Err(status::server(
                Code::AlreadyExists,
                ErrorKind::MemberExists,
                format!(
                    "member {id} is already in the cluster with other addresses (peer {}, client {}); remove it first to add it again",
                    k.raft_addr, k.client_addr
                ),
            ));
        }
        Some(_) if voter => return Ok(false),
        Some(_) => info!(member = id, "member add: already a learner; promoting it"),
        None => {
            shared.raft.add_learner(id, node, false).await.map_err(change_error)?;
            info!(member = id, %peer_addr, %client_addr, "member added as a learner");
        }
    }
    // Caught up: it has every entry the leader had once it was a learner.
    let target = shared.raft.metrics().borrow().last_log_index.unwrap_or(0);
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let matched = matched_index(shared, id);
        if matched >= target {
            break;
        }
        if Instant::now() >= deadline {
            return Err(status::server(
                Code::FailedPrecondition,
                ErrorKind::NotCaughtUp,
                format!(
                    "member {id} was added as a learner but did not catch up within {}s (it has {matched} of {target} entries); it stays a learner. Check that it runs and that the leader reaches it at {peer_addr}, then run member add again to promote it, or remove it",
                    CATCH_UP.as_secs()
                ),
            ));
        }
        leader_only(shared)?;
        sleep(POLL).await;
    }
    let ids = [id].into_iter().collect();
    let what = format!("promoting member {id} to voter");
    commit(shared, changes, ChangeMembers::AddVoterIds(ids), true, &what, "").await?;
    info!(member = id, "member promoted to voter");
    Ok(true)
}

/// Removes member `id` (voter or learner).
pub(crate) async fn remove(
    shared: &Shared,
    changes: &MemberChanges,
    id: NodeId,
) -> Result<(), Status> {
    let _one = changes.busy.lock().await;
    leader_only(shared)?;
    let (voters, node) = {
        let metrics = shared.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        (membership.voter_ids().collect::<Vec<_>>(), membership.get_node(&id).cloned())
    };
    let Some(node) = node else {
        return Err(status::server(
            Code::NotFound,
            ErrorKind::NoMember,
            format!("no member has id {id}; see warden member list"),
        ));
    };
    if voters.contains(&id) {
        let left: Vec<NodeId> = voters.iter().copied().filter(|v| *v != id).collect();
        if left.is_empty() {
            return Err(status::server(
                Code::FailedPrecondition,
                ErrorKind::QuorumAtRisk,
                format!(
                    "member {id} is the last voter; a cluster needs one (add another member first)"
                ),
            ));
        }
        let quorum = left.len() / 2 + 1;
        let down = changes.silent(shared.id, &left);
        let up = left.len() - down.len();
        if up < quorum {
            return Err(status::server(
                Code::FailedPrecondition,
                ErrorKind::QuorumAtRisk,
                format!(
                    "removing member {id} would leave {} voter(s) of which only {up} answer the leader (members {down:?} have not for {} ms), fewer than the {quorum} a quorum needs; bring them back first, or remove a member that is down",
                    left.len(),
                    changes.answer_window().as_millis()
                ),
            ));
        }
        if id == shared.id {
            // The leader does not remove itself: it hands over, and the new leader does.
            let best = left
                .iter()
                .copied()
                .filter(|v| !down.contains(v))
                .max_by_key(|v| matched_index(shared, *v));
            if let Some(next) = best {
                info!(next, "member remove: this member leads; handing over first");
                transfer(shared, changes, next).await?;
            }
            return Err(not_leader(shared));
        }
        let ids = [id].into_iter().collect();
        let what = format!("making voter {id} a learner, the first step of removing it");
        let then = format!("; then run member remove {id} again to remove the learner");
        let at =
            commit(shared, changes, ChangeMembers::RemoveVoters(ids), true, &what, &then).await?;
        info!(member = id, "member remove: now a learner");
        let deadline = Instant::now() + DEMOTED;
        while matched_index(shared, id) < at && Instant::now() < deadline {
            sleep(POLL).await;
        }
        if matched_index(shared, id) < at {
            warn!(
                member = id,
                "member remove: the member did not hear that it is no longer a voter (it may be down); removing it anyway"
            );
        }
    }
    leader_only(shared)?;
    let ids = [id].into_iter().collect();
    let what = format!("removing member {id}");
    commit(shared, changes, ChangeMembers::RemoveNodes(ids), false, &what, "").await?;
    info!(member = id, "member removed");
    tell_removed(shared.id, changes.network.clone(), id, node);
    Ok(())
}

/// How often the leader looks for a joint configuration left behind.
const FINISH_EVERY: Duration = Duration::from_millis(500);

/// Finishes, on the leader, a committed joint configuration that nobody is finishing: the
/// leader that proposed it lost the leadership (or crashed) before the second step, or
/// its caller was answered `ChangePending` and the leadership moved since. openraft leaves
/// the cluster in it, where every commit needs a majority of both voter sets; this
/// proposes the second step's configuration (etcd's joint consensus leaves such a state
/// by itself too). Runs forever.
pub(crate) async fn finish_joint(shared: Shared) {
    let mut ticker = tokio::time::interval(FINISH_EVERY);
    loop {
        ticker.tick().await;
        let Some(voters) = joint_left_behind(&shared) else {
            continue;
        };
        let Ok(_one) = shared.member_changes.busy.try_lock() else {
            continue;
        };
        info!(?voters, "finishing a joint configuration left behind");
        let change = shared.raft.change_membership(ChangeMembers::ReplaceAllVoters(voters), true);
        match tokio::time::timeout(COMMIT_WAIT, change).await {
            Ok(Ok(_)) => info!("joint configuration finished"),
            Ok(Err(e)) => {
                info!(error = %e, "a joint configuration was not finished; tried again later")
            }
            Err(_) => warn!("a joint configuration was not finished in time; tried again later"),
        }
    }
}

/// The new voter set of a committed joint configuration, when this member leads.
fn joint_left_behind(shared: &Shared) -> Option<BTreeSet<NodeId>> {
    let metrics = shared.raft.metrics();
    let m = metrics.borrow();
    let joint = m.membership_config.membership().get_joint_config();
    let at = m.membership_config.log_id().map(|l| l.index);
    let committed = at.is_some() && at <= m.last_applied.map(|l| l.index);
    (m.state == ServerState::Leader && joint.len() > 1 && committed)
        .then(|| joint.last().cloned())
        .flatten()
}

/// Tells `id` it was removed, in the background, for up to a minute.
fn tell_removed(me: NodeId, network: Network, id: NodeId, node: WardenNode) {
    tokio::spawn(async move {
        let Ok(payload) = bincode::serde::encode_to_vec(me, bincode::config::standard()) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(mut client) = network.dial(id, &node) {
                let told = client.removed(RaftMessage { payload: payload.clone().into() }).await;
                if told.is_ok() {
                    info!(member = id, "the removed member was told");
                    return;
                }
            }
            sleep(Duration::from_secs(1)).await;
        }
        warn!(member = id, "the removed member could not be told it was removed (is it down?)");
    });
}
