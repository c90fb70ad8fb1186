//! The guards as configuration (feature `serde`): [`AuthGuardConfig`] and
//! [`ConnectionRateConfig`] deserialise from a table such as TOML's
//! `[auth_limits]` / `[connection_rate]`, every key optional (the defaults
//! of [`AuthLimits`] and [`RateLimits`]), unknown keys refused; then
//! [`validate`](AuthGuardConfig::validate) names the field of anything out
//! of range.
//!
//! ```toml
//! [auth_limits]
//! allow = ["192.0.2.0/24"]   # networks never limited
//! ban = "1h"                 # durations: "10s", "30m", "1h 30m" or seconds
//! login_per_minute = 10
//! login_per_day = 50
//! delay_after = 1
//! delay_step = "1s"
//! delay_max = "8s"           # at most 60s
//! max_entries = 100000       # counters held in memory (at least 64)
//! [[auth_limits.window]]     # replaces the default windows
//! ipv4 = 32
//! ipv6 = 64
//! per_minute = 10
//! per_day = 50
//!
//! [connection_rate]
//! enabled = true
//! window = [{ ipv4 = 32, ipv6 = 64, per_minute = 60 }]
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{AuthLimits, ConnectionRate, MemoryStore, Networks, RateLimits, Window};

/// A configuration value out of range: the field (relative to the table,
/// e.g. `window[0].ipv4`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
#[non_exhaustive]
pub struct FieldError {
    /// The field, relative to the table that was deserialised.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// An error at `field`.
    pub fn at(field: &str, message: &str) -> Self {
        Self::new(field, message)
    }

    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An [`AuthGuard`](super::AuthGuard) as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthGuardConfig {
    /// `enabled = false` turns the guard off (default on).
    pub enabled: bool,
    /// What is enforced.
    pub limits: AuthLimits,
    /// Most counters held in memory ([`MemoryStore::new`]).
    pub max_entries: usize,
}

impl Default for AuthGuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            limits: AuthLimits::default(),
            max_entries: MemoryStore::DEFAULT_CAPACITY,
        }
    }
}

/// A [`ConnectionRate`](super::ConnectionRate) as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionRateConfig {
    /// `enabled = false` turns the limit off (default on).
    pub enabled: bool,
    /// What is enforced.
    pub limits: RateLimits,
    /// Most counters held in memory ([`MemoryStore::new`]).
    pub max_entries: usize,
}

impl Default for ConnectionRateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            limits: RateLimits::default(),
            max_entries: MemoryStore::DEFAULT_CAPACITY,
        }
    }
}

/// Checks each window: prefix lengths within their family, and a limit.
/// The error's field is `[i].name` (prefix it with the list's key).
pub fn validate_windows(windows: &[Window]) -> Result<(), FieldError> {
    for (i, w) in windows.iter().enumerate() {
        let at =
            |what: &str, message: String| Err(FieldError::new(format!("[{i}].{what}"), message));
        if w.ipv4 > 32 {
            return at(
                "ipv4",
                format!("{} is not an IPv4 prefix length (0 to 32)", w.ipv4),
            );
        }
        if w.ipv6 > 128 {
            return at(
                "ipv6",
                format!("{} is not an IPv6 prefix length (0 to 128)", w.ipv6),
            );
        }
        if w.per_minute == 0 && w.per_day == 0 {
            return at(
                "per_minute",
                "a window needs per_minute or per_day (or remove it)".into(),
            );
        }
    }
    Ok(())
}

fn validate_capacity(n: usize) -> Result<(), FieldError> {
    if n < 64 {
        return Err(FieldError::new(
            "max_entries",
            format!("{n} is too small (at least 64)"),
        ));
    }
    Ok(())
}

fn in_table(prefix: &str, e: FieldError) -> FieldError {
    FieldError::new(format!("{prefix}{}", e.field), e.message)
}

impl AuthGuardConfig {
    /// Checks the ranges: windows, a ban longer than 0, a delay of at most
    /// 60 seconds (a longer wait holds connections for nothing), at least
    /// 64 counters.
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_windows(&self.limits.windows).map_err(|e| in_table("window", e))?;
        if self.limits.ban.is_zero() {
            return Err(FieldError::new("ban", "must be longer than 0"));
        }
        if self.limits.delay_max > Duration::from_secs(60) {
            return Err(FieldError::new(
                "delay_max",
                "at most 60s (a longer wait holds connections for nothing)",
            ));
        }
        validate_capacity(self.max_entries)
    }
}

impl ConnectionRateConfig {
    /// The limiter these settings describe, over a [`MemoryStore`] of
    /// `max_entries`; `None` when disabled. Share it (behind an `Arc`)
    /// between listeners whose connections count together.
    pub fn limiter(&self) -> Option<ConnectionRate> {
        self.enabled.then(|| {
            ConnectionRate::with_store(self.limits.clone(), MemoryStore::new(self.max_entries))
        })
    }

    /// A limiter of its own with `windows` instead of these windows (the
    /// same allowlist and capacity), for a listener with limits of its
    /// own; `None` when `windows` is empty (no limit there).
    pub fn limiter_with_windows(&self, windows: &[Window]) -> Option<ConnectionRate> {
        if windows.is_empty() {
            return None;
        }
        let mut limits = RateLimits::unlimited();
        limits.windows = windows.to_vec();
        limits.allow = self.limits.allow.clone();
        Some(ConnectionRate::with_store(
            limits,
            MemoryStore::new(self.max_entries),
        ))
    }

    /// Checks the windows and the number of counters (at least 64).
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_windows(&self.limits.windows).map_err(|e| in_table("window", e))?;
        validate_capacity(self.max_entries)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthRaw {
    enabled: Option<bool>,
    allow: Option<Networks>,
    #[serde(
        default,
        deserialize_with = "postern_proto::duration::deserialize_option"
    )]
    ban: Option<Duration>,
    login_per_minute: Option<u32>,
    login_per_day: Option<u32>,
    delay_after: Option<u32>,
    #[serde(
        default,
        deserialize_with = "postern_proto::duration::deserialize_option"
    )]
    delay_step: Option<Duration>,
    #[serde(
        default,
        deserialize_with = "postern_proto::duration::deserialize_option"
    )]
    delay_max: Option<Duration>,
    max_entries: Option<usize>,
    window: Option<Vec<Window>>,
}

impl<'de> Deserialize<'de> for AuthGuardConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = AuthRaw::deserialize(d)?;
        let mut c = AuthGuardConfig::default();
        let l = &mut c.limits;
        c.enabled = r.enabled.unwrap_or(true);
        l.allow = r.allow.unwrap_or_default();
        l.windows = r.window.unwrap_or(std::mem::take(&mut l.windows));
        l.ban = r.ban.unwrap_or(l.ban);
        l.login_per_minute = r.login_per_minute.unwrap_or(l.login_per_minute);
        l.login_per_day = r.login_per_day.unwrap_or(l.login_per_day);
        l.delay_after = r.delay_after.unwrap_or(l.delay_after);
        l.delay_step = r.delay_step.unwrap_or(l.delay_step);
        l.delay_max = r.delay_max.unwrap_or(l.delay_max);
        c.max_entries = r.max_entries.unwrap_or(c.max_entries);
        Ok(c)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateRaw {
    enabled: Option<bool>,
    allow: Option<Networks>,
    max_entries: Option<usize>,
    window: Option<Vec<Window>>,
}

impl<'de> Deserialize<'de> for ConnectionRateConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RateRaw::deserialize(d)?;
        let d = ConnectionRateConfig::default();
        let mut limits = d.limits;
        limits.allow = r.allow.unwrap_or_default();
        limits.windows = r.window.unwrap_or(limits.windows);
        Ok(ConnectionRateConfig {
            enabled: r.enabled.unwrap_or(true),
            limits,
            max_entries: r.max_entries.unwrap_or(d.max_entries),
        })
    }
}

/// `{ ipv4 = 32, ipv6 = 64, per_minute = 10, per_day = 50 }`; either
/// limit may be left out (0: none). Ranges: [`validate_windows`].
impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            ipv4: u8,
            ipv6: u8,
            #[serde(default)]
            per_minute: u32,
            #[serde(default)]
            per_day: u32,
        }
        let r = Raw::deserialize(d)?;
        Ok(Window::new(r.ipv4, r.ipv6, r.per_minute, r.per_day))
    }
}

/// One network of a list: `"192.0.2.0/24"`, `"2001:db8::/32"` or an
/// address; the error names the item that is not one.
struct NetworkItem(Networks);

impl<'de> Deserialize<'de> for NetworkItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Networks::parse([text.as_str()]).map(NetworkItem).map_err(|_| {
            serde::de::Error::custom(format!(
                "{text:?} is not a network (write e.g. \"192.0.2.0/24\", \"2001:db8::/32\" or an address)"
            ))
        })
    }
}

/// A list of networks, each as [`Networks::parse`] reads it.
impl<'de> Deserialize<'de> for Networks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<NetworkItem>::deserialize(d)?;
        Ok(Networks::new(
            items.into_iter().flat_map(|n| n.0.as_slice().to_vec()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        auth_limits: AuthGuardConfig,
        #[serde(default)]
        connection_rate: ConnectionRateConfig,
    }

    fn load(text: &str) -> Result<File, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_when_absent() {
        let f = load("").unwrap();
        assert_eq!(f.auth_limits, AuthGuardConfig::default());
        assert_eq!(f.connection_rate.limits, RateLimits::default());
        assert!(f.auth_limits.validate().is_ok());
    }

    #[test]
    fn keys_are_read() {
        let f = load(
            "[auth_limits]\nallow = [\"127.0.0.0/8\"]\nban = \"10m\"\ndelay_step = 2\n\
             [[auth_limits.window]]\nipv4 = 24\nipv6 = 56\nper_minute = 3\n\
             [connection_rate]\nenabled = false\n",
        )
        .unwrap();
        let a = &f.auth_limits.limits;
        assert_eq!(a.ban, Duration::from_secs(600));
        assert_eq!(a.delay_step, Duration::from_secs(2));
        assert_eq!(a.windows, [Window::new(24, 56, 3, 0)]);
        assert!(a.allow.contains("127.1.2.3".parse().unwrap()));
        assert!(!f.connection_rate.enabled);
    }

    #[test]
    fn errors_name_the_field() {
        let e = load("[auth_limits]\nallow = [\"10.0.0.0/8\", \"nope\"]\n").unwrap_err();
        assert!(e.contains("\"nope\" is not a network"), "{e}");
        assert!(
            load("[auth_limits]\nbna = 1\n")
                .unwrap_err()
                .contains("bna")
        );
        assert!(
            load("[auth_limits]\nban = \"soon\"\n")
                .unwrap_err()
                .contains("invalid duration")
        );
        let f = load("[[auth_limits.window]]\nipv4 = 33\nipv6 = 64\nper_minute = 1\n").unwrap();
        let e = f.auth_limits.validate().unwrap_err();
        assert_eq!(e.field, "window[0].ipv4");
        let f = load("[connection_rate]\nwindow = [{ ipv4 = 32, ipv6 = 64 }]\nmax_entries = 64\n")
            .unwrap();
        assert_eq!(
            f.connection_rate.validate().unwrap_err().field,
            "window[0].per_minute"
        );
        let f = load("[connection_rate]\nmax_entries = 3\n").unwrap();
        assert_eq!(
            f.connection_rate.validate().unwrap_err().to_string(),
            "max_entries: 3 is too small (at least 64)"
        );
        let f = load("[connection_rate]\nallow = [\"192.0.2.0/24\"]\n").unwrap();
        let own = f
            .connection_rate
            .limiter_with_windows(&[Window::new(32, 64, 1, 0)])
            .unwrap();
        assert_eq!(own.limits().windows, [Window::new(32, 64, 1, 0)]);
        assert!(own.limits().allow.contains("192.0.2.1".parse().unwrap()));
        assert!(f.connection_rate.limiter_with_windows(&[]).is_none());
        assert!(f.connection_rate.limiter().is_some());
        let f = load("[auth_limits]\nban = 0\n").unwrap();
        assert_eq!(f.auth_limits.validate().unwrap_err().field, "ban");
    }
}
