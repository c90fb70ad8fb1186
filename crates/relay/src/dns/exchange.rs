//! One DNS exchange with bounded time: a query over UDP to each configured
//! server in turn, over TCP when the answer is truncated. The same
//! transport serves both DNSSEC modes: directly for `resolver` mode, and
//! as the [`DnsHandle`] under hickory's validator for `validate` mode,
//! where it also records whether any query of a validation failed, so a
//! timeout during validation is told apart from bogus data.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::xfer::{DnsHandle, DnsRequest, DnsResponse, DnsResponseStream};
use hickory_proto::{ProtoError, ProtoErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// Why an exchange got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// No server answered in time.
    #[error("no answer from {0} in time")]
    Timeout(String),
    /// A socket or message error.
    #[error("{0}")]
    Io(String),
}

/// The servers and the time each query may take.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    servers: Arc<[SocketAddr]>,
    timeout: Duration,
    /// Set when a query of this exchange (and of its clones) failed: no
    /// answer, or SERVFAIL / REFUSED. One flag per validated lookup.
    failed: Arc<AtomicBool>,
}

impl Exchange {
    pub(crate) fn new(servers: Arc<[SocketAddr]>, timeout: Duration) -> Self {
        Self {
            servers,
            timeout,
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A copy with a fresh failure flag, for one validated lookup.
    pub(crate) fn fresh(&self) -> Self {
        Self::new(self.servers.clone(), self.timeout)
    }

    /// True when some query since [`fresh`](Self::fresh) failed.
    pub(crate) fn saw_failure(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Sends `query` (its id replaced by a random one) to each server in
    /// turn until one answers; SERVFAIL and REFUSED move on to the next
    /// server, and are returned when no server does better.
    pub(crate) async fn query(&self, mut query: Message) -> Result<Message, ExchangeError> {
        let mut last = Err(ExchangeError::Io("no DNS server configured".into()));
        for server in self.servers.iter() {
            query.set_id(random_id());
            let answer = self.query_one(*server, &query).await;
            match &answer {
                Ok(m)
                    if !matches!(
                        m.response_code(),
                        ResponseCode::ServFail | ResponseCode::Refused
                    ) =>
                {
                    return answer;
                }
                _ => {
                    self.failed.store(true, Ordering::Relaxed);
                    last = answer;
                }
            }
        }
        last
    }

    async fn query_one(
        &self,
        server: SocketAddr,
        query: &Message,
    ) -> Result<Message, ExchangeError> {
        let wire = query
            .to_vec()
            .map_err(|e| ExchangeError::Io(format!("encoding a query: {e}")))?;
        let udp = timeout(self.timeout, udp_exchange(server, &wire, query.id()))
            .await
            .map_err(|_| ExchangeError::Timeout(server.to_string()))??;
        if !udp.truncated() {
            return Ok(udp);
        }
        timeout(self.timeout, tcp_exchange(server, &wire, query.id()))
            .await
            .map_err(|_| ExchangeError::Timeout(server.to_string()))?
    }
}

fn random_id() -> u16 {
    // rand's thread generator is a CSPRNG seeded from the OS: the id is
    // unguessable to an off-path spoofer, whichever crypto provider is built.
    rand::random()
}

fn io(server: SocketAddr) -> impl Fn(std::io::Error) -> ExchangeError {
    move |e| ExchangeError::Io(format!("{server}: {e}"))
}

/// The answer is from the server asked (a connected socket drops other
/// sources) and has the query's id; anything else is ignored.
async fn udp_exchange(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, ExchangeError> {
    let local: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((local, 0)).await.map_err(io(server))?;
    socket.connect(server).await.map_err(io(server))?;
    socket.send(wire).await.map_err(io(server))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io(server))?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.id() == id => return Ok(m),
            _ => continue,
        }
    }
}

async fn tcp_exchange(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, ExchangeError> {
    let len = u16::try_from(wire.len()).map_err(|_| ExchangeError::Io("query too long".into()))?;
    let mut tcp = TcpStream::connect(server).await.map_err(io(server))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(wire);
    tcp.write_all(&framed).await.map_err(io(server))?;
    let n = tcp.read_u16().await.map_err(io(server))?;
    let mut buf = vec![0u8; usize::from(n)];
    tcp.read_exact(&mut buf).await.map_err(io(server))?;
    let m = Message::from_vec(&buf).map_err(|e| ExchangeError::Io(format!("{server}: {e}")))?;
    if m.id() != id {
        return Err(ExchangeError::Io(format!(
            "{server}: answer to another query"
        )));
    }
    Ok(m)
}

/// The transport under hickory's validator (`validate` mode): every
/// answer is returned as a response, whatever its code, so the validator
/// sees the denials it must check; failures are recorded.
impl DnsHandle for Exchange {
    type Response = DnsResponseStream;

    fn send<R: Into<DnsRequest> + Unpin + Send + 'static>(&self, request: R) -> Self::Response {
        let this = self.clone();
        let (message, _) = request.into().into_parts();
        DnsResponseStream::from(Box::pin(async move {
            let answer = this.query(message).await.map_err(|e| {
                this.failed.store(true, Ordering::Relaxed);
                match e {
                    ExchangeError::Timeout(_) => ProtoError::from(ProtoErrorKind::Timeout),
                    ExchangeError::Io(m) => ProtoError::from(m),
                }
            })?;
            DnsResponse::from_message(answer)
        }))
    }
}
