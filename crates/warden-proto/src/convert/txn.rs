//! Compares, transaction operations and their results.

use warden_core::{Check, Command, Compare, CompareOp, CreateMode, Output, TxnOp};

use super::ConvertError;
use super::kv::{create_request, node_kind, stat};
use crate::v1 as pb;

/// What a compare operator field accepts.
pub const COMPARE_OPS: &str = "use COMPARE_OP_EQUAL (0), COMPARE_OP_NOT_EQUAL (1), COMPARE_OP_LESS (2) or COMPARE_OP_GREATER (3)";

/// A compare operator field in `within`; an error for one this side does not know (taking
/// it as `Equal` would decide the transaction on a test never asked for).
pub fn compare_op(op: i32, within: impl FnOnce() -> String) -> Result<CompareOp, ConvertError> {
    match pb::CompareOp::try_from(op) {
        Ok(pb::CompareOp::Equal) => Ok(CompareOp::Equal),
        Ok(pb::CompareOp::NotEqual) => Ok(CompareOp::NotEqual),
        Ok(pb::CompareOp::Less) => Ok(CompareOp::Less),
        Ok(pb::CompareOp::Greater) => Ok(CompareOp::Greater),
        Err(_) => Err(ConvertError::unknown("op", "compare op", op, within(), COMPARE_OPS)),
    }
}

/// A compare operator as protobuf.
pub fn pb_compare_op(op: CompareOp) -> pb::CompareOp {
    match op {
        CompareOp::Equal => pb::CompareOp::Equal,
        CompareOp::NotEqual => pb::CompareOp::NotEqual,
        CompareOp::Less => pb::CompareOp::Less,
        CompareOp::Greater => pb::CompareOp::Greater,
    }
}

/// Compare `index` of a transaction as the core's; an error if it has no target or an
/// unknown operator.
pub fn compare(index: usize, c: pb::Compare) -> Result<Compare, ConvertError> {
    let within = || format!("transaction compare {index} (on {:?})", c.path);
    let op = compare_op(c.op, within)?;
    let check = match c.target {
        Some(pb::compare::Target::Exists(e)) => Check::Exists(e),
        Some(pb::compare::Target::Version(v)) => Check::Version(op, v),
        Some(pb::compare::Target::ModRevision(v)) => Check::ModRevision(op, v),
        Some(pb::compare::Target::CreateRevision(v)) => Check::CreateRevision(op, v),
        None => {
            return Err(ConvertError::unset(
                "target",
                within(),
                "set exists, version, mod_revision or create_revision",
            ));
        }
    };
    Ok(Compare { path: c.path, check })
}

/// A compare as protobuf (an existence test carries `Equal`, which it ignores).
pub fn pb_compare(c: Compare) -> pb::Compare {
    use pb::compare::Target;
    let (target, op) = match c.check {
        Check::Exists(exists) => (Target::Exists(exists), CompareOp::Equal),
        Check::Version(op, v) => (Target::Version(v), op),
        Check::ModRevision(op, v) => (Target::ModRevision(v), op),
        Check::CreateRevision(op, v) => (Target::CreateRevision(v), op),
    };
    pb::Compare { path: c.path, target: Some(target), op: pb_compare_op(op).into() }
}

/// Operation `index` of a transaction as the core's; an error if it has no operation set
/// or creates a node of an unknown kind.
pub fn txn_op(index: usize, op: pb::TxnOp) -> Result<TxnOp, ConvertError> {
    let within = || format!("transaction operation {index}");
    match op.op {
        None => Err(ConvertError::unset("op", within(), "set create, set or delete")),
        Some(pb::txn_op::Op::Create(c)) => {
            let kind = node_kind(c.kind, || format!("the create of {:?}", c.path))
                .map_err(|e| e.inside(within()))?;
            let mode = CreateMode { kind, sequential: c.sequential };
            Ok(TxnOp::Create { path: c.path, data: c.data, mode })
        }
        Some(pb::txn_op::Op::Set(s)) => {
            Ok(TxnOp::Set { path: s.path, data: s.data, expected_version: s.expected_version })
        }
        Some(pb::txn_op::Op::Delete(d)) => Ok(TxnOp::Delete {
            path: d.path,
            expected_version: d.expected_version,
            recursive: d.recursive,
            revoke_locks: d.revoke_locks,
        }),
    }
}

/// A transaction operation as protobuf; an error for the create of a lock node.
pub fn pb_txn_op(op: TxnOp) -> Result<pb::TxnOp, ConvertError> {
    use pb::txn_op::Op;
    let op = match op {
        TxnOp::Create { path, data, mode } => Op::Create(create_request(path, data, mode, None)?),
        TxnOp::Set { path, data, expected_version } => {
            Op::Set(pb::SetRequest { path, data, expected_version, origin: None })
        }
        TxnOp::Delete { path, expected_version, recursive, revoke_locks } => {
            Op::Delete(pb::DeleteRequest {
                path,
                expected_version,
                recursive,
                origin: None,
                revoke_locks,
            })
        }
    };
    Ok(pb::TxnOp { op: Some(op) })
}

/// A transaction request as a command; an error naming the first compare or operation
/// that cannot be converted.
pub fn txn(r: pb::TxnRequest) -> Result<Command, ConvertError> {
    let compares = r
        .compares
        .into_iter()
        .enumerate()
        .map(|(i, c)| compare(i, c))
        .collect::<Result<Vec<_>, _>>()?;
    let ops =
        r.ops.into_iter().enumerate().map(|(i, op)| txn_op(i, op)).collect::<Result<_, _>>()?;
    Ok(Command::Txn { compares, ops })
}

/// A transaction as a request; an error for the create of a lock node.
pub fn txn_request(
    compares: Vec<Compare>,
    ops: Vec<TxnOp>,
    origin: Option<pb::Origin>,
) -> Result<pb::TxnRequest, ConvertError> {
    Ok(pb::TxnRequest {
        compares: compares.into_iter().map(pb_compare).collect(),
        ops: ops.into_iter().map(pb_txn_op).collect::<Result<_, _>>()?,
        origin,
    })
}

/// One transaction result as protobuf (an output a transaction operation cannot have
/// gives an empty result, which the client refuses as unreadable).
pub fn txn_result(output: Output) -> pb::TxnOpResult {
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
    use warden_core::{NodeKind, Stat};

    use super::*;

    fn exists(path: &str) -> pb::Compare {
        pb_compare(Compare { path: path.into(), check: Check::Exists(true) })
    }

    fn create(path: &str) -> pb::TxnOp {
        pb::TxnOp {
            op: Some(pb::txn_op::Op::Create(pb::CreateRequest {
                path: path.into(),
                ..Default::default()
            })),
        }
    }

    fn refused(r: pb::TxnRequest) -> ConvertError {
        match txn(r) {
            Err(e) => e,
            Ok(c) => panic!("converted: {c:?}"),
        }
    }

    #[test]
    fn a_compare_without_a_target_is_refused_by_index() {
        let untargeted = pb::Compare { path: "/b".into(), ..Default::default() };
        let e = refused(pb::TxnRequest {
            compares: vec![exists("/a"), untargeted],
            ops: vec![create("/c")],
            origin: None,
        });
        assert_eq!((e.field, e.value.as_deref()), ("target", None));
        assert!(e.to_string().contains("`target` of transaction compare 1 (on \"/b\")"), "{e}");
    }

    #[test]
    fn an_op_without_an_operation_is_refused_by_index() {
        let e = refused(pb::TxnRequest {
            compares: vec![exists("/a")],
            ops: vec![create("/c"), create("/d"), pb::TxnOp { op: None }],
            origin: None,
        });
        assert_eq!((e.field, e.value.as_deref()), ("op", None));
        assert!(e.to_string().contains("`op` of transaction operation 2 is not set"), "{e}");
    }

    #[test]
    fn an_unknown_compare_op_is_refused_by_field_and_value() {
        let odd = pb::Compare {
            path: "/b".into(),
            op: 99,
            target: Some(pb::compare::Target::Version(1)),
        };
        let e = refused(pb::TxnRequest {
            compares: vec![exists("/a"), odd],
            ops: vec![],
            origin: None,
        });
        assert_eq!((e.field, e.value.as_deref()), ("op", Some("99")));
        assert!(
            e.to_string().contains("99 in field `op` of transaction compare 1 (on \"/b\")"),
            "{e}"
        );
        assert!(e.to_string().contains("COMPARE_OP_GREATER (3)"), "{e}");
    }

    #[test]
    fn an_unknown_node_kind_in_a_transaction_names_the_operation() {
        let odd = pb::CreateRequest { path: "/n".into(), kind: 7, ..Default::default() };
        let e = refused(pb::TxnRequest {
            compares: vec![],
            ops: vec![create("/c"), pb::TxnOp { op: Some(pb::txn_op::Op::Create(odd)) }],
            origin: None,
        });
        assert_eq!((e.field, e.value.as_deref()), ("kind", Some("7")));
        assert!(e.to_string().contains("of the create of \"/n\", transaction operation 1"), "{e}");
    }

    #[test]
    fn every_compare_op_goes_there_and_back_and_is_named_in_the_hint() {
        for op in [CompareOp::Equal, CompareOp::NotEqual, CompareOp::Less, CompareOp::Greater] {
            assert_eq!(compare_op(pb_compare_op(op).into(), String::new), Ok(op));
        }
        for n in 0..64 {
            if let Ok(op) = pb::CompareOp::try_from(n) {
                assert!(compare_op(n, String::new).is_ok(), "{op:?}");
                assert!(COMPARE_OPS.contains(op.as_str_name()), "{op:?}");
            }
        }
    }

    #[test]
    fn every_check_goes_there_and_back() {
        for check in [
            Check::Exists(false),
            Check::Exists(true),
            Check::Version(CompareOp::Less, 3),
            Check::ModRevision(CompareOp::Greater, 4),
            Check::CreateRevision(CompareOp::NotEqual, 5),
        ] {
            let c = Compare { path: "/a".into(), check };
            assert_eq!(compare(0, pb_compare(c.clone())), Ok(c));
        }
    }

    #[test]
    fn a_transaction_goes_there_and_back() {
        let compares = vec![
            Compare { path: "/a".into(), check: Check::Exists(true) },
            Compare { path: "/b".into(), check: Check::Version(CompareOp::Equal, 2) },
        ];
        let ops = vec![
            TxnOp::Create {
                path: "/c".into(),
                data: "x".into(),
                mode: CreateMode { kind: NodeKind::Container, sequential: true },
            },
            TxnOp::Set { path: "/a".into(), data: "y".into(), expected_version: Some(1) },
            TxnOp::Delete {
                path: "/b".into(),
                expected_version: None,
                recursive: true,
                revoke_locks: false,
            },
        ];
        let request = txn_request(compares.clone(), ops.clone(), None);
        assert_eq!(request.and_then(txn), Ok(Command::Txn { compares, ops }));
    }

    #[test]
    fn a_lock_node_cannot_be_created_in_a_transaction() {
        let op = TxnOp::Create {
            path: "/l".into(),
            data: "".into(),
            mode: CreateMode { kind: NodeKind::Queue, sequential: false },
        };
        let e = txn_request(vec![], vec![op], None).err();
        assert_eq!(e.map(|e| e.field), Some("kind"));
    }

    #[test]
    fn each_result_converts_and_other_outputs_give_none() {
        let s = Stat { version: 2, ..Stat::default() };
        let created = txn_result(Output::Created { path: "/c0001".into(), stat: s });
        match created.result {
            Some(pb::txn_op_result::Result::Create(c)) => {
                assert_eq!(c.path, "/c0001");
                assert_eq!(c.stat.map(|s| s.version), Some(2));
            }
            other => panic!("{other:?}"),
        }
        let set = txn_result(Output::Set { stat: s });
        assert!(matches!(set.result, Some(pb::txn_op_result::Result::Set(_))));
        let deleted = txn_result(Output::Deleted { count: 3, revoked: 1, kept: 2 });
        match deleted.result {
            Some(pb::txn_op_result::Result::Delete(d)) => {
                assert_eq!((d.deleted, d.revoked, d.kept), (3, 1, 2));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(txn_result(Output::LimitsSet).result, None);
    }
}
