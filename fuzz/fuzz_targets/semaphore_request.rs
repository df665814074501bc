//! Fuzz target `semaphore_request`: see `warden_fuzz::semaphore_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::semaphore_request(data));
