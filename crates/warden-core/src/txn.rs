//! Transactions: compares evaluated on the state before, then operations, all or nothing.

use crate::command::{Check, Compare, TxnOp};
use crate::delete;
use crate::error::CoreError;
use crate::ids::SessionId;
use crate::limits::Limits;
use crate::namespace::Mutation;
use crate::path;
use crate::response::Output;
use crate::tree::Tree;

/// Checks a transaction's size against the limits.
pub(crate) fn check_size(
    compares: &[Compare],
    ops: &[TxnOp],
    limits: &Limits,
) -> Result<(), CoreError> {
    if compares.len() > limits.max_txn_compares {
        return Err(CoreError::TxnTooLarge {
            what: "compares".to_owned(),
            count: compares.len(),
            max: limits.max_txn_compares,
        });
    }
    if ops.len() > limits.max_txn_ops {
        return Err(CoreError::TxnTooLarge {
            what: "operations".to_owned(),
            count: ops.len(),
            max: limits.max_txn_ops,
        });
    }
    let bytes = size_in_bytes(compares, ops);
    if bytes > limits.max_txn_bytes {
        return Err(CoreError::TxnBytesTooLarge { bytes, max: limits.max_txn_bytes });
    }
    Ok(())
}

/// A transaction's size as [`Limits::max_txn_bytes`] counts it: every path, and every
/// value written.
pub(crate) fn size_in_bytes(compares: &[Compare], ops: &[TxnOp]) -> usize {
    let compared: usize = compares.iter().map(|c| c.path.len()).sum();
    let operated: usize = ops
        .iter()
        .map(|op| match op {
            TxnOp::Create { path, data, .. } | TxnOp::Set { path, data, .. } => {
                path.len().saturating_add(data.len())
            }
            TxnOp::Delete { path, .. } => path.len(),
        })
        .fold(0, usize::saturating_add);
    compared.saturating_add(operated)
}

/// The index of the first compare that does not hold, if any.
pub(crate) fn first_failed(
    tree: &Tree,
    compares: &[Compare],
    limits: &Limits,
) -> Result<Option<u32>, CoreError> {
    for (index, compare) in compares.iter().enumerate() {
        path::validate(&compare.path, limits)?;
        let stat = tree.get(&compare.path).map(|n| n.stat);
        let holds = match (compare.check, stat) {
            (Check::Exists(wanted), stat) => wanted == stat.is_some(),
            (_, None) => false,
            (Check::Version(op, v), Some(s)) => op.holds(s.version, v),
            (Check::ModRevision(op, v), Some(s)) => op.holds(s.mod_revision, v),
            (Check::CreateRevision(op, v), Some(s)) => op.holds(s.create_revision, v),
        };
        if !holds {
            return Ok(Some(u32::try_from(index).unwrap_or(u32::MAX)));
        }
    }
    Ok(None)
}

/// Applies the operations in order; the first failure fails the whole transaction (the
/// caller rolls the mutation back).
pub(crate) fn apply_ops(
    m: &mut Mutation<'_>,
    ops: Vec<TxnOp>,
    session: Option<SessionId>,
) -> Result<Vec<Output>, CoreError> {
    let mut results = Vec::with_capacity(ops.len());
    for (index, op) in ops.into_iter().enumerate() {
        let result = match op {
            TxnOp::Create { path, data, mode } => m
                .create(&path, data, mode, session)
                .map(|(path, stat)| Output::Created { path, stat }),
            TxnOp::Set { path, data, expected_version } => {
                m.set(&path, data, expected_version).map(|stat| Output::Set { stat })
            }
            TxnOp::Delete { path, expected_version, recursive, revoke_locks } => {
                delete::delete(m, &path, expected_version, recursive, revoke_locks)
            }
        };
        match result {
            Ok(output) => results.push(output),
            Err(error) => {
                return Err(CoreError::TxnOpFailed {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    error: Box::new(error),
                });
            }
        }
    }
    Ok(results)
}
