//! The statements behind the event stream: the horizon (the xmin of the
//! statement's own snapshot, below which every transaction has ended), the
//! events that became final, and the new log lines of followed sources.

use super::EventPos;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// An event row as the stream sends it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: i64,
    pub xid: i64,
    pub project_id: Uuid,
    /// `deployment` or `app`.
    pub kind: String,
    pub deployment_id: Option<Uuid>,
    pub app_id: Option<Uuid>,
    pub data: Value,
}

impl StoredEvent {
    pub fn pos(&self) -> EventPos {
        EventPos {
            xid: self.xid as u64,
            id: self.id,
        }
    }
}

/// Where log lines come from: a deployment's build/deploy output, or what
/// an app's containers printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Deployment,
    App,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub source: Source,
    pub id: Uuid,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub stream: String,
    /// The stage (deployment lines) or the container (app lines).
    pub label: String,
    pub line: String,
}

impl LogLine {
    /// The event's JSON; `name` is the app's name for app lines.
    pub fn data(&self, name: Option<&str>) -> Value {
        match self.source {
            Source::Deployment => json!({"deployment": self.id, "seq": self.seq, "at": self.at,
                "stage": self.label, "stream": self.stream, "line": self.line}),
            Source::App => json!({"app": name, "seq": self.seq, "at": self.at,
                "container": self.label, "stream": self.stream, "line": self.line}),
        }
    }
}

const HORIZON: &str = "pg_snapshot_xmin(pg_current_snapshot())";

pub async fn horizon(pool: &PgPool) -> sqlx::Result<u64> {
    let horizon: i64 = sqlx::query_scalar(&format!("SELECT {HORIZON}::text::bigint"))
        .fetch_one(pool)
        .await?;
    Ok(horizon as u64)
}

/// The events of transactions in `[from, horizon)`, with the new horizon:
/// one statement, so the rows are exactly those its snapshot shows.
pub async fn final_events(pool: &PgPool, from: u64) -> sqlx::Result<(u64, Vec<StoredEvent>)> {
    let rows: Vec<(i64, Option<sqlx::types::Json<Value>>)> = sqlx::query_as(&format!(
        "WITH h AS (SELECT {HORIZON} AS xmin)
         SELECT h.xmin::text::bigint,
                (SELECT jsonb_agg(to_jsonb(e) ORDER BY e.xid, e.id) FROM (
                    SELECT id, xid::text::bigint AS xid, project_id, kind, deployment_id, app_id, data
                    FROM project_events WHERE xid >= $1::text::xid8 AND xid < h.xmin) e)
         FROM h"
    ))
    .bind(from.to_string())
    .fetch_all(pool)
    .await?;
    let (horizon, events) = rows.into_iter().next().unwrap_or((from as i64, None));
    Ok((horizon as u64, parse_events(events)))
}

fn parse_events(events: Option<sqlx::types::Json<Value>>) -> Vec<StoredEvent> {
    let Some(sqlx::types::Json(Value::Array(events))) = events else {
        return Vec::new();
    };
    events
        .into_iter()
        .filter_map(|e| {
            Some(StoredEvent {
                id: e["id"].as_i64()?,
                xid: e["xid"].as_i64()?,
                project_id: e["project_id"].as_str()?.parse().ok()?,
                kind: e["kind"].as_str()?.to_owned(),
                deployment_id: e["deployment_id"].as_str().and_then(|s| s.parse().ok()),
                app_id: e["app_id"].as_str().and_then(|s| s.parse().ok()),
                data: e["data"].clone(),
            })
        })
        .collect()
}

/// A client's catch-up: the project's final events after `after` (all
/// those the poller may already have broadcast), with the horizon.
pub async fn catch_up_events(
    pool: &PgPool,
    project_id: Uuid,
    after: EventPos,
) -> sqlx::Result<(u64, Vec<StoredEvent>)> {
    let (horizon, events): (i64, Option<sqlx::types::Json<Value>>) = sqlx::query_as(&format!(
        "WITH h AS (SELECT {HORIZON} AS xmin)
         SELECT h.xmin::text::bigint,
                (SELECT jsonb_agg(to_jsonb(e) ORDER BY e.xid, e.id) FROM (
                    SELECT id, xid::text::bigint AS xid, project_id, kind, deployment_id, app_id, data
                    FROM project_events
                    WHERE project_id = $1 AND (xid, id) > ($2::text::xid8, $3) AND xid < h.xmin) e)
         FROM h"
    ))
    .bind(project_id)
    .bind(after.xid.to_string())
    .bind(after.id)
    .fetch_one(pool)
    .await?;
    Ok((horizon as u64, parse_events(events)))
}

const DEPLOYMENT_LINES: &str = "SELECT l.deployment_id AS id, l.seq, l.at, l.stream, l.stage AS label, l.line
    FROM deployment_logs l WHERE l.deployment_id = w.id AND l.seq > w.after ORDER BY l.seq LIMIT 1000";
const APP_LINES: &str = "SELECT l.app_id AS id, l.seq, l.at, l.stream, l.container AS label, l.line
    FROM app_logs l WHERE l.app_id = w.id AND l.seq > w.after ORDER BY l.seq LIMIT 1000";

/// `(from a deployment, source id, seq, at, stream, label, line)`.
type LineRow = (bool, Uuid, i64, DateTime<Utc>, String, String, String);

/// New lines of the followed sources, up to 1,000 each per call, in one
/// statement. Sequence numbers become visible in order (they are allocated
/// under the source's row lock), so `seq > after` skips nothing.
pub async fn new_lines(
    pool: &PgPool,
    wanted: &[((Source, Uuid), i64)],
) -> sqlx::Result<Vec<LogLine>> {
    let pick = |source: Source| -> (Vec<Uuid>, Vec<i64>) {
        wanted
            .iter()
            .filter(|((s, _), _)| *s == source)
            .map(|((_, id), after)| (*id, *after))
            .unzip()
    };
    let (deployments, deployment_after) = pick(Source::Deployment);
    let (apps, app_after) = pick(Source::App);
    let rows: Vec<LineRow> = sqlx::query_as(&format!(
        "SELECT true, l.* FROM unnest($1::uuid[], $2::bigint[]) AS w(id, after),
                    LATERAL ({DEPLOYMENT_LINES}) l
             UNION ALL
             SELECT false, l.* FROM unnest($3::uuid[], $4::bigint[]) AS w(id, after),
                    LATERAL ({APP_LINES}) l"
    ))
    .bind(deployments)
    .bind(deployment_after)
    .bind(apps)
    .bind(app_after)
    .fetch_all(pool)
    .await?;
    let mut lines: Vec<LogLine> = rows
        .into_iter()
        .map(|(deployment, id, seq, at, stream, label, line)| LogLine {
            source: if deployment {
                Source::Deployment
            } else {
                Source::App
            },
            id,
            seq,
            at,
            stream,
            label,
            line,
        })
        .collect();
    lines.sort_by_key(|l| (l.at, l.seq));
    Ok(lines)
}

/// A client's catch-up of one source after `after`.
pub async fn catch_up_lines(
    pool: &PgPool,
    source: Source,
    id: Uuid,
    after: i64,
) -> sqlx::Result<Vec<LogLine>> {
    new_lines(pool, &[((source, id), after)]).await
}

/// The source's last sequence number: where a client that asked for no
/// history starts.
pub async fn current_seq(pool: &PgPool, source: Source, id: Uuid) -> sqlx::Result<i64> {
    let sql = match source {
        Source::Deployment => {
            "SELECT COALESCE(max(seq), 0) FROM deployment_logs WHERE deployment_id = $1"
        }
        Source::App => "SELECT COALESCE(max(seq), 0) FROM app_logs WHERE app_id = $1",
    };
    sqlx::query_scalar(sql).bind(id).fetch_one(pool).await
}

/// Events older than the log retention are dropped, like log lines.
pub async fn prune(pool: &PgPool, retention: Duration) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM project_events WHERE at < now() - make_interval(secs => $1)")
        .bind(retention.as_secs_f64())
        .execute(pool)
        .await?;
    Ok(())
}
