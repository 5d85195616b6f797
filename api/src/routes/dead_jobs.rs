//! Dead jobs of the caller's project: list and re-drive.

use crate::auth::{Member, Viewer};
use crate::error::ApiError;
use crate::extract::Path;
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use serde_json::{json, Value};
use slipway_shared::db::dead::{self, Redrive};
use uuid::Uuid;

/// The project's dead jobs (the newest 200).
#[utoipa::path(get, path = "/v1/dead-jobs", tag = "operations", operation_id = "list_dead_jobs",
    security(("project_token" = ["viewer"])), responses((status = 200, description = "Dead jobs", body = views::Items<views::DeadJob>)))]
pub async fn list(
    Viewer(project): Viewer,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    let items = dead::list(&state.pool, project.id, 200).await?;
    Ok(axum::Json(json!({ "items": items })))
}

/// Re-drive a dead job with a fresh attempt budget.
#[utoipa::path(post, path = "/v1/dead-jobs/{id}/redrive", tag = "operations", operation_id = "redrive_dead_job",
    security(("project_token" = ["member"])), params(("id" = Uuid, Path, description = "The dead job's id")),
    responses(
        (status = 200, description = "Re-driven", body = views::Redriven),
        (status = 404, description = "`not_found`: no such dead job", body = ErrorBody),
        (status = 409, description = "`already_redriven` or `not_redrivable`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(dead_job.id = %id))]
pub async fn redrive(
    Member(project): Member,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let outcome = dead::redrive(&mut tx, &state.names, project.id, id).await?;
    match outcome {
        Redrive::Redriven { deployment_id } => {
            tx.commit().await?;
            slipway_shared::db::outbox::committed();
            Ok(axum::Json(
                json!({"id": id, "deployment_id": deployment_id, "redriven": true}),
            ))
        }
        Redrive::NotFound => Err(ApiError::NotFound("dead job")),
        Redrive::AlreadyRedriven => Err(ApiError::conflict(
            "already_redriven",
            "this dead job was already re-driven",
        )),
        Redrive::NoJob => Err(ApiError::conflict(
            "not_redrivable",
            "the dead message names no job that still exists",
        )),
        Redrive::Conflict(message) => Err(ApiError::conflict("not_redrivable", message)),
    }
}
