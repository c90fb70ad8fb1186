//! The abuse limits of the configuration: `[auth_limits]` (AUTH failures
//! per address prefix and per login, bans, the per-connection delay),
//! `[connection_rate]` (connections per address prefix, global or per
//! listener) and `[server] bare_lf_networks`, mapped onto
//! [`postern_listener::guard`].
//!
//! The defaults are on, in the embedded default too, and exempt nothing
//! (loopback included): see `docs/hardening.md`.

use std::ops::Range;
use std::time::Duration;

use postern_listener::guard::{AuthLimits, MemoryStore, Networks, RateLimits, Window};
use serde::Deserialize;
use toml::Spanned;

use crate::config::DurationText;

/// `[auth_limits]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthLimitsFile {
    enabled: Option<bool>,
    allow: Option<Vec<Spanned<String>>>,
    ban: Option<DurationText>,
    login_per_minute: Option<u32>,
    login_per_day: Option<u32>,
    delay_after: Option<u32>,
    delay_step: Option<DurationText>,
    delay_max: Option<DurationText>,
    max_entries: Option<usize>,
    window: Option<Vec<Spanned<WindowFile>>>,
}

/// `[connection_rate]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectionRateFile {
    enabled: Option<bool>,
    allow: Option<Vec<Spanned<String>>>,
    max_entries: Option<usize>,
    window: Option<Vec<Spanned<WindowFile>>>,
}

/// One `[[auth_limits.window]]` / `[[connection_rate.window]]` / entry of
/// a listener's `connection_rate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowFile {
    ipv4: u8,
    ipv6: u8,
    #[serde(default)]
    per_minute: u32,
    #[serde(default)]
    per_day: u32,
}

/// A configuration error before it is located: the span (if known), the
/// field and the message.
pub(crate) type AbuseError = (Option<Range<usize>>, String, String);

/// The AUTH limits, or `None` when `enabled = false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthLimitSettings {
    /// What is enforced.
    pub limits: AuthLimits,
    /// Most counters held in memory.
    pub max_entries: usize,
}

/// The connection rate limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSettings {
    /// What is enforced.
    pub limits: RateLimits,
    /// Most counters held in memory.
    pub max_entries: usize,
}

fn networks(
    field: &str,
    items: Option<&Vec<Spanned<String>>>,
) -> Result<Option<Networks>, AbuseError> {
    let Some(items) = items else { return Ok(None) };
    for (i, item) in items.iter().enumerate() {
        if Networks::parse([item.get_ref().as_str()]).is_err() {
            return Err((
                Some(item.span()),
                format!("{field}[{i}]"),
                format!(
                    "{:?} is not a network (write e.g. \"192.0.2.0/24\", \"2001:db8::/32\" or an address)",
                    item.get_ref()
                ),
            ));
        }
    }
    Ok(Some(
        Networks::parse(items.iter().map(|s| s.get_ref().as_str())).unwrap_or_default(),
    ))
}

pub(crate) fn windows(
    field: &str,
    items: &[Spanned<WindowFile>],
) -> Result<Vec<Window>, AbuseError> {
    items
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let f = w.get_ref();
            let at = |what: &str, message: String| {
                Err((Some(w.span()), format!("{field}[{i}].{what}"), message))
            };
            if f.ipv4 > 32 {
                return at(
                    "ipv4",
                    format!("{} is not an IPv4 prefix length (0 to 32)", f.ipv4),
                );
            }
            if f.ipv6 > 128 {
                return at(
                    "ipv6",
                    format!("{} is not an IPv6 prefix length (0 to 128)", f.ipv6),
                );
            }
            if f.per_minute == 0 && f.per_day == 0 {
                return at(
                    "per_minute",
                    "a window needs per_minute or per_day (or remove it)".into(),
                );
            }
            Ok(Window::new(f.ipv4, f.ipv6, f.per_minute, f.per_day))
        })
        .collect()
}

fn capacity(field: &str, n: Option<usize>) -> Result<usize, AbuseError> {
    match n {
        None => Ok(MemoryStore::DEFAULT_CAPACITY),
        Some(n) if n >= 64 => Ok(n),
        Some(n) => Err((
            None,
            field.into(),
            format!("{n} is too small (at least 64)"),
        )),
    }
}

impl AuthLimitsFile {
    pub(crate) fn settings(&self) -> Result<Option<AuthLimitSettings>, AbuseError> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let d = AuthLimits::default();
        let mut limits = d.clone();
        if let Some(w) = &self.window {
            limits.windows = windows("auth_limits.window", w)?;
        }
        if let Some(allow) = networks("auth_limits.allow", self.allow.as_ref())? {
            limits.allow = allow;
        }
        limits.ban = self.ban.map_or(d.ban, |b| b.0);
        if limits.ban.is_zero() {
            return Err((
                None,
                "auth_limits.ban".into(),
                "must be longer than 0".into(),
            ));
        }
        limits.login_per_minute = self.login_per_minute.unwrap_or(d.login_per_minute);
        limits.login_per_day = self.login_per_day.unwrap_or(d.login_per_day);
        limits.delay_after = self.delay_after.unwrap_or(d.delay_after);
        limits.delay_step = self.delay_step.map_or(d.delay_step, |b| b.0);
        limits.delay_max = self.delay_max.map_or(d.delay_max, |b| b.0);
        if limits.delay_max > Duration::from_secs(60) {
            return Err((
                None,
                "auth_limits.delay_max".into(),
                "at most 60s (a longer wait holds connections for nothing)".into(),
            ));
        }
        Ok(Some(AuthLimitSettings {
            limits,
            max_entries: capacity("auth_limits.max_entries", self.max_entries)?,
        }))
    }
}

impl ConnectionRateFile {
    pub(crate) fn settings(&self) -> Result<Option<RateSettings>, AbuseError> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let mut limits = RateLimits::default();
        if let Some(w) = &self.window {
            limits.windows = windows("connection_rate.window", w)?;
        }
        if let Some(allow) = networks("connection_rate.allow", self.allow.as_ref())? {
            limits.allow = allow;
        }
        Ok(Some(RateSettings {
            limits,
            max_entries: capacity("connection_rate.max_entries", self.max_entries)?,
        }))
    }
}

/// `[server] bare_lf_networks`.
pub(crate) fn bare_lf_networks(
    items: Option<&Vec<Spanned<String>>>,
) -> Result<Networks, AbuseError> {
    Ok(networks("server.bare_lf_networks", items)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::MtaConfig as Config;

    const LISTENER: &str =
        "[[listener]]\nname = \"mta\"\naddress = \"127.0.0.1:2525\"\nmode = \"plain\"\n";

    fn load(extra: &str) -> Result<Config, String> {
        Config::from_toml_str(&format!("{LISTENER}{extra}"), "t.toml", Path::new(""))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn on_by_default_with_mox_windows_and_no_exemption() {
        let c = load("").unwrap();
        let a = c.auth_limits.expect("on by default");
        assert_eq!(a.limits, postern_listener::guard::AuthLimits::default());
        assert!(!a.limits.allow.contains("127.0.0.1".parse().unwrap()));
        assert!(c.connection_rate.is_some());
        let e = Config::embedded().unwrap();
        assert_eq!(
            e.auth_limits.map(|a| a.limits),
            Some(postern_listener::guard::AuthLimits::default()),
            "the embedded default writes out the defaults"
        );
        assert_eq!(
            e.connection_rate.map(|r| r.limits),
            Some(postern_listener::guard::RateLimits::default())
        );
    }

    #[test]
    fn tables_are_read_and_can_be_disabled() {
        let c = load(
            "[auth_limits]\nallow = [\"127.0.0.0/8\"]\nban = \"10m\"\n\
             [[auth_limits.window]]\nipv4 = 24\nipv6 = 56\nper_minute = 3\n\
             [connection_rate]\nenabled = false\n\
             [server]\nbare_lf_networks = [\"192.0.2.0/24\"]\n",
        )
        .unwrap();
        let a = c.auth_limits.unwrap().limits;
        assert_eq!(a.ban.as_secs(), 600);
        assert_eq!(
            a.windows,
            [postern_listener::guard::Window::new(24, 56, 3, 0)]
        );
        assert!(a.allow.contains("127.1.2.3".parse().unwrap()));
        assert!(c.connection_rate.is_none());
        assert!(c.bare_lf_networks.contains("192.0.2.9".parse().unwrap()));
        assert!(
            load("[auth_limits]\nenabled = false\n")
                .unwrap()
                .auth_limits
                .is_none()
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = load("[auth_limits]\nallow = [\"10.0.0.0/8\", \"nope\"]\n").unwrap_err();
        assert!(e.starts_with("t.toml:6:"), "{e}");
        assert!(
            e.contains("auth_limits.allow[1]: \"nope\" is not a network"),
            "{e}"
        );
        let e = load("[[auth_limits.window]]\nipv4 = 33\nipv6 = 64\nper_minute = 1\n").unwrap_err();
        assert!(
            e.contains("auth_limits.window[0].ipv4: 33 is not an IPv4 prefix length"),
            "{e}"
        );
        let e = load("[auth_limits]\nbna = \"1h\"\n").unwrap_err();
        assert!(e.contains("bna"), "{e}");
        let e = load("[connection_rate]\nmax_entries = 3\n").unwrap_err();
        assert!(
            e.contains("connection_rate.max_entries: 3 is too small"),
            "{e}"
        );
        let e = Config::from_toml_str(
            &format!("{LISTENER}connection_rate = [{{ ipv4 = 32, ipv6 = 64 }}]\n"),
            "t.toml",
            Path::new(""),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("listener[0] \"mta\", connection_rate[0].per_minute: a window needs"),
            "{e}"
        );
    }

    #[test]
    fn a_listener_may_have_its_own_rate_or_none() {
        let c = Config::from_toml_str(
            &format!("{LISTENER}connection_rate = []\n"),
            "t.toml",
            Path::new(""),
        )
        .unwrap();
        assert_eq!(c.listeners[0].connection_rate, Some(vec![]));
    }
}
