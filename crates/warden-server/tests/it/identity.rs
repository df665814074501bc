//! The caller's identity travels with every client request: read from its client
//! certificate by the client port's caller layer, answered by `WhoAmI`, recorded by the
//! sessions it opens (and so shown by session info and lock status); empty without TLS.

use std::time::Duration;

use warden_client::Client;
use warden_proto::v1 as pb;
use warden_proto::v1::cluster_client::ClusterClient;

use crate::cluster::{FAST_TIMING, TestCluster, no_snapshots};
use crate::tls::{Pki, channel, tls_cluster};

/// A client of every member of `cluster`, presenting `name`'s certificate.
fn client_as(pki: &Pki, cluster: &TestCluster, name: &str) -> Client {
    let endpoints = (1..=3).map(|id| cluster.endpoint(id)).collect();
    Client::with_tls(endpoints, &pki.client_files(name)).unwrap()
}

#[tokio::test]
async fn alice_is_alice_in_whoami_sessions_and_locks() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki).await;
    cluster.leader(Duration::from_secs(10)).await;
    let alice = client_as(&pki, &cluster, "alice");
    assert_eq!(alice.whoami().await.unwrap(), "alice");

    let session = alice.open_session(Duration::from_secs(10)).await.unwrap();
    let infos = alice.sessions(session.id()).await.unwrap();
    let identities: Vec<&str> = infos.iter().map(|s| s.identity.as_str()).collect();
    assert_eq!(identities, ["alice"], "{infos:?}");

    let guard = alice.mutex(&session, "/locks/a").acquire().await.unwrap();
    let status = alice.lock_status("/locks/a").await.unwrap();
    let holders: Vec<(u64, &str)> =
        status.holders.iter().map(|h| (h.session_id, h.identity.as_str())).collect();
    assert_eq!(holders, [(session.id(), "alice")], "{status:?}");
    guard.release().await.unwrap();
    session.close().await.unwrap();
    cluster.stop().await;
}

#[tokio::test]
async fn a_certificate_naming_nobody_is_unauthenticated() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki).await;
    let addr = cluster.node(1).client_addr();
    let mut nobody =
        ClusterClient::new(channel(addr, pki.client_tls(Some("nobody"))).await.unwrap());
    for status in [
        nobody.who_am_i(pb::WhoAmIRequest {}).await.unwrap_err(),
        nobody.status(pb::StatusRequest {}).await.unwrap_err(),
    ] {
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("names no identity"), "{status:?}");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn without_tls_the_caller_is_anonymous() {
    let cluster = TestCluster::start(1, FAST_TIMING, no_snapshots()).await;
    cluster.leader(Duration::from_secs(10)).await;
    let client = cluster.client();
    assert_eq!(client.whoami().await.unwrap(), "");
    let session = client.open_session(Duration::from_secs(10)).await.unwrap();
    let infos = client.sessions(session.id()).await.unwrap();
    assert_eq!(infos.iter().map(|s| s.identity.as_str()).collect::<Vec<_>>(), [""]);
    session.close().await.unwrap();
    cluster.stop().await;
}
