//! warden-storage against openraft's storage suite and the crash cases it does not cover.

#![allow(unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

mod backup;
mod observer;
mod recovery;
mod suite;
