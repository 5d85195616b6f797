//! Schemas of what the deployment routes answer: deployments, their logs
//! and log events, dead jobs.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

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
