//! Fuzz target `config_toml`: see `warden_fuzz::config_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::config_toml(data));
