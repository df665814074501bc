//! What a member says about its peers' reachability, for operators: once when a peer
//! cannot be reached, again every [`REPEAT`] while it stays so, and once when it is back.
//! Raft retries a dead peer many times a second; a line per failed RPC drowned the log.
//!
//! A peer never reached since this member started is "not reachable yet" (info: at a
//! cluster's start the members come up one by one); one that was reached and is gone is
//! a warning.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{info, warn};
use warden_storage::NodeId;

/// How often a peer that stays unreachable is mentioned again.
pub(crate) const REPEAT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Peer {
    /// Reached at least once since this member started.
    reached: bool,
    /// Unreachable since then, last said at the second instant.
    down: Option<(Instant, Instant)>,
}

/// The reachability of each peer, as this member's RPCs found it.
#[derive(Debug, Default)]
pub(crate) struct PeerHealth {
    peers: Mutex<HashMap<NodeId, Peer>>,
}

impl PeerHealth {
    /// An RPC to `peer` was answered.
    pub(crate) fn reached(&self, peer: NodeId) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let p = peers.entry(peer).or_default();
        if let Some((since, _)) = p.down.take() {
            let after_s = since.elapsed().as_secs();
            if p.reached {
                info!(peer, after_s, "member reachable again");
            } else {
                info!(peer, after_s, "member reachable");
            }
        }
        p.reached = true;
    }

    /// An RPC to `peer` at `addr` failed in the transport with `error`.
    pub(crate) fn unreachable(&self, peer: NodeId, addr: &str, error: &str) {
        self.unreachable_at(peer, addr, error, Instant::now());
    }

    fn unreachable_at(&self, peer: NodeId, addr: &str, error: &str, now: Instant) -> bool {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let p = peers.entry(peer).or_default();
        let since = match p.down {
            Some((_, said)) if now.duration_since(said) < REPEAT => {
                return false;
            }
            Some((since, _)) => since,
            None => now,
        };
        p.down = Some((since, now));
        let down_s = now.duration_since(since).as_secs();
        if p.reached {
            warn!(peer, addr, error, down_s, "cannot reach member; raft keeps retrying");
        } else {
            info!(peer, addr, down_s, "member not reachable yet; raft keeps retrying");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_peer_is_mentioned_once_per_repeat_not_per_rpc() {
        let health = PeerHealth::default();
        let t0 = Instant::now();
        let said = |at: Duration| health.unreachable_at(2, "127.0.0.1:1", "refused", t0 + at);
        assert!(said(Duration::ZERO));
        let rpcs_within_repeat = (1..160).filter(|i| said(Duration::from_millis(i * 60))).count();
        assert_eq!(rpcs_within_repeat, 0, "16 failed RPCs a second for 10 s say nothing more");
        assert!(said(REPEAT));
        health.reached(2);
        assert!(said(REPEAT + Duration::from_millis(1)), "down again after being back");
    }
}
