//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS against the real binary (issue 15,
//! item 5), on the submission listener after STARTTLS, with `tls_auth`
//! naming them in the rules.
//!
//! - SCRAM-SHA-256 is driven by a client we did not write: Python's
//!   `scramp` computes every message, `smtplib` carries them in a real
//!   SMTP AUTH exchange; the server's signature is checked by scramp.
//! - SCRAM-SHA-256-PLUS needs the `tls-exporter` channel binding (RFC
//!   9266), and no outside client here can give it: scramp 1.5 refuses
//!   `tls-exporter` by name, and Python's `ssl` module has no keying
//!   material exporter (only `get_channel_binding("tls-unique")`, which
//!   TLS 1.3 does not define). So -PLUS is tested with our own client code
//!   below: rustls' exporter and the RFC 5802 arithmetic, written apart
//!   from the server's.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Server, TempDir, run};
use hmac::{Hmac, Mac as _};
use postern_testkit::python_with;
use sha2::{Digest as _, Sha256};

const T: Duration = Duration::from_secs(30);

/// A server whose rules offer SCRAM over TLS, before PLAIN and LOGIN.
fn start(dir: &std::path::Path) -> Server {
    let mut server = Server::start(dir, "");
    let text = fs::read_to_string(&server.config).unwrap().replace(
        r#"tls_auth = ["PLAIN", "LOGIN"]"#,
        r#"tls_auth = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"]"#,
    );
    fs::write(&server.config, text).unwrap();
    server.restart();
    server
}

const SCRAMP: &str = r#"
import base64, json, smtplib, ssl, sys
import scramp
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = {}
def b64(s): return base64.b64encode(s.encode()).decode()
def unb64(b): return base64.b64decode(b).decode()
def scram(password):
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=20)
    s.ehlo()
    out.setdefault("plain_auth", s.esmtp_features.get("auth"))
    s.starttls(context=ctx)
    s.ehlo()
    out["tls_auth"] = s.esmtp_features.get("auth")
    c = scramp.ScramClient(["SCRAM-SHA-256"], "alice", password)
    code, resp = s.docmd("AUTH", "SCRAM-SHA-256 " + b64(c.get_client_first()))
    assert code == 334, (code, resp)
    c.set_server_first(unb64(resp))
    code, resp = s.docmd(b64(c.get_client_final()))
    if code != 334:
        return [code, resp.decode()]
    c.set_server_final(unb64(resp))  # raises unless the server proved its keys
    code, resp = s.docmd("")
    if code == 235:
        s.mail("alice@localhost")
        s.rcpt("alice@localhost")
        code2, text = s.data("Subject: scram\r\n\r\nvia SCRAM-SHA-256\r\n")
        out["data"] = [code2, text.decode()]
    s.quit()
    return [code, resp.decode()]
out["good"] = scram("alice-pw")
out["bad"] = scram("wrong-pw")
print(json.dumps(out))
"#;

#[test]
fn scramp_authenticates_with_scram_sha_256_over_starttls() {
    let Some(python) = python_with("scramp") else {
        return;
    };
    let dir = TempDir::new("scram-scramp");
    let server = start(dir.path());
    let (code, out) = run(
        Command::new(python)
            .arg("-c")
            .arg(SCRAMP)
            .arg(server.ports.submission.to_string()),
        T,
    );
    assert_eq!(code, Some(0), "{out}\nserver log:\n{}", server.log_text());
    let json = out.lines().last().unwrap_or_default();
    let has = |needle: &str| assert!(json.contains(needle), "{needle} not in {json}");
    has(r#""plain_auth": null"#);
    // Offered over TLS (in the session's order, not the rules' list's).
    for m in [" SCRAM-SHA-256-PLUS", " SCRAM-SHA-256", " PLAIN", " LOGIN"] {
        has(m);
    }
    has(r#""good": [235, "2.7.0 "#);
    has(r#""bad": [535, "5.7.8 "#);
    has(r#""data": [250, "#);
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("authenticated") && l.contains("mechanism=SCRAM-SHA-256")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("authentication failed") && l.contains("mechanism=SCRAM-SHA-256")),
        "{log}"
    );
}

/// Accepts the test server's self-signed certificate (this client checks
/// SCRAM, not the PKI).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn reply(r: &mut BufReader<Tls>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return all;
        }
    }
}

fn cmd(r: &mut BufReader<Tls>, line: &str) -> String {
    r.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .unwrap();
    r.get_mut().flush().unwrap();
    reply(r)
}

/// A TLS connection to submission after STARTTLS and EHLO; returns the
/// stream, the EHLO reply and this session's tls-exporter value.
fn starttls(port: u16) -> (BufReader<Tls>, String, Vec<u8>) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(T)).unwrap();
    let mut plain = BufReader::new(tcp.try_clone().unwrap());
    let mut line = String::new();
    let mut read_reply = |plain: &mut BufReader<TcpStream>| loop {
        line.clear();
        plain.read_line(&mut line).unwrap();
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.clone();
        }
    };
    assert!(read_reply(&mut plain).starts_with("220"));
    tcp.write_all(b"EHLO client.test\r\n").unwrap();
    read_reply(&mut plain);
    tcp.write_all(b"STARTTLS\r\n").unwrap();
    assert!(read_reply(&mut plain).starts_with("220"));
    let provider = Arc::new(postern_listener::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "mx.test".try_into().unwrap()).unwrap();
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let ehlo = cmd(&mut tls, "EHLO client.test");
    let exporter = tls
        .get_ref()
        .conn
        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
        .unwrap()
        .to_vec();
    (tls, ehlo, exporter)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256>>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// One SCRAM-SHA-256-PLUS exchange (RFC 5802 §3, client side) binding
/// `cb_data`; returns the final reply.
fn plus_exchange(tls: &mut BufReader<Tls>, password: &str, cb_data: &[u8]) -> String {
    let gs2 = "p=tls-exporter,,";
    let bare = "n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
    let r = cmd(
        tls,
        &format!(
            "AUTH SCRAM-SHA-256-PLUS {}",
            B64.encode(format!("{gs2}{bare}"))
        ),
    );
    assert!(r.starts_with("334 "), "{r}");
    let server_first = String::from_utf8(B64.decode(r[4..].trim()).unwrap()).unwrap();
    let field = |k: &str| {
        server_first
            .split(',')
            .find_map(|f| f.strip_prefix(k))
            .unwrap()
            .to_owned()
    };
    let (nonce, salt, iter) = (field("r="), B64.decode(field("s=")).unwrap(), field("i="));
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        password.as_bytes(),
        &salt,
        iter.parse().unwrap(),
        &mut salted,
    );
    let client_key = hmac(&salted, b"Client Key");
    let stored = Sha256::digest(&client_key);
    let mut cbind = gs2.as_bytes().to_vec();
    cbind.extend_from_slice(cb_data);
    let without = format!("c={},r={nonce}", B64.encode(&cbind));
    let auth = format!("{bare},{server_first},{without}");
    let sig = hmac(&stored, auth.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    let r = cmd(
        tls,
        &B64.encode(format!("{without},p={}", B64.encode(proof))),
    );
    if !r.starts_with("334 ") {
        return r;
    }
    let expected = hmac(&hmac(&salted, b"Server Key"), auth.as_bytes());
    let v = String::from_utf8(B64.decode(r[4..].trim()).unwrap()).unwrap();
    assert_eq!(v, format!("v={}", B64.encode(expected)), "server signature");
    cmd(tls, "")
}

#[test]
fn scram_sha_256_plus_binds_the_tls_exporter() {
    let dir = TempDir::new("scram-plus");
    let server = start(dir.path());
    let (mut tls, ehlo, exporter) = starttls(server.ports.submission);
    let auth = ehlo
        .lines()
        .find(|l| l.get(4..).is_some_and(|l| l.starts_with("AUTH ")));
    for m in ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"] {
        assert!(
            auth.is_some_and(|a| a.split_whitespace().any(|w| w == m)),
            "{m} not in {ehlo}"
        );
    }
    assert_eq!(exporter.len(), 32);
    // Another TLS session's exporter value, as a relaying middlebox would
    // have: refuted.
    let mut other = exporter.clone();
    other[0] ^= 1;
    let r = plus_exchange(&mut tls, "alice-pw", &other);
    assert!(r.starts_with("535 5.7.8"), "{r}");
    let r = plus_exchange(&mut tls, "wrong", &exporter);
    assert!(r.starts_with("535 5.7.8"), "{r}");
    let r = plus_exchange(&mut tls, "alice-pw", &exporter);
    assert!(r.starts_with("235 2.7.0"), "{r}\n{}", server.log_text());
    assert!(cmd(&mut tls, "QUIT").starts_with("221"));
    assert!(
        server
            .log_text()
            .lines()
            .any(|l| l.contains("authenticated") && l.contains("mechanism=SCRAM-SHA-256-PLUS")),
        "{}",
        server.log_text()
    );
}
