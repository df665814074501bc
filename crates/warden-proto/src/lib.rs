//! # warden-proto
//!
//! The gRPC code generated from `proto/`: the public API (`warden.v1`: KV, Cluster) and the
//! peer API (`warden.raft.v1`: openraft's RPCs), and what both sides of the wire must
//! spell the same way: the error kinds, the metadata keys, and the conversions between
//! the wire's messages and the core's types ([`convert`]), which the server and the
//! client both call instead of each writing their own.

mod alarm;
pub mod convert;
mod error_kind;
mod grpc_code;
mod metadata;

#[cfg(test)]
mod literals_test;

pub use alarm::{ALARM_NOSPACE, ALARM_QUOTA, ALL_ALARMS};
pub use error_kind::ErrorKind;
pub use grpc_code::{grpc_code_constant, grpc_code_name};
pub use metadata::{
    ALL_METADATA, COMPACT_REVISION_METADATA, ERROR_METADATA, FROM_METADATA, LEADER_METADATA,
    LIMIT_METADATA,
};

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

/// The gRPC path of every method of the public API (`/warden.v1.KV/Get`), read from the
/// protos at build time: what a member's metrics label gRPC requests with. A request for
/// any other path is counted as `unknown`, so a client cannot grow the label set.
pub const CLIENT_METHODS: &[&str] = include!(concat!(env!("OUT_DIR"), "/methods.rs"));

/// The largest gRPC message, either way, on a member's client port; the client holds
/// itself to the same limit, so an oversized message fails the same way from both ends.
///
/// 4 MiB: a request with one value at the largest size the core accepts (1 MiB) and a full
/// path fits with room to spare, as does a transaction of 128 small ops; it is also the
/// receive limit of gRPC clients left at their defaults (tonic, grpc-go, grpc-java), so
/// whatever a member sends, any of them can read. Answers that could grow past it are
/// split: a watch sends a large revision in fragments. A transaction carrying several
/// large values can exceed it, and is refused whole.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 4 << 20;

#[cfg(test)]
mod methods_test {
    use super::CLIENT_METHODS;

    #[test]
    fn every_public_method_is_listed_once() {
        for known in ["/warden.v1.KV/Get", "/warden.v1.Watch/Watch", "/warden.v1.Session/KeepAlive"]
        {
            assert!(CLIENT_METHODS.contains(&known), "{known} missing from {CLIENT_METHODS:?}");
        }
        let services = ["KV", "Cluster", "Watch", "Session", "Lock", "Semaphore", "Election"];
        for service in services.into_iter().chain(["Barrier", "Resource", "Maintenance"]) {
            let prefix = format!("/warden.v1.{service}/");
            assert!(CLIENT_METHODS.iter().any(|m| m.starts_with(&prefix)), "{service}");
        }
        assert!(CLIENT_METHODS.iter().all(|m| !m.contains("raft")), "peer methods listed");
        let mut sorted = CLIENT_METHODS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), CLIENT_METHODS.len(), "a method listed twice");
    }
}
