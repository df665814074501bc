//! Fuzz target `lock_request`: see `warden_fuzz::lock_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::lock_request(data));
