//! Deployment statistics of a project for the dashboard: deploys and
//! failures per day, the failure rate, and the time spent in each stage
//! (p50/p95 of the spans between a deployment's `building`, `provisioning`
//! and `deploying` events and its next event), computed by Postgres in one
//! statement so the API never loads the events themselves.

use crate::auth::Viewer;
use crate::error::ApiError;
use crate::extract::Query;
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use serde_json::Value;

/// `?days=` of the statistics.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// How many days back, today (UTC) included: 1 to 90 (default 14).
    #[param(minimum = 1, maximum = 90)]
    days: Option<i32>,
}

const STATS: &str = "
WITH today AS (SELECT (now() AT TIME ZONE 'UTC')::date AS day),
days AS (
    SELECT (today.day - g)::date AS day FROM today, generate_series(0, $2::int - 1) AS g
),
d AS (
    SELECT id, state, (created_at AT TIME ZONE 'UTC')::date AS day FROM deployments
    WHERE project_id = $1 AND kind = 'app'
      AND created_at >= ((SELECT min(day) FROM days)::timestamp AT TIME ZONE 'UTC')
),
per_day AS (
    SELECT days.day, count(d.id) AS deploys,
           count(d.id) FILTER (WHERE d.state = 'live') AS live,
           count(d.id) FILTER (WHERE d.state = 'failed') AS failed
    FROM days LEFT JOIN d ON d.day = days.day GROUP BY days.day
),
spans AS (
    SELECT e.to_state AS stage,
           EXTRACT(EPOCH FROM lead(e.at) OVER (PARTITION BY e.deployment_id ORDER BY e.id) - e.at) * 1000 AS ms
    FROM deployment_events e JOIN d ON d.id = e.deployment_id
),
stages AS (
    SELECT stage, count(*) AS count,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95_ms
    FROM spans WHERE ms IS NOT NULL AND stage IN ('building', 'provisioning', 'deploying')
    GROUP BY stage
)
SELECT jsonb_build_object(
    'days', $2::int,
    'deploys', (SELECT count(*) FROM d),
    'live', (SELECT count(*) FROM d WHERE state = 'live'),
    'failed', (SELECT count(*) FROM d WHERE state = 'failed'),
    'failure_rate', (SELECT round(count(*) FILTER (WHERE state = 'failed')::numeric
                                  / NULLIF(count(*) FILTER (WHERE state IN ('live', 'failed')), 0), 4)
                     FROM d),
    'per_day', (SELECT jsonb_agg(jsonb_build_object('day', day, 'deploys', deploys, 'live', live,
                                                    'failed', failed) ORDER BY day) FROM per_day),
    'stages', jsonb_build_object(
        'building', (SELECT to_jsonb(s) - 'stage' FROM stages s WHERE stage = 'building'),
        'provisioning', (SELECT to_jsonb(s) - 'stage' FROM stages s WHERE stage = 'provisioning'),
        'deploying', (SELECT to_jsonb(s) - 'stage' FROM stages s WHERE stage = 'deploying')))";

/// Deployment statistics of the project over the last `days` days (UTC):
/// deploys per day (with how many went live and how many failed), the
/// failure rate (failed / (live + failed); `null` with none finished), and
/// per stage the count, p50 and p95 of its duration in milliseconds
/// (`null` for a stage no deployment finished). App operations count as
/// deployments; probes do not.
#[utoipa::path(get, path = "/v1/deployments/stats", tag = "deployments",
    operation_id = "deployment_stats", security(("project_token" = ["viewer"])), params(StatsQuery),
    responses(
        (status = 200, description = "The statistics", body = views::DeploymentStats),
        (status = 422, description = "`validation_failed`: `days` out of range", body = ErrorBody),
    ))]
pub async fn stats(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Query(query): Query<StatsQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let days = query.days.unwrap_or(14);
    if !(1..=90).contains(&days) {
        return Err(ApiError::validation("days: must be 1 to 90"));
    }
    let stats: Value = sqlx::query_scalar(STATS)
        .bind(project.id)
        .bind(days)
        .fetch_one(&state.pool)
        .await?;
    Ok(axum::Json(stats))
}
