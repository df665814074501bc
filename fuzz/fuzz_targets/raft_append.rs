//! Fuzz target `raft_append`: see `warden_fuzz::raft_append`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::raft_append(data));
