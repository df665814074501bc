//! Observing an election: every change of leader, "no leader" included, as a stream that
//! resumes on another member after a failure without missing or repeating a change (as a
//! watch does, see `watch.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use tokio::time::Instant;
use tonic::Streaming;
use warden_proto::v1 as pb;

use crate::connection::{self, Connection, server_error};
use crate::election::{Leader, LeaderChange};
use crate::error::ClientError;
use crate::resume;

/// A running observation of an election. Call [`LeaderObserver::next`] in a loop, or use
/// it as a [`Stream`] of `Result<LeaderChange, ClientError>`.
///
/// As a stream it ends after an error it cannot go past (history compacted, a request the
/// member refused); after [`ClientError::Unavailable`] it goes on, and the next poll tries
/// again. A receive cut short (a `select!` that took another branch) is not lost.
pub struct LeaderObserver {
    pending: ObserveStep,
    ended: bool,
}

/// What an observation knows between changes.
struct ObserveState {
    connection: Arc<Connection>,
    name: String,
    stream: Option<Streaming<pb::ObserveResponse>>,
    /// The next revision due (0 until the first message).
    next: u64,
    /// The first change, read by [`LeaderObserver::open`], not yet handed out.
    first: Option<LeaderChange>,
}

/// A receive in progress, handing the state back with the change.
type ObserveStep =
    Pin<Box<dyn Future<Output = (ObserveState, Result<LeaderChange, ClientError>)> + Send>>;

fn observe_step(mut state: ObserveState) -> ObserveStep {
    Box::pin(async move {
        let result = match state.first.take() {
            Some(first) => Ok(first),
            None => state.receive().await,
        };
        (state, result)
    })
}

/// Opens an observation of `name` from revision `start` (see
/// [`Client::observe_election`](crate::Client::observe_election)): the first change is
/// read before this returns.
pub(crate) async fn open(
    connection: Arc<Connection>,
    name: &str,
    start: u64,
) -> Result<LeaderObserver, ClientError> {
    let mut state =
        ObserveState { connection, name: name.to_owned(), stream: None, next: start, first: None };
    let first = state.receive().await?;
    state.first = Some(first);
    Ok(LeaderObserver { pending: observe_step(state), ended: false })
}

impl LeaderObserver {
    /// The next change of leader. Reconnects as needed; fails when the history needed to
    /// resume is gone ([`ClientError::Compacted`]), when no member can be reached, or on a
    /// bad request.
    pub async fn next(&mut self) -> Result<LeaderChange, ClientError> {
        std::future::poll_fn(|cx| self.poll_change(cx)).await
    }

    fn poll_change(&mut self, cx: &mut Context<'_>) -> Poll<Result<LeaderChange, ClientError>> {
        let (state, result) = ready!(self.pending.as_mut().poll(cx));
        self.pending = observe_step(state);
        Poll::Ready(result)
    }
}

impl Stream for LeaderObserver {
    type Item = Result<LeaderChange, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let result = ready!(this.poll_change(cx));
        if let Err(e) = &result
            && !matches!(e, ClientError::Unavailable { .. })
        {
            this.ended = true;
        }
        Poll::Ready(Some(result))
    }
}

impl ObserveState {
    /// The next change from the members, opening or reopening the stream as needed.
    async fn receive(&mut self) -> Result<LeaderChange, ClientError> {
        let mut unreachable_since: Option<Instant> = None;
        loop {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let request =
                        pb::ObserveRequest { name: self.name.clone(), start_revision: self.next };
                    let opened = resume::open(
                        &self.connection,
                        self.next > 0,
                        &mut unreachable_since,
                        |c| {
                            let request = request.clone();
                            async move {
                                connection::election(c)
                                    .observe(request)
                                    .await
                                    .map(|r| r.into_inner())
                            }
                        },
                    )
                    .await;
                    let Some(opened) = opened? else { continue };
                    self.stream.insert(opened)
                }
            };
            match stream.message().await {
                Ok(Some(response)) => {
                    if let Some(change) = self.accept(response) {
                        return Ok(change);
                    }
                }
                Ok(None) => {
                    self.stream = None;
                    tracing::debug!(election = %self.name, "observe stream ended; resuming");
                }
                Err(status) => {
                    self.stream = None;
                    if let err @ ClientError::Compacted { .. } = server_error(&status) {
                        return Err(err);
                    }
                    tracing::debug!(election = %self.name, error = %status, "observe stream broke; resuming on another member");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// The change a response carries, unless it was delivered already.
    fn accept(&mut self, response: pb::ObserveResponse) -> Option<LeaderChange> {
        if response.revision < self.next {
            return None;
        }
        self.next = response.revision + 1;
        Some(LeaderChange {
            revision: response.revision,
            leader: response.leader.map(Leader::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(next: u64) -> ObserveState {
        let connection = Connection::new(vec!["127.0.0.1:1".into()], Duration::from_secs(1), None)
            .unwrap_or_else(|e| panic!("{e}"));
        ObserveState {
            connection: Arc::new(connection),
            name: "/e".into(),
            stream: None,
            next,
            first: None,
        }
    }

    fn change(revision: u64, token: Option<u64>) -> pb::ObserveResponse {
        let leader = token.map(|token| pb::LeaderInfo { token, ..Default::default() });
        pb::ObserveResponse { header: None, revision, leader }
    }

    #[test]
    fn a_resumed_stream_repeats_no_change_and_no_leader_is_a_change() {
        let mut s = state(0);
        let first = s.accept(change(7, Some(7))).map(|c| c.leader.map(|l| l.token));
        assert_eq!(first, Some(Some(7)));
        assert_eq!(s.next, 8);
        // A resume from 8 on another member that sends 7 again: skipped.
        assert_eq!(s.accept(change(7, Some(7))), None);
        let none = s.accept(change(9, None));
        assert_eq!(none, Some(LeaderChange { revision: 9, leader: None }));
        assert_eq!(s.next, 10);
    }
}
