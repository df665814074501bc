//! The server's error type (startup and fatal runtime errors; request errors are gRPC
//! statuses, see `status.rs`).

/// What stops a node from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The storage could not be opened or failed.
    #[error(transparent)]
    Storage(#[from] warden_storage::StorageError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for {what}: {source}; is another process using the port?")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The member's metrics could not be set up (a metric Prometheus refuses: a bug).
    #[error("cannot set up the metrics: {0}; report this as a bug")]
    Metrics(#[from] prometheus::Error),
    /// openraft refused to start or stopped.
    #[error("raft: {0}")]
    Raft(String),
}
