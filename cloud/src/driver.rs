//! The one trait every provider driver implements, and the vocabulary it
//! speaks: what a server request holds, what a server, key pair and
//! firewall look like once the provider has them, and how a call fails.
//! The server, install and orphan work builds on this trait only, so a
//! new provider is a new implementation, never a new code path.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub use crate::error::CloudError;

/// Key/value labels (Hetzner labels, OpenStack metadata): how Slipway
/// recognises what it made.
pub type Labels = BTreeMap<String, String>;

/// The providers of the catalog; drivers exist for some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    Hetzner,
    Scaleway,
    OpenStack,
    Exoscale,
    Contabo,
    Lightsail,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Hetzner,
        ProviderKind::Scaleway,
        ProviderKind::OpenStack,
        ProviderKind::Exoscale,
        ProviderKind::Contabo,
        ProviderKind::Lightsail,
    ];

    /// The id in URLs and bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Hetzner => "hetzner",
            ProviderKind::Scaleway => "scaleway",
            ProviderKind::OpenStack => "openstack",
            ProviderKind::Exoscale => "exoscale",
            ProviderKind::Contabo => "contabo",
            ProviderKind::Lightsail => "lightsail",
        }
    }

    pub fn parse(text: &str) -> Option<ProviderKind> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// The name people know it by (error messages quote the provider).
    pub fn display_name(self) -> &'static str {
        match self {
            ProviderKind::Hetzner => "Hetzner Cloud",
            ProviderKind::Scaleway => "Scaleway",
            ProviderKind::OpenStack => "OpenStack (OVHcloud Public Cloud)",
            ProviderKind::Exoscale => "Exoscale",
            ProviderKind::Contabo => "Contabo",
            ProviderKind::Lightsail => "AWS Lightsail",
        }
    }

    /// Whether Slipway can create servers there yet.
    pub fn has_driver(self) -> bool {
        matches!(self, ProviderKind::Hetzner | ProviderKind::OpenStack)
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A server to create. `size`, `region` and `image` are the provider's
/// names (Hetzner server type, location, image; OpenStack flavor, region
/// of the catalog, image name or id).
#[derive(Debug, Clone)]
pub struct ServerRequest {
    pub name: String,
    pub region: String,
    pub size: String,
    pub image: String,
    /// The key pair's provider id (Hetzner) or name (OpenStack), as
    /// [`KeyPair::id`] gives it.
    pub ssh_key: String,
    /// cloud-init user data, plain text (drivers encode it as the API wants).
    pub user_data: String,
    /// [`Firewall::id`] of a firewall to attach.
    pub firewall: Option<String>,
    pub labels: Labels,
}

/// Where a server is in its life, mapped from the provider's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerStatus {
    /// Being made or booting (Hetzner `initializing`/`starting`, Nova `BUILD`).
    Creating,
    Running,
    /// Powered off or shut down.
    Off,
    Deleting,
    /// The provider gave up on it (Nova `ERROR`).
    Error,
    /// A state this driver does not map (rebuilding, migrating, …).
    Other,
}

/// A server as the provider reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub status: ServerStatus,
    /// The provider's own status word, for logs and errors.
    pub provider_status: String,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub labels: Labels,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// What a [`ServerRequest::ssh_key`] names and a delete takes.
    pub id: String,
    pub name: String,
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewall {
    pub id: String,
    pub name: String,
}

/// Where a server image (a snapshot of a set-up server's disk) is, mapped
/// from the provider's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStatus {
    /// Being saved (Hetzner `creating`, Glance `queued`/`saving`).
    Creating,
    /// Servers can be created from it.
    Available,
    /// The provider gave up on it (Glance `killed`).
    Error,
    /// A state this driver does not map (Hetzner `unavailable`, …).
    Other,
}

/// A server image as the provider reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// What a [`ServerRequest::image`] names to create a server from it.
    pub id: String,
    pub name: String,
    pub status: ImageStatus,
    /// The provider's own status word, for logs and errors.
    pub provider_status: String,
    /// What the provider stores (and bills), once it knows.
    pub size_gb: Option<f64>,
    pub labels: Labels,
}

/// One inbound rule: a TCP port open to every address (IPv4 and IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundTcp(pub u16);

/// How often and how long a driver polls an asynchronous operation.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    pub interval: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling {
            interval: Duration::from_secs(2),
        }
    }
}

/// A provider's servers, keys and firewalls. Deletes of what is already
/// gone succeed (a destroy that is retried must not fail on its own
/// earlier success).
#[async_trait]
pub trait CloudDriver: Send + Sync {
    fn provider(&self) -> ProviderKind;

    /// A cheap authenticated read: `Err(CloudError::Api{status: 401|403})`
    /// when the provider refuses the credentials.
    async fn check_credentials(&self) -> Result<(), CloudError>;

    async fn create_key(
        &self,
        name: &str,
        public_key: &str,
        labels: &Labels,
    ) -> Result<KeyPair, CloudError>;
    async fn delete_key(&self, id: &str) -> Result<(), CloudError>;
    /// Every key pair whose name starts with `prefix`, across all pages
    /// (key pairs take no labels everywhere: their names carry Slipway's id).
    async fn list_keys(&self, prefix: &str) -> Result<Vec<KeyPair>, CloudError>;

    async fn create_firewall(
        &self,
        name: &str,
        rules: &[InboundTcp],
        labels: &Labels,
    ) -> Result<Firewall, CloudError>;
    async fn delete_firewall(&self, id: &str) -> Result<(), CloudError>;
    /// Every firewall whose name starts with `prefix`, across all pages.
    async fn list_firewalls(&self, prefix: &str) -> Result<Vec<Firewall>, CloudError>;

    /// Asks for the server and returns as soon as the provider has given it
    /// an id (record it before waiting: [`CloudDriver::wait_running`]).
    async fn create_server(&self, request: &ServerRequest) -> Result<Server, CloudError>;
    /// `None` when the provider has no such server.
    async fn get_server(&self, id: &str) -> Result<Option<Server>, CloudError>;
    /// Every server carrying all of `labels`, across all pages.
    async fn list_servers(&self, labels: &Labels) -> Result<Vec<Server>, CloudError>;
    /// Deletes and waits until the provider has finished (or the server
    /// was already gone).
    async fn delete_server(&self, id: &str, limit: Duration) -> Result<(), CloudError>;

    /// Waits for the provider's asynchronous work on a new server (Hetzner
    /// actions, Nova's `BUILD`) to end, then for it to run; fails with the
    /// provider's words if it errs, or [`CloudError::Timeout`] after `limit`.
    async fn wait_running(&self, id: &str, limit: Duration) -> Result<Server, CloudError>;

    /// Saves the disk of server `server_id` as an image and returns as soon
    /// as the provider has given it an id (record it before waiting:
    /// [`CloudDriver::wait_image`]). `name` carries Slipway's id where the
    /// provider keeps no labels on images.
    async fn create_image(
        &self,
        server_id: &str,
        name: &str,
        labels: &Labels,
    ) -> Result<Image, CloudError>;
    /// `None` when the provider has no such image (or it was deleted).
    async fn get_image(&self, id: &str) -> Result<Option<Image>, CloudError>;
    /// Every image of the account carrying all of `labels`, across all pages.
    async fn list_images(&self, labels: &Labels) -> Result<Vec<Image>, CloudError>;
    /// Deletes it; an image already gone counts as deleted.
    async fn delete_image(&self, id: &str) -> Result<(), CloudError>;
    /// Waits until the image is available; fails with the provider's words
    /// if it errs or disappears, or [`CloudError::Timeout`] after `limit`.
    async fn wait_image(&self, id: &str, limit: Duration) -> Result<Image, CloudError>;
}

/// Polls `get` until the image is available: the image wait of drivers
/// whose image status is the whole story.
pub(crate) async fn poll_image<F, Fut>(
    provider: ProviderKind,
    id: &str,
    limit: Duration,
    interval: Duration,
    get: F,
) -> Result<Image, CloudError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Image>, CloudError>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let image = get().await?.ok_or_else(|| CloudError::Failed {
            provider,
            what: "save the server image".into(),
            message: format!("image {id} disappeared while it was being saved"),
        })?;
        match image.status {
            ImageStatus::Available => return Ok(image),
            ImageStatus::Error => {
                return Err(CloudError::Failed {
                    provider,
                    what: "save the server image".into(),
                    message: format!("image {id} is `{}`", image.provider_status),
                })
            }
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(CloudError::Timeout {
                    provider,
                    what: format!("saving image {id} (still `{}`)", image.provider_status),
                    limit,
                })
            }
            _ => tokio::time::sleep(interval).await,
        }
    }
}

/// Whether every label of `wanted` is on `labels` (client-side selection,
/// for APIs without a label filter).
pub fn has_labels(labels: &Labels, wanted: &Labels) -> bool {
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A delete of what is already gone has done its job.
pub(crate) fn gone_is_done(
    result: Result<serde_json::Value, CloudError>,
) -> Result<(), CloudError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other.map(drop),
    }
}
