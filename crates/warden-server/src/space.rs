//! Space: the cluster's data-size quota and this member's disk, with the alarms they raise.
//!
//! Two limits, with different owners:
//!
//! - **The quota** (`[space] quota_backend_bytes`, etcd's `--quota-backend-bytes`) is the
//!   cluster's, a rule of the replicated state machine: `warden_core::quota` counts the
//!   state's logical size and refuses, when it is applied, a command that would grow it past
//!   the quota (RESOURCE_EXHAUSTED, `QuotaExceeded`). Every replica refuses alike. The
//!   founder proposes its configuration's quota when it forms the cluster; afterwards every
//!   member proposes its own once it starts, if it differs from the cluster's (so raising
//!   the quota is: change it in every member's configuration and restart them one at a
//!   time; keep it equal on every member).
//! - **The disk reserve** (`[space] min_free_bytes`) is this member's: a task reads the
//!   free space of the filesystem under the data directory (statvfs) every
//!   `check_interval_ms`. While it is below the reserve, this member, as leader, refuses
//!   the writes that may grow the state before they enter the log (RESOURCE_EXHAUSTED,
//!   `NoSpace`); deletes, releases and closes still pass, and so do the leader's own session
//!   expiry and checkpoints, for which the reserve is kept.
//!
//! Why a reserve rather than riding out a full disk: fjall, under the raft log and the
//! state, poisons its database on any failed journal write or fsync (ENOSPC included) and
//! refuses every later write until it is opened again, and openraft 0.9 stops raft for
//! good on a storage error (`Fatal::StorageError`). Retrying a write inside the store
//! therefore cannot work; keeping the disk from filling can. If the disk fills anyway (a
//! follower whose disk another process fills: the reserve check refuses proposals only on
//! the leader, and a follower cannot refuse the entries it is sent), that member's raft
//! stops, `/health` says why, and nothing acknowledged is lost: what it had not fsynced it
//! had not acknowledged, and a majority holds every committed entry. Free space and
//! restart it; it catches up from the leader.
//!
//! The alarms ([`alarms`]): `nospace` while this member's disk is below the reserve, and
//! `quota` while a write refused for the quota would still not fit. Both show in the
//! `warden_alarm{kind}` metric, make `GET /health` answer 503 with the reason (as etcd's
//! `/health` does for its NOSPACE alarm; reads still work), and are listed by
//! `Cluster.Status`. Both clear by themselves: the disk alarm at the first check that finds
//! the reserve free again, the quota alarm once the refused write would fit (data deleted,
//! or the quota raised). Unlike etcd there is no `alarm disarm`: nothing is latched.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};
use tracing::{info, warn};
use warden_proto::{ALARM_NOSPACE, ALARM_QUOTA, ErrorKind};

use crate::error::ServerError;
use crate::status;

/// The smallest quota accepted (besides 0, none): less could not hold a session.
pub const MIN_QUOTA_BYTES: u64 = 4 << 10;

/// The largest quota accepted: etcd's suggested maximum. warden holds the whole state in
/// memory, and a snapshot of it is built and sent whole.
pub const MAX_QUOTA_BYTES: u64 = 8 << 30;

/// `[space]`: the cluster's data-size quota and this member's disk reserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpaceConfig {
    /// The cluster's data-size quota, in bytes of counted data (paths, values, a fixed
    /// overhead per node and per session; see `warden_core::quota`); 0 for none. 2 GiB by
    /// default, etcd's default. Writes that would grow the data past it are refused.
    pub quota_backend_bytes: u64,
    /// The free space this member keeps on the filesystem under its data directory; below
    /// it, as leader, it refuses writes that may grow the state. 64 MiB by default: room
    /// for fjall to flush a memtable and for deletes, session expiry and checkpoints. 0
    /// turns the check off.
    pub min_free_bytes: u64,
    /// How often the free space is read, ms. 1,000 by default.
    pub check_interval_ms: u64,
}

impl Default for SpaceConfig {
    fn default() -> Self {
        SpaceConfig {
            quota_backend_bytes: 2 << 30,
            min_free_bytes: 64 << 20,
            check_interval_ms: 1_000,
        }
    }
}

impl SpaceConfig {
    /// Checks the values, naming the first one out of range.
    pub fn validate(&self) -> Result<(), ServerError> {
        let quota = self.quota_backend_bytes;
        if quota != 0 && !(MIN_QUOTA_BYTES..=MAX_QUOTA_BYTES).contains(&quota) {
            return Err(ServerError::Config(format!(
                "space.quota_backend_bytes ({quota}) must be 0 (no quota) or from {MIN_QUOTA_BYTES} (4 KiB) to {MAX_QUOTA_BYTES} (8 GiB); the default is {} (2 GiB)",
                SpaceConfig::default().quota_backend_bytes
            )));
        }
        if !(10..=60_000).contains(&self.check_interval_ms) {
            return Err(ServerError::Config(format!(
                "space.check_interval_ms ({}) must be from 10 to 60000; the default is 1000",
                self.check_interval_ms
            )));
        }
        Ok(())
    }
}

/// An alarm in force on a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Alarm {
    /// [`ALARM_NOSPACE`] or [`ALARM_QUOTA`].
    pub kind: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// The free space under this member's data directory, as last read.
#[derive(Debug)]
pub(crate) struct DiskSpace {
    data_dir: PathBuf,
    min_free: u64,
    /// Bytes available to this process, as last read; `u64::MAX` before a read succeeds.
    free: AtomicU64,
    /// Whether `free` is below `min_free`.
    low: AtomicBool,
}

impl DiskSpace {
    /// Watches the filesystem under `data_dir`, keeping `min_free` bytes (0: no check).
    /// Reads it once now.
    pub(crate) fn new(data_dir: PathBuf, min_free: u64) -> DiskSpace {
        let space = DiskSpace {
            data_dir,
            min_free,
            free: AtomicU64::new(u64::MAX),
            low: AtomicBool::new(false),
        };
        space.check();
        space
    }

    /// Reads the free space again; logs when it falls below the reserve or comes back.
    pub(crate) fn check(&self) {
        if self.min_free == 0 {
            return;
        }
        let free = match rustix::fs::statvfs(&self.data_dir) {
            Ok(st) => st.f_bavail.saturating_mul(st.f_frsize),
            Err(e) => {
                warn!(dir = %self.data_dir.display(), error = %e, "cannot read the free space under the data directory; keeping the last reading");
                return;
            }
        };
        self.free.store(free, Ordering::Relaxed);
        let low = free < self.min_free;
        let was = self.low.swap(low, Ordering::Relaxed);
        let dir = self.data_dir.display();
        match (was, low) {
            (false, true) => {
                warn!(%dir, free, reserve = self.min_free, "alarm nospace: the disk under the data directory is below its reserve; writes that add data are refused until space is freed")
            }
            (true, false) => {
                info!(%dir, free, reserve = self.min_free, "alarm nospace cleared: the disk under the data directory has its reserve again")
            }
            _ => {}
        }
    }

    /// Reads the free space every `interval`, for as long as the task runs.
    pub(crate) async fn watch(self: std::sync::Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let space = std::sync::Arc::clone(&self);
            // statvfs is one system call, but a hung filesystem must not hold a worker.
            if tokio::task::spawn_blocking(move || space.check()).await.is_err() {
                return;
            }
        }
    }

    /// The free space as last read, if read.
    pub(crate) fn free(&self) -> Option<u64> {
        Some(self.free.load(Ordering::Relaxed)).filter(|f| *f != u64::MAX)
    }

    fn message(&self) -> Option<String> {
        if !self.low.load(Ordering::Relaxed) {
            return None;
        }
        Some(format!(
            "the disk under the data directory {} has {} bytes free, below this member's reserve (space.min_free_bytes) of {}; writes that add data are refused, deletes still pass; free space on that disk (or move the data directory to a larger one)",
            self.data_dir.display(),
            self.free().unwrap_or(0),
            self.min_free
        ))
    }

    /// RESOURCE_EXHAUSTED (`NoSpace`) while the disk is below the reserve.
    pub(crate) fn admit(&self) -> Result<(), Status> {
        match self.message() {
            None => Ok(()),
            Some(why) => Err(status::server(
                Code::ResourceExhausted,
                ErrorKind::NoSpace,
                format!("{why}; nothing was proposed"),
            )),
        }
    }

    /// The `nospace` alarm, while it is raised.
    pub(crate) fn alarm(&self) -> Option<Alarm> {
        self.message().map(|message| Alarm { kind: ALARM_NOSPACE, message })
    }
}

/// The `quota` alarm of a state with this usage, while it is raised.
pub(crate) fn quota_alarm(usage: &warden_core::quota::Usage) -> Option<Alarm> {
    usage.alarm.then(|| Alarm {
        kind: ALARM_QUOTA,
        message: format!(
            "the cluster's data-size quota is used up: the data takes {} of {} bytes (space.quota_backend_bytes) and a write was refused; writes that add data are refused, reads and deletes still work; delete data no longer needed, or raise the quota in every member's configuration and restart them one at a time",
            usage.used, usage.quota
        ),
    })
}

/// Every alarm in force on the member of `shared`, `nospace` first.
pub(crate) fn alarms(shared: &crate::shared::Shared) -> Vec<Alarm> {
    let usage = shared.state_machine.read(|a| a.core.usage());
    shared.space.alarm().into_iter().chain(quota_alarm(&usage)).collect()
}

/// How often [`keep_quota`] looks at the cluster's quota.
const QUOTA_CHECK: Duration = Duration::from_millis(500);

/// While this member leads, makes the cluster's quota its configured `bytes`: once per
/// term, if the quota it has applied differs, it proposes
/// [`Command::SetQuota`](warden_core::Command::SetQuota). The founder so sets the quota of
/// the cluster it formed (unless it is the default, which needs no entry), and a quota
/// raised in every member's configuration takes effect once a member restarted with it
/// leads. Runs until the member shuts down (which aborts it).
pub(crate) async fn keep_quota(shared: crate::shared::Shared, bytes: u64) {
    let mut done_in_term = None;
    let mut ticks = tokio::time::interval(QUOTA_CHECK);
    loop {
        ticks.tick().await;
        let (leads, term) = {
            let m = shared.raft.metrics();
            let m = m.borrow();
            (m.state == openraft::ServerState::Leader, m.current_term)
        };
        if !leads || done_in_term == Some(term) {
            continue;
        }
        let cluster = shared.state_machine.read(|a| a.core.usage().quota);
        if cluster == bytes {
            done_in_term = Some(term);
            continue;
        }
        match shared.write(None, None, warden_core::Command::SetQuota { bytes }).await {
            Ok(_) => {
                info!(
                    quota = bytes,
                    was = cluster,
                    "the cluster's data-size quota is set from this member's space.quota_backend_bytes"
                );
                done_in_term = Some(term);
            }
            Err(status) => {
                tracing::debug!(error = %status, "cannot set the cluster's quota yet; retrying");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_values_are_named() {
        assert!(SpaceConfig::default().validate().is_ok());
        assert!(SpaceConfig { quota_backend_bytes: 0, ..Default::default() }.validate().is_ok());
        let small = SpaceConfig { quota_backend_bytes: 100, ..Default::default() };
        let text = small.validate().map_err(|e| e.to_string()).unwrap_err();
        assert!(text.contains("space.quota_backend_bytes (100)"), "{text}");
        let fast = SpaceConfig { check_interval_ms: 1, ..Default::default() };
        let text = fast.validate().map_err(|e| e.to_string()).unwrap_err();
        assert!(text.contains("space.check_interval_ms"), "{text}");
    }

    #[test]
    fn a_reserve_larger_than_any_disk_raises_the_alarm_and_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let space = DiskSpace::new(dir.path().to_owned(), u64::MAX - 1);
        assert!(space.free().is_some());
        let refused = space.admit().unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert_eq!(status::kind(&refused), Some(ErrorKind::NoSpace));
        assert!(refused.message().contains("space.min_free_bytes"), "{refused:?}");
        assert_eq!(space.alarm().map(|a| a.kind), Some(ALARM_NOSPACE));
        let none = DiskSpace::new(dir.path().to_owned(), 0);
        assert!(none.admit().is_ok() && none.alarm().is_none());
    }

    #[test]
    fn the_quota_alarm_follows_the_usage() {
        let on = warden_core::quota::Usage { used: 10, quota: 12, alarm: true };
        let alarm = quota_alarm(&on).unwrap();
        assert_eq!(alarm.kind, ALARM_QUOTA);
        assert!(alarm.message.contains("10 of 12 bytes"), "{}", alarm.message);
        assert!(quota_alarm(&warden_core::quota::Usage { alarm: false, ..on }).is_none());
    }
}
