//! Reading envelopes written by earlier versions: the v1 format stored
//! `NOTIFY` as a list of keywords and `ORCPT` as one `addr-type;address`
//! string. Both forms are accepted; envelopes are written in the typed
//! form only.

use std::borrow::Cow;

use postern_proto::{Notify, Orcpt};
use serde::Deserialize;
use serde::de::{self, Deserializer};

/// `NOTIFY`: the keyword text (`"SUCCESS,FAILURE"`, the typed form) or a
/// v1 list of keywords (`["SUCCESS", "FAILURE"]`).
pub(crate) fn notify<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Notify>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        List(Vec<String>),
        Text(String),
    }
    let text = match Stored::deserialize(d)? {
        Stored::List(words) => words.join(","),
        Stored::Text(t) => t,
    };
    Notify::from_keyword(&text)
        .map(Some)
        .ok_or_else(|| de::Error::custom(format_args!("invalid NOTIFY value: {text:?}")))
}

/// `ORCPT`: the typed table (`addr_type`, `address`) or a v1
/// `"addr-type;address"` string.
pub(crate) fn orcpt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Orcpt<'static>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Text(String),
        Typed(Orcpt<'static>),
    }
    match Stored::deserialize(d)? {
        Stored::Typed(o) => Ok(Some(o)),
        Stored::Text(t) => {
            let (kind, address) = t
                .split_once(';')
                .ok_or_else(|| de::Error::custom(format_args!("invalid ORCPT: {t:?}")))?;
            Ok(Some(Orcpt {
                addr_type: Cow::Owned(kind.trim().to_owned()),
                address: Cow::Owned(address.trim().to_owned()),
            }))
        }
    }
}
