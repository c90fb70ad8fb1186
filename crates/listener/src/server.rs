//! The listeners: bind, accept with limits, spawn a driver per connection,
//! reload certificates, shut down gracefully.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::admission::{Admission, Refusal};
use crate::certs::CertSpec;
use crate::config::{ListenerConfig, Mode};
use crate::driver::{self, Shared};
use crate::error::{BindError, ReloadError};
use crate::handler::Handler;
use crate::policy::{PolicyReport, TlsSettings};

type Spawner =
    Arc<dyn Fn(Arc<Shared>, TcpStream, SocketAddr, crate::admission::Slot) + Send + Sync>;

struct Bound {
    shared: Arc<Shared>,
    settings: Option<TlsSettings>,
    admission: Arc<Admission>,
    socket: Mutex<Option<std::net::TcpListener>>,
}

struct Inner {
    listeners: Vec<Bound>,
    reports: Vec<(String, PolicyReport)>,
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
    /// The session configuration of each listener gets the listener's
    /// STARTTLS knobs (see [`ListenerConfig::session`]).
    pub fn bind<H: Handler>(
        listeners: Vec<ListenerConfig>,
        handler: Arc<H>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Server, BindError> {
        let mut bound = Vec::with_capacity(listeners.len());
        let mut reports = Vec::new();
        for config in listeners {
            let name = config.name.clone();
            if config.limits.global == 0 {
                return Err(BindError::Config {
                    listener: name,
                    field: "limits.global",
                    message: "must be at least 1".into(),
                });
            }
            if config.limits.per_ip == 0 {
                return Err(BindError::Config {
                    listener: name,
                    field: "limits.per_ip",
                    message: "must be at least 1".into(),
                });
            }
            let tls = match (&config.mode, &config.tls) {
                (Mode::Plain, tls) => {
                    if tls.is_some() {
                        tracing::warn!(listener = %name, "tls settings ignored: mode is plain");
                    }
                    None
                }
                (_, None) => {
                    return Err(BindError::Config {
                        listener: name,
                        field: "tls",
                        message: format!("mode {} needs TLS settings", config.mode),
                    });
                }
                (_, Some(settings)) => {
                    let (built, report) =
                        settings
                            .build(provider.clone())
                            .map_err(|error| BindError::Policy {
                                listener: name.clone(),
                                error,
                            })?;
                    for w in &report.warnings {
                        tracing::warn!(listener = %name, "{w}");
                    }
                    reports.push((name.clone(), report));
                    Some(built)
                }
            };
            let mut session = (*config.session).clone();
            session.tls.offer_starttls = matches!(config.mode, Mode::StartTls { .. });
            session.tls.require_tls = matches!(config.mode, Mode::StartTls { required: true });
            let socket =
                std::net::TcpListener::bind(config.addr).map_err(|source| BindError::Io {
                    listener: name.clone(),
                    addr: config.addr,
                    source,
                })?;
            let io = |source| BindError::Io {
                listener: name.clone(),
                addr: config.addr,
                source,
            };
            socket.set_nonblocking(true).map_err(io)?;
            let local = socket.local_addr().map_err(io)?;
            tracing::info!(listener = %name, %local, mode = %config.mode, "listening");
            bound.push(Bound {
                shared: Arc::new(Shared {
                    name,
                    mode: config.mode,
                    local,
                    session: Arc::new(session),
                    limits: config.limits,
                    tls,
                }),
                settings: config.tls.clone(),
                admission: Arc::new(Admission::default()),
                socket: Mutex::new(Some(socket)),
            });
        }
        let (shutdown, _) = watch::channel(false);
        let (task_tx, task_rx) = mpsc::channel(1);
        let rx = shutdown.subscribe();
        let spawn: Spawner = Arc::new(move |shared, tcp, peer, slot| {
            let handler = handler.clone();
            let rx = rx.clone();
            tokio::spawn(driver::serve(shared, tcp, peer, handler, rx, slot));
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
            .map(|b| (b.shared.name.clone(), b.shared.local))
            .collect()
    }

    /// The bound address of the listener `name`.
    pub fn local_addr(&self, name: &str) -> Option<SocketAddr> {
        self.find(name).map(|b| b.shared.local)
    }

    /// The policy report of each TLS listener, by name.
    pub fn reports(&self) -> &[(String, PolicyReport)] {
        &self.inner.reports
    }

    /// Connections being served by the listener `name`.
    pub fn active_connections(&self, name: &str) -> Option<usize> {
        self.find(name).map(|b| b.admission.active())
    }

    fn find(&self, name: &str) -> Option<&Bound> {
        self.inner.listeners.iter().find(|b| b.shared.name == name)
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
        let (Some(tls), Some(settings)) = (&bound.shared.tls, &bound.settings) else {
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
                    tracing::error!(listener = %bound.shared.name, error = %e, "cannot register listener");
                    continue;
                }
            };
            loops.spawn(accept_loop(
                listener,
                bound.shared.clone(),
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

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
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
                tracing::warn!(listener = %shared.name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        match admission.admit(peer.ip(), shared.limits.global, shared.limits.per_ip) {
            Ok(slot) => {
                let tasks = tasks.clone();
                let shared = shared.clone();
                let spawn = spawn.clone();
                // The sender travels with the connection's slot: wrap the
                // spawn so the sender is dropped when the driver ends.
                spawn(shared, tcp, peer, slot.with_task(tasks));
            }
            Err(refusal) => {
                tracing::info!(listener = %shared.name, %peer, ?refusal, "connection refused by limit");
                let mode = shared.mode;
                tokio::spawn(refuse(tcp, mode, refusal));
            }
        }
    }
    tracing::info!(listener = %shared.name, "stopped accepting");
}

async fn refuse(mut tcp: TcpStream, mode: Mode, refusal: Refusal) {
    if mode != Mode::Implicit {
        let reply: &[u8] = match refusal {
            Refusal::Global => b"421 4.3.2 Too many connections, try again later\r\n",
            Refusal::PerIp => b"421 4.7.0 Too many connections from your address\r\n",
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            tcp.write_all(reply).await?;
            tcp.shutdown().await
        })
        .await;
    }
}
