//! # warden-proto
//!
//! The gRPC code generated from `proto/`: the public API (`warden.v1`: KV, Cluster) and the
//! peer API (`warden.raft.v1`: openraft's RPCs). It holds no logic; conversions to and from
//! the core's types live in the server and client crates.

/// The public API.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("warden.v1");
}

/// The peer API.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod raft {
    tonic::include_proto!("warden.raft.v1");
}

/// The metadata key of the leader's client address in an UNAVAILABLE status.
pub const LEADER_METADATA: &str = "warden-leader";
