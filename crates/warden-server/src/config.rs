//! A node's configuration: typed, with defaults and a `validate` that explains what is
//! wrong. Only the binary reads files and flags; this crate takes a `Config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::ServerError;
use crate::limits::LimitsConfig;

/// One member of the initial cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// Its node id (non-zero, unique).
    pub id: u64,
    /// Its peer (raft) address, `host:port`.
    pub peer_addr: String,
    /// Its client address, `host:port`.
    pub client_addr: String,
    /// The identity its certificate names (see [`crate::identity::identity`]), checked on the raft
    /// RPCs it sends when peer TLS is on (`tls.peer_ca`); by default
    /// `spiffe://warden/member/{id}`, what `warden certs dev` issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

impl MemberConfig {
    /// The identity this member's certificate must name: [`MemberConfig::identity`], or
    /// `spiffe://warden/member/{id}`.
    pub fn expected_identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| format!("spiffe://warden/member/{}", self.id))
    }
}

/// TLS on the client and peer ports; every key is a PEM file and optional.
///
/// `cert` and `key` (this member's certificate and key) turn TLS on for clients; with
/// `client_ca` a client must present a certificate signed by it. `peer_ca` turns on mutual
/// TLS between members: the peer port asks for a certificate signed by it, whose identity
/// must be one of the members', and this member presents `cert` to its peers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// This member's certificate chain (PEM), served on both ports and presented to peers.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// The CA that signs clients' certificates; when set, clients must present one.
    pub client_ca: Option<PathBuf>,
    /// The CA that signs members' certificates; when set, peer connections are mutual TLS.
    pub peer_ca: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether the client port serves TLS.
    pub fn clients_tls(&self) -> bool {
        self.cert.is_some()
    }

    /// Whether peer connections are mutual TLS.
    pub fn peers_tls(&self) -> bool {
        self.peer_ca.is_some()
    }
}

/// Where this member sends raft traffic for one peer, instead of the address the
/// membership gives (a sidecar, a NAT, or the fault-injection suite's proxy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRoute {
    /// The peer's node id.
    pub id: u64,
    /// Where to send its raft traffic, `host:port`.
    pub addr: String,
}

/// When to snapshot and how much log to keep behind a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// Build a snapshot after this many applied entries since the last one. 100,000 by
    /// default, like etcd's `--snapshot-count` and ZooKeeper's `snapCount`: the state is
    /// persisted as it is applied, so a snapshot is only for followers too far behind, and
    /// encoding millions of nodes every few seconds costs CPU and memory for nothing.
    pub logs_since_last: u64,
    /// Entries kept in the log behind a snapshot, so a briefly lagging follower catches up
    /// from the log instead of a snapshot.
    pub keep_logs: u64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig { logs_since_last: 100_000, keep_logs: 1_000 }
    }
}

/// Everything a node needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node's id (non-zero).
    pub node_id: u64,
    /// Where clients connect (gRPC).
    pub client_addr: SocketAddr,
    /// Where peers connect (raft over gRPC).
    pub peer_addr: SocketAddr,
    /// Where the HTTP endpoints listen: `/health`, `/health/live`, `/metrics`,
    /// `/cluster/status` and the REST API under `/v1/`. HTTPS when `[tls] cert` and `key`
    /// are set (client certificates required with `tls.client_ca`), plain HTTP otherwise.
    pub http_addr: SocketAddr,
    /// Where the log, state and snapshots live.
    pub data_dir: PathBuf,
    /// The members of a new cluster; this node must be one of them. Ignored once the
    /// cluster is formed (membership then lives in the log).
    pub initial_members: Vec<MemberConfig>,
    /// Leader heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Election timeout, ms: a follower that hears no leader for a random time between
    /// half this and this starts an election, and refuses votes while it heard a leader
    /// within this (the leader lease).
    pub election_timeout_ms: u64,
    /// Snapshot policy.
    pub snapshot: SnapshotConfig,
    /// Watches: history kept for watches that start in the past, and per-watcher buffers.
    pub watch: WatchConfig,
    /// Per-peer overrides of where raft traffic goes (`[[peer_routes]]`); usually empty.
    pub peer_routes: Vec<PeerRoute>,
    /// TLS on the client and peer ports (`[tls]`); off by default.
    pub tls: TlsConfig,
    /// Access control (`[acl]`): the policy a new cluster starts with, and the identities
    /// that always hold every permission.
    pub acl: AclConfig,
    /// The audit log (`[audit]`): where, and how it is rotated.
    pub audit: AuditConfig,
    /// Limits (`[limits]`): the cluster's, taken from the founder's when it forms the
    /// cluster, and this member's own.
    pub limits: LimitsConfig,
    /// When `GET /health` says this member is ready (`[health]`).
    pub health: HealthConfig,
    /// Client addresses of members of an existing cluster to join (`warden server
    /// --join`): this member founds nothing; it asks the cluster to add it (Cluster.MemberAdd,
    /// with its `node_id`, `peer_addr` and `client_addr` as `initial_members` lists them).
    /// Empty: found the cluster of `initial_members` (if this member is the founder).
    pub join: Vec<String>,
    /// What `GET /metrics` and the status page show of locks (`[metrics]`).
    pub metrics: MetricsConfig,
    /// The cluster's data-size quota and this member's disk reserve (`[space]`).
    pub space: crate::space::SpaceConfig,
}

/// How lock statistics are grouped on `GET /metrics` (see `crate::lock_metrics`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A lock's prefix is its path's first this many segments: with 2, `/jobs/nightly/7`
    /// is counted under `/jobs/nightly`. 2 by default.
    pub lock_prefix_segments: usize,
    /// The most prefixes labelled, the busiest (by total wait); the rest are summed under
    /// `other`. 32 by default; at most 1,000.
    pub lock_prefixes: usize,
}

/// The most prefixes `[metrics] lock_prefixes` may ask for: a bound on the series.
pub const MAX_LOCK_PREFIXES: usize = 1_000;

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { lock_prefix_segments: 2, lock_prefixes: 32 }
    }
}

/// When `GET /health` answers 200 (see `crate::health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// A follower more than this many log entries behind the leader's commit index (as the
    /// leader last told it) is not ready. 1,000 by default: the entries kept behind a
    /// snapshot (`snapshot.keep_logs`), a few hundred milliseconds of a busy cluster's log
    /// (an entry carries up to 512 batched requests).
    pub max_lag_entries: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig { max_lag_entries: 1_000 }
    }
}

/// Access control settings. ACLs are on once a policy is in force (this file when the
/// cluster is founded, or `warden acl apply`); the policy itself is replicated. A member
/// with either key set denies everyone but `admins` until then, so a new cluster is never
/// open to every client while its first policy is on its way.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AclConfig {
    /// An ACL file (TOML) put in force when this member founds the cluster; ignored once
    /// the cluster is formed (use `warden acl apply` then).
    pub file: Option<PathBuf>,
    /// Identities that hold every permission whatever the policy says, to bootstrap a
    /// cluster and so that a bad policy cannot lock every operator out. Give every member
    /// the same list: each member decides with its own.
    pub admins: Vec<String>,
}

/// The smallest `audit.max_bytes` accepted.
pub const MIN_AUDIT_BYTES: u64 = 4 << 10;

/// The most rotated audit files kept.
pub const MAX_AUDIT_KEEP: usize = 1_000;

/// The audit log: one JSON line per denial, admin action and lock grant, expiry or revoke
/// (see `docs/audit.md`), in one file per member, rotated by size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The file; `<data_dir>/audit.log` when not set. A relative path is from the
    /// member's working directory.
    pub file: Option<PathBuf>,
    /// When the file would grow past this many bytes it is rotated: `audit.log` becomes
    /// `audit.log.1`, `.1` becomes `.2`, and so on. 64 MiB by default.
    pub max_bytes: u64,
    /// Rotated files kept (`audit.log.1` to `audit.log.<keep>`); the oldest beyond is
    /// deleted. 0 keeps none: the file starts over. 4 by default.
    pub keep: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { file: None, max_bytes: 64 << 20, keep: 4 }
    }
}

impl Config {
    /// Where this member writes its audit log: `audit.file`, or `<data_dir>/audit.log`.
    pub fn audit_file(&self) -> PathBuf {
        self.audit.file.clone().unwrap_or_else(|| self.data_dir.join("audit.log"))
    }
}

/// The smallest `watch.max_buffered_bytes` accepted.
pub const MIN_WATCH_BUFFERED_BYTES: usize = 64 << 10;

/// Watch history and buffers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Events kept for watches that start from a past revision (whole revisions are
    /// dropped from the front past this).
    pub history_events: usize,
    /// Responses buffered per watcher; a watcher this far behind is cancelled as too slow.
    pub buffer: usize,
    /// Bytes buffered for all watchers of this member together (event records, paths,
    /// and each revision's values once); past it, the watcher furthest behind is cancelled
    /// until the rest fit. 256 MiB by default.
    pub max_buffered_bytes: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig { history_events: 100_000, buffer: 1_024, max_buffered_bytes: 256 << 20 }
    }
}

impl Default for Config {
    fn default() -> Self {
        let client_addr = SocketAddr::from(([127, 0, 0, 1], 7400));
        let peer_addr = SocketAddr::from(([127, 0, 0, 1], 7401));
        Config {
            node_id: 1,
            client_addr,
            peer_addr,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 7402)),
            data_dir: PathBuf::from("./warden-data"),
            initial_members: vec![MemberConfig {
                id: 1,
                peer_addr: peer_addr.to_string(),
                client_addr: client_addr.to_string(),
                identity: None,
            }],
            heartbeat_ms: 100,
            election_timeout_ms: 1_000,
            snapshot: SnapshotConfig::default(),
            watch: WatchConfig::default(),
            peer_routes: Vec::new(),
            tls: TlsConfig::default(),
            acl: AclConfig::default(),
            audit: AuditConfig::default(),
            limits: LimitsConfig::default(),
            health: HealthConfig::default(),
            metrics: MetricsConfig::default(),
            join: Vec::new(),
            space: crate::space::SpaceConfig::default(),
        }
    }
}

impl Config {
    /// Checks the configuration, naming the first problem found.
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |msg: String| Err(ServerError::Config(msg));
        if self.node_id == 0 {
            return bad("node_id must be a positive integer".into());
        }
        if self.heartbeat_ms == 0 {
            return bad("heartbeat_ms must be positive".into());
        }
        if self.election_timeout_ms / 2 <= self.heartbeat_ms {
            return bad(format!(
                "election_timeout_ms ({}) must be more than twice heartbeat_ms ({}); etcd uses 1000 and 100",
                self.election_timeout_ms, self.heartbeat_ms
            ));
        }
        if self.health.max_lag_entries == 0 {
            return bad("health.max_lag_entries must be positive: a follower is always some entries behind the leader for a moment".into());
        }
        if self.metrics.lock_prefixes > MAX_LOCK_PREFIXES {
            return bad(format!(
                "metrics.lock_prefixes ({}) is above {MAX_LOCK_PREFIXES}: each prefix adds 50 series to every scrape; the default is {}",
                self.metrics.lock_prefixes,
                MetricsConfig::default().lock_prefixes
            ));
        }
        if self.snapshot.logs_since_last == 0 {
            return bad("snapshot.logs_since_last must be positive".into());
        }
        if self.watch.buffer == 0 {
            return bad("watch.buffer must be positive".into());
        }
        if self.watch.max_buffered_bytes < MIN_WATCH_BUFFERED_BYTES {
            return bad(format!(
                "watch.max_buffered_bytes ({}) is below {MIN_WATCH_BUFFERED_BYTES} (64 KiB): watchers would be cancelled for a few events; the default is {} (256 MiB)",
                self.watch.max_buffered_bytes,
                WatchConfig::default().max_buffered_bytes
            ));
        }
        if self.audit.max_bytes < MIN_AUDIT_BYTES {
            return bad(format!(
                "audit.max_bytes ({}) is below {MIN_AUDIT_BYTES} (4 KiB): the audit log would rotate every few lines; the default is {} (64 MiB)",
                self.audit.max_bytes,
                AuditConfig::default().max_bytes
            ));
        }
        if self.audit.keep > MAX_AUDIT_KEEP {
            return bad(format!(
                "audit.keep ({}) is above {MAX_AUDIT_KEEP}: keep fewer rotated files and raise audit.max_bytes instead",
                self.audit.keep
            ));
        }
        if self.audit.file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
            return bad("audit.file is empty; leave it out for <data_dir>/audit.log".into());
        }
        self.limits.validate()?;
        self.space.validate()?;
        if self.initial_members.is_empty() {
            return bad("initial_members is empty: list at least this node".into());
        }
        let mut ids: Vec<u64> = self.initial_members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return bad("initial_members lists the same id twice".into());
        }
        if ids.contains(&0) {
            return bad("initial_members has id 0; ids must be positive".into());
        }
        let Some(me) = self.initial_members.iter().find(|m| m.id == self.node_id) else {
            return bad(format!(
                "initial_members does not list this node (node_id = {})",
                self.node_id
            ));
        };
        for m in &self.initial_members {
            for (what, addr) in [("peer_addr", &m.peer_addr), ("client_addr", &m.client_addr)] {
                if addr.rsplit_once(':').and_then(|(_, port)| port.parse::<u16>().ok()).is_none() {
                    return bad(format!("member {}: {what} {addr:?} is not host:port", m.id));
                }
            }
        }
        for route in &self.peer_routes {
            if route.addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
                return bad(format!(
                    "peer_routes: {:?} for node {} is not host:port",
                    route.addr, route.id
                ));
            }
        }
        let tls = &self.tls;
        if tls.cert.is_some() != tls.key.is_some() {
            return bad("tls.cert and tls.key go together: give both (this member's certificate and its key) or neither".into());
        }
        if tls.cert.is_none() && (tls.client_ca.is_some() || tls.peer_ca.is_some()) {
            return bad("tls.client_ca and tls.peer_ca need tls.cert and tls.key: this member must present a certificate of its own".into());
        }
        if let Some(m) = self.initial_members.iter().find(|m| m.identity.as_deref() == Some("")) {
            return bad(format!(
                "member {}: identity is empty; leave it out for the default spiffe://warden/member/{}",
                m.id, m.id
            ));
        }
        if me.peer_addr.rsplit_once(':').map(|(_, p)| p) != Some(&self.peer_addr.port().to_string())
        {
            return bad(format!(
                "this node's peer_addr {} and its initial_members entry {} use different ports",
                self.peer_addr, me.peer_addr
            ));
        }
        Ok(())
    }

    /// The id of the member that founds the cluster: the smallest initial member.
    pub fn founder(&self) -> u64 {
        self.initial_members.iter().map(|m| m.id).min().unwrap_or(self.node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(c: &Config) -> String {
        c.validate().err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn default_is_a_valid_single_node() {
        assert!(Config::default().validate().is_ok());
        assert_eq!(Config::default().founder(), 1);
    }

    #[test]
    fn the_audit_log_is_in_the_data_dir_unless_placed() {
        let mut config = Config { data_dir: "/var/lib/warden".into(), ..Config::default() };
        assert_eq!(config.audit_file(), PathBuf::from("/var/lib/warden/audit.log"));
        config.audit.file = Some("/var/log/warden/audit.jsonl".into());
        assert_eq!(config.audit_file(), PathBuf::from("/var/log/warden/audit.jsonl"));
    }

    #[test]
    fn names_each_problem() {
        let ok = Config::default();
        assert!(problem(&Config { node_id: 0, ..ok.clone() }).contains("node_id"));
        assert!(
            problem(&Config { election_timeout_ms: 200, ..ok.clone() })
                .contains("more than twice heartbeat_ms")
        );
        assert!(problem(&Config { node_id: 2, ..ok.clone() }).contains("does not list this node"));
        assert!(problem(&Config { initial_members: vec![], ..ok.clone() }).contains("empty"));
        let mut twice = ok.clone();
        twice.initial_members.push(twice.initial_members[0].clone());
        assert!(problem(&twice).contains("same id twice"));
        let mut bad_addr = ok.clone();
        bad_addr.initial_members[0].client_addr = "localhost".into();
        assert!(problem(&bad_addr).contains("not host:port"));
        let mut port = ok.clone();
        port.initial_members[0].peer_addr = "127.0.0.1:9999".into();
        assert!(problem(&port).contains("different ports"));
        let mut tiny = ok.clone();
        tiny.watch.max_buffered_bytes = 1_000;
        assert!(problem(&tiny).contains("watch.max_buffered_bytes"));
        let mut half = ok.clone();
        half.tls.cert = Some("member.crt".into());
        assert!(problem(&half).contains("tls.cert and tls.key go together"));
        let mut no_own = ok.clone();
        no_own.tls.peer_ca = Some("ca.crt".into());
        assert!(problem(&no_own).contains("need tls.cert and tls.key"));
        let mut empty = ok.clone();
        empty.initial_members[0].identity = Some(String::new());
        assert!(problem(&empty).contains("identity is empty"));
        let mut small = ok.clone();
        small.audit.max_bytes = 100;
        assert!(problem(&small).contains("audit.max_bytes"));
        let mut many = ok.clone();
        many.audit.keep = MAX_AUDIT_KEEP + 1;
        assert!(problem(&many).contains("audit.keep"));
        let mut nowhere = ok.clone();
        nowhere.audit.file = Some(PathBuf::new());
        assert!(problem(&nowhere).contains("audit.file is empty"));
        let mut limits = ok.clone();
        limits.limits.max_path_depth = 0;
        assert!(problem(&limits).contains("limits.max_path_depth must be positive"));
        let mut lagless = ok.clone();
        lagless.health.max_lag_entries = 0;
        assert!(problem(&lagless).contains("health.max_lag_entries"));
        let mut labels = ok.clone();
        labels.metrics.lock_prefixes = MAX_LOCK_PREFIXES + 1;
        assert!(problem(&labels).contains("metrics.lock_prefixes"));
        let route = PeerRoute { id: 2, addr: "nowhere".into() };
        assert!(problem(&Config { peer_routes: vec![route], ..ok }).contains("peer_routes"));
    }
}
