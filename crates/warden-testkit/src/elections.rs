//! The election checkers: one leader per term, fenced writes by leaders only, and Observe
//! streams that agree with each other and with the leaderships granted.
//!
//! They judge what a test or the fault suite recorded: each leadership as its candidate saw
//! it ([`Term`]), each fenced write the cluster answered ([`FencedTxn`]), and each Observe
//! stream ([`Change`]s). Like [`crate::checks`], each returns one line per violation and
//! is tested on hand-made good and bad histories.

use std::collections::{BTreeMap, HashMap};

/// One leadership, as its candidate saw it. Times are ns since the run began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The candidate (worker).
    pub client: u64,
    /// Its session.
    pub session: u64,
    /// The leadership's token.
    pub token: u64,
    /// When the campaign was sent.
    pub campaigned_at: u64,
    /// When the campaign returned (leading).
    pub granted_at: u64,
    /// The last time the candidate acted as leader: a moment at which it had not been told
    /// of a loss.
    pub last_believed_at: u64,
    /// When its resign was acknowledged, if it resigned and was answered.
    pub resigned_at: Option<u64>,
}

/// A write made by a leader through the cluster, guarded by a compare that its candidate
/// node still exists (so only a live leadership's write applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencedTxn {
    /// The writer.
    pub client: u64,
    /// The leadership's token it wrote with.
    pub token: u64,
    /// Whether the compare held and the write applied.
    pub applied: bool,
    /// The revision of the answer (of the write when applied).
    pub revision: u64,
}

/// A leader as an Observe stream showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its token.
    pub token: u64,
    /// Its session.
    pub session: u64,
    /// Its value.
    pub value: Vec<u8>,
}

/// One change an Observe stream delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The change's revision.
    pub revision: u64,
    /// The leader from then on; `None`: no leader.
    pub leader: Option<Seen>,
}

/// One leader per term: no token granted to two sessions; a campaign sent after another
/// leadership's resign was acknowledged gets a higher token; and no candidate acted as
/// leader after a leadership with a higher token was granted, beyond `margin_ns` (what
/// the client needs to notice a loss: its ttl is counted from the renewal's send, so a
/// deposed leader hears of it at about the moment the cluster expires it).
pub fn terms(terms: &[Term], margin_ns: u64) -> Vec<String> {
    let mut found = Vec::new();
    let mut owner: HashMap<u64, (u64, u64)> = HashMap::new();
    for t in terms {
        if let Some((client, session)) = owner.insert(t.token, (t.client, t.session))
            && session != t.session
        {
            found.push(format!(
                "token {} led by client {client} (session {session}) and client {} (session {})",
                t.token, t.client, t.session
            ));
        }
    }
    let mut by_resign: Vec<&Term> = terms.iter().filter(|t| t.resigned_at.is_some()).collect();
    by_resign.sort_by_key(|t| t.resigned_at);
    for b in terms {
        let before = by_resign
            .iter()
            .take_while(|a| a.resigned_at.is_some_and(|r| r < b.campaigned_at))
            .map(|a| a.token)
            .max();
        if let Some(t) = before
            && b.token <= t
        {
            found.push(format!(
                "client {} was granted token {} after a leadership with token {t} had resigned",
                b.client, b.token
            ));
        }
    }
    let mut by_token: Vec<&Term> = terms.iter().collect();
    by_token.sort_by_key(|t| t.token);
    // The term with the latest belief among the lower tokens.
    let mut latest: Option<&Term> = None;
    let mut i = 0;
    while i < by_token.len() {
        let token = by_token[i].token;
        let end = i + by_token[i..].iter().take_while(|t| t.token == token).count();
        for b in &by_token[i..end] {
            if let Some(a) = latest
                && a.last_believed_at > b.granted_at.saturating_add(margin_ns)
            {
                found.push(format!(
                    "client {} still acted as leader (token {}) {} ms after client {} was granted token {}",
                    a.client,
                    a.token,
                    (a.last_believed_at - b.granted_at) / 1_000_000,
                    b.client,
                    b.token
                ));
            }
        }
        for a in &by_token[i..end] {
            if latest.is_none_or(|l| a.last_believed_at > l.last_believed_at) {
                latest = Some(a);
            }
        }
        i = end;
    }
    found
}

/// Fenced writes by leaders only: the applied writes, in revision order, never go back to
/// a lower token (a deposed leader's write applied after its successor's).
pub fn fenced(writes: &[FencedTxn]) -> Vec<String> {
    let mut applied: Vec<&FencedTxn> = writes.iter().filter(|w| w.applied).collect();
    applied.sort_by_key(|w| w.revision);
    let mut found = Vec::new();
    let mut highest: Option<&FencedTxn> = None;
    for w in applied {
        if let Some(h) = highest {
            if w.token < h.token {
                found.push(format!(
                    "client {}'s write with token {} applied at revision {} after client {}'s with token {} at revision {}",
                    w.client, w.token, w.revision, h.client, h.token, h.revision
                ));
                continue;
            }
            if w.revision == h.revision && w.token != h.token {
                found.push(format!("two writes answered with revision {}", w.revision));
            }
        }
        highest = Some(w);
    }
    found
}

/// Observe streams: each in revision order, a new leader at the revision of its token and
/// no leader shown without the change that made it lead; one session per token across
/// streams; every two streams the same changes where their spans overlap; and every
/// granted leadership whose token lies in a stream's span present in it.
pub fn observed(streams: &[Vec<Change>], terms: &[Term]) -> Vec<String> {
    let mut found = Vec::new();
    let mut owner: HashMap<u64, u64> = HashMap::new();
    for (n, stream) in streams.iter().enumerate() {
        let mut previous: Option<&Change> = None;
        for c in stream {
            if let Some(p) = previous
                && c.revision <= p.revision
            {
                found.push(format!(
                    "stream {n}: revision {} after revision {}",
                    c.revision, p.revision
                ));
            }
            if let Some(l) = &c.leader {
                if let Some(s) = owner.insert(l.token, l.session)
                    && s != l.session
                {
                    found.push(format!(
                        "stream {n}: token {} shown for sessions {s} and {}",
                        l.token, l.session
                    ));
                }
                let continues = previous
                    .and_then(|p| p.leader.as_ref())
                    .is_some_and(|p| p.token == l.token && p.session == l.session);
                if l.token > c.revision {
                    found.push(format!(
                        "stream {n}: token {} shown at the earlier revision {}",
                        l.token, c.revision
                    ));
                } else if l.token < c.revision && previous.is_some() && !continues {
                    found.push(format!(
                        "stream {n}: leader with token {} appears at revision {} without the change that made it lead",
                        l.token, c.revision
                    ));
                }
            }
            previous = Some(c);
        }
    }
    let spans: Vec<Option<(u64, u64)>> =
        streams.iter().map(|s| Some((s.first()?.revision, s.last()?.revision))).collect();
    for (i, a) in streams.iter().enumerate() {
        for (j, b) in streams.iter().enumerate().skip(i + 1) {
            let (Some((a0, a1)), Some((b0, b1))) = (spans[i], spans[j]) else { continue };
            // The first change of a stream started from "now" shows the state, not a change:
            // compare from the later start's next revision.
            let (from, to) = (a0.max(b0), a1.min(b1));
            let part = |s: &[Change]| -> BTreeMap<u64, Option<Seen>> {
                s.iter()
                    .filter(|c| c.revision > from && c.revision <= to)
                    .map(|c| (c.revision, c.leader.clone()))
                    .collect()
            };
            let (pa, pb) = (part(a), part(b));
            if pa != pb {
                let differs = pa
                    .iter()
                    .find(|(r, l)| pb.get(r) != Some(l))
                    .map(|(r, _)| *r)
                    .or_else(|| pb.keys().find(|r| !pa.contains_key(r)).copied());
                found.push(format!(
                    "streams {i} and {j} differ within revisions {from}..={to} (first at revision {differs:?})"
                ));
            }
        }
    }
    for (n, stream) in streams.iter().enumerate() {
        let Some((first, last)) = spans[n] else { continue };
        for t in terms.iter().filter(|t| t.token > first && t.token <= last) {
            let shown = stream.iter().any(|c| {
                c.revision == t.token
                    && c.leader
                        .as_ref()
                        .is_some_and(|l| l.token == t.token && l.session == t.session)
            });
            if !shown {
                found.push(format!(
                    "stream {n} (revisions {first}..={last}) misses client {}'s leadership with token {}",
                    t.client, t.token
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(client: u64, token: u64, granted_at: u64, believed: u64) -> Term {
        Term {
            client,
            session: client * 100,
            token,
            campaigned_at: granted_at.saturating_sub(1),
            granted_at,
            last_believed_at: believed,
            resigned_at: Some(believed + 1),
        }
    }

    #[test]
    fn terms_find_shared_tokens_reused_tokens_and_overlapping_leaders() {
        let good = [term(1, 10, 0, 5), term(2, 20, 7, 9), term(1, 30, 10, 12)];
        assert!(terms(&good, 0).is_empty(), "{:?}", terms(&good, 0));
        // The same leadership seen twice (campaign again in the session) is one term.
        let again = [term(1, 10, 0, 5), term(1, 10, 0, 6)];
        assert!(terms(&again, 0).is_empty());

        let shared = [term(1, 10, 0, 5), term(2, 10, 0, 5)];
        assert_eq!(terms(&shared, 100).len(), 1);
        let lower = [term(1, 10, 0, 5), term(2, 8, 10, 12)];
        assert_eq!(terms(&lower, 100).len(), 1, "granted a lower token after a resign");
        // Client 1 still acted 50 ns after client 2 led: within a margin of 100, not of 10.
        let overlap = [term(1, 10, 0, 150), term(2, 20, 100, 200)];
        assert!(terms(&overlap, 100).is_empty());
        let found = terms(&overlap, 10);
        assert_eq!(found.len(), 1, "{found:?}");
        // An overlap hidden behind an intermediate term is found too.
        let behind = [term(1, 10, 0, 500), term(2, 20, 100, 110), term(3, 30, 200, 300)];
        assert_eq!(terms(&behind, 10).len(), 2, "{:?}", terms(&behind, 10));
    }

    fn txn(client: u64, token: u64, applied: bool, revision: u64) -> FencedTxn {
        FencedTxn { client, token, applied, revision }
    }

    #[test]
    fn fenced_finds_a_deposed_leaders_write_applied_after_its_successors() {
        let good = [txn(1, 10, true, 11), txn(2, 20, true, 21), txn(1, 10, false, 22)];
        assert!(fenced(&good).is_empty());
        let stale = [txn(2, 20, true, 21), txn(1, 10, true, 22)];
        assert_eq!(fenced(&stale).len(), 1);
        // Recorded out of order, judged in revision order.
        let shuffled = [txn(1, 10, true, 22), txn(2, 20, true, 21)];
        assert_eq!(fenced(&shuffled).len(), 1);
    }

    fn seen(token: u64, session: u64) -> Option<Seen> {
        Some(Seen { token, session, value: b"v".to_vec() })
    }

    fn change(revision: u64, leader: Option<Seen>) -> Change {
        Change { revision, leader }
    }

    #[test]
    fn observed_finds_gaps_disagreements_and_missed_leaders() {
        let a = vec![
            change(5, None),
            change(6, seen(6, 100)),
            change(8, None),
            change(9, seen(9, 200)),
        ];
        let b = vec![change(7, seen(6, 100)), change(8, None), change(9, seen(9, 200))];
        let granted = [term(1, 6, 0, 1), term(2, 9, 2, 3)];
        let all = observed(&[a.clone(), b.clone()], &granted);
        assert!(all.is_empty(), "{all:?}");

        // b skips "no leader" at 8.
        let gap = vec![change(7, seen(6, 100)), change(9, seen(9, 200))];
        assert_eq!(observed(&[a.clone(), gap], &granted).len(), 1);
        // A leader shown without its start.
        let jumped = vec![change(5, None), change(10, seen(9, 200))];
        assert_eq!(observed(&[jumped], &[]).len(), 1);
        // Out of order.
        let back = vec![change(9, seen(9, 200)), change(8, None)];
        assert!(!observed(&[back], &[]).is_empty());
        // A granted leadership that no stream shows.
        let missed = [term(1, 6, 0, 1), term(3, 7, 2, 3)];
        assert_eq!(observed(&[a], &missed).len(), 1);
        // One token, two sessions.
        let two = vec![change(6, seen(6, 100)), change(7, seen(6, 300))];
        assert!(!observed(&[two], &[]).is_empty());
    }
}
