//! Fuzz target `log_command`: see `warden_fuzz::log_command`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::log_command(data));
