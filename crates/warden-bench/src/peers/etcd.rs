//! etcd through `etcd-client`: a lease per worker kept alive in the background, locks
//! through etcd's Lock service (v3lock) with that lease, reads linearizable or
//! serializable, watches on a prefix.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use etcd_client::{Client, GetOptions, LockOptions, WatchOptions};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::task::JoinHandle;

use crate::backend::{Backend, Worker};

/// An etcd cluster.
pub(crate) struct Etcd {
    endpoints: Vec<String>,
    /// Workers connect to one member each, in turn: etcd-client otherwise opens a
    /// connection to every member per client (30,000 sockets for 10,000 sessions).
    next: AtomicUsize,
}

impl Etcd {
    pub(crate) fn new(endpoints: Vec<String>) -> Etcd {
        Etcd { endpoints, next: AtomicUsize::new(0) }
    }
}

/// One etcd client with its own connection and lease.
pub(crate) struct EtcdWorker {
    client: Client,
    lease: i64,
    alive: Arc<AtomicBool>,
    keepalive: JoinHandle<()>,
    /// The lock keys held, by lock name.
    held: HashMap<String, Vec<u8>>,
}

impl Backend for Etcd {
    type Worker = EtcdWorker;

    async fn prepare(&self, _paths: &[&str]) -> Result<()> {
        // etcd's keyspace is flat: nothing to create.
        Ok(())
    }

    fn exact_watch(&self) -> bool {
        true
    }

    async fn worker(&self, ttl_s: u64) -> Result<EtcdWorker> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len().max(1);
        let endpoint = self.endpoints.get(i).cloned().context("no etcd endpoint given")?;
        let mut client = Client::connect([endpoint], None).await.context("connecting to etcd")?;
        let ttl = i64::try_from(ttl_s).unwrap_or(i64::MAX);
        let lease = client.lease_grant(ttl, None).await?.id();
        let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
        let alive = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&alive);
        let keepalive = tokio::spawn(async move {
            let every = Duration::from_secs(ttl_s.max(1)) / 3;
            loop {
                let renewed = match keeper.keep_alive().await {
                    Ok(()) => matches!(responses.message().await, Ok(Some(r)) if r.ttl() > 0),
                    Err(_) => false,
                };
                if !renewed {
                    flag.store(false, Ordering::Relaxed);
                    return;
                }
                tokio::time::sleep(every).await;
            }
        });
        Ok(EtcdWorker { client, lease, alive, keepalive, held: HashMap::new() })
    }
}

impl Worker for EtcdWorker {
    async fn acquire(&mut self, path: &str) -> Result<u64> {
        let options = LockOptions::new().with_lease(self.lease);
        let response = self.client.lock(path, Some(options)).await?;
        let token = response.header().map_or(0, |h| h.revision());
        self.held.insert(path.to_owned(), response.key().to_vec());
        Ok(u64::try_from(token).unwrap_or(0))
    }

    async fn release(&mut self, path: &str) -> Result<()> {
        let key = self.held.remove(path).with_context(|| format!("{path} is not held"))?;
        self.client.unlock(key).await?;
        Ok(())
    }

    async fn put(&mut self, key: &str, value: Vec<u8>) -> Result<()> {
        self.client.put(key, value, None).await?;
        Ok(())
    }

    async fn get(&mut self, key: &str, linearizable: bool) -> Result<Option<Vec<u8>>> {
        let options = (!linearizable).then(|| GetOptions::new().with_serializable());
        let response = self.client.get(key, options).await?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn watch(&mut self, prefix: &str) -> Result<BoxStream<'static, Result<Vec<u8>>>> {
        let stream = self.client.watch(prefix, Some(WatchOptions::new().with_prefix())).await?;
        let values = stream.flat_map(|response| {
            let values: Vec<Result<Vec<u8>>> = match response {
                Ok(response) => response
                    .events()
                    .iter()
                    .filter_map(|e| e.kv().map(|kv| Ok(kv.value().to_vec())))
                    .collect(),
                Err(e) => vec![Err(e.into())],
            };
            futures::stream::iter(values)
        });
        Ok(values.boxed())
    }

    fn alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    async fn close(mut self) {
        self.keepalive.abort();
        self.client.lease_revoke(self.lease).await.ok();
    }
}
