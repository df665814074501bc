//! Fuzz target `path`: see `warden_fuzz::path`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::path(data));
