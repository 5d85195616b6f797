//! An app's runtime logs: what its containers printed, as the deploy worker
//! collected it (the API never asks the target), polled with
//! `?after=SEQ&limit=N` (sequence numbers are per app).

use crate::auth::Project;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

#[derive(serde::Serialize, sqlx::FromRow)]
struct Line {
    seq: i64,
    at: chrono::DateTime<chrono::Utc>,
    container: String,
    stream: String,
    line: String,
}

pub async fn poll(
    project: Project,
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<LogQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::validation("limit: must be 1 to 10000"));
    }
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::validation("after: must not be negative"));
    }
    let app_id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM apps WHERE project_id = $1 AND name = $2")
            .bind(project.id)
            .bind(&app)
            .fetch_optional(&state.pool)
            .await?;
    let app_id = app_id.ok_or(ApiError::NotFound("app"))?;
    let lines: Vec<Line> = sqlx::query_as(
        "SELECT seq, at, container, stream, line FROM app_logs
         WHERE app_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(app_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    let next = lines.last().map_or(after, |l| l.seq);
    Ok(axum::Json(json!({"lines": lines, "next": next})))
}
