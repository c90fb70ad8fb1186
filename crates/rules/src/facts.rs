//! The facts a caller knows about a connection, session and envelope.
//!
//! The engine does no IO and looks nothing up: whatever a condition tests
//! must be here. Every field is optional because facts become known stage by
//! stage (no recipient at HELO) and because a caller may not know some of
//! them at all; a condition on an unknown fact is *unknown*, which never
//! matches (see [`crate::Condition`]).

use std::net::IpAddr;

use postern_proto::{Body, Domain, ForwardPath, Mailbox, ReversePath, TlsVersion};

/// Everything the caller knows when it asks for a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Facts {
    /// Transport facts: TLS, listener, peer address.
    pub connection: ConnectionFacts,
    /// SMTP session facts: HELO name and authentication.
    pub session: SessionFacts,
    /// The reverse-path of the current transaction.
    pub sender: SenderFacts,
    /// The recipient being decided on (the engine is asked once per
    /// recipient).
    pub recipient: RecipientFacts,
    /// Facts declared with MAIL FROM parameters.
    pub message: MessageFacts,
}

/// Transport-level facts, known from [`crate::Stage::Connect`] on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct ConnectionFacts {
    /// Whether the connection is protected by TLS (implicit or after
    /// STARTTLS): the guide's "Connection → isSSL".
    pub tls: Option<bool>,
    /// The negotiated TLS version, when TLS is on.
    pub tls_version: Option<TlsVersion>,
    /// The negotiated cipher suite name (IANA or OpenSSL spelling, whichever
    /// the listener reports).
    pub cipher: Option<String>,
    /// The name of the listener that accepted the connection.
    pub listener: Option<String>,
    /// The local port the client connected to.
    pub local_port: Option<u16>,
    /// The client's address.
    pub remote_ip: Option<IpAddr>,
    /// Whether the client presented a certificate that verified.
    pub client_cert_verified: Option<bool>,
}

/// Session facts: HELO and authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct SessionFacts {
    /// The name given with HELO/EHLO, known from [`crate::Stage::Helo`] on.
    pub helo: Option<String>,
    /// Whether the client authenticated, known from [`crate::Stage::Mail`]
    /// on. When absent, a known `user` implies `true`.
    pub authenticated: Option<bool>,
    /// The authenticated user name.
    pub user: Option<String>,
}

impl SessionFacts {
    /// Whether the client authenticated, derived from `user` when not given.
    pub fn is_authenticated(&self) -> Option<bool> {
        self.authenticated
            .or_else(|| self.user.as_ref().map(|_| true))
    }
}

/// The reverse-path, known from [`crate::Stage::Mail`] on.
///
/// In policy-test files it is `{ address = "alice@example.org" }`, `""`
/// being the null reverse-path `<>`; the address is read through the SMTP
/// grammar, so a fact file cannot state an address MAIL FROM would refuse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(
        try_from = "crate::names::SenderRepr",
        into = "crate::names::SenderRepr"
    )
)]
#[non_exhaustive]
pub struct SenderFacts {
    path: Option<ReversePath<'static>>,
    /// `local@host` of the path (empty for `<>`), written once when the path
    /// is set: address conditions compare text, and formatting it for every
    /// condition of every evaluation would cost more than the rules.
    address: String,
}

impl SenderFacts {
    /// The facts of a reverse-path.
    pub fn new(path: ReversePath<'_>) -> SenderFacts {
        let address = match &path {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        SenderFacts {
            path: Some(path.into_owned()),
            address,
        }
    }

    /// The reverse-path, when known.
    pub fn path(&self) -> Option<&ReversePath<'static>> {
        self.path.as_ref()
    }

    /// The sender mailbox; `None` when unknown or for the null sender.
    pub fn mailbox(&self) -> Option<&Mailbox<'static>> {
        match &self.path {
            Some(ReversePath::Mailbox(m)) => Some(m),
            _ => None,
        }
    }

    /// The address without angle brackets, as address conditions see it;
    /// the empty string for the null reverse-path `<>`.
    pub fn address(&self) -> Option<&str> {
        self.path.as_ref().map(|_| self.address.as_str())
    }

    /// The sender domain ([`Mailbox::domain`]); the empty string for the
    /// null sender; `None` when unknown or when the mailbox is at an address
    /// literal, which names a host, not a domain.
    pub fn domain(&self) -> Option<&str> {
        match self.path.as_ref()? {
            ReversePath::Null => Some(""),
            ReversePath::Mailbox(m) => m.domain().map(Domain::as_str),
        }
    }

    /// Whether this is the null reverse-path `<>`.
    pub fn is_null(&self) -> Option<bool> {
        self.path.as_ref().map(|p| matches!(p, ReversePath::Null))
    }
}

/// The recipient being decided on, known from [`crate::Stage::Rcpt`] on.
///
/// In policy-test files it is `{ address = "bob@example.com", local = true
/// }`; `"Postmaster"` is the domain-less `<Postmaster>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(
        try_from = "crate::names::RecipientRepr",
        into = "crate::names::RecipientRepr"
    )
)]
#[non_exhaustive]
pub struct RecipientFacts {
    path: Option<ForwardPath<'static>>,
    /// `local@host` of the path, written once (see [`SenderFacts`]).
    address: String,
    /// Whether the recipient is delivered locally. When absent, the opposite
    /// of `relaying`.
    pub local: Option<bool>,
    /// Whether delivering to this recipient means relaying to another host
    /// (the guide's "Delivery → Relaying mail"). When absent, the opposite of
    /// `local`.
    pub relaying: Option<bool>,
}

impl RecipientFacts {
    /// Sets the forward-path, keeping `local` and `relaying`.
    pub fn set_path(&mut self, path: ForwardPath<'_>) {
        self.address = match &path {
            ForwardPath::Postmaster => "Postmaster".to_owned(),
            ForwardPath::Mailbox(m) => m.to_string(),
        };
        self.path = Some(path.into_owned());
    }

    /// The forward-path, when known.
    pub fn path(&self) -> Option<&ForwardPath<'static>> {
        self.path.as_ref()
    }

    /// The recipient mailbox; `None` when unknown or for `<Postmaster>`.
    pub fn mailbox(&self) -> Option<&Mailbox<'static>> {
        self.path.as_ref().and_then(ForwardPath::mailbox)
    }

    /// The address without angle brackets, as address conditions see it
    /// (`Postmaster` for `<Postmaster>`).
    pub fn address(&self) -> Option<&str> {
        self.path.as_ref().map(|_| self.address.as_str())
    }

    /// The recipient domain ([`Mailbox::domain`]); `None` when unknown, for
    /// `<Postmaster>` and for a mailbox at an address literal.
    pub fn domain(&self) -> Option<&str> {
        self.mailbox()?.domain().map(Domain::as_str)
    }

    /// Whether the recipient is local, derived from `relaying` when absent.
    pub fn is_local(&self) -> Option<bool> {
        self.local.or(self.relaying.map(|r| !r))
    }

    /// Whether the recipient is relayed, derived from `local` when absent.
    pub fn is_relaying(&self) -> Option<bool> {
        self.relaying.or(self.local.map(|l| !l))
    }
}

/// Facts declared with MAIL FROM parameters, known from
/// [`crate::Stage::Mail`] on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct MessageFacts {
    /// The declared `SIZE=` in octets.
    pub size: Option<u64>,
    /// The declared `BODY=` type.
    pub body: Option<Body>,
    /// Whether `SMTPUTF8` was given.
    pub smtputf8: Option<bool>,
    /// Whether `REQUIRETLS` (RFC 8689) was given.
    pub requiretls: Option<bool>,
}

/// Builder-style setters, so that callers and tests state only the facts
/// they know.
impl Facts {
    /// No fact known.
    pub fn new() -> Facts {
        Facts::default()
    }

    /// Sets whether the connection uses TLS.
    #[must_use]
    pub fn tls(mut self, on: bool) -> Facts {
        self.connection.tls = Some(on);
        self
    }

    /// Sets the negotiated TLS version (and that TLS is on).
    #[must_use]
    pub fn tls_version(mut self, version: TlsVersion) -> Facts {
        self.connection.tls = Some(true);
        self.connection.tls_version = Some(version);
        self
    }

    /// Sets the negotiated cipher suite.
    #[must_use]
    pub fn cipher(mut self, cipher: &str) -> Facts {
        self.connection.cipher = Some(cipher.to_owned());
        self
    }

    /// Sets the listener name.
    #[must_use]
    pub fn listener(mut self, name: &str) -> Facts {
        self.connection.listener = Some(name.to_owned());
        self
    }

    /// Sets the local port.
    #[must_use]
    pub fn local_port(mut self, port: u16) -> Facts {
        self.connection.local_port = Some(port);
        self
    }

    /// Sets the client address.
    #[must_use]
    pub fn remote_ip(mut self, ip: IpAddr) -> Facts {
        self.connection.remote_ip = Some(ip);
        self
    }

    /// Sets whether a client certificate verified.
    #[must_use]
    pub fn client_cert_verified(mut self, verified: bool) -> Facts {
        self.connection.client_cert_verified = Some(verified);
        self
    }

    /// Sets the HELO/EHLO name.
    #[must_use]
    pub fn helo(mut self, name: &str) -> Facts {
        self.session.helo = Some(name.to_owned());
        self
    }

    /// Sets whether the client authenticated.
    #[must_use]
    pub fn authenticated(mut self, authenticated: bool) -> Facts {
        self.session.authenticated = Some(authenticated);
        self
    }

    /// Sets the authenticated user (and that the client authenticated).
    #[must_use]
    pub fn user(mut self, user: &str) -> Facts {
        self.session.authenticated = Some(true);
        self.session.user = Some(user.to_owned());
        self
    }

    /// Sets the reverse-path ([`ReversePath::Null`] is the null sender).
    #[must_use]
    pub fn sender(mut self, path: ReversePath<'_>) -> Facts {
        // The text form is written once here, not by every condition.
        self.sender = SenderFacts::new(path);
        self
    }

    /// Sets the recipient's forward-path.
    #[must_use]
    pub fn recipient(mut self, path: ForwardPath<'_>) -> Facts {
        self.recipient.set_path(path);
        self
    }

    /// Sets whether the recipient is local (and so not relayed).
    #[must_use]
    pub fn local_recipient(mut self, local: bool) -> Facts {
        self.recipient.local = Some(local);
        self.recipient.relaying = Some(!local);
        self
    }

    /// Sets whether the recipient is relayed (and so not local).
    #[must_use]
    pub fn relaying(mut self, relaying: bool) -> Facts {
        self.recipient.relaying = Some(relaying);
        self.recipient.local = Some(!relaying);
        self
    }

    /// Sets the declared message size.
    #[must_use]
    pub fn size(mut self, octets: u64) -> Facts {
        self.message.size = Some(octets);
        self
    }

    /// Sets the declared body type.
    #[must_use]
    pub fn body(mut self, body: Body) -> Facts {
        self.message.body = Some(body);
        self
    }

    /// Sets whether SMTPUTF8 was requested.
    #[must_use]
    pub fn smtputf8(mut self, on: bool) -> Facts {
        self.message.smtputf8 = Some(on);
        self
    }

    /// Sets whether REQUIRETLS was requested.
    #[must_use]
    pub fn requiretls(mut self, on: bool) -> Facts {
        self.message.requiretls = Some(on);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(s: &str) -> Mailbox<'_> {
        Mailbox::parse(s).unwrap()
    }

    #[test]
    fn domains_are_the_mailboxes() {
        let f = Facts::new()
            .sender(ReversePath::Mailbox(mailbox("a@Example.org")))
            .recipient(ForwardPath::Mailbox(mailbox("\"b@c\"@mydomain.com")));
        assert_eq!(f.sender.domain(), Some("Example.org"));
        assert_eq!(f.sender.address(), Some("a@Example.org"));
        assert_eq!(f.recipient.domain(), Some("mydomain.com"));
        assert_eq!(f.recipient.address(), Some("\"b@c\"@mydomain.com"));
        let null = Facts::new().sender(ReversePath::Null);
        assert_eq!(null.sender.domain(), Some(""));
        assert_eq!(null.sender.address(), Some(""));
        assert_eq!(null.sender.is_null(), Some(true));
        assert_eq!(Facts::new().sender.is_null(), None);
        let postmaster = Facts::new().recipient(ForwardPath::Postmaster);
        assert_eq!(postmaster.recipient.domain(), None);
        assert_eq!(postmaster.recipient.address(), Some("Postmaster"));
        // An address literal names a host, not a domain.
        let literal = Facts::new().recipient(ForwardPath::Mailbox(mailbox("x@[192.0.2.1]")));
        assert_eq!(literal.recipient.domain(), None);
        assert_eq!(literal.recipient.address(), Some("x@[192.0.2.1]"));
    }

    #[test]
    fn local_and_relaying_imply_each_other() {
        let mut r = RecipientFacts {
            local: Some(true),
            ..Default::default()
        };
        assert_eq!(r.is_relaying(), Some(false));
        r.local = None;
        r.relaying = Some(true);
        assert_eq!(r.is_local(), Some(false));
        assert_eq!(RecipientFacts::default().is_local(), None);
    }

    #[test]
    fn a_user_implies_authenticated() {
        let s = SessionFacts {
            user: Some("u".into()),
            ..Default::default()
        };
        assert_eq!(s.is_authenticated(), Some(true));
        assert_eq!(SessionFacts::default().is_authenticated(), None);
    }
}
