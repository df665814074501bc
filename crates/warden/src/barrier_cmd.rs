//! `warden barrier set|remove|wait|status NAME`, and `warden barrier NAME --count N --
//! COMMAND`: a double barrier around a command (enter, run it once all N are in, leave,
//! return once all N have left).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::time::Instant;
use warden_client::{BarrierRemoved, BarrierStatus, Client, ErrorKind, Session};

use crate::cli::Output;
use crate::exit;
use crate::lock_cmd::{Held, Interrupt, Opening, in_session, not_granted, wait_lost, within};
use crate::output::emit;

/// What `warden barrier` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Set the barrier.
    Set(String),
    /// Remove it.
    Remove(String),
    /// Wait until it is not set.
    Wait(String),
    /// Print its state and members.
    Status(String),
    /// Run the command inside the double barrier of `count` members.
    Run { name: String, count: u32, command: Vec<String> },
}

/// The action of `warden barrier TARGET [NAME] [--count N] [-- COMMAND]`: TARGET is a
/// subcommand (`set`, `remove`, `wait`, `status`) or the double barrier's name (a path,
/// so the two never meet).
pub(crate) fn action(
    target: String,
    name: Option<String>,
    count: Option<u32>,
    timeout: bool,
    command: Vec<String>,
) -> Result<Action> {
    let sub = target.as_str();
    if matches!(sub, "set" | "remove" | "wait" | "status") {
        let name =
            name.with_context(|| format!("give the barrier's name: warden barrier {sub} NAME"))?;
        if count.is_some() {
            bail!("--count goes with a double barrier: warden barrier NAME --count N -- COMMAND");
        }
        if !command.is_empty() {
            bail!("warden barrier {sub} runs no command: remove what follows --");
        }
        if timeout && sub != "wait" {
            bail!("--timeout goes with wait or a double barrier, not with {sub}");
        }
        return Ok(match sub {
            "set" => Action::Set(name),
            "remove" => Action::Remove(name),
            "wait" => Action::Wait(name),
            _ => Action::Status(name),
        });
    }
    if let Some(extra) = name {
        bail!(
            "unexpected {extra:?}: put the command after --, as in: warden barrier {target} --count N -- {extra}"
        );
    }
    let Some(count) = count else {
        bail!(
            "give the number of members: warden barrier {target} --count N -- COMMAND (or a subcommand: set, remove, wait, status)"
        );
    };
    if count == 0 {
        bail!("--count must be at least 1");
    }
    if command.is_empty() {
        bail!(
            "nothing to run: give a command after --, as in: warden barrier {target} --count {count} -- ./step.sh"
        );
    }
    Ok(Action::Run { name: target, count, command })
}

/// Runs one barrier action; `timeout` bounds a wait, and each of entering and leaving a
/// double barrier; `ttl` is the session's, for the actions that need one.
pub(crate) async fn run(
    client: &Client,
    out: Output,
    action: Action,
    timeout: Option<Duration>,
    ttl: Duration,
) -> Result<ExitCode> {
    match action {
        Action::Set(name) => {
            let created = client.set_barrier(&name).await?;
            let text =
                if created { format!("set {name}") } else { format!("{name} was set already") };
            emit(out, &text, &json!({ "name": name, "created": created }))?;
        }
        Action::Remove(name) => {
            let removed = client.remove_barrier(&name).await?;
            emit(out, &removed_text(&name, removed), &removed_json(&name, removed))?;
        }
        Action::Status(name) => {
            let status = client.barrier_status(&name).await?;
            emit(out, &status_text(&name, &status), &status_json(&name, &status))?;
        }
        Action::Wait(name) => {
            let what = format!("the barrier {name:?}");
            let opening = Opening { ttl, timeout, what: &what };
            return in_session(client, opening, async |session, deadline, interrupted| {
                wait(client, session, &name, deadline, timeout, interrupted).await
            })
            .await;
        }
        Action::Run { name, count, command } => {
            let what = format!("the double barrier {name:?} ({count} members)");
            let opening = Opening { ttl, timeout, what: &what };
            return in_session(client, opening, async |session, deadline, interrupted| {
                let how = Double { name: &name, count, timeout, command: &command };
                double(client, session, how, deadline, interrupted).await
            })
            .await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn removed_text(name: &str, removed: BarrierRemoved) -> String {
    if removed.removed {
        format!("removed {name}; {} waiter(s) let through", removed.released)
    } else {
        format!("{name} was not set")
    }
}

fn removed_json(name: &str, removed: BarrierRemoved) -> Value {
    json!({ "name": name, "removed": removed.removed, "released": removed.released })
}

fn status_text(name: &str, status: &BarrierStatus) -> String {
    let state = match (status.kind, status.set) {
        (warden_client::BarrierKind::Barrier, true) => "set".to_owned(),
        (warden_client::BarrierKind::Barrier, false) => "not set".to_owned(),
        (warden_client::BarrierKind::Double, true) => format!("all {} in", status.count),
        (warden_client::BarrierKind::Double, false) => {
            format!("waiting for {} members", status.count)
        }
    };
    let mut lines = vec![format!("{name}: {}, {state}", status.kind.name())];
    for m in &status.members {
        let identity =
            if m.identity.is_empty() { String::new() } else { format!(" ({})", m.identity) };
        let through = if m.token.is_some() { "in" } else { "waits" };
        lines.push(format!(
            "  {}  session {}{identity}  {through}  since {} ms",
            m.member, m.session_id, m.since_ms
        ));
    }
    lines.join("\n")
}

/// A status as JSON: `{"name","type","set","count","members":[...]}`.
pub(crate) fn status_json(name: &str, status: &BarrierStatus) -> Value {
    let members: Vec<Value> = status
        .members
        .iter()
        .map(|m| {
            json!({
                "member": m.member, "session": m.session_id, "identity": m.identity,
                "token": m.token, "since_ms": m.since_ms,
            })
        })
        .collect();
    json!({
        "name": name, "type": status.kind.name(), "set": status.set, "count": status.count,
        "members": members,
    })
}

/// Waits in `session` until the barrier `name` is not set; 3 on a timeout.
async fn wait(
    client: &Client,
    session: &Session,
    name: &str,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    mut interrupted: Interrupt<'_>,
) -> Result<ExitCode> {
    let barrier = client.barrier(session, name);
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let what = format!("the barrier {name:?}");
    let waited = tokio::select! {
        waited = within(deadline, barrier.wait(left)) => waited,
        () = &mut interrupted => return Ok(ExitCode::from(exit::INTERRUPTED)),
    };
    match waited {
        Some(Ok(())) => Ok(ExitCode::SUCCESS),
        None => Ok(still_set(&what, timeout)),
        Some(Err(e)) if e.kind() == Some(ErrorKind::Timeout) => Ok(still_set(&what, timeout)),
        Some(Err(e)) => match wait_lost(&what, &e) {
            Some(code) => Ok(code),
            None => Err(e).with_context(|| format!("cannot wait at {what}")),
        },
    }
}

fn still_set(what: &str, timeout: Option<Duration>) -> ExitCode {
    let waited = timeout.unwrap_or_default();
    #[allow(clippy::print_stderr)]
    {
        eprintln!("error: {what} was still set after {waited:?}");
    }
    ExitCode::from(exit::TIMEOUT)
}

/// A double barrier around a command.
struct Double<'a> {
    name: &'a str,
    count: u32,
    timeout: Option<Duration>,
    command: &'a [String],
}

/// Enters the double barrier in `session`, runs the command once all are in, leaves, and
/// waits for all to have left; the command's status (3 if entering or leaving ran out of
/// time, 130 on Ctrl-C).
async fn double(
    client: &Client,
    session: &Session,
    how: Double<'_>,
    deadline: Option<Instant>,
    mut interrupted: Interrupt<'_>,
) -> Result<ExitCode> {
    let barrier = client.double_barrier(session, how.name, how.count);
    let what = format!("the double barrier {:?} ({} members)", how.name, how.count);
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let entered = tokio::select! {
        entered = within(deadline, barrier.enter(left)) => entered,
        () = &mut interrupted => return Ok(ExitCode::from(exit::INTERRUPTED)),
    };
    let guard = match entered {
        Some(Ok(guard)) => guard,
        None => return Ok(not_granted(&what, how.timeout, " (not all members were in)")),
        Some(Err(e)) if e.kind() == Some(ErrorKind::Timeout) => {
            return Ok(not_granted(&what, how.timeout, " (not all members were in)"));
        }
        Some(Err(e)) => match wait_lost(&what, &e) {
            Some(code) => return Ok(code),
            None => return Err(e).with_context(|| format!("cannot enter {what}")),
        },
    };
    let held = Held {
        what: &what,
        unused: "its member leaves unused",
        env: vec![
            ("WARDEN_BARRIER_NAME", how.name.to_owned()),
            ("WARDEN_BARRIER_MEMBER", guard.member().to_owned()),
        ],
        // A place in a barrier guards nothing: the command runs to its end.
        lost: Box::pin(std::future::pending()),
        lost_reason: &|| None,
    };
    let code = crate::lock_cmd::run_command(held, how.command, interrupted.as_mut()).await?;
    if code == ExitCode::from(exit::INTERRUPTED) {
        // Closing the session takes the member out; the others are not waited for.
        return Ok(code);
    }
    let deadline = how.timeout.map(|t| Instant::now() + t);
    let leaving = within(deadline, guard.leave(how.timeout));
    let left = tokio::select! {
        left = leaving => left,
        () = &mut interrupted => return Ok(ExitCode::from(exit::INTERRUPTED)),
    };
    match left {
        Some(Ok(())) => Ok(code),
        None => Ok(not_left(&what, how.timeout)),
        Some(Err(e)) if e.kind() == Some(ErrorKind::Timeout) => Ok(not_left(&what, how.timeout)),
        Some(Err(e)) => Err(e).with_context(|| format!("cannot leave {what}")),
    }
}

fn not_left(what: &str, timeout: Option<Duration>) -> ExitCode {
    let waited = timeout.unwrap_or_default();
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "error: the command ran, but not every member of {what} had left within {waited:?}"
        );
    }
    ExitCode::from(exit::TIMEOUT)
}

#[cfg(test)]
mod tests {
    use warden_client::{BarrierKind, BarrierMember};

    use super::*;

    fn run(
        target: &str,
        name: Option<&str>,
        count: Option<u32>,
        timeout: bool,
        command: &[&str],
    ) -> Result<Action> {
        let command = command.iter().map(|s| (*s).to_owned()).collect();
        action(target.to_owned(), name.map(str::to_owned), count, timeout, command)
    }

    #[test]
    fn subcommands_and_a_double_barrier_are_told_apart() {
        assert_eq!(run("set", Some("/b"), None, false, &[]).ok(), Some(Action::Set("/b".into())));
        assert_eq!(
            run("remove", Some("/b"), None, false, &[]).ok(),
            Some(Action::Remove("/b".into()))
        );
        assert_eq!(run("wait", Some("/b"), None, true, &[]).ok(), Some(Action::Wait("/b".into())));
        assert_eq!(
            run("status", Some("/b"), None, false, &[]).ok(),
            Some(Action::Status("/b".into()))
        );
        let double = run("/b", None, Some(3), true, &["echo", "hi"]).ok();
        let command = vec!["echo".to_owned(), "hi".to_owned()];
        assert_eq!(double, Some(Action::Run { name: "/b".into(), count: 3, command }));
    }

    #[test]
    fn what_does_not_fit_is_refused_with_the_right_form() {
        let error = |r: Result<Action>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error(run("set", None, None, false, &[])).contains("warden barrier set NAME"));
        assert!(error(run("set", Some("/b"), Some(2), false, &[])).contains("--count"));
        assert!(error(run("set", Some("/b"), None, true, &[])).contains("--timeout"));
        assert!(error(run("status", Some("/b"), None, false, &["x"])).contains("runs no command"));
        assert!(error(run("/b", None, None, false, &["x"])).contains("--count N"));
        assert!(error(run("/b", None, Some(0), false, &["x"])).contains("at least 1"));
        assert!(error(run("/b", None, Some(2), false, &[])).contains("nothing to run"));
        assert!(error(run("/b", Some("x"), Some(2), false, &[])).contains("after --"));
    }

    #[test]
    fn a_status_prints_its_members() {
        let status = BarrierStatus {
            kind: BarrierKind::Double,
            set: false,
            count: 2,
            members: vec![BarrierMember {
                member: "/b/w-0000000001".into(),
                session_id: 5,
                token: None,
                since_ms: 100,
                identity: String::new(),
            }],
            revision: 3,
        };
        let expected = json!({
            "name": "/b", "type": "double", "set": false, "count": 2,
            "members": [{"member": "/b/w-0000000001", "session": 5, "identity": "", "token": null, "since_ms": 100}],
        });
        assert_eq!(status_json("/b", &status), expected);
        assert_eq!(
            status_text("/b", &status),
            "/b: double, waiting for 2 members\n  /b/w-0000000001  session 5  waits  since 100 ms"
        );
        let removed = BarrierRemoved { removed: true, released: 4 };
        assert_eq!(
            removed_json("/b", removed),
            json!({"name": "/b", "removed": true, "released": 4})
        );
        assert_eq!(removed_text("/b", removed), "removed /b; 4 waiter(s) let through");
    }
}
