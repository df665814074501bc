//! What the watchers of a member hold in memory, counted: the messages queued for each
//! watcher and not yet taken by its stream.
//!
//! One slow watcher is bounded by its queue's length (`watch.buffer`); thousands of them
//! are not, as each holds its own copy of every event record and path (2,000 watchers of a
//! busy prefix on one follower grew it to about 1 GB). So every queued message is counted,
//! in a total for the member and in its watcher's backlog, and uncounted when it is taken
//! or dropped (a [`Counted`] does both, so nothing can be counted twice or forgotten).
//!
//! Values are `Bytes` shared by every watcher of a revision (and by the history), not
//! copied per watcher: a revision's values are counted once, while any watcher still has
//! the revision queued ([`Values`]), so many watchers one message behind a large value are
//! not mistaken for many large backlogs. Catch-up messages count their records and paths;
//! their values are the history's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use warden_core::Event;

use crate::watch_hub::WatchMessage;

/// The member's total, in bytes: shared by the hub and every queued message.
pub(crate) type Total = Arc<AtomicUsize>;

/// One watcher's share: what is queued for it and not yet taken.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// Bytes queued, its values included (this watcher's view, used to find the slowest).
    bytes: AtomicUsize,
    /// Messages queued.
    messages: AtomicUsize,
}

impl Backlog {
    /// Bytes queued for this watcher, values included.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Messages queued for this watcher.
    pub(crate) fn messages(&self) -> usize {
        self.messages.load(Ordering::Relaxed)
    }
}

/// The values of one revision, counted in the total while any watcher has it queued.
#[derive(Debug)]
pub(crate) struct Values {
    bytes: usize,
    total: Total,
}

impl Values {
    /// Counts the values of `events` (one revision's) in `total`.
    pub(crate) fn new(events: &[Event], total: &Total) -> Arc<Values> {
        let bytes = events.iter().map(|e| e.data.as_ref().map_or(0, |d| d.len())).sum();
        total.fetch_add(bytes, Ordering::Relaxed);
        Arc::new(Values { bytes, total: Arc::clone(total) })
    }
}

impl Drop for Values {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A message queued for a watcher, counted until it is taken or dropped.
#[derive(Debug)]
pub(crate) struct Counted {
    message: WatchMessage,
    /// The bytes of the records and paths this message owns.
    owned: usize,
    /// The revision's values, shared with the other watchers' messages of it.
    values: Option<Arc<Values>>,
    backlog: Arc<Backlog>,
    total: Total,
}

/// The memory a message owns: itself, and each event's record and path.
fn owned(message: &WatchMessage) -> usize {
    let events = match message {
        WatchMessage::Events(_, events) => events.as_slice(),
        WatchMessage::Progress(_) => &[],
    };
    size_of::<Counted>()
        + events.iter().map(|e| size_of::<Event>() + e.path.capacity()).sum::<usize>()
}

impl Counted {
    /// Counts `message` for `backlog` and in `total`; `values` are those of its revision.
    pub(crate) fn new(
        message: WatchMessage,
        values: Option<Arc<Values>>,
        backlog: &Arc<Backlog>,
        total: &Total,
    ) -> Counted {
        let owned = owned(&message);
        let shared = values.as_ref().map_or(0, |v| v.bytes);
        backlog.bytes.fetch_add(owned + shared, Ordering::Relaxed);
        backlog.messages.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(owned, Ordering::Relaxed);
        Counted { message, owned, values, backlog: Arc::clone(backlog), total: Arc::clone(total) }
    }

    /// The message, no longer counted.
    pub(crate) fn take(mut self) -> WatchMessage {
        std::mem::replace(&mut self.message, WatchMessage::Progress(0))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let shared = self.values.as_ref().map_or(0, |v| v.bytes);
        self.backlog.bytes.fetch_sub(self.owned + shared, Ordering::Relaxed);
        self.backlog.messages.fetch_sub(1, Ordering::Relaxed);
        self.total.fetch_sub(self.owned, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_core::{EventKind, Stat};

    fn event(path: &str, value: usize) -> Event {
        Event {
            revision: 1,
            kind: EventKind::Data,
            path: path.into(),
            stat: Stat::default(),
            data: Some(vec![0; value].into()),
        }
    }

    #[test]
    fn values_are_counted_once_and_everything_is_uncounted_when_taken_or_dropped() {
        let total = Total::default();
        let (a, b) = (Arc::new(Backlog::default()), Arc::new(Backlog::default()));
        let events = vec![event("/k", 1_000)];
        let values = Values::new(&events, &total);
        let message = || WatchMessage::Events(1, events.clone());
        let first = Counted::new(message(), Some(Arc::clone(&values)), &a, &total);
        let second = Counted::new(message(), Some(Arc::clone(&values)), &b, &total);
        drop(values);
        let owned = owned(&message());
        assert_eq!(total.load(Ordering::Relaxed), 1_000 + 2 * owned, "the value once");
        assert_eq!((a.bytes(), a.messages()), (1_000 + owned, 1), "each sees its own");
        assert!(matches!(first.take(), WatchMessage::Events(1, _)));
        assert_eq!((a.bytes(), a.messages()), (0, 0));
        assert_eq!(total.load(Ordering::Relaxed), 1_000 + owned, "b still holds the value");
        drop(second);
        assert_eq!(total.load(Ordering::Relaxed), 0);
        assert_eq!(b.bytes(), 0);
    }
}
