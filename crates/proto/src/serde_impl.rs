//! `serde` support (the `serde` feature), so that values stay typed from the
//! wire to the disk and back: a queue's envelope stores these types, not
//! strings re-parsed later.
//!
//! Every type is written in its SMTP text form (`"5.7.1"`, `"TLSv1.2"`,
//! `"8BITMIME"`, `"<alice@example.org>"`) and read back through the same
//! strict grammar as on the wire, so a stored value that no longer parses
//! is an error, never a silently different value.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::address::{parse_forward_path, parse_path};
use crate::{
    AddressLiteral, Body, Domain, EnhancedCode, ForwardPath, Host, Mailbox, Mechanism, Notify,
    Orcpt, Reply, ReplyCode, Ret, ReversePath, TlsVersion,
};

/// Deserializes a string and converts it with `parse`, reporting `what` on
/// failure.
fn from_text<'de, D, T>(
    d: D,
    what: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct TextVisitor(&'static str);
    impl Visitor<'_> for TextVisitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} as text", self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
    }
    let text = d.deserialize_string(TextVisitor(what))?;
    parse(&text).ok_or_else(|| de::Error::custom(format_args!("invalid {what}: {text:?}")))
}

macro_rules! via_text {
    ($ty:ty, $what:literal, $to:expr, $from:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                #[allow(clippy::redundant_closure_call)]
                s.collect_str(&($to)(self))
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                from_text(d, $what, $from)
            }
        }
    };
}

via_text!(
    TlsVersion,
    "TLS version",
    |v: &TlsVersion| v.name(),
    TlsVersion::from_name
);
via_text!(
    EnhancedCode,
    "enhanced status code",
    |c: &EnhancedCode| c.to_string(),
    |t: &str| EnhancedCode::parse_prefix(t)
        .filter(|(_, n)| *n == t.len())
        .map(|(c, _)| c)
);
via_text!(Body, "BODY value", |b: &Body| b.as_str(), |t: &str| {
    Body::from_keyword(t)
});
via_text!(Ret, "RET value", |r: &Ret| r.as_str(), |t: &str| {
    Ret::from_keyword(t)
});
via_text!(
    Notify,
    "NOTIFY value",
    |n: &Notify| n.to_string(),
    |t: &str| { Notify::from_keyword(t) }
);
via_text!(
    Mechanism<'static>,
    "SASL mechanism",
    |m: &Mechanism<'static>| m.as_str().to_owned(),
    |t: &str| Mechanism::parse(t).ok().map(Mechanism::into_owned)
);
via_text!(
    Domain<'static>,
    "domain",
    |d: &Domain<'static>| d.to_string(),
    |t: &str| Domain::new(t.to_owned()).ok()
);
via_text!(
    Host<'static>,
    "host",
    |h: &Host<'static>| h.to_string(),
    |t: &str| Host::parse(t).ok().map(Host::into_owned)
);
via_text!(
    AddressLiteral<'static>,
    "address literal",
    |a: &AddressLiteral<'static>| a.to_string(),
    |t: &str| match Host::parse(t).ok()? {
        Host::Literal(l) => Some(l.into_owned()),
        Host::Domain(_) => None,
    }
);
via_text!(
    Mailbox<'static>,
    "mailbox",
    |m: &Mailbox<'static>| m.to_string(),
    |t: &str| Mailbox::parse(t).ok().map(Mailbox::into_owned)
);
via_text!(
    ReversePath<'static>,
    "reverse path",
    |p: &ReversePath<'static>| p.to_string(),
    |t: &str| parse_path(t).ok().map(ReversePath::into_owned)
);
via_text!(
    ForwardPath<'static>,
    "forward path",
    |p: &ForwardPath<'static>| p.to_string(),
    |t: &str| parse_forward_path(t).ok().map(ForwardPath::into_owned)
);

impl Serialize for ReplyCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.get())
    }
}

impl<'de> Deserialize<'de> for ReplyCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u16::deserialize(d)?;
        ReplyCode::new(n).ok_or_else(|| de::Error::custom(format_args!("invalid reply code {n}")))
    }
}

/// The stored form of a [`Reply`] and an [`Orcpt`]: fields by name.
#[derive(Serialize, Deserialize)]
struct ReplyRepr<'a> {
    code: ReplyCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enhanced: Option<EnhancedCode>,
    #[serde(borrow)]
    lines: Vec<Cow<'a, str>>,
}

impl Serialize for Reply<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ReplyRepr {
            code: self.code(),
            enhanced: self.enhanced(),
            lines: self
                .lines()
                .iter()
                .map(|l| Cow::Borrowed(l.as_ref()))
                .collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Reply<'static> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = ReplyRepr::deserialize(d)?;
        let lines: Vec<String> = r.lines.into_iter().map(Cow::into_owned).collect();
        Reply::new(r.code, r.enhanced, lines).map_err(de::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
struct OrcptRepr<'a> {
    #[serde(borrow)]
    addr_type: Cow<'a, str>,
    #[serde(borrow)]
    address: Cow<'a, str>,
}

impl Serialize for Orcpt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        OrcptRepr {
            addr_type: Cow::Borrowed(&self.addr_type),
            address: Cow::Borrowed(&self.address),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Orcpt<'static> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = OrcptRepr::deserialize(d)?;
        Ok(Orcpt {
            addr_type: Cow::Owned(r.addr_type.into_owned()),
            address: Cow::Owned(r.address.into_owned()),
        })
    }
}
