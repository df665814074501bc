//! Fuzz target `resource_request`: see `warden_fuzz::resource_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::resource_request(data));
