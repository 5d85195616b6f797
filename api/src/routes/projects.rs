//! Projects and their tokens (admin token only).

use crate::auth::{self, Admin};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_shared::domain::Slug;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    name: String,
}

#[tracing::instrument(skip_all)]
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<CreateProject>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let name = Slug::parse("name", &body.name)?;
    let id = Uuid::now_v7();
    let inserted: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "INSERT INTO projects (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING created_at",
    )
    .bind(id)
    .bind(name.as_str())
    .fetch_optional(&state.pool)
    .await?;
    let created_at = inserted
        .ok_or_else(|| ApiError::conflict("conflict", format!("project `{name}` exists")))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "name": name, "created_at": created_at})),
    ))
}

pub async fn list(_: Admin, State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let rows: Vec<(Uuid, String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT id, name, created_at FROM projects ORDER BY name")
            .fetch_all(&state.pool)
            .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, created_at)| json!({"id": id, "name": name, "created_at": created_at}))
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
}

#[tracing::instrument(skip_all)]
pub async fn create_token(
    _: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::validation("name: must be 1 to 100 characters"));
    }
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1)")
        .bind(project_id)
        .fetch_one(&state.pool)
        .await?;
    if !exists {
        return Err(ApiError::NotFound("project"));
    }
    let token = auth::new_token();
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO api_tokens (id, project_id, name, token_sha256) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(project_id)
    .bind(name)
    .bind(auth::hash(&token))
    .execute(&state.pool)
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "project_id": project_id, "name": name, "token": token})),
    ))
}
