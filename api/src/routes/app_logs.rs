//! An app's runtime logs: what its containers printed, as the deploy worker
//! collected it (the API never asks the target), polled with
//! `?after=SEQ&limit=N` or followed as an SSE stream (`/logs/stream`) whose
//! event ids are the sequence numbers (per app), so `Last-Event-ID`
//! resumes without loss or repeats.

use crate::auth::{Project, Viewer};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::openapi::{views, ErrorBody};
use crate::routes::logs::{LogQuery, StreamQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::convert::Infallible;
use std::time::Duration;
use uuid::Uuid;

/// How often a stream looks for new lines: the collector writes them in
/// rounds (`SLIPWAY_RUNTIME_LOG_INTERVAL`), so a shorter wait finds nothing.
const STREAM_POLL: Duration = Duration::from_millis(500);
/// Lines per read of a stream.
const STREAM_BATCH: i64 = 1000;

#[derive(serde::Serialize, sqlx::FromRow)]
struct Line {
    seq: i64,
    at: chrono::DateTime<chrono::Utc>,
    container: String,
    stream: String,
    line: String,
}

/// Runtime logs: what the app's containers printed after `?after=SEQ`.
///
/// The deploy worker collects them every `SLIPWAY_RUNTIME_LOG_INTERVAL`
/// (apps on the local target only; none are collected from ssh targets
/// yet); sequence numbers are per app.
#[utoipa::path(get, path = "/v1/apps/{app}/logs", tag = "logs", operation_id = "app_logs",
    security(("project_token" = ["viewer"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name"), LogQuery),
    responses(
        (status = 200, description = "The lines and the next `after`", body = views::AppLogs),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
    ))]
pub async fn poll(
    Viewer(project): Viewer,
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
    let app_id = app_id(&state.pool, project, &app).await?;
    let lines = lines_after(&state.pool, app_id, after, limit).await?;
    let next = lines.last().map_or(after, |l| l.seq);
    Ok(axum::Json(json!({"lines": lines, "next": next})))
}

/// Runtime logs as server-sent events.
///
/// Every line after `Last-Event-ID` (or `?after=SEQ`, or from the start) as
/// a `log` event (id = sequence number), then new ones as the collector
/// stores them, until the client goes or the app is destroyed (an `end`
/// event). With `?follow=false` the stream closes after the lines stored
/// now.
#[utoipa::path(get, path = "/v1/apps/{app}/logs/stream", tag = "logs",
    operation_id = "app_logs_stream", security(("project_token" = ["viewer"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name"), StreamQuery, ("Last-Event-ID" = Option<u64>, Header, nullable = false, maximum = 9_223_372_036_854_775_807_u64, description = "Resume after this sequence number (wins over `?after=`)")),
    responses(
        (status = 200, description = "`log` events, then `end`", content_type = "text/event-stream", body = views::LogEvent),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
    ))]
pub async fn stream(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let resume = crate::routes::logs::last_event_id(&headers)?;
    if query.after.is_some_and(|after| after < 0) {
        return Err(ApiError::validation("after: must not be negative"));
    }
    let app_id = app_id(&state.pool, project, &app).await?;
    let mut after = resume.or(query.after).unwrap_or(0);
    let follow = query.follow.unwrap_or(true);
    let pool = state.pool.clone();
    let stream = async_stream::stream! {
        loop {
            match lines_after(&pool, app_id, after, STREAM_BATCH).await {
                Ok(lines) => {
                    let full = lines.len() as i64 == STREAM_BATCH;
                    for line in lines {
                        after = line.seq;
                        let data = serde_json::to_string(&line).unwrap_or_default();
                        yield Ok(Event::default().id(line.seq.to_string()).event("log").data(data));
                    }
                    if full {
                        continue;
                    }
                }
                Err(error) => tracing::warn!(%error, "runtime log stream query failed"),
            }
            let exists: Option<bool> =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM apps WHERE id = $1)")
                    .bind(app_id)
                    .fetch_one(&pool)
                    .await
                    .ok();
            if exists == Some(false) {
                yield Ok(Event::default().event("end").data(json!({"reason": "the app was destroyed"}).to_string()));
                break;
            }
            if !follow {
                break;
            }
            tokio::time::sleep(STREAM_POLL).await;
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn app_id(pool: &PgPool, project: Project, app: &str) -> Result<Uuid, ApiError> {
    let app_id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM apps WHERE project_id = $1 AND name = $2")
            .bind(project.id)
            .bind(app)
            .fetch_optional(pool)
            .await?;
    app_id.ok_or(ApiError::NotFound("app"))
}

async fn lines_after(
    pool: &PgPool,
    app_id: Uuid,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<Line>> {
    sqlx::query_as(
        "SELECT seq, at, container, stream, line FROM app_logs
         WHERE app_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(app_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
