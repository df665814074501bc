//! A watch that survives member failures: it resumes on any member from the revision after
//! the last one delivered, so the application sees every revision once, in order.
//!
//! A revision too large for one gRPC message arrives in parts (responses marked
//! `fragment`); the watcher hands it out as one [`WatchBatch`] once its last part is in. A
//! break mid-revision drops the parts and resumes from that revision, which the member
//! then sends whole again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use tokio::time::Instant;
use tonic::Streaming;
use warden_proto::v1 as pb;

use warden_core::Event;
use warden_proto::convert::watch as convert;

use crate::connection::{self, Connection, server_error};
use crate::error::ClientError;
use crate::resume;

/// What to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Exactly the path.
    #[default]
    Key,
    /// The path and everything under it.
    Prefix,
    /// Paths matching a glob pattern.
    Glob,
}

/// One revision's matching events, or a progress notice (no events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBatch {
    /// Every event up to this revision has been delivered.
    pub revision: u64,
    /// The events of `revision` (empty for a progress notice).
    pub events: Vec<Event>,
}

/// A running watch. Call [`Watcher::next`] in a loop, or use it as a [`Stream`] of
/// `Result<WatchBatch, ClientError>` (with `futures::StreamExt` or `tokio_stream::StreamExt`;
/// `watcher.next()` still means the inherent method, which returns the `Result` itself).
///
/// As a stream it ends after an error the watch cannot go past (history compacted, a
/// response over the message limit, an event kind this client does not know, a request
/// the member refused); after
/// [`ClientError::Unavailable`] (no member reached within the deadline) it goes on, and
/// the next poll tries again. Either way a receive cut short (a `select!` that took
/// another branch) is not lost: the next call goes on with it.
pub struct Watcher {
    /// The next batch being received, holding the watch while it runs.
    pending: Step,
    /// The stream ended with an error the watch cannot go past.
    ended: bool,
}

/// What a watch knows between batches.
struct WatchState {
    connection: Arc<Connection>,
    request: pb::WatchRequest,
    stream: Option<Streaming<pb::WatchResponse>>,
    /// The next revision due (0 until the member has said where a watch from now starts).
    next: u64,
    /// The first response, read by [`Watcher::open`] to pin the start, not yet handed out.
    first: Option<WatchBatch>,
    /// The parts received so far of a revision split across responses.
    partial: Option<(u64, Vec<Event>)>,
    /// A member has answered: from now on a break is resumed from, for as long as the
    /// connection's deadline, even when no member can be reached for a while.
    established: bool,
}

/// A receive in progress: it hands the watch's state back with the batch.
type Step = Pin<Box<dyn Future<Output = (WatchState, Result<WatchBatch, ClientError>)> + Send>>;

/// Receives the next batch of `state`, handing the state back with it.
fn step(mut state: WatchState) -> Step {
    Box::pin(async move {
        let result = state.next().await;
        (state, result)
    })
}

/// Whether a watch can go past this error (by trying again).
fn passable(error: &ClientError) -> bool {
    matches!(error, ClientError::Unavailable { .. })
}

impl Watcher {
    /// Opens the watch and reads its first response, the member's notice that everything
    /// before the start is behind it. A watch from now (`start` 0) is thus fixed to begin
    /// right after the revision the member had when it registered the watch, before this
    /// returns; a later resume, on any member, continues from there.
    pub(crate) async fn open(
        connection: Arc<Connection>,
        path: &str,
        scope: Scope,
        start: u64,
        progress: bool,
    ) -> Result<Self, ClientError> {
        let scope = match scope {
            Scope::Key => pb::WatchScope::Key,
            Scope::Prefix => pb::WatchScope::Prefix,
            Scope::Glob => pb::WatchScope::Glob,
        };
        let request = pb::WatchRequest {
            path: path.to_owned(),
            scope: scope.into(),
            start_revision: start,
            progress_notify: progress,
        };
        let mut state = WatchState {
            connection,
            request,
            stream: None,
            next: start,
            first: None,
            partial: None,
            established: false,
        };
        let first = state.receive().await?;
        state.first = Some(first);
        Ok(Watcher { pending: step(state), ended: false })
    }

    /// The next revision's events (or a progress notice); the first call returns the notice
    /// at the revision before the start. Reconnects as needed; fails only when the history
    /// needed to resume is gone ([`ClientError::Compacted`]), when no member can be
    /// reached, on a bad request, or when a response is over the message limit
    /// ([`ClientError::MessageTooLarge`], from a member too old to split a large revision):
    /// the watch cannot go past that revision, and calling again fails again.
    pub async fn next(&mut self) -> Result<WatchBatch, ClientError> {
        std::future::poll_fn(|cx| self.poll_batch(cx)).await
    }

    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Result<WatchBatch, ClientError>> {
        let (state, result) = ready!(self.pending.as_mut().poll(cx));
        self.pending = step(state);
        Poll::Ready(result)
    }
}

impl Stream for Watcher {
    type Item = Result<WatchBatch, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let result = ready!(this.poll_batch(cx));
        if let Err(e) = &result
            && !passable(e)
        {
            this.ended = true;
        }
        Poll::Ready(Some(result))
    }
}

impl WatchState {
    /// See [`Watcher::next`].
    async fn next(&mut self) -> Result<WatchBatch, ClientError> {
        match self.first.take() {
            Some(first) => Ok(first),
            None => self.receive().await,
        }
    }

    /// The next response from the members, opening or reopening the stream as needed.
    async fn receive(&mut self) -> Result<WatchBatch, ClientError> {
        // When the members could first not be reached, since the stream broke.
        let mut unreachable_since: Option<Instant> = None;
        loop {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let request =
                        pb::WatchRequest { start_revision: self.next, ..self.request.clone() };
                    let opened = resume::open(
                        &self.connection,
                        self.established,
                        &mut unreachable_since,
                        |c| {
                            let request = request.clone();
                            async move {
                                connection::watch(c).watch(request).await.map(|r| r.into_inner())
                            }
                        },
                    )
                    .await;
                    let Some(opened) = opened? else { continue };
                    self.stream.insert(opened)
                }
            };
            let message = stream.message().await;
            if !matches!(&message, Ok(Some(r)) if !r.canceled) {
                // The stream ends: a revision in parts comes again, whole, on the next one.
                self.stream = None;
                self.partial = None;
            }
            match message {
                Ok(Some(response)) if response.canceled => {
                    tracing::debug!(reason = %response.cancel_reason, "watch cancelled by the member; resuming");
                }
                Ok(Some(response)) => {
                    let revision = response.header.map(|h| h.revision).unwrap_or(0);
                    if revision + 1 < self.next {
                        // Never deliver a revision twice.
                        continue;
                    }
                    let mut events = match self.partial.take() {
                        Some((r, parts)) if r == revision => parts,
                        _ => Vec::new(),
                    };
                    let read = response
                        .events
                        .into_iter()
                        .map(|e| convert::event(e).map_err(ClientError::unreadable))
                        .collect::<Result<Vec<_>, _>>();
                    match read {
                        Ok(read) => events.extend(read),
                        Err(e) => {
                            // Resuming would meet the same event again: report it, and
                            // start over from this revision if asked for more.
                            self.stream = None;
                            return Err(e);
                        }
                    }
                    if response.fragment {
                        self.partial = Some((revision, events));
                        continue;
                    }
                    self.next = revision + 1;
                    self.established = true;
                    return Ok(WatchBatch { revision, events });
                }
                Ok(None) => {}
                Err(status) => {
                    if let err @ ClientError::Compacted { .. } = server_error(&status) {
                        return Err(err);
                    }
                    if connection::is_too_large(&status) {
                        // Every member would send the same response again: resuming
                        // would loop on it for ever.
                        return Err(connection::too_large(&status));
                    }
                    tracing::debug!(error = %status, "watch stream broke; resuming on another member");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_event_kind_is_an_unreadable_answer_not_a_create() {
        let odd = pb::Event { path: "/e".into(), revision: 4, kind: 9, ..Default::default() };
        match convert::event(odd).map_err(ClientError::unreadable) {
            Err(e @ ClientError::UnexpectedResponse { .. }) => {
                let text = e.to_string();
                assert!(text.contains("unknown event kind 9 in field `kind`"), "{text}");
                assert!(text.contains("upgrade the client"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }
}
