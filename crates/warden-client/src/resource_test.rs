use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::watch;
use tonic::{Request, Response, Status};
use warden_core::queue::WaitMode;
use warden_proto::v1::resource_server::{Resource as ResourceService, ResourceServer};

use super::*;
use crate::session::SessionState;
use crate::test_support::{loopback, refusal};

fn waiter(session_id: u64, token: Option<u64>) -> pb::LockWaiter {
    pb::LockWaiter {
        waiter: "/orders/v1/42/w-0000000001".into(),
        session_id,
        mode: warden_proto::convert::lock::EXCLUSIVE_NAME.into(),
        token,
        since_ms: 1000,
        identity: "alice".into(),
        holds: 1,
        ..Default::default()
    }
}

#[test]
fn a_status_keeps_every_field_and_tells_holders_from_waiters() {
    let response = pb::ResourceStatusResponse {
        header: Some(pb::ResponseHeader { revision: 9, ..Default::default() }),
        kind: "/orders".into(),
        version: "v1".into(),
        rotating_to: "v2".into(),
        current: vec![
            pb::ResourceHold {
                id: "42".into(),
                lock: "/orders/v1/42".into(),
                waiter: Some(waiter(3, Some(7))),
            },
            pb::ResourceHold {
                id: "42".into(),
                lock: "/orders/v1/42".into(),
                waiter: Some(waiter(4, None)),
            },
        ],
        waiting: vec![pb::ResourceHold {
            id: "43".into(),
            lock: "/orders/v2/43".into(),
            waiter: Some(waiter(5, None)),
        }],
    };
    let s = status(response.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.kind.as_str(), s.version.as_str()), ("/orders", "v1"));
    assert_eq!(s.rotating_to.as_deref(), Some("v2"));
    assert_eq!(s.revision, 9);
    assert!(!s.is_at("v1") && !s.is_at("v2"));
    let holders: Vec<_> = s.holders().map(|h| (h.entry.session_id, h.entry.token)).collect();
    assert_eq!(holders, [(3, Some(7))]);
    assert_eq!(s.current[0].entry.mode, WaitMode::Exclusive);
    assert_eq!(s.current[0].entry.identity, "alice");
    assert_eq!(s.waiting[0].lock, "/orders/v2/43");

    let idle = pb::ResourceStatusResponse {
        rotating_to: String::new(),
        current: vec![],
        waiting: vec![],
        ..response.clone()
    };
    let idle = status(idle).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(idle.rotating_to, None);
    assert!(idle.is_at("v1"));

    let mut odd = response.clone();
    odd.current[0].waiter = None;
    assert!(matches!(status(odd), Err(ClientError::UnexpectedResponse { .. })));
    let mut newer = response;
    if let Some(w) = newer.waiting[0].waiter.as_mut() {
        w.mode = "turnstile".into();
    }
    assert!(matches!(status(newer), Err(ClientError::UnexpectedResponse { .. })));
}

#[test]
fn the_version_is_read_from_the_lock_path_of_the_kind_and_id() {
    assert_eq!(version_of("/orders/v2/42", "/orders", "42").as_deref(), Some("v2"));
    assert_eq!(version_of("/a/b/v1/x", "/a/b", "x").as_deref(), Some("v1"));
    assert_eq!(version_of("/v1/x", "/", "x").as_deref(), Some("v1"));
    assert_eq!(version_of("/orders/v2/43", "/orders", "42"), None);
    assert_eq!(version_of("/users/v2/42", "/orders", "42"), None);
    assert_eq!(version_of("/orders//42", "/orders", "42"), None);
    assert_eq!(version_of("/orders/42", "/orders", "42"), None);
}

// A fake Resource service on loopback, scripted per acquire, recording what it was asked.

#[derive(Default, Clone)]
struct Fake {
    acquires: Arc<Mutex<VecDeque<Result<pb::ResourceAcquireResponse, Status>>>>,
    asked: Arc<Mutex<Vec<pb::ResourceAcquireRequest>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[tonic::async_trait]
impl ResourceService for Fake {
    async fn init(
        &self,
        request: Request<pb::ResourceInitRequest>,
    ) -> Result<Response<pb::ResourceInitResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(pb::ResourceInitResponse {
            header: None,
            created: r.kind == "/new",
            version: r.version,
        }))
    }

    async fn acquire(
        &self,
        request: Request<pb::ResourceAcquireRequest>,
    ) -> Result<Response<pb::ResourceAcquireResponse>, Status> {
        lock(&self.asked).push(request.into_inner());
        let next = lock(&self.acquires).pop_front();
        next.unwrap_or_else(|| Err(Status::internal("no acquire scripted"))).map(Response::new)
    }

    async fn rotate(
        &self,
        request: Request<pb::RotationRequest>,
    ) -> Result<Response<pb::RotationResponse>, Status> {
        let r = request.into_inner();
        if r.to == "v3" {
            return Err(refusal(
                tonic::Code::FailedPrecondition,
                ErrorKind::InvalidResourceRequest,
            ));
        }
        Ok(Response::new(pb::RotationResponse {
            header: None,
            from: "v1".into(),
            to: r.to,
            switched: false,
            revoked: 0,
        }))
    }

    async fn force(
        &self,
        _: Request<pb::ForceRotationRequest>,
    ) -> Result<Response<pb::RotationResponse>, Status> {
        Err(refusal(tonic::Code::PermissionDenied, ErrorKind::PermissionDenied))
    }

    async fn status(
        &self,
        _: Request<pb::ResourceStatusRequest>,
    ) -> Result<Response<pb::ResourceStatusResponse>, Status> {
        Err(refusal(tonic::Code::NotFound, ErrorKind::NoResource))
    }
}

async fn serve(fake: &Fake) -> Arc<Connection> {
    loopback(tonic::transport::Server::builder().add_service(ResourceServer::new(fake.clone())))
        .await
}

fn resource(connection: &Arc<Connection>, state: watch::Receiver<SessionState>) -> Resource {
    let kind = ResourceKind { connection: Arc::clone(connection), kind: "/orders".into() };
    Resource::new(kind, SessionLink::detached(11, state))
}

fn granted(lock: &str, token: u64) -> Result<pb::ResourceAcquireResponse, Status> {
    Ok(pb::ResourceAcquireResponse {
        header: None,
        lock: lock.into(),
        waiter: format!("{lock}/w-0000000001"),
        token,
    })
}

#[tokio::test]
async fn an_acquire_names_kind_and_id_and_holds_the_lock_path_it_is_given() {
    let fake = Fake::default();
    lock(&fake.acquires).extend([
        Err(refusal(tonic::Code::Aborted, ErrorKind::WaitCancelled)),
        granted("/orders/v2/42", 17),
    ]);
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let orders = resource(&connection, rx).with_delay(Duration::from_millis(250));
    let guard = orders.acquire("42").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((guard.lock_path(), guard.version(), guard.id()), ("/orders/v2/42", "v2", "42"));
    assert_eq!(guard.token(), 17);
    assert!(!guard.is_lost());
    // The keepalive lists the hold under its lock path, as any lock's.
    assert_eq!(orders.session.held(), [("/orders/v2/42".to_owned(), 17)]);
    {
        let asked = lock(&fake.asked);
        assert_eq!(asked.len(), 2, "a cancelled wait is queued again");
        let a = &asked[1];
        assert_eq!((a.kind.as_str(), a.id.as_str(), a.session_id), ("/orders", "42", 11));
        assert_eq!((a.r#type, a.shared, a.weight), (pb::LockType::Rwlock as i32, false, 1));
        assert_eq!((a.delay_ms, a.timeout_ms, a.no_wait_while_draining), (250, 0, false));
    }
    // Dropped: the keepalive no longer lists it (the release goes in the background).
    drop(guard);
    assert!(orders.session.held().is_empty());
}

#[tokio::test]
async fn a_timeout_a_refusal_and_a_draining_kind_say_what_happened() {
    let fake = Fake::default();
    lock(&fake.acquires).extend([
        Err(refusal(tonic::Code::DeadlineExceeded, ErrorKind::Timeout)),
        Err(refusal(tonic::Code::FailedPrecondition, ErrorKind::Draining)),
        Err(refusal(tonic::Code::Aborted, ErrorKind::WaitRevoked)),
        granted("/users/v1/42", 3),
    ]);
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Alive);
    let orders = resource(&connection, rx).shared().fail_while_draining();
    let timeout = orders.acquire_timeout("42", Duration::from_millis(40)).await;
    assert!(
        matches!(&timeout, Err(LockError::Timeout { path, .. }) if path == "/orders/<version>/42")
    );
    let draining = orders.acquire("42").await;
    match draining {
        Err(LockError::Backend(e)) => assert_eq!(e.kind(), Some(ErrorKind::Draining)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(orders.acquire("42").await, Err(LockError::Revoked { .. })));
    // A grant of another kind's lock is not taken for this one's.
    let odd = orders.acquire("42").await;
    assert!(matches!(odd, Err(LockError::Backend(ClientError::UnexpectedResponse { .. }))));
    let asked = lock(&fake.asked);
    assert_eq!(asked[0].timeout_ms, 40);
    assert!(asked.iter().all(|a| a.shared && a.no_wait_while_draining));
    assert!(orders.session.held().is_empty());
}

#[tokio::test]
async fn a_lost_session_acquires_nothing_and_kind_calls_pass_the_clusters_answer() {
    let fake = Fake::default();
    let connection = serve(&fake).await;
    let (_state, rx) = watch::channel(SessionState::Lost);
    let orders = resource(&connection, rx);
    assert!(matches!(orders.acquire("1").await, Err(LockError::SessionLost { .. })));
    assert!(lock(&fake.asked).is_empty());

    let init = orders.init("v7").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(init, ResourceInit { created: false, version: "v7".into() });
    let begun = orders.rotate("v2").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((begun.from.as_str(), begun.to.as_str(), begun.switched), ("v1", "v2", false));
    let refused = orders.rotate("v3").await.err().and_then(|e| e.kind());
    assert_eq!(refused, Some(ErrorKind::InvalidResourceRequest));
    let denied = orders.force().await.err().and_then(|e| e.kind());
    assert_eq!(denied, Some(ErrorKind::PermissionDenied));
    let missing = orders.status().await.err().and_then(|e| e.kind());
    assert_eq!(missing, Some(ErrorKind::NoResource));
}
