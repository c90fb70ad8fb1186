//! The abuse limits of the configuration: `[auth_limits]` (AUTH failures
//! per address prefix and per login, bans, the per-connection delay),
//! `[connection_rate]` (connections per address prefix, global or per
//! listener) and `[server] bare_lf_networks`. The tables deserialise into
//! [`postern_listener::guard`]'s configuration types
//! ([`AuthGuardConfig`](postern_listener::guard::AuthGuardConfig),
//! [`ConnectionRateConfig`](postern_listener::guard::ConnectionRateConfig),
//! [`Networks`](postern_listener::guard::Networks)); these tests check them
//! inside the MTA's file, with its error locations.
//!
//! The defaults are on, in the embedded default too, and exempt nothing
//! (loopback included): see `docs/hardening.md`.

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
