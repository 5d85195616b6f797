//! What kind of address an IP is, for the outbound policy: one pure
//! function, [`classify`], over the IANA special-purpose registries, which
//! looks through the IPv6 forms that carry an IPv4 address (mapped,
//! compatible, NAT64, 6to4) so `::ffff:127.0.0.1` is loopback too.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The class of an address. Everything but [`AddressClass::Public`] is
/// refused unless the operator allows that class (and some never can be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressClass {
    /// Routable on the internet.
    Public,
    /// 127.0.0.0/8, ::1: this machine.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), unique local fc00::/7 and
    /// the deprecated site-local fec0::/10.
    Private,
    /// 169.254/16 (cloud metadata 169.254.169.254 among them), fe80::/10.
    LinkLocal,
    /// 100.64/10, carrier-grade NAT (RFC 6598).
    SharedCgnat,
    /// 0.0.0.0/8, ::: a connection to it reaches this machine on Linux.
    Unspecified,
    /// 224/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, 2001:2::/48.
    Benchmarking,
    /// Everything else set aside: 240/4, 192.0.0/24, the 6to4 relay
    /// anycast, 100::/64, other IETF protocol assignments (Teredo among
    /// them) and IPv6 outside 2000::/3.
    Reserved,
}

impl AddressClass {
    /// Every class an operator may allow; the others are never reachable.
    pub const ALLOWABLE: [AddressClass; 7] = [
        AddressClass::Loopback,
        AddressClass::Private,
        AddressClass::LinkLocal,
        AddressClass::SharedCgnat,
        AddressClass::Documentation,
        AddressClass::Benchmarking,
        AddressClass::Reserved,
    ];

    /// The name used in `SLIPWAY_OUTBOUND_ALLOW` and in error messages.
    pub fn name(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::SharedCgnat => "cgnat",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Reserved => "reserved",
        }
    }

    /// The allowable class called `name`.
    pub fn allowable(name: &str) -> Option<AddressClass> {
        Self::ALLOWABLE.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    const TABLE: &[([u8; 4], u32, AddressClass)] = &[
        ([255, 255, 255, 255], 32, Broadcast),
        ([0, 0, 0, 0], 8, Unspecified),
        ([127, 0, 0, 0], 8, Loopback),
        ([10, 0, 0, 0], 8, Private),
        ([172, 16, 0, 0], 12, Private),
        ([192, 168, 0, 0], 16, Private),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([100, 64, 0, 0], 10, SharedCgnat),
        ([192, 0, 2, 0], 24, Documentation),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 88, 99, 0], 24, Reserved),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map_or(Public, |(_, _, class)| *class)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    if ip.is_unspecified() {
        return Unspecified;
    }
    if ip.is_loopback() {
        return Loopback;
    }
    // Forms whose last 32 bits are an IPv4 address the packet ends up at:
    // mapped ::ffff:0:0/96, compatible ::/96, NAT64 64:ff9b::/96.
    let bits = u128::from(ip);
    let embedded_tail = in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96)
        || in_v6(ip, [0; 8], 96)
        || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
    if embedded_tail {
        return classify_v4(Ipv4Addr::from(bits as u32));
    }
    // 6to4 2002:V4ADDR::/48: the tunnel ends at that IPv4 address.
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return match classify_v4(Ipv4Addr::from((bits >> 80) as u32)) {
            Public => Public,
            _ => Reserved,
        };
    }
    const TABLE: &[([u16; 8], u32, AddressClass)] = &[
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Multicast),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LinkLocal),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Private),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Private),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Documentation),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Documentation),
        ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, Benchmarking),
        // Local-use NAT64 (RFC 8215) translates into the operator's own net.
        ([0x64, 0xff9b, 0x1, 0, 0, 0, 0, 0], 48, Private),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Reserved),
        // IETF protocol assignments: Teredo, ORCHID and the like.
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Reserved),
    ];
    if let Some((_, _, class)) = TABLE
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
    {
        return *class;
    }
    if in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        Public
    } else {
        Reserved
    }
}

#[cfg(test)]
mod tests {
    use super::AddressClass::*;
    use super::*;

    #[test]
    fn every_class_of_address() {
        let table: &[(&str, AddressClass)] = &[
            ("93.184.216.34", Public),
            ("8.8.8.8", Public),
            ("172.32.0.1", Public),
            ("100.128.0.1", Public),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("169.254.169.254", LinkLocal),
            ("169.254.0.1", LinkLocal),
            ("100.64.0.1", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("255.255.255.255", Broadcast),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.80", Documentation),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("192.0.0.8", Reserved),
            ("192.88.99.1", Reserved),
            ("240.0.0.1", Reserved),
            ("2606:4700::1111", Public),
            ("::1", Loopback),
            ("::", Unspecified),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fec0::1", Private),
            ("fe80::1", LinkLocal),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001:2::1", Benchmarking),
            ("2001:0::1", Reserved),
            ("100::1", Reserved),
            ("4000::1", Reserved),
            ("64:ff9b:1::1", Private),
            // IPv4 addresses inside IPv6 forms take the IPv4 class.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:8.8.8.8", Public),
            ("::127.0.0.1", Loopback),
            ("::192.168.0.1", Private),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b::808:808", Public),
            ("2002:7f00:1::1", Reserved),
            ("2002:c0a8:101::1", Reserved),
            ("2002:808:808::1", Public),
        ];
        for (text, class) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(classify(ip), *class, "{text}");
        }
    }

    #[test]
    fn only_some_classes_can_be_allowed() {
        assert_eq!(AddressClass::allowable("loopback"), Some(Loopback));
        assert_eq!(AddressClass::allowable("link-local"), Some(LinkLocal));
        for never in ["public", "unspecified", "multicast", "broadcast", "x"] {
            assert_eq!(AddressClass::allowable(never), None, "{never}");
        }
    }
}
