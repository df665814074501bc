//! Fuzz target `watch_glob`: see `warden_fuzz::watch_glob`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::watch_glob(data));
