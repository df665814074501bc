//! Fuzz target `barrier_request`: see `warden_fuzz::barrier_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::barrier_request(data));
