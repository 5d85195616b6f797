//! The app as the API shows it, read with one SQL statement for any number
//! of apps: the app row, its target, env keys (secret values never leave
//! the database: only their names), credential kind, webhook flag, domains
//! and the current release (lateral join), so a page of apps costs one
//! round trip instead of several per app.

use super::status::{self, Current};
use crate::credentials;
use crate::error::ApiError;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

/// Which apps of a project to read, in name order.
pub enum Filter<'a> {
    /// The one app of that name.
    Name(&'a str),
    /// Up to `limit` apps named after `after` (all from the first if `None`).
    Page { after: Option<&'a str>, limit: i64 },
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    git_url: Option<String>,
    git_ref: Option<String>,
    build: Value,
    runtime: Value,
    target: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
    destroying: bool,
    env: Value,
    secrets: Value,
    credential: Option<String>,
    webhook: bool,
    domains: Value,
    #[sqlx(flatten)]
    release: ReleaseCols,
}

/// The current release's columns, all null when the app has none.
#[derive(sqlx::FromRow)]
struct ReleaseCols {
    release_id: Option<Uuid>,
    deployment_id: Option<Uuid>,
    image_ref: Option<String>,
    release_state: Option<String>,
    url: Option<String>,
    https_url: Option<String>,
    live_at: Option<chrono::DateTime<chrono::Utc>>,
    stopped_at: Option<chrono::DateTime<chrono::Utc>>,
    health_ok: Option<bool>,
    health_detail: Option<String>,
    health_checked_at: Option<chrono::DateTime<chrono::Utc>>,
}

const SELECT: &str = "
SELECT a.id, a.name, a.git_url, a.git_ref, a.build_settings AS build, a.runtime_settings AS runtime,
       t.name AS target, a.created_at, a.updated_at, a.destroying_at IS NOT NULL AS destroying,
       COALESCE((SELECT jsonb_object_agg(v.key, v.value_plain) FROM app_env_vars v
                 WHERE v.app_id = a.id AND NOT v.secret), '{}') AS env,
       COALESCE((SELECT jsonb_object_agg(v.key, $5::text) FROM app_env_vars v
                 WHERE v.app_id = a.id AND v.secret), '{}') AS secrets,
       (SELECT c.kind FROM app_git_credentials c WHERE c.app_id = a.id) AS credential,
       EXISTS (SELECT 1 FROM app_webhook_secrets w WHERE w.app_id = a.id) AS webhook,
       COALESCE((SELECT jsonb_agg(d.host ORDER BY d.host) FROM app_domains d
                 WHERE d.app_id = a.id), '[]') AS domains,
       r.id AS release_id, r.deployment_id, r.image_ref, r.state AS release_state, r.url, r.https_url,
       r.live_at, r.stopped_at, r.health_ok, r.health_detail, r.health_checked_at
FROM apps a
LEFT JOIN targets t ON t.id = a.target_id
LEFT JOIN LATERAL (
    SELECT id, deployment_id, image_ref, state, url, https_url, live_at, stopped_at,
           health_ok, health_detail, health_checked_at
    FROM releases WHERE app_id = a.id AND state IN ('live', 'paused') LIMIT 1
) r ON true
WHERE a.project_id = $1 AND ($2::text IS NULL OR a.name = $2) AND ($3::text IS NULL OR a.name > $3)
ORDER BY a.name
LIMIT $4";

/// The apps the filter names, each as the API shows it.
pub async fn fetch(
    conn: &mut PgConnection,
    project_id: Uuid,
    filter: Filter<'_>,
) -> Result<Vec<Value>, ApiError> {
    let (name, after, limit) = match filter {
        Filter::Name(name) => (Some(name), None, 1),
        Filter::Page { after, limit } => (None, after, limit),
    };
    let rows: Vec<Row> = sqlx::query_as(SELECT)
        .bind(project_id)
        .bind(name)
        .bind(after)
        .bind(limit)
        .bind(super::MASK)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(view).collect())
}

fn view(row: Row) -> Value {
    let r = row.release;
    let current = match (r.release_id, r.deployment_id, r.image_ref, r.release_state) {
        (Some(id), Some(deployment_id), Some(image_ref), Some(state)) => Some(Current {
            id,
            deployment_id,
            image_ref,
            state,
            url: r.url,
            https_url: r.https_url,
            live_at: r.live_at,
            stopped_at: r.stopped_at,
            health_ok: r.health_ok,
            health_detail: r.health_detail,
            health_checked_at: r.health_checked_at,
        }),
        _ => None,
    };
    let (status, live) = status::view(row.destroying, current);
    json!({
        "id": row.id,
        "name": row.name,
        "git_url": row.git_url,
        "git_ref": row.git_ref,
        "build": row.build,
        "runtime": row.runtime,
        "target": row.target,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "env": row.env,
        "secrets": row.secrets,
        "git_credential": credentials::view(row.credential.as_deref()),
        "webhook": {"secret_set": row.webhook},
        "domains": row.domains,
        "live": live,
        "status": status,
    })
}
