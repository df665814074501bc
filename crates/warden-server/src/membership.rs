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
    shared
        .raft
        .change_membership(ChangeMembers::AddVoterIds(ids), true)
        .await
        .map_err(change_error)?;
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
        let down: Vec<NodeId> = left
            .iter()
            .copied()
            .filter(|v| *v != shared.id && changes.health.is_down(*v))
            .collect();
        let up = left.len() - down.len();
        if up < quorum {
            return Err(status::server(
                Code::FailedPrecondition,
                ErrorKind::QuorumAtRisk,
                format!(
                    "removing member {id} would leave {} voter(s) of which only {up} are reachable (members {down:?} are not), fewer than the {quorum} a quorum needs; bring them back first",
                    left.len()
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
        let demoted = shared
            .raft
            .change_membership(ChangeMembers::RemoveVoters(ids), true)
            .await
            .map_err(change_error)?;
        info!(member = id, "member remove: now a learner");
        let at = demoted.log_id.index;
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
    shared
        .raft
        .change_membership(ChangeMembers::RemoveNodes(ids), false)
        .await
        .map_err(change_error)?;
    info!(member = id, "member removed");
    tell_removed(shared.id, changes.network.clone(), id, node);
    Ok(())
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
