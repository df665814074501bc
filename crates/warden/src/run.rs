//! Running nodes: `warden server` (one node from a config file) and `warden dev` (a local
//! cluster in this process, data in a temporary folder).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tracing::{error, info, warn};
use warden_server::{AclConfig, Config, Faults, MemberConfig, Node, TlsConfig};

/// Reads a config file: TOML, unknown keys refused.
pub(crate) fn load_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let config: Config =
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
    config.validate().with_context(|| format!("in config file {}", path.display()))?;
    Ok(config)
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, which systemd, Docker and Kubernetes send to
/// stop a service: both stop the member cleanly.
async fn stop_requested() -> Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("cannot listen for Ctrl-C"),
        _ = terminate.recv() => {
            info!("SIGTERM: stopping");
            Ok(())
        }
    }
}

/// Runs one node until Ctrl-C or SIGTERM (clean stop) or a fatal raft error (exit with it).
pub(crate) async fn server(config: Config) -> Result<()> {
    let node = Node::start(config.clone(), Faults::default()).await?;
    let joining = async {
        if config.join.is_empty() {
            return std::future::pending().await;
        }
        match crate::join::join(&config, &node).await {
            Ok(()) => std::future::pending().await,
            Err(e) => e,
        }
    };
    let outcome = tokio::select! {
        stop = stop_requested() => stop.map(|()| None),
        reason = node.stopped() => Ok(Some(reason)),
        refused = joining => Err(refused),
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

/// The client `warden dev --secure` makes, holding every permission.
const DEV_ADMIN: &str = "admin";

/// The policy `warden dev --secure` starts with (acl/dev.toml).
const DEV_POLICY: &str = include_str!("../../../acl/dev.toml");

/// Makes member `i`'s config secure with the dev PKI in `certs`: mutual TLS on both ports,
/// the dev policy put in force at founding, and `admin` always allowed.
pub(crate) fn secure_dev_config(mut config: Config, i: u16, certs: &Path) -> Config {
    let ca = certs.join("ca.crt");
    config.tls = TlsConfig {
        cert: Some(certs.join(format!("node{i}.crt"))),
        key: Some(certs.join(format!("node{i}.key"))),
        client_ca: Some(ca.clone()),
        peer_ca: Some(ca),
    };
    config.acl =
        AclConfig { file: Some(certs.join("acl.toml")), admins: vec![DEV_ADMIN.to_owned()] };
    config
}

/// The dev PKI in `dir` for `n` members and the client `admin`, made if the folder has no
/// CA; and the dev policy beside it, written if missing.
fn dev_certs(dir: &Path, n: u16) -> Result<()> {
    if !dir.join("ca.crt").exists() {
        crate::certs::dev(dir, n, &[DEV_ADMIN.to_owned()], &[], crate::certs::Existing::Refuse)?;
    }
    let mut wanted: Vec<String> = (1..=n).map(|i| format!("node{i}")).collect();
    wanted.push(DEV_ADMIN.to_owned());
    for name in wanted {
        for ext in ["crt", "key"] {
            let file = dir.join(format!("{name}.{ext}"));
            if !file.exists() {
                bail!(
                    "{} is missing from the certificates in {}; use another --certs folder (an empty one is filled), or make them with `warden certs dev --out {} --nodes {n} --client {DEV_ADMIN} --force`",
                    file.display(),
                    dir.display(),
                    dir.display()
                );
            }
        }
    }
    let policy = dir.join("acl.toml");
    if !policy.exists() {
        std::fs::write(&policy, DEV_POLICY)
            .with_context(|| format!("cannot write {}", policy.display()))?;
    }
    Ok(())
}

/// Runs an n-member cluster in this process until Ctrl-C; secure (mutual TLS, ACLs) with
/// the certificates in `certs`, if given.
pub(crate) async fn dev(n: u16, base_port: u16, certs: Option<&Path>) -> Result<()> {
    if n == 0 {
        bail!("--nodes must be at least 1");
    }
    if let Some(dir) = certs {
        dev_certs(dir, n)?;
    }
    let data = tempfile::Builder::new()
        .prefix("warden-dev-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    let mut nodes = Vec::new();
    for i in 1..=n {
        let mut config = dev_config(i, n, base_port, data.path())?;
        if let Some(dir) = certs {
            config = secure_dev_config(config, i, dir);
        }
        nodes.push(Node::start(config, Faults::default()).await?);
    }
    let endpoints: Vec<String> = nodes.iter().map(|n| n.client_addr().to_string()).collect();
    // With --secure the HTTP port is HTTPS and wants a client certificate, as the client port.
    let scheme = if certs.is_some() { "https" } else { "http" };
    let health: Vec<String> =
        nodes.iter().map(|n| format!("{scheme}://{}/health", n.http_addr())).collect();
    let client_flags = match certs {
        None => String::new(),
        Some(dir) => {
            let dir = dir.display();
            format!(
                " --cacert {dir}/ca.crt --cert {dir}/{DEV_ADMIN}.crt --key {dir}/{DEV_ADMIN}.key"
            )
        }
    };
    let http_kind =
        if certs.is_some() { "HTTPS, client certificate required" } else { "plain HTTP" };
    let secure = match certs {
        None => String::new(),
        Some(dir) => format!(
            "secure: mutual TLS with the certificates in {dir}, ACLs on ({dir}/acl.toml): only {DEV_ADMIN} may do anything\n",
            dir = dir.display()
        ),
    };
    // One write, and a closed stdout (`warden dev | head -2`) must not stop the cluster.
    let banner = format!(
        "warden dev: {n} member(s), data in {}\nendpoints: {}\nhttp: {} ({http_kind}; each also serves /health/live, /metrics, /cluster/status and the REST API under /v1/)\n{secure}try: warden --endpoints {}{client_flags} put /hello world\nCtrl-C stops the cluster and deletes its data.\n",
        data.path().display(),
        endpoints.join(","),
        health.join(" "),
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
        stop = stop_requested() => stop.map(|()| None),
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
        let secure = ["secure/node1.toml", "secure/node2.toml", "secure/node3.toml"];
        for name in
            ["single.toml", "node1.toml", "node2.toml", "node3.toml"].into_iter().chain(secure)
        {
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
