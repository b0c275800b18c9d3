//! Where an address sits on the Internet: the classes an analyst triages by, and the one rule
//! that follows from them (only public addresses may leave the machine). Owns the range tables;
//! knows nothing about providers.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

/// The class of an IP address. Everything but `Public` stays on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpClass {
    /// RFC 1918 and IPv6 unique-local (fc00::/7).
    Private,
    Loopback,
    LinkLocal,
    /// RFC 6598 carrier-grade NAT (100.64.0.0/10): shared, not routable on the Internet.
    Cgnat,
    /// Documentation, benchmarking, "this network", future use, broadcast and the like.
    Reserved,
    Multicast,
    Public,
}

impl IpClass {
    pub fn label(self) -> &'static str {
        match self {
            IpClass::Private => "private",
            IpClass::Loopback => "loopback",
            IpClass::LinkLocal => "link-local",
            IpClass::Cgnat => "cgnat",
            IpClass::Reserved => "reserved",
            IpClass::Multicast => "multicast",
            IpClass::Public => "public",
        }
    }
}

fn nets<T: std::str::FromStr>(list: &[(&str, IpClass)]) -> Vec<(T, IpClass)>
where
    T::Err: std::fmt::Debug,
{
    list.iter()
        .map(|(n, c)| (n.parse::<T>().expect("built-in range parses"), *c))
        .collect()
}

/// Special-purpose IPv4 ranges (IANA registry), most specific first.
static V4: LazyLock<Vec<(Ipv4Net, IpClass)>> = LazyLock::new(|| {
    nets(&[
        ("255.255.255.255/32", IpClass::Reserved),
        ("192.0.0.0/24", IpClass::Reserved),
        ("192.0.2.0/24", IpClass::Reserved),
        ("198.51.100.0/24", IpClass::Reserved),
        ("203.0.113.0/24", IpClass::Reserved),
        ("198.18.0.0/15", IpClass::Reserved),
        ("0.0.0.0/8", IpClass::Reserved),
        ("240.0.0.0/4", IpClass::Reserved),
        ("10.0.0.0/8", IpClass::Private),
        ("172.16.0.0/12", IpClass::Private),
        ("192.168.0.0/16", IpClass::Private),
        ("100.64.0.0/10", IpClass::Cgnat),
        ("127.0.0.0/8", IpClass::Loopback),
        ("169.254.0.0/16", IpClass::LinkLocal),
        ("224.0.0.0/4", IpClass::Multicast),
    ])
});

/// Special-purpose IPv6 ranges, most specific first. IPv4-mapped addresses are classified by
/// the IPv4 address they carry.
static V6: LazyLock<Vec<(Ipv6Net, IpClass)>> = LazyLock::new(|| {
    nets(&[
        ("::1/128", IpClass::Loopback),
        ("::/128", IpClass::Reserved),
        ("64:ff9b::/96", IpClass::Reserved),
        ("100::/64", IpClass::Reserved),
        ("2001:db8::/32", IpClass::Reserved),
        ("2001::/23", IpClass::Reserved),
        ("fc00::/7", IpClass::Private),
        ("fe80::/10", IpClass::LinkLocal),
        ("fec0::/10", IpClass::Reserved),
        ("ff00::/8", IpClass::Multicast),
        ("::/8", IpClass::Reserved),
    ])
});

/// Classify an address.
pub fn classify(ip: IpAddr) -> IpClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> IpClass {
    V4.iter()
        .find(|(n, _)| n.contains(&ip))
        .map_or(IpClass::Public, |(_, c)| *c)
}

fn classify_v6(ip: Ipv6Addr) -> IpClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    V6.iter()
        .find(|(n, _)| n.contains(&ip))
        .map_or(IpClass::Public, |(_, c)| *c)
}

/// Whether a network (from a feed) could hold a public address at all: feeds listing
/// private space are kept, but are never consulted for public lookups by mistake.
pub fn is_public_net(net: &IpNet) -> bool {
    classify(net.network()) == IpClass::Public
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let c = |s: &str| classify(s.parse().expect("ip"));
        assert_eq!(c("10.1.2.3"), IpClass::Private);
        assert_eq!(c("172.31.255.255"), IpClass::Private);
        assert_eq!(c("172.32.0.1"), IpClass::Public);
        assert_eq!(c("192.168.2.3"), IpClass::Private);
        assert_eq!(c("100.64.0.1"), IpClass::Cgnat);
        assert_eq!(c("100.128.0.1"), IpClass::Public);
        assert_eq!(c("127.0.0.1"), IpClass::Loopback);
        assert_eq!(c("169.254.10.1"), IpClass::LinkLocal);
        assert_eq!(c("224.0.0.251"), IpClass::Multicast);
        assert_eq!(c("192.0.2.7"), IpClass::Reserved);
        assert_eq!(c("0.0.0.0"), IpClass::Reserved);
        assert_eq!(c("255.255.255.255"), IpClass::Reserved);
        assert_eq!(c("250.1.1.1"), IpClass::Reserved);
        assert_eq!(c("209.85.225.105"), IpClass::Public);
        assert_eq!(c("::1"), IpClass::Loopback);
        assert_eq!(c("::"), IpClass::Reserved);
        assert_eq!(c("fe80::1"), IpClass::LinkLocal);
        assert_eq!(c("fd00::1"), IpClass::Private);
        assert_eq!(c("ff02::fb"), IpClass::Multicast);
        assert_eq!(c("2001:db8::1"), IpClass::Reserved);
        assert_eq!(c("2a00:1450:4001::1"), IpClass::Public);
        assert_eq!(c("::ffff:10.0.0.1"), IpClass::Private);
        assert_eq!(c("::ffff:8.8.8.8"), IpClass::Public);
    }
}
