//! Keystone v3: a token (`POST /v3/auth/tokens`, the token in the
//! `X-Subject-Token` header) for a password scoped to a project or for an
//! application credential (scoped by its own making), kept until shortly
//! before its `expires_at`; and the service catalog that came with it,
//! where Nova, Neutron and Glance are found by type, region and interface.

use crate::driver::ProviderKind;
use crate::error::CloudError;
use crate::http::Http;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

const PROVIDER: ProviderKind = ProviderKind::OpenStack;

/// How the account logs in.
#[derive(Clone)]
pub enum Credentials {
    Password {
        username: String,
        password: SecretString,
        /// The user's domain name (`Default` on OVHcloud).
        user_domain: String,
        project_id: String,
    },
    ApplicationCredential {
        id: String,
        secret: SecretString,
    },
}

impl Credentials {
    fn body(&self) -> Value {
        match self {
            Credentials::Password {
                username,
                password,
                user_domain,
                project_id,
            } => json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": username, "domain": {"name": user_domain},
                    "password": password.expose_secret()}}},
                "scope": {"project": {"id": project_id}}}}),
            Credentials::ApplicationCredential { id, secret } => json!({"auth": {
                "identity": {"methods": ["application_credential"],
                    "application_credential": {"id": id, "secret": secret.expose_secret()}}}}),
        }
    }
}

/// A token and its catalog.
#[derive(Clone)]
pub struct Session {
    pub token: SecretString,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    catalog: Value,
}

impl Session {
    /// Still good for a minute's work.
    pub fn fresh(&self) -> bool {
        self.expires_at
            .is_none_or(|at| at - chrono::Duration::seconds(60) > chrono::Utc::now())
    }

    /// The `public` URL of the service of `kind` (`compute`, `network`,
    /// `image`) in `region`.
    pub fn endpoint(&self, kind: &str, region: &str) -> Result<String, CloudError> {
        let services = self.catalog.as_array().into_iter().flatten();
        let url = services
            .filter(|s| s["type"] == kind)
            .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
            .find(|e| {
                e["interface"] == "public" && (e["region_id"] == region || e["region"] == region)
            })
            .and_then(|e| e["url"].as_str());
        url.map(|u| u.trim_end_matches('/').to_owned())
            .ok_or_else(|| CloudError::Failed {
                provider: PROVIDER,
                what: format!("find the {kind} service"),
                message: format!("the catalog has no public {kind} endpoint in region `{region}`"),
            })
    }
}

/// Logs in at `auth_url` (the Keystone v3 base, `…/v3`).
pub async fn authenticate(
    http: &Http,
    auth_url: &str,
    credentials: &Credentials,
) -> Result<Session, CloudError> {
    let url = format!("{}/auth/tokens", auth_url.trim_end_matches('/'));
    let body = credentials.body();
    let (headers, answer) = http.send(|client| client.post(&url).json(&body)).await?;
    let token = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| CloudError::Decode {
            provider: PROVIDER,
            detail: "Keystone answered without an X-Subject-Token".into(),
        })?;
    Ok(Session {
        token: token.to_owned().into(),
        expires_at: answer["token"]["expires_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc()),
        catalog: answer["token"]["catalog"].clone(),
    })
}
