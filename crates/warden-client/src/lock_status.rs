//! What a lock looks like from outside: who holds it, who waits, whether a fencing token
//! is still good, and how busy it has been (its statistics, and those of every lock under
//! a prefix).
//!
//! The wire answer lists holders and waiters in one queue, holders first, told apart only
//! by their token; an operator's first question is "who holds it", so the client splits
//! them, and reads the kinds and modes into the core's types (an answer it cannot read is
//! an error, not a guess).

use warden_core::lock_stats::{LockStatsEntry, LockStatsReport};
use warden_core::queue::{LockKind, Scope, WaitMode};
use warden_proto::convert::{lock, lock_stats};
use warden_proto::v1 as pb;

use crate::Client;
use crate::connection::{self, Retry};
use crate::error::ClientError;

/// A lock's settings, holders and waiters ([`Client::lock_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStatus {
    /// Mutex, read-write lock, or semaphore (with its permits).
    pub kind: LockKind,
    /// The lock-delay after a holder's session ends, ms.
    pub delay_ms: u64,
    /// Nothing is granted before this time (the leader's clock, ms since the Unix epoch);
    /// 0 when the lock is not under a lock-delay.
    pub blocked_until_ms: u64,
    /// The sessions holding the lock now (each with its token), in the order they got it.
    pub holders: Vec<LockEntry>,
    /// The sessions waiting for it, in queue order (no token).
    pub waiters: Vec<LockEntry>,
    /// The revision the status was read at.
    pub revision: u64,
    /// What was counted for the lock (grants, waits, holds); `None` from a member that
    /// does not count.
    pub stats: Option<LockStatsEntry>,
}

/// One holder or waiter of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// Its waiter node (the path that keeps its place in the queue).
    pub waiter: String,
    /// Its session.
    pub session_id: u64,
    /// What it holds or asks for.
    pub mode: WaitMode,
    /// The fencing token of a holder; `None` for a waiter.
    pub token: Option<u64>,
    /// When it started waiting (the leader's clock, ms since the Unix epoch).
    pub since_ms: u64,
    /// The identity of the client that opened its session (from its certificate; empty
    /// without TLS).
    pub identity: String,
    /// What its hold covers: the lock's path, or the subtree under it.
    pub scope: Scope,
    /// Its priority (0 to 10; higher is served first).
    pub priority: u32,
    /// The owner of a reentrant place ([`crate::Lock::with_owner`]); `None` for a lock
    /// taken without one.
    pub owner: Option<String>,
    /// How many acquires its hold counts (1 while it waits, and without an owner).
    pub holds: u32,
}

impl LockStatus {
    /// The kind as the CLI and the wire name it: "mutex", "rwlock" or "semaphore".
    pub fn kind_name(&self) -> &'static str {
        lock::lock_kind_name(self.kind).0
    }
}

impl LockEntry {
    /// The mode as the CLI and the wire name it: "exclusive", "shared" or "permits:N".
    pub fn mode_name(&self) -> String {
        lock::wait_mode_name(self.mode)
    }
}

/// The wire answer as a [`LockStatus`].
pub(crate) fn lock_status(r: pb::LockStatusResponse) -> Result<LockStatus, ClientError> {
    let mut status = LockStatus {
        kind: lock::lock_kind_named(&r.r#type, r.permits).map_err(ClientError::unreadable)?,
        delay_ms: r.delay_ms,
        blocked_until_ms: r.blocked_until_ms,
        holders: Vec::new(),
        waiters: Vec::new(),
        revision: r.header.map(|h| h.revision).unwrap_or(0),
        stats: r
            .stats
            .as_ref()
            .map(lock_stats::lock_stats)
            .transpose()
            .map_err(ClientError::unreadable)?,
    };
    for w in r.waiters {
        let entry = lock_entry(w)?;
        match entry.token {
            Some(_) => status.holders.push(entry),
            None => status.waiters.push(entry),
        }
    }
    Ok(status)
}

/// One holder or waiter on the wire as a [`LockEntry`]; a mode or scope this client cannot
/// read is an error.
pub(crate) fn lock_entry(w: pb::LockWaiter) -> Result<LockEntry, ClientError> {
    let within = || format!("the waiter {:?}", w.waiter);
    Ok(LockEntry {
        mode: lock::wait_mode_named(&w.mode).map_err(ClientError::unreadable)?,
        scope: lock::lock_scope(w.scope, within).map_err(ClientError::unreadable)?,
        priority: w.priority,
        waiter: w.waiter,
        session_id: w.session_id,
        token: w.token,
        since_ms: w.since_ms,
        identity: w.identity,
        owner: (!w.owner.is_empty()).then_some(w.owner),
        holds: w.holds,
    })
}

impl Client {
    /// The holders and waiters of the lock at `path`, read linearizably.
    pub async fn lock_status(&self, path: &str) -> Result<LockStatus, ClientError> {
        let request = pb::LockStatusRequest { path: path.to_owned() };
        let response = self
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { connection::lock(c).status(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        lock_status(response)
    }

    /// The statistics of the locks at or under `prefix` (by whole segments; "/" for all),
    /// read linearizably: their total, how many there are, and the `limit` busiest (most
    /// time waited first; 0 for the member's default of 20, at most 1000).
    pub async fn lock_stats(
        &self,
        prefix: &str,
        limit: u32,
    ) -> Result<LockStatsReport, ClientError> {
        let request = pb::LockStatsRequest { prefix: prefix.to_owned(), limit };
        let response = self
            .connection
            .run(Retry::Idempotent, |c| {
                let request = request.clone();
                async move { connection::lock(c).stats(request).await.map(|r| r.into_inner()) }
            })
            .await?;
        lock_stats::stats_report(&response).map_err(ClientError::unreadable)
    }

    /// Whether `token` is a hold of the lock at `path` now (Chubby's `CheckSequencer`),
    /// read linearizably: a resource that cannot keep the highest token it has seen asks
    /// this before acting for a holder. A lock that does not exist holds no token.
    pub async fn check_sequencer(&self, path: &str, token: u64) -> Result<bool, ClientError> {
        let request = pb::CheckSequencerRequest { path: path.to_owned(), token };
        let response =
            self.connection
                .run(Retry::Idempotent, |c| {
                    let request = request.clone();
                    async move {
                        connection::lock(c).check_sequencer(request).await.map(|r| r.into_inner())
                    }
                })
                .await?;
        Ok(response.valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(waiter: &str, mode: &str, token: Option<u64>) -> pb::LockWaiter {
        pb::LockWaiter {
            waiter: waiter.into(),
            session_id: 7,
            mode: mode.into(),
            token,
            since_ms: 1,
            identity: String::new(),
            holds: 1,
            ..Default::default()
        }
    }

    #[test]
    fn holders_are_told_from_waiters_and_unknown_names_are_errors() {
        let response = pb::LockStatusResponse {
            r#type: lock::SEMAPHORE_NAME.into(),
            permits: 3,
            waiters: vec![
                entry("/s/w-1", "permits:2", Some(4)),
                entry("/s/w-2", "permits:1", Some(5)),
                entry("/s/w-3", "permits:3", None),
            ],
            ..Default::default()
        };
        let status = lock_status(response.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status.kind, LockKind::Semaphore { permits: 3 });
        assert_eq!(status.kind_name(), lock::SEMAPHORE_NAME);
        let holders: Vec<_> = status.holders.iter().map(|h| (h.waiter.as_str(), h.token)).collect();
        assert_eq!(holders, [("/s/w-1", Some(4)), ("/s/w-2", Some(5))]);
        assert_eq!(status.waiters.len(), 1);
        assert_eq!(status.waiters[0].mode, WaitMode::Permits(3));
        assert_eq!(status.waiters[0].mode_name(), "permits:3");
        assert_eq!((status.holders[0].owner.as_deref(), status.holders[0].holds), (None, 1));
        let mut reentrant = response.clone();
        reentrant.waiters[0].owner = "task-7".into();
        reentrant.waiters[0].holds = 3;
        let status = lock_status(reentrant).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (status.holders[0].owner.as_deref(), status.holders[0].holds),
            (Some("task-7"), 3)
        );

        assert_eq!(status.stats, None, "a member that does not count sends none");
        let mut counted = LockStatsEntry { path: "/s".into(), holders: 2, ..Default::default() };
        counted.stats.acquisitions = 2;
        counted.stats.wait.record(0);
        counted.stats.wait.record(0);
        let with_stats = pb::LockStatusResponse {
            stats: Some(lock_stats::pb_lock_stats(&counted)),
            ..response.clone()
        };
        let status = lock_status(with_stats.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status.stats, Some(counted));
        let mut odd = with_stats;
        if let Some(s) = odd.stats.as_mut() {
            s.wait = None;
        }
        assert!(matches!(lock_status(odd), Err(ClientError::UnexpectedResponse { .. })));

        let newer = pb::LockStatusResponse { r#type: "turnstile".into(), ..response.clone() };
        assert!(matches!(lock_status(newer), Err(ClientError::UnexpectedResponse { .. })));
        let mut odd = response;
        odd.waiters[0].mode = "permits:lots".into();
        assert!(matches!(lock_status(odd), Err(ClientError::UnexpectedResponse { .. })));
    }
}
