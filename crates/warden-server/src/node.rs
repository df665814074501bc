//! A running node: storage, the openraft node, its two gRPC servers (peer and client) and
//! its HTTP port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{Raft, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::InterceptorLayer;
use tonic::transport::Server;
use tower::util::MapResponseLayer;
use tracing::{Instrument, Span, error, info, info_span, warn};
use warden_core::{Command, Limits};
use warden_proto::MAX_CLIENT_MESSAGE_BYTES;
use warden_proto::raft::raft_server::RaftServer;
use warden_proto::v1::cluster_server::ClusterServer;
use warden_proto::v1::kv_server::KvServer;
use warden_proto::v1::lock_server::LockServer;
use warden_proto::v1::semaphore_server::SemaphoreServer;
use warden_proto::v1::session_server::SessionServer;
use warden_proto::v1::watch_server::WatchServer;
use warden_storage::{EventSink, LogStore, StateMachineStore, TypeConfig, WardenNode};

use crate::access::Access;
use crate::audit::Audit;
use crate::barrier_service::BarrierService;
use crate::batch::{Proposer, ReadGate};
use crate::caller::CallerLayer;
use crate::cluster_service::ClusterService;
use crate::config::Config;
use crate::election_service::ElectionService;
use crate::error::ServerError;
use crate::grpc_metrics::GrpcMetricsLayer;
use crate::health::LeaderCommit;
use crate::http::HttpState;
use crate::kv_service::KvService;
use crate::lock_audit::AuditingSink;
use crate::lock_service::{LockService, SemaphoreService};
use crate::metrics::Metrics;
use crate::network::{Faults, MAX_MESSAGE_BYTES, Network};
use crate::raft_service::RaftService;
use crate::recipe_wait::Waits;
use crate::resource_service::ResourceService;
use crate::session_service::{SessionService, track_sessions};
use crate::session_tracker::SessionTracker;
use crate::shared::Shared;
use crate::tls::TlsSettings;
use crate::watch_hub::WatchHub;
use crate::watch_service::WatchService;
use warden_proto::v1::barrier_server::BarrierServer;
use warden_proto::v1::election_server::ElectionServer;
use warden_proto::v1::maintenance_server::MaintenanceServer;
use warden_proto::v1::resource_server::ResourceServer;

/// A started node. Dropping it does not stop it: call [`Node::shutdown`].
pub struct Node {
    shared: Shared,
    hub: Arc<WatchHub>,
    log: LogStore,
    client_addr: SocketAddr,
    peer_addr: SocketAddr,
    http_addr: SocketAddr,
    stops: Vec<oneshot::Sender<()>>,
    servers: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
    /// Background loops (progress notices, session tracking), aborted at shutdown.
    tasks: Vec<JoinHandle<()>>,
    /// The HTTP port: its stop signal and its task, stopped last (its `/health` says
    /// "shutting down" while the rest stops).
    http: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    /// Set when shutdown starts.
    shutting_down: Arc<AtomicBool>,
}

/// How often watchers that asked for them get progress notices.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Streams a client may open and cancel before the client port has taken them up, per
/// connection, before the member ends the connection with a GOAWAY (ENHANCE_YOUR_CALM,
/// which fails every call on it as RESOURCE_EXHAUSTED). h2's default of 20 is a guard
/// against "rapid reset" floods, but one client process shares a connection among all its
/// calls, and a burst of dropped calls (lock acquires given up, watches dropped, timeouts)
/// on a busy member reaches 20 in normal use. 1,024 still bounds what one connection can
/// make the member hold (a closed stream's few hundred bytes each).
const PENDING_ACCEPT_RESETS: usize = 1_024;

/// How often [`Node::stopped`] looks at raft's running state.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// `server` with `tls` (if any) on the `what` port; rustls' refusal (a key that does not
/// match its certificate) is a configuration error.
fn with_tls(
    server: Server,
    tls: Option<tonic::transport::ServerTlsConfig>,
    what: &str,
) -> Result<Server, ServerError> {
    match tls {
        None => Ok(server),
        Some(tls) => server.tls_config(tls).map_err(|e| {
            ServerError::Config(format!(
                "tls: the {what} port cannot use tls.cert and tls.key: {e}; are they a certificate and its own key?"
            ))
        }),
    }
}

/// Warns (once per port, at start) when a port without TLS listens beyond loopback:
/// anyone who reaches it can read and write everything, or join raft.
fn warn_if_exposed(config: &Config) {
    if !config.tls.clients_tls() && !config.client_addr.ip().is_loopback() {
        warn!(
            addr = %config.client_addr,
            "the client port listens beyond loopback without TLS: anyone who reaches it can read and write everything; set tls.cert, tls.key and tls.client_ca"
        );
    }
    if !config.tls.peers_tls() && !config.peer_addr.ip().is_loopback() {
        warn!(
            addr = %config.peer_addr,
            "the peer port listens beyond loopback without TLS: anyone who reaches it can append to the raft log; set tls.cert, tls.key and tls.peer_ca"
        );
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { what, addr, source })
}

/// The accepted connections of a listener, with Nagle's algorithm off (small RPCs).
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|stream| {
        let stream = stream?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

impl Node {
    /// Opens the storage, starts raft and the servers, and founds the cluster if this node
    /// is its founder and it was never formed. `faults` lets tests cut links.
    ///
    /// Everything the member logs, from its own tasks and raft's, is in a `member{id}`
    /// span, so the lines of members sharing a process (`warden dev`) can be told apart.
    pub async fn start(config: Config, faults: Faults) -> Result<Node, ServerError> {
        let span = info_span!("member", id = config.node_id);
        Node::start_in_span(config, faults).instrument(span).await
    }

    async fn start_in_span(config: Config, faults: Faults) -> Result<Node, ServerError> {
        config.validate()?;
        crate::tls::install_crypto_provider();
        let tls = TlsSettings::load(&config)?;
        let http_tls = crate::http_tls::HttpTls::load(&config)?;
        warn_if_exposed(&config);
        let peer_listener = bind("peers", config.peer_addr).await?;
        let client_listener = bind("clients", config.client_addr).await?;
        let http_listener = bind("the HTTP port (http_addr)", config.http_addr).await?;
        let http_addr = http_listener.local_addr().map_err(|source| ServerError::Bind {
            what: "the HTTP port (http_addr)",
            addr: config.http_addr,
            source,
        })?;
        let peer_addr = peer_listener.local_addr().map_err(|source| ServerError::Bind {
            what: "peers",
            addr: config.peer_addr,
            source,
        })?;
        let client_addr = client_listener.local_addr().map_err(|source| ServerError::Bind {
            what: "clients",
            addr: config.client_addr,
            source,
        })?;

        // Opening loads every node from disk: off the async threads.
        let data_dir = config.data_dir.clone();
        let span = Span::current();
        let storage = tokio::task::spawn_blocking(move || {
            span.in_scope(|| warden_storage::open(&data_dir, Limits::default()))
        })
        .await
        .map_err(|e| ServerError::Raft(format!("storage open task failed: {e}")))??;
        let metrics = Arc::new(Metrics::new()?);
        storage.set_observer(Arc::clone(&metrics) as Arc<dyn warden_storage::StorageObserver>);
        let raft_config = openraft::Config {
            cluster_name: "warden".into(),
            heartbeat_interval: config.heartbeat_ms,
            // openraft's leader lease is election_timeout_max: a follower refuses votes until
            // it has heard no leader for that long. With etcd's [T, 2T) timer a first
            // candidate is always refused and failover takes 2-4 T; with [T/2, T) the lease
            // is T and a new leader is usually in place within 1-2 T.
            election_timeout_min: config.election_timeout_ms / 2,
            election_timeout_max: config.election_timeout_ms,
            install_snapshot_timeout: config.election_timeout_ms.max(1_000),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot.logs_since_last),
            max_in_snapshot_log_to_keep: config.snapshot.keep_logs,
            purge_batch_size: 256,
            // Values are up to 1 MiB: 32 entries stay under the 64 MiB message limit.
            max_payload_entries: 32,
            ..openraft::Config::default()
        }
        .validate()
        .map_err(|e| ServerError::Config(e.to_string()))?;
        let log = storage.log.clone();
        let network = Network::new(config.node_id, faults.clone())
            .with_routes(config.peer_routes.iter().map(|r| (r.id, r.addr.clone())))
            .with_tls(tls.peer_client.clone());
        let member_changes = Arc::new(crate::membership::MemberChanges {
            election_timeout_ms: config.election_timeout_ms,
            heartbeat_ms: config.heartbeat_ms,
            hold: network.hold(),
            health: network.health(),
            network: network.clone(),
            busy: tokio::sync::Mutex::new(()),
        });
        let removal = crate::removal::Removal::load(&config.data_dir);
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            storage.log,
            storage.state_machine.clone(),
        )
        .await
        .map_err(|e| ServerError::Raft(e.to_string()))?;

        let revision = storage.state_machine.read(|a| a.core.revision());
        let hub = Arc::new(WatchHub::new(
            revision,
            config.watch.history_events,
            config.watch.buffer,
            config.watch.max_buffered_bytes,
        ));
        let audit = Audit::start(config.node_id, config.audit_file(), &config.audit);
        let sink = storage.state_machine.read(|a| {
            AuditingSink::new(Arc::clone(&hub) as Arc<dyn EventSink>, audit.clone(), &a.core)
        });
        storage.state_machine.set_event_sink(Arc::new(sink));
        let space = Arc::new(crate::space::DiskSpace::new(
            config.data_dir.clone(),
            config.space.min_free_bytes,
        ));
        let shared = Shared {
            space: Arc::clone(&space),
            id: config.node_id,
            cluster_id: config.founder(),
            raft: raft.clone(),
            state_machine: storage.state_machine.clone(),
            proposer: Proposer::start(raft.clone(), Arc::clone(&metrics)),
            reads: ReadGate::new(raft.clone()),
            quorum_lost_after_ms: config.election_timeout_ms,
            access: Access::new(
                storage.state_machine.clone(),
                config.acl.admins.clone(),
                config.acl.file.is_some() || !config.acl.admins.is_empty(),
                audit.clone(),
            ),
            audit,
            metrics: Arc::clone(&metrics),
            member_changes,
            removal: removal.clone(),
        };
        if removal.is_removed() {
            raft.runtime_config().elect(false);
        }
        let mut node = Node {
            shared,
            hub: Arc::clone(&hub),
            log,
            client_addr,
            peer_addr,
            http_addr,
            stops: Vec::new(),
            servers: Vec::new(),
            tasks: Vec::new(),
            http: None,
            shutting_down: Arc::new(AtomicBool::new(false)),
        };
        let leader_commit = Arc::new(LeaderCommit::default());

        let raft_service = RaftServer::new(RaftService::new(
            config.node_id,
            raft.clone(),
            faults,
            tls.member_identities,
            Arc::clone(&leader_commit),
            removal.clone(),
        ))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut peers = with_tls(Server::builder(), tls.peers, "peer")?;
        let stopped = node.stop_signal();
        node.spawn_server(
            peers
                .add_service(raft_service)
                .serve_with_incoming_shutdown(incoming(peer_listener), stopped),
        );
        // Requests up to the configured size are read; answers stay within what clients
        // read (MAX_CLIENT_MESSAGE_BYTES, watches split theirs).
        let max_request = config.limits.max_request_bytes;
        let kv = KvServer::new(KvService::new(node.shared.clone()))
            .max_decoding_message_size(max_request)
            .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES);
        let cluster_service = Arc::new(ClusterService::new(node.shared.clone()));
        let cluster = ClusterServer::from_arc(Arc::clone(&cluster_service))
            .max_decoding_message_size(max_request)
            .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES);
        let watch = WatchServer::new(WatchService::new(
            node.shared.clone(),
            Arc::clone(&hub),
            config.limits.max_watchers_per_connection,
        ))
        .max_decoding_message_size(max_request)
        .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES);
        let tracker = Arc::new(SessionTracker::default());
        // A renewal is acknowledged only while a quorum acknowledged this leader within
        // `lease`; the age raft reports may be up to ~1.5 heartbeats stale, and the quorum
        // refuses votes for an election timeout T, so lease + 2 heartbeats stays below T
        // (a new leader's full ttl from its takeover then covers every acknowledged renewal).
        let (timeout, heartbeat) = (config.election_timeout_ms, config.heartbeat_ms);
        let lease = Duration::from_millis((timeout / 2).min(timeout.saturating_sub(2 * heartbeat)));
        let session_service = Arc::new(SessionService::new(
            node.shared.clone(),
            Arc::clone(&tracker),
            Arc::clone(&hub),
            lease,
        ));
        let sessions = SessionServer::from_arc(Arc::clone(&session_service))
            .max_decoding_message_size(max_request)
            .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES);
        let waits = Waits::new(node.shared.clone(), Arc::clone(&hub));
        let locks = Arc::new(LockService::new(node.shared.clone(), waits.clone()));
        let lock = LockServer::from_arc(Arc::clone(&locks))
            .max_decoding_message_size(max_request)
            .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES);
        let semaphore_service = SemaphoreService::new(Arc::clone(&locks));
        let semaphore = SemaphoreServer::new(semaphore_service.clone())
            .max_decoding_message_size(max_request)
            .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES);
        let election_service =
            Arc::new(ElectionService::new(node.shared.clone(), waits.clone(), Arc::clone(&hub)));
        let election = ElectionServer::from_arc(Arc::clone(&election_service))
            .max_decoding_message_size(max_request)
            .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES);
        let resource =
            ResourceServer::new(ResourceService::new(node.shared.clone(), waits.clone()))
                .max_decoding_message_size(max_request)
                .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES);
        let barrier = BarrierServer::new(BarrierService::new(node.shared.clone(), waits))
            .max_decoding_message_size(max_request)
            .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES);
        // Backups stream in chunks well inside the answer limit; health is one small answer.
        let maintenance =
            MaintenanceServer::new(crate::maintenance_service::MaintenanceService::new(
                node.shared.clone(),
                Arc::clone(&leader_commit),
                Arc::clone(&node.shutting_down),
                config.health.max_lag_entries,
            ))
            .max_decoding_message_size(max_request)
            .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES);
        // Each request runs in a `request{rpc, identity}` span under the member's, so what
        // is logged while serving it names the caller (access.rs records the identity).
        let member = Span::current();
        let clients = Server::builder()
            .http2_max_pending_accept_reset_streams(Some(PENDING_ACCEPT_RESETS))
            .trace_fn(move |request| {
                info_span!(
                    parent: &member,
                    "request",
                    rpc = request.uri().path(),
                    identity = tracing::field::Empty
                )
            });
        // Every client-port request is counted and timed as the client sees it (outermost),
        // then identified (caller.rs), whichever service.
        let mut clients = with_tls(clients, tls.clients, "client")?
            .layer(GrpcMetricsLayer::new(Arc::clone(&metrics)))
            .layer(InterceptorLayer::new(CallerLayer::new(config.tls.client_ca.is_some())))
            .layer(InterceptorLayer::new(crate::removal::RemovedGate(removal.clone())))
            .layer(MapResponseLayer::new(move |response| {
                crate::request_size::rewrite(max_request, response)
            }));
        let stopped = node.stop_signal();
        node.spawn_server(
            clients
                .add_service(kv)
                .add_service(cluster)
                .add_service(watch)
                .add_service(sessions)
                .add_service(lock)
                .add_service(semaphore)
                .add_service(election)
                .add_service(barrier)
                .add_service(resource)
                .add_service(maintenance)
                .serve_with_incoming_shutdown(incoming(client_listener), stopped),
        );
        node.tasks
            .push(tokio::spawn(track_sessions(node.shared.clone(), tracker).in_current_span()));
        let leader_history = Arc::new(crate::leadership::LeaderHistory::default());
        node.tasks.push(tokio::spawn(
            crate::leadership::log_changes(
                raft.clone(),
                metrics.leader_changes.clone(),
                Arc::clone(&leader_history),
            )
            .in_current_span(),
        ));
        node.tasks.push(tokio::spawn(
            crate::membership::finish_joint(node.shared.clone()).in_current_span(),
        ));
        let interval = Duration::from_millis(config.space.check_interval_ms);
        node.tasks.push(tokio::spawn(space.watch(interval).in_current_span()));
        node.tasks.push(tokio::spawn(
            crate::space::keep_quota(node.shared.clone(), config.space.quota_backend_bytes)
                .in_current_span(),
        ));
        let http = crate::http::router(
            Arc::new(HttpState {
                shared: node.shared.clone(),
                metrics: Arc::clone(&metrics),
                leader_commit,
                shutting_down: Arc::clone(&node.shutting_down),
                max_lag_entries: config.health.max_lag_entries,
                lock_metrics: config.metrics.clone(),
                leader_history,
            }),
            Arc::new(crate::rest::Rest {
                sessions: session_service,
                locks,
                semaphores: semaphore_service,
                elections: election_service,
                cluster: cluster_service,
                max_body: max_request,
            }),
        );
        let (stop_http, http_stopped) = oneshot::channel::<()>();
        let serving = crate::http::serve(http_listener, http, http_tls, async {
            http_stopped.await.ok();
        });
        node.http = Some((stop_http, tokio::spawn(serving.in_current_span())));
        node.tasks.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
            loop {
                ticker.tick().await;
                hub.notify_progress();
            }
        }));

        // A member started to join an existing cluster (`join`) never founds one.
        if config.join.is_empty() && config.node_id == config.founder() {
            node.found(&config).await?;
        }
        if let Some(text) = initial_policy(&config)? {
            node.tasks.push(tokio::spawn(
                put_initial_policy(node.shared.clone(), text).in_current_span(),
            ));
        }
        info!(node = config.node_id, %client_addr, %peer_addr, %http_addr, "node started");
        Ok(node)
    }

    /// A signal that resolves when [`Node::shutdown`] stops the servers.
    fn stop_signal(&mut self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let (stop, stopped) = oneshot::channel::<()>();
        self.stops.push(stop);
        async {
            stopped.await.ok();
        }
    }

    /// Runs a server (until its [`Node::stop_signal`]) on its own task.
    fn spawn_server(
        &mut self,
        serving: impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    ) {
        self.servers.push(tokio::spawn(serving.in_current_span()));
    }

    /// Initializes raft with the initial members, unless the cluster was formed before.
    ///
    /// (The initial access policy, `acl.file`, is put in force by whichever member leads
    /// first while none is: see [`put_initial_policy`].)
    async fn found(&mut self, config: &Config) -> Result<(), ServerError> {
        let members: BTreeMap<u64, WardenNode> = config
            .initial_members
            .iter()
            .map(|m| {
                (
                    m.id,
                    WardenNode {
                        raft_addr: m.peer_addr.clone(),
                        client_addr: m.client_addr.clone(),
                    },
                )
            })
            .collect();
        match self.shared.raft.initialize(members).await {
            Ok(()) => {
                info!(members = config.initial_members.len(), "cluster founded");
                let limits = config.limits.cluster();
                let shared = self.shared.clone();
                self.tasks.push(tokio::spawn(set_limits(shared, limits).in_current_span()));
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                let cluster = self.shared.state_machine.read(|a| a.core.limits().clone());
                if cluster != config.limits.cluster() {
                    warn!(
                        ?cluster,
                        "the cluster's limits differ from this member's [limits]: they were fixed when the cluster was formed, from the founder's configuration, and [limits] changes after that do not apply (only max_request_bytes and max_watchers_per_connection are read at start)"
                    );
                }
                Ok(())
            }
            Err(e) => Err(ServerError::Raft(e.to_string())),
        }
    }

    /// The raft node.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.shared.raft
    }

    /// The log store (for fault injection in tests).
    pub fn log_store(&self) -> &LogStore {
        &self.log
    }

    /// The state machine.
    pub fn state_machine(&self) -> &StateMachineStore {
        &self.shared.state_machine
    }

    /// This member's audit log.
    pub fn audit(&self) -> &Audit {
        &self.shared.audit
    }

    /// The watch hub: this member's watchers and what is queued for them.
    pub fn watch_hub(&self) -> &WatchHub {
        &self.hub
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The bound client address.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The bound peer address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The bound HTTP address (health, metrics, cluster status).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Resolves with the reason when raft stops on its own (a storage failure).
    ///
    /// It looks every [`STOP_CHECK`] rather than on every change of raft's metrics: those
    /// change several times per write, and a waiter woken each time (often `main`'s own
    /// thread) cost a context switch per change, measured as a quarter of the leader's.
    pub async fn stopped(&self) -> String {
        let metrics = self.shared.raft.metrics();
        let mut ticker = tokio::time::interval(STOP_CHECK);
        loop {
            ticker.tick().await;
            if let Err(fatal) = &metrics.borrow().running_state {
                return fatal.to_string();
            }
            if metrics.has_changed().is_err() {
                return "raft metrics closed".to_owned();
            }
        }
    }

    /// Stops the servers and raft, and releases the storage.
    pub async fn shutdown(self) {
        let span = info_span!("member", id = self.shared.id);
        self.shutdown_in_span().instrument(span).await;
    }

    async fn shutdown_in_span(self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.abort();
        }
        // Open watch streams would otherwise wait forever for events that will not come.
        self.hub.close("this member is shutting down; resume on another member".into());
        for stop in self.stops {
            stop.send(()).ok();
        }
        for server in self.servers {
            server.abort();
            server.await.ok();
        }
        if let Err(e) = self.shared.raft.shutdown().await {
            error!(error = %e, "raft did not shut down cleanly");
        }
        // Last, so that probes hear "shutting down" until the member is gone.
        if let Some((stop, serving)) = self.http {
            stop.send(()).ok();
            serving.await.ok();
        }
        // After raft: what it applied until it stopped is audited; then the file is
        // closed, so a member started again on the same data appends alone.
        self.shared.audit.close().await;
        info!(node = self.shared.id, "node stopped");
    }
}

/// The text of `acl.file`, checked whole: a member does not start with a policy it could
/// not put in force.
fn initial_policy(config: &Config) -> Result<Option<String>, ServerError> {
    let Some(file) = &config.acl.file else { return Ok(None) };
    let text = std::fs::read_to_string(file).map_err(|e| {
        ServerError::Config(format!("cannot read acl.file {}: {e}", file.display()))
    })?;
    warden_core::acl::Policy::parse(&text)
        .map_err(|e| ServerError::Config(format!("acl.file {}: {e}", file.display())))?;
    Ok(Some(text))
}

/// Puts the initial access policy in force once, from the leader, while no policy is: a
/// policy applied since (`warden acl apply`) is never replaced by the file.
async fn put_initial_policy(shared: Shared, text: String) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        if shared.state_machine.read(|a| a.core.policy().is_some()) {
            return;
        }
        let leads = shared.raft.metrics().borrow().state == openraft::ServerState::Leader;
        if !leads {
            continue;
        }
        match shared.write(None, None, warden_core::Command::SetPolicy { text: text.clone() }).await
        {
            Ok((revision, _)) => {
                info!(revision, "initial access policy (acl.file) put in force");
                shared.audit.admin(
                    "",
                    "acl.initial",
                    warden_core::acl::POLICY_PATH,
                    Some(revision),
                    "the member's acl.file put in force at founding",
                );
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "initial access policy not applied yet; retrying")
            }
        }
    }
}

/// How long the founder waits between tries of [`set_limits`].
const SET_LIMITS_RETRY: Duration = Duration::from_millis(50);

/// How long the founder tries [`set_limits`] before it gives up.
const SET_LIMITS_PATIENCE: Duration = Duration::from_secs(120);

/// Proposes the founder's limits for the cluster it just formed, as soon as it leads (the
/// founder holds the only copy of the first membership, so it is the first leader). Every
/// replica then applies the same [`Command::SetLimits`] at the same place in the log.
/// Tries for [`SET_LIMITS_PATIENCE`] (all members may not be started yet), or until the
/// node shuts down (which aborts this task). If it fails, the cluster keeps the default
/// limits: this says so, and so does the founder's log when it starts again.
async fn set_limits(shared: Shared, limits: Limits) {
    let deadline = tokio::time::Instant::now() + SET_LIMITS_PATIENCE;
    loop {
        let command = Command::SetLimits { limits: limits.clone() };
        match shared.write(None, None, command).await {
            Ok(_) => {
                info!(?limits, "the cluster's limits are set from this member's [limits]");
                return;
            }
            Err(status) if tokio::time::Instant::now() >= deadline => {
                warn!(
                    error = %status,
                    "the cluster's limits could not be set from this member's [limits]; the cluster keeps the default limits"
                );
                return;
            }
            Err(status) => {
                tracing::debug!(error = %status, "cannot set the cluster's limits yet; retrying");
                tokio::time::sleep(SET_LIMITS_RETRY).await;
            }
        }
    }
}
