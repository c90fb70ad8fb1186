//! A listener as configuration (feature `serde`): one table such as
//! TOML's `[[listener]]`, every key but `name`, `address` and `mode`
//! optional, unknown keys refused. What deserialising cannot check alone
//! (keys that depend on each other) [`ListenerTable::validate`] names.
//!
//! ```toml
//! [[listener]]
//! name = "submission"          # logs, rules, the Received header
//! address = "0.0.0.0:587"
//! mode = "starttls"            # "plain", "starttls" or "implicit"
//! require_tls = true           # starttls only: MAIL before TLS gets 530 5.7.0
//! tls = "default"              # the TLS policy's name (the embedder resolves it)
//! require_auth = true          # MAIL needs AUTH first
//! max_connections = 1000
//! max_connections_per_ip = 20
//! connection_rate = [{ ipv4 = 32, ipv6 = 64, per_minute = 30 }]
//! proxy_protocol = { trusted = ["127.0.0.5/32"], header_timeout = "5s" }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::guard::{FieldError, Window, validate_windows};
use crate::{ConnLimits, Mode, ProxyProtocol};

/// One listener, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerTable {
    /// Its name (logs, rules' `listener` condition, Received header).
    pub name: String,
    /// Where it listens (`address`).
    pub addr: SocketAddr,
    /// Plain, STARTTLS (`require_tls`: required) or implicit TLS.
    pub mode: Mode,
    /// The name of its TLS policy, for STARTTLS and implicit modes.
    pub tls: Option<String>,
    /// `MAIL` needs a successful AUTH first (`530 5.7.0`).
    pub require_auth: bool,
    /// Most connections at once (default [`ConnLimits::global`]).
    pub max_connections: usize,
    /// Most connections from one IP at once (default
    /// [`ConnLimits::per_ip`]).
    pub max_connections_per_ip: usize,
    /// The PROXY protocol: the fronts whose header is required and
    /// believed (`proxy_protocol`).
    pub proxy: Option<ProxyProtocol>,
    /// This listener's own connection rate windows (`connection_rate`;
    /// empty: no rate limit here); `None`: the embedder's shared limit.
    pub connection_rate: Option<Vec<Window>>,
    /// `require_tls` as written (checked by [`validate`](Self::validate)).
    require_tls: bool,
}

impl ListenerTable {
    /// Checks the keys that depend on each other: `require_tls` only with
    /// `mode = "starttls"`, `tls` exactly for the TLS modes, and the
    /// windows of `connection_rate`. The error's field is the key.
    pub fn validate(&self) -> Result<(), FieldError> {
        let err = |field: &str, message: &str| Err(FieldError::at(field, message));
        if self.require_tls && !matches!(self.mode, Mode::StartTls { .. }) {
            return err(
                "require_tls",
                "only meaningful with mode = \"starttls\" (implicit TLS is always TLS; plain never is)",
            );
        }
        match (&self.tls, self.mode) {
            (Some(_), Mode::Plain) => {
                return err(
                    "tls",
                    "a plain listener does not use TLS; remove `tls` or use mode = \"starttls\"",
                );
            }
            (None, Mode::StartTls { .. } | Mode::Implicit) => {
                return err(
                    "tls",
                    "missing: STARTTLS and implicit listeners need a [tls.NAME] policy",
                );
            }
            _ => {}
        }
        if let Some(w) = &self.connection_rate {
            validate_windows(w)
                .map_err(|e| FieldError::at(&format!("connection_rate{}", e.field), &e.message))?;
        }
        Ok(())
    }
}

fn address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse()
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an ip:port address")))
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    match usize::deserialize(d)? {
        0 => Err(serde::de::Error::custom(
            "must be at least 1 (0 would refuse every connection)",
        )),
        n => Ok(Some(n)),
    }
}

fn trusted<'de, D: Deserializer<'de>>(d: D) -> Result<ProxyProtocol, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    ProxyProtocol::from_trusted(&list).map_err(serde::de::Error::custom)
}

/// `{ trusted = ["127.0.0.5/32"], header_timeout = "5s" }`: the fronts
/// whose PROXY header is required and believed, and how long it may take.
impl<'de> Deserialize<'de> for ProxyProtocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(deserialize_with = "trusted")]
            trusted: ProxyProtocol,
            #[serde(
                default,
                deserialize_with = "postern_proto::duration::deserialize_option"
            )]
            header_timeout: Option<Duration>,
        }
        let r = Raw::deserialize(d)?;
        Ok(match r.header_timeout {
            Some(t) => r.trusted.with_header_timeout(t),
            None => r.trusted,
        })
    }
}

impl<'de> Deserialize<'de> for ListenerTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum ModeName {
            Plain,
            Starttls,
            Implicit,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            name: String,
            #[serde(deserialize_with = "address")]
            address: SocketAddr,
            mode: ModeName,
            tls: Option<String>,
            #[serde(default)]
            require_tls: bool,
            #[serde(default)]
            require_auth: bool,
            #[serde(default, deserialize_with = "at_least_one")]
            max_connections: Option<usize>,
            #[serde(default, deserialize_with = "at_least_one")]
            max_connections_per_ip: Option<usize>,
            connection_rate: Option<Vec<Window>>,
            proxy_protocol: Option<ProxyProtocol>,
        }
        let r = Raw::deserialize(d)?;
        let defaults = ConnLimits::default();
        Ok(ListenerTable {
            name: r.name,
            addr: r.address,
            mode: match r.mode {
                ModeName::Plain => Mode::Plain,
                ModeName::Starttls => Mode::StartTls {
                    required: r.require_tls,
                },
                ModeName::Implicit => Mode::Implicit,
            },
            tls: r.tls,
            require_auth: r.require_auth,
            max_connections: r.max_connections.unwrap_or(defaults.global),
            max_connections_per_ip: r.max_connections_per_ip.unwrap_or(defaults.per_ip),
            proxy: r.proxy_protocol,
            connection_rate: r.connection_rate,
            require_tls: r.require_tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ListenerTable, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    const BASE: &str = "name = \"mta\"\naddress = \"127.0.0.1:25\"\n";

    #[test]
    fn read_with_defaults() {
        let l = load(&format!("{BASE}mode = \"starttls\"\nrequire_tls = true\ntls = \"t\"\nproxy_protocol = {{ trusted = [\"127.0.0.5\"], header_timeout = 3 }}\n")).unwrap();
        assert_eq!(l.mode, Mode::StartTls { required: true });
        assert_eq!(l.max_connections, ConnLimits::default().global);
        assert!(l.proxy.is_some());
        assert!(l.validate().is_ok());
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("name = \"m\"\naddress = \"localhost\"\nmode = \"plain\"\n").unwrap_err();
        assert!(e.contains("is not an ip:port address"), "{e}");
        assert!(
            load(&format!("{BASE}mode = \"plain\"\nmax_connections = 0\n"))
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(
            load(&format!(
                "{BASE}mode = \"plain\"\nproxy_protocol = {{ trusted = [] }}\n"
            ))
            .is_err()
        );
        let field = |extra: &str| {
            load(&format!("{BASE}{extra}"))
                .unwrap()
                .validate()
                .unwrap_err()
                .field
        };
        assert_eq!(
            field("mode = \"implicit\"\nrequire_tls = true\ntls = \"t\"\n"),
            "require_tls"
        );
        assert_eq!(field("mode = \"plain\"\ntls = \"t\"\n"), "tls");
        assert_eq!(field("mode = \"implicit\"\n"), "tls");
        assert_eq!(
            field("mode = \"plain\"\nconnection_rate = [{ ipv4 = 32, ipv6 = 64 }]\n"),
            "connection_rate[0].per_minute"
        );
    }
}
