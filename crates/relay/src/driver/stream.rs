//! The socket, plaintext or TLS, upgraded in place.

use std::io;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The connection's transport.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Taken for a handshake that failed.
    Gone,
}

impl Stream {
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Writes some of `data`, returning how much.
    pub(crate) async fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(data).await,
            Stream::Tls(s) => s.write(data).await,
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Pushes buffered TLS records to the socket.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush().await,
            Stream::Tls(s) => s.flush().await,
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    pub(crate) async fn shutdown(&mut self) {
        let _ = match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
            Stream::Gone => Ok(()),
        };
    }
}
