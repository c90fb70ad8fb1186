//! DNS for outbound mail as configuration (feature `serde`): a table such
//! as TOML's `[dns]` with `servers`, `dnssec` and `trust_anchor`, turned
//! into a [`DnssecConfig`] when the resolver starts.
//!
//! ```toml
//! [dns]
//! servers = ["127.0.0.1", "[::1]:5353"]   # empty or absent: /etc/resolv.conf
//! dnssec = "validate"                     # or "resolver" (the default)
//! trust_anchor = "root.key"               # only with "validate"
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::{DnssecConfig, DnssecMode};
use crate::RelayError;

/// How DNSSEC status is established for DANE (`dnssec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DnssecChoice {
    /// Trust the AD bit of a validating resolver on a loopback address
    /// (`"resolver"`, the default).
    #[default]
    Resolver,
    /// Validate in-process from `trust_anchor` (`"validate"`).
    Validate,
}

/// The DNS servers and DNSSEC of outbound mail, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DnsSettings {
    /// The servers (`"127.0.0.1:53"`, `"::1"`); empty: the `nameserver`
    /// lines of /etc/resolv.conf when the resolver starts.
    pub servers: Vec<SocketAddr>,
    /// How DNSSEC status is established.
    pub dnssec: DnssecChoice,
    /// The DNSKEY trust anchor file for `validate`; `None`: the root
    /// zone's keys. A relative path is as written: resolve it against the
    /// configuration's directory.
    pub trust_anchor: Option<PathBuf>,
}

/// A value that cannot be used: the field of the table and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
#[non_exhaustive]
pub struct DnsSettingsError {
    /// The field (`trust_anchor`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: &'static str,
}

impl DnsSettings {
    /// Checks what deserialising cannot: a trust anchor is used only with
    /// `dnssec = "validate"`.
    pub fn validate(&self) -> Result<(), DnsSettingsError> {
        if self.trust_anchor.is_some() && self.dnssec != DnssecChoice::Validate {
            return Err(DnsSettingsError {
                field: "trust_anchor",
                message: "a trust anchor is used only with dnssec = \"validate\"",
            });
        }
        Ok(())
    }

    /// The resolver's settings: these servers, or those of
    /// /etc/resolv.conf when none is set.
    pub fn resolver_config(&self) -> Result<DnssecConfig, RelayError> {
        let config = if self.servers.is_empty() {
            DnssecConfig::from_system_conf()?
        } else {
            DnssecConfig::new(self.servers.iter().copied())
        };
        Ok(match self.dnssec {
            DnssecChoice::Resolver => config,
            DnssecChoice::Validate => config.with_mode(DnssecMode::Validate {
                trust_anchor: self.trust_anchor.clone(),
            }),
        })
    }
}

/// `servers 127.0.0.1:53; dnssec validate (root zone keys)`: what is in
/// effect, for an operator's check.
impl fmt::Display for DnsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("servers ")?;
        if self.servers.is_empty() {
            f.write_str("from /etc/resolv.conf")?;
        }
        for (i, s) in self.servers.iter().enumerate() {
            write!(f, "{}{s}", if i > 0 { ", " } else { "" })?;
        }
        match (self.dnssec, &self.trust_anchor) {
            (DnssecChoice::Validate, Some(a)) => {
                write!(f, "; dnssec validate (trust anchor {})", a.display())
            }
            (DnssecChoice::Validate, None) => f.write_str("; dnssec validate (root zone keys)"),
            _ => f.write_str("; dnssec resolver (AD bit, loopback resolvers only)"),
        }
    }
}

impl DnsSettings {
    /// What keeps DANE from working with these settings, if anything: a
    /// resolver that cannot be set up, or, in `resolver` mode, a server
    /// off loopback (its AD bit is not trusted).
    pub fn warning(&self) -> Option<String> {
        match self.resolver_config() {
            Err(e) => Some(format!("{e}; DANE is off")),
            Ok(c)
                if self.dnssec == DnssecChoice::Resolver
                    && !c.servers.iter().all(|s| s.ip().is_loopback()) =>
            {
                Some("a DNS server is not on a loopback address: its AD bit is not trusted, so DANE never applies".into())
            }
            Ok(_) => None,
        }
    }
}

/// `ADDR:PORT`, `[V6]:PORT` or a bare address (port 53).
pub(crate) fn server(text: &str) -> Option<SocketAddr> {
    text.parse().ok().or_else(|| {
        text.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

impl<'de> Deserialize<'de> for DnsSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default, deserialize_with = "servers")]
            servers: Vec<SocketAddr>,
            #[serde(default, deserialize_with = "choice")]
            dnssec: DnssecChoice,
            trust_anchor: Option<PathBuf>,
        }
        let r = Raw::deserialize(d)?;
        Ok(DnsSettings {
            servers: r.servers,
            dnssec: r.dnssec,
            trust_anchor: r.trust_anchor,
        })
    }
}

/// The whole list, so an error names `servers`.
fn servers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|t| {
            server(t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{t:?} is not ADDRESS, ADDRESS:PORT or [IPv6]:PORT"
                ))
            })
        })
        .collect()
}

fn choice<'de, D: Deserializer<'de>>(d: D) -> Result<DnssecChoice, D::Error> {
    match String::deserialize(d)?.as_str() {
        "resolver" => Ok(DnssecChoice::Resolver),
        "validate" => Ok(DnssecChoice::Validate),
        other => Err(serde::de::Error::custom(format!(
            "{other:?}: expected \"resolver\" or \"validate\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        #[serde(default)]
        dns: DnsSettings,
    }

    fn load(text: &str) -> Result<DnsSettings, String> {
        toml::from_str::<File>(text)
            .map(|f| f.dns)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn read_and_checked() {
        assert_eq!(load("").unwrap(), DnsSettings::default());
        let d = load("[dns]\nservers = [\"127.0.0.1\", \"[::1]:5353\"]\ndnssec = \"validate\"\ntrust_anchor = \"k\"\n").unwrap();
        assert_eq!(
            d.servers,
            [
                "127.0.0.1:53".parse::<SocketAddr>().unwrap(),
                "[::1]:5353".parse().unwrap()
            ]
        );
        assert_eq!(d.dnssec, DnssecChoice::Validate);
        assert!(d.validate().is_ok());
        let c = d.resolver_config().unwrap();
        assert_eq!(c.servers.len(), 2);
        assert!(matches!(
            c.mode,
            DnssecMode::Validate {
                trust_anchor: Some(_)
            }
        ));
        assert!(
            load("[dns]\ndnssec = \"maybe\"\n")
                .unwrap_err()
                .contains("expected \"resolver\"")
        );
        assert!(
            load("[dns]\nservers = [\"dns.example\"]\n")
                .unwrap_err()
                .contains("is not ADDRESS")
        );
        assert!(load("[dns]\nserver = []\n").unwrap_err().contains("server"));
        assert_eq!(
            d.to_string(),
            "servers 127.0.0.1:53, [::1]:5353; dnssec validate (trust anchor k)"
        );
        assert_eq!(d.warning(), None);
        let off = load("[dns]\nservers = [\"192.0.2.53\"]\n").unwrap();
        assert!(off.warning().unwrap().contains("not on a loopback address"));
        let e = load("[dns]\ntrust_anchor = \"k\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "trust_anchor");
    }
}
