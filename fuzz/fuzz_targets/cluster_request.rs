//! Fuzz target `cluster_request`: see `warden_fuzz::cluster_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::cluster_request(data));
