//! Corrupt segments: flipped bits, truncated files, torn tails. Damage is
//! reported with the segment file and byte offset, the affected message is
//! flagged (never silently dropped, never served partly), the rest of the
//! queue is served, and nothing panics.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use postern_queue::log::{Log, LogError, Problem};

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Offset of the record whose payload starts with `marker`, and its file.
fn find(dir: &Path, marker: &[u8]) -> (PathBuf, usize) {
    for p in segments(dir) {
        let data = fs::read(&p).unwrap();
        if let Some(i) = data.windows(marker.len()).position(|w| w == marker) {
            return (p, i - 64);
        }
    }
    panic!("{marker:?} not found");
}

fn flip(path: &Path, at: usize) {
    let mut data = fs::read(path).unwrap();
    data[at] ^= 0x20;
    fs::write(path, data).unwrap();
}

fn populate(dir: &Path, segment: u64, n: u128, size: usize) {
    let log = Log::open(dir, small(segment)).unwrap();
    for i in 1..=n {
        log.commit(vec![body(i, size), envelope(i)]).unwrap();
    }
}

#[test]
fn a_flipped_bit_mid_log_is_damage_naming_segment_offset_and_message() {
    let dir = tempdir("flip");
    populate(&dir, 1 << 20, 10, 500);
    let (seg, offset) = find(&dir, b"body of 3:");
    flip(&seg, offset + 64 + 200);
    let log = Log::open(&dir, small(1 << 20)).unwrap();
    let r = log.recovery();
    assert!(r.torn_tail.is_none(), "{r:?}");
    // The bad record, and its submission's envelope left without it.
    assert!(r.damage.iter().all(|d| d.key == Some(key(3))), "{r:?}");
    let d = &r.damage[0];
    assert_eq!(d.segment, seg);
    assert_eq!(d.offset, offset as u64);
    assert_eq!(d.key, Some(key(3)));
    assert!(matches!(d.problem, Problem::BadRecord { .. }));
    let text = d.to_string();
    assert!(
        text.contains(seg.to_str().unwrap()) && text.contains(&format!("byte {offset}")),
        "{text}"
    );
    // The message is reported, not dropped, and not served partly.
    assert!(log.contains(key(3)));
    assert_eq!(log.damaged().len(), 1);
    assert!(matches!(log.records(key(3)), Err(LogError::Damaged { .. })));
    // Everything else is served.
    for n in (1..=10).filter(|&n| n != 3) {
        assert_eq!(payloads(&log, n)[0], body(n, 500).payload);
    }
    // It can be removed, and new commits work.
    log.finish(key(3)).wait().unwrap();
    log.commit(vec![envelope(11)]).unwrap();
    assert_eq!(log.messages().len(), 10);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_header_in_an_old_segment_is_damage_and_the_scan_goes_on() {
    let dir = tempdir("oldseg");
    populate(&dir, 8 << 10, 30, 700);
    let (seg, offset) = find(&dir, b"body of 2:");
    assert_eq!(seg, segments(&dir)[0]);
    flip(&seg, offset + 20); // inside the header: lsn field
    let log = Log::open(&dir, small(8 << 10)).unwrap();
    let r = log.recovery();
    assert_eq!(r.damage[0].segment, seg);
    assert_eq!(r.damage[0].offset, offset as u64);
    // The header names no message any more; the envelope of the same
    // submission does.
    assert!(r.damage.iter().any(|d| d.key == Some(key(2))), "{r:?}");
    assert!(log.records(key(2)).is_err());
    assert_eq!(log.messages().len(), 30);
    for n in 3..=30 {
        assert_eq!(payloads(&log, n)[1], envelope(n).payload);
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_segment_that_is_not_the_last_is_reported() {
    let dir = tempdir("trunc");
    populate(&dir, 8 << 10, 30, 700);
    let first = segments(&dir)[0].clone();
    let f = fs::OpenOptions::new().write(true).open(&first).unwrap();
    f.set_len(3000).unwrap();
    drop(f);
    let log = Log::open(&dir, small(8 << 10)).unwrap();
    let r = log.recovery();
    assert!(
        r.damage.iter().any(|d| d.segment == first
            && d.offset == 3000
            && matches!(
                d.problem,
                Problem::Truncated {
                    len: 3000,
                    expected: 8192
                }
            )),
        "{r:?}"
    );
    // Messages in later segments are served.
    assert_eq!(payloads(&log, 30)[1], envelope(30).payload);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_tail_is_cut_not_reported_as_damage() {
    let dir = tempdir("torn");
    populate(&dir, 1 << 20, 5, 300);
    // A sixth commit whose write was cut short: half a record after the
    // last one.
    let (seg, offset) = find(&dir, b"body of 5:");
    let end = offset + 64 + 304 + 64 + 16; // body record, then envelope record
    let mut data = fs::read(&seg).unwrap();
    let mut extra = data[offset..end].to_vec();
    extra[20] ^= 1; // a different lsn: not a copy of a valid record
    data[end..end + extra.len() / 2].copy_from_slice(&extra[..extra.len() / 2]);
    fs::write(&seg, data).unwrap();
    let log = Log::open(&dir, small(1 << 20)).unwrap();
    let r = log.recovery();
    assert!(r.damage.is_empty(), "{r:?}");
    assert_eq!(
        r.torn_tail.as_ref().map(|t| t.offset),
        Some(end as u64),
        "{r:?}"
    );
    assert_eq!(log.messages().len(), 5);
    log.commit(vec![envelope(6)]).unwrap();
    drop(log);
    let log = Log::open(&dir, small(1 << 20)).unwrap();
    assert!(log.recovery().damage.is_empty() && log.recovery().torn_tail.is_none());
    assert_eq!(log.messages().len(), 6);
    let _ = fs::remove_dir_all(&dir);
}

/// Flip bytes all over a multi-segment log: open never fails or panics,
/// and whatever is served is exactly what was written.
#[test]
fn random_corruption_never_panics_and_never_serves_wrong_data() {
    let pristine = tempdir("pristine");
    populate(&pristine, 8 << 10, 25, 600);
    let files: Vec<(PathBuf, Vec<u8>)> = segments(&pristine)
        .into_iter()
        .map(|p| {
            let d = fs::read(&p).unwrap();
            (p, d)
        })
        .collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..150 {
        let dir = tempdir("chaos");
        for (i, (p, data)) in files.iter().enumerate() {
            let mut data = data.clone();
            if next() % 3 == 0 || i == round % files.len() {
                for _ in 0..(1 + next() % 4) {
                    let at = (next() % data.len() as u64) as usize;
                    data[at] ^= 1 << (next() % 8);
                }
            }
            fs::write(dir.join(p.file_name().unwrap()), data).unwrap();
        }
        let log = Log::open(&dir, small(8 << 10)).unwrap();
        for k in log.messages() {
            match log.records(k) {
                Ok(recs) => {
                    let n = k.get();
                    let want = [body(n, 600).payload, envelope(n).payload];
                    let got: Vec<Vec<u8>> = recs.into_iter().map(|r| r.payload).collect();
                    assert!(
                        want.starts_with(&got) && !got.is_empty(),
                        "round {round}: message {n}: {:?} {:?}",
                        got.iter()
                            .map(|g| String::from_utf8_lossy(&g[..12.min(g.len())]).into_owned())
                            .collect::<Vec<_>>(),
                        log.recovery()
                    );
                }
                Err(LogError::Damaged { .. }) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        drop(log);
        let _ = fs::remove_dir_all(&dir);
    }
    let _ = fs::remove_dir_all(&pristine);
}
