//! A config watcher: read a config node, then follow every change to it.
//!
//! The pattern that misses nothing: read the node (creating it with a default if it is
//! missing), and watch it from the revision after the read. Every change made after the
//! read comes through the watch, in order, even if the member serving the watch fails (the
//! client resumes on another member from where it was), and none that the read already
//! reflects comes again.
//!
//! Run it against `cargo run --release -- dev`: `cargo run --example config_watch`, then
//! change the config from another shell, e.g. `warden put /examples/config "level=debug"`,
//! or `warden rm /examples/config`. Ctrl-C stops it. (WARDEN_ENDPOINTS,
//! comma-separated, names the members; default 127.0.0.1:7400.)

#![allow(clippy::print_stdout)]

use std::ops::ControlFlow;

use anyhow::Result;
use warden_client::{Client, Code, CreateMode, EventKind, Scope};

/// The config node.
pub const CONFIG: &str = "/examples/config";

/// The config as of a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The revision of the read or of the change.
    pub revision: u64,
    /// The value; `None` while the node is deleted.
    pub value: Option<String>,
}

/// Reads the config, then watches it; calls `seen` with the value read and with every
/// change, until it returns `Break`.
pub async fn run(client: &Client, mut seen: impl FnMut(&Config) -> ControlFlow<()>) -> Result<()> {
    match client.create("/examples", "", CreateMode::PERSISTENT).await {
        Err(e) if e.code() != Some(Code::AlreadyExists) => return Err(e.into()),
        _ => {}
    }
    // The value now, and the revision the read reflects.
    let read = match client.get(CONFIG).await {
        Ok(node) => node,
        Err(e) if e.code() == Some(Code::NotFound) => {
            match client.create(CONFIG, "level=info", CreateMode::PERSISTENT).await {
                Err(e) if e.code() != Some(Code::AlreadyExists) => return Err(e.into()),
                _ => client.get(CONFIG).await?,
            }
        }
        Err(e) => return Err(e.into()),
    };
    let config = Config { revision: read.revision, value: Some(text(&read.data)) };
    println!("config at revision {}: {:?}", config.revision, config.value);
    if seen(&config).is_break() {
        return Ok(());
    }

    // Every change after the read: the watch starts at the read's revision + 1.
    let mut watcher = client.watch(CONFIG, Scope::Key, read.revision + 1, false).await?;
    loop {
        // A batch is one revision's events; the first is an empty notice.
        let batch = watcher.next().await?;
        for event in batch.events {
            let value = match event.kind {
                EventKind::Created | EventKind::Data => Some(text(&event.data.unwrap_or_default())),
                EventKind::Deleted => None,
                EventKind::Children => continue,
            };
            let config = Config { revision: event.revision, value };
            println!("config at revision {}: {:?}", config.revision, config.value);
            if seen(&config).is_break() {
                return Ok(());
            }
        }
    }
}

/// A value as text (config is text here; other bytes are shown replaced).
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The client of the members WARDEN_ENDPOINTS names (default: `warden dev`'s first member).
fn client_from_env() -> Result<Client> {
    let endpoints = std::env::var("WARDEN_ENDPOINTS").unwrap_or_else(|_| "127.0.0.1:7400".into());
    let endpoints = endpoints.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
    Ok(Client::new(endpoints.collect())?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let client = client_from_env()?;
    // Runs until Ctrl-C.
    tokio::select! {
        result = run(&client, |_| ControlFlow::Continue(())) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
