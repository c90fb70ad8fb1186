//! What EHLO advertises and what AUTH accepts come from one evaluation of
//! the rules with the connection's own facts: a rule keyed on `remote_ip`
//! hides AUTH from one client address (and the session refuses it there)
//! while another address still sees and uses it.

mod common;

use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Ports, Server, TempDir, config_text};

/// Plaintext AUTH for everyone (so the test needs no TLS client), then
/// no AUTH at all from 127.0.0.2. Later rules win, so these come after
/// the test configuration's own.
const RULES: &str = r#"
[[rule]]
name = "plaintext_auth_for_the_test"
actions = [{ plain_auth = ["PLAIN", "LOGIN"] }]

[[rule]]
name = "no_auth_from_127_0_0_2"
conditions = [{ remote_ip = { is = "127.0.0.2" } }]
actions = [{ plain_auth = "off" }, { tls_auth = "off" }]
"#;

fn start(dir: &TempDir) -> Server {
    let ports = Ports::free();
    let data = dir.path().join("data");
    let config = dir.path().join("postern.toml");
    fs::write(&config, config_text(ports, &data, "") + RULES).expect("write config");
    let mut s = Server {
        child: None,
        ports,
        dir: dir.path().to_owned(),
        data,
        config,
        log: dir.path().join("server.log"),
    };
    s.add_user("alice", "alice-pw");
    s.restart();
    s
}

/// A plaintext client connected from `source` (any port).
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect_from(source: &str, port: u16) -> Client {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let tcp = rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(format!("{source}:0").parse::<SocketAddr>().unwrap())
                .unwrap();
            socket
                .connect(SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .expect("connect")
        });
        let tcp = tcp.into_std().unwrap();
        tcp.set_nonblocking(false).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Client {
            reader: BufReader::new(tcp.try_clone().unwrap()),
            writer: tcp,
        };
        assert!(c.reply().starts_with("220 "));
        c
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "closed");
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }
}

/// `\0alice\0alice-pw`, base64.
const ALICE: &str = "AGFsaWNlAGFsaWNlLXB3";

#[test]
fn a_remote_ip_rule_hides_auth_in_ehlo_and_refuses_it() {
    let dir = TempDir::new("auth-remote-ip");
    let server = start(&dir);
    let port = server.ports.mta;

    let mut trusted = Client::connect_from("127.0.0.1", port);
    let ehlo = trusted.cmd("EHLO client.test");
    assert!(ehlo.contains("250 AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    let auth = trusted.cmd(&format!("AUTH PLAIN {ALICE}"));
    assert!(auth.starts_with("235 "), "{auth}");

    let mut other = Client::connect_from("127.0.0.2", port);
    let ehlo = other.cmd("EHLO client.test");
    assert!(ehlo.starts_with("250-mx.test\r\n"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "hidden from 127.0.0.2: {ehlo}");
    // Refused by the session before any credential is read: it offered
    // nothing here, and its configuration would offer PLAIN over TLS, so
    // the refusal is RFC 4954's 538.
    let auth = other.cmd(&format!("AUTH PLAIN {ALICE}"));
    assert!(auth.starts_with("538 5.7.11 "), "{auth}");
    let mail = other.cmd("MAIL FROM:<alice@mydomain.test> AUTH=<>");
    assert!(
        mail.starts_with("555 5.5.4"),
        "AUTH= not offered either: {mail}"
    );

    // The trusted address is unaffected by the other's connection.
    let mut again = Client::connect_from("127.0.0.1", port);
    assert!(again.cmd("EHLO client.test").contains("AUTH PLAIN LOGIN"));
}
