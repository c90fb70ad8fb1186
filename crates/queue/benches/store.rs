//! The store alone: commits per second with 1, 8 and 64 concurrent
//! writers, beside the floor this program measures on the same directory
//! (overwrite 1.2 KB inside a preallocated, initialised file, then
//! `fdatasync`; one record per sync), as a ratio to that floor.
//!
//! Run: `cargo bench -p postern-queue --bench store` (release). The
//! directory is `$POSTERN_STORE_BENCH_DIR`, default `store-bench` in
//! Cargo's target tmpdir; it must be on the disk being measured (not
//! tmpfs). `POSTERN_STORE_BENCH_SECS` sets seconds per row (default 3).
//!
//! Writers are threads calling `Log::commit` (submit + wait) in a loop, one
//! message (1,024-byte body record + 200-byte envelope record) per commit.
//! Each row starts once the log's spare segment is ready, so the one-off
//! zero fill of a fresh segment is not measured; a rollover inside a run
//! is.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postern_queue::log::{Log, LogConfig, MessageKey, Preallocation, Record, RecordKind};

const BODY: usize = 1024;
const ENVELOPE: usize = 200;

fn floor(dir: &Path) -> f64 {
    let path = dir.join("floor.dat");
    let _ = fs::remove_file(&path);
    let f: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    let len = 16 << 20;
    let zeros = vec![0u8; 1 << 20];
    for i in 0..16 {
        f.write_all_at(&zeros, i << 20).unwrap();
    }
    f.sync_all().unwrap();
    File::open(dir).unwrap().sync_all().unwrap();
    let rec = vec![0x5au8; BODY + ENVELOPE];
    let n = 300u64;
    let mut at = 0u64;
    let mut round = || {
        let t = Instant::now();
        for _ in 0..n {
            f.write_all_at(&rec, at % (len - 4096)).unwrap();
            f.sync_data().unwrap();
            at += rec.len() as u64;
        }
        t.elapsed().as_secs_f64() / n as f64
    };
    round(); // warm-up: the first syncs after the fill are slower
    let mut runs = [round(), round(), round()];
    runs.sort_by(f64::total_cmp);
    let per = runs[1];
    let _ = fs::remove_file(&path);
    1.0 / per
}

struct Row {
    commits_per_sec: f64,
    ms_per_commit: f64,
    per_sync: f64,
}

fn store(dir: &Path, writers: u128, how: Preallocation, secs: f64) -> Row {
    let _ = fs::remove_dir_all(dir);
    let cfg = LogConfig::default().preallocation(how);
    let log = Log::open(dir, cfg).unwrap();
    for _ in 0..500 {
        if log.stats().segments_created >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let log = log.clone();
                s.spawn(move || {
                    let mut n = 0u64;
                    let mut latency = Duration::ZERO;
                    while Instant::now() < deadline {
                        let key = MessageKey::new(1 + w * 1_000_000_000 + n as u128).unwrap();
                        let t = Instant::now();
                        log.commit(vec![
                            Record::new(RecordKind::Body, key, vec![b'x'; BODY]),
                            Record::new(RecordKind::Envelope, key, vec![b'e'; ENVELOPE]),
                        ])
                        .unwrap();
                        latency += t.elapsed();
                        n += 1;
                    }
                    (n, latency)
                })
            })
            .collect();
        let mut total = 0;
        let mut lat = Duration::ZERO;
        for h in handles {
            let (n, l) = h.join().unwrap();
            total += n;
            lat += l;
        }
        LAT.with(|c| c.set(lat.as_secs_f64() * 1000.0 / total.max(1) as f64));
        total
    });
    let elapsed = start.elapsed().as_secs_f64();
    let st = log.stats();
    drop(log);
    let _ = fs::remove_dir_all(dir);
    Row {
        commits_per_sec: total as f64 / elapsed,
        ms_per_commit: LAT.with(std::cell::Cell::get),
        per_sync: st.submissions as f64 / st.syncs.max(1) as f64,
    }
}

thread_local! {
    static LAT: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let base = std::env::var_os("POSTERN_STORE_BENCH_DIR").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("store-bench"),
        PathBuf::from,
    );
    let secs: f64 = std::env::var("POSTERN_STORE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    fs::create_dir_all(&base).unwrap();
    let floor_before = floor(&base);
    println!("directory: {}", base.display());
    println!(
        "floor (median of 3 × 300): overwrite {} B in a preallocated file + fdatasync: {:.3} ms = {:.0} syncs/s",
        BODY + ENVELOPE,
        1000.0 / floor_before,
        floor_before
    );
    println!();
    println!(
        "| writers | preallocation | commits/s | latency ms/commit | commits per fdatasync | floor ms (this row) | × floor |"
    );
    println!("|---|---|---|---|---|---|---|");
    let rows = [
        (1, Preallocation::ZeroFill),
        (8, Preallocation::ZeroFill),
        (64, Preallocation::ZeroFill),
        (1, Preallocation::Fallocate),
        (64, Preallocation::Fallocate),
    ];
    // The disk is shared: the floor is measured again right before each
    // row and the row is compared with that.
    for (writers, how) in rows {
        let fl = floor(&base);
        let r = store(&base.join("log"), writers, how, secs);
        println!(
            "| {writers} | {how:?} | {:.0} | {:.3} | {:.1} | {:.3} | {:.2} |",
            r.commits_per_sec,
            r.ms_per_commit,
            r.per_sync,
            1000.0 / fl,
            r.commits_per_sec / fl
        );
    }
    let floor_after = floor(&base);
    println!();
    println!(
        "floor again after the runs: {:.3} ms ({:.0} syncs/s)",
        1000.0 / floor_after,
        floor_after
    );
}
