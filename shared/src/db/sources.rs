//! What a build needs besides a public git URL: an app's private-repository
//! credential and webhook secret (sealed with [`SecretBox`]), and uploaded
//! archives (content-addressed blobs named by versions). The API writes
//! them; the build worker reads them here.

use crate::archive::Format;
use crate::secrets::{SecretBox, SecretError};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("a sealed source secret cannot be opened: {0}")]
    Sealed(#[from] SecretError),
    #[error("stored source data is damaged: {0}")]
    Corrupt(String),
}

impl SourceError {
    /// A database hiccup may pass; a secret sealed under another key or a
    /// damaged blob will not.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SourceError::Database(e) if crate::db::is_transient(e))
    }
}

/// An app's private-repository credential, opened. Secrets stay wrapped so
/// they never print.
#[derive(Debug, Clone)]
pub enum StoredGitCredential {
    /// HTTP(S) basic auth: the token is the password. `username` is `None`
    /// when the user gave none (forges accept any non-empty name with a token).
    Token {
        username: Option<String>,
        token: SecretString,
    },
    /// An SSH deploy key (unencrypted, OpenSSH or PEM) and, if given, the
    /// `known_hosts` lines to check the server against.
    SshKey {
        private_key: SecretString,
        known_hosts: Option<String>,
    },
}

impl StoredGitCredential {
    pub fn kind(&self) -> &'static str {
        match self {
            StoredGitCredential::Token { .. } => "token",
            StoredGitCredential::SshKey { .. } => "ssh_key",
        }
    }
}

/// The sealed document: one JSON string, so kind and fields travel together.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Sealed {
    Token {
        username: Option<String>,
        token: String,
    },
    SshKey {
        private_key: String,
        known_hosts: Option<String>,
    },
}

/// Stores (or replaces) the app's credential, sealed.
pub async fn set_git_credential(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    app_id: Uuid,
    credential: &StoredGitCredential,
) -> sqlx::Result<()> {
    let document = match credential {
        StoredGitCredential::Token { username, token } => Sealed::Token {
            username: username.clone(),
            token: token.expose_secret().to_owned(),
        },
        StoredGitCredential::SshKey {
            private_key,
            known_hosts,
        } => Sealed::SshKey {
            private_key: private_key.expose_secret().to_owned(),
            known_hosts: known_hosts.clone(),
        },
    };
    let json = serde_json::to_string(&document).map_err(|e| sqlx::Error::Encode(e.into()))?;
    sqlx::query(
        "INSERT INTO app_git_credentials (app_id, kind, sealed) VALUES ($1, $2, $3)
         ON CONFLICT (app_id) DO UPDATE SET kind = EXCLUDED.kind, sealed = EXCLUDED.sealed, updated_at = now()",
    )
    .bind(app_id)
    .bind(credential.kind())
    .bind(secrets.seal(&json))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn clear_git_credential(conn: &mut PgConnection, app_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM app_git_credentials WHERE app_id = $1")
        .bind(app_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The app's credential, opened; `None` when it has none.
pub async fn git_credential<'e, E: PgExecutor<'e>>(
    executor: E,
    app_id: Uuid,
    secrets: &SecretBox,
) -> Result<Option<StoredGitCredential>, SourceError> {
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT sealed FROM app_git_credentials WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(executor)
            .await?;
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let opened = secrets.open(&sealed)?;
    let document: Sealed = serde_json::from_str(opened.expose_secret())
        .map_err(|_| SourceError::Corrupt("git credential".into()))?;
    Ok(Some(match document {
        Sealed::Token { username, token } => StoredGitCredential::Token {
            username,
            token: token.into(),
        },
        Sealed::SshKey {
            private_key,
            known_hosts,
        } => StoredGitCredential::SshKey {
            private_key: private_key.into(),
            known_hosts,
        },
    }))
}

/// The secret the app's push webhooks are verified with; `None` when unset.
pub async fn webhook_secret<'e, E: PgExecutor<'e>>(
    executor: E,
    app_id: Uuid,
    secrets: &SecretBox,
) -> Result<Option<SecretString>, SourceError> {
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT sealed FROM app_webhook_secrets WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(executor)
            .await?;
    Ok(sealed.map(|s| secrets.open(&s)).transpose()?)
}

/// An uploaded archive as the build worker unpacks it.
#[derive(Debug, Clone)]
pub struct StoredArchive {
    pub version_id: Uuid,
    pub app_id: Uuid,
    /// Lowercase hex SHA-256 of `bytes`, checked on read.
    pub sha256: String,
    pub format: Format,
    pub bytes: Vec<u8>,
}

/// The archive of a version, with its hash checked; `None` for no such version.
pub async fn archive<'e, E: PgExecutor<'e>>(
    executor: E,
    version_id: Uuid,
) -> Result<Option<StoredArchive>, SourceError> {
    let row: Option<(Uuid, String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT v.app_id, v.sha256, v.format, b.bytes FROM app_versions v
         JOIN source_blobs b ON b.sha256 = v.sha256 WHERE v.id = $1",
    )
    .bind(version_id)
    .fetch_optional(executor)
    .await?;
    let Some((app_id, sha256, format, bytes)) = row else {
        return Ok(None);
    };
    if hex::encode(Sha256::digest(&bytes)) != sha256 {
        return Err(SourceError::Corrupt(format!(
            "archive {sha256} does not match its hash"
        )));
    }
    let format = Format::parse(&format)
        .ok_or_else(|| SourceError::Corrupt(format!("unknown archive format {format}")))?;
    Ok(Some(StoredArchive {
        version_id,
        app_id,
        sha256,
        format,
        bytes,
    }))
}
