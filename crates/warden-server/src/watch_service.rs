//! The Watch service: one stream per watch, fed from the node's watch hub.

use std::sync::{Arc, PoisonError};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use warden_core::{EventKind, WatchFilter};
use warden_proto::v1 as pb;
use warden_proto::v1::watch_server::Watch;

use crate::convert;
use crate::shared::Shared;
use crate::status;
use crate::watch_hub::{Refused, WatchHub, WatchMessage};

/// The metadata key of the oldest revision a watch can start from.
pub const COMPACT_REVISION_METADATA: &str = "warden-compact-revision";

/// Serves watches.
pub(crate) struct WatchService {
    shared: Shared,
    hub: Arc<WatchHub>,
}

impl WatchService {
    pub(crate) fn new(shared: Shared, hub: Arc<WatchHub>) -> WatchService {
        WatchService { shared, hub }
    }
}

fn refused(r: &Refused) -> Status {
    match r {
        Refused::Compacted { oldest } => compacted(*oldest),
        Refused::Closed => status::member_stopped(),
    }
}

fn compacted(oldest: u64) -> Status {
    let mut status = Status::out_of_range(format!(
        "the requested start revision is no longer in this member's history; the oldest available is {}: re-read the data, then watch from the read's revision + 1",
        oldest
    ));
    status.metadata_mut().insert(status::ERROR_METADATA, MetadataValue::from_static("Compacted"));
    if let Ok(v) = MetadataValue::try_from(oldest.to_string()) {
        status.metadata_mut().insert(COMPACT_REVISION_METADATA, v);
    }
    status
}

fn event(e: warden_core::Event) -> pb::Event {
    let kind = match e.kind {
        EventKind::Created => pb::EventKind::Created,
        EventKind::Data => pb::EventKind::Data,
        EventKind::Deleted => pb::EventKind::Deleted,
        EventKind::Children => pb::EventKind::Children,
    };
    pb::Event {
        revision: e.revision,
        kind: kind.into(),
        path: e.path,
        stat: Some(convert::stat(&e.stat)),
        data: e.data,
    }
}

/// A hub message as a response, with the revision it reports.
fn response(shared: &Shared, message: WatchMessage) -> (u64, pb::WatchResponse) {
    let (revision, events) = match message {
        WatchMessage::Events(revision, events) => {
            (revision, events.into_iter().map(event).collect())
        }
        WatchMessage::Progress(revision) => (revision, Vec::new()),
    };
    let response = pb::WatchResponse {
        header: Some(shared.header(revision)),
        events,
        canceled: false,
        cancel_reason: String::new(),
    };
    (revision, response)
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = request.into_inner();
        let limits = self.shared.state_machine.read(|a| a.core.limits().clone());
        let filter = match pb::WatchScope::try_from(r.scope) {
            Ok(pb::WatchScope::Prefix) => WatchFilter::prefix(&r.path, &limits),
            Ok(pb::WatchScope::Glob) => WatchFilter::glob(&r.path, &limits),
            Ok(pb::WatchScope::Key) => WatchFilter::key(&r.path, &limits),
            Err(_) => {
                return Err(status::server(
                    tonic::Code::InvalidArgument,
                    "InvalidArgument",
                    format!("unknown watch scope {}", r.scope),
                ));
            }
        }
        .map_err(|e| status::core_error(&e))?;
        let mut registration = self
            .hub
            .register(filter, r.start_revision, r.progress_notify)
            .map_err(|r| refused(&r))?;
        let (tx, rx) = mpsc::channel(16);
        let shared = self.shared.clone();
        let hub = Arc::clone(&self.hub);
        tokio::spawn(async move {
            // Everything up to this revision was delivered (0: nothing promised yet).
            let mut delivered = 0;
            let mut pending = std::mem::take(&mut registration.catch_up).into_iter();
            loop {
                let message = match pending.next() {
                    Some(message) => Some(message),
                    None => tokio::select! {
                        message = registration.receiver.recv() => message,
                        () = tx.closed() => break,
                    },
                };
                let Some(message) = message else {
                    let reason = registration
                        .cancel_reason
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone()
                        .unwrap_or_else(|| "the member is shutting down".to_owned());
                    let last = pb::WatchResponse {
                        header: Some(shared.header(delivered)),
                        events: Vec::new(),
                        canceled: true,
                        cancel_reason: reason,
                    };
                    tx.send(Ok(last)).await.ok();
                    break;
                };
                let (revision, response) = response(&shared, message);
                if tx.send(Ok(response)).await.is_err() {
                    break;
                }
                delivered = revision;
            }
            hub.unregister(registration.id);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
