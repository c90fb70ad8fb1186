//! Helpers shared by the log tests.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use postern_queue::log::{LogConfig, MessageKey, Preallocation, Record, RecordKind};

/// A fresh empty directory (on tmpfs when there is one: the crash tests
/// open thousands of images and their fsyncs would dominate).
pub fn tempdir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!(
        "postern-log-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Small segments, so a few messages exercise rollover and reclamation.
pub fn small(segment: u64) -> LogConfig {
    LogConfig::default()
        .segment_size(segment)
        .preallocation(Preallocation::Sparse)
        .auto_maintain(false)
}

pub fn key(n: u128) -> MessageKey {
    MessageKey::new(n).unwrap()
}

pub fn body(n: u128, len: usize) -> Record {
    let mut p = format!("body of {n}:").into_bytes();
    p.resize(len, b'a' + (n % 26) as u8);
    Record::new(RecordKind::Body, key(n), p)
}

pub fn envelope(n: u128) -> Record {
    Record::new(RecordKind::Envelope, key(n), format!("envelope of {n}"))
}

pub fn state(n: u128, step: u32) -> Record {
    Record::new(RecordKind::State, key(n), format!("state {step} of {n}"))
}

/// Payloads of a message's records, as read back.
pub fn payloads(log: &postern_queue::log::Log, n: u128) -> Vec<Vec<u8>> {
    log.records(key(n))
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect()
}
