//! Fuzz target `snapshot`: see `warden_fuzz::snapshot`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::snapshot(data));
