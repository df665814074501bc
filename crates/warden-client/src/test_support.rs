//! For unit tests of the recipe clients: a scripted service served on loopback, statuses
//! as a member makes them, and a bounded wait.

use std::sync::Arc;
use std::time::Duration;

use tonic::Status;
use tonic::metadata::MetadataValue;
use tonic::transport::server::{Router, TcpIncoming};
use warden_proto::{ERROR_METADATA, ErrorKind};

use crate::connection::Connection;

/// A status as a member makes it, with its kind.
pub(crate) fn refusal(code: tonic::Code, kind: ErrorKind) -> Status {
    let mut status = Status::new(code, format!("scripted {}", kind.as_str()));
    status.metadata_mut().insert(ERROR_METADATA, MetadataValue::from_static(kind.as_str()));
    status
}

/// Serves `router` on a loopback port; a connection to it, with a short deadline.
pub(crate) async fn loopback(router: Router) -> Arc<Connection> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let incoming =
        TcpIncoming::bind(addr).unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
    let addr = incoming.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(router.serve_with_incoming(incoming));
    let connection = Connection::new(vec![addr.to_string()], Duration::from_secs(2), None)
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(connection)
}

/// Waits (at most 2 s, polling) until `done` holds.
pub(crate) async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 2 s: {what}");
}
