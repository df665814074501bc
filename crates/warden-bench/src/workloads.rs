//! The workloads: closed loops, one per worker, each waiting for its answer before the
//! next request. Operations that start in the warm-up or after the window are not counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use tokio::task::{JoinHandle, JoinSet};

use crate::backend::{Backend, Worker};
use crate::measure::{Record, Window};
use crate::procstat::{Sample, Usage};

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Workload {
    /// Each client acquires and releases its own lock.
    LockUncontended,
    /// All clients on one lock: hand-offs, wait latency, and a mutual-exclusion check.
    LockContended,
    /// 256-byte writes, one key per client.
    KvWrite,
    /// Linearizable reads of one key per client.
    KvRead,
    /// Serializable reads (the answering member's replica).
    KvReadLocal,
    /// W watchers on a prefix while the clients write under it: delivery rate and lag.
    WatchFanout,
    /// S sessions held with keepalives: member CPU and memory.
    Sessions,
    /// L locks held at once by S sessions (L/S each): the memory each held lock costs.
    HeldLocks,
}

impl Workload {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::LockUncontended => "lock-uncontended",
            Workload::LockContended => "lock-contended",
            Workload::KvWrite => "kv-write",
            Workload::KvRead => "kv-read",
            Workload::KvReadLocal => "kv-read-local",
            Workload::WatchFanout => "watch-fanout",
            Workload::Sessions => "sessions",
            Workload::HeldLocks => "held-locks",
        }
    }
}

/// The size of every written value.
pub(crate) const VALUE_BYTES: usize = 256;

/// How to run a workload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) workload: Workload,
    pub(crate) clients: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    /// Watchers of watch-fanout.
    pub(crate) watchers: usize,
    /// Sessions of the sessions and held-locks workloads.
    pub(crate) sessions: usize,
    /// Locks of the held-locks workload.
    pub(crate) locks: usize,
    /// Session (lease) ttl, s.
    pub(crate) ttl_s: u64,
}

/// The parents every workload writes under.
pub(crate) const PARENTS: [&str; 4] = ["/bench", "/bench/kv", "/bench/locks", "/bench/watch"];

/// Creates `n` workers, at most 64 connecting at once.
async fn workers<B: Backend>(backend: &Arc<B>, n: usize, ttl_s: u64) -> Result<Vec<B::Worker>> {
    let mut made = Vec::with_capacity(n);
    let mut pending = futures::stream::iter(0..n)
        .map(|_| {
            let backend = Arc::clone(backend);
            async move { backend.worker(ttl_s).await }
        })
        .buffered(64);
    while let Some(worker) = pending.next().await {
        made.push(worker.context("connecting a client")?);
    }
    Ok(made)
}

/// What a run measured.
pub(crate) struct Measured {
    pub(crate) record: Record,
    pub(crate) window: Window,
    /// CPU and memory over the window.
    pub(crate) usage: Usage,
}

/// Runs `spec` against `backend` whose members are the processes `pids`.
pub(crate) async fn run<B: Backend>(backend: Arc<B>, spec: Spec, pids: &[u32]) -> Result<Measured> {
    backend.prepare(&PARENTS).await?;
    if spec.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let (record, window, usage) = match spec.workload {
        Workload::WatchFanout => watch_fanout(backend, spec, pids).await?,
        Workload::Sessions => sessions(backend, spec, pids).await?,
        Workload::HeldLocks => held_locks(backend, spec, pids).await?,
        _ => closed_loops(backend, spec, pids).await?,
    };
    let usage = usage.await.unwrap_or_default();
    Ok(Measured { record, window, usage })
}

/// Samples the CPU of `pids`, this process and the machine over `window`.
fn sample(window: Window, pids: &[u32]) -> JoinHandle<Usage> {
    let pids = pids.to_vec();
    tokio::spawn(async move {
        tokio::time::sleep_until(tokio::time::Instant::from_std(window.start)).await;
        let sample = Sample::take(&pids);
        tokio::time::sleep_until(tokio::time::Instant::from_std(window.end)).await;
        sample.usage()
    })
}

type Run = (Record, Window, JoinHandle<Usage>);

/// Every worker's loop for the lock and key-value workloads.
async fn closed_loops<B: Backend>(backend: Arc<B>, spec: Spec, pids: &[u32]) -> Result<Run> {
    let mut all = workers(&backend, spec.clients, spec.ttl_s).await?;
    let value = vec![b'v'; VALUE_BYTES];
    if matches!(spec.workload, Workload::KvRead | Workload::KvReadLocal) {
        for (i, w) in all.iter_mut().enumerate() {
            w.put(&format!("/bench/kv/c{i}"), value.clone()).await?;
        }
    }
    // Who holds the contended lock now (0: nobody), and the highest token seen.
    let holder = Arc::new(AtomicU64::new(0));
    let highest = Arc::new(AtomicU64::new(0));
    let window = Window::new(spec.warmup, spec.duration);
    let usage = sample(window, pids);
    let mut tasks = JoinSet::new();
    for (i, mut w) in all.drain(..).enumerate() {
        let (holder, highest, value) = (Arc::clone(&holder), Arc::clone(&highest), value.clone());
        tasks.spawn(async move {
            let mut record = Record::default();
            let key = format!("/bench/kv/c{i}");
            let own_lock = format!("/bench/locks/c{i}");
            let me = i as u64 + 1;
            while !window.over() {
                let started = Instant::now();
                let outcome = match spec.workload {
                    Workload::LockUncontended => lock_cycle(&mut w, &own_lock, None).await,
                    Workload::LockContended => {
                        let check = Some((me, &*holder, &*highest));
                        lock_cycle(&mut w, "/bench/locks/shared", check).await
                    }
                    Workload::KvWrite => w.put(&key, value.clone()).await.map(|()| (None, 0)),
                    Workload::KvRead => w.get(&key, true).await.map(|_| (None, 0)),
                    Workload::KvReadLocal => w.get(&key, false).await.map(|_| (None, 0)),
                    Workload::WatchFanout | Workload::Sessions | Workload::HeldLocks => {
                        Ok((None, 0))
                    }
                };
                match outcome {
                    Ok((acquired, violations)) => {
                        record.violations += violations;
                        if window.counts(started) {
                            record.op(started.elapsed());
                            if let Some(acquired) = acquired {
                                record.secondary(acquired);
                            }
                        }
                    }
                    Err(e) => {
                        if window.counts(started) {
                            record.errors += 1;
                        }
                        tracing::debug!(error = %e, "operation failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            w.close().await;
            record
        });
    }
    Ok((collect(tasks, window).await, window, usage))
}

/// Acquires and releases `lock`; returns how long the acquire took and the violations
/// seen. With `check` (this worker's id, the current holder, the highest token), checks
/// that nobody else holds and that the token is higher than every earlier one.
async fn lock_cycle<W: Worker>(
    w: &mut W,
    lock: &str,
    check: Option<(u64, &AtomicU64, &AtomicU64)>,
) -> Result<(Option<Duration>, u64)> {
    let started = Instant::now();
    let token = w.acquire(lock).await?;
    let acquired = started.elapsed();
    let mut violations = 0;
    if let Some((me, holder, highest)) = check {
        if holder.swap(me, Ordering::SeqCst) != 0 {
            violations += 1;
        }
        if highest.fetch_max(token, Ordering::SeqCst) >= token {
            violations += 1;
        }
        if holder.swap(0, Ordering::SeqCst) != me {
            violations += 1;
        }
    }
    w.release(lock).await?;
    Ok((Some(acquired), violations))
}

/// Waits for every task (at most a minute past the window), merging their records.
async fn collect(mut tasks: JoinSet<Record>, window: Window) -> Record {
    let mut merged = Record::default();
    let deadline = tokio::time::Instant::from_std(window.end) + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(Ok(record))) => merged.merge(&record),
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "a worker failed");
                merged.errors += 1;
            }
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    left = tasks.len(),
                    "workers still running a minute after the window; stopped"
                );
                merged.errors += tasks.len() as u64;
                tasks.abort_all();
                break;
            }
        }
    }
    merged
}

/// A value a watch-fanout writer writes: when (ns since `base`), who, and its sequence.
fn stamp(base: Instant, writer: u32, seq: u64) -> Vec<u8> {
    let ns = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut value = Vec::with_capacity(VALUE_BYTES);
    value.extend_from_slice(&ns.to_be_bytes());
    value.extend_from_slice(&writer.to_be_bytes());
    value.extend_from_slice(&seq.to_be_bytes());
    value.resize(VALUE_BYTES, b'w');
    value
}

fn unstamp(value: &[u8]) -> Option<(u64, u32, u64)> {
    let ns = u64::from_be_bytes(value.get(0..8)?.try_into().ok()?);
    let writer = u32::from_be_bytes(value.get(8..12)?.try_into().ok()?);
    let seq = u64::from_be_bytes(value.get(12..20)?.try_into().ok()?);
    Some((ns, writer, seq))
}

/// `spec.watchers` watchers of `/bench/watch` while `spec.clients` writers write there.
/// The record's ops are deliveries, its latency the delivery lag.
async fn watch_fanout<B: Backend>(backend: Arc<B>, spec: Spec, pids: &[u32]) -> Result<Run> {
    let exact = backend.exact_watch();
    let mut watchers = workers(&backend, spec.watchers.max(1), spec.ttl_s).await?;
    let mut streams = Vec::new();
    for w in &mut watchers {
        streams.push(w.watch("/bench/watch").await?);
    }
    let writers = workers(&backend, spec.clients, spec.ttl_s).await?;
    let base = Instant::now();
    let window = Window::new(spec.warmup, spec.duration);
    let usage = sample(window, pids);
    let mut tasks = JoinSet::new();
    for mut stream in streams {
        tasks.spawn(async move {
            let mut record = Record::default();
            let mut last: HashMap<u32, u64> = HashMap::new();
            // Past the window, give in-flight events a second to arrive.
            let stop = tokio::time::Instant::from_std(window.end) + Duration::from_secs(1);
            while let Ok(Some(item)) = tokio::time::timeout_at(stop, stream.next()).await {
                let Ok(value) = item else {
                    record.errors += 1;
                    continue;
                };
                let Some((ns, writer, seq)) = unstamp(&value) else { continue };
                let now = Instant::now();
                if let Some(previous) = last.insert(writer, seq)
                    && exact
                    && seq != previous + 1
                {
                    record.violations += 1;
                }
                let written = base + Duration::from_nanos(ns);
                if window.counts(written) {
                    record.op(now.saturating_duration_since(written));
                }
            }
            record
        });
    }
    let mut writing = JoinSet::new();
    for (i, mut w) in writers.into_iter().enumerate() {
        writing.spawn(async move {
            let mut record = Record::default();
            let key = format!("/bench/watch/c{i}");
            let mut seq = 0u64;
            while !window.over() {
                seq += 1;
                let started = Instant::now();
                if w.put(&key, stamp(base, i as u32, seq)).await.is_err() && window.counts(started)
                {
                    record.errors += 1;
                }
            }
            w.close().await;
            record
        });
    }
    let writes = collect(writing, window).await;
    let mut delivered = collect(tasks, window).await;
    delivered.errors += writes.errors;
    for w in watchers {
        w.close().await;
    }
    Ok((delivered, window, usage))
}

/// Holds `spec.sessions` sessions for the window; the record's ops are the sessions still
/// alive at the end, its violations the ones lost.
async fn sessions<B: Backend>(backend: Arc<B>, spec: Spec, pids: &[u32]) -> Result<Run> {
    let opened = Instant::now();
    let held = workers(&backend, spec.sessions.max(1), spec.ttl_s).await?;
    tracing::info!(sessions = held.len(), took = ?opened.elapsed(), "sessions opened");
    let window = Window::new(spec.warmup, spec.duration);
    let usage = sample(window, pids);
    tokio::time::sleep_until(tokio::time::Instant::from_std(window.end)).await;
    let mut record = Record::default();
    for w in &held {
        if w.alive() {
            record.ops += 1;
        } else {
            record.violations += 1;
        }
    }
    futures::stream::iter(held).for_each_concurrent(64, Worker::close).await;
    Ok((record, window, usage))
}

/// Takes `spec.locks` locks with `spec.sessions` sessions (an equal share each, through
/// `spec.clients` concurrent acquirers) and holds them for the window. The record's ops are
/// the locks held at the end, its violations the acquires that failed; the members' memory
/// before and after is in [`HeldMemory`].
async fn held_locks<B: Backend>(backend: Arc<B>, spec: Spec, pids: &[u32]) -> Result<Run> {
    backend.prepare(&["/bench/held"]).await?;
    let before = crate::procstat::busiest_rss(pids);
    let opened = Instant::now();
    let mut held = workers(&backend, spec.sessions.max(1), spec.ttl_s).await?;
    let per_session = spec.locks.div_ceil(held.len());
    tracing::info!(sessions = held.len(), took = ?opened.elapsed(), "sessions opened");
    let taken = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let chunk = held.len().div_ceil(spec.clients.max(1));
    let mut tasks = JoinSet::new();
    let mut index = 0usize;
    while !held.is_empty() {
        let mut mine: Vec<B::Worker> = held.drain(..chunk.min(held.len())).collect();
        let first = index;
        index += mine.len();
        let (taken, failed) = (Arc::clone(&taken), Arc::clone(&failed));
        tasks.spawn(async move {
            for (offset, w) in mine.iter_mut().enumerate() {
                for j in 0..per_session {
                    let n = (first + offset) * per_session + j;
                    if n >= spec.locks {
                        break;
                    }
                    match w.acquire(&format!("/bench/held/l{n}")).await {
                        Ok(_) => taken.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
            mine
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.context("an acquiring task failed")?);
    }
    tracing::info!(locks = taken.load(Ordering::Relaxed), took = ?started.elapsed(), "locks taken");
    let window = Window::new(spec.warmup, spec.duration);
    let usage = sample(window, pids);
    tokio::time::sleep_until(tokio::time::Instant::from_std(window.end)).await;
    let after = crate::procstat::busiest_rss(pids);
    let lost = all.iter().filter(|w| !w.alive()).count() as u64;
    let record = Record {
        ops: taken.load(Ordering::Relaxed),
        violations: failed.load(Ordering::Relaxed) + lost,
        memory: Some((before, after)),
        ..Record::default()
    };
    futures::stream::iter(all).for_each_concurrent(64, Worker::close).await;
    Ok((record, window, usage))
}
