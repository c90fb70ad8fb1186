//! Serde representations: enums by their configuration names, sets as
//! lists of names, so that traces and files read like the configuration.

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use std::fmt;

use crate::action::{Route, TrustAnchors};
use crate::auth::{AuthPolicy, Mechanism, MechanismSet};
use crate::facts::BodyType;
use crate::tls::{RelayTlsMode, TlsVersion, VersionSet};

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

by_name!(TlsVersion, "TLS version");
by_name!(RelayTlsMode, "relay TLS mode");
by_name!(Mechanism, "AUTH mechanism");
by_name!(BodyType, "BODY type");

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

impl Serialize for VersionSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        names(s, self.iter())
    }
}

impl Serialize for MechanismSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        names(s, self.iter())
    }
}

impl Serialize for AuthPolicy {
    /// `"off"`, or the list of mechanisms.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AuthPolicy::Off => s.serialize_str("off"),
            AuthPolicy::On(set) => set.serialize(s),
        }
    }
}

impl Serialize for Route {
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

/// A value written either as one keyword or as a list, like
/// `plain_auth = "off"` and `tls_auth = ["PLAIN", "LOGIN"]`. Deserialised by
/// hand because an untagged enum would only say "did not match any variant".
#[derive(Debug, Clone, PartialEq, Eq)]
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
