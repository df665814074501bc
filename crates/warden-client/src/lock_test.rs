//! Lock guards against a fake Lock service on loopback: a reentrant lock's acquires and
//! releases carry request ids (one per asking, kept by its retries), every guard of a
//! counted hold gives its own count back, and another owner's refusal is named.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;
use tonic::{Code, Request, Response, Status};
use warden_proto::v1::lock_server::{Lock as LockService, LockServer};

use super::*;
use crate::session::SessionState;
use crate::test_support::{eventually, loopback, refusal};

#[derive(Default, Clone)]
struct Fake {
    /// The answers to Acquire, in order (a token, or a refusal); none scripted: token 7.
    acquires: Arc<Mutex<VecDeque<Result<u64, Status>>>>,
    asked: Arc<Mutex<Vec<pb::AcquireRequest>>>,
    released: Arc<Mutex<Vec<pb::ReleaseRequest>>>,
}

impl Fake {
    fn asked(&self) -> Vec<pb::AcquireRequest> {
        self.asked.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn released(&self) -> Vec<pb::ReleaseRequest> {
        self.released.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[tonic::async_trait]
impl LockService for Fake {
    async fn acquire(
        &self,
        request: Request<pb::AcquireRequest>,
    ) -> Result<Response<pb::AcquireResponse>, Status> {
        self.asked.lock().unwrap_or_else(PoisonError::into_inner).push(request.into_inner());
        let next = self.acquires.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
        let token = next.unwrap_or(Ok(7))?;
        Ok(Response::new(pb::AcquireResponse { header: None, waiter: "/l/w-1".into(), token }))
    }

    async fn try_acquire(
        &self,
        request: Request<pb::AcquireRequest>,
    ) -> Result<Response<pb::AcquireResponse>, Status> {
        self.acquire(request).await
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        self.released.lock().unwrap_or_else(PoisonError::into_inner).push(request.into_inner());
        Ok(Response::new(pb::ReleaseResponse { header: None, held: true, remaining: 0 }))
    }

    async fn revoke(
        &self,
        _: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn status(
        &self,
        _: Request<pb::LockStatusRequest>,
    ) -> Result<Response<pb::LockStatusResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn check_sequencer(
        &self,
        _: Request<pb::CheckSequencerRequest>,
    ) -> Result<Response<pb::CheckSequencerResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn stats(
        &self,
        _: Request<pb::LockStatsRequest>,
    ) -> Result<Response<pb::LockStatsResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }
}

async fn serve(fake: &Fake) -> Arc<Connection> {
    loopback(tonic::transport::Server::builder().add_service(LockServer::new(fake.clone()))).await
}

fn mutex(connection: &Arc<Connection>, state: watch::Receiver<SessionState>) -> super::Lock {
    super::Lock {
        connection: Arc::clone(connection),
        session: SessionLink::detached(11, state),
        request: pb::AcquireRequest {
            session_id: 11,
            ..request("/l", pb::LockType::Mutex, false, 0, 1)
        },
        retry_interval: Duration::from_millis(10),
        max_retries: 1,
    }
}

#[tokio::test]
async fn reentrant_acquires_and_releases_each_carry_an_id_kept_by_their_retries() {
    let fake = Fake::default();
    fake.acquires.lock().unwrap_or_else(PoisonError::into_inner).extend([
        // The first asking: a member without a quorum (tried again), then a cancelled
        // wait (asked anew), then the grant.
        Err(refusal(Code::Unavailable, ErrorKind::NoQuorum)),
        Err(refusal(Code::Aborted, ErrorKind::WaitCancelled)),
        Ok(7),
        Ok(7),
    ]);
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let lock = mutex(&connection, rx).with_owner("task-7");
    let first = lock.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    let second = lock.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((first.token(), second.token()), (7, 7));
    let asked = fake.asked();
    assert_eq!(asked.len(), 4);
    assert!(asked.iter().all(|a| a.owner == "task-7"));
    let seqs: Vec<Option<u64>> = asked.iter().map(|a| a.request_id.map(|r| r.seq)).collect();
    assert_eq!(
        seqs,
        [Some(1), Some(1), Some(2), Some(3)],
        "a retry keeps its id, an asking has its own"
    );

    // Each guard gives its own count back.
    first.release().await.unwrap_or_else(|e| panic!("{e}"));
    second.release().await.unwrap_or_else(|e| panic!("{e}"));
    let released = fake.released();
    assert!(released.iter().all(|r| r.token == Some(7) && r.session_id == 11));
    let ids: Vec<_> = released.iter().map(|r| r.request_id.map(|r| r.seq)).collect();
    assert_eq!(ids, [Some(4), Some(5)]);
    // Every answered request was acknowledged: the next one says so.
    let third = lock.try_acquire().await.unwrap_or_else(|e| panic!("{e}"));
    let last = fake.asked().pop().and_then(|a| a.request_id);
    assert_eq!(last.map(|r| (r.seq, r.lowest_pending)), Some((6, 6)));
    // A dropped guard gives its count back too, with an id of its own.
    drop(third);
    eventually("the dropped guard's count is given back", || fake.released().len() == 3).await;
    assert_eq!(fake.released()[2].request_id.map(|r| r.seq), Some(7));
}

#[tokio::test]
async fn a_plain_lock_sends_no_ids_and_releases_with_its_last_guard() {
    let fake = Fake::default();
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let lock = mutex(&connection, rx);
    let first = lock.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    let second = lock.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    first.release().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(fake.released().is_empty(), "another guard still holds");
    second.release().await.unwrap_or_else(|e| panic!("{e}"));
    let released = fake.released();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].request_id, None);
    assert!(fake.asked().iter().all(|a| a.request_id.is_none() && a.owner.is_empty()));
}

#[tokio::test]
async fn another_owner_is_named() {
    let fake = Fake::default();
    fake.acquires
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push_back(Err(refusal(Code::FailedPrecondition, ErrorKind::OtherOwner)));
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let refused = mutex(&connection, rx).with_owner("task-8").acquire().await;
    match refused {
        Err(LockError::OtherOwner { path, message }) => {
            assert_eq!(path, "/l");
            assert!(message.contains(ErrorKind::OtherOwner.as_str()), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
