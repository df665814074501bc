//! The Watch service: one stream per watch, fed from the node's watch hub.
//!
//! The hub hands over one message per revision. A revision can hold far more than one gRPC
//! message can (`rm -r` of a large subtree is one revision), and a response over the limit
//! would be refused by the client's decoder, which could only resume into the same refusal.
//! So a revision's events are split into responses of at most [`FRAGMENT_BYTES`], all but
//! the last marked `fragment`; the client puts them back together.
//!
//! With ACLs on, a watch needs `watch` on its path (a glob's literal head), and it gets
//! only the events on paths where its caller holds `watch`. The decision is made again for
//! every message and every [`RECHECK`]: a policy change that takes the permission away
//! ends the watch with PERMISSION_DENIED, on an open stream too.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use warden_core::acl::Permission;
use warden_core::{Limits, WatchFilter};
use warden_proto::MAX_CLIENT_MESSAGE_BYTES;
use warden_proto::convert::watch;
use warden_proto::v1 as pb;
use warden_proto::v1::watch_server::Watch;
use warden_proto::{COMPACT_REVISION_METADATA, ErrorKind};

use crate::access::{Guarded, Need};
use crate::caller::Caller;
use crate::connection_watches::{ConnectionWatches, WatchSlot};
use crate::shared::Shared;
use crate::status;
use crate::watch_hub::{Refused, Registration, WatchHub, WatchMessage};

/// The events of one response at most, in encoded bytes: half the client port's message
/// limit, which leaves room for the header and for a lone event larger than this (the
/// core's largest value, 1 MiB, with its path and stat, is well under the limit).
const FRAGMENT_BYTES: usize = MAX_CLIENT_MESSAGE_BYTES / 2;

/// How often an idle watch checks that its caller may still watch.
const RECHECK: Duration = Duration::from_secs(1);

/// Serves watches.
pub(crate) struct WatchService {
    shared: Shared,
    hub: Arc<WatchHub>,
    connections: Arc<ConnectionWatches>,
}

impl WatchService {
    /// Serves watches from `hub`, at most `max_per_connection` open on one connection.
    pub(crate) fn new(
        shared: Shared,
        hub: Arc<WatchHub>,
        max_per_connection: usize,
    ) -> WatchService {
        WatchService { shared, hub, connections: ConnectionWatches::new(max_per_connection) }
    }
}

/// A watch request's filter; INVALID_ARGUMENT naming the field for a scope this member
/// does not know (taking it as a key watch would silently miss events).
fn filter(r: &pb::WatchRequest, limits: &Limits) -> Result<WatchFilter, Status> {
    watch::watch_filter(r, limits)
        .map_err(status::unconvertible)?
        .map_err(|e| status::core_error(&e))
}

pub(crate) fn refused(r: &Refused) -> Status {
    match r {
        Refused::Compacted { oldest } => compacted(*oldest),
        Refused::Closed => status::member_stopped(),
    }
}

fn compacted(oldest: u64) -> Status {
    let mut status = status::server(
        tonic::Code::OutOfRange,
        ErrorKind::Compacted,
        format!(
            "the requested start revision is no longer in this member's history; the oldest available is {}: re-read the data, then watch from the read's revision + 1",
            oldest
        ),
    );
    if let Ok(v) = MetadataValue::try_from(oldest.to_string()) {
        status.metadata_mut().insert(COMPACT_REVISION_METADATA, v);
    }
    status
}

/// Splits one revision's events, in order, into parts of at most `budget` encoded bytes
/// (an event larger than that goes alone); always at least one part.
fn fragments(events: Vec<pb::Event>, budget: usize) -> Vec<Vec<pb::Event>> {
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let mut size = 0;
    for event in events {
        // As the event is encoded in the response: field 2, length-delimited.
        let len = prost::encoding::message::encoded_len(2, &event);
        if !part.is_empty() && size + len > budget {
            parts.push(std::mem::take(&mut part));
            size = 0;
        }
        size += len;
        part.push(event);
    }
    parts.push(part);
    parts
}

/// Who a watch is for: its caller, and what it needed when it was opened.
struct Watcher {
    caller: Caller,
    needs: Vec<Need>,
}

/// A hub message as responses (several for a revision too large for one), with the
/// revision they report: the events the caller may see, each with its owner's identity.
fn responses(
    shared: &Shared,
    watcher: &Watcher,
    message: WatchMessage,
) -> (u64, Vec<pb::WatchResponse>) {
    let (revision, events) = match message {
        WatchMessage::Events(revision, events) => {
            let events = shared.state_machine.read(|a| {
                let policy = a.core.policy();
                let identity = &watcher.caller.identity;
                events
                    .into_iter()
                    .filter(|e| shared.access.allows(policy, identity, Permission::Watch, &e.path))
                    .map(|e| {
                        let owner = match e.stat.ephemeral_owner {
                            0 => String::new(),
                            id => {
                                a.core.session(id).map(|s| s.identity.clone()).unwrap_or_default()
                            }
                        };
                        watch::pb_event(e, owner)
                    })
                    .collect()
            });
            (revision, events)
        }
        WatchMessage::Progress(revision) => (revision, Vec::new()),
    };
    let parts = fragments(events, FRAGMENT_BYTES);
    let last = parts.len().saturating_sub(1);
    let responses = parts
        .into_iter()
        .enumerate()
        .map(|(i, events)| pb::WatchResponse {
            header: Some(shared.header(revision)),
            events,
            canceled: false,
            cancel_reason: String::new(),
            fragment: i < last,
        })
        .collect();
    (revision, responses)
}

/// Sends one watch's messages as responses until the client goes or the hub cancels the
/// watcher. A cancelled watcher's queue is dropped at once, not delivered first: that is
/// what frees the memory a slow watcher held (the client resumes from the last revision it
/// got, on this member or another). The client is then told why. The stream counts
/// against its connection's limit (`slot`) until this returns.
async fn feed(
    slot: WatchSlot,
    mut registration: Registration,
    tx: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    shared: Shared,
    hub: Arc<WatchHub>,
    watcher: Watcher,
) {
    // Everything up to this revision was delivered (0: nothing promised yet).
    let mut delivered = 0;
    let metrics = Arc::clone(&shared.metrics);
    metrics.watch_streams.inc();
    // Counted down however this ends.
    let _open = OpenStream(Arc::clone(&metrics));
    let cancellation = registration.cancellation();
    let mut recheck = tokio::time::interval(RECHECK);
    let mut denied = None;
    let client_gone = 'messages: loop {
        let message = tokio::select! {
            biased;
            () = cancellation.cancelled() => None,
            message = registration.recv() => message,
            () = tx.closed() => break true,
            _ = recheck.tick() => {
                if let Err(status) = shared.access.check(&watcher.caller, pb::WatchRequest::RPC, &watcher.needs) {
                    denied = Some(status);
                    break false;
                }
                continue;
            }
        };
        let Some(message) = message else { break false };
        if let Err(status) =
            shared.access.check(&watcher.caller, pb::WatchRequest::RPC, &watcher.needs)
        {
            denied = Some(status);
            break false;
        }
        let (revision, responses) = responses(&shared, &watcher, message);
        for response in responses {
            let events = response.events.len() as u64;
            tokio::select! {
                biased;
                () = cancellation.cancelled() => break 'messages false,
                sent = tx.send(Ok(response)) => if sent.is_err() {
                    break 'messages true;
                },
            }
            metrics.watch_events_sent.inc_by(events);
        }
        delivered = revision;
    };
    hub.unregister(registration.id);
    registration.discard();
    drop(slot);
    if client_gone {
        return;
    }
    if let Some(status) = denied {
        // The caller lost the permission: the stream ends with the refusal itself.
        tokio::select! {
            _ = tx.send(Err(status)) => {}
            () = tx.closed() => {}
        }
        return;
    }
    let reason =
        registration.cancel_reason().unwrap_or_else(|| "the member is shutting down".to_owned());
    let last = pb::WatchResponse {
        header: Some(shared.header(delivered)),
        events: Vec::new(),
        canceled: true,
        cancel_reason: reason,
        fragment: false,
    };
    tokio::select! {
        _ = tx.send(Ok(last)) => {}
        () = tx.closed() => {}
    }
}

/// A watch stream open, in the member's metrics, until dropped.
struct OpenStream(Arc<crate::metrics::Metrics>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.watch_streams.dec();
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = self.shared.access.admit(&request)?;
        let watcher = Watcher { caller, needs: request.get_ref().needs() };
        let slot = self.connections.admit(request.remote_addr())?;
        let r = request.into_inner();
        let limits = self.shared.state_machine.read(|a| a.core.limits().clone());
        let filter = filter(&r, &limits)?;
        let registration = self
            .hub
            .register(filter, r.start_revision, r.progress_notify)
            .map_err(|r| refused(&r))?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(feed(
            slot,
            registration,
            tx,
            self.shared.clone(),
            Arc::clone(&self.hub),
            watcher,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_watch_scope_is_refused_by_field_and_value() {
        let request = pb::WatchRequest { path: "/w".into(), scope: 5, ..Default::default() };
        let refused = filter(&request, &Limits::default()).err().unwrap_or_else(|| Status::ok(""));
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert_eq!(status::kind(&refused), Some(ErrorKind::InvalidArgument));
        assert!(
            refused
                .message()
                .contains("unknown watch scope 5 in field `scope` of the watch of \"/w\""),
            "{refused:?}"
        );
        let prefix = pb::WatchRequest { scope: pb::WatchScope::Prefix.into(), ..request };
        assert!(filter(&prefix, &Limits::default()).is_ok());
    }

    fn event(path: &str) -> pb::Event {
        pb::Event { path: path.into(), ..Default::default() }
    }

    fn paths(parts: &[Vec<pb::Event>]) -> Vec<Vec<&str>> {
        parts.iter().map(|p| p.iter().map(|e| e.path.as_str()).collect()).collect()
    }

    #[test]
    fn fragments_keep_the_order_and_stay_under_the_budget() {
        // Each event is 2 bytes of key and length around a 10-byte path field.
        let events: Vec<pb::Event> = (0..5).map(|i| event(&format!("/{i:08}"))).collect();
        let one = prost::encoding::message::encoded_len(2, &events[0]);
        assert_eq!(one, 13);
        let parts = fragments(events.clone(), 2 * one);
        assert_eq!(
            paths(&parts),
            [vec!["/00000000", "/00000001"], vec!["/00000002", "/00000003"], vec!["/00000004"]]
        );
        // One part when it fits; a lone event over the budget goes alone.
        assert_eq!(fragments(events.clone(), 5 * one).len(), 1);
        assert_eq!(fragments(events, 1).len(), 5);
        // A progress notice is one empty part.
        assert_eq!(fragments(Vec::new(), 1), [Vec::<pb::Event>::new()]);
    }

    #[test]
    fn a_fragment_fits_in_a_message() {
        // The largest event the core allows: a 1 MiB value with a 1 KiB path.
        let big = pb::Event {
            path: "p".repeat(1024),
            data: Some(vec![0; 1 << 20].into()),
            stat: Some(pb::Stat::default()),
            ..Default::default()
        };
        let events = vec![big; 9];
        for part in fragments(events, FRAGMENT_BYTES) {
            let response = pb::WatchResponse { events: part, ..Default::default() };
            assert!(prost::Message::encoded_len(&response) <= MAX_CLIENT_MESSAGE_BYTES);
        }
    }
}
