//! # warden-server
//!
//! A warden node: the [`warden_storage`] store under an openraft node, openraft's RPCs
//! between members over gRPC on the peer port, and the client services (KV, Cluster) on
//! the client port.
//!
//! It is not where the rules of commands live (that is `warden-core`), nor the CLI.
//!
//! Writes go through raft and return once applied; reads are linearizable (openraft's
//! read-index) unless the client asks for a serializable read. A member that is not the
//! leader answers UNAVAILABLE with the leader's client address in `warden-leader`.
//!
//! Both ports may speak TLS (`[tls]`, see [`TlsConfig`]); with mutual TLS between members,
//! only certificates naming a member ([`identity()`]) may send raft RPCs.
//! On the client port every request carries its caller's identity (from its client
//! certificate; empty without one), which sessions record and `Cluster.WhoAmI` answers.
//!
//! Each member serves operators HTTP on `http_addr` (`/health`, `/health/live`,
//! `/metrics` in Prometheus' text format, `/cluster/status`) and a REST API for curl users
//! under `/v1/` (`docs/rest.md`), HTTPS when `[tls]` is set; see `http.rs`.
//!
//! Each member writes an audit log ([`Audit`], `[audit]`, `docs/audit.md`): a JSON line
//! for every denial, admin action, and lock grant, expiry and revoke.

mod access;
pub mod audit;
mod barrier_service;
mod batch;
mod caller;
mod cluster_service;
pub mod cluster_status;
pub mod config;
mod connection_watches;
mod election_service;
mod error;
mod grpc_metrics;
mod health;
mod http;
mod http_tls;
pub mod identity;
mod kv_service;
mod leader_transfer;
mod leadership;
pub mod limits;
mod lock_audit;
mod lock_metrics;
mod lock_service;
mod maintenance_service;
mod membership;
mod metrics;
pub mod network;
mod node;
mod peer_health;
mod raft_service;
mod recipe_wait;
mod removal;
mod request_size;
mod resource_service;
mod rest;
mod session_service;
mod session_tracker;
mod shared;
pub mod space;
mod status;
mod status_page;
mod tls;
mod watch_backlog;
pub mod watch_hub;
mod watch_service;

pub use audit::Audit;
pub use cluster_service::role_name;
pub use config::{
    AclConfig, AuditConfig, Config, HealthConfig, MemberConfig, MetricsConfig, PeerRoute,
    SnapshotConfig, TlsConfig, WatchConfig,
};
pub use error::ServerError;
pub use identity::{IdentityError, identity};
pub use limits::LimitsConfig;
pub use network::Faults;
pub use node::Node;
pub use space::SpaceConfig;
pub use tls::install_crypto_provider;
pub use warden_proto::{COMPACT_REVISION_METADATA, ERROR_METADATA};
