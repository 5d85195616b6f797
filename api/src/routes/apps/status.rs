//! An app's status as the workers last recorded it: `running` (a live
//! release), `stopped` (its release paused by a stop), `not_deployed`, or
//! `destroying`; the current release, its URLs and the result and time of
//! its last health check (by the deploy that let it in, then by the deploy
//! worker's monitor). Read from Postgres only: the API never asks the target.

use crate::error::ApiError;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct Current {
    id: Uuid,
    deployment_id: Uuid,
    image_ref: String,
    state: String,
    url: Option<String>,
    https_url: Option<String>,
    live_at: Option<chrono::DateTime<chrono::Utc>>,
    stopped_at: Option<chrono::DateTime<chrono::Utc>>,
    health_ok: Option<bool>,
    health_detail: Option<String>,
    health_checked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `(status, live)`: the app's status, and the release serving it (`null`
/// when none does).
pub async fn of(conn: &mut PgConnection, app_id: Uuid) -> Result<(Value, Value), ApiError> {
    let destroying: bool =
        sqlx::query_scalar("SELECT destroying_at IS NOT NULL FROM apps WHERE id = $1")
            .bind(app_id)
            .fetch_one(&mut *conn)
            .await?;
    let current: Option<Current> = sqlx::query_as(
        "SELECT id, deployment_id, image_ref, state, url, https_url, live_at, stopped_at,
                health_ok, health_detail, health_checked_at
         FROM releases WHERE app_id = $1 AND state IN ('live', 'paused')",
    )
    .bind(app_id)
    .fetch_optional(conn)
    .await?;
    let state = match (&current, destroying) {
        (_, true) => "destroying",
        (None, false) => "not_deployed",
        (Some(c), false) if c.state == "paused" => "stopped",
        (Some(_), false) => "running",
    };
    let Some(c) = current else {
        let status = json!({"state": state, "release": null, "url": null, "https_url": null,
                            "health": null});
        return Ok((status, Value::Null));
    };
    let live = if c.state == "live" {
        json!({"release": c.id, "deployment": c.deployment_id, "image_ref": c.image_ref,
               "url": c.url, "https_url": c.https_url, "live_at": c.live_at})
    } else {
        Value::Null
    };
    let health = c
        .health_checked_at
        .map(|at| json!({"ok": c.health_ok, "detail": c.health_detail, "checked_at": at}));
    let status = json!({
        "state": state,
        "release": {"id": c.id, "deployment": c.deployment_id, "image_ref": c.image_ref,
                    "state": c.state, "live_at": c.live_at, "stopped_at": c.stopped_at},
        "url": c.url,
        "https_url": c.https_url,
        "health": health,
    });
    Ok((status, live))
}
