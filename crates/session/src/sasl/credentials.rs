//! Credentials handed to the embedder, with the secret kept out of logs.

use std::fmt;

use postern_proto::Mechanism;

/// What a client presented in a SASL exchange, for the embedder to verify.
///
/// `Debug` shows everything but the secret.
/// A [`SaslServer`](crate::SaslServer) builds it with [`Credentials::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credentials {
    /// The mechanism used.
    pub mechanism: Mechanism<'static>,
    /// The authorization identity (act as), when it differs from
    /// `authcid`; `None` when absent or empty.
    pub authzid: Option<String>,
    /// The authentication identity (user name).
    pub authcid: String,
    /// The password (PLAIN, LOGIN) or token; empty when the mechanism
    /// checked a proof itself (SCRAM).
    pub secret: Secret,
    /// Who checks: the embedder (verifies `secret`), or the mechanism,
    /// which did (SCRAM).
    pub check: ProofCheck,
}

/// Who verifies the credentials.
///
/// The session never authenticates [`ProofCheck::Refuted`] credentials:
/// an [`Accept`](crate::Decision::Accept) of them is answered as a
/// rejection (`535 5.7.8`), so an embedder that only counts failures
/// cannot let one through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofCheck {
    /// The embedder verifies [`Credentials::secret`] (a password or token:
    /// PLAIN, LOGIN).
    ByEmbedder,
    /// The mechanism verified the client's proof against the keys the
    /// embedder's store gave (SCRAM); the embedder still decides
    /// (policy, authorization identity), but has no secret to check.
    Verified,
    /// The mechanism checked the proof and it failed: a wrong password,
    /// an unknown user, or a channel binding that does not match. Count it
    /// as a failed attempt.
    Refuted,
}

impl Credentials {
    /// What a client presented: mechanism, user name and secret, with no
    /// authorization identity.
    pub fn new(mechanism: Mechanism<'static>, authcid: impl Into<String>, secret: Secret) -> Self {
        Self {
            mechanism,
            authzid: None,
            authcid: authcid.into(),
            secret,
            check: ProofCheck::ByEmbedder,
        }
    }

    /// Sets who checks (see [`ProofCheck`]).
    pub fn with_check(mut self, check: ProofCheck) -> Self {
        self.check = check;
        self
    }

    /// Sets the authorization identity; an empty one counts as absent.
    pub fn with_authzid(mut self, authzid: impl Into<String>) -> Self {
        let authzid = authzid.into();
        self.authzid = (!authzid.is_empty()).then_some(authzid);
        self
    }
}

/// A secret octet string: not printed by `Debug`, no `Display`, zeroed when
/// dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret octets.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret octets: call this only where the secret is verified.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as UTF-8 text, when it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in octets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keep the zeroing from being optimised away as a dead store.
        std::hint::black_box(&self.0);
    }
}
