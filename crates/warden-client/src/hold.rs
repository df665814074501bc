//! What every waiting recipe's client shares: the call that waits on the server for a
//! grant, and the hold a grant gives (a lock's hold, an election's leadership).
//!
//! A hold is a (path, token) pair owned by a session, whatever recipe made it: the
//! session's keepalive lists it and the cluster pushes its loss (`LockLost`) on the same
//! stream, so a lock guard and a leadership guard learn of a loss the same way. A waiting
//! call (acquire, campaign, barrier wait and enter) is idempotent on the server: when the
//! member serving it fails, it is asked again on another member, which re-attaches to the
//! same place in the queue. Both are written here once and used by `lock.rs`,
//! `election.rs` and `barrier.rs`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::{Code, Status};
use warden_proto::ErrorKind;

use crate::connection::{Connection, Retry};
use crate::error::ClientError;
use crate::session::{Holds, RequestIds, Session, SessionState};

/// What a recipe keeps of the session it acts in: its id, its state, its holds and the
/// ids of its writes.
#[derive(Clone)]
pub(crate) struct SessionLink {
    pub(crate) id: u64,
    state: watch::Receiver<SessionState>,
    holds: Arc<Holds>,
    pub(crate) requests: Arc<RequestIds>,
}

impl SessionLink {
    pub(crate) fn new(session: &Session) -> SessionLink {
        SessionLink {
            id: session.id(),
            state: session.watch_state(),
            holds: session.holds(),
            requests: session.requests(),
        }
    }

    /// A link to a session `id` that is not opened on a cluster, for unit tests of the
    /// recipes against a fake service; its state is what `state` says.
    #[cfg(test)]
    pub(crate) fn detached(id: u64, state: watch::Receiver<SessionState>) -> SessionLink {
        SessionLink { id, state, holds: Arc::default(), requests: Arc::default() }
    }

    /// The holds the session's keepalive would list now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> Vec<(String, u64)> {
        self.holds.list().into_iter().map(|h| (h.path, h.token)).collect()
    }

    /// The session is gone, as far as this client can tell.
    pub(crate) fn is_lost(&self) -> bool {
        *self.state.borrow() == SessionState::Lost
    }

    /// The error of a call made in a session this client knows is lost: the kind the
    /// cluster gives a call in an expired session, without asking it.
    pub(crate) fn lost_error(&self) -> ClientError {
        ClientError::Server {
            code: Code::FailedPrecondition,
            message: format!(
                "session {} was lost (closed, expired, or its keepalives failed for a ttl): open a new session",
                self.id
            ),
            kind: Some(ErrorKind::SessionExpired),
        }
    }

    /// A guard's share of the hold of `path` with `token`, which the keepalive reports on.
    pub(crate) fn track(&self, connection: &Arc<Connection>, path: &str, token: u64) -> Hold {
        Hold {
            connection: Arc::clone(connection),
            path: path.to_owned(),
            session_id: self.id,
            token,
            session_state: self.state.clone(),
            holds: Arc::clone(&self.holds),
            requests: Arc::clone(&self.requests),
            lost: self.holds.track(path, token),
            let_go: false,
        }
    }
}

/// One guard's share of a hold: the hold's path and token, and the flags that say it is
/// lost. Guards of one hold (granted twice to one session) are counted by the session's
/// [`Holds`]: the hold is ended on the cluster with the last of them.
pub(crate) struct Hold {
    pub(crate) connection: Arc<Connection>,
    pub(crate) path: String,
    pub(crate) session_id: u64,
    pub(crate) token: u64,
    session_state: watch::Receiver<SessionState>,
    holds: Arc<Holds>,
    /// The ids of the session's writes (a reentrant hold's release takes one).
    pub(crate) requests: Arc<RequestIds>,
    /// `Some(reason)` once the cluster reports this hold lost.
    lost: watch::Receiver<Option<String>>,
    /// This guard has let go already (released, resigned).
    let_go: bool,
}

impl Hold {
    /// Whether the hold is gone: its session ended, or the cluster reported it lost.
    pub(crate) fn is_lost(&self) -> bool {
        *self.session_state.borrow() == SessionState::Lost || self.lost.borrow().is_some()
    }

    /// Why the hold is gone, if it is.
    pub(crate) fn lost_reason(&self) -> Option<String> {
        if let Some(reason) = self.lost.borrow().clone() {
            return Some(reason);
        }
        (*self.session_state.borrow() == SessionState::Lost).then(|| "session lost".to_owned())
    }

    /// Resolves when the hold is lost: with its session, or reported by the cluster.
    pub(crate) async fn lost(&self) {
        let (mut state, mut hold) = (self.session_state.clone(), self.lost.clone());
        loop {
            if *state.borrow_and_update() == SessionState::Lost
                || hold.borrow_and_update().is_some()
            {
                return;
            }
            tokio::select! {
                changed = state.changed() => if changed.is_err() { return },
                // The flag's sender goes once the hold is reported or let go: from then
                // on only the session can end it.
                changed = hold.changed() => if changed.is_err() && hold.borrow().is_none() {
                    state.wait_for(|s| *s == SessionState::Lost).await.ok();
                    return;
                },
            }
        }
    }

    /// This guard lets go of the hold; true if the hold is to be ended on the cluster now
    /// (this was its last guard, or it was reported lost: the cluster then says so).
    pub(crate) fn let_go(&mut self) -> bool {
        self.let_go = true;
        self.holds.untrack(&self.path, self.token)
    }

    /// For a guard being dropped: true if the hold is to be ended in the background (this
    /// was its last guard, it was not let go already, and it is not known lost).
    pub(crate) fn let_go_on_drop(&mut self) -> bool {
        if self.let_go || !self.let_go() {
            return false;
        }
        self.lost.borrow().is_none()
    }

    /// For the guard of one count of a reentrant hold, released or dropped: true if its
    /// count is to be given back on the cluster (it was not let go already, and the hold
    /// is not known lost). Every such guard gives back its own count; the session stops
    /// reporting on the hold with the last of them.
    pub(crate) fn let_go_of_count(&mut self) -> bool {
        if self.let_go {
            return false;
        }
        self.let_go();
        self.lost.borrow().is_none()
    }
}

/// How long a waiting call may wait on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all: granted now or refused.
    No,
    /// Until granted or the call is dropped.
    Forever,
    /// At most this long (`timeout_ms` in the request, never 0).
    For(Duration),
}

impl Wait {
    /// A wait of `timeout`, or for ever without one.
    pub(crate) fn from_timeout(timeout: Option<Duration>) -> Wait {
        match timeout {
            Some(t) => Wait::For(t),
            None => Wait::Forever,
        }
    }

    /// The request's `timeout_ms`: 0 waits for ever; a timeout is at least 1 ms.
    pub(crate) fn timeout_ms(self) -> u64 {
        match self {
            Wait::No | Wait::Forever => 0,
            Wait::For(t) => u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1),
        }
    }
}

/// Runs a call that may wait on the server for a grant, in the session of `link`.
///
/// A waiting call is not cut client-side (that would drop it, and the server would take
/// the waiter out); a timed one gets its timeout plus a margin. A wait with no timeout
/// whose member fails (or that outlives one call's time limit) is asked again, and so is
/// one whose earlier, broken call's cancel removed the wait it re-attached to
/// (`WaitCancelled`). A session known lost fails at once ([`SessionLink::lost_error`]).
pub(crate) async fn wait_for_grant<T, F, Fut>(
    connection: &Connection,
    link: &SessionLink,
    wait: Wait,
    mut call: F,
) -> Result<T, ClientError>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    wait_for_grant_asking(connection, link, wait, |c, _| call(c)).await
}

/// [`wait_for_grant`] telling `call` which asking it serves: the first, or (from 1) the
/// new asking after a wait was cancelled. Every try of one asking is the same request (a
/// call with a request id keeps it); a new asking is a new request.
pub(crate) async fn wait_for_grant_asking<T, F, Fut>(
    connection: &Connection,
    link: &SessionLink,
    wait: Wait,
    mut call: F,
) -> Result<T, ClientError>
where
    F: FnMut(Channel, u32) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let margin = Duration::from_secs(10);
    let attempt = match wait {
        Wait::No => Some(margin),
        Wait::Forever => None,
        Wait::For(t) => Some(t.saturating_add(margin)),
    };
    let mut asking = 0u32;
    loop {
        if link.is_lost() {
            return Err(link.lost_error());
        }
        match connection.run_within(Retry::Idempotent, attempt, |c| call(c, asking)).await {
            Err(ClientError::Server { kind: Some(ErrorKind::WaitCancelled), .. })
                if wait != Wait::No =>
            {
                asking = asking.saturating_add(1);
            }
            Err(ClientError::Unavailable { .. }) if wait == Wait::Forever => {}
            other => return other,
        }
    }
}

/// Runs a call that ends a hold (a release, a resign), retried on any failure: a retry
/// whose first try's answer was lost finds the hold ended by that try, which is success.
pub(crate) async fn end_hold<T, F, Fut>(
    connection: &Connection,
    mut call: F,
) -> Result<(), ClientError>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let attempts = AtomicU32::new(0);
    let result = connection
        .run(Retry::Idempotent, |c| {
            attempts.fetch_add(1, Ordering::Relaxed);
            call(c)
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(ClientError::Server { kind: Some(ErrorKind::HoldEnded), .. })
            if attempts.load(Ordering::Relaxed) > 1 =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_at_least_a_millisecond_and_none_waits_for_ever() {
        assert_eq!(Wait::from_timeout(None).timeout_ms(), 0);
        assert_eq!(Wait::from_timeout(Some(Duration::ZERO)).timeout_ms(), 1);
        assert_eq!(Wait::from_timeout(Some(Duration::from_micros(10))).timeout_ms(), 1);
        assert_eq!(Wait::from_timeout(Some(Duration::from_secs(2))).timeout_ms(), 2000);
        assert_eq!(Wait::No.timeout_ms(), 0);
    }
}
