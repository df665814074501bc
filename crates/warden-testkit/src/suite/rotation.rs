//! The suite's rotation workload: holders lock random ids of one resource kind in a loop,
//! each hold writing through the cluster to a per-id node with a transaction fenced by its
//! waiter node (applied only while the hold lasts); a rotator rotates the kind through
//! v2, v3, ... (waiting for each switch, forcing some after a while). Judged by
//! [`crate::rotations`]: no id held under two versions at once, fenced writes per id, and
//! every rotation switched.
//!
//! The Resource service has no client API yet, so the calls go through the generated gRPC
//! clients over channels of their own ([`Calls`]), following the leader; sessions are
//! `warden_client`'s, kept alive by it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic::{Code, Status};
use warden_client::{Check, Client, Compare, Consistency, SessionState, TxnOp};
use warden_proto::v1 as pb;
use warden_proto::v1::lock_client::LockClient;
use warden_proto::v1::resource_client::ResourceClient;
use warden_proto::{ERROR_METADATA, ErrorKind, LEADER_METADATA};

use super::{ROT_FORCED, ROT_HOLDS, ROT_REFUSED, ROT_WRITES, ROTATIONS, Run, lock};
use crate::rng::Rng;
use crate::rotations::{self, IdWrite, Rotation};

/// The resource kind.
pub(super) const KIND: &str = "/rot";
/// Its first version.
const FIRST: &str = "v1";
/// The per-id nodes holders write to: `FENCED/<id>`.
pub(super) const FENCED: &str = "/rotfenced";
/// How many ids the holders pick from (few, so holders meet on them).
pub(super) const IDS: u64 = 6;

/// What the workload recorded.
#[derive(Default)]
pub(super) struct Recorded {
    writes: Mutex<Vec<IdWrite>>,
    rotations: Mutex<Vec<Rotation>>,
    /// The kind's version and children at the end, once it stopped rotating.
    end: Mutex<Option<(String, Vec<String>)>>,
}

impl Recorded {
    /// The checkers' findings: (checker, violations).
    pub(super) fn judge(&self) -> [(&'static str, Vec<String>); 3] {
        let rotations = lock(&self.rotations).clone();
        let order: Vec<String> = std::iter::once(FIRST.to_owned())
            .chain(rotations.iter().map(|r| r.to.clone()))
            .collect();
        let writes = lock(&self.writes).clone();
        let switched = match lock(&self.end).clone() {
            Some((end, left)) => rotations::rotations(FIRST, &rotations, &end, &left),
            None => vec!["the kind's state could not be read at the end".to_owned()],
        };
        [
            ("rotation_versions", rotations::versions(&writes, &order)),
            ("rotation_fencing", rotations::fenced(&writes)),
            ("rotation_switch", switched),
        ]
    }
}

/// The error kind a status carries.
fn kind(status: &Status) -> Option<ErrorKind> {
    ErrorKind::parse(status.metadata().get(ERROR_METADATA)?.to_str().ok()?)
}

/// Calls over the generated clients, to one member at a time: the one that answered last,
/// or the leader a member named (`warden-leader`) when it said it is not the leader, or
/// the next one after a failure. One call is one attempt (plus one to a named leader): the
/// workloads retry, and their calls are idempotent.
pub(super) struct Calls {
    client: Client,
    endpoints: Vec<String>,
    channels: Mutex<HashMap<String, Channel>>,
    preferred: Mutex<usize>,
}

impl Calls {
    pub(super) fn new(run: &Run) -> Calls {
        Calls {
            client: run.client(),
            endpoints: run.endpoints.clone(),
            channels: Mutex::new(HashMap::new()),
            preferred: Mutex::new(0),
        }
    }

    async fn channel(&self, addr: &str) -> Result<Channel, Status> {
        if let Some(c) = lock(&self.channels).get(addr) {
            return Ok(c.clone());
        }
        let endpoint =
            self.client.endpoint_to(addr).map_err(|e| Status::internal(e.to_string()))?;
        let channel = endpoint
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await
            .map_err(|e| Status::unavailable(format!("cannot connect to {addr}: {e}")))?;
        lock(&self.channels).insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    fn prefer(&self, addr: &str) {
        if let Some(i) = self.endpoints.iter().position(|e| e == addr) {
            *lock(&self.preferred) = i;
        }
    }

    /// Calls `f` on the preferred member, within `limit`; follows one leader hint.
    pub(super) async fn call<T, F, Fut>(&self, limit: Duration, mut f: F) -> Result<T, Status>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let first = self.endpoints[*lock(&self.preferred) % self.endpoints.len()].clone();
        let mut addr = first;
        for _ in 0..2 {
            let outcome = match self.channel(&addr).await {
                Ok(channel) => tokio::time::timeout(limit, f(channel))
                    .await
                    .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer in time"))),
                Err(e) => Err(e),
            };
            let status = match outcome {
                Ok(v) => return Ok(v),
                Err(status) => status,
            };
            let hint = (status.code() == Code::Unavailable
                && kind(&status) == Some(ErrorKind::NotLeader))
            .then(|| status.metadata().get(LEADER_METADATA).and_then(|v| v.to_str().ok()))
            .flatten()
            .filter(|h| !h.is_empty() && *h != addr && self.endpoints.iter().any(|e| e == h))
            .map(str::to_owned);
            if let Some(hint) = hint {
                self.prefer(&hint);
                addr = hint;
                continue;
            }
            if kind(&status).is_none() || status.code() == Code::Unavailable {
                // The transport failed, or the member cannot serve: another one next time.
                lock(&self.channels).remove(&addr);
                let mut p = lock(&self.preferred);
                *p = (*p + 1) % self.endpoints.len();
            }
            return Err(status);
        }
        Err(Status::unavailable("the members named each other as leader"))
    }

    async fn resources<T, F, Fut>(&self, limit: Duration, f: F) -> Result<T, Status>
    where
        F: Fn(ResourceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call(limit, |c| {
            let fut = f(ResourceClient::new(c));
            async move { fut.await.map(tonic::Response::into_inner) }
        })
        .await
    }

    /// The kind's status.
    pub(super) async fn status(&self) -> Result<pb::ResourceStatusResponse, Status> {
        self.resources(Duration::from_secs(2), |mut r| async move {
            r.status(pb::ResourceStatusRequest { kind: KIND.into() }).await
        })
        .await
    }

    /// Makes the kind at its first version.
    pub(super) async fn init(&self) -> Result<(), Status> {
        self.resources(Duration::from_secs(2), |mut r| async move {
            r.init(pb::ResourceInitRequest { kind: KIND.into(), version: FIRST.into() }).await
        })
        .await
        .map(|_| ())
    }
}

/// A holder: lock a random id, write twice fenced by the waiter node (some holds linger
/// between the two, long enough to hold up a rotation and be revoked by a forced one),
/// release; again until the run ends. A hold whose outcome it cannot tell (an acquire or a
/// release that failed) is asked again on the same id, which finds its place (or a new
/// one, if the hold ended). A lost session is abandoned (its holds end with it) for a new
/// one.
pub(super) async fn holder(run: Arc<Run>, client_id: u64, mut rng: Rng) {
    let client = run.client();
    let calls = Calls::new(&run);
    let ttl = Duration::from_secs(3);
    let recorded = &run.recorded.rotation;
    while let Some(session) = run.session(&client, ttl).await {
        let mut id: Option<u64> = None;
        while !run.done() && session.state() != SessionState::Lost {
            let n = *id.get_or_insert_with(|| rng.below(IDS));
            let request = pb::ResourceAcquireRequest {
                kind: KIND.into(),
                id: format!("i{n}"),
                session_id: session.id(),
                delay_ms: if rng.chance(20) { 200 } else { 0 },
                timeout_ms: 2_000,
                no_wait_while_draining: rng.chance(25),
                ..Default::default()
            };
            let acquired = calls
                .resources(Duration::from_secs(4), |mut r| {
                    let request = request.clone();
                    async move { r.acquire(request).await }
                })
                .await;
            let held = match acquired {
                Ok(held) => held,
                Err(s) if matches!(kind(&s), Some(ErrorKind::Draining | ErrorKind::Timeout)) => {
                    // Refused while draining, as asked, or not granted in time (the wait
                    // was removed): it holds nothing.
                    id = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(s) => {
                    // Unknown (the transport or the member failed): ask again for the same
                    // id, which finds its place if the acquire was made.
                    tracing::debug!(error = %s, "resource acquire failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            run.op(ROT_HOLDS);
            let version = warden_core::path::parent(&held.lock)
                .map(warden_core::path::name)
                .unwrap_or_default()
                .to_owned();
            let fence = Compare { path: held.waiter.clone(), check: Check::Exists(true) };
            let node = format!("{FENCED}/i{n}");
            let linger = rng.chance(15).then(|| rng.between(500, 2_500));
            for w in 0..2 {
                if w == 1 {
                    let pause = linger.unwrap_or_else(|| rng.between(0, 100));
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                let write = TxnOp::Set {
                    path: node.clone(),
                    data: format!("{} {} c{client_id}", held.token, held.lock).into(),
                    expected_version: None,
                };
                if let Ok(r) = client.txn_in(&session, vec![fence.clone()], vec![write]).await {
                    lock(&recorded.writes).push(IdWrite {
                        client: client_id,
                        id: format!("i{n}"),
                        version: version.clone(),
                        token: held.token,
                        applied: r.succeeded,
                        revision: r.revision,
                    });
                    run.op(if r.succeeded { ROT_WRITES } else { ROT_REFUSED });
                }
            }
            let release = pb::ReleaseRequest {
                path: held.lock.clone(),
                session_id: session.id(),
                token: Some(held.token),
                request_id: None,
            };
            let released = calls
                .call(Duration::from_secs(3), |c| {
                    let release = release.clone();
                    async move { LockClient::new(c).release(release).await }
                })
                .await;
            match released {
                // Released, or it had ended (revoked by a forced rotation).
                Ok(_) => id = None,
                Err(s) if kind(&s) == Some(ErrorKind::HoldEnded) => id = None,
                // Unknown: the same id again finds the hold if it lasts.
                Err(_) => {}
            }
        }
        if run.done() {
            session.close().await.ok();
            return;
        }
        // Lost: its holds end with it.
        session.abandon();
    }
}

/// The rotator: rotate to the next version, wait for the switch (forcing it after a while,
/// some of the time), pause; again until the run ends.
pub(super) async fn rotator(run: Arc<Run>, mut rng: Rng) {
    let calls = Calls::new(&run);
    let recorded = &run.recorded.rotation;
    let mut n = 1u64;
    while !run.done() {
        n += 1;
        let to = format!("v{n}");
        let request = pb::RotationRequest { kind: KIND.into(), to: to.clone() };
        // Begin (idempotent: asked again until answered). Once asked, it is asked until
        // answered even past the run's end (the members are healed then), up to a bound:
        // a rotation begun unknown to the checkers would end the kind at an unknown version.
        let mut asked = false;
        let mut until: Option<Instant> = None;
        let begun = loop {
            if run.done() {
                let until = *until.get_or_insert_with(|| Instant::now() + Duration::from_secs(30));
                if !asked || Instant::now() >= until {
                    return;
                }
            }
            asked = true;
            let r = calls
                .resources(Duration::from_secs(3), |mut r| {
                    let request = request.clone();
                    async move { r.rotate(request).await }
                })
                .await;
            match r {
                Ok(r) => break r,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let begun_at = run.now();
        let index = {
            let mut rotations = lock(&recorded.rotations);
            rotations.push(Rotation {
                from: begun.from.clone(),
                to: to.clone(),
                begun_at,
                forced: false,
                switched_at: begun.switched.then_some(begun_at),
            });
            rotations.len() - 1
        };
        let force_after = rng.chance(40).then(|| Duration::from_millis(rng.between(500, 2_500)));
        let started = Instant::now();
        let mut switched = begun.switched;
        while !switched && !run.done() {
            if force_after.is_some_and(|d| started.elapsed() >= d)
                && !lock(&recorded.rotations)[index].forced
            {
                let forced = calls
                    .resources(Duration::from_secs(3), |mut r| async move {
                        r.force(pb::ForceRotationRequest { kind: KIND.into() }).await
                    })
                    .await;
                match forced {
                    Ok(f) => {
                        lock(&recorded.rotations)[index].forced = true;
                        run.op(ROT_FORCED);
                        switched = f.switched && f.to == to;
                    }
                    Err(s) => tracing::debug!(error = %s, "force failed"),
                }
            }
            if !switched {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(s) = calls.status().await {
                    switched = s.version == to;
                }
            }
        }
        if switched {
            lock(&recorded.rotations)[index].switched_at = Some(run.now());
            run.op(ROTATIONS);
        }
        if run.done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(rng.between(200, 1_000))).await;
    }
}

/// After the run (workloads stopped, faults healed, their sessions closed or expired):
/// waits up to `limit` for the kind to stop rotating, marks the last rotation switched if
/// it did, and keeps the kind's version and children for the checkers.
pub(super) async fn finish(run: &Run, admin: &Client, limit: Duration) {
    let calls = Calls::new(run);
    let recorded = &run.recorded.rotation;
    let until = Instant::now() + limit;
    while Instant::now() < until {
        let status = match calls.status().await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if !status.rotating_to.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        {
            let mut rotations = lock(&recorded.rotations);
            let now = run.now();
            for r in rotations.iter_mut().filter(|r| r.switched_at.is_none()) {
                if r.to == status.version {
                    r.switched_at = Some(now);
                }
            }
        }
        let children = loop {
            match admin.children(KIND, Consistency::Linearizable).await {
                Ok(c) => break c.into_iter().map(|(name, _)| name).collect::<Vec<_>>(),
                Err(_) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading the kind's children");
                    return;
                }
            }
        };
        *lock(&recorded.end) = Some((status.version, children));
        return;
    }
    // Still rotating (or unreadable): the checkers report the unswitched rotation.
    if let Ok(status) = calls.status().await {
        *lock(&recorded.end) = Some((status.version, Vec::new()));
    }
}
