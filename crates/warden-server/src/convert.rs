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

/// A create's mode; an error naming the field and value for a node kind this member does
/// not know (taking it as persistent would keep a node the caller meant to go away).
fn mode(kind: i32, sequential: bool, path: &str) -> Result<CreateMode, String> {
    let kind = match pb::NodeKind::try_from(kind) {
        Ok(pb::NodeKind::Persistent) => NodeKind::Persistent,
        Ok(pb::NodeKind::Ephemeral) => NodeKind::Ephemeral,
        Ok(pb::NodeKind::Container) => NodeKind::Container,
        Err(_) => {
            return Err(format!(
                "unknown node kind {kind} in field `kind` of the create of {path:?}; use NODE_KIND_PERSISTENT (0), NODE_KIND_EPHEMERAL (1) or NODE_KIND_CONTAINER (2)"
            ));
        }
    };
    Ok(CreateMode { kind, sequential })
}

/// A create request as a command; an error naming the field of an unknown node kind.
pub fn create(r: pb::CreateRequest) -> Result<Command, String> {
    let mode = mode(r.kind, r.sequential, &r.path)?;
    Ok(Command::Create { path: r.path, data: r.data, mode })
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

/// A compare as the core's; an error naming its index if it has no target or an unknown
/// operator (taking it as `Equal` would decide the transaction on a test never asked for).
fn compare(index: usize, c: pb::Compare) -> Result<Compare, String> {
    let op = match pb::CompareOp::try_from(c.op) {
        Ok(pb::CompareOp::Equal) => CompareOp::Equal,
        Ok(pb::CompareOp::NotEqual) => CompareOp::NotEqual,
        Ok(pb::CompareOp::Less) => CompareOp::Less,
        Ok(pb::CompareOp::Greater) => CompareOp::Greater,
        Err(_) => {
            return Err(format!(
                "transaction compare {index} (on {:?}) has unknown compare op {} in field `op`; use COMPARE_OP_EQUAL (0), COMPARE_OP_NOT_EQUAL (1), COMPARE_OP_LESS (2) or COMPARE_OP_GREATER (3)",
                c.path, c.op
            ));
        }
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
            Some(op) => Ok((i, op)),
        })
        .map(|op| match op? {
            (i, pb::txn_op::Op::Create(c)) => {
                let mode = mode(c.kind, c.sequential, &c.path)
                    .map_err(|e| format!("transaction operation {i}: {e}"))?;
                Ok(TxnOp::Create { path: c.path, data: c.data, mode })
            }
            (_, pb::txn_op::Op::Set(s)) => {
                Ok(TxnOp::Set { path: s.path, data: s.data, expected_version: s.expected_version })
            }
            (_, pb::txn_op::Op::Delete(d)) => Ok(TxnOp::Delete {
                path: d.path,
                expected_version: d.expected_version,
                recursive: d.recursive,
                revoke_locks: d.revoke_locks,
            }),
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Command::Txn { compares, ops })
}

/// A lock (or semaphore) acquire as a command; INVALID_ARGUMENT for a lock type this
/// member does not know (taking it as a mutex would grant what the caller did not ask for).
pub fn acquire(r: &pb::AcquireRequest) -> Result<Command, tonic::Status> {
    let (kind, mode) = match pb::LockType::try_from(r.r#type) {
        Ok(pb::LockType::Mutex) => (LockKind::Mutex, WaitMode::Exclusive),
        Ok(pb::LockType::Rwlock) if r.shared => (LockKind::ReadWrite, WaitMode::Shared),
        Ok(pb::LockType::Rwlock) => (LockKind::ReadWrite, WaitMode::Exclusive),
        Ok(pb::LockType::Semaphore) => {
            (LockKind::Semaphore { permits: r.permits }, WaitMode::Permits(r.weight.max(1)))
        }
        Err(_) => {
            return Err(crate::status::invalid(format!(
                "unknown lock type {} in field `type` of the acquire of {:?}; use LOCK_TYPE_MUTEX (0), LOCK_TYPE_RWLOCK (1) or LOCK_TYPE_SEMAPHORE (2)",
                r.r#type, r.path
            )));
        }
    };
    Ok(Command::Acquire { path: r.path.clone(), kind, mode, delay_ms: r.delay_ms })
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
    fn an_unknown_compare_op_is_refused_by_field_and_value() {
        let odd = pb::Compare {
            path: "/b".into(),
            op: 99,
            target: Some(pb::compare::Target::Version(1)),
        };
        let request =
            pb::TxnRequest { compares: vec![exists("/a"), odd], ops: vec![], origin: None };
        let error = txn(request).err().unwrap_or_default();
        assert!(
            error.contains("compare 1 (on \"/b\") has unknown compare op 99 in field `op`"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_node_kind_is_refused_by_field_and_value() {
        let odd = pb::CreateRequest { path: "/n".into(), kind: 7, ..Default::default() };
        let error = super::create(odd.clone()).err().unwrap_or_default();
        assert!(
            error.contains("unknown node kind 7 in field `kind` of the create of \"/n\""),
            "{error}"
        );
        let request = pb::TxnRequest {
            compares: vec![],
            ops: vec![create("/c"), pb::TxnOp { op: Some(pb::txn_op::Op::Create(odd)) }],
            origin: None,
        };
        let error = txn(request).err().unwrap_or_default();
        assert!(error.contains("transaction operation 1: unknown node kind 7"), "{error}");
    }

    #[test]
    fn every_known_compare_op_and_node_kind_converts() {
        for (op, expected) in [
            (pb::CompareOp::Equal, CompareOp::Equal),
            (pb::CompareOp::NotEqual, CompareOp::NotEqual),
            (pb::CompareOp::Less, CompareOp::Less),
            (pb::CompareOp::Greater, CompareOp::Greater),
        ] {
            let c = pb::Compare {
                path: "/a".into(),
                op: op.into(),
                target: Some(pb::compare::Target::Version(3)),
            };
            assert_eq!(compare(0, c).map(|c| c.check), Ok(Check::Version(expected, 3)));
        }
        for (kind, expected) in [
            (pb::NodeKind::Persistent, NodeKind::Persistent),
            (pb::NodeKind::Ephemeral, NodeKind::Ephemeral),
            (pb::NodeKind::Container, NodeKind::Container),
        ] {
            assert_eq!(mode(kind.into(), false, "/a").map(|m| m.kind), Ok(expected));
        }
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
