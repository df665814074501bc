//! The Election service: a thin adapter from the election RPCs to the core's Campaign,
//! Proclaim, Resign and leader record, with the recipe framework's wait for the campaign
//! and the watch hub for Observe.
//!
//! Observe is a watch of one key, the election's node, which keeps a copy of its leader
//! (see the core's `election` module): every change of that node is a change of leader,
//! of its value, or "no leader" (the node's deletion), so the stream can start from any
//! revision the hub's history still has, and resume after a break.

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use warden_core::election::{self, Leader};
use warden_core::{Command, Output, State, WatchFilter};
use warden_proto::ErrorKind;
use warden_proto::convert::election::leader_info;
use warden_proto::v1 as pb;
use warden_proto::v1::election_server::Election;

use crate::access::{Guarded, Need};
use crate::caller::Caller;
use crate::lock_service::session;
use crate::recipe_wait::{Granted, Waits};
use crate::shared::Shared;
use crate::status;
use crate::watch_hub::{WatchHub, WatchMessage};

/// How often an Observe stream checks that its caller may still watch the election.
const RECHECK: Duration = Duration::from_secs(1);

/// Serves elections.
pub(crate) struct ElectionService {
    shared: Shared,
    waits: Waits,
    hub: std::sync::Arc<WatchHub>,
}

impl ElectionService {
    pub(crate) fn new(shared: Shared, waits: Waits, hub: std::sync::Arc<WatchHub>) -> Self {
        ElectionService { shared, waits, hub }
    }
}

/// A leader as the wire shows it, with its session's identity (empty once the session is
/// gone, for a change replayed from history).
fn info(state: &State, name: &str, leader: Leader) -> pb::LeaderInfo {
    let identity = state.session(leader.session).map(|s| s.identity.clone()).unwrap_or_default();
    leader_info(name, leader, identity)
}

fn no_leader(name: &str) -> Status {
    status::server(
        tonic::Code::NotFound,
        ErrorKind::NoLeader,
        format!("the election {name:?} has no leader now (no candidate campaigns in it)"),
    )
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<pb::ObserveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let s = session(r.session_id)?;
        let command = Command::Campaign { path: r.name.clone(), value: r.value.clone() };
        let granted = match self.waits.join(s, command).await? {
            (revision, Output::LockQueued { waiter, token: Some(token), .. }) => {
                Granted { revision, waiter, token }
            }
            (revision, Output::LockQueued { waiter, token: None, .. }) => {
                let what = format!("the leadership of {:?}", r.name);
                self.waits
                    .until_granted(&r.name, s, waiter, revision + 1, r.timeout_ms, &what)
                    .await?
            }
            (_, other) => return Err(status::unexpected(&other)),
        };
        // The value is the one it campaigned with, unless it proclaimed since (another call
        // of the same session): read the record.
        let leader = self.shared.state_machine.read(|a| {
            election::leader(a.core.tree(), &r.name)
                .filter(|l| l.token == granted.token)
                .map(|l| info(&a.core, &r.name, l))
        });
        let leader = leader.unwrap_or(pb::LeaderInfo {
            name: r.name,
            value: r.value,
            token: granted.token,
            session_id: s,
            identity: String::new(),
            candidate: granted.waiter,
        });
        Ok(Response::new(pb::CampaignResponse {
            header: Some(self.shared.header(granted.revision)),
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<pb::ProclaimRequest>,
    ) -> Result<Response<pb::ProclaimResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let s = session(r.session_id)?;
        let command = Command::Proclaim { path: r.name, token: r.token, value: r.value };
        match self.shared.write(Some(s), None, command).await? {
            (revision, Output::Proclaimed) => Ok(Response::new(pb::ProclaimResponse {
                header: Some(self.shared.header(revision)),
            })),
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    async fn resign(
        &self,
        request: Request<pb::ResignRequest>,
    ) -> Result<Response<pb::ResignResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let s = session(r.session_id)?;
        let command = Command::Resign { path: r.name, token: r.token };
        match self.shared.write(Some(s), None, command).await? {
            (revision, Output::LockReleased { .. }) => {
                Ok(Response::new(pb::ResignResponse { header: Some(self.shared.header(revision)) }))
            }
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    async fn leader(
        &self,
        request: Request<pb::LeaderRequest>,
    ) -> Result<Response<pb::LeaderResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let (revision, leader) = self
            .shared
            .read(r.serializable, |a| {
                Ok(a.core.leader(&r.name)?.map(|l| info(&a.core, &r.name, l)))
            })
            .await?;
        let leader = leader.ok_or_else(|| no_leader(&r.name))?;
        Ok(Response::new(pb::LeaderResponse {
            header: Some(self.shared.header(revision)),
            leader: Some(leader),
        }))
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        request: Request<pb::ObserveRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        self.shared.access.admit(&request)?;
        let caller = Caller::of(&request)?.clone();
        let r = request.into_inner();
        let needs = r.needs();
        let limits = self.shared.state_machine.read(|a| a.core.limits().clone());
        let filter = WatchFilter::key(&r.name, &limits).map_err(|e| status::core_error(&e))?;
        // From now: the leader at the current revision first, then every change after it.
        let (start, first) = if r.start_revision == 0 {
            let (revision, leader) = self.shared.state_machine.read(|a| {
                let leader =
                    election::leader(a.core.tree(), &r.name).map(|l| info(&a.core, &r.name, l));
                (a.core.revision(), leader)
            });
            (revision + 1, Some(pb::ObserveResponse { header: None, revision, leader }))
        } else {
            (r.start_revision, None)
        };
        let registration = self
            .hub
            .register(filter, start, false)
            .map_err(|e| crate::watch_service::refused(&e))?;
        let (tx, rx) = mpsc::channel(16);
        let feed = Feed {
            shared: self.shared.clone(),
            hub: std::sync::Arc::clone(&self.hub),
            caller,
            needs,
            name: r.name,
        };
        tokio::spawn(feed.run(registration, first, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One Observe stream's task.
struct Feed {
    shared: Shared,
    hub: std::sync::Arc<WatchHub>,
    caller: Caller,
    needs: Vec<Need>,
    name: String,
}

impl Feed {
    async fn run(
        self,
        mut registration: crate::watch_hub::Registration,
        first: Option<pb::ObserveResponse>,
        tx: mpsc::Sender<Result<pb::ObserveResponse, Status>>,
    ) {
        // The leader last sent, to send only changes.
        let mut last: Option<Option<(u64, bytes::Bytes)>> = None;
        if let Some(mut first) = first {
            first.header = Some(self.shared.header(first.revision));
            last = Some(first.leader.as_ref().map(|l| (l.token, l.value.clone())));
            if tx.send(Ok(first)).await.is_err() {
                self.hub.unregister(registration.id);
                return;
            }
        }
        let cancellation = registration.cancellation();
        let mut recheck = tokio::time::interval(RECHECK);
        let end = loop {
            let message = tokio::select! {
                biased;
                () = cancellation.cancelled() => None,
                message = registration.recv() => message,
                () = tx.closed() => break None,
                _ = recheck.tick() => {
                    match self.shared.access.check(&self.caller, pb::ObserveRequest::RPC, &self.needs) {
                        Ok(_) => continue,
                        Err(denied) => break Some(denied),
                    }
                }
            };
            let Some(WatchMessage::Events(revision, events)) = message else {
                if message.is_some() {
                    continue;
                }
                let reason = registration
                    .cancel_reason()
                    .unwrap_or_else(|| "the member is shutting down".to_owned());
                break Some(status::server(
                    tonic::Code::Unavailable,
                    ErrorKind::MemberStopped,
                    format!("{reason} (observe again from the last revision received + 1)"),
                ));
            };
            // The last change of the election node in the revision is where it stands.
            let Some(leader) =
                events.iter().filter_map(|e| election::leader_after(&self.name, e)).last()
            else {
                continue;
            };
            let key = leader.as_ref().map(|l| (l.token, l.value.clone()));
            if last.as_ref() == Some(&key) {
                continue;
            }
            last = Some(key);
            let leader =
                self.shared.state_machine.read(|a| leader.map(|l| info(&a.core, &self.name, l)));
            let response = pb::ObserveResponse {
                header: Some(self.shared.header(revision)),
                revision,
                leader,
            };
            if tx.send(Ok(response)).await.is_err() {
                break None;
            }
        };
        self.hub.unregister(registration.id);
        registration.discard();
        if let Some(status) = end {
            tokio::select! {
                _ = tx.send(Err(status)) => {}
                () = tx.closed() => {}
            }
        }
    }
}
