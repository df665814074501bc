//! ZooKeeper through `zookeeper-client`: a session per worker, locks by the standard
//! ephemeral-sequential recipe (create `lock-` sequential under the lock's node, hold if
//! lowest, else watch the next lower one and look again), reads with and without `sync`,
//! and a persistent recursive watch whose notifications are followed by a read.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use futures::stream::BoxStream;
use zookeeper_client::{Acls, AddWatchMode, Client, CreateMode, Error, EventType};

use crate::backend::{Backend, Worker};

/// A ZooKeeper ensemble.
pub(crate) struct ZooKeeper {
    cluster: String,
}

impl ZooKeeper {
    pub(crate) fn new(endpoints: Vec<String>) -> ZooKeeper {
        ZooKeeper { cluster: endpoints.join(",") }
    }
}

/// One ZooKeeper client (session).
pub(crate) struct ZkWorker {
    client: Client,
    /// The lock node held, by lock path.
    held: HashMap<String, String>,
}

/// Creates `path` as a persistent node if it is missing.
async fn ensure(client: &Client, path: &str) -> Result<()> {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    match client.create(path, &[], &options).await {
        Ok(_) | Err(Error::NodeExists) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {path}")),
    }
}

impl Backend for ZooKeeper {
    type Worker = ZkWorker;

    async fn prepare(&self, paths: &[&str]) -> Result<()> {
        let client = Client::connect(&self.cluster).await.context("connecting to ZooKeeper")?;
        for path in paths {
            ensure(&client, path).await?;
        }
        Ok(())
    }

    fn exact_watch(&self) -> bool {
        // A notification carries no data: the read after it may skip values.
        false
    }

    async fn worker(&self, ttl_s: u64) -> Result<ZkWorker> {
        let client = Client::connector()
            .with_session_timeout(Duration::from_secs(ttl_s))
            .connect(&self.cluster)
            .await
            .context("connecting to ZooKeeper")?;
        Ok(ZkWorker { client, held: HashMap::new() })
    }
}

impl Worker for ZkWorker {
    async fn acquire(&mut self, path: &str) -> Result<u64> {
        let options = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
        let prefix = format!("{path}/lock-");
        let (stat, sequence) = match self.client.create(&prefix, &[], &options).await {
            Err(Error::NoNode) => {
                ensure(&self.client, path).await?;
                self.client.create(&prefix, &[], &options).await?
            }
            other => other?,
        };
        let mine = format!("lock-{sequence}");
        loop {
            let mut children = self.client.list_children(path).await?;
            children.sort_unstable();
            let Some(at) = children.iter().position(|c| *c == mine) else {
                bail!("our lock node {path}/{mine} is gone (session expired?)");
            };
            if at == 0 {
                break;
            }
            let before = format!("{path}/{}", children[at - 1]);
            // Wait for the next lower node to go (or look again if it already has).
            if let (Some(_), watcher) = self.client.check_and_watch_stat(&before).await? {
                watcher.changed().await;
            }
        }
        self.held.insert(path.to_owned(), format!("{path}/{mine}"));
        Ok(u64::try_from(stat.czxid).unwrap_or(0))
    }

    async fn release(&mut self, path: &str) -> Result<()> {
        let node = self.held.remove(path).with_context(|| format!("{path} is not held"))?;
        self.client.delete(&node, None).await?;
        Ok(())
    }

    async fn put(&mut self, key: &str, value: Vec<u8>) -> Result<()> {
        match self.client.set_data(key, &value, None).await {
            Ok(_) => Ok(()),
            Err(Error::NoNode) => {
                let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
                match self.client.create(key, &value, &options).await {
                    Ok(_) => Ok(()),
                    Err(Error::NodeExists) => {
                        self.client.set_data(key, &value, None).await?;
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get(&mut self, key: &str, linearizable: bool) -> Result<Option<Vec<u8>>> {
        if linearizable {
            // ZooKeeper's strongest read: sync with the leader, then read.
            self.client.sync(key).await?;
        }
        match self.client.get_data(key).await {
            Ok((data, _)) => Ok(Some(data)),
            Err(Error::NoNode) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn watch(&mut self, prefix: &str) -> Result<BoxStream<'static, Result<Vec<u8>>>> {
        let watcher = self.client.watch(prefix, AddWatchMode::PersistentRecursive).await?;
        let client = self.client.clone();
        let stream =
            futures::stream::unfold((watcher, client), |(mut watcher, client)| async move {
                loop {
                    let event = watcher.changed().await;
                    if event.event_type == EventType::Session && event.session_state.is_terminated()
                    {
                        return None;
                    }
                    if matches!(
                        event.event_type,
                        EventType::NodeCreated | EventType::NodeDataChanged
                    ) {
                        let read = client.get_data(&event.path).await;
                        let item = read.map(|(data, _)| data).map_err(anyhow::Error::from);
                        return Some((item, (watcher, client)));
                    }
                }
            });
        Ok(stream.boxed())
    }

    fn alive(&self) -> bool {
        !self.client.state().is_terminated()
    }

    async fn close(self) {
        drop(self.client);
    }
}
