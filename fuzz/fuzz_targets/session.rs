//! libFuzzer entry point driving a whole `postern-session` `Session`:
//! bytes, decisions and driver signals chosen by the fuzzer. The body lives
//! in `crates/session/tests/fuzz/body.rs`, shared with the stable replay in
//! `crates/session/tests/fuzz_driver.rs`.
#![no_main]

include!("../../crates/session/tests/fuzz/body.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fuzz_session(data);
});
