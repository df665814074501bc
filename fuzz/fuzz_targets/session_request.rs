//! Fuzz target `session_request`: see `warden_fuzz::session_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::session_request(data));
