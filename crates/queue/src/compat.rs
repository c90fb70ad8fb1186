//! Reading envelopes written by earlier versions. The v1 format stored
//! `NOTIFY` as a list of keywords, `ORCPT` as one `addr-type;address`
//! string, the sender as `local@domain` or `""` (no angle brackets), and a
//! recipient's diagnosis as one line of text in `reply`. Both forms are
//! accepted; envelopes are written in the typed form only. Old text goes
//! through the same strict grammar as new text: the addresses were parsed
//! by it when they were accepted, and one that no longer parses is a load
//! error naming the envelope file, never a different address.
//! (Recipient addresses were already `local@domain` text, the form the
//! typed `Mailbox` is stored in, so they need no shim here.)

use std::borrow::Cow;

use postern_proto::{EnhancedCode, Mailbox, Notify, Orcpt, Reply, ReversePath};
use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::RcptStatus;
use crate::report::{Diagnosis, status};

/// The sender: the typed form (`"<alice@example.org>"`, `"<>"`) or a v1
/// bare address (`"alice@example.org"`, `""` for the null sender).
pub(crate) fn reverse_path<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<ReversePath<'static>, D::Error> {
    let text = String::deserialize(d)?;
    let parsed = if text.starts_with('<') {
        postern_proto::address::parse_path(&text).map(ReversePath::into_owned)
    } else if text.is_empty() {
        Ok(ReversePath::Null)
    } else {
        Mailbox::parse(&text).map(|m| ReversePath::Mailbox(m.into_owned()))
    };
    parsed.map_err(|e| de::Error::custom(format_args!("invalid sender {text:?}: {e}")))
}

/// A recipient's state as stored: the typed diagnosis, or a v1 `reply`
/// text (turned into a [`Diagnosis`] here, once).
#[derive(Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum StoredStatus {
    Pending,
    Delivered(StoredDiagnosis),
    Failed(StoredDiagnosis),
    Deferred(StoredDiagnosis),
}

impl From<StoredStatus> for RcptStatus {
    fn from(s: StoredStatus) -> Self {
        // What a v1 text without a code or status meant in each state.
        match s {
            StoredStatus::Pending => RcptStatus::Pending,
            StoredStatus::Delivered(d) => RcptStatus::Delivered(d.into_diagnosis(status(2, 0, 0))),
            StoredStatus::Failed(d) => RcptStatus::Failed(d.into_diagnosis(status(5, 0, 0))),
            StoredStatus::Deferred(d) => RcptStatus::Deferred(d.into_diagnosis(status(4, 0, 0))),
        }
    }
}

/// A [`Diagnosis`] as stored, typed or v1.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredDiagnosis {
    #[serde(default)]
    status: Option<EnhancedCode>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    remote_mta: Option<String>,
    #[serde(default)]
    reply: Option<StoredReply>,
}

/// `reply`: proto's typed reply, or v1 text such as
/// `"550 5.1.1 <bob@example.net>: no such user (remote mta: mx[192.0.2.1]:25)"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredReply {
    Text(String),
    Typed(Reply<'static>),
}

impl StoredDiagnosis {
    /// The diagnosis; `default_status` when neither a status nor a reply
    /// gives one.
    pub(crate) fn into_diagnosis(self, default_status: EnhancedCode) -> Diagnosis {
        let mut d = match self.reply {
            Some(StoredReply::Text(text)) => Diagnosis::parse(&text, default_status),
            Some(StoredReply::Typed(reply)) => Diagnosis::from_reply(reply, None),
            None => Diagnosis::parse("", default_status),
        };
        if let Some(status) = self.status {
            d.status = status;
        }
        if self.detail.is_some() {
            d.detail = self.detail;
        }
        if self.remote_mta.is_some() {
            d.remote_mta = self.remote_mta;
        }
        d
    }
}

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
