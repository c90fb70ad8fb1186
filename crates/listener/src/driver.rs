//! One connection: runs a `postern-session` over any stream, asks the
//! embedder its questions and tells it the notices, upgrades in place on
//! STARTTLS.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use postern_proto::TlsVersion;
use postern_session::{
    CloseReason, ConnectionInfo, Decision, Event, Notice, Question, Session, TlsInfo,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::timeout;

use crate::error::ConnectionError;
use crate::handler::{ConnectionHandler, ConnectionView};
use crate::listener::Shared;
use crate::observe::{Answer, Closed, HandshakeFailure, reply_status};
use crate::proxy::ProxyError;
use crate::stream::{Read, Stream};

/// The two ends of the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addrs {
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
}

/// The TLS handshake; a failure is told to the observer.
async fn handshake<S>(shared: &Shared, io: S) -> Result<(Stream<S>, TlsInfo), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let result = handshake_inner(shared, io).await;
    if let (Err(e), Some(o)) = (&result, &shared.observer) {
        o.handshake_failed(
            &shared.name,
            HandshakeFailure::of(e).unwrap_or(HandshakeFailure::Other),
        );
    }
    result
}

async fn handshake_inner<S>(shared: &Shared, io: S) -> Result<(Stream<S>, TlsInfo), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(tls) = &shared.tls else {
        // `Listener::new` refuses TLS modes without settings.
        return Err(ConnectionError::Handshake(std::io::Error::other(
            "no TLS configured",
        )));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    match timeout(shared.limits.handshake_timeout, acceptor.accept(io)).await {
        Err(_) => Err(ConnectionError::HandshakeTimeout),
        Ok(Err(e)) => Err(match crate::proxy::untrusted(&e) {
            Some(peer) => ConnectionError::Proxy(ProxyError::Untrusted { peer }),
            None => ConnectionError::Handshake(e),
        }),
        Ok(Ok(stream)) => {
            let Some(info) = tls_info(stream.get_ref().1, tls.client_auth) else {
                return Err(ConnectionError::Handshake(std::io::Error::other(
                    "TLS version not known",
                )));
            };
            tracing::info!(
                version = %info.version,
                cipher = %info.cipher,
                group = %info.group.as_deref().unwrap_or("-"),
                sni = %info.sni.as_deref().unwrap_or("-"),
                client_cert = info.client_certificate.is_some(),
                "TLS established"
            );
            Ok((Stream::Tls(Box::new(stream)), info))
        }
    }
}

/// What the handshake negotiated; `None` when rustls reports a version
/// it does not name (it speaks only TLS 1.2 and 1.3, so never).
fn tls_info(conn: &rustls::ServerConnection, client_auth: bool) -> Option<TlsInfo> {
    let version = TlsVersion::from_wire(u16::from(conn.protocol_version()?))?;
    let cipher = conn
        .negotiated_cipher_suite()
        .map_or_else(String::new, |s| format!("{:?}", s.suite()));
    let client_certificate = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let mut info = TlsInfo::new(version, cipher);
    info.group = conn
        .negotiated_key_exchange_group()
        .map(|g| crate::policy::group_name(g.name()));
    info.sni = conn.server_name().map(str::to_owned);
    info.alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    // The verifier rejects a certificate that does not verify, so one that
    // is present here did.
    info.client_cert_verified = client_auth && client_certificate.is_some();
    info.client_certificate = client_certificate;
    // RFC 9266: tls-exporter is for TLS 1.3 (TLS 1.2 only with the
    // extended master secret, which rustls does not report), so -PLUS is
    // offered only there.
    if version == TlsVersion::Tls13 {
        info.tls_exporter = conn
            .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
            .ok()
            .map(|k| k.to_vec());
    }
    Some(info)
}

async fn write<S>(
    stream: &mut Stream<S>,
    session: &mut Session,
    limit: Duration,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !session.has_output() {
        return Ok(());
    }
    // Written from the session's buffer, which keeps its capacity.
    match timeout(limit, stream.write_all(session.output())).await {
        Ok(Ok(())) => {
            session.consume_output(session.output().len());
            Ok(())
        }
        Ok(Err(e)) => Err(ConnectionError::Write(e)),
        Err(_) => Err(ConnectionError::WriteTimeout),
    }
}

/// Serves one connection to the end: the handshake on an implicit-TLS
/// listener, then the session, with RFC 5321 §4.5.3.2 timeouts. The
/// observer is told when it ends, with the TLS version it ended on.
pub(crate) async fn run<S, C>(
    shared: &Shared,
    io: S,
    addrs: Addrs,
    conn: &mut C,
    shutdown: watch::Receiver<bool>,
) -> Result<CloseReason, ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    C: ConnectionHandler,
{
    let started = Instant::now();
    let mut tls = None;
    let result = serve(shared, io, addrs, conn, shutdown, &mut tls).await;
    if let Some(o) = &shared.observer {
        let mut closed = Closed::new(&shared.name, tls);
        closed.duration = started.elapsed();
        o.closed(&closed);
    }
    result
}

async fn serve<S, C>(
    shared: &Shared,
    io: S,
    addrs: Addrs,
    conn: &mut C,
    mut shutdown: watch::Receiver<bool>,
    tls_version: &mut Option<TlsVersion>,
) -> Result<CloseReason, ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    C: ConnectionHandler,
{
    let limits = shared.limits;
    let (mut stream, tls) = if shared.mode == crate::Mode::Implicit {
        let (s, info) = handshake(shared, io).await?;
        *tls_version = Some(info.version);
        (s, Some(info))
    } else {
        (Stream::Plain(io), None)
    };
    let mut info = ConnectionInfo::new(addrs.peer, addrs.local);
    info.tls = tls;
    // Legacy networks may end command lines with a bare LF; everyone else
    // gets 521 and a close for one.
    let config = match &shared.bare_lf_session {
        Some((nets, legacy)) if nets.contains(addrs.peer.ip()) => legacy.clone(),
        _ => shared.session.clone(),
    };
    let mut session = Session::new(config, info);
    let mut state = ConnState::default();
    let mut shutdown_seen = *shutdown.borrow();
    let mut shutdown_at = None;
    if shutdown_seen {
        shutdown_at = Some(Instant::now());
        session.shutdown();
    }
    // Octets read but not yet taken by the session (backpressure).
    let mut held: Vec<u8> = Vec::new();
    // Outside a body, `command_timeout` is a deadline for the next complete
    // command counted from the last reply written, not a per-read timeout:
    // a client dripping one octet at a time (slowloris) must not hold its
    // slot forever by resetting the timer with every octet.
    let mut last_reply = Instant::now();
    // A guarded stream's first read failed on a PROXY header from an
    // untrusted address.
    let mut forged = None;

    loop {
        if let Some(peer) = forged {
            session.peer_closed();
            deliver(&mut session, conn, shared, addrs, &mut state).await;
            let _ = timeout(Duration::from_secs(1), stream.shutdown()).await;
            return Err(ConnectionError::Proxy(ProxyError::Untrusted { peer }));
        }
        // 1. Questions answered and notices told, in order.
        deliver(&mut session, conn, shared, addrs, &mut state).await;
        // 2. Replies, one write per batch.
        let replied = session.has_output();
        if let Err(e) = write(&mut stream, &mut session, limits.write_timeout).await {
            session.peer_closed();
            deliver(&mut session, conn, shared, addrs, &mut state).await;
            return Err(e);
        }
        if replied {
            last_reply = Instant::now();
        }
        if session.is_closed() {
            let _ = timeout(Duration::from_secs(1), stream.shutdown()).await;
            return Ok(session.close_reason().unwrap_or(CloseReason::PeerClosed));
        }
        // 3. STARTTLS: plaintext already read goes to the session, which
        // drops it; the handshake reads only what arrives afterwards.
        if session.awaiting_tls() {
            if !held.is_empty() {
                session.receive(&held);
                held.clear();
                if !session.awaiting_tls() {
                    continue; // refused (AfterStartTls::Reject): reply and close
                }
            }
            let Stream::Plain(io) = std::mem::replace(&mut stream, Stream::Gone) else {
                // The session never asks for STARTTLS over TLS.
                return Err(ConnectionError::Stalled);
            };
            match handshake(shared, io).await {
                Ok((s, info)) => {
                    stream = s;
                    *tls_version = Some(info.version);
                    session.tls_established(info)?;
                    last_reply = Instant::now();
                    continue;
                }
                Err(e) => {
                    session.peer_closed();
                    deliver(&mut session, conn, shared, addrs, &mut state).await;
                    return Err(e);
                }
            }
        }
        // 4. Input: first what is held, then the stream.
        if !held.is_empty() {
            let taken = session.receive(&held);
            held.drain(..taken);
            if taken > 0 {
                continue;
            }
        }
        if !session.wants_read() {
            // Holding as much as it may with nothing to deliver: cannot
            // happen while events are polled promptly; stop rather than spin.
            return Err(ConnectionError::Stalled);
        }
        let mut wait = if state.in_body {
            limits.data_timeout
        } else {
            limits.command_timeout.saturating_sub(last_reply.elapsed())
        };
        if let Some(at) = shutdown_at {
            wait = wait.min(limits.shutdown_grace.saturating_sub(at.elapsed()));
        }
        let read = {
            let session = &mut session;
            let held = &mut held;
            let forged = &mut forged;
            tokio::select! {
                biased;
                changed = shutdown.wait_for(|v| *v), if !shutdown_seen => {
                    Some(changed.is_ok())
                }
                read = timeout(wait, stream.read_with(|data| feed(session, held, data))) => {
                    match read {
                        Err(_) => session.timeout(),
                        Ok(Read::Data) => {}
                        Ok(Read::Eof) => session.peer_closed(),
                        Ok(Read::Failed(e)) => match crate::proxy::untrusted(&e) {
                            Some(peer) => *forged = Some(peer),
                            None => {
                                tracing::debug!(error = %e, "read failed");
                                session.peer_closed();
                            }
                        },
                    }
                    None
                }
            }
        };
        if let Some(changed) = read {
            shutdown_seen = true;
            shutdown_at = Some(Instant::now());
            if changed {
                session.shutdown();
            }
        }
    }
}

/// Gives the session newly read octets; order is kept: they queue behind
/// held ones, and what the session does not take yet is held.
fn feed(session: &mut Session, held: &mut Vec<u8>, data: &[u8]) {
    let taken = if held.is_empty() {
        session.receive(data)
    } else {
        0
    };
    if taken < data.len() {
        held.extend_from_slice(&data[taken..]);
    }
}

/// What the driver remembers beside the session.
#[derive(Debug, Default)]
struct ConnState {
    hello_name: Option<String>,
    in_body: bool,
}

/// Delivers every queued event to the embedder, in order, and gives the
/// session the decisions it asked for (which may queue more events).
async fn deliver<C: ConnectionHandler>(
    session: &mut Session,
    conn: &mut C,
    shared: &Shared,
    addrs: Addrs,
    state: &mut ConnState,
) {
    while let Some(event) = session.poll_event() {
        match &event {
            Event::Question(Question::Hello { host, .. }) => {
                state.hello_name = Some(host.to_string());
            }
            Event::Question(Question::DataStart { .. }) => state.in_body = true,
            Event::Question(Question::MessageComplete { .. })
            | Event::Notice(Notice::TransactionAborted { .. }) => {
                state.in_body = false;
            }
            Event::Notice(Notice::StartTls { discarded }) if *discarded > 0 => {
                tracing::warn!(discarded, "octets pipelined after STARTTLS discarded");
            }
            _ => {}
        }
        let facts = ConnectionView {
            listener: &shared.name,
            local: addrs.local,
            peer: addrs.peer,
            mode: shared.mode,
            tls: session.tls(),
            authenticated: session.authenticated(),
            hello: session.hello(),
            hello_name: state.hello_name.as_deref(),
            in_transaction: session.in_transaction(),
            recipients: session.recipients(),
        };
        match event {
            Event::Question(question) => {
                let kind = question.kind();
                let mechanism = match &question {
                    Question::Auth { credentials } => Some(credentials.mechanism.clone()),
                    _ => None,
                };
                let (asked, written) = (Instant::now(), session.output().len());
                let decision = conn.question(question, &facts).await;
                let elapsed = asked.elapsed();
                if let Err(e) = session.decide(decision) {
                    tracing::warn!(error = %e, "handler decision refused by the session; tempfailing");
                    let _ = session.decide(Decision::Tempfail);
                }
                if let Some(o) = &shared.observer {
                    let mut answer = Answer::new(&shared.name, kind, elapsed);
                    answer.mechanism = mechanism.as_ref();
                    (answer.code, answer.enhanced) =
                        reply_status(session.output().get(written..).unwrap_or_default());
                    o.answered(&answer);
                }
            }
            Event::Notice(notice) => conn.notice(notice, &facts).await,
        }
    }
}
