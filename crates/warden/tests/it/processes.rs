//! A cluster of `warden server` processes on loopback, each with its own config file.
//! [`ProcessCluster::start_tls_if_asked`] runs it with mutual TLS under `WARDEN_TEST_TLS=1`
//! (see `warden_testkit::tls`); [`ProcessCluster::client`] and
//! [`ProcessCluster::cli_args`] then carry the client certificate `alice`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use warden_client::Client;

use warden_testkit::members::{config_toml, loopback_ports};
use warden_testkit::tls::DevPki;

pub struct ProcessCluster {
    pub dir: TempDir,
    pub clients: Vec<String>,
    children: Vec<Option<Child>>,
    /// The certificates, when the members run with mutual TLS.
    pki: Option<DevPki>,
}

impl ProcessCluster {
    /// Writes `n` config files (fast elections) and starts every member.
    pub fn start(n: usize) -> ProcessCluster {
        ProcessCluster::start_with(n, TempDir::new().unwrap(), |_| String::new())
    }

    /// As [`ProcessCluster::start`], with mutual TLS on both ports when `WARDEN_TEST_TLS=1`
    /// (for the tests that reach the members only through [`ProcessCluster::client`] and
    /// [`ProcessCluster::cli_args`]).
    pub fn start_tls_if_asked(n: usize) -> ProcessCluster {
        if !warden_testkit::tls::requested() {
            return ProcessCluster::start(n);
        }
        let dir = TempDir::new().unwrap();
        let binary = Path::new(env!("CARGO_BIN_EXE_warden"));
        let pki = DevPki::issue(binary, &dir.path().join("certs"), n, "alice").unwrap();
        let mut cluster = ProcessCluster::start_with(n, dir, |id| pki.member_table(id));
        cluster.pki = Some(pki);
        cluster
    }

    /// As [`ProcessCluster::start`] in `dir`, with `extra(id)` added to member id's config
    /// (after its top-level keys: a table such as `[tls]` fits).
    pub fn start_with(n: usize, dir: TempDir, extra: impl Fn(usize) -> String) -> ProcessCluster {
        let mut cluster = ProcessCluster::configure(n, dir, extra);
        for id in 1..=n {
            cluster.spawn(id);
        }
        cluster
    }

    /// As [`ProcessCluster::start_with`], without starting anyone: the configs are written,
    /// and [`ProcessCluster::spawn`] starts each member (after its data directory is
    /// prepared, as `warden snapshot restore` does).
    pub fn configure(n: usize, dir: TempDir, extra: impl Fn(usize) -> String) -> ProcessCluster {
        let ports = loopback_ports(n);
        let timing = "heartbeat_ms = 50\nelection_timeout_ms = 400\n";
        for id in 1..=n {
            let config = config_toml(&ports, id, dir.path(), &format!("{timing}{}", extra(id)));
            std::fs::write(Self::config_path(dir.path(), id), config).unwrap();
        }
        let clients = ports.iter().map(|(c, _, _)| format!("127.0.0.1:{c}")).collect();
        let children = (0..n).map(|_| None).collect();
        ProcessCluster { dir, clients, children, pki: None }
    }

    fn config_path(dir: &Path, id: usize) -> PathBuf {
        dir.join(format!("node{id}.toml"))
    }

    /// Member `id`'s config file.
    pub fn config_file(&self, id: usize) -> PathBuf {
        Self::config_path(self.dir.path(), id)
    }

    /// Starts member `id` (from 1), appending its log to `nodeN.log`.
    pub fn spawn(&mut self, id: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{id}.log")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("server")
            .arg("--config")
            .arg(Self::config_path(self.dir.path(), id))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[id - 1] = Some(child);
    }

    /// Stops member `id` cleanly (SIGINT, as Ctrl-C) and waits for it (at most 20 s).
    pub fn stop(&mut self, id: usize) {
        self.stop_with(id, "INT");
    }

    /// Sends `signal` to member `id` and waits for it to exit (at most 20 s); its exit
    /// status, None if it was not running.
    pub fn stop_with(&mut self, id: usize, signal: &str) -> Option<std::process::ExitStatus> {
        let mut child = self.children[id - 1].take()?;
        let pid = child.id().to_string();
        Command::new("kill").args([format!("-{signal}"), pid]).status().unwrap();
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            assert!(started.elapsed() < Duration::from_secs(20), "member {id} did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What member `id` logged so far.
    pub fn log(&self, id: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{id}.log"))).unwrap_or_default()
    }

    /// SIGKILLs member `id`.
    pub fn kill9(&mut self, id: usize) {
        if let Some(mut child) = self.children[id - 1].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The process id of member `id`.
    pub fn pid(&self, id: usize) -> u32 {
        self.children[id - 1].as_ref().expect("member is running").id()
    }

    /// Sends a signal (`STOP`, `CONT`) to member `id`.
    pub fn signal(&self, id: usize, signal: &str) {
        let pid = self.children[id - 1].as_ref().expect("member is running").id();
        let sent =
            Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    /// A client of every member (presenting `alice`'s certificate under TLS).
    pub fn client(&self) -> Client {
        match &self.pki {
            None => Client::new(self.clients.clone()).unwrap(),
            Some(pki) => Client::with_tls(self.clients.clone(), &pki.client_files()).unwrap(),
        }
    }

    /// The CLI's options to reach every member: `--endpoints`, and under TLS `--cacert`,
    /// `--cert` and `--key` (`alice`'s).
    pub fn cli_args(&self) -> Vec<String> {
        self.cli_args_to(&self.clients.join(","))
    }

    /// As [`ProcessCluster::cli_args`], with `endpoints` for `--endpoints`.
    pub fn cli_args_to(&self, endpoints: &str) -> Vec<String> {
        let mut args = vec!["--endpoints".to_owned(), endpoints.to_owned()];
        if let Some(pki) = &self.pki {
            let files = pki.client_files();
            let shown = |p: &Path| p.display().to_string();
            args.extend(["--cacert".to_owned(), shown(&files.ca)]);
            if let (Some(cert), Some(key)) = (&files.cert, &files.key) {
                args.extend(["--cert".to_owned(), shown(cert), "--key".to_owned(), shown(key)]);
            }
        }
        args
    }

    /// The current leader's id, asking until one answers.
    pub async fn leader(&self) -> u64 {
        let client = self.client();
        for _ in 0..200 {
            if let Ok(status) = client.status().await
                && status.leader_id != 0
            {
                return status.leader_id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader; logs in {}", self.dir.path().display());
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for id in 1..=self.children.len() {
            self.kill9(id);
        }
    }
}

/// The session holding the lock at `path`, once there is one (at most 10 s).
pub async fn wait_for_holder(client: &warden_client::Client, path: &str) -> u64 {
    let started = std::time::Instant::now();
    loop {
        if let Ok(status) = client.lock_status(path).await
            && let Some(w) = status.holders.first()
        {
            return w.session_id;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "nobody holds {path}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The exit code and stderr of `child` (a `warden lock`), once it exits; kills it and fails
/// the test if that takes longer than `limit`.
pub async fn exit_within(child: &mut Child, limit: Duration) -> (Option<i32>, String) {
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().ok();
            panic!("warden did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    }
    (status.code(), err)
}

/// What a finished `warden` process left: its exit code, output and how long it ran.
pub struct Finished {
    pub code: Option<i32>,
    pub out: String,
    pub err: String,
    pub elapsed: Duration,
}

/// Runs `warden args...` with `stdin` as its standard input (none: empty), waiting at most
/// `limit`: a CLI that hangs is killed and fails the test.
pub fn run_warden(args: &[&str], stdin: Option<&[u8]>, limit: Duration) -> Finished {
    use std::io::{Read, Write};

    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_vec();
        std::thread::spawn(move || pipe.write_all(&input).ok());
    }
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            pipe.read_to_end(&mut text).ok();
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!("warden {args:?} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = started.elapsed();
    Finished { code: status.code(), out: out.join().unwrap(), err: err.join().unwrap(), elapsed }
}

/// Waits until the lock at `path` has `n` holders and waiters (at most 10 s).
pub async fn wait_for_queue(client: &Client, path: &str, n: usize) {
    let started = std::time::Instant::now();
    let queued = |s: warden_client::LockStatus| s.holders.len() + s.waiters.len();
    while client.lock_status(path).await.map(queued).unwrap_or(0) < n {
        assert!(started.elapsed() < Duration::from_secs(10), "{path} never had {n} in its queue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
