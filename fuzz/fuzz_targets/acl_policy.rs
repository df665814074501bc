//! Fuzz target `acl_policy`: see `warden_fuzz::acl_policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::acl_policy(data));
