//! A cloud account's credentials as they are sealed (one JSON document per
//! account, tagged by kind) and the driver made from them. The API checks
//! their shape and seals them; the provision worker opens them and
//! connects, so both read one format.

use crate::driver::{CloudDriver, Polling, ProviderKind};
use crate::guard::AddressGuard;
use crate::hetzner::Hetzner;
use crate::http::RetryPolicy;
use crate::openstack::{Credentials, OpenStack};
use crate::CloudError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What is sealed: the secret and what goes with it.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoredCredentials {
    /// Hetzner Cloud: a project's API token.
    Token { token: String },
    /// OpenStack: a user scoped to a project, in a region.
    Password {
        username: String,
        password: String,
        project_id: String,
        #[serde(default = "default_domain")]
        user_domain: String,
        region: String,
    },
    /// OpenStack: an application credential, in a region.
    ApplicationCredential {
        application_credential_id: String,
        application_credential_secret: String,
        region: String,
    },
}

fn default_domain() -> String {
    "Default".into()
}

/// Credentials that do not fit the provider: a stable code and a message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BadCredentials {
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> BadCredentials {
    BadCredentials {
        code: "invalid_credentials_shape",
        message: format!("credentials: {}", message.into()),
    }
}

impl StoredCredentials {
    /// The provider's credential document, checked for shape.
    pub fn parse_input(
        provider: ProviderKind,
        input: Value,
    ) -> Result<StoredCredentials, BadCredentials> {
        let shape = match provider {
            ProviderKind::Hetzner => "{\"token\"}",
            ProviderKind::OpenStack => "{\"region\", \"username\", \"password\", \"project_id\", \"user_domain\"?} or {\"region\", \"application_credential_id\", \"application_credential_secret\"}",
            other => {
                return Err(BadCredentials {
                    code: "provider_not_supported",
                    message: format!("Slipway has no driver for {} yet, so an account there cannot be checked or used", other.display_name()),
                })
            }
        };
        let mut tagged = input;
        let kind = match (provider, tagged.get("token"), tagged.get("password")) {
            (ProviderKind::Hetzner, _, _) => "token",
            (_, _, Some(_)) => "password",
            _ => "application_credential",
        };
        let Some(fields) = tagged.as_object_mut() else {
            return Err(invalid(format!("must be an object {shape}")));
        };
        if fields.contains_key("kind") {
            return Err(invalid(format!("unknown field `kind`; give {shape}")));
        }
        fields.insert("kind".into(), kind.into());
        let stored: StoredCredentials =
            serde_json::from_value(tagged).map_err(|e| invalid(format!("{e}; give {shape}")))?;
        for (name, value) in stored.fields() {
            if value.is_empty() || value.len() > 4096 || value.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "{name} must be 1 to 4096 characters without control characters"
                )));
            }
        }
        Ok(stored)
    }

    fn fields(&self) -> Vec<(&'static str, &str)> {
        match self {
            StoredCredentials::Token { token } => vec![("token", token)],
            StoredCredentials::Password {
                username,
                password,
                project_id,
                user_domain,
                region,
            } => vec![
                ("username", username),
                ("password", password),
                ("project_id", project_id),
                ("user_domain", user_domain),
                ("region", region),
            ],
            StoredCredentials::ApplicationCredential {
                application_credential_id,
                application_credential_secret,
                region,
            } => vec![
                ("application_credential_id", application_credential_id),
                (
                    "application_credential_secret",
                    application_credential_secret,
                ),
                ("region", region),
            ],
        }
    }

    /// The kind, which is all the API ever shows.
    pub fn kind(&self) -> &'static str {
        match self {
            StoredCredentials::Token { .. } => "token",
            StoredCredentials::Password { .. } => "password",
            StoredCredentials::ApplicationCredential { .. } => "application_credential",
        }
    }

    pub fn region(&self) -> Option<&str> {
        match self {
            StoredCredentials::Token { .. } => None,
            StoredCredentials::Password { region, .. }
            | StoredCredentials::ApplicationCredential { region, .. } => Some(region),
        }
    }
}

/// The driver for an account at `endpoint`; with a `guard`, every name it
/// resolves is held to it when it connects.
pub fn connect(
    provider: ProviderKind,
    endpoint: &str,
    stored: StoredCredentials,
    guard: Option<AddressGuard>,
    retry: RetryPolicy,
    polling: Polling,
) -> Result<Box<dyn CloudDriver>, CloudError> {
    let openstack = |credentials, region: &str| {
        let driver = OpenStack::new(endpoint, credentials, region, retry, polling)?;
        match guard.clone() {
            Some(guard) => driver.with_guard(guard),
            None => Ok(driver),
        }
    };
    Ok(match (provider, stored) {
        (ProviderKind::Hetzner, StoredCredentials::Token { token }) => {
            let driver = Hetzner::new(Some(endpoint), token.into(), retry, polling)?;
            Box::new(match guard.clone() {
                Some(guard) => driver.with_guard(guard)?,
                None => driver,
            })
        }
        (
            ProviderKind::OpenStack,
            StoredCredentials::Password {
                username,
                password,
                project_id,
                user_domain,
                region,
            },
        ) => Box::new(openstack(
            Credentials::Password {
                username,
                password: password.into(),
                user_domain,
                project_id,
            },
            &region,
        )?),
        (
            ProviderKind::OpenStack,
            StoredCredentials::ApplicationCredential {
                application_credential_id,
                application_credential_secret,
                region,
            },
        ) => Box::new(openstack(
            Credentials::ApplicationCredential {
                id: application_credential_id,
                secret: application_credential_secret.into(),
            },
            &region,
        )?),
        (provider, stored) => {
            return Err(CloudError::Decode {
                provider,
                detail: format!("{} credentials stored for {provider}", stored.kind()),
            })
        }
    })
}
