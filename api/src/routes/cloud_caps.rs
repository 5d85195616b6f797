//! A project's spending caps on cloud servers (`/v1/cloud-caps`): how many
//! servers and how many euros a month; the server create reads them
//! ([`caps_of`]) and checks them (`slipway_cloud::caps::check`) before
//! anything is bought.

use crate::auth::{Owner, Viewer};
use crate::error::ApiError;
use crate::extract::Json;
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_cloud::caps::Caps;
use slipway_cloud::catalog::Eur;
use sqlx::PgConnection;
use uuid::Uuid;

/// Caps for a project that never set its own.
pub const DEFAULT_CAPS: Caps = Caps {
    max_servers: Some(3),
    max_monthly_eur: Some(Eur(50 * 10_000)),
};

/// The project's caps (the server create calls this, then `caps::check`).
pub async fn caps_of(conn: &mut PgConnection, project_id: Uuid) -> Result<Caps, ApiError> {
    let row: Option<(Option<i32>, Option<i64>)> = sqlx::query_as(
        "SELECT max_servers, max_monthly_eur_e4 FROM cloud_caps WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map_or(DEFAULT_CAPS, |(servers, monthly)| Caps {
        max_servers: servers.and_then(|s| u32::try_from(s).ok()),
        max_monthly_eur: monthly.map(Eur),
    }))
}

fn caps_view(caps: &Caps) -> Value {
    json!({"max_servers": caps.max_servers, "max_monthly_eur": caps.max_monthly_eur.map(Eur::as_f64)})
}

/// The project's caps on cloud servers.
#[utoipa::path(get, path = "/v1/cloud-caps", tag = "cloud", operation_id = "get_cloud_caps",
    security(("project_token" = ["viewer"])), responses((status = 200, description = "The caps (`null`: no cap)", body = views::CloudCaps)))]
pub async fn get(
    Viewer(project): Viewer,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    Ok(axum::Json(caps_view(
        &caps_of(&mut conn, project.id).await?,
    )))
}

/// Both caps; `null` (or absent) lifts one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCaps {
    // A float for the parse: JSON Schema's integers include `3.0`.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 10000)]
    max_servers: Option<f64>,
    /// EUR a month, up to 4 decimals.
    #[schema(minimum = 0, maximum = 1000000)]
    max_monthly_eur: Option<f64>,
}

/// Set the project's caps on cloud servers.
#[utoipa::path(put, path = "/v1/cloud-caps", tag = "cloud", operation_id = "set_cloud_caps",
    security(("project_token" = ["owner"])), request_body = SetCaps,
    responses(
        (status = 200, description = "The caps now", body = views::CloudCaps),
        (status = 422, description = "`validation_failed`: a cap out of range", body = ErrorBody),
    ))]
pub async fn set(
    Owner(project): Owner,
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> Result<axum::Json<Value>, ApiError> {
    // serde reads a struct from an array too; the document says object.
    if !body.is_object() {
        return Err(ApiError::validation(
            "the body must be an object {max_servers, max_monthly_eur}",
        ));
    }
    let body: SetCaps =
        serde_json::from_value(body).map_err(|e| ApiError::validation(e.to_string()))?;
    let servers = match body.max_servers {
        None => None,
        Some(n) if n.fract() == 0.0 && (0.0..=10_000.0).contains(&n) => Some(n as i32),
        Some(_) => {
            return Err(ApiError::validation(
                "max_servers must be a whole number 0 to 10000",
            ))
        }
    };
    let monthly = match body.max_monthly_eur {
        None => None,
        Some(eur) if eur.is_finite() && (0.0..=1_000_000.0).contains(&eur) => {
            Eur::parse(&format!("{eur:.4}"))
        }
        Some(_) => return Err(ApiError::validation("max_monthly_eur must be 0 to 1000000")),
    };
    sqlx::query(
        "INSERT INTO cloud_caps (project_id, max_servers, max_monthly_eur_e4) VALUES ($1, $2, $3)
         ON CONFLICT (project_id) DO UPDATE SET max_servers = $2, max_monthly_eur_e4 = $3, updated_at = now()",
    )
    .bind(project.id)
    .bind(servers)
    .bind(monthly.map(|m| m.0))
    .execute(&state.pool)
    .await?;
    let mut conn = state.pool.acquire().await?;
    Ok(axum::Json(caps_view(
        &caps_of(&mut conn, project.id).await?,
    )))
}
