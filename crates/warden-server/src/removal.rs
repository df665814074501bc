//! A member removed from the cluster: it stops serving and says so.
//!
//! The leader that removed a member tells it over the peer port (`Raft.Removed`). From
//! then on the member refuses every client request with UNAVAILABLE ("this member was
//! removed from the cluster", kind `MemberRemoved`, so clients move on to other members),
//! its `/health` is 503 with that reason, its log says it, and it never campaigns
//! (elections are switched off in its raft): a member that missed the configuration
//! that removed it would otherwise count itself a voter and start elections in ever
//! higher terms. It remembers it across restarts with a file in its data directory
//! (`REMOVED`); to join again it must start from an empty data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tonic::{Code, Request, Status};
use tracing::warn;
use warden_proto::ErrorKind;

use crate::status;

/// The file that marks a removed member's data directory.
pub(crate) const MARKER: &str = "REMOVED";

/// Whether this member was removed.
#[derive(Debug, Clone)]
pub(crate) struct Removal {
    removed: Arc<AtomicBool>,
    marker: PathBuf,
}

/// What a removed member answers.
pub(crate) const REMOVED_MESSAGE: &str = "this member was removed from the cluster; use another member (to join again, start it from an empty data directory with --join)";

impl Removal {
    /// The state of the member whose data is in `data_dir` (removed if its marker is there).
    pub(crate) fn load(data_dir: &Path) -> Removal {
        let marker = data_dir.join(MARKER);
        let removed = marker.exists();
        if removed {
            warn!(
                "this member was removed from the cluster (its data directory says so); it serves no requests"
            );
        }
        Removal { removed: Arc::new(AtomicBool::new(removed)), marker }
    }

    /// Whether this member was removed.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    /// Marks this member removed (by `leader`), for good.
    pub(crate) fn mark(&self, leader: u64) {
        if self.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        warn!(leader, "this member was removed from the cluster; it serves no more requests");
        if let Err(e) = std::fs::write(&self.marker, format!("removed by member {leader}\n")) {
            warn!(error = %e, path = %self.marker.display(), "cannot write the removal marker; a restart would not know");
        }
    }

    /// The status a removed member answers with.
    pub(crate) fn status() -> Status {
        status::server(Code::Unavailable, ErrorKind::MemberRemoved, REMOVED_MESSAGE)
    }
}

/// Refuses every client request on a removed member (an interceptor on the client port).
#[derive(Clone)]
pub(crate) struct RemovedGate(pub(crate) Removal);

impl tonic::service::Interceptor for RemovedGate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.0.is_removed() { Err(Removal::status()) } else { Ok(request) }
    }
}
