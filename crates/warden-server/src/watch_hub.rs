//! The watch hub of one node: a bounded history of applied changes and the live watchers.
//!
//! The state machine hands the hub each command's events in log order. The hub keeps the
//! most recent ones (whole revisions, at most `max_history` events) and forwards each to
//! the watchers whose filter matches, through a bounded channel per watcher. Registering a
//! watcher and publishing happen under one lock, so a watcher gets its catch-up from the
//! history and then every later revision: none missing, none twice, in order.
//!
//! A watcher whose channel is full is cancelled with a reason instead of buffering without
//! bound; it can resume from the last revision it saw.
//!
//! The hub also hands each session's keepalive streams the lock holds revoked from it (a
//! revoked holder's waiter gets a marked last value), so the holder is told at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{Notify, mpsc};
use warden_core::lock::WaiterInfo;
use warden_core::{Event, EventKind, WatchFilter};
use warden_storage::EventSink;

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
    /// Revoked holds not yet reported.
    pub revoked: Mutex<Vec<(String, u64)>>,
}

impl SessionNotice {
    /// Takes the revoked holds not yet reported.
    pub fn take(&self) -> Vec<(String, u64)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A registered watcher, as its stream task holds it.
pub struct Registration {
    /// The hub's id for it.
    pub id: u64,
    /// A progress notice at `start - 1`, then revisions from the history, to send first.
    pub catch_up: Vec<WatchMessage>,
    /// Later revisions and progress notices. Closed when the watcher is cancelled.
    pub receiver: mpsc::Receiver<WatchMessage>,
    /// Set before the channel is closed by the hub.
    pub cancel_reason: Arc<Mutex<Option<String>>>,
}

struct Watcher {
    filter: WatchFilter,
    start: u64,
    progress: bool,
    sender: mpsc::Sender<WatchMessage>,
    cancel_reason: Arc<Mutex<Option<String>>>,
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
}

fn matching(filter: &WatchFilter, events: &[Event]) -> Vec<Event> {
    events.iter().filter(|e| filter.matches(&e.path)).cloned().collect()
}

impl WatchHub {
    /// A hub whose state is at `revision` (nothing before it can be replayed), keeping up
    /// to `max_history` events, with `channel_capacity` messages buffered per watcher.
    pub fn new(revision: u64, max_history: usize, channel_capacity: usize) -> WatchHub {
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
        }
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
        for e in events.iter().filter(|e| e.kind == EventKind::Data) {
            let Some(notices) = owners.get(&e.stat.ephemeral_owner) else { continue };
            let Some(data) = e.data.as_deref().filter(|d| warden_core::lock::is_revoked(d)) else {
                continue;
            };
            let token = WaiterInfo::decode(data).and_then(|i| i.token);
            let (Some(token), Some(lock)) = (token, warden_core::path::parent(&e.path)) else {
                continue;
            };
            for notice in notices.iter().filter_map(Weak::upgrade) {
                let mut revoked = notice.revoked.lock().unwrap_or_else(PoisonError::into_inner);
                revoked.push((lock.to_owned(), token));
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
        let mut catch_up: Vec<WatchMessage> = vec![WatchMessage::Progress(start - 1)];
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
        let (sender, receiver) = mpsc::channel(self.channel_capacity);
        let cancel_reason = Arc::new(Mutex::new(None));
        let id = inner.next_id;
        inner.next_id += 1;
        inner.watchers.insert(
            id,
            Watcher { filter, start, progress, sender, cancel_reason: Arc::clone(&cancel_reason) },
        );
        Ok(Registration { id, catch_up, receiver, cancel_reason })
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
            watcher.sender.try_send(WatchMessage::Progress(current)).ok();
        }
    }

    fn cancel(watcher: &Watcher, reason: String) {
        *watcher.cancel_reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
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
        let mut slow = Vec::new();
        for (id, watcher) in &inner.watchers {
            if revision < watcher.start {
                continue;
            }
            let wanted = matching(&watcher.filter, events);
            if wanted.is_empty() {
                continue;
            }
            match watcher.sender.try_send(WatchMessage::Events(revision, wanted)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    Self::cancel(
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
        for id in slow {
            inner.watchers.remove(&id);
        }
        drop(inner);
        self.tell_owners(events);
    }

    fn reset(&self, revision: u64) {
        let mut inner = self.lock();
        Self::cancel_locked(
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
        Self::cancel_locked(&mut inner, reason);
    }

    fn cancel_locked(inner: &mut Inner, reason: String) {
        for watcher in inner.watchers.values() {
            Self::cancel(watcher, reason.clone());
        }
        inner.watchers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_core::{EventKind, Limits, Stat};

    fn event(revision: u64, path: &str) -> Event {
        Event {
            revision,
            kind: EventKind::Data,
            path: path.into(),
            stat: Stat::default(),
            data: None,
        }
    }

    fn prefix(p: &str) -> WatchFilter {
        WatchFilter::prefix(p, &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn revisions(messages: &[WatchMessage]) -> Vec<u64> {
        messages
            .iter()
            .filter_map(|m| match m {
                WatchMessage::Events(r, _) => Some(*r),
                WatchMessage::Progress(_) => None,
            })
            .collect()
    }

    #[test]
    fn catch_up_then_live_without_gap_or_duplicate() {
        let hub = WatchHub::new(0, 100, 16);
        hub.applied(1, &[event(1, "/a/x")]);
        hub.applied(2, &[event(2, "/b")]);
        hub.applied(3, &[event(3, "/a/y"), event(3, "/a")]);
        let mut reg = hub.register(prefix("/a"), 1, false).unwrap_or_else(|_| panic!("compacted"));
        assert_eq!(revisions(&reg.catch_up), [1, 3]);
        hub.applied(4, &[event(4, "/a/z")]);
        hub.applied(5, &[event(5, "/c")]);
        assert_eq!(
            reg.receiver.try_recv().ok(),
            Some(WatchMessage::Events(4, vec![event(4, "/a/z")]))
        );
        assert!(reg.receiver.try_recv().is_err());
    }

    #[test]
    fn start_zero_means_from_now_and_future_starts_wait() {
        let hub = WatchHub::new(10, 100, 16);
        let mut now = hub.register(prefix("/"), 0, true).unwrap_or_else(|_| panic!("compacted"));
        let mut future =
            hub.register(prefix("/"), 13, false).unwrap_or_else(|_| panic!("compacted"));
        for r in 11..=13 {
            hub.applied(r, &[event(r, "/k")]);
        }
        let got: Vec<_> = std::iter::from_fn(|| now.receiver.try_recv().ok()).collect();
        assert_eq!(revisions(&got), [11, 12, 13]);
        let got: Vec<_> = std::iter::from_fn(|| future.receiver.try_recv().ok()).collect();
        assert_eq!(revisions(&got), [13]);
    }

    #[test]
    fn history_is_bounded_by_whole_revisions() {
        let hub = WatchHub::new(0, 3, 16);
        hub.applied(1, &[event(1, "/a"), event(1, "/b")]);
        hub.applied(2, &[event(2, "/a"), event(2, "/b")]);
        assert_eq!(
            hub.register(prefix("/"), 1, false).err(),
            Some(Refused::Compacted { oldest: 2 })
        );
        let reg = hub.register(prefix("/"), 2, false).unwrap_or_else(|_| panic!("compacted"));
        assert_eq!(revisions(&reg.catch_up), [2]);
        // Exactly at the compaction revision: refused, with the oldest available.
        assert_eq!(
            hub.register(prefix("/"), 1, false).err(),
            Some(Refused::Compacted { oldest: 2 })
        );
    }

    #[test]
    fn a_slow_watcher_is_cancelled_with_a_reason() {
        let hub = WatchHub::new(0, 100, 2);
        let mut reg = hub.register(prefix("/"), 0, true).unwrap_or_else(|_| panic!("compacted"));
        for r in 1..=3 {
            hub.applied(r, &[event(r, "/k")]);
        }
        assert_eq!(hub.watchers(), 0);
        let reason = reg.cancel_reason.lock().ok().and_then(|r| r.clone()).unwrap_or_default();
        assert!(reason.contains("too slow"), "{reason}");
        let got: Vec<_> = std::iter::from_fn(|| reg.receiver.try_recv().ok()).collect();
        assert_eq!(revisions(&got), [1, 2], "what was buffered is still delivered");
    }

    #[test]
    fn progress_and_reset() {
        let hub = WatchHub::new(5, 100, 4);
        let mut reg = hub.register(prefix("/"), 0, true).unwrap_or_else(|_| panic!("compacted"));
        hub.notify_progress();
        assert_eq!(reg.receiver.try_recv().ok(), Some(WatchMessage::Progress(5)));
        hub.reset(50);
        assert_eq!(hub.watchers(), 0);
        assert_eq!(
            hub.register(prefix("/"), 40, false).err(),
            Some(Refused::Compacted { oldest: 51 })
        );
        assert_eq!(hub.current(), 50);
    }
}
