//! Reading a response: the records of the type asked for at the end of a
//! CNAME chain, their DNSSEC status, and how long they may be cached.

use std::time::Duration;

use hickory_proto::dnssec::Proof;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::dnssec::DnssecStatus;

/// CNAME chains longer than this are not followed (RFC 1034 §3.6.2 says
/// chains should not exist at all; resolvers bound them similarly).
const MAX_CNAMES: usize = 8;

/// What one lookup found, before conversion to a typed answer.
#[derive(Debug, Clone)]
pub(crate) struct RawAnswer {
    pub(crate) rdata: Vec<RData>,
    pub(crate) status: DnssecStatus,
    /// The owner of the records when CNAMEs led elsewhere.
    pub(crate) canonical: Option<Name>,
    /// NXDOMAIN.
    pub(crate) nxdomain: bool,
    /// How long the answer may be cached.
    pub(crate) ttl: Duration,
}

/// How the status of the records is judged.
pub(crate) enum Judge {
    /// From the AD bit, when the resolver is trusted (loopback).
    AdBit { trusted: bool },
    /// From the proofs hickory's validator set on each record; a bogus
    /// proof seen while a query of the validation failed is
    /// indeterminate (hickory-dns #3932, #3964).
    Proofs { saw_failure: bool },
}

/// The relevant records of `message` for `qname`/`qtype`.
pub(crate) fn read(message: &Message, qname: &Name, qtype: RecordType, judge: &Judge) -> RawAnswer {
    let mut chain: Vec<&Record> = Vec::new();
    let mut owner = qname.clone();
    for _ in 0..MAX_CNAMES {
        // Name comparison is case-insensitive, as DNS names are.
        let next = message
            .answers()
            .iter()
            .find(|r| r.record_type() == RecordType::CNAME && r.name() == &owner);
        match next.and_then(|r| r.data().as_cname().map(|c| (r, c.0.clone()))) {
            Some((record, target)) if qtype != RecordType::CNAME => {
                chain.push(record);
                owner = target;
            }
            _ => break,
        }
    }
    let records: Vec<&Record> = message
        .answers()
        .iter()
        .filter(|r| r.record_type() == qtype && r.name() == &owner)
        .collect();

    let status = match judge {
        Judge::AdBit { trusted } => {
            if *trusted && message.authentic_data() {
                DnssecStatus::Secure
            } else {
                DnssecStatus::Insecure
            }
        }
        Judge::Proofs { saw_failure } => {
            let status = if records.is_empty() {
                denial_status(message)
            } else {
                chain
                    .iter()
                    .chain(records.iter())
                    .map(|r| from_proof(r.proof()))
                    .fold(DnssecStatus::Secure, DnssecStatus::and)
            };
            if status == DnssecStatus::Bogus && *saw_failure {
                DnssecStatus::Indeterminate
            } else {
                status
            }
        }
    };

    let ttl = chain
        .iter()
        .chain(records.iter())
        .map(|r| r.ttl())
        .min()
        .or_else(|| negative_ttl(message))
        .unwrap_or(60);
    RawAnswer {
        rdata: records.iter().map(|r| r.data().clone()).collect(),
        status,
        canonical: (!chain.is_empty()).then_some(owner),
        nxdomain: message.response_code() == ResponseCode::NXDomain && records.is_empty(),
        ttl: Duration::from_secs(u64::from(ttl)),
    }
}

/// A denial that passed hickory's validator is secure, unless every
/// authority record is insecure (the validator's own test for an
/// insecure denial).
fn denial_status(message: &Message) -> DnssecStatus {
    let authorities = message.name_servers();
    if !authorities.is_empty() && authorities.iter().all(|r| r.proof() == Proof::Insecure) {
        DnssecStatus::Insecure
    } else {
        DnssecStatus::Secure
    }
}

pub(crate) fn from_proof(proof: Proof) -> DnssecStatus {
    match proof {
        Proof::Secure => DnssecStatus::Secure,
        Proof::Insecure => DnssecStatus::Insecure,
        Proof::Bogus => DnssecStatus::Bogus,
        _ => DnssecStatus::Indeterminate,
    }
}

/// RFC 2308 §5: a denial is cached for the SOA's TTL or its minimum,
/// whichever is lower.
fn negative_ttl(message: &Message) -> Option<u32> {
    message
        .name_servers()
        .iter()
        .find_map(|r| r.data().as_soa().map(|soa| r.ttl().min(soa.minimum())))
}
