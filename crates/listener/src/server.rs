//! The listeners: bind, accept with limits, spawn a driver per connection,
//! reload certificates, shut down gracefully.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::Instrument as _;

use crate::admission::{Admission, Refusal, Slot};
use crate::certs::CertSpec;
use crate::config::{ListenerConfig, Mode};
use crate::error::{BindError, ConnectionError, ReloadError};
use crate::handler::{ConnContext, Handler};
use crate::listener::Listener;
use crate::policy::TlsPolicyReport;
use crate::proxy::Accepted;

type Spawner = Arc<dyn Fn(Listener, Accepted<TcpStream>, Slot) + Send + Sync>;

struct Bound {
    listener: Listener,
    local: SocketAddr,
    admission: Arc<Admission>,
    socket: Mutex<Option<std::net::TcpListener>>,
}

struct Inner {
    listeners: Vec<Bound>,
    reports: Vec<(String, TlsPolicyReport)>,
    shutdown: watch::Sender<bool>,
    spawn: Spawner,
    /// Each connection task holds a clone; `run` waits until all are gone.
    tasks: Mutex<Option<mpsc::Sender<()>>>,
    done: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

/// A set of bound listeners serving one [`Handler`].
///
/// Cheap to clone: clones share the listeners, so one clone can
/// [`run`](Self::run) while another reloads certificates or shuts down.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listeners", &self.local_addrs())
            .finish()
    }
}

/// Signals a graceful shutdown from anywhere (e.g. a signal handler).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    tx: watch::Sender<bool>,
}

impl ShutdownHandle {
    pub(crate) fn new(tx: watch::Sender<bool>) -> Self {
        Self { tx }
    }

    /// Stops accepting; idle sessions get `421 4.3.2` and close; sessions
    /// in a mail transaction finish it first.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }
}

impl Server {
    /// Builds every listener's TLS policy and binds its socket. Must be
    /// called inside a tokio runtime only for [`run`](Self::run); binding
    /// itself is synchronous.
    ///
    /// Each accepted connection is served by
    /// [`Listener::serve_connection`], after the listener's connection
    /// limits admitted it.
    pub fn bind<H: Handler>(
        listeners: Vec<ListenerConfig>,
        handler: Arc<H>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Server, BindError> {
        let (shutdown, _) = watch::channel(false);
        let mut bound = Vec::with_capacity(listeners.len());
        let mut reports = Vec::new();
        for config in listeners {
            let addr = config.addr;
            let listener = Listener::build(config, provider.clone(), shutdown.clone())?;
            let name = listener.name().to_owned();
            if let Some(report) = listener.tls_report() {
                reports.push((name.clone(), report.clone()));
            }
            let io = |source| BindError::Io {
                listener: name.clone(),
                addr,
                source,
            };
            let socket = std::net::TcpListener::bind(addr).map_err(io)?;
            socket.set_nonblocking(true).map_err(io)?;
            let local = socket.local_addr().map_err(io)?;
            tracing::info!(listener = %name, %local, mode = %listener.mode(), "listening");
            bound.push(Bound {
                listener,
                local,
                admission: Arc::new(Admission::default()),
                socket: Mutex::new(Some(socket)),
            });
        }
        let (task_tx, task_rx) = mpsc::channel(1);
        let spawn: Spawner = Arc::new(move |listener, accepted, slot| {
            let handler = handler.clone();
            tokio::spawn(serve(listener, accepted, handler, slot));
        });
        Ok(Server {
            inner: Arc::new(Inner {
                listeners: bound,
                reports,
                shutdown,
                spawn,
                tasks: Mutex::new(Some(task_tx)),
                done: tokio::sync::Mutex::new(task_rx),
            }),
        })
    }

    /// The bound addresses, by listener name, in configuration order.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.inner
            .listeners
            .iter()
            .map(|b| (b.listener.name().to_owned(), b.local))
            .collect()
    }

    /// The bound address of the listener `name`.
    pub fn local_addr(&self, name: &str) -> Option<SocketAddr> {
        self.find(name).map(|b| b.local)
    }

    /// The policy report of each TLS listener, by name.
    pub fn reports(&self) -> &[(String, TlsPolicyReport)] {
        &self.inner.reports
    }

    /// Connections being served by the listener `name`.
    pub fn active_connections(&self, name: &str) -> Option<usize> {
        self.find(name).map(|b| b.admission.active())
    }

    fn find(&self, name: &str) -> Option<&Bound> {
        self.inner
            .listeners
            .iter()
            .find(|b| b.listener.name() == name)
    }

    /// Replaces the certificates of the listener `name`, atomically: new
    /// handshakes use the new set, handshakes under way finish with the old
    /// one. `None` reads the configured sources again (files changed on
    /// disk, e.g. on SIGHUP). On any error nothing changes and the previous
    /// certificates keep serving.
    pub fn reload_certificates(
        &self,
        name: &str,
        certificates: Option<Vec<CertSpec>>,
    ) -> Result<(), ReloadError> {
        let bound = self
            .find(name)
            .ok_or_else(|| ReloadError::NoSuchListener(name.to_owned()))?;
        let (Some(tls), Some(settings)) = (&bound.listener.shared.tls, &bound.listener.settings)
        else {
            return Err(ReloadError::NoTls(name.to_owned()));
        };
        let specs = certificates.as_deref().unwrap_or(&settings.certificates);
        match crate::policy::reload(tls, specs) {
            Ok(labels) => {
                tracing::info!(listener = %name, certificates = ?labels, "certificates reloaded");
                Ok(())
            }
            Err(reason) => {
                tracing::error!(listener = %name, %reason, "certificate reload failed; previous certificates keep serving");
                Err(ReloadError::Invalid {
                    listener: name.to_owned(),
                    reason,
                })
            }
        }
    }

    /// Reloads the certificates of every TLS listener from their
    /// configured sources (what a SIGHUP asks for), each as
    /// [`reload_certificates`](Self::reload_certificates) with `None`: a
    /// listener whose new certificates do not load keeps its old ones and
    /// its error is returned (and logged).
    pub fn reload_all_certificates(&self) -> Vec<ReloadError> {
        self.inner
            .listeners
            .iter()
            .filter(|b| b.listener.shared.tls.is_some())
            .filter_map(|b| self.reload_certificates(b.listener.name(), None).err())
            .collect()
    }

    /// A handle that triggers [`shutdown`](Self::shutdown) from elsewhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            tx: self.inner.shutdown.clone(),
        }
    }

    /// Graceful shutdown: stop accepting; idle sessions get `421 4.3.2`;
    /// sessions in a mail transaction finish it, then get `421`.
    /// [`run`](Self::run) returns once every connection is closed.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Serves until [`shutdown`](Self::shutdown) and until every
    /// connection is closed. Call once.
    pub async fn run(&self) {
        let mut loops = tokio::task::JoinSet::new();
        let Some(task_tx) = self.inner.tasks.lock().ok().and_then(|mut t| t.take()) else {
            tracing::error!("Server::run called twice");
            return;
        };
        for bound in &self.inner.listeners {
            let Some(socket) = bound.socket.lock().ok().and_then(|mut s| s.take()) else {
                continue;
            };
            let listener = match TcpListener::from_std(socket) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(listener = %bound.listener.name(), error = %e, "cannot register listener");
                    continue;
                }
            };
            loops.spawn(accept_loop(
                listener,
                bound.listener.clone(),
                bound.local,
                bound.admission.clone(),
                self.inner.spawn.clone(),
                self.inner.shutdown.subscribe(),
                task_tx.clone(),
            ));
        }
        drop(task_tx);
        while loops.join_next().await.is_some() {}
        // Every connection task holds a sender; recv() is None once all
        // have ended.
        let mut done = self.inner.done.lock().await;
        while done.recv().await.is_some() {}
        tracing::info!("all listeners stopped");
    }
}

/// Serves one admitted connection, with its log span, and frees its slot.
async fn serve<H: Handler>(
    listener: Listener,
    accepted: Accepted<TcpStream>,
    handler: Arc<H>,
    slot: Slot,
) {
    let Accepted {
        stream,
        peer,
        local,
        via,
        ..
    } = accepted;
    let span = match via {
        Some(via) => tracing::info_span!("conn", listener = %listener.name(), %peer, %via),
        None => tracing::info_span!("conn", listener = %listener.name(), %peer),
    };
    async move {
        let _ = stream.get_ref().set_nodelay(true);
        let mut ctx = ConnContext::new(listener.name(), local, peer, listener.mode());
        ctx.via = via;
        let conn = handler.connect(&ctx);
        match listener.serve_connection(stream, peer, local, conn).await {
            Ok(reason) => tracing::info!(outcome = ?reason, "connection closed"),
            Err(e @ ConnectionError::Proxy(_)) => {
                tracing::warn!(outcome = %e, "connection closed: a PROXY header is believed only from a trusted front")
            }
            Err(e) => tracing::info!(outcome = %e, "connection closed"),
        }
        drop(slot);
    }
    .instrument(span)
    .await;
}

/// Admits a connection by its client's address (the header's, behind a
/// trusted front) and spawns its service, or refuses it.
fn admit(
    served: &Listener,
    admission: &Arc<Admission>,
    accepted: Accepted<TcpStream>,
    spawn: &Spawner,
    tasks: &mpsc::Sender<()>,
) {
    let limits = served.shared.limits;
    // Rates count the real client: after a trusted front's PROXY header.
    if let Some(rate) = &served.shared.rate
        && let Err(r) = rate.admit(accepted.peer.ip(), std::time::SystemTime::now())
    {
        tracing::warn!(
            target: "connection_rate", listener = %served.name(), peer = %accepted.peer, network = %r.network,
            count = r.count, limit = r.limit, per = if r.daily { "day" } else { "minute" },
            "connection refused: rate limit"
        );
        if let Some(o) = &served.shared.observer {
            o.throttled(served.name(), Refusal::Rate.throttle());
        }
        tokio::spawn(refuse(accepted.stream, served.mode(), Refusal::Rate));
        return;
    }
    match admission.admit(accepted.peer.ip(), limits.global, limits.per_ip) {
        Ok(slot) => {
            // The sender travels with the connection's slot, so it is
            // dropped when the connection ends.
            spawn(served.clone(), accepted, slot.with_task(tasks.clone()));
        }
        Err(refusal) => {
            tracing::info!(listener = %served.name(), peer = %accepted.peer, ?refusal, "connection refused by limit");
            if let Some(o) = &served.shared.observer {
                o.throttled(served.name(), refusal.throttle());
            }
            let mode = served.mode();
            tokio::spawn(refuse(accepted.stream, mode, refusal));
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    served: Listener,
    local: SocketAddr,
    admission: Arc<Admission>,
    spawn: Spawner,
    mut shutdown: watch::Receiver<bool>,
    tasks: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|v| *v) => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(listener = %served.name(), error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let trusted_front = served.proxy_protocol().is_some_and(|p| p.trusts(peer.ip()));
        if trusted_front {
            // The header is read in a task of its own (bounded by its
            // timeout), so one slow front does not stall the accept loop;
            // the limits then count the client, not the front.
            let (served, admission, spawn, tasks) = (
                served.clone(),
                admission.clone(),
                spawn.clone(),
                tasks.clone(),
            );
            tokio::spawn(async move {
                match served.accept_proxy(tcp, peer, local).await {
                    Ok(accepted) => admit(&served, &admission, accepted, &spawn, &tasks),
                    Err(e) => {
                        tracing::warn!(listener = %served.name(), front = %peer, error = %e, "connection from a trusted front closed")
                    }
                }
            });
            continue;
        }
        // Untrusted (or no PROXY protocol): no header is read; the stream
        // is guarded so that a forged one closes the connection.
        let accepted = crate::proxy::direct(served.proxy_protocol(), tcp, peer, local);
        admit(&served, &admission, accepted, &spawn, &tasks);
    }
    tracing::info!(listener = %served.name(), "stopped accepting");
}

async fn refuse<S: tokio::io::AsyncWrite + Unpin>(mut tcp: S, mode: Mode, refusal: Refusal) {
    if mode != Mode::Implicit {
        let reply: &[u8] = match refusal {
            Refusal::Global => b"421 4.3.2 Too many connections, try again later\r\n",
            Refusal::PerIp => b"421 4.7.0 Too many connections from your address\r\n",
            Refusal::Rate => b"421 4.7.0 Too many connections from your network, slow down\r\n",
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            tcp.write_all(reply).await?;
            tcp.shutdown().await
        })
        .await;
    }
}
