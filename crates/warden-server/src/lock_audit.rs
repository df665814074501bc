//! Lock lines of the audit log, from what the state machine applies: a grant, the expiry
//! of a holder's session, and a revoke, on every member alike.
//!
//! [`AuditingSink`] sits in front of the watch hub as the state machine's event sink. It
//! reads each applied command's events (the core's lock recipe writes a waiter's token
//! into its data when it grants, and marks it `revoked` before deleting it) under the
//! state machine's lock ([`EventSink::inspect`]), so it can look up the holder's session
//! in the state. A session that just expired is gone from the state; its identity comes
//! from a small cache of the sessions seen in lock events (filled from the state at start
//! and after a snapshot install). The expired hold's token is its waiter's last
//! `mod_revision` when the grant was the last change of its value; a holder's waiter that
//! changed since (a reentrant hold's count, an election leader's proclaim) has its token
//! kept in the same cache until the waiter goes. A grant writes the token of its own
//! revision, so only a change that does is a grant.
//!
//! Nothing here changes what the core decides; it only reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use warden_core::queue_data::{self, Mark, WaiterInfo};
use warden_core::{Event, EventKind, NodeKind, Output, SessionId, State};
use warden_storage::{AppliedCommand, EventSink};

use crate::audit::{Audit, Extra, Record};

/// Inspections between two prunings of the identity cache.
const PRUNE_EVERY: u64 = 4_096;

/// The state machine's event sink: `inner` (the watch hub) gets every call; lock grants,
/// expiries and revokes also go to the audit log.
pub(crate) struct AuditingSink {
    inner: Arc<dyn EventSink>,
    audit: Audit,
    identities: Mutex<Identities>,
}

impl AuditingSink {
    /// A sink that passes everything on to `inner` and audits locks to `audit`, over the
    /// state machine whose state is `state` now.
    pub(crate) fn new(inner: Arc<dyn EventSink>, audit: Audit, state: &State) -> AuditingSink {
        AuditingSink { inner, audit, identities: Mutex::new(Identities::from_state(state)) }
    }
}

impl EventSink for AuditingSink {
    fn applied(&self, revision: u64, events: &[Event]) {
        self.inner.applied(revision, events);
    }

    fn reset(&self, revision: u64) {
        // Filled again from the installed state at the next command (a session that ends
        // in that very command is then named as unknown).
        self.identities.lock().unwrap_or_else(PoisonError::into_inner).loaded = false;
        self.inner.reset(revision);
    }

    fn inspect(&self, state: &State, command: &AppliedCommand<'_>) {
        let records = {
            let mut identities = self.identities.lock().unwrap_or_else(PoisonError::into_inner);
            lock_records(state, command, &mut identities)
        };
        for record in records {
            self.audit.send(record);
        }
        self.inner.inspect(state, command);
    }
}

/// The identities of sessions that took part in locks, kept for the moment they are gone
/// from the state (an expiry).
#[derive(Debug, Default)]
pub(crate) struct Identities {
    by_session: HashMap<SessionId, String>,
    /// The tokens of the holders whose waiter changed after its grant, by waiter path:
    /// their last `mod_revision` is not their token.
    tokens: HashMap<String, u64>,
    /// Whether `by_session` was filled from the state since the start or the last install.
    loaded: bool,
    inspected: u64,
}

impl Identities {
    /// The identities of the sessions live in `state`.
    pub(crate) fn from_state(state: &State) -> Identities {
        let tokens = state
            .sessions()
            .flat_map(|s| state.ephemerals_of(s.id))
            .filter_map(|p| {
                warden_core::recipe::queue_of_waiter(p)?;
                let node = state.tree().get(p)?;
                let token = WaiterInfo::decode(&node.data)?.token?;
                (token != node.stat.mod_revision).then(|| (p.to_owned(), token))
            })
            .collect();
        Identities {
            by_session: state.sessions().map(|s| (s.id, s.identity.clone())).collect(),
            tokens,
            loaded: true,
            inspected: 0,
        }
    }

    /// The identity of `session`: from the state if it is live, else as last seen.
    fn of(&mut self, state: &State, session: SessionId) -> Option<String> {
        match state.session(session) {
            Some(live) => {
                self.by_session.insert(session, live.identity.clone());
                Some(live.identity.clone())
            }
            None => self.by_session.get(&session).cloned(),
        }
    }

    /// Fills the cache after an install; forgets ended sessions now and then.
    fn refresh(&mut self, state: &State) {
        if !self.loaded {
            *self = Identities::from_state(state);
        }
        self.inspected += 1;
        if self.inspected.is_multiple_of(PRUNE_EVERY) {
            self.by_session.retain(|id, _| state.session(*id).is_some());
        }
    }
}

/// The audit records of one applied command's lock grants, expiries and revokes.
pub(crate) fn lock_records(
    state: &State,
    command: &AppliedCommand<'_>,
    identities: &mut Identities,
) -> Vec<Record> {
    identities.refresh(state);
    let expired: &[SessionId] = match command.output {
        Some(Output::SessionsExpired { ids, .. }) => ids,
        _ => &[],
    };
    let mut records = Vec::new();
    for event in command.events {
        let session = event.stat.ephemeral_owner;
        let Some(lock_path) = waiter_lock(state, event) else { continue };
        let (action, token) = match (event.kind, event.data.as_deref()) {
            (EventKind::Data, Some(data)) => match WaiterInfo::decode(data) {
                Some(info) if queue_data::mark_of(data) == Some(Mark::Revoked) => {
                    ("revoke", info.token)
                }
                Some(info) if queue_data::mark_of(data) == Some(Mark::Resigned) => {
                    ("resign", info.token)
                }
                Some(WaiterInfo { token: Some(token), .. }) if token == event.revision => {
                    ("grant", Some(token))
                }
                // A holder's waiter changed after its grant: no grant, but its last
                // mod_revision is no longer its token.
                Some(WaiterInfo { token: Some(token), .. }) => {
                    identities.tokens.insert(event.path.clone(), token);
                    continue;
                }
                _ => continue,
            },
            // A waiter whose value was set was granted: its token is the revision of that
            // set, or the one kept when it changed after.
            (EventKind::Deleted, _) if expired.contains(&session) && event.stat.version > 0 => {
                let kept = identities.tokens.remove(&event.path);
                ("expire", Some(kept.unwrap_or(event.stat.mod_revision)))
            }
            (EventKind::Deleted, _) => {
                identities.tokens.remove(&event.path);
                continue;
            }
            _ => continue,
        };
        records.push(Record {
            time_ms: command.time_ms,
            action: action.to_owned(),
            identity: identities.of(state, session),
            path: lock_path.to_owned(),
            revision: Some(command.revision),
            extra: Extra::Lock { session, token },
        });
    }
    for id in expired {
        identities.by_session.remove(id);
    }
    records
}

/// The lock whose waiter `event` is about, if it is one: an ephemeral `w-NNNNNNNNNN`
/// whose parent is a lock (or gone in the same entry, taken along by its last waiter).
fn waiter_lock<'e>(state: &State, event: &'e Event) -> Option<&'e str> {
    if event.stat.ephemeral_owner == 0 {
        return None;
    }
    let parent = warden_core::recipe::queue_of_waiter(&event.path)?;
    match state.tree().get(parent) {
        Some(node) if node.kind != NodeKind::Queue => None,
        _ => Some(parent),
    }
}

#[cfg(test)]
mod tests {
    use warden_core::queue::{LockKind, WaitMode};
    use warden_core::{ApplyContext, Command, Request};

    use super::*;

    /// A lock record as (action, identity, path, session, token).
    type Seen = (String, Option<String>, String, u64, Option<u64>);

    /// A core state driven by hand, with what the audit sees of each command.
    struct Fixture {
        state: State,
        index: u64,
        identities: Identities,
        records: Vec<Record>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                state: State::default(),
                index: 0,
                identities: Identities::default(),
                records: Vec::new(),
            }
        }

        fn apply(&mut self, session: Option<SessionId>, command: Command) -> Output {
            self.index += 1;
            let ctx = ApplyContext { index: self.index, time_ms: 1_000 * self.index, term: 1 };
            let request = Request { session, id: None, command };
            let done = self.state.apply(request, &ctx);
            let output = done.response.outcome.clone().unwrap_or_else(|e| panic!("{e}"));
            let command = AppliedCommand {
                revision: done.response.revision,
                time_ms: ctx.time_ms,
                events: &done.events,
                output: Some(&output),
            };
            let records = lock_records(&self.state, &command, &mut self.identities);
            self.records.extend(records);
            output
        }

        fn open(&mut self, identity: &str) -> SessionId {
            let open = Command::OpenSession { ttl_ms: 10_000, identity: identity.into() };
            match self.apply(None, open) {
                Output::SessionOpened { id, .. } => id,
                other => panic!("{other:?}"),
            }
        }

        fn acquire(&mut self, session: SessionId, path: &str) -> Option<u64> {
            let acquire = Command::Acquire {
                path: path.into(),
                kind: LockKind::Mutex,
                mode: WaitMode::Exclusive,
                delay_ms: 0,
                options: Default::default(),
            };
            match self.apply(Some(session), acquire) {
                Output::LockQueued { token, .. } => token,
                other => panic!("{other:?}"),
            }
        }

        /// The records as (action, identity, path, session, token).
        fn seen(&self) -> Vec<Seen> {
            self.records
                .iter()
                .map(|r| match &r.extra {
                    Extra::Lock { session, token } => {
                        (r.action.clone(), r.identity.clone(), r.path.clone(), *session, *token)
                    }
                    other => panic!("not a lock record: {other:?}"),
                })
                .collect()
        }
    }

    fn row(action: &str, identity: &str, path: &str, session: u64, token: Option<u64>) -> Seen {
        (action.into(), Some(identity.into()), path.into(), session, token)
    }

    #[test]
    fn grants_expiries_and_revokes_are_recorded_with_the_holder() {
        let mut f = Fixture::new();
        let alice = f.open("alice");
        let bob = f.open("bob");
        let first = f.acquire(alice, "/app/lock");
        assert!(first.is_some());
        // Bob waits: nothing to record yet.
        assert_eq!(f.acquire(bob, "/app/lock"), None);
        assert_eq!(f.seen(), vec![row("grant", "alice", "/app/lock", alice, first)]);

        // Alice's session expires holding the lock: Bob is granted in the same command.
        f.records.clear();
        let expire = Command::ExpireSessions { ids: vec![alice], term: 1 };
        f.apply(None, expire);
        let bobs = f.state.lock("/app/lock").ok().and_then(|(_, ws)| ws[0].info.token);
        assert!(bobs.is_some());
        let mut seen = f.seen();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                row("expire", "alice", "/app/lock", alice, first),
                row("grant", "bob", "/app/lock", bob, bobs),
            ]
        );

        // An operator revokes Bob's hold.
        f.records.clear();
        f.apply(None, Command::Revoke { path: "/app/lock".into(), session: bob });
        assert_eq!(f.seen(), vec![row("revoke", "bob", "/app/lock", bob, bobs)]);
    }

    #[test]
    fn releases_closes_and_plain_nodes_are_not_lock_records() {
        let mut f = Fixture::new();
        let carol = f.open("carol");
        let token = f.acquire(carol, "/l");
        f.records.clear();
        f.apply(
            Some(carol),
            Command::Release { path: "/l".into(), hold: warden_core::HoldRef::Any },
        );
        f.acquire(carol, "/m");
        f.records.clear();
        f.apply(None, Command::CloseSession { id: carol });
        // A client's own ephemeral node that looks like a granted waiter, under a plain
        // node, is not a lock.
        let dave = f.open("dave");
        f.apply(
            Some(dave),
            Command::Create {
                path: "/plain".into(),
                data: Default::default(),
                mode: warden_core::CreateMode::PERSISTENT,
            },
        );
        f.apply(
            Some(dave),
            Command::Create {
                path: "/plain/w-0000000001".into(),
                data: "mode=exclusive token=3".into(),
                mode: warden_core::CreateMode::EPHEMERAL,
            },
        );
        f.apply(
            Some(dave),
            Command::Set {
                path: "/plain/w-0000000001".into(),
                data: "mode=exclusive token=4".into(),
                expected_version: None,
            },
        );
        assert!(token.is_some());
        assert_eq!(f.seen(), vec![]);
    }

    #[test]
    fn a_reentrant_count_is_no_grant_and_an_expiry_still_names_the_token() {
        for restarted in [false, true] {
            let mut f = Fixture::new();
            let frank = f.open("frank");
            let reentrant = |path: &str| Command::Acquire {
                path: path.into(),
                kind: LockKind::Mutex,
                mode: WaitMode::Exclusive,
                delay_ms: 0,
                options: warden_core::AcquireOptions {
                    owner: Some("task".into()),
                    ..Default::default()
                },
            };
            let token = match f.apply(Some(frank), reentrant("/r")) {
                Output::LockQueued { token, .. } => token,
                other => panic!("{other:?}"),
            };
            f.apply(Some(frank), reentrant("/r"));
            f.apply(Some(frank), reentrant("/r"));
            let release = Command::Release { path: "/r".into(), hold: warden_core::HoldRef::Any };
            f.apply(Some(frank), release);
            assert_eq!(f.seen(), vec![row("grant", "frank", "/r", frank, token)], "counts");
            if restarted {
                f.identities = Identities::from_state(&f.state);
            }
            f.records.clear();
            f.apply(None, Command::ExpireSessions { ids: vec![frank], term: 1 });
            assert_eq!(f.seen(), vec![row("expire", "frank", "/r", frank, token)]);
            assert!(f.identities.tokens.is_empty(), "the kept token went with its waiter");
        }
    }

    #[test]
    fn an_expiry_after_a_restart_still_names_the_holder() {
        let mut f = Fixture::new();
        let erin = f.open("erin");
        let token = f.acquire(erin, "/x");
        // A restarted member: its cache is filled from the state it loaded.
        f.identities = Identities::from_state(&f.state);
        f.records.clear();
        f.apply(None, Command::ExpireSessions { ids: vec![erin], term: 1 });
        assert_eq!(f.seen(), vec![row("expire", "erin", "/x", erin, token)]);
    }
}
