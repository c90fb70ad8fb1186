//! The tokio driver: owns the socket, feeds the [`Client`], runs TLS
//! handshakes in place with tokio-rustls, and applies the timeouts.

mod connector;
mod stream;

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

pub use connector::Connector;

use crate::client::{Client, ClientEvent, SessionConfig, TlsRequirement};
use crate::dane::{DaneError, DaneVerifier};
use crate::error::{Phase, RelayError};
use crate::message::Message;
use crate::result::MessageResult;
use crate::tls::{OutboundTls, server_name};
use crate::tlsrpt::ResultType;
use connector::Start;
use stream::Stream;

/// What [`Connection::open_recorded`] found: the connection or why not,
/// for TLS-RPT the result type of a failed handshake or refused audit, and
/// the local address of the (first) TCP connection.
pub(crate) struct Opened {
    pub(crate) result: Result<Connection, RelayError>,
    pub(crate) tls_failure: Option<ResultType>,
    pub(crate) local_ip: Option<IpAddr>,
}

/// An SMTP connection to one server, ready for messages.
///
/// Several messages may go over one connection ([`Connection::send`] in
/// turn); finish with [`Connection::quit`].
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    client: Client,
    config: Arc<SessionConfig>,
    rustls: Option<Arc<rustls::ClientConfig>>,
    verified: bool,
    dane: Option<Arc<DaneVerifier>>,
    audit: Option<Arc<dyn ServerCertVerifier>>,
    /// Why TLS failed, or what the audit verifier refused (TLS-RPT).
    tls_failure: Option<ResultType>,
    name: String,
    server: String,
    buf: Box<[u8]>,
    /// Octets of `buf` read from the socket but not yet taken by the client.
    unread: Range<usize>,
}

impl Connection {
    /// Connects to `addr` and sets the session up (greeting, EHLO,
    /// STARTTLS or implicit TLS, AUTH) as `connector` and `config` say.
    /// `name` is the server's host name: the certificate is verified
    /// against it when the policy verifies.
    ///
    /// With an opportunistic policy, a failed handshake is followed by one
    /// more connection in plaintext (RFC 7435 §4); no other failure is.
    pub async fn open(
        addr: SocketAddr,
        name: &str,
        config: Arc<SessionConfig>,
        connector: &Connector,
    ) -> Result<Self, RelayError> {
        Self::open_recorded(addr, name, config, connector)
            .await
            .result
    }

    /// [`Connection::open`], with the TLS-RPT result type (RFC 8460 §4.3)
    /// of a handshake that failed (also when an opportunistic policy then
    /// went on in plaintext) or of a certificate the connector's audit
    /// verifier refused, and the local address the session came from.
    pub(crate) async fn open_recorded(
        addr: SocketAddr,
        name: &str,
        config: Arc<SessionConfig>,
        connector: &Connector,
    ) -> Opened {
        let requirement = match connector.start {
            Start::StartTls(r) => r,
            Start::Implicit => TlsRequirement::Required,
        };
        let mut local_ip = None;
        let first =
            Self::open_with(addr, name, &config, connector, requirement, &mut local_ip).await;
        let (result, tls_failure) = match first {
            Err((RelayError::TlsHandshake(reason), failure))
                if requirement == TlsRequirement::Opportunistic =>
            {
                tracing::warn!(%addr, %reason, "opportunistic TLS handshake failed; retrying in plaintext");
                let retry = Self::open_with(
                    addr,
                    name,
                    &config,
                    connector,
                    TlsRequirement::Plain,
                    &mut None,
                )
                .await;
                (retry.map_err(|(e, _)| e), failure)
            }
            Err((e, failure)) => (Err(e), failure),
            Ok(conn) => {
                let failure = conn.tls_failure;
                (Ok(conn), failure)
            }
        };
        Opened {
            result,
            tls_failure,
            local_ip,
        }
    }

    async fn open_with(
        addr: SocketAddr,
        name: &str,
        config: &Arc<SessionConfig>,
        connector: &Connector,
        requirement: TlsRequirement,
        local_ip: &mut Option<IpAddr>,
    ) -> Result<Self, (RelayError, Option<ResultType>)> {
        let config = if config.tls == requirement {
            config.clone()
        } else {
            Arc::new(SessionConfig {
                tls: requirement,
                ..(**config).clone()
            })
        };
        let t = config.timeouts;
        let tcp = match timeout(t.connect, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err((
                    RelayError::Io {
                        phase: Phase::Connect,
                        message: format!("{addr}: {e}"),
                    },
                    None,
                ));
            }
            Err(_) => return Err((RelayError::Timeout(Phase::Connect), None)),
        };
        let _ = tcp.set_nodelay(true);
        *local_ip = tcp.local_addr().ok().map(|a| a.ip());
        let mut conn = Self {
            stream: Stream::Plain(tcp),
            client: Client::new(config.clone()),
            config,
            rustls: connector.rustls.clone(),
            verified: connector.verified,
            dane: connector.dane.clone(),
            audit: connector.audit.clone(),
            tls_failure: None,
            name: name.to_owned(),
            server: format!("{name}[{}]:{}", addr.ip(), addr.port()),
            buf: vec![0; 16 * 1024].into_boxed_slice(),
            unread: 0..0,
        };
        if connector.start == Start::Implicit {
            let info = match conn.handshake().await {
                Ok(info) => info,
                Err(e) => return Err((e, conn.tls_failure)),
            };
            conn.client = Client::new_tls(conn.config.clone(), info);
        }
        loop {
            match conn.step().await {
                Some(ClientEvent::Ready) => return Ok(conn),
                Some(ClientEvent::Failed(e)) => {
                    conn.stream.shutdown().await;
                    return Err((e, conn.tls_failure));
                }
                Some(_) => {}
                None => return Err((RelayError::Closed(Phase::Greeting), conn.tls_failure)),
            }
        }
    }

    /// Delivers one message and returns its per-recipient result. A
    /// connection-level failure fails the message's undecided recipients
    /// and leaves the connection unusable ([`Connection::is_usable`]).
    pub async fn send(&mut self, message: Message) -> MessageResult {
        let recipients: Vec<_> = message.recipients.iter().map(|r| r.to.clone()).collect();
        if let Err(not_ready) = self.client.send(message) {
            let _ = not_ready;
            let error = RelayError::Protocol {
                phase: Phase::Idle,
                what: "connection not ready for a message".into(),
            };
            return self.stamp(MessageResult::failed(&recipients, &error));
        }
        loop {
            match self.step().await {
                Some(ClientEvent::Done(result)) => return self.stamp(result),
                Some(_) => {}
                None => {
                    let error = RelayError::Closed(Phase::Idle);
                    return self.stamp(MessageResult::failed(&recipients, &error));
                }
            }
        }
    }

    /// Sends QUIT, waits for the reply (bounded by the command timeout) and
    /// closes.
    pub async fn quit(mut self) {
        self.client.quit();
        while let Some(event) = self.step().await {
            if matches!(event, ClientEvent::Closed | ClientEvent::Failed(_)) {
                break;
            }
        }
        self.stream.shutdown().await;
    }

    /// The connection can take another message.
    pub fn is_usable(&self) -> bool {
        self.client.is_ready()
    }

    /// The TLS session, if any.
    pub fn tls(&self) -> Option<&OutboundTls> {
        self.client.tls()
    }

    /// The server as `name[address]:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn stamp(&self, mut result: MessageResult) -> MessageResult {
        result.server = Some(self.server.clone());
        result
    }

    /// Runs IO until the client has an event for the caller; `None` when
    /// the client waits for nothing (idle or closed).
    async fn step(&mut self) -> Option<ClientEvent> {
        loop {
            if self.client.has_output() {
                self.write_output().await;
                continue;
            }
            if let Some(event) = self.client.poll_event() {
                if event == ClientEvent::StartTlsNow {
                    match self.handshake().await {
                        Ok(info) => self.client.tls_established(info),
                        Err(RelayError::TlsHandshake(reason)) => self.client.tls_failed(reason),
                        Err(e) => self.client.tls_failed(e.to_string()),
                    }
                    continue;
                }
                return Some(event);
            }
            if !self.unread.is_empty() {
                let taken = self.client.receive(&self.buf[self.unread.clone()]);
                self.unread.start += taken;
                if taken == 0 {
                    // The client takes input whenever it is not over (it
                    // fails itself rather than hold more than its bound),
                    // so this means it has stopped making progress.
                    self.unread = 0..0;
                    self.client.on_io_error("the client took no input");
                }
                continue;
            }
            let (_, limit) = self.client.timeout()?;
            match timeout(limit, self.stream.read(&mut self.buf)).await {
                Ok(Ok(0)) => self.client.on_closed(),
                Ok(Ok(n)) => self.unread = 0..n,
                Ok(Err(e)) => self.client.on_io_error(e.to_string()),
                Err(_) => self.client.on_timeout(),
            }
        }
    }

    /// Writes the client's output, each write bounded by the data-block
    /// timeout (RFC 5321 §4.5.3.2), then flushes TLS records. A failure is
    /// the client's: it drops its output and fails the session.
    async fn write_output(&mut self) {
        let limit = self.config.timeouts.data_block;
        while self.client.has_output() {
            match timeout(limit, self.stream.write(self.client.output())).await {
                Ok(Ok(0)) => self
                    .client
                    .on_io_error("the connection accepts no more octets"),
                Ok(Ok(n)) => self.client.consume_output(n),
                Ok(Err(e)) => self.client.on_io_error(e.to_string()),
                Err(_) => self.client.on_timeout(),
            }
        }
        match timeout(limit, self.stream.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.client.on_io_error(e.to_string()),
            Err(_) => self.client.on_timeout(),
        }
    }

    /// Upgrades the socket in place. Every octet read so far has gone to
    /// the client, which has checked that none followed the 220, so the
    /// TLS layer starts on a clean stream.
    async fn handshake(&mut self) -> Result<OutboundTls, RelayError> {
        let Some(config) = self.rustls.clone() else {
            return Err(RelayError::Config(
                "TLS requested by a policy without TLS".into(),
            ));
        };
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(RelayError::TlsHandshake(
                "connection is not plaintext".into(),
            ));
        };
        let name = server_name(&self.name)?;
        let connect = TlsConnector::from(config).connect(name.clone(), tcp);
        let tls = match timeout(self.config.timeouts.tls_handshake, connect).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                // RFC 8460 §4.3.2.1: no TLSA record matched the server.
                self.tls_failure = Some(match dane_error(&e) {
                    Some(_) => ResultType::TlsaInvalid,
                    None => ResultType::of_handshake(&e),
                });
                return Err(RelayError::TlsHandshake(handshake_failure(&e)));
            }
            Err(_) => return Err(RelayError::Timeout(Phase::Handshake)),
        };
        if let Some(audit) = &self.audit {
            self.tls_failure = audit_failure(audit.as_ref(), tls.get_ref().1, &name);
            if let Some(failure) = self.tls_failure {
                tracing::warn!(server = %self.server, ?failure, "certificate would not verify (reported, not enforced)");
            }
        }
        let mut info = OutboundTls::from_connection(tls.get_ref().1, self.verified, &self.name)
            .ok_or_else(|| RelayError::TlsHandshake("no negotiated version or cipher".into()))?;
        info.dane = self.dane.as_ref().and_then(|v| v.matched());
        tracing::debug!(server = %self.server, %info, "TLS established");
        self.stream = Stream::Tls(Box::new(tls));
        Ok(info)
    }
}

/// What `audit` says of the certificate `conn`'s server presented.
fn audit_failure(
    audit: &dyn ServerCertVerifier,
    conn: &rustls::ClientConnection,
    name: &ServerName<'static>,
) -> Option<ResultType> {
    let Some((end_entity, intermediates)) = conn.peer_certificates().and_then(|c| c.split_first())
    else {
        return Some(ResultType::ValidationFailure);
    };
    audit
        .verify_server_cert(end_entity, intermediates, name, &[], UnixTime::now())
        .err()
        .map(|e| ResultType::of_rustls(&e))
}

/// The DANE verifier's refusal inside a failed handshake, if that is why.
fn dane_error(e: &std::io::Error) -> Option<&DaneError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(DaneError::from_rustls)
}

/// A handshake error for logs and bounces: a DANE refusal by its own
/// message (rustls prints only the debug form of a verifier's error).
fn handshake_failure(e: &std::io::Error) -> String {
    match dane_error(e) {
        Some(d) => format!("DANE authentication failed: {d}"),
        None => e.to_string(),
    }
}
