//! A project's members and their roles (owners manage them); people join
//! through invitations (`super::invitations`).

use crate::auth::{Owner, Role};
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

/// List the project's members.
#[utoipa::path(get, path = "/v1/projects/{project_id}/members", tag = "members", operation_id = "list_members",
    security(("project_token" = ["owner"])), params(("project_id" = Uuid, Path, description = "The project's id")),
    responses((status = 200, description = "Members, by email", body = views::Items<views::Member>)))]
pub async fn list(
    _: Owner,
    State(state): State<AppState>,
    Path(project_id): Path<Uuid>,
) -> Result<axum::Json<Value>, ApiError> {
    type Row = (Uuid, String, String, DateTime<Utc>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT u.id, u.email, m.role, m.created_at, u.disabled_at FROM project_members m \
         JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY lower(u.email)",
    )
    .bind(project_id)
    .fetch_all(&state.pool)
    .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, email, role, since, disabled_at)| {
            json!({"user_id": id, "email": email, "role": role, "since": since, "disabled_at": disabled_at})
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    role: Role,
}

/// Owners left if `user` had `new_role` (or left, with `None`): a project
/// never loses its last owner.
async fn keeps_an_owner(
    tx: &mut sqlx::PgConnection,
    project_id: Uuid,
    user: Uuid,
    new_role: Option<Role>,
) -> Result<(), ApiError> {
    // Locks the owners' rows so two demotions cannot both pass.
    let owners: Vec<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM project_members WHERE project_id = $1 AND role = 'owner' ORDER BY user_id FOR UPDATE",
    )
    .bind(project_id)
    .fetch_all(&mut *tx)
    .await?;
    if owners == [user] && new_role != Some(Role::Owner) {
        return Err(ApiError::conflict(
            "last_owner",
            "this is the project's only owner; make another owner first",
        ));
    }
    Ok(())
}

/// Change a member's role.
#[utoipa::path(patch, path = "/v1/projects/{project_id}/members/{user_id}", tag = "members", operation_id = "update_member",
    security(("project_token" = ["owner"])), request_body = ChangeRole,
    params(("project_id" = Uuid, Path, description = "The project's id"), ("user_id" = Uuid, Path, description = "The member's user id")),
    responses(
        (status = 200, description = "The member", body = views::Member),
        (status = 404, description = "`not_found`: no such project or member", body = ErrorBody),
        (status = 409, description = "`last_owner`: the project's only owner", body = ErrorBody),
    ))]
pub async fn update(
    _: Owner,
    State(state): State<AppState>,
    Path((project_id, user_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<ChangeRole>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut tx = state.pool.begin().await?;
    keeps_an_owner(&mut tx, project_id, user_id, Some(body.role)).await?;
    let row: Option<(String, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE project_members m SET role = $3 FROM users u WHERE m.project_id = $1 AND m.user_id = $2 \
         AND u.id = m.user_id RETURNING u.email, m.created_at",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(body.role.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let (email, since) = row.ok_or(ApiError::NotFound("member"))?;
    tx.commit().await?;
    Ok(axum::Json(
        json!({"user_id": user_id, "email": email, "role": body.role, "since": since, "disabled_at": null}),
    ))
}

/// Remove a member from the project (the account stays).
#[utoipa::path(delete, path = "/v1/projects/{project_id}/members/{user_id}", tag = "members", operation_id = "remove_member",
    security(("project_token" = ["owner"])),
    params(("project_id" = Uuid, Path, description = "The project's id"), ("user_id" = Uuid, Path, description = "The member's user id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`not_found`: no such project or member", body = ErrorBody),
        (status = 409, description = "`last_owner`: the project's only owner", body = ErrorBody),
    ))]
pub async fn remove(
    _: Owner,
    State(state): State<AppState>,
    Path((project_id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    keeps_an_owner(&mut tx, project_id, user_id, None).await?;
    let done = sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
        .bind(project_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("member"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
