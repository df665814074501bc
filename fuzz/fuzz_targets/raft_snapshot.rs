//! Fuzz target `raft_snapshot`: see `warden_fuzz::raft_snapshot`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::raft_snapshot(data));
