//! The PROXY protocol header (v1 text, v2 binary) as a listener reads it
//! from a trusted front: untrusted octets from the network (a front that is
//! compromised or misconfigured, or bytes a front passes through).

use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use postern_listener::proxy::{self, MAX_HEADER, ProxyError, ProxyProtocol};
use tokio::io::{AsyncRead, ReadBuf};

/// Feeds arbitrary octets, as a connection's first ones, to the listener's
/// PROXY header reader: it never panics, never consumes an octet past the
/// header (what follows belongs to SMTP or TLS), never reads more than
/// [`MAX_HEADER`], agrees with the one-shot parser on the octets it took,
/// and a connection from an untrusted address that starts with a header
/// never yields any of its octets.
pub fn proxy_header(data: &[u8]) {
    let mut rest = data;
    let read = ready(proxy::read_header(&mut rest));
    let consumed = data.len() - rest.len();
    assert!(consumed <= MAX_HEADER, "read {consumed} octets of header");
    match read {
        Ok(header) => {
            assert!(header.version == 1 || header.version == 2);
            assert_eq!(
                proxy::parse_header(&data[..consumed]).ok(),
                Some(header),
                "the reader and the parser disagree"
            );
            if header.version == 1 {
                assert_eq!(data[consumed - 1], b'\n', "v1 ends at its LF");
            }
        }
        // Truncated input ends in an I/O error (or Missing before the
        // signature is complete), never in a header.
        Err(ProxyError::TooLong) => assert!(consumed <= MAX_HEADER),
        Err(_) => {}
    }
    let _ = proxy::parse_header(data);
    untrusted(data);
}

/// An untrusted connection's guarded stream: either the input comes
/// through octet for octet, or the read fails because it starts with a
/// PROXY header; nothing of a header is ever handed on.
fn untrusted(data: &[u8]) {
    let peer: SocketAddr = ([192, 0, 2, 1], 40000).into();
    let local: SocketAddr = ([192, 0, 2, 2], 25).into();
    let policy = ProxyProtocol::new(vec!["198.51.100.0/24".parse().expect("a network")]);
    let accepted = ready(proxy::accept(Some(&policy), data, peer, local))
        .expect("an untrusted connection is accepted as it is");
    assert_eq!((accepted.peer, accepted.via), (peer, None));
    let mut stream = accepted.stream;
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    let failed = loop {
        let mut rb = ReadBuf::new(&mut buf);
        match ready(std::future::poll_fn(|cx| {
            std::pin::Pin::new(&mut stream).poll_read(cx, &mut rb)
        })) {
            Ok(()) if rb.filled().is_empty() => break false,
            Ok(()) => out.extend_from_slice(rb.filled()),
            Err(_) => break true,
        }
    };
    let header = data.starts_with(b"PROXY ") || data.starts_with(b"\r\n\r\n\0\r\nQUIT\n");
    if header {
        assert!(failed && out.is_empty(), "an untrusted header came through");
    } else if !failed {
        assert_eq!(out, data, "an untrusted connection's octets changed");
    }
}

/// Polls a future that reads only from memory, so it is always ready.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a read from memory was pending"),
    }
}
