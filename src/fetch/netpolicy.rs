//! Which network addresses a feed's redirects may reach. Pure: classifies addresses, no DNS, no IO.
//! `fetch` applies it to every redirect hop (IP literals directly, host names at resolution), so a
//! feed on a public host cannot bounce us onto loopback, the LAN or a cloud metadata endpoint.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Per-feed network policy; the default is the safe one.
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    /// Let redirects from a public host reach loopback, private and link-local addresses. An
    /// operator opts in per feed (an intranet mirror behind a public redirector, say).
    pub allow_private_network: bool,
    /// The feed's headers, cookie, auth and proxy (issue 20); `None` for a plain request.
    pub request: Option<std::sync::Arc<crate::config::RequestSettings>>,
    /// An article page (full text, robots.txt) rather than a feed: asks for HTML and skips the
    /// is-it-a-feed check; every other bound is the same.
    pub page: bool,
}

/// True for addresses reachable on the public internet. Everything else — loopback, RFC 1918,
/// shared (CGNAT), link-local, unspecified, multicast, broadcast, documentation, benchmarking,
/// reserved, unique-local and IPv4-mapped forms of these — is internal.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4] {
        let [a, b] = seg[6].to_be_bytes();
        let [c, d] = seg[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00
        || (seg[0] & 0xffc0) == 0xfe80
        || (seg[0] == 0x2001 && seg[1] == 0x0db8)
        || seg[..6] == [0; 6])
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn classifies_addresses() {
        let cases: &[(&str, bool)] = &[
            ("93.184.216.34", true),
            ("8.8.8.8", true),
            ("2a00:1450:4009:81f::200e", true),
            ("127.0.0.1", false),
            ("127.255.0.9", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
            ("224.0.0.1", false),
            ("198.18.0.1", false),
            ("::1", false),
            ("::", false),
            ("fe80::1", false),
            ("fd00::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::a00:1", false),
            ("::127.0.0.1", false),
        ];
        for &(ip, want) in cases {
            let parsed = ip.parse().map(is_public);
            assert_eq!(parsed, Ok(want), "{ip}");
        }
    }
}
