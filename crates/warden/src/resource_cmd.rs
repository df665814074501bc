//! `warden resource init|status KIND` and `warden rotate KIND --to V`: resource kinds,
//! whose ids are locked in versions, and their rotation (which runs the rotate tool's
//! code, `tools/rotate`, so the two cannot drift apart).

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use warden_client::{Client, ResourceHolder};
use warden_rotate::{Outcome, RotateArgs};

use crate::cli::{Output, ResourceCommand};
use crate::exit;
use crate::output::{StdoutClosed, emit};

/// Runs `warden resource init|status`.
pub(crate) async fn run(client: &Client, out: Output, command: ResourceCommand) -> Result<()> {
    match command {
        ResourceCommand::Init { kind, version } => {
            let init = client.resource_kind(&kind).init(&version).await?;
            let text = if init.created {
                format!("{kind}: created at {}", init.version)
            } else {
                format!("{kind}: there already, at {} (left as it is)", init.version)
            };
            emit(
                out,
                &text,
                &json!({ "kind": kind, "created": init.created, "version": init.version }),
            )
        }
        ResourceCommand::Status { kind } => status(client, out, &kind).await,
    }
}

fn holder_json(h: &ResourceHolder) -> serde_json::Value {
    let e = &h.entry;
    json!({
        "id": h.id, "lock": h.lock, "waiter": e.waiter, "session": e.session_id,
        "identity": e.identity, "mode": e.mode_name(), "token": e.token, "since_ms": e.since_ms,
    })
}

fn holder_line(h: &ResourceHolder) -> String {
    let e = &h.entry;
    let identity = if e.identity.is_empty() { String::new() } else { format!(" ({})", e.identity) };
    let state = match e.token {
        Some(t) => format!("holds, token {t}"),
        None => "waits".to_owned(),
    };
    format!(
        "  {}  session {}{identity}  {}  {state}  since {} ms",
        h.lock,
        e.session_id,
        e.mode_name(),
        e.since_ms
    )
}

/// Prints the kind's version, its rotation, and its holders and waiters.
async fn status(client: &Client, out: Output, kind: &str) -> Result<()> {
    let s = client.resource_kind(kind).status().await?;
    let mut lines = vec![match &s.rotating_to {
        Some(to) => format!(
            "{kind}: at {}, rotating to {to}: {} left to drain, {} queued for {to}",
            s.version,
            s.current.len(),
            s.waiting.len()
        ),
        None => format!("{kind}: at {}, {} holder(s) and waiter(s)", s.version, s.current.len()),
    }];
    lines.extend(s.current.iter().map(holder_line));
    if !s.waiting.is_empty() {
        lines.push(format!("  queued for {}:", s.rotating_to.as_deref().unwrap_or("?")));
        lines.extend(s.waiting.iter().map(|h| format!("  {}", holder_line(h))));
    }
    let object = json!({
        "kind": s.kind, "version": s.version, "rotating_to": s.rotating_to,
        "current": s.current.iter().map(holder_json).collect::<Vec<_>>(),
        "waiting": s.waiting.iter().map(holder_json).collect::<Vec<_>>(),
        "revision": s.revision,
    });
    emit(out, &lines.join("\n"), &object)
}

/// Runs `warden rotate`: the rotate tool's loop, with warden's errors and exit statuses.
pub(crate) async fn rotate(client: &Client, out: Output, args: &RotateArgs) -> Result<ExitCode> {
    let outcome = tokio::select! {
        outcome = warden_rotate::rotate(client, args, out == Output::Json) => outcome,
        _ = tokio::signal::ctrl_c() => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("interrupted: the rotation stays as it is (begun, if it was); run warden rotate again to pick it up");
            }
            return Ok(ExitCode::from(exit::INTERRUPTED));
        }
    };
    match outcome {
        Ok(Outcome::Planned | Outcome::Done) => Ok(ExitCode::SUCCESS),
        Ok(Outcome::TimedOut) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "error: {} did not switch to {} within the timeout; the rotation stays begun: run warden rotate again to pick it up, or add --force-after",
                    args.kind, args.to
                );
            }
            Ok(ExitCode::from(exit::TIMEOUT))
        }
        Err(warden_rotate::Error::Client(e)) => Err(e.into()),
        Err(warden_rotate::Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Err(StdoutClosed.into())
        }
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}
