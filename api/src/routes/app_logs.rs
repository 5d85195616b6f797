//! An app's runtime logs: what its containers printed, as the deploy worker
//! collected it (the API never asks the target), polled with
//! `?after=SEQ&limit=N` or followed as an SSE stream (`/logs/stream`) whose
//! event ids are the sequence numbers (per app), so `Last-Event-ID`
//! resumes without loss or repeats. `?since=` (RFC 3339 or a duration
//! such as `10m`) is a time cursor: only lines printed at or after it.

use crate::auth::{Project, Viewer};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::convert::Infallible;
use std::time::Duration;
use uuid::Uuid;

/// How often a stream looks for new lines. The collector writes them in
/// rounds (`SLIPWAY_RUNTIME_LOG_INTERVAL`) and sends no notification, so
/// this wait adds to the delay a follower (`slipway logs -f`) sees; one
/// indexed read per follower every 200 ms keeps that delay small.
const STREAM_POLL: Duration = Duration::from_millis(200);
/// Lines per read of a stream.
const STREAM_BATCH: i64 = 1000;

/// `?after=SEQ&limit=N&since=WHEN` of polled runtime logs.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppLogQuery {
    /// Lines after this sequence number (default 0: from the start).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many lines, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
    /// Only lines printed at or after this time: RFC 3339
    /// (`2026-12-05T10:00:00Z`) or a duration back from now (`10m`, `2h`,
    /// `1day`). A value of this shape can still name no time (a 13th
    /// month, a duration beyond the calendar): 422.
    #[param(
        example = "10m",
        pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})|([0-9]+ ?[a-zA-Z]+ ?)+)$",
        max_length = 64
    )]
    pub since: Option<String>,
}

/// `?after=SEQ&follow=BOOL&since=WHEN` of a runtime log stream.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppStreamQuery {
    /// Lines after this sequence number (default 0: from the start).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// `false`: send the lines stored now and close; the default `true`
    /// keeps following.
    pub follow: Option<bool>,
    /// Only lines printed at or after this time: RFC 3339 or a duration
    /// back from now (`10m`).
    #[param(
        example = "10m",
        pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})|([0-9]+ ?[a-zA-Z]+ ?)+)$",
        max_length = 64
    )]
    pub since: Option<String>,
}

/// The time `?since=` names: an RFC 3339 time, or a duration before now.
/// What the documented pattern refuses is refused here too (a bare `0`,
/// which humantime would read, spaces around the value, over 64 bytes).
fn parse_since(since: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = since else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::validation(format!(
            "since: `{text}` is neither an RFC 3339 time nor a duration such as `10m`"
        ))
    };
    if text.len() > 64 {
        return Err(invalid());
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    if !duration_shape(text) {
        return Err(invalid());
    }
    humantime::parse_duration(text)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .map(Some)
        .ok_or_else(invalid)
}

/// `([0-9]+ ?[a-zA-Z]+ ?)+`: numbers each with a unit, as documented.
fn duration_shape(text: &str) -> bool {
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        rest = &rest[digits..];
        rest = rest.strip_prefix(b" ").unwrap_or(rest);
        let letters = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        rest = &rest[letters..];
        rest = rest.strip_prefix(b" ").unwrap_or(rest);
        if digits == 0 || letters == 0 {
            return false;
        }
    }
    !text.is_empty()
}

#[derive(serde::Serialize, sqlx::FromRow)]
struct Line {
    seq: i64,
    at: DateTime<Utc>,
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
    security(("project_token" = ["viewer"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name"), AppLogQuery),
    responses(
        (status = 200, description = "The lines and the next `after`", body = views::AppLogs),
        (status = 422, description = "`validation_failed`: a bad `limit`, `after` or `since`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
    ))]
pub async fn poll(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<AppLogQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::validation("limit: must be 1 to 10000"));
    }
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::validation("after: must not be negative"));
    }
    let since = parse_since(query.since.as_deref())?;
    let app_id = app_id(&state.pool, project, &app).await?;
    let lines = lines_after(&state.pool, app_id, after, since, limit).await?;
    let next = lines.last().map_or(after, |l| l.seq);
    Ok(axum::Json(json!({"lines": lines, "next": next})))
}

/// Runtime logs as server-sent events.
///
/// Every line after `Last-Event-ID` (or `?after=SEQ`, or from the start) as
/// a `log` event (id = sequence number), then new ones as the collector
/// stores them, until the client goes or the app is destroyed (an `end`
/// event). With `?follow=false` the stream closes after the lines stored
/// now; `?since=` skips lines printed before that time.
#[utoipa::path(get, path = "/v1/apps/{app}/logs/stream", tag = "logs",
    operation_id = "app_logs_stream", security(("project_token" = ["viewer"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name"), AppStreamQuery, ("Last-Event-ID" = Option<u64>, Header, nullable = false, maximum = 9_223_372_036_854_775_807_u64, description = "Resume after this sequence number (wins over `?after=`)")),
    responses(
        (status = 200, description = "`log` events, then `end`", content_type = "text/event-stream", body = views::LogEvent),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a bad `after` or `since`", body = ErrorBody),
    ))]
pub async fn stream(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<AppStreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let resume = crate::routes::logs::last_event_id(&headers)?;
    if query.after.is_some_and(|after| after < 0) {
        return Err(ApiError::validation("after: must not be negative"));
    }
    let since = parse_since(query.since.as_deref())?;
    let app_id = app_id(&state.pool, project, &app).await?;
    let mut after = resume.or(query.after).unwrap_or(0);
    let follow = query.follow.unwrap_or(true);
    let pool = state.pool.clone();
    let stream = async_stream::stream! {
        loop {
            match lines_after(&pool, app_id, after, since, STREAM_BATCH).await {
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
    since: Option<DateTime<Utc>>,
    limit: i64,
) -> sqlx::Result<Vec<Line>> {
    sqlx::query_as(
        "SELECT seq, at, container, stream, line FROM app_logs
         WHERE app_id = $1 AND seq > $2 AND ($4::timestamptz IS NULL OR at >= $4)
         ORDER BY seq LIMIT $3",
    )
    .bind(app_id)
    .bind(after)
    .bind(limit)
    .bind(since)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_a_duration_with_units() {
        for ok in [
            "10m",
            "1h 30m",
            "1h30m",
            "2days",
            "2026-12-05T10:00:00Z",
            "2026-12-05T10:00:00.5+01:00",
        ] {
            assert!(parse_since(Some(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "0",
            "10",
            " 10m",
            "10  m",
            "m",
            "",
            "yesterday",
            "2026-13-45T10:00:00Z",
            "99999999999999999999years",
        ] {
            assert!(parse_since(Some(bad)).is_err(), "{bad}");
        }
        let ten = parse_since(Some("10m")).unwrap().unwrap();
        let age = Utc::now() - ten;
        assert!(age >= chrono::Duration::minutes(10) && age < chrono::Duration::minutes(11));
    }
}
