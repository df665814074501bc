//! The fault-injection run: real member processes, a nemesis, and seven workloads whose
//! histories the checkers judge at the end.
//!
//! - **registers**: linearizable reads and unique writes on a few keys (linearizability);
//! - **log**: sequential creates in a session, each with a unique id (every acknowledged
//!   one present at the end, none twice);
//! - **locks**: holds of one mutex, each writing twice to a fenced resource (fencing);
//! - **watchers**: prefix watches on the registers (no event missing, repeated or out of
//!   order, checked against the acknowledged writes' revisions);
//! - **ephemerals**: sessions that make an ephemeral node and then close, or vanish
//!   (no ephemeral node outlives its session);
//! - **elections**: candidates campaign in one election and each leader writes with a
//!   transaction fenced by its candidate node, while an observer follows the leader (one
//!   leader per term, fenced writes by leaders only, no leadership missing from Observe;
//!   see [`election`]);
//! - **rotation**: holders lock random ids of a resource kind, each hold writing to a
//!   per-id node with a transaction fenced by its waiter node, while a rotator rotates the
//!   kind through version after version, forcing some (no id held under two versions at
//!   once, fenced writes per id, every rotation switched; see [`rotation`]).
//!
//! Everything is seeded and bounded by operations, faults and time. One summary line says
//! what ran and what broke. With `WARDEN_TEST_TLS=1` ([`crate::tls`]) the members require
//! mutual TLS and every workload's client presents a certificate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use warden_client::{Client, ClientError, Consistency, Scope, Session, SessionState, TlsFiles};
use warden_core::{CreateMode, EventKind, NodeKind};

use crate::checks::{self, AckedWrite, FencedWrite, Hold};
use crate::linearizable::{self, Input, Operation, Output};
use crate::members::Members;
use crate::nemesis::Nemesis;
use crate::rng::Rng;

mod election;
mod rotation;

/// How big a run is.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The `warden` binary.
    pub binary: PathBuf,
    /// Members.
    pub nodes: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Stop the workloads after this many operations...
    pub max_ops: u64,
    /// ...once at least this many faults were applied...
    pub min_faults: u64,
    /// ...or at this time, whichever comes first.
    pub time_limit: Duration,
    /// Register keys.
    pub keys: usize,
    /// Register clients.
    pub register_clients: usize,
    /// Lock clients.
    pub lock_clients: usize,
    /// Watch streams.
    pub watchers: usize,
    /// Election candidates (one observer follows the election).
    pub election_clients: usize,
    /// Holders of the rotation workload's ids (a rotator runs when there are any).
    pub rotation_clients: usize,
    /// Mutual TLS on both ports of every member (`WARDEN_TEST_TLS=1` by default).
    pub tls: bool,
}

impl RunConfig {
    /// The CI smoke run: 3 members, ≥ 10,000 operations under ≥ 20 faults, ≤ 6 minutes.
    pub fn smoke(binary: impl Into<PathBuf>, seed: u64) -> RunConfig {
        RunConfig {
            binary: binary.into(),
            nodes: 3,
            seed,
            max_ops: 10_000,
            min_faults: 20,
            time_limit: Duration::from_secs(300),
            keys: 8,
            register_clients: 6,
            lock_clients: 3,
            watchers: 2,
            election_clients: 3,
            rotation_clients: 4,
            tls: crate::tls::requested(),
        }
    }

    /// The long run: 5 members, ≥ 200,000 operations under ≥ 300 faults.
    pub fn long(binary: impl Into<PathBuf>, seed: u64) -> RunConfig {
        RunConfig {
            nodes: 5,
            max_ops: 200_000,
            min_faults: 300,
            time_limit: Duration::from_secs(3 * 3600),
            keys: 16,
            register_clients: 8,
            lock_clients: 4,
            watchers: 3,
            election_clients: 5,
            rotation_clients: 8,
            ..RunConfig::smoke(binary, seed)
        }
    }
}

/// What a run did and found.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// Members.
    pub nodes: usize,
    /// Whether the members ran with mutual TLS.
    pub tls: bool,
    /// Operations, by workload.
    pub ops: BTreeMap<&'static str, u64>,
    /// Faults by kind, as `kill=3 pause=2 ...`.
    pub faults: String,
    /// How many faults.
    pub fault_count: u64,
    /// Violations, by checker.
    pub violations: BTreeMap<&'static str, Vec<String>>,
    /// Register keys whose linearizability search hit its bound (not judged).
    pub unknown_keys: Vec<String>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Summary {
    /// All operations.
    pub fn total_ops(&self) -> u64 {
        self.ops.values().sum()
    }

    /// All violations.
    pub fn total_violations(&self) -> usize {
        self.violations.values().map(Vec::len).sum()
    }

    /// The one summary line.
    pub fn line(&self) -> String {
        let ops: Vec<String> = self.ops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let violations: Vec<String> =
            self.violations.iter().map(|(k, v)| format!("{k}={}", v.len())).collect();
        format!(
            "fault suite: seed={} nodes={} tls={} elapsed={:.0?} operations={} ({}) faults={} ({}) violations={} ({}) unjudged_keys={}",
            self.seed,
            self.nodes,
            if self.tls { "on" } else { "off" },
            self.elapsed,
            self.total_ops(),
            ops.join(" "),
            self.fault_count,
            self.faults,
            self.total_violations(),
            violations.join(" "),
            self.unknown_keys.len(),
        )
    }
}

/// What the workloads record, shared by their tasks.
#[derive(Default)]
struct Recorded {
    registers: Mutex<Vec<Operation>>,
    acked_writes: Mutex<Vec<AckedWrite>>,
    log_acked: Mutex<Vec<String>>,
    holds: Mutex<Vec<Hold>>,
    fenced: Mutex<Fenced>,
    streams: Mutex<Vec<Vec<(u64, String)>>>,
    closed_sessions: Mutex<Vec<u64>>,
    elections: election::Recorded,
    rotation: rotation::Recorded,
    ops: [AtomicU64; 13],
}

/// The fenced resource: accepts a write only with a token at least as high as any seen.
#[derive(Default)]
struct Fenced {
    highest: u64,
    writes: Vec<FencedWrite>,
}

const REGISTERS: usize = 0;
const LOG: usize = 1;
const LOCKS: usize = 2;
const WATCH: usize = 3;
const EPHEMERAL: usize = 4;
const ELECTION_OPS: usize = 5;
const ELECTION_WRITES: usize = 6;
const LEADER_CHANGES: usize = 7;
const ROT_HOLDS: usize = 8;
const ROT_WRITES: usize = 9;
const ROTATIONS: usize = 10;
const ROT_REFUSED: usize = 11;
const ROT_FORCED: usize = 12;
/// The summary's counts. The rotation workload's: `rot_holds` ids held, `rot_writes`
/// fenced writes applied, `rot_refused` fenced writes refused (the hold had ended: revoked
/// by a forced rotation, or its session expired), `rotations` rotations the rotator saw
/// switch during the run, `rot_forced` rotations it forced.
const WORKLOADS: [&str; 13] = [
    "kv",
    "log",
    "lock",
    "watch_events",
    "ephemeral",
    "leaderships",
    "leader_writes",
    "leader_changes",
    "rot_holds",
    "rot_writes",
    "rotations",
    "rot_refused",
    "rot_forced",
];

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shared by every task of a run.
struct Run {
    endpoints: Vec<String>,
    /// The client's certificate and the CA, when the members require TLS.
    tls: Option<TlsFiles>,
    start: Instant,
    deadline: Instant,
    max_ops: u64,
    /// Set when the workloads must stop.
    stop: AtomicBool,
    recorded: Recorded,
}

impl Run {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn counted(&self) -> u64 {
        self.recorded.ops.iter().take(3).map(|o| o.load(Ordering::Relaxed)).sum()
    }

    fn done(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }

    fn op(&self, workload: usize) {
        self.recorded.ops[workload].fetch_add(1, Ordering::Relaxed);
    }

    /// A client of every member (with the suite's certificate under TLS).
    fn try_client(&self) -> Result<Client, ClientError> {
        let deadline = Duration::from_secs(3);
        match &self.tls {
            None => Client::with_deadline(self.endpoints.clone(), deadline),
            Some(tls) => Client::with_tls_deadline(self.endpoints.clone(), tls, deadline),
        }
    }

    /// As [`Run::try_client`], for the workloads: the admin client was made the same way
    /// before they start.
    fn client(&self) -> Client {
        #[allow(clippy::expect_used)]
        self.try_client().expect("the admin client was made from the same endpoints and files")
    }

    /// Opens a session, retrying through faults until the run ends.
    async fn session(&self, client: &Client, ttl: Duration) -> Option<Session> {
        while !self.done() {
            match client.open_session(ttl).await {
                Ok(s) => return Some(s),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        None
    }
}

fn register_value(client: u64, n: u64) -> u64 {
    (client << 32) | n
}

/// Reads and writes registers; every operation goes into the history.
async fn registers(run: Arc<Run>, client_id: u64, keys: usize, mut rng: Rng) {
    let client = run.client();
    let mut n = 0;
    while !run.done() {
        let key = format!("/reg/k{}", rng.below(keys as u64));
        let call = run.now();
        let (input, output, ret) = if rng.chance(50) {
            match client.get_with(&key, Consistency::Linearizable).await {
                Ok(node) => {
                    let value = std::str::from_utf8(&node.data).ok().and_then(|t| t.parse().ok());
                    (Input::Read, Some(Output::Read(value)), Some(run.now()))
                }
                Err(ClientError::Server { code: tonic::Code::NotFound, .. }) => {
                    (Input::Read, Some(Output::Read(None)), Some(run.now()))
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
        } else {
            n += 1;
            let value = register_value(client_id, n);
            match client.set(&key, value.to_string(), None).await {
                Ok(stat) => {
                    let ret = run.now();
                    let acked = AckedWrite { path: key.clone(), revision: stat.mod_revision };
                    lock(&run.recorded.acked_writes).push(acked);
                    (Input::Write(value), Some(Output::Write), Some(ret))
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    (Input::Write(value), None, None)
                }
            }
        };
        lock(&run.recorded.registers).push(Operation {
            client: client_id,
            key,
            call,
            ret,
            input,
            output,
        });
        run.op(REGISTERS);
    }
}

/// Sequential creates with unique ids in a session (exactly once by request ids).
async fn log_writer(run: Arc<Run>, client_id: u64) {
    let client = run.client();
    let mut n = 0;
    let sequential = CreateMode { kind: NodeKind::Persistent, sequential: true };
    'sessions: while let Some(session) = run.session(&client, Duration::from_secs(5)).await {
        while !run.done() {
            if session.state() == SessionState::Lost {
                continue 'sessions;
            }
            n += 1;
            let id = format!("c{client_id}-{n}");
            match client.create_in(&session, "/log/e-", id.clone(), sequential).await {
                Ok(_) => lock(&run.recorded.log_acked).push(id),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            run.op(LOG);
        }
        session.close().await.ok();
        return;
    }
}

/// Holds the fenced mutex and writes twice with its token per hold.
async fn lock_holder(run: Arc<Run>, client_id: u64) {
    let client = run.client();
    let ttl = Duration::from_secs(3);
    'sessions: while let Some(session) = run.session(&client, ttl).await {
        while !run.done() {
            if session.state() == SessionState::Lost {
                continue 'sessions;
            }
            let requested_at = run.now();
            let guard = match client
                .mutex(&session, "/locks/fenced")
                .acquire_timeout(Duration::from_secs(5))
                .await
            {
                Ok(g) => g,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let token = guard.token();
            for _ in 0..2 {
                let written_at = tokio::time::Instant::now();
                let accepted = {
                    let mut fenced = lock(&run.recorded.fenced);
                    let accepted = token >= fenced.highest;
                    fenced.highest = fenced.highest.max(token);
                    accepted
                };
                let mut live_after = false;
                if !accepted {
                    // Was it a live holder? Wait for a renewal acknowledged after the write
                    // (the session was alive then, so its hold was too) or for the loss.
                    let until = written_at + ttl * 2;
                    while tokio::time::Instant::now() < until && !guard.is_lost() {
                        if session.last_renewal() > written_at {
                            live_after = !guard.is_lost();
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                lock(&run.recorded.fenced).writes.push(FencedWrite {
                    client: client_id,
                    token,
                    accepted,
                    live_after,
                });
                if !accepted {
                    break;
                }
            }
            let released = guard.release().await.is_ok();
            let released_at = released.then(|| run.now());
            lock(&run.recorded.holds).push(Hold {
                client: client_id,
                token,
                requested_at,
                released_at,
            });
            run.op(LOCKS);
        }
        session.close().await.ok();
        return;
    }
}

/// Watches the registers; each stream is checked at the end. A stream the cluster can no
/// longer continue (its history is gone, as after every member restarted: watch history is
/// kept in memory) is closed and a new one started from the present.
async fn watcher(run: Arc<Run>) {
    let client = run.client();
    while !run.done() {
        let opened = tokio::time::timeout(
            Duration::from_secs(1),
            client.watch("/reg", Scope::Prefix, 0, false),
        )
        .await;
        let mut watch = match opened {
            Ok(Ok(watch)) => watch,
            Ok(Err(e)) => {
                tracing::info!(error = %e, "watch could not start; trying again");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(_) => continue,
        };
        let mut stream = Vec::new();
        while !run.done() {
            match tokio::time::timeout(Duration::from_millis(500), watch.next()).await {
                Ok(Ok(batch)) => {
                    for e in batch.events {
                        if matches!(e.kind, EventKind::Data | EventKind::Created) {
                            stream.push((e.revision, e.path));
                            run.op(WATCH);
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "watch stream ended; starting another");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
                Err(_) => {}
            }
        }
        lock(&run.recorded.streams).push(stream);
    }
}

/// Opens a short session, makes an ephemeral node, then closes it or lets it lapse.
async fn ephemerals(run: Arc<Run>, mut rng: Rng) {
    let client = run.client();
    while !run.done() {
        let Some(session) = run.session(&client, Duration::from_secs(2)).await else { return };
        let path = format!("/eph/s{}", session.id());
        if client.create_in(&session, &path, "x", CreateMode::EPHEMERAL).await.is_err() {
            session.abandon();
            continue;
        }
        tokio::time::sleep(Duration::from_millis(rng.between(100, 1_000))).await;
        if rng.chance(50) {
            let id = session.id();
            if session.close().await.is_ok() {
                lock(&run.recorded.closed_sessions).push(id);
            }
        } else {
            session.abandon();
        }
        run.op(EPHEMERAL);
    }
}

/// Retries `f` until it succeeds or `limit` passes.
async fn settle<T, F: std::future::Future<Output = Result<T, ClientError>>>(
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> Result<T, ClientError> {
    let until = Instant::now() + limit;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= until => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Runs the suite. Errors are for setup failures (members that do not start, a cluster that
/// never recovers); checker findings are in the summary.
pub async fn run(config: RunConfig) -> Result<Summary, String> {
    let dir = tempfile::Builder::new()
        .prefix("warden-faults-")
        .tempdir()
        .map_err(|e| format!("temporary folder: {e}"))?;
    let mut members = Members::start(&config.binary, config.nodes, dir.path(), 50, 400, config.tls)
        .await
        .map_err(|e| format!("starting members: {e}"))?;
    let start = Instant::now();
    let run = Arc::new(Run {
        endpoints: members.endpoints(),
        tls: members.client_tls(),
        start,
        deadline: start + config.time_limit,
        max_ops: config.max_ops,
        stop: AtomicBool::new(false),
        recorded: Recorded::default(),
    });
    let admin = run.try_client().map_err(|e| format!("the suite's client: {e}"))?;
    for parent in ["/reg", "/log", "/locks", "/eph", "/elect", election::FENCED] {
        settle(Duration::from_secs(30), || admin.put(parent, "")).await.map_err(|e| {
            format!("the cluster did not come up ({e}); logs in {}", dir.path().display())
        })?;
    }
    if config.rotation_clients > 0 {
        let calls = rotation::Calls::new(&run);
        let until = Instant::now() + Duration::from_secs(30);
        while let Err(e) = calls.init().await {
            if Instant::now() >= until {
                return Err(format!("making the resource kind {}: {e}", rotation::KIND));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        settle(Duration::from_secs(10), || admin.put(rotation::FENCED, ""))
            .await
            .map_err(|e| format!("creating {}: {e}", rotation::FENCED))?;
        for n in 0..rotation::IDS {
            let node = format!("{}/i{n}", rotation::FENCED);
            settle(Duration::from_secs(10), || admin.put(&node, ""))
                .await
                .map_err(|e| format!("creating {node}: {e}"))?;
        }
    }
    for k in 0..config.keys {
        let key = format!("/reg/k{k}");
        settle(Duration::from_secs(10), || admin.put(&key, "0"))
            .await
            .map_err(|e| format!("creating registers: {e}"))?;
    }
    if run.tls.is_some() {
        // The members are up (they took the writes above): they must refuse a client that
        // speaks plain text, or TLS was not on.
        let plain = Client::with_deadline(run.endpoints.clone(), Duration::from_secs(2))
            .map_err(|e| format!("a plain-text client: {e}"))?;
        if plain.status().await.is_ok() {
            return Err("TLS was asked for, yet a member served a plain-text client".into());
        }
    }

    // The registers' first values, written above, begin the history.
    let set_up = run.now();
    for k in 0..config.keys {
        lock(&run.recorded.registers).push(Operation {
            client: 0,
            key: format!("/reg/k{k}"),
            call: 0,
            ret: Some(set_up),
            input: Input::Write(0),
            output: Some(Output::Write),
        });
    }

    let mut rng = Rng::new(config.seed);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..config.register_clients {
        tasks.spawn(registers(Arc::clone(&run), i as u64 + 1, config.keys, rng.fork()));
    }
    tasks.spawn(log_writer(Arc::clone(&run), 100));
    tasks.spawn(log_writer(Arc::clone(&run), 101));
    for i in 0..config.lock_clients {
        tasks.spawn(lock_holder(Arc::clone(&run), 200 + i as u64));
    }
    for _ in 0..config.watchers {
        tasks.spawn(watcher(Arc::clone(&run)));
    }
    tasks.spawn(ephemerals(Arc::clone(&run), rng.fork()));
    for i in 0..config.election_clients {
        tasks.spawn(election::candidate(Arc::clone(&run), 300 + i as u64));
    }
    if config.election_clients > 0 {
        tasks.spawn(election::observer(Arc::clone(&run)));
    }
    for i in 0..config.rotation_clients {
        tasks.spawn(rotation::holder(Arc::clone(&run), 400 + i as u64, rng.fork()));
    }
    if config.rotation_clients > 0 {
        tasks.spawn(rotation::rotator(Arc::clone(&run), rng.fork()));
    }

    let mut nemesis = Nemesis::new(rng.next_u64());
    while !run.done() {
        if run.counted() >= run.max_ops && nemesis.total() >= config.min_faults {
            break;
        }
        tokio::time::sleep(Duration::from_millis(rng.between(300, 1_200))).await;
        let leader = match tokio::time::timeout(Duration::from_secs(1), admin.status()).await {
            Ok(Ok(s)) if s.leader_id != 0 => usize::try_from(s.leader_id).ok(),
            _ => None,
        };
        let hold = Duration::from_millis(rng.between(500, 2_500));
        nemesis
            .round(&mut members, leader, hold)
            .await
            .map_err(|e| format!("applying a fault: {e}"))?;
    }
    members.restore().map_err(|e| format!("restoring members: {e}"))?;
    run.stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}

    // Let abandoned sessions expire (a ttl of 3 s from the last leader's takeover at most),
    // then read the end state.
    settle(Duration::from_secs(60), || admin.put("/reg/settled", "1")).await.map_err(|e| {
        format!("the cluster did not recover ({e}); logs in {}", dir.path().display())
    })?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    if config.rotation_clients > 0 {
        // Nothing holds the kind's old version any more: its rotation must end.
        rotation::finish(&run, &admin, Duration::from_secs(30)).await;
    }
    let log = settle(Duration::from_secs(30), || admin.children("/log", Consistency::Linearizable))
        .await
        .map_err(|e| format!("reading /log: {e}"))?;
    let mut present = Vec::new();
    for (name, _) in log {
        let path = format!("/log/{name}");
        let node = settle(Duration::from_secs(10), || admin.get(&path))
            .await
            .map_err(|e| format!("reading {path}: {e}"))?;
        present.push(String::from_utf8_lossy(&node.data).into_owned());
    }
    let eph = settle(Duration::from_secs(30), || admin.children("/eph", Consistency::Linearizable))
        .await
        .map_err(|e| format!("reading /eph: {e}"))?;
    let live: Vec<u64> = settle(Duration::from_secs(30), || admin.sessions(0))
        .await
        .map_err(|e| format!("listing sessions: {e}"))?
        .iter()
        .map(|s| s.session_id)
        .collect();

    let recorded = &run.recorded;
    let mut summary = Summary {
        seed: config.seed,
        nodes: config.nodes,
        tls: config.tls,
        faults: nemesis.summary(),
        fault_count: nemesis.total(),
        elapsed: start.elapsed(),
        ..Summary::default()
    };
    for (i, name) in WORKLOADS.iter().enumerate() {
        summary.ops.insert(name, recorded.ops[i].load(Ordering::Relaxed));
    }
    let report = linearizable::check(&lock(&recorded.registers));
    summary.unknown_keys = report.unknown.clone();
    summary.violations.insert(
        "linearizable",
        report.violations.iter().map(|v| format!("{}: {}", v.key, v.message)).collect(),
    );
    summary
        .violations
        .insert("durability", checks::durability(&lock(&recorded.log_acked), &present));
    summary
        .violations
        .insert("fencing", checks::fencing(&lock(&recorded.holds), &lock(&recorded.fenced).writes));
    let acked = lock(&recorded.acked_writes).clone();
    let watch: Vec<String> = lock(&recorded.streams)
        .iter()
        .flat_map(|s| checks::watch_stream(s, &acked, "/reg/"))
        .collect();
    summary.violations.insert("watch", watch);
    let nodes: Vec<(String, u64)> = eph
        .into_iter()
        .map(|(name, stat)| (format!("/eph/{name}"), stat.ephemeral_owner))
        .collect();
    summary
        .violations
        .insert("ephemeral", checks::ephemerals(&nodes, &live, &lock(&recorded.closed_sessions)));
    for (checker, found) in recorded.elections.judge() {
        summary.violations.insert(checker, found);
    }
    if config.rotation_clients > 0 {
        for (checker, found) in recorded.rotation.judge() {
            summary.violations.insert(checker, found);
        }
    }
    if summary.total_violations() > 0 {
        tracing::error!(logs = %dir.path().display(), "violations found; keeping the members' logs");
        // Keep the logs for whoever reads the failure.
        let kept = dir.keep();
        tracing::error!(dir = %kept.display(), "logs kept");
    }
    Ok(summary)
}
