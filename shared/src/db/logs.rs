//! Reading deployment logs by sequence number.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LogRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub stage: String,
    pub stream: String,
    pub attempt: i32,
    pub line: String,
}

/// Lines with `seq > after`, oldest first.
pub async fn after(
    pool: &sqlx::PgPool,
    deployment_id: Uuid,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<LogRow>> {
    sqlx::query_as(
        "SELECT seq, at, stage, stream, attempt, line FROM deployment_logs
         WHERE deployment_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(deployment_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
