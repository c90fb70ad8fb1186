//! The PostgreSQL store against a real PostgreSQL server (started per
//! test by postern-testkit in a temporary directory): durability across
//! reopen, concurrent claims by two nodes, lease takeover and fencing,
//! and a server crash under a writer.
#![cfg(feature = "postgres")]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postern_proto::{Mailbox, ReversePath};
use postern_queue::pg::{PgConfig, PgError, PgStore};
use postern_queue::{BODY_CHUNK, Envelope, QueueId, RecipientState, Store};
use postern_testkit::Postgres;

fn envelope(id: &QueueId) -> Envelope {
    let from = Mailbox::parse("alice@example.org")
        .expect("address")
        .into_owned();
    let to = Mailbox::parse("bob@example.net")
        .expect("address")
        .into_owned();
    let mut env = Envelope::new(id.clone(), ReversePath::Mailbox(from));
    env.recipients.push(RecipientState::pending(to, false));
    env
}

fn server(db: &str) -> Option<Postgres> {
    let pg = Postgres::start()?;
    pg.create_db(db);
    Some(pg)
}

fn open(pg: &Postgres, db: &str, node: &str) -> Arc<PgStore> {
    PgStore::open(PgConfig::new(pg.dsn(db), node)).expect("opening the store")
}

/// Commits one message with `body`; drops the hold (listed from then on).
fn commit(store: &PgStore, body: &[u8]) -> QueueId {
    let id = store.new_id();
    let mut w = store.writer(&id).expect("writer");
    w.write(body).expect("write");
    drop(w.commit(&envelope(&id)).wait().expect("commit"));
    id
}

fn pg_error(e: &std::io::Error) -> Option<&PgError> {
    e.get_ref().and_then(|e| e.downcast_ref::<PgError>())
}

/// Waits until `f` is true, up to `limit`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn messages_survive_reopen_with_bodies_whole() {
    let Some(pg) = server("reopen") else { return };
    let store = open(&pg, "reopen", "n1");
    let small = commit(&store, b"Subject: hi\r\n\r\nsmall\r\n");
    // Three full chunks and a tail: chunks sent during DATA plus the last.
    let big_body: Vec<u8> = (0..BODY_CHUNK * 3 + 1234)
        .map(|i| (i % 251) as u8)
        .collect();
    let big = commit(&store, &big_body);
    let empty = commit(&store, b"");
    let mut env = store.load(&small).expect("load");
    env.attempts = 3;
    env.next_attempt = 42;
    store.update(&small, &env).expect("update");
    drop(store);

    let store = open(&pg, "reopen", "n1");
    let mut want = vec![small.clone(), big.clone(), empty.clone()];
    want.sort();
    assert_eq!(store.list_all().expect("list_all"), want);
    assert_eq!(
        store.list().expect("list"),
        want,
        "no lease survives a reopen"
    );
    assert_eq!(store.body(&big).expect("body"), big_body);
    assert_eq!(store.body_size(&big).expect("size"), big_body.len() as u64);
    assert_eq!(
        store.body(&small).expect("body"),
        b"Subject: hi\r\n\r\nsmall\r\n"
    );
    assert_eq!(store.body(&empty).expect("body"), b"");
    let env = store.load(&small).expect("load");
    assert_eq!((env.attempts, env.next_attempt), (3, 42));
    let mut due_now = vec![big.clone(), empty.clone()];
    due_now.sort();
    assert_eq!(store.due(41).expect("due"), due_now);
    assert_eq!(store.due(42).expect("due"), want);

    store.remove(&big).expect("remove");
    store.remove_unsynced(&empty).expect("remove");
    store
        .remove(&big)
        .expect("removing a missing message is no error");
    assert_eq!(
        store.list_all().expect("list"),
        std::slice::from_ref(&small)
    );
    let e = store.load(&big).expect_err("removed");
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    let chunks = format!("SELECT count(*) FROM postern_bodies WHERE id <> '{small}'");
    assert_eq!(
        pg.psql("reopen", &chunks),
        "0",
        "removal takes the body along"
    );
    assert_eq!(pg.psql("reopen", "SELECT version FROM postern_schema"), "1");
}

/// Two nodes scan and claim the same queue at the same time, holding what
/// they claim: no message is claimed by both, and every one by someone.
#[test]
fn two_nodes_never_claim_the_same_message() {
    let Some(pg) = server("claims") else { return };
    let a = open(&pg, "claims", "node-a");
    let b = open(&pg, "claims", "node-b");
    let mut all: Vec<QueueId> = (0..200)
        .map(|i| commit(&a, format!("m{i}\r\n").as_bytes()))
        .collect();
    all.sort();
    let claim_all = |store: Arc<PgStore>| {
        std::thread::spawn(move || {
            let mut held = Vec::new();
            // Several scans: the other node's claims come and go.
            for _ in 0..3 {
                for id in store.list().expect("list") {
                    if let Some(h) = store.hold(&id) {
                        held.push(h);
                    }
                }
            }
            held
        })
    };
    let (ta, tb) = (claim_all(a.clone()), claim_all(b.clone()));
    let (ha, hb) = (ta.join().expect("node a"), tb.join().expect("node b"));
    let sa: HashSet<QueueId> = ha.iter().map(|h| h.id().clone()).collect();
    let sb: HashSet<QueueId> = hb.iter().map(|h| h.id().clone()).collect();
    assert_eq!(sa.len(), ha.len(), "node a claimed nothing twice");
    assert!(
        sa.is_disjoint(&sb),
        "claimed by both: {:?}",
        sa.intersection(&sb).collect::<Vec<_>>()
    );
    assert_eq!(
        sa.len() + sb.len(),
        all.len(),
        "every message claimed once: a {} b {}",
        sa.len(),
        sb.len()
    );
    assert!(
        a.list().expect("list").is_empty(),
        "held messages are not listed"
    );
    // The database agrees on owners.
    let leases = a.leases().expect("leases");
    assert_eq!(leases.len(), all.len());
    for (id, owner) in &leases {
        assert_eq!(owner, if sa.contains(id) { "node-a" } else { "node-b" });
    }
    drop(ha);
    drop(hb);
    assert!(
        eventually(Duration::from_secs(5), || a.list().expect("list").len()
            == all.len()),
        "released holds are listed again"
    );
}

/// A node that dies holding a lease: another node gets the message once
/// the lease expires, not before; the first node, if it wakes up, can no
/// longer write (fencing).
#[test]
fn an_expired_lease_is_taken_over_and_fenced() {
    let Some(pg) = server("lease") else { return };
    let lease = Duration::from_secs(2);
    let config = |node: &str| PgConfig::new(pg.dsn("lease"), node).with_lease(lease);
    let a = PgStore::open(config("node-a")).expect("open a");
    let b = PgStore::open(config("node-b")).expect("open b");
    let id = commit(&a, b"body\r\n");

    // The commit's hold is released in the background: claimable soon.
    let mut held = None;
    assert!(eventually(Duration::from_secs(5), || {
        held = a.hold(&id);
        held.is_some()
    }));
    // Renewed while held: a holds it well past the lease.
    std::thread::sleep(lease * 2);
    assert!(b.hold(&id).is_none(), "a renews its lease while it works");
    let mut env = a.load(&id).expect("load");
    env.attempts = 1;
    a.update(&id, &env).expect("a writes under its lease");

    // a dies: no release, no renewal.
    std::mem::forget(held);
    drop(a);
    let died = Instant::now();
    assert!(b.hold(&id).is_none(), "the lease has not expired yet");
    let mut taken = None;
    assert!(eventually(lease * 3, || {
        taken = b.hold(&id);
        taken.is_some()
    }));
    let waited = died.elapsed();
    assert!(
        waited >= lease - Duration::from_millis(700),
        "taken after {waited:?}, before the lease ran out"
    );
    assert!(
        waited <= lease + Duration::from_secs(2),
        "taken {waited:?} after death"
    );

    // Fencing: a stalled holder whose lease was taken writes nothing.
    let c = PgStore::open(config("node-c")).expect("open c");
    let id2 = commit(&c, b"two\r\n");
    let mut stalled = None;
    assert!(eventually(Duration::from_secs(5), || {
        stalled = c.hold(&id2);
        stalled.is_some()
    }));
    pg.psql(
        "lease",
        &format!(
            "UPDATE postern_messages SET lease_until = now() - interval '1 s' WHERE id = '{id2}'"
        ),
    );
    let takeover = b.hold(&id2).expect("b takes the expired lease");
    let env = c.load(&id2).expect("load");
    let e = c.update(&id2, &env).expect_err("fenced");
    assert!(matches!(pg_error(&e), Some(PgError::LeaseLost(_))), "{e}");
    let e = c.remove(&id2).expect_err("fenced");
    assert!(matches!(pg_error(&e), Some(PgError::LeaseLost(_))), "{e}");
    // c's release (on drop) leaves b's lease alone.
    drop(stalled);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        b.leases()
            .expect("leases")
            .iter()
            .filter(|(i, o)| i == &id2 && o == "node-b")
            .count(),
        1
    );
    b.update(&id2, &env).expect("b writes under its lease");
    drop(takeover);
    drop(taken);
}

/// PostgreSQL crashes (immediate shutdown) and restarts while a writer
/// commits: every commit that resolved Ok is there afterwards; commits
/// during the outage fail with a typed error or wait it out, and writing
/// resumes by itself.
#[test]
fn a_database_crash_loses_nothing_acknowledged() {
    let Some(mut pg) = server("crash") else {
        return;
    };
    let config = PgConfig::new(pg.dsn("crash"), "writer").with_retry_for(Duration::from_secs(1));
    let store = PgStore::open(config).expect("open");
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut acked, mut refused, mut unreachable) = (Vec::new(), 0, 0);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let id = store.new_id();
                    let body = format!("writer {w} message {n}\r\n").repeat(50);
                    let outcome = store.writer(&id).and_then(|mut wr| {
                        wr.write(body.as_bytes())?;
                        wr.commit(&envelope(&id)).wait()
                    });
                    match outcome {
                        Ok(hold) => {
                            drop(hold);
                            acked.push((id, body));
                        }
                        Err(e) => {
                            refused += 1;
                            if e.kind() == std::io::ErrorKind::NotConnected {
                                unreachable += 1;
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
                (acked, refused, unreachable)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    pg.crash();
    // Longer than the retry budget: commits fail, typed.
    std::thread::sleep(Duration::from_secs(2));
    assert!(store.is_down(), "the store noticed the outage");
    pg.start_server();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    let (mut refused, mut unreachable) = (0, 0);
    for w in writers {
        let (a, r, u) = w.join().expect("writer");
        acked.extend(a);
        refused += r;
        unreachable += u;
    }
    assert!(
        refused > 0 && unreachable > 0,
        "the outage was seen: {refused} refused, {unreachable} unreachable"
    );
    assert!(!store.is_down(), "writing resumed after the restart");
    drop(store);
    let store = open(&pg, "crash", "reader");
    let present: HashSet<QueueId> = store.list_all().expect("list").into_iter().collect();
    for (id, body) in &acked {
        assert!(present.contains(id), "acknowledged {id} lost");
        assert_eq!(store.body(id).expect("body"), body.as_bytes());
    }
    eprintln!(
        "crash test: {} acknowledged, {} refused ({} unreachable), {} present",
        acked.len(),
        refused,
        unreachable,
        present.len()
    );
}

/// The AUTH limiter's counts shared through the database: guesses spread
/// over two nodes add up, and the throttle decided from the sum holds on
/// both.
#[test]
fn auth_failures_on_two_nodes_add_up() {
    use postern_listener::guard::{AuthGuard, AuthLimits, AuthRefusal, MemoryStore, SharedHooks};
    use postern_queue::pg::GuardTable;
    let Some(pg) = server("guard") else { return };
    // The schema (postern_guard) is created by the store's open.
    drop(open(&pg, "guard", "setup"));
    let guard_of = |node: &str| {
        let table = GuardTable::start(PgConfig::new(pg.dsn("guard"), node)).expect("table");
        let t2 = table.clone();
        let hooks = SharedHooks::new(
            Box::new(move |k: &str, e: &str, u| table.push(k, e, u)),
            Box::new(move || t2.pull()),
        );
        AuthGuard::with_store(AuthLimits::default(), MemoryStore::new(1000).shared(hooks))
    };
    let (a, b) = (guard_of("node-a"), guard_of("node-b"));
    let bot: std::net::IpAddr = "192.0.2.10".parse().expect("ip");
    let now = std::time::SystemTime::now();
    // 6 guesses at a, 5 at b: each alone is under the 10 per minute.
    for _ in 0..6 {
        a.failed(bot, "alice", now);
    }
    for _ in 0..5 {
        b.failed(bot, "alice", now);
    }
    let throttled = |g: &AuthGuard<MemoryStore>| {
        matches!(
            g.check(bot, "alice", now),
            Err(AuthRefusal::Throttled { .. })
        )
    };
    let start = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || throttled(&a) && throttled(&b)),
        "the sum was never seen"
    );
    eprintln!(
        "shared AUTH counts seen by both nodes after {:?}",
        start.elapsed()
    );
    let rows = pg.psql("guard", "SELECT count(DISTINCT node) FROM postern_guard");
    assert_eq!(rows, "2");
}
