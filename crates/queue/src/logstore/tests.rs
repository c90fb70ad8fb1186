use super::*;
use crate::envelope::{RcptStatus, RecipientState, unix_now};
use crate::report::Diagnosis;
use crate::test_support::{mailbox, sender};
use postern_proto::{Body, Notify, Ret};

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "postern-logstore-{name}-{}-{}",
        std::process::id(),
        unix_now()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn envelope(id: &QueueId) -> Envelope {
    let mut env = Envelope::new(id.clone(), sender("a@b.example"));
    env.recipients
        .push(RecipientState::pending(mailbox("c@d.example"), false));
    env
}

#[test]
fn commit_list_load_update_remove() {
    let dir = tempdir("cycle");
    let store = LogStore::open(&dir).unwrap();
    let id = store.new_id();
    let mut w = store.writer(&id).unwrap();
    w.write(b"Subject: x\r\n\r\nhello\r\n").unwrap();
    let mut env = envelope(&id);
    env.recipients[0].notify = Notify::from_keyword("FAILURE,DELAY");
    env.params.ret = Some(Ret::Headers);
    env.params.body = Some(Body::EightBitMime);
    let hold = w.commit(&env).wait().unwrap();
    assert!(store.list().unwrap().is_empty(), "held ids are hidden");
    drop(hold);
    assert_eq!(store.list().unwrap(), vec![id.clone()]);
    assert_eq!(store.load(&id).unwrap(), env);
    env.recipients[0].status = RcptStatus::Deferred(Diagnosis::parse(
        "451 4.3.0 later (remote mta: mx[192.0.2.1]:25)",
        crate::report::OTHER_TRANSIENT,
    ));
    env.attempts = 1;
    store.update(&id, &env).unwrap();
    assert_eq!(store.load(&id).unwrap(), env);
    assert_eq!(store.body(&id).unwrap(), b"Subject: x\r\n\r\nhello\r\n");
    // What was committed and updated survives a restart.
    drop(store);
    let store = LogStore::open(&dir).unwrap();
    assert_eq!(store.load(&id).unwrap(), env);
    assert_eq!(LogStore::inspect(&dir).unwrap(), vec![env.clone()]);
    store.remove(&id).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(store.load(&id).is_err());
    drop(store);
    let store = LogStore::open(&dir).unwrap();
    assert!(
        store.list_all().unwrap().is_empty(),
        "a removed message stays removed"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn large_bodies_are_chunked_and_read_back_whole() {
    let dir = tempdir("large");
    let store = LogStore::open(&dir).unwrap();
    let id = store.new_id();
    let body: Vec<u8> = (0..3 * BODY_CHUNK + 1234)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut w = store.writer(&id).unwrap();
    for part in body.chunks(10_000) {
        w.write(part).unwrap();
    }
    drop(w.commit(&envelope(&id)).wait().unwrap());
    assert_eq!(store.body(&id).unwrap(), body);
    let records = store
        .log()
        .records_of(key_of(&id).unwrap(), |k| k == RecordKind::Body)
        .unwrap();
    assert_eq!(records.len(), 4, "three full chunks and the rest");
    // One write larger than a segment is split too.
    let id2 = store.new_id();
    let huge = vec![b'x'; (SEGMENT_SIZE as usize) + 1];
    let mut w = store.writer(&id2).unwrap();
    w.write(&huge).unwrap();
    drop(w.commit(&envelope(&id2)).wait().unwrap());
    assert_eq!(store.body(&id2).unwrap().len(), huge.len());
    drop(store);
    let store = LogStore::open(&dir).unwrap();
    assert_eq!(store.body(&id).unwrap(), body);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn abandoned_writers_leave_no_message() {
    let dir = tempdir("abandon");
    let store = LogStore::open(&dir).unwrap();
    // Small: nothing reached the log. Large: chunks did, then a tombstone.
    for size in [10, 2 * BODY_CHUNK] {
        let id = store.new_id();
        let mut w = store.writer(&id).unwrap();
        w.write(&vec![b'y'; size]).unwrap();
        drop(w);
    }
    // A crash mid-body: chunks without an envelope and no tombstone,
    // written to the log directly. (Leaking a writer instead would keep
    // this store alive, and the reopen below would hand it back instead
    // of recovering from disk.)
    let id = store.new_id();
    let chunk = Record::new(RecordKind::Body, key_of(&id).unwrap(), vec![b'z'; BODY_CHUNK]);
    store.log().commit(vec![chunk.clone(), chunk]).unwrap();
    assert!(store.list_all().unwrap().is_empty());
    drop(store);
    let store = LogStore::open(&dir).unwrap();
    assert!(store.list_all().unwrap().is_empty());
    assert_eq!(store.log().messages(), [], "finished at open");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_commits_share_group_commits() {
    let dir = tempdir("group");
    let store = LogStore::open(&dir).unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..5 {
                    let id = store.new_id();
                    let mut w = store.writer(&id).unwrap();
                    w.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
                    drop(w.commit(&envelope(&id)).wait().unwrap());
                }
            });
        }
    });
    assert_eq!(store.list().unwrap().len(), 40);
    let stats = store.log().stats();
    assert!(stats.groups <= 40, "{stats:?}");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn commits_are_awaited_from_tasks() {
    let dir = tempdir("tasks");
    let store = LogStore::open(&dir).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = store.new_id();
            let mut w = store.writer(&id).unwrap();
            w.write(b"Subject: t\r\n\r\n").unwrap();
            drop(w.commit(&envelope(&id)).await.unwrap());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.list().unwrap().len(), 20);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ids_are_unique_sortable_and_parse() {
    let dir = tempdir("ids");
    let store = LogStore::open(&dir).unwrap();
    let ids: Vec<QueueId> = (0..1000).map(|_| store.new_id()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 1000);
    for id in &ids {
        assert_eq!(id.as_str().parse::<QueueId>().unwrap(), *id);
        assert_eq!(id_of(key_of(id).unwrap()).as_ref(), Some(id));
    }
    assert!("../etc".parse::<QueueId>().is_err());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn opening_twice_in_one_process_shares_the_store() {
    let dir = tempdir("twice");
    let a = LogStore::open(&dir).unwrap();
    let b = LogStore::open(&dir).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}
