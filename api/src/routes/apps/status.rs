//! An app's status as the workers last recorded it: `running` (a live
//! release), `stopped` (its release paused by a stop), `not_deployed`, or
//! `destroying`; the current release, its URLs and the result and time of
//! its last health check (by the deploy that let it in, then by the deploy
//! worker's monitor). Read from Postgres only: the API never asks the target.

use serde_json::{json, Value};
use uuid::Uuid;

/// The app's current release (`live` or `paused`).
pub struct Current {
    pub id: Uuid,
    pub deployment_id: Uuid,
    pub image_ref: String,
    pub state: String,
    pub url: Option<String>,
    pub https_url: Option<String>,
    pub live_at: Option<chrono::DateTime<chrono::Utc>>,
    pub stopped_at: Option<chrono::DateTime<chrono::Utc>>,
    pub health_ok: Option<bool>,
    pub health_detail: Option<String>,
    pub health_checked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `(status, live)`: the app's status, and the release serving it (`null`
/// when none does).
pub fn view(destroying: bool, current: Option<Current>) -> (Value, Value) {
    let state = match (&current, destroying) {
        (_, true) => "destroying",
        (None, false) => "not_deployed",
        (Some(c), false) if c.state == "paused" => "stopped",
        (Some(_), false) => "running",
    };
    let Some(c) = current else {
        let status = json!({"state": state, "release": null, "url": null, "https_url": null,
                            "health": null});
        return (status, Value::Null);
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
    (status, live)
}
