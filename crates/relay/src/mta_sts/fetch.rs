//! The policy fetch (RFC 8461 §3.3): one HTTPS GET of
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
//!
//! Built on hyper's connection-level HTTP/1.1 client rather than a
//! convenience client, because every rule of §3.3 is then ours to state
//! and nothing is done behind our back: we resolve the policy host through
//! the relay's own [`Resolver`] (the same DNS the MX lookups use), open the
//! socket and the rustls session with the configured trust anchors, and
//! send one request. hyper never follows redirects at this level, so a 3xx
//! is simply a status that is not 200: a failure (§3.3: "HTTP 3xx
//! redirects MUST NOT be followed"). The body is read frame by frame and
//! refused as soon as it passes the size bound, and the whole exchange,
//! resolution included, runs under one deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::rt::TokioIo;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::policy::{MAX_POLICY_SIZE, PolicyError, StsPolicy};
use crate::error::RelayError;
use crate::policy::Anchors;
use crate::resolve::{ResolveError, Resolver};

/// The path of the policy file (§3.2).
pub const WELL_KNOWN_PATH: &str = "/.well-known/mta-sts.txt";

/// How a policy is fetched.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchSettings {
    /// The trust anchors the policy host's certificate is verified
    /// against (§3.3: a valid certificate for `mta-sts.<domain>`).
    pub anchors: Anchors,
    /// The bound on the whole fetch: resolution, connection, handshake,
    /// request and body. §3.3 suggests senders bound it; a minute is what
    /// postfix-mta-sts-resolver allows, we allow less.
    pub timeout: Duration,
    /// The largest body accepted ([`MAX_POLICY_SIZE`] by default).
    pub max_size: usize,
    /// The HTTPS port: 443. Only tests use another (a server on a high
    /// loopback port).
    pub port: u16,
}

impl FetchSettings {
    /// Fetching with certificates verified against `anchors`, a 20-second
    /// deadline, [`MAX_POLICY_SIZE`] and port 443.
    pub fn new(anchors: Anchors) -> Self {
        Self {
            anchors,
            timeout: Duration::from_secs(20),
            max_size: MAX_POLICY_SIZE,
            port: 443,
        }
    }

    /// The same settings with another deadline.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same settings on another port (tests).
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// Why a fetch gave no policy. Every one of them means "no new policy":
/// the cache decides what applies then ([`Refresh::on_fetch`](super::Refresh::on_fetch)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// `mta-sts.<domain>` is not a name a certificate or a request can
    /// carry (not an ASCII DNS name).
    #[error("{host:?} is not a valid policy host name")]
    InvalidHost {
        /// The policy host.
        host: String,
    },
    /// `mta-sts.<domain>` has no address, or the lookup failed.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The policy host.
        host: String,
        /// The lookup's error.
        source: ResolveError,
    },
    /// No address accepted a connection.
    #[error("connecting to {host}: {source}")]
    Connect {
        /// The policy host.
        host: String,
        /// The last connection error.
        source: std::io::Error,
    },
    /// The TLS handshake failed, certificate verification included.
    #[error("TLS with {host}: {source}")]
    Tls {
        /// The policy host.
        host: String,
        /// The handshake's error (a rustls error inside).
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP with {host}: {source}")]
    Http {
        /// The policy host.
        host: String,
        /// hyper's error.
        source: hyper::Error,
    },
    /// A redirect, which §3.3 forbids following.
    #[error("{host} answered {status} (a redirect, not followed)")]
    Redirect {
        /// The policy host.
        host: String,
        /// The status code.
        status: u16,
    },
    /// Any other status than 200.
    #[error("{host} answered {status}")]
    Status {
        /// The policy host.
        host: String,
        /// The status code.
        status: u16,
    },
    /// The media type is not `text/plain` (§3.2).
    #[error("{host}: Content-Type {found:?}, not text/plain")]
    ContentType {
        /// The policy host.
        host: String,
        /// The header as received (`None`: absent).
        found: Option<String>,
    },
    /// The body is larger than the bound.
    #[error("{host}: policy larger than {limit} octets")]
    TooLarge {
        /// The policy host.
        host: String,
        /// The bound.
        limit: usize,
    },
    /// The deadline passed.
    #[error("fetching from {host}: no answer within {after:?}")]
    Timeout {
        /// The policy host.
        host: String,
        /// The deadline.
        after: Duration,
    },
    /// The body is no valid policy.
    #[error("{host}: {source}")]
    Policy {
        /// The policy host.
        host: String,
        /// What is wrong with it.
        source: PolicyError,
    },
}

/// Fetches policies: one TLS configuration, shared by every fetch.
#[derive(Clone)]
pub struct PolicyFetcher {
    settings: FetchSettings,
    tls: TlsConnector,
    resolver: Arc<dyn Resolver>,
}

impl std::fmt::Debug for PolicyFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyFetcher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PolicyFetcher {
    /// A fetcher with `settings`, TLS from `provider` (TLS 1.2 and 1.3,
    /// ALPN `http/1.1`), policy hosts found through `resolver`.
    pub fn new(
        settings: FetchSettings,
        provider: Arc<CryptoProvider>,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Self, RelayError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| RelayError::Config(format!("MTA-STS fetch TLS: {e}")))?
            .with_root_certificates(crate::tls::root_store(&settings.anchors)?)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            settings,
            tls: TlsConnector::from(Arc::new(config)),
            resolver,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }

    /// Fetches and parses the policy of `domain`.
    pub async fn fetch(&self, domain: &str) -> Result<StsPolicy, FetchError> {
        let host = format!(
            "mta-sts.{}",
            domain.trim_end_matches('.').to_ascii_lowercase()
        );
        let after = self.settings.timeout;
        match tokio::time::timeout(after, self.fetch_from(&host)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout { host, after }),
        }
    }

    /// A verified TLS session with `host` on `port` and an HTTP/1.1
    /// connection over it, driven by a task aborted with the guard.
    async fn session<B>(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(hyper::client::conn::http1::SendRequest<B>, AbortOnDrop), FetchError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| FetchError::InvalidHost {
            host: host.to_owned(),
        })?;
        let stream = self.connect(host, port).await?;
        let tls = self
            .tls
            .connect(name, stream)
            .await
            .map_err(|source| FetchError::Tls {
                host: host.to_owned(),
                source,
            })?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            // Bounds the status line and headers hyper buffers.
            .max_buf_size(16 * 1024)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|source| FetchError::Http {
                host: host.to_owned(),
                source,
            })?;
        // The connection is driven beside the request and dropped with it.
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((sender, AbortOnDrop(driver)))
    }

    /// POSTs `body` as `content_type` to `url` (`https://host[:port]/path`),
    /// with the same anchors, resolver and deadline as a policy fetch;
    /// TLS-RPT's HTTPS reports (RFC 8460 §5.4) go this way. Without a
    /// port in the URL, the settings' port (443 but in tests). Any 2xx is
    /// success; redirects are not followed.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<u16, FetchError> {
        let invalid = || FetchError::InvalidHost {
            host: url.to_owned(),
        };
        let rest = url.strip_prefix("https://").ok_or_else(invalid)?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| invalid())?),
            None => (authority, self.settings.port),
        };
        let after = self.settings.timeout;
        let exchange = async {
            let (mut sender, _guard) = self.session::<Full<Bytes>>(host, port).await?;
            let request = http::Request::post(path)
                .header(http::header::HOST, authority)
                .header(http::header::USER_AGENT, "postern-tlsrpt/1")
                .header(http::header::CONTENT_TYPE, content_type)
                .header(http::header::CONNECTION, "close")
                .body(Full::new(Bytes::from(body)))
                .map_err(|_| invalid())?;
            let response =
                sender
                    .send_request(request)
                    .await
                    .map_err(|source| FetchError::Http {
                        host: host.to_owned(),
                        source,
                    })?;
            let status = response.status().as_u16();
            if response.status().is_success() {
                Ok(status)
            } else {
                Err(FetchError::Status {
                    host: host.to_owned(),
                    status,
                })
            }
        };
        match tokio::time::timeout(after, exchange).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout {
                host: host.to_owned(),
                after,
            }),
        }
    }

    async fn fetch_from(&self, host: &str) -> Result<StsPolicy, FetchError> {
        let invalid = || FetchError::InvalidHost {
            host: host.to_owned(),
        };
        let http = |source| FetchError::Http {
            host: host.to_owned(),
            source,
        };
        let (mut sender, _guard) = self
            .session::<Empty<Bytes>>(host, self.settings.port)
            .await?;
        let request = http::Request::get(WELL_KNOWN_PATH)
            .header(http::header::HOST, host)
            .header(http::header::USER_AGENT, "postern-mta-sts/1")
            .header(http::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|_| invalid())?;
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect {
                host: host.to_owned(),
                status: status.as_u16(),
            });
        }
        if status != http::StatusCode::OK {
            return Err(FetchError::Status {
                host: host.to_owned(),
                status: status.as_u16(),
            });
        }
        let content_type = response.headers().get(http::header::CONTENT_TYPE);
        if !content_type.is_some_and(|v| is_text_plain(v.as_bytes())) {
            return Err(FetchError::ContentType {
                host: host.to_owned(),
                found: content_type.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            });
        }
        let limit = self.settings.max_size;
        let too_large = || FetchError::TooLarge {
            host: host.to_owned(),
            limit,
        };
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(http)?.into_data() {
                if text.len() + data.len() > limit {
                    return Err(too_large());
                }
                text.extend_from_slice(&data);
            }
        }
        StsPolicy::parse(&text).map_err(|source| FetchError::Policy {
            host: host.to_owned(),
            source,
        })
    }

    /// The first address of `host` that accepts a connection.
    async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, FetchError> {
        let ips = self
            .resolver
            .ips(host)
            .await
            .map_err(|source| FetchError::Resolve {
                host: host.to_owned(),
                source,
            })?;
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for ip in ips {
            match TcpStream::connect(SocketAddr::new(ip, port)).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(FetchError::Connect {
            host: host.to_owned(),
            source: last,
        })
    }
}

/// `text/plain`, with or without parameters (`; charset=utf-8`), in any
/// case (media types are case-insensitive, RFC 2045 §5.1).
fn is_text_plain(value: &[u8]) -> bool {
    let essence = value.split(|b| *b == b';').next().unwrap_or_default();
    essence.trim_ascii().eq_ignore_ascii_case(b"text/plain")
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::is_text_plain;

    #[test]
    fn media_type_is_text_plain_with_any_parameters() {
        assert!(is_text_plain(b"text/plain"));
        assert!(is_text_plain(b"Text/Plain; charset=utf-8"));
        assert!(is_text_plain(b" text/plain ;charset=us-ascii"));
        assert!(!is_text_plain(b"text/html"));
        assert!(!is_text_plain(b"text/plainx"));
        assert!(!is_text_plain(b""));
    }
}
