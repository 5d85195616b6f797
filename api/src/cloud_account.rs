//! A cloud account at the API's edge: the credentials each provider takes
//! (validated, then sealed as one JSON document and never shown again),
//! its endpoint held to the outbound address policy, the driver built from
//! both, and how a provider's refusal reads to the user.

use crate::error::ApiError;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use slipway_cloud::driver::{CloudDriver, Polling, ProviderKind};
use slipway_cloud::guard::AddressGuard;
use slipway_cloud::hetzner::Hetzner;
use slipway_cloud::http::RetryPolicy;
use slipway_cloud::openstack::{Credentials, OpenStack};
use slipway_cloud::CloudError;
use slipway_shared::config::CloudEndpoints;
use slipway_shared::egress::{url_endpoint, EgressError, OutboundPolicy};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use slipway_cloud::account::StoredCredentials;

/// The API's edge of [`StoredCredentials`]: checked into its errors,
/// sealed and opened with its key.
pub trait CredentialsAtEdge: Sized {
    /// The provider's credential document, checked for shape.
    fn parse(provider: ProviderKind, input: Value) -> Result<Self, ApiError>;
    fn seal(&self, secrets: &slipway_shared::secrets::SecretBox) -> Vec<u8>;
    fn open(secrets: &slipway_shared::secrets::SecretBox, sealed: &[u8]) -> anyhow::Result<Self>;
}

impl CredentialsAtEdge for StoredCredentials {
    fn parse(provider: ProviderKind, input: Value) -> Result<Self, ApiError> {
        StoredCredentials::parse_input(provider, input).map_err(|e| ApiError::Invalid {
            code: e.code,
            message: e.message,
        })
    }

    fn seal(&self, secrets: &slipway_shared::secrets::SecretBox) -> Vec<u8> {
        secrets.seal(&serde_json::to_string(self).expect("credentials serialize"))
    }

    fn open(secrets: &slipway_shared::secrets::SecretBox, sealed: &[u8]) -> anyhow::Result<Self> {
        let text: SecretString = secrets.open(sealed)?;
        Ok(serde_json::from_str(text.expose_secret())?)
    }
}

const RESOLVE_LIMIT: Duration = Duration::from_secs(5);
const HTTP_PORTS: &[(&str, u16)] = &[("https", 443), ("http", 80)];

/// An endpoint (`https://…`) the platform may connect to now; `what` names
/// it in the error.
pub async fn check_endpoint(
    policy: &OutboundPolicy,
    url: &str,
    what: &str,
) -> Result<(), ApiError> {
    let refused = |code: &'static str, message: String| ApiError::Invalid {
        code,
        message: format!("{what}: {message}"),
    };
    let endpoint = url_endpoint(url, HTTP_PORTS)
        .ok_or_else(|| refused("invalid_endpoint", format!("`{url}` is not an http(s) URL")))?
        .map_err(|e| refused("invalid_endpoint", e))?;
    match tokio::time::timeout(RESOLVE_LIMIT, policy.resolve(&endpoint)).await {
        Err(_) => Err(refused(
            "host_unresolvable",
            format!("`{}` did not resolve within 5 s", endpoint.host),
        )),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e @ (EgressError::NotAllowed { .. } | EgressError::Unresolvable { .. }))) => {
            Err(refused(e.code(), e.to_string()))
        }
    }
}

/// The endpoint a driver talks to: the account's, else the provider's
/// public one (as configured).
pub fn endpoint_of(
    defaults: &CloudEndpoints,
    provider: ProviderKind,
    endpoint: Option<&str>,
) -> String {
    match (provider, endpoint) {
        (_, Some(url)) => url.to_owned(),
        (ProviderKind::OpenStack, None) => defaults.openstack.clone(),
        _ => defaults.hetzner.clone(),
    }
}

/// An API request waits for a provider a few seconds, not minutes.
fn patient_enough() -> RetryPolicy {
    RetryPolicy {
        retries: 1,
        min_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
        max_wait: Duration::from_secs(3),
    }
}

pub enum Driver {
    Hetzner(Hetzner),
    OpenStack(OpenStack),
}

impl Driver {
    /// The driver of a stored account (its provider, endpoint or the
    /// provider's public one, sealed credentials): the endpoint checked
    /// against the outbound policy, the credentials opened.
    pub async fn of_account(
        state: &crate::state::AppState,
        provider: &str,
        endpoint: Option<&str>,
        sealed: &[u8],
    ) -> Result<Driver, ApiError> {
        let provider = ProviderKind::parse(provider)
            .ok_or_else(|| anyhow::anyhow!("an account of unknown provider {provider}"))?;
        let endpoint = endpoint_of(&state.cloud.endpoints, provider, endpoint);
        check_endpoint(&state.outbound, &endpoint, "the account's endpoint").await?;
        let stored = StoredCredentials::open(&state.secrets, sealed)?;
        Driver::build(provider, &endpoint, stored, &state.outbound)
    }

    /// The driver for an account; every name it resolves is held to
    /// `policy` when it connects.
    pub fn build(
        provider: ProviderKind,
        endpoint: &str,
        stored: StoredCredentials,
        policy: &Arc<OutboundPolicy>,
    ) -> Result<Driver, ApiError> {
        let policy = policy.clone();
        // Port 0: the resolver sees no port; the endpoint's own port was
        // checked (platform services included) before the driver was built.
        let guard: AddressGuard = Arc::new(move |ip: IpAddr| {
            policy
                .verdict(SocketAddr::new(ip, 0))
                .map_err(|refusal| format!("{refusal}, which the outbound policy refuses"))
        });
        let built = match (provider, stored) {
            (ProviderKind::Hetzner, StoredCredentials::Token { token }) => Hetzner::new(
                Some(endpoint),
                token.into(),
                patient_enough(),
                Polling::default(),
            )
            .and_then(|d| d.with_guard(guard))
            .map(Driver::Hetzner),
            (
                ProviderKind::OpenStack,
                StoredCredentials::Password {
                    username,
                    password,
                    project_id,
                    user_domain,
                    region,
                },
            ) => OpenStack::new(
                endpoint,
                Credentials::Password {
                    username,
                    password: password.into(),
                    user_domain,
                    project_id,
                },
                &region,
                patient_enough(),
                Polling::default(),
            )
            .and_then(|d| d.with_guard(guard.clone()))
            .map(Driver::OpenStack),
            (
                ProviderKind::OpenStack,
                StoredCredentials::ApplicationCredential {
                    application_credential_id,
                    application_credential_secret,
                    region,
                },
            ) => OpenStack::new(
                endpoint,
                Credentials::ApplicationCredential {
                    id: application_credential_id,
                    secret: application_credential_secret.into(),
                },
                &region,
                patient_enough(),
                Polling::default(),
            )
            .and_then(|d| d.with_guard(guard.clone()))
            .map(Driver::OpenStack),
            (provider, stored) => {
                return Err(
                    anyhow::anyhow!("{} credentials stored for {provider}", stored.kind()).into(),
                )
            }
        };
        built.map_err(provider_failed)
    }

    pub fn driver(&self) -> &dyn CloudDriver {
        match self {
            Driver::Hetzner(d) => d,
            Driver::OpenStack(d) => d,
        }
    }

    /// The cheap authenticated read; for OpenStack the catalog's service
    /// URLs are held to the policy first, since Keystone names them.
    pub async fn check(&self, policy: &OutboundPolicy) -> Result<(), ApiError> {
        if let Driver::OpenStack(openstack) = self {
            let urls = openstack.service_urls().await.map_err(provider_failed)?;
            for url in urls {
                check_endpoint(policy, &url, "a service in the OpenStack catalog").await?;
            }
        }
        self.driver()
            .check_credentials()
            .await
            .map_err(provider_failed)
    }
}

/// A provider's answer as the API's: a refusal of the credentials is the
/// user's `422 invalid_credentials`, an endpoint that cannot be reached is
/// `422 provider_unreachable` (most often a wrong endpoint, and an account
/// that cannot be checked is not made); anything else is the provider's
/// trouble (`502 provider_error`), in its words.
pub fn provider_failed(error: CloudError) -> ApiError {
    let message = error.to_string();
    match error {
        e if e.is_auth() => ApiError::Invalid {
            code: "invalid_credentials",
            message: format!("the provider refused the credentials: {message}"),
        },
        CloudError::Transport { .. } | CloudError::Timeout { .. } => ApiError::Invalid {
            code: "provider_unreachable",
            message,
        },
        _ => ApiError::refused(StatusCode::BAD_GATEWAY, "provider_error", message),
    }
}
