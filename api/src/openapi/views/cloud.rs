//! Shapes of the cloud answers: accounts, caps, catalogs and estimates.

use super::*;

/// Credentials are never shown: only that they are set and their kind.
#[derive(ToSchema)]
pub struct CredentialsSet {
    /// `token`, `password` or `application_credential`.
    pub kind: String,
    pub set: bool,
}

/// A cloud account.
#[derive(ToSchema)]
pub struct CloudAccount {
    pub id: Uuid,
    pub provider: String,
    pub name: String,
    /// The account's own endpoint; `null`: the provider's public one.
    pub endpoint: Option<String>,
    /// OpenStack: the region its servers are made in.
    pub region: Option<String>,
    pub credentials: CredentialsSet,
    /// Whether it saves and uses server images.
    pub server_images: bool,
    pub created_at: String,
}

/// A server image: a snapshot, at the provider, of a server Slipway had
/// just set up, that later servers of its kind are created from.
#[derive(ToSchema)]
pub struct ServerImage {
    pub id: Uuid,
    pub account: String,
    pub region: String,
    pub size: String,
    /// The provider image its source server was created from.
    pub base_image: String,
    /// `saving`, `available`, `failed` or `deleted`.
    #[schema(example = "available")]
    pub state: String,
    pub provider_id: Option<String>,
    pub source_server_id: Option<Uuid>,
    pub size_gb: Option<f64>,
    /// What storing it costs a month (net of VAT), once its size is known.
    pub monthly_cost_eur: Option<f64>,
    pub error: Option<String>,
    pub created_at: String,
}

/// A project's caps on cloud servers; `null`: no cap.
#[derive(ToSchema)]
pub struct CloudCaps {
    pub max_servers: Option<u32>,
    pub max_monthly_eur: Option<f64>,
}

#[derive(ToSchema)]
pub struct CatalogRegion {
    pub id: String,
    pub name: String,
    pub country: String,
}

#[derive(ToSchema)]
pub struct CatalogPrice {
    pub region: String,
    pub monthly_eur: f64,
    /// `null` where the provider bills by the month only.
    pub hourly_eur: Option<f64>,
}

#[derive(ToSchema)]
pub struct CatalogSize {
    pub id: String,
    pub vcpus: u32,
    pub memory_gb: f64,
    pub disk_gb: u32,
    /// `x86` or `arm`.
    pub architecture: String,
    /// One per region it is sold in.
    pub prices: Vec<CatalogPrice>,
}

/// Dollar prices converted at `rate` EUR per USD, as of `date`.
#[derive(ToSchema)]
pub struct CatalogExchange {
    pub from: String,
    pub rate: f64,
    pub date: String,
    pub source: String,
}

/// What a provider sells and for how much.
#[derive(ToSchema)]
pub struct ProviderCatalog {
    pub provider: String,
    pub name: String,
    /// Whether Slipway can create servers there yet.
    pub driver: bool,
    /// `live` (the provider's API) or `table` (dated, in the repository).
    pub origin: String,
    pub source: String,
    pub as_of: String,
    /// `net` (before VAT) or `gross`.
    pub vat: String,
    pub exchange: Option<CatalogExchange>,
    pub default_image: String,
    pub regions: Vec<CatalogRegion>,
    pub sizes: Vec<CatalogSize>,
    /// `{"kind": "included"}` or `{"kind": "charged", "monthly_eur": {region: EUR}}`.
    #[schema(value_type = Object)]
    pub ipv4: Value,
    /// `{"kind": "percent", "hundredths": 2000}` or `{"kind": "not_offered"}`.
    #[schema(value_type = Object)]
    pub backups: Value,
    pub notes: Vec<String>,
}

#[derive(ToSchema)]
pub struct EstimateLine {
    /// `server`, `ipv4` or `backups`.
    pub item: String,
    pub description: String,
    pub monthly_eur: f64,
}

/// A server's monthly cost, line by line.
#[derive(ToSchema)]
pub struct Estimate {
    pub provider: String,
    pub region: String,
    pub size: String,
    pub currency: String,
    pub vat: String,
    pub items: Vec<EstimateLine>,
    pub monthly_total_eur: f64,
    pub server_hourly_eur: Option<f64>,
    pub source: String,
    pub as_of: String,
    pub exchange: Option<CatalogExchange>,
}

/// One of a server's operations (a deployment of kind `server_create` or
/// `server_destroy`): its timeline and logs are the deployment's.
#[derive(ToSchema)]
pub struct ServerOperation {
    pub id: Uuid,
    #[schema(example = "server_create")]
    pub kind: String,
    #[schema(example = "provisioning")]
    pub state: String,
    #[schema(example = "/v1/deployments/01890a5d-ac96-774b-bcce-b302099a8057")]
    pub url: String,
}

/// A server bought from a cloud account.
#[derive(ToSchema)]
pub struct Server {
    pub id: Uuid,
    pub name: String,
    /// The account's id.
    pub account: Uuid,
    pub provider: String,
    pub region: String,
    pub size: String,
    pub image: String,
    /// The server image it was created from (`/v1/server-images`), if it was.
    pub server_image: Option<Uuid>,
    pub environment: Option<String>,
    /// `pending`, `provisioning`, `configuring`, `ready`, `failed`,
    /// `destroying` or `destroyed`.
    #[schema(example = "ready")]
    pub state: String,
    /// The provider's id, once it has given one.
    pub provider_id: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    /// What it cost a month at its creation (server and IPv4).
    pub monthly_cost_eur: f64,
    /// The ssh target it became (its name), once registered.
    pub target: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    pub created_at: String,
    pub destroyed_at: Option<String>,
    /// Its create and destroy, oldest first.
    pub operations: Vec<ServerOperation>,
}

/// A resource at the provider that Slipway labelled or named as its own
/// and that no server of the project owns.
#[derive(ToSchema)]
pub struct Orphan {
    /// `server`, `firewall`, `key_pair` or `image`.
    #[schema(example = "server")]
    pub kind: String,
    pub provider_id: String,
    pub name: String,
    /// The Slipway server it was made for, as its label or name says.
    pub server_id: Option<String>,
}
