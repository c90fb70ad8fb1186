//! Replays every committed corpus input through its fuzz target body, so a
//! finding fixed once stays fixed, on stable Rust and without libFuzzer.

use std::fs;
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.expect("readable corpus entry").path())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "corpus {target} is empty");
    for path in &entries {
        let input = fs::read(path).expect("readable corpus file");
        check(&input);
    }
    println!("{target}: replayed {} inputs", entries.len());
}

#[test]
fn command_corpus() {
    replay("command", postern_fuzz::command);
}

#[test]
fn reply_corpus() {
    replay("reply", postern_fuzz::reply);
}

#[test]
fn data_corpus() {
    replay("data", postern_fuzz::data);
}

#[test]
fn roundtrip_corpus() {
    replay("roundtrip", postern_fuzz::roundtrip);
}

#[test]
fn tlsa_corpus() {
    replay("tlsa", postern_fuzz::tlsa);
}

#[test]
fn mta_sts_corpus() {
    replay("mta_sts", postern_fuzz::mta_sts);
}

#[test]
fn dkim_corpus() {
    replay("dkim", postern_fuzz::dkim);
}

#[test]
fn tlsrpt_corpus() {
    replay("tlsrpt", postern_fuzz::tlsrpt);
}

#[test]
fn proxy_header_corpus() {
    replay("proxy_header", postern_fuzz::proxy_header);
}

#[test]
fn scram_corpus() {
    replay("scram", postern_fuzz::scram);
}
