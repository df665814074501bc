//! Fault injection and history checkers for warden.
//!
//! The checkers are pure: they take recorded histories and return what they found, so
//! they are tested on hand-made good and bad histories before they judge a real run.

pub mod checks;
pub mod elections;
pub mod linearizable;
pub mod members;
pub mod nemesis;
pub mod proxy;
pub mod rng;
pub mod rotations;
pub mod suite;
pub mod tls;

/// A loopback port that is free now, below Linux's ephemeral range (32768 and up), so an
/// outgoing connection elsewhere cannot take it between this check and the member's bind
/// (what `bind(":0")` ports suffer from when many tests run at once). Ports are handed out
/// in turn from a range that depends on the process id.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `span` consecutive loopback ports that are all free now, chosen like
/// [`free_port`] and from the same sequence, so no later [`free_port`] in this process hands
/// out one of them (for `warden dev --base-port`, which takes ports at fixed offsets).
pub fn free_ports(span: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    let span = u32::from(span.max(1));
    let start = (std::process::id() % 1_000) * 20;
    loop {
        let offset = (start + NEXT.fetch_add(span, Ordering::Relaxed)) % SPAN;
        if offset + span > SPAN {
            continue;
        }
        let base = LOW + offset;
        let free = (base..base + span).all(|port| {
            u16::try_from(port)
                .is_ok_and(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        });
        if let (true, Ok(base)) = (free, u16::try_from(base)) {
            return base;
        }
    }
}
