//! Real member processes (`warden server`) for the fault suite, with a proxy on every
//! directed peer link: member i reaches member j through proxy (i, j) (its config's
//! `peer_routes`), so one direction of one link can be cut. With TLS on (see
//! [`crate::tls`]) the proxies pass the members' mutual TLS through untouched.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::proxy::Proxy;
use crate::tls::DevPki;

/// The members and their links. Members are numbered from 1.
pub struct Members {
    binary: PathBuf,
    dir: PathBuf,
    client_ports: Vec<u16>,
    proxies: BTreeMap<(usize, usize), Proxy>,
    children: Vec<Option<Child>>,
    paused: Vec<bool>,
    /// The certificates, when the members run with TLS.
    pki: Option<DevPki>,
}

/// The loopback ports of one member: clients, peers, HTTP.
pub type Ports = (u16, u16, u16);

/// Free ports for `n` members.
pub fn loopback_ports(n: usize) -> Vec<Ports> {
    (0..n).map(|_| (crate::free_port(), crate::free_port(), crate::free_port())).collect()
}

/// The config file (TOML) of member `id` (from 1) of the loopback cluster on `ports`, its
/// data under `dir/nodeN`, with `extra` appended (timing, peer routes).
pub fn config_toml(ports: &[Ports], id: usize, dir: &Path, extra: &str) -> String {
    let members: String = ports
        .iter()
        .enumerate()
        .map(|(i, (c, p, _))| {
            format!(
                "[[initial_members]]\nid = {}\npeer_addr = \"127.0.0.1:{p}\"\nclient_addr = \"127.0.0.1:{c}\"\n\n",
                i + 1
            )
        })
        .collect();
    let (c, p, h) = ports[id - 1];
    format!(
        "node_id = {id}\nclient_addr = \"127.0.0.1:{c}\"\npeer_addr = \"127.0.0.1:{p}\"\nhttp_addr = \"127.0.0.1:{h}\"\n\
         data_dir = \"{data}\"\n{extra}\n{members}",
        data = dir.join(format!("node{id}")).display(),
    )
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to `pid`.
fn signal(pid: u32, signal: &str) {
    Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().ok();
}

impl Members {
    /// Writes the configs of `n` members under `dir` and starts them all, with the given
    /// heartbeat and election timeout (ms). With `tls`, certificates are issued into
    /// `dir/certs` first and every member requires mutual TLS of clients and peers.
    pub async fn start(
        binary: &Path,
        n: usize,
        dir: &Path,
        heartbeat_ms: u64,
        election_timeout_ms: u64,
        tls: bool,
    ) -> std::io::Result<Members> {
        let pki = if tls {
            Some(DevPki::issue(binary, &dir.join("certs"), n, "fault-suite")?)
        } else {
            None
        };
        let ports = loopback_ports(n);
        let mut proxies = BTreeMap::new();
        for from in 1..=n {
            for to in (1..=n).filter(|to| *to != from) {
                let upstream = SocketAddr::from(([127, 0, 0, 1], ports[to - 1].1));
                proxies.insert((from, to), Proxy::start(upstream).await?);
            }
        }
        for id in 1..=n {
            let routes: String = proxies
                .iter()
                .filter(|((from, _), _)| *from == id)
                .map(|((_, to), proxy)| {
                    format!("\n[[peer_routes]]\nid = {to}\naddr = \"{}\"\n", proxy.addr())
                })
                .collect();
            let tls = pki.as_ref().map(|p| p.member_table(id)).unwrap_or_default();
            let extra = format!(
                "heartbeat_ms = {heartbeat_ms}\nelection_timeout_ms = {election_timeout_ms}\n{routes}{tls}"
            );
            std::fs::write(
                dir.join(format!("node{id}.toml")),
                config_toml(&ports, id, dir, &extra),
            )?;
        }
        let mut started = Members {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            client_ports: ports.iter().map(|(c, _, _)| *c).collect(),
            proxies,
            children: (0..n).map(|_| None).collect(),
            paused: vec![false; n],
            pki,
        };
        for id in 1..=n {
            started.spawn(id)?;
        }
        Ok(started)
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// The client endpoints, member 1 first.
    pub fn endpoints(&self) -> Vec<String> {
        self.client_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
    }

    /// The files a client needs to reach the members, when they run with TLS.
    pub fn client_tls(&self) -> Option<warden_client::TlsFiles> {
        self.pki.as_ref().map(DevPki::client_files)
    }

    /// Where the members' logs are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts member `id` (again), appending to its log.
    pub fn spawn(&mut self, id: usize) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node{id}.log")))?;
        let child = Command::new(&self.binary)
            .arg("server")
            .arg("--config")
            .arg(self.dir.join(format!("node{id}.toml")))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.children[id - 1] = Some(child);
        self.paused[id - 1] = false;
        Ok(())
    }

    /// SIGKILLs member `id` (resuming it first if paused, so it dies now).
    pub fn kill9(&mut self, id: usize) {
        if let Some(mut child) = self.children[id - 1].take() {
            child.kill().ok();
            if self.paused[id - 1] {
                signal(child.id(), "CONT");
            }
            child.wait().ok();
        }
        self.paused[id - 1] = false;
    }

    /// Whether member `id` is running (not killed; it may be paused).
    pub fn is_running(&self, id: usize) -> bool {
        self.children[id - 1].is_some()
    }

    /// SIGSTOPs member `id`.
    pub fn pause(&mut self, id: usize) {
        if let Some(child) = &self.children[id - 1] {
            signal(child.id(), "STOP");
            self.paused[id - 1] = true;
        }
    }

    /// SIGCONTs member `id`.
    pub fn resume(&mut self, id: usize) {
        if let Some(child) = &self.children[id - 1] {
            signal(child.id(), "CONT");
        }
        self.paused[id - 1] = false;
    }

    /// Cuts the link from `from` to `to` (one direction).
    pub fn cut(&self, from: usize, to: usize) {
        if let Some(p) = self.proxies.get(&(from, to)) {
            p.cut();
        }
    }

    /// Cuts every link to and from `id`.
    pub fn isolate(&self, id: usize) {
        for ((from, to), p) in &self.proxies {
            if *from == id || *to == id {
                p.cut();
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        for p in self.proxies.values() {
            p.heal();
        }
    }

    /// Resumes paused members, heals links and starts killed members.
    pub fn restore(&mut self) -> std::io::Result<()> {
        self.heal();
        for id in 1..=self.len() {
            if self.paused[id - 1] {
                self.resume(id);
            }
            if !self.is_running(id) {
                self.spawn(id)?;
            }
        }
        Ok(())
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for id in 1..=self.len() {
            self.kill9(id);
        }
    }
}
