use super::*;

fn member(waiter: &str, token: Option<u64>) -> pb::LockWaiter {
    pb::LockWaiter {
        waiter: waiter.into(),
        session_id: 9,
        mode: warden_proto::convert::lock::MEMBER_NAME.into(),
        token,
        since_ms: 2,
        identity: "bob".into(),
        holds: 1,
        ..Default::default()
    }
}

#[test]
fn a_status_keeps_its_members_in_order_and_an_unknown_type_is_an_error() {
    let response = pb::BarrierStatusResponse {
        header: Some(pb::ResponseHeader { revision: 12, ..Default::default() }),
        r#type: "double".into(),
        set: true,
        count: 2,
        members: vec![member("/b/w-0000000002", Some(11)), member("/b/w-0000000003", None)],
    };
    let status = barrier_status(response.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.kind, BarrierKind::Double);
    assert_eq!(status.kind.name(), "double");
    assert!(status.set);
    assert_eq!(status.count, 2);
    assert_eq!(status.revision, 12);
    let members: Vec<_> = status.members.iter().map(|m| (m.member.as_str(), m.token)).collect();
    assert_eq!(members, [("/b/w-0000000002", Some(11)), ("/b/w-0000000003", None)]);
    assert_eq!(status.members[0].identity, "bob");

    let plain = pb::BarrierStatusResponse { r#type: "barrier".into(), ..response.clone() };
    assert_eq!(barrier_status(plain).map(|s| s.kind).ok(), Some(BarrierKind::Barrier));
    let newer = pb::BarrierStatusResponse { r#type: "triple".into(), ..response };
    assert!(matches!(barrier_status(newer), Err(ClientError::UnexpectedResponse { .. })));
}

// A fake Barrier service on loopback, scripted per call, recording what it was asked.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::watch;
use tonic::{Request, Response, Status};
use warden_proto::v1::barrier_server::{Barrier as BarrierService, BarrierServer};

use crate::session::SessionState;
use crate::test_support::{eventually, loopback, refusal};

#[derive(Default)]
struct Script {
    waits: VecDeque<Result<(), Status>>,
    enters: VecDeque<Result<String, Status>>,
    leaves: VecDeque<Result<(), Status>>,
    statuses: VecDeque<Result<pb::BarrierStatusResponse, Status>>,
}

#[derive(Default)]
struct Asked {
    waits: Vec<pb::BarrierWaitRequest>,
    enters: Vec<pb::BarrierEnterRequest>,
    leaves: Vec<pb::BarrierLeaveRequest>,
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

fn unscripted<T>() -> Result<T, Status> {
    Err(Status::internal("not scripted"))
}

#[tonic::async_trait]
impl BarrierService for Fake {
    async fn set(
        &self,
        _: Request<pb::BarrierSetRequest>,
    ) -> Result<Response<pb::BarrierSetResponse>, Status> {
        Ok(Response::new(pb::BarrierSetResponse { header: None, created: true }))
    }

    async fn remove(
        &self,
        _: Request<pb::BarrierRemoveRequest>,
    ) -> Result<Response<pb::BarrierRemoveResponse>, Status> {
        Ok(Response::new(pb::BarrierRemoveResponse { header: None, removed: true, released: 2 }))
    }

    async fn wait(
        &self,
        request: Request<pb::BarrierWaitRequest>,
    ) -> Result<Response<pb::BarrierWaitResponse>, Status> {
        self.asked().waits.push(request.into_inner());
        let next = self.script().waits.pop_front().unwrap_or_else(unscripted);
        next.map(|()| Response::new(pb::BarrierWaitResponse { header: None }))
    }

    async fn enter(
        &self,
        request: Request<pb::BarrierEnterRequest>,
    ) -> Result<Response<pb::BarrierEnterResponse>, Status> {
        self.asked().enters.push(request.into_inner());
        let member = self.script().enters.pop_front().unwrap_or_else(unscripted)?;
        Ok(Response::new(pb::BarrierEnterResponse { header: None, member }))
    }

    async fn leave(
        &self,
        request: Request<pb::BarrierLeaveRequest>,
    ) -> Result<Response<pb::BarrierLeaveResponse>, Status> {
        self.asked().leaves.push(request.into_inner());
        let next = self.script().leaves.pop_front().unwrap_or_else(unscripted);
        next.map(|()| Response::new(pb::BarrierLeaveResponse { header: None }))
    }

    async fn status(
        &self,
        _: Request<pb::BarrierStatusRequest>,
    ) -> Result<Response<pb::BarrierStatusResponse>, Status> {
        self.script().statuses.pop_front().unwrap_or_else(unscripted).map(Response::new)
    }
}

async fn serve(fake: &Fake) -> Arc<Connection> {
    loopback(tonic::transport::Server::builder().add_service(BarrierServer::new(fake.clone())))
        .await
}

fn double(connection: &Arc<Connection>, state: watch::Receiver<SessionState>) -> DoubleBarrier {
    DoubleBarrier {
        connection: Arc::clone(connection),
        session: SessionLink::detached(21, state),
        name: "/b".into(),
        count: 3,
    }
}

#[tokio::test]
async fn a_wait_carries_its_timeout_and_a_timeout_is_said() {
    let fake = Fake::default();
    fake.script()
        .waits
        .extend([Ok(()), Err(refusal(tonic::Code::DeadlineExceeded, ErrorKind::Timeout))]);
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let barrier = Barrier {
        connection: Arc::clone(&connection),
        session: SessionLink::detached(21, rx),
        name: "/g".into(),
    };
    barrier.wait(None).await.unwrap_or_else(|e| panic!("{e}"));
    let error = barrier.wait(Some(Duration::from_millis(1500))).await.err();
    assert_eq!(error.and_then(|e| e.kind()), Some(ErrorKind::Timeout));
    let asked: Vec<_> =
        fake.asked().waits.iter().map(|w| (w.name.clone(), w.session_id, w.timeout_ms)).collect();
    assert_eq!(asked, [("/g".to_owned(), 21, 0), ("/g".to_owned(), 21, 1500)]);
    let removed = barrier.remove().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(removed, BarrierRemoved { removed: true, released: 2 });
}

#[tokio::test]
async fn a_cancelled_enter_enters_again_and_a_dropped_member_leaves_without_waiting() {
    let fake = Fake::default();
    fake.script().enters.extend([
        Err(refusal(tonic::Code::Aborted, ErrorKind::WaitCancelled)),
        Ok("/b/w-0000000004".to_owned()),
    ]);
    fake.script().leaves.push_back(Err(refusal(tonic::Code::DeadlineExceeded, ErrorKind::Timeout)));
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let entered = double(&connection, rx).enter(None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(entered.member(), "/b/w-0000000004");
    let enters: Vec<_> =
        fake.asked().enters.iter().map(|e| (e.session_id, e.count, e.timeout_ms)).collect();
    assert_eq!(enters, [(21, 3, 0), (21, 3, 0)]);
    drop(entered);
    eventually("the dropped member leaves", || fake.asked().leaves.len() == 1).await;
    let leave = fake.asked().leaves[0].clone();
    assert_eq!((leave.name.as_str(), leave.session_id, leave.timeout_ms), ("/b", 21, 1));
}

#[tokio::test]
async fn a_member_that_leaves_waits_for_the_others_and_is_not_left_again_on_drop() {
    let fake = Fake::default();
    fake.script().enters.push_back(Ok("/b/w-0000000001".to_owned()));
    fake.script().leaves.push_back(Ok(()));
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let entered = double(&connection, rx).enter(Some(Duration::from_secs(5))).await;
    let entered = entered.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fake.asked().enters[0].timeout_ms, 5000);
    entered.leave(None).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let leaves: Vec<_> = fake.asked().leaves.iter().map(|l| l.timeout_ms).collect();
    assert_eq!(leaves, [0], "one leave, waiting for the others");
}

/// A double barrier's status whose members are all in (`set`), or a new round's (not).
fn round(set: bool) -> pb::BarrierStatusResponse {
    pb::BarrierStatusResponse {
        header: None,
        r#type: "double".into(),
        set,
        count: 3,
        members: vec![member("/b/w-0000000002", set.then_some(11))],
    }
}

#[tokio::test]
async fn a_leave_asked_again_after_a_lost_answer_waits_for_the_others_and_succeeds() {
    let fake = Fake::default();
    fake.script().enters.extend([Ok("/b/w-0000000001".to_owned()), Ok("/b/w-0000000005".into())]);
    // The first try's answer is lost; the retry finds the member out (NotHeld); the
    // others are still in once, then gone (no node), then a new round is there.
    let not_held = || Err(refusal(tonic::Code::FailedPrecondition, ErrorKind::NotHeld));
    fake.script().leaves.extend([Err(Status::unavailable("connection reset")), not_held()]);
    let gone = refusal(tonic::Code::NotFound, ErrorKind::NoNode);
    fake.script().statuses.extend([Ok(round(true)), Err(gone)]);
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let barrier = double(&connection, rx);
    let entered = barrier.enter(None).await.unwrap_or_else(|e| panic!("{e}"));
    entered.leave(None).await.unwrap_or_else(|e| panic!("a retried leave failed: {e}"));
    assert_eq!(fake.asked().leaves.len(), 2);
    assert!(fake.script().statuses.is_empty(), "it did not wait for the others");

    fake.script().leaves.extend([Err(Status::unavailable("connection reset")), not_held()]);
    fake.script().statuses.extend([Ok(round(false))]);
    let entered = barrier.enter(None).await.unwrap_or_else(|e| panic!("{e}"));
    entered.leave(None).await.unwrap_or_else(|e| panic!("a new round's status: {e}"));

    // Still in at the timeout: a timeout, as the server's wait would say.
    fake.script().leaves.extend([Err(Status::unavailable("connection reset")), not_held()]);
    fake.script().statuses.extend((0..100).map(|_| Ok(round(true))));
    let error = barrier.leave(Some(Duration::from_millis(300))).await.err();
    assert_eq!(error.and_then(|e| e.kind()), Some(ErrorKind::Timeout));
}

#[tokio::test]
async fn a_first_leave_of_a_session_that_is_not_in_is_refused() {
    let fake = Fake::default();
    fake.script()
        .leaves
        .push_back(Err(refusal(tonic::Code::FailedPrecondition, ErrorKind::NotHeld)));
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let error = double(&connection, rx).leave(None).await.err();
    assert_eq!(error.and_then(|e| e.kind()), Some(ErrorKind::NotHeld));
    assert!(fake.script().statuses.is_empty() && fake.asked().leaves.len() == 1);
}
