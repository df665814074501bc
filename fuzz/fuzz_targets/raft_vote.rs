//! Fuzz target `raft_vote`: see `warden_fuzz::raft_vote`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::raft_vote(data));
