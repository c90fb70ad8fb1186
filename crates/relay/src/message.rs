//! A message to deliver: envelope, DSN parameters and body.

use bytes::Bytes;
use postern_proto::{Body, ForwardPath, RcptParams, Ret, ReversePath};

/// One recipient, with its DSN parameters (RFC 3461 `NOTIFY`, `ORCPT`) and
/// any other RCPT parameters to pass through.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recipient {
    /// The forward-path.
    pub to: ForwardPath<'static>,
    /// RCPT parameters. `NOTIFY` and `ORCPT` are sent only to servers that
    /// offer DSN (and otherwise dropped, see
    /// [`MessageResult::dsn_dropped`](crate::MessageResult::dsn_dropped)).
    pub params: RcptParams<'static>,
}

impl Recipient {
    /// A recipient without parameters.
    pub fn new(to: ForwardPath<'static>) -> Self {
        Self {
            to,
            params: RcptParams::default(),
        }
    }

    /// Sets the RCPT parameters.
    pub fn with_params(mut self, params: RcptParams<'static>) -> Self {
        self.params = params;
        self
    }
}

impl From<ForwardPath<'static>> for Recipient {
    fn from(to: ForwardPath<'static>) -> Self {
        Recipient::new(to)
    }
}

/// A message: the envelope and the body as it will be sent (headers and
/// content, CRLF line endings; bare CR or LF are handled by
/// [`LineEndings`](crate::LineEndings)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The reverse-path (`MAIL FROM`).
    pub from: ReversePath<'static>,
    /// The recipients, in order; results come back in the same order.
    pub recipients: Vec<Recipient>,
    /// The body, unstuffed (the client dot-stuffs it for DATA).
    pub body: Bytes,
    /// The declared body type. `None` detects 7-bit or 8-bit from the
    /// content; `Some(Body::BinaryMime)` sends it raw with BDAT.
    pub body_type: Option<Body>,
    /// DSN `RET` (sent only to servers that offer DSN).
    pub ret: Option<Ret>,
    /// DSN `ENVID` (sent only to servers that offer DSN).
    pub envid: Option<String>,
    /// REQUIRETLS (RFC 8689): send only over authenticated TLS (verified
    /// certificate or DANE) to a server that offers REQUIRETLS, passing the
    /// flag on; otherwise fail with 5.7.30, never relaxed.
    pub requiretls: bool,
}

impl Message {
    /// A message from `from` to `recipients`.
    pub fn new<R: Into<Recipient>>(
        from: ReversePath<'static>,
        recipients: impl IntoIterator<Item = R>,
        body: impl Into<Bytes>,
    ) -> Self {
        Self {
            from,
            recipients: recipients.into_iter().map(Into::into).collect(),
            body: body.into(),
            body_type: None,
            ret: None,
            envid: None,
            requiretls: false,
        }
    }

    /// Asks for REQUIRETLS on every hop (RFC 8689).
    pub fn with_requiretls(mut self, requiretls: bool) -> Self {
        self.requiretls = requiretls;
        self
    }

    /// Declares the body type (`None` detects 7-bit or 8-bit).
    pub fn with_body_type(mut self, body_type: Option<Body>) -> Self {
        self.body_type = body_type;
        self
    }

    /// Sets DSN `RET`.
    pub fn with_ret(mut self, ret: Option<Ret>) -> Self {
        self.ret = ret;
        self
    }

    /// Sets DSN `ENVID`.
    pub fn with_envid(mut self, envid: Option<String>) -> Self {
        self.envid = envid;
        self
    }

    /// True when an address needs SMTPUTF8 (RFC 6531).
    pub fn needs_smtputf8(&self) -> bool {
        self.from.is_utf8() || self.recipients.iter().any(|r| r.to.is_utf8())
    }
}
