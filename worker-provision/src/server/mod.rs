//! Servers bought from cloud accounts: the create (`server_create.v1`) and
//! the destroy (`server_destroy.v1`) jobs, and what they share: the
//! account's driver, the keys and user data, what Slipway made at the
//! provider, and the server's target.

mod cloud;
pub mod create;
pub mod destroy;
mod image;
mod keys;
mod resources;
mod target;

use secrecy::SecretString;
use slipway_shared::config::ServerSettings;
use slipway_shared::db::servers::ServerRow;
use slipway_shared::egress::OutboundPolicy;
use slipway_shared::job::JobError;
use slipway_shared::secrets::SecretBox;
use std::sync::Arc;

/// What both server jobs run with.
pub struct Servers {
    pub secrets: Option<SecretBox>,
    pub settings: ServerSettings,
    pub policy: Arc<OutboundPolicy>,
}

impl Servers {
    fn secrets(&self) -> Result<&SecretBox, JobError> {
        self.secrets.as_ref().ok_or_else(|| {
            JobError::permanent(
                "secret_key_missing",
                "this worker has no SLIPWAY_SECRET_KEY to seal the server's keys",
            )
        })
    }

    /// The server's host key and Slipway's client key, opened.
    fn open_keys(&self, server: &ServerRow) -> Result<(String, SecretString), JobError> {
        use secrecy::ExposeSecret;
        let secrets = self.secrets()?;
        let open = |sealed: &Option<Vec<u8>>| {
            let sealed = sealed.as_deref().ok_or_else(|| {
                JobError::permanent("server_invalid", "the server's keys were not made")
            })?;
            secrets
                .open(sealed)
                .map_err(|e| JobError::permanent("secret_unreadable", format!("server key: {e}")))
        };
        let host = open(&server.host_key_sealed)?.expose_secret().to_owned();
        Ok((host, open(&server.client_key_sealed)?))
    }
}
