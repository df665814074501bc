//! The cluster status document, built in this one place: `warden cluster status` prints it
//! (text, or JSON with `-o json`) and `GET /cluster/status` answers it as JSON.
//!
//! It is made from a member's `Cluster.Status` answer (leader, term, membership) and what
//! is known of each member from its own answer. The two differ only in that source: the
//! CLI asks every member ([`Known::Answered`] or [`Known::Unreachable`]); the HTTP port
//! shows what the member it is on knows: its own answer, which member leads, and nothing
//! of the others' roles or indexes ([`Known::NotAsked`]: role `unknown`, applied index
//! null).

use serde_json::{Value, json};
use warden_proto::v1 as pb;

/// What is known of one member besides the membership.
#[derive(Debug, Clone, Copy)]
pub enum Known<'a> {
    /// Its own `Cluster.Status` answer.
    Answered(&'a pb::StatusResponse),
    /// It was asked and did not answer.
    Unreachable,
    /// It was not asked (the HTTP port shows what one member knows).
    NotAsked,
}

/// One member's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its id.
    pub id: u64,
    /// Its client address.
    pub client_addr: String,
    /// `leader`, `follower`, `candidate`, `learner`, `shutdown`, `unreachable`, or
    /// `unknown` (not asked and not the leader).
    pub role: String,
    /// The last entry applied to its state, when known.
    pub applied_index: Option<u64>,
}

/// An alarm a member reported (`crate::space`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmStatus {
    /// The member that raised it.
    pub member_id: u64,
    /// `nospace` or `quota`.
    pub kind: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// The whole document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The leader, 0 when none is known.
    pub leader_id: u64,
    /// The term of the member asked.
    pub term: u64,
    /// Every member of the membership.
    pub members: Vec<MemberStatus>,
    /// The alarms of the members that answered, by member.
    pub alarms: Vec<AlarmStatus>,
}

impl ClusterStatus {
    /// From one member's answer (`status`) and what `known` says of each member.
    pub fn new<'a>(
        status: &pb::StatusResponse,
        known: impl Fn(&pb::Member) -> Known<'a>,
    ) -> ClusterStatus {
        let mut alarms = Vec::new();
        let members = status
            .members
            .iter()
            .map(|m| {
                let (role, applied_index) = match known(m) {
                    Known::Answered(own) => {
                        alarms.extend(own.alarms.iter().map(|a| AlarmStatus {
                            member_id: m.id,
                            kind: a.kind.clone(),
                            message: a.message.clone(),
                        }));
                        (own.role.clone(), Some(own.applied_index))
                    }
                    Known::Unreachable => ("unreachable".to_owned(), None),
                    Known::NotAsked if m.id == status.leader_id => ("leader".to_owned(), None),
                    Known::NotAsked => ("unknown".to_owned(), None),
                };
                // A learner says so whatever raft role it reports, once it is reached.
                let role = if m.membership == "learner" && role != "unreachable" {
                    "learner".to_owned()
                } else {
                    role
                };
                MemberStatus { id: m.id, client_addr: m.client_addr.clone(), role, applied_index }
            })
            .collect();
        ClusterStatus { leader_id: status.leader_id, term: status.term, members, alarms }
    }

    /// What the member at `status` knows by itself (the HTTP port's document).
    pub fn of_member(status: &pb::StatusResponse) -> ClusterStatus {
        ClusterStatus::new(status, |m| {
            if m.id == status.id { Known::Answered(status) } else { Known::NotAsked }
        })
    }

    /// The document as JSON: `{leader_id, term, members: [{id, client_addr, role,
    /// applied_index}], alarms: [{member_id, kind, message}]}`.
    pub fn json(&self) -> Value {
        let members: Vec<Value> = self
            .members
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "client_addr": m.client_addr,
                    "role": m.role,
                    "applied_index": m.applied_index,
                })
            })
            .collect();
        let alarms: Vec<Value> = self
            .alarms
            .iter()
            .map(|a| json!({ "member_id": a.member_id, "kind": a.kind, "message": a.message }))
            .collect();
        json!({
            "leader_id": self.leader_id,
            "term": self.term,
            "members": members,
            "alarms": alarms,
        })
    }

    /// The document as text for people: the leader and term, a line per member, then a
    /// line per alarm.
    pub fn text(&self) -> String {
        let mut lines = vec![format!("leader {} term {}", self.leader_id, self.term)];
        for m in &self.members {
            lines.push(format!(
                "{:>4}  {:<21}  {:<11}  applied {}",
                m.id,
                m.client_addr,
                m.role,
                m.applied_index.map(|a| a.to_string()).unwrap_or_else(|| "-".into())
            ));
        }
        for a in &self.alarms {
            lines.push(format!("alarm {} on member {}: {}", a.kind, a.member_id, a.message));
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, membership: &str) -> pb::Member {
        pb::Member {
            id,
            client_addr: format!("127.0.0.1:74{id}0"),
            raft_addr: String::new(),
            membership: membership.into(),
        }
    }

    fn status(id: u64, role: &str, applied_index: u64) -> pb::StatusResponse {
        pb::StatusResponse {
            id,
            leader_id: 1,
            term: 7,
            role: role.into(),
            applied_index,
            members: vec![member(1, "voter"), member(2, "voter"), member(3, "learner")],
            ..Default::default()
        }
    }

    #[test]
    fn the_cli_document_has_every_members_own_answer() {
        let answers = [status(1, "leader", 40), status(2, "follower", 39)];
        let document = ClusterStatus::new(&answers[0], |m| match m.id {
            1 => Known::Answered(&answers[0]),
            2 => Known::Answered(&answers[1]),
            _ => Known::Unreachable,
        });
        assert_eq!(
            document.json(),
            json!({
                "leader_id": 1,
                "term": 7,
                "members": [
                    { "id": 1, "client_addr": "127.0.0.1:7410", "role": "leader", "applied_index": 40 },
                    { "id": 2, "client_addr": "127.0.0.1:7420", "role": "follower", "applied_index": 39 },
                    { "id": 3, "client_addr": "127.0.0.1:7430", "role": "unreachable", "applied_index": null },
                ],
                "alarms": [],
            })
        );
        assert_eq!(
            document.text(),
            "leader 1 term 7\n   1  127.0.0.1:7410         leader       applied 40\n   2  127.0.0.1:7420         follower     applied 39\n   3  127.0.0.1:7430         unreachable  applied -"
        );
    }

    #[test]
    fn one_members_document_has_the_same_shape_with_what_it_knows() {
        let own = status(2, "follower", 39);
        let document = ClusterStatus::of_member(&own);
        let roles: Vec<(&str, Option<u64>)> =
            document.members.iter().map(|m| (m.role.as_str(), m.applied_index)).collect();
        assert_eq!(roles, [("leader", None), ("follower", Some(39)), ("learner", None)]);
        let keys = |v: &Value| -> Vec<String> {
            v["members"][0].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
        };
        let cli = ClusterStatus::new(&own, |_| Known::Unreachable).json();
        assert_eq!(keys(&document.json()), keys(&cli));
        assert_eq!(
            document.json().as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
            cli.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>())
        );
    }

    #[test]
    fn the_alarms_of_the_members_that_answered_are_listed_by_member() {
        let mut full = status(2, "follower", 39);
        full.alarms = vec![pb::Alarm {
            kind: warden_proto::ALARM_NOSPACE.into(),
            message: "free space".into(),
        }];
        let answers = [status(1, "leader", 40), full];
        let document = ClusterStatus::new(&answers[0], |m| match m.id {
            1 => Known::Answered(&answers[0]),
            2 => Known::Answered(&answers[1]),
            _ => Known::Unreachable,
        });
        assert_eq!(
            document.json()["alarms"],
            json!([{ "member_id": 2, "kind": warden_proto::ALARM_NOSPACE, "message": "free space" }])
        );
        assert!(
            document.text().ends_with("\nalarm nospace on member 2: free space"),
            "{}",
            document.text()
        );
    }
}
