use super::*;

fn change(revision: u64, token: Option<u64>) -> pb::ObserveResponse {
    pb::ObserveResponse {
        header: None,
        revision,
        leader: token.map(|token| pb::LeaderInfo {
            name: "/e".into(),
            value: Bytes::from_static(b"v"),
            token,
            session_id: 3,
            identity: "alice".into(),
            candidate: "/e/w-0000000001".into(),
        }),
    }
}

#[test]
fn a_leader_keeps_every_field_of_the_wire() {
    let leader = leader_of(change(5, Some(5)).leader).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(leader.token, 5);
    assert_eq!(leader.value, Bytes::from_static(b"v"));
    assert_eq!(leader.identity, "alice");
    assert_eq!(leader.session_id, 3);
    assert_eq!(leader.candidate, "/e/w-0000000001");
    assert!(matches!(leader_of(None), Err(ClientError::UnexpectedResponse { .. })));
}

// A fake Election service on loopback, scripted per call, recording what it was asked.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Mutex;

use futures::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use warden_proto::v1::election_server::{Election as ElectionService, ElectionServer};

use crate::session::SessionState;
use crate::test_support::{eventually, loopback, refusal};

/// One Observe call's answer: its messages, then an end (`hang`: stays open).
struct ObserveScript {
    items: Vec<Result<pb::ObserveResponse, Status>>,
    hang: bool,
}

#[derive(Default)]
struct Script {
    campaigns: VecDeque<Result<u64, Status>>,
    resigns: VecDeque<Result<(), Status>>,
    leaders: VecDeque<Option<u64>>,
    observes: VecDeque<ObserveScript>,
}

#[derive(Default)]
struct Asked {
    campaigns: Vec<pb::CampaignRequest>,
    resigns: Vec<pb::ResignRequest>,
    observe_starts: Vec<u64>,
}

#[derive(Default, Clone)]
struct Fake {
    script: Arc<Mutex<Script>>,
    asked: Arc<Mutex<Asked>>,
}

impl Fake {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn asked(&self) -> std::sync::MutexGuard<'_, Asked> {
        self.asked.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn info(token: u64) -> pb::LeaderInfo {
    change(token, Some(token)).leader.unwrap_or_default()
}

#[tonic::async_trait]
impl ElectionService for Fake {
    async fn campaign(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        self.asked().campaigns.push(request.into_inner());
        let next = self.script().campaigns.pop_front();
        let token = next.unwrap_or_else(|| Err(Status::internal("no campaign scripted")))?;
        Ok(Response::new(pb::CampaignResponse { header: None, leader: Some(info(token)) }))
    }

    async fn proclaim(
        &self,
        _: Request<pb::ProclaimRequest>,
    ) -> Result<Response<pb::ProclaimResponse>, Status> {
        Ok(Response::new(pb::ProclaimResponse { header: None }))
    }

    async fn resign(
        &self,
        request: Request<pb::ResignRequest>,
    ) -> Result<Response<pb::ResignResponse>, Status> {
        self.asked().resigns.push(request.into_inner());
        let next = self.script().resigns.pop_front().unwrap_or(Ok(()));
        next.map(|()| Response::new(pb::ResignResponse { header: None }))
    }

    async fn leader(
        &self,
        _: Request<pb::LeaderRequest>,
    ) -> Result<Response<pb::LeaderResponse>, Status> {
        match self.script().leaders.pop_front().flatten() {
            Some(token) => {
                Ok(Response::new(pb::LeaderResponse { header: None, leader: Some(info(token)) }))
            }
            None => Err(refusal(tonic::Code::NotFound, ErrorKind::NoLeader)),
        }
    }

    type ObserveStream =
        Pin<Box<dyn Stream<Item = Result<pb::ObserveResponse, Status>> + Send + 'static>>;

    async fn observe(
        &self,
        request: Request<pb::ObserveRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        self.asked().observe_starts.push(request.into_inner().start_revision);
        let script = self.script().observes.pop_front();
        let Some(script) = script else { return Err(Status::internal("no observe scripted")) };
        let items = futures::stream::iter(script.items);
        let stream: Self::ObserveStream = if script.hang {
            Box::pin(futures::StreamExt::chain(items, futures::stream::pending()))
        } else {
            Box::pin(items)
        };
        Ok(Response::new(stream))
    }
}

async fn serve(fake: &Fake) -> Arc<Connection> {
    loopback(tonic::transport::Server::builder().add_service(ElectionServer::new(fake.clone())))
        .await
}

fn election(connection: &Arc<Connection>, state: watch::Receiver<SessionState>) -> super::Election {
    super::Election {
        connection: Arc::clone(connection),
        session: SessionLink::detached(11, state),
        name: "/e".into(),
    }
}

#[tokio::test]
async fn a_cancelled_campaign_queues_again_and_a_dropped_leadership_resigns_its_token() {
    let fake = Fake::default();
    fake.script()
        .campaigns
        .extend([Err(refusal(tonic::Code::Aborted, ErrorKind::WaitCancelled)), Ok(9)]);
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let election = election(&connection, rx);
    let leadership = election.campaign("addr", None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(leadership.token(), 9);
    assert_eq!(leadership.name(), "/e");
    assert_eq!(election.session.held(), [("/e".to_owned(), 9)]);
    {
        let asked = fake.asked();
        assert_eq!(asked.campaigns.len(), 2, "a cancelled wait is queued again");
        for c in &asked.campaigns {
            assert_eq!((c.session_id, c.timeout_ms, c.value.as_ref()), (11, 0, b"addr".as_slice()));
        }
    }
    drop(leadership);
    eventually("the dropped leadership is resigned", || fake.asked().resigns.len() == 1).await;
    let resign = fake.asked().resigns[0].clone();
    assert_eq!((resign.name.as_str(), resign.session_id, resign.token), ("/e", 11, 9));
    assert!(election.session.held().is_empty());
}

#[tokio::test]
async fn a_campaign_that_times_out_says_so_and_holds_nothing() {
    let fake = Fake::default();
    fake.script()
        .campaigns
        .push_back(Err(refusal(tonic::Code::DeadlineExceeded, ErrorKind::Timeout)));
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let election = election(&connection, rx);
    let error = election.campaign("", Some(Duration::from_millis(50))).await.err();
    assert_eq!(error.and_then(|e| e.kind()), Some(ErrorKind::Timeout));
    assert_eq!(fake.asked().campaigns[0].timeout_ms, 50);
    assert!(election.session.held().is_empty());
}

#[tokio::test]
async fn a_lost_session_campaigns_no_more() {
    let fake = Fake::default();
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Lost);
    let error = election(&connection, rx).campaign("", None).await.err();
    assert_eq!(error.and_then(|e| e.kind()), Some(ErrorKind::SessionExpired));
    assert!(fake.asked().campaigns.is_empty());
}

#[tokio::test]
async fn one_leadership_granted_twice_is_resigned_with_its_last_guard() {
    let fake = Fake::default();
    fake.script().campaigns.extend([Ok(4), Ok(4)]);
    fake.script()
        .resigns
        .push_back(Err(refusal(tonic::Code::FailedPrecondition, ErrorKind::HoldEnded)));
    let connection = serve(&fake).await;
    let (state, rx) = watch::channel(SessionState::Alive);
    let election = election(&connection, rx);
    let first = election.campaign("", None).await.unwrap_or_else(|e| panic!("{e}"));
    let second = election.campaign("", None).await.unwrap_or_else(|e| panic!("{e}"));
    first.resign().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(fake.asked().resigns.is_empty(), "another guard still leads");
    assert!(!second.is_lost());
    // The cluster says it had ended already: that is the caller's to know.
    let ended = second.resign().await.err();
    assert_eq!(ended.and_then(|e| e.kind()), Some(ErrorKind::HoldEnded));
    assert_eq!(fake.asked().resigns.len(), 1);
    // A guard learns of a lost session.
    fake.script().campaigns.push_back(Ok(5));
    let third = election.campaign("", None).await.unwrap_or_else(|e| panic!("{e}"));
    state.send_replace(SessionState::Lost);
    tokio::time::timeout(Duration::from_secs(2), third.lost())
        .await
        .unwrap_or_else(|_| panic!("not told"));
    assert_eq!(third.lost_reason().as_deref(), Some("session lost"));
}

#[tokio::test]
async fn no_leader_is_none() {
    let fake = Fake::default();
    fake.script().leaders.extend([None, Some(3)]);
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let election = election(&connection, rx);
    assert_eq!(election.leader().await.unwrap_or_else(|e| panic!("{e}")), None);
    let leader = election.leader().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(leader.map(|l| l.token), Some(3));
}

#[tokio::test]
async fn an_observer_resumes_after_a_break_without_a_repeat_or_a_gap() {
    let fake = Fake::default();
    fake.script().observes.extend([
        ObserveScript {
            items: vec![
                Ok(change(5, Some(5))),
                Ok(change(6, None)),
                Err(Status::unknown("the member went away")),
            ],
            hang: false,
        },
        ObserveScript { items: vec![Ok(change(6, None)), Ok(change(7, Some(7)))], hang: true },
    ]);
    let connection = serve(&fake).await;
    let client = Client { connection };
    let mut observer = client.observe_election("/e", 0).await.unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let next = tokio::time::timeout(Duration::from_secs(5), observer.next()).await;
        let change = next
            .unwrap_or_else(|_| panic!("no change after {seen:?}"))
            .unwrap_or_else(|e| panic!("{e}"));
        seen.push((change.revision, change.leader.map(|l| l.token)));
    }
    assert_eq!(seen, [(5, Some(5)), (6, None), (7, Some(7))]);
    assert_eq!(fake.asked().observe_starts, [0, 7]);
}

#[tokio::test]
async fn an_observer_from_a_compacted_revision_fails_at_once() {
    let fake = Fake::default();
    let compacted = || ObserveScript {
        items: vec![Err(refusal(tonic::Code::OutOfRange, ErrorKind::Compacted))],
        hang: false,
    };
    fake.script().observes.extend([compacted(), compacted()]);
    let connection = serve(&fake).await;
    let client = Client { connection };
    let result = client.observe_election("/e", 2).await;
    assert!(matches!(result, Err(ClientError::Compacted { .. })), "{:?}", result.err());
}
