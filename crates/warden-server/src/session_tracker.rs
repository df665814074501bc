//! Session deadlines, tracked in memory by the leader (DESIGN §3).
//!
//! Keepalives never enter the log: the leader renews a deadline in memory and proposes an
//! expiry when one passes. When this node becomes leader in a new term, it starts each
//! session from its last checkpointed remaining ttl plus a grace (an election timeout, so
//! a live client has time to find the new leader), never from a fresh full ttl, so leader
//! churn cannot keep a dead client's session alive forever. Everything here is tied to the
//! term it was decided in: a new term starts over, and an expiry carries its term.
//!
//! The clock comes in as arguments, so the rules are tested without waiting.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A session as the state machine has it: id, ttl, last checkpointed remaining ttl.
pub(crate) type SessionView = (u64, u64, Option<u64>);

/// How long an expiry proposal is given before it is proposed again.
const REPROPOSE_AFTER: Duration = Duration::from_secs(1);

/// One session's deadline.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    deadline: Instant,
    /// The deadline includes the grace of a leader change: the session has not been
    /// renewed in this term. Checkpoints leave the grace out, so that leader churn cannot
    /// add it again and again.
    graced: bool,
}

#[derive(Default)]
struct Inner {
    /// The term this node leads in; 0 when it does not lead.
    term: u64,
    sessions: HashMap<u64, Tracked>,
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
pub(crate) struct SessionTracker {
    inner: Mutex<Inner>,
    grace: Duration,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SessionTracker {
    /// A tracker that gives sessions `grace` on top of their checkpoint at a leader change.
    pub(crate) fn new(grace: Duration) -> SessionTracker {
        SessionTracker { inner: Mutex::new(Inner::default()), grace }
    }

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
            inner.term = term;
            inner.proposed.clear();
            inner.sessions = sessions
                .iter()
                .map(|(id, ttl, checkpoint)| {
                    let remaining = Duration::from_millis(checkpoint.unwrap_or(*ttl).min(*ttl));
                    (*id, Tracked { deadline: now + remaining + self.grace, graced: true })
                })
                .collect();
            return;
        }
        let live: HashMap<u64, u64> = sessions.iter().map(|(id, ttl, _)| (*id, *ttl)).collect();
        inner.sessions.retain(|id, _| live.contains_key(id));
        inner.proposed.retain(|id, _| live.contains_key(id));
        for (id, ttl) in live {
            // A session opened since the last sync starts with its full ttl.
            inner
                .sessions
                .entry(id)
                .or_insert(Tracked { deadline: now + Duration::from_millis(ttl), graced: false });
        }
    }

    /// Renews a session on a keepalive in `term`.
    pub(crate) fn renew(&self, term: u64, id: u64, ttl_ms: u64, now: Instant) -> Renewal {
        let mut inner = self.lock();
        if inner.term != term || term == 0 {
            return Renewal::NotLeading;
        }
        let past = inner.sessions.get(&id).is_some_and(|t| t.deadline <= now);
        if past || inner.proposed.contains_key(&id) {
            return Renewal::Expiring;
        }
        inner
            .sessions
            .insert(id, Tracked { deadline: now + Duration::from_millis(ttl_ms), graced: false });
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
            .filter(|(id, t)| {
                t.deadline <= now
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
            .map(|(id, t)| (*id, millis(t.deadline.saturating_duration_since(now))))
            .collect();
        remaining.sort_unstable();
        remaining
    }

    /// What to checkpoint: each session's remaining time without a leader change's grace.
    pub(crate) fn checkpoint(&self, now: Instant) -> Vec<(u64, u64)> {
        let inner = self.lock();
        let mut remaining: Vec<(u64, u64)> = inner
            .sessions
            .iter()
            .map(|(id, t)| {
                let left = t.deadline.saturating_duration_since(now);
                (*id, millis(if t.graced { left.saturating_sub(self.grace) } else { left }))
            })
            .collect();
        remaining.sort_unstable();
        remaining
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(1_000);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_new_leader_starts_from_the_checkpoint_plus_grace_not_a_full_ttl() {
        let tracker = SessionTracker::new(GRACE);
        let t0 = Instant::now();
        tracker.sync(Some(3), &[(1, 10_000, Some(2_000)), (2, 10_000, None)], t0);
        assert_eq!(tracker.remaining(t0), [(1, 3_000), (2, 11_000)]);
        assert_eq!(tracker.due(t0 + ms(2_999)).1, Vec::<u64>::new());
        assert_eq!(tracker.due(t0 + ms(3_000)), (3, vec![1]));
    }

    #[test]
    fn keepalives_renew_only_in_the_leading_term() {
        let tracker = SessionTracker::new(GRACE);
        let t0 = Instant::now();
        tracker.sync(Some(5), &[(1, 4_000, None)], t0);
        assert_eq!(tracker.renew(5, 1, 4_000, t0 + ms(3_000)), Renewal::Renewed);
        assert_eq!(
            tracker.renew(4, 1, 4_000, t0 + ms(3_000)),
            Renewal::NotLeading,
            "a stale term cannot renew"
        );
        assert_eq!(tracker.due(t0 + ms(6_999)).1, Vec::<u64>::new());
        assert_eq!(tracker.due(t0 + ms(7_000)).1, vec![1]);
        tracker.sync(None, &[(1, 4_000, None)], t0);
        assert_eq!(
            tracker.renew(5, 1, 4_000, t0),
            Renewal::NotLeading,
            "a follower renews nothing"
        );
        assert_eq!(tracker.term(), 0);
    }

    #[test]
    fn leader_churn_does_not_add_the_grace_again_and_again() {
        let tracker = SessionTracker::new(GRACE);
        let t0 = Instant::now();
        // A dead client: checkpointed with 2 s left, never renewed again.
        tracker.sync(Some(1), &[(1, 10_000, Some(2_000))], t0);
        assert_eq!(tracker.remaining(t0), [(1, 3_000)]);
        // The checkpoint leaves the grace out...
        assert_eq!(tracker.checkpoint(t0 + ms(100)), [(1, 1_900)]);
        // ...so the next leader starts from 1.9 s + grace, not 2.9 s + grace.
        tracker.sync(Some(2), &[(1, 10_000, Some(1_900))], t0 + ms(200));
        assert_eq!(tracker.remaining(t0 + ms(200)), [(1, 2_900)]);
        // Once renewed in this term, the whole remaining time is checkpointed.
        assert_eq!(tracker.renew(2, 1, 10_000, t0 + ms(300)), Renewal::Renewed);
        assert_eq!(tracker.checkpoint(t0 + ms(300)), [(1, 10_000)]);
    }

    #[test]
    fn a_session_past_its_deadline_cannot_be_renewed() {
        let tracker = SessionTracker::new(GRACE);
        let t0 = Instant::now();
        tracker.sync(Some(1), &[(1, 1_000, Some(0))], t0);
        assert_eq!(tracker.renew(1, 1, 1_000, t0 + GRACE), Renewal::Expiring);
        tracker.sync(Some(1), &[(1, 1_000, Some(0)), (2, 1_000, None)], t0);
        assert_eq!(tracker.due(t0 + ms(1_000)).1, vec![1, 2]);
        assert_eq!(
            tracker.renew(1, 2, 1_000, t0 + ms(1_001)),
            Renewal::Expiring,
            "its expiry is proposed"
        );
    }

    #[test]
    fn new_sessions_get_a_full_ttl_and_gone_ones_are_forgotten() {
        let tracker = SessionTracker::new(GRACE);
        let t0 = Instant::now();
        tracker.sync(Some(1), &[(1, 5_000, None)], t0);
        tracker.sync(Some(1), &[(2, 2_000, None)], t0 + ms(100));
        assert_eq!(tracker.remaining(t0 + ms(100)), [(2, 2_000)]);
    }

    #[test]
    fn an_expiry_is_proposed_once_then_again_if_it_did_not_apply() {
        let tracker = SessionTracker::new(GRACE);
        let t0 = Instant::now();
        tracker.sync(Some(1), &[(7, 1_000, Some(0))], t0);
        assert_eq!(tracker.due(t0 + GRACE).1, vec![7]);
        assert_eq!(tracker.due(t0 + GRACE + ms(500)).1, Vec::<u64>::new());
        assert_eq!(tracker.due(t0 + GRACE + REPROPOSE_AFTER).1, vec![7]);
        // A term change starts over, from the checkpoint.
        tracker.sync(Some(2), &[(7, 1_000, Some(400))], t0 + ms(5_000));
        assert_eq!(tracker.remaining(t0 + ms(5_000)), [(7, 1_400)]);
    }
}
