//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, versions 1 and 2)
//! on a listener: a load balancer in front tells the real client's address
//! in a header before the first byte of SMTP or TLS.
//!
//! The header is believed only from a configured trusted address, and from
//! there it is required (as Postfix's `smtpd_upstream_proxy_protocol`): a
//! trusted front that sends none, a header that does not parse, one longer
//! than [`MAX_HEADER`] or one that takes longer than
//! [`ProxyProtocol::header_timeout`] closes the connection. A connection
//! from anywhere else is served as it is, with its own address, and if its
//! first octets are a PROXY header it is closed before any of them reaches
//! the session or rustls: an untrusted header is never believed and never
//! answered as SMTP.
//!
//! Parsing is `ppp`'s; this module only reads the exact header octets off
//! the stream (never one octet more, so what follows belongs to SMTP or
//! TLS untouched) and applies the trust policy.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// The version 2 signature (12 octets), which no SMTP client or TLS
/// ClientHello starts with.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Version 1 starts with this.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// Longest version 1 header, CRLF included (the specification's 107).
const V1_MAX: usize = 107;
/// Longest header accepted, version 2 TLVs included. The specification
/// allows 65535 octets of addresses and TLVs; a front that sends more than
/// this (a client certificate in TLVs, say) is refused rather than let an
/// unbounded read through.
pub const MAX_HEADER: usize = 16 + 2048;

/// A listener's PROXY protocol policy: from which addresses a header is
/// required and believed. Build it with [`ProxyProtocol::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyProtocol {
    /// The fronts' networks. A connection from one of them must start with
    /// a PROXY header; one from anywhere else must not.
    pub trusted: Vec<IpNet>,
    /// Longest wait for the whole header, counted from the accept.
    pub header_timeout: Duration,
}

impl ProxyProtocol {
    /// Headers required from, and believed only from, `trusted`; a 5-second
    /// header timeout.
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self {
            trusted,
            header_timeout: Duration::from_secs(5),
        }
    }

    /// Headers from the fronts `trusted` names, each an address
    /// (`10.0.0.7`) or a network (`10.0.0.0/8`), as a configuration file
    /// gives them; at least one.
    pub fn from_trusted<S: AsRef<str>>(trusted: &[S]) -> Result<Self, BadTrusted> {
        if trusted.is_empty() {
            return Err(BadTrusted::Empty);
        }
        let nets = trusted.iter().map(|t| {
            let t = t.as_ref();
            t.parse::<IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| BadTrusted::NotANetwork(t.to_owned()))
        });
        Ok(Self::new(nets.collect::<Result<_, _>>()?))
    }

    /// Sets the header timeout.
    pub fn with_header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Whether a connection from `ip` is from a trusted front. An
    /// IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }
}

/// Why a list of trusted fronts was refused
/// ([`ProxyProtocol::from_trusted`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadTrusted {
    /// No front at all: no header could ever be believed.
    #[error("empty: name the fronts whose PROXY header is believed")]
    Empty,
    /// An entry that is neither an address nor a network.
    #[error("{0:?} is not an address or network (e.g. 10.0.0.0/8)")]
    NotANetwork(String),
}

/// Why a connection was closed in its PROXY header.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The whole header did not arrive within
    /// [`ProxyProtocol::header_timeout`].
    #[error("PROXY header timed out")]
    Timeout,
    /// Reading the header failed, or the front closed before sending it.
    #[error("reading the PROXY header failed: {0}")]
    Io(#[source] io::Error),
    /// A trusted front's connection did not start with a PROXY header.
    #[error("a trusted front sent no PROXY header")]
    Missing,
    /// The header is longer than [`MAX_HEADER`] (v2) or 107 octets (v1).
    #[error("PROXY header too long")]
    TooLong,
    /// A version 1 header that does not parse.
    #[error("malformed PROXY v1 header: {0}")]
    V1(#[source] ppp::v1::ParseError),
    /// A version 2 header that does not parse.
    #[error("malformed PROXY v2 header: {0}")]
    V2(#[source] ppp::v2::ParseError),
    /// A header for something other than TCP over IPv4 or IPv6 (UDP, a
    /// Unix socket): SMTP has no use for it.
    #[error("PROXY header for an unsupported transport")]
    Unsupported,
    /// A connection from an untrusted address started with a PROXY
    /// header; it was closed without reading it.
    #[error("PROXY header from untrusted address {peer}")]
    Untrusted {
        /// The connection's own address.
        peer: SocketAddr,
    },
}

/// What a valid header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// The client's address and the address it connected to; `None` for
    /// `PROXY UNKNOWN` (v1) and the `LOCAL` command (v2, the front's own
    /// health checks), where the connection's own addresses stand.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// An accepted connection after its PROXY header (if any): the stream to
/// serve and the addresses to report.
#[derive(Debug)]
#[non_exhaustive]
pub struct Accepted<S> {
    /// The stream, positioned at the first octet after the header.
    pub stream: ProxyStream<S>,
    /// The client's address: from the header when a trusted front sent
    /// one, else the connection's own.
    pub peer: SocketAddr,
    /// The address the client connected to, likewise.
    pub local: SocketAddr,
    /// The trusted front's address, when the addresses came from a header.
    pub via: Option<SocketAddr>,
}

/// Applies `policy` to a freshly accepted connection from `peer` to
/// `local`: from a trusted address, reads the header (bounded in size and
/// time) and reports its addresses; from anywhere else, guards the stream
/// so that a header in its first octets closes it. Without a policy the
/// stream passes through untouched.
pub async fn accept<S>(
    policy: Option<&ProxyProtocol>,
    mut io: S,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Accepted<S>, ProxyError>
where
    S: AsyncRead + Unpin,
{
    let Some(policy) = policy.filter(|p| p.trusts(peer.ip())) else {
        return Ok(direct(policy, io, peer, local));
    };
    let header = tokio::time::timeout(policy.header_timeout, read_header(&mut io))
        .await
        .map_err(|_| ProxyError::Timeout)??;
    let (client, to) = header.addresses.unwrap_or((peer, local));
    Ok(Accepted {
        stream: ProxyStream::passthrough(io),
        peer: client,
        local: to,
        via: Some(peer),
    })
}

/// A connection not from a trusted front: its own addresses, and its
/// stream guarded when the listener speaks the PROXY protocol.
pub(crate) fn direct<S>(
    policy: Option<&ProxyProtocol>,
    io: S,
    peer: SocketAddr,
    local: SocketAddr,
) -> Accepted<S> {
    let stream = if policy.is_some() {
        ProxyStream::guarded(io, peer)
    } else {
        ProxyStream::passthrough(io)
    };
    Accepted {
        stream,
        peer,
        local,
        via: None,
    }
}

/// Reads one PROXY header, v1 or v2, octet-exact: nothing after it is
/// consumed. Not timed: wrap it in a timeout.
pub async fn read_header<S: AsyncRead + Unpin>(io: &mut S) -> Result<ProxyHeader, ProxyError> {
    // Both versions are told apart by their first 6 octets; the shortest
    // v1 header ("PROXY UNKNOWN\r\n") is longer than that.
    let mut head = [0u8; 16];
    io.read_exact(&mut head[..6])
        .await
        .map_err(eof_is_missing)?;
    if &head[..6] == V1_PREFIX {
        let mut line = head[..6].to_vec();
        // Octet by octet up to LF: reading ahead would take SMTP or TLS
        // octets that are not ours. At most 107 small reads, once.
        loop {
            if line.len() >= V1_MAX {
                return Err(ProxyError::TooLong);
            }
            let b = io.read_u8().await.map_err(ProxyError::Io)?;
            line.push(b);
            if b == b'\n' {
                break;
            }
        }
        return parse_v1(&line);
    }
    if head[..6] != V2_SIGNATURE[..6] {
        return Err(ProxyError::Missing);
    }
    io.read_exact(&mut head[6..])
        .await
        .map_err(ProxyError::Io)?;
    if &head[..12] != V2_SIGNATURE {
        return Err(ProxyError::Missing);
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if 16 + len > MAX_HEADER {
        return Err(ProxyError::TooLong);
    }
    let mut header = head.to_vec();
    header.resize(16 + len, 0);
    io.read_exact(&mut header[16..])
        .await
        .map_err(ProxyError::Io)?;
    parse_v2(&header)
}

fn eof_is_missing(e: io::Error) -> ProxyError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ProxyError::Missing
    } else {
        ProxyError::Io(e)
    }
}

/// Parses one complete header (exactly its octets), v1 or v2: what
/// [`read_header`] does once it has them, and what the fuzz target drives.
pub fn parse_header(header: &[u8]) -> Result<ProxyHeader, ProxyError> {
    if header.starts_with(V2_SIGNATURE) {
        parse_v2(header)
    } else {
        parse_v1(header)
    }
}

fn parse_v1(line: &[u8]) -> Result<ProxyHeader, ProxyError> {
    use ppp::v1::{Addresses, Header, ParseError};
    let text = std::str::from_utf8(line).map_err(|_| ProxyError::V1(ParseError::InvalidPrefix))?;
    let header = Header::try_from(text).map_err(ProxyError::V1)?;
    let addresses = match header.addresses {
        Addresses::Unknown => None,
        Addresses::Tcp4(a) => Some((
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        )),
        Addresses::Tcp6(a) => Some((
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        )),
    };
    Ok(ProxyHeader {
        version: 1,
        addresses,
    })
}

fn parse_v2(header: &[u8]) -> Result<ProxyHeader, ProxyError> {
    use ppp::v2::{Addresses, Command, Header, Protocol};
    let header = Header::try_from(header).map_err(ProxyError::V2)?;
    if header.command == Command::Local {
        // The front's own connection (health check): addresses ignored,
        // as the specification says.
        return Ok(ProxyHeader {
            version: 2,
            addresses: None,
        });
    }
    if header.protocol != Protocol::Stream {
        return Err(ProxyError::Unsupported);
    }
    let addresses = match header.addresses {
        Addresses::IPv4(a) => (
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        ),
        Addresses::IPv6(a) => (
            SocketAddr::new(a.source_address.into(), a.source_port),
            SocketAddr::new(a.destination_address.into(), a.destination_port),
        ),
        Addresses::Unspecified | Addresses::Unix(_) => return Err(ProxyError::Unsupported),
    };
    Ok(ProxyHeader {
        version: 2,
        addresses: Some(addresses),
    })
}

/// Whether `first` (a connection's first octets) is, or may still become,
/// a PROXY header.
#[derive(Debug, PartialEq, Eq)]
enum Sniff {
    Header,
    Undecided,
    NotHeader,
}

fn sniff(first: &[u8]) -> Sniff {
    let starts = |sig: &[u8]| {
        let n = first.len().min(sig.len());
        first[..n] == sig[..n]
    };
    if first.starts_with(V1_PREFIX) || first.starts_with(V2_SIGNATURE) {
        Sniff::Header
    } else if starts(V1_PREFIX) || starts(V2_SIGNATURE) {
        Sniff::Undecided
    } else {
        Sniff::NotHeader
    }
}

/// The error a guarded stream's read fails with when an untrusted
/// connection starts with a PROXY header; the driver turns it into
/// [`ProxyError::Untrusted`].
#[derive(Debug, thiserror::Error)]
#[error("PROXY header from untrusted address {0}")]
pub(crate) struct UntrustedHeader(pub(crate) SocketAddr);

/// A connection's stream after [`accept`]: passes everything through,
/// except that on a guarded (untrusted) connection the first octets are
/// held until they cannot be a PROXY header, and a read fails if they are
/// one.
#[derive(Debug)]
pub struct ProxyStream<S> {
    inner: S,
    /// `Some` while the first octets are still being checked.
    guard: Option<SocketAddr>,
    /// Octets held while undecided, then handed out first.
    held: Vec<u8>,
}

impl<S> ProxyStream<S> {
    fn passthrough(inner: S) -> Self {
        Self {
            inner,
            guard: None,
            held: Vec::new(),
        }
    }

    fn guarded(inner: S, peer: SocketAddr) -> Self {
        Self {
            inner,
            guard: Some(peer),
            held: Vec::new(),
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Hands out held octets into `buf`.
    fn drain_held(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.held.len().min(buf.remaining());
        buf.put_slice(&self.held[..n]);
        self.held.drain(..n);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProxyStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(peer) = this.guard else {
            if !this.held.is_empty() {
                this.drain_held(buf);
                return Poll::Ready(Ok(()));
            }
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        loop {
            // Small reads while undecided: at most 12 octets decide.
            let mut scratch = [0u8; 64];
            let mut read = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // EOF while undecided: what was held is the client's.
                this.guard = None;
                this.drain_held(buf);
                return Poll::Ready(Ok(()));
            }
            this.held.extend_from_slice(read.filled());
            match sniff(&this.held) {
                Sniff::Header => {
                    this.held.clear();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        UntrustedHeader(peer),
                    )));
                }
                Sniff::Undecided => continue,
                Sniff::NotHeader => {
                    this.guard = None;
                    this.drain_held(buf);
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProxyStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The untrusted-header error inside an I/O error from a guarded stream
/// (directly, or wrapped by rustls during a handshake).
pub(crate) fn untrusted(e: &io::Error) -> Option<SocketAddr> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|e| e as _);
    while let Some(err) = source {
        if let Some(UntrustedHeader(peer)) = err.downcast_ref::<UntrustedHeader>() {
            return Some(*peer);
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            source = io.get_ref().map(|e| e as _);
        } else {
            source = err.source();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_fronts_from_configuration_text() {
        let p = ProxyProtocol::from_trusted(&["10.0.0.0/8", "192.0.2.7", "2001:db8::1"]).unwrap();
        assert!(p.trusts("10.1.2.3".parse().unwrap()));
        assert!(p.trusts("::ffff:192.0.2.7".parse().unwrap()));
        assert!(p.trusts("2001:db8::1".parse().unwrap()));
        assert!(!p.trusts("192.0.2.8".parse().unwrap()));
        assert_eq!(
            ProxyProtocol::from_trusted::<&str>(&[]),
            Err(BadTrusted::Empty)
        );
        assert_eq!(
            ProxyProtocol::from_trusted(&["10.0.0.0/8", "front.example"]),
            Err(BadTrusted::NotANetwork("front.example".into()))
        );
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(command);
        h.push(family);
        h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn parses_v1_and_v2() {
        let h = parse_header(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n").unwrap();
        assert_eq!(
            h.addresses,
            Some((addr("192.0.2.7:40000"), addr("198.51.100.1:25")))
        );
        let h = parse_header(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 587\r\n").unwrap();
        assert_eq!(h.addresses.unwrap().0, addr("[2001:db8::7]:40000"));
        assert_eq!(parse_header(b"PROXY UNKNOWN\r\n").unwrap().addresses, None);
        // PROXY, TCP over IPv4: 192.0.2.7:40000 -> 198.51.100.1:465.
        let body = [192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0x01, 0xd1];
        let h = parse_header(&v2(0x21, 0x11, &body)).unwrap();
        assert_eq!(
            (h.version, h.addresses),
            (2, Some((addr("192.0.2.7:40000"), addr("198.51.100.1:465"))))
        );
        // LOCAL: the front's own addresses stand.
        assert_eq!(parse_header(&v2(0x20, 0x00, &[])).unwrap().addresses, None);
        // UDP is not SMTP.
        assert!(matches!(
            parse_header(&v2(0x21, 0x12, &body)),
            Err(ProxyError::Unsupported)
        ));
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n"[..],
            b"PROXY TCP4 300.0.2.7 198.51.100.1 40000 25\r\n",
            b"PROXY\r\n",
            b"",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn reads_exactly_the_header() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client
            .write_all(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\nEHLO x\r\n")
            .await
            .unwrap();
        let h = read_header(&mut server).await.unwrap();
        assert_eq!(h.addresses.unwrap().0, addr("192.0.2.7:40000"));
        let mut rest = [0u8; 8];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"EHLO x\r\n");

        let body = [192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0x01, 0xd1];
        let mut wire = v2(0x21, 0x11, &body);
        wire.extend_from_slice(b"\x16\x03\x01");
        client.write_all(&wire).await.unwrap();
        read_header(&mut server).await.unwrap();
        let mut rest = [0u8; 3];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn bounded_and_required() {
        let (mut client, mut server) = tokio::io::duplex(1 << 17);
        client.write_all(&[b'P'; 200]).await.unwrap();
        assert!(matches!(
            read_header(&mut server).await,
            Err(ProxyError::Missing)
        ));
        let (mut client, mut server) = tokio::io::duplex(1 << 17);
        let mut long = b"PROXY TCP4 ".to_vec();
        long.extend_from_slice(&[b'1'; 200]);
        client.write_all(&long).await.unwrap();
        assert!(matches!(
            read_header(&mut server).await,
            Err(ProxyError::TooLong)
        ));
        let (mut client, mut server) = tokio::io::duplex(1 << 17);
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        client.write_all(&huge).await.unwrap();
        assert!(matches!(
            read_header(&mut server).await,
            Err(ProxyError::TooLong)
        ));
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert!(matches!(
            read_header(&mut server).await,
            Err(ProxyError::Missing)
        ));
    }

    #[tokio::test]
    async fn trusted_front_times_out() {
        let policy = ProxyProtocol::new(vec!["127.0.0.5/32".parse().unwrap()])
            .with_header_timeout(Duration::from_millis(50));
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"PROXY TCP4").await.unwrap();
        let r = accept(
            Some(&policy),
            server,
            addr("127.0.0.5:1"),
            addr("127.0.0.1:25"),
        )
        .await;
        assert!(matches!(r, Err(ProxyError::Timeout)));
    }

    #[tokio::test]
    async fn untrusted_header_fails_the_first_read() {
        let policy = ProxyProtocol::new(vec!["127.0.0.5/32".parse().unwrap()]);
        for forged in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\nNOOP\r\n"[..],
            V2_SIGNATURE,
        ] {
            let (mut client, server) = tokio::io::duplex(4096);
            let peer = addr("127.0.0.9:1");
            let mut a = accept(Some(&policy), server, peer, addr("127.0.0.1:25"))
                .await
                .unwrap();
            assert_eq!((a.peer, a.via), (peer, None));
            // Octet by octet: nothing is handed out while undecided.
            for b in forged {
                client.write_all(&[*b]).await.unwrap();
            }
            let mut buf = [0u8; 64];
            let e = a.stream.read(&mut buf).await.unwrap_err();
            assert_eq!(untrusted(&e), Some(peer));
        }
        // A client's own first octets pass, even when they begin like one.
        let (mut client, server) = tokio::io::duplex(4096);
        let mut a = accept(
            Some(&policy),
            server,
            addr("127.0.0.9:1"),
            addr("127.0.0.1:25"),
        )
        .await
        .unwrap();
        client.write_all(b"\r").await.unwrap();
        client.write_all(b"\nEHLO x\r\n").await.unwrap();
        drop(client);
        let mut got = Vec::new();
        a.stream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"\r\nEHLO x\r\n");
    }

    #[test]
    fn trust_is_by_network() {
        let policy = ProxyProtocol::new(vec![
            "127.0.0.5/32".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]);
        assert!(policy.trusts("127.0.0.5".parse().unwrap()));
        assert!(policy.trusts("::ffff:127.0.0.5".parse().unwrap()));
        assert!(policy.trusts("2001:db8::1".parse().unwrap()));
        assert!(!policy.trusts("127.0.0.6".parse().unwrap()));
    }
}
