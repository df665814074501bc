//! Transactions: compares on the state before, then operations, all or nothing.
//!
//! A transaction is written with the core's own types ([`Compare`], [`Check`],
//! [`CompareOp`], [`TxnOp`], re-exported at the crate root), the ones the state machine
//! applies, so a program needs no other crate and no wire types; its answer is a
//! [`TxnResult`].

use tonic::Code;
use warden_core::{Check, Compare, CompareOp, CreateMode, NodeKind, Stat, TxnOp};
use warden_proto::ErrorKind;
use warden_proto::v1 as pb;

use crate::connection;
use crate::error::ClientError;
use crate::{Client, Deleted, Session};

/// What a transaction did ([`Client::txn`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    /// Every compare held and the operations were applied; otherwise nothing was.
    pub succeeded: bool,
    /// When not: the index of the first compare that did not hold.
    pub failed_compare: Option<usize>,
    /// One result per operation, in order (empty when not succeeded).
    pub results: Vec<TxnOpResult>,
    /// The revision after the transaction.
    pub revision: u64,
}

/// What one operation of a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResult {
    /// A node was created: its path (with the counter, if sequential) and stat.
    Created {
        /// The path.
        path: String,
        /// Its stat.
        stat: Stat,
    },
    /// A node's value was set.
    Set {
        /// Its new stat.
        stat: Stat,
    },
    /// Nodes were deleted.
    Deleted(Deleted),
}

/// The wire kind of a node to create; a lock node is made by acquiring a lock.
pub(crate) fn node_kind(mode: CreateMode) -> Result<pb::NodeKind, ClientError> {
    match mode.kind {
        NodeKind::Persistent => Ok(pb::NodeKind::Persistent),
        NodeKind::Ephemeral => Ok(pb::NodeKind::Ephemeral),
        NodeKind::Container => Ok(pb::NodeKind::Container),
        NodeKind::Queue => Err(ClientError::Server {
            code: Code::InvalidArgument,
            message: "queue nodes are made by the recipes (acquiring a lock, campaigning, setting a barrier), not by create".into(),
            kind: Some(ErrorKind::InvalidCreateMode),
        }),
    }
}

fn compare(c: Compare) -> pb::Compare {
    use pb::compare::Target;
    let (target, op) = match c.check {
        Check::Exists(exists) => (Target::Exists(exists), CompareOp::Equal),
        Check::Version(op, v) => (Target::Version(v), op),
        Check::ModRevision(op, v) => (Target::ModRevision(v), op),
        Check::CreateRevision(op, v) => (Target::CreateRevision(v), op),
    };
    let op = match op {
        CompareOp::Equal => pb::CompareOp::Equal,
        CompareOp::NotEqual => pb::CompareOp::NotEqual,
        CompareOp::Less => pb::CompareOp::Less,
        CompareOp::Greater => pb::CompareOp::Greater,
    };
    pb::Compare { path: c.path, target: Some(target), op: op.into() }
}

fn op(op: TxnOp) -> Result<pb::TxnOp, ClientError> {
    use pb::txn_op::Op;
    let op = match op {
        TxnOp::Create { path, data, mode } => Op::Create(pb::CreateRequest {
            path,
            data,
            kind: node_kind(mode)?.into(),
            sequential: mode.sequential,
            origin: None,
        }),
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

fn result(r: pb::TxnOpResult) -> Result<TxnOpResult, ClientError> {
    use pb::txn_op_result::Result as R;
    match r.result {
        Some(R::Create(c)) => Ok(TxnOpResult::Created { path: c.path, stat: crate::stat(c.stat) }),
        Some(R::Set(s)) => Ok(TxnOpResult::Set { stat: crate::stat(s.stat) }),
        Some(R::Delete(d)) => Ok(TxnOpResult::Deleted(Deleted {
            deleted: d.deleted,
            revoked: d.revoked,
            kept: d.kept,
        })),
        None => Err(ClientError::UnexpectedResponse {
            message: "a transaction result of an unknown kind".into(),
        }),
    }
}

/// The wire answer as a [`TxnResult`].
fn txn_result(r: pb::TxnResponse) -> Result<TxnResult, ClientError> {
    Ok(TxnResult {
        succeeded: r.succeeded,
        failed_compare: (!r.succeeded).then_some(r.failed_compare as usize),
        results: r.results.into_iter().map(result).collect::<Result<_, _>>()?,
        revision: r.header.map(|h| h.revision).unwrap_or(0),
    })
}

impl Client {
    /// Runs a transaction: if every compare holds on the state before it, applies the
    /// operations in order, all or nothing. An ephemeral node needs [`Client::txn_in`].
    /// Like a plain write, it is not sent twice: when no answer comes back its outcome is
    /// [`ClientError::OutcomeUnknown`].
    pub async fn txn(
        &self,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<TxnResult, ClientError> {
        self.txn_with(None, compares, ops).await
    }

    /// Runs a transaction in `session` (which owns the ephemeral nodes it creates),
    /// exactly once: it carries a request id, so it is retried on any failure (see
    /// [`Client::create_in`]).
    pub async fn txn_in(
        &self,
        session: &Session,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<TxnResult, ClientError> {
        let origin = session.begin();
        let result = self.txn_with(Some(origin), compares, ops).await;
        session.finish(origin.request_id.map(|r| r.seq).unwrap_or(0));
        result
    }

    async fn txn_with(
        &self,
        origin: Option<pb::Origin>,
        compares: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<TxnResult, ClientError> {
        let request = pb::TxnRequest {
            compares: compares.into_iter().map(compare).collect(),
            ops: ops.into_iter().map(op).collect::<Result<_, _>>()?,
            origin,
        };
        connection::within_limit(&request)?;
        let response = self
            .connection
            .run(Client::retry(request.origin.as_ref()), |c| {
                let request = request.clone();
                async move { connection::kv(c).txn(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        txn_result(response)
    }
}
