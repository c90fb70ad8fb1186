//! The mail transaction: MAIL and RCPT, their parameters, and what the
//! session remembers of the envelope.

use std::borrow::Cow;

use postern_proto::{Body, ForwardPath, MailParams, RcptParams, ReversePath, SyntaxError as Error};

use crate::event::Question;
use crate::replies;
use crate::session::{Pending, Session};

/// The envelope facts the session needs to enforce the rest of the
/// transaction. Addresses go to the embedder in events and are not kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transaction {
    /// `BODY=` of MAIL.
    pub(crate) body: Option<Body>,
    /// `SMTPUTF8` on MAIL: UTF-8 recipients allowed.
    pub(crate) smtputf8: bool,
    /// Recipients accepted so far.
    pub(crate) recipients: usize,
    /// The body is being sent with BDAT (DATA no longer allowed).
    pub(crate) bdat: bool,
    /// BDAT octets received so far.
    pub(crate) body_size: u64,
    /// The BDAT body went past the size limit.
    pub(crate) too_large: bool,
}

/// A refusal from a parameter check.
enum Refusal {
    Reply(&'static [u8]),
    Grammar(Error),
}

fn unsupported(name: &'static str) -> Refusal {
    Refusal::Grammar(Error::UnrecognisedParameter(Cow::Borrowed(name)))
}

impl Session {
    fn refuse_with(&mut self, refusal: Refusal) {
        match refusal {
            Refusal::Reply(r) => self.refuse(r),
            Refusal::Grammar(e) => self.refuse_error(&e),
        }
    }

    pub(crate) fn mail(&mut self, from: ReversePath<'_>, params: MailParams<'_>) {
        if self.hello.is_none() {
            return self.send_hello_first();
        }
        if self.txn.is_some() {
            return self.refuse(replies::NESTED_MAIL);
        }
        if self.config.starttls.require_tls && self.tls.is_none() {
            return self.refuse(replies::MUST_STARTTLS);
        }
        if self.config.require_auth && self.auth.is_none() {
            return self.refuse(replies::AUTH_REQUIRED);
        }
        if let Err(refusal) = self.check_mail_params(&params) {
            return self.refuse_with(refusal);
        }
        let txn = Transaction {
            body: params.body,
            smtputf8: params.smtputf8,
            ..Transaction::default()
        };
        self.ask(
            Pending::Mail(txn),
            Question::Mail {
                from: from.into_owned(),
                params: params.into_owned(),
            },
        );
    }

    /// Every parameter must belong to an extension offered on this
    /// connection (none after HELO); `555 5.5.4` names the first that does
    /// not (RFC 5321 §4.1.1.11).
    fn check_mail_params(&self, p: &MailParams<'_>) -> Result<(), Refusal> {
        let esmtp = self.esmtp();
        let ext = &self.offer.extensions;
        let tls = self.tls.is_some();
        if let Some(u) = p.unknown.first() {
            return Err(Refusal::Grammar(Error::UnrecognisedParameter(Cow::Owned(
                u.keyword.to_ascii_uppercase(),
            ))));
        }
        if p.size.is_some() && !esmtp {
            return Err(unsupported("SIZE"));
        }
        let body_ok = match p.body {
            None => true,
            Some(Body::SevenBit | Body::EightBitMime) => esmtp && ext.eight_bit_mime,
            Some(Body::BinaryMime) => esmtp && ext.chunking && ext.binary_mime,
        };
        if !body_ok {
            return Err(unsupported("BODY"));
        }
        if p.smtputf8 && !(esmtp && ext.smtputf8) {
            return Err(unsupported("SMTPUTF8"));
        }
        if p.ret.is_some() && !(esmtp && ext.dsn) {
            return Err(unsupported("RET"));
        }
        if p.envid.is_some() && !(esmtp && ext.dsn) {
            return Err(unsupported("ENVID"));
        }
        if p.auth.is_some() && (!esmtp || self.offer.auth.is_empty()) {
            return Err(unsupported("AUTH"));
        }
        if p.mt_priority.is_some() {
            return Err(unsupported("MT-PRIORITY"));
        }
        if p.requiretls {
            if !(esmtp && ext.requiretls) {
                return Err(unsupported("REQUIRETLS"));
            }
            // RFC 8689 §4.1: REQUIRETLS is only valid over TLS.
            if !tls {
                return Err(Refusal::Reply(replies::REQUIRETLS_NEEDS_TLS));
            }
        }
        if p.size
            .is_some_and(|s| s > self.config.limits.max_message_size)
        {
            return Err(Refusal::Reply(replies::TOO_LARGE));
        }
        Ok(())
    }

    pub(crate) fn rcpt(&mut self, to: ForwardPath<'_>, params: RcptParams<'_>) {
        let Some(txn) = &self.txn else {
            return self.refuse(replies::NEED_MAIL);
        };
        if txn.recipients >= self.config.limits.max_recipients {
            return self.send(replies::TOO_MANY_RECIPIENTS);
        }
        // RFC 6531 §3.4: a UTF-8 recipient needs SMTPUTF8 on MAIL.
        if to.is_utf8() && !txn.smtputf8 {
            return self.refuse_error(&Error::Utf8WithoutSmtputf8);
        }
        if let Some(u) = params.unknown.first() {
            return self.refuse_error(&Error::UnrecognisedParameter(Cow::Owned(
                u.keyword.to_ascii_uppercase(),
            )));
        }
        let dsn = self.esmtp() && self.offer.extensions.dsn;
        if params.notify.is_some() && !dsn {
            return self.refuse_with(unsupported("NOTIFY"));
        }
        if params.orcpt.is_some() && !dsn {
            return self.refuse_with(unsupported("ORCPT"));
        }
        self.ask(
            Pending::Rcpt,
            Question::Rcpt {
                to: to.into_owned(),
                params: params.into_owned(),
            },
        );
    }
}
