//! Facts about the connection the driver supplies: addresses and TLS.

use std::net::SocketAddr;

use postern_proto::TlsVersion;

/// What the driver knows about a connection when it starts a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The listener's address.
    pub local: Option<SocketAddr>,
    /// `Some` on an implicit-TLS listener (port 465): the handshake is done
    /// before the first byte of SMTP, so `STARTTLS` is not offered.
    pub tls: Option<TlsInfo>,
}

impl ConnectionInfo {
    /// A plaintext connection between these addresses.
    pub fn new(peer: SocketAddr, local: SocketAddr) -> Self {
        Self {
            peer: Some(peer),
            local: Some(local),
            tls: None,
        }
    }

    /// The same connection, TLS from the first byte (implicit TLS).
    pub fn with_tls(mut self, tls: TlsInfo) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// The parameters of a negotiated TLS session, reported by the driver.
/// Build it with [`TlsInfo::new`] and set the fields known.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// Protocol version.
    pub version: TlsVersion,
    /// Cipher suite name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The key-exchange group, by its OpenSSL name (e.g. `X25519MLKEM768`,
    /// `X25519`, `P-256`); `None` when no key exchange took place (a
    /// resumed TLS 1.2 session) or the driver does not say.
    pub group: Option<String>,
    /// The server name the client asked for (SNI), if any.
    pub sni: Option<String>,
    /// The ALPN protocol agreed, if any.
    pub alpn: Option<Vec<u8>>,
    /// The client presented a certificate that verified against the
    /// listener's client CA roots.
    pub client_cert_verified: bool,
    /// The client's end-entity certificate (DER), if it presented one.
    pub client_certificate: Option<Vec<u8>>,
    /// The `tls-exporter` channel binding (RFC 9266): 32 octets exported
    /// with the label `EXPORTER-Channel-Binding` and no context. The
    /// driver sets it only where RFC 9266 allows it (TLS 1.3; TLS 1.2 only
    /// with the extended master secret, which rustls does not report), and
    /// SCRAM-SHA-256-PLUS is offered only where it is set.
    pub tls_exporter: Option<Vec<u8>>,
}

impl TlsInfo {
    /// TLS parameters with only version and cipher known.
    pub fn new(version: TlsVersion, cipher: impl Into<String>) -> Self {
        Self {
            version,
            cipher: cipher.into(),
            group: None,
            sni: None,
            alpn: None,
            client_cert_verified: false,
            client_certificate: None,
            tls_exporter: None,
        }
    }
}
