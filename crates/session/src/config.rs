//! What a session offers and enforces: identity, extensions, transport and
//! AUTH policy, body policy, limits.

use postern_proto::Mechanism;

use crate::limits::Limits;
use crate::sasl::SaslMechanisms;

/// Settings of a [`Session`](crate::Session), usually one per listener,
/// shared between sessions behind an `Arc`.
///
/// `Config::default()` is the hardened default of the guide: STARTTLS
/// offered, no AUTH on plaintext, PLAIN and LOGIN over TLS, bare line
/// endings in bodies refused, bytes pipelined after STARTTLS discarded.
/// Start from [`Config::new`] or `Config::default()` and set the fields
/// that differ (the struct is `#[non_exhaustive]`, so new settings can be
/// added without breaking embedders).
///
/// ```
/// use postern_session::{AuthPolicy, Config, StartTlsPolicy};
///
/// let mut config = Config::new("mx.example.org");
/// config.starttls = StartTlsPolicy::required();
/// config.auth = AuthPolicy::disabled();
/// assert_eq!(config.hostname, "mx.example.org");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The server's name, first word of the greeting and of the EHLO reply.
    pub hostname: String,
    /// Text of the greeting after `220 <hostname> ESMTP` (or `LMTP`).
    pub banner: String,
    /// SMTP or LMTP.
    pub protocol: Protocol,
    /// Which ESMTP extensions are offered.
    pub extensions: Extensions,
    /// STARTTLS offer and requirement. Under `postern-listener` the
    /// listener's mode owns this field (see its `Mode`).
    pub starttls: StartTlsPolicy,
    /// Which AUTH mechanisms are allowed on which transport.
    pub auth: AuthPolicy,
    /// The SASL mechanisms the session can run (PLAIN and LOGIN built in).
    pub mechanisms: SaslMechanisms,
    /// What to do with bare CR / bare LF in a `DATA` body.
    pub bare_line_endings: BareLineEndingPolicy,
    /// Take a bare LF as the end of a command line (and of an AUTH
    /// continuation line). Off by default: a bare LF or bare CR in a
    /// command line gets `521 5.5.2` and the session closes, so the octets
    /// after it are never run as a command (Postfix 3.9's
    /// `smtpd_forbid_bare_newline`). For legacy clients only: the embedder
    /// sets it per connection from the client's address (the listener's
    /// `bare_lf_networks`). A bare CR stays an error either way, and `DATA`
    /// bodies follow [`bare_line_endings`](Self::bare_line_endings).
    pub bare_lf_line_end: bool,
    /// What to do with bytes pipelined after `STARTTLS`.
    pub after_starttls: AfterStartTls,
    /// Require a successful AUTH before `MAIL` (submission, port 587).
    pub require_auth: bool,
    /// How `VRFY` is answered.
    pub vrfy: VrfyPolicy,
    /// How `EXPN` is answered.
    pub expn: VrfyPolicy,
    /// Resource limits.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            banner: "Postern".into(),
            protocol: Protocol::Smtp,
            extensions: Extensions::default(),
            starttls: StartTlsPolicy::default(),
            auth: AuthPolicy::default(),
            mechanisms: SaslMechanisms::builtin(),
            bare_line_endings: BareLineEndingPolicy::Reject,
            bare_lf_line_end: false,
            after_starttls: AfterStartTls::Discard,
            require_auth: false,
            vrfy: VrfyPolicy::CannotVerify,
            expn: VrfyPolicy::NotImplemented,
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// The hardened default with this server name.
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            ..Self::default()
        }
    }
}

/// The dialect spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// SMTP (RFC 5321): `HELO`/`EHLO`, one reply after the body.
    #[default]
    Smtp,
    /// LMTP (RFC 2033): `LHLO` only, one reply per accepted recipient after
    /// the body.
    Lmtp,
}

/// ESMTP extensions the session may advertise after `EHLO`/`LHLO`.
///
/// `SIZE` is always advertised (with [`Limits::max_message_size`]);
/// `STARTTLS`, `AUTH` and `REQUIRETLS` depend on the transport as well (see
/// [`StartTlsPolicy`], [`AuthPolicy`]). A `MAIL`/`RCPT` parameter of an
/// extension not offered gets `555 5.5.4`. The embedder may withdraw any of
/// them per connection in its answer to the greeting (see
/// [`EhloOffer`](crate::EhloOffer)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
#[non_exhaustive]
pub struct Extensions {
    /// `PIPELINING` (RFC 2920).
    pub pipelining: bool,
    /// `8BITMIME` (RFC 6152).
    pub eight_bit_mime: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub enhanced_status_codes: bool,
    /// `CHUNKING`, i.e. `BDAT` (RFC 3030).
    pub chunking: bool,
    /// `BINARYMIME` (RFC 3030); only offered together with `CHUNKING`.
    pub binary_mime: bool,
    /// `DSN` (RFC 3461): `RET`, `ENVID`, `NOTIFY`, `ORCPT`.
    pub dsn: bool,
    /// `REQUIRETLS` (RFC 8689); only offered over TLS.
    pub requiretls: bool,
}

impl Default for Extensions {
    fn default() -> Self {
        Self {
            pipelining: true,
            eight_bit_mime: true,
            smtputf8: true,
            enhanced_status_codes: true,
            chunking: true,
            binary_mime: true,
            dsn: true,
            requiretls: true,
        }
    }
}

impl Extensions {
    /// No extension at all (only `SIZE`, which is always advertised).
    pub fn none() -> Self {
        Self {
            pipelining: false,
            eight_bit_mime: false,
            smtputf8: false,
            enhanced_status_codes: false,
            chunking: false,
            binary_mime: false,
            dsn: false,
            requiretls: false,
        }
    }
}

/// Whether `STARTTLS` is offered on plaintext connections, and whether a
/// mail transaction needs it first.
///
/// Under `postern-listener` the listener's mode derives this policy (and a
/// listener whose session configuration disagrees with its mode is refused
/// at bind), so there is one source of truth per listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StartTlsPolicy {
    /// Offer `STARTTLS` on plaintext connections (the listener has a
    /// certificate). When false, `STARTTLS` gets `502 5.5.1`.
    pub offer_starttls: bool,
    /// Refuse `MAIL` on plaintext with `530 5.7.0 Must issue a STARTTLS
    /// command first`.
    pub require_tls: bool,
}

impl Default for StartTlsPolicy {
    /// [`StartTlsPolicy::offered`].
    fn default() -> Self {
        Self::offered()
    }
}

impl StartTlsPolicy {
    /// `STARTTLS` not offered (no certificate, or implicit TLS).
    pub const fn off() -> Self {
        Self {
            offer_starttls: false,
            require_tls: false,
        }
    }

    /// `STARTTLS` offered, mail accepted without it (port 25).
    pub const fn offered() -> Self {
        Self {
            offer_starttls: true,
            require_tls: false,
        }
    }

    /// `STARTTLS` offered and required before `MAIL` (port 587).
    pub const fn required() -> Self {
        Self {
            offer_starttls: true,
            require_tls: true,
        }
    }
}

/// Which SASL mechanisms may be used on which transport.
///
/// The rules engine or the embedder supplies these. A mechanism is offered
/// only when it is listed for the current transport and registered in
/// [`Config::mechanisms`]. Where a mechanism is not allowed, `AUTH` is
/// refused before any credential is read: `538 5.7.11` when TLS would allow
/// it, `504 5.5.4` when AUTH is offered with other mechanisms, `502 5.5.1`
/// when AUTH is not available at all.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthPolicy {
    /// Mechanisms allowed before TLS. The guide: none.
    pub plaintext: Vec<Mechanism<'static>>,
    /// Mechanisms allowed over TLS (implicit or after STARTTLS). The guide:
    /// PLAIN and LOGIN.
    pub tls: Vec<Mechanism<'static>>,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            plaintext: Vec::new(),
            tls: vec![Mechanism::Plain, Mechanism::Login],
        }
    }
}

impl AuthPolicy {
    /// These mechanisms before TLS and these over TLS.
    pub fn new(plaintext: Vec<Mechanism<'static>>, tls: Vec<Mechanism<'static>>) -> Self {
        Self { plaintext, tls }
    }

    /// No AUTH anywhere (an MX on port 25).
    pub fn disabled() -> Self {
        Self {
            plaintext: Vec::new(),
            tls: Vec::new(),
        }
    }

    /// The list for a transport.
    pub fn for_transport(&self, tls: bool) -> &[Mechanism<'static>] {
        if tls { &self.tls } else { &self.plaintext }
    }
}

/// What happens to a `DATA` body holding a bare CR or bare LF (RFC 5321
/// §2.3.8 forbids both; they are the raw material of SMTP smuggling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BareLineEndingPolicy {
    /// Refuse the message with `550 5.6.11` after its end. The body octets
    /// before the first bare line ending are handed out, whatever the read
    /// boundaries; none at or after it.
    #[default]
    Reject,
    /// Rewrite each bare CR and bare LF to CRLF.
    Normalize,
}

/// What happens to bytes a client pipelined after `STARTTLS` (RFC 3207 §4.2
/// forbids them; CVE-2011-0411 and its cousins inject commands this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AfterStartTls {
    /// Drop them and count them; the TLS session starts clean.
    #[default]
    Discard,
    /// Refuse the upgrade: `554 5.5.0` and close. Bytes arriving after the
    /// `220` (split across reads) also close with `554 5.5.0`.
    Reject,
}

/// How `VRFY` or `EXPN` is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VrfyPolicy {
    /// `252 2.5.0`: cannot verify, but will attempt delivery (RFC 5321 §3.5.3).
    CannotVerify,
    /// `502 5.5.1`: command not implemented.
    NotImplemented,
}
