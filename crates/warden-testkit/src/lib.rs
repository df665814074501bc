//! Fault injection and history checkers for warden.
//!
//! The checkers are pure: they take recorded histories and return what they found, so
//! they are tested on hand-made good and bad histories before they judge a real run.

pub mod checks;
pub mod linearizable;
pub mod members;
pub mod nemesis;
pub mod proxy;
pub mod rng;
pub mod suite;

/// A loopback port that is free now, below Linux's ephemeral range (32768 and up), so an
/// outgoing connection elsewhere cannot take it between this check and the member's bind
/// (what `bind(":0")` ports suffer from when many tests run at once). Ports are handed out
/// in turn from a range that depends on the process id.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    let start = (std::process::id() % 1_000) * 20;
    loop {
        let port = LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = u16::try_from(port).unwrap_or(10_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
