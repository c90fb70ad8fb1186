//! Server-side SASL (RFC 4422) for `AUTH` (RFC 4954), pluggable.
//!
//! A mechanism is a [`SaslMechanism`] (a factory, registered in
//! [`SaslMechanisms`]) that starts one [`SaslServer`] per exchange. The
//! session feeds the server the client's decoded responses and sends the
//! challenges it returns, base64-encoded, as `334` lines, until the server
//! yields [`Credentials`] for the embedder to verify. The session's state
//! machine knows nothing of any mechanism, so SCRAM or OAUTHBEARER are added
//! by registering another [`SaslMechanism`].
//!
//! PLAIN ([`Plain`]) and LOGIN ([`Login`]) are built in; SCRAM-SHA-256
//! and SCRAM-SHA-256-PLUS ([`ScramSha256`]) need the embedder's
//! [`ScramStore`] of users' keys, so they are registered by it.

mod credentials;
mod login;
mod plain;
pub mod scram;

use std::fmt;
use std::sync::Arc;

use postern_proto::Mechanism;

pub use credentials::{Credentials, ProofCheck, Secret};
pub use login::Login;
pub use plain::Plain;
pub use scram::{
    DEFAULT_ITERATIONS, PasswordLine, SCRAM_SHA_256_PLUS, ScramKeys, ScramSha256, ScramStore,
};

use crate::TlsInfo;

/// One server-side SASL exchange.
pub trait SaslServer: Send {
    /// Takes the next client response (decoded from base64) and says what
    /// comes next.
    ///
    /// The first call gets the initial response given on the `AUTH` line
    /// (`Some(b"")` for `=`), or `None` when there was none. Later calls
    /// always get `Some`.
    fn step(&mut self, response: Option<&[u8]>) -> SaslStep;
}

/// What a [`SaslServer`] wants after a client response.
#[derive(Debug)]
#[non_exhaustive]
pub enum SaslStep {
    /// Send this challenge (raw; the session base64-encodes it) and wait
    /// for another response.
    Challenge(Vec<u8>),
    /// The exchange is complete: the embedder verifies these.
    Done(Credentials),
    /// The response is malformed for this mechanism; the exchange ends
    /// with `501 5.5.2`.
    Malformed(&'static str),
}

/// A SASL mechanism the session can run: a factory of [`SaslServer`]s.
pub trait SaslMechanism: Send + Sync {
    /// The mechanism's name, as advertised and matched on `AUTH`.
    fn name(&self) -> Mechanism<'static>;
    /// Starts one exchange.
    fn start(&self) -> Box<dyn SaslServer>;

    /// Starts one exchange on a connection: the session calls this, with
    /// the connection's TLS parameters (channel binding) and what it was
    /// offered. The default ignores the context.
    fn start_with(&self, ctx: &SaslContext<'_>) -> Box<dyn SaslServer> {
        let _ = ctx;
        self.start()
    }

    /// Whether the mechanism can run on a connection with these TLS
    /// parameters (`None`: plaintext); one that cannot is not offered
    /// there. -PLUS mechanisms need channel binding data. The default:
    /// always.
    fn available(&self, tls: Option<&TlsInfo>) -> bool {
        let _ = tls;
        true
    }
}

/// What a mechanism may know of the connection an exchange runs on.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct SaslContext<'a> {
    /// The TLS parameters, over TLS.
    pub tls: Option<&'a TlsInfo>,
    /// The mechanisms this connection was offered (a SCRAM server refuses
    /// a client that says "y" when -PLUS was offered: a downgrade).
    pub offered: &'a [Mechanism<'static>],
}

/// The set of mechanisms a session can run, in registration order.
#[derive(Clone, Default)]
pub struct SaslMechanisms {
    mechanisms: Vec<Arc<dyn SaslMechanism>>,
}

impl SaslMechanisms {
    /// No mechanism.
    pub fn empty() -> Self {
        Self::default()
    }

    /// PLAIN and LOGIN.
    pub fn builtin() -> Self {
        let mut m = Self::empty();
        m.register(Arc::new(Plain));
        m.register(Arc::new(Login));
        m
    }

    /// SCRAM-SHA-256-PLUS (offered only where the connection has a
    /// `tls-exporter` value), SCRAM-SHA-256, PLAIN and LOGIN, strongest
    /// first (the order the EHLO reply lists them in), SCRAM over `store`.
    pub fn with_scram(store: Arc<dyn ScramStore>) -> Self {
        let mut m = Self::empty();
        m.register(Arc::new(ScramSha256::plus(store.clone())));
        m.register(Arc::new(ScramSha256::new(store)));
        m.register(Arc::new(Plain));
        m.register(Arc::new(Login));
        m
    }

    /// Adds a mechanism, replacing one of the same name.
    pub fn register(&mut self, mechanism: Arc<dyn SaslMechanism>) {
        let name = mechanism.name();
        self.mechanisms.retain(|m| m.name() != name);
        self.mechanisms.push(mechanism);
    }

    /// The mechanism of that name, if registered.
    pub fn get(&self, name: &Mechanism<'_>) -> Option<&dyn SaslMechanism> {
        self.mechanisms
            .iter()
            .find(|m| m.name().as_str() == name.as_str())
            .map(|m| &**m)
    }

    /// The registered mechanisms' names, in registration order.
    pub fn names(&self) -> Vec<Mechanism<'static>> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }

    /// Whether a mechanism of that name is registered.
    pub fn contains(&self, name: &Mechanism<'_>) -> bool {
        self.get(name).is_some()
    }
}

impl fmt::Debug for SaslMechanisms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.mechanisms.iter().map(|m| m.name()))
            .finish()
    }
}
