//! Crash consistency beyond SIGKILL: the file operations of a workload are
//! recorded, and every prefix of them is replayed into a fresh directory
//! as-is, with the unsynced writes dropped, with the last unsynced write
//! torn, and with the first one torn (a hole before data that reached the
//! disk). Recovery from each image must keep every acknowledged record
//! exactly once, bring back no finished message, and never report damage
//! (a crash is not corruption).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use common::*;
use postern_queue::log::recorder::{Crash, RecordingIo, crash_image};
use postern_queue::log::{Log, LogConfig, Record};

/// What the workload did, in acknowledgement order.
#[derive(Debug, Default)]
struct Model {
    /// Per message, every record payload submitted, in order.
    submitted: BTreeMap<u128, Vec<Vec<u8>>>,
    /// Per message: `(ops recorded when acknowledged, records acknowledged so far)`.
    acked: BTreeMap<u128, Vec<(usize, usize)>>,
    /// Per message: ops recorded when its finish was acknowledged.
    finished: BTreeMap<u128, usize>,
    /// Per message: ops recorded when its finish was submitted (from then
    /// on it may be gone).
    finishing: BTreeMap<u128, usize>,
}

fn cfg() -> LogConfig {
    small(8 << 10)
}

fn commit(log: &Log, io: &RecordingIo, model: &Mutex<Model>, records: Vec<Record>) {
    let n = records[0].key.get();
    {
        let mut m = model.lock().unwrap();
        let s = m.submitted.entry(n).or_default();
        s.extend(records.iter().map(|r| r.payload.clone()));
    }
    log.commit(records).unwrap();
    let at = io.len();
    let mut m = model.lock().unwrap();
    let count = m.submitted[&n].len();
    m.acked.entry(n).or_default().push((at, count));
}

fn finish(log: &Log, io: &RecordingIo, model: &Mutex<Model>, n: u128) {
    let before = io.len();
    model.lock().unwrap().finishing.entry(n).or_insert(before);
    log.finish(key(n)).wait().unwrap();
    let at = io.len();
    model.lock().unwrap().finished.entry(n).or_insert(at);
}

/// Messages with bodies that fill segments, state changes, finishes,
/// maintenance (reclaim and compaction of the stuck message 1), and a
/// phase of concurrent writers.
fn workload(log: &Log, io: &RecordingIo, model: &Mutex<Model>) {
    // Long-lived and big enough that its segment is never compacted: the
    // tombstones of the messages finished beside it must outlive it.
    commit(log, io, model, vec![body(50, 3000), envelope(50)]);
    for n in 1..=12u128 {
        commit(
            log,
            io,
            model,
            vec![body(n, 300 + 97 * n as usize), envelope(n)],
        );
        if n % 3 == 0 {
            commit(log, io, model, vec![state(n - 1, 1)]);
            finish(log, io, model, n - 2 + u128::from(n == 3));
        }
    }
    log.maintain().unwrap();
    std::thread::scope(|s| {
        for t in 0..3u128 {
            s.spawn(move || {
                for i in 0..4u128 {
                    let n = 100 + t * 10 + i;
                    commit(log, io, model, vec![body(n, 200), envelope(n)]);
                }
            });
        }
    });
    for n in [4u128, 5, 6, 8, 9, 11, 12] {
        finish(log, io, model, n);
    }
    commit(log, io, model, vec![state(1, 2)]);
    log.maintain().unwrap();
    for t in 0..3u128 {
        for i in 0..4u128 {
            finish(log, io, model, 100 + t * 10 + i);
        }
    }
    log.maintain().unwrap();
    commit(log, io, model, vec![body(60, 3000), envelope(60)]);
    finish(log, io, model, 1);
    log.maintain().unwrap();
}

fn check(model: &Model, prefix: usize, crash: Crash, log: &Log) {
    let ctx = format!("prefix {prefix} {crash:?}");
    let r = log.recovery();
    assert!(
        r.damage.is_empty(),
        "{ctx}: a crash reported as damage: {:?}",
        r.damage
    );
    let live: BTreeSet<u128> = log.messages().into_iter().map(|k| k.get()).collect();
    for (&n, submitted) in &model.submitted {
        let finished = model.finished.get(&n).is_some_and(|&at| at <= prefix);
        let acked = model.acked[&n]
            .iter()
            .filter(|(at, _)| *at <= prefix)
            .map(|&(_, c)| c)
            .max()
            .unwrap_or(0);
        if finished {
            assert!(!live.contains(&n), "{ctx}: finished message {n} came back");
            continue;
        }
        let finishing = model.finishing.get(&n).is_some_and(|&at| at <= prefix);
        if !live.contains(&n) {
            assert!(
                finishing || acked == 0,
                "{ctx}: acknowledged message {n} lost; {r:?}"
            );
            continue;
        }
        let got = payloads(log, n);
        assert!(
            got.len() >= acked,
            "{ctx}: message {n} has {} records, {acked} were acknowledged",
            got.len()
        );
        assert_eq!(
            got[..],
            submitted[..got.len()],
            "{ctx}: message {n}: records are not the submitted ones, once each, in order"
        );
    }
    for n in &live {
        assert!(
            model.submitted.contains_key(n),
            "{ctx}: unknown message {n}"
        );
    }
}

#[test]
fn every_crash_point_recovers_acknowledged_records_exactly_once() {
    let dir = tempdir("record");
    let io = RecordingIo::new(&dir).unwrap();
    let model = Mutex::new(Model::default());
    {
        let log = Log::open_with(Arc::new(io.clone()), cfg()).unwrap();
        workload(&log, &io, &model);
    }
    let ops = io.ops();
    if std::env::var_os("LOG_CRASH_DUMP").is_some() {
        for (i, op) in ops.iter().enumerate() {
            match op {
                postern_queue::log::recorder::Op::Write { name, offset, data } => {
                    eprintln!("{i}: write {name} @{offset} +{}", data.len())
                }
                other => eprintln!("{i}: {other:?}"),
            }
        }
    }
    let model = model.into_inner().unwrap();
    assert!(model.finished.len() >= 10);
    let _ = std::fs::remove_dir_all(&dir);
    let mut torn_seen = 0;
    for prefix in 0..=ops.len() {
        for crash in [
            Crash::Everything,
            Crash::DropUnsynced,
            Crash::TornLast,
            Crash::TornFirst,
        ] {
            let img = tempdir("image");
            crash_image(&ops, prefix, crash, &img).unwrap();
            {
                let log = Log::open(&img, cfg()).unwrap();
                check(&model, prefix, crash, &log);
                torn_seen += usize::from(log.recovery().torn_tail.is_some());
                if prefix % 7 == 0 {
                    // The recovered log takes new commits, and a second
                    // recovery agrees with the first.
                    log.commit(vec![state(50, 99)]).unwrap();
                    drop(log);
                    let again = Log::open(&img, cfg()).unwrap();
                    assert!(
                        again.recovery().damage.is_empty(),
                        "prefix {prefix} {crash:?} reopen: {:?}",
                        again.recovery().damage
                    );
                    assert!(again.recovery().torn_tail.is_none());
                }
            }
            let _ = std::fs::remove_dir_all(&img);
        }
    }
    assert!(
        torn_seen > 0,
        "no image had a torn tail: the test tests nothing"
    );
}
