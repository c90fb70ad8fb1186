//! libFuzzer entry point for [`postern_fuzz::roundtrip`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::roundtrip(data));
