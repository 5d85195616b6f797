//! Projects and their tokens (admin token only).

use crate::auth::{self, Admin};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::{formats, views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_shared::domain::Slug;
use uuid::Uuid;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// 1 to 63 characters of a-z, 0-9 and `-`, unique on the platform.
    #[schema(value_type = formats::Name)]
    name: String,
}

/// Create a project.
#[utoipa::path(post, path = "/v1/projects", tag = "projects", operation_id = "create_project",
    security(("admin_token" = [])), request_body = CreateProject,
    responses(
        (status = 201, description = "The project", body = views::Project),
        (status = 409, description = "`conflict`: a project of that name exists", body = ErrorBody),
    ))]
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

/// List the projects.
#[utoipa::path(get, path = "/v1/projects", tag = "projects", operation_id = "list_projects",
    security(("admin_token" = [])),
    responses((status = 200, description = "All projects, by name", body = views::Items<views::Project>)))]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label for people: 1 to 100 characters, not only spaces.
    #[schema(example = "ci", min_length = 1, max_length = 100, pattern = "\\S")]
    name: String,
}

/// Create a project token; the token is shown once, in this answer.
#[utoipa::path(post, path = "/v1/projects/{project_id}/tokens", tag = "projects",
    operation_id = "create_project_token", security(("admin_token" = [])), request_body = CreateToken,
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 201, description = "The token, shown only here", body = views::ProjectToken),
        (status = 404, description = "`not_found`: no such project", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create_token(
    _: Admin,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
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
