//! Serde representations: enums by their configuration names, sets as
//! lists of names, so that traces and files read like the configuration.

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use std::fmt;

use postern_proto::address::{parse_forward_path, parse_path};
use postern_proto::{AddressError, ForwardPath, Mailbox, ReversePath, TlsVersionSet};

use crate::action::{Destination, TrustAnchors};
use crate::auth::{AuthOffer, MechanismSet};
use crate::facts::{RecipientFacts, SenderFacts};
use crate::tls::RelayTlsMode;

macro_rules! by_name {
    ($ty:ty, $what:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                <$ty>::from_name(&name).ok_or_else(|| {
                    de::Error::custom(format_args!(concat!("unknown ", $what, " {:?}"), name))
                })
            }
        }
    };
}

by_name!(RelayTlsMode, "relay TLS mode");

fn names<S: Serializer, T: Serialize>(
    s: S,
    items: impl Iterator<Item = T>,
) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(None)?;
    for i in items {
        seq.serialize_element(&i)?;
    }
    seq.end()
}

/// A [`TlsVersionSet`] as the list of its names (for `serialize_with`:
/// the set is proto's, the list form is the rules' file format).
pub(crate) fn version_set<S: Serializer>(set: &TlsVersionSet, s: S) -> Result<S::Ok, S::Error> {
    names(s, set.iter().map(|v| v.name()))
}

impl Serialize for MechanismSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        names(s, self.names())
    }
}

impl Serialize for AuthOffer {
    /// `"off"`, or the list of mechanisms.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AuthOffer::Off => s.serialize_str("off"),
            AuthOffer::On(set) => set.serialize(s),
        }
    }
}

impl Serialize for Destination {
    /// `"mx"` or `"host:port"`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for TrustAnchors {
    /// `"system"` or the list of files.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TrustAnchors::System => s.serialize_str("system"),
            TrustAnchors::Files(files) => files.serialize(s),
        }
    }
}

/// An address in a fact file that the SMTP grammar refuses.
#[derive(Debug)]
pub(crate) struct BadAddress {
    given: String,
    error: AddressError,
}

impl fmt::Display for BadAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not an SMTP address: {}", self.given, self.error)
    }
}

fn bad(given: &str) -> impl FnOnce(AddressError) -> BadAddress + '_ {
    move |error| BadAddress {
        given: given.to_owned(),
        error,
    }
}

/// The file form of [`SenderFacts`]: `{ address = "a@b" }`, `""` for `<>`.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SenderRepr {
    address: Option<String>,
}

impl TryFrom<SenderRepr> for SenderFacts {
    type Error = BadAddress;

    fn try_from(r: SenderRepr) -> Result<SenderFacts, BadAddress> {
        let Some(text) = r.address else {
            return Ok(SenderFacts::default());
        };
        let path = match text.as_str() {
            "" => ReversePath::Null,
            t if t.starts_with('<') => parse_path(t).map_err(bad(t))?,
            t => ReversePath::Mailbox(Mailbox::parse(t).map_err(bad(t))?),
        };
        Ok(SenderFacts::new(path))
    }
}

impl From<SenderFacts> for SenderRepr {
    fn from(f: SenderFacts) -> SenderRepr {
        SenderRepr {
            address: f.address().map(str::to_owned),
        }
    }
}

/// The file form of [`RecipientFacts`]: `{ address = "b@c", local = true }`.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RecipientRepr {
    address: Option<String>,
    local: Option<bool>,
    relaying: Option<bool>,
}

impl TryFrom<RecipientRepr> for RecipientFacts {
    type Error = BadAddress;

    fn try_from(r: RecipientRepr) -> Result<RecipientFacts, BadAddress> {
        let mut facts = RecipientFacts::default();
        if let Some(t) = r.address.as_deref() {
            facts.set_path(if t.eq_ignore_ascii_case("postmaster") {
                ForwardPath::Postmaster
            } else if t.starts_with('<') {
                parse_forward_path(t).map_err(bad(t))?
            } else {
                ForwardPath::Mailbox(Mailbox::parse(t).map_err(bad(t))?)
            });
        }
        facts.local = r.local;
        facts.relaying = r.relaying;
        Ok(facts)
    }
}

impl From<RecipientFacts> for RecipientRepr {
    fn from(f: RecipientFacts) -> RecipientRepr {
        RecipientRepr {
            address: f.address().map(str::to_owned),
            local: f.local,
            relaying: f.relaying,
        }
    }
}

/// A value written either as one keyword or as a list, like
/// `plain_auth = "off"` and `tls_auth = ["PLAIN", "LOGIN"]`. Deserialised by
/// hand because an untagged enum would only say "did not match any variant".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeywordOrList {
    /// A single string.
    Keyword(String),
    /// A list of strings.
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for KeywordOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeywordOrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a keyword string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeywordOrList, E> {
                Ok(KeywordOrList::Keyword(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeywordOrList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(KeywordOrList::List(items))
            }
        }
        d.deserialize_any(V)
    }
}
