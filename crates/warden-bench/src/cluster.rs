//! A 3-member warden cluster on loopback for the benchmark, as child processes of this
//! binary (`warden-bench serve --config FILE` runs one member), so a release build of the
//! bench measures a release build of the server with nothing else to build.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use warden_testkit::members::{config_toml, loopback_ports};

/// The running members; killed when dropped.
pub(crate) struct LocalCluster {
    /// The members' data and logs; taken (kept on disk) if a member failed.
    dir: Option<TempDir>,
    /// Client endpoints, member 1 first.
    pub(crate) endpoints: Vec<String>,
    children: Vec<Child>,
}

impl LocalCluster {
    /// Starts `n` members with the default timing, data in a temporary folder.
    pub(crate) fn start(n: usize) -> Result<LocalCluster> {
        let dir = tempfile::Builder::new().prefix("warden-bench-").tempdir()?;
        let ports = loopback_ports(n);
        let exe = std::env::current_exe().context("cannot find this binary to start members")?;
        let mut children = Vec::new();
        for id in 1..=n {
            let config = config_toml(&ports, id, dir.path(), "");
            let path = config_path(dir.path(), id);
            std::fs::write(&path, config)?;
            let log = std::fs::File::create(dir.path().join(format!("node{id}.log")))?;
            let child = Command::new(&exe)
                .arg("serve")
                .arg("--config")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("cannot start a member")?;
            children.push(child);
        }
        let endpoints = ports.iter().map(|(c, _, _)| format!("127.0.0.1:{c}")).collect();
        Ok(LocalCluster { dir: Some(dir), endpoints, children })
    }

    /// The members' process ids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Waits (at most 30 s) until a leader has committed a write.
    pub(crate) async fn ready(&self) -> Result<()> {
        let client = warden_client::Client::new(self.endpoints.clone())?;
        for _ in 0..300 {
            if client.put("/.bench-ready", "x").await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let logs = self.dir.as_ref().map(|d| d.path().display().to_string()).unwrap_or_default();
        bail!("the local cluster did not elect a leader; logs in {logs}")
    }
}

fn config_path(dir: &Path, id: usize) -> PathBuf {
    dir.join(format!("node{id}.toml"))
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // A member that exited on its own failed: keep the logs for whoever looks.
        let failed = self.children.iter_mut().any(|c| matches!(c.try_wait(), Ok(Some(_))));
        for child in &mut self.children {
            child.kill().ok();
            child.wait().ok();
        }
        if failed && let Some(dir) = self.dir.take() {
            let kept = dir.keep();
            tracing::error!(logs = %kept.display(), "a member exited during the run; its logs are kept");
        }
    }
}
