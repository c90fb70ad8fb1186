//! SCRAM-SHA-256 (RFC 5802, RFC 7677) and SCRAM-SHA-256-PLUS with the
//! `tls-exporter` channel binding (RFC 9266), server side.
//!
//! The client proves it knows the password without sending it; the server
//! keeps only `StoredKey` and `ServerKey` (derived with PBKDF2 from the
//! password, a salt and an iteration count, [`ScramKeys::derive`]) and
//! proves in turn that it knows them. With -PLUS the proof covers the TLS
//! session's exporter value, so a TLS-intercepting middlebox cannot relay
//! it.
//!
//! The exchange runs in the session ([`SaslServer`]): the mechanism looks
//! the user's keys up in the embedder's [`ScramStore`], checks the proof
//! itself, and hands the embedder [`Credentials`] whose
//! [`check`](Credentials::check) says [`ProofCheck::Verified`] or
//! [`ProofCheck::Refuted`] (no secret travels). The SCRAM arithmetic is
//! RustCrypto's (`pbkdf2`, `hmac`, `sha2`); the message grammar is here,
//! because the SASL crates (rsasl) bring a session and callback framework
//! of their own that would sit beside this crate's [`SaslServer`] rather
//! than in it. Checked against RFC 7677 §3's test vector.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac as _};
use postern_proto::Mechanism;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::{Credentials, ProofCheck, SaslContext, SaslMechanism, SaslServer, SaslStep, Secret};

/// The name of the -PLUS variant (not among proto's known names).
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// The channel binding type -PLUS speaks (RFC 9266).
const TLS_EXPORTER: &str = "tls-exporter";
/// RFC 7677 §4: at least 4096 iterations.
pub const MIN_ITERATIONS: u32 = 4096;
/// Most iterations honoured for a stored key: bounds the work a users file
/// can make one AUTH cost (the client does it, but `derive` is ours too).
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Longest client message accepted.
const MAX_MESSAGE: usize = 4096;

/// One user's SCRAM-SHA-256 keys: what a users file stores instead of a
/// password (RFC 5802 §3).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScramKeys {
    /// The salt.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; 32],
}

impl fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramKeys")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why keys could not be derived or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScramKeyError {
    /// The password has characters SASLprep (RFC 4013) prohibits.
    #[error("the password has characters SASLprep prohibits")]
    Prohibited,
    /// The iteration count is below 4096 or above the ceiling.
    #[error("iteration count {0} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(u32),
    /// The stored form is malformed (expected
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`).
    #[error("malformed SCRAM-SHA-256 keys")]
    Malformed,
}

impl ScramKeys {
    /// Derives the keys from a password (SASLprep-normalised, as RFC 7677
    /// requires), a salt and an iteration count.
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Result<Self, ScramKeyError> {
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramKeyError::Iterations(iterations));
        }
        let text = std::str::from_utf8(password).map_err(|_| ScramKeyError::Prohibited)?;
        let prepped = stringprep::saslprep(text).map_err(|_| ScramKeyError::Prohibited)?;
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(prepped.as_bytes(), salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let keys = ScramKeys {
            salt: salt.to_vec(),
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        };
        salted.fill(0);
        Ok(keys)
    }

    /// Derives the keys with a fresh random 16-octet salt.
    pub fn generate(password: &[u8], iterations: u32) -> Result<Self, ScramKeyError> {
        let mut salt = [0u8; 16];
        random(&mut salt);
        Self::derive(password, &salt, iterations)
    }

    /// The stored form, RFC 5803's `authPassword` layout:
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64.
    pub fn to_stored(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    /// Reads [`to_stored`](Self::to_stored)'s form.
    pub fn from_stored(text: &str) -> Result<Self, ScramKeyError> {
        let bad = || ScramKeyError::Malformed;
        let rest = text.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let iterations: u32 = iterations.parse().map_err(|_| bad())?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramKeyError::Iterations(iterations));
        }
        let key = |s: &str| -> Result<[u8; 32], ScramKeyError> {
            B64.decode(s)
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(bad)
        };
        let salt = B64.decode(salt).map_err(|_| bad())?;
        if salt.is_empty() {
            return Err(bad());
        }
        Ok(ScramKeys {
            salt,
            iterations,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

/// PBKDF2 iterations for newly generated keys: above RFC 7677's minimum
/// of 4096, cheap enough for a client to compute at every AUTH.
pub const DEFAULT_ITERATIONS: u32 = 10_000;

/// One line of a password file that keeps a user's SCRAM keys beside a
/// password hash (for PLAIN and LOGIN): `name:hash keys`, the keys in
/// [`ScramKeys::to_stored`]'s form after one space, absent on lines written
/// before there were keys. The hash (a PHC string, say) is the embedder's
/// to check; it cannot hold a space.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordLine {
    /// The user name.
    pub name: String,
    /// The password hash.
    pub hash: String,
    /// The SCRAM-SHA-256 keys, if the line has them.
    pub scram: Option<ScramKeys>,
}

impl fmt::Debug for PasswordLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordLine")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PasswordLine {
    /// A line for `name`.
    pub fn new(name: impl Into<String>, hash: impl Into<String>, scram: Option<ScramKeys>) -> Self {
        let (name, hash) = (name.into(), hash.into());
        Self { name, hash, scram }
    }

    /// Reads one line (without its line end); a name or hash that is empty,
    /// or keys that do not parse, are [`ScramKeyError::Malformed`].
    pub fn parse(line: &str) -> Result<Self, ScramKeyError> {
        let (name, rest) = line.split_once(':').ok_or(ScramKeyError::Malformed)?;
        let (hash, keys) = rest.split_once(' ').unwrap_or((rest, ""));
        if name.is_empty() || hash.is_empty() {
            return Err(ScramKeyError::Malformed);
        }
        let keys = keys.trim();
        let scram = (!keys.is_empty())
            .then(|| ScramKeys::from_stored(keys))
            .transpose()?;
        Ok(Self::new(name, hash, scram))
    }
}

impl fmt::Display for PasswordLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.hash)?;
        match &self.scram {
            Some(k) => write!(f, " {}", k.to_stored()),
            None => Ok(()),
        }
    }
}

/// Where the SCRAM mechanisms find a user's keys: the embedder's user
/// database. Called inside the exchange, synchronously, so it should be a
/// lookup in memory (the MTA's users file is cached); `None` for an
/// unknown user or one with no SCRAM keys (the exchange then goes on with
/// made-up keys and fails at the proof, so that it does not tell which
/// users exist).
pub trait ScramStore: Send + Sync {
    /// The keys of `authcid` (as the client sent it, unescaped).
    fn scram_keys(&self, authcid: &str) -> Option<ScramKeys>;
}

/// No user has keys: for listing which mechanisms can run.
impl ScramStore for () {
    fn scram_keys(&self, _: &str) -> Option<ScramKeys> {
        None
    }
}

/// The SCRAM-SHA-256 mechanism, or its -PLUS variant.
#[derive(Clone)]
pub struct ScramSha256 {
    store: Arc<dyn ScramStore>,
    plus: bool,
    /// Makes up a stable salt for unknown users.
    secret: [u8; 32],
}

impl fmt::Debug for ScramSha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name().as_str())
    }
}

impl ScramSha256 {
    /// SCRAM-SHA-256 (no channel binding) over `store`.
    pub fn new(store: Arc<dyn ScramStore>) -> Self {
        let mut secret = [0u8; 32];
        random(&mut secret);
        Self {
            store,
            plus: false,
            secret,
        }
    }

    /// SCRAM-SHA-256-PLUS over `store`: `tls-exporter` channel binding,
    /// available only where the driver supplied
    /// [`TlsInfo::tls_exporter`](crate::TlsInfo::tls_exporter).
    pub fn plus(store: Arc<dyn ScramStore>) -> Self {
        Self {
            plus: true,
            ..Self::new(store)
        }
    }
}

impl SaslMechanism for ScramSha256 {
    fn name(&self) -> Mechanism<'static> {
        if self.plus {
            Mechanism::Other(SCRAM_SHA_256_PLUS.into())
        } else {
            Mechanism::ScramSha256
        }
    }

    fn available(&self, tls: Option<&crate::TlsInfo>) -> bool {
        !self.plus || tls.is_some_and(|t| t.tls_exporter.is_some())
    }

    fn start(&self) -> Box<dyn SaslServer> {
        self.start_with(&SaslContext::default())
    }

    fn start_with(&self, ctx: &SaslContext<'_>) -> Box<dyn SaslServer> {
        let exporter = ctx.tls.and_then(|t| t.tls_exporter.clone());
        let plus_offered = ctx
            .offered
            .iter()
            .any(|m| m.as_str().eq_ignore_ascii_case(SCRAM_SHA_256_PLUS));
        Box::new(ScramServer {
            mechanism: self.clone(),
            exporter,
            plus_offered,
            state: State::Start,
        })
    }
}

enum State {
    Start,
    WantFinal(Box<First>),
    WantAck(Box<Credentials>),
    Finished,
}

/// What the first round left for the second.
struct First {
    gs2_header: String,
    /// Channel binding requested (`p=tls-exporter`).
    binding: bool,
    authcid: String,
    authzid: Option<String>,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    keys: ScramKeys,
    known: bool,
}

struct ScramServer {
    mechanism: ScramSha256,
    exporter: Option<Vec<u8>>,
    plus_offered: bool,
    state: State,
}

impl SaslServer for ScramServer {
    fn step(&mut self, response: Option<&[u8]>) -> SaslStep {
        match (
            std::mem::replace(&mut self.state, State::Finished),
            response,
        ) {
            // No initial response: an empty challenge asks for it.
            (State::Start, None) => {
                self.state = State::Start;
                SaslStep::Challenge(Vec::new())
            }
            (State::Start, Some(message)) => self.first(message),
            (State::WantFinal(first), Some(message)) => self.last(*first, message),
            (State::WantAck(credentials), Some(b"")) => SaslStep::Done(*credentials),
            _ => SaslStep::Malformed("unexpected SCRAM message"),
        }
    }
}

impl ScramServer {
    fn first(&mut self, message: &[u8]) -> SaslStep {
        let client = match parse_client_first(message) {
            Ok(c) => c,
            Err(e) => return SaslStep::Malformed(e),
        };
        match (&client.binding, self.mechanism.plus) {
            (Binding::Tls(name), true) if name == TLS_EXPORTER && self.exporter.is_none() => {
                return SaslStep::Malformed("no tls-exporter value on this connection");
            }
            (Binding::Tls(name), true) if name == TLS_EXPORTER => {}
            (Binding::Tls(_), true) => return SaslStep::Malformed("unsupported channel binding"),
            (Binding::Tls(_), false) => {
                return SaslStep::Malformed("channel binding requested without -PLUS");
            }
            (_, true) => return SaslStep::Malformed("SCRAM-SHA-256-PLUS needs channel binding"),
            // RFC 5802 §6: "y" says the client could bind but thinks the
            // server cannot; if -PLUS was offered, someone removed it.
            (Binding::ClientOnly, false) if self.plus_offered => {
                return SaslStep::Malformed("channel binding downgrade (y, but -PLUS was offered)");
            }
            _ => {}
        }
        let (keys, known) = match self.mechanism.store.scram_keys(&client.authcid) {
            Some(k) => (k, true),
            None => (self.made_up_keys(&client.authcid), false),
        };
        let mut server_nonce = [0u8; 24];
        random(&mut server_nonce);
        let nonce = format!("{}{}", client.nonce, B64.encode(server_nonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&keys.salt),
            keys.iterations
        );
        let challenge = server_first.clone().into_bytes();
        self.state = State::WantFinal(Box::new(First {
            gs2_header: client.gs2_header,
            binding: matches!(client.binding, Binding::Tls(_)),
            authcid: client.authcid,
            authzid: client.authzid,
            client_first_bare: client.bare,
            server_first,
            nonce,
            keys,
            known,
        }));
        SaslStep::Challenge(challenge)
    }

    fn last(&mut self, first: First, message: &[u8]) -> SaslStep {
        let fin = match parse_client_final(message) {
            Ok(f) => f,
            Err(e) => return SaslStep::Malformed(e),
        };
        let mut expected_cbind = first.gs2_header.clone().into_bytes();
        if first.binding {
            expected_cbind.extend_from_slice(self.exporter.as_deref().unwrap_or_default());
        }
        let name = self.mechanism.name();
        let mut credentials = Credentials::new(name, first.authcid, Secret::new(Vec::new()));
        if let Some(z) = first.authzid {
            credentials = credentials.with_authzid(z);
        }
        if fin.nonce != first.nonce {
            return SaslStep::Malformed("SCRAM nonce mismatch");
        }
        let auth_message = format!(
            "{},{},{}",
            first.client_first_bare, first.server_first, fin.without_proof
        );
        let signature = hmac(&first.keys.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for (k, (p, s)) in client_key.iter_mut().zip(fin.proof.iter().zip(signature)) {
            *k = p ^ s;
        }
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        let proof_ok: bool = stored.ct_eq(&first.keys.stored_key).into();
        let binding_ok: bool = fin.cbind.ct_eq(&expected_cbind).into();
        if !(proof_ok && binding_ok && first.known) {
            // Refuted, not malformed: the embedder counts it as a failed
            // password (and answers 535).
            return SaslStep::Done(credentials.with_check(ProofCheck::Refuted));
        }
        let server_signature = hmac(&first.keys.server_key, auth_message.as_bytes());
        self.state = State::WantAck(Box::new(credentials.with_check(ProofCheck::Verified)));
        SaslStep::Challenge(format!("v={}", B64.encode(server_signature)).into_bytes())
    }

    /// Keys for a user who has none: a salt that is stable for the name
    /// (so two tries do not tell it from a real user) and keys nobody
    /// knows.
    fn made_up_keys(&self, authcid: &str) -> ScramKeys {
        let salt = hmac(&self.mechanism.secret, authcid.as_bytes());
        let mut stored_key = [0u8; 32];
        random(&mut stored_key);
        ScramKeys {
            salt: salt[..16].to_vec(),
            iterations: MIN_ITERATIONS,
            stored_key,
            server_key: [0; 32],
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this never fails.
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn random(buf: &mut [u8]) {
    // No randomness means no safe nonce or salt; there is no way to go on.
    if getrandom::fill(buf).is_err() {
        panic!("the operating system's random number generator failed");
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Binding {
    /// `n`: the client does not support channel binding.
    None,
    /// `y`: it does, but thinks the server does not.
    ClientOnly,
    /// `p=<cb-name>`.
    Tls(String),
}

#[derive(Debug)]
struct ClientFirst {
    gs2_header: String,
    binding: Binding,
    authzid: Option<String>,
    authcid: String,
    nonce: String,
    bare: String,
}

/// ```text
/// client-first-message = gs2-header client-first-message-bare
/// gs2-header      = gs2-cbind-flag "," [ authzid ] ","
/// gs2-cbind-flag  = ("p=" cb-name) / "n" / "y"
/// authzid         = "a=" saslname
/// client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
/// username        = "n=" saslname
/// nonce           = "r=" c-nonce   ; printable, no ","
/// ```
fn parse_client_first(message: &[u8]) -> Result<ClientFirst, &'static str> {
    if message.len() > MAX_MESSAGE {
        return Err("SCRAM message too long");
    }
    let text = std::str::from_utf8(message).map_err(|_| "SCRAM message is not UTF-8")?;
    let mut parts = text.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("SCRAM gs2 header malformed");
    };
    let binding = match flag {
        "n" => Binding::None,
        "y" => Binding::ClientOnly,
        f => match f.strip_prefix("p=") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                Binding::Tls(name.to_owned())
            }
            _ => return Err("SCRAM channel binding flag malformed"),
        },
    };
    let authzid = match authzid {
        "" => None,
        a => Some(saslname(
            a.strip_prefix("a=").ok_or("SCRAM authzid malformed")?,
        )?),
    };
    // flag "," [authzid] ",": everything before the bare message.
    let gs2_header = text[..text.len() - bare.len()].to_owned();
    let mut attrs = bare.split(',');
    let user = attrs.next().unwrap_or_default();
    if user.starts_with("m=") {
        return Err("SCRAM mandatory extension not supported");
    }
    let authcid = saslname(user.strip_prefix("n=").ok_or("SCRAM user name missing")?)?;
    if authcid.is_empty() {
        return Err("SCRAM user name empty");
    }
    let nonce = attrs
        .next()
        .and_then(|r| r.strip_prefix("r="))
        .ok_or("SCRAM nonce missing")?;
    if nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err("SCRAM nonce malformed");
    }
    Ok(ClientFirst {
        gs2_header,
        binding,
        authzid,
        authcid,
        nonce: nonce.to_owned(),
        bare: bare.to_owned(),
    })
}

/// `saslname = 1*(value-safe-char / "=2C" / "=3D")`: unescapes, refusing
/// any other `=`.
fn saslname(s: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err("SCRAM name has a bad '=' escape"),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.contains('\0') {
        return Err("SCRAM name has a NUL");
    }
    Ok(out)
}

#[derive(Debug)]
struct ClientFinal {
    /// `c=` decoded: the gs2 header and any binding data.
    cbind: Vec<u8>,
    nonce: String,
    proof: [u8; 32],
    /// The message up to (not including) `,p=`.
    without_proof: String,
}

/// ```text
/// client-final-message-without-proof = channel-binding "," nonce ["," extensions]
/// client-final-message = client-final-message-without-proof "," proof
/// channel-binding = "c=" base64
/// proof           = "p=" base64
/// ```
fn parse_client_final(message: &[u8]) -> Result<ClientFinal, &'static str> {
    if message.len() > MAX_MESSAGE {
        return Err("SCRAM message too long");
    }
    let text = std::str::from_utf8(message).map_err(|_| "SCRAM message is not UTF-8")?;
    let at = text.rfind(",p=").ok_or("SCRAM proof missing")?;
    let (without_proof, proof) = (&text[..at], &text[at + 3..]);
    let proof: [u8; 32] = B64
        .decode(proof)
        .ok()
        .and_then(|p| p.try_into().ok())
        .ok_or("SCRAM proof malformed")?;
    let mut attrs = without_proof.split(',');
    let cbind = attrs
        .next()
        .and_then(|c| c.strip_prefix("c="))
        .and_then(|c| B64.decode(c).ok())
        .ok_or("SCRAM channel binding malformed")?;
    let nonce = attrs
        .next()
        .and_then(|r| r.strip_prefix("r="))
        .ok_or("SCRAM nonce missing")?;
    Ok(ClientFinal {
        cbind,
        nonce: nonce.to_owned(),
        proof,
        without_proof: without_proof.to_owned(),
    })
}

/// Drives every parser of this module with arbitrary input (the fuzz
/// target's entry point): nothing may panic.
#[doc(hidden)]
pub fn fuzz_messages(data: &[u8]) {
    let _ = parse_client_first(data);
    let _ = parse_client_final(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ScramKeys::from_stored(text);
        if let Ok(line) = PasswordLine::parse(text) {
            assert_eq!(PasswordLine::parse(&line.to_string()).as_ref(), Ok(&line));
        }
        let _ = saslname(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Store(HashMap<String, ScramKeys>);
    impl ScramStore for Store {
        fn scram_keys(&self, authcid: &str) -> Option<ScramKeys> {
            self.0.get(authcid).cloned()
        }
    }

    /// RFC 7677 §3: user "user", password "pencil", salt
    /// `W22ZaJ0SNY7soEsUEjb6gQ==`, 4096 iterations, client nonce
    /// `rOprNGfwEbeRWgbNEkqO`, server nonce suffix
    /// `%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0`.
    const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc7677_keys() -> ScramKeys {
        ScramKeys::derive(b"pencil", &B64.decode(SALT).unwrap(), 4096).unwrap()
    }

    /// Runs the RFC's exchange with the server nonce forced to the RFC's.
    #[test]
    fn rfc7677_test_vector() {
        let keys = rfc7677_keys();
        let mut server = ScramServer {
            mechanism: ScramSha256::new(Arc::new(Store(HashMap::from([(
                "user".to_owned(),
                keys.clone(),
            )])))),
            exporter: None,
            plus_offered: false,
            state: State::Start,
        };
        let client = parse_client_first(CLIENT_FIRST.as_bytes()).unwrap();
        assert_eq!(client.gs2_header, "n,,");
        server.state = State::WantFinal(Box::new(First {
            gs2_header: client.gs2_header,
            binding: false,
            authcid: client.authcid,
            authzid: None,
            client_first_bare: client.bare,
            server_first: SERVER_FIRST.to_owned(),
            nonce: SERVER_FIRST[2..SERVER_FIRST.find(',').unwrap()].to_owned(),
            keys,
            known: true,
        }));
        let SaslStep::Challenge(v) = server.step(Some(CLIENT_FINAL.as_bytes())) else {
            panic!("no server-final")
        };
        assert_eq!(std::str::from_utf8(&v).unwrap(), SERVER_FINAL);
        let SaslStep::Done(c) = server.step(Some(b"")) else {
            panic!("not done")
        };
        assert_eq!(
            (c.authcid.as_str(), c.check),
            ("user", ProofCheck::Verified)
        );
        assert!(c.secret.is_empty());
    }

    #[test]
    fn password_lines() {
        let keys = rfc7677_keys();
        let line = PasswordLine::new("alice", "$argon2id$v=19$x", Some(keys.clone()));
        let text = line.to_string();
        assert_eq!(text, format!("alice:$argon2id$v=19$x {}", keys.to_stored()));
        assert_eq!(PasswordLine::parse(&text), Ok(line));
        // A line from before SCRAM keys: the hash alone.
        let old = PasswordLine::parse("bob:$argon2id$v=19$y").unwrap();
        assert_eq!(
            (old.name.as_str(), old.hash.as_str(), old.scram),
            ("bob", "$argon2id$v=19$y", None)
        );
        assert!(PasswordLine::parse("bob").is_err());
        assert!(PasswordLine::parse(":hash").is_err());
        assert!(PasswordLine::parse("bob:hash SCRAM-SHA-256$garbage").is_err());
    }

    #[test]
    fn stored_form_round_trips() {
        let keys = rfc7677_keys();
        let text = keys.to_stored();
        assert!(
            text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
            "{text}"
        );
        assert_eq!(ScramKeys::from_stored(&text).unwrap(), keys);
        assert!(ScramKeys::from_stored("SCRAM-SHA-256$10:c2FsdA==$AA==:AA==").is_err());
        assert!(ScramKeys::derive(b"x", b"salt", 1).is_err());
    }

    #[test]
    fn parses_and_refuses_client_first() {
        let c = parse_client_first(b"p=tls-exporter,a=bob=2Cx,n=al=3Dice,r=abc,ext").unwrap();
        assert_eq!(c.gs2_header, "p=tls-exporter,a=bob=2Cx,");
        assert_eq!(c.binding, Binding::Tls("tls-exporter".into()));
        assert_eq!(
            (c.authzid.as_deref(), c.authcid.as_str()),
            (Some("bob,x"), "al=ice")
        );
        for bad in [
            &b""[..],
            b"n,,",
            b"x,,n=u,r=a",
            b"n,,m=x,n=u,r=a",
            b"n,,n=u=2,r=a",
            b"n,,n=,r=a",
            b"n,,n=u,r=",
            b"n,,n=u",
            b"n,b,n=u,r=a",
            b"p=,,n=u,r=a",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
    }

    fn client_proof(keys_pw: &[u8], salt: &[u8], iter: u32, auth: &str) -> ([u8; 32], [u8; 32]) {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(keys_pw, salt, iter, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        let sig = hmac(&stored, auth.as_bytes());
        let mut proof = [0u8; 32];
        for i in 0..32 {
            proof[i] = client_key[i] ^ sig[i];
        }
        (proof, hmac(&hmac(&salted, b"Server Key"), auth.as_bytes()))
    }

    /// A whole exchange as a client would run it, with or without
    /// tls-exporter binding; returns the final step.
    fn exchange(
        mech: &ScramSha256,
        ctx: &SaslContext<'_>,
        gs2: &str,
        cb: &[u8],
        pw: &[u8],
    ) -> SaslStep {
        let mut s = mech.start_with(ctx);
        let bare = "n=alice,r=clientnonce";
        let SaslStep::Challenge(first) = s.step(Some(format!("{gs2}{bare}").as_bytes())) else {
            return SaslStep::Malformed("first refused");
        };
        let first = String::from_utf8(first).unwrap();
        let nonce = first.split(',').next().unwrap().strip_prefix("r=").unwrap();
        assert!(nonce.starts_with("clientnonce"));
        let salt = B64
            .decode(
                first
                    .split(",s=")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap(),
            )
            .unwrap();
        let mut cbind = gs2.as_bytes().to_vec();
        cbind.extend_from_slice(cb);
        let without = format!("c={},r={nonce}", B64.encode(&cbind));
        let (proof, server_sig) =
            client_proof(pw, &salt, 4096, &format!("{bare},{first},{without}"));
        match s.step(Some(
            format!("{without},p={}", B64.encode(proof)).as_bytes(),
        )) {
            SaslStep::Challenge(v) => {
                assert_eq!(v, format!("v={}", B64.encode(server_sig)).into_bytes());
                s.step(Some(b""))
            }
            other => other,
        }
    }

    fn store() -> Arc<dyn ScramStore> {
        let keys = ScramKeys::generate(b"alice-pw", 4096).unwrap();
        Arc::new(Store(HashMap::from([("alice".to_owned(), keys)])))
    }

    fn check(step: SaslStep) -> Option<ProofCheck> {
        match step {
            SaslStep::Done(c) => Some(c.check),
            _ => None,
        }
    }

    #[test]
    fn plain_and_plus_exchanges() {
        let store = store();
        let mut tls = crate::TlsInfo::new(postern_proto::TlsVersion::Tls13, "x");
        tls.tls_exporter = Some(vec![7; 32]);
        let plus_name = Mechanism::Other(SCRAM_SHA_256_PLUS.into());
        let offered = [plus_name, Mechanism::ScramSha256];
        let ctx = SaslContext {
            tls: Some(&tls),
            offered: &offered,
        };
        let plain = ScramSha256::new(store.clone());
        let plus = ScramSha256::plus(store.clone());
        assert!(plus.available(Some(&tls)) && !plus.available(None));
        assert_eq!(
            check(exchange(&plain, &ctx, "n,,", b"", b"alice-pw")),
            Some(ProofCheck::Verified)
        );
        assert_eq!(
            check(exchange(&plain, &ctx, "n,,", b"", b"wrong")),
            Some(ProofCheck::Refuted)
        );
        // "y" while -PLUS is offered: a downgrade.
        assert_eq!(check(exchange(&plain, &ctx, "y,,", b"", b"alice-pw")), None);
        let gs2 = "p=tls-exporter,,";
        assert_eq!(
            check(exchange(&plus, &ctx, gs2, &[7; 32], b"alice-pw")),
            Some(ProofCheck::Verified)
        );
        // Another TLS session's exporter (a relaying middlebox): refuted.
        assert_eq!(
            check(exchange(&plus, &ctx, gs2, &[8; 32], b"alice-pw")),
            Some(ProofCheck::Refuted)
        );
        assert_eq!(check(exchange(&plus, &ctx, "n,,", b"", b"alice-pw")), None);
        assert_eq!(
            check(exchange(&plus, &ctx, "p=tls-unique,,", b"", b"alice-pw")),
            None
        );
        assert_eq!(
            check(exchange(&plain, &ctx, gs2, &[7; 32], b"alice-pw")),
            None
        );
        // Unknown users run the whole exchange and are refuted.
        let mut s = plain.start_with(&ctx);
        let SaslStep::Challenge(a) = s.step(Some(b"n,,n=mallory,r=x")) else {
            panic!()
        };
        let mut s = plain.start_with(&ctx);
        let SaslStep::Challenge(b) = s.step(Some(b"n,,n=mallory,r=x")) else {
            panic!()
        };
        let salt = |c: &[u8]| {
            String::from_utf8(c.to_vec())
                .unwrap()
                .split(",s=")
                .nth(1)
                .unwrap()
                .to_owned()
        };
        assert_eq!(salt(&a), salt(&b), "a made-up salt is stable");
    }
}
