//! Address prefixes: the unit the limits count by, and allowlists.

use std::net::IpAddr;

use ipnet::IpNet;

/// The client address as the limits see it: an IPv4-mapped IPv6 address
/// (`::ffff:192.0.2.1`, what a dual-stack socket reports) is the IPv4
/// address it carries, so it is counted under the IPv4 prefixes.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The network of `ip` at the prefix length for its family (`v4` bits for
/// IPv4, `v6` bits for IPv6), host bits cleared. Lengths beyond the
/// family's width are clamped.
pub(crate) fn prefix_of(ip: IpAddr, v4: u8, v6: u8) -> IpNet {
    let ip = canonical(ip);
    let len = match ip {
        IpAddr::V4(_) => v4.min(32),
        IpAddr::V6(_) => v6.min(128),
    };
    // The length is clamped to the family's width, so `new` cannot fail;
    // the fallback (the host itself) is never taken.
    IpNet::new(ip, len).map_or_else(|_| IpNet::from(ip), |n| n.trunc())
}

/// Networks exempt from a limit (an allowlist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks {
    nets: Vec<IpNet>,
}

impl Networks {
    /// No network: nothing is exempt.
    pub fn none() -> Self {
        Self::default()
    }

    /// These networks.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            nets: nets.into_iter().map(|n| n.trunc()).collect(),
        }
    }

    /// Parses `"192.0.2.0/24"`, `"2001:db8::/32"`, or a bare address
    /// (a host route). Returns the text that did not parse.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, &'a str> {
        let mut nets = Vec::new();
        for item in items {
            let item_trimmed = item.trim();
            let net = item_trimmed
                .parse::<IpNet>()
                .or_else(|_| item_trimmed.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| item)?;
            nets.push(net.trunc());
        }
        Ok(Self { nets })
    }

    /// Whether `ip` (IPv4-mapped IPv6 as IPv4) is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether there is no network.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The networks.
    pub fn as_slice(&self) -> &[IpNet] {
        &self.nets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_clear_host_bits_and_unmap_ipv4() {
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        assert_eq!(prefix_of(ip, 26, 64).to_string(), "192.0.2.64/26");
        let mapped: IpAddr = "::ffff:192.0.2.77".parse().unwrap();
        assert_eq!(prefix_of(mapped, 21, 64).to_string(), "192.0.0.0/21");
        let v6: IpAddr = "2001:db8:1:2:3::4".parse().unwrap();
        assert_eq!(prefix_of(v6, 32, 48).to_string(), "2001:db8:1::/48");
        assert_eq!(prefix_of(ip, 99, 64).to_string(), "192.0.2.77/32");
    }

    #[test]
    fn allowlist_matches_networks_and_hosts() {
        let nets = Networks::parse(["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"]).unwrap();
        assert!(nets.contains("10.1.2.3".parse().unwrap()));
        assert!(nets.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(nets.contains("2001:db8::1".parse().unwrap()));
        assert!(nets.contains("127.0.0.1".parse().unwrap()));
        assert!(!nets.contains("127.0.0.2".parse().unwrap()));
        assert_eq!(Networks::parse(["10.0.0.0/8", "nope"]), Err("nope"));
        assert!(!Networks::none().contains("127.0.0.1".parse().unwrap()));
    }
}
