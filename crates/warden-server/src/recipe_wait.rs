//! The server half of the recipe framework: what every waiting recipe (locks, semaphores,
//! elections, barriers) needs, written once.
//!
//! - **Wait for a grant**: a call that joined a queue waits on the watch hub for its
//!   waiter's grant (the token written into the waiter), or for its deletion.
//! - **Remove the wait when the call goes**: a timeout, or the caller going away, removes
//!   the wait with one Release entry that names the wait (`HoldRef::Wait`). If the grant
//!   raced it, the grant is kept and the timed-out caller is answered with it, so a grant is
//!   never lost between the server and the client, and a late cancel can never end a hold
//!   the session got since (another guard of the same hold, a re-attached call).
//! - **Wait for a deletion**: a double barrier's member that left waits for the barrier
//!   node to go with the last member.
//! - **Wake at a deadline**: the leader ends lock-delays that are over ([`wake_due`]).
//!
//! Loss notices (a hold revoked or resigned) reach the session's stream through the watch
//! hub, which asks the core which events take a hold away (`recipe::lost_hold`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tonic::{Code, Status};
use tracing::{Instrument, debug};
use warden_core::queue_data::{self, Mark, WaiterInfo};
use warden_core::{Command, EventKind, HoldRef, Output, RequestId, WatchFilter};
use warden_proto::ErrorKind;

use crate::shared::Shared;
use crate::status;
use crate::watch_hub::{Refused, Registration, WatchHub, WatchMessage};

/// A grant a waiting call got.
pub(crate) struct Granted {
    /// The revision the answer reflects.
    pub(crate) revision: u64,
    /// The waiter that holds.
    pub(crate) waiter: String,
    /// Its token.
    pub(crate) token: u64,
}

/// What withdrawing a wait did.
pub(crate) enum Withdrawn {
    /// The wait is gone.
    Removed,
    /// It was granted first.
    Granted(Granted),
}

/// The waits of one member.
#[derive(Clone)]
pub(crate) struct Waits {
    shared: Shared,
    hub: Arc<WatchHub>,
}

/// Removes the wait if the waiting call goes away before a grant. A grant that raced the
/// cancel stays with the session (the client re-attaches to it, or it goes with the
/// session): the cancel cannot know whether another call of the session holds it.
struct CancelOnDrop {
    shared: Shared,
    queue: String,
    waiter: String,
    session: u64,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let (shared, session) = (self.shared.clone(), self.session);
            let command = Command::Release {
                path: self.queue.clone(),
                hold: HoldRef::Wait(self.waiter.clone()),
            };
            tokio::spawn(
                async move {
                    let released = shared.write(Some(session), None, command).await;
                    debug!(?released, "abandoned wait removed");
                }
                .in_current_span(),
            );
        }
    }
}

impl Waits {
    pub(crate) fn new(shared: Shared, hub: Arc<WatchHub>) -> Waits {
        Waits { shared, hub }
    }

    /// Proposes a join (an acquire, a campaign, a barrier wait or enter) in `session`;
    /// returns the revision and the output.
    pub(crate) async fn join(
        &self,
        session: u64,
        command: Command,
    ) -> Result<(u64, Output), Status> {
        self.join_once(session, None, command).await
    }

    /// [`Waits::join`] with the request id the client sent, if any: a join that is not
    /// idempotent (a reentrant acquire counts) is applied once, and a retry gets the
    /// first answer.
    pub(crate) async fn join_once(
        &self,
        session: u64,
        id: Option<RequestId>,
        command: Command,
    ) -> Result<(u64, Output), Status> {
        self.shared.write(Some(session), id, command).await
    }

    /// Waits until `waiter` of `session` in `queue` is granted, at most `timeout_ms` (0:
    /// until the call is dropped); `what` names the recipe for errors (`the lock "/a"`). A
    /// timeout withdraws the wait in one entry (answering a grant that raced it); a dropped
    /// call cancels it.
    pub(crate) async fn until_granted(
        &self,
        queue: &str,
        session: u64,
        waiter: String,
        from: u64,
        timeout_ms: u64,
        what: &str,
    ) -> Result<Granted, Status> {
        let mut guard = CancelOnDrop {
            shared: self.shared.clone(),
            queue: queue.to_owned(),
            waiter: waiter.clone(),
            session,
            armed: true,
        };
        let wait = self.wait_for_grant(&waiter, session, from, what);
        let waited = if timeout_ms == 0 {
            wait.await
        } else {
            match tokio::time::timeout(Duration::from_millis(timeout_ms), wait).await {
                Ok(result) => result,
                Err(_) => {
                    guard.armed = false;
                    if let Withdrawn::Granted(granted) =
                        self.withdraw(queue, session, &waiter).await?
                    {
                        return Ok(granted);
                    }
                    return Err(status::server(
                        Code::DeadlineExceeded,
                        ErrorKind::Timeout,
                        format!(
                            "{what} was not granted within {timeout_ms} ms; the wait was removed"
                        ),
                    ));
                }
            }
        };
        match waited {
            Ok(token) => {
                guard.armed = false;
                let revision = self.shared.state_machine.read(|a| a.core.revision());
                Ok(Granted { revision, waiter, token })
            }
            Err(e) => {
                // An aborted wait is gone already; anything else (the member stopping)
                // leaves a wait to remove.
                guard.armed = e.code() != Code::Aborted;
                Err(e)
            }
        }
    }

    /// Withdraws the wait of `waiter` (a timed-out or try call), unless it was granted
    /// meanwhile. A wait that is already gone (its session ended) counts as removed.
    pub(crate) async fn withdraw(
        &self,
        queue: &str,
        session: u64,
        waiter: &str,
    ) -> Result<Withdrawn, Status> {
        let command =
            Command::Release { path: queue.to_owned(), hold: HoldRef::Wait(waiter.to_owned()) };
        match self.shared.write(Some(session), None, command).await {
            Ok((_, Output::LockReleased { .. })) => Ok(Withdrawn::Removed),
            Ok((revision, Output::LockQueued { token: Some(token), .. })) => {
                Ok(Withdrawn::Granted(Granted { revision, waiter: waiter.to_owned(), token }))
            }
            Err(e) if status::kind(&e) == Some(ErrorKind::NotHeld) => Ok(Withdrawn::Removed),
            Err(e) => Err(e),
            Ok((_, other)) => Err(status::unexpected(&other)),
        }
    }

    /// Why the wait of `waiter` ended without a grant: an operator revoked it, its session
    /// ended, or (the session lives on) the wait was cancelled, most likely by an earlier
    /// call of the same request that broke (its cancel landed after this call re-attached
    /// to the wait), or it was let through by a barrier's removal that this member saw
    /// only as the waiter's deletion: the caller asks again.
    fn wait_ended(&self, waiter: &str, session: u64, revoked: bool, what: &str) -> Status {
        if revoked {
            return status::server(
                Code::Aborted,
                ErrorKind::WaitRevoked,
                format!(
                    "the wait for {what} ended: {waiter} was revoked by an operator (`warden lock revoke`, or a delete with --revoke-locks); the session lives on"
                ),
            );
        }
        let alive = self.shared.state_machine.read(|a| a.core.session(session).is_some());
        if alive {
            return status::server(
                Code::Aborted,
                ErrorKind::WaitCancelled,
                format!(
                    "the wait for {what} ended: {waiter} was cancelled (an earlier call of this request went away); ask again"
                ),
            );
        }
        status::server(
            Code::Aborted,
            ErrorKind::WaitEnded,
            format!("the wait for {what} ended: {waiter} went with its session {session}"),
        )
    }

    /// Waits until `waiter` (of `session`) is granted (its token) or deleted (an error).
    async fn wait_for_grant(
        &self,
        waiter: &str,
        session: u64,
        from: u64,
        what: &str,
    ) -> Result<u64, Status> {
        let limits = self.shared.state_machine.read(|a| a.core.limits().clone());
        let mut start = from;
        loop {
            let filter = WatchFilter::key(waiter, &limits).map_err(|e| status::core_error(&e))?;
            match self.hub.register(filter, start, false) {
                Ok(registration) => {
                    if let Some(ended) = self.follow(registration, waiter, session, what).await {
                        return ended;
                    }
                }
                // A retried request's first answer can be older than this member's history
                // (another member answered it long ago): the state says where it stands.
                Err(Refused::Compacted { .. }) => {}
                Err(Refused::Closed) => return Err(status::member_stopped()),
            }
            // The hub cancelled the watcher (slow, snapshot, shutdown): look at the state,
            // then watch again from where it is.
            let (revision, found) = self.shared.state_machine.read(|a| {
                let found = a
                    .core
                    .tree()
                    .get(waiter)
                    .map(|n| WaiterInfo::decode(&n.data).and_then(|i| i.token));
                (a.core.revision(), found)
            });
            match found {
                Some(Some(token)) => return Ok(token),
                Some(None) => start = revision + 1,
                None => return Err(self.wait_ended(waiter, session, false, what)),
            }
        }
    }

    /// Follows the watch of `waiter` until it is granted (its token) or deleted (an error);
    /// `None` if the hub cancelled the watch first.
    async fn follow(
        &self,
        mut registration: Registration,
        waiter: &str,
        session: u64,
        what: &str,
    ) -> Option<Result<u64, Status>> {
        // An operator's revoke marks the waiter before deleting it.
        let mut revoked = false;
        while let Some(message) = registration.recv().await {
            let WatchMessage::Events(_, events) = message else { continue };
            for event in events {
                match event.kind {
                    EventKind::Data => {
                        let data = event.data.as_deref().unwrap_or_default();
                        if queue_data::mark_of(data) == Some(Mark::Revoked) {
                            revoked = true;
                            continue;
                        }
                        if let Some(token) = WaiterInfo::decode(data).and_then(|i| i.token) {
                            self.hub.unregister(registration.id);
                            return Some(Ok(token));
                        }
                    }
                    EventKind::Deleted => {
                        self.hub.unregister(registration.id);
                        return Some(Err(self.wait_ended(waiter, session, revoked, what)));
                    }
                    _ => {}
                }
            }
        }
        None
    }

    /// Waits until the node at `path` created at `created` is deleted, watching from
    /// revision `from`, at most `timeout_ms` (0: until the call is dropped); `what` says
    /// what the caller waits for, for the timeout's error. Returns the deletion's revision.
    pub(crate) async fn until_deleted(
        &self,
        path: &str,
        created: u64,
        from: u64,
        timeout_ms: u64,
        what: &str,
    ) -> Result<u64, Status> {
        let wait = self.wait_deleted(path, created, from);
        if timeout_ms == 0 {
            return wait.await;
        }
        match tokio::time::timeout(Duration::from_millis(timeout_ms), wait).await {
            Ok(result) => result,
            Err(_) => Err(status::server(
                Code::DeadlineExceeded,
                ErrorKind::Timeout,
                format!("{what} did not happen within {timeout_ms} ms"),
            )),
        }
    }

    async fn wait_deleted(&self, path: &str, created: u64, from: u64) -> Result<u64, Status> {
        let limits = self.shared.state_machine.read(|a| a.core.limits().clone());
        let mut start = from;
        loop {
            let filter = WatchFilter::key(path, &limits).map_err(|e| status::core_error(&e))?;
            let Ok(mut registration) = self.hub.register(filter, start, false) else {
                return Err(status::member_stopped());
            };
            while let Some(message) = registration.recv().await {
                let WatchMessage::Events(revision, events) = message else { continue };
                if events.iter().any(|e| e.kind == EventKind::Deleted) {
                    self.hub.unregister(registration.id);
                    return Ok(revision);
                }
            }
            // Cancelled by the hub: gone, or replaced by a new node (a new round), counts.
            let (revision, current) = self.shared.state_machine.read(|a| {
                (a.core.revision(), a.core.tree().get(path).map(|n| n.stat.create_revision))
            });
            if current.is_none_or(|c| c != created) {
                return Ok(revision);
            }
            start = revision + 1;
        }
    }
}

/// The leader's wake-up of lock-delays that are over: proposes `WakeLocks` when one is
/// due, at most one at a time (`waking`).
pub(crate) fn wake_due(shared: &Shared, waking: &Arc<AtomicBool>) {
    if waking.load(Ordering::Acquire) {
        return;
    }
    let due = shared.state_machine.read(|a| warden_core::recipe::next_wake(a.core.tree()));
    if due.is_none_or(|until| until > crate::shared::now_ms()) {
        return;
    }
    waking.store(true, Ordering::Release);
    let (shared, waking) = (shared.clone(), Arc::clone(waking));
    tokio::spawn(
        async move {
            if let Err(e) = shared.write(None, None, Command::WakeLocks).await {
                debug!(error = %e, "lock wake-up not applied");
            }
            waking.store(false, Ordering::Release);
        }
        .in_current_span(),
    );
}
