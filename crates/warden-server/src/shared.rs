//! What the client services of one node share: the raft handle, the state machine, and the
//! two paths every request takes (a write through raft, a read after read-index), both
//! batched on the leader (see `batch`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::Raft;
use tonic::Status;
use warden_core::{Command, CoreError, Output, Request, RequestId};
use warden_proto::v1::ResponseHeader;
use warden_storage::{Applied, NodeId, StateMachineStore, TypeConfig};

use crate::audit::Audit;
use crate::batch::{Proposer, ReadGate};
use crate::metrics::Metrics;
use crate::status;

/// One node's handles, shared by its services.
#[derive(Clone)]
pub(crate) struct Shared {
    /// This node's id.
    pub id: NodeId,
    /// The cluster's id (its founding member's id).
    pub cluster_id: u64,
    /// The raft node.
    pub raft: Raft<TypeConfig>,
    /// The state machine, for reads.
    pub state_machine: StateMachineStore,
    /// Writes go through it, in batches.
    pub proposer: Proposer,
    /// Linearizable reads wait at it for a shared read-index round.
    pub reads: ReadGate,
    /// A leader that has not heard from a quorum for longer than this (an election
    /// timeout) refuses writes instead of proposing them: they could not commit, and the
    /// client could only be told their outcome is unknown.
    pub quorum_lost_after_ms: u64,
    /// Decides whether a caller may make a request (ACLs).
    pub access: crate::access::Access,
    /// This member's audit log: denials and admin actions are written to it.
    pub audit: Audit,
    /// This member's metrics (`GET /metrics` on the HTTP port).
    pub metrics: Arc<Metrics>,
    /// Membership changes and leader transfer (`membership`, `leader_transfer`).
    pub member_changes: Arc<crate::membership::MemberChanges>,
    /// Whether this member was removed from the cluster (`removal`).
    pub removal: crate::removal::Removal,
    /// The free space under this member's data directory (`crate::space`).
    pub space: Arc<crate::space::DiskSpace>,
}

/// Milliseconds since the Unix epoch on this node's clock: the time a leader stamps on
/// the entries it proposes.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Shared {
    /// The header of a response reflecting `revision`.
    pub(crate) fn header(&self, revision: u64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.id,
            revision,
            raft_term: self.raft.metrics().borrow().current_term,
        }
    }

    /// Proposes a command and waits for it to be applied; returns the revision after it
    /// and its output.
    pub(crate) async fn write(
        &self,
        session: Option<u64>,
        id: Option<RequestId>,
        command: Command,
    ) -> Result<(u64, Output), Status> {
        let stopped = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.running_state.is_err() || m.state == openraft::ServerState::Shutdown
        };
        if stopped {
            return Err(status::member_stopped());
        }
        let silent_ms = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let leads = m.state == openraft::ServerState::Leader;
            m.millis_since_quorum_ack.filter(|ms| leads && *ms > self.quorum_lost_after_ms)
        };
        if let Some(ms) = silent_ms {
            return Err(status::no_quorum(ms));
        }
        // Only a leader proposes; a follower sends the client on to it.
        let leads = self.raft.metrics().borrow().state == openraft::ServerState::Leader;
        if leads && warden_core::quota::may_grow(&command) {
            self.space.admit()?;
        }
        let response = self.proposer.write(Request { session, id, command }).await?;
        match response.outcome {
            Ok(output) => Ok((response.revision, output)),
            Err(error) => Err(status::core_error(&error)),
        }
    }

    /// Reads the state, linearizably unless `serializable`; returns the revision read at.
    pub(crate) async fn read<R>(
        &self,
        serializable: bool,
        read: impl FnOnce(&Applied) -> Result<R, CoreError>,
    ) -> Result<(u64, R), Status> {
        if !serializable {
            self.reads.confirm().await?;
        }
        self.state_machine
            .read(|applied| read(applied).map(|r| (applied.core.revision(), r)))
            .map_err(|e| status::core_error(&e))
    }
}
