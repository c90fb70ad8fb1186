//! The embedded default configuration: what `postern-mta` runs with no
//! `--config`. Three loopback listeners, a self-signed certificate, local
//! domain `localhost`, TLS 1.2+, and the guide's rules.

/// The embedded default, in the same TOML format as a configuration file
/// (see `examples/mta/hardening.toml` for every knob, commented).
pub const DEFAULT_CONFIG: &str = r#"
[server]
hostname = "localhost"
data_dir = "postern-data"

[[domain]]
name = "localhost"
# postmaster always exists; users added with `postern-mta user add` are
# mailboxes at every local domain too.
mailboxes = []

# Mail to this domain is accepted only over TLS (the guide's
# allow_only_tls_for_mydomain_com, for a local domain of the default).
[[domain]]
name = "tls.localhost"
mailboxes = []

[tls.default]
certificate = "self-signed"
versions = ["TLSv1.2", "TLSv1.3"]

# Port 25 style (MTA to MTA): plaintext with STARTTLS offered.
[[listener]]
name = "mta"
address = "127.0.0.1:2525"
mode = "starttls"
tls = "default"

# Port 587 style (submission): STARTTLS, AUTH only after it.
[[listener]]
name = "submission"
address = "127.0.0.1:2587"
mode = "starttls"
tls = "default"

# Port 465 style (submissions): TLS from the first byte.
[[listener]]
name = "submissions"
address = "127.0.0.1:2465"
mode = "implicit"
tls = "default"

[queue]
max_age = "5d"

# AUTH brute force: failures counted per address prefix (mox's windows),
# throttled with 454 4.7.0 past a minute's limit, banned with 421 4.7.0
# for an hour at a day's limit; a login over its own limit is slowed only
# from networks that are failing too. Loopback is not exempt.
[auth_limits]
ban = "1h"
allow = []
[[auth_limits.window]]
ipv4 = 32
ipv6 = 64
per_minute = 10
per_day = 50
[[auth_limits.window]]
ipv4 = 26
ipv6 = 48
per_minute = 30
per_day = 150
[[auth_limits.window]]
ipv4 = 21
ipv6 = 32
per_minute = 90
per_day = 450

# Connections per address prefix, all listeners together: 421 4.7.0 past
# 60 a minute from one address (IPv6 /64) or 600 from one /24 (IPv6 /48).
[connection_rate]
allow = []
[[connection_rate.window]]
ipv4 = 32
ipv6 = 64
per_minute = 60
[[connection_rate.window]]
ipv4 = 24
ipv6 = 48
per_minute = 600

[[rule]]
name = "disableAUTH_on_non_SSL"
actions = [{ plain_auth = "off" }]

[[rule]]
name = "enableAUTH_on_SSL"
actions = [{ tls_auth = ["PLAIN", "LOGIN"] }]

[[rule]]
name = "allow_only_tls_for_tls_localhost"
match = "all"
conditions = [{ tls = false }, { recipient_domain = { is = "tls.localhost" } }]
actions = [{ reject = { code = 550, enhanced = "5.7.1", text = "Accepting only secure delivery (STARTTLS) for tls.localhost" } }]

# Mail no rule routes: DANE where the destination is DNSSEC-signed
# (RFC 7672), opportunistic STARTTLS elsewhere. DNS comes from
# /etc/resolv.conf; DANE needs a validating resolver on a loopback address
# ([dns] in hardening.toml).
[[rule]]
name = "dane_outgoing"
actions = [{ relay_tls = "dane" }]

[[rule]]
name = "use_only_tls12_when_relaying_to_example_com"
match = "all"
conditions = [{ relaying = true }, { recipient_domain = { is = "example.com" } }]
actions = [
  { relay_host = "smtp.example.net:465" },
  { relay_tls = "implicit" },
  { relay_tls_versions = ["TLSv1.2"] },
]
"#;
