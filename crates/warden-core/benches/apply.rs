//! Apply throughput of the core on a namespace of 1,000,000 nodes, and memory per node.
//!
//! `cargo bench -p warden-core` prints criterion's per-operation times for create, set,
//! delete and the expiry of a session owning 1,000 ephemeral nodes, then the heap bytes per
//! node, counted by a global allocator wrapper (exact, unlike RSS).

#![allow(unsafe_code, clippy::print_stderr, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use warden_core::{ApplyContext, Command, CreateMode, Output, Request, State};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const DIRS: usize = 1_000;
const PER_DIR: usize = 1_000;
const VALUE: &[u8] = &[b'x'; 64];

/// A state plus the next log index to apply at.
struct Bench {
    state: State,
    index: u64,
}

impl Bench {
    fn apply(&mut self, request: Request) -> Output {
        self.index += 1;
        let ctx = ApplyContext { index: self.index, time_ms: self.index, term: 1 };
        match self.state.apply(request, &ctx).response.outcome {
            Ok(output) => output,
            Err(e) => panic!("bench command failed: {e}"),
        }
    }

    fn create(&mut self, path: String, mode: CreateMode, session: Option<u64>) {
        let command = Command::Create { path, data: Bytes::copy_from_slice(VALUE), mode };
        self.apply(Request { session, id: None, command });
    }
}

/// 1,000 directories of 1,000 nodes with 64-byte values: 1,001,001 nodes with the root.
fn million() -> Bench {
    let mut b = Bench { state: State::default(), index: 0 };
    let before = LIVE.load(Ordering::Relaxed);
    let started = Instant::now();
    for d in 0..DIRS {
        b.create(format!("/dir{d:04}"), CreateMode::PERSISTENT, None);
        for n in 0..PER_DIR {
            b.create(format!("/dir{d:04}/node{n:04}"), CreateMode::PERSISTENT, None);
        }
    }
    let elapsed = started.elapsed();
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let nodes = b.state.tree().len();
    eprintln!(
        "built {nodes} nodes in {elapsed:?} ({:.0} creates/s); heap {:.1} MiB, {} bytes per node (64-byte values and ~18-byte paths included)",
        nodes as f64 / elapsed.as_secs_f64(),
        bytes as f64 / (1 << 20) as f64,
        bytes / nodes as isize,
    );
    b
}

fn benches(c: &mut Criterion) {
    let mut b = million();
    let mut group = c.benchmark_group("apply_on_1m_nodes");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    // Each benchmark leaves the tree at its 1,000,001 nodes: what it creates it deletes
    // outside the timed part, and the reverse.
    let mut batch = 0usize;
    group.bench_function("create", |bench| {
        bench.iter_custom(|iters| {
            batch += 1;
            let paths: Vec<String> =
                (0..iters).map(|i| format!("/dir0000/new{batch:06}-{i:09}")).collect();
            let started = Instant::now();
            for p in &paths {
                b.create(p.clone(), CreateMode::PERSISTENT, None);
            }
            let elapsed = started.elapsed();
            for path in paths {
                b.apply(Request::new(Command::Delete {
                    path,
                    expected_version: None,
                    recursive: false,
                    revoke_locks: false,
                }));
            }
            elapsed
        })
    });

    let mut next = 0usize;
    group.bench_function("set", |bench| {
        bench.iter(|| {
            next = (next + 7_919) % (DIRS * PER_DIR);
            let path = format!("/dir{:04}/node{:04}", next / PER_DIR, next % PER_DIR);
            let command =
                Command::Set { path, data: Bytes::copy_from_slice(VALUE), expected_version: None };
            black_box(b.apply(Request::new(command)));
        })
    });

    group.bench_function("delete", |bench| {
        bench.iter_custom(|iters| {
            batch += 1;
            let paths: Vec<String> =
                (0..iters).map(|i| format!("/dir0001/del{batch:06}-{i:09}")).collect();
            for p in &paths {
                b.create(p.clone(), CreateMode::PERSISTENT, None);
            }
            let started = Instant::now();
            for path in paths {
                black_box(b.apply(Request::new(Command::Delete {
                    path,
                    expected_version: None,
                    recursive: false,
                    revoke_locks: false,
                })));
            }
            started.elapsed()
        })
    });

    group.bench_function("expire_session_with_1000_ephemerals", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let Output::SessionOpened { id, .. } =
                    b.apply(Request::new(Command::OpenSession {
                        ttl_ms: 10_000,
                        identity: String::new(),
                    }))
                else {
                    panic!("no session");
                };
                for i in 0..1_000 {
                    b.create(
                        format!("/dir{:04}/eph-{id}-{i}", i % DIRS),
                        CreateMode::EPHEMERAL,
                        Some(id),
                    );
                }
                let started = Instant::now();
                let out = b.apply(Request::new(Command::ExpireSessions { ids: vec![id], term: 1 }));
                total += started.elapsed();
                assert!(matches!(out, Output::SessionsExpired { deleted: 1_000, .. }));
            }
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("snapshot_of_1m_nodes");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15));
    group.bench_function("encode", |bench| bench.iter(|| black_box(b.state.snapshot())));
    if let Ok(bytes) = b.state.snapshot() {
        eprintln!("snapshot of {} nodes: {} bytes", b.state.tree().len(), bytes.len());
        group.bench_function("restore", |bench| bench.iter(|| black_box(State::restore(&bytes))));
    }
    group.finish();
}

criterion_group!(apply, benches);
criterion_main!(apply);
