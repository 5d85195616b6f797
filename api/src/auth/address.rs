//! The client's address: the TCP peer, unless the peer is a trusted proxy
//! (`SLIPWAY_TRUSTED_PROXIES`), in which case the right-most address of
//! `X-Forwarded-For` that is not itself a trusted proxy. A header from an
//! untrusted peer is ignored, so nobody picks their own sign-in budget.

use axum::extract::{ConnectInfo, Request};
use std::net::{IpAddr, SocketAddr};

pub fn client(request: &Request, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())?;
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    Some(from_chain(peer, &forwarded, trusted))
}

/// Walks the chain from the nearest hop outwards while hops are trusted.
pub fn from_chain(peer: IpAddr, forwarded: &[&str], trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded
        .iter()
        .flat_map(|header| header.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // A hop that is no address ends what can be believed.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::from_chain;
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = slipway_shared::config::parse_networks("10.0.0.0/8").unwrap();
        let table: &[(&str, &[&str], &str)] = &[
            // An untrusted peer's header is ignored.
            ("203.0.113.9", &["198.51.100.1"], "203.0.113.9"),
            // A trusted proxy: the right-most untrusted hop.
            ("10.0.0.2", &["198.51.100.1"], "198.51.100.1"),
            (
                "10.0.0.2",
                &["6.6.6.6, 198.51.100.1, 10.0.0.5"],
                "198.51.100.1",
            ),
            ("10.0.0.2", &["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
            // No header: the proxy itself.
            ("10.0.0.2", &[], "10.0.0.2"),
            // Garbage stops the walk at the last good hop.
            ("10.0.0.2", &["198.51.100.1, nonsense"], "10.0.0.2"),
        ];
        for (peer, chain, expected) in table {
            assert_eq!(
                from_chain(ip(peer), chain, &trusted),
                ip(expected),
                "{peer} {chain:?}"
            );
        }
    }
}
