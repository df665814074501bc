//! Elections on a 3-member cluster of processes under faults: five candidates campaigning
//! in a loop while members (the raft leader among them) are killed with SIGKILL and
//! restarted, judged by the checkers of `warden_testkit::elections` (one leader per term,
//! fenced writes by leaders only, Observe streams that agree and miss nothing); and a
//! `warden elect` process killed with SIGKILL, which loses its leadership after its ttl and
//! never before. With `WARDEN_TEST_TLS=1` the members and clients speak mutual TLS.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use warden_client::{
    Check, Client, ClientError, Compare, Consistency, ErrorKind, LeaderChange, TxnOp,
};
use warden_testkit::elections::{self, Change, FencedTxn, Seen, Term};

use warden_testkit::proxy::Proxy;

use crate::processes::ProcessCluster;

const ELECTION: &str = "/elect/e";

/// What the candidates and observers recorded.
#[derive(Default)]
struct Recorded {
    terms: Mutex<Vec<Term>>,
    writes: Mutex<Vec<FencedTxn>>,
    /// What each deposed leader's proclaim got: `Ok` when refused with `HoldEnded`.
    deposed_proclaims: Mutex<Vec<Result<(), String>>>,
    /// Whether each deposed leader's fenced write applied.
    deposed_writes: Mutex<Vec<bool>>,
}

/// Nanoseconds since `start`.
fn since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A client whose endpoints begin at member `first` (from 0), so that candidates and
/// observers are spread over the members; under TLS with `alice`'s certificate, where
/// [`ProcessCluster::start_tls_if_asked`] issues it.
fn client_from(cluster: &ProcessCluster, first: usize) -> Client {
    let mut endpoints = cluster.clients.clone();
    let n = endpoints.len();
    endpoints.rotate_left(first % n);
    client_to(cluster, endpoints)
}

/// A client of `endpoints` (members, or proxies to them).
fn client_to(cluster: &ProcessCluster, endpoints: Vec<String>) -> Client {
    if !warden_testkit::tls::requested() {
        return Client::new(endpoints).unwrap();
    }
    let certs = cluster.dir.path().join("certs");
    let files = warden_client::TlsFiles {
        ca: certs.join("ca.crt"),
        cert: Some(certs.join("alice.crt")),
        key: Some(certs.join("alice.key")),
    };
    Client::with_tls(endpoints, &files).unwrap()
}

/// One candidate: campaign, lead for `hold` writing with the token (a transaction that
/// applies only while the candidate node exists) and acting as leader every 20 ms for as
/// long as it is not told of a loss, then resign, or be deposed by an operator's revoke
/// and check that a proclaim and a fenced write are refused; again, until `stop`.
async fn candidate(
    client: Client,
    operator: Client,
    id: u64,
    hold: Duration,
    start: Instant,
    stop: Arc<AtomicBool>,
    recorded: Arc<Recorded>,
) {
    let ttl = Duration::from_secs(2);
    let mut round = 0u64;
    'sessions: while !stop.load(Ordering::Relaxed) && round < 10_000 {
        let Ok(session) = client.open_session(ttl).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while !stop.load(Ordering::Relaxed) && round < 10_000 {
            round += 1;
            if session.state() == warden_client::SessionState::Lost {
                continue 'sessions;
            }
            let campaigned_at = since(start);
            let election = client.election(&session, ELECTION);
            let value = format!("c{id}-r{round}");
            let Ok(leadership) = election.campaign(value, Some(Duration::from_secs(5))).await
            else {
                continue;
            };
            let granted_at = since(start);
            let token = leadership.token();
            let candidate = leadership.leader().candidate.clone();
            let mut last_believed_at = granted_at;
            let until = Instant::now() + hold;
            for n in 0..1_000 {
                // The moment is taken before asking: if no loss was known by then, the
                // candidate believed it led at that moment.
                let now = since(start);
                if leadership.is_lost() {
                    break;
                }
                last_believed_at = now;
                if n < 2 {
                    let fence = Compare { path: candidate.clone(), check: Check::Exists(true) };
                    let write = TxnOp::Set {
                        path: "/elect/fenced".into(),
                        data: format!("{token} c{id}").into(),
                        expected_version: None,
                    };
                    if let Ok(r) = client.txn_in(&session, vec![fence], vec![write]).await {
                        let w = FencedTxn {
                            client: id,
                            token,
                            applied: r.succeeded,
                            revision: r.revision,
                        };
                        recorded.writes.lock().unwrap().push(w);
                    }
                }
                if n == 1 {
                    // A new value: a change every observer must show alike.
                    leadership.proclaim(format!("c{id}-r{round}-p")).await.ok();
                }
                if Instant::now() >= until {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut resigned_at = None;
            if round.is_multiple_of(4) && !leadership.is_lost() {
                // Deposed by an operator: the loss is pushed, and a proclaim is refused.
                if operator.revoke_lock(ELECTION, session.id()).await.is_ok() {
                    let told = tokio::time::timeout(ttl * 5, leadership.lost()).await.is_ok();
                    // Its fenced write no longer applies.
                    let fence = Compare { path: candidate.clone(), check: Check::Exists(true) };
                    let write = TxnOp::Set {
                        path: "/elect/fenced".into(),
                        data: format!("{token} c{id} deposed").into(),
                        expected_version: None,
                    };
                    if let Ok(r) = client.txn_in(&session, vec![fence], vec![write]).await {
                        let w = FencedTxn {
                            client: id,
                            token,
                            applied: r.succeeded,
                            revision: r.revision,
                        };
                        recorded.writes.lock().unwrap().push(w);
                        recorded.deposed_writes.lock().unwrap().push(r.succeeded);
                    }
                    let refused = match leadership.proclaim("deposed").await {
                        Err(e) if e.kind() == Some(ErrorKind::HoldEnded) => Ok(()),
                        Err(e) => Err(format!("token {token}: proclaim refused with {e}")),
                        Ok(()) => {
                            Err(format!("token {token}: a deposed leader's proclaim was accepted"))
                        }
                    };
                    // A loss that was not told (the session went, say) is not a refusal's test.
                    if told && session.state() != warden_client::SessionState::Lost {
                        recorded.deposed_proclaims.lock().unwrap().push(refused);
                    }
                }
                drop(leadership);
            } else if leadership.resign().await.is_ok() {
                resigned_at = Some(since(start));
            }
            recorded.terms.lock().unwrap().push(Term {
                client: id,
                session: session.id(),
                token,
                campaigned_at,
                granted_at,
                last_believed_at,
                resigned_at,
            });
            tokio::time::sleep(Duration::from_millis(20 * id)).await;
        }
        session.close().await.ok();
        return;
    }
}

/// Waits (at most 10 s) until candidate 5 leads, then cuts it off from every member for
/// twice its ttl and a second; returns whether it did.
async fn partition_the_leader(admin: &Client, proxies: &[Proxy]) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(l)) = admin.election_leader(ELECTION, Consistency::Linearizable).await
            && l.value.starts_with(b"c5-")
        {
            tokio::time::sleep(Duration::from_millis(300)).await;
            proxies.iter().for_each(Proxy::cut);
            tokio::time::sleep(Duration::from_secs(5)).await;
            proxies.iter().for_each(Proxy::heal);
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn change(c: LeaderChange) -> Change {
    Change {
        revision: c.revision,
        leader: c.leader.map(|l| Seen {
            token: l.token,
            session: l.session_id,
            value: l.value.to_vec(),
        }),
    }
}

/// One observer from revision `from` until `stop` (set once the election is empty) and its
/// "no leader" (at most 10 s later); the stream resumes across member kills by itself. An
/// error it cannot go past is recorded as the stream's end.
async fn observer(
    client: Client,
    from: u64,
    stop: Arc<AtomicBool>,
) -> (Vec<Change>, Option<String>) {
    let mut seen = Vec::new();
    let opened =
        tokio::time::timeout(Duration::from_secs(30), client.observe_election(ELECTION, from))
            .await;
    let mut observe = match opened {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return (seen, Some(format!("observe: {e}"))),
        Err(_) => return (seen, Some("observe did not start in 30 s".into())),
    };
    let mut stopped_at: Option<Instant> = None;
    for _ in 0..100_000 {
        if stop.load(Ordering::Relaxed) {
            let at = *stopped_at.get_or_insert_with(Instant::now);
            let emptied = seen.last().is_some_and(|c: &Change| c.leader.is_none());
            if emptied || at.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        match tokio::time::timeout(Duration::from_millis(200), observe.next()).await {
            Ok(Ok(c)) => seen.push(change(c)),
            Ok(Err(ClientError::Unavailable { .. })) => {}
            Ok(Err(e)) => return (seen, Some(format!("observe stream ended: {e}"))),
            Err(_) => {}
        }
    }
    (seen, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_candidates_under_member_kills_have_one_leader_at_a_time() {
    candidates_under_kills(8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the soak: 80 member kills, about four minutes (run with --ignored)"]
async fn five_candidates_under_many_member_kills_have_one_leader_at_a_time() {
    candidates_under_kills(80).await;
}

/// Five candidates and three observers while `kills` members are killed, one at a time,
/// and restarted; then every checker.
async fn candidates_under_kills(kills: usize) {
    let mut cluster = ProcessCluster::start_tls_if_asked(3);
    cluster.leader().await;
    let admin = cluster.client();
    let from = admin.put("/elect", "").await.unwrap().mod_revision;
    admin.put("/elect/fenced", "").await.unwrap();
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let observers_stop = Arc::new(AtomicBool::new(false));
    let recorded = Arc::new(Recorded::default());

    let mut observers = Vec::new();
    for i in 0..3 {
        let client = client_from(&cluster, i);
        observers.push(tokio::spawn(observer(client, from, Arc::clone(&observers_stop))));
    }
    // Candidate 5 reaches the members through proxies, which are cut while it leads: it
    // holds for longer than its ttl, acting as leader until its client gives the session up.
    let mut proxies = Vec::new();
    for member in &cluster.clients {
        proxies.push(Proxy::start(member.parse().unwrap()).await.unwrap());
    }
    let mut candidates = Vec::new();
    for id in 1..=5u64 {
        let (client, hold) = if id == 5 {
            let through = proxies.iter().map(|p| p.addr().to_string()).collect();
            (client_to(&cluster, through), Duration::from_secs(3))
        } else {
            (client_from(&cluster, id as usize), Duration::from_millis(150))
        };
        let operator = cluster.client();
        let recorded = Arc::clone(&recorded);
        let task = candidate(client, operator, id, hold, start, Arc::clone(&stop), recorded);
        candidates.push(tokio::spawn(task));
    }

    // Kill the raft leader and a follower in turn, each back after a second and a half;
    // every fourth round, cut candidate 5 off while it leads.
    let mut killed = Vec::new();
    let mut partitions = 0;
    for k in 0..kills {
        if k % 4 == 1 && partition_the_leader(&admin, &proxies).await {
            partitions += 1;
        }
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let leader = cluster.leader().await as usize;
        let victim = if k % 2 == 0 { leader } else { leader % 3 + 1 };
        cluster.kill9(victim);
        killed.push(victim);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        cluster.spawn(victim);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for c in candidates {
        tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .expect("a candidate stopped")
            .unwrap();
    }
    // Every candidate closed its session: the election empties (at once, or after a ttl
    // for a session whose close went unanswered).
    let mut emptied = false;
    for _ in 0..100 {
        if let Ok(None) = admin.election_leader(ELECTION, Consistency::Linearizable).await {
            emptied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(emptied, "the election still has a leader after every candidate stopped");
    observers_stop.store(true, Ordering::Relaxed);
    let mut streams = Vec::new();
    for o in observers {
        let (stream, error) = tokio::time::timeout(Duration::from_secs(30), o)
            .await
            .expect("an observer stopped")
            .unwrap();
        assert_eq!(error, None, "logs in {}", cluster.dir.path().display());
        streams.push(stream);
    }

    let terms = recorded.terms.lock().unwrap().clone();
    let writes = recorded.writes.lock().unwrap().clone();
    let deposed = recorded.deposed_proclaims.lock().unwrap().clone();
    let applied = writes.iter().filter(|w| w.applied).count();
    eprintln!(
        "elections under kills of members {killed:?} and {partitions} partitions of a leader: {} leaderships, {} fenced writes ({applied} applied), {} deposed proclaims, observed {:?} changes",
        terms.len(),
        writes.len(),
        deposed.len(),
        streams.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // How long, at worst, a deposed leader still acted after its successor was granted
    // (reported; the checker allows a margin for the client to notice the loss).
    let worst = terms
        .iter()
        .flat_map(|a| terms.iter().filter(move |b| b.token > a.token).map(move |b| (a, b)))
        .map(|(a, b)| a.last_believed_at.saturating_sub(b.granted_at))
        .max()
        .unwrap_or(0);
    // For candidate 5's leaderships that it did not resign (cut off): from its last act as
    // leader to its successor's grant. Small, and never negative beyond the margin.
    let cut_off: Vec<i128> = terms
        .iter()
        .filter(|a| a.client == 5 && a.resigned_at.is_none())
        .filter_map(|a| {
            let next = terms.iter().filter(|b| b.token > a.token).min_by_key(|b| b.token)?;
            Some((i128::from(next.granted_at) - i128::from(a.last_believed_at)) / 1_000_000)
        })
        .collect();
    eprintln!(
        "worst overlap of a deposed leader with its successor: {} ms; cut-off leader's last act to its successor's grant: {cut_off:?} ms",
        worst / 1_000_000
    );
    let logs = cluster.dir.path().display().to_string();
    let margin = Duration::from_secs(1).as_nanos() as u64;
    let found = elections::terms(&terms, margin);
    assert!(found.is_empty(), "one leader at a time: {found:#?}; logs in {logs}");
    let found = elections::fenced(&writes);
    assert!(found.is_empty(), "fenced writes: {found:#?}; logs in {logs}");
    let found = elections::observed(&streams, &terms);
    assert!(found.is_empty(), "observe streams: {found:#?}; logs in {logs}");
    let deposed_writes = recorded.deposed_writes.lock().unwrap().clone();
    assert!(
        !deposed_writes.is_empty() && deposed_writes.iter().all(|applied| !applied),
        "a deposed leader's fenced write applied: {deposed_writes:?}"
    );
    for refused in &deposed {
        assert!(refused.is_ok(), "{refused:?}");
    }
    // The run did what it is for: many leaderships, writes both applied and refused
    // somewhere, deposed leaders, and every stream ending with the election empty.
    assert!(terms.len() >= 10, "only {} leaderships", terms.len());
    assert!(applied >= 10, "only {applied} fenced writes applied");
    assert!(!deposed.is_empty(), "no leader was deposed");
    assert!(partitions > 0, "candidate 5 never led to be cut off");
    for (n, s) in streams.iter().enumerate() {
        let last = s.last().map(|c| c.leader.is_none());
        assert_eq!(last, Some(true), "stream {n} does not end with \"no leader\": {:?}", s.last());
        let distinct =
            s.iter().filter(|c| c.leader.as_ref().is_some_and(|l| l.token == c.revision));
        assert!(distinct.count() >= terms.len() / 2, "stream {n} saw few leaders");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_killed_with_sigkill_loses_leadership_after_its_ttl_never_before() {
    let cluster = ProcessCluster::start_tls_if_asked(3);
    cluster.leader().await;
    let client = cluster.client();
    client.put("/elect", "").await.unwrap();
    let ttl = Duration::from_secs(3);
    let mut dead = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(cluster.cli_args())
        .args(["elect", "/elect/k", "--value", "doomed", "--ttl", "3s", "--", "sleep", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let leading = async {
        loop {
            if let Ok(Some(l)) = client.election_leader("/elect/k", Consistency::Linearizable).await
            {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let doomed = tokio::time::timeout(Duration::from_secs(20), leading)
        .await
        .expect("warden elect never led");
    assert_eq!(doomed.value, "doomed".as_bytes());
    let mut observe = client.observe_election("/elect/k", 0).await.unwrap();
    let first = observe.next().await.unwrap();
    assert_eq!(first.leader.map(|l| l.token), Some(doomed.token));
    let session = client.open_session(Duration::from_secs(30)).await.unwrap();
    let election = client.election(&session, "/elect/k");
    let next = tokio::spawn(async move {
        let leadership = election.campaign("next", None).await;
        (Instant::now(), leadership)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let killed = Instant::now();
    // `warden elect` and its command, as a group.
    let group = format!("-{}", dead.id());
    let sent = Command::new("kill").args(["-s", "KILL", "--", &group]).status().unwrap();
    assert!(sent.success(), "kill -s KILL -- {group}");
    let mut exited = false;
    for _ in 0..500 {
        if dead.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(exited, "warden elect did not die of SIGKILL");
    let change = tokio::time::timeout(ttl + Duration::from_secs(20), observe.next())
        .await
        .expect("the killed candidate kept leading")
        .unwrap();
    let changed = killed.elapsed();
    let (granted, leadership) =
        tokio::time::timeout(Duration::from_secs(20), next).await.unwrap().unwrap();
    let leadership = leadership.unwrap();
    let granted = granted - killed;
    eprintln!(
        "candidate killed with SIGKILL (ttl {ttl:?}): leader changed {changed:?} later, the next candidate led {granted:?} later"
    );
    // It renewed at most ttl/3 before it died, so its session lasts at least 2/3 of the
    // ttl past the kill.
    let earliest = ttl * 2 / 3 - Duration::from_millis(100);
    assert!(changed >= earliest, "leadership changed {changed:?} after the kill: before its ttl");
    assert!(granted >= earliest, "the next candidate led {granted:?} after the kill: too early");
    // The next change is the next candidate's leadership (the queue's next in line).
    let new = change.leader.expect("the next candidate leads at once");
    assert_eq!(new.token, leadership.token());
    assert!(new.token > doomed.token);
    assert_eq!(new.session_id, session.id());
    leadership.resign().await.unwrap();
    session.close().await.unwrap();
}
