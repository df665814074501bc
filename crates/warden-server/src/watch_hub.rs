//! The watch hub of one node: a bounded history of applied changes and the live watchers.
//!
//! The state machine hands the hub each command's events in log order. The hub keeps the
//! most recent ones (whole revisions, at most `max_history` events) and forwards each to
//! the watchers whose filter matches, through a bounded channel per watcher. Registering a
//! watcher and publishing happen under one lock, so a watcher gets its catch-up from the
//! history and then every later revision: none missing, none twice, in order.
//!
//! A watcher whose channel is full is cancelled with a reason instead of buffering without
//! bound; it can resume from the last revision it saw. The channels of all watchers
//! together are bounded too (`watch.max_buffered_bytes`, counted in
//! [`watch_backlog`](crate::watch_backlog)): past it, the watcher with the most waiting
//! for it is cancelled, one at a time until the rest fit, and its stream drops what was
//! queued for it at once, which is what frees the memory. A watcher that has only the
//! latest message waiting is keeping up and is never the one cancelled.
//!
//! The hub also hands each session's keepalive streams the holds taken from it (the events
//! the core's `recipe::lost_hold` names: a revoked or resigned holder's waiter gets a
//! marked last value), so the holder is told at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{Notify, mpsc};
use warden_core::queue_data::Mark;
use warden_core::{Event, EventKind, WatchFilter};
use warden_storage::EventSink;

use crate::watch_backlog::{Backlog, Counted, Total, Values};

/// What a watcher receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMessage {
    /// The matching events of one revision.
    Events(u64, Vec<Event>),
    /// Every event up to this revision has been sent.
    Progress(u64),
}

/// Why a watch could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The start revision is no longer in history; `oldest` is the oldest one that is.
    Compacted {
        /// The oldest revision a watch can start from.
        oldest: u64,
    },
    /// The member is shutting down.
    Closed,
}

/// What a session's keepalive stream is told: the lock holds revoked from the session
/// (lock path, token), and a wake-up when there are some.
#[derive(Default)]
pub struct SessionNotice {
    /// Wakes the stream.
    pub notify: Notify,
    /// Holds taken away (revoked, resigned) not yet reported: queue, token, why.
    pub revoked: Mutex<Vec<(String, u64, Mark)>>,
    /// An ephemeral node of the session was deleted: the session may have ended (closed
    /// by an operator, expired), which the stream checks and reports at once.
    pub maybe_ended: AtomicBool,
}

impl SessionNotice {
    /// Takes the holds taken away and not yet reported.
    pub fn take(&self) -> Vec<(String, u64, Mark)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether the session may have ended since the last call.
    pub fn take_maybe_ended(&self) -> bool {
        self.maybe_ended.swap(false, Ordering::AcqRel)
    }
}

/// A registered watcher, as its stream task holds it.
pub struct Registration {
    /// The hub's id for it.
    pub id: u64,
    /// A progress notice at `start - 1`, then revisions from the history, to send first.
    catch_up: VecDeque<Counted>,
    /// Later revisions and progress notices. Closed when the watcher is cancelled.
    receiver: mpsc::Receiver<Counted>,
    cancel: Arc<Cancel>,
}

/// How the hub tells a watcher's stream it is cancelled, and why.
#[derive(Default)]
struct Cancel {
    reason: Mutex<Option<String>>,
    notify: Notify,
}

impl Registration {
    /// The next message: the catch-up, then what the hub publishes; `None` once the
    /// watcher is cancelled (or the hub is gone) and what was queued has been taken.
    pub async fn recv(&mut self) -> Option<WatchMessage> {
        match self.catch_up.pop_front() {
            Some(message) => Some(message.take()),
            None => self.receiver.recv().await.map(Counted::take),
        }
    }

    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Option<WatchMessage> {
        match self.catch_up.pop_front() {
            Some(message) => Some(message.take()),
            None => self.receiver.try_recv().ok().map(Counted::take),
        }
    }

    /// Why the hub cancelled this watcher, if it did.
    pub fn cancel_reason(&self) -> Option<String> {
        self.cancel.reason.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What resolves once the hub has cancelled this watcher (held apart from the
    /// registration, so that a stream can wait on it while it receives).
    pub fn cancellation(&self) -> Cancellation {
        Cancellation(Arc::clone(&self.cancel))
    }

    /// Drops everything still queued for this watcher, freeing it now rather than as a
    /// slow client reads.
    pub fn discard(&mut self) {
        self.catch_up.clear();
        self.receiver.close();
        while self.receiver.try_recv().is_ok() {}
    }
}

/// See [`Registration::cancellation`].
pub struct Cancellation(Arc<Cancel>);

impl Cancellation {
    /// Resolves once the hub has cancelled the watcher.
    pub async fn cancelled(&self) {
        // The hub sets the reason, then notifies (`notify_one` keeps a permit if nobody
        // waits yet): checking first, then waiting, misses neither order.
        while self.0.reason.lock().unwrap_or_else(PoisonError::into_inner).is_none() {
            self.0.notify.notified().await;
        }
    }
}

struct Watcher {
    filter: WatchFilter,
    start: u64,
    progress: bool,
    sender: mpsc::Sender<Counted>,
    backlog: Arc<Backlog>,
    cancel: Arc<Cancel>,
}

struct Inner {
    /// Events of the revisions after `compacted`, in order.
    history: VecDeque<Event>,
    /// Revisions up to this one are no longer in the history.
    compacted: u64,
    /// The last revision published.
    current: u64,
    watchers: HashMap<u64, Watcher>,
    next_id: u64,
    /// Set at shutdown: no more watchers.
    closed: bool,
}

/// The hub. Shared by the state machine (as its event sink) and the watch service.
pub struct WatchHub {
    inner: Mutex<Inner>,
    /// The keepalive streams to tell when a session's lock hold is revoked.
    owners: Mutex<HashMap<u64, Vec<Weak<SessionNotice>>>>,
    max_history: usize,
    channel_capacity: usize,
    /// The bytes queued for all watchers together.
    buffered: Total,
    /// The most that may be queued for all watchers together before the slowest goes.
    max_buffered_bytes: usize,
    /// The backlogs of watchers cancelled but not yet drained by their streams: their
    /// bytes are on their way out, and must not make the hub cancel another watcher.
    leaving: Mutex<Vec<Arc<Backlog>>>,
}

fn matching(filter: &WatchFilter, events: &[Event]) -> Vec<Event> {
    events.iter().filter(|e| filter.matches(&e.path)).cloned().collect()
}

impl WatchHub {
    /// A hub whose state is at `revision` (nothing before it can be replayed), keeping up
    /// to `max_history` events, with `channel_capacity` messages buffered per watcher and
    /// `max_buffered_bytes` for all of them together.
    pub fn new(
        revision: u64,
        max_history: usize,
        channel_capacity: usize,
        max_buffered_bytes: usize,
    ) -> WatchHub {
        let inner = Inner {
            history: VecDeque::new(),
            compacted: revision,
            current: revision,
            watchers: HashMap::new(),
            next_id: 1,
            closed: false,
        };
        WatchHub {
            inner: Mutex::new(inner),
            owners: Mutex::new(HashMap::new()),
            max_history,
            channel_capacity: channel_capacity.max(1),
            buffered: Total::default(),
            max_buffered_bytes,
            leaving: Mutex::new(Vec::new()),
        }
    }

    /// The bytes queued for all watchers together.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A notice of the lock holds revoked from `session`; it stays registered while it is
    /// held.
    pub fn session_notice(&self, session: u64) -> Arc<SessionNotice> {
        let notice = Arc::new(SessionNotice::default());
        let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        owners.retain(|_, ns| {
            ns.retain(|n| n.strong_count() > 0);
            !ns.is_empty()
        });
        owners.entry(session).or_default().push(Arc::downgrade(&notice));
        notice
    }

    /// Hands the revoked holds among `events` to their sessions' notices.
    fn tell_owners(&self, events: &[Event]) {
        let owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        if owners.is_empty() {
            return;
        }
        for e in events.iter().filter(|e| e.kind == EventKind::Deleted) {
            let Some(notices) = owners.get(&e.stat.ephemeral_owner) else { continue };
            for notice in notices.iter().filter_map(Weak::upgrade) {
                notice.maybe_ended.store(true, Ordering::Release);
                notice.notify.notify_one();
            }
        }
        for e in events {
            let Some(notices) = owners.get(&e.stat.ephemeral_owner) else { continue };
            let Some((queue, token, mark)) = warden_core::recipe::lost_hold(e) else { continue };
            for notice in notices.iter().filter_map(Weak::upgrade) {
                let mut revoked = notice.revoked.lock().unwrap_or_else(PoisonError::into_inner);
                revoked.push((queue.to_owned(), token, mark));
                notice.notify.notify_one();
            }
        }
    }

    /// The last revision published.
    pub fn current(&self) -> u64 {
        self.lock().current
    }

    /// Registers a watcher of `filter` from revision `start` (0: from the next revision),
    /// sent progress notices if `progress`.
    pub fn register(
        &self,
        filter: WatchFilter,
        start: u64,
        progress: bool,
    ) -> Result<Registration, Refused> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(Refused::Closed);
        }
        let start = if start == 0 { inner.current + 1 } else { start };
        if start <= inner.compacted {
            return Err(Refused::Compacted { oldest: inner.compacted + 1 });
        }
        // The first message says where the watch stands: nothing before `start` is due.
        let mut catch_up = vec![WatchMessage::Progress(start - 1)];
        let mut batch: Option<(u64, Vec<Event>)> = None;
        for event in inner.history.iter().filter(|e| e.revision >= start && filter.matches(&e.path))
        {
            match &mut batch {
                Some((revision, events)) if *revision == event.revision => {
                    events.push(event.clone())
                }
                _ => {
                    if let Some((revision, events)) = batch.take() {
                        catch_up.push(WatchMessage::Events(revision, events));
                    }
                    batch = Some((event.revision, vec![event.clone()]));
                }
            }
        }
        if let Some((revision, events)) = batch {
            catch_up.push(WatchMessage::Events(revision, events));
        }
        let backlog = Arc::new(Backlog::default());
        // The history holds the catch-up's values; its records and paths are copies.
        let catch_up =
            catch_up.into_iter().map(|m| Counted::new(m, None, &backlog, &self.buffered)).collect();
        let (sender, receiver) = mpsc::channel(self.channel_capacity);
        let cancel = Arc::new(Cancel::default());
        let id = inner.next_id;
        inner.next_id += 1;
        let watcher =
            Watcher { filter, start, progress, sender, backlog, cancel: Arc::clone(&cancel) };
        inner.watchers.insert(id, watcher);
        Ok(Registration { id, catch_up, receiver, cancel })
    }

    /// Removes a watcher (its client went away).
    pub fn unregister(&self, id: u64) {
        self.lock().watchers.remove(&id);
    }

    /// How many watchers are registered.
    pub fn watchers(&self) -> usize {
        self.lock().watchers.len()
    }

    /// Sends every watcher that asked for them a progress notice at the current revision
    /// (skipped for a watcher whose channel is full: it has events to read first).
    pub fn notify_progress(&self) {
        let inner = self.lock();
        let current = inner.current;
        // A watcher that starts in the future has nothing to hear until then.
        for watcher in inner.watchers.values().filter(|w| w.progress && current + 1 >= w.start) {
            let message = WatchMessage::Progress(current);
            let counted = Counted::new(message, None, &watcher.backlog, &self.buffered);
            watcher.sender.try_send(counted).ok();
        }
    }

    /// Tells `watcher`'s stream it is cancelled, and why; the caller removes it.
    fn cancel(&self, watcher: &Watcher, reason: String) {
        *watcher.cancel.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        watcher.cancel.notify.notify_one();
        let mut leaving = self.leaving.lock().unwrap_or_else(PoisonError::into_inner);
        leaving.retain(|b| b.messages() > 0);
        leaving.push(Arc::clone(&watcher.backlog));
    }

    /// While all watchers together hold more than the limit (not counting those already
    /// leaving), cancels the one with the most waiting for it, among those with more
    /// than the latest message waiting.
    fn shed(&self, inner: &mut Inner, revision: u64) {
        let leaving: usize = {
            let mut leaving = self.leaving.lock().unwrap_or_else(PoisonError::into_inner);
            leaving.retain(|b| b.messages() > 0);
            leaving.iter().map(|b| b.bytes()).sum()
        };
        let mut held = self.buffered_bytes().saturating_sub(leaving);
        if held <= self.max_buffered_bytes {
            return;
        }
        let mut behind: Vec<(usize, u64)> = inner
            .watchers
            .iter()
            .filter(|(_, w)| w.backlog.messages() > 1)
            .map(|(id, w)| (w.backlog.bytes(), *id))
            .collect();
        behind.sort_unstable_by(|a, b| b.cmp(a));
        for (bytes, id) in behind {
            if held <= self.max_buffered_bytes {
                break;
            }
            let Some(watcher) = inner.watchers.remove(&id) else { continue };
            tracing::warn!(
                watcher = id,
                bytes,
                revision,
                held,
                "slowest watcher cancelled: watchers hold too much"
            );
            self.cancel(
                &watcher,
                format!(
                    "watcher too slow: {bytes} bytes of events were waiting for it at revision {revision}, the most of any watcher, while this member's watchers together held more than watch.max_buffered_bytes ({} bytes); resume from the last revision received + 1, or read faster",
                    self.max_buffered_bytes
                ),
            );
            held = held.saturating_sub(bytes);
        }
    }
}

impl EventSink for WatchHub {
    fn applied(&self, revision: u64, events: &[Event]) {
        let mut inner = self.lock();
        inner.current = revision;
        inner.history.extend(events.iter().cloned());
        while inner.history.len() > self.max_history {
            // Drop whole revisions from the front.
            let Some(oldest) = inner.history.front().map(|e| e.revision) else { break };
            while inner.history.front().is_some_and(|e| e.revision == oldest) {
                inner.history.pop_front();
            }
            inner.compacted = oldest;
        }
        let values = Values::new(events, &self.buffered);
        let mut slow = Vec::new();
        for (id, watcher) in &inner.watchers {
            if revision < watcher.start {
                continue;
            }
            let wanted = matching(&watcher.filter, events);
            if wanted.is_empty() {
                continue;
            }
            let message = WatchMessage::Events(revision, wanted);
            let counted =
                Counted::new(message, Some(Arc::clone(&values)), &watcher.backlog, &self.buffered);
            match watcher.sender.try_send(counted) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.cancel(
                        watcher,
                        format!(
                            "watcher too slow: {} undelivered messages at revision {revision}; resume from the last revision received + 1",
                            self.channel_capacity
                        ),
                    );
                    slow.push(*id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => slow.push(*id),
            }
        }
        drop(values);
        for id in slow {
            inner.watchers.remove(&id);
        }
        self.shed(&mut inner, revision);
        drop(inner);
        self.tell_owners(events);
    }

    fn reset(&self, revision: u64) {
        let mut inner = self.lock();
        self.cancel_locked(
            &mut inner,
            format!(
                "this member installed a snapshot at revision {revision}; its history before that is gone; re-read and watch again"
            ),
        );
        inner.history.clear();
        inner.compacted = revision;
        inner.current = revision;
    }
}

impl WatchHub {
    /// Cancels every watcher and refuses new ones: the member is shutting down.
    pub fn close(&self, reason: String) {
        let mut inner = self.lock();
        inner.closed = true;
        self.cancel_locked(&mut inner, reason);
    }

    fn cancel_locked(&self, inner: &mut Inner, reason: String) {
        for watcher in inner.watchers.values() {
            self.cancel(watcher, reason.clone());
        }
        inner.watchers.clear();
    }
}

#[cfg(test)]
#[path = "watch_hub_test.rs"]
mod tests;
