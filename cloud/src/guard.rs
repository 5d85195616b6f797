//! Names resolved when a driver connects, every answer held to a guard
//! (the API's outbound address policy): a name that passed when an
//! account was checked cannot later point a driver somewhere it may not go
//! (DNS rebinding), and neither can the service URLs a Keystone catalog
//! names. Addresses written as literals never reach a resolver; callers
//! check those up front.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// `Err(reason)` for an address the driver may not connect to.
pub type AddressGuard = Arc<dyn Fn(IpAddr) -> Result<(), String> + Send + Sync>;

pub(crate) struct GuardedResolver(pub AddressGuard);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for addr in &addrs {
                guard(addr.ip())
                    .map_err(|reason| format!("`{host}` resolves to {}: {reason}", addr.ip()))?;
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
