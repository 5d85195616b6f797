//! What every handler shares.

use crate::log_stream::LogHub;
use slipway_shared::queue::topology::QueueNames;

#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::PgPool,
    pub names: QueueNames,
    pub admin_token_hash: Vec<u8>,
    pub amqp_url: secrecy::SecretString,
    pub logs: LogHub,
    /// Changes to installs (and their servers), for their streams.
    pub installs: LogHub,
    /// The dashboard event stream's shared poller.
    pub events: crate::events::EventHub,
    pub secrets: slipway_shared::secrets::SecretBox,
    pub archives: slipway_shared::config::ArchiveSettings,
    /// Which addresses a user's URL may point at.
    pub outbound: std::sync::Arc<slipway_shared::egress::OutboundPolicy>,
    /// Sessions, sign-in limits, links, mail, audit retention.
    pub accounts: std::sync::Arc<slipway_shared::config::AccountSettings>,
    /// Providers' default endpoints and the prices read live from them.
    pub cloud: CloudState,
}

#[derive(Clone)]
pub struct CloudState {
    pub endpoints: slipway_shared::config::CloudEndpoints,
    pub live_prices: slipway_cloud::catalog::hetzner_live::LiveCache,
}
