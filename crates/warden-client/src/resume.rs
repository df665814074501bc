//! Opening a server stream that resumes from a revision (a watch, an election's observe),
//! written once: on the member the connection picks, else on any member whose history
//! still covers the start, and, once the stream has run, waiting out a restart of the
//! members within the connection's deadline before reporting them gone.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::connection::{Connection, Retry, server_error};
use crate::error::ClientError;

/// Opens a stream with `open` on the members of `connection`. `Ok(None)` asks the caller
/// to try again: the members could not be reached, the stream had already run
/// (`resuming`), and the deadline since `unreachable_since` has not passed.
pub(crate) async fn open<T, F, Fut>(
    connection: &Connection,
    resuming: bool,
    unreachable_since: &mut Option<Instant>,
    mut open: F,
) -> Result<Option<Streaming<T>>, ClientError>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<Streaming<T>, Status>>,
{
    match connection.run(Retry::Idempotent, &mut open).await {
        Ok(stream) => Ok(Some(stream)),
        // This member's history is too short; another may still have it.
        Err(ClientError::Compacted { .. }) => open_elsewhere(connection, open).await.map(Some),
        // A call gives up soon when no member accepts a connection; a running stream
        // waits out a restart of the members, within the deadline.
        Err(ClientError::Unavailable { .. })
            if resuming
                && unreachable_since.get_or_insert_with(Instant::now).elapsed()
                    < connection.deadline() =>
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// Opens the stream on any member whose history still covers the start, asking each in
/// turn; the last refusal if none does.
async fn open_elsewhere<T, F, Fut>(
    connection: &Connection,
    mut open: F,
) -> Result<Streaming<T>, ClientError>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<Streaming<T>, Status>>,
{
    let mut last = ClientError::Compacted { oldest: 0, message: "no member asked".into() };
    for endpoint in connection.endpoints() {
        let Ok(channel) = connection.channel(endpoint).await else { continue };
        match open(channel).await {
            Ok(stream) => return Ok(stream),
            Err(status) => last = server_error(&status),
        }
    }
    Err(last)
}
