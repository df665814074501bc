//! What a benchmarked system must do, so every workload runs unchanged against warden,
//! etcd and ZooKeeper: each worker is one client with its own connection and session.

use std::future::Future;

use anyhow::Result;
use futures::stream::BoxStream;

/// A system under test.
pub(crate) trait Backend: Send + Sync + 'static {
    /// One client of it.
    type Worker: Worker;

    /// Creates the persistent parents the workloads write under (idempotent).
    fn prepare(&self, paths: &[&str]) -> impl Future<Output = Result<()>> + Send;

    /// Whether a watch delivers every write's value once, in order (etcd, warden), rather
    /// than notifications to read after (ZooKeeper), so gaps can be counted as violations.
    fn exact_watch(&self) -> bool;

    /// A new client with its own connection and its own session (lease) of `ttl_s`.
    fn worker(&self, ttl_s: u64) -> impl Future<Output = Result<Self::Worker>> + Send;
}

/// One client.
pub(crate) trait Worker: Send + 'static {
    /// Waits until the lock at `path` is held; returns its fencing token (or another
    /// number that increases with each grant).
    fn acquire(&mut self, path: &str) -> impl Future<Output = Result<u64>> + Send;
    /// Releases the lock at `path`, held by this worker.
    fn release(&mut self, path: &str) -> impl Future<Output = Result<()>> + Send;
    /// Writes `value` at `key`, creating it if needed.
    fn put(&mut self, key: &str, value: Vec<u8>) -> impl Future<Output = Result<()>> + Send;
    /// Reads `key`: linearizable, or from the answering member's replica.
    fn get(
        &mut self,
        key: &str,
        linearizable: bool,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Watches every key under `prefix` from now on: a stream of the written values.
    fn watch(
        &mut self,
        prefix: &str,
    ) -> impl Future<Output = Result<BoxStream<'static, Result<Vec<u8>>>>> + Send;
    /// Whether the session is still alive, as far as the client knows.
    fn alive(&self) -> bool;
    /// Ends the session.
    fn close(self) -> impl Future<Output = ()> + Send;
}
