//! Schemas of what the dashboard's routes answer: deployment statistics and
//! the events of the multiplexed stream.

#![allow(dead_code)]

use chrono::NaiveDate;
use utoipa::ToSchema;

/// One server-sent event of `GET /v1/events`: `deployment`, `app` or `log`
/// (`data` is its JSON); `id` resumes the whole stream.
#[derive(ToSchema)]
pub struct StreamEvent {
    #[schema(pattern = "^(deployment|app|log)$")]
    pub event: String,
    pub id: String,
    pub data: String,
}

/// Deployment statistics of a project over its last `days` days (UTC).
#[derive(ToSchema)]
pub struct DeploymentStats {
    pub days: i32,
    pub deploys: i64,
    /// Deployments that went live.
    pub live: i64,
    pub failed: i64,
    /// `failed / (live + failed)`; `null` when none finished.
    pub failure_rate: Option<f64>,
    /// One entry per day, oldest first, days without deploys included.
    pub per_day: Vec<DayStats>,
    pub stages: StageStats,
}

#[derive(ToSchema)]
pub struct DayStats {
    pub day: NaiveDate,
    pub deploys: i64,
    pub live: i64,
    pub failed: i64,
}

/// Per stage; `null` for a stage no deployment of the period finished.
#[derive(ToSchema)]
pub struct StageStats {
    pub building: Option<StageTimes>,
    pub provisioning: Option<StageTimes>,
    pub deploying: Option<StageTimes>,
}

/// How long deployments stayed in a stage, in milliseconds.
#[derive(ToSchema)]
pub struct StageTimes {
    pub count: i64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}
