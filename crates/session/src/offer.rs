//! What one connection is offered after its greeting: the extensions, the
//! STARTTLS offer and the AUTH mechanisms, proposed by the session and
//! narrowed by the embedder per connection.

use postern_proto::{Capabilities, Mechanism};

use crate::config::{Config, Extensions};

/// The capabilities a connection is offered, as the reply to `EHLO`/`LHLO`
/// advertises them and as the session then enforces them.
///
/// The session proposes one in [`Question::Hello`](crate::Question::Hello):
/// what its [`Config`] allows on the current transport. The embedder
/// accepts it as it is ([`Decision::Accept`](crate::Decision::Accept)) or
/// answers with a narrower one
/// ([`Decision::Advertise`](crate::Decision::Advertise)), e.g. AUTH
/// withheld from an address its rules distrust. What the reply advertises
/// is then exactly what the session honours on that connection until the
/// next greeting: an AUTH mechanism left out is refused (`538 5.7.11` on
/// plaintext when TLS would allow it, else `504 5.5.4` or `502 5.5.1`), a
/// withdrawn extension's parameters get `555 5.5.4`, a withdrawn
/// `STARTTLS` gets `502 5.5.1`.
///
/// An offer can only narrow the proposal: an answer that adds anything is
/// refused with [`ApiError::NotProposed`](crate::ApiError::NotProposed),
/// because the session (or the driver, for STARTTLS) could not honour it.
/// After `HELO` nothing is advertised, but the offer still says which AUTH
/// mechanisms and whether STARTTLS are available.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EhloOffer {
    /// The ESMTP extensions. Transport rules still apply when the reply is
    /// written: `REQUIRETLS` only over TLS, `BINARYMIME` only with
    /// `CHUNKING`.
    pub extensions: Extensions,
    /// `STARTTLS` is offered (plaintext only).
    pub starttls: bool,
    /// The AUTH mechanisms offered, in order; empty: no `AUTH` line.
    pub auth: Vec<Mechanism<'static>>,
}

impl EhloOffer {
    /// The session's proposal on a transport: everything its configuration
    /// allows there, AUTH mechanisms allowed by policy and registered.
    pub(crate) fn proposal(config: &Config, tls: bool) -> Self {
        Self {
            extensions: config.extensions,
            starttls: !tls && config.starttls.offer_starttls,
            auth: config
                .auth
                .for_transport(tls)
                .iter()
                .filter(|m| config.mechanisms.contains(m))
                .cloned()
                .collect(),
        }
    }

    /// The proposal on this connection: [`proposal`](Self::proposal) less
    /// the mechanisms that cannot run with these TLS parameters (-PLUS
    /// without channel binding data).
    pub(crate) fn for_connection(config: &Config, tls: Option<&crate::TlsInfo>) -> Self {
        let mut offer = Self::proposal(config, tls.is_some());
        offer.auth.retain(|m| {
            config
                .mechanisms
                .get(m)
                .is_some_and(|mech| mech.available(tls))
        });
        offer
    }

    /// The same offer with no AUTH mechanism.
    pub fn without_auth(mut self) -> Self {
        self.auth.clear();
        self
    }

    /// The same offer keeping only the AUTH mechanisms `keep` is true for.
    pub fn retain_auth(mut self, mut keep: impl FnMut(&Mechanism<'static>) -> bool) -> Self {
        self.auth.retain(|m| keep(m));
        self
    }

    /// Whether `mechanism` is offered.
    pub fn offers_auth(&self, mechanism: &Mechanism<'_>) -> bool {
        self.auth
            .iter()
            .any(|m| m.as_str().eq_ignore_ascii_case(mechanism.as_str()))
    }

    /// The first thing `self` offers that `proposal` does not, by its EHLO
    /// keyword.
    pub(crate) fn excess_over(&self, proposal: &EhloOffer) -> Option<String> {
        let (a, b) = (self.extensions, proposal.extensions);
        let flags = [
            (a.pipelining, b.pipelining, "PIPELINING"),
            (a.eight_bit_mime, b.eight_bit_mime, "8BITMIME"),
            (a.smtputf8, b.smtputf8, "SMTPUTF8"),
            (
                a.enhanced_status_codes,
                b.enhanced_status_codes,
                "ENHANCEDSTATUSCODES",
            ),
            (a.chunking, b.chunking, "CHUNKING"),
            (a.binary_mime, b.binary_mime, "BINARYMIME"),
            (a.dsn, b.dsn, "DSN"),
            (a.requiretls, b.requiretls, "REQUIRETLS"),
            (self.starttls, proposal.starttls, "STARTTLS"),
        ];
        if let Some((_, _, name)) = flags.iter().find(|(mine, theirs, _)| *mine && !*theirs) {
            return Some((*name).to_owned());
        }
        self.auth
            .iter()
            .find(|m| !proposal.offers_auth(m))
            .map(|m| format!("AUTH {m}"))
    }

    /// The typed capability set an `EHLO` reply with this offer carries,
    /// over TLS or not, with `size` as `SIZE`.
    // Field by field rather than a struct literal, so proto can add fields
    // (or make the type `#[non_exhaustive]`) without breaking this.
    #[allow(clippy::field_reassign_with_default)]
    pub(crate) fn capabilities(&self, tls: bool, size: u64) -> Capabilities<'static> {
        let ext = &self.extensions;
        let mut caps = Capabilities::default();
        caps.size = Some(size);
        caps.pipelining = ext.pipelining;
        caps.eight_bit_mime = ext.eight_bit_mime;
        caps.smtputf8 = ext.smtputf8;
        caps.chunking = ext.chunking;
        caps.binary_mime = ext.chunking && ext.binary_mime;
        caps.dsn = ext.dsn;
        caps.enhanced_status_codes = ext.enhanced_status_codes;
        caps.starttls = !tls && self.starttls;
        caps.requiretls = tls && ext.requiretls;
        caps.auth = (!self.auth.is_empty()).then(|| self.auth.clone());
        caps
    }
}
