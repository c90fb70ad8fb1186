//! LOGIN (draft-murchison-sasl-login): `Username:` then `Password:`.
//!
//! An initial response, when given, is the user name.

use postern_proto::Mechanism;

use super::{Credentials, SaslMechanism, SaslServer, SaslStep, Secret};

/// The LOGIN mechanism.
#[derive(Debug, Clone, Copy, Default)]
pub struct Login;

const MAX_FIELD: usize = 1024;

impl SaslMechanism for Login {
    fn name(&self) -> Mechanism<'static> {
        Mechanism::Login
    }

    fn start(&self) -> Box<dyn SaslServer> {
        Box::new(LoginServer::Start)
    }
}

enum LoginServer {
    Start,
    WantUser,
    WantPassword(String),
    Finished,
}

impl SaslServer for LoginServer {
    fn step(&mut self, response: Option<&[u8]>) -> SaslStep {
        match (std::mem::replace(self, LoginServer::Finished), response) {
            (LoginServer::Start, None) => {
                *self = LoginServer::WantUser;
                SaslStep::Challenge(b"Username:".to_vec())
            }
            (LoginServer::Start | LoginServer::WantUser, Some(user)) => {
                if user.is_empty() || user.len() > MAX_FIELD {
                    return SaslStep::Malformed("empty or over-long LOGIN user name");
                }
                let Ok(user) = std::str::from_utf8(user) else {
                    return SaslStep::Malformed("LOGIN user name is not UTF-8");
                };
                *self = LoginServer::WantPassword(user.to_owned());
                SaslStep::Challenge(b"Password:".to_vec())
            }
            (LoginServer::WantPassword(user), Some(password)) => {
                if password.is_empty() || password.len() > MAX_FIELD {
                    return SaslStep::Malformed("empty or over-long LOGIN password");
                }
                SaslStep::Done(Credentials {
                    check: super::ProofCheck::ByEmbedder,
                    mechanism: Mechanism::Login,
                    authzid: None,
                    authcid: user,
                    secret: Secret::new(password.to_vec()),
                })
            }
            (_, _) => SaslStep::Malformed("unexpected LOGIN step"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_then_password() {
        let mut s = Login.start();
        assert!(matches!(s.step(None), SaslStep::Challenge(c) if c == b"Username:"));
        assert!(matches!(s.step(Some(b"alice")), SaslStep::Challenge(c) if c == b"Password:"));
        let SaslStep::Done(c) = s.step(Some(b"pw")) else {
            panic!("credentials")
        };
        assert_eq!(
            (c.authcid.as_str(), c.secret.expose()),
            ("alice", &b"pw"[..])
        );
        assert!(matches!(s.step(Some(b"x")), SaslStep::Malformed(_)));
    }

    #[test]
    fn initial_response_is_the_user_name() {
        let mut s = Login.start();
        assert!(matches!(s.step(Some(b"alice")), SaslStep::Challenge(c) if c == b"Password:"));
    }

    #[test]
    fn empty_fields_are_malformed() {
        let mut s = Login.start();
        assert!(matches!(s.step(Some(b"")), SaslStep::Malformed(_)));
        let mut s = Login.start();
        let _ = s.step(Some(b"alice"));
        assert!(matches!(s.step(Some(b"")), SaslStep::Malformed(_)));
    }
}
