//! An app's add-ons: a managed PostgreSQL database (`kind: postgres`,
//! linked as `DATABASE_URL`) or a named volume (`kind: volume`, mounted at
//! `mount`). The API only records them, as `pending`, with the database's
//! password generated here and sealed at once (it is never shown); the
//! provision stage of the app's next deployment creates them and the
//! deploy stage links them into the release. Deleting one detaches it (no
//! longer linked, data kept) or, with `?purge=true`, marks it `purging`:
//! the next deployment's provision stage drops the data, then the row.

use crate::auth::{Member, Project, Viewer};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::openapi::{formats, views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_shared::addons::{check_mount_path, database_name, new_password, volume_name};
use slipway_shared::db::addons::{self as rows, AddonRow, KIND_POSTGRES, KIND_VOLUME};
use slipway_shared::domain::Slug;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAddon {
    kind: String,
    name: String,
    mount: Option<String>,
}

// The document's view of `CreateAddon` (which fields go with which kind;
// the handler says the same in its errors).

/// An add-on: a postgres database or a volume.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum AddonBody {
    Postgres(PostgresBody),
    Volume(VolumeBody),
}

/// A database linked as `DATABASE_URL`; its password is generated, sealed
/// and never shown.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PostgresBody {
    #[schema(pattern = "^postgres$", example = "postgres")]
    kind: String,
    /// Unique in the app.
    #[schema(value_type = formats::Name)]
    name: String,
}

/// A named volume mounted at `mount`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct VolumeBody {
    #[schema(pattern = "^volume$", example = "volume")]
    kind: String,
    /// Unique in the app.
    #[schema(value_type = formats::Name)]
    name: String,
    /// Unique among the app's volumes.
    #[schema(value_type = formats::MountPath)]
    mount: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Mark the add-on `purging`: the next deployment drops its data.
    #[serde(default)]
    purge: bool,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        code: "invalid_addon",
        message: message.into(),
    }
}

async fn app_id(conn: &mut PgConnection, project: Project, app: &str) -> Result<Uuid, ApiError> {
    sqlx::query_scalar("SELECT id FROM apps WHERE project_id = $1 AND name = $2 FOR UPDATE")
        .bind(project.id)
        .bind(app)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("app"))
}

/// The add-on as the API shows it: names, never the password.
fn view(row: &AddonRow) -> Value {
    let mut out = json!({
        "id": row.id,
        "kind": row.kind,
        "name": row.name,
        "state": row.state,
        "created_at": row.created_at,
    });
    if row.kind == KIND_POSTGRES {
        out["postgres"] = json!({
            "database": row.db_name,
            "role": row.db_role,
            "password": "********",
            "env": "DATABASE_URL",
        });
    } else {
        out["volume"] = json!({"name": row.volume_name, "mount": row.mount_path});
    }
    out
}

/// Add an add-on, created by the app's next deployment.
#[utoipa::path(post, path = "/v1/apps/{app}/addons", tag = "addons", operation_id = "create_addon",
    security(("project_token" = ["member"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")), request_body = AddonBody,
    responses(
        (status = 201, description = "The add-on, state `pending`", body = views::Addon),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
        (status = 409, description = "`addon_exists` or `mount_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_addon`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(app = %app))]
pub async fn create(
    Member(project): Member,
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<CreateAddon>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let name = Slug::parse("name", &body.name).map_err(|e| invalid(e.to_string()))?;
    match (body.kind.as_str(), &body.mount) {
        (KIND_POSTGRES, None) => {}
        (KIND_POSTGRES, Some(_)) => return Err(invalid("a postgres add-on takes no mount")),
        (KIND_VOLUME, None) => return Err(invalid("a volume add-on needs a mount path")),
        (KIND_VOLUME, Some(mount)) => check_mount_path(mount).map_err(invalid)?,
        (other, _) => {
            return Err(invalid(format!(
                "kind {other:?} is not an add-on kind (postgres or volume)"
            )))
        }
    }
    let mut tx = state.pool.begin().await?;
    // Locks the app row: concurrent creations for one app queue up here.
    let app_id = app_id(&mut tx, project, &app).await?;
    let existing = rows::for_app(&mut *tx, app_id).await?;
    if existing.iter().any(|r| r.name == name.as_str()) {
        return Err(ApiError::conflict(
            "addon_exists",
            format!("the app has an add-on named `{name}`"),
        ));
    }
    if body.kind == KIND_POSTGRES && existing.iter().any(|r| r.kind == KIND_POSTGRES) {
        return Err(ApiError::conflict(
            "addon_exists",
            "the app has a postgres add-on already (it owns DATABASE_URL)",
        ));
    }
    if let Some(mount) = &body.mount {
        if existing
            .iter()
            .any(|r| r.mount_path.as_ref() == Some(mount))
        {
            return Err(ApiError::conflict(
                "mount_taken",
                format!("another volume of the app is mounted at {mount}"),
            ));
        }
    }
    let id = Uuid::now_v7();
    let postgres = body.kind == KIND_POSTGRES;
    let db = postgres.then(|| database_name(id));
    sqlx::query(
        "INSERT INTO addons (id, app_id, kind, name, db_name, db_role, password_sealed,
                             volume_name, mount_path)
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(app_id)
    .bind(&body.kind)
    .bind(name.as_str())
    .bind(db)
    .bind(postgres.then(|| state.secrets.seal(&new_password())))
    .bind((!postgres).then(|| volume_name(app_id, name.as_str())))
    .bind(&body.mount)
    .execute(&mut *tx)
    .await?;
    let row = rows::for_app(&mut *tx, app_id)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| anyhow::anyhow!("the add-on just written is gone"))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(view(&row))))
}

/// The app's add-ons with their state (`pending`, `ready`, `purging`);
/// passwords masked.
#[utoipa::path(get, path = "/v1/apps/{app}/addons", tag = "addons", operation_id = "list_addons",
    security(("project_token" = ["viewer"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")),
    responses(
        (status = 200, description = "The add-ons", body = views::Items<views::Addon>),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
    ))]
pub async fn list(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let app_id: Uuid =
        sqlx::query_scalar("SELECT id FROM apps WHERE project_id = $1 AND name = $2")
            .bind(project.id)
            .bind(&app)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(ApiError::NotFound("app"))?;
    let items: Vec<Value> = rows::for_app(&mut *conn, app_id)
        .await?
        .iter()
        .map(view)
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

/// Detach an add-on, or with `?purge=true` mark it for dropping.
///
/// Without `purge`: the add-on is detached (the row goes, the database or
/// volume stays on its server, named in the answer). With `purge=true`: it
/// is marked `purging` and the next deployment's provision stage drops it.
#[utoipa::path(delete, path = "/v1/apps/{app}/addons/{name}", tag = "addons", operation_id = "delete_addon",
    security(("project_token" = ["member"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name"), ("name" = crate::openapi::formats::Name, Path, description = "The add-on's name"), DeleteQuery),
    responses(
        (status = 200, description = "Detached (state `detached`; its data is kept)", body = views::Addon),
        (status = 202, description = "Marked `purging`", body = views::Addon),
        (status = 404, description = "`not_found`: no such app or add-on", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(app = %app, addon = %name))]
pub async fn delete(
    Member(project): Member,
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let mut tx = state.pool.begin().await?;
    let app_id = app_id(&mut tx, project, &app).await?;
    let row = rows::for_app(&mut *tx, app_id)
        .await?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or(ApiError::NotFound("add-on"))?;
    let mut shown = view(&row);
    if query.purge {
        sqlx::query("UPDATE addons SET state = 'purging' WHERE id = $1")
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        shown["state"] = json!("purging");
        return Ok((StatusCode::ACCEPTED, axum::Json(shown)));
    }
    sqlx::query("DELETE FROM addons WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    shown["state"] = json!("detached");
    Ok((StatusCode::OK, axum::Json(shown)))
}
