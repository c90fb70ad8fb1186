//! libFuzzer entry point for [`postern_fuzz::scram`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::scram(data));
