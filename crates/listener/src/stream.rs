//! The accepted stream, plaintext or TLS, upgraded in place, and reads
//! that need no buffer of the connection's own.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio_rustls::server::TlsStream;

/// Size of one read.
pub(crate) const READ_BUF: usize = 16 * 1024;

thread_local! {
    /// The read buffer of every connection served by this worker thread.
    /// A read borrows it only inside one poll and hands what it got to the
    /// session before returning, so an idle connection owns no buffer.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_BUF].into_boxed_slice());
}

/// The connection's transport.
#[derive(Debug)]
pub(crate) enum Stream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// Taken for a handshake that failed.
    Gone,
}

/// What one read gave.
pub(crate) enum Read {
    /// Octets, already handed to the sink.
    Data,
    /// End of input.
    Eof,
    /// The read failed.
    Failed(io::Error),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream<S> {
    /// Waits for input and gives it to `sink` within the same poll: the
    /// octets live in the thread's scratch buffer only while `sink` runs.
    /// A poll that returns `Pending` has read nothing (the `AsyncRead`
    /// contract), so nothing is lost between polls.
    pub(crate) async fn read_with(&mut self, mut sink: impl FnMut(&[u8])) -> Read {
        std::future::poll_fn(|cx| {
            SCRATCH.with(|scratch| {
                let mut buf = scratch.borrow_mut();
                let mut read = ReadBuf::new(&mut buf[..]);
                let polled = match self {
                    Stream::Plain(s) => Pin::new(s).poll_read(cx, &mut read),
                    Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, &mut read),
                    Stream::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
                };
                match polled {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Read::Failed(e)),
                    Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Read::Eof),
                    Poll::Ready(Ok(())) => {
                        sink(read.filled());
                        Poll::Ready(Read::Data)
                    }
                }
            })
        })
        .await
    }

    pub(crate) async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
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
