//! What a member says about its peers' reachability, for operators: once when a peer
//! cannot be reached, a warning if it stays so for [`WARN_AFTER`], again every [`REPEAT`]
//! while it does, and once when it is back. Raft retries a dead peer many times a second;
//! a line per failed RPC drowned the log.
//!
//! The first words are information, not a warning: at a cluster's start the members come
//! up one by one, and at a clean stop or restart they go one by one. A peer that was
//! reached since this member started and stays away is a warning; one never reached stays
//! information ("not reachable yet").
//!
//! Membership changes and leader transfers ask whether a peer answered recently
//! ([`PeerHealth::answered_within`]): a peer killed a moment ago has no failed RPC yet, and
//! a change judged on failures alone would be proposed to a quorum that cannot commit it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{info, warn};
use warden_storage::NodeId;

/// How long a peer that was reached may stay unreachable before it is a warning.
pub(crate) const WARN_AFTER: Duration = Duration::from_secs(3);
/// How often a peer that stays unreachable is mentioned again.
pub(crate) const REPEAT: Duration = Duration::from_secs(10);

/// What was said last about a peer that is down.
#[derive(Debug, Clone, Copy)]
struct Down {
    since: Instant,
    said: Instant,
    warned: bool,
}

#[derive(Debug, Default)]
struct Peer {
    /// Reached at least once since this member started.
    reached: bool,
    /// When an RPC to it was last answered.
    answered: Option<Instant>,
    down: Option<Down>,
}

/// The reachability of each peer, as this member's RPCs found it.
#[derive(Debug, Default)]
pub(crate) struct PeerHealth {
    peers: Mutex<HashMap<NodeId, Peer>>,
}

impl PeerHealth {
    /// An RPC to `peer` was answered.
    pub(crate) fn reached(&self, peer: NodeId) {
        self.reached_at(peer, Instant::now());
    }

    fn reached_at(&self, peer: NodeId, now: Instant) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let p = peers.entry(peer).or_default();
        if let Some(down) = p.down.take() {
            let after_s = down.since.elapsed().as_secs();
            if p.reached {
                info!(peer, after_s, "member reachable again");
            } else {
                info!(peer, after_s, "member reachable");
            }
        }
        p.reached = true;
        p.answered = Some(now);
    }

    /// Whether `peer` answered an RPC of this member within `window` and none failed in
    /// the transport since; false for a peer never reached.
    pub(crate) fn answered_within(&self, peer: NodeId, window: Duration) -> bool {
        self.answered_within_at(peer, window, Instant::now())
    }

    fn answered_within_at(&self, peer: NodeId, window: Duration, now: Instant) -> bool {
        let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        peers.get(&peer).is_some_and(|p| {
            p.down.is_none()
                && p.answered.is_some_and(|at| now.saturating_duration_since(at) <= window)
        })
    }

    /// An RPC to `peer` at `addr` failed in the transport with `error`.
    pub(crate) fn unreachable(&self, peer: NodeId, addr: &str, error: &str) {
        self.unreachable_at(peer, addr, error, Instant::now());
    }

    /// As [`PeerHealth::unreachable`] at `now`; returns whether a line was written.
    fn unreachable_at(&self, peer: NodeId, addr: &str, error: &str, now: Instant) -> bool {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let p = peers.entry(peer).or_default();
        let Some(down) = p.down.as_mut() else {
            p.down = Some(Down { since: now, said: now, warned: false });
            if p.reached {
                info!(peer, addr, error, "member not reachable; raft keeps retrying");
            } else {
                info!(peer, addr, "member not reachable yet; raft keeps retrying");
            }
            return true;
        };
        let down_s = now.duration_since(down.since).as_secs();
        let warn_now = p.reached && !down.warned && now.duration_since(down.since) >= WARN_AFTER;
        if !warn_now && now.duration_since(down.said) < REPEAT {
            return false;
        }
        down.said = now;
        if p.reached {
            down.warned = true;
            warn!(peer, addr, error, down_s, "cannot reach member; raft keeps retrying");
        } else {
            info!(peer, addr, down_s, "member still not reachable; raft keeps retrying");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_peer_is_mentioned_once_then_warned_of_then_every_repeat_not_per_rpc() {
        let health = PeerHealth::default();
        let t0 = Instant::now();
        let said = |ms: u64| {
            health.unreachable_at(2, "127.0.0.1:1", "refused", t0 + Duration::from_millis(ms))
        };
        // Never reached: information now and every REPEAT, never a warning.
        assert!(said(0));
        assert_eq!((1..160).filter(|i| said(i * 60)).count(), 0, "16 failed RPCs a second");
        assert!(said(10_000));
        health.reached(2);
        // Reached, then gone: information, a warning after WARN_AFTER, then every REPEAT.
        assert!(said(20_000));
        assert_eq!((1..49).filter(|i| said(20_000 + i * 60)).count(), 0);
        assert!(said(23_000), "warned of after WARN_AFTER");
        assert_eq!((1..160).filter(|i| said(23_000 + i * 60)).count(), 0);
        assert!(said(33_000));
    }

    #[test]
    fn a_peer_is_up_while_it_answered_within_the_window_and_no_rpc_failed_since() {
        let health = PeerHealth::default();
        let window = Duration::from_secs(2);
        let t0 = Instant::now();
        assert!(!health.answered_within_at(2, window, t0), "never reached");
        health.reached_at(2, t0);
        assert!(health.answered_within_at(2, window, t0));
        assert!(health.answered_within_at(2, window, t0 + window));
        // Silent (killed a moment ago, no RPC failed yet): down once the window passed.
        assert!(!health.answered_within_at(2, window, t0 + window + Duration::from_millis(1)));
        // A failed RPC makes it down at once, an answer up again.
        health.unreachable_at(2, "127.0.0.1:1", "refused", t0);
        assert!(!health.answered_within_at(2, window, t0));
        health.reached_at(2, t0);
        assert!(health.answered_within_at(2, window, t0));
        assert!(!health.answered_within_at(3, window, t0), "another peer");
    }
}
