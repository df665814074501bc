//! The Maintenance service: backups (a consistent copy of the replicated state, streamed
//! to `warden snapshot save`) and this member's own health (`warden endpoint health`).
//!
//! A backup is taken at one applied log index: after a read-index round (unless the
//! caller asked for a serializable one), so it holds every write acknowledged before the
//! call, and encoded under the state machine's read lock, so it is one consistent cut.
//! Applies wait only while it is encoded; the chunks are sent after the lock is released,
//! sliced from the one encoded copy, and a client that goes away stops the sending.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use tracing::{Instrument, info};
use warden_proto::ErrorKind;
use warden_proto::v1 as pb;
use warden_proto::v1::maintenance_server::Maintenance;
use warden_storage::backup::{Checksum, hex};

use crate::health::{Facts, LeaderCommit, assess};
use crate::shared::Shared;
use crate::status;

/// The most state bytes one chunk message carries.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// Messages queued for a slow reader of a snapshot stream, at most.
const QUEUED_CHUNKS: usize = 4;

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

/// Backups and health over the client port.
pub(crate) struct MaintenanceService {
    shared: Shared,
    leader_commit: Arc<LeaderCommit>,
    shutting_down: Arc<AtomicBool>,
    max_lag_entries: u64,
}

impl MaintenanceService {
    /// The service over one member; health is judged as its HTTP `/health` judges it.
    pub(crate) fn new(
        shared: Shared,
        leader_commit: Arc<LeaderCommit>,
        shutting_down: Arc<AtomicBool>,
        max_lag_entries: u64,
    ) -> MaintenanceService {
        MaintenanceService { shared, leader_commit, shutting_down, max_lag_entries }
    }
}

fn part(part: pb::snapshot_response::Part) -> Result<pb::SnapshotResponse, Status> {
    Ok(pb::SnapshotResponse { part: Some(part) })
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let caller = self.shared.access.admit(&request)?;
        if !request.get_ref().serializable {
            self.shared.reads.confirm().await?;
        }
        let store = self.shared.state_machine.clone();
        let backup = tokio::task::spawn_blocking(move || store.backup())
            .await
            .map_err(|e| {
                status::server(
                    Code::Internal,
                    ErrorKind::Internal,
                    format!("the snapshot task failed: {e}"),
                )
            })?
            .map_err(|e| {
                status::server(
                    Code::Internal,
                    ErrorKind::Internal,
                    format!("cannot take a snapshot: {e}"),
                )
            })?;
        let info = backup.info;
        info!(
            identity = %caller.identity,
            revision = info.revision,
            applied_index = info.applied_index,
            bytes = info.total_bytes(),
            "snapshot taken for a backup"
        );
        self.shared.audit.admin(
            &caller.identity,
            "snapshot.save",
            warden_core::path::ROOT,
            Some(info.revision),
            &format!(
                "a backup of {} bytes at applied index {}",
                info.total_bytes(),
                info.applied_index
            ),
        );
        let header = pb::SnapshotHeader {
            header: Some(self.shared.header(info.revision)),
            format_version: info.format_version,
            revision: info.revision,
            applied_index: info.applied_index,
            applied_term: info.applied_term,
            total_bytes: info.total_bytes(),
        };
        let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
        let sending = async move {
            use pb::snapshot_response::Part;
            let mut sum = Checksum::default();
            let prefix = Bytes::from(backup.prefix);
            let state = Bytes::from(backup.state);
            sum.update(&prefix);
            let mut parts = vec![part(Part::Header(header)), part(Part::Chunk(prefix))];
            for part in parts.drain(..) {
                if tx.send(part).await.is_err() {
                    return;
                }
            }
            let mut at = 0;
            while at < state.len() {
                let end = (at + CHUNK_BYTES).min(state.len());
                let chunk = state.slice(at..end);
                sum.update(&chunk);
                at = end;
                if tx.send(part(Part::Chunk(chunk))).await.is_err() {
                    info!("the snapshot stream's reader went away; stopped sending");
                    return;
                }
            }
            let sha256 = sum.finish();
            info!(sha256 = %hex(&sha256), "snapshot sent");
            tx.send(part(Part::Trailer(pb::SnapshotTrailer { sha256: sha256.into() }))).await.ok();
        };
        tokio::spawn(sending.in_current_span());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn health(
        &self,
        request: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        self.shared.access.admit(&request)?;
        let shutting_down = self.shutting_down.load(Ordering::SeqCst);
        let facts = Facts::observe(&self.shared, &self.leader_commit, shutting_down).await;
        let health = assess(&facts, self.max_lag_entries, self.shared.quorum_lost_after_ms);
        let revision = self.shared.state_machine.read(|a| a.core.revision());
        Ok(Response::new(pb::HealthResponse {
            header: Some(self.shared.header(revision)),
            healthy: health.ready(),
            reason: health.reason.unwrap_or_default(),
            role: health.role.to_owned(),
            leader_id: health.leader_id.unwrap_or(0),
            applied_index: health.applied_index,
        }))
    }
}
