//! Projects: created by platform admins; listed for whoever calls, with
//! the caller's role in each.

use crate::auth::{Actor, Admin, Caller};
use crate::error::ApiError;
use crate::extract::Json;
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
    caller: Caller,
    State(state): State<AppState>,
    Json(body): Json<CreateProject>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let name = Slug::parse("name", &body.name)?;
    let id = Uuid::now_v7();
    let mut tx = state.pool.begin().await?;
    let inserted: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "INSERT INTO projects (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING created_at",
    )
    .bind(id)
    .bind(name.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let created_at = inserted
        .ok_or_else(|| ApiError::conflict("conflict", format!("project `{name}` exists")))?;
    // An admin who is a person owns what they create, so it shows in
    // their list like any project they are in.
    if let Actor::User(user) = &caller.actor {
        sqlx::query(
            "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'owner')",
        )
        .bind(id)
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "name": name, "created_at": created_at, "role": "owner"})),
    ))
}

/// List the projects the caller may see, with its role in each: every
/// project for a platform admin, a person's memberships, a token's own.
#[utoipa::path(get, path = "/v1/projects", tag = "projects", operation_id = "list_projects",
    security(("project_token" = ["viewer"])),
    responses((status = 200, description = "The projects, by name", body = views::Items<views::Project>)))]
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    type Row = (Uuid, String, chrono::DateTime<chrono::Utc>, String);
    let query = "SELECT p.id, p.name, p.created_at, r.role FROM projects p JOIN ";
    let rows: Vec<Row> = match &caller.actor {
        Actor::Anonymous | Actor::Invalid => return Err(ApiError::Unauthorized),
        _ if caller.is_platform_admin() => {
            sqlx::query_as(&format!(
                "{query} (SELECT 'owner' AS role) r ON true ORDER BY p.name"
            ))
            .fetch_all(&state.pool)
            .await?
        }
        Actor::Token(token) => {
            sqlx::query_as(&format!(
                "{query} (SELECT $2::text AS role) r ON true WHERE p.id = $1"
            ))
            .bind(token.project_id)
            .bind(token.role.as_str())
            .fetch_all(&state.pool)
            .await?
        }
        Actor::User(user) => {
            sqlx::query_as(&format!(
            "{query} project_members r ON r.project_id = p.id WHERE r.user_id = $1 ORDER BY p.name"
        ))
            .bind(user.id)
            .fetch_all(&state.pool)
            .await?
        }
        Actor::AdminToken => Vec::new(),
    };
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, created_at, role)| {
            json!({"id": id, "name": name, "created_at": created_at, "role": role})
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}
