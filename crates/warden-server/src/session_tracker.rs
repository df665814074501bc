//! Session deadlines, tracked in memory by the leader (DESIGN §3).
//!
//! Keepalives never enter the log: the leader renews a deadline in memory and proposes an
//! expiry when one passes. Everything here is tied to the term it was decided in: a new
//! term starts over, and an expiry carries its term.
//!
//! When this node becomes leader in a new term, it gives every live session a full ttl
//! from that moment (the takeover). It cannot know the deadlines the old leader granted,
//! but it can bound them (Chubby's rule: never end a session before the latest deadline
//! the old leader could have granted):
//!
//! - the old leader acknowledged a renewal only if a quorum had acknowledged it within
//!   half an election timeout (`SessionService::lease`);
//! - each member of that quorum then refused to vote for anyone for a full election
//!   timeout (openraft's leader lease is `election_timeout_max`), and this node needed
//!   the vote of at least one of them;
//!
//! so every renewal the old leader acknowledged happened before this node was elected,
//! and its deadline, renewal + ttl, is before takeover + ttl. This assumes clocks that
//! run at the same rate (as every lease does), and a quorum-ack age that is not too stale:
//! it is read from raft's metrics, refreshed about every 1.5 heartbeats, so the lease is
//! kept at most T minus two heartbeats (`Node::start`).
//!
//! Anything shorter is unsafe: the old rule, the last checkpointed remaining ttl plus an
//! election timeout, forgot a renewal made after the checkpoint and ended such a session
//! seconds early. The price is that a dead client's session outlives it by up
//! to a ttl after each leader change, and leader churn faster than the ttl keeps it
//! alive, as in Chubby. There are no checkpoints any more: they could only shorten that
//! bound, which is exactly what must not happen.
//!
//! The clock comes in as arguments, so the rules are tested without waiting.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A session as the state machine has it: id and ttl in ms.
pub(crate) type SessionView = (u64, u64);

/// How long an expiry proposal is given before it is proposed again.
const REPROPOSE_AFTER: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Inner {
    /// The term this node leads in; 0 when it does not lead.
    term: u64,
    /// Each session's deadline.
    sessions: HashMap<u64, Instant>,
    /// Sessions whose expiry was proposed, and when.
    proposed: HashMap<u64, Instant>,
}

/// The answer to a keepalive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// The deadline was renewed.
    Renewed,
    /// This node does not lead in that term: the client must find the leader.
    NotLeading,
    /// The deadline passed and the expiry is under way: the session is lost.
    Expiring,
}

/// The leader's session deadlines.
#[derive(Default)]
pub(crate) struct SessionTracker {
    inner: Mutex<Inner>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SessionTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings the tracker in line with leadership (`leading`: the term, if this node leads
    /// and has applied its own term's first entry) and the live sessions.
    pub(crate) fn sync(&self, leading: Option<u64>, sessions: &[SessionView], now: Instant) {
        let mut inner = self.lock();
        let Some(term) = leading else {
            *inner = Inner::default();
            return;
        };
        if inner.term != term {
            // A takeover: every live session gets a full ttl from now (see the module doc).
            inner.term = term;
            inner.proposed.clear();
            inner.sessions =
                sessions.iter().map(|(id, ttl)| (*id, now + Duration::from_millis(*ttl))).collect();
            return;
        }
        let live: HashMap<u64, u64> = sessions.iter().copied().collect();
        inner.sessions.retain(|id, _| live.contains_key(id));
        inner.proposed.retain(|id, _| live.contains_key(id));
        for (id, ttl) in live {
            // A session opened since the last sync starts with its full ttl.
            inner.sessions.entry(id).or_insert(now + Duration::from_millis(ttl));
        }
    }

    /// Renews a session on a keepalive in `term`.
    pub(crate) fn renew(&self, term: u64, id: u64, ttl_ms: u64, now: Instant) -> Renewal {
        let mut inner = self.lock();
        if inner.term != term || term == 0 {
            return Renewal::NotLeading;
        }
        let past = inner.sessions.get(&id).is_some_and(|deadline| *deadline <= now);
        if past || inner.proposed.contains_key(&id) {
            return Renewal::Expiring;
        }
        inner.sessions.insert(id, now + Duration::from_millis(ttl_ms));
        Renewal::Renewed
    }

    /// The term this node leads in (0: not leading).
    pub(crate) fn term(&self) -> u64 {
        self.lock().term
    }

    /// Sessions past their deadline that need an expiry proposed now, and the term.
    pub(crate) fn due(&self, now: Instant) -> (u64, Vec<u64>) {
        let mut inner = self.lock();
        let mut due: Vec<u64> = inner
            .sessions
            .iter()
            .filter(|(id, deadline)| {
                **deadline <= now
                    && inner.proposed.get(id).is_none_or(|at| now >= *at + REPROPOSE_AFTER)
            })
            .map(|(id, _)| *id)
            .collect();
        due.sort_unstable();
        for id in &due {
            inner.proposed.insert(*id, now);
        }
        (inner.term, due)
    }

    /// Every tracked session's remaining time, in ms, sorted by id.
    pub(crate) fn remaining(&self, now: Instant) -> Vec<(u64, u64)> {
        let inner = self.lock();
        let mut remaining: Vec<(u64, u64)> = inner
            .sessions
            .iter()
            .map(|(id, deadline)| (*id, millis(deadline.saturating_duration_since(now))))
            .collect();
        remaining.sort_unstable();
        remaining
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_new_leader_gives_every_session_a_full_ttl_from_its_takeover() {
        let tracker = SessionTracker::default();
        let t0 = Instant::now();
        tracker.sync(Some(3), &[(1, 10_000), (2, 4_000)], t0);
        assert_eq!(tracker.remaining(t0), [(1, 10_000), (2, 4_000)]);
        assert_eq!(tracker.due(t0 + ms(3_999)).1, Vec::<u64>::new());
        assert_eq!(tracker.due(t0 + ms(4_000)), (3, vec![2]));
        // The expiry applied.
        tracker.sync(Some(3), &[(1, 10_000)], t0 + ms(4_100));
        assert_eq!(tracker.due(t0 + ms(9_999)).1, Vec::<u64>::new());
        assert_eq!(tracker.due(t0 + ms(10_000)), (3, vec![1]));
    }

    /// Issue 11: the old leader renewed a session (at `renewed`), then died; this node is
    /// elected after that renewal, so takeover + ttl is never before renewal + ttl.
    #[test]
    fn a_renewal_the_old_leader_made_just_before_the_takeover_is_never_cut_short() {
        let old = SessionTracker::default();
        let new = SessionTracker::default();
        let t0 = Instant::now();
        old.sync(Some(1), &[(1, 8_000)], t0);
        // Far into the ttl, the old leader acknowledges one last renewal, then dies.
        let renewed = t0 + ms(6_000);
        assert_eq!(old.renew(1, 1, 8_000, renewed), Renewal::Renewed);
        // The new leader can only take over after it (by the leader lease): at once here.
        new.sync(Some(2), &[(1, 8_000)], renewed);
        assert_eq!(new.due(renewed + ms(7_999)).1, Vec::<u64>::new(), "early");
        assert_eq!(new.due(renewed + ms(8_000)), (2, vec![1]));
    }

    #[test]
    fn keepalives_renew_only_in_the_leading_term() {
        let tracker = SessionTracker::default();
        let t0 = Instant::now();
        tracker.sync(Some(5), &[(1, 4_000)], t0);
        assert_eq!(tracker.renew(5, 1, 4_000, t0 + ms(3_000)), Renewal::Renewed);
        assert_eq!(
            tracker.renew(4, 1, 4_000, t0 + ms(3_000)),
            Renewal::NotLeading,
            "a stale term cannot renew"
        );
        assert_eq!(tracker.due(t0 + ms(6_999)).1, Vec::<u64>::new());
        assert_eq!(tracker.due(t0 + ms(7_000)).1, vec![1]);
        tracker.sync(None, &[(1, 4_000)], t0);
        assert_eq!(
            tracker.renew(5, 1, 4_000, t0),
            Renewal::NotLeading,
            "a follower renews nothing"
        );
        assert_eq!(tracker.term(), 0);
    }

    #[test]
    fn each_leader_change_gives_a_dead_clients_session_one_more_ttl_and_no_more() {
        let tracker = SessionTracker::default();
        let t0 = Instant::now();
        // A dead client: never renewed. Each takeover gives it a full ttl from then...
        tracker.sync(Some(1), &[(1, 3_000)], t0);
        tracker.sync(Some(2), &[(1, 3_000)], t0 + ms(2_000));
        assert_eq!(tracker.remaining(t0 + ms(2_000)), [(1, 3_000)]);
        // ...and syncs within a term do not.
        tracker.sync(Some(2), &[(1, 3_000)], t0 + ms(4_000));
        assert_eq!(tracker.due(t0 + ms(4_999)).1, Vec::<u64>::new());
        assert_eq!(tracker.due(t0 + ms(5_000)).1, vec![1]);
    }

    #[test]
    fn a_session_past_its_deadline_cannot_be_renewed() {
        let tracker = SessionTracker::default();
        let t0 = Instant::now();
        tracker.sync(Some(1), &[(1, 1_000)], t0);
        assert_eq!(tracker.renew(1, 1, 1_000, t0 + ms(1_000)), Renewal::Expiring);
        tracker.sync(Some(1), &[(1, 1_000), (2, 1_000)], t0);
        assert_eq!(tracker.due(t0 + ms(1_000)).1, vec![1, 2]);
        assert_eq!(
            tracker.renew(1, 2, 1_000, t0 + ms(1_001)),
            Renewal::Expiring,
            "its expiry is proposed"
        );
    }

    #[test]
    fn new_sessions_get_a_full_ttl_and_gone_ones_are_forgotten() {
        let tracker = SessionTracker::default();
        let t0 = Instant::now();
        tracker.sync(Some(1), &[(1, 5_000)], t0);
        tracker.sync(Some(1), &[(2, 2_000)], t0 + ms(100));
        assert_eq!(tracker.remaining(t0 + ms(100)), [(2, 2_000)]);
    }

    #[test]
    fn an_expiry_is_proposed_once_then_again_if_it_did_not_apply() {
        let tracker = SessionTracker::default();
        let t0 = Instant::now();
        tracker.sync(Some(1), &[(7, 1_000)], t0);
        assert_eq!(tracker.due(t0 + ms(1_000)).1, vec![7]);
        assert_eq!(tracker.due(t0 + ms(1_500)).1, Vec::<u64>::new());
        assert_eq!(tracker.due(t0 + ms(1_000) + REPROPOSE_AFTER).1, vec![7]);
        // A term change starts over, with a full ttl.
        tracker.sync(Some(2), &[(7, 1_000)], t0 + ms(5_000));
        assert_eq!(tracker.remaining(t0 + ms(5_000)), [(7, 1_000)]);
    }
}
