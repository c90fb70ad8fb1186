//! The accepted socket, plaintext or TLS, upgraded in place.

use std::io;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Size of one socket read.
pub(crate) const READ_BUF: usize = 16 * 1024;

/// The connection's transport.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Taken for a handshake that failed.
    Gone,
}

/// What [`Stream::ready`] found.
pub(crate) enum Ready {
    /// A plaintext socket is readable: take the octets with
    /// [`Stream::try_read`] into a buffer shared by the thread.
    Plain,
    /// This many octets were read from TLS into the connection's buffer.
    Tls(usize),
}

impl Stream {
    /// Waits for input. A plaintext connection owns no read buffer: it
    /// waits for readiness only, so an idle connection costs no buffer
    /// memory. TLS reads go through rustls into `tls_buf`, allocated on
    /// first use.
    pub(crate) async fn ready(&mut self, tls_buf: &mut Option<Box<[u8]>>) -> io::Result<Ready> {
        match self {
            Stream::Plain(s) => s.readable().await.map(|()| Ready::Plain),
            Stream::Tls(s) => {
                let buf = tls_buf.get_or_insert_with(|| vec![0u8; READ_BUF].into_boxed_slice());
                s.read(buf).await.map(Ready::Tls)
            }
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// A non-blocking read from a plaintext socket after [`Ready::Plain`];
    /// `WouldBlock` means the readiness was spurious.
    pub(crate) fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.try_read(buf),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    pub(crate) async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(data).await,
            Stream::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
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
