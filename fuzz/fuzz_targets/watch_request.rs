//! Fuzz target `watch_request`: see `warden_fuzz::watch_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::watch_request(data));
