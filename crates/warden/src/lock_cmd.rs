//! `warden lock PATH [--timeout D] [--shared] -- COMMAND [ARGS...]`: runs a command while
//! holding a lock, like `flock` and `etcdctl lock`; `warden lock status PATH`; and
//! `warden lock revoke PATH --session ID` (in commands.rs).
//!
//! The CLI's locks are read-write locks: a plain `warden lock` takes the write side, with
//! `--shared` the read side, so exclusive and shared users of one path agree on its kind.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use warden_client::{Client, LockError};

use crate::cli::Output;
use crate::output::emit;

/// The exit status when the lock was not granted within `--timeout`.
pub(crate) const EXIT_TIMEOUT: u8 = 3;
/// The exit status when the lock was lost (revoked, or its session gone) while the command
/// ran.
pub(crate) const EXIT_LOST: u8 = 4;

/// Parses `500ms`, `10s`, `2m` or a plain number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 10s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{text:?} has an unknown unit {unit:?}; use ms, s or m")),
    }
}

/// How to take the lock.
pub(crate) struct How {
    /// Give up after this long.
    pub(crate) timeout: Option<Duration>,
    /// The read side rather than the write side.
    pub(crate) shared: bool,
    /// The session's ttl.
    pub(crate) ttl: Duration,
    /// Lock-delay for a new lock.
    pub(crate) delay: Duration,
}

/// Runs `command` holding the lock at `path`; returns the command's exit status.
pub(crate) async fn run(
    client: &Client,
    path: &str,
    how: How,
    command: &[String],
) -> Result<ExitCode> {
    let How { timeout, shared, ttl, delay } = how;
    let Some((program, args)) = command.split_first() else {
        bail!(
            "nothing to run: give a command after --, as in: warden lock /jobs/nightly -- ./run.sh"
        );
    };
    let session = client.open_session(ttl).await?;
    let lock =
        if shared { client.read_lock(&session, path) } else { client.write_lock(&session, path) };
    let lock = lock.with_delay(delay);
    let acquired = match timeout {
        Some(t) => lock.acquire_timeout(t).await,
        None => lock.acquire().await,
    };
    let guard = match acquired {
        Ok(guard) => guard,
        Err(LockError::Timeout { waited, .. }) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: the lock {path:?} was not granted within {waited:?}");
            }
            return Ok(ExitCode::from(EXIT_TIMEOUT));
        }
        Err(LockError::Revoked { .. }) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "error: the wait for the lock {path:?} was revoked by an operator; the command was not run"
                );
            }
            session.close().await.ok();
            return Ok(ExitCode::from(EXIT_LOST));
        }
        Err(e) => return Err(e.into()),
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("WARDEN_FENCING_TOKEN", guard.token().to_string())
        .env("WARDEN_LOCK_PATH", path)
        .spawn()
        .with_context(|| format!("cannot run {program:?}"))?;
    let outcome = tokio::select! {
        status = child.wait() => Ok(status.context("waiting for the command")?),
        () = guard.lost() => Err(i32::from(EXIT_LOST)),
        _ = tokio::signal::ctrl_c() => Err(130),
    };
    let code = match outcome {
        Ok(status) => {
            #[cfg(unix)]
            let signal = std::os::unix::process::ExitStatusExt::signal(&status);
            #[cfg(not(unix))]
            let signal: Option<i32> = None;
            status.code().or(signal.map(|s| 128 + s)).unwrap_or(1)
        }
        Err(code) => {
            child.kill().await.ok();
            if code == i32::from(EXIT_LOST) {
                let reason = guard.lost_reason().unwrap_or_else(|| "session lost".to_owned());
                #[allow(clippy::print_stderr)]
                {
                    eprintln!(
                        "error: the lock {path:?} was lost ({reason}); the command was stopped"
                    );
                }
            }
            code
        }
    };
    guard.release().await.ok();
    session.close().await.ok();
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Prints the holders and waiters of the lock at `path`.
pub(crate) async fn status(client: &Client, out: Output, path: &str) -> Result<()> {
    let status = client.lock_status(path).await?;
    let mut lines = vec![format!(
        "{path}: {} delay {} ms{}",
        status.kind_name(),
        status.delay_ms,
        if status.blocked_until_ms > 0 {
            format!(", blocked until {} ms", status.blocked_until_ms)
        } else {
            String::new()
        }
    )];
    let mut waiters = Vec::new();
    for w in status.holders.iter().chain(&status.waiters) {
        let mode = w.mode_name();
        let state = match w.token {
            Some(t) => format!("holds, token {t}"),
            None => "waits".to_owned(),
        };
        let identity =
            if w.identity.is_empty() { String::new() } else { format!(" ({})", w.identity) };
        lines.push(format!(
            "  {}  session {}{identity}  {}  {}  since {} ms",
            w.waiter, w.session_id, mode, state, w.since_ms
        ));
        waiters.push(json!({
            "waiter": w.waiter, "session": w.session_id, "identity": w.identity, "mode": mode,
            "token": w.token, "since_ms": w.since_ms,
        }));
    }
    let object = json!({
        "path": path, "type": status.kind_name(), "delay_ms": status.delay_ms,
        "blocked_until_ms": status.blocked_until_ms, "waiters": waiters,
    });
    emit(out, &lines.join("\n"), &object);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("abc").is_err());
    }
}
