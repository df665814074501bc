//! Resource kinds on a real 3-member cluster, over the Resource service: an id's lock in
//! the current version, a rotation that queues new acquisitions for the new version and
//! switches when the old one drains, and a forced rotation that revokes what is left.

use std::time::Duration;

use tonic::Code;
use warden_proto::v1 as pb;
use warden_proto::v1::resource_client::ResourceClient;
use warden_proto::{ERROR_METADATA, ErrorKind};

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};

fn kind(status: &tonic::Status) -> Option<ErrorKind> {
    ErrorKind::parse(status.metadata().get(ERROR_METADATA)?.to_str().ok()?)
}

fn acquire(id: &str, session_id: u64, no_wait: bool) -> pb::ResourceAcquireRequest {
    pb::ResourceAcquireRequest {
        kind: "/orders".into(),
        id: id.into(),
        session_id,
        no_wait_while_draining: no_wait,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_drains_the_old_version_then_switches_and_grants_the_new_one() {
    let cluster = TestCluster::start_tls_if_asked(3, FAST_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let a = client.open_session(Duration::from_secs(10)).await.unwrap();
    let b = client.open_session(Duration::from_secs(10)).await.unwrap();
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let mut resources = ResourceClient::new(cluster.channel(leader).await);
    let init = pb::ResourceInitRequest { kind: "/orders".into(), version: "v1".into() };
    assert!(resources.init(init.clone()).await.unwrap().into_inner().created);
    assert!(!resources.init(init).await.unwrap().into_inner().created);

    let held = resources.acquire(acquire("42", a.id(), false)).await.unwrap().into_inner();
    assert_eq!(held.lock, "/orders/v1/42");
    let rotate = pb::RotationRequest { kind: "/orders".into(), to: "v2".into() };
    let begun = resources.rotate(rotate.clone()).await.unwrap().into_inner();
    assert_eq!((begun.from.as_str(), begun.to.as_str(), begun.switched), ("v1", "v2", false));

    // While draining: fail fast if asked, else queue for v2.
    let refused = resources.acquire(acquire("7", b.id(), true)).await.unwrap_err();
    assert_eq!(
        (refused.code(), kind(&refused)),
        (Code::FailedPrecondition, Some(ErrorKind::Draining))
    );
    let mut waiting = resources.clone();
    let b_id = b.id();
    let queued = tokio::spawn(async move { waiting.acquire(acquire("42", b_id, false)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!queued.is_finished(), "no grant in v2 before the switch");
    let status = resources
        .status(pb::ResourceStatusRequest { kind: "/orders".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.version.as_str(), status.rotating_to.as_str()), ("v1", "v2"));
    assert_eq!(
        status.current.iter().map(|h| h.lock.as_str()).collect::<Vec<_>>(),
        ["/orders/v1/42"]
    );
    assert_eq!(
        status.waiting.iter().map(|h| h.lock.as_str()).collect::<Vec<_>>(),
        ["/orders/v2/42"]
    );

    // The old holder's session ends: the switch, and the v2 waiter holds.
    a.close().await.unwrap();
    let got = queued.await.unwrap().unwrap().into_inner();
    assert_eq!(got.lock, "/orders/v2/42");
    assert!(got.token > held.token);
    let done = resources.rotate(rotate).await.unwrap().into_inner();
    assert!(done.switched, "rotating again to where it is reports done");

    // A forced rotation revokes what is left; only an admin may (here, any caller without
    // ACLs), and it switches at once when no lock-delay holds it.
    let begun = resources
        .rotate(pb::RotationRequest { kind: "/orders".into(), to: "v3".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!begun.switched, "b holds in v2");
    let forced = resources
        .force(pb::ForceRotationRequest { kind: "/orders".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((forced.revoked, forced.switched), (1, true));
    let status = resources
        .status(pb::ResourceStatusRequest { kind: "/orders".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.version.as_str(), status.rotating_to.as_str()), ("v3", ""));
    let missing =
        resources.status(pb::ResourceStatusRequest { kind: "/users".into() }).await.unwrap_err();
    assert_eq!((missing.code(), kind(&missing)), (Code::NotFound, Some(ErrorKind::NoResource)));
    cluster.stop().await;
}
