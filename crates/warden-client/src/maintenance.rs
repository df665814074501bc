//! Maintenance calls: downloading a backup of the cluster's state, and asking one member
//! whether it is healthy.
//!
//! The client hands on a backup's bytes as they arrive and does not check them: the
//! stream's trailer carries their SHA-256, which the caller (`warden snapshot save`, with
//! `warden-storage`'s backup format) checks before it keeps the file.

use bytes::Bytes;
use tonic::Streaming;
use warden_proto::v1 as pb;

use crate::connection::{self, Retry};
use crate::error::ClientError;
use crate::{Client, Consistency};

/// A backup on its way from a member ([`Client::snapshot`]).
pub struct SnapshotDownload {
    /// What it holds: format version, revision, applied index and term, size.
    pub header: pb::SnapshotHeader,
    stream: Streaming<pb::SnapshotResponse>,
}

/// One piece of a backup after its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotPart {
    /// The next bytes.
    Chunk(Bytes),
    /// The end: the SHA-256 of every byte of the chunks.
    Trailer {
        /// The checksum, 32 bytes.
        sha256: Bytes,
    },
}

impl SnapshotDownload {
    /// The next piece; `None` if the stream ended without a trailer (the backup is then
    /// incomplete), an error if it broke.
    pub async fn next(&mut self) -> Result<Option<SnapshotPart>, ClientError> {
        use pb::snapshot_response::Part;
        let message = self.stream.message().await.map_err(|s| connection::server_error(&s))?;
        match message.and_then(|m| m.part) {
            None => Ok(None),
            Some(Part::Chunk(bytes)) => Ok(Some(SnapshotPart::Chunk(bytes))),
            Some(Part::Trailer(t)) => Ok(Some(SnapshotPart::Trailer { sha256: t.sha256 })),
            Some(Part::Header(_)) => Err(ClientError::UnexpectedResponse {
                message: "a second header in a snapshot stream".into(),
            }),
        }
    }
}

impl Client {
    /// Starts downloading a backup of the cluster's state (needs admin): linearizable by
    /// default (from the leader, holding every write acknowledged before the call), or the
    /// answering member's own state with [`Consistency::Serializable`].
    pub async fn snapshot(
        &self,
        consistency: Consistency,
    ) -> Result<SnapshotDownload, ClientError> {
        let request =
            pb::SnapshotRequest { serializable: consistency == Consistency::Serializable };
        let (first, stream) = self
            .connection
            .run(Retry::Idempotent, |c| async move {
                let mut stream = connection::maintenance(c).snapshot(request).await?.into_inner();
                let first = stream.message().await?;
                Ok((first, stream))
            })
            .await?;
        match first.and_then(|m| m.part) {
            Some(pb::snapshot_response::Part::Header(header)) => {
                Ok(SnapshotDownload { header, stream })
            }
            _ => Err(ClientError::UnexpectedResponse {
                message: "a snapshot stream that does not start with its header".into(),
            }),
        }
    }

    /// Asks the member at `endpoint` alone (no redirect) whether it is healthy: its own
    /// verdict, as its HTTP `/health` gives it.
    pub async fn member_health(&self, endpoint: &str) -> Result<pb::HealthResponse, ClientError> {
        let channel = self.direct_channel(endpoint).await?;
        connection::maintenance(channel)
            .health(pb::HealthRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(|s| connection::server_error(&s))
    }
}
