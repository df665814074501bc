//! Lock types and wait modes, acquires, releases, and a lock's status.
//!
//! The status answer names the kind and the modes in text ("mutex", "permits:3"), the
//! names the CLI shows; they are written and read here only.

use warden_core::queue::{LockKind, Scope, WaitMode};
use warden_core::recipe::WaiterView;
use warden_core::{AcquireOptions, Command, HoldRef};

use super::ConvertError;
use crate::v1 as pb;

/// A mutex's name in a status answer.
pub const MUTEX_NAME: &str = "mutex";
/// A read-write lock's name in a status answer.
pub const RWLOCK_NAME: &str = "rwlock";
/// A semaphore's name in a status answer.
pub const SEMAPHORE_NAME: &str = "semaphore";
/// An exclusive wait's name in a status answer.
pub const EXCLUSIVE_NAME: &str = "exclusive";
/// A shared wait's name in a status answer.
pub const SHARED_NAME: &str = "shared";
/// An election's name in a status answer (the Lock service shows every recipe's queue).
pub const ELECTION_NAME: &str = "election";
/// A barrier's name in a status answer.
pub const BARRIER_NAME: &str = "barrier";
/// A double barrier's name in a status answer.
pub const DOUBLE_BARRIER_NAME: &str = "double";
/// A barrier member's wait's name in a status answer.
pub const MEMBER_NAME: &str = "member";
/// What a wait for permits is named with, before its count (`permits:3`).
pub const PERMITS_PREFIX: &str = "permits:";

/// What a lock type field accepts.
pub const LOCK_TYPES: &str =
    "use LOCK_TYPE_MUTEX (0), LOCK_TYPE_RWLOCK (1) or LOCK_TYPE_SEMAPHORE (2)";

/// What a lock scope field accepts.
pub const LOCK_SCOPES: &str = "use LOCK_SCOPE_NODE (0) or LOCK_SCOPE_SUBTREE (1)";

/// A lock scope field in `within`; an error for a scope this side does not know.
pub fn lock_scope(scope: i32, within: impl FnOnce() -> String) -> Result<Scope, ConvertError> {
    match pb::LockScope::try_from(scope) {
        Ok(pb::LockScope::Node) => Ok(Scope::Node),
        Ok(pb::LockScope::Subtree) => Ok(Scope::Subtree),
        Err(_) => Err(ConvertError::unknown("scope", "lock scope", scope, within(), LOCK_SCOPES)),
    }
}

/// A scope's name for people (the CLI's output): "node" or "subtree".
pub fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Node => "node",
        Scope::Subtree => "subtree",
    }
}

/// A scope as its wire value.
pub fn pb_lock_scope(scope: Scope) -> pb::LockScope {
    match scope {
        Scope::Node => pb::LockScope::Node,
        Scope::Subtree => pb::LockScope::Subtree,
    }
}

/// A lock type field (with its permits, for a semaphore) in `within`; an error for a type
/// this side does not know (taking it as a mutex would grant what the caller did not ask
/// for).
pub fn lock_kind(
    r#type: i32,
    permits: u32,
    within: impl FnOnce() -> String,
) -> Result<LockKind, ConvertError> {
    match pb::LockType::try_from(r#type) {
        Ok(pb::LockType::Mutex) => Ok(LockKind::Mutex),
        Ok(pb::LockType::Rwlock) => Ok(LockKind::ReadWrite),
        Ok(pb::LockType::Semaphore) => Ok(LockKind::Semaphore { permits }),
        Err(_) => Err(ConvertError::unknown("type", "lock type", r#type, within(), LOCK_TYPES)),
    }
}

/// A lock kind as a lock type (a semaphore's permits go in their own field); `None` for
/// the queue kinds of the other recipes, which have calls of their own.
pub fn pb_lock_type(kind: LockKind) -> Option<pb::LockType> {
    match kind {
        LockKind::Mutex => Some(pb::LockType::Mutex),
        LockKind::ReadWrite => Some(pb::LockType::Rwlock),
        LockKind::Semaphore { .. } => Some(pb::LockType::Semaphore),
        LockKind::Election | LockKind::Barrier | LockKind::DoubleBarrier { .. } => None,
    }
}

/// A lock (or semaphore) acquire as a command; an error for an unknown lock type.
pub fn acquire(r: &pb::AcquireRequest) -> Result<Command, ConvertError> {
    let kind = lock_kind(r.r#type, r.permits, || format!("the acquire of {:?}", r.path))?;
    let mode = match kind {
        LockKind::ReadWrite if r.shared => WaitMode::Shared,
        LockKind::Semaphore { .. } => WaitMode::Permits(r.weight.max(1)),
        // A mutex, a writer (lock_kind makes no other kind).
        _ => WaitMode::Exclusive,
    };
    let scope = lock_scope(r.scope, || format!("the acquire of {:?}", r.path))?;
    let owner = (!r.owner.is_empty()).then(|| r.owner.clone());
    let options = AcquireOptions { scope, priority: r.priority, owner };
    Ok(Command::Acquire { path: r.path.clone(), kind, mode, delay_ms: r.delay_ms, options })
}

/// A semaphore acquire as the lock acquire the Semaphore service makes of it.
pub fn semaphore(r: pb::SemaphoreAcquireRequest) -> pb::AcquireRequest {
    pb::AcquireRequest {
        path: r.path,
        session_id: r.session_id,
        r#type: pb::LockType::Semaphore.into(),
        shared: false,
        permits: r.permits,
        weight: r.weight,
        delay_ms: r.delay_ms,
        timeout_ms: r.timeout_ms,
        ..Default::default()
    }
}

/// A resource acquire's lock fields as the lock acquire they mean (they mean what they
/// mean for Lock.Acquire: one conversion for both).
pub fn resource_lock(r: &pb::ResourceAcquireRequest) -> pb::AcquireRequest {
    pb::AcquireRequest {
        path: r.kind.clone(),
        session_id: r.session_id,
        r#type: r.r#type,
        shared: r.shared,
        permits: r.permits,
        weight: r.weight,
        delay_ms: r.delay_ms,
        timeout_ms: r.timeout_ms,
        ..Default::default()
    }
}

/// A release as a command: of the hold with the request's token, or of whatever the
/// session has at the path.
pub fn release(r: pb::ReleaseRequest) -> Command {
    let hold = r.token.map_or(HoldRef::Any, HoldRef::Token);
    Command::Release { path: r.path, hold }
}

/// A lock kind's name in a status answer, and the permits the answer carries with it
/// (1 for a mutex, 0 for a read-write lock).
pub fn lock_kind_name(kind: LockKind) -> (&'static str, u32) {
    match kind {
        LockKind::Mutex => (MUTEX_NAME, 1),
        LockKind::ReadWrite => (RWLOCK_NAME, 0),
        LockKind::Semaphore { permits } => (SEMAPHORE_NAME, permits),
        LockKind::Election => (ELECTION_NAME, 1),
        LockKind::Barrier => (BARRIER_NAME, 0),
        LockKind::DoubleBarrier { count } => (DOUBLE_BARRIER_NAME, count),
    }
}

/// A lock kind from its name in a status answer; an error for a name this side does
/// not know.
pub fn lock_kind_named(name: &str, permits: u32) -> Result<LockKind, ConvertError> {
    match name {
        MUTEX_NAME => Ok(LockKind::Mutex),
        RWLOCK_NAME => Ok(LockKind::ReadWrite),
        SEMAPHORE_NAME => Ok(LockKind::Semaphore { permits }),
        ELECTION_NAME => Ok(LockKind::Election),
        BARRIER_NAME => Ok(LockKind::Barrier),
        DOUBLE_BARRIER_NAME => Ok(LockKind::DoubleBarrier { count: permits }),
        other => Err(ConvertError::unknown(
            "type",
            "lock type",
            format!("{other:?}"),
            "a lock status",
            "this side knows \"mutex\", \"rwlock\", \"semaphore\", \"election\", \"barrier\" and \"double\"",
        )),
    }
}

/// A wait mode's name in a status answer: "exclusive", "shared" or "permits:N".
pub fn wait_mode_name(mode: WaitMode) -> String {
    match mode {
        WaitMode::Exclusive => EXCLUSIVE_NAME.to_owned(),
        WaitMode::Shared => SHARED_NAME.to_owned(),
        WaitMode::Permits(n) => format!("{PERMITS_PREFIX}{n}"),
        WaitMode::Member => MEMBER_NAME.to_owned(),
    }
}

/// A wait mode from its name in a status answer; an error for one this side cannot read.
pub fn wait_mode_named(name: &str) -> Result<WaitMode, ConvertError> {
    match name {
        EXCLUSIVE_NAME => Ok(WaitMode::Exclusive),
        SHARED_NAME => Ok(WaitMode::Shared),
        MEMBER_NAME => Ok(WaitMode::Member),
        other => other
            .strip_prefix("permits:")
            .and_then(|n| n.parse().ok())
            .map(WaitMode::Permits)
            .ok_or_else(|| {
                ConvertError::unknown(
                    "mode",
                    "wait mode",
                    format!("{other:?}"),
                    "a lock status's waiter",
                    "this side knows \"exclusive\", \"shared\", \"permits:N\" and \"member\"",
                )
            }),
    }
}

/// A holder or waiter of a lock as protobuf, with the identity of its session.
pub fn lock_waiter(w: &WaiterView, identity: String) -> pb::LockWaiter {
    pb::LockWaiter {
        waiter: w.path.clone(),
        session_id: w.session,
        mode: wait_mode_name(w.info.mode),
        token: w.info.token,
        since_ms: w.since_ms,
        identity,
        scope: pb_lock_scope(w.info.scope).into(),
        priority: w.info.priority,
        owner: w.info.owner.clone().unwrap_or_default(),
        holds: w.info.holds,
    }
}

#[cfg(test)]
mod tests {
    use warden_core::queue_data::WaiterInfo;

    use super::*;

    const KINDS: [LockKind; 3] =
        [LockKind::Mutex, LockKind::ReadWrite, LockKind::Semaphore { permits: 4 }];

    fn acquire_of(r#type: i32) -> pb::AcquireRequest {
        pb::AcquireRequest { path: "/l".into(), session_id: 1, r#type, ..Default::default() }
    }

    #[test]
    fn an_unknown_lock_type_is_refused_by_field_and_value() {
        let e = acquire(&acquire_of(9)).err();
        assert_eq!(e.as_ref().map(|e| (e.field, e.value.as_deref())), Some(("type", Some("9"))));
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("9 in field `type` of the acquire of \"/l\""), "{text}");
        assert!(text.contains("LOCK_TYPE_SEMAPHORE (2)"), "{text}");
    }

    #[test]
    fn scope_priority_and_owner_reach_the_command_and_unknown_scopes_are_refused() {
        let r = pb::AcquireRequest {
            scope: pb::LockScope::Subtree.into(),
            priority: 7,
            owner: "worker-1".into(),
            ..acquire_of(pb::LockType::Rwlock.into())
        };
        let expected =
            AcquireOptions { scope: Scope::Subtree, priority: 7, owner: Some("worker-1".into()) };
        match acquire(&r) {
            Ok(Command::Acquire { options, .. }) => assert_eq!(options, expected),
            other => panic!("{other:?}"),
        }
        match acquire(&acquire_of(pb::LockType::Mutex.into())) {
            Ok(Command::Acquire { options, .. }) => assert_eq!(options, AcquireOptions::default()),
            other => panic!("{other:?}"),
        }
        for n in 0..64 {
            let r = pb::AcquireRequest { scope: n, ..acquire_of(pb::LockType::Mutex.into()) };
            match pb::LockScope::try_from(n) {
                Ok(s) => {
                    assert!(acquire(&r).is_ok(), "{s:?}");
                    assert!(LOCK_SCOPES.contains(s.as_str_name()), "{s:?}");
                }
                Err(_) => {
                    let e = acquire(&r).err();
                    assert_eq!(e.map(|e| e.field), Some("scope"), "{n}");
                }
            }
        }
    }

    #[test]
    fn every_lock_kind_goes_there_and_back_and_is_named_in_the_hint() {
        for kind in KINDS {
            let permits = lock_kind_name(kind).1;
            let wire = pb_lock_type(kind).map(i32::from).unwrap_or(-1);
            assert_eq!(lock_kind(wire, permits, String::new), Ok(kind));
        }
        for n in 0..64 {
            if let Ok(t) = pb::LockType::try_from(n) {
                assert!(lock_kind(n, 1, String::new).is_ok(), "{t:?}");
                assert!(LOCK_TYPES.contains(t.as_str_name()), "{t:?}");
            }
        }
    }

    #[test]
    fn an_acquire_asks_for_the_mode_of_its_kind() {
        let modes = [
            (pb::LockType::Mutex, false, WaitMode::Exclusive),
            (pb::LockType::Mutex, true, WaitMode::Exclusive),
            (pb::LockType::Rwlock, true, WaitMode::Shared),
            (pb::LockType::Rwlock, false, WaitMode::Exclusive),
            (pb::LockType::Semaphore, false, WaitMode::Permits(1)),
        ];
        for (r#type, shared, expected) in modes {
            let r = pb::AcquireRequest { shared, delay_ms: 5, ..acquire_of(r#type.into()) };
            match acquire(&r) {
                Ok(Command::Acquire { path, mode, delay_ms, .. }) => {
                    assert_eq!((path.as_str(), mode, delay_ms), ("/l", expected, 5));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_semaphore_acquire_is_a_lock_acquire_of_a_semaphore() {
        let r = pb::SemaphoreAcquireRequest {
            path: "/s".into(),
            session_id: 3,
            permits: 5,
            weight: 2,
            delay_ms: 7,
            timeout_ms: 9,
        };
        match acquire(&semaphore(r)) {
            Ok(Command::Acquire { kind, mode, delay_ms, .. }) => {
                assert_eq!(kind, LockKind::Semaphore { permits: 5 });
                assert_eq!((mode, delay_ms), (WaitMode::Permits(2), 7));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_release_names_its_hold() {
        let r = pb::ReleaseRequest {
            path: "/l".into(),
            session_id: 1,
            token: Some(8),
            ..Default::default()
        };
        assert_eq!(release(r), Command::Release { path: "/l".into(), hold: HoldRef::Token(8) });
        let r = pb::ReleaseRequest { path: "/l".into(), session_id: 1, ..Default::default() };
        assert_eq!(release(r), Command::Release { path: "/l".into(), hold: HoldRef::Any });
    }

    #[test]
    fn names_go_there_and_back_and_unknown_ones_are_refused() {
        let others = [LockKind::Election, LockKind::Barrier, LockKind::DoubleBarrier { count: 8 }];
        for kind in KINDS.into_iter().chain(others) {
            let (name, permits) = lock_kind_name(kind);
            assert_eq!(lock_kind_named(name, permits), Ok(kind));
        }
        for mode in [WaitMode::Exclusive, WaitMode::Shared, WaitMode::Permits(3), WaitMode::Member]
        {
            assert_eq!(wait_mode_named(&wait_mode_name(mode)), Ok(mode));
        }
        let e = lock_kind_named("turnstile", 0).err();
        assert_eq!(e.map(|e| (e.field, e.value)), Some(("type", Some("\"turnstile\"".into()))));
        for odd in ["permits:", "permits:x", "sharedd", ""] {
            assert_eq!(wait_mode_named(odd).err().map(|e| e.field), Some("mode"), "{odd}");
        }
    }

    #[test]
    fn a_waiter_carries_its_mode_by_name() {
        let w = WaiterView {
            path: "/l/w-0000000001".into(),
            session: 4,
            info: WaiterInfo {
                token: Some(11),
                scope: Scope::Subtree,
                priority: 4,
                granted_ms: Some(5),
                ..WaiterInfo::new(WaitMode::Permits(2))
            },
            since_ms: 99,
            joined_revision: 7,
        };
        let pb = lock_waiter(&w, "alice".into());
        assert_eq!(pb.mode, "permits:2");
        assert_eq!((pb.scope, pb.priority), (pb::LockScope::Subtree.into(), 4));
        assert_eq!(lock_scope(pb.scope, String::new), Ok(Scope::Subtree));
        assert_eq!((pb.session_id, pb.token, pb.since_ms), (4, Some(11), 99));
        assert_eq!((pb.waiter.as_str(), pb.identity.as_str()), ("/l/w-0000000001", "alice"));
        assert_eq!((pb.owner.as_str(), pb.holds), ("", 1));
    }

    #[test]
    fn a_reentrant_waiter_carries_its_owner_and_count() {
        let info = WaiterInfo {
            token: Some(3),
            owner: Some("task-7".into()),
            holds: 4,
            ..WaiterInfo::new(WaitMode::Exclusive)
        };
        let w = WaiterView {
            path: "/l/w-0000000002".into(),
            session: 5,
            info,
            since_ms: 1,
            joined_revision: 1,
        };
        let pb = lock_waiter(&w, String::new());
        assert_eq!((pb.owner.as_str(), pb.holds, pb.token), ("task-7", 4, Some(3)));
    }

    #[test]
    fn a_request_id_reaches_the_core_as_sent() {
        let id = pb::RequestId { seq: 7, lowest_pending: 5 };
        let expected = warden_core::RequestId { seq: 7, lowest_pending: 5 };
        assert_eq!(super::super::kv::request_id(Some(&id)), Some(expected));
        assert_eq!(super::super::kv::request_id(None), None);
    }
}
