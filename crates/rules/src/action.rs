//! Actions: what a matching rule does.

use std::fmt;

use postern_proto::{EnhancedCode, Reply, ReplyCode, TlsVersionSet};

use crate::auth::AuthOffer;
use crate::error::ValueError;
use crate::stage::{Stage, StageSet};
use crate::tls::RelayTlsMode;

/// One action of a rule. A matching rule applies its actions in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// AUTH on connections without TLS (the guide's "Plain connections
    /// authentication").
    PlainAuth(AuthOffer),
    /// AUTH on connections with TLS (the guide's "SSL connections
    /// authentication").
    TlsAuth(AuthOffer),
    /// Accept: ends the stage with no objection from later rules.
    Accept,
    /// Reject with a 5xx reply, built and validated when the rule was
    /// loaded: ends the stage. See [`Action::reject`].
    Reject(Reply<'static>),
    /// Refuse for now with a 4xx reply: ends the stage. See
    /// [`Action::tempfail`].
    Tempfail(Reply<'static>),
    /// Where to relay the recipient's mail.
    RelayRoute(Destination),
    /// How to use TLS towards the next hop.
    RelayTls(RelayTlsMode),
    /// The TLS versions allowed towards the next hop. Versions the stack
    /// cannot speak are dropped from the effective plan, never replaced.
    RelayTlsVersions(TlsVersionSet),
    /// What the next hop's certificate is verified against.
    RelayTrustAnchors(TrustAnchors),
    /// Authenticate to the smart host (AUTH PLAIN or LOGIN, over TLS only).
    /// Never sent to MX hosts.
    RelayAuth(RelayAuth),
    /// Add a header field to the message.
    AddHeader(Header),
    /// End evaluation of this stage without a decision.
    Stop,
}

/// A setting that accumulates across rules, a later rule overriding an
/// earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// AUTH on plaintext connections.
    PlainAuth,
    /// AUTH on TLS connections.
    TlsAuth,
    /// Relay route.
    RelayRoute,
    /// Relay TLS mode.
    RelayTls,
    /// Relay TLS versions.
    RelayTlsVersions,
    /// Relay trust anchors.
    RelayTrustAnchors,
    /// Smart-host credentials.
    RelayAuth,
}

impl Setting {
    /// The configuration key that sets it.
    pub const fn name(self) -> &'static str {
        match self {
            Setting::PlainAuth => "plain_auth",
            Setting::TlsAuth => "tls_auth",
            Setting::RelayRoute => "relay_host",
            Setting::RelayTls => "relay_tls",
            Setting::RelayTlsVersions => "relay_tls_versions",
            Setting::RelayTrustAnchors => "relay_trust_anchors",
            Setting::RelayAuth => "relay_auth",
        }
    }
}

impl Action {
    /// The configuration key of the action.
    pub fn name(&self) -> &'static str {
        match self {
            Action::PlainAuth(_) => "plain_auth",
            Action::TlsAuth(_) => "tls_auth",
            Action::Accept => "accept",
            Action::Reject(_) => "reject",
            Action::Tempfail(_) => "tempfail",
            Action::RelayRoute(Destination::Mx) => "relay_mx",
            Action::RelayRoute(Destination::SmartHost { .. }) => "relay_host",
            Action::RelayTls(_) => "relay_tls",
            Action::RelayTlsVersions(_) => "relay_tls_versions",
            Action::RelayTrustAnchors(_) => "relay_trust_anchors",
            Action::RelayAuth(_) => "relay_auth",
            Action::AddHeader(_) => "add_header",
            Action::Stop => "stop",
        }
    }

    /// The stages at which the action means something: auth policy is what
    /// EHLO advertises and AUTH enforces; routing is decided per recipient;
    /// headers go on a received message; decisions fit every stage.
    pub fn stages(&self) -> StageSet {
        match self {
            Action::PlainAuth(_) | Action::TlsAuth(_) => {
                StageSet::only(Stage::Helo).with(Stage::Auth)
            }
            Action::RelayRoute(_)
            | Action::RelayTls(_)
            | Action::RelayTlsVersions(_)
            | Action::RelayTrustAnchors(_)
            | Action::RelayAuth(_) => StageSet::only(Stage::Rcpt),
            Action::AddHeader(_) => StageSet::only(Stage::Data),
            Action::Accept | Action::Reject(_) | Action::Tempfail(_) | Action::Stop => {
                StageSet::ALL
            }
        }
    }

    /// Whether the action ends evaluation of the stage.
    pub fn ends_stage(&self) -> bool {
        matches!(
            self,
            Action::Accept | Action::Reject(_) | Action::Tempfail(_) | Action::Stop
        )
    }

    /// Whether the action decides the stage (accept, reject, tempfail).
    pub fn is_decision(&self) -> bool {
        matches!(
            self,
            Action::Accept | Action::Reject(_) | Action::Tempfail(_)
        )
    }

    /// The setting the action writes, if it is a setting.
    pub fn setting(&self) -> Option<Setting> {
        Some(match self {
            Action::PlainAuth(_) => Setting::PlainAuth,
            Action::TlsAuth(_) => Setting::TlsAuth,
            Action::RelayRoute(_) => Setting::RelayRoute,
            Action::RelayTls(_) => Setting::RelayTls,
            Action::RelayTlsVersions(_) => Setting::RelayTlsVersions,
            Action::RelayTrustAnchors(_) => Setting::RelayTrustAnchors,
            Action::RelayAuth(_) => Setting::RelayAuth,
            _ => return None,
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::PlainAuth(p) => write!(f, "plain_auth = {p}"),
            Action::TlsAuth(p) => write!(f, "tls_auth = {p}"),
            Action::Accept => f.write_str("accept"),
            Action::Reject(r) => write!(f, "reject {r}"),
            Action::Tempfail(r) => write!(f, "tempfail {r}"),
            Action::RelayRoute(r) => write!(f, "relay via {r}"),
            Action::RelayTls(m) => write!(f, "relay_tls = {m}"),
            Action::RelayTlsVersions(v) => write!(f, "relay_tls_versions = [{v}]"),
            Action::RelayTrustAnchors(t) => write!(f, "relay_trust_anchors = {t}"),
            Action::RelayAuth(a) => write!(f, "relay_auth = {a}"),
            Action::AddHeader(h) => write!(f, "add header {h}"),
            Action::Stop => f.write_str("stop"),
        }
    }
}

/// Builds the reply of a reject (`class` 5) or tempfail (`class` 4) at
/// load time, so that evaluation hands out a ready [`Reply`]. Stricter than
/// [`Reply::new`]: the code must be of the action's class, the enhanced code
/// (RFC 3463) of the same class, and the text non-empty printable ASCII.
fn policy_reply(
    class: u8,
    code: u16,
    enhanced: Option<&str>,
    text: &str,
) -> Result<Reply<'static>, ValueError> {
    let reply_code =
        ReplyCode::new(code)
            .filter(|c| c.class() == class)
            .ok_or(ValueError::ReplyCodeClass {
                code,
                expected_class: class,
            })?;
    let enhanced = enhanced
        .map(|e| {
            EnhancedCode::parse_prefix(e)
                .filter(|(c, n)| *n == e.len() && c.class() == class)
                .map(|(c, _)| c)
                .ok_or_else(|| ValueError::EnhancedCode {
                    given: e.to_owned(),
                    expected_class: class,
                })
        })
        .transpose()?;
    let printable = |c: char| c == ' ' || c == '\t' || c.is_ascii_graphic();
    if text.trim().is_empty() || !text.chars().all(printable) {
        return Err(ValueError::ReplyText(text.to_owned()));
    }
    Reply::new(reply_code, enhanced, [text.to_owned()])
        .map_err(|_| ValueError::ReplyText(text.to_owned()))
}

impl Action {
    /// A reject action with a permanent (5xx) reply. `enhanced` is an RFC
    /// 3463 code such as `5.7.1` whose class must be 5.
    pub fn reject(code: u16, enhanced: Option<&str>, text: &str) -> Result<Action, ValueError> {
        policy_reply(5, code, enhanced, text).map(Action::Reject)
    }

    /// A tempfail action with a transient (4xx) reply; `enhanced` must be
    /// of class 4.
    pub fn tempfail(code: u16, enhanced: Option<&str>, text: &str) -> Result<Action, ValueError> {
        policy_reply(4, code, enhanced, text).map(Action::Tempfail)
    }
}

/// Where relayed mail goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Destination {
    /// Look up the recipient domain's MX records (the default).
    #[default]
    Mx,
    /// A fixed next hop (the guide's "Relay → Host").
    SmartHost {
        /// Host name or IP address (without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl Destination {
    /// Parses `host`, `host:port` or `[address]:port`; the port defaults to
    /// 25.
    pub fn smart_host(text: &str) -> Result<Destination, ValueError> {
        let bad = || ValueError::RelayHost(text.to_owned());
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
            addr.parse::<std::net::IpAddr>().map_err(|_| bad())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (addr, port)
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        let port = match port {
            None => 25,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && (host.parse::<std::net::IpAddr>().is_ok()
                || host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                }));
        if !host_ok {
            return Err(bad());
        }
        Ok(Destination::SmartHost {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Mx => f.write_str("mx"),
            Destination::SmartHost { host, port } if host.contains(':') => {
                write!(f, "[{host}]:{port}")
            }
            Destination::SmartHost { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// What a relay peer's certificate is verified against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TrustAnchors {
    /// The platform's (or bundled web PKI) roots; the default.
    #[default]
    System,
    /// Only the CA certificates in these PEM files. Paths are not opened
    /// here: the engine does no IO, the relay loads them.
    Files(Vec<String>),
}

impl fmt::Display for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustAnchors::System => f.write_str("system"),
            TrustAnchors::Files(files) => write!(f, "{files:?}"),
        }
    }
}

/// Credentials for the smart host: a user name and the file that holds the
/// password. The engine does no IO and never sees the secret: the relay
/// reads the file when it delivers (and refuses one that group or others
/// can read).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RelayAuth {
    user: String,
    password_file: String,
}

impl RelayAuth {
    /// Credentials of `user`, password in `password_file` (relative names
    /// are resolved by the caller, e.g. from the configuration's directory).
    /// Both must be non-empty and free of control characters.
    pub fn new(user: &str, password_file: &str) -> Result<RelayAuth, ValueError> {
        let bad = |t: &str| t.is_empty() || t.chars().any(char::is_control);
        if bad(user) {
            return Err(ValueError::RelayAuth(format!(
                "user {user:?} must be non-empty text on one line"
            )));
        }
        if bad(password_file) {
            return Err(ValueError::RelayAuth(format!(
                "password_file {password_file:?} must be a non-empty file name"
            )));
        }
        Ok(RelayAuth {
            user: user.to_owned(),
            password_file: password_file.to_owned(),
        })
    }

    /// The authentication identity.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The file holding the password, as written.
    pub fn password_file(&self) -> &str {
        &self.password_file
    }
}

impl fmt::Display for RelayAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{ user = {:?}, password_file = {:?} }}",
            self.user, self.password_file
        )
    }
}

/// A header field to add to the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    name: String,
    value: String,
}

impl Header {
    /// A header; the name must be RFC 5322 `field-name` (printable ASCII
    /// without `:`) and the value must not contain line breaks, so that a
    /// rule can never inject extra header lines.
    pub fn new(name: &str, value: &str) -> Result<Header, ValueError> {
        if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
            return Err(ValueError::Header(format!(
                "{name:?} is not a header field name"
            )));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ValueError::Header(format!(
                "the value of {name} contains a line break or control character"
            )));
        }
        Ok(Header {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }

    /// The field name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The field value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_classes_are_enforced() {
        assert!(Action::reject(550, Some("5.7.1"), "no").is_ok());
        assert_eq!(
            Action::reject(450, None, "no").unwrap_err(),
            ValueError::ReplyCodeClass {
                code: 450,
                expected_class: 5
            }
        );
        assert_eq!(
            Action::tempfail(550, None, "no").unwrap_err(),
            ValueError::ReplyCodeClass {
                code: 550,
                expected_class: 4
            }
        );
        assert!(matches!(
            Action::reject(550, Some("4.7.1"), "no").unwrap_err(),
            ValueError::EnhancedCode { .. }
        ));
        assert!(matches!(
            Action::reject(550, Some("5.7"), "no").unwrap_err(),
            ValueError::EnhancedCode { .. }
        ));
        assert!(matches!(
            Action::reject(550, None, "two\r\nlines").unwrap_err(),
            ValueError::ReplyText(_)
        ));
        assert!(matches!(
            Action::reject(550, None, " ").unwrap_err(),
            ValueError::ReplyText(_)
        ));
        let Ok(Action::Tempfail(r)) = Action::tempfail(451, Some("4.7.0"), "later") else {
            panic!("a tempfail")
        };
        assert_eq!(r.to_string(), "451 4.7.0 later");
        assert_eq!(r.to_vec(), b"451 4.7.0 later\r\n");
        assert!(matches!(
            Action::reject(599, None, "no").unwrap_err(),
            ValueError::ReplyCodeClass { code: 599, .. }
        ));
    }

    #[test]
    fn smart_hosts_parse() {
        assert_eq!(
            Destination::smart_host("smtp.example.net:465").unwrap(),
            Destination::SmartHost {
                host: "smtp.example.net".into(),
                port: 465
            }
        );
        assert_eq!(
            Destination::smart_host("relay.example")
                .unwrap()
                .to_string(),
            "relay.example:25"
        );
        assert_eq!(
            Destination::smart_host("[2001:db8::1]:587")
                .unwrap()
                .to_string(),
            "[2001:db8::1]:587"
        );
        for bad in [
            "",
            ":25",
            "host:0",
            "host:99999",
            "bad host",
            "[nope]:25",
            "-a.b",
        ] {
            assert!(Destination::smart_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relay_auth_names_a_file_never_a_secret() {
        let a = RelayAuth::new("relay@example.net", "secrets/smarthost").unwrap();
        assert_eq!(
            Action::RelayAuth(a.clone()).to_string(),
            r#"relay_auth = { user = "relay@example.net", password_file = "secrets/smarthost" }"#
        );
        assert_eq!(
            (a.user(), a.password_file()),
            ("relay@example.net", "secrets/smarthost")
        );
        assert!(RelayAuth::new("", "f").is_err());
        assert!(RelayAuth::new("u\r\nMAIL", "f").is_err());
        assert!(RelayAuth::new("u", "").is_err());
    }

    #[test]
    fn headers_cannot_inject_lines() {
        assert!(Header::new("X-Policy", "ok").is_ok());
        assert!(Header::new("X Policy", "ok").is_err());
        assert!(Header::new("X-Policy:", "ok").is_err());
        assert!(Header::new("X-Policy", "a\r\nBcc: evil@example").is_err());
    }
}
