//! Membership changes over real sockets: a learner added, caught up, promoted and removed;
//! leader transfer; removing the leader; the errors; a removed member refusing clients and
//! leaving the cluster's term alone.

use std::time::Duration;

use openraft::ServerState;
use tokio::time::{Instant, sleep};
use tonic::Code;
use warden_client::{Client, ClientError, ErrorKind};
use warden_server::Node;

use crate::cluster::{DEFAULT_TIMING, TestCluster, no_snapshots, put_retrying};

/// The voters and learners a node's membership lists.
fn membership(node: &Node) -> (Vec<u64>, Vec<u64>) {
    let metrics = node.raft().metrics();
    let m = metrics.borrow();
    let membership = m.membership_config.membership();
    (membership.voter_ids().collect(), membership.learner_ids().collect())
}

fn term(node: &Node) -> u64 {
    node.raft().metrics().borrow().current_term
}

fn server_error(e: &ClientError) -> (Option<Code>, Option<ErrorKind>) {
    (e.code(), e.kind())
}

/// Waits until `check` holds, for up to `within`.
async fn until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

/// A client request to a removed member is refused with the reason, until `within`.
async fn refuses_as_removed(endpoint: String, within: Duration) {
    let client = Client::with_deadline(vec![endpoint], Duration::from_millis(500)).unwrap();
    let deadline = Instant::now() + within;
    loop {
        match client.get_with("/", warden_client::Consistency::Serializable).await {
            Err(e) if e.to_string().contains("this member was removed from the cluster") => {
                return;
            }
            other => {
                assert!(Instant::now() < deadline, "the removed member still serves: {other:?}");
                sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// `GET path` on `addr` (HTTP/1.0): the whole answer as text.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange).await.unwrap().unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_is_added_caught_up_promoted_then_removed() {
    let mut cluster = TestCluster::start(3, DEFAULT_TIMING, no_snapshots()).await;
    let client = cluster.client();
    for i in 0..20 {
        put_retrying(&client, &format!("/before-{i}"), "v").await;
    }
    cluster.start_joiner(4).await;
    let (peer, client_addr) =
        (cluster.configs[3].peer_addr.to_string(), cluster.configs[3].client_addr.to_string());

    // Sent to a member that may not lead: the client follows the leader.
    let answer = cluster.client_of(2).member_add(4, &peer, &client_addr).await.unwrap();
    assert!(answer.added);
    assert!(answer.members.iter().any(|m| m.id == 4 && m.membership == "voter"), "{answer:?}");
    let leader = cluster.leader(Duration::from_secs(5)).await;
    assert!(membership(cluster.node(leader)).0.contains(&4));
    // It caught up: it has everything written before, and what is written after.
    put_retrying(&client, "/after", "v").await;
    let four = cluster.client_of(4);
    until(Duration::from_secs(10), "member 4 applies /after", || {
        cluster.node(4).state_machine().read(|a| a.core.tree().get("/after").is_some())
    })
    .await;
    assert!(four.get_with("/before-19", warden_client::Consistency::Serializable).await.is_ok());
    let list = cluster.client().member_list().await.unwrap();
    assert_eq!(list.members.len(), 4, "{list:?}");

    // Asked again (a retry): nothing changes.
    let again = client.member_add(4, &peer, &client_addr).await.unwrap();
    assert!(!again.added);
    // The id with other addresses, or another id with its addresses: ALREADY_EXISTS.
    let e = client.member_add(4, "127.0.0.1:1", "127.0.0.1:2").await.unwrap_err();
    assert_eq!(server_error(&e), (Some(Code::AlreadyExists), Some(ErrorKind::MemberExists)));
    assert!(e.to_string().contains("member 4 is already in the cluster"), "{e}");
    let e = client.member_add(9, &peer, &client_addr).await.unwrap_err();
    assert_eq!(server_error(&e), (Some(Code::AlreadyExists), Some(ErrorKind::MemberExists)));

    // Removed: it leaves the membership, says so to clients, and campaigns no more.
    let left = client.member_remove(4).await.unwrap();
    assert_eq!(left.iter().map(|m| m.id).collect::<Vec<_>>(), vec![1, 2, 3]);
    refuses_as_removed(cluster.endpoint(4), Duration::from_secs(10)).await;
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let before = term(cluster.node(leader));
    // Several election timeouts: a removed member that campaigned would raise the term.
    sleep(Duration::from_millis(4 * DEFAULT_TIMING.election_timeout_ms)).await;
    assert_eq!(cluster.leader(Duration::from_secs(1)).await, leader);
    assert_eq!(term(cluster.node(leader)), before, "the term moved after the removal");
    assert_ne!(cluster.node(4).raft().metrics().borrow().state, ServerState::Leader);
    put_retrying(&client, "/after-removal", "v").await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_goes_to_the_named_member_and_no_write_is_lost() {
    let cluster = TestCluster::start(3, DEFAULT_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let target = (1..=3).find(|id| *id != leader).unwrap();
    let before = term(cluster.node(leader));

    // Writes go on while the leadership moves; each acknowledged one is read back after.
    let writer = {
        let client = cluster.client();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..400 {
                let path = format!("/w-{i}");
                if client.put(&path, "v").await.is_ok() {
                    acked.push(path);
                }
                sleep(Duration::from_millis(5)).await;
            }
            acked
        })
    };
    sleep(Duration::from_millis(200)).await;
    let new_term = client.leader_transfer(target).await.unwrap();
    assert!(new_term > before, "term {new_term} after {before}");
    assert_eq!(cluster.leader(Duration::from_secs(5)).await, target);
    assert_eq!(term(cluster.node(target)), new_term);
    // To the leader itself: nothing to do.
    assert_eq!(client.leader_transfer(target).await.unwrap(), new_term);

    let acked = writer.await.unwrap();
    assert!(acked.len() > 100, "only {} writes acknowledged", acked.len());
    for path in &acked {
        client.get(path).await.unwrap_or_else(|e| panic!("acknowledged {path} lost: {e}"));
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_leader_hands_over_and_it_stops_serving() {
    let cluster = TestCluster::start(3, DEFAULT_TIMING, no_snapshots()).await;
    let client = cluster.client();
    put_retrying(&client, "/x", "1").await;
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let left = client.member_remove(leader).await.unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|m| m.id != leader));
    refuses_as_removed(cluster.endpoint(leader), Duration::from_secs(10)).await;
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let new_leader = loop {
        let leaders: Vec<u64> = others
            .iter()
            .copied()
            .filter(|id| cluster.node(*id).raft().metrics().borrow().state == ServerState::Leader)
            .collect();
        if let [one] = leaders[..] {
            break one;
        }
        assert!(Instant::now() < deadline, "no new leader among {others:?}");
        sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(membership(cluster.node(new_leader)).0, others);
    put_retrying(&client, "/x", "2").await;
    assert_eq!(&client.get("/x").await.unwrap().data[..], b"2");
    // Its /health says why it is not ready.
    let http = cluster.node(leader).http_addr();
    let answer = http_get(http, "/health").await;
    assert!(answer.starts_with("HTTP/1.0 503") || answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("removed from the cluster"), "{answer}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_that_cannot_be_made_are_refused_with_the_reason() {
    let mut cluster = TestCluster::start(3, DEFAULT_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let e = client.member_remove(7).await.unwrap_err();
    assert_eq!(server_error(&e), (Some(Code::NotFound), Some(ErrorKind::NoMember)));
    let e = client.leader_transfer(7).await.unwrap_err();
    assert_eq!(server_error(&e), (Some(Code::NotFound), Some(ErrorKind::NoMember)));
    let e = client.member_add(0, "127.0.0.1:1", "127.0.0.1:2").await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument));

    // With one follower down, removing the other would leave a quorum of two with one up.
    // The leader counts a voter down once it has not answered for two election timeouts.
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    cluster.kill(followers[0]).await;
    sleep(Duration::from_millis(3 * DEFAULT_TIMING.election_timeout_ms)).await;
    let e = client.member_remove(followers[1]).await.unwrap_err();
    assert_eq!(server_error(&e), (Some(Code::FailedPrecondition), Some(ErrorKind::QuorumAtRisk)));
    assert!(e.to_string().contains("fewer than the 2 a quorum needs"), "{e}");
    let e = client.leader_transfer(followers[0]).await.unwrap_err();
    assert!(e.to_string().contains("has not answered the leader"), "{e}");
    assert_eq!(membership(cluster.node(leader)).0.len(), 3);
    // The dead one can go: two voters left, both up.
    client.member_remove(followers[0]).await.unwrap();
    // Then the last but one, and the last is refused.
    client.member_remove(followers[1]).await.unwrap();
    let e = client.member_remove(leader).await.unwrap_err();
    assert_eq!(server_error(&e), (Some(Code::FailedPrecondition), Some(ErrorKind::QuorumAtRisk)));
    assert!(e.to_string().contains("last voter"), "{e}");
    cluster.stop().await;
}

/// A member cut off just before a change that needs it (a pause or a partition: no RPC
/// fails, it just stops answering): the leader has not noticed yet, so it proposes the
/// change, which cannot commit. The caller is told so within the leader's wait (not left
/// hanging), and the change completes once the member is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_needs_a_member_cut_off_a_moment_ago_is_reported_and_completes_later() {
    let cluster = TestCluster::start(3, DEFAULT_TIMING, no_snapshots()).await;
    let client = cluster.client();
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    put_retrying(&client, "/before", "v").await;
    for other in [leader, followers[1]] {
        cluster.faults.cut(followers[0], other);
    }
    let e = client.member_remove(followers[1]).await.unwrap_err();
    let pending = match server_error(&e) {
        (Some(Code::DeadlineExceeded), Some(ErrorKind::ChangePending)) => {
            let text = e.to_string();
            assert!(text.contains(&format!("[{}]", followers[0])), "names the silent one: {e}");
            assert!(text.contains("completes by itself"), "{e}");
            // One change in flight at a time: another is refused, not queued.
            let e = client.member_remove(followers[0]).await.unwrap_err();
            assert_eq!(
                server_error(&e),
                (Some(Code::FailedPrecondition), Some(ErrorKind::Membership)),
                "{e}"
            );
            true
        }
        // On a loaded machine the leader may have counted it silent already.
        (Some(Code::FailedPrecondition), Some(ErrorKind::QuorumAtRisk)) => false,
        other => panic!("{other:?}: {e}"),
    };
    cluster.faults.heal();
    let mut two = vec![leader, followers[0]];
    two.sort_unstable();
    if pending {
        // The change commits once the member is back, even if the leadership moved
        // meanwhile: the other follower is a learner.
        until(Duration::from_secs(30), "the pending demotion completes", || {
            cluster.running().all(|n| membership(n) == (two.clone(), vec![followers[1]]))
        })
        .await;
    }
    put_retrying(&client, "/after", "v").await;
    // Removing it again completes (once the leader has heard from the member that was
    // cut off), and the cluster serves with the two left.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.member_remove(followers[1]).await {
            Ok(_) => break,
            Err(e) if e.kind() == Some(ErrorKind::QuorumAtRisk) && Instant::now() < deadline => {
                sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    until(Duration::from_secs(10), "two voters, no learner", || {
        two.iter().all(|id| membership(cluster.node(*id)) == (two.clone(), vec![]))
    })
    .await;
    put_retrying(&client, "/two", "v").await;
    cluster.stop().await;
}

/// A voter removed while it is down never hears the configuration without it: restarted,
/// it still counts itself a voter. It must not disturb the cluster (the leader lease makes
/// the others refuse its votes, and the leader tells it that it was removed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_removed_while_down_does_not_disturb_the_cluster_when_it_returns() {
    let mut cluster = TestCluster::start(3, DEFAULT_TIMING, no_snapshots()).await;
    let client = cluster.client();
    cluster.start_joiner(4).await;
    let (peer, client_addr) =
        (cluster.configs[3].peer_addr.to_string(), cluster.configs[3].client_addr.to_string());
    client.member_add(4, &peer, &client_addr).await.unwrap();
    cluster.kill(4).await;
    client.member_remove(4).await.unwrap();
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let before = term(cluster.node(leader));
    cluster.restart_when_released(4).await;
    refuses_as_removed(cluster.endpoint(4), Duration::from_secs(15)).await;
    sleep(Duration::from_millis(4 * DEFAULT_TIMING.election_timeout_ms)).await;
    assert_eq!(cluster.leader(Duration::from_secs(1)).await, leader);
    assert_eq!(term(cluster.node(leader)), before, "the returning member moved the term");
    put_retrying(&client, "/still-served", "v").await;
    // It remembers across a restart.
    cluster.kill(4).await;
    cluster.restart_when_released(4).await;
    refuses_as_removed(cluster.endpoint(4), Duration::from_secs(2)).await;
    cluster.stop().await;
}
