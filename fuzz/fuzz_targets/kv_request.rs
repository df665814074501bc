//! Fuzz target `kv_request`: see `warden_fuzz::kv_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::kv_request(data));
