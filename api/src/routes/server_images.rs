//! `/v1/server-images`: the server images a project's accounts saved (see
//! `slipway_shared::db::server_images`), listed with what they cost, and
//! deleted at the provider by an owner. An image being saved cannot be
//! deleted while its server's create runs (that create ends it); one a
//! create left `saving` when it died can. One already gone at the provider
//! counts as deleted.

use crate::auth::{Owner, Viewer};
use crate::cloud_account::{provider_failed, Driver};
use crate::error::ApiError;
use crate::extract::Path;
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Value};
use slipway_shared::db::server_images::ImageState;
use slipway_shared::state::DeploymentState;
use uuid::Uuid;

const VIEW: &str = "json_build_object('id', i.id, 'account', a.name, 'region', i.region, 'size', i.size,
    'base_image', i.base_image, 'state', i.state, 'provider_id', i.provider_id,
    'source_server_id', i.source_server_id, 'size_gb', i.size_gb,
    'monthly_cost_eur', i.monthly_cost_eur_e4 / 10000.0, 'error', i.error, 'created_at', i.created_at)";

/// An image's state and provider id, its account's provider, endpoint and
/// sealed credentials.
type ImageAndAccount = (String, Option<String>, String, Option<String>, Vec<u8>);

/// List the project's server images (deleted ones left out), newest first.
#[utoipa::path(get, path = "/v1/server-images", tag = "cloud", operation_id = "list_server_images",
    security(("project_token" = ["viewer"])),
    responses((status = 200, description = "The images", body = views::Items<views::ServerImage>)))]
pub async fn list(
    Viewer(project): Viewer,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    let items: Vec<Value> = sqlx::query_scalar(&format!(
        "SELECT {VIEW} FROM server_images i JOIN cloud_accounts a ON a.id = i.account_id
         WHERE i.project_id = $1 AND i.state <> 'deleted' ORDER BY i.created_at DESC"
    ))
    .bind(project.id)
    .fetch_all(&state.pool)
    .await?;
    Ok(axum::Json(json!({ "items": items })))
}

/// Delete a server image at the provider; later servers of its kind are
/// set up from scratch (and saved again if the account still saves images).
#[utoipa::path(delete, path = "/v1/server-images/{id}", tag = "cloud", operation_id = "delete_server_image",
    security(("project_token" = ["owner"])), params(("id" = Uuid, Path, description = "The image's id")),
    responses(
        (status = 204, description = "Deleted (or gone already)"),
        (status = 404, description = "`not_found`: no such image", body = ErrorBody),
        (status = 409, description = "`image_saving`: its server's create runs and is still saving it", body = ErrorBody),
        (status = 422, description = "`address_not_allowed`, `invalid_credentials` or `provider_unreachable`", body = ErrorBody),
        (status = 502, description = "`provider_error`: the provider failed (its words)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    Owner(project): Owner,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let row: Option<ImageAndAccount> = sqlx::query_as(
        "SELECT i.state, i.provider_id, a.provider, a.endpoint, a.credentials_sealed
         FROM server_images i JOIN cloud_accounts a ON a.id = i.account_id
         WHERE i.project_id = $1 AND i.id = $2",
    )
    .bind(project.id)
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    let (image_state, provider_id, provider, endpoint, sealed) =
        row.ok_or(ApiError::NotFound("server image"))?;
    match ImageState::parse(&image_state) {
        Some(ImageState::Saving) if saving_now(&state, id).await? => {
            return Err(ApiError::conflict(
                "image_saving",
                "the image is being saved by its server's create; delete it once that has ended",
            ))
        }
        // A create that ended without finishing it (it died) left it.
        Some(ImageState::Saving | ImageState::Available) => {}
        _ => return Ok(StatusCode::NO_CONTENT),
    }
    if let Some(provider_id) = provider_id {
        Driver::of_account(&state, &provider, endpoint.as_deref(), &sealed)
            .await?
            .driver()
            .delete_image(&provider_id)
            .await
            .map_err(provider_failed)?;
    }
    sqlx::query(
        "UPDATE server_images SET state = 'deleted', updated_at = now()
         WHERE id = $1 AND state IN ('saving', 'available')",
    )
    .bind(id)
    .execute(&state.pool)
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the create of the image's source server is still open (and so
/// may still be saving it).
async fn saving_now(state: &AppState, id: Uuid) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM server_images i JOIN deployments d ON d.server_id = i.source_server_id
                        WHERE i.id = $1 AND d.kind = 'server_create'
                          AND d.state NOT IN {})",
        DeploymentState::TERMINAL_SQL
    ))
    .bind(id)
    .fetch_one(&state.pool)
    .await?)
}
