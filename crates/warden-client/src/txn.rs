//! Transactions: compares on the state before, then operations, all or nothing.
//!
//! A transaction is written with the core's own types ([`Compare`], [`Check`](crate::Check),
//! [`CompareOp`](crate::CompareOp), [`TxnOp`], re-exported at the crate root), the ones the state machine
//! applies, so a program needs no other crate and no wire types; its answer is a
//! [`TxnResult`].

use warden_core::{Compare, Stat, TxnOp};
use warden_proto::convert::{kv, txn};
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

fn result(r: pb::TxnOpResult) -> Result<TxnOpResult, ClientError> {
    use pb::txn_op_result::Result as R;
    match r.result {
        Some(R::Create(c)) => {
            Ok(TxnOpResult::Created { path: c.path, stat: kv::core_stat(c.stat) })
        }
        Some(R::Set(s)) => Ok(TxnOpResult::Set { stat: kv::core_stat(s.stat) }),
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
        let request = txn::txn_request(compares, ops, origin).map_err(ClientError::unsendable)?;
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
