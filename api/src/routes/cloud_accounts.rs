//! A project's cloud accounts (`/v1/cloud-accounts`): a provider login,
//! checked on create by a cheap authenticated read at the provider (a
//! refusal is `422 invalid_credentials` in the provider's words), its
//! secret sealed and never shown, its endpoint held to the outbound
//! address policy.

use crate::auth::{Owner, Viewer};
use crate::cloud_account::{
    check_endpoint, endpoint_of, CredentialsAtEdge, Driver, StoredCredentials,
};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::{formats, views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_cloud::catalog;
use slipway_shared::domain::Slug;
use sqlx::PgConnection;
use uuid::Uuid;

/// A provider login.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    #[schema(
        pattern = "^(hetzner|scaleway|openstack|exoscale|contabo|lightsail)$",
        example = "hetzner"
    )]
    provider: String,
    #[schema(value_type = formats::Name, example = "main")]
    name: String,
    /// Hetzner: `{"token"}`. OpenStack: `{"region", "username", "password",
    /// "project_id", "user_domain"?}` or `{"region",
    /// "application_credential_id", "application_credential_secret"}`.
    /// Sealed at once, never shown again.
    #[schema(value_type = Object)]
    credentials: Value,
    /// The API's base URL (Hetzner `…/v1`, Keystone `…/v3`); the provider's
    /// public one when absent.
    endpoint: Option<String>,
    /// Save a server image (a snapshot at the provider, billed by size) of
    /// the first server of each kind once it is set up, and create later
    /// servers of that kind from it: they start set up. Off by default.
    #[serde(default)]
    server_images: bool,
}

/// What an owner may change on an account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccount {
    /// As on create. Turned off, no image is saved or used; the images
    /// saved stay (and bill) until deleted (`DELETE /v1/server-images/{id}`).
    server_images: bool,
}

/// Create an account after the provider has accepted its credentials.
#[utoipa::path(post, path = "/v1/cloud-accounts", tag = "cloud", operation_id = "create_cloud_account",
    security(("project_token" = ["owner"])), request_body = CreateAccount,
    responses(
        (status = 201, description = "The account", body = views::CloudAccount),
        (status = 409, description = "`conflict`: an account of that name exists", body = ErrorBody),
        (status = 422, description = "`unknown_provider`, `provider_not_supported` (no driver yet), `invalid_credentials_shape`, \
            `invalid_endpoint`, `address_not_allowed`, `host_unresolvable`, `provider_unreachable`, or `invalid_credentials` \
            (the provider refused them; the message quotes it)", body = ErrorBody),
        (status = 502, description = "`provider_error`: the provider failed otherwise (its words)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    Owner(project): Owner,
    State(state): State<AppState>,
    Json(body): Json<CreateAccount>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let provider = catalog::provider(&body.provider).map_err(|e| ApiError::Invalid {
        code: e.code(),
        message: e.to_string(),
    })?;
    let name = Slug::parse("name", &body.name)?;
    let stored = StoredCredentials::parse(provider, body.credentials)?;
    let endpoint = endpoint_of(&state.cloud.endpoints, provider, body.endpoint.as_deref());
    check_endpoint(&state.outbound, &endpoint, "endpoint").await?;
    let taken: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM cloud_accounts WHERE project_id = $1 AND name = $2)",
    )
    .bind(project.id)
    .bind(name.as_str())
    .fetch_one(&state.pool)
    .await?;
    if taken {
        return Err(conflict(&name));
    }
    let sealed = stored.seal(&state.secrets);
    let (kind, region) = (stored.kind(), stored.region().map(str::to_owned));
    Driver::build(provider, &endpoint, stored, &state.outbound)?
        .check(&state.outbound)
        .await?;
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO cloud_accounts (id, project_id, provider, name, endpoint, credentials_kind, credentials_sealed, region,
                                     server_images)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (project_id, name) DO NOTHING",
    )
    .bind(id)
    .bind(project.id)
    .bind(provider.as_str())
    .bind(name.as_str())
    .bind(body.endpoint.as_deref())
    .bind(kind)
    .bind(sealed)
    .bind(region)
    .bind(body.server_images)
    .execute(&state.pool)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(conflict(&name));
    }
    let mut conn = state.pool.acquire().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(read(&mut conn, project.id, id).await?),
    ))
}

fn conflict(name: &Slug) -> ApiError {
    ApiError::conflict(
        "conflict",
        format!("cloud account `{name}` exists in this project"),
    )
}

/// The project's account named or identified by `key`.
pub async fn resolve(
    conn: &mut PgConnection,
    project_id: Uuid,
    key: &str,
) -> Result<Uuid, ApiError> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM cloud_accounts WHERE project_id = $1 AND (name = $2 OR id::text = $2)",
    )
    .bind(project_id)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    id.ok_or(ApiError::NotFound("cloud account"))
}

/// The account as shown: never the credentials, only their kind.
async fn read(conn: &mut PgConnection, project_id: Uuid, id: Uuid) -> Result<Value, ApiError> {
    let account: Option<Value> = sqlx::query_scalar(
        "SELECT json_build_object('id', id, 'provider', provider, 'name', name, 'endpoint', endpoint,
             'region', region, 'credentials', json_build_object('kind', credentials_kind, 'set', true),
             'server_images', server_images, 'created_at', created_at)
         FROM cloud_accounts WHERE project_id = $1 AND id = $2",
    )
    .bind(project_id)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    account.ok_or(ApiError::NotFound("cloud account"))
}

/// Read an account (by name or id).
#[utoipa::path(get, path = "/v1/cloud-accounts/{account}", tag = "cloud", operation_id = "get_cloud_account",
    security(("project_token" = ["viewer"])), params(("account" = formats::Name, Path, description = "The account's name or id")),
    responses(
        (status = 200, description = "The account", body = views::CloudAccount),
        (status = 404, description = "`not_found`: no such account", body = ErrorBody),
    ))]
pub async fn get(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let id = resolve(&mut conn, project.id, &key).await?;
    Ok(axum::Json(read(&mut conn, project.id, id).await?))
}

/// Change an account: whether it saves and uses server images.
#[utoipa::path(patch, path = "/v1/cloud-accounts/{account}", tag = "cloud", operation_id = "update_cloud_account",
    security(("project_token" = ["owner"])), request_body = UpdateAccount,
    params(("account" = formats::Name, Path, description = "The account's name or id")),
    responses(
        (status = 200, description = "The account", body = views::CloudAccount),
        (status = 404, description = "`not_found`: no such account", body = ErrorBody),
        (status = 422, description = "`invalid_body`: not an account change", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn update(
    Owner(project): Owner,
    State(state): State<AppState>,
    Path(key): Path<String>,
    Json(body): Json<UpdateAccount>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let id = resolve(&mut conn, project.id, &key).await?;
    sqlx::query("UPDATE cloud_accounts SET server_images = $2 WHERE id = $1")
        .bind(id)
        .bind(body.server_images)
        .execute(&mut *conn)
        .await?;
    Ok(axum::Json(read(&mut conn, project.id, id).await?))
}

/// List the project's accounts, by name.
#[utoipa::path(get, path = "/v1/cloud-accounts", tag = "cloud", operation_id = "list_cloud_accounts",
    security(("project_token" = ["viewer"])), responses((status = 200, description = "The accounts", body = views::Items<views::CloudAccount>)))]
pub async fn list(
    Viewer(project): Viewer,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM cloud_accounts WHERE project_id = $1 ORDER BY name")
            .bind(project.id)
            .fetch_all(&state.pool)
            .await?;
    let mut conn = state.pool.acquire().await?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        items.push(read(&mut conn, project.id, id).await?);
    }
    Ok(axum::Json(json!({ "items": items })))
}

/// The servers made with an account and not destroyed. The servers table
/// comes with the server work (issue 15, item 6), with `account_id` and
/// `state` columns: until it exists no server uses any account. The
/// server create locks the account row (`FOR SHARE`) while it inserts, so
/// this look, under `FOR UPDATE`, cannot miss one.
async fn servers_using(conn: &mut PgConnection, account: Uuid) -> Result<Vec<String>, ApiError> {
    let has_servers: bool = sqlx::query_scalar("SELECT to_regclass('servers') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !has_servers {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(
        "SELECT name FROM servers WHERE account_id = $1 AND state <> 'destroyed' ORDER BY name",
    )
    .bind(account)
    .fetch_all(conn)
    .await?)
}

/// Delete an account no server uses.
#[utoipa::path(delete, path = "/v1/cloud-accounts/{account}", tag = "cloud", operation_id = "delete_cloud_account",
    security(("project_token" = ["owner"])), params(("account" = formats::Name, Path, description = "The account's name or id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such account", body = ErrorBody),
        (status = 409, description = "`account_in_use`: servers made with it are not destroyed, or server images \
            saved with it are not deleted", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    Owner(project): Owner,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let id = resolve(&mut tx, project.id, &key).await?;
    sqlx::query("SELECT 1 FROM cloud_accounts WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let servers = servers_using(&mut tx, id).await?;
    if !servers.is_empty() {
        return Err(ApiError::conflict(
            "account_in_use",
            format!(
                "servers made with this account are not destroyed: {}; destroy them first",
                servers.join(", ")
            ),
        ));
    }
    let images: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM server_images WHERE account_id = $1 AND state IN ('saving', 'available')
         ORDER BY created_at",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    if !images.is_empty() {
        return Err(ApiError::conflict(
            "account_in_use",
            format!(
                "server images saved with this account bill until deleted: {}; delete them first (DELETE /v1/server-images/{{id}})",
                images.join(", ")
            ),
        ));
    }
    sqlx::query("DELETE FROM cloud_accounts WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
