//! Elections: the core's leader record as the wire's `LeaderInfo`.

use warden_core::election::Leader;

use crate::v1 as pb;

/// The leader of the election `name` as the wire shows it, with the identity that opened
/// its session (empty without TLS, or once the session is gone, for a change replayed
/// from history).
pub fn leader_info(name: &str, leader: Leader, identity: String) -> pb::LeaderInfo {
    pb::LeaderInfo {
        name: name.to_owned(),
        value: leader.value,
        token: leader.token,
        session_id: leader.session,
        identity,
        candidate: leader.candidate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_keeps_every_field() {
        let leader = Leader {
            candidate: "/e/w-0000000002".into(),
            session: 7,
            token: 40,
            value: "v".into(),
        };
        let info = leader_info("/e", leader, "alice".into());
        assert_eq!(
            (info.name.as_str(), &info.value[..], info.token, info.session_id),
            ("/e", &b"v"[..], 40, 7)
        );
        assert_eq!((info.identity.as_str(), info.candidate.as_str()), ("alice", "/e/w-0000000002"));
    }
}
