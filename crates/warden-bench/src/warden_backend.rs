//! The warden adapter: the Rust client, a session per worker, server-side lock waits.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use warden_client::{Client, ClientError, Consistency, LockGuard, Scope, Session};
use warden_core::CreateMode;

use crate::backend::{Backend, Worker};

/// A warden cluster.
pub(crate) struct Warden {
    endpoints: Vec<String>,
}

impl Warden {
    pub(crate) fn new(endpoints: Vec<String>) -> Warden {
        Warden { endpoints }
    }
}

/// One warden client with its own connection and session.
pub(crate) struct WardenWorker {
    client: Client,
    session: Session,
    held: HashMap<String, LockGuard>,
}

impl Backend for Warden {
    type Worker = WardenWorker;

    async fn prepare(&self, paths: &[&str]) -> Result<()> {
        let client = Client::new(self.endpoints.clone())?;
        for path in paths {
            match client.create(path, Vec::new(), CreateMode::PERSISTENT).await {
                Ok(_) => {}
                Err(e) if e.code() == Some(tonic::Code::AlreadyExists) => {}
                Err(e) => return Err(e).with_context(|| format!("creating {path}")),
            }
        }
        Ok(())
    }

    fn exact_watch(&self) -> bool {
        true
    }

    async fn worker(&self, ttl_s: u64) -> Result<WardenWorker> {
        let client = Client::new(self.endpoints.clone())?;
        let session = client.open_session(Duration::from_secs(ttl_s)).await?;
        Ok(WardenWorker { client, session, held: HashMap::new() })
    }
}

impl Worker for WardenWorker {
    async fn acquire(&mut self, path: &str) -> Result<u64> {
        let guard = self.client.mutex(&self.session, path).acquire().await?;
        let token = guard.token();
        self.held.insert(path.to_owned(), guard);
        Ok(token)
    }

    async fn release(&mut self, path: &str) -> Result<()> {
        let guard = self.held.remove(path).with_context(|| format!("{path} is not held"))?;
        guard.release().await?;
        Ok(())
    }

    async fn put(&mut self, key: &str, value: Vec<u8>) -> Result<()> {
        self.client.put(key, value).await?;
        Ok(())
    }

    async fn get(&mut self, key: &str, linearizable: bool) -> Result<Option<Vec<u8>>> {
        let consistency =
            if linearizable { Consistency::Linearizable } else { Consistency::Serializable };
        match self.client.get_with(key, consistency).await {
            Ok(node) => Ok(Some(node.data.to_vec())),
            Err(ClientError::Server { code: tonic::Code::NotFound, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn watch(&mut self, prefix: &str) -> Result<BoxStream<'static, Result<Vec<u8>>>> {
        let watcher = self.client.watch(prefix, Scope::Prefix, 0, false).await?;
        let stream = futures::stream::unfold(watcher, |mut watcher| async move {
            let batch = watcher.next().await;
            Some((batch, watcher))
        })
        .flat_map(|batch| {
            let values: Vec<Result<Vec<u8>>> = match batch {
                Ok(batch) => batch
                    .events
                    .into_iter()
                    .filter_map(|e| e.data.map(|d| Ok(d.to_vec())))
                    .collect(),
                Err(e) => vec![Err(e.into())],
            };
            futures::stream::iter(values)
        });
        Ok(stream.boxed())
    }

    fn alive(&self) -> bool {
        self.session.state() != warden_client::SessionState::Lost
    }

    async fn close(self) {
        drop(self.held);
        self.session.close().await.ok();
    }
}
