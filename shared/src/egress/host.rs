//! Where a URL points: its host (a name, or an IP in any spelling a
//! resolver accepts — `2130706433`, `0177.1`, `0x7f.0.0.1`, `[::1]`) and
//! port. Hosts that different URL parsers could read differently (several
//! `@`, `%`-escapes, zone ids, unusual characters) are refused rather than
//! guessed at, so what is checked is what git connects to.

use crate::domain::GitUrl;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// Lowercase, without a trailing dot.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

impl Host {
    pub fn parse(text: &str) -> Result<Host, String> {
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| format!("`{text}` is not an IPv6 address"));
        }
        if let Some(ip) = inet_aton(text) {
            return Ok(Host::Ip(IpAddr::V4(ip)));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        let labels_ok = name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
        // A numeric last label is an address spelling no resolver agrees on.
        let numeric_tail = name
            .rsplit('.')
            .next()
            .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()) || l.starts_with("0x"));
        if name.is_empty() || name.len() > 253 || !labels_ok || numeric_tail {
            return Err(format!("`{text}` is not a valid host name or address"));
        }
        Ok(Host::Name(name))
    }
}

/// An IPv4 address the way `inet_aton` (and so getaddrinfo and curl) reads
/// it: one to four parts, each decimal, octal (`0` prefix) or hex (`0x`),
/// the last filling the bytes that remain.
fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        let (digits, radix) =
            if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                (hex, 16)
            } else if part.len() > 1 && part.starts_with('0') {
                (&part[1..], 8)
            } else {
                (*part, 10)
            };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        let value = if digits.is_empty() {
            0
        } else {
            u32::from_str_radix(digits, radix).ok()?
        };
        if !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        values.push(value);
    }
    let (last, leading) = values.split_last()?;
    if leading.iter().any(|v| *v > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - leading.len() as u32);
    if rest_bits < 32 && *last >= 1 << rest_bits {
        return None;
    }
    let high = leading
        .iter()
        .enumerate()
        .fold(0u32, |acc, (i, v)| acc | (v << (24 - 8 * i as u32)));
    Some(Ipv4Addr::from(high | last))
}

/// `[user@]host[:port]` of a URL's authority, with `default_port`.
pub fn parse_authority(authority: &str, default_port: u16) -> Result<Endpoint, String> {
    if authority.matches('@').count() > 1 || authority.contains(['%', '\\', '?', '#']) {
        return Err(format!("`{authority}` is not a plain user@host:port"));
    }
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.rfind(':') {
        Some(colon) if !host_port[colon..].contains(']') => {
            let port = &host_port[colon + 1..];
            let port = match port {
                "" => default_port,
                p => p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("`{p}` is not a port"))?,
            };
            (&host_port[..colon], port)
        }
        _ => (host_port, default_port),
    };
    Ok(Endpoint {
        host: Host::parse(host)?,
        port,
    })
}

/// Where a `scheme://authority/…` URL connects, for the given schemes'
/// default ports; `None` for another scheme.
pub fn url_endpoint(url: &str, defaults: &[(&str, u16)]) -> Option<Result<Endpoint, String>> {
    let (scheme, rest) = url.split_once("://")?;
    let (_, port) = defaults.iter().find(|(s, _)| *s == scheme)?;
    // git ends the authority at '/', curl also at '?' and '#': those two
    // are refused inside it, so both read the same host.
    let end = rest.find('/').unwrap_or(rest.len());
    Some(parse_authority(&rest[..end], *port))
}

pub const GIT_PORTS: &[(&str, u16)] = &[("https", 443), ("http", 80), ("ssh", 22), ("git", 9418)];

/// Where a git URL connects; `None` for `file://` (its own flag decides).
pub fn git_endpoint(url: &GitUrl) -> Result<Option<Endpoint>, String> {
    let raw = url.as_str();
    if raw.starts_with("file://") {
        return Ok(None);
    }
    if let Some(found) = url_endpoint(raw, GIT_PORTS) {
        return found.map(Some);
    }
    // scp-like `user@host:path` (git's rule: a colon before any slash).
    let authority = raw
        .split_once(':')
        .map(|(a, _)| a)
        .filter(|a| !a.contains('/'))
        .ok_or_else(|| format!("`{raw}` names no host"))?;
    let authority = match authority.strip_prefix('[') {
        // `user@[::1]:path` keeps its brackets up to the path's colon.
        Some(_) => return Err("use ssh://user@[ADDRESS]/path for an IPv6 address".into()),
        None => authority,
    };
    parse_authority(authority, 22).map(Some)
}

/// Where a service setting (`scheme://user:password@host:port/…` or
/// `host:port`) points; `None` for what names no fixed port (`:0`) or
/// cannot be read (that setting's own reader refuses it).
pub fn setting_endpoint(value: &str) -> Option<Endpoint> {
    const PORTS: &[(&str, u16)] = &[
        ("postgres", 5432),
        ("postgresql", 5432),
        ("amqp", 5672),
        ("amqps", 5671),
        ("http", 80),
        ("https", 443),
    ];
    let (scheme, rest) = value.trim().split_once("://").unwrap_or(("", value.trim()));
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    // The platform's own credentials may hold any escaped character.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default = PORTS
        .iter()
        .find(|(s, _)| *s == scheme)
        .map_or(0, |(_, p)| *p);
    parse_authority(host_port, default)
        .ok()
        .filter(|e| e.port != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Host {
        Host::Ip(text.parse().unwrap())
    }

    #[test]
    fn every_spelling_of_an_ipv4_address() {
        for (text, expected) in [
            ("127.0.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("017700000001", "127.0.0.1"),
            ("169.254.43518", "169.254.169.254"),
            ("0", "0.0.0.0"),
        ] {
            assert_eq!(Host::parse(text), Ok(ip(expected)), "{text}");
        }
        assert_eq!(Host::parse("[::1]"), Ok(ip("::1")));
        assert_eq!(Host::parse("[::ffff:7f00:1]"), Ok(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn names_are_plain_and_ambiguous_ones_refused() {
        assert_eq!(
            Host::parse("Git.Example.COM."),
            Ok(Host::Name("git.example.com".into()))
        );
        for bad in [
            "",
            "a..b",
            "1.2.3.256",
            "1.2.3.4.5",
            "a.0x1",
            "ex ample",
            "[::1",
            "[fe80::1%eth0]",
            "a%2eb",
            "x.999",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad}");
        }
    }

    fn endpoint(url: &str) -> Result<Option<Endpoint>, String> {
        git_endpoint(&GitUrl::parse(url).unwrap())
    }

    #[test]
    fn git_urls_name_their_host_and_port() {
        let cases = [
            ("https://h.example/r.git", "h.example", 443),
            ("http://u:p@h.example:8080/r", "h.example", 8080),
            ("ssh://git@[::1]:2222/r", "[::1]", 2222),
            ("git://127.1/r", "127.0.0.1", 9418),
            ("git@gitlab.example:org/r.git", "gitlab.example", 22),
        ];
        for (url, host, port) in cases {
            let found = endpoint(url).unwrap().unwrap();
            assert_eq!(
                (found.host.to_string(), found.port),
                (host.into(), port),
                "{url}"
            );
        }
        assert_eq!(endpoint("file:///srv/r"), Ok(None));
        for bad in [
            "https://a@b@127.0.0.1/",
            "https://127.0.0.1%2f/",
            "https://h:99999/",
            "https://h\\@127.0.0.1/",
            "https://h.example?@127.0.0.1/",
            "git://h.example#@127.0.0.1/r",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_settings_name_their_host_and_port() {
        for (value, expected) in [
            (
                "postgres://postgres:p%40ss@db:5432/slipway",
                Some("db:5432"),
            ),
            (
                "postgres://postgres@127.0.0.1/slipway",
                Some("127.0.0.1:5432"),
            ),
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                Some("127.0.0.1:5672"),
            ),
            ("http://127.0.0.1:2019", Some("127.0.0.1:2019")),
            ("0.0.0.0:8080", Some("0.0.0.0:8080")),
            ("127.0.0.1:0", None),
            ("registry.local", None),
        ] {
            let found = setting_endpoint(value).map(|e| format!("{}:{}", e.host, e.port));
            assert_eq!(found.as_deref(), expected, "{value}");
        }
    }
}
