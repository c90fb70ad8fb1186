//! libFuzzer entry point for [`postern_fuzz::dkim`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::dkim(data));
