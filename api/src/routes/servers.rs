//! Servers (`/v1/servers`): bought from one of the project's cloud
//! accounts and made ssh targets by the provision worker. The create
//! checks everything it can before anything is bought — the account and
//! its provider's driver, the region and size in the provider's catalog
//! (live prices for Hetzner), the name, the project's caps — then records
//! the server `pending` and queues its create (a deployment of kind
//! `server_create`: timeline, logs, cancel). A destroy is queued the same
//! way; `409 server_in_use` while apps are placed on its target unless
//! `?force=true`.

use crate::auth::{Owner, Project, Viewer};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::openapi::{formats, views, ErrorBody};
use crate::routes::cloud_accounts::resolve as resolve_account;
use crate::routes::cloud_caps::caps_of;
use crate::routes::providers::catalog_for;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_cloud::caps::{self, Usage};
use slipway_cloud::catalog::estimate::{estimate, EstimateRequest};
use slipway_cloud::catalog::Eur;
use slipway_cloud::ProviderKind;
use slipway_shared::db::servers::{create_operation, queue_destroy, ServerState, CREATE_KIND};
use slipway_shared::domain::Slug;
use sqlx::PgConnection;
use uuid::Uuid;

/// A server to buy.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServer {
    /// One of the project's cloud accounts (name or id).
    #[schema(example = "main")]
    account: String,
    /// The provider's region (OpenStack: the account's region).
    #[schema(example = "fsn1")]
    region: String,
    /// The provider's size (Hetzner server type, OpenStack flavor).
    #[schema(example = "cx22")]
    size: String,
    /// The server's name, also its host name and its target's name.
    #[schema(value_type = formats::Name, example = "web-1")]
    name: String,
    /// The provider's image; its catalog's default Debian when absent.
    image: Option<String>,
    /// A free label (`production`, `staging`, …) kept with the server.
    #[schema(value_type = Option<formats::Name>, example = "production")]
    environment: Option<String>,
}

/// Buy a server and make it an ssh target.
///
/// Answers once the server is recorded and its create queued; follow
/// `operation.url` (a deployment: states, timeline, logs, cancel) or poll
/// the server's `state`.
#[utoipa::path(post, path = "/v1/servers", tag = "cloud", operation_id = "create_server",
    security(("project_token" = ["owner"])), request_body = CreateServer,
    responses(
        (status = 202, description = "Recorded and queued; `Location` is the server's URL", body = views::Server,
            headers(("Location" = String, description = "The server's URL"))),
        (status = 404, description = "`not_found`: no such cloud account", body = ErrorBody),
        (status = 409, description = "`conflict`: a server or target of that name exists", body = ErrorBody),
        (status = 422, description = "`validation_failed` (name, environment, image), `provider_not_supported`, \
            `unknown_region`, `unknown_size`, `size_not_in_region`, `region_not_in_account`, `cap_exceeded`, \
            or for live prices `address_not_allowed`, `invalid_credentials`, `provider_unreachable`", body = ErrorBody),
        (status = 502, description = "`provider_error`: the provider's catalog could not be read (its words)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    Owner(project): Owner,
    State(state): State<AppState>,
    Json(body): Json<CreateServer>,
) -> Result<Response, ApiError> {
    let name = Slug::parse("name", &body.name)?;
    let wanted = ServerRequest {
        account: &body.account,
        provider: None,
        region: &body.region,
        size: &body.size,
        image: body.image.as_deref(),
        environment: body.environment.as_deref(),
    };
    let checked = check(&state, &project, &wanted).await?;
    let mut tx = state.pool.begin().await?;
    let (id, _) = record(&mut tx, &state, project.id, &name, &checked).await?;
    let view = read(&mut tx, project.id, id).await?;
    tx.commit().await?;
    slipway_shared::db::outbox::committed();
    Ok(accepted(id, view))
}

/// A server asked for (by `POST /v1/servers` or an install).
pub struct ServerRequest<'a> {
    pub account: &'a str,
    /// The provider the caller expects the account to be of (422
    /// `provider_mismatch` otherwise).
    pub provider: Option<&'a str>,
    pub region: &'a str,
    pub size: &'a str,
    pub image: Option<&'a str>,
    pub environment: Option<&'a str>,
}

/// A server checked against its account, its provider's driver and
/// catalog: all but the caps and the name, which [`record`] checks in its
/// transaction.
pub struct CheckedServer {
    account: Uuid,
    provider: ProviderKind,
    region: String,
    size: String,
    image: String,
    environment: Option<Slug>,
    monthly: Eur,
}

/// Checks everything about a server that needs no lock, before anything
/// is recorded or bought.
pub async fn check(
    state: &AppState,
    project: &Project,
    wanted: &ServerRequest<'_>,
) -> Result<CheckedServer, ApiError> {
    let environment = wanted
        .environment
        .map(|e| Slug::parse("environment", e))
        .transpose()?;
    let image = wanted.image.map(parse_image).transpose()?;
    let mut conn = state.pool.acquire().await?;
    let account = resolve_account(&mut conn, project.id, wanted.account).await?;
    let (provider, account_region): (String, Option<String>) =
        sqlx::query_as("SELECT provider, region FROM cloud_accounts WHERE id = $1")
            .bind(account)
            .fetch_one(&mut *conn)
            .await?;
    drop(conn);
    if let Some(expected) = wanted.provider.filter(|p| *p != provider) {
        return Err(ApiError::Invalid {
            code: "provider_mismatch",
            message: format!(
                "account `{}` is a {provider} account, not {expected}",
                wanted.account
            ),
        });
    }
    let provider = ProviderKind::parse(&provider)
        .ok_or_else(|| anyhow::anyhow!("an account of unknown provider {provider}"))?;
    if !provider.has_driver() {
        return Err(ApiError::Invalid {
            code: "provider_not_supported",
            message: format!(
                "Slipway cannot create servers at {} yet",
                provider.display_name()
            ),
        });
    }
    let catalog = catalog_for(state, project, provider, Some(wanted.account)).await?;
    let priced = estimate(
        &catalog,
        &EstimateRequest {
            region: wanted.region,
            size: wanted.size,
            backups: false,
        },
    )
    .map_err(|e| ApiError::Invalid {
        code: e.code(),
        message: e.to_string(),
    })?;
    if let Some(region) = account_region.filter(|r| r != wanted.region) {
        return Err(ApiError::Invalid {
            code: "region_not_in_account",
            message: format!(
                "this {} account makes servers in region {region}, not {}",
                provider.display_name(),
                wanted.region
            ),
        });
    }
    Ok(CheckedServer {
        account,
        provider,
        region: wanted.region.to_owned(),
        size: wanted.size.to_owned(),
        image: image.unwrap_or_else(|| catalog.default_image.clone()),
        environment,
        monthly: priced.monthly_total_eur,
    })
}

/// Records the server `pending` and queues its create, in the caller's
/// transaction, once the project's caps and the name allow it (422
/// `cap_exceeded`, 409 `conflict`). The server's id and its create's.
pub async fn record(
    tx: &mut PgConnection,
    state: &AppState,
    project_id: Uuid,
    name: &Slug,
    checked: &CheckedServer,
) -> Result<(Uuid, Uuid), ApiError> {
    // Creates of one project take turns, so two cannot both pass the caps;
    // the account is held against its deletion until the server is in.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('servers:' || $1::text, 0))")
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT 1 FROM cloud_accounts WHERE id = $1 FOR SHARE")
        .bind(checked.account)
        .execute(&mut *tx)
        .await?;
    let caps = caps_of(tx, project_id).await?;
    let (count, sum): (i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*), sum(monthly_cost_eur_e4)::bigint FROM servers
         WHERE project_id = $1 AND state NOT IN ('destroyed', 'failed')",
    )
    .bind(project_id)
    .fetch_one(&mut *tx)
    .await?;
    let usage = Usage {
        servers: u32::try_from(count).unwrap_or(u32::MAX),
        monthly_eur: Eur(sum.unwrap_or(0)),
    };
    caps::check(&caps, &usage, checked.monthly).map_err(|e| ApiError::Invalid {
        code: e.code(),
        message: e.to_string(),
    })?;
    let taken: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM servers WHERE project_id = $1 AND name = $2 AND state <> 'destroyed')
             OR EXISTS (SELECT 1 FROM targets WHERE project_id = $1 AND name = $2)",
    )
    .bind(project_id)
    .bind(name.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if taken {
        return Err(ApiError::conflict(
            "conflict",
            format!("a server or target named `{name}` exists in this project"),
        ));
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO servers (id, project_id, account_id, name, provider, region, size, image,
                              environment, state, monthly_cost_eur_e4)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10)",
    )
    .bind(id)
    .bind(project_id)
    .bind(checked.account)
    .bind(name.as_str())
    .bind(checked.provider.as_str())
    .bind(&checked.region)
    .bind(&checked.size)
    .bind(&checked.image)
    .bind(checked.environment.as_ref().map(Slug::as_str))
    .bind(checked.monthly.0)
    .execute(&mut *tx)
    .await?;
    let operation = create_operation(tx, &state.names, project_id, id, CREATE_KIND).await?;
    Ok((id, operation))
}

/// An image name or id as providers take them: printable, no quotes.
fn parse_image(value: &str) -> Result<String, ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 200
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._-:()".contains(c));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ApiError::Invalid {
            code: "validation_failed",
            message:
                "image: must be 1 to 200 characters of letters, digits, spaces and . _ - : ( )"
                    .into(),
        })
    }
}

fn accepted(id: Uuid, view: Value) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/servers/{id}"))],
        axum::Json(view),
    )
        .into_response()
}

/// The project's server named or identified by `key` (a name means the
/// server of that name not destroyed, else the newest destroyed one).
async fn resolve(conn: &mut PgConnection, project_id: Uuid, key: &str) -> Result<Uuid, ApiError> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM servers WHERE project_id = $1 AND (name = $2 OR id::text = $2)
         ORDER BY state = 'destroyed', created_at DESC LIMIT 1",
    )
    .bind(project_id)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    id.ok_or(ApiError::NotFound("server"))
}

/// A server as shown (never its keys), one row per server of `servers s`.
const SERVER_VIEW: &str =
    "SELECT json_build_object('id', s.id, 'name', s.name, 'account', s.account_id,
         'provider', s.provider, 'region', s.region, 'size', s.size, 'image', s.image,
         'server_image', s.server_image_id, 'environment', s.environment, 'state', s.state, 'provider_id', s.provider_id,
         'ipv4', s.ipv4, 'ipv6', s.ipv6, 'monthly_cost_eur', s.monthly_cost_eur_e4 / 10000.0,
         'target', t.name, 'error', s.error, 'created_at', s.created_at,
         'destroyed_at', s.destroyed_at,
         'operations', COALESCE((SELECT json_agg(json_build_object('id', d.id, 'kind', d.kind,
                 'state', d.state, 'url', '/v1/deployments/' || d.id) ORDER BY d.created_at)
             FROM deployments d WHERE d.server_id = s.id), '[]'::json))
     FROM servers s LEFT JOIN targets t ON t.id = s.target_id";

/// The server as shown.
async fn read(conn: &mut PgConnection, project_id: Uuid, id: Uuid) -> Result<Value, ApiError> {
    let server: Option<Value> = sqlx::query_scalar(&format!(
        "{SERVER_VIEW} WHERE s.project_id = $1 AND s.id = $2"
    ))
    .bind(project_id)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    server.ok_or(ApiError::NotFound("server"))
}

/// Read a server (by name or id).
#[utoipa::path(get, path = "/v1/servers/{server}", tag = "cloud", operation_id = "get_server",
    security(("project_token" = ["viewer"])), params(("server" = formats::Name, Path, description = "The server's name or id")),
    responses(
        (status = 200, description = "The server", body = views::Server),
        (status = 404, description = "`not_found`: no such server", body = ErrorBody),
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

/// List the project's servers, newest first (destroyed ones included).
#[utoipa::path(get, path = "/v1/servers", tag = "cloud", operation_id = "list_servers",
    security(("project_token" = ["viewer"])),
    responses((status = 200, description = "The servers", body = views::Items<views::Server>)))]
pub async fn list(
    Viewer(project): Viewer,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    // One query for the page, however many servers.
    let items: Vec<Value> = sqlx::query_scalar(&format!(
        "{SERVER_VIEW} WHERE s.project_id = $1 ORDER BY s.created_at DESC LIMIT 500"
    ))
    .bind(project.id)
    .fetch_all(&state.pool)
    .await?;
    Ok(axum::Json(json!({ "items": items })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DestroyQuery {
    /// Destroy even while apps are placed on the server's target.
    force: Option<bool>,
}

/// Destroy a server: the server, the firewall and the key pair made for
/// it, and its target.
///
/// A create still running is waited for (it records the provider's id
/// first); a server the provider no longer has counts as destroyed. Asking
/// again answers the destroy already queued.
#[utoipa::path(delete, path = "/v1/servers/{server}", tag = "cloud", operation_id = "delete_server",
    security(("project_token" = ["owner"])),
    params(("server" = formats::Name, Path, description = "The server's name or id"), DestroyQuery),
    responses(
        (status = 202, description = "Queued (or already queued); `Location` is the server's URL", body = views::Server,
            headers(("Location" = String, description = "The server's URL"))),
        (status = 404, description = "`not_found`: no such server", body = ErrorBody),
        (status = 409, description = "`server_in_use`: apps are placed on it (use `?force=true`)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    Owner(project): Owner,
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<DestroyQuery>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let id = resolve(&mut tx, project.id, &key).await?;
    let (server_state, target): (String, Option<Uuid>) =
        sqlx::query_as("SELECT state, target_id FROM servers WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let queued = matches!(
        ServerState::parse(&server_state),
        Some(ServerState::Destroying | ServerState::Destroyed)
    );
    if !queued {
        let apps: Vec<String> =
            sqlx::query_scalar("SELECT name FROM apps WHERE target_id = $1 ORDER BY name LIMIT 20")
                .bind(target)
                .fetch_all(&mut *tx)
                .await?;
        if !apps.is_empty() && query.force != Some(true) {
            return Err(ApiError::conflict(
                "server_in_use",
                format!(
                    "apps are placed on this server: {}; move or destroy them, or destroy with ?force=true",
                    apps.join(", ")
                ),
            ));
        }
        queue_destroy(&mut tx, &state.names, project.id, id).await?;
    }
    let view = read(&mut tx, project.id, id).await?;
    tx.commit().await?;
    slipway_shared::db::outbox::committed();
    Ok(accepted(id, view))
}
