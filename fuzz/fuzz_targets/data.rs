//! libFuzzer entry point for [`postern_fuzz::data`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::data(data));
