//! Conditions: one test of one fact, optionally negated.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use postern_proto::{Body, TlsVersion, TlsVersionSet};

use crate::error::PatternError;
use crate::facts::Facts;
use crate::pattern::TextMatch;
use crate::stage::{Stage, StageSet};

/// One condition of a rule.
///
/// A condition is *true*, *false* or *unknown* (the fact it tests was not
/// supplied). Unknown never satisfies a condition, negated or not: a rule
/// must not fire, nor be skipped into firing, on facts nobody established.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Condition {
    /// What is tested.
    pub test: Test,
    /// Whether the result is inverted (`not = { … }` in TOML).
    pub negate: bool,
}

impl Condition {
    /// A condition that holds when `test` does.
    pub fn new(test: Test) -> Condition {
        Condition {
            test,
            negate: false,
        }
    }

    /// A condition that holds when `test` does not.
    pub fn not(test: Test) -> Condition {
        Condition { test, negate: true }
    }

    /// Evaluates the condition; `None` when the fact is unknown.
    #[inline]
    pub fn eval(&self, facts: &Facts) -> Option<bool> {
        self.test.eval(facts).map(|r| r != self.negate)
    }

    /// The fact this condition tests.
    pub fn field(&self) -> Field {
        self.test.field()
    }
}

impl From<Test> for Condition {
    fn from(test: Test) -> Condition {
        Condition::new(test)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negate {
            write!(f, "not ({})", self.test)
        } else {
            self.test.fmt(f)
        }
    }
}

/// The test a condition applies: a fact and an operator.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Test {
    /// The connection is (or is not) protected by TLS.
    Tls(bool),
    /// The negotiated TLS version.
    TlsVersion(VersionMatch),
    /// The negotiated cipher suite name.
    Cipher(TextMatch),
    /// The listener name.
    Listener(TextMatch),
    /// The local port.
    LocalPort(ValueMatch<u16>),
    /// The client address.
    RemoteIp(IpMatch),
    /// Whether a client certificate verified.
    ClientCertVerified(bool),
    /// The HELO/EHLO name.
    Helo(TextMatch),
    /// Whether the client authenticated.
    Authenticated(bool),
    /// The authenticated user.
    User(TextMatch),
    /// The sender address.
    Sender(TextMatch),
    /// The sender domain.
    SenderDomain(TextMatch),
    /// Whether the sender is the null reverse-path.
    NullSender(bool),
    /// The recipient address.
    Recipient(TextMatch),
    /// The recipient domain.
    RecipientDomain(TextMatch),
    /// Whether the recipient is local.
    LocalRecipient(bool),
    /// Whether the recipient is relayed.
    Relaying(bool),
    /// The declared message size.
    Size(SizeMatch),
    /// The declared body type.
    Body(ValueMatch<Body>),
    /// Whether SMTPUTF8 was requested.
    Smtputf8(bool),
    /// Whether REQUIRETLS was requested.
    Requiretls(bool),
}

impl Test {
    /// Evaluates the test without negation; `None` when the fact is unknown.
    #[inline]
    pub fn eval(&self, facts: &Facts) -> Option<bool> {
        let c = &facts.connection;
        match self {
            Test::Tls(want) => c.tls.map(|v| v == *want),
            Test::TlsVersion(m) => c.tls_version.map(|v| m.matches(v)),
            Test::Cipher(m) => c.cipher.as_deref().map(|v| m.matches(v)),
            Test::Listener(m) => c.listener.as_deref().map(|v| m.matches(v)),
            Test::LocalPort(m) => c.local_port.map(|v| m.matches(&v)),
            Test::RemoteIp(m) => c.remote_ip.map(|v| m.matches(v)),
            Test::ClientCertVerified(want) => c.client_cert_verified.map(|v| v == *want),
            Test::Helo(m) => facts.session.helo.as_deref().map(|v| m.matches(v)),
            Test::Authenticated(want) => facts.session.is_authenticated().map(|v| v == *want),
            Test::User(m) => facts.session.user.as_deref().map(|v| m.matches(v)),
            Test::Sender(m) => facts.sender.address().map(|v| m.matches(v)),
            Test::SenderDomain(m) => facts.sender.domain().map(|v| m.matches(v)),
            Test::NullSender(want) => facts.sender.is_null().map(|v| v == *want),
            Test::Recipient(m) => facts.recipient.address().map(|v| m.matches(v)),
            Test::RecipientDomain(m) => facts.recipient.domain().map(|v| m.matches(v)),
            Test::LocalRecipient(want) => facts.recipient.is_local().map(|v| v == *want),
            Test::Relaying(want) => facts.recipient.is_relaying().map(|v| v == *want),
            Test::Size(m) => facts.message.size.map(|v| m.matches(v)),
            Test::Body(m) => facts.message.body.map(|v| m.matches(&v)),
            Test::Smtputf8(want) => facts.message.smtputf8.map(|v| v == *want),
            Test::Requiretls(want) => facts.message.requiretls.map(|v| v == *want),
        }
    }

    /// The fact's current value as text, for traces; `None` when unknown.
    pub fn value(&self, facts: &Facts) -> Option<String> {
        let c = &facts.connection;
        match self.field() {
            Field::Tls => c.tls.map(|v| v.to_string()),
            Field::TlsVersion => c.tls_version.map(|v| v.to_string()),
            Field::Cipher => c.cipher.clone(),
            Field::Listener => c.listener.clone(),
            Field::LocalPort => c.local_port.map(|v| v.to_string()),
            Field::RemoteIp => c.remote_ip.map(|v| v.to_string()),
            Field::ClientCertVerified => c.client_cert_verified.map(|v| v.to_string()),
            Field::Helo => facts.session.helo.clone(),
            Field::Authenticated => facts.session.is_authenticated().map(|v| v.to_string()),
            Field::User => facts.session.user.clone(),
            Field::Sender => facts.sender.address().map(|a| format!("<{a}>")),
            Field::SenderDomain => facts.sender.domain().map(str::to_owned),
            Field::NullSender => facts.sender.is_null().map(|v| v.to_string()),
            Field::Recipient => facts.recipient.address().map(str::to_owned),
            Field::RecipientDomain => facts.recipient.domain().map(str::to_owned),
            Field::LocalRecipient => facts.recipient.is_local().map(|v| v.to_string()),
            Field::Relaying => facts.recipient.is_relaying().map(|v| v.to_string()),
            Field::Size => facts.message.size.map(|v| v.to_string()),
            Field::Body => facts.message.body.map(|v| v.as_str().to_owned()),
            Field::Smtputf8 => facts.message.smtputf8.map(|v| v.to_string()),
            Field::Requiretls => facts.message.requiretls.map(|v| v.to_string()),
        }
    }

    /// The fact tested.
    pub fn field(&self) -> Field {
        match self {
            Test::Tls(_) => Field::Tls,
            Test::TlsVersion(_) => Field::TlsVersion,
            Test::Cipher(_) => Field::Cipher,
            Test::Listener(_) => Field::Listener,
            Test::LocalPort(_) => Field::LocalPort,
            Test::RemoteIp(_) => Field::RemoteIp,
            Test::ClientCertVerified(_) => Field::ClientCertVerified,
            Test::Helo(_) => Field::Helo,
            Test::Authenticated(_) => Field::Authenticated,
            Test::User(_) => Field::User,
            Test::Sender(_) => Field::Sender,
            Test::SenderDomain(_) => Field::SenderDomain,
            Test::NullSender(_) => Field::NullSender,
            Test::Recipient(_) => Field::Recipient,
            Test::RecipientDomain(_) => Field::RecipientDomain,
            Test::LocalRecipient(_) => Field::LocalRecipient,
            Test::Relaying(_) => Field::Relaying,
            Test::Size(_) => Field::Size,
            Test::Body(_) => Field::Body,
            Test::Smtputf8(_) => Field::Smtputf8,
            Test::Requiretls(_) => Field::Requiretls,
        }
    }

    /// For a boolean test, the value it wants.
    pub fn wanted_flag(&self) -> Option<bool> {
        match self {
            Test::Tls(b)
            | Test::ClientCertVerified(b)
            | Test::Authenticated(b)
            | Test::NullSender(b)
            | Test::LocalRecipient(b)
            | Test::Relaying(b)
            | Test::Smtputf8(b)
            | Test::Requiretls(b) => Some(*b),
            _ => None,
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.field().name();
        match self {
            Test::TlsVersion(m) => write!(f, "{name} {m}"),
            Test::Cipher(m)
            | Test::Listener(m)
            | Test::Helo(m)
            | Test::User(m)
            | Test::Sender(m)
            | Test::SenderDomain(m)
            | Test::Recipient(m)
            | Test::RecipientDomain(m) => write!(f, "{name} {m}"),
            Test::LocalPort(m) => write!(f, "{name} {m}"),
            Test::RemoteIp(m) => write!(f, "{name} {m}"),
            Test::Size(m) => write!(f, "{name} {m}"),
            Test::Body(m) => write!(f, "{name} {}", m.map(|b| b.as_str())),
            _ => write!(f, "{name} is {}", self.wanted_flag().unwrap_or_default()),
        }
    }
}

/// The facts a condition can test, named as in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `tls`
    Tls,
    /// `tls_version`
    TlsVersion,
    /// `cipher`
    Cipher,
    /// `listener`
    Listener,
    /// `local_port`
    LocalPort,
    /// `remote_ip`
    RemoteIp,
    /// `client_cert_verified`
    ClientCertVerified,
    /// `helo`
    Helo,
    /// `authenticated`
    Authenticated,
    /// `user`
    User,
    /// `sender`
    Sender,
    /// `sender_domain`
    SenderDomain,
    /// `null_sender`
    NullSender,
    /// `recipient`
    Recipient,
    /// `recipient_domain`
    RecipientDomain,
    /// `local_recipient`
    LocalRecipient,
    /// `relaying`
    Relaying,
    /// `size`
    Size,
    /// `body`
    Body,
    /// `smtputf8`
    Smtputf8,
    /// `requiretls`
    Requiretls,
}

impl Field {
    /// The key used in configuration and traces.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Tls => "tls",
            Field::TlsVersion => "tls_version",
            Field::Cipher => "cipher",
            Field::Listener => "listener",
            Field::LocalPort => "local_port",
            Field::RemoteIp => "remote_ip",
            Field::ClientCertVerified => "client_cert_verified",
            Field::Helo => "helo",
            Field::Authenticated => "authenticated",
            Field::User => "user",
            Field::Sender => "sender",
            Field::SenderDomain => "sender_domain",
            Field::NullSender => "null_sender",
            Field::Recipient => "recipient",
            Field::RecipientDomain => "recipient_domain",
            Field::LocalRecipient => "local_recipient",
            Field::Relaying => "relaying",
            Field::Size => "size",
            Field::Body => "body",
            Field::Smtputf8 => "smtputf8",
            Field::Requiretls => "requiretls",
        }
    }

    /// The first stage at which the caller can know this fact. Authentication
    /// counts from MAIL because at the AUTH stage it is still being decided.
    pub const fn known_from(self) -> Stage {
        match self {
            Field::Tls
            | Field::TlsVersion
            | Field::Cipher
            | Field::Listener
            | Field::LocalPort
            | Field::RemoteIp
            | Field::ClientCertVerified => Stage::Connect,
            Field::Helo => Stage::Helo,
            Field::Authenticated
            | Field::User
            | Field::Sender
            | Field::SenderDomain
            | Field::NullSender
            | Field::Size
            | Field::Body
            | Field::Smtputf8
            | Field::Requiretls => Stage::Mail,
            Field::Recipient | Field::RecipientDomain | Field::LocalRecipient | Field::Relaying => {
                Stage::Rcpt
            }
        }
    }

    /// The stages at which the fact is known.
    pub const fn stages(self) -> StageSet {
        StageSet::from(self.known_from())
    }

    /// Whether the fact describes the transport rather than the mail: such
    /// a condition narrows *which connections* a rule covers, not which
    /// messages.
    pub const fn is_connection(self) -> bool {
        matches!(self.known_from(), Stage::Connect)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `is` / `is_not` / `in` over a small value type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueMatch<T> {
    /// Equal to the value.
    Is(T),
    /// Not equal to the value.
    IsNot(T),
    /// Equal to one of the values.
    In(Vec<T>),
}

impl<T> ValueMatch<T> {
    /// The same operator over `f` of each value (for display).
    pub fn map<U>(&self, f: impl Fn(&T) -> U) -> ValueMatch<U> {
        match self {
            ValueMatch::Is(v) => ValueMatch::Is(f(v)),
            ValueMatch::IsNot(v) => ValueMatch::IsNot(f(v)),
            ValueMatch::In(list) => ValueMatch::In(list.iter().map(f).collect()),
        }
    }
}

impl<T: PartialEq> ValueMatch<T> {
    /// Whether `value` satisfies the operator.
    #[inline]
    pub fn matches(&self, value: &T) -> bool {
        match self {
            ValueMatch::Is(v) => v == value,
            ValueMatch::IsNot(v) => v != value,
            ValueMatch::In(list) => list.contains(value),
        }
    }
}

impl<T: fmt::Display> fmt::Display for ValueMatch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueMatch::Is(v) => write!(f, "is {v}"),
            ValueMatch::IsNot(v) => write!(f, "is not {v}"),
            ValueMatch::In(list) => {
                f.write_str("in [")?;
                for (i, v) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// An operator on the negotiated TLS version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VersionMatch {
    /// Exactly this version.
    Is(TlsVersion),
    /// One of these versions.
    In(TlsVersionSet),
    /// This version or newer.
    AtLeast(TlsVersion),
}

impl VersionMatch {
    /// Whether `version` satisfies the operator.
    #[inline]
    pub fn matches(self, version: TlsVersion) -> bool {
        match self {
            VersionMatch::Is(v) => v == version,
            VersionMatch::In(set) => set.contains(version),
            VersionMatch::AtLeast(v) => version >= v,
        }
    }
}

impl fmt::Display for VersionMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionMatch::Is(v) => write!(f, "is {v}"),
            VersionMatch::In(set) => write!(f, "in [{set}]"),
            VersionMatch::AtLeast(v) => write!(f, "at least {v}"),
        }
    }
}

/// An operator on the client address: membership in a list of CIDR blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpMatch {
    nets: Vec<IpNet>,
}

impl IpMatch {
    /// Parses addresses and CIDR blocks; a bare address means just itself.
    pub fn parse<I, S>(items: I) -> Result<IpMatch, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = items
            .into_iter()
            .map(|s| parse_net(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if nets.is_empty() {
            return Err(PatternError::EmptyList);
        }
        Ok(IpMatch { nets })
    }

    /// Whether `ip` is in one of the blocks. IPv4-mapped IPv6 addresses are
    /// compared as IPv4, since dual-stack listeners report IPv4 peers that
    /// way and an operator writing `192.0.2.0/24` means them too.
    #[inline]
    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The blocks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

fn parse_net(s: &str) -> Result<IpNet, PatternError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| PatternError::Cidr(s.to_owned()))
}

impl fmt::Display for IpMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("in [")?;
        for (i, n) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}")?;
        }
        f.write_str("]")
    }
}

/// An operator on the declared size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SizeMatch {
    /// Larger than this many octets.
    Over(u64),
    /// This many octets or fewer.
    AtMost(u64),
}

impl SizeMatch {
    /// Whether `size` satisfies the operator.
    #[inline]
    pub fn matches(self, size: u64) -> bool {
        match self {
            SizeMatch::Over(n) => size > n,
            SizeMatch::AtMost(n) => size <= n,
        }
    }
}

impl fmt::Display for SizeMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeMatch::Over(n) => write!(f, "over {n}"),
            SizeMatch::AtMost(n) => write!(f, "at most {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_proto::{ForwardPath, Mailbox, ReversePath};

    #[test]
    fn unknown_never_matches_even_negated() {
        let facts = Facts::new();
        assert_eq!(Condition::new(Test::Tls(false)).eval(&facts), None);
        assert_eq!(Condition::not(Test::Tls(false)).eval(&facts), None);
        let facts = Facts::new().tls(false);
        assert_eq!(Condition::new(Test::Tls(false)).eval(&facts), Some(true));
        assert_eq!(Condition::not(Test::Tls(false)).eval(&facts), Some(false));
    }

    #[test]
    fn cidr_lists_match_v4_v6_and_mapped() {
        let m = IpMatch::parse(["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]).unwrap();
        assert!(m.matches("10.1.2.3".parse().unwrap()));
        assert!(m.matches("::ffff:10.9.9.9".parse().unwrap()));
        assert!(m.matches("2001:db8::1".parse().unwrap()));
        assert!(m.matches("192.0.2.7".parse().unwrap()));
        assert!(!m.matches("192.0.2.8".parse().unwrap()));
        assert_eq!(
            IpMatch::parse(["10.0.0.0/33"]).unwrap_err(),
            PatternError::Cidr("10.0.0.0/33".into())
        );
        assert_eq!(
            IpMatch::parse(Vec::<String>::new()).unwrap_err(),
            PatternError::EmptyList
        );
    }

    #[test]
    fn every_field_reads_its_fact() {
        let facts = Facts::new()
            .tls_version(TlsVersion::Tls13)
            .cipher("TLS13_AES_128_GCM_SHA256")
            .listener("mx")
            .local_port(25)
            .remote_ip("192.0.2.1".parse().unwrap())
            .client_cert_verified(false)
            .helo("client.example")
            .user("alice")
            .sender(ReversePath::Null)
            .recipient(ForwardPath::Mailbox(
                Mailbox::parse("bob@mydomain.com").unwrap(),
            ))
            .local_recipient(true)
            .size(1000)
            .body(Body::EightBitMime)
            .smtputf8(false)
            .requiretls(true);
        let tests = [
            Test::Tls(true),
            Test::TlsVersion(VersionMatch::AtLeast(TlsVersion::Tls12)),
            Test::Cipher(TextMatch::wildcard("TLS13_*").unwrap()),
            Test::Listener(TextMatch::is("MX")),
            Test::LocalPort(ValueMatch::In(vec![25, 587])),
            Test::RemoteIp(IpMatch::parse(["192.0.2.0/24"]).unwrap()),
            Test::ClientCertVerified(false),
            Test::Helo(TextMatch::regex(r"\.example$").unwrap()),
            Test::Authenticated(true),
            Test::User(TextMatch::is("alice")),
            Test::Sender(TextMatch::is("")),
            Test::SenderDomain(TextMatch::is("")),
            Test::NullSender(true),
            Test::Recipient(TextMatch::is("BOB@mydomain.com")),
            Test::RecipientDomain(TextMatch::is("mydomain.com")),
            Test::LocalRecipient(true),
            Test::Relaying(false),
            Test::Size(SizeMatch::AtMost(1000)),
            Test::Body(ValueMatch::Is(Body::EightBitMime)),
            Test::Smtputf8(false),
            Test::Requiretls(true),
        ];
        for t in &tests {
            assert_eq!(t.eval(&facts), Some(true), "{t}");
            assert!(t.value(&facts).is_some(), "{t}");
            assert_eq!(t.eval(&Facts::new()), None, "{t}");
        }
        assert!(!SizeMatch::Over(1000).matches(1000));
        assert!(VersionMatch::In(TlsVersionSet::CURRENT).matches(TlsVersion::Tls12));
        assert!(!VersionMatch::Is(TlsVersion::Tls12).matches(TlsVersion::Tls13));
    }

    #[test]
    fn display_reads_like_the_config() {
        assert_eq!(Condition::new(Test::Tls(false)).to_string(), "tls is false");
        assert_eq!(
            Condition::not(Test::RecipientDomain(TextMatch::is("a.com"))).to_string(),
            r#"not (recipient_domain is "a.com")"#
        );
        assert_eq!(
            Test::LocalPort(ValueMatch::In(vec![25, 587])).to_string(),
            "local_port in [25, 587]"
        );
    }
}
