//! A project's tokens (owners): created with a name, a role and an
//! optional expiry, listed with when each was last used, revoked at once.

use crate::auth::{self, Caller, Owner, Role};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label for people: 1 to 100 characters, not only spaces.
    #[schema(example = "ci", min_length = 1, max_length = 100, pattern = "\\S")]
    name: String,
    /// What the token may do in the project.
    role: Role,
    /// When the token stops working; never, if absent. Must be in the future.
    expires_at: Option<DateTime<Utc>>,
}

/// Create a project token; the token is shown once, in this answer.
#[utoipa::path(post, path = "/v1/projects/{project_id}/tokens", tag = "tokens",
    operation_id = "create_project_token", security(("project_token" = ["owner"])), request_body = CreateToken,
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 201, description = "The token, shown only here", body = views::NewToken),
        (status = 404, description = "`not_found`: no such project", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a bad name, role or expiry", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    _: Owner,
    caller: Caller,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
    Json(body): Json<CreateToken>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::validation("name: must be 1 to 100 characters"));
    }
    if body.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::validation("expires_at: must be in the future"));
    }
    let token = auth::new_token();
    let id = Uuid::now_v7();
    let created_by = caller.describe().2;
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO api_tokens (id, project_id, name, token_sha256, role, expires_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at",
    )
    .bind(id)
    .bind(project_id)
    .bind(name)
    .bind(auth::hash(&token))
    .bind(body.role.as_str())
    .bind(body.expires_at)
    .bind(&created_by)
    .fetch_one(&state.pool)
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "id": id, "project_id": project_id, "name": name, "role": body.role,
            "expires_at": body.expires_at, "created_at": created_at, "created_by": created_by,
            "token": token,
        })),
    ))
}

type Row = (
    Uuid,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
);

/// List the project's tokens (never their secrets), newest first.
#[utoipa::path(get, path = "/v1/projects/{project_id}/tokens", tag = "tokens",
    operation_id = "list_project_tokens", security(("project_token" = ["owner"])),
    params(("project_id" = Uuid, Path, description = "The project's id")),
    responses(
        (status = 200, description = "The tokens, revoked ones included", body = views::Items<views::Token>),
        (status = 404, description = "`not_found`: no such project", body = ErrorBody),
    ))]
pub async fn list(
    _: Owner,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
) -> Result<axum::Json<Value>, ApiError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, role, created_at, expires_at, last_used_at, revoked_at, created_by \
         FROM api_tokens WHERE project_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(project_id)
    .fetch_all(&state.pool)
    .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, role, created_at, expires_at, last_used_at, revoked_at, created_by)| {
            json!({
                "id": id, "project_id": project_id, "name": name, "role": role,
                "created_at": created_at, "expires_at": expires_at,
                "last_used_at": last_used_at, "revoked_at": revoked_at, "created_by": created_by,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

/// Revoke a token: it fails from the next request on.
#[utoipa::path(delete, path = "/v1/projects/{project_id}/tokens/{token_id}", tag = "tokens",
    operation_id = "revoke_project_token", security(("project_token" = ["owner"])),
    params(("project_id" = Uuid, Path, description = "The project's id"),
           ("token_id" = Uuid, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "`not_found`: no such project or token", body = ErrorBody),
        (status = 409, description = "`already_revoked`: the token was revoked before", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn revoke(
    _: Owner,
    State(state): State<AppState>,
    Path((project_id, token_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let revoked: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "WITH target AS (SELECT id, revoked_at FROM api_tokens WHERE id = $1 AND project_id = $2 FOR UPDATE), \
              done AS (UPDATE api_tokens SET revoked_at = now() \
                       WHERE id IN (SELECT id FROM target WHERE revoked_at IS NULL) RETURNING id) \
         SELECT revoked_at FROM target",
    )
    .bind(token_id)
    .bind(project_id)
    .fetch_optional(&state.pool)
    .await?;
    match revoked {
        None => Err(ApiError::NotFound("token")),
        Some(Some(at)) => Err(ApiError::conflict(
            "already_revoked",
            format!("the token was revoked at {at}"),
        )),
        Some(None) => Ok(StatusCode::NO_CONTENT),
    }
}
