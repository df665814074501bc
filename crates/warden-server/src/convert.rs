//! Conversions between the protobuf messages and the core's types.
//!
//! The request conversions are public so that `warden-fuzz` can run bytes from outside
//! through the very code a member runs them through; nothing else should need them.

use warden_core::queue::{LockKind, WaitMode};
use warden_core::{
    Check, Command, Compare, CompareOp, CreateMode, HoldRef, NodeKind, Output, RequestId, Stat,
    TxnOp,
};
use warden_proto::v1 as pb;

/// A stat as protobuf.
pub(crate) fn stat(s: &Stat) -> pb::Stat {
    pb::Stat {
        create_revision: s.create_revision,
        mod_revision: s.mod_revision,
        version: s.version,
        cversion: s.cversion,
        ephemeral_owner: s.ephemeral_owner,
        num_children: s.num_children,
        ctime_ms: s.ctime_ms,
        mtime_ms: s.mtime_ms,
        data_length: s.data_length,
    }
}

/// The session and request id of a request's origin.
pub fn origin(origin: Option<&pb::Origin>) -> (Option<u64>, Option<RequestId>) {
    let Some(o) = origin else { return (None, None) };
    let session = (o.session_id != 0).then_some(o.session_id);
    let id =
        o.request_id.as_ref().map(|r| RequestId { seq: r.seq, lowest_pending: r.lowest_pending });
    (session, id)
}

fn mode(kind: i32, sequential: bool) -> CreateMode {
    let kind = match pb::NodeKind::try_from(kind) {
        Ok(pb::NodeKind::Ephemeral) => NodeKind::Ephemeral,
        Ok(pb::NodeKind::Container) => NodeKind::Container,
        // Unknown values (from a newer client) fall back to the default, as proto3 does.
        _ => NodeKind::Persistent,
    };
    CreateMode { kind, sequential }
}

/// A create request as a command.
pub fn create(r: pb::CreateRequest) -> Command {
    Command::Create { path: r.path, data: r.data, mode: mode(r.kind, r.sequential) }
}

/// A set request as a command.
pub fn set(r: pb::SetRequest) -> Command {
    Command::Set { path: r.path, data: r.data, expected_version: r.expected_version }
}

/// A delete request as a command.
pub fn delete(r: pb::DeleteRequest) -> Command {
    Command::Delete {
        path: r.path,
        expected_version: r.expected_version,
        recursive: r.recursive,
        revoke_locks: r.revoke_locks,
    }
}

/// A compare as the core's; an error naming its index if it has no target.
fn compare(index: usize, c: pb::Compare) -> Result<Compare, String> {
    let op = match pb::CompareOp::try_from(c.op) {
        Ok(pb::CompareOp::NotEqual) => CompareOp::NotEqual,
        Ok(pb::CompareOp::Less) => CompareOp::Less,
        Ok(pb::CompareOp::Greater) => CompareOp::Greater,
        _ => CompareOp::Equal,
    };
    let check = match c.target {
        Some(pb::compare::Target::Exists(e)) => Check::Exists(e),
        Some(pb::compare::Target::Version(v)) => Check::Version(op, v),
        Some(pb::compare::Target::ModRevision(v)) => Check::ModRevision(op, v),
        Some(pb::compare::Target::CreateRevision(v)) => Check::CreateRevision(op, v),
        None => {
            return Err(format!(
                "transaction compare {index} (on {:?}) has no target; set exists, version, mod_revision or create_revision",
                c.path
            ));
        }
    };
    Ok(Compare { path: c.path, check })
}

/// A transaction request as a command; an error naming the compare or op that has no
/// target or no operation set.
pub fn txn(r: pb::TxnRequest) -> Result<Command, String> {
    let compares = r
        .compares
        .into_iter()
        .enumerate()
        .map(|(i, c)| compare(i, c))
        .collect::<Result<Vec<_>, _>>()?;
    let ops = r
        .ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| match op.op {
            None => Err(format!(
                "transaction operation {i} has no operation set; set create, set or delete"
            )),
            Some(op) => Ok(op),
        })
        .map(|op| match op? {
            pb::txn_op::Op::Create(c) => {
                Ok(TxnOp::Create { path: c.path, data: c.data, mode: mode(c.kind, c.sequential) })
            }
            pb::txn_op::Op::Set(s) => {
                Ok(TxnOp::Set { path: s.path, data: s.data, expected_version: s.expected_version })
            }
            pb::txn_op::Op::Delete(d) => Ok(TxnOp::Delete {
                path: d.path,
                expected_version: d.expected_version,
                recursive: d.recursive,
                revoke_locks: d.revoke_locks,
            }),
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Command::Txn { compares, ops })
}

/// A lock (or semaphore) acquire as a command; unknown lock types fall back to a mutex.
pub fn acquire(r: &pb::AcquireRequest) -> Command {
    let kind = match pb::LockType::try_from(r.r#type) {
        Ok(pb::LockType::Rwlock) => LockKind::ReadWrite,
        Ok(pb::LockType::Semaphore) => LockKind::Semaphore { permits: r.permits },
        _ => LockKind::Mutex,
    };
    let mode = match kind {
        LockKind::Mutex => WaitMode::Exclusive,
        LockKind::ReadWrite if r.shared => WaitMode::Shared,
        LockKind::ReadWrite => WaitMode::Exclusive,
        LockKind::Semaphore { .. } => WaitMode::Permits(r.weight.max(1)),
    };
    Command::Acquire { path: r.path.clone(), kind, mode, delay_ms: r.delay_ms }
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
    }
}

/// A release as a command: of the hold with the request's token, or of whatever the
/// session has at the path.
pub fn release(r: pb::ReleaseRequest) -> Command {
    let hold = r.token.map_or(HoldRef::Any, HoldRef::Token);
    Command::Release { path: r.path, hold }
}

/// One transaction result as protobuf.
pub(crate) fn txn_result(output: Output) -> pb::TxnOpResult {
    let result = match output {
        Output::Created { path, stat: s } => {
            pb::txn_op_result::Result::Create(pb::CreateResponse {
                header: None,
                path,
                stat: Some(stat(&s)),
            })
        }
        Output::Set { stat: s } => {
            pb::txn_op_result::Result::Set(pb::SetResponse { header: None, stat: Some(stat(&s)) })
        }
        Output::Deleted { count, revoked, kept } => {
            pb::txn_op_result::Result::Delete(pb::DeleteResponse {
                header: None,
                deleted: count,
                revoked,
                kept,
            })
        }
        _ => return pb::TxnOpResult { result: None },
    };
    pb::TxnOpResult { result: Some(result) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exists(path: &str) -> pb::Compare {
        pb::Compare {
            path: path.into(),
            target: Some(pb::compare::Target::Exists(true)),
            ..Default::default()
        }
    }

    fn create(path: &str) -> pb::TxnOp {
        pb::TxnOp {
            op: Some(pb::txn_op::Op::Create(pb::CreateRequest {
                path: path.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn a_compare_without_a_target_is_refused_by_index() {
        let untargeted = pb::Compare { path: "/b".into(), ..Default::default() };
        let request = pb::TxnRequest {
            compares: vec![exists("/a"), untargeted],
            ops: vec![create("/c")],
            origin: None,
        };
        let error = txn(request).err().unwrap_or_default();
        assert!(error.contains("compare 1 (on \"/b\") has no target"), "{error}");
    }

    #[test]
    fn an_op_without_an_operation_is_refused_by_index() {
        let request = pb::TxnRequest {
            compares: vec![exists("/a")],
            ops: vec![create("/c"), create("/d"), pb::TxnOp { op: None }],
            origin: None,
        };
        let error = txn(request).err().unwrap_or_default();
        assert!(error.contains("operation 2 has no operation set"), "{error}");
    }

    #[test]
    fn a_complete_transaction_converts() {
        let request =
            pb::TxnRequest { compares: vec![exists("/a")], ops: vec![create("/c")], origin: None };
        match txn(request) {
            Ok(Command::Txn { compares, ops }) => {
                assert_eq!(
                    compares,
                    vec![Compare { path: "/a".into(), check: Check::Exists(true) }]
                );
                assert_eq!(ops.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }
}
