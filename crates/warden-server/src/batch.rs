//! Batching on the leader: concurrent writes share log entries, and concurrent
//! linearizable reads share read-index confirmations.
//!
//! openraft 0.9 handles each `client_write` as its own entry: its own append, its own
//! replication wake-up. Under load that per-entry cost, not the disk, bounds throughput.
//! The proposer queues writes and proposes everything queued as one entry
//! ([`LogCommand::Batch`]), with a few entries in flight, so the batch grows with the load
//! and a lone write still goes at once. The core applies a batch's requests in order, each
//! with its own response and revision, exactly as if they had come one by one.
//!
//! Likewise every `ensure_linearizable` is a round of heartbeats to a quorum; the read gate
//! lets all reads that arrive while one round is under way share the next round. A read
//! is only ever answered after a round that *started* after it arrived, so it sees every
//! write acknowledged before it was sent.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use openraft::Raft;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::Status;
use tracing::Instrument;
use warden_core::{LogCommand, Request, Response};
use warden_proto::ErrorKind;
use warden_storage::{Proposal, TypeConfig};

use crate::metrics::Metrics;
use crate::shared::now_ms;
use crate::status;

/// Entries proposed but not yet applied, at most.
const IN_FLIGHT: usize = 4;
/// Requests in one entry, at most.
const MAX_BATCH: usize = 512;

type Waiter = oneshot::Sender<Result<Response, Status>>;

/// Queues writes and proposes them in batches.
#[derive(Clone)]
pub(crate) struct Proposer {
    queue: mpsc::UnboundedSender<(Request, Waiter)>,
    /// Counts the proposals and times them until their answer.
    metrics: Arc<Metrics>,
}

impl Proposer {
    /// Starts the proposing task for `raft`.
    pub(crate) fn start(raft: Raft<TypeConfig>, metrics: Arc<Metrics>) -> Proposer {
        let (queue, requests) = mpsc::unbounded_channel();
        tokio::spawn(propose(raft, requests).in_current_span());
        Proposer { queue, metrics }
    }

    /// Proposes `request` (in some entry) and waits for its response.
    pub(crate) async fn write(&self, request: Request) -> Result<Response, Status> {
        let (tx, rx) = oneshot::channel();
        if self.queue.send((request, tx)).is_err() {
            return Err(status::member_stopped());
        }
        let proposed = Instant::now();
        let answer = rx.await.unwrap_or_else(|_| Err(status::member_stopped()));
        let result = match answer {
            Ok(_) => {
                self.metrics.proposal_seconds.observe(proposed.elapsed().as_secs_f64());
                crate::metrics::APPLIED
            }
            Err(_) => crate::metrics::FAILED,
        };
        self.metrics.proposals.with_label_values(&[result]).inc();
        answer
    }
}

async fn propose(raft: Raft<TypeConfig>, mut requests: mpsc::UnboundedReceiver<(Request, Waiter)>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = requests.recv().await {
        // Wait for a free slot first: whatever queues meanwhile joins this entry.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let (requests, waiters): (Vec<Request>, Vec<Waiter>) = batch.into_iter().unzip();
            let command = match <[Request; 1]>::try_from(requests) {
                Ok([one]) => LogCommand::V1(one),
                Err(many) => LogCommand::Batch(many),
            };
            let written = raft.client_write(Proposal { time_ms: now_ms(), command }).await;
            drop(slot);
            match written {
                Ok(reply) if reply.data.responses.len() == waiters.len() => {
                    for (waiter, response) in waiters.into_iter().zip(reply.data.responses) {
                        waiter.send(Ok(response)).ok();
                    }
                }
                Ok(reply) => {
                    let wrong = status::server(
                        tonic::Code::Internal,
                        ErrorKind::Internal,
                        format!(
                            "an entry of {} requests was applied with {} responses",
                            waiters.len(),
                            reply.data.responses.len()
                        ),
                    );
                    for waiter in waiters {
                        waiter.send(Err(wrong.clone())).ok();
                    }
                }
                Err(e) => {
                    let failed = status::write_error(e);
                    for waiter in waiters {
                        waiter.send(Err(failed.clone())).ok();
                    }
                }
            }
        });
    }
}

/// Lets concurrent linearizable reads share read-index rounds.
#[derive(Clone)]
pub(crate) struct ReadGate {
    raft: Raft<TypeConfig>,
    state: Arc<Mutex<Gate>>,
}

#[derive(Default)]
struct Gate {
    /// A round is under way (or about to start).
    running: bool,
    /// Reads waiting for the next round to start.
    waiting: Vec<oneshot::Sender<Result<(), Status>>>,
}

impl ReadGate {
    pub(crate) fn new(raft: Raft<TypeConfig>) -> ReadGate {
        ReadGate { raft, state: Arc::new(Mutex::new(Gate::default())) }
    }

    /// Returns once this member, as leader, has confirmed with a quorum in a round that
    /// started after the call, and applied everything committed before it.
    pub(crate) async fn confirm(&self) -> Result<(), Status> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut gate = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            gate.waiting.push(tx);
            !std::mem::replace(&mut gate.running, true)
        };
        if start {
            tokio::spawn(self.clone().rounds());
        }
        rx.await.unwrap_or_else(|_| Err(status::member_stopped()))
    }

    /// Runs rounds while reads wait: each round answers the reads that arrived before it.
    async fn rounds(self) {
        loop {
            let batch = {
                let mut gate = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                if gate.waiting.is_empty() {
                    gate.running = false;
                    return;
                }
                std::mem::take(&mut gate.waiting)
            };
            let confirmed =
                self.raft.ensure_linearizable().await.map(|_| ()).map_err(status::read_error);
            for waiter in batch {
                waiter.send(confirmed.clone()).ok();
            }
        }
    }
}
