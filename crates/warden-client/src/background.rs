//! Work that a drop hands off: the release of a dropped lock guard, the close of a dropped
//! session.
//!
//! A drop cannot wait, and it may run where no tokio runtime is: on a plain thread, or
//! after the application's runtime has shut down. The work then runs on a small thread of
//! its own with a current-thread runtime, over fresh connections (the client's cached ones
//! may belong to a runtime that is gone); if not even that can start, it is logged, and the
//! cluster ends the hold or the session when the session's ttl runs out.

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::{Builder, Handle};
use tracing::warn;

use crate::connection::Connection;

/// Runs `work` in the background, on the current runtime if there is one, else on a
/// thread of its own; `what` names it in logs.
pub(crate) fn spawn<F, Fut>(what: &'static str, connection: &Arc<Connection>, work: F)
where
    F: FnOnce(Arc<Connection>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Ok(runtime) = Handle::try_current() {
        runtime.spawn(work(Arc::clone(connection)));
        return;
    }
    let connection = Arc::new(connection.apart());
    let started = std::thread::Builder::new().name(format!("warden-{what}")).spawn(move || {
        match Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(work(connection)),
            Err(error) => {
                warn!(%error, what, "no runtime for background work outside tokio; not done");
            }
        }
    });
    if let Err(error) = started {
        warn!(%error, what, "no thread for background work outside tokio; not done");
    }
}
