//! What one held lock costs in the core's in-memory state, apart from everything else a
//! member holds (fjall's memtables and caches, the watch history, allocator slack), and
//! what it costs in a snapshot: `cargo run --release -p warden-bench --example
//! core_memory [LOCKS]`. The held-locks workload reports a member's whole RSS per lock;
//! this splits out the part that grows with the state itself.
//!
//! It counts live heap bytes with a global allocator wrapper around the system allocator,
//! which is why it is an example with `unsafe` (the workspace denies it elsewhere).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use warden_core::queue::{LockKind, WaitMode};
use warden_core::{ApplyContext, Command, CreateMode, Limits, Output, Request, State};

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's obligations for `alloc` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SESSIONS: usize = 1_000;

fn main() {
    let locks: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let mut state = State::new(Limits::default());
    let mut index = 0;
    let mut apply = |state: &mut State, request: Request| {
        index += 1;
        let ctx = ApplyContext { index, time_ms: 1_000, term: 1 };
        let applied = state.apply(request, &ctx);
        state.take_changes();
        applied.response.outcome
    };
    for path in ["/bench", "/bench/held"] {
        let create =
            Command::Create { path: path.into(), data: "".into(), mode: CreateMode::PERSISTENT };
        if let Err(e) = apply(&mut state, Request::new(create)) {
            panic!("creating {path}: {e}");
        }
    }
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|_| {
            let open = Command::OpenSession { ttl_ms: 60_000, identity: String::new() };
            match apply(&mut state, Request::new(open)) {
                Ok(Output::SessionOpened { id, .. }) => id,
                other => panic!("opening a session: {other:?}"),
            }
        })
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    for n in 0..locks {
        let acquire = Command::Acquire {
            path: format!("/bench/held/l{n}"),
            kind: LockKind::Mutex,
            mode: WaitMode::Exclusive,
            delay_ms: 0,
            options: Default::default(),
        };
        if let Err(e) = apply(&mut state, Request::in_session(sessions[n % SESSIONS], acquire)) {
            panic!("acquiring lock {n}: {e}");
        }
    }
    let held = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    let snapshot = state.snapshot().map(|bytes| bytes.len()).unwrap_or_default();
    report(format!(
        "{locks} locks held by {SESSIONS} sessions: {} nodes; in memory {} bytes per lock, \
         in a snapshot {} bytes per lock",
        state.tree().len(),
        held / locks.max(1),
        snapshot / locks.max(1)
    ));
}

/// The figure is this program's output.
#[allow(clippy::print_stdout)]
fn report(line: String) {
    println!("{line}");
}
