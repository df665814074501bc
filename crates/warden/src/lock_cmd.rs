//! `warden lock PATH [--timeout D] [--shared] [--subtree] [--priority N] -- COMMAND
//! [ARGS...]`: runs a command while
//! holding a lock, like `flock` and `etcdctl lock`; `warden lock status PATH`; and
//! `warden lock revoke PATH --session ID` (in commands.rs). `warden lock stats PREFIX` is
//! in lock_stats_cmd.rs.
//!
//! The CLI's locks are read-write locks: a plain `warden lock` takes the write side, with
//! `--shared` the read side, so exclusive and shared users of one path agree on its kind.
//!
//! `warden lock --resource KIND ID -- COMMAND` locks an id of a resource kind the same way:
//! the cluster picks the version, and the command learns it from `WARDEN_LOCK_PATH`.
//!
//! Running a command in a session of its own ([`in_session`]) while something is held
//! ([`run_command`]) is shared with `warden elect` and `warden barrier`.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::time::Instant;
use tracing::warn;
use warden_client::{Client, ErrorKind, LockError, LockGuard, LockStatus, ResourceGuard, Session};

use crate::cli::Output;
use crate::exit;
use crate::output::emit;

/// How long closing the session (and releasing the lock) may take on the way out; past it
/// the session ends by itself after its ttl.
const CLEANUP: Duration = Duration::from_secs(3);

/// How to take the lock.
pub(crate) struct How {
    /// Give up after this long, opening the session included.
    pub(crate) timeout: Option<Duration>,
    /// The read side rather than the write side.
    pub(crate) shared: bool,
    /// Hold the subtree under the path, not the path alone.
    pub(crate) subtree: bool,
    /// The acquire's priority (0 to 10).
    pub(crate) priority: u32,
    /// The session's ttl.
    pub(crate) ttl: Duration,
    /// Lock-delay for a new lock.
    pub(crate) delay: Duration,
}

/// What `warden lock` locks.
pub(crate) enum Target<'a> {
    /// The lock at a path.
    Path(&'a str),
    /// An id of a resource kind.
    Resource {
        /// The kind's path.
        kind: &'a str,
        /// The id.
        id: &'a str,
        /// While the kind rotates, fail at once rather than wait for the new version.
        no_wait_while_draining: bool,
    },
}

impl Target<'_> {
    /// What is locked, in messages.
    fn what(&self) -> String {
        match self {
            Target::Path(path) => format!("the lock {path:?}"),
            Target::Resource { kind, id, .. } => format!("id {id:?} of the resource kind {kind:?}"),
        }
    }
}

/// A hold of either target.
enum Guard {
    Lock(LockGuard),
    Resource(ResourceGuard),
}

impl Guard {
    fn token(&self) -> u64 {
        match self {
            Guard::Lock(g) => g.token(),
            Guard::Resource(g) => g.token(),
        }
    }

    /// The lock's path (for a resource id, KIND/<version>/<id>).
    fn path(&self) -> &str {
        match self {
            Guard::Lock(g) => g.path(),
            Guard::Resource(g) => g.lock_path(),
        }
    }

    async fn lost(&self) {
        match self {
            Guard::Lock(g) => g.lost().await,
            Guard::Resource(g) => g.lost().await,
        }
    }

    fn lost_reason(&self) -> Option<String> {
        match self {
            Guard::Lock(g) => g.lost_reason(),
            Guard::Resource(g) => g.lost_reason(),
        }
    }

    async fn release(self) -> Result<(), LockError> {
        match self {
            Guard::Lock(g) => g.release().await,
            Guard::Resource(g) => g.release().await,
        }
    }
}

/// Takes `target` in `session`, waiting at most `wait` (for ever without one).
async fn acquire(
    client: &Client,
    session: &Session,
    target: &Target<'_>,
    how: &How,
    wait: Option<Duration>,
) -> Result<Guard, LockError> {
    match *target {
        Target::Path(path) => {
            let lock = if how.shared {
                client.read_lock(session, path)
            } else {
                client.write_lock(session, path)
            };
            let mut lock = lock.with_delay(how.delay).with_priority(how.priority);
            if how.subtree {
                lock = lock.with_subtree();
            }
            match wait {
                Some(wait) => lock.acquire_timeout(wait).await.map(Guard::Lock),
                None => lock.acquire().await.map(Guard::Lock),
            }
        }
        Target::Resource { kind, id, no_wait_while_draining } => {
            let mut resource = client.resource(session, kind).with_delay(how.delay);
            if how.shared {
                resource = resource.shared();
            }
            if no_wait_while_draining {
                resource = resource.fail_while_draining();
            }
            match wait {
                Some(wait) => resource.acquire_timeout(id, wait).await.map(Guard::Resource),
                None => resource.acquire(id).await.map(Guard::Resource),
            }
        }
    }
}

/// Resolves on Ctrl-C (its first poll installs the handler; it never resolves if that
/// fails).
pub(crate) type Interrupt<'a> = Pin<&'a mut (dyn Future<Output = ()> + Send)>;

/// Runs `command` holding the lock at `path`; returns the command's exit status. Whatever
/// happens once the session is open (a timeout, a refused request, a command that cannot
/// run, Ctrl-C), the session is closed before warden exits, so nothing it holds or waits
/// for outlives it.
pub(crate) async fn run(
    client: &Client,
    target: Target<'_>,
    how: How,
    command: &[String],
) -> Result<ExitCode> {
    if command.is_empty() {
        bail!(
            "nothing to run: give a command after --, as in: warden lock /jobs/nightly -- ./run.sh"
        );
    }
    let what = target.what();
    let opening = Opening { ttl: how.ttl, timeout: how.timeout, what: &what };
    in_session(client, opening, async |session, deadline, interrupted| {
        hold(client, session, &target, &how, deadline, command, interrupted).await
    })
    .await
}

/// The session a command runs in, and what it is for.
pub(crate) struct Opening<'a> {
    /// The session's ttl.
    pub(crate) ttl: Duration,
    /// Give up after this long, opening the session included.
    pub(crate) timeout: Option<Duration>,
    /// What the session is for, in messages: `the lock "/x"`.
    pub(crate) what: &'a str,
}

/// Opens a session (within the timeout, asking an unavailable cluster again until then),
/// runs `body` in it with the deadline and the Ctrl-C future, and closes the session on
/// every way out. A session not opened in time exits 3; Ctrl-C, 130.
pub(crate) async fn in_session(
    client: &Client,
    opening: Opening<'_>,
    body: impl for<'s> AsyncFnOnce(&'s Session, Option<Instant>, Interrupt<'s>) -> Result<ExitCode>,
) -> Result<ExitCode> {
    let deadline = opening.timeout.map(|t| Instant::now() + t);
    let mut interrupted = std::pin::pin!(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    });
    let opened = within(deadline, open_session(client, opening.ttl, deadline.is_some()));
    let session = tokio::select! {
        opened = opened => match opened {
            Some(session) => session.with_context(|| format!("cannot open a session for {}", opening.what))?,
            None => return Ok(not_granted(opening.what, opening.timeout, " (no session could be opened: is a quorum of members up? see warden cluster status)")),
        },
        () = &mut interrupted => return Ok(ExitCode::from(exit::INTERRUPTED)),
    };
    let outcome = body(&session, deadline, interrupted).await;
    let id = session.id();
    match tokio::time::timeout(CLEANUP, session.close()).await {
        Ok(Ok(_)) => {}
        // Ended already (closed by an operator, expired): nothing left to close.
        Ok(Err(warden_client::ClientError::Server {
            kind: Some(ErrorKind::SessionExpired),
            ..
        })) => {}
        Ok(Err(e)) => {
            warn!(session = id, error = %e, "cannot close the session; it ends after its ttl")
        }
        Err(_) => warn!(session = id, "closing the session timed out; it ends after its ttl"),
    }
    outcome
}

/// Opens the lock's session. With a deadline (the caller bounds this), a cluster that
/// cannot serve yet is asked again until the deadline, as a held lock is waited for;
/// without one, that is an error at once.
async fn open_session(
    client: &Client,
    ttl: Duration,
    retry: bool,
) -> Result<Session, warden_client::ClientError> {
    loop {
        match client.open_session(ttl).await {
            Err(warden_client::ClientError::Unavailable { .. }) if retry => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// `future`, given up at `deadline` (if any): `None` then.
pub(crate) async fn within<T>(
    deadline: Option<Instant>,
    future: impl Future<Output = T>,
) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

/// Says that `what` (`the lock "/x"`) was not granted in time; exit 3.
pub(crate) fn not_granted(what: &str, timeout: Option<Duration>, why: &str) -> ExitCode {
    let waited = timeout.unwrap_or_default();
    #[allow(clippy::print_stderr)]
    {
        eprintln!("error: {what} was not granted within {waited:?}{why}");
    }
    ExitCode::from(exit::TIMEOUT)
}

/// Says that an operator took the session out of `what`'s queue before it was granted;
/// exit 4.
pub(crate) fn revoked(what: &str) -> ExitCode {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("error: the wait for {what} was revoked by an operator; the command was not run");
    }
    ExitCode::from(exit::LOST)
}

/// What a waiting call's refusal means for a command not yet run: 4 after a revoke (said
/// so) or the end of the session (`WaitEnded`, `SessionExpired`); `None` for any other.
pub(crate) fn wait_lost(what: &str, error: &warden_client::ClientError) -> Option<ExitCode> {
    match error.kind() {
        Some(ErrorKind::WaitRevoked) => Some(revoked(what)),
        Some(ErrorKind::WaitEnded | ErrorKind::SessionExpired) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "error: the session waiting for {what} was lost ({error}); the command was not run"
                );
            }
            Some(ExitCode::from(exit::LOST))
        }
        _ => None,
    }
}

/// Takes the lock in `session`, runs the command holding it, and releases it.
async fn hold(
    client: &Client,
    session: &Session,
    target: &Target<'_>,
    how: &How,
    deadline: Option<Instant>,
    command: &[String],
    mut interrupted: Interrupt<'_>,
) -> Result<ExitCode> {
    let acquiring = async {
        match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                within(Some(deadline), acquire(client, session, target, how, Some(left))).await
            }
            None => Some(acquire(client, session, target, how, None).await),
        }
    };
    let acquired = tokio::select! {
        acquired = acquiring => acquired,
        () = &mut interrupted => return Ok(ExitCode::from(exit::INTERRUPTED)),
    };
    let what = target.what();
    let guard = match acquired {
        Some(Ok(guard)) => guard,
        None | Some(Err(LockError::Timeout { .. })) => {
            return Ok(not_granted(&what, how.timeout, ""));
        }
        Some(Err(LockError::Revoked { .. })) => return Ok(revoked(&what)),
        Some(Err(e)) => return Err(e).with_context(|| format!("cannot take {what}")),
    };
    let path = guard.path().to_owned();
    let held = Held {
        what: &what,
        unused: "the lock was released unused",
        env: vec![
            ("WARDEN_FENCING_TOKEN", guard.token().to_string()),
            ("WARDEN_LOCK_PATH", path.clone()),
        ],
        lost: Box::pin(guard.lost()),
        lost_reason: &|| guard.lost_reason(),
    };
    let code = run_command(held, command, interrupted).await;
    match tokio::time::timeout(CLEANUP, guard.release()).await {
        // Ended already (lost, and said so): nothing to release.
        Ok(Ok(()) | Err(LockError::HoldEnded { .. })) => {}
        Ok(Err(e)) => {
            warn!(path, error = %e, "cannot release the lock; closing the session ends it")
        }
        Err(_) => warn!(path, "releasing the lock timed out; closing the session ends it"),
    }
    code
}

/// What a command runs holding: a lock, a leadership, a place in a barrier.
pub(crate) struct Held<'a> {
    /// What is held, in messages: `the lock "/x"`.
    pub(crate) what: &'a str,
    /// What becomes of it if the command cannot run: `the lock was released unused`.
    pub(crate) unused: &'a str,
    /// The command's environment, added to warden's.
    pub(crate) env: Vec<(&'static str, String)>,
    /// Resolves when it is lost (never, for what cannot be).
    pub(crate) lost: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    /// Why it was lost.
    pub(crate) lost_reason: &'a (dyn Fn() -> Option<String> + Sync),
}

/// Runs the command while `held` holds; its exit status, or 4 if what it holds is lost
/// first (the command is killed), or 130 on Ctrl-C.
pub(crate) async fn run_command(
    held: Held<'_>,
    command: &[String],
    mut interrupted: Interrupt<'_>,
) -> Result<ExitCode> {
    let Some((program, args)) = command.split_first() else {
        bail!("nothing to run: give a command after --");
    };
    let spawned = tokio::process::Command::new(program)
        .args(args)
        .envs(held.env.iter().map(|(k, v)| (*k, v.as_str())))
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let (code, what) = match e.kind() {
                std::io::ErrorKind::NotFound => (exit::NO_COMMAND, "no such command"),
                _ => (exit::CANNOT_RUN, "cannot run it"),
            };
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {what}: {program:?} ({e}); {}", held.unused);
            }
            return Ok(ExitCode::from(code));
        }
    };
    let outcome = tokio::select! {
        status = child.wait() => Ok(status.context("waiting for the command")?),
        () = held.lost => Err(exit::LOST),
        () = &mut interrupted => Err(exit::INTERRUPTED),
    };
    let code = match outcome {
        Ok(status) => {
            #[cfg(unix)]
            let signal = std::os::unix::process::ExitStatusExt::signal(&status);
            #[cfg(not(unix))]
            let signal: Option<i32> = None;
            let code = status.code().or(signal.map(|s| 128 + s)).unwrap_or(1);
            u8::try_from(code).unwrap_or(exit::OTHER)
        }
        Err(code) => {
            child.kill().await.ok();
            if code == exit::LOST {
                let reason = (held.lost_reason)().unwrap_or_else(|| "session lost".to_owned());
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("error: {} was lost ({reason}); the command was stopped", held.what);
                }
            }
            code
        }
    };
    Ok(ExitCode::from(code))
}

/// Prints the holders and waiters of the lock at `path`.
pub(crate) async fn status(client: &Client, out: Output, path: &str) -> Result<()> {
    let status = match client.lock_status(path).await {
        Ok(status) => status,
        // No lock node: a lock's node goes with its last holder or waiter, so a free lock
        // usually has none. Unless a plain node is there.
        Err(e) if e.code() == Some(tonic::Code::NotFound) => {
            return match client.get(path).await {
                Ok(_) => bail!(
                    "{path:?} is a plain node, not a lock (see warden get {path}); a lock is taken at a path with no node, or at a lock's node"
                ),
                Err(e) if e.code() == Some(tonic::Code::NotFound) => emit(
                    out,
                    &format!("{path}: free (nobody holds or waits for it)"),
                    &json!({ "path": path, "free": true, "waiters": [] }),
                ),
                Err(e) => Err(e.into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let (text, object) = status_view(path, &status);
    emit(out, &text, &object)
}

/// A lock's status as text and as JSON. The text shows each place's owner and count only
/// when one of them is reentrant; the JSON always has them (`owner` null without one).
fn status_view(path: &str, status: &LockStatus) -> (String, serde_json::Value) {
    let free = status.holders.is_empty();
    // Nobody holds it, yet somebody waits: a lock-delay, or the locks above or below it
    // (hierarchical locks).
    let state = match (free, status.waiters.len()) {
        (false, _) => String::new(),
        (true, 0) => "free, ".to_owned(),
        (true, n) if status.blocked_until_ms > 0 => format!("not held, {n} waiting, "),
        (true, n) => format!("not held, {n} waiting for locks above or below it, "),
    };
    let mut lines = vec![format!(
        "{path}: {state}{} delay {} ms{}",
        status.kind_name(),
        status.delay_ms,
        if status.blocked_until_ms > 0 {
            format!(", blocked until {} ms", status.blocked_until_ms)
        } else {
            String::new()
        }
    )];
    let places = || status.holders.iter().chain(&status.waiters);
    let reentrant = places().any(|w| w.owner.is_some());
    let mut waiters = Vec::new();
    for w in places() {
        let mut mode = w.mode_name();
        let scope = warden_proto::convert::lock::scope_name(w.scope);
        if w.scope == warden_core::queue::Scope::Subtree {
            mode.push_str(&format!(" {scope}"));
        }
        if w.priority > 0 {
            mode.push_str(&format!(" priority {}", w.priority));
        }
        let state = match w.token {
            Some(t) => format!("holds, token {t}"),
            None => "waits".to_owned(),
        };
        let identity =
            if w.identity.is_empty() { String::new() } else { format!(" ({})", w.identity) };
        let owner = match (&w.owner, reentrant) {
            (Some(o), _) => format!("  owner {o}, count {}", w.holds),
            (None, true) => "  no owner".to_owned(),
            (None, false) => String::new(),
        };
        lines.push(format!(
            "  {}  session {}{identity}  {}  {}{owner}  since {} ms",
            w.waiter, w.session_id, mode, state, w.since_ms
        ));
        waiters.push(json!({
            "waiter": w.waiter, "session": w.session_id, "identity": w.identity,
            "mode": w.mode_name(), "scope": scope, "priority": w.priority, "token": w.token,
            "since_ms": w.since_ms, "owner": w.owner, "holds": w.holds,
        }));
    }
    let object = json!({
        "path": path, "free": free, "type": status.kind_name(), "delay_ms": status.delay_ms,
        "blocked_until_ms": status.blocked_until_ms, "waiters": waiters,
        "stats": status.stats.as_ref().map(crate::lock_stats_cmd::entry),
    });
    (lines.join("\n"), object)
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use warden_client::ClientError;

    use super::*;

    #[test]
    fn a_status_shows_owners_and_counts_when_a_place_is_reentrant() {
        let entry = |waiter: &str, token, owner: Option<&str>, holds| warden_client::LockEntry {
            waiter: waiter.into(),
            session_id: 3,
            mode: warden_client::WaitMode::Exclusive,
            token,
            since_ms: 5,
            identity: String::new(),
            owner: owner.map(str::to_owned),
            holds,
            scope: warden_client::LockScope::Node,
            priority: 0,
        };
        let mut status = LockStatus {
            kind: warden_client::LockKind::Mutex,
            delay_ms: 0,
            blocked_until_ms: 0,
            holders: vec![entry("/l/w-1", Some(9), Some("task-7"), 3)],
            waiters: vec![entry("/l/w-2", None, None, 1)],
            revision: 9,
            stats: None,
        };
        let (text, object) = status_view("/l", &status);
        assert!(text.contains("w-1  session 3  exclusive  holds"), "{text}");
        assert_eq!(object["waiters"][0]["scope"], "node");
        assert!(text.contains("holds, token 9  owner task-7, count 3  since"), "{text}");
        assert!(text.contains("waits  no owner  since"), "{text}");
        assert_eq!(object["waiters"][0]["owner"], "task-7");
        assert_eq!(object["waiters"][0]["holds"], 3);
        assert_eq!(object["waiters"][1]["owner"], serde_json::Value::Null);
        // Without a reentrant place, no column.
        status.holders[0].owner = None;
        status.holders[0].holds = 1;
        let (text, object) = status_view("/l", &status);
        assert!(!text.contains("owner"), "{text}");
        assert_eq!(object["waiters"][0]["holds"], 1);
        // A subtree hold and a priority are shown beside the mode.
        status.waiters[0].scope = warden_client::LockScope::Subtree;
        status.waiters[0].priority = 4;
        let (text, object) = status_view("/l", &status);
        assert!(text.contains("exclusive subtree priority 4  waits"), "{text}");
        assert_eq!(object["waiters"][1]["scope"], "subtree");
        assert_eq!(object["waiters"][1]["priority"], 4);
    }

    #[test]
    fn a_wait_revoked_or_gone_with_its_session_is_lost_and_nothing_else_is() {
        let refused =
            |code, kind| ClientError::Server { code, message: "m".into(), kind: Some(kind) };
        let lost = Some(ExitCode::from(exit::LOST));
        assert_eq!(wait_lost("x", &refused(Code::Aborted, ErrorKind::WaitRevoked)), lost);
        assert_eq!(wait_lost("x", &refused(Code::Aborted, ErrorKind::WaitEnded)), lost);
        let expired = refused(Code::FailedPrecondition, ErrorKind::SessionExpired);
        assert_eq!(wait_lost("x", &expired), lost);
        let wrong = refused(Code::FailedPrecondition, ErrorKind::WrongRecipe);
        assert_eq!(wait_lost("x", &wrong), None);
        let timeout = refused(Code::DeadlineExceeded, ErrorKind::Timeout);
        assert_eq!(wait_lost("x", &timeout), None);
    }
}
