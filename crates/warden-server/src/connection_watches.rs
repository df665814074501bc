//! The watch streams open on each client connection, against
//! `limits.max_watchers_per_connection`.
//!
//! A watch stream holds a watcher in the hub, its buffer and a task on this member for as
//! long as the client keeps it, so one connection must not open them without bound. A
//! connection is told apart by its remote address (tonic's `remote_addr`, one TCP
//! connection each). The Rust client opens a connection of its own for each watch, so
//! the limit matters for clients that share one connection among many watches.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tonic::{Code, Status};
use warden_proto::ErrorKind;

use crate::status;

/// The open watch streams per connection.
#[derive(Debug)]
pub(crate) struct ConnectionWatches {
    max: usize,
    open: Mutex<HashMap<SocketAddr, usize>>,
}

/// One open watch stream, counted until it is dropped.
#[derive(Debug)]
pub(crate) struct WatchSlot {
    owner: Arc<ConnectionWatches>,
    connection: Option<SocketAddr>,
}

impl ConnectionWatches {
    /// At most `max` open watch streams per connection.
    pub(crate) fn new(max: usize) -> Arc<ConnectionWatches> {
        Arc::new(ConnectionWatches { max, open: Mutex::new(HashMap::new()) })
    }

    /// Counts a new watch stream on `connection`, or refuses it RESOURCE_EXHAUSTED if the
    /// connection has as many as the limit. A request whose connection is unknown (not
    /// over TCP) is not counted.
    pub(crate) fn admit(
        self: &Arc<Self>,
        connection: Option<SocketAddr>,
    ) -> Result<WatchSlot, Status> {
        if let Some(addr) = connection {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let count = open.entry(addr).or_default();
            if *count >= self.max {
                return Err(status::server(
                    Code::ResourceExhausted,
                    ErrorKind::TooManyWatchers,
                    format!(
                        "this connection already has {count} watch streams open, the most this member allows (limits.max_watchers_per_connection = {}); cancel watches that are no longer needed, or watch a prefix that covers several paths",
                        self.max
                    ),
                ));
            }
            *count += 1;
        }
        Ok(WatchSlot { owner: Arc::clone(self), connection })
    }

    /// The watch streams open on `connection`.
    #[cfg(test)]
    fn open_on(&self, connection: SocketAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&connection).copied().unwrap_or(0)
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let Some(addr) = self.connection else { return };
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&addr) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn refuses_past_the_limit_per_connection_and_frees_on_drop() {
        let watches = ConnectionWatches::new(2);
        let (a, b): (SocketAddr, SocketAddr) =
            ("127.0.0.1:1000".parse().unwrap(), "127.0.0.1:1001".parse().unwrap());
        let first = watches.admit(Some(a)).unwrap();
        let _second = watches.admit(Some(a)).unwrap();
        let refused = watches.admit(Some(a)).unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert!(refused.message().contains("limits.max_watchers_per_connection = 2"));
        assert_eq!(status::kind(&refused), Some(ErrorKind::TooManyWatchers));
        // Another connection has its own count; an unknown one is not counted.
        let _other = watches.admit(Some(b)).unwrap();
        let _unknown: Vec<WatchSlot> = (0..3).map(|_| watches.admit(None).unwrap()).collect();
        drop(first);
        assert_eq!(watches.open_on(a), 1);
        let _again = watches.admit(Some(a)).unwrap();
        assert_eq!(watches.open_on(a), 2);
    }
}
