//! The command line, as DESIGN §9 fixes it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// warden: a coordination service (locks, elections, configuration) in the line of Chubby,
/// ZooKeeper and etcd.
#[derive(Debug, Parser)]
#[command(name = "warden", version, after_help = crate::exit::HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) client: ClientOptions,
    #[command(subcommand)]
    pub(crate) command: Command,
}

const CLIENT_HEADING: &str = "Client options (also after a client command)";

/// The client options given before the command (`warden --endpoints A get /x`); with the
/// environment and the defaults. Only the client commands use them.
#[derive(Debug, Args)]
pub(crate) struct ClientOptions {
    /// Client addresses of the members, comma-separated.
    #[arg(
        long,
        help_heading = CLIENT_HEADING,
        env = "WARDEN_ENDPOINTS",
        default_value = "127.0.0.1:7400",
        value_delimiter = ','
    )]
    pub(crate) endpoints: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", help_heading = CLIENT_HEADING, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    /// Speak TLS, trusting this CA (PEM) for the members' certificates.
    #[arg(long, help_heading = CLIENT_HEADING, env = "WARDEN_CACERT", value_name = "FILE")]
    pub(crate) cacert: Option<PathBuf>,
    /// This client's certificate (PEM), for a cluster that asks for one (needs --cacert).
    #[arg(long, help_heading = CLIENT_HEADING, env = "WARDEN_CERT", value_name = "FILE")]
    pub(crate) cert: Option<PathBuf>,
    /// The key of --cert (PEM).
    #[arg(long, help_heading = CLIENT_HEADING, env = "WARDEN_KEY", value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
}

/// The client options given after a client command (`warden get /x -o json`): they win
/// over those before it, the environment and the defaults.
#[derive(Debug, Args)]
pub(crate) struct ClientFlags {
    /// Client addresses of the members, comma-separated [env: WARDEN_ENDPOINTS] [default:
    /// 127.0.0.1:7400].
    #[arg(long, global = true, help_heading = "Client options", value_delimiter = ',')]
    endpoints: Option<Vec<String>>,
    /// Output format: text (for people) or json (one object per result) [default: text].
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        help_heading = "Client options",
        value_enum
    )]
    output: Option<Output>,
    /// Speak TLS, trusting this CA (PEM) for the members' certificates [env: WARDEN_CACERT].
    #[arg(long, global = true, help_heading = "Client options", value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// This client's certificate (PEM), for a cluster that asks for one [env: WARDEN_CERT].
    #[arg(long, global = true, help_heading = "Client options", value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The key of --cert (PEM) [env: WARDEN_KEY].
    #[arg(long, global = true, help_heading = "Client options", value_name = "FILE")]
    key: Option<PathBuf>,
}

impl ClientFlags {
    /// These flags over `before` (the options before the command, the environment and
    /// the defaults).
    pub(crate) fn over(&self, before: &ClientOptions) -> ClientOptions {
        ClientOptions {
            endpoints: self.endpoints.clone().unwrap_or_else(|| before.endpoints.clone()),
            output: self.output.unwrap_or(before.output),
            cacert: self.cacert.clone().or_else(|| before.cacert.clone()),
            cert: self.cert.clone().or_else(|| before.cert.clone()),
            key: self.key.clone().or_else(|| before.key.clone()),
        }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// For people.
    Text,
    /// One JSON object per result.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs one node. Without --config: one node, data in ./warden-data, clients on
    /// 127.0.0.1:7400, peers on :7401.
    Server {
        /// A TOML config file (see config/).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Join an existing cluster through these members' client addresses
        /// (comma-separated) instead of founding one: this member asks to be added with
        /// its node_id, peer_addr and client_addr, and retries until it is (or is told why
        /// not). Start it with an empty data directory.
        #[arg(long, value_delimiter = ',', value_name = "HOST:PORT,...")]
        join: Vec<String>,
        /// Log lines as text or one JSON object per line (RUST_LOG chooses what is logged).
        #[arg(long, value_enum, default_value_t, env = "WARDEN_LOG_FORMAT")]
        log_format: crate::logs::LogFormat,
    },
    /// Runs a local cluster on loopback with its data in a temporary folder; Ctrl-C stops it.
    Dev {
        /// How many members.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// The first member's client port; member i uses base + 10·(i-1) (client), +1 (peers).
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
        /// Log lines as text or one JSON object per line (RUST_LOG chooses what is logged).
        #[arg(long, value_enum, default_value_t, env = "WARDEN_LOG_FORMAT")]
        log_format: crate::logs::LogFormat,
        /// Mutual TLS on every port and ACLs on: only certificates of the dev CA get in, and
        /// the client `admin` (admin.crt) holds every permission; anyone else is denied
        /// until `warden acl apply` grants it something.
        #[arg(long)]
        secure: bool,
        /// With --secure: the certificates to use; made there (`warden certs dev` with a
        /// client `admin`) if the folder has none.
        #[arg(long, value_name = "DIR", default_value = "warden-dev-certs", requires = "secure")]
        certs: PathBuf,
    },
    /// Certificates for trying mutual TLS (`certs dev`).
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    // Boxed: the client commands' flags outweigh the other commands'.
    #[command(flatten)]
    Client(Box<ClientCommand>),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertsCommand {
    /// Writes a throwaway CA, a certificate per dev member and per client into a folder.
    ///
    /// ca.crt/ca.key, node1.crt/node1.key ... (SAN DNS localhost, IP 127.0.0.1, URI
    /// spiffe://warden/member/N; server and client use), and NAME.crt/NAME.key per
    /// --client NAME (CN=NAME: the client's identity is NAME). Keys are written with mode
    /// 0600. For development only: the CA key is kept beside the certificates.
    Dev {
        /// The folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// How many member certificates.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// Also issue a client certificate for NAME (repeatable).
        #[arg(long = "client", value_name = "NAME")]
        clients: Vec<String>,
        /// Also name this IP address or DNS name in every member certificate (repeatable):
        /// for members that reach each other at other addresses, e.g. in containers.
        #[arg(long = "san", value_name = "IP_OR_NAME")]
        sans: Vec<String>,
        /// Replace files that already exist.
        #[arg(long, conflicts_with = "keep_existing")]
        force: bool,
        /// Do nothing when every file is there already (a one-shot service run at each
        /// start, as in docker-compose.yml); some but not all is still an error.
        #[arg(long)]
        keep_existing: bool,
    },
}

/// The commands that talk to a cluster.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Creates a node.
    Create {
        #[command(flatten)]
        client: ClientFlags,
        /// Its path (for --sequential, the prefix of the name).
        path: String,
        /// Its value; `-` reads it from standard input [default: empty].
        value: Option<String>,
        /// Read the value from this file (any bytes).
        #[arg(long, conflicts_with = "value")]
        file: Option<PathBuf>,
        /// Deleted when the creating session ends (needs a session).
        #[arg(long, conflicts_with = "container")]
        ephemeral: bool,
        /// Append a 10-digit counter to the name.
        #[arg(long)]
        sequential: bool,
        /// Deleted once its last child goes.
        #[arg(long)]
        container: bool,
    },
    /// Creates a node or sets its value; with --version N, sets it only at version N.
    Put {
        #[command(flatten)]
        client: ClientFlags,
        /// The path.
        path: String,
        /// The value; `-` reads it from standard input.
        #[arg(required_unless_present = "file")]
        value: Option<String>,
        /// Read the value from this file (any bytes).
        #[arg(long, conflicts_with = "value")]
        file: Option<PathBuf>,
        /// Compare-and-set: set the node only if its version is N (see `warden get -o
        /// json`); otherwise exit 6, and 5 if it does not exist. Never creates.
        #[arg(long, value_name = "N")]
        version: Option<u64>,
    },
    /// Prints a node's value (and stat, with -o json); with --prefix, every node under it.
    Get {
        #[command(flatten)]
        client: ClientFlags,
        /// The path.
        path: String,
        /// Also every node under PATH, each with its path and value (PATH first, then
        /// depth-first by name). Read node by node, so not one atomic snapshot: a node
        /// written during the walk may show its old or new value, and one deleted is skipped.
        #[arg(long)]
        prefix: bool,
        /// Read the answering member's replica without confirming leadership (may be stale).
        #[arg(long)]
        serializable: bool,
    },
    /// Lists a node's children, sorted by name (read page by page: any size works).
    Ls {
        #[command(flatten)]
        client: ClientFlags,
        /// The path.
        path: String,
        /// Read the answering member's replica without confirming leadership.
        #[arg(long)]
        serializable: bool,
        /// Print at most this many children.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Deletes a node (with -r, its subtree).
    ///
    /// A delete that would end a lock (a waiter node, a lock, or a subtree holding one) is
    /// refused unless --revoke-locks is given.
    Rm {
        #[command(flatten)]
        client: ClientFlags,
        /// The path.
        path: String,
        /// Delete its descendants too.
        #[arg(long, short)]
        recursive: bool,
        /// Delete only if the node's version is N; otherwise exit 6.
        #[arg(long, value_name = "N")]
        version: Option<u64>,
        /// Revoke the holds and waits of the locks the delete reaches (as `warden lock
        /// revoke` does: holders are told, and the lock-delay applies; a lock in its
        /// lock-delay is kept until the delay ends).
        #[arg(long)]
        revoke_locks: bool,
    },
    /// Prints changes as they happen, one line (or JSON object) per event, until Ctrl-C.
    Watch {
        #[command(flatten)]
        client: ClientFlags,
        /// The path (or glob pattern, with --glob).
        path: String,
        /// Watch the path and everything under it.
        #[arg(long, conflicts_with = "glob")]
        prefix: bool,
        /// Treat PATH as a glob pattern (* stops at /, ** crosses it).
        #[arg(long)]
        glob: bool,
        /// Start from this past revision (0: from now).
        #[arg(long, default_value_t = 0)]
        from_revision: u64,
    },
    /// Runs a command holding a lock; `lock status PATH` shows a lock, `lock stats PREFIX`
    /// the busiest locks under a prefix, `lock revoke PATH --session ID` breaks a stuck hold.
    ///
    /// `warden lock PATH [--timeout 10s] [--shared] -- COMMAND [ARGS...]` runs COMMAND
    /// holding the lock at PATH (a read-write lock: exclusive, or shared with --shared).
    /// `warden lock status PATH` prints its holders and waiters (or that it is free).
    /// `warden lock stats [PREFIX] [--limit N]` prints the statistics of the locks under
    /// PREFIX (default /): grants, contended grants, holders, waiters, and approximate p50
    /// and p99 of waits and holds, the busiest (most time waited) first, and their total.
    /// `warden lock revoke PATH --session ID` takes a session out of it. `warden lock
    /// --resource KIND ID [--no-wait-while-draining] -- COMMAND` locks the id ID of a
    /// resource kind, in the version the cluster picks. The command gets
    /// WARDEN_FENCING_TOKEN and WARDEN_LOCK_PATH (for a resource id, KIND/<version>/<id>);
    /// warden exits with its status (3 if the lock timed out, 4 if it was lost while the
    /// command ran, as when a forced rotation revokes it, 130 on Ctrl-C). On every way out
    /// the lock's session is closed, so nothing it held or waited for is left behind.
    Lock {
        #[command(flatten)]
        client: ClientFlags,
        /// The lock's path, or `status`, `stats` or `revoke`; with --resource, the id.
        target: String,
        /// With `status` or `revoke`: the lock's path; with `stats`: the prefix.
        status_path: Option<String>,
        /// With `stats`: list at most this many locks (default 20, at most 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// With `revoke`: the session to take out of the lock (see `warden lock status`).
        #[arg(long)]
        session: Option<u64>,
        /// Give up (exit 3) if the lock is not granted within this, opening the session
        /// included; until then an unavailable cluster is asked again (500ms, 1.5s, 2m, 1h).
        #[arg(long, value_parser = warden_rotate::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Take the lock shared (a read lock); without it, exclusive.
        #[arg(long)]
        shared: bool,
        /// Hold the whole subtree under the path: conflicts with locks held below it, and
        /// with subtree locks above it (shared ones share).
        #[arg(long, conflicts_with = "resource")]
        subtree: bool,
        /// Served before lower priorities (0 to 10); a waiter gains one every second it
        /// waits, so it is never passed by a request more than (10 - priority)s younger.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10), conflicts_with = "resource")]
        priority: u32,
        /// The ttl of the holder's session: how long the lock outlives a crashed warden.
        #[arg(long, default_value = "10s", value_parser = warden_rotate::parse_duration)]
        ttl: std::time::Duration,
        /// Lock-delay for a new lock: after a holder crashes, nobody gets it for this long
        /// (at most 60s).
        #[arg(long, default_value = "0s", value_parser = warden_rotate::parse_duration)]
        delay: std::time::Duration,
        /// Lock the id TARGET of this resource kind (see `warden resource`): the cluster
        /// picks the version, and WARDEN_LOCK_PATH is KIND/<version>/<id>.
        #[arg(long, value_name = "KIND")]
        resource: Option<String>,
        /// With --resource: while the kind rotates, fail at once (exit 1) instead of
        /// waiting for the new version.
        #[arg(long, requires = "resource")]
        no_wait_while_draining: bool,
        /// The command and its arguments, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Resource kinds, whose ids are locked in versions: `resource init KIND [--version
    /// V]`, `resource status KIND`; `warden rotate` moves one to a new version.
    Resource {
        #[command(flatten)]
        client: ClientFlags,
        #[command(subcommand)]
        command: ResourceCommand,
    },
    /// Rotates a resource kind to a new version: new acquisitions queue for it while the
    /// old version drains; the switch comes when the last old holder leaves.
    ///
    /// `warden rotate KIND --to V` begins the rotation (or picks up one under way) and
    /// shows the holders left on the old version and the acquisitions waiting, until the
    /// switch (exit 0). --dry-run prints the plan and changes nothing; --timeout D gives up
    /// (exit 3; the rotation stays begun, a re-run picks it up); --force-after D revokes
    /// what is left after D (the holders' `warden lock` exits 4). Needs admin. The same
    /// code as the `warden-rotate` tool (tools/rotate).
    Rotate {
        #[command(flatten)]
        client: ClientFlags,
        #[command(flatten)]
        args: warden_rotate::RotateArgs,
    },
    /// Runs a command while leading an election; `elect leader NAME` shows the leader,
    /// `elect observe NAME` every change of leader.
    ///
    /// `warden elect NAME [--value V] [--timeout 10s] -- COMMAND [ARGS...]` campaigns in
    /// the election NAME (a path) and runs COMMAND once leading, with WARDEN_FENCING_TOKEN
    /// and WARDEN_ELECTION_NAME; warden exits with its status (3 if it did not lead in
    /// time, 4 if the leadership was lost while the command ran: the command is killed,
    /// 130 on Ctrl-C). `warden elect leader NAME` prints the leader (exit 5 if none).
    /// `warden elect observe NAME` prints the leader, then every change ("no leader"
    /// included), until Ctrl-C or until its reader closes standard output.
    Elect {
        #[command(flatten)]
        client: ClientFlags,
        /// The election's name (a path), or `leader` or `observe`.
        target: String,
        /// With `leader` or `observe`: the election's name.
        name: Option<String>,
        /// What the leader announces (`elect leader` and `elect observe` show it).
        #[arg(long)]
        value: Option<String>,
        /// Give up (exit 3) if not leading within this, opening the session included;
        /// until then an unavailable cluster is asked again (500ms, 1.5s, 2m, 1h).
        #[arg(long, value_parser = warden_rotate::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// The ttl of the candidate's session: how long a crashed warden keeps leading.
        #[arg(long, default_value = "10s", value_parser = warden_rotate::parse_duration)]
        ttl: std::time::Duration,
        /// The command and its arguments, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Barriers: `barrier set|remove|wait|status NAME`, and `barrier NAME --count N --
    /// COMMAND`, a double barrier around a command.
    ///
    /// `warden barrier set NAME` sets a barrier; `warden barrier wait NAME [--timeout D]`
    /// returns once it is not set (exit 3 at the timeout); `warden barrier remove NAME`
    /// lets its waiters through; `warden barrier status NAME` prints its state and
    /// members. `warden barrier NAME --count N [--timeout D] -- COMMAND [ARGS...]` enters
    /// the double barrier NAME of N members, runs COMMAND once all N are in (with
    /// WARDEN_BARRIER_NAME and WARDEN_BARRIER_MEMBER), leaves, and exits with COMMAND's
    /// status once all N have left (3 if entering or leaving took longer than D).
    Barrier {
        #[command(flatten)]
        client: ClientFlags,
        /// `set`, `remove`, `wait` or `status`, or a double barrier's name (a path).
        target: String,
        /// With `set`, `remove`, `wait` or `status`: the barrier's name.
        name: Option<String>,
        /// A double barrier's number of members (every member gives the same).
        #[arg(long, value_name = "N")]
        count: Option<u32>,
        /// Give up (exit 3) waiting at a barrier, or entering or leaving a double
        /// barrier, after this long.
        #[arg(long, value_parser = warden_rotate::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// The ttl of the waiting session: how long a crashed warden stays a member.
        #[arg(long, default_value = "10s", value_parser = warden_rotate::parse_duration)]
        ttl: std::time::Duration,
        /// The command and its arguments, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Sessions: list them, or inspect one.
    Session {
        #[command(flatten)]
        client: ClientFlags,
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Cluster administration.
    Cluster {
        #[command(flatten)]
        client: ClientFlags,
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Access control: put an ACL file in force on the whole cluster, or show the one in
    /// force.
    Acl {
        #[command(flatten)]
        client: ClientFlags,
        #[command(subcommand)]
        command: AclCommand,
    },
    /// Prints the identity the cluster knows this client by (what its client certificate
    /// names, as recorded in the sessions it opens), or that it is anonymous.
    #[command(name = "whoami")]
    WhoAmI {
        #[command(flatten)]
        client: ClientFlags,
    },
    /// Membership: list the members, add one (as a learner, promoted to voter once it
    /// caught up), remove one (needs admin).
    Member {
        #[command(flatten)]
        client: ClientFlags,
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Leadership: hand it to another voter (needs admin).
    Leader {
        #[command(flatten)]
        client: ClientFlags,
        #[command(subcommand)]
        command: LeaderCommand,
    },
    /// Backups: `snapshot save FILE` downloads one, `snapshot restore FILE ...` seeds a
    /// member of a new cluster from it, `snapshot status FILE` checks it.
    Snapshot {
        #[command(flatten)]
        client: ClientFlags,
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Runs a transaction described in JSON (a FILE, or standard input when FILE is
    /// absent or -): compares, then operations applied all or nothing (see docs/cli.md).
    ///
    /// {"compare": [{"path": "/a", "target": "version", "op": "=", "value": 2}],
    ///  "success": [{"set": {"path": "/a", "value": "x"}}, {"delete": {"path": "/b"}}]}
    ///
    /// Exits 0 when the compares held and the operations were applied, 6 when a compare
    /// did not hold (nothing was applied; the output names the compare), 1 with the JSON
    /// path of the field for a document that is not a transaction.
    Txn {
        #[command(flatten)]
        client: ClientFlags,
        /// The JSON file; standard input when absent or -.
        file: Option<String>,
    },
    /// Endpoints: `endpoint health` asks every member whether it can serve.
    Endpoint {
        #[command(flatten)]
        client: ClientFlags,
        #[command(subcommand)]
        command: EndpointCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SnapshotCommand {
    /// Downloads a backup of the cluster's state into FILE (needs admin): written to a
    /// temporary file, checked against the stream's SHA-256, fsynced and renamed into
    /// place, so FILE is either a whole, checked backup or not there.
    Save {
        /// Where to write it.
        file: PathBuf,
        /// Take it from the answering member's replica without confirming leadership (may
        /// miss the latest writes); by default it holds every write acknowledged before.
        #[arg(long)]
        serializable: bool,
    },
    /// Writes a fresh data directory for one member of a NEW cluster from a backup: its
    /// state (and revision) is the backup's, its members those given. Run it once per
    /// member, from the same file, then start each member on its directory.
    ///
    /// Either --config FILE (the member's config, as `warden server --config` takes it:
    /// its node_id, data_dir and initial_members are used), or --data-dir, --node-id and
    /// --initial-members. Refuses a non-empty data directory, a damaged backup and an
    /// unknown format version.
    Restore {
        /// The backup (from `warden snapshot save`).
        file: PathBuf,
        /// The member's config file: node_id, data_dir and initial_members from it.
        #[arg(long, conflicts_with_all = ["data_dir", "node_id", "initial_members"])]
        config: Option<PathBuf>,
        /// The data directory to create (missing or empty).
        #[arg(long, required_unless_present = "config")]
        data_dir: Option<PathBuf>,
        /// This member's id.
        #[arg(long, required_unless_present = "config")]
        node_id: Option<u64>,
        /// The new cluster's members, as initial_members in a config: ID=PEER_ADDR@CLIENT_ADDR,
        /// comma-separated (1=127.0.0.1:7401@127.0.0.1:7400,2=...).
        #[arg(long, value_name = "MEMBERS", required_unless_present = "config")]
        initial_members: Option<String>,
    },
    /// Checks a backup file (magic, version, SHA-256) and prints what it holds.
    Status {
        /// The backup.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EndpointCommand {
    /// Asks each member (those in --endpoints, and every member the cluster lists) alone
    /// whether it is healthy, as its HTTP /health would say: one line per member with
    /// how long it took and why not; exits 7 if any is not.
    Health {
        /// How long to wait for each member.
        #[arg(long, default_value = "3s", value_parser = warden_rotate::parse_duration)]
        timeout: std::time::Duration,
        /// Ask only the members in --endpoints, not every member the cluster lists (a
        /// container's health check of its own member, say).
        #[arg(long)]
        listed_only: bool,
    },
}

impl ClientCommand {
    /// The client options given after the command.
    pub(crate) fn flags(&self) -> &ClientFlags {
        match self {
            ClientCommand::Create { client, .. }
            | ClientCommand::Put { client, .. }
            | ClientCommand::Get { client, .. }
            | ClientCommand::Ls { client, .. }
            | ClientCommand::Rm { client, .. }
            | ClientCommand::Watch { client, .. }
            | ClientCommand::Lock { client, .. }
            | ClientCommand::Resource { client, .. }
            | ClientCommand::Rotate { client, .. }
            | ClientCommand::Elect { client, .. }
            | ClientCommand::Barrier { client, .. }
            | ClientCommand::Session { client, .. }
            | ClientCommand::Cluster { client, .. }
            | ClientCommand::Acl { client, .. }
            | ClientCommand::WhoAmI { client }
            | ClientCommand::Member { client, .. }
            | ClientCommand::Leader { client, .. }
            | ClientCommand::Snapshot { client, .. }
            | ClientCommand::Txn { client, .. }
            | ClientCommand::Endpoint { client, .. } => client,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
    /// Every live session: id, ttl, remaining time, identity, ephemeral nodes owned.
    List,
    /// One session.
    Info {
        /// The session id.
        id: u64,
    },
    /// Ends a session now: its ephemeral nodes go, its holds and waits end.
    ///
    /// As its owner closing it would: the holds end at once, with no lock-delay. Its owner
    /// finds out when its keepalives are refused (a Rust client: within the session's
    /// ttl); `warden lock revoke` tells a holder at once and applies the lock-delay.
    Close {
        /// The session id (see `warden session list`).
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ResourceCommand {
    /// Makes a resource kind at KIND (a path) whose ids lock at KIND/<version>/<id>; a
    /// kind already there is left as it is (and its version printed).
    Init {
        /// The kind's path.
        kind: String,
        /// Its first version (one path segment).
        #[arg(long, default_value = "v1")]
        version: String,
    },
    /// The kind's version, the rotation under way (if any), the holders and waiters of the
    /// current version and the acquisitions queued for the next.
    Status {
        /// The kind's path.
        kind: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AclCommand {
    /// Puts the ACL file in force on every member (needs admin). The file is checked whole
    /// first: a bad one is refused with its line and the reason, and the policy in force
    /// stays. ACLs are on from the first policy applied: whatever no rule grants is denied.
    Apply {
        /// The ACL file (TOML), or - for standard input.
        file: String,
    },
    /// Prints the policy in force, as applied (needs admin).
    Get,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Leader, term, and every member's role and applied index.
    Status,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MemberCommand {
    /// Every member: id, voter or learner, addresses, and which one leads.
    List,
    /// Adds a member: as a learner, then, once it caught up with the leader, as a voter.
    /// Start it first (warden server with its own node_id and addresses); `warden server
    /// --join` does this itself. Safe to run again.
    Add {
        /// Its id (unused by any member).
        id: u64,
        /// Where the other members reach its peer port (host:port).
        #[arg(long, value_name = "HOST:PORT")]
        peer_addr: String,
        /// Where clients reach it (host:port).
        #[arg(long, value_name = "HOST:PORT")]
        client_addr: String,
    },
    /// Removes a member (the leader too: it hands over first). The removed member stops
    /// serving and says so; stop it afterwards.
    Remove {
        /// Its id (see warden member list).
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LeaderCommand {
    /// Makes voter ID the leader (takes about an election timeout; writes wait meanwhile).
    Transfer {
        /// The voter to lead.
        id: u64,
    },
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    fn client_command(args: &[&str]) -> ClientCommand {
        match Cli::try_parse_from(args).map(|cli| cli.command) {
            Ok(Command::Client(command)) => *command,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn elect_takes_a_name_and_a_command_or_a_subcommand() {
        let run =
            ["warden", "elect", "/e", "--value", "v", "--timeout", "2s", "--", "sh", "-c", "x"];
        match client_command(&run) {
            ClientCommand::Elect { target, name, value, timeout, ttl, command, .. } => {
                assert_eq!(target, "/e");
                assert_eq!(name, None);
                assert_eq!(value.as_deref(), Some("v"));
                assert_eq!(timeout, Some(Duration::from_secs(2)));
                assert_eq!(ttl, Duration::from_secs(10));
                assert_eq!(command, ["sh", "-c", "x"]);
            }
            other => panic!("{other:?}"),
        }
        let leader = ["warden", "elect", "leader", "/e", "-o", "json"];
        match client_command(&leader) {
            ClientCommand::Elect { client, target, name, command, .. } => {
                assert_eq!((target.as_str(), name.as_deref()), ("leader", Some("/e")));
                assert!(command.is_empty());
                assert_eq!(client.output, Some(Output::Json));
            }
            other => panic!("{other:?}"),
        }
        match client_command(&["warden", "elect", "observe", "/e"]) {
            ClientCommand::Elect { target, name, .. } => {
                assert_eq!((target.as_str(), name.as_deref()), ("observe", Some("/e")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lock_takes_a_resource_id_and_rotate_and_resource_take_their_kind() {
        let run = ["warden", "lock", "--resource", "/orders", "42", "--no-wait-while-draining"];
        let run: Vec<&str> = run.into_iter().chain(["--", "sh", "-c", "x"]).collect();
        match client_command(&run) {
            ClientCommand::Lock { target, resource, no_wait_while_draining, command, .. } => {
                assert_eq!((target.as_str(), resource.as_deref()), ("42", Some("/orders")));
                assert!(no_wait_while_draining);
                assert_eq!(command, ["sh", "-c", "x"]);
            }
            other => panic!("{other:?}"),
        }
        let plain = ["warden", "lock", "/job", "--no-wait-while-draining", "--", "true"];
        assert!(Cli::try_parse_from(plain).is_err(), "--no-wait-while-draining needs --resource");
        match client_command(&["warden", "resource", "init", "/orders"]) {
            ClientCommand::Resource {
                command: ResourceCommand::Init { kind, version }, ..
            } => {
                assert_eq!((kind.as_str(), version.as_str()), ("/orders", "v1"));
            }
            other => panic!("{other:?}"),
        }
        let rotate =
            ["warden", "rotate", "/orders", "--to", "v2", "--force-after", "5s", "-o", "json"];
        match client_command(&rotate) {
            ClientCommand::Rotate { client, args } => {
                assert_eq!((args.kind.as_str(), args.to.as_str()), ("/orders", "v2"));
                assert_eq!(args.force_after, Some(Duration::from_secs(5)));
                assert_eq!((args.timeout, args.dry_run), (None, false));
                assert_eq!(client.output, Some(Output::Json));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["warden", "rotate", "/orders"]).is_err(), "--to is required");
    }

    #[test]
    fn barrier_takes_a_subcommand_or_a_double_barrier_with_a_command() {
        match client_command(&["warden", "barrier", "wait", "/b", "--timeout", "1s"]) {
            ClientCommand::Barrier { target, name, timeout, count, .. } => {
                assert_eq!((target.as_str(), name.as_deref()), ("wait", Some("/b")));
                assert_eq!(timeout, Some(Duration::from_secs(1)));
                assert_eq!(count, None);
            }
            other => panic!("{other:?}"),
        }
        match client_command(&["warden", "barrier", "/b", "--count", "8", "--", "./step.sh"]) {
            ClientCommand::Barrier { target, name, count, command, ttl, .. } => {
                assert_eq!((target.as_str(), name), ("/b", None));
                assert_eq!(count, Some(8));
                assert_eq!(command, ["./step.sh"]);
                assert_eq!(ttl, Duration::from_secs(10));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["warden", "barrier", "/b", "--count", "-1"]).is_err());
        assert!(Cli::try_parse_from(["warden", "elect", "/e", "--timeout", "soon"]).is_err());
    }
}
