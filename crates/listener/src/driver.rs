//! One connection: runs a `postern-session` over the socket, asks the
//! embedder about each event, upgrades in place on STARTTLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_session::{ConnectionInfo, Decision, Event, Session, TlsInfo, TlsVersion};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;
use tracing::Instrument as _;

use crate::admission::Slot;
use crate::config::{ConnLimits, Mode};
use crate::handler::{ConnContext, ConnectionHandler, Facts, Handler};
use crate::policy::BuiltTls;
use crate::stream::{READ_BUF, Ready, Stream};

/// What every connection of a listener shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) mode: Mode,
    pub(crate) local: SocketAddr,
    pub(crate) session: Arc<postern_session::Config>,
    pub(crate) limits: ConnLimits,
    pub(crate) tls: Option<BuiltTls>,
}

thread_local! {
    /// The read buffer of every plaintext connection served by this worker
    /// thread: filled and drained without an await in between.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_BUF].into_boxed_slice());
}

/// Serves one accepted connection to the end.
pub(crate) async fn serve<H: Handler>(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    handler: Arc<H>,
    shutdown: watch::Receiver<bool>,
    slot: Slot,
) {
    let span = tracing::info_span!("conn", listener = %shared.name, %peer);
    async move {
        let outcome = run(&shared, tcp, peer, &*handler, shutdown).await;
        tracing::info!(outcome = %outcome, "connection closed");
        drop(slot);
    }
    .instrument(span)
    .await;
}

async fn handshake(shared: &Shared, tcp: TcpStream) -> Result<(Stream, TlsInfo), String> {
    let Some(tls) = &shared.tls else {
        return Err("no TLS configured".to_owned());
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    match timeout(shared.limits.handshake_timeout, acceptor.accept(tcp)).await {
        Err(_) => Err("TLS handshake timed out".to_owned()),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
        Ok(Ok(stream)) => {
            let info = tls_info(stream.get_ref().1, tls.client_auth);
            tracing::info!(
                version = %info.version,
                cipher = %info.cipher,
                sni = %info.sni.as_deref().unwrap_or("-"),
                client_cert = info.client_certificate.is_some(),
                "TLS established"
            );
            Ok((Stream::Tls(Box::new(stream)), info))
        }
    }
}

fn tls_info(conn: &rustls::ServerConnection, client_auth: bool) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => TlsVersion::Tls13,
        Some(rustls::ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
        Some(other) => TlsVersion::Other(u16::from(other)),
        None => TlsVersion::Other(0),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map_or_else(String::new, |s| format!("{:?}", s.suite()));
    let client_certificate = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    TlsInfo {
        version,
        cipher,
        sni: conn.server_name().map(str::to_owned),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        // The verifier rejects a certificate that does not verify, so one
        // that is present here did.
        client_cert_verified: client_auth && client_certificate.is_some(),
        client_certificate,
    }
}

async fn write(stream: &mut Stream, session: &mut Session, limit: Duration) -> Result<(), String> {
    if !session.has_output() {
        return Ok(());
    }
    // Written from the session's buffer, which keeps its capacity.
    match timeout(limit, stream.write_all(session.output())).await {
        Ok(Ok(())) => {
            session.consume_output(session.output().len());
            Ok(())
        }
        Ok(Err(e)) => Err(format!("write failed: {e}")),
        Err(_) => Err("write timed out".to_owned()),
    }
}

async fn run<H: Handler>(
    shared: &Shared,
    tcp: TcpStream,
    peer: SocketAddr,
    handler: &H,
    mut shutdown: watch::Receiver<bool>,
) -> String {
    let _ = tcp.set_nodelay(true);
    let limits = shared.limits;
    let (mut stream, tls) = if shared.mode == Mode::Implicit {
        match handshake(shared, tcp).await {
            Ok((s, info)) => (s, Some(info)),
            Err(e) => return e,
        }
    } else {
        (Stream::Plain(tcp), None)
    };
    let ctx = ConnContext {
        listener: shared.name.clone(),
        local: shared.local,
        peer,
        mode: shared.mode,
    };
    let mut conn = handler.connect(&ctx);
    let mut session = Session::new(
        shared.session.clone(),
        ConnectionInfo {
            peer: Some(peer),
            local: Some(shared.local),
            tls,
        },
    );
    let mut state = ConnState::default();
    let mut shutdown_seen = *shutdown.borrow();
    let mut shutdown_at = None;
    if shutdown_seen {
        shutdown_at = Some(std::time::Instant::now());
        session.shutdown();
    }
    let mut tls_buf: Option<Box<[u8]>> = None;
    // Octets read but not yet taken by the session (backpressure).
    let mut held: Vec<u8> = Vec::new();
    // Outside a body, `command_timeout` is a deadline for the next complete
    // command counted from the last reply written, not a per-read timeout:
    // a client dripping one octet at a time (slowloris) must not hold its
    // slot forever by resetting the timer with every octet.
    let mut last_reply = Instant::now();

    loop {
        // 1. Events, in order; the embedder answers those that need it.
        deliver(&mut session, &mut conn, shared, peer, &mut state).await;
        // 2. Replies, one write per batch.
        let replied = session.has_output();
        if let Err(e) = write(&mut stream, &mut session, limits.write_timeout).await {
            session.peer_closed();
            deliver(&mut session, &mut conn, shared, peer, &mut state).await;
            return e;
        }
        if replied {
            last_reply = Instant::now();
        }
        if session.is_closed() {
            let _ = timeout(Duration::from_secs(1), stream.shutdown()).await;
            return session
                .close_reason()
                .map_or_else(|| "closed".to_owned(), |r| format!("{r:?}"));
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
            let Stream::Plain(tcp) = std::mem::replace(&mut stream, Stream::Gone) else {
                return "STARTTLS on a TLS stream".to_owned();
            };
            match handshake(shared, tcp).await {
                Ok((s, info)) => {
                    stream = s;
                    if let Err(e) = session.tls_established(info) {
                        return format!("session refused TLS: {e}");
                    }
                    last_reply = Instant::now();
                    continue;
                }
                Err(e) => {
                    session.peer_closed();
                    deliver(&mut session, &mut conn, shared, peer, &mut state).await;
                    return e;
                }
            }
        }
        // 4. Input: first what is held, then the socket.
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
            return "session stalled".to_owned();
        }
        let mut wait = if state.in_body {
            limits.data_timeout
        } else {
            limits.command_timeout.saturating_sub(last_reply.elapsed())
        };
        if let Some(at) = shutdown_at {
            wait = wait.min(limits.shutdown_grace.saturating_sub(at.elapsed()));
        }
        tokio::select! {
            biased;
            changed = shutdown.wait_for(|v| *v), if !shutdown_seen => {
                shutdown_seen = true;
                shutdown_at = Some(std::time::Instant::now());
                if changed.is_ok() {
                    session.shutdown();
                }
            }
            read = timeout(wait, stream.ready(&mut tls_buf)) => match read {
                Err(_) => session.timeout(),
                Ok(Ok(Ready::Tls(0))) => session.peer_closed(),
                Ok(Ok(Ready::Tls(n))) => {
                    if let Some(buf) = tls_buf.as_deref() {
                        feed(&mut session, &mut held, &buf[..n]);
                    }
                }
                Ok(Ok(Ready::Plain)) => SCRATCH.with(|scratch| {
                    let mut buf = scratch.borrow_mut();
                    match stream.try_read(&mut buf) {
                        Ok(0) => session.peer_closed(),
                        Ok(n) => feed(&mut session, &mut held, &buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "read failed");
                            session.peer_closed();
                        }
                    }
                }),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "read failed");
                    session.peer_closed();
                }
            },
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
    peer: SocketAddr,
    state: &mut ConnState,
) {
    while let Some(event) = session.poll_event() {
        let needs = event.needs_decision();
        match &event {
            Event::Hello { host, .. } => state.hello_name = Some(host.to_string()),
            Event::DataStart { .. } => state.in_body = true,
            Event::MessageComplete { .. } | Event::TransactionAborted { .. } => {
                state.in_body = false;
            }
            Event::StartTls { discarded } if *discarded > 0 => {
                tracing::warn!(discarded, "octets pipelined after STARTTLS discarded");
            }
            _ => {}
        }
        let facts = Facts {
            listener: &shared.name,
            local: shared.local,
            peer,
            mode: shared.mode,
            tls: session.tls(),
            authenticated: session.authenticated(),
            hello: session.hello(),
            hello_name: state.hello_name.as_deref(),
            in_transaction: session.in_transaction(),
            recipients: session.recipients(),
        };
        let decision = conn.event(event, &facts).await;
        if needs && let Err(e) = session.decide(decision) {
            tracing::warn!(error = %e, "handler decision refused by the session; tempfailing");
            let _ = session.decide(Decision::Tempfail);
        }
    }
}
