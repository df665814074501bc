//! Membership changes: list, add, remove members, and hand the leadership to a member.
//!
//! Every member answers the list from its own view; the changes are made by the leader,
//! which this client finds by following "not the leader" answers, as for writes. All
//! three changes are safe to send again (an add of a voter with the same addresses and a
//! transfer to the leader are answered at once), so they are retried like reads. Adding
//! waits while the new member catches up (the member bounds that wait), and a transfer
//! takes about an election timeout: their attempts are not cut short by the client.

use std::sync::atomic::{AtomicBool, Ordering};

use warden_proto::ErrorKind;
use warden_proto::v1 as pb;

use crate::connection::{self, Retry};
use crate::{Client, ClientError};

impl Client {
    /// The members (voters and learners) and the leader, as the member that answers sees
    /// them.
    pub async fn member_list(&self) -> Result<pb::MemberListResponse, ClientError> {
        self.connection
            .run(Retry::Idempotent, |c| async move {
                connection::cluster(c)
                    .member_list(pb::MemberListRequest {})
                    .await
                    .map(|r| r.into_inner())
            })
            .await
    }

    /// Adds member `id` reached by peers at `peer_addr` and by clients at `client_addr`:
    /// as a learner, then, once it caught up, as a voter. Needs `admin`. A member that
    /// already is a voter with these addresses is answered with `added` false.
    pub async fn member_add(
        &self,
        id: u64,
        peer_addr: &str,
        client_addr: &str,
    ) -> Result<pb::MemberAddResponse, ClientError> {
        let request = pb::MemberAddRequest {
            id,
            peer_addr: peer_addr.to_owned(),
            client_addr: client_addr.to_owned(),
        };
        self.connection
            .run_within(Retry::Idempotent, None, |c| {
                let request = request.clone();
                async move { connection::cluster(c).member_add(request).await.map(|r| r.into_inner()) }
            })
            .await
    }

    /// Removes member `id`; returns the members left. Needs `admin`. Removing the leader
    /// hands the leadership to another voter first.
    pub async fn member_remove(&self, id: u64) -> Result<Vec<pb::Member>, ClientError> {
        // Whether an attempt may have removed it although it failed (a lost answer, a
        // leader that went away meanwhile): then a later "no such member" means done.
        let uncertain = AtomicBool::new(false);
        let removed = self
            .connection
            .run_within(Retry::Idempotent, None, |c| {
                let maybe_done = uncertain.load(Ordering::Relaxed);
                let uncertain = &uncertain;
                async move {
                    match connection::cluster(c).member_remove(pb::MemberRemoveRequest { id }).await
                    {
                        Ok(r) => Ok(Some(r.into_inner().members)),
                        Err(s)
                            if maybe_done
                                && connection::kind_of(&s) == Some(ErrorKind::NoMember) =>
                        {
                            Ok(None)
                        }
                        Err(s) => {
                            let refused_before_acting = matches!(
                                connection::kind_of(&s),
                                Some(
                                    ErrorKind::NotLeader
                                        | ErrorKind::MemberStopped
                                        | ErrorKind::MemberRemoved
                                        | ErrorKind::NoQuorum
                                )
                            );
                            if !refused_before_acting {
                                uncertain.store(true, Ordering::Relaxed);
                            }
                            Err(s)
                        }
                    }
                }
            })
            .await?;
        match removed {
            Some(members) => Ok(members),
            None => Ok(self.member_list().await?.members),
        }
    }

    /// Makes voter `id` the leader; returns the term it leads in. Needs `admin`. Takes
    /// about one election timeout (see the server's docs/cluster.md).
    pub async fn leader_transfer(&self, id: u64) -> Result<u64, ClientError> {
        self.connection
            .run_within(Retry::Idempotent, None, |c| async move {
                connection::cluster(c)
                    .leader_transfer(pb::LeaderTransferRequest { id })
                    .await
                    .map(|r| r.into_inner().term)
            })
            .await
    }
}
