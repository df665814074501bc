//! The checkers besides linearizability: fencing, watch streams, durability of
//! acknowledged writes, and ephemeral nodes of ended sessions. Each takes what the suite
//! recorded and returns one line per violation.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One hold of the fenced lock, as its client saw it. Times are ns since the run began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The client (worker) that held.
    pub client: u64,
    /// Its fencing token.
    pub token: u64,
    /// When the acquire was sent.
    pub requested_at: u64,
    /// When the release was acknowledged, if it was.
    pub released_at: Option<u64>,
}

/// One write to the fenced resource, in the order the resource saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedWrite {
    /// The writer.
    pub client: u64,
    /// The token it sent.
    pub token: u64,
    /// Whether the resource accepted it.
    pub accepted: bool,
    /// For a rejected write: the writer's session was renewed after it and its hold was
    /// never reported lost, so it was a live holder when it was refused.
    pub live_after: bool,
}

/// Fencing: no token held by two clients; a hold that began after another's release was
/// acknowledged has a higher token; no accepted write with a token lower than one accepted
/// before it; no write of a live holder refused (which would mean two live holders).
pub fn fencing(holds: &[Hold], writes: &[FencedWrite]) -> Vec<String> {
    let mut found = Vec::new();
    let mut owner: HashMap<u64, u64> = HashMap::new();
    for h in holds {
        if let Some(other) = owner.insert(h.token, h.client)
            && other != h.client
        {
            found
                .push(format!("token {} was granted to clients {other} and {}", h.token, h.client));
        }
    }
    let mut by_release: Vec<&Hold> = holds.iter().filter(|h| h.released_at.is_some()).collect();
    by_release.sort_by_key(|h| h.released_at);
    for b in holds {
        // The highest token among holds released (acknowledged) before b was requested.
        let before = by_release
            .iter()
            .take_while(|a| a.released_at.is_some_and(|r| r < b.requested_at))
            .map(|a| a.token)
            .max();
        if let Some(t) = before
            && b.token <= t
        {
            found.push(format!(
                "client {} got token {} after a hold with token {t} was released",
                b.client, b.token
            ));
        }
    }
    let mut highest = 0;
    for w in writes {
        if w.accepted {
            if w.token < highest {
                found.push(format!("stale token {} accepted after {highest}", w.token));
            }
            highest = highest.max(w.token);
        } else if w.live_after {
            found.push(format!(
                "client {}'s write with token {} was refused while it was a live holder (another holder had token {highest})",
                w.client, w.token
            ));
        }
    }
    found
}

/// An acknowledged write: the node and the revision that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AckedWrite {
    /// The node.
    pub path: String,
    /// The revision the cluster answered with.
    pub revision: u64,
}

/// Watch: each stream's events in revision order with no (revision, path) twice, and every
/// acknowledged write under the prefix whose revision lies within the stream's span
/// present in it.
pub fn watch_stream(stream: &[(u64, String)], acked: &[AckedWrite], prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let mut last = 0;
    for (revision, path) in stream {
        if *revision < last {
            found.push(format!("event of revision {revision} ({path}) after revision {last}"));
        }
        last = last.max(*revision);
        if !seen.insert((*revision, path.clone())) {
            found.push(format!("event of revision {revision} ({path}) delivered twice"));
        }
    }
    let (Some(first), Some(end)) = (stream.first().map(|e| e.0), stream.last().map(|e| e.0)) else {
        return found;
    };
    for a in acked.iter().filter(|a| a.path.starts_with(prefix)) {
        if a.revision >= first && a.revision <= end && !seen.contains(&(a.revision, a.path.clone()))
        {
            found.push(format!(
                "acknowledged write of {} at revision {} missing from a stream that covers {first}..={end}",
                a.path, a.revision
            ));
        }
    }
    found
}

/// Durability: every acknowledged id is present at the end, and no id is present twice
/// (a write applied twice).
pub fn durability(acked: &[String], present: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for id in present {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    for (id, n) in &counts {
        if *n > 1 {
            found.push(format!("{id} was applied {n} times"));
        }
    }
    for id in acked {
        if !counts.contains_key(id.as_str()) {
            found.push(format!("acknowledged {id} is missing"));
        }
    }
    found
}

/// Ephemerals: every ephemeral node's owner is a live session, and no session the client
/// closed (acknowledged) owns one.
pub fn ephemerals(nodes: &[(String, u64)], live: &[u64], closed: &[u64]) -> Vec<String> {
    let live: BTreeSet<u64> = live.iter().copied().collect();
    let closed: BTreeSet<u64> = closed.iter().copied().collect();
    let mut found = Vec::new();
    for (path, owner) in nodes {
        if closed.contains(owner) {
            found.push(format!("{path} outlived the close of its session {owner}"));
        } else if !live.contains(owner) {
            found.push(format!("{path} is owned by session {owner}, which has ended"));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(client: u64, token: u64, requested_at: u64, released_at: Option<u64>) -> Hold {
        Hold { client, token, requested_at, released_at }
    }

    fn write(client: u64, token: u64, accepted: bool, live_after: bool) -> FencedWrite {
        FencedWrite { client, token, accepted, live_after }
    }

    #[test]
    fn fencing_finds_shared_and_decreasing_tokens_and_refused_live_holders() {
        let good = [hold(1, 10, 0, Some(5)), hold(2, 12, 6, Some(9)), hold(1, 20, 3, None)];
        let writes =
            [write(1, 10, true, false), write(2, 12, true, false), write(1, 10, false, false)];
        assert!(fencing(&good, &writes).is_empty(), "{:?}", fencing(&good, &writes));

        let shared = [hold(1, 10, 0, Some(5)), hold(2, 10, 6, None)];
        assert_eq!(fencing(&shared, &[]).len(), 2, "shared and not higher");
        let lower = [hold(1, 10, 0, Some(5)), hold(2, 9, 6, None)];
        assert_eq!(fencing(&lower, &[]).len(), 1);
        // Requested before the release was acknowledged: any order is fine.
        let concurrent = [hold(1, 10, 0, Some(5)), hold(2, 9, 4, None)];
        assert!(fencing(&concurrent, &[]).is_empty());

        let stale = [write(1, 12, true, false), write(2, 10, true, false)];
        assert_eq!(fencing(&[], &stale).len(), 1);
        let refused_live = [write(1, 12, true, false), write(2, 10, false, true)];
        assert_eq!(fencing(&[], &refused_live).len(), 1);
    }

    #[test]
    fn watch_finds_reordered_repeated_and_missing_events() {
        let acked = vec![
            AckedWrite { path: "/r/a".into(), revision: 5 },
            AckedWrite { path: "/r/b".into(), revision: 6 },
            AckedWrite { path: "/r/a".into(), revision: 7 },
            AckedWrite { path: "/other".into(), revision: 8 },
            AckedWrite { path: "/r/a".into(), revision: 9 },
        ];
        let full = vec![(5, "/r/a".to_owned()), (6, "/r/b".to_owned()), (7, "/r/a".to_owned())];
        assert!(
            watch_stream(&full, &acked, "/r/").is_empty(),
            "a stream ending at 7 need not have 9"
        );
        let missing = vec![(5, "/r/a".to_owned()), (7, "/r/a".to_owned())];
        assert_eq!(watch_stream(&missing, &acked, "/r/").len(), 1);
        let twice = vec![(5, "/r/a".to_owned()), (5, "/r/a".to_owned()), (6, "/r/b".to_owned())];
        assert_eq!(watch_stream(&twice, &acked, "/r/").len(), 1);
        let reordered = vec![(6, "/r/b".to_owned()), (5, "/r/a".to_owned())];
        assert_eq!(watch_stream(&reordered, &acked, "/r/").len(), 1);
        assert!(watch_stream(&[], &acked, "/r/").is_empty());
    }

    #[test]
    fn durability_finds_lost_and_doubled_writes() {
        let acked = vec!["a".to_owned(), "b".to_owned()];
        assert!(durability(&acked, &["a".into(), "b".into(), "c".into()]).is_empty());
        assert_eq!(durability(&acked, &["a".into()]), ["acknowledged b is missing"]);
        assert_eq!(
            durability(&acked, &["a".into(), "b".into(), "a".into()]),
            ["a was applied 2 times"]
        );
    }

    #[test]
    fn ephemerals_of_ended_sessions_are_found() {
        let nodes = vec![("/e/1".to_owned(), 1), ("/e/2".to_owned(), 2), ("/e/3".to_owned(), 3)];
        assert_eq!(ephemerals(&nodes, &[1, 2, 3], &[]).len(), 0);
        assert_eq!(ephemerals(&nodes, &[1, 3], &[]).len(), 1);
        assert_eq!(ephemerals(&nodes, &[1, 2, 3], &[3]).len(), 1);
    }
}
