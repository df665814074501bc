//! Fuzz target `election_request`: see `warden_fuzz::election_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::election_request(data));
