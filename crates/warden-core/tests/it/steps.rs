//! Random command sequences: a small universe of paths and sessions, so that sequences
//! collide often (same node created twice, children under ephemerals, retries of a request
//! id, sessions closed under their own requests).

use bytes::Bytes;
use proptest::prelude::*;
use warden_core::queue::{LockKind, QueueKind, WaitMode};
use warden_core::{
    Applied, ApplyContext, Check, Command, Compare, CompareOp, CreateMode, HoldRef, Output,
    Request, State, TxnOp,
};

/// Cases per property: at least 256 (the CI floor), more with WARDEN_PROPTEST_CASES.
pub fn cases() -> u32 {
    std::env::var("WARDEN_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256).max(256)
}

/// A session named by position in the list of sessions ever opened (or an unknown id).
#[derive(Debug, Clone, Copy)]
pub struct SessionRef(u8);

#[derive(Debug, Clone)]
pub enum AbstractCommand {
    Open {
        ttl_ms: u64,
    },
    Close(SessionRef),
    Expire(Vec<SessionRef>, bool),
    Checkpoint(Vec<(SessionRef, u64)>),
    Create {
        path: String,
        data: Bytes,
        mode: CreateMode,
    },
    Set {
        path: String,
        data: Bytes,
        expected_version: Option<u64>,
    },
    Delete {
        path: String,
        expected_version: Option<u64>,
        recursive: bool,
        revoke_locks: bool,
    },
    Txn {
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
    },
    /// Acquire lock `0..3` (a mutex, a read-write lock, a 2-permit semaphore), reentrantly
    /// as owner `o0` or `o1` when `owner` says so.
    Acquire {
        lock: u8,
        shared: bool,
        permits: u32,
        delay_ms: u64,
        owner: Option<u8>,
    },
    /// A release by the step's session, or (`waiter`) by the session of that waiter of
    /// the lock, so that releases often come from sessions that are in the queue.
    Release {
        lock: u8,
        hold: AbstractHold,
        waiter: Option<u8>,
    },
    /// An operator takes a session out of lock `0..3`.
    Revoke {
        lock: u8,
        session: SessionRef,
    },
    Wake,
    /// Campaign in the election [`ELECTION`].
    Campaign {
        value: Bytes,
    },
    /// Proclaim in the election with the token `hold` names.
    Proclaim {
        hold: AbstractHold,
        value: Bytes,
    },
    /// Resign from the election with the token `hold` names.
    Resign {
        hold: AbstractHold,
    },
    /// Set, remove or wait on the barrier [`BARRIER`].
    SetBarrier,
    RemoveBarrier,
    WaitBarrier,
    /// Enter or leave the double barrier [`DOUBLE`].
    Enter {
        count: u32,
    },
    Leave,
    /// Make the resource kind [`KIND`] at a version, lock one of its ids, rotate it.
    InitResource {
        version: u8,
    },
    AcquireResource {
        id: u8,
        wait: bool,
        delay_ms: u64,
    },
    BeginRotation {
        version: u8,
    },
    ForceRotation,
}

/// Which hold a release names.
#[derive(Debug, Clone, Copy)]
pub enum AbstractHold {
    Any,
    /// The token of the session's current hold of the lock (any number if it has none).
    Current,
    /// A token that is not the session's current one.
    Stale(u64),
    /// The session's current waiter node (a made-up one if it has none).
    Wait,
}

/// The recipe paths of the model, and their kinds: under the model's plain paths, so that
/// deletes and recursive deletes reach them. The first three are locks.
pub const LOCKS: [(&str, QueueKind); 10] = [
    ("/a/m", QueueKind::Mutex),
    ("/b/rw", QueueKind::ReadWrite),
    ("/a/b/s", QueueKind::Semaphore { permits: 2 }),
    (ELECTION, QueueKind::Election),
    (BARRIER, QueueKind::Barrier),
    (DOUBLE, QueueKind::DoubleBarrier { count: 2 }),
    ("/c/r/v1/x", QueueKind::Mutex),
    ("/c/r/v2/x", QueueKind::Mutex),
    ("/c/r/v1/y", QueueKind::Mutex),
    ("/c/r/v3/y", QueueKind::Mutex),
];

/// The model's resource kind, its versions and ids.
pub const KIND: &str = "/c/r";
const VERSIONS: [&str; 3] = ["v1", "v2", "v3"];
const IDS: [&str; 2] = ["x", "y"];

/// The model's election, barrier and double barrier (of 2, mostly).
pub const ELECTION: &str = "/a/e";
pub const BARRIER: &str = "/c/bar";
pub const DOUBLE: &str = "/b/dbl";

#[derive(Debug, Clone)]
pub struct Step {
    pub session: Option<SessionRef>,
    pub id: Option<(u64, u64)>,
    pub command: AbstractCommand,
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..=3)
            .prop_map(|segments| format!("/{}", segments.join("/"))),
        // A lock, or one of its first waiters.
        4 => (0usize..LOCKS.len(), prop::option::of(0u64..3))
            .prop_map(|(lock, waiter)| match waiter {
                Some(n) => format!("{}/w-{n:010}", LOCKS[lock].0),
                None => LOCKS[lock].0.to_owned(),
            }),
        1 => prop::sample::select(vec!["/", "", "a", "/a/", "/a//b", "/a/.."]).prop_map(str::to_owned),
    ]
}

fn data() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..4).prop_map(Bytes::from)
}

fn mode() -> impl Strategy<Value = CreateMode> {
    prop::sample::select(vec![
        CreateMode::PERSISTENT,
        CreateMode::PERSISTENT.sequential(),
        CreateMode::EPHEMERAL,
        CreateMode::EPHEMERAL.sequential(),
        CreateMode::CONTAINER,
        CreateMode::CONTAINER.sequential(),
    ])
}

fn version() -> impl Strategy<Value = Option<u64>> {
    prop::option::weighted(0.3, 0u64..3)
}

fn session_ref() -> impl Strategy<Value = SessionRef> {
    any::<u8>().prop_map(SessionRef)
}

fn compare() -> impl Strategy<Value = Compare> {
    let op = prop::sample::select(vec![
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Less,
        CompareOp::Greater,
    ]);
    let check = prop_oneof![
        any::<bool>().prop_map(Check::Exists),
        (op.clone(), 0u64..4).prop_map(|(o, v)| Check::Version(o, v)),
        (op.clone(), 0u64..20).prop_map(|(o, v)| Check::ModRevision(o, v)),
        (op, 0u64..20).prop_map(|(o, v)| Check::CreateRevision(o, v)),
    ];
    (path(), check).prop_map(|(path, check)| Compare { path, check })
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        (path(), data(), mode()).prop_map(|(path, data, mode)| TxnOp::Create { path, data, mode }),
        (path(), data(), version()).prop_map(|(path, data, expected_version)| TxnOp::Set {
            path,
            data,
            expected_version
        }),
        (path(), version(), any::<bool>(), prop::bool::weighted(0.3)).prop_map(
            |(path, expected_version, recursive, revoke_locks)| TxnOp::Delete {
                path,
                expected_version,
                recursive,
                revoke_locks
            }
        ),
    ]
}

fn hold() -> impl Strategy<Value = AbstractHold> {
    prop_oneof![
        2 => Just(AbstractHold::Any),
        2 => Just(AbstractHold::Current),
        1 => (0u64..40).prop_map(AbstractHold::Stale),
        2 => Just(AbstractHold::Wait),
    ]
}

fn command() -> impl Strategy<Value = AbstractCommand> {
    prop_oneof![
        3 => prop::sample::select(vec![500u64, 1_000, 5_000]).prop_map(|ttl_ms| AbstractCommand::Open { ttl_ms }),
        1 => session_ref().prop_map(AbstractCommand::Close),
        1 => (prop::collection::vec(session_ref(), 0..3), prop::bool::weighted(0.2))
            .prop_map(|(refs, stale)| AbstractCommand::Expire(refs, stale)),
        1 => prop::collection::vec((session_ref(), 0u64..10_000), 0..3).prop_map(AbstractCommand::Checkpoint),
        8 => (path(), data(), mode()).prop_map(|(path, data, mode)| AbstractCommand::Create { path, data, mode }),
        3 => (path(), data(), version())
            .prop_map(|(path, data, expected_version)| AbstractCommand::Set { path, data, expected_version }),
        3 => (path(), version(), any::<bool>(), prop::bool::weighted(0.3))
            .prop_map(|(path, expected_version, recursive, revoke_locks)| AbstractCommand::Delete { path, expected_version, recursive, revoke_locks }),
        2 => (prop::collection::vec(compare(), 0..3), prop::collection::vec(txn_op(), 0..4))
            .prop_map(|(compares, ops)| AbstractCommand::Txn { compares, ops }),
        4 => (0u8..3, any::<bool>(), 1u32..3, prop::sample::select(vec![0u64, 3_000]), prop::option::weighted(0.3, 0u8..2))
            .prop_map(|(lock, shared, permits, delay_ms, owner)| AbstractCommand::Acquire { lock, shared, permits, delay_ms, owner }),
        3 => (0u8..10, hold(), prop::option::weighted(0.7, 0u8..3))
            .prop_map(|(lock, hold, waiter)| AbstractCommand::Release { lock, hold, waiter }),
        1 => (0u8..10, session_ref()).prop_map(|(lock, session)| AbstractCommand::Revoke { lock, session }),
        1 => (0u8..3).prop_map(|version| AbstractCommand::InitResource { version }),
        4 => (0u8..2, prop::bool::weighted(0.8), prop::sample::select(vec![0u64, 0, 3_000]))
            .prop_map(|(id, wait, delay_ms)| AbstractCommand::AcquireResource { id, wait, delay_ms }),
        1 => (0u8..3).prop_map(|version| AbstractCommand::BeginRotation { version }),
        1 => Just(AbstractCommand::ForceRotation),
        1 => Just(AbstractCommand::Wake),
        3 => data().prop_map(|value| AbstractCommand::Campaign { value }),
        1 => (hold(), data()).prop_map(|(hold, value)| AbstractCommand::Proclaim { hold, value }),
        1 => hold().prop_map(|hold| AbstractCommand::Resign { hold }),
        1 => Just(AbstractCommand::SetBarrier),
        1 => Just(AbstractCommand::RemoveBarrier),
        2 => Just(AbstractCommand::WaitBarrier),
        3 => prop::sample::select(vec![2u32, 2, 2, 1, 3]).prop_map(|count| AbstractCommand::Enter { count }),
        2 => Just(AbstractCommand::Leave),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let id = prop::option::weighted(
        0.4,
        (1u64..6, 0u64..6).prop_map(|(seq, back)| (seq, seq.saturating_sub(back).max(1))),
    );
    (prop::option::weighted(0.6, session_ref()), id, command())
        .prop_map(|(session, id, command)| Step { session, id, command })
}

/// A sequence of up to `max` steps.
pub fn steps(max: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..max)
}

/// Applies steps to a state, turning session references into ids.
#[derive(Clone)]
pub struct Runner {
    pub state: State,
    /// Every session id ever opened, in order.
    pub opened: Vec<u64>,
    index: u64,
}

impl Runner {
    pub fn new() -> Self {
        Runner { state: State::default(), opened: Vec::new(), index: 0 }
    }

    pub fn restored(&self) -> Runner {
        let bytes = self.state.snapshot().unwrap_or_default();
        let state = State::restore(&bytes).unwrap_or_else(|e| panic!("restore failed: {e}"));
        Runner { state, opened: self.opened.clone(), index: self.index }
    }

    /// The raft term of the next entry: it changes every 16 entries.
    fn term(&self) -> u64 {
        2 + (self.index + 1) / 16
    }

    fn resolve(&self, r: SessionRef) -> u64 {
        if self.opened.is_empty() || r.0 >= 250 {
            return 1_000_000 + u64::from(r.0);
        }
        self.opened[usize::from(r.0) % self.opened.len()]
    }

    pub fn request(&self, step: &Step) -> Request {
        let mut session = step.session.map(|r| self.resolve(r));
        if let AbstractCommand::Release { lock, waiter: Some(i), .. } = &step.command
            && let Ok((_, waiters)) = self.state.lock(LOCKS[usize::from(*lock)].0)
            && let Some(w) = waiters.get(usize::from(*i))
        {
            session = Some(w.session);
        }
        let command = match &step.command {
            AbstractCommand::Open { ttl_ms } => {
                Command::OpenSession { ttl_ms: *ttl_ms, identity: "prop".into() }
            }
            AbstractCommand::Close(r) => Command::CloseSession { id: self.resolve(*r) },
            AbstractCommand::Expire(rs, stale) => Command::ExpireSessions {
                ids: rs.iter().map(|r| self.resolve(*r)).collect(),
                term: if *stale { self.term() - 1 } else { self.term() },
            },
            AbstractCommand::Checkpoint(rs) => Command::CheckpointSessions {
                remaining: rs.iter().map(|(r, ms)| (self.resolve(*r), *ms)).collect(),
            },
            AbstractCommand::Create { path, data, mode } => {
                Command::Create { path: path.clone(), data: data.clone(), mode: *mode }
            }
            AbstractCommand::Set { path, data, expected_version } => Command::Set {
                path: path.clone(),
                data: data.clone(),
                expected_version: *expected_version,
            },
            AbstractCommand::Delete { path, expected_version, recursive, revoke_locks } => {
                Command::Delete {
                    path: path.clone(),
                    expected_version: *expected_version,
                    recursive: *recursive,
                    revoke_locks: *revoke_locks,
                }
            }
            AbstractCommand::Txn { compares, ops } => {
                Command::Txn { compares: compares.clone(), ops: ops.clone() }
            }
            AbstractCommand::Acquire { lock, shared, permits, delay_ms, owner } => {
                let (path, kind) = LOCKS[usize::from(*lock)];
                let mode = match kind {
                    LockKind::Mutex => WaitMode::Exclusive,
                    LockKind::ReadWrite if *shared => WaitMode::Shared,
                    LockKind::ReadWrite => WaitMode::Exclusive,
                    LockKind::Semaphore { .. } => WaitMode::Permits(*permits),
                    _ => WaitMode::Member,
                };
                Command::Acquire {
                    path: path.into(),
                    kind,
                    mode,
                    delay_ms: *delay_ms,
                    options: warden_core::AcquireOptions {
                        owner: owner.map(|o| format!("o{o}")),
                        ..Default::default()
                    },
                }
            }
            AbstractCommand::Release { lock, hold, .. } => {
                let path = LOCKS[usize::from(*lock)].0;
                Command::Release { path: path.into(), hold: self.hold(path, session, *hold) }
            }
            AbstractCommand::Revoke { lock, session } => Command::Revoke {
                path: LOCKS[usize::from(*lock)].0.into(),
                session: self.resolve(*session),
            },
            AbstractCommand::Wake => Command::WakeLocks,
            AbstractCommand::Campaign { value } => {
                Command::Campaign { path: ELECTION.into(), value: value.clone() }
            }
            AbstractCommand::Proclaim { hold, value } => Command::Proclaim {
                path: ELECTION.into(),
                token: self.token(ELECTION, session, *hold),
                value: value.clone(),
            },
            AbstractCommand::Resign { hold } => Command::Resign {
                path: ELECTION.into(),
                token: self.token(ELECTION, session, *hold),
            },
            AbstractCommand::SetBarrier => Command::SetBarrier { path: BARRIER.into() },
            AbstractCommand::RemoveBarrier => Command::RemoveBarrier { path: BARRIER.into() },
            AbstractCommand::WaitBarrier => Command::WaitBarrier { path: BARRIER.into() },
            AbstractCommand::Enter { count } => {
                Command::EnterBarrier { path: DOUBLE.into(), count: *count }
            }
            AbstractCommand::Leave => Command::LeaveBarrier { path: DOUBLE.into() },
            AbstractCommand::InitResource { version } => Command::InitResource {
                path: KIND.into(),
                version: VERSIONS[usize::from(*version)].into(),
            },
            AbstractCommand::AcquireResource { id, wait, delay_ms } => Command::AcquireResource {
                path: KIND.into(),
                id: IDS[usize::from(*id)].into(),
                kind: LockKind::Mutex,
                mode: WaitMode::Exclusive,
                delay_ms: *delay_ms,
                draining: if *wait {
                    warden_core::resource::WhileDraining::Wait
                } else {
                    warden_core::resource::WhileDraining::Fail
                },
            },
            AbstractCommand::BeginRotation { version } => Command::BeginRotation {
                path: KIND.into(),
                to: VERSIONS[usize::from(*version)].into(),
            },
            AbstractCommand::ForceRotation => Command::ForceRotation { path: KIND.into() },
        };
        let id =
            step.id.map(|(seq, lowest)| warden_core::RequestId { seq, lowest_pending: lowest });
        Request { session, id, command }
    }

    /// The token a proclaim or resign names: the session's current one, or another.
    fn token(&self, queue: &str, session: Option<u64>, hold: AbstractHold) -> u64 {
        let hold = match hold {
            AbstractHold::Stale(_) => hold,
            _ => AbstractHold::Current,
        };
        match self.hold(queue, session, hold) {
            HoldRef::Token(t) => t,
            _ => u64::MAX,
        }
    }

    /// The hold a release names, from what `session` has at `lock` now.
    fn hold(&self, lock: &str, session: Option<u64>, hold: AbstractHold) -> HoldRef {
        let mine = self
            .state
            .lock(lock)
            .ok()
            .and_then(|(_, ws)| ws.into_iter().find(|w| Some(w.session) == session));
        match hold {
            AbstractHold::Any => HoldRef::Any,
            AbstractHold::Current => {
                HoldRef::Token(mine.and_then(|w| w.info.token).unwrap_or(u64::MAX))
            }
            AbstractHold::Stale(t) => {
                let current = mine.and_then(|w| w.info.token);
                HoldRef::Token(if current == Some(t) { t + 1 } else { t })
            }
            AbstractHold::Wait => HoldRef::Wait(
                mine.map(|w| w.path).unwrap_or_else(|| format!("{lock}/w-0000009999")),
            ),
        }
    }

    /// The leader's clock of the last step applied.
    pub fn time_ms(&self) -> u64 {
        1_000 * self.index
    }

    pub fn apply(&mut self, step: &Step) -> (Request, Applied) {
        let request = self.request(step);
        self.index += 1;
        let ctx = ApplyContext { index: self.index, time_ms: self.time_ms(), term: self.term() };
        let applied = self.state.apply(request.clone(), &ctx);
        if let Ok(Output::SessionOpened { id, .. }) = &applied.response.outcome {
            self.opened.push(*id);
        }
        (request, applied)
    }
}
