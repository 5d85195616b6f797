//! App operations that act on the target: stop, start, restart, scale and
//! destroy.
//! The API only records them: each is a deployment with an `action`
//! (`202` with its `Location`), run by the workers in the app's lane, with a
//! timeline, logs and cancel like a deploy. The API never touches podman or
//! Caddy.

use crate::auth::{Member, Project};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::openapi::{views, ErrorBody};
use crate::routes::deployments::accepted;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use slipway_shared::db::deployments::{self, NewDeployment};
use slipway_shared::operation::{AppAction, MAX_REPLICAS};
use slipway_shared::DeploymentState;
use sqlx::PgConnection;
use uuid::Uuid;

/// Stop the app: its route answers 503, its containers are stopped, its
/// release becomes paused.
#[utoipa::path(post, path = "/v1/apps/{app}/stop", tag = "apps", operation_id = "stop_app",
    security(("project_token" = ["member"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")),
    responses(
        (status = 202, description = "Queued as a deployment with action `stop`; `Location` is its URL",
            body = views::Accepted, headers(("Location" = String, description = "The deployment's URL"))),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
        (status = 409, description = "`not_deployed` (no release yet) or `app_destroying`", body = ErrorBody),
    ))]
pub async fn stop(
    Member(project): Member,
    state: State<AppState>,
    app: Path<String>,
) -> Result<Response, ApiError> {
    operate(project, state, app, AppAction::Stop).await
}

/// Start a stopped app: fresh containers of its current release's image,
/// health-checked before the route points at them (a running app is left
/// alone).
#[utoipa::path(post, path = "/v1/apps/{app}/start", tag = "apps", operation_id = "start_app",
    security(("project_token" = ["member"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")),
    responses(
        (status = 202, description = "Queued as a deployment with action `start`; `Location` is its URL",
            body = views::Accepted, headers(("Location" = String, description = "The deployment's URL"))),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
        (status = 409, description = "`not_deployed` (no release yet) or `app_destroying`", body = ErrorBody),
    ))]
pub async fn start(
    Member(project): Member,
    state: State<AppState>,
    app: Path<String>,
) -> Result<Response, ApiError> {
    operate(project, state, app, AppAction::Start).await
}

/// Restart with no downtime: fresh containers of the current release's
/// image are health-checked and get the route, then the old ones are
/// drained and stopped.
#[utoipa::path(post, path = "/v1/apps/{app}/restart", tag = "apps", operation_id = "restart_app",
    security(("project_token" = ["member"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")),
    responses(
        (status = 202, description = "Queued as a deployment with action `restart`; `Location` is its URL",
            body = views::Accepted, headers(("Location" = String, description = "The deployment's URL"))),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
        (status = 409, description = "`not_deployed` (no release yet) or `app_destroying`", body = ErrorBody),
    ))]
pub async fn restart(
    Member(project): Member,
    state: State<AppState>,
    app: Path<String>,
) -> Result<Response, ApiError> {
    operate(project, state, app, AppAction::Restart).await
}

/// The app's id, locked; 404 for none, 409 when it is being destroyed.
pub async fn lock_app(
    conn: &mut PgConnection,
    project_id: Uuid,
    name: &str,
) -> Result<Uuid, ApiError> {
    let row: Option<(Uuid, bool)> = sqlx::query_as(
        "SELECT id, destroying_at IS NOT NULL FROM apps WHERE project_id = $1 AND name = $2
         FOR UPDATE",
    )
    .bind(project_id)
    .bind(name)
    .fetch_optional(conn)
    .await?;
    match row {
        None => Err(ApiError::NotFound("app")),
        Some((_, true)) => Err(destroying()),
        Some((id, false)) => Ok(id),
    }
}

pub fn destroying() -> ApiError {
    ApiError::conflict("app_destroying", "the app is being destroyed")
}

#[tracing::instrument(skip_all, fields(app = %app, action = %action))]
async fn operate(
    project: Project,
    State(state): State<AppState>,
    Path(app): Path<String>,
    action: AppAction,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let app_id = lock_app(&mut tx, project.id, &app).await?;
    crate::routes::installs::require_server_ready(&mut tx, app_id).await?;
    require_release(&mut tx, app_id, action.as_str()).await?;
    let id = create(&mut tx, &state, project.id, app_id, action).await?;
    tx.commit().await?;
    slipway_shared::db::outbox::committed();
    Ok(accepted(id, "queued"))
}

/// 409 `not_deployed` unless the app has a current (live or paused) release.
async fn require_release(
    conn: &mut PgConnection,
    app_id: Uuid,
    what: &str,
) -> Result<(), ApiError> {
    let deployed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM releases WHERE app_id = $1 AND state IN ('live', 'paused'))",
    )
    .bind(app_id)
    .fetch_one(conn)
    .await?;
    if deployed {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "not_deployed",
            format!("the app has no release to {what}; deploy it first"),
        ))
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// Containers of the current release behind the route, 1 to 16.
    #[schema(minimum = 1, maximum = 16, example = 2)]
    #[serde(deserialize_with = "crate::extract::whole_number")]
    replicas: u32,
}

/// Scale to `replicas` containers of the current release.
///
/// Sets `runtime.replicas` and restarts the app with no downtime, so N
/// fresh containers of its current image serve behind the route.
#[utoipa::path(post, path = "/v1/apps/{app}/scale", tag = "apps", operation_id = "scale_app",
    security(("project_token" = ["member"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")), request_body = Scale,
    responses(
        (status = 202, description = "The restart, queued; `Location` is its URL",
            body = views::Accepted, headers(("Location" = String, description = "The deployment's URL"))),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
        (status = 409, description = "`not_deployed` (no release yet) or `app_destroying`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: replicas out of range", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(app = %app))]
pub async fn scale(
    Member(project): Member,
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<Scale>,
) -> Result<Response, ApiError> {
    if !(1..=MAX_REPLICAS).contains(&body.replicas) {
        return Err(ApiError::validation(format!(
            "replicas must be within 1..={MAX_REPLICAS}"
        )));
    }
    let mut tx = state.pool.begin().await?;
    let app_id = lock_app(&mut tx, project.id, &app).await?;
    require_release(&mut tx, app_id, "scale").await?;
    sqlx::query(
        "UPDATE apps SET runtime_settings = jsonb_set(COALESCE(runtime_settings, '{}'), '{replicas}',
                                                      to_jsonb($2::int)),
                updated_at = now()
         WHERE id = $1",
    )
    .bind(app_id)
    .bind(i32::try_from(body.replicas).unwrap_or(1))
    .execute(&mut *tx)
    .await?;
    let id = create(&mut tx, &state, project.id, app_id, AppAction::Restart).await?;
    tx.commit().await?;
    slipway_shared::db::outbox::committed();
    Ok(accepted(id, "queued"))
}

async fn create(
    conn: &mut PgConnection,
    state: &AppState,
    project_id: Uuid,
    app_id: Uuid,
    action: AppAction,
) -> Result<Uuid, ApiError> {
    let created = deployments::create(
        conn,
        &state.names,
        NewDeployment {
            project_id,
            app_id: Some(app_id),
            kind: "app",
            source: action.source(),
            probe: None,
        },
    )
    .await?;
    Ok(created.id)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DestroyQuery {
    /// Drop the app's add-ons' data too (databases, volumes); without it
    /// they are detached and their data stays on its server.
    #[serde(default)]
    purge: bool,
}

/// Destroy an app with no deployment in progress.
///
/// An app with nothing on a target
/// (it never reached the deploy stage, and no add-on of it was created)
/// goes at once (`204`). Otherwise it is marked `destroying` (no new
/// deployments) and a destroy deployment removes its route and containers,
/// with `purge` its add-ons' databases and volumes, and then the app
/// (`202`); a failed destroy can be asked for again.
#[utoipa::path(delete, path = "/v1/apps/{app}", tag = "apps", operation_id = "destroy_app",
    security(("project_token" = ["member"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name"), DestroyQuery),
    responses(
        (status = 202, description = "The destroy deployment, queued (the app is `destroying` \
            meanwhile; deploys answer 409 `app_destroying`)",
            body = views::Accepted, headers(("Location" = String, description = "The deployment's URL"))),
        (status = 204, description = "Deleted at once: nothing of the app was on a target"),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
        (status = 409, description = "`app_busy` (deployments in progress: cancel them first) or \
            `app_destroying`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn destroy(
    Member(project): Member,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<DestroyQuery>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM apps WHERE project_id = $1 AND name = $2")
            .bind(project.id)
            .bind(&name)
            .fetch_optional(&mut *tx)
            .await?;
    let id = id.ok_or(ApiError::NotFound("app"))?;
    let queued = queue_destroy(&mut tx, &state, project.id, id, query.purge).await?;
    tx.commit().await?;
    match queued {
        Some(deployment) => {
            slipway_shared::db::outbox::committed();
            Ok(accepted(deployment, "queued"))
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// Destroys app `id` (its row locked here): at once when nothing of it is
/// on a target (`None`), else marks it destroying and queues its destroy
/// deployment (`Some`). 409 `app_busy` while deployments of it run,
/// `app_destroying` when a destroy already runs. An install's teardown
/// destroys its app through this too.
pub async fn queue_destroy(
    tx: &mut PgConnection,
    state: &AppState,
    project_id: Uuid,
    id: Uuid,
    purge: bool,
) -> Result<Option<Uuid>, ApiError> {
    let already: bool =
        sqlx::query_scalar("SELECT destroying_at IS NOT NULL FROM apps WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    let busy: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM deployments WHERE app_id = $1 AND state NOT IN {})",
        DeploymentState::TERMINAL_SQL
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if busy && already {
        return Err(destroying());
    }
    if busy {
        return Err(ApiError::conflict(
            "app_busy",
            "the app has deployments in progress; cancel them first",
        ));
    }
    if purge {
        sqlx::query("UPDATE addons SET state = 'purging' WHERE app_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    // An add-on the provision stage created has data to drop when purged.
    let on_target: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM releases WHERE app_id = $1)
             OR EXISTS (SELECT 1 FROM deployment_events e JOIN deployments d ON d.id = e.deployment_id
                        WHERE d.app_id = $1 AND e.to_state = 'deploying')
             OR ($2 AND EXISTS (SELECT 1 FROM addons WHERE app_id = $1 AND ready_at IS NOT NULL))",
    )
    .bind(id)
    .bind(purge)
    .fetch_one(&mut *tx)
    .await?;
    if !on_target {
        let blobs: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT sha256 FROM app_versions WHERE app_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        // Its deployments never ran anything: they go with it.
        sqlx::query("DELETE FROM deployments WHERE app_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        crate::routes::versions::drop_unused_blobs(tx, &blobs).await?;
        return Ok(None);
    }
    sqlx::query("UPDATE apps SET destroying_at = COALESCE(destroying_at, now()) WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let deployment = create(tx, state, project_id, id, AppAction::Destroy).await?;
    Ok(Some(deployment))
}
