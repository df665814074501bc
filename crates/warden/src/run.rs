//! Running nodes: `warden server` (one node from a config file) and `warden dev` (a local
//! cluster in this process, data in a temporary folder).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tracing::{error, info, warn};
use warden_server::{Config, Faults, MemberConfig, Node};

/// Reads a config file: TOML, unknown keys refused.
pub(crate) fn load_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let config: Config =
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
    config.validate().with_context(|| format!("in config file {}", path.display()))?;
    Ok(config)
}

/// Runs one node until Ctrl-C (clean stop) or a fatal raft error (exit with it).
pub(crate) async fn server(config: Config) -> Result<()> {
    let node = Node::start(config, Faults::default()).await?;
    let outcome = tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("cannot listen for Ctrl-C").map(|()| None),
        reason = node.stopped() => Ok(Some(reason)),
    };
    node.shutdown().await;
    match outcome? {
        None => Ok(()),
        Some(reason) => {
            error!(%reason, "raft stopped");
            bail!("raft stopped: {reason}")
        }
    }
}

/// The config of member `i` (from 1) of a local cluster of `n`.
pub(crate) fn dev_config(i: u16, n: u16, base_port: u16, data: &Path) -> Result<Config> {
    let port = |i: u16, offset: u16| -> Result<u16> {
        base_port
            .checked_add((i - 1) * 10 + offset)
            .with_context(|| format!("--base-port {base_port} leaves no room for {n} members"))
    };
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let mut members = Vec::new();
    for j in 1..=n {
        members.push(MemberConfig {
            id: u64::from(j),
            peer_addr: addr(port(j, 1)?).to_string(),
            client_addr: addr(port(j, 0)?).to_string(),
            identity: None,
        });
    }
    Ok(Config {
        node_id: u64::from(i),
        client_addr: addr(port(i, 0)?),
        peer_addr: addr(port(i, 1)?),
        http_addr: addr(port(i, 2)?),
        data_dir: data.join(format!("node{i}")),
        initial_members: members,
        ..Config::default()
    })
}

/// Runs an n-member cluster in this process until Ctrl-C.
pub(crate) async fn dev(n: u16, base_port: u16) -> Result<()> {
    if n == 0 {
        bail!("--nodes must be at least 1");
    }
    let data = tempfile::Builder::new()
        .prefix("warden-dev-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    let mut nodes = Vec::new();
    for i in 1..=n {
        nodes
            .push(Node::start(dev_config(i, n, base_port, data.path())?, Faults::default()).await?);
    }
    let endpoints: Vec<String> = nodes.iter().map(|n| n.client_addr().to_string()).collect();
    // One write, and a closed stdout (`warden dev | head -2`) must not stop the cluster.
    let banner = format!(
        "warden dev: {n} member(s), data in {}\nendpoints: {}\ntry: warden --endpoints {} put /hello world\nCtrl-C stops the cluster and deletes its data.\n",
        data.path().display(),
        endpoints.join(","),
        endpoints.join(","),
    );
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush()).is_err() {
        warn!("cannot print the endpoints: stdout is closed");
    }
    drop(stdout);
    info!(members = n, "dev cluster running");
    // A member whose raft stopped (a storage failure) stops the whole dev cluster: its
    // replica is no longer trustworthy, and a partial cluster would hide the failure.
    let stopped = futures::future::select_all(nodes.iter().map(|n| Box::pin(n.stopped())));
    let outcome = tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("cannot listen for Ctrl-C").map(|()| None),
        (reason, index, _) = stopped => Ok(Some(format!("member {} stopped: {reason}", index + 1))),
    };
    for node in nodes {
        node.shutdown().await;
    }
    match outcome? {
        None => Ok(()),
        Some(reason) => {
            error!(%reason, "dev cluster stopped");
            bail!(reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configs_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        for name in ["single.toml", "node1.toml", "node2.toml", "node3.toml"] {
            let config = load_config(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(config.client_addr.ip().to_string(), "127.0.0.1", "{name}");
        }
        let single = load_config(&dir.join("single.toml")).ok();
        let defaults = Config { data_dir: "./warden-data/single".into(), ..Config::default() };
        assert_eq!(single, Some(defaults), "single.toml spells out the defaults");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "node_id = 1\nclent_addr = \"127.0.0.1:1\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let error =
            format!("{:#}", load_config(&path).err().map(|e| e.to_string()).unwrap_or_default());
        assert!(error.contains("invalid config file"), "{error}");
        std::fs::write(&path, "node_id = 0\n").unwrap_or_else(|e| panic!("{e}"));
        let error = load_config(&path).err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(error.contains("node_id must be a positive integer"), "{error}");
    }

    #[test]
    fn dev_members_use_ports_ten_apart() {
        let config = dev_config(2, 3, 7400, Path::new("/tmp/x")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.client_addr.port(), 7410);
        assert_eq!(config.peer_addr.port(), 7411);
        assert_eq!(config.initial_members.len(), 3);
        assert!(dev_config(3, 3, 65_530, Path::new("/tmp/x")).is_err());
    }
}
