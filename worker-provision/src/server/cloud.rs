//! A server's cloud account as a driver: its sealed credentials opened
//! with the worker's key, its endpoint (or the provider's public one),
//! every name resolved held to the outbound address policy; and a
//! provider's failure as a job's (rate limits and outages retried, a
//! refusal in the provider's words).

use secrecy::ExposeSecret;
use slipway_cloud::account::{connect, StoredCredentials};
use slipway_cloud::driver::{CloudDriver, Polling, ProviderKind};
use slipway_cloud::guard::AddressGuard;
use slipway_cloud::http::RetryPolicy;
use slipway_cloud::CloudError;
use slipway_shared::config::ServerSettings;
use slipway_shared::db::servers::database;
use slipway_shared::egress::OutboundPolicy;
use slipway_shared::job::JobError;
use slipway_shared::secrets::SecretBox;
use sqlx::PgPool;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use uuid::Uuid;

/// The driver of account `account_id`.
pub async fn driver(
    pool: &PgPool,
    account_id: Uuid,
    secrets: Option<&SecretBox>,
    settings: &ServerSettings,
    policy: &Arc<OutboundPolicy>,
) -> Result<Box<dyn CloudDriver>, JobError> {
    let row: Option<(String, Option<String>, Vec<u8>)> = sqlx::query_as(
        "SELECT provider, endpoint, credentials_sealed FROM cloud_accounts WHERE id = $1",
    )
    .bind(account_id)
    .fetch_optional(pool)
    .await
    .map_err(database)?;
    let (provider, endpoint, sealed) = row.ok_or_else(|| {
        JobError::permanent("account_not_found", "the server's cloud account is gone")
    })?;
    let provider = ProviderKind::parse(&provider).ok_or_else(|| {
        JobError::permanent(
            "provider_not_supported",
            format!("unknown provider {provider}"),
        )
    })?;
    let secrets = secrets.ok_or_else(|| {
        JobError::permanent(
            "secret_key_missing",
            "this worker has no SLIPWAY_SECRET_KEY to open the account's credentials",
        )
    })?;
    let text = secrets
        .open(&sealed)
        .map_err(|e| JobError::permanent("secret_unreadable", format!("credentials: {e}")))?;
    let stored: StoredCredentials = serde_json::from_str(text.expose_secret())
        .map_err(|e| JobError::permanent("secret_unreadable", format!("credentials: {e}")))?;
    let endpoint = endpoint.unwrap_or_else(|| match provider {
        ProviderKind::OpenStack => settings.endpoints.openstack.clone(),
        _ => settings.endpoints.hetzner.clone(),
    });
    let policy = policy.clone();
    let guard: AddressGuard = Arc::new(move |ip: IpAddr| {
        policy
            .verdict(SocketAddr::new(ip, 0))
            .map_err(|refusal| format!("{refusal}, which the outbound policy refuses"))
    });
    let polling = Polling {
        interval: settings.poll_interval,
    };
    connect(
        provider,
        &endpoint,
        stored,
        Some(guard),
        RetryPolicy::default(),
        polling,
    )
    .map_err(failed)
}

/// A provider's failure as the job's: what may pass is retried, anything
/// else fails in the provider's words.
pub fn failed(error: CloudError) -> JobError {
    let message = error.to_string();
    match error {
        e if e.is_transient() => JobError::Retryable(message),
        CloudError::Timeout { .. } => JobError::permanent("provider_timeout", message),
        _ => JobError::permanent("provider_error", message),
    }
}
