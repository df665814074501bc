//! A session's holds and the notices of holds it lost.
//!
//! The reason of a lost hold is text on the wire, shown to people (the client's
//! `LockGuard::lost_reason`); the ones a member sends are spelled here once.

use crate::v1 as pb;

/// Why a hold was lost: revoked while its session lives (by `warden lock revoke`, or a
/// delete that revoked locks).
pub const LOST_REVOKED: &str = "revoked";

/// Why a hold was lost: its holder resigned an election (another process of the session
/// may still act as the leader).
pub const LOST_RESIGNED: &str = "resigned";

/// The reason a member sends for a hold taken by a marked change of its waiter.
pub fn lost_reason(mark: warden_core::queue_data::Mark) -> &'static str {
    match mark {
        warden_core::queue_data::Mark::Revoked => LOST_REVOKED,
        warden_core::queue_data::Mark::Resigned => LOST_RESIGNED,
    }
}

/// Why a hold was lost: its session ended (expired or closed).
pub const LOST_SESSION_ENDED: &str = "session ended";

/// The notice that the hold of `path` with `token` was lost for `reason`.
pub fn lock_lost(path: String, token: u64, reason: &str) -> pb::LockLost {
    pb::LockLost { path, token, reason: reason.to_owned() }
}

/// A hold the client reports on its keep-alive stream, so the member can say which of
/// them the session no longer has.
pub fn hold(path: String, token: u64) -> pb::Hold {
    pb::Hold { path, token }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_notice_carries_its_hold_and_reason() {
        let l = lock_lost("/l".into(), 3, LOST_SESSION_ENDED);
        assert_eq!((l.path.as_str(), l.token, l.reason.as_str()), ("/l", 3, "session ended"));
        let h = hold("/l".into(), 3);
        assert_eq!((h.path.as_str(), h.token), ("/l", 3));
        assert_ne!(LOST_REVOKED, LOST_SESSION_ENDED);
        use warden_core::queue_data::Mark;
        assert_eq!(lost_reason(Mark::Revoked), LOST_REVOKED);
        assert_eq!(lost_reason(Mark::Resigned), LOST_RESIGNED);
    }
}
