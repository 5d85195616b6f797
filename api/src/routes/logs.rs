//! Deployment logs: polled with `?after=SEQ&limit=N`, or followed as an SSE
//! stream whose event ids are sequence numbers (so `Last-Event-ID` resumes
//! without loss).

use crate::auth::{Project, Viewer};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_shared::db::logs;
use std::convert::Infallible;
use std::time::Duration;
use uuid::Uuid;

/// `?after=SEQ&limit=N` of a polled log.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Lines after this sequence number (default 0: from the start).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many lines, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

/// `?after=SEQ&follow=BOOL` of a log stream.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Lines after this sequence number (default 0: from the start).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// `false`: send the lines stored now and close (a bounded read for
    /// scripts and fuzzers); the default `true` keeps following.
    pub follow: Option<bool>,
}

/// The sequence number a reconnecting client resumes after; a value that
/// is not one is refused rather than silently replaying from the start.
pub fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|seq| *seq >= 0)
        .map(Some)
        .ok_or_else(|| ApiError::validation("Last-Event-ID: must be a sequence number"))
}

async fn check_access(state: &AppState, project: Project, id: Uuid) -> Result<String, ApiError> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT state FROM deployments WHERE id = $1 AND project_id = $2")
            .bind(id)
            .bind(project.id)
            .fetch_optional(&state.pool)
            .await?;
    found.ok_or(ApiError::NotFound("deployment"))
}

/// Log lines of a deployment after `?after=SEQ`, with its state.
#[utoipa::path(get, path = "/v1/deployments/{id}/logs", tag = "logs", operation_id = "deployment_logs",
    security(("project_token" = ["viewer"])), params(("id" = Uuid, Path, description = "The deployment's id"), LogQuery),
    responses(
        (status = 200, description = "The lines and the next `after`", body = views::DeploymentLogs),
        (status = 404, description = "`not_found`: no such deployment", body = ErrorBody),
    ))]
pub async fn poll(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
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
    let deployment_state = check_access(&state, project, id).await?;
    let lines = logs::after(&state.pool, id, after, limit).await?;
    let next = lines.last().map_or(after, |l| l.seq);
    Ok(axum::Json(
        json!({"lines": lines, "next": next, "state": deployment_state}),
    ))
}

/// A deployment's log lines as server-sent events.
///
/// `log` events carry a line (the JSON of a polled line; the event id is
/// its sequence number, so `Last-Event-ID` resumes), then new lines as they
/// are written; an `end` event `{"state"}` when the deployment has ended.
/// With `?follow=false` the stream closes after the lines stored now.
#[utoipa::path(get, path = "/v1/deployments/{id}/logs/stream", tag = "logs",
    operation_id = "deployment_logs_stream", security(("project_token" = ["viewer"])), params(("id" = Uuid, Path, description = "The deployment's id"), StreamQuery, ("Last-Event-ID" = Option<u64>, Header, nullable = false, maximum = 9_223_372_036_854_775_807_u64, description = "Resume after this sequence number (wins over `?after=`)")),
    responses(
        (status = 200, description = "`log` events, then `end`", content_type = "text/event-stream", body = views::LogEvent),
        (status = 404, description = "`not_found`: no such deployment", body = ErrorBody),
    ))]
pub async fn stream(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    check_access(&state, project, id).await?;
    let resume = last_event_id(&headers)?;
    if query.after.is_some_and(|after| after < 0) {
        return Err(ApiError::validation("after: must not be negative"));
    }
    let mut after = resume.or(query.after).unwrap_or(0);
    let follow = query.follow.unwrap_or(true);
    let mut wake = state.logs.subscribe();
    let pool = state.pool.clone();
    let stream = async_stream::stream! {
        loop {
            match logs::after(&pool, id, after, 1000).await {
                Ok(lines) => {
                    let full = lines.len() == 1000;
                    for line in lines {
                        after = line.seq;
                        let data = serde_json::to_string(&line).unwrap_or_default();
                        yield Ok(Event::default().id(line.seq.to_string()).event("log").data(data));
                    }
                    if full {
                        continue;
                    }
                }
                Err(error) => tracing::warn!(%error, "log stream query failed"),
            }
            // Ended, and no attempt still running: a deploy is `live` before
            // it drained and stopped the replaced release, and says so.
            let finished: Option<String> = sqlx::query_scalar(&format!(
                "SELECT state FROM deployments d WHERE id = $1 AND state IN {}
                 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.deployment_id = d.id AND j.state = 'running')",
                slipway_shared::DeploymentState::TERMINAL_SQL
            ))
            .bind(id)
            .fetch_optional(&pool)
            .await
            .ok()
            .flatten();
            if let Some(final_state) = finished {
                // One last read: lines flushed just before the final state change.
                if let Ok(lines) = logs::after(&pool, id, after, 10_000).await {
                    for line in lines {
                        let data = serde_json::to_string(&line).unwrap_or_default();
                        yield Ok(Event::default().id(line.seq.to_string()).event("log").data(data));
                    }
                }
                yield Ok(Event::default().event("end").data(json!({"state": final_state}).to_string()));
                break;
            }
            if !follow {
                break;
            }
            // Woken by the shared listener; the timer is the backstop for
            // notifications missed while its connection was down.
            let deadline = tokio::time::sleep(Duration::from_secs(1));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    woken = wake.recv() => match woken {
                        Ok(woken_id) if woken_id != id => continue,
                        _ => break,
                    },
                    _ = &mut deadline => break,
                }
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
