//! Schemas of what the app routes answer: apps, their status, add-ons,
//! versions and webhooks.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// An app: its source, settings, env (secret values masked), domains and
/// status.
#[derive(ToSchema)]
pub struct App {
    pub id: Uuid,
    #[schema(example = "web")]
    pub name: String,
    pub git_url: Option<String>,
    pub git_ref: Option<String>,
    #[schema(value_type = Object)]
    pub build: Value,
    #[schema(value_type = Object)]
    pub runtime: Value,
    /// The target's name; `null` is the local target.
    pub target: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub env: BTreeMap<String, Option<String>>,
    /// Secret env vars: names only, each value shown as `********`.
    pub secrets: BTreeMap<String, String>,
    /// The private-repository credential's kind; `null` for none.
    pub git_credential: Option<GitCredentialView>,
    pub webhook: WebhookView,
    pub domains: Vec<String>,
    /// The release serving the app; `null` when none is live.
    pub live: Option<LiveRelease>,
    pub status: AppStatus,
}

#[derive(ToSchema)]
pub struct GitCredentialView {
    /// `token` or `ssh_key`.
    pub kind: String,
    pub set: bool,
}

#[derive(ToSchema)]
pub struct WebhookView {
    pub secret_set: bool,
}

#[derive(ToSchema)]
pub struct LiveRelease {
    pub release: Uuid,
    pub deployment: Uuid,
    pub image_ref: String,
    pub url: Option<String>,
    pub https_url: Option<String>,
    pub live_at: Option<DateTime<Utc>>,
}

/// The app's status as the workers last recorded it.
#[derive(ToSchema)]
pub struct AppStatus {
    pub state: AppState,
    pub release: Option<StatusRelease>,
    pub url: Option<String>,
    pub https_url: Option<String>,
    /// The last health check of the current release.
    pub health: Option<Health>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum AppState {
    Running,
    Stopped,
    NotDeployed,
    Destroying,
}

#[derive(ToSchema)]
pub struct StatusRelease {
    pub id: Uuid,
    pub deployment: Uuid,
    pub image_ref: String,
    /// `live` or `paused`.
    pub state: String,
    pub live_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
pub struct Health {
    pub ok: Option<bool>,
    pub detail: Option<String>,
    pub checked_at: DateTime<Utc>,
}

/// An uploaded source archive.
#[derive(ToSchema)]
pub struct Version {
    pub id: Uuid,
    pub sha256: String,
    /// `tar.gz` or `zip`.
    pub format: String,
    pub size: i64,
    pub entries: i64,
    pub files: i64,
    pub unpacked_bytes: i64,
    pub created_at: DateTime<Utc>,
    /// Where the original bytes are downloaded.
    pub archive_url: String,
}

/// An add-on; a postgres one carries `postgres` (password masked), a
/// volume one `volume`.
#[derive(ToSchema)]
pub struct Addon {
    pub id: Uuid,
    /// `postgres` or `volume`.
    pub kind: String,
    pub name: String,
    /// `pending`, `ready`, `purging`; `detached` in a detach's answer.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub postgres: Option<PostgresAddon>,
    pub volume: Option<VolumeAddon>,
}

#[derive(ToSchema)]
pub struct PostgresAddon {
    pub database: Option<String>,
    pub role: Option<String>,
    #[schema(example = "********")]
    pub password: String,
    #[schema(example = "DATABASE_URL")]
    pub env: String,
}

#[derive(ToSchema)]
pub struct VolumeAddon {
    pub name: Option<String>,
    pub mount: Option<String>,
}

/// The app's new webhook secret (shown once) and its hook URL per provider.
#[derive(ToSchema)]
pub struct WebhookSecret {
    pub secret: String,
    pub urls: WebhookUrls,
}

#[derive(ToSchema)]
pub struct WebhookUrls {
    pub github: String,
    pub gitlab: String,
    pub gitea: String,
}

/// A push that deployed (202) or a delivery that did not (200, `reason`).
#[derive(ToSchema)]
pub struct HookOutcome {
    pub deployed: bool,
    pub reason: Option<String>,
    pub id: Option<Uuid>,
    pub state: Option<String>,
    pub url: Option<String>,
    pub commit: Option<String>,
    pub branch: Option<String>,
}
