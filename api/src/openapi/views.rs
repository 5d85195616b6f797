//! Schemas of the JSON the handlers answer, for the document. Most handlers
//! build their answers as `serde_json::Value`; these types are their shapes
//! (the fuzz test checks every answer against them), never constructed.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// A list of items.
#[derive(ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// A page of a list answered newest first.
#[derive(ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next page (`?before=`); `null` on the last page.
    pub next: Option<Uuid>,
}

#[derive(ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A project token; `token` is shown only in this answer.
#[derive(ToSchema)]
pub struct ProjectToken {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    #[schema(example = "slw_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    pub token: String,
}

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

/// A deployment (or operation) the API queued; poll `url` for its state.
#[derive(ToSchema)]
pub struct Accepted {
    pub id: Uuid,
    #[schema(example = "queued")]
    pub state: String,
    /// The deployment's own URL, also in `Location`.
    #[schema(example = "/v1/deployments/01890a5d-ac96-774b-bcce-b302099a8057")]
    pub url: String,
}

#[derive(ToSchema)]
pub struct Cancelled {
    pub id: Uuid,
    #[schema(example = "cancelled")]
    pub state: String,
}

/// A deployment of an app's list.
#[derive(ToSchema)]
pub struct DeploymentSummary {
    pub id: Uuid,
    pub state: String,
    #[schema(value_type = Object)]
    pub source: Value,
    pub error_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A deployment with its timeline (`events`) and job attempts.
#[derive(ToSchema)]
pub struct Deployment {
    pub id: Uuid,
    pub app: Option<String>,
    /// The target a `target_check` deployment checks.
    pub target: Option<String>,
    pub kind: String,
    pub state: String,
    #[schema(value_type = Object)]
    pub source: Value,
    #[schema(value_type = Option<Object>)]
    pub probe: Option<Value>,
    pub resolved_commit: Option<String>,
    pub image_digest: Option<String>,
    /// `REGISTRY/REPOSITORY@sha256:…`: what a deploy pulls.
    pub image_ref: Option<String>,
    /// The build plan the build stage followed (stack, commands, Containerfile).
    #[schema(value_type = Option<Object>)]
    pub build_plan: Option<Value>,
    /// Where the deployment's release answers, once it went live.
    pub url: Option<String>,
    /// The same over HTTPS, when the target serves it.
    pub https_url: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub trace_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub events: Vec<DeploymentEvent>,
    pub attempts: Vec<Attempt>,
}

#[derive(ToSchema)]
pub struct DeploymentEvent {
    pub from: Option<String>,
    pub to: String,
    pub at: DateTime<Utc>,
    pub detail: Option<String>,
}

#[derive(ToSchema)]
pub struct Attempt {
    pub stage: String,
    pub job_state: String,
    pub max_attempts: i32,
    pub attempt: i32,
    pub worker: String,
    pub claimed_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub error: Option<String>,
}

/// Deployment log lines after `?after=`, and the deployment's state.
#[derive(ToSchema)]
pub struct DeploymentLogs {
    pub lines: Vec<DeploymentLogLine>,
    /// The last sequence number here: the next `?after=`.
    pub next: i64,
    pub state: String,
}

#[derive(ToSchema)]
pub struct DeploymentLogLine {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub stage: String,
    pub stream: String,
    pub attempt: i32,
    pub line: String,
}

/// One server-sent event of a log stream: `log` (`data` is a log line as
/// JSON, `id` its sequence number) or `end` (`data` is `{"state"}` of the
/// ended deployment, or `{"reason"}` the app's stream ended).
#[derive(ToSchema)]
pub struct LogEvent {
    #[schema(pattern = "^(log|end)$")]
    pub event: String,
    #[schema(nullable = false)]
    pub id: Option<String>,
    pub data: String,
}

/// Runtime log lines after `?after=`.
#[derive(ToSchema)]
pub struct AppLogs {
    pub lines: Vec<AppLogLine>,
    /// The last sequence number here: the next `?after=`.
    pub next: i64,
}

#[derive(ToSchema)]
pub struct AppLogLine {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub container: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub line: String,
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

/// A target: never its key, only whether one is set and its fingerprint.
#[derive(ToSchema)]
pub struct Target {
    pub id: Uuid,
    pub name: String,
    /// `local` or `ssh`.
    pub kind: String,
    pub host: Option<String>,
    pub port: Option<i32>,
    pub user: Option<String>,
    pub has_key: bool,
    pub key_fingerprint: Option<String>,
    pub known_hosts: Option<String>,
    #[schema(value_type = Object)]
    pub settings: Value,
    pub engine: Option<String>,
    pub created_at: String,
    /// The apps that run on the target.
    pub apps: Vec<String>,
    pub last_check: Option<TargetCheck>,
}

#[derive(ToSchema)]
pub struct TargetCheck {
    pub deployment: Uuid,
    pub state: String,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub requested_at: String,
    pub finished_at: Option<String>,
}

#[derive(ToSchema)]
pub struct DeadJob {
    pub id: Uuid,
    pub job_id: Option<Uuid>,
    pub deployment_id: Option<Uuid>,
    pub stage: String,
    pub queue: String,
    pub reason: String,
    pub dead_at: DateTime<Utc>,
    pub redriven_at: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
pub struct Redriven {
    pub id: Uuid,
    pub deployment_id: Uuid,
    pub redriven: bool,
}

#[derive(ToSchema)]
pub struct Readiness {
    pub postgres: bool,
    pub rabbitmq: bool,
}
