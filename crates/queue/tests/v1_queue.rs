//! A queue written by the v1 format (strings for the sender, NOTIFY, ORCPT,
//! the TLS version and each recipient's diagnosis; `tests/data/v1-queue`,
//! made by the code before the typed envelope) is read with typed values
//! and delivered.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use postern_proto::{Body, Host, Mailbox, Notify, Ret, ReversePath, TlsVersion};
use postern_queue::log::{MessageKey, RecordKind};
use postern_queue::report::Diagnosis;
use postern_queue::runner::{Router, Runner, RunnerSettings};
use postern_queue::{Envelope, LogStore, QueueId, RcptStatus, RecipientState, SpoolBounces};
use postern_relay::{Route, StaticResolver, Target, TlsMode, TlsPolicy};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn copy_fixture(tag: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1-queue");
    let to = std::env::temp_dir().join(format!("postern-v1-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    to
}

const FIRST: &str = "066199c524fd8b888900000000";
const SECOND: &str = "066199c52a395a888900000001";

#[test]
fn v1_envelopes_load_with_typed_values() {
    let dir = copy_fixture("load");
    let spool = LogStore::open(&dir).unwrap();
    let first: QueueId = FIRST.parse().unwrap();
    let second: QueueId = SECOND.parse().unwrap();
    assert_eq!(spool.list().unwrap(), [first.clone(), second.clone()]);
    let env = spool.load(&first).unwrap();
    assert_eq!(env.sender.to_string(), "<alice@local.test>");
    assert!(matches!(&env.sender, ReversePath::Mailbox(m) if m.to_string() == "alice@local.test"));
    assert_eq!(env.params.ret, Some(Ret::Headers));
    assert_eq!(env.params.body, Some(Body::EightBitMime));
    assert_eq!(env.params.envid.as_deref(), Some("v1-envid"));
    assert_eq!(env.tls_version, Some(TlsVersion::Tls13));
    let bob = &env.recipients[0];
    assert_eq!(bob.notify, Notify::from_keyword("SUCCESS,FAILURE"));
    let orcpt = bob.orcpt.as_ref().unwrap();
    assert_eq!(
        (&*orcpt.addr_type, &*orcpt.address),
        ("rfc822", "Bob@Example.NET")
    );
    assert!(
        matches!(&env.recipients[1].status, RcptStatus::Deferred(d) if d.to_string().starts_with("451 4.3.0"))
    );
    // The v1 reply text became a typed diagnosis, once, at load.
    let carol = env.recipients[1].status.diagnosis().unwrap();
    assert_eq!(carol.status.to_string(), "4.3.0");
    let reply = carol.reply.as_ref().unwrap();
    assert_eq!(
        (reply.code().get(), reply.text().as_str()),
        (451, "try again later")
    );
    assert_eq!(
        carol.remote_mta.as_deref(),
        Some("localhost[127.0.0.1]:2525")
    );
    assert!(matches!(
        env.recipients[2].status,
        RcptStatus::Delivered { .. }
    ));
    let env2 = spool.load(&second).unwrap();
    assert_eq!(env2.sender, ReversePath::Null);
    assert_eq!(
        env2.recipients[1].address,
        Mailbox::parse("frank@[192.0.2.7]").unwrap()
    );
    assert!(matches!(env2.recipients[1].host(), Host::Literal(_)));
    let gone = env2.recipients[2].status.diagnosis().unwrap();
    assert!(matches!(env2.recipients[2].status, RcptStatus::Failed(_)));
    assert_eq!(
        (gone.status.to_string(), gone.remote_host()),
        ("5.1.1".to_owned(), Some("mx.example.net"))
    );
    assert_eq!(env2.recipients[2].notify, Some(Notify::Never));
    assert_eq!(env2.next_attempt, 1_764_614_800);
    // Written back in the typed form, it reads the same.
    spool.update(&first, &env).unwrap();
    assert_eq!(spool.load(&first).unwrap(), env);
    // The stored text: the newest envelope or state record in the log.
    let key = MessageKey::new(u128::from_str_radix(FIRST, 16).unwrap()).unwrap();
    let records = spool
        .log()
        .records_of(key, |k| k != RecordKind::Body)
        .unwrap();
    let text = String::from_utf8(records.last().unwrap().payload.clone()).unwrap();
    assert!(text.contains("sender = \"<alice@local.test>\""), "{text}");
    assert!(!text.contains("reply = \""), "no reply text left: {text}");
    spool.update(&second, &env2).unwrap();
    assert_eq!(spool.load(&second).unwrap(), env2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every recipient to one plaintext smart host.
#[derive(Debug)]
struct ToSink(u16);

impl Router for ToSink {
    fn route(&self, _: &Envelope, _: &RecipientState) -> Result<Route, Diagnosis> {
        Ok(Route::new(
            Target::smart_host("localhost", self.0),
            TlsPolicy::new(TlsMode::None),
        ))
    }
}

/// Accepts everything (offering DSN) and records the command lines.
async fn sink(listener: TcpListener, log: Arc<Mutex<Vec<String>>>) {
    while let Ok((sock, _)) = listener.accept().await {
        let log = log.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = sock.into_split();
            let mut rd = BufReader::new(rd);
            let _ = wr.write_all(b"220 sink ESMTP\r\n").await;
            let mut data = false;
            let mut line = String::new();
            loop {
                line.clear();
                if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if data {
                    if line == ".\r\n" {
                        data = false;
                        let _ = wr.write_all(b"250 2.0.0 queued\r\n").await;
                    }
                    continue;
                }
                log.lock().unwrap().push(line.trim_end().to_owned());
                let reply: &[u8] = match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                    "EHLO" => b"250-sink\r\n250-8BITMIME\r\n250 DSN\r\n",
                    "DATA" => {
                        data = true;
                        b"354 go\r\n"
                    }
                    "QUIT" => {
                        let _ = wr.write_all(b"221 bye\r\n").await;
                        return;
                    }
                    _ => b"250 ok\r\n",
                };
                let _ = wr.write_all(reply).await;
            }
        });
    }
}

#[tokio::test]
async fn a_v1_queue_is_delivered() {
    let dir = copy_fixture("deliver");
    let spool = LogStore::open(&dir).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(sink(listener, log.clone()));
    let resolver = StaticResolver::new().with_host("localhost", ["127.0.0.1".parse().unwrap()]);
    let bounces = SpoolBounces::new(spool.clone(), "mx.local.test").local_domains(["local.test"]);
    let runner = Runner::new(
        spool.clone(),
        RunnerSettings::new("mx.local.test"),
        ToSink(port),
        bounces,
    )
    .with_resolver(Arc::new(resolver))
    .with_clock(Arc::new(|| 1_764_700_000));
    let report = runner.run_once().await;
    assert_eq!(report.delivered, 4, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    let log = log.lock().unwrap().clone();
    // The typed DSN parameters went out as they came in.
    assert!(
        log.iter()
            .any(|l| l.starts_with("MAIL FROM:<alice@local.test>")
                && l.contains("RET=HDRS")
                && l.contains("ENVID=v1-envid")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("RCPT TO:<bob@example.net>")
                && l.contains("NOTIFY=SUCCESS,FAILURE")
                && l.contains("ORCPT=rfc822;Bob@Example.NET")),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.starts_with("MAIL FROM:<>")), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("RCPT TO:<frank@[192.0.2.7]>")),
        "{log:?}"
    );
    // Both messages are finished and gone.
    assert!(spool.list_all().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
