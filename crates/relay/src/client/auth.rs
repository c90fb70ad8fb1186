//! AUTH PLAIN and LOGIN: choosing a mechanism and encoding the responses.

use postern_proto::{Command, InitialResponse, Mechanism, encode_base64};

use super::config::RelayCredentials;

/// Where an AUTH exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthStep {
    /// AUTH PLAIN with its initial response sent; 235 expected.
    Plain,
    /// AUTH LOGIN sent; 334 (username prompt) expected.
    LoginStart,
    /// Username sent; 334 (password prompt) expected.
    LoginUser,
    /// Password sent; 235 expected.
    LoginPassword,
}

/// PLAIN when offered (one round trip), else LOGIN.
pub(crate) fn choose(offered: &[Mechanism<'_>]) -> Option<AuthStep> {
    if offered.contains(&Mechanism::Plain) {
        Some(AuthStep::Plain)
    } else if offered.contains(&Mechanism::Login) {
        Some(AuthStep::LoginStart)
    } else {
        None
    }
}

/// The command that starts the exchange.
pub(crate) fn start(step: AuthStep, creds: &RelayCredentials) -> Command<'static> {
    match step {
        AuthStep::Plain => {
            // RFC 4616: [authzid] NUL authcid NUL passwd, authzid empty.
            let mut msg = Vec::with_capacity(creds.username.len() + creds.password.len() + 2);
            msg.push(0);
            msg.extend_from_slice(creds.username.as_bytes());
            msg.push(0);
            msg.extend_from_slice(creds.password.as_bytes());
            Command::Auth {
                mechanism: Mechanism::Plain,
                initial_response: Some(InitialResponse::Base64(encode_base64(&msg).into())),
            }
        }
        _ => Command::Auth {
            mechanism: Mechanism::Login,
            initial_response: None,
        },
    }
}

/// A base64 response line (CRLF included).
pub(crate) fn response_line(data: &str) -> Vec<u8> {
    let mut line = encode_base64(data.as_bytes()).into_bytes();
    line.extend_from_slice(b"\r\n");
    line
}
