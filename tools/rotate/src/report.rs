//! Printing the loop's events: text for people (on a terminal, the progress is one line
//! rewritten in place) or one JSON object per line for programs.
//!
//! Every JSON line has `event` (`plan`, `begun`, `progress`, `forced`, `done`, `timeout`)
//! and `kind`; the ones that describe the kind carry `version`, `rotating_to`, `holders`
//! (holders and waiters left in the current version, each with `id`, `lock`, `session`,
//! `identity`, `token` (null for a waiter), `since_ms` and `age_ms`) and `waiting` (the
//! acquisitions queued for the new version, the same fields).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use warden_client::{ResourceHolder, ResourceStatus};

use crate::driver::{Event, Report};

/// How many holders a text line names before "and N more".
const NAMED: usize = 3;

/// Prints events to `out`.
pub struct Printer<W: Write> {
    out: W,
    json: bool,
    terminal: bool,
    /// A progress line is on screen, not ended by a newline (terminal only).
    line_open: bool,
    /// The clock for hold ages, ms since the Unix epoch (the leader stamps `since_ms`
    /// with its own; the two may differ by the clocks' skew).
    now_ms: fn() -> u64,
}

fn wall_clock_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

impl<W: Write> Printer<W> {
    /// A printer of JSON lines (`json`) or text, rewriting the progress line in place if
    /// `terminal`.
    pub fn new(out: W, json: bool, terminal: bool) -> Printer<W> {
        Printer { out, json, terminal: terminal && !json, line_open: false, now_ms: wall_clock_ms }
    }

    #[cfg(test)]
    fn with_clock(mut self, now_ms: fn() -> u64) -> Printer<W> {
        self.now_ms = now_ms;
        self
    }

    /// What was written (for tests).
    #[cfg(test)]
    fn into_inner(self) -> W {
        self.out
    }

    fn holder(&self, h: &ResourceHolder) -> Value {
        let e = &h.entry;
        json!({
            "id": h.id, "lock": h.lock, "session": e.session_id, "identity": e.identity,
            "token": e.token, "since_ms": e.since_ms,
            "age_ms": (self.now_ms)().saturating_sub(e.since_ms),
        })
    }

    fn state(&self, event: &str, s: &ResourceStatus) -> Value {
        json!({
            "event": event, "kind": s.kind, "version": s.version, "rotating_to": s.rotating_to,
            "holders": s.current.iter().map(|h| self.holder(h)).collect::<Vec<_>>(),
            "waiting": s.waiting.iter().map(|h| self.holder(h)).collect::<Vec<_>>(),
        })
    }

    fn object(&self, event: &Event) -> Value {
        match event {
            Event::Plan { status, to } => {
                let mut o = self.state("plan", status);
                o["to"] = json!(to);
                o["nothing_to_do"] = json!(status.is_at(to));
                o
            }
            Event::Begun { status, to, picked_up } => json!({
                "event": "begun", "kind": status.kind, "from": status.version, "to": to,
                "picked_up": picked_up,
            }),
            Event::Progress(status) => self.state("progress", status),
            Event::Forced(r) => json!({
                "event": "forced", "from": r.from, "to": r.to, "revoked": r.revoked,
                "switched": r.switched,
            }),
            Event::Done { from, to, revoked } => {
                json!({ "event": "done", "from": from, "to": to, "revoked": revoked })
            }
            Event::TimedOut { status, after } => {
                let mut o = self.state("timeout", status);
                o["after_ms"] = json!(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
                o
            }
        }
    }

    /// One holder or waiter, for people: `/orders/v1/42 session 7 (alice) holds 3.2s`.
    fn line_of(&self, h: &ResourceHolder) -> String {
        let e = &h.entry;
        let who = if e.identity.is_empty() { String::new() } else { format!(" ({})", e.identity) };
        let what = if e.token.is_some() { "holds" } else { "waits" };
        let age = Duration::from_millis((self.now_ms)().saturating_sub(e.since_ms));
        format!("{} session {}{who} {what} {:.1}s", h.lock, e.session_id, age.as_secs_f64())
    }

    /// The progress of a draining kind on one line.
    fn progress_line(&self, s: &ResourceStatus) -> String {
        let holders = s.current.iter().filter(|h| h.entry.token.is_some()).count();
        let waiters = s.current.len() - holders;
        let to = s.rotating_to.as_deref().unwrap_or("?");
        let mut line = format!(
            "{} {} -> {to}: {holders} holder(s) and {waiters} waiter(s) left on {}, {} acquisition(s) waiting for {to}",
            s.kind,
            s.version,
            s.version,
            s.waiting.len()
        );
        if !s.current.is_empty() {
            let named: Vec<_> = s.current.iter().take(NAMED).map(|h| self.line_of(h)).collect();
            line.push_str(": ");
            line.push_str(&named.join(", "));
            if s.current.len() > NAMED {
                line.push_str(&format!(" and {} more", s.current.len() - NAMED));
            }
        }
        line
    }

    fn text(&self, event: &Event) -> String {
        match event {
            Event::Plan { status, to } if status.is_at(to) => {
                format!("plan: {} is at {to} already: nothing to do", status.kind)
            }
            Event::Plan { status, to } => {
                let under_way = if status.rotating_to.is_some() {
                    " (under way: a run picks it up)"
                } else {
                    ""
                };
                let mut lines = vec![
                    format!(
                        "plan: rotate {} from {} to {to}{under_way}; dry run, nothing changed",
                        status.kind, status.version
                    ),
                    format!(
                        "  to drain from {}: {} holder(s) and waiter(s){}",
                        status.version,
                        status.current.len(),
                        if status.current.is_empty() { " (the switch is immediate)" } else { "" }
                    ),
                ];
                lines.extend(status.current.iter().map(|h| format!("    {}", self.line_of(h))));
                lines.push(format!("  queued for {to}: {}", status.waiting.len()));
                lines.extend(status.waiting.iter().map(|h| format!("    {}", self.line_of(h))));
                lines.join("\n")
            }
            Event::Begun { status, to, picked_up: true } => format!(
                "picking up the rotation of {} from {} to {to}",
                status.kind, status.version
            ),
            Event::Begun { status, to, picked_up: false } => {
                format!("rotating {} from {} to {to}", status.kind, status.version)
            }
            Event::Progress(s) => self.progress_line(s),
            Event::Forced(r) => format!(
                "forced: revoked {} hold(s) and wait(s) left on {}; the switch follows their lock-delays",
                r.revoked, r.from
            ),
            Event::Done { from, to, .. } if from == to => format!("at {to} already: nothing to do"),
            Event::Done { from, to, revoked } => {
                let forced = if *revoked > 0 {
                    format!(" (forced: {revoked} revoked)")
                } else {
                    String::new()
                };
                format!("rotated from {from} to {to}{forced}; the {from} locks are gone")
            }
            Event::TimedOut { status, after } => {
                let mut lines = vec![format!(
                    "timed out after {:.1}s with {} holder(s) and waiter(s) left on {}; the rotation stays begun: run again to pick it up",
                    after.as_secs_f64(),
                    status.current.len(),
                    status.version
                )];
                lines.extend(status.current.iter().map(|h| format!("  {}", self.line_of(h))));
                lines.join("\n")
            }
        }
    }
}

impl<W: Write> Report for Printer<W> {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        if self.json {
            let object = self.object(event);
            writeln!(self.out, "{object}")?;
        } else if self.terminal && matches!(event, Event::Progress(_)) {
            // Back to the line's start, clear it, write it again without a newline.
            let line = self.progress_line(match event {
                Event::Progress(s) => s,
                _ => return Ok(()),
            });
            write!(self.out, "\r\x1b[2K{line}")?;
            self.line_open = true;
        } else {
            if self.line_open {
                writeln!(self.out)?;
                self.line_open = false;
            }
            let text = self.text(event);
            writeln!(self.out, "{text}")?;
        }
        self.out.flush()
    }

    fn every_poll(&self) -> bool {
        self.terminal
    }
}

#[cfg(test)]
#[path = "report_test.rs"]
mod tests;
