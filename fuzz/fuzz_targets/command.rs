//! libFuzzer entry point for [`postern_fuzz::command`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| postern_fuzz::command(data));
