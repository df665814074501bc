//! Ready or not, case by case.

use super::*;

fn follower() -> Facts {
    Facts {
        member_id: 2,
        state: ServerState::Follower,
        leader_id: Some(1),
        term: 4,
        applied_index: 500,
        commit_index: Some(510),
        millis_since_quorum_ack: None,
        stopped: None,
        shutting_down: false,
        removed: false,
        alarms: Vec::new(),
    }
}

fn reason(facts: &Facts) -> Option<String> {
    let health = assess(facts, 100, 1_000);
    assert_eq!(health.ready(), health.reason.is_none());
    assert_eq!(health.status, if health.ready() { "ok" } else { "unavailable" });
    health.reason
}

#[test]
fn a_follower_that_knows_the_leader_and_keeps_up_is_ready() {
    let health = assess(&follower(), 100, 1_000);
    assert_eq!(
        health,
        Health {
            status: "ok",
            member_id: 2,
            role: "follower",
            leader_id: Some(1),
            term: 4,
            applied_index: 500,
            commit_index: Some(510),
            linearizable: true,
            reason: None,
            alarms: Vec::new(),
        }
    );
    // Exactly at the limit is still ready; one more is not.
    let at = Facts { commit_index: Some(600), ..follower() };
    assert_eq!(reason(&at), None);
    let behind = Facts { commit_index: Some(601), ..follower() };
    assert_eq!(
        reason(&behind).as_deref(),
        Some("101 entries behind the leader (health.max_lag_entries is 100)")
    );
    // A learner is held to the same rule.
    let learner = Facts { state: ServerState::Learner, commit_index: Some(601), ..follower() };
    assert!(reason(&learner).is_some_and(|r| r.starts_with("101 entries behind")));
}

#[test]
fn no_leader_no_quorum_stopped_and_shutting_down_are_not_ready() {
    let candidate = Facts { state: ServerState::Candidate, leader_id: None, ..follower() };
    assert_eq!(reason(&candidate).as_deref(), Some("no leader"));
    assert_eq!(assess(&candidate, 100, 1_000).role, "candidate");

    let leader = Facts {
        state: ServerState::Leader,
        leader_id: Some(2),
        millis_since_quorum_ack: Some(40),
        ..follower()
    };
    assert_eq!(reason(&leader), None);
    // A leader does not lag behind itself, whatever its applied index.
    assert_eq!(reason(&Facts { applied_index: 0, ..leader.clone() }), None);
    let alone = Facts { millis_since_quorum_ack: Some(1_500), ..leader.clone() };
    assert_eq!(
        reason(&alone).as_deref(),
        Some("no quorum: the leader has not heard from a majority for 1500 ms")
    );

    let stopped = Facts { stopped: Some("disk full".into()), ..leader.clone() };
    assert_eq!(reason(&stopped).as_deref(), Some("raft stopped: disk full"));
    // Shutting down comes first: it is what an operator did.
    let leaving = Facts { shutting_down: true, ..stopped };
    assert_eq!(reason(&leaving).as_deref(), Some("shutting down"));
}

#[test]
fn the_leader_commit_heard_is_kept_at_its_largest() {
    let heard = LeaderCommit::default();
    assert_eq!(heard.get(), None);
    heard.heard(None);
    assert_eq!(heard.get(), None);
    heard.heard(Some(0));
    assert_eq!(heard.get(), Some(0));
    heard.heard(Some(12));
    heard.heard(Some(7));
    assert_eq!(heard.get(), Some(12));
}

#[test]
fn an_alarm_makes_a_member_unready_and_says_why() {
    let alarm = Alarm { kind: warden_proto::ALARM_NOSPACE, message: "disk low".to_owned() };
    let full = Facts { alarms: vec![alarm.clone()], ..follower() };
    assert_eq!(reason(&full).as_deref(), Some("alarm nospace: disk low"));
    assert_eq!(assess(&full, 100, 1_000).alarms, vec![alarm]);
    // A stopped raft says so first: it is the graver news.
    let stopped = Facts { stopped: Some("storage".to_owned()), ..full };
    assert_eq!(reason(&stopped).as_deref(), Some("raft stopped: storage"));
}
