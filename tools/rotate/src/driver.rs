//! The rotation loop: read where the kind is, begin (or pick up) the rotation, then read
//! its progress until the cluster switches, forcing it after `force_after` and giving up
//! at `timeout`.
//!
//! The cluster does the rotation; the loop only asks and reports, so it is safe to stop
//! at any point (Ctrl-C, a crash, a timeout) and to run again: every call it makes is
//! idempotent. It runs over [`Kind`], the cluster's side, so its decisions are tested
//! against a scripted kind with tokio's paused clock.

use std::time::Duration;

use tokio::time::Instant;
use warden_client::{ClientError, ResourceKind, ResourceStatus, Rotation};

/// The calls of a resource kind the loop makes.
pub trait Kind {
    /// Begins the rotation to `to`, or finds it under way, or done.
    fn rotate(&self, to: &str) -> impl Future<Output = Result<Rotation, ClientError>>;
    /// Revokes what is left in the old version.
    fn force(&self) -> impl Future<Output = Result<Rotation, ClientError>>;
    /// Where the kind is.
    fn status(&self) -> impl Future<Output = Result<ResourceStatus, ClientError>>;
}

impl Kind for ResourceKind {
    fn rotate(&self, to: &str) -> impl Future<Output = Result<Rotation, ClientError>> {
        ResourceKind::rotate(self, to)
    }

    fn force(&self) -> impl Future<Output = Result<Rotation, ClientError>> {
        ResourceKind::force(self)
    }

    fn status(&self) -> impl Future<Output = Result<ResourceStatus, ClientError>> {
        ResourceKind::status(self)
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The version to rotate to.
    pub to: String,
    /// Only print the plan.
    pub dry_run: bool,
    /// Give up after this long (the rotation stays begun).
    pub timeout: Option<Duration>,
    /// Force the switch after this long.
    pub force_after: Option<Duration>,
    /// How often to read the progress.
    pub poll: Duration,
}

/// What the loop reports, in order: a plan (dry run) or a start, progress, perhaps a
/// force, and an end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The dry run's plan: where the kind is, and where it would go.
    Plan {
        /// The kind as read.
        status: ResourceStatus,
        /// The target.
        to: String,
    },
    /// The rotation was begun, or found under way (`picked_up`).
    Begun {
        /// The kind as read before.
        status: ResourceStatus,
        /// The version rotated to.
        to: String,
        /// It was under way already (an earlier run began it).
        picked_up: bool,
    },
    /// The kind as it drains (reported when it changes).
    Progress(ResourceStatus),
    /// The switch was forced.
    Forced(Rotation),
    /// The kind is at the target.
    Done {
        /// The version rotated from (the target itself if the kind was there already).
        from: String,
        /// The target.
        to: String,
        /// Holds and waits revoked by a force.
        revoked: u64,
    },
    /// Given up at the timeout.
    TimedOut {
        /// The kind as last read.
        status: ResourceStatus,
        /// How long the loop ran.
        after: Duration,
    },
}

/// Takes the loop's events (prints them).
pub trait Report {
    /// One event; an error (standard output closed) stops the loop.
    fn event(&mut self, event: &Event) -> std::io::Result<()>;

    /// Whether every poll's progress is wanted (a terminal's rewritten line shows the hold
    /// times growing), rather than only changes of who holds and waits.
    fn every_poll(&self) -> bool {
        false
    }
}

/// How a run ended, short of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The dry run printed its plan.
    Planned,
    /// The kind is at the target.
    Done,
    /// The timeout ran out with holders left in the old version; the rotation stays begun.
    TimedOut,
}

/// Why a run failed.
#[derive(Debug)]
pub enum Error {
    /// The cluster refused a call, or could not be reached.
    Client(ClientError),
    /// The kind is rotating to another version (or moved past the target meanwhile).
    Refused(String),
    /// The report could not be written (standard output closed).
    Output(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Client(e) => e.fmt(f),
            Error::Refused(why) => f.write_str(why),
            Error::Output(e) => write!(f, "cannot write to standard output: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Client(e) => Some(e),
            Error::Output(e) => Some(e),
            Error::Refused(_) => None,
        }
    }
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Error {
        Error::Client(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Output(e)
    }
}

/// Refuses a rotation to `to` when the kind is rotating to another version.
fn check_target(status: &ResourceStatus, to: &str) -> Result<(), Error> {
    match &status.rotating_to {
        Some(going) if going != to && status.version != to => Err(Error::Refused(format!(
            "{} is rotating from {} to {going}, not to {to}: let that rotation finish (warden rotate {} --to {going}), or force it, first",
            status.kind, status.version, status.kind
        ))),
        _ => Ok(()),
    }
}

/// What is compared to tell whether progress changed: who is where, not for how long.
fn shape(s: &ResourceStatus) -> impl PartialEq + use<> {
    let who = |list: &[warden_client::ResourceHolder]| {
        list.iter().map(|h| (h.lock.clone(), h.entry.session_id, h.entry.token)).collect::<Vec<_>>()
    };
    (s.version.clone(), s.rotating_to.clone(), who(&s.current), who(&s.waiting))
}

/// Runs the rotation `options` asks for on `kind`, reporting to `report`.
pub async fn run(
    kind: &impl Kind,
    options: &Options,
    report: &mut impl Report,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    let to = options.to.as_str();
    let before = kind.status().await?;
    check_target(&before, to)?;
    if options.dry_run {
        report.event(&Event::Plan { status: before, to: to.to_owned() })?;
        return Ok(Outcome::Planned);
    }
    if before.is_at(to) {
        let from = to.to_owned();
        report.event(&Event::Done { from, to: to.to_owned(), revoked: 0 })?;
        return Ok(Outcome::Done);
    }
    let picked_up = before.rotating_to.as_deref() == Some(to);
    let from = before.version.clone();
    let begun = kind.rotate(to).await?;
    report.event(&Event::Begun { status: before, to: to.to_owned(), picked_up })?;
    let mut revoked = 0;
    let mut forced = false;
    let mut switched = begun.switched;
    let mut last = None;
    loop {
        if switched {
            report.event(&Event::Done { from, to: to.to_owned(), revoked })?;
            return Ok(Outcome::Done);
        }
        let status = kind.status().await?;
        if status.version == to {
            switched = true;
            continue;
        }
        if status.rotating_to.as_deref() != Some(to) {
            return Err(Error::Refused(format!(
                "{} is now at {}{} (another rotation or a re-initialization happened meanwhile); not rotating it to {to}",
                status.kind,
                status.version,
                status
                    .rotating_to
                    .as_deref()
                    .map(|t| format!(", rotating to {t}"))
                    .unwrap_or_default()
            )));
        }
        let now = shape(&status);
        if last.as_ref() != Some(&now) || report.every_poll() {
            report.event(&Event::Progress(status.clone()))?;
            last = Some(now);
        }
        let elapsed = started.elapsed();
        if options.force_after.is_some_and(|a| !forced && elapsed >= a) {
            let r = kind.force().await?;
            forced = true;
            revoked = r.revoked;
            switched = r.switched;
            report.event(&Event::Forced(r))?;
            continue;
        }
        if options.timeout.is_some_and(|t| elapsed >= t) {
            report.event(&Event::TimedOut { status, after: elapsed })?;
            return Ok(Outcome::TimedOut);
        }
        // Sleep a poll, or up to the next deadline, whichever comes first.
        let deadlines = [options.timeout, options.force_after.filter(|_| !forced)];
        let next = deadlines.into_iter().flatten().filter(|d| *d > elapsed).min();
        let nap = next.map_or(options.poll, |d| options.poll.min(d - elapsed));
        tokio::time::sleep(nap).await;
    }
}

#[cfg(test)]
#[path = "driver_test.rs"]
mod tests;
