//! A listener's settings built and ready to serve connections, with or
//! without a socket of its own: the entry point for embedders that accept
//! connections themselves.

use std::net::SocketAddr;
use std::sync::Arc;

use postern_session::CloseReason;
use rustls::crypto::CryptoProvider;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::config::{ConnLimits, ListenerConfig, Mode};
use crate::driver::{self, Addrs};
use crate::error::{BindError, ConnectionError};
use crate::handler::ConnectionHandler;
use crate::observe::Observer;
use crate::policy::{BuiltTls, TlsPolicyReport, TlsSettings};
use crate::proxy::{self, Accepted, ProxyError, ProxyProtocol};
use crate::server::ShutdownHandle;

/// What every connection of a listener shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) mode: Mode,
    pub(crate) session: Arc<postern_session::Config>,
    pub(crate) limits: ConnLimits,
    pub(crate) tls: Option<BuiltTls>,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) proxy: Option<ProxyProtocol>,
    pub(crate) rate: Option<Arc<crate::guard::ConnectionRate>>,
    /// The session configuration for clients allowed bare LF line ends,
    /// built once.
    pub(crate) bare_lf_session: Option<(crate::guard::Networks, Arc<postern_session::Config>)>,
}

/// One listener's policy, built (TLS configuration included) and ready to
/// serve connections accepted by anyone: [`Server`](crate::Server) for its
/// own sockets, or the embedder for connections it accepted itself (socket
/// activation, a PROXY-protocol front, its own accept loop, a test over
/// [`tokio::io::duplex`]).
///
/// ```
/// use postern_listener::{ConnectionView, ConnectionHandler, Listener, ListenerConfig, Mode};
/// use postern_listener::session::{Decision, Question};
/// use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
///
/// struct AcceptAll;
/// impl ConnectionHandler for AcceptAll {
///     async fn question(&mut self, _: Question, _: &ConnectionView<'_>) -> Decision {
///         Decision::Accept
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let addr = "127.0.0.1:25".parse()?; // only reported; nothing is bound
/// let config = ListenerConfig::new("smtp", addr, Mode::Plain);
/// let provider = std::sync::Arc::new(postern_listener::default_provider());
/// let listener = Listener::new(config, provider)?;
///
/// tokio::runtime::Runtime::new()?.block_on(async {
///     let (mut client, server) = tokio::io::duplex(4096);
///     let peer = "192.0.2.1:40000".parse()?;
///     let serving = tokio::spawn(async move {
///         listener.serve_connection(server, peer, addr, AcceptAll).await
///     });
///     client.write_all(b"QUIT\r\n").await?;
///     let mut wire = String::new();
///     client.read_to_string(&mut wire).await?;
///     assert!(wire.starts_with("220 localhost ESMTP"));
///     assert!(wire.ends_with("221 2.0.0 Bye\r\n"));
///     serving.await??;
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Listener {
    pub(crate) shared: Arc<Shared>,
    pub(crate) settings: Option<TlsSettings>,
    pub(crate) report: Option<TlsPolicyReport>,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Listener {
    /// Checks `config` and builds its TLS policy. Binds nothing:
    /// [`ListenerConfig::addr`] is only used by [`Server`](crate::Server).
    ///
    /// Fails when a limit is zero, when a TLS mode has no TLS settings, when
    /// the TLS policy cannot be built, and when the session configuration's
    /// STARTTLS policy disagrees with the mode (the mode owns it; see
    /// [`Mode::starttls_policy`]).
    pub fn new(config: ListenerConfig, provider: Arc<CryptoProvider>) -> Result<Self, BindError> {
        let (shutdown, _) = watch::channel(false);
        Self::build(config, provider, shutdown)
    }

    pub(crate) fn build(
        config: ListenerConfig,
        provider: Arc<CryptoProvider>,
        shutdown: watch::Sender<bool>,
    ) -> Result<Self, BindError> {
        let name = config.name.clone();
        let refuse = |field: &'static str, message: String| BindError::Config {
            listener: name.clone(),
            field,
            message,
        };
        if config.limits.global == 0 {
            return Err(refuse("limits.global", "must be at least 1".into()));
        }
        if config.limits.per_ip == 0 {
            return Err(refuse("limits.per_ip", "must be at least 1".into()));
        }
        let wanted = config.mode.starttls_policy();
        if config.session.starttls != wanted {
            return Err(refuse(
                "session.starttls",
                format!(
                    "{:?} disagrees with mode {}, which owns it ({wanted:?}); \
                     set the mode, not the session's STARTTLS policy",
                    config.session.starttls, config.mode
                ),
            ));
        }
        let (tls, report) = match (&config.mode, &config.tls) {
            (Mode::Plain, tls) => {
                if tls.is_some() {
                    tracing::warn!(listener = %name, "tls settings ignored: mode is plain");
                }
                (None, None)
            }
            (_, None) => {
                return Err(refuse(
                    "tls",
                    format!("mode {} needs TLS settings", config.mode),
                ));
            }
            (_, Some(settings)) => {
                let (built, report) =
                    settings
                        .build(provider)
                        .map_err(|error| BindError::Policy {
                            listener: name.clone(),
                            error,
                        })?;
                for w in &report.warnings {
                    tracing::warn!(listener = %name, "{w}");
                }
                (Some(built), Some(report))
            }
        };
        Ok(Self {
            shared: Arc::new(Shared {
                name,
                mode: config.mode,
                session: config.session.clone(),
                limits: config.limits,
                tls,
                observer: config.observer,
                proxy: config.proxy,
                rate: config.rate,
                bare_lf_session: (!config.bare_lf_networks.is_empty()).then(|| {
                    let mut legacy = (*config.session).clone();
                    legacy.bare_lf_line_end = true;
                    (config.bare_lf_networks, Arc::new(legacy))
                }),
            }),
            settings: config.tls,
            report,
            shutdown,
        })
    }

    /// The listener's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The listener's mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode
    }

    /// What the TLS policy became in rustls (TLS modes only).
    pub fn tls_report(&self) -> Option<&TlsPolicyReport> {
        self.report.as_ref()
    }

    /// A handle that shuts down the connections this listener serves:
    /// idle sessions get `421 4.3.2` at once, sessions in a mail
    /// transaction finish it first (within
    /// [`ConnLimits::shutdown_grace`]).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(self.shutdown.clone())
    }

    /// The listener's PROXY protocol policy, if it speaks it.
    pub fn proxy_protocol(&self) -> Option<&ProxyProtocol> {
        self.shared.proxy.as_ref()
    }

    /// Applies the listener's PROXY protocol policy to a connection just
    /// accepted from `peer` on `local`, before
    /// [`serve_connection`](Self::serve_connection): from a trusted front,
    /// reads its header (within
    /// [`ProxyProtocol::header_timeout`] and [`proxy::MAX_HEADER`]) and
    /// returns the client's addresses from it; from anywhere else, returns
    /// the connection's own addresses and a stream that fails its first
    /// read if the client sends a PROXY header (serving it then ends in
    /// [`ConnectionError::Proxy`] with [`ProxyError::Untrusted`], before
    /// any of it reaches the session). On a listener without the PROXY
    /// protocol the stream passes through untouched.
    ///
    /// Connection limits apply to the returned `peer`: the client, not the
    /// front.
    pub async fn accept_proxy<S>(
        &self,
        io: S,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Result<Accepted<S>, ProxyError>
    where
        S: AsyncRead + Unpin,
    {
        proxy::accept(self.shared.proxy.as_ref(), io, peer, local).await
    }

    /// Serves one accepted connection to its end, over any byte stream:
    /// the TLS handshake first on an implicit-TLS listener, then the SMTP
    /// session with the listener's timeouts, `STARTTLS` upgraded in place
    /// on the same stream (plaintext read before the handshake never
    /// reaches rustls). `peer` and `local` are the addresses reported to
    /// the session and the handler (e.g. the client's address from a PROXY
    /// header).
    ///
    /// Connection limits ([`ConnLimits::global`], [`ConnLimits::per_ip`])
    /// are the accepting side's business; [`Server`](crate::Server)
    /// applies them before calling this.
    ///
    /// Returns why the session closed, or what ended the connection first.
    pub async fn serve_connection<S, C>(
        &self,
        io: S,
        peer: SocketAddr,
        local: SocketAddr,
        mut conn: C,
    ) -> Result<CloseReason, ConnectionError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
        C: ConnectionHandler,
    {
        let addrs = Addrs { peer, local };
        driver::run(
            &self.shared,
            io,
            addrs,
            &mut conn,
            self.shutdown.subscribe(),
        )
        .await
    }
}
