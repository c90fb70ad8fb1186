//! A discarding SMTP server on postern-listener: every command accepted,
//! every body dropped. The `discard` side of `benches/e2e/run.py`, beside
//! Postfix's smtp-sink.
//!
//! ```text
//! cargo run --release -p postern-benches --example discard -- 127.0.0.1:12526
//! ```
//!
//! Plaintext listener, PIPELINING and CHUNKING offered, limits raised for
//! load tests (20,000 connections, from one IP too; no connection rate
//! limit). Stops on SIGTERM or
//! Ctrl-C with a graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use postern_listener::session::{Config, Decision, Question};
use postern_listener::{
    ConnContext, ConnLimits, ConnectionHandler, ConnectionView, Handler, ListenerConfig, Mode,
    Server,
};

/// Accepts everything and keeps nothing.
struct Discard;

/// One connection of [`Discard`].
struct DiscardConn;

impl Handler for Discard {
    type Conn = DiscardConn;
    fn connect(&self, _: &ConnContext) -> DiscardConn {
        DiscardConn
    }
}

impl ConnectionHandler for DiscardConn {
    async fn question(&mut self, _question: Question, _facts: &ConnectionView<'_>) -> Decision {
        Decision::Accept
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:12526".into())
        .parse()?;
    let mut limits = ConnLimits::default();
    limits.global = 20_000;
    limits.per_ip = 20_000;
    let session = Config::new("discard.localhost");
    let listener = ListenerConfig::new("discard", addr, Mode::Plain)
        .with_session(session)
        .with_limits(limits)
        // Thousands of connections a minute from 127.0.0.1 are the
        // workload; smtp-sink has no rate limit either.
        .with_connection_rate(None);
    let provider = Arc::new(postern_listener::default_provider());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let server = Server::bind(vec![listener], Arc::new(Discard), provider)?;
        eprintln!("discard: listening on {addr}");
        let handle = server.shutdown_handle();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            handle.shutdown();
        });
        server.run().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
