use super::*;
use warden_core::{EventKind, Limits, Stat};

fn event(revision: u64, path: &str) -> Event {
    Event { revision, kind: EventKind::Data, path: path.into(), stat: Stat::default(), data: None }
}

fn prefix(p: &str) -> WatchFilter {
    WatchFilter::prefix(p, &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// Everything queued for `reg` now, the catch-up first.
fn drain(reg: &mut Registration) -> Vec<WatchMessage> {
    std::iter::from_fn(|| reg.try_recv()).collect()
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
    let hub = WatchHub::new(0, 100, 16, usize::MAX);
    hub.applied(1, &[event(1, "/a/x")]);
    hub.applied(2, &[event(2, "/b")]);
    hub.applied(3, &[event(3, "/a/y"), event(3, "/a")]);
    let mut reg = hub.register(prefix("/a"), 1, false).unwrap_or_else(|_| panic!("compacted"));
    assert_eq!(revisions(&drain(&mut reg)), [1, 3]);
    hub.applied(4, &[event(4, "/a/z")]);
    hub.applied(5, &[event(5, "/c")]);
    assert_eq!(reg.try_recv(), Some(WatchMessage::Events(4, vec![event(4, "/a/z")])));
    assert!(reg.try_recv().is_none());
}

#[test]
fn start_zero_means_from_now_and_future_starts_wait() {
    let hub = WatchHub::new(10, 100, 16, usize::MAX);
    let mut now = hub.register(prefix("/"), 0, true).unwrap_or_else(|_| panic!("compacted"));
    let mut future = hub.register(prefix("/"), 13, false).unwrap_or_else(|_| panic!("compacted"));
    for r in 11..=13 {
        hub.applied(r, &[event(r, "/k")]);
    }
    let got = drain(&mut now);
    assert_eq!(revisions(&got), [11, 12, 13]);
    let got = drain(&mut future);
    assert_eq!(revisions(&got), [13]);
}

#[test]
fn history_is_bounded_by_whole_revisions() {
    let hub = WatchHub::new(0, 3, 16, usize::MAX);
    hub.applied(1, &[event(1, "/a"), event(1, "/b")]);
    hub.applied(2, &[event(2, "/a"), event(2, "/b")]);
    assert_eq!(hub.register(prefix("/"), 1, false).err(), Some(Refused::Compacted { oldest: 2 }));
    let mut reg = hub.register(prefix("/"), 2, false).unwrap_or_else(|_| panic!("compacted"));
    assert_eq!(revisions(&drain(&mut reg)), [2]);
    // Exactly at the compaction revision: refused, with the oldest available.
    assert_eq!(hub.register(prefix("/"), 1, false).err(), Some(Refused::Compacted { oldest: 2 }));
}

#[test]
fn a_slow_watcher_is_cancelled_with_a_reason() {
    let hub = WatchHub::new(0, 100, 2, usize::MAX);
    let mut reg = hub.register(prefix("/"), 0, true).unwrap_or_else(|_| panic!("compacted"));
    for r in 1..=3 {
        hub.applied(r, &[event(r, "/k")]);
    }
    assert_eq!(hub.watchers(), 0);
    let reason = reg.cancel_reason().unwrap_or_default();
    assert!(reason.contains("too slow"), "{reason}");
    let got = drain(&mut reg);
    assert_eq!(revisions(&got), [1, 2], "what was buffered is still delivered");
}

#[test]
fn progress_and_reset() {
    let hub = WatchHub::new(5, 100, 4, usize::MAX);
    let mut reg = hub.register(prefix("/"), 0, true).unwrap_or_else(|_| panic!("compacted"));
    assert_eq!(reg.try_recv(), Some(WatchMessage::Progress(5)), "the start notice");
    hub.notify_progress();
    assert_eq!(reg.try_recv(), Some(WatchMessage::Progress(5)));
    hub.reset(50);
    assert_eq!(hub.watchers(), 0);
    assert_eq!(hub.register(prefix("/"), 40, false).err(), Some(Refused::Compacted { oldest: 51 }));
    assert_eq!(hub.current(), 50);
}

fn registered(hub: &WatchHub, path: &str) -> Registration {
    let mut reg = hub.register(prefix(path), 0, false).unwrap_or_else(|_| panic!("refused"));
    drain(&mut reg);
    reg
}

/// The bytes one event on `path`, queued for one watcher, counts for.
fn unit(path: &str) -> usize {
    let probe = WatchHub::new(0, 100, 100, usize::MAX);
    let _reg = registered(&probe, "/");
    probe.applied(1, &[event(1, path)]);
    probe.buffered_bytes()
}

#[test]
fn past_the_byte_limit_the_watcher_furthest_behind_is_cancelled_and_its_bytes_freed() {
    let unit = unit("/a/k");
    let hub = WatchHub::new(0, 100, 100, 8 * unit);
    let mut fast = registered(&hub, "/");
    let mut slower = registered(&hub, "/");
    let mut slow = registered(&hub, "/a");
    for r in 1..=6 {
        // /a/k for all three, /b/k for `fast` and `slower` only.
        let path = if r % 2 == 1 { "/a/k" } else { "/b/k" };
        hub.applied(r, &[event(r, path)]);
        drain(&mut fast);
    }
    // Held after the sixth: 6 messages for `slower`, 3 for `slow`: over the 8 allowed.
    assert_eq!(hub.watchers(), 2, "one watcher cancelled");
    let reason = slower.cancel_reason().unwrap_or_default();
    assert!(reason.contains("watch.max_buffered_bytes"), "{reason}");
    assert!(slow.cancel_reason().is_none() && fast.cancel_reason().is_none());
    // Its queue is dropped by its stream, which frees the bytes; until then they are
    // known to be leaving and cancel nobody else.
    hub.applied(7, &[event(7, "/b/k")]);
    drain(&mut fast);
    assert_eq!(hub.watchers(), 2);
    slower.discard();
    assert_eq!(hub.buffered_bytes(), 3 * unit, "what `slow` holds");
    assert_eq!(revisions(&drain(&mut slow)), [1, 3, 5]);
    assert_eq!(hub.buffered_bytes(), 0);
}

#[test]
fn a_watcher_with_only_the_latest_message_waiting_is_never_cancelled() {
    let hub = WatchHub::new(0, 100, 100, 1);
    let mut watchers: Vec<_> = (0..5).map(|_| registered(&hub, "/")).collect();
    for r in 1..=20 {
        hub.applied(r, &[event(r, "/k")]);
        assert_eq!(hub.watchers(), 5, "a watcher keeping up was cancelled at {r}");
        for w in &mut watchers {
            assert_eq!(revisions(&drain(w)), [r]);
        }
    }
}

#[test]
fn a_revisions_values_count_once_however_many_watch_it() {
    let hub = WatchHub::new(0, 100, 100, usize::MAX);
    let mut watchers: Vec<_> = (0..50).map(|_| registered(&hub, "/")).collect();
    let mut big = event(1, "/k");
    big.data = Some(vec![0; 1 << 20].into());
    hub.applied(1, &[big]);
    let held = hub.buffered_bytes();
    assert!((1 << 20..2 << 20).contains(&held), "{held} bytes for a 1 MiB value and 50 records");
    for w in &mut watchers {
        drain(w);
    }
    assert_eq!(hub.buffered_bytes(), 0);
}
