//! The audit log: one JSON line for every denial, every admin action and every lock grant,
//! expiry and revoke, in a file per member, rotated by size (`docs/audit.md`).
//!
//! Callers hand records to an [`Audit`] handle, which never blocks and never fails: a
//! record goes into a bounded queue, and one thread per member writes the queue to the
//! file, flushing whenever the queue runs empty (so a line is in the file a moment after
//! its event). The audit log must not stop or slow the member it watches, so:
//! - when the queue is full (the disk is slower than [`QUEUE`] records of backlog), the
//!   record is **dropped and counted** ([`Audit::dropped`]) with a warning, rather than
//!   making a request or the state machine wait;
//! - a write that fails (a full disk, a removed directory) is counted ([`Audit::failed`]),
//!   warned about once until a write succeeds again, and the record is lost; the file is
//!   reopened for the next one.
//!
//! Lock lines come from what the state machine applies ([`crate::lock_audit`]), on every
//! member, with the leader's time of the entry; denials and admin actions are written by
//! the member that decided or served them, with its own clock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use serde::Serialize;
use tracing::{info, warn};

use crate::config::AuditConfig;
use crate::shared::now_ms;

/// Records queued for the writer, at most; past it records are dropped and counted.
pub const QUEUE: usize = 8_192;

/// A warning is logged for the first dropped record and then every this many.
const WARN_EVERY: u64 = 1_000;

/// A handle on a member's audit log. Cheap to clone; every clone writes to the same file.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    /// Taken by [`Audit::close`]; the writer stops once it is gone.
    queue: Mutex<Option<SyncSender<Record>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    failed: AtomicU64,
    written: AtomicU64,
}

/// One audit record, before it is written as a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// When, in ms since the Unix epoch: the leader's time for lock lines, this member's
    /// clock for the others.
    pub(crate) time_ms: u64,
    /// What was done: the RPC for a denial, the action's name for the others.
    pub(crate) action: String,
    /// Whose doing it was (the caller, or the lock's holder); `None` when not known.
    pub(crate) identity: Option<String>,
    /// The path acted on.
    pub(crate) path: String,
    /// The revision the action made or was seen at, where known.
    pub(crate) revision: Option<u64>,
    /// The kind and what only that kind has.
    pub(crate) extra: Extra,
}

/// A record's kind (its `kind` field) and the fields only that kind has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub(crate) enum Extra {
    /// `kind: "denied"`: a request refused by the access rules.
    Denied {
        /// The permission it needed.
        permission: String,
        /// Why it was refused.
        reason: String,
    },
    /// `kind: "admin"`: an operator's action.
    Admin {
        /// What it did, in words.
        detail: String,
    },
    /// `kind: "lock"`: a lock grant, expiry or revoke, as applied.
    Lock {
        /// The holder's (or waiter's) session.
        session: u64,
        /// The fencing token of the hold; `None` for a wait that did not hold.
        token: Option<u64>,
    },
}

impl Extra {
    fn kind(&self) -> &'static str {
        match self {
            Extra::Denied { .. } => "denied",
            Extra::Admin { .. } => "admin",
            Extra::Lock { .. } => "lock",
        }
    }
}

/// The line written for a record.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    member: u64,
    kind: &'static str,
    action: &'a str,
    identity: Option<&'a str>,
    path: &'a str,
    revision: Option<u64>,
    #[serde(flatten)]
    extra: &'a Extra,
}

impl Record {
    /// The JSON line of this record written by `member`, with its newline.
    pub(crate) fn line(&self, member: u64) -> Result<Vec<u8>, serde_json::Error> {
        let mut line = serde_json::to_vec(&Line {
            time: rfc3339_ms(self.time_ms),
            member,
            kind: self.extra.kind(),
            action: &self.action,
            identity: self.identity.as_deref(),
            path: &self.path,
            revision: self.revision,
            extra: &self.extra,
        })?;
        line.push(b'\n');
        Ok(line)
    }
}

impl Audit {
    /// Starts the writer of `member`'s audit log at `file`, rotated as `config` says. If
    /// the writer thread cannot be started the member runs without an audit log, saying so.
    pub fn start(member: u64, file: PathBuf, config: &AuditConfig) -> Audit {
        let (queue, records) = std::sync::mpsc::sync_channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let out = RotatingFile::new(file.clone(), config.max_bytes, config.keep);
        let writer_counters = Arc::clone(&counters);
        let writer = std::thread::Builder::new()
            .name(format!("audit-{member}"))
            .spawn(move || write_all(member, records, out, &writer_counters));
        match writer {
            Ok(writer) => {
                info!(file = %file.display(), "audit log open");
                Audit::from_parts(Some(queue), Some(writer), counters)
            }
            Err(e) => {
                warn!(error = %e, file = %file.display(), "cannot start the audit log writer; this member runs without an audit log");
                Audit::from_parts(None, None, counters)
            }
        }
    }

    fn from_parts(
        queue: Option<SyncSender<Record>>,
        writer: Option<JoinHandle<()>>,
        counters: Arc<Counters>,
    ) -> Audit {
        Audit {
            inner: Arc::new(Inner {
                queue: Mutex::new(queue),
                writer: Mutex::new(writer),
                counters,
            }),
        }
    }

    /// A request refused: `identity` asked `rpc` on `path`, which needs `permission`, and
    /// was refused for `reason`.
    pub fn denied(&self, identity: &str, rpc: &str, permission: &str, path: &str, reason: &str) {
        self.send(Record {
            time_ms: now_ms(),
            action: rpc.to_owned(),
            identity: Some(identity.to_owned()),
            path: path.to_owned(),
            revision: None,
            extra: Extra::Denied { permission: permission.to_owned(), reason: reason.to_owned() },
        });
    }

    /// An admin action done: `identity` did `action` on `path`, making (or seen at)
    /// `revision`; `detail` says what it did.
    pub fn admin(
        &self,
        identity: &str,
        action: &str,
        path: &str,
        revision: Option<u64>,
        detail: &str,
    ) {
        self.send(Record {
            time_ms: now_ms(),
            action: action.to_owned(),
            identity: Some(identity.to_owned()),
            path: path.to_owned(),
            revision,
            extra: Extra::Admin { detail: detail.to_owned() },
        });
    }

    /// Queues a record; drops and counts it if the queue is full or closed. Never blocks.
    pub(crate) fn send(&self, record: Record) {
        let queue = self.inner.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let full = match queue.as_ref() {
            Some(q) => match q.try_send(record) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => true,
                Err(TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        drop(queue);
        let dropped = self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped % WARN_EVERY == 1 {
            let why = if full { "its queue is full" } else { "its writer is stopped" };
            warn!(dropped, reason = why, "audit records dropped");
        }
    }

    /// Records dropped so far because the queue was full or the writer stopped.
    pub fn dropped(&self) -> u64 {
        self.inner.counters.dropped.load(Ordering::Relaxed)
    }

    /// Write failures so far: each lost its record (or, for a flush, what was buffered).
    pub fn failed(&self) -> u64 {
        self.inner.counters.failed.load(Ordering::Relaxed)
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.inner.counters.written.load(Ordering::Relaxed)
    }

    /// Stops taking records, lets the writer write what is queued, and waits for it. Later
    /// records are dropped and counted.
    pub async fn close(&self) {
        self.inner.queue.lock().unwrap_or_else(PoisonError::into_inner).take();
        let writer = self.inner.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(writer) = writer {
            let joined = tokio::task::spawn_blocking(move || writer.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                warn!("the audit log writer ended abnormally; its last records may be lost");
            }
        }
    }
}

/// The writer thread: writes every record, flushing whenever the queue runs empty, until
/// every sender is gone.
fn write_all(member: u64, records: Receiver<Record>, mut out: RotatingFile, counters: &Counters) {
    let mut health = Health { failing: false, counters };
    while let Ok(first) = records.recv() {
        let mut next = Some(first);
        while let Some(record) = next {
            let written = record
                .line(member)
                .map_err(io::Error::other)
                .and_then(|line| out.write_line(&line));
            if written.is_ok() {
                counters.written.fetch_add(1, Ordering::Relaxed);
            }
            health.note(written, &out.path);
            next = records.try_recv().ok();
        }
        health.note(out.flush(), &out.path);
    }
    health.note(out.flush(), &out.path);
}

/// Whether the writer is failing: it warns once when writes start failing, and says when
/// they work again.
struct Health<'a> {
    failing: bool,
    counters: &'a Counters,
}

impl Health<'_> {
    fn note(&mut self, result: io::Result<()>, path: &Path) {
        match result {
            Ok(()) if std::mem::take(&mut self.failing) => {
                info!(file = %path.display(), "the audit log is writable again");
            }
            Ok(()) => {}
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut self.failing, true) {
                    warn!(error = %e, file = %path.display(), "cannot write the audit log; records are lost until it is writable again");
                }
            }
        }
    }
}

/// A file of lines that is rotated when it would pass `max_bytes`.
pub(crate) struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    /// The open file and its size; `None` until first written, and after a failure.
    out: Option<(BufWriter<File>, u64)>,
}

impl RotatingFile {
    /// The file at `path` (appended to if it exists), rotated past `max_bytes`, keeping
    /// `keep` rotated files.
    pub(crate) fn new(path: PathBuf, max_bytes: u64, keep: usize) -> RotatingFile {
        RotatingFile { path, max_bytes, keep, out: None }
    }

    /// Appends one line, rotating first if it would take the file past `max_bytes` (a
    /// line longer than that gets a file of its own). After a failure the file is
    /// reopened by the next write.
    pub(crate) fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let result = self.try_write_line(line);
        if result.is_err() {
            self.out = None;
        }
        result
    }

    fn try_write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        let (mut file, mut size) = match self.out.take() {
            Some(out) => out,
            None => self.open()?,
        };
        if size > 0 && size + len > self.max_bytes {
            self.out = Some((file, size));
            self.rotate()?;
            (file, size) = self.open()?;
        }
        file.write_all(line)?;
        self.out = Some((file, size + len));
        Ok(())
    }

    /// Writes out what is buffered.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        let result = match &mut self.out {
            Some((file, _)) => file.flush(),
            None => Ok(()),
        };
        if result.is_err() {
            self.out = None;
        }
        result
    }

    fn open(&self) -> io::Result<(BufWriter<File>, u64)> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        let size = file.metadata()?.len();
        Ok((BufWriter::new(file), size))
    }

    /// Closes the file and shifts the rotated ones: `.N-1` to `.N` (dropping the oldest),
    /// ..., the file to `.1`. The next write opens a new file.
    fn rotate(&mut self) -> io::Result<()> {
        if let Some((mut file, _)) = self.out.take() {
            file.flush()?;
        }
        if self.keep == 0 {
            return ignore_missing(fs::remove_file(&self.path));
        }
        for n in (1..self.keep).rev() {
            ignore_missing(fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)))?;
        }
        ignore_missing(fs::rename(&self.path, rotated(&self.path, 1)))
    }
}

/// The `n`th rotated file of `path`: `path.n`.
pub(crate) fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `ms` since the Unix epoch as an RFC 3339 UTC time with milliseconds,
/// `2026-11-26T17:00:46.123Z`.
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    let (secs, millis) = (ms / 1_000, ms % 1_000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rem / 3_600, rem % 3_600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

#[cfg(test)]
#[path = "audit_test.rs"]
mod tests;
