//! Client requests as a member receives them: protobuf bytes decoded with prost, run
//! through the server's own conversion ([`warden_proto::convert`], which the client uses too) and applied to a
//! replica, or answered from it for reads.
//!
//! One target per service; the first byte of an input picks the RPC, the rest is its
//! message, so one corpus covers every request of a service.

use prost::Message;
use warden_core::{Command, Limits, Request, WatchFilter};
use warden_proto::convert::{kv, lock, txn, watch};
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

/// The Lock service: Acquire and TryAcquire, Release, Revoke, Status, CheckSequencer.
pub fn lock_request(data: &[u8]) {
    let Some((rpc, bytes)) = split(data, 5) else { return };
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
                let _ = replica::state().lock(&r.path);
            }
        }
        _ => {
            if let Some(r) = decode::<pb::CheckSequencerRequest>(bytes) {
                let _ = replica::state().check_sequencer(&r.path, r.token);
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
