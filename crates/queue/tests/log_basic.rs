//! The log's behaviour: commit, read, finish, reopen, group commit from
//! threads and tokio tasks, rollover, reclamation and compaction.

mod common;

use common::*;
use postern_queue::log::{Log, LogError, Record, RecordKind};

#[test]
fn commit_read_finish_and_reopen() {
    let dir = tempdir("cycle");
    let log = Log::open(&dir, small(64 << 10)).unwrap();
    for n in 1..=3 {
        log.commit(vec![body(n, 100), envelope(n)]).unwrap();
    }
    log.commit(vec![state(2, 1)]).unwrap();
    log.commit(vec![body(1, 50)]).unwrap(); // a second body chunk
    log.finish(key(3)).wait().unwrap();
    assert_eq!(log.messages(), vec![key(1), key(2)]);
    let one = payloads(&log, 1);
    assert_eq!(one.len(), 3);
    assert_eq!(one[1], b"envelope of 1");
    assert_eq!(one[2], body(1, 50).payload, "append order kept");
    let kinds: Vec<RecordKind> = log
        .records(key(2))
        .unwrap()
        .iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        kinds,
        [RecordKind::Body, RecordKind::Envelope, RecordKind::State]
    );
    assert!(matches!(
        log.records(key(3)),
        Err(LogError::UnknownMessage(_))
    ));
    drop(log);

    let log = Log::open(&dir, small(64 << 10)).unwrap();
    let r = log.recovery();
    assert!(r.damage.is_empty(), "{:?}", r.damage);
    assert!(r.torn_tail.is_none());
    assert_eq!(log.messages(), vec![key(1), key(2)]);
    assert_eq!(payloads(&log, 1), one);
    assert_eq!(payloads(&log, 2)[2], b"state 1 of 2");
    // Finishing twice, or something unknown, is not an error.
    log.finish(key(3)).wait().unwrap();
    log.finish(key(99)).wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let dir = tempdir("misuse");
    let log = Log::open(&dir, small(16 << 10)).unwrap();
    let big = Record::new(RecordKind::Body, key(1), vec![0u8; 20 << 10]);
    assert!(matches!(
        log.commit(vec![big]),
        Err(LogError::TooLarge { .. })
    ));
    log.commit(vec![envelope(2)]).unwrap();
    log.finish(key(2)).wait().unwrap();
    assert!(matches!(
        log.commit(vec![state(2, 1)]),
        Err(LogError::Finished(_))
    ));
    // The log still works.
    log.commit(vec![envelope(3)]).unwrap();
    assert_eq!(log.messages(), vec![key(3)]);
    assert!(Log::open(tempdir("cfg"), small(100)).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn threads_share_group_commits() {
    let dir = tempdir("threads");
    let log = Log::open(&dir, small(1 << 20)).unwrap();
    std::thread::scope(|s| {
        for t in 0..16u128 {
            let log = log.clone();
            s.spawn(move || {
                for i in 0..20u128 {
                    let n = 1 + t * 100 + i;
                    log.commit(vec![body(n, 200), envelope(n)]).unwrap();
                }
            });
        }
    });
    let st = log.stats();
    assert_eq!(st.submissions, 320);
    assert!(st.syncs < st.submissions, "no sharing: {st:?}");
    drop(log);
    let log = Log::open(&dir, small(1 << 20)).unwrap();
    assert_eq!(log.messages().len(), 320);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tokio_tasks_await_tickets() {
    let dir = tempdir("tokio");
    let log = Log::open(&dir, small(1 << 20)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..64u128 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..5u128 {
                    let n = 1 + t * 10 + i;
                    let c = log.submit(vec![body(n, 100), envelope(n)]).await.unwrap();
                    assert!(c.lsn > 0);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let st = log.stats();
    assert_eq!(st.submissions, 320);
    assert!(
        st.groups < 320,
        "64 concurrent tasks never shared a sync: {st:?}"
    );
    assert_eq!(log.messages().len(), 320);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn segments_are_reclaimed_and_a_stuck_message_is_compacted_away() {
    let dir = tempdir("reclaim");
    let cfg = small(16 << 10);
    let log = Log::open(&dir, cfg.clone()).unwrap();
    for n in 1..=60 {
        log.commit(vec![body(n, 900), envelope(n)]).unwrap();
    }
    let before = log.stats();
    assert!(before.segments >= 4, "{before:?}");
    // Message 1 is stuck (deferred forever); the others finish.
    for n in 2..=60 {
        log.finish(key(n)).wait().unwrap();
    }
    let m = log.maintain().unwrap();
    assert!(m.compacted >= 1, "{m:?}");
    assert!(
        m.reclaimed >= before.segments as usize - 2,
        "{m:?} {before:?}"
    );
    // Tombstones pinned by the last data segments go in a second pass.
    log.maintain().unwrap();
    let after = log.stats();
    assert!(after.segments <= 2, "{after:?}");
    assert_eq!(log.messages(), vec![key(1)]);
    let expect = vec![body(1, 900).payload, envelope(1).payload];
    assert_eq!(payloads(&log, 1), expect);
    drop(log);
    let log = Log::open(&dir, cfg).unwrap();
    assert!(
        log.recovery().damage.is_empty(),
        "{:?}",
        log.recovery().damage
    );
    assert_eq!(log.messages(), vec![key(1)], "nothing finished came back");
    assert_eq!(payloads(&log, 1), expect);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn automatic_maintenance_keeps_the_directory_small() {
    let dir = tempdir("auto");
    let cfg = small(16 << 10).auto_maintain(true);
    let log = Log::open(&dir, cfg).unwrap();
    for n in 1..=200 {
        log.commit(vec![body(n, 900), envelope(n)]).unwrap();
        if n > 1 {
            log.finish(key(n - 1)).wait().unwrap();
        }
    }
    // The background pass runs after each rollover; give it a moment.
    for _ in 0..100 {
        if log.stats().segments <= 4 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let st = log.stats();
    assert!(st.segments <= 4, "{st:?}");
    assert!(st.segments_removed > 5, "{st:?}");
    assert_eq!(log.messages(), vec![key(200)]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tombstone_outlives_the_records_it_kills() {
    let dir = tempdir("pin");
    // No compaction: message 1 keeps the first segment alive.
    let cfg = small(8 << 10).compact_below(0.0);
    let log = Log::open(&dir, cfg.clone()).unwrap();
    log.commit(vec![body(1, 3000), envelope(1)]).unwrap();
    log.commit(vec![body(2, 3000), envelope(2)]).unwrap();
    for n in 3..=12 {
        log.commit(vec![body(n, 2000), envelope(n)]).unwrap();
    }
    // Message 2's tombstone lands in a later segment, with others'
    // records that all die.
    for n in 2..=12 {
        log.finish(key(n)).wait().unwrap();
    }
    // Two records too big to share a segment: the tombstones' segment is
    // left with nothing live and is no longer the active one.
    log.commit(vec![body(13, 7500)]).unwrap();
    log.commit(vec![body(14, 7500)]).unwrap();
    for _ in 0..3 {
        log.maintain().unwrap();
    }
    drop(log);
    let log = Log::open(&dir, cfg).unwrap();
    assert_eq!(
        log.messages(),
        vec![key(1), key(13), key(14)],
        "a finished message came back"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
