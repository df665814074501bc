//! `warden elect NAME [--value V] -- COMMAND [ARGS...]`: runs a command while leading an
//! election, as `warden lock` runs one holding a lock; `warden elect leader NAME`; and
//! `warden elect observe NAME`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::warn;
use warden_client::{Client, Consistency, ErrorKind, Leader, LeaderChange, Session};

use crate::cli::Output;
use crate::exit;
use crate::lock_cmd::{Held, Interrupt, Opening, in_session, not_granted, wait_lost, within};
use crate::output::{StdoutClosed, emit, value};

/// How long resigning may take on the way out; past it closing the session ends the
/// leadership.
const CLEANUP: Duration = Duration::from_secs(3);

/// What `warden elect` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Print the leader.
    Leader(String),
    /// Print every change of leader.
    Observe(String),
    /// Run the command while leading.
    Run { name: String, how: How, command: Vec<String> },
}

/// The action of `warden elect TARGET [NAME] [-- COMMAND]`: TARGET is `leader` or
/// `observe`, or the election's name (a path, so the two never meet).
pub(crate) fn action(
    target: String,
    name: Option<String>,
    how: How,
    command: Vec<String>,
) -> Result<Action> {
    if target == "leader" || target == "observe" {
        let name =
            name.with_context(|| format!("give the election's name: warden elect {target} NAME"))?;
        if !how.value.is_empty() || how.timeout.is_some() || !command.is_empty() {
            bail!(
                "--value, --timeout and a command go with a campaign: warden elect NAME --value V -- COMMAND"
            );
        }
        return Ok(if target == "leader" { Action::Leader(name) } else { Action::Observe(name) });
    }
    if let Some(extra) = name {
        bail!(
            "unexpected {extra:?}: put the command after --, as in: warden elect {target} -- {extra}"
        );
    }
    if command.is_empty() {
        bail!(
            "nothing to run: give a command after --, as in: warden elect {target} -- ./serve.sh (or a subcommand: leader, observe)"
        );
    }
    Ok(Action::Run { name: target, how, command })
}

/// Runs one `warden elect` action.
pub(crate) async fn run_action(client: &Client, out: Output, action: Action) -> Result<ExitCode> {
    match action {
        Action::Leader(name) => leader(client, out, &name).await,
        Action::Observe(name) => observe(client, out, &name).await,
        Action::Run { name, how, command } => run(client, &name, how, &command).await,
    }
}

/// How to campaign.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct How {
    /// What the leader announces.
    pub(crate) value: Vec<u8>,
    /// Give up after this long, opening the session included.
    pub(crate) timeout: Option<Duration>,
    /// The session's ttl.
    pub(crate) ttl: Duration,
}

/// Runs `command` while leading the election `name`; returns the command's exit status
/// (3 if it did not lead in time, 4 if the leadership was lost, 130 on Ctrl-C). The
/// session is closed on every way out, so the candidacy never outlives warden.
pub(crate) async fn run(
    client: &Client,
    name: &str,
    how: How,
    command: &[String],
) -> Result<ExitCode> {
    if command.is_empty() {
        bail!(
            "nothing to run: give a command after --, as in: warden elect /services/primary -- ./serve.sh"
        );
    }
    let what = format!("the leadership of {name:?}");
    let opening = Opening { ttl: how.ttl, timeout: how.timeout, what: &what };
    in_session(client, opening, async |session, deadline, interrupted| {
        lead(client, session, name, &how, deadline, command, interrupted).await
    })
    .await
}

/// Campaigns in `session`, runs the command while leading, and resigns.
async fn lead(
    client: &Client,
    session: &Session,
    name: &str,
    how: &How,
    deadline: Option<Instant>,
    command: &[String],
    mut interrupted: Interrupt<'_>,
) -> Result<ExitCode> {
    let election = client.election(session, name);
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let campaigning = within(deadline, election.campaign(how.value.clone(), left));
    let campaigned = tokio::select! {
        campaigned = campaigning => campaigned,
        () = &mut interrupted => return Ok(ExitCode::from(exit::INTERRUPTED)),
    };
    let what = format!("the leadership of {name:?}");
    let leadership = match campaigned {
        Some(Ok(leadership)) => leadership,
        None => return Ok(not_granted(&what, how.timeout, "")),
        Some(Err(e)) if e.kind() == Some(ErrorKind::Timeout) => {
            return Ok(not_granted(&what, how.timeout, ""));
        }
        Some(Err(e)) => match wait_lost(&what, &e) {
            Some(code) => return Ok(code),
            None => return Err(e).with_context(|| format!("cannot campaign in {name:?}")),
        },
    };
    let held = Held {
        what: &what,
        unused: "the leadership was resigned unused",
        env: vec![
            ("WARDEN_FENCING_TOKEN", leadership.token().to_string()),
            ("WARDEN_ELECTION_NAME", name.to_owned()),
        ],
        lost: Box::pin(leadership.lost()),
        lost_reason: &|| leadership.lost_reason(),
    };
    let code = crate::lock_cmd::run_command(held, command, interrupted).await;
    let lost = leadership.is_lost();
    match tokio::time::timeout(CLEANUP, leadership.resign()).await {
        Ok(Ok(())) => {}
        // Ended already (lost, and said so): nothing to resign.
        Ok(Err(e)) if lost || e.kind() == Some(ErrorKind::HoldEnded) => {}
        Ok(Err(e)) => warn!(name, error = %e, "cannot resign; closing the session ends it"),
        Err(_) => warn!(name, "resigning timed out; closing the session ends it"),
    }
    code
}

/// A leader as JSON: `{"name","value"|"value_base64","token","session","identity"}`.
pub(crate) fn leader_json(leader: &Leader) -> Value {
    let mut object = json!({
        "name": leader.name,
        "token": leader.token,
        "session": leader.session_id,
        "identity": leader.identity,
    });
    value(&mut object, &leader.value);
    object
}

/// A leader as a line: `NAME VALUE token T session S [identity I]`.
fn leader_text(leader: &Leader) -> String {
    let identity = if leader.identity.is_empty() {
        String::new()
    } else {
        format!(" identity {}", leader.identity)
    };
    format!(
        "{} {} token {} session {}{identity}",
        leader.name,
        String::from_utf8_lossy(&leader.value),
        leader.token,
        leader.session_id
    )
}

/// Prints the leader of `name`; not found (exit 5) when nobody leads.
pub(crate) async fn leader(client: &Client, out: Output, name: &str) -> Result<ExitCode> {
    match client.election_leader(name, Consistency::Linearizable).await? {
        Some(leader) => {
            emit(out, &leader_text(&leader), &leader_json(&leader))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: the election {name:?} has no leader");
            }
            Ok(ExitCode::from(exit::NOT_FOUND))
        }
    }
}

/// A change of leader as JSON: `{"revision","leader": {...} | null}`.
pub(crate) fn change_json(change: &LeaderChange) -> Value {
    json!({
        "revision": change.revision,
        "leader": change.leader.as_ref().map(leader_json),
    })
}

/// A change of leader as a line: `REVISION leader ...` or `REVISION no leader`.
fn change_text(name: &str, change: &LeaderChange) -> String {
    match &change.leader {
        Some(leader) => format!("{} leader {}", change.revision, leader_text(leader)),
        None => format!("{} no leader {name}", change.revision),
    }
}

/// Prints every change of leader of `name`, from the current one, until Ctrl-C, or until
/// the reader of standard output is gone (`warden elect observe NAME | head -1` ends at
/// once, not at the next change).
pub(crate) async fn observe(client: &Client, out: Output, name: &str) -> Result<ExitCode> {
    let mut observer = client.observe_election(name, 0).await?;
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    let mut closed = std::pin::pin!(stdout_closed());
    loop {
        let change = tokio::select! {
            change = observer.next() => change?,
            _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
            () = &mut closed => return Err(StdoutClosed.into()),
        };
        emit(out, &change_text(name, &change), &change_json(&change))?;
    }
}

/// Resolves once standard output is a pipe whose reader has closed it (epoll reports an
/// error on a pipe's write end then); never for a file, or where that cannot be watched.
async fn stdout_closed() {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use tokio::io::Interest;
        use tokio::io::unix::AsyncFd;

        // A duplicate, so that watching it changes nothing about standard output itself.
        // `with_interest` is deprecated for types whose descriptor could change or close
        // under it; an `OwnedFd` owned by the `AsyncFd` cannot, and its successor is
        // `unsafe`, which the workspace denies.
        #[allow(deprecated)]
        let watched = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .and_then(|fd| AsyncFd::with_interest(fd, Interest::ERROR).ok());
        if let Some(fd) = watched
            && fd.ready(Interest::ERROR).await.is_ok()
        {
            return;
        }
    }
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use warden_client::Bytes;

    use super::*;

    fn leader(value: &'static [u8]) -> Leader {
        Leader {
            name: "/e".into(),
            value: Bytes::from_static(value),
            token: 42,
            session_id: 7,
            identity: "alice".into(),
            candidate: "/e/w-0000000003".into(),
        }
    }

    fn parse(target: &str, name: Option<&str>, value: &str, command: &[&str]) -> Result<Action> {
        let how =
            How { value: value.as_bytes().to_vec(), timeout: None, ttl: Duration::from_secs(10) };
        let command = command.iter().map(|s| (*s).to_owned()).collect();
        action(target.to_owned(), name.map(str::to_owned), how, command)
    }

    #[test]
    fn subcommands_and_a_campaign_are_told_apart() {
        assert_eq!(parse("leader", Some("/e"), "", &[]).ok(), Some(Action::Leader("/e".into())));
        assert_eq!(parse("observe", Some("/e"), "", &[]).ok(), Some(Action::Observe("/e".into())));
        match parse("/e", None, "addr", &["./serve.sh"]) {
            Ok(Action::Run { name, how, command }) => {
                assert_eq!((name.as_str(), how.value.as_slice()), ("/e", b"addr".as_slice()));
                assert_eq!(command, ["./serve.sh"]);
            }
            other => panic!("{other:?}"),
        }
        let error = |r: Result<Action>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error(parse("leader", None, "", &[])).contains("warden elect leader NAME"));
        assert!(error(parse("leader", Some("/e"), "v", &[])).contains("go with a campaign"));
        assert!(error(parse("observe", Some("/e"), "", &["x"])).contains("go with a campaign"));
        assert!(error(parse("/e", None, "", &[])).contains("nothing to run"));
        assert!(error(parse("/e", Some("x"), "", &[])).contains("after --"));
    }

    #[test]
    fn a_leader_prints_its_value_as_text_or_base64() {
        let utf8 = leader_json(&leader(b"10.0.0.7:5432"));
        assert_eq!(
            utf8,
            json!({"name": "/e", "value": "10.0.0.7:5432", "token": 42, "session": 7, "identity": "alice"})
        );
        let binary = leader_json(&leader(&[0xff, 0x00]));
        assert_eq!(binary["value_base64"], "/wA=");
        assert!(binary.get("value").is_none());
        assert_eq!(leader_text(&leader(b"v")), "/e v token 42 session 7 identity alice");
    }

    #[test]
    fn no_leader_is_a_change_with_a_null_leader() {
        let none = LeaderChange { revision: 9, leader: None };
        assert_eq!(change_json(&none), json!({"revision": 9, "leader": null}));
        assert_eq!(change_text("/e", &none), "9 no leader /e");
        let some = LeaderChange { revision: 10, leader: Some(leader(b"v")) };
        assert_eq!(change_json(&some)["leader"]["token"], 42);
        assert_eq!(change_text("/e", &some), "10 leader /e v token 42 session 7 identity alice");
    }
}
