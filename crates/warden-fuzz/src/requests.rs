//! Client requests as a member receives them: protobuf bytes decoded with prost, run
//! through the server's own conversion ([`warden_proto::convert`], which the client uses too) and applied to a
//! replica, or answered from it for reads.
//!
//! One target per service; the first byte of an input picks the RPC, the rest is its
//! message, so one corpus covers every request of a service. A service's follow-up
//! writes (the withdrawal of a wait that timed out, the cancel of a dropped call) are
//! Lock.Release requests, fuzzed by [`lock_request`].

use prost::Message;
use warden_core::election;
use warden_core::queue::QueueKind;
use warden_core::resource::WhileDraining;
use warden_core::{Applied, Command, Limits, Output, Request, State, WatchFilter};
use warden_proto::convert::election::leader_info;
use warden_proto::convert::{kv, lock, lock_stats, txn, watch};
use warden_proto::v1 as pb;

use crate::replica::{self, apply_checked};

/// Decodes a message and checks that it survives a round trip; `None` if prost refuses
/// the bytes (that is an answer, not a bug).
fn decode<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> Option<M> {
    let message = M::decode(bytes).ok()?;
    let again = M::decode(message.encode_to_vec().as_slice());
    assert!(again.as_ref() == Ok(&message), "{message:?} does not survive a round trip: {again:?}");
    Some(message)
}

/// Splits an input into the RPC it picks (among `rpcs`) and that RPC's message.
fn split(data: &[u8], rpcs: u8) -> Option<(u8, &[u8])> {
    let (first, rest) = data.split_first()?;
    Some((first % rpcs, rest))
}

/// The request the KV service makes of a write, with the request's origin.
fn with_origin(origin: Option<&pb::Origin>, command: Command) -> Request {
    let (session, id) = kv::origin(origin);
    Request { session, id, command }
}

/// The KV service: Get, Children, Create, Set, Delete, Txn.
pub fn kv_request(data: &[u8]) {
    let Some((rpc, bytes)) = split(data, 6) else { return };
    match rpc {
        0 => {
            if let Some(r) = decode::<pb::GetRequest>(bytes) {
                let _ = replica::state().get(&r.path);
            }
        }
        1 => {
            if let Some(r) = decode::<pb::ChildrenRequest>(bytes) {
                let state = replica::state();
                if let Ok(children) = state.children_after(&r.path, &r.start_after) {
                    let limit = usize::try_from(r.limit).unwrap_or(usize::MAX);
                    let _ = children.take(if limit == 0 { usize::MAX } else { limit }).count();
                }
            }
        }
        2 => {
            if let Some(r) = decode::<pb::CreateRequest>(bytes) {
                let origin = r.origin;
                if let Ok(command) = kv::create(r) {
                    apply_checked(vec![with_origin(origin.as_ref(), command)]);
                }
            }
        }
        3 => {
            if let Some(r) = decode::<pb::SetRequest>(bytes) {
                let origin = r.origin;
                apply_checked(vec![with_origin(origin.as_ref(), kv::set(r))]);
            }
        }
        4 => {
            if let Some(r) = decode::<pb::DeleteRequest>(bytes) {
                let origin = r.origin;
                apply_checked(vec![with_origin(origin.as_ref(), kv::delete(r))]);
            }
        }
        _ => {
            if let Some(r) = decode::<pb::TxnRequest>(bytes) {
                let origin = r.origin;
                if let Ok(command) = txn::txn(r) {
                    apply_checked(vec![with_origin(origin.as_ref(), command)]);
                }
            }
        }
    }
}

/// A lock acquire as the Lock service proposes it: refused without a session.
fn acquire(r: &pb::AcquireRequest) {
    if let (true, Ok(command)) = (r.session_id != 0, lock::acquire(r)) {
        apply_checked(vec![Request::in_session(r.session_id, command)]);
    }
}

/// The Lock service: Acquire and TryAcquire, Release, Revoke, Status, CheckSequencer, Stats.
pub fn lock_request(data: &[u8]) {
    let Some((rpc, bytes)) = split(data, 6) else { return };
    match rpc {
        0 => {
            if let Some(r) = decode::<pb::AcquireRequest>(bytes) {
                acquire(&r);
            }
        }
        1 => {
            if let Some(r) = decode::<pb::ReleaseRequest>(bytes)
                && r.session_id != 0
            {
                apply_checked(vec![Request::in_session(r.session_id, lock::release(r))]);
            }
        }
        2 => {
            if let Some(r) = decode::<pb::RevokeRequest>(bytes)
                && r.session_id != 0
            {
                let command = Command::Revoke { path: r.path, session: r.session_id };
                apply_checked(vec![Request::new(command)]);
            }
        }
        3 => {
            if let Some(r) = decode::<pb::LockStatusRequest>(bytes) {
                let state = replica::state();
                let _ = state.lock(&r.path);
                let _ = state.lock_stats_at(&r.path).map(|e| lock_stats::pb_lock_stats(&e));
            }
        }
        4 => {
            if let Some(r) = decode::<pb::CheckSequencerRequest>(bytes) {
                let _ = replica::state().check_sequencer(&r.path, r.token);
            }
        }
        _ => {
            if let Some(r) = decode::<pb::LockStatsRequest>(bytes) {
                let (prefix, limit) = lock_stats::stats_request(&r);
                if let Ok(report) = replica::state().lock_stats(&prefix, limit) {
                    let answer =
                        lock_stats::pb_stats_response(pb::ResponseHeader::default(), &report);
                    let _ = lock_stats::stats_report(&answer);
                }
            }
        }
    }
}

/// The Semaphore service: its acquire becomes a lock acquire; its other RPCs are the
/// Lock service's (fuzzed by [`lock_request`]).
pub fn semaphore_request(data: &[u8]) {
    if let Some(r) = decode::<pb::SemaphoreAcquireRequest>(data) {
        acquire(&lock::semaphore(r));
    }
}

/// The Session service: Open, KeepAlive (a stream of requests, decoded one by one), Close,
/// Info.
pub fn session_request(data: &[u8]) {
    let Some((rpc, bytes)) = split(data, 4) else { return };
    match rpc {
        0 => {
            if let Some(r) = decode::<pb::OpenSessionRequest>(bytes) {
                let command = Command::OpenSession { ttl_ms: r.ttl_ms, identity: String::new() };
                apply_checked(vec![Request::new(command)]);
            }
        }
        1 => {
            let _ = decode::<pb::KeepAliveRequest>(bytes);
        }
        2 => {
            if let Some(r) = decode::<pb::CloseSessionRequest>(bytes) {
                apply_checked(vec![Request::new(Command::CloseSession { id: r.session_id })]);
            }
        }
        _ => {
            if let Some(r) = decode::<pb::SessionInfoRequest>(bytes) {
                let _ = replica::state().session(r.session_id);
            }
        }
    }
}

/// The Watch service: the request's scope and path become a filter, as the service makes
/// it; a filter made from a path must match that path.
pub fn watch_request(data: &[u8]) {
    let Some(r) = decode::<pb::WatchRequest>(data) else { return };
    let limits = Limits::default();
    let Ok(filter) = watch::watch_filter(&r, &limits) else { return };
    if let Ok(filter) = filter
        && !matches!(filter, WatchFilter::Glob { .. })
    {
        assert!(filter.matches(&r.path), "{filter:?} does not match its own path");
    }
}

/// The Cluster service: its requests carry no fields, but they are still decoded.
pub fn cluster_request(data: &[u8]) {
    let Some((rpc, bytes)) = split(data, 4) else { return };
    match rpc {
        0 => {
            let _ = decode::<pb::StatusRequest>(bytes);
        }
        1 => {
            let _ = decode::<pb::WhoAmIRequest>(bytes);
        }
        2 => {
            // ApplyAcl: its text goes where the member sends it, the policy parser and
            // the state machine.
            if let Some(r) = decode::<pb::ApplyAclRequest>(bytes) {
                crate::text::acl_policy(r.text.as_bytes());
            }
        }
        _ => {
            let _ = decode::<pb::GetAclRequest>(bytes);
        }
    }
}

/// The answer of the one request an input's write made.
fn output(applied: &[Applied]) -> Option<&Output> {
    applied.first().and_then(|a| a.response.outcome.as_ref().ok())
}

/// A session's identity as the recipe services show it (empty once it is gone).
fn identity(state: &State, session: u64) -> String {
    state.session(session).map(|s| s.identity.clone()).unwrap_or_default()
}

/// A leader as the Election service shows it, with its session's identity.
fn info(state: &State, name: &str, leader: election::Leader) -> pb::LeaderInfo {
    let identity = identity(state, leader.session);
    leader_info(name, leader, identity)
}

/// The Election service: Campaign, Proclaim, Resign (applied in the request's session),
/// Leader and Observe (read). A granted campaign must be the election's leader, with the
/// token it was granted; Observe's filter must match its election.
pub fn election_request(data: &[u8]) {
    let Some((rpc, bytes)) = split(data, 5) else { return };
    match rpc {
        0 => {
            let Some(r) = decode::<pb::CampaignRequest>(bytes) else { return };
            if r.session_id == 0 {
                return;
            }
            let command = Command::Campaign { path: r.name.clone(), value: r.value.clone() };
            let (state, applied) = apply_checked(vec![Request::in_session(r.session_id, command)]);
            if let Some(Output::LockQueued { token: Some(token), .. }) = output(&applied) {
                let leader = election::leader(state.tree(), &r.name)
                    .filter(|l| l.token == *token && l.session == r.session_id);
                assert!(leader.is_some(), "{r:?} was granted token {token} but does not lead");
                let _ = leader.map(|l| info(&state, &r.name, l));
            }
        }
        1 => {
            let Some(r) = decode::<pb::ProclaimRequest>(bytes) else { return };
            if r.session_id != 0 {
                let command = Command::Proclaim { path: r.name, token: r.token, value: r.value };
                apply_checked(vec![Request::in_session(r.session_id, command)]);
            }
        }
        2 => {
            let Some(r) = decode::<pb::ResignRequest>(bytes) else { return };
            if r.session_id != 0 {
                let command = Command::Resign { path: r.name, token: r.token };
                apply_checked(vec![Request::in_session(r.session_id, command)]);
            }
        }
        3 => {
            let Some(r) = decode::<pb::LeaderRequest>(bytes) else { return };
            let state = replica::state();
            if let Ok(Some(l)) = state.leader(&r.name) {
                let _ = info(&state, &r.name, l);
            }
        }
        _ => {
            let Some(r) = decode::<pb::ObserveRequest>(bytes) else { return };
            let state = replica::state();
            let Ok(filter) = WatchFilter::key(&r.name, state.limits()) else { return };
            assert!(filter.matches(&r.name), "{filter:?} does not match its own election");
            if r.start_revision == 0
                && let Some(l) = election::leader(state.tree(), &r.name)
            {
                let _ = info(&state, &r.name, l);
            }
        }
    }
}

/// The Barrier service: Set, Remove (applied without a session), Wait, Enter, Leave
/// (applied in the request's session), Status (read).
pub fn barrier_request(data: &[u8]) {
    let Some((rpc, bytes)) = split(data, 6) else { return };
    match rpc {
        0 => {
            if let Some(r) = decode::<pb::BarrierSetRequest>(bytes) {
                apply_checked(vec![Request::new(Command::SetBarrier { path: r.name })]);
            }
        }
        1 => {
            if let Some(r) = decode::<pb::BarrierRemoveRequest>(bytes) {
                apply_checked(vec![Request::new(Command::RemoveBarrier { path: r.name })]);
            }
        }
        2 => {
            if let Some(r) = decode::<pb::BarrierWaitRequest>(bytes)
                && r.session_id != 0
            {
                let command = Command::WaitBarrier { path: r.name.clone() };
                let (state, _) = apply_checked(vec![Request::in_session(r.session_id, command)]);
                // The service asks whether the barrier is still set after a broken wait.
                let _ = state.barrier(&r.name).is_ok_and(|(c, _)| c.kind == QueueKind::Barrier);
            }
        }
        3 => {
            if let Some(r) = decode::<pb::BarrierEnterRequest>(bytes)
                && r.session_id != 0
            {
                let command = Command::EnterBarrier { path: r.name, count: r.count };
                apply_checked(vec![Request::in_session(r.session_id, command)]);
            }
        }
        4 => {
            if let Some(r) = decode::<pb::BarrierLeaveRequest>(bytes)
                && r.session_id != 0
            {
                // The incarnation it leaves, read first as the service does.
                let _ = replica::state().get(&r.name).map(|n| n.stat.create_revision);
                let command = Command::LeaveBarrier { path: r.name };
                apply_checked(vec![Request::in_session(r.session_id, command)]);
            }
        }
        _ => {
            let Some(r) = decode::<pb::BarrierStatusRequest>(bytes) else { return };
            let state = replica::state();
            if let Ok((config, members)) = state.barrier(&r.name) {
                let members: Vec<pb::LockWaiter> = members
                    .iter()
                    .map(|m| lock::lock_waiter(m, identity(&state, m.session)))
                    .collect();
                let _ = match config.kind {
                    QueueKind::DoubleBarrier { count } => {
                        let open = members.first().is_some_and(|m| m.token.is_some());
                        (lock::DOUBLE_BARRIER_NAME, open, count)
                    }
                    _ => (lock::BARRIER_NAME, true, 0),
                };
            }
        }
    }
}

/// The Resource service: Init, Rotate, Force (applied without a session), Acquire (its
/// lock fields converted as Lock.Acquire's, applied in the request's session), Status
/// (read). The waiter an acquire answers must be in the queue of the lock it names.
pub fn resource_request(data: &[u8]) {
    let Some((rpc, bytes)) = split(data, 5) else { return };
    match rpc {
        0 => {
            if let Some(r) = decode::<pb::ResourceInitRequest>(bytes) {
                let command = Command::InitResource { path: r.kind, version: r.version };
                apply_checked(vec![Request::new(command)]);
            }
        }
        1 => {
            if let Some(r) = decode::<pb::ResourceAcquireRequest>(bytes) {
                resource_acquire(r);
            }
        }
        2 => {
            if let Some(r) = decode::<pb::RotationRequest>(bytes) {
                apply_checked(vec![Request::new(Command::BeginRotation {
                    path: r.kind,
                    to: r.to,
                })]);
            }
        }
        3 => {
            if let Some(r) = decode::<pb::ForceRotationRequest>(bytes) {
                apply_checked(vec![Request::new(Command::ForceRotation { path: r.kind })]);
            }
        }
        _ => {
            let Some(r) = decode::<pb::ResourceStatusRequest>(bytes) else { return };
            let state = replica::state();
            if let Ok(view) = state.resource(&r.kind) {
                for (lock_path, w) in view.current.iter().chain(&view.next) {
                    let _ = warden_core::path::name(lock_path);
                    let _ = lock::lock_waiter(w, identity(&state, w.session));
                }
            }
        }
    }
}

/// A resource acquire as the Resource service proposes it.
fn resource_acquire(r: pb::ResourceAcquireRequest) {
    if r.session_id == 0 {
        return;
    }
    let as_lock = lock::resource_lock(&r);
    let Ok(Command::Acquire { kind, mode, delay_ms, .. }) = lock::acquire(&as_lock) else {
        return;
    };
    let draining = if r.no_wait_while_draining { WhileDraining::Fail } else { WhileDraining::Wait };
    let command =
        Command::AcquireResource { path: r.kind, id: r.id, kind, mode, delay_ms, draining };
    let (state, applied) = apply_checked(vec![Request::in_session(r.session_id, command)]);
    if let Some(Output::LockQueued { waiter, .. }) = output(&applied) {
        let lock_path = warden_core::path::parent(waiter).unwrap_or_default();
        let queued =
            state.lock(lock_path).is_ok_and(|(_, ws)| ws.iter().any(|w| &w.path == waiter));
        assert!(queued, "the acquire's waiter {waiter} is not in the queue of {lock_path:?}");
    }
}
