//! libFuzzer entry point for [`postern_fuzz::mta_sts`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::mta_sts(data));
