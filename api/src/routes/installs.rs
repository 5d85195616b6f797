//! One-click installs (`/v1/installs`): a server bought from a cloud
//! account and an app deployed on it, in one request. The create checks
//! everything the server create and the app create check, with the same
//! codes, then records the server (its create queued), the app (no target
//! yet; its deploys answer 409 `server_not_ready` until the server is
//! ready) and the install in one transaction. The workers carry it on
//! (`slipway_shared::db::installs`); a DELETE tears down what it made.

mod view;

pub use view::Install;

use crate::auth::{Owner, Viewer};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::ErrorBody;
use crate::routes::apps::{CreateApp, NewApp};
use crate::routes::servers::{self, ServerRequest};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use slipway_shared::db::deployments;
use slipway_shared::db::installs::{self as installs_db, Phase};
use slipway_shared::domain::Slug;
use slipway_shared::operation::DomainName;
use sqlx::PgConnection;
use std::time::Duration;
use uuid::Uuid;

/// The environment of an install that names none.
const DEFAULT_ENVIRONMENT: &str = "production";

/// A server and the app to deploy on it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstall {
    /// The provider; must be the account's (422 `provider_mismatch`).
    #[schema(example = "hetzner")]
    provider: String,
    /// One of the project's cloud accounts (name or id).
    #[schema(example = "main")]
    account: String,
    #[schema(example = "fsn1")]
    region: String,
    #[schema(example = "cx22")]
    size: String,
    /// A free label kept with the server; `production` when absent.
    #[schema(value_type = Option<crate::openapi::formats::Name>, example = "production")]
    environment: Option<String>,
    /// The server's name (also its target's); the app's name when absent.
    #[schema(value_type = Option<crate::openapi::formats::Name>, example = "shop")]
    server_name: Option<String>,
    /// The provider's image, as for `POST /v1/servers`.
    image: Option<String>,
    /// A host name the app answers at (one of its domains); create the DNS
    /// record the install shows. Without one the app answers at the
    /// server's address.
    #[schema(value_type = Option<crate::openapi::formats::HostName>, example = "shop.example.com")]
    domain: Option<String>,
    /// The app, as for `POST /v1/apps`, without `target` (the install's
    /// server is its target) and with `git_url` (its first deploy builds
    /// it).
    app: CreateApp,
}

/// Buy a server and deploy an app on it.
///
/// Everything is checked before anything is recorded or bought; then the
/// server (its create queued), the app and the install are recorded
/// together. Follow `GET /v1/installs/{id}` (or its event stream): the
/// server is made, the app is deployed on it from its repository, and
/// Slipway checks that it answers at the server's address.
#[utoipa::path(post, path = "/v1/installs", tag = "cloud", operation_id = "create_install",
    security(("project_token" = ["owner"])), request_body = CreateInstall,
    responses(
        (status = 202, description = "Recorded and queued; `Location` is the install's URL", body = Install,
            headers(("Location" = String, description = "The install's URL"))),
        (status = 404, description = "`not_found`: no such cloud account", body = ErrorBody),
        (status = 409, description = "`conflict` (a server, target or app of that name exists) or \
            `domain_taken`", body = ErrorBody),
        (status = 422, description = "`validation_failed` (names, domain, `app.target` given, no \
            `app.git_url`, …), `provider_mismatch`, `provider_not_supported`, `unknown_region`, \
            `unknown_size`, `size_not_in_region`, `region_not_in_account`, `cap_exceeded`, the app's \
            `invalid_runtime_settings`, `invalid_build_settings`, `invalid_git_credential`, \
            `git_credential_mismatch`, or `address_not_allowed`; for live prices \
            `invalid_credentials`, `provider_unreachable`", body = ErrorBody),
        (status = 502, description = "`provider_error`: the provider's catalog could not be read (its words)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    Owner(project): Owner,
    State(state): State<AppState>,
    Json(body): Json<CreateInstall>,
) -> Result<Response, ApiError> {
    let environment = Slug::parse(
        "environment",
        body.environment.as_deref().unwrap_or(DEFAULT_ENVIRONMENT),
    )?;
    let domain = body.domain.as_deref().map(DomainName::parse).transpose()?;
    let mut app = NewApp::parse(&state, body.app).await?;
    if app.target().is_some() {
        return Err(ApiError::validation(
            "app.target: an install's app runs on the install's server; leave target out",
        ));
    }
    if app.git_url.is_none() {
        return Err(ApiError::validation(
            "app.git_url: required, the install's first deploy builds the app from it",
        ));
    }
    if let Some(domain) = &domain {
        app.add_domain(domain.clone())?;
    }
    let server_name = match &body.server_name {
        Some(name) => Slug::parse("server_name", name)?,
        None => app.name.clone(),
    };
    let wanted = ServerRequest {
        account: &body.account,
        provider: Some(&body.provider),
        region: &body.region,
        size: &body.size,
        image: body.image.as_deref(),
        environment: Some(environment.as_str()),
    };
    let checked = servers::check(&state, &project, &wanted).await?;

    let mut tx = state.pool.begin().await?;
    let (server_id, create) =
        servers::record(&mut tx, &state, project.id, &server_name, &checked).await?;
    let app_id = app.insert(&mut tx, &state, project.id, None).await?;
    // The app builds while its server is made (its git_url was required
    // above).
    let deploy = installs_db::first_deploy(&mut tx, &state.names, project.id, app_id).await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO installs (id, project_id, server_id, app_id, app_name, environment, domain,
                               phase, server_operation_id, deploy_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'server', $8, $9)",
    )
    .bind(id)
    .bind(project.id)
    .bind(server_id)
    .bind(app_id)
    .bind(app.name.as_str())
    .bind(environment.as_str())
    .bind(domain.as_ref().map(DomainName::as_str))
    .bind(create)
    .bind(deploy)
    .execute(&mut *tx)
    .await?;
    let view = view::read(&mut tx, project.id, id).await?;
    tx.commit().await?;
    slipway_shared::db::outbox::committed();
    Ok(accepted(view))
}

fn accepted(view: Install) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/installs/{}", view.id))],
        axum::Json(view),
    )
        .into_response()
}

/// 409 `server_not_ready` while the app's install is still making its
/// server (or destroying it): its deploys and starts wait for the server.
pub async fn require_server_ready(conn: &mut PgConnection, app_id: Uuid) -> Result<(), ApiError> {
    match installs_db::server_not_ready(conn, app_id).await? {
        None => Ok(()),
        Some(server_state) => Err(ApiError::conflict(
            "server_not_ready",
            format!("the app's server is {server_state}, not ready; its install deploys the app once it is"),
        )),
    }
}

/// List the project's installs, newest first (destroyed ones included).
#[utoipa::path(get, path = "/v1/installs", tag = "cloud", operation_id = "list_installs",
    security(("project_token" = ["viewer"])),
    responses((status = 200, description = "The installs", body = crate::openapi::views::Items<Install>)))]
pub async fn list(
    Viewer(project): Viewer,
    State(state): State<AppState>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let items = view::list(&mut conn, project.id).await?;
    Ok(axum::Json(json!({ "items": items })))
}

/// Read an install; with `Accept: text/event-stream`, follow it.
///
/// The stream sends an `install` event with the install at once and on
/// every change (status, steps, server state and address, error), and
/// ends after a `completed`, `failed` or `destroyed` one.
#[utoipa::path(get, path = "/v1/installs/{id}", tag = "cloud", operation_id = "get_install",
    security(("project_token" = ["viewer"])),
    params(("id" = Uuid, Path, description = "The install's id")),
    responses(
        (status = 200, description = "The install, or with `Accept: text/event-stream` its `install` events",
            content((Install = "application/json"), (Install = "text/event-stream"))),
        (status = 404, description = "`not_found`: no such install", body = ErrorBody),
    ))]
pub async fn get(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let install = view::read(&mut conn, project.id, id).await?;
    drop(conn);
    let streaming = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"));
    if !streaming {
        return Ok(axum::Json(install).into_response());
    }
    Ok(stream(state, project.id, install).into_response())
}

/// The install's events: sent at once, then after every change notified
/// for it (the timer is the backstop for notifications missed while the
/// shared listener reconnects).
fn stream(
    state: AppState,
    project_id: Uuid,
    first: Install,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let id = first.id;
    let mut wake = state.installs.subscribe();
    let events = async_stream::stream! {
        let mut last = String::new();
        let mut current = first;
        loop {
            let data = serde_json::to_string(&current).unwrap_or_default();
            if data != last {
                yield Ok(Event::default().event("install").data(data.clone()));
                last = data;
            }
            if current.status.is_terminal() {
                break;
            }
            let deadline = tokio::time::sleep(Duration::from_secs(5));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    woken = wake.recv() => match woken {
                        Ok(changed) if changed != id => continue,
                        _ => break,
                    },
                    _ = &mut deadline => break,
                }
            }
            let read = async {
                let mut conn = state.pool.acquire().await?;
                view::read(&mut conn, project_id, id).await
            };
            match read.await {
                Ok(now) => current = now,
                // Gone (its project deleted) or the database away: the
                // client reconnects if it still cares.
                Err(error) => {
                    tracing::warn!(%error, install = %id, "install stream read failed");
                    break;
                }
            }
        }
    };
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// What an install made, as its teardown needs it.
#[derive(sqlx::FromRow)]
struct Made {
    phase: String,
    server_id: Uuid,
    app_id: Option<Uuid>,
}

/// Destroy what an install made: its app (through the workers, on the
/// server), then its server (forced).
///
/// A create still running is waited for, as a server's destroy does; a
/// deploy or verify still running is cancelled. Asking again answers the
/// same install.
#[utoipa::path(delete, path = "/v1/installs/{id}", tag = "cloud", operation_id = "delete_install",
    security(("project_token" = ["owner"])),
    params(("id" = Uuid, Path, description = "The install's id")),
    responses(
        (status = 202, description = "`destroying` (or already `destroyed`); `Location` is the install's URL",
            body = Install, headers(("Location" = String, description = "The install's URL"))),
        (status = 404, description = "`not_found`: no such install", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    Owner(project): Owner,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    // Its operations still running are of no use now. They are cancelled
    // before the install is locked, in the order a worker ending one takes
    // its locks (the job, the deployment, then the install), so the two
    // cannot deadlock; the install then follows none of them.
    let running: Vec<Uuid> = sqlx::query_scalar(&format!(
        "SELECT d.id FROM installs i JOIN deployments d ON d.id IN (i.deploy_id, i.verify_id)
         WHERE i.project_id = $1 AND i.id = $2 AND i.phase IN ('server', 'deploying', 'verifying')
           AND d.state NOT IN {}",
        slipway_shared::DeploymentState::TERMINAL_SQL
    ))
    .bind(project.id)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    for operation in running {
        deployments::cancel(&mut tx, &state.names, project.id, operation).await?;
    }
    let found: Option<Made> = sqlx::query_as(
        "SELECT phase, server_id, app_id FROM installs
         WHERE project_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(project.id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Made {
        phase,
        server_id,
        app_id,
    } = found.ok_or(ApiError::NotFound("install"))?;
    if !matches!(
        Phase::parse(&phase),
        Some(Phase::Destroying | Phase::Destroyed)
    ) {
        sqlx::query(
            "UPDATE installs SET phase = 'destroying', failed_step = NULL, error_code = NULL,
                    error_message = NULL, updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let app_destroy = match app_id {
            Some(app_id) => {
                crate::routes::operations::queue_destroy(&mut tx, &state, project.id, app_id, true)
                    .await?
            }
            None => None,
        };
        match app_destroy {
            // The server goes once the app is off it.
            Some(operation) => {
                sqlx::query("UPDATE installs SET app_destroy_id = $2 WHERE id = $1")
                    .bind(id)
                    .bind(operation)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                slipway_shared::db::servers::queue_destroy(
                    &mut tx,
                    &state.names,
                    project.id,
                    server_id,
                )
                .await?;
                installs_db::settle(&mut tx, id).await?;
            }
        }
    }
    let view = view::read(&mut tx, project.id, id).await?;
    tx.commit().await?;
    slipway_shared::db::outbox::committed();
    Ok(accepted(view))
}
