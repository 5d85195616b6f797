//! The outbound address policy: which addresses a URL a user supplies (a
//! git source today; provider, forge and DNS endpoints later) may make the
//! platform connect to. Public addresses only, unless the operator allows
//! more classes (`SLIPWAY_OUTBOUND_ALLOW`, for tests and single-host
//! installs); and never the platform's own services, whatever is allowed.
//!
//! A name is resolved and every answer must pass; the caller then connects
//! to an address that passed (pinned), since the name may answer
//! differently a moment later.

mod class;
mod host;

pub use class::{classify, AddressClass};
pub use host::{git_endpoint, parse_authority, setting_endpoint, url_endpoint, Endpoint, Host};

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// One of the platform's own services, never reachable through a user's
/// URL even when its address class is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformService {
    /// What it is, for the error message (`the API`, `Caddy's admin API`).
    pub name: &'static str,
    pub endpoint: Endpoint,
}

impl PlatformService {
    /// Whether a connection to `addr` could reach this service: the same
    /// port, and the same IP, or any loopback or unspecified IP for one on
    /// loopback (all of 127/8 and 0.0.0.0 reach a wildcard listener), or
    /// any non-public IP for one listening on every address (`0.0.0.0`,
    /// `[::]`) or configured by name (its address is not known here).
    fn matches(&self, addr: SocketAddr) -> bool {
        if addr.port() != self.endpoint.port {
            return false;
        }
        let ip = addr.ip().to_canonical();
        let local = |ip: IpAddr| {
            matches!(
                classify(ip),
                AddressClass::Loopback | AddressClass::Unspecified
            )
        };
        match &self.endpoint.host {
            // Listening on every address: reachable at each of the host's.
            Host::Ip(service) if service.is_unspecified() => classify(ip) != AddressClass::Public,
            Host::Ip(service) => service.to_canonical() == ip || (local(*service) && local(ip)),
            Host::Name(name) if name == "localhost" || name.ends_with(".localhost") => local(ip),
            Host::Name(_) => classify(ip) != AddressClass::Public,
        }
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its class is not allowed (or can never be).
    Class(AddressClass),
    /// It reaches one of the platform's own services.
    PlatformService(&'static str),
}

/// The classes an operator allows besides public addresses, and the
/// platform services that stay out of reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allowed: BTreeSet<AddressClass>,
    platform: Vec<PlatformService>,
}

impl OutboundPolicy {
    /// Public addresses only, and no platform services known.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// `SLIPWAY_OUTBOUND_ALLOW`: comma-separated class names (`loopback`,
    /// `private`, `link-local`, `cgnat`, `documentation`, `benchmarking`,
    /// `reserved`), or `none`.
    pub fn parse_allow(text: &str) -> Result<BTreeSet<AddressClass>, String> {
        let mut allowed = BTreeSet::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "none" {
                continue;
            }
            let class = AddressClass::allowable(name).ok_or_else(|| {
                let names: Vec<_> = AddressClass::ALLOWABLE.iter().map(|c| c.name()).collect();
                format!(
                    "`{name}` is not a class that can be allowed (one of {}, or none)",
                    names.join(", ")
                )
            })?;
            allowed.insert(class);
        }
        Ok(allowed)
    }

    pub fn new(allowed: BTreeSet<AddressClass>, platform: Vec<PlatformService>) -> Self {
        OutboundPolicy { allowed, platform }
    }

    pub fn allowed(&self) -> impl Iterator<Item = AddressClass> + '_ {
        self.allowed.iter().copied()
    }

    /// Whether a connection to `addr` may be made.
    pub fn verdict(&self, addr: SocketAddr) -> Result<(), Refusal> {
        let class = classify(addr.ip());
        if class != AddressClass::Public && !self.allowed.contains(&class) {
            return Err(Refusal::Class(class));
        }
        match self.platform.iter().find(|s| s.matches(addr)) {
            Some(service) => Err(Refusal::PlatformService(service.name)),
            None => Ok(()),
        }
    }

    /// Resolves `endpoint` and checks every answer; the answers, in the
    /// resolver's order, to connect to (and only to).
    pub async fn resolve(&self, endpoint: &Endpoint) -> Result<Vec<SocketAddr>, EgressError> {
        let addrs: Vec<SocketAddr> = match &endpoint.host {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, endpoint.port)],
            Host::Name(name) => tokio::net::lookup_host((name.as_str(), endpoint.port))
                .await
                .map_err(|e| EgressError::Unresolvable {
                    host: name.clone(),
                    detail: e.to_string(),
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(EgressError::Unresolvable {
                host: endpoint.host.to_string(),
                detail: "no addresses".into(),
            });
        }
        for addr in &addrs {
            self.verdict(*addr)
                .map_err(|reason| EgressError::NotAllowed {
                    host: endpoint.host.to_string(),
                    addr: *addr,
                    reason,
                })?;
        }
        Ok(addrs)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("{}", not_allowed(host, addr, reason))]
    NotAllowed {
        host: String,
        addr: SocketAddr,
        reason: Refusal,
    },
    #[error("the host `{host}` does not resolve: {detail}")]
    Unresolvable { host: String, detail: String },
}

impl EgressError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            EgressError::NotAllowed { .. } => "address_not_allowed",
            EgressError::Unresolvable { .. } => "host_unresolvable",
        }
    }
}

fn not_allowed(host: &str, addr: &SocketAddr, reason: &Refusal) -> String {
    let ip = addr.ip();
    let shown = if host == Host::Ip(ip).to_string() {
        format!("`{host}`")
    } else {
        format!("`{host}` resolves to {ip}, which")
    };
    match reason {
        Refusal::Class(class) => format!(
            "{shown} is {} {class} address: the platform connects only to public addresses{}",
            article(*class),
            if AddressClass::ALLOWABLE.contains(class) {
                format!(" unless the operator allows {class} ones (SLIPWAY_OUTBOUND_ALLOW)")
            } else {
                String::new()
            }
        ),
        Refusal::PlatformService(service) => format!(
            "{shown} on port {} reaches {service}, one of the platform's own services",
            addr.port()
        ),
    }
}

fn article(class: AddressClass) -> &'static str {
    if class.name().starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Class(class) => write!(f, "{} {class} address", article(*class)),
            Refusal::PlatformService(service) => write!(f, "{service}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &'static str, authority: &str) -> PlatformService {
        PlatformService {
            name,
            endpoint: parse_authority(authority, 1).unwrap(),
        }
    }

    fn policy(allow: &str) -> OutboundPolicy {
        OutboundPolicy::new(
            OutboundPolicy::parse_allow(allow).unwrap(),
            vec![
                service("the API", "127.0.0.1:8080"),
                service("the database", "db.internal:5432"),
                service("the registry", "10.0.0.5:5000"),
                service("a worker's metrics", "0.0.0.0:9100"),
            ],
        )
    }

    fn verdict(policy: &OutboundPolicy, addr: &str) -> Result<(), Refusal> {
        policy.verdict(addr.parse().unwrap())
    }

    #[test]
    fn only_allowed_classes_pass() {
        let strict = policy("");
        assert_eq!(verdict(&strict, "8.8.8.8:443"), Ok(()));
        assert_eq!(
            verdict(&strict, "127.0.0.1:9418"),
            Err(Refusal::Class(AddressClass::Loopback))
        );
        assert_eq!(
            verdict(&strict, "[::ffff:10.0.0.1]:22"),
            Err(Refusal::Class(AddressClass::Private))
        );
        let local = policy("loopback, private");
        assert_eq!(verdict(&local, "127.0.0.1:9418"), Ok(()));
        assert_eq!(verdict(&local, "10.0.0.1:22"), Ok(()));
        assert_eq!(
            verdict(&local, "169.254.169.254:80"),
            Err(Refusal::Class(AddressClass::LinkLocal))
        );
        assert_eq!(
            verdict(&local, "0.0.0.0:9418"),
            Err(Refusal::Class(AddressClass::Unspecified))
        );
    }

    #[test]
    fn platform_services_stay_out_of_reach_when_their_class_is_allowed() {
        let local = policy("loopback,private");
        let api = Err(Refusal::PlatformService("the API"));
        assert_eq!(verdict(&local, "127.0.0.1:8080"), api);
        assert_eq!(verdict(&local, "127.0.0.2:8080"), api);
        assert_eq!(verdict(&local, "[::1]:8080"), api);
        assert_eq!(verdict(&local, "[::ffff:127.0.0.1]:8080"), api);
        assert_eq!(verdict(&local, "127.0.0.1:8081"), Ok(()));
        assert_eq!(
            verdict(&local, "10.0.0.5:5000"),
            Err(Refusal::PlatformService("the registry"))
        );
        assert_eq!(verdict(&local, "10.0.0.6:5000"), Ok(()));
        assert_eq!(
            verdict(&local, "10.9.9.9:5432"),
            Err(Refusal::PlatformService("the database"))
        );
        assert_eq!(verdict(&local, "8.8.8.8:5432"), Ok(()));
        let metrics = Err(Refusal::PlatformService("a worker's metrics"));
        assert_eq!(verdict(&local, "127.0.0.1:9100"), metrics);
        assert_eq!(verdict(&local, "172.18.0.4:9100"), metrics);
    }

    #[test]
    fn the_allow_setting_names_classes() {
        assert!(OutboundPolicy::parse_allow("none").unwrap().is_empty());
        assert_eq!(
            OutboundPolicy::parse_allow("loopback,cgnat").unwrap(),
            BTreeSet::from([AddressClass::Loopback, AddressClass::SharedCgnat])
        );
        for bad in ["public", "multicast", "unspecified", "everything"] {
            assert!(OutboundPolicy::parse_allow(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_name_passes_only_if_every_answer_does() {
        let strict = policy("");
        let localhost = Endpoint {
            host: Host::Name("localhost".into()),
            port: 9418,
        };
        let refused = strict.resolve(&localhost).await.unwrap_err();
        assert_eq!(refused.code(), "address_not_allowed");
        assert!(
            refused.to_string().contains("`localhost` resolves to"),
            "{refused}"
        );
        let loopback = policy("loopback");
        let addrs = loopback.resolve(&localhost).await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        let literal = Endpoint {
            host: Host::parse("2130706433").unwrap(),
            port: 80,
        };
        let refused = strict.resolve(&literal).await.unwrap_err();
        assert_eq!(
            refused.to_string(),
            "`127.0.0.1` is a loopback address: the platform connects only to public addresses unless the operator allows loopback ones (SLIPWAY_OUTBOUND_ALLOW)"
        );
    }
}
