//! A one-path HTTP/1.1 endpoint beside the SMTP listeners, for scrapers:
//! Prometheus metrics, health checks. Hand-written rather than an HTTP
//! library: one path, one method, and scrapers send a short `GET`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The longest request head read; a bigger one is dropped unanswered.
const MAX_HEAD: usize = 8192;
/// How long one request may take, from accept to the last octet written.
const REQUEST_TIME: Duration = Duration::from_secs(10);

/// Serves `GET path` (any query string ignored) on `listener` until
/// `shutdown` turns true (or its sender is dropped): `200` with the text
/// `render` returns, labelled `content_type`; `404` for other paths, `405`
/// for other methods. Each connection gets one response, then is closed.
///
/// `render` runs on a blocking thread (it may read the disk). Only the
/// request head is read, at most 8 KiB of it, and each connection has 10
/// seconds: a bigger or slower request is dropped, so the port cannot be
/// made to hold memory or tasks.
pub async fn serve_document<F>(
    listener: TcpListener,
    path: &'static str,
    content_type: &'static str,
    render: F,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Fn() -> String + Send + Sync + 'static,
{
    let render = Arc::new(render);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let render = render.clone();
        let respond = respond(tcp, path, content_type, move || render());
        tokio::spawn(tokio::time::timeout(REQUEST_TIME, respond));
    }
}

async fn respond(
    mut tcp: TcpStream,
    path: &str,
    content_type: &str,
    render: impl FnOnce() -> String + Send + 'static,
) -> io::Result<()> {
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0; 1024];
        let n = tcp.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let target = head.split(|&b| b == b' ').nth(1).unwrap_or_default();
    let asked = target.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, body) = if !head.starts_with(b"GET ") {
        ("405 Method Not Allowed\r\nAllow: GET", String::new())
    } else if asked == path.as_bytes() {
        let body = tokio::task::spawn_blocking(render).await;
        ("200 OK", body.map_err(io::Error::other)?)
    } else {
        ("404 Not Found", format!("only {path} is served here\n"))
    };
    let len = body.len();
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}"
    );
    tcp.write_all(response.as_bytes()).await?;
    tcp.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request).await.expect("write");
        let mut out = String::new();
        let _ = tcp.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn one_path_one_method_bounded_head() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, rx) = watch::channel(false);
        let served = tokio::spawn(serve_document(
            listener,
            "/metrics",
            "text/plain",
            || "up 1\n".into(),
            rx,
        ));
        let ok = get(addr, b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Length: 5\r\n") && ok.ends_with("\r\n\r\nup 1\n"),
            "{ok}"
        );
        let other = get(addr, b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"), "{other}");
        let post = get(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"),
            "{post}"
        );
        // A head that never ends is dropped at 8 KiB, unanswered.
        let huge = get(addr, &[b'a'; 3 * MAX_HEAD]).await;
        assert_eq!(huge, "");
        stop.send_replace(true);
        served.await.expect("stopped");
    }
}
