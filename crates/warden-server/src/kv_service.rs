//! The KV service: a thin adapter from protobuf to the core's commands and queries.

use prost::Message;
use tonic::{Request, Response, Status};
use warden_core::Output;
use warden_proto::convert::{kv, txn};
use warden_proto::v1 as pb;
use warden_proto::v1::kv_server::Kv;

use crate::shared::Shared;
use crate::status;

/// The most bytes of children one page of a listing carries: a page stays well inside
/// every message limit, however long the names (a directory of 20,000 children with
/// 250-byte names is about 6 MiB).
const PAGE_BYTES: usize = 1 << 20;

/// Serves the namespace to clients.
pub(crate) struct KvService {
    shared: Shared,
}

impl KvService {
    /// The service over one node.
    pub(crate) fn new(shared: Shared) -> KvService {
        KvService { shared }
    }

    /// Audits a delete that asked to revoke the locks in its way (an admin action, even
    /// when it found none to revoke).
    fn audit_revoking_delete(
        &self,
        identity: &str,
        path: &str,
        revision: u64,
        count: u64,
        revoked: u64,
        kept: u64,
    ) {
        self.shared.audit.admin(
            identity,
            "delete.revoke_locks",
            path,
            Some(revision),
            &format!(
                "deleted {count} node(s), revoking {revoked} lock hold(s) or wait(s); {kept} lock(s) kept until their lock-delay ends"
            ),
        );
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let (revision, (data, stat)) = self
            .shared
            .read(r.serializable, |a| a.core.get(&r.path).map(|n| (n.data.clone(), n.stat)))
            .await?;
        Ok(Response::new(pb::GetResponse {
            header: Some(self.shared.header(revision)),
            data,
            stat: Some(kv::stat(&stat)),
        }))
    }

    async fn children(
        &self,
        request: Request<pb::ChildrenRequest>,
    ) -> Result<Response<pb::ChildrenResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let limit = match r.limit {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let (revision, (children, more)) = self
            .shared
            .read(r.serializable, |a| {
                let mut page = Vec::new();
                let mut bytes = 0;
                let mut rest = a.core.children_after(&r.path, &r.start_after)?.peekable();
                while let Some((name, s)) = rest.next_if(|_| page.len() < limit) {
                    let child = pb::Child { name: name.to_owned(), stat: Some(kv::stat(s)) };
                    // Field tag and length prefix: a few bytes on top of the child itself.
                    bytes += child.encoded_len() + 8;
                    page.push(child);
                    if bytes >= PAGE_BYTES {
                        break;
                    }
                }
                Ok((page, rest.peek().is_some()))
            })
            .await?;
        Ok(Response::new(pb::ChildrenResponse {
            header: Some(self.shared.header(revision)),
            children,
            more,
        }))
    }

    async fn create(
        &self,
        request: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::CreateResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let (session, id) = kv::origin(r.origin.as_ref());
        let command = kv::create(r).map_err(status::unconvertible)?;
        match self.shared.write(session, id, command).await? {
            (revision, Output::Created { path, stat }) => Ok(Response::new(pb::CreateResponse {
                header: Some(self.shared.header(revision)),
                path,
                stat: Some(kv::stat(&stat)),
            })),
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    async fn set(
        &self,
        request: Request<pb::SetRequest>,
    ) -> Result<Response<pb::SetResponse>, Status> {
        self.shared.access.admit(&request)?;
        let r = request.into_inner();
        let (session, id) = kv::origin(r.origin.as_ref());
        match self.shared.write(session, id, kv::set(r)).await? {
            (revision, Output::Set { stat }) => Ok(Response::new(pb::SetResponse {
                header: Some(self.shared.header(revision)),
                stat: Some(kv::stat(&stat)),
            })),
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let identity = self.shared.access.admit(&request)?.identity;
        let r = request.into_inner();
        let (session, id) = kv::origin(r.origin.as_ref());
        let (path, revoking) = (r.path.clone(), r.revoke_locks);
        match self.shared.write(session, id, kv::delete(r)).await? {
            (revision, Output::Deleted { count, revoked, kept }) => {
                if revoking {
                    self.audit_revoking_delete(&identity, &path, revision, count, revoked, kept);
                }
                Ok(Response::new(pb::DeleteResponse {
                    header: Some(self.shared.header(revision)),
                    deleted: count,
                    revoked,
                    kept,
                }))
            }
            (_, other) => Err(status::unexpected(&other)),
        }
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let identity = self.shared.access.admit(&request)?.identity;
        let r = request.into_inner();
        let (session, id) = kv::origin(r.origin.as_ref());
        // The deletes that revoke locks, by their index among the operations.
        let revoking: Vec<(usize, String)> = r
            .ops
            .iter()
            .enumerate()
            .filter_map(|(i, op)| match &op.op {
                Some(pb::txn_op::Op::Delete(d)) if d.revoke_locks => Some((i, d.path.clone())),
                _ => None,
            })
            .collect();
        let command = txn::txn(r).map_err(status::unconvertible)?;
        let (revision, output) = self.shared.write(session, id, command).await?;
        let header = Some(self.shared.header(revision));
        match output {
            Output::TxnCommitted { results } => {
                for (i, path) in &revoking {
                    if let Some(Output::Deleted { count, revoked, kept }) = results.get(*i) {
                        self.audit_revoking_delete(
                            &identity, path, revision, *count, *revoked, *kept,
                        );
                    }
                }
                Ok(Response::new(pb::TxnResponse {
                    header,
                    succeeded: true,
                    failed_compare: 0,
                    results: results.into_iter().map(txn::txn_result).collect(),
                }))
            }
            Output::TxnCompareFailed { index } => Ok(Response::new(pb::TxnResponse {
                header,
                succeeded: false,
                failed_compare: index,
                results: vec![],
            })),
            other => Err(status::unexpected(&other)),
        }
    }
}
