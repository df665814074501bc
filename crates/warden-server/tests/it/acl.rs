//! ACLs end to end over mutual TLS: the deny matrix (every client RPC, called by a caller
//! without the permission it needs, is PERMISSION_DENIED, and the same call by one who has
//! it is not), one client deleting or revoking another's lock, a policy change reaching an
//! open connection and an open watch, and `acl apply` refusing a bad file or a lockout.

use std::time::Duration;

use tonic::transport::Channel;
use tonic::{Code, Status};
use warden_proto::v1 as pb;
use warden_proto::v1::barrier_client::BarrierClient;
use warden_proto::v1::cluster_client::ClusterClient;
use warden_proto::v1::election_client::ElectionClient;
use warden_proto::v1::kv_client::KvClient;
use warden_proto::v1::lock_client::LockClient;
use warden_proto::v1::maintenance_client::MaintenanceClient;
use warden_proto::v1::resource_client::ResourceClient;
use warden_proto::v1::semaphore_client::SemaphoreClient;
use warden_proto::v1::session_client::SessionClient;
use warden_proto::v1::watch_client::WatchClient;

use crate::cluster::{FAST_TIMING, TestCluster};
use crate::tls::{Pki, channel};

/// The policy the cluster is founded with (`acl.file`): admin everything; alice and carol
/// the same rights under /a (no admin); bob nothing at all.
const POLICY: &str = r#"
[[rule]]
identities = ["admin"]
permissions = ["all"]
paths = ["/", "/**"]

[[rule]]
identities = ["alice", "carol"]
permissions = ["read", "write", "create", "delete", "watch", "lock"]
paths = ["/a", "/a/**"]
"#;

/// What remains of alice's rights after the change: nothing.
const WITHOUT_ALICE: &str = r#"
[[rule]]
identities = ["admin"]
permissions = ["all"]
paths = ["/", "/**"]

[[rule]]
identities = ["carol"]
permissions = ["read", "write", "create", "delete", "watch", "lock"]
paths = ["/a", "/a/**"]
"#;

struct Secure {
    pki: Pki,
    cluster: TestCluster,
}

impl Secure {
    /// One member with mutual TLS, founded with [`POLICY`].
    async fn start() -> Secure {
        warden_server::install_crypto_provider();
        let pki = Pki::new();
        let policy = pki.path("policy.toml");
        std::fs::write(&policy, POLICY).unwrap();
        let cluster = TestCluster::start_with(1, FAST_TIMING, |c| {
            c.tls = pki.member_tls(c.node_id);
            c.acl.file = Some(policy.clone());
        })
        .await;
        let secure = Secure { pki, cluster };
        // The member puts the policy in force once it leads; until then it grants nothing
        // (it is configured for ACLs), so even admin's first calls may be refused.
        let mut cluster_api = ClusterClient::new(secure.channel("admin").await);
        let started = std::time::Instant::now();
        loop {
            match cluster_api.get_acl(pb::GetAclRequest {}).await {
                Ok(acl) if acl.get_ref().enabled => {
                    assert_eq!(acl.into_inner().text, POLICY);
                    break;
                }
                Ok(_) => {}
                Err(status) => assert_eq!(status.code(), Code::PermissionDenied, "{status:?}"),
            }
            assert!(started.elapsed() < Duration::from_secs(10), "acl.file never put in force");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        secure
    }

    async fn channel(&self, who: &str) -> Channel {
        channel(self.cluster.node(1).client_addr(), self.pki.client_tls(Some(who))).await.unwrap()
    }

    /// Waits (at most 10 s) until the member's audit log has a `denied` line for each
    /// denial this test saw (admin's, refused while the first policy was on its way, are
    /// not the test's), and checks each names who, what and where.
    async fn assert_every_denial_audited(&self) {
        let expected = DENIED.with(std::cell::Cell::get);
        let file = self.cluster.configs[0].audit_file();
        let started = std::time::Instant::now();
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .filter(|l: &serde_json::Value| l["kind"] == "denied" && l["identity"] != "admin")
                .collect();
            if lines.len() >= expected || started.elapsed() > Duration::from_secs(10) {
                assert_eq!(lines.len(), expected, "denied lines in the audit log:\n{text}");
                for line in &lines {
                    for field in ["identity", "action", "permission", "path", "reason", "time"] {
                        assert!(line[field].is_string(), "{field} missing: {line}");
                    }
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn open_session(&self, who: &str) -> u64 {
        let mut sessions = SessionClient::new(self.channel(who).await);
        let open = pb::OpenSessionRequest { ttl_ms: 10_000 };
        sessions.open(open).await.unwrap().into_inner().session_id
    }
}

thread_local! {
    /// Denials this test saw (each test runs on one thread: `#[tokio::test]`).
    static DENIED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn denied<T: std::fmt::Debug>(what: &str, result: Result<T, Status>) -> Status {
    match result {
        Err(status) if status.code() == Code::PermissionDenied => {
            DENIED.with(|d| d.set(d.get() + 1));
            status
        }
        other => panic!("{what}: expected PERMISSION_DENIED, got {other:?}"),
    }
}

fn not_denied<T: std::fmt::Debug>(what: &str, result: &Result<T, Status>) {
    if let Err(status) = result {
        assert_ne!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
    }
}

/// Every RPC of every client service, as a caller that may not, then as one that may.
#[tokio::test]
async fn every_rpc_is_denied_to_a_caller_without_its_permission() {
    let s = Secure::start().await;
    let alice_session = s.open_session("alice").await;
    let bob_session = s.open_session("bob").await;
    let (bob, alice, admin) =
        (s.channel("bob").await, s.channel("alice").await, s.channel("admin").await);
    KvClient::new(admin.clone())
        .create(pb::CreateRequest { path: "/a".into(), ..Default::default() })
        .await
        .unwrap();
    let alice_lock = LockClient::new(alice.clone())
        .acquire(pb::AcquireRequest {
            path: "/a/held".into(),
            session_id: alice_session,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Each case: a name, the call as bob (no rights), the same call as one who may.
    macro_rules! case {
        ($name:expr, $client:ident, $method:ident, $request:expr, $allowed:expr) => {{
            let status = denied($name, $client::new(bob.clone()).$method($request).await);
            assert!(status.message().contains("\"bob\" may not"), "{}: {status:?}", $name);
            let allowed = $client::new($allowed.clone()).$method($request).await;
            not_denied($name, &allowed);
        }};
    }
    let path = |p: &str| p.to_owned();
    case!("KV.Get", KvClient, get, pb::GetRequest { path: path("/a"), serializable: true }, alice);
    case!(
        "KV.Children",
        KvClient,
        children,
        pb::ChildrenRequest { path: path("/a"), ..Default::default() },
        alice
    );
    case!(
        "KV.Create",
        KvClient,
        create,
        pb::CreateRequest { path: path("/a/x"), ..Default::default() },
        alice
    );
    case!(
        "KV.Set",
        KvClient,
        set,
        pb::SetRequest { path: path("/a/x"), ..Default::default() },
        alice
    );
    case!(
        "KV.Delete",
        KvClient,
        delete,
        pb::DeleteRequest { path: path("/a/x"), ..Default::default() },
        alice
    );
    let txn = pb::TxnRequest {
        compares: vec![],
        ops: vec![pb::TxnOp {
            op: Some(pb::txn_op::Op::Create(pb::CreateRequest {
                path: path("/a/t"),
                ..Default::default()
            })),
        }],
        origin: None,
    };
    case!("KV.Txn", KvClient, txn, txn.clone(), alice);
    let read_only_txn = pb::TxnRequest {
        compares: vec![pb::Compare {
            path: path("/a"),
            target: Some(pb::compare::Target::Exists(true)),
            op: 0,
        }],
        ops: vec![],
        origin: None,
    };
    case!("KV.Txn (compare)", KvClient, txn, read_only_txn.clone(), alice);
    let watch = pb::WatchRequest {
        path: path("/a"),
        scope: pb::WatchScope::Prefix.into(),
        ..Default::default()
    };
    case!("Watch.Watch", WatchClient, watch, watch.clone(), alice);
    let glob = pb::WatchRequest {
        path: path("/a/**"),
        scope: pb::WatchScope::Glob.into(),
        ..Default::default()
    };
    case!("Watch.Watch (glob)", WatchClient, watch, glob.clone(), alice);

    // Sessions: bob may open and keep his own, not touch alice's or list everyone's.
    not_denied(
        "Session.Open",
        &SessionClient::new(bob.clone()).open(pb::OpenSessionRequest { ttl_ms: 10_000 }).await,
    );
    case!(
        "Session.Info (all)",
        SessionClient,
        info,
        pb::SessionInfoRequest { session_id: 0 },
        admin
    );
    case!(
        "Session.Info (another's)",
        SessionClient,
        info,
        pb::SessionInfoRequest { session_id: alice_session },
        alice
    );
    not_denied(
        "Session.Info (own)",
        &SessionClient::new(bob.clone())
            .info(pb::SessionInfoRequest { session_id: bob_session })
            .await,
    );
    // KeepAlive of another's session: the stream answers with the refusal.
    // A keepalive stream opens on the leader only, and a loaded machine can make even a
    // lone member doubt its lease for a moment (UNAVAILABLE, NotLeader): try again then.
    let mut first = Err(Status::unknown("not tried"));
    for _ in 0..50 {
        let renew = pb::KeepAliveRequest { session_id: alice_session, held: vec![] };
        let stream =
            SessionClient::new(bob.clone()).keep_alive(tokio_stream::iter(vec![renew])).await;
        first = match stream {
            Ok(response) => {
                let mut responses = response.into_inner();
                tokio::time::timeout(Duration::from_secs(10), responses.message())
                    .await
                    .expect("keepalive answered in time")
            }
            Err(status) => Err(status),
        };
        if !matches!(&first, Err(s) if s.code() == Code::Unavailable) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    denied("Session.KeepAlive (another's)", first);

    // Locks and semaphores: bob has no `lock` on /a, and alice's session is not his.
    let acquire =
        pb::AcquireRequest { path: path("/a/l"), session_id: bob_session, ..Default::default() };
    let alice_acquire =
        pb::AcquireRequest { path: path("/a/l"), session_id: alice_session, ..Default::default() };
    for (name, request) in [("own session", &acquire), ("alice's session", &alice_acquire)] {
        denied(name, LockClient::new(bob.clone()).acquire(request.clone()).await);
        denied(name, LockClient::new(bob.clone()).try_acquire(request.clone()).await);
    }
    not_denied(
        "Lock.TryAcquire",
        &LockClient::new(alice.clone()).try_acquire(alice_acquire.clone()).await,
    );
    let release = pb::ReleaseRequest {
        path: path("/a/l"),
        session_id: alice_session,
        token: None,
        request_id: None,
    };
    case!("Lock.Release", LockClient, release, release.clone(), alice);
    let revoke = pb::RevokeRequest { path: path("/a/held"), session_id: alice_session };
    case!(
        "Lock.Status",
        LockClient,
        status,
        pb::LockStatusRequest { path: path("/a/held") },
        alice
    );
    case!(
        "Lock.Stats",
        LockClient,
        stats,
        pb::LockStatsRequest { prefix: path("/a"), limit: 0 },
        alice
    );
    case!(
        "Lock.CheckSequencer",
        LockClient,
        check_sequencer,
        pb::CheckSequencerRequest { path: path("/a/held"), token: alice_lock.token },
        alice
    );
    let semaphore = pb::SemaphoreAcquireRequest {
        path: path("/a/sem"),
        session_id: alice_session,
        permits: 2,
        weight: 1,
        ..Default::default()
    };
    case!("Semaphore.Acquire", SemaphoreClient, acquire, semaphore.clone(), alice);
    case!("Semaphore.TryAcquire", SemaphoreClient, try_acquire, semaphore.clone(), alice);
    case!(
        "Semaphore.Status",
        SemaphoreClient,
        status,
        pb::LockStatusRequest { path: path("/a/sem") },
        alice
    );
    let sem_release = pb::ReleaseRequest {
        path: path("/a/sem"),
        session_id: alice_session,
        token: None,
        request_id: None,
    };
    case!("Semaphore.Release", SemaphoreClient, release, sem_release.clone(), alice);

    // Elections: campaign, proclaim and resign need `lock`, leader `read`, observe `watch`.
    let campaign = pb::CampaignRequest {
        name: path("/a/e"),
        session_id: alice_session,
        value: "a".into(),
        timeout_ms: 0,
    };
    case!("Election.Campaign", ElectionClient, campaign, campaign.clone(), alice);
    let led = ElectionClient::new(alice.clone()).campaign(campaign.clone()).await.unwrap();
    let token = led.into_inner().leader.map(|l| l.token).unwrap_or(0);
    let proclaim = pb::ProclaimRequest {
        name: path("/a/e"),
        session_id: alice_session,
        token,
        value: "b".into(),
    };
    case!("Election.Proclaim", ElectionClient, proclaim, proclaim.clone(), alice);
    let leader = pb::LeaderRequest { name: path("/a/e"), serializable: true };
    case!("Election.Leader", ElectionClient, leader, leader.clone(), alice);
    let observe = pb::ObserveRequest { name: path("/a/e"), start_revision: 0 };
    case!("Election.Observe", ElectionClient, observe, observe.clone(), alice);
    let resign = pb::ResignRequest { name: path("/a/e"), session_id: alice_session, token };
    case!("Election.Resign", ElectionClient, resign, resign.clone(), alice);

    // Barriers: every call but status needs `lock`; status needs `read`.
    let name = || path("/a/bar");
    case!("Barrier.Set", BarrierClient, set, pb::BarrierSetRequest { name: name() }, alice);
    case!(
        "Barrier.Status",
        BarrierClient,
        status,
        pb::BarrierStatusRequest { name: name() },
        alice
    );
    case!(
        "Barrier.Remove",
        BarrierClient,
        remove,
        pb::BarrierRemoveRequest { name: name() },
        alice
    );
    let wait = pb::BarrierWaitRequest { name: name(), session_id: alice_session, timeout_ms: 0 };
    case!("Barrier.Wait", BarrierClient, wait, wait.clone(), alice);
    let enter = pb::BarrierEnterRequest {
        name: path("/a/round"),
        session_id: alice_session,
        count: 1,
        timeout_ms: 0,
    };
    case!("Barrier.Enter", BarrierClient, enter, enter.clone(), alice);
    let leave = pb::BarrierLeaveRequest {
        name: path("/a/round"),
        session_id: alice_session,
        timeout_ms: 0,
    };
    case!("Barrier.Leave", BarrierClient, leave, leave.clone(), alice);

    // Resource kinds: init, rotate and force are an operator's (`admin`); locking an id
    // needs `lock`, status `read`.
    let init = pb::ResourceInitRequest { kind: path("/a/kind"), version: "v1".into() };
    case!("Resource.Init", ResourceClient, init, init.clone(), admin);
    let resource_acquire = pb::ResourceAcquireRequest {
        kind: path("/a/kind"),
        id: "7".into(),
        session_id: alice_session,
        ..Default::default()
    };
    case!("Resource.Acquire", ResourceClient, acquire, resource_acquire.clone(), alice);
    let status = pb::ResourceStatusRequest { kind: path("/a/kind") };
    case!("Resource.Status", ResourceClient, status, status.clone(), alice);
    let rotate = pb::RotationRequest { kind: path("/a/kind"), to: "v2".into() };
    denied(
        "Resource.Rotate (alice)",
        ResourceClient::new(alice.clone()).rotate(rotate.clone()).await,
    );
    case!("Resource.Rotate", ResourceClient, rotate, rotate.clone(), admin);
    let force = pb::ForceRotationRequest { kind: path("/a/kind") };
    case!("Resource.Force", ResourceClient, force, force.clone(), admin);

    // Cluster: status and whoami for anyone admitted; the policy for admins only.
    not_denied(
        "Cluster.Status",
        &ClusterClient::new(bob.clone()).status(pb::StatusRequest {}).await,
    );
    let whoami = ClusterClient::new(bob.clone()).who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    assert_eq!(whoami.into_inner().identity, "bob");
    case!("Cluster.GetAcl", ClusterClient, get_acl, pb::GetAclRequest {}, admin);
    case!(
        "Cluster.ApplyAcl",
        ClusterClient,
        apply_acl,
        pb::ApplyAclRequest { text: POLICY.into() },
        admin
    );

    // Membership: the list for anyone admitted; changes for admins only. The allowed calls
    // are ones that change nothing (an id taken with other addresses, an unknown id).
    not_denied(
        "Cluster.MemberList",
        &ClusterClient::new(bob.clone()).member_list(pb::MemberListRequest {}).await,
    );
    let taken = pb::MemberAddRequest {
        id: 1,
        peer_addr: "127.0.0.1:1".into(),
        client_addr: "127.0.0.1:2".into(),
    };
    case!("Cluster.MemberAdd", ClusterClient, member_add, taken.clone(), admin);
    let unknown = pb::MemberRemoveRequest { id: 99 };
    case!("Cluster.MemberRemove", ClusterClient, member_remove, unknown, admin);
    let transfer = pb::LeaderTransferRequest { id: 99 };
    case!("Cluster.LeaderTransfer", ClusterClient, leader_transfer, transfer, admin);

    // Maintenance: a backup holds everything, so it is an admin's; health is anyone's.
    let snapshot = pb::SnapshotRequest { serializable: false };
    denied(
        "Maintenance.Snapshot (alice)",
        MaintenanceClient::new(alice.clone()).snapshot(snapshot).await,
    );
    case!("Maintenance.Snapshot", MaintenanceClient, snapshot, snapshot, admin);
    not_denied(
        "Maintenance.Health",
        &MaintenanceClient::new(bob.clone()).health(pb::HealthRequest {}).await,
    );

    // Revoke needs admin: alice may lock under /a, not revoke there.
    denied("Lock.Revoke (alice)", LockClient::new(alice.clone()).revoke(revoke.clone()).await);
    case!("Lock.Revoke", LockClient, revoke, revoke.clone(), admin);
    assert!(DENIED.with(std::cell::Cell::get) >= 45, "every RPC was denied once at least");
    s.assert_every_denial_audited().await;
    s.cluster.stop().await;
}

/// carol has alice's rights on /a, but deleting alice's lock, or her waiter, ends alice's
/// hold: only an admin may. A delete that asks to revoke locks needs admin too.
#[tokio::test]
async fn one_identity_cannot_delete_or_revoke_anothers_lock() {
    let s = Secure::start().await;
    let alice_session = s.open_session("alice").await;
    let (alice, carol, admin) =
        (s.channel("alice").await, s.channel("carol").await, s.channel("admin").await);
    KvClient::new(admin.clone())
        .create(pb::CreateRequest { path: "/a".into(), ..Default::default() })
        .await
        .unwrap();
    let held = LockClient::new(alice.clone())
        .acquire(pb::AcquireRequest {
            path: "/a/lock".into(),
            session_id: alice_session,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rm = |path: &str, recursive: bool, revoke_locks: bool| pb::DeleteRequest {
        path: path.into(),
        recursive,
        revoke_locks,
        ..Default::default()
    };
    let mut kv = KvClient::new(carol.clone());
    for (what, request) in [
        ("the lock", rm("/a/lock", false, false)),
        ("the lock, recursively", rm("/a/lock", true, false)),
        ("the waiter", rm(&held.waiter, false, false)),
        ("the subtree", rm("/a", true, false)),
        ("the subtree, revoking", rm("/a", true, true)),
    ] {
        let status = denied(what, kv.delete(request).await);
        assert!(
            status.message().contains("only an admin") || status.message().contains("admin"),
            "{status:?}"
        );
    }
    denied(
        "revoke",
        LockClient::new(carol.clone())
            .revoke(pb::RevokeRequest { path: "/a/lock".into(), session_id: alice_session })
            .await,
    );
    // Still held by alice.
    let status = LockClient::new(alice.clone())
        .status(pb::LockStatusRequest { path: "/a/lock".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.waiters.len(), 1);
    assert_eq!(status.waiters[0].identity, "alice");
    // The owner herself may not rm it either without revoking (the core's rule), but an
    // admin may revoke it.
    let revoked = KvClient::new(admin.clone()).delete(rm("/a/lock", true, true)).await.unwrap();
    assert_eq!(revoked.into_inner().revoked, 1);
    s.assert_every_denial_audited().await;
    s.cluster.stop().await;
}

/// A policy change reaches what is already open: alice's connection is refused at its next
/// call and her open watch ends with PERMISSION_DENIED; carol's stays.
#[tokio::test]
async fn a_policy_change_reaches_open_connections_and_watches() {
    let s = Secure::start().await;
    let (alice, carol, admin) =
        (s.channel("alice").await, s.channel("carol").await, s.channel("admin").await);
    let mut alice_kv = KvClient::new(alice.clone());
    KvClient::new(admin.clone())
        .create(pb::CreateRequest { path: "/a".into(), ..Default::default() })
        .await
        .unwrap();
    alice_kv.get(pb::GetRequest { path: "/a".into(), serializable: true }).await.unwrap();
    let watch = || pb::WatchRequest {
        path: "/a".into(),
        scope: pb::WatchScope::Prefix.into(),
        ..Default::default()
    };
    let mut alice_watch =
        WatchClient::new(alice.clone()).watch(watch()).await.unwrap().into_inner();
    let mut carol_watch =
        WatchClient::new(carol.clone()).watch(watch()).await.unwrap().into_inner();

    ClusterClient::new(admin.clone())
        .apply_acl(pb::ApplyAclRequest { text: WITHOUT_ALICE.into() })
        .await
        .unwrap();
    denied(
        "alice's next call on her open connection",
        alice_kv.get(pb::GetRequest { path: "/a".into(), serializable: true }).await,
    );
    // alice's watch ends with the refusal, whether or not anything changes under /a.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match alice_watch.message().await {
                Ok(Some(_)) => continue,
                other => break other,
            }
        }
    })
    .await
    .expect("alice's watch ended within 10 s");
    denied("alice's open watch", ended);
    // carol's watch goes on and sees the next change.
    KvClient::new(carol.clone())
        .create(pb::CreateRequest { path: "/a/after".into(), ..Default::default() })
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let response = carol_watch.message().await.unwrap().expect("carol's watch is open");
            if response.events.iter().any(|e| e.path == "/a/after") {
                break;
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "carol's watch did not see /a/after");
    s.cluster.stop().await;
}

/// A watch gets the events of the paths its caller may watch, each with its owner.
#[tokio::test]
async fn a_watch_gets_only_permitted_events_with_their_owner() {
    let s = Secure::start().await;
    let admin = s.channel("admin").await;
    let alice = s.channel("alice").await;
    let mut watch = WatchClient::new(alice.clone())
        .watch(pb::WatchRequest {
            path: "/a".into(),
            scope: pb::WatchScope::Prefix.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // A root watch by alice is refused; admin's root watch sees everything.
    denied(
        "alice watching /",
        WatchClient::new(alice.clone())
            .watch(pb::WatchRequest {
                path: "/".into(),
                scope: pb::WatchScope::Prefix.into(),
                ..Default::default()
            })
            .await,
    );
    let session = s.open_session("alice").await;
    let mut kv = KvClient::new(admin.clone());
    kv.create(pb::CreateRequest { path: "/a".into(), ..Default::default() }).await.unwrap();
    KvClient::new(alice.clone())
        .create(pb::CreateRequest {
            path: "/a/mine".into(),
            kind: pb::NodeKind::Ephemeral.into(),
            origin: Some(pb::Origin { session_id: session, ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap();
    let owner = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let response = watch.message().await.unwrap().expect("watch open");
            if let Some(e) = response.events.iter().find(|e| e.path == "/a/mine") {
                break e.owner.clone();
            }
        }
    })
    .await
    .expect("the event arrived");
    assert_eq!(owner, "alice");
    s.cluster.stop().await;
}

#[tokio::test]
async fn apply_refuses_a_bad_file_and_a_lockout_and_keeps_the_policy() {
    let s = Secure::start().await;
    let mut admin = ClusterClient::new(s.channel("admin").await);
    let bad =
        "[[rule]]\nidentities = [\"admin\"]\npermissions = [\"all\", \"fly\"]\npaths = [\"/**\"]\n";
    let status = admin.apply_acl(pb::ApplyAclRequest { text: bad.into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("line 3"), "{status:?}");
    let lockout =
        "[[rule]]\nidentities = [\"alice\"]\npermissions = [\"all\"]\npaths = [\"/a/**\"]\n";
    let status = admin.apply_acl(pb::ApplyAclRequest { text: lockout.into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("admin"), "{status:?}");
    let acl = admin.get_acl(pb::GetAclRequest {}).await.unwrap().into_inner();
    assert_eq!(acl.text, POLICY);
    // Nobody writes the policy's node directly, admin included.
    let status = KvClient::new(s.channel("admin").await)
        .set(pb::SetRequest { path: "/warden/acl".into(), data: "".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("warden acl apply"), "{status:?}");
    s.cluster.stop().await;
}

/// A member configured for ACLs (here `acl.admins` only) denies everyone else while no
/// policy is in force: a new cluster is never open to every client.
#[tokio::test]
async fn a_member_configured_for_acls_is_closed_until_a_policy_is_applied() {
    warden_server::install_crypto_provider();
    let pki = Pki::new();
    let cluster = TestCluster::start_with(1, FAST_TIMING, |c| {
        c.tls = pki.member_tls(c.node_id);
        c.acl.admins = vec!["admin".into()];
    })
    .await;
    let addr = cluster.node(1).client_addr();
    let admin = channel(addr, pki.client_tls(Some("admin"))).await.unwrap();
    let alice = channel(addr, pki.client_tls(Some("alice"))).await.unwrap();
    let get = || pb::GetRequest { path: "/".into(), serializable: true };
    denied("alice before any policy", KvClient::new(alice.clone()).get(get()).await);
    KvClient::new(admin.clone()).get(get()).await.unwrap();
    let acl = ClusterClient::new(admin.clone()).get_acl(pb::GetAclRequest {}).await.unwrap();
    assert!(!acl.into_inner().enabled);
    ClusterClient::new(admin.clone())
        .apply_acl(pb::ApplyAclRequest { text: POLICY.into() })
        .await
        .unwrap();
    // Under the policy alice may read /a but still not /.
    denied("alice on /", KvClient::new(alice.clone()).get(get()).await);
    let status = KvClient::new(alice.clone())
        .get(pb::GetRequest { path: "/a".into(), serializable: true })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    cluster.stop().await;
}
