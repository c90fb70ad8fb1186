//! The queue admin and its control socket on a real LogStore: changes are
//! durable (a reopened store sees them), a message someone is working on
//! is never changed under them (Busy after the wait, done once they let
//! go), unknown ids are told apart from failures, and the socket answers
//! bad requests and reports a missing server.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postern_proto::{Mailbox, ReversePath};
use postern_queue::admin::{AdminError, EntryState, QueueAdmin, format_entry, format_listing};
use postern_queue::control::{self, ControlError, FailureKind, Request, Response};
use postern_queue::{Envelope, LogStore, QueueId, RecipientState, Store};

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("postern-admin-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn enqueue(store: &Arc<LogStore>, body: &[u8], next_attempt: u64) -> QueueId {
    let mailbox = |t: &str| Mailbox::parse(t).unwrap().into_owned();
    let id = store.new_id();
    let mut w = store.writer(&id).unwrap();
    w.write(body).unwrap();
    let mut env = Envelope::new(
        id.clone(),
        ReversePath::Mailbox(mailbox("alice@example.org")),
    );
    env.next_attempt = next_attempt;
    env.recipients
        .push(RecipientState::pending(mailbox("bob@example.net"), false));
    drop(w.commit(&env).wait().unwrap());
    id
}

#[test]
fn changes_are_durable_and_wait_for_whoever_holds_the_message() {
    let dir = tempdir("durable");
    let (a, b) = {
        let store = LogStore::open(&dir).unwrap();
        let a = enqueue(&store, b"Subject: a\r\n\r\none\r\n", u64::MAX / 2);
        let b = enqueue(&store, &vec![b'x'; 300_000], 0);
        let admin = QueueAdmin::new(store.clone()).with_wait(Duration::from_millis(300));
        assert!(admin.hold(&a).unwrap());
        assert!(!admin.hold(&a).unwrap(), "a second hold changes nothing");
        assert_eq!(admin.retry_all().unwrap(), 1, "only b: a is held");
        assert!(
            admin.retry(&a).unwrap(),
            "retry of a held message sets it due"
        );

        // Someone (the runner) works on b: changes wait, then give up.
        let working = store.hold(&b).expect("b is free");
        assert_eq!(admin.show(&b).unwrap().state, EntryState::Active);
        match admin.remove(&b) {
            Err(AdminError::Busy { id, waited }) => {
                assert_eq!(id, b);
                assert!(waited >= Duration::from_millis(300));
            }
            other => panic!("{other:?}"),
        }
        // Once they let go, the change goes through.
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(working);
        });
        admin.remove(&b).unwrap();
        t.join().unwrap();
        (a, b)
    };
    // Reopened: a is still held and due; b is gone for good.
    let store = LogStore::open(&dir).unwrap();
    let admin = QueueAdmin::new(store.clone());
    let entry = admin.show(&a).unwrap();
    assert_eq!(entry.state, EntryState::Hold);
    assert_eq!(entry.envelope.next_attempt, 0);
    assert_eq!(entry.size, 19);
    assert!(matches!(admin.show(&b), Err(AdminError::UnknownId(id)) if id == b));
    assert!(matches!(admin.hold(&b), Err(AdminError::UnknownId(_))));
    assert!(
        store.due(u64::MAX).unwrap().is_empty(),
        "a held message is never due"
    );
    assert!(admin.release(&a).unwrap());
    assert_eq!(store.due(1).unwrap(), vec![a.clone()]);

    let listing = format_listing(&admin.list().unwrap());
    assert!(listing.contains(&a.to_string()), "{listing}");
    assert!(listing.contains("<alice@example.org>"), "{listing}");
    assert!(listing.contains("bob@example.net"), "{listing}");
    assert!(listing.contains("-- 1 Kbytes in 1 Request."), "{listing}");
    let shown = format_entry(&admin.show(&a).unwrap());
    assert!(
        shown.contains("recipient: bob@example.net: pending"),
        "{shown}"
    );
    assert!(shown.contains("next attempt: now"), "{shown}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_control_socket_answers_requests_and_refuses_garbage() {
    let dir = tempdir("socket");
    let store = LogStore::open(&dir.join("queue")).unwrap();
    let id = enqueue(&store, b"Subject: s\r\n\r\nbody\r\n", 0);
    let path = control::socket_path(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let listener = rt.block_on(async { control::bind(&path) }).unwrap();
    let admin = Arc::new(QueueAdmin::new(store.clone()));
    let server = rt.spawn(control::serve(listener, admin, stopped));
    let thread_rt = std::thread::spawn(move || {
        rt.block_on(async {
            let _ = server.await;
        })
    });

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only socket");
    }
    match control::request(&path, &Request::List).unwrap() {
        Response::Entries(e) => {
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].envelope.id, id);
        }
        other => panic!("{other:?}"),
    }
    let hold = Request::Hold { id: id.clone() };
    assert_eq!(
        control::request(&path, &hold).unwrap(),
        Response::Changed(1)
    );
    assert!(
        store.load(&id).unwrap().on_hold,
        "the change reached the store"
    );
    let unknown: QueueId = "0005e3b1a2c3d4000100000001".parse().unwrap();
    match control::request(&path, &Request::Remove { id: unknown }).unwrap() {
        Response::Error { kind, message } => {
            assert_eq!(kind, FailureKind::UnknownId);
            assert!(message.contains("0005e3b1a2c3d4000100000001"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Not a request of ours: a BadRequest answer, and the server goes on.
    let mut raw = std::os::unix::net::UnixStream::connect(&path).unwrap();
    raw.write_all(b"{\"op\":\"format_disk\"}\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(raw).read_line(&mut line).unwrap();
    let answer: Response = serde_json::from_str(&line).unwrap();
    assert!(
        matches!(
            answer,
            Response::Error {
                kind: FailureKind::BadRequest,
                ..
            }
        ),
        "{answer:?}"
    );
    assert!(matches!(
        control::request(&path, &Request::Show { id: id.clone() }).unwrap(),
        Response::Entry(_)
    ));

    stop.send(true).unwrap();
    thread_rt.join().unwrap();
    match control::request(&dir.join("nothing.sock"), &Request::List) {
        Err(ControlError::NotRunning { path, .. }) => assert!(path.ends_with("nothing.sock")),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
