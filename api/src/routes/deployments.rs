//! Deployments: create (202 + Location), read with timeline and attempts,
//! list per app (paginated), cancel.

use crate::auth::{Member, Viewer};
use crate::error::ApiError;
use crate::extract::{OptionalJson, Path, Query};
use crate::openapi::{views, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use slipway_shared::db::deployments::{self, CancelOutcome, NewDeployment};
use slipway_shared::domain::GitRef;
use slipway_shared::state::DeploymentState;
use uuid::Uuid;

/// What to deploy: at most one of `git_ref`, `version` and `rollback_to`;
/// none (or an empty body) deploys the app's default `git_ref`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// A branch, tag or commit of the app's repository.
    #[schema(value_type = Option<crate::openapi::formats::GitRefName>)]
    git_ref: Option<String>,
    /// An uploaded archive of the app (`POST /v1/apps/{app}/versions`).
    version: Option<Uuid>,
    /// An earlier deployment of the app whose image is deployed again,
    /// without a build: a rollback.
    rollback_to: Option<Uuid>,
}

/// Answers 202 with the new deployment's id and a `Location` header.
pub fn accepted(id: Uuid, state: &str) -> Response {
    let location = format!("/v1/deployments/{id}");
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location.clone())],
        axum::Json(json!({"id": id, "state": state, "url": location})),
    )
        .into_response()
}

/// Deploy the app: its repository at `git_ref` (or its default), an
/// uploaded archive (`version`), or an earlier deployment's image again
/// without a build (`rollback_to`).
#[utoipa::path(post, path = "/v1/apps/{app}/deployments", tag = "deployments",
    operation_id = "create_deployment", security(("project_token" = ["member"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name")),
    request_body(content = Option<CreateDeployment>, description = "Optional; an empty body deploys the default ref"),
    responses(
        (status = 202, description = "Queued; `Location` is the deployment's URL", body = views::Accepted,
            headers(("Location" = String, description = "The deployment's URL"))),
        (status = 404, description = "`not_found`: no such app, version or deployment to roll back to", body = ErrorBody),
        (status = 409, description = "`app_destroying` (the app is being destroyed) or `server_not_ready` \
            (the app's install is still making its server)", body = ErrorBody),
        (status = 422, description = "`validation_failed`, `no_source` (no git_url and no version) \
            or `not_built` (the rollback has no image)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(app = %app))]
pub async fn create(
    Member(project): Member,
    State(state): State<AppState>,
    Path(app): Path<String>,
    OptionalJson(body): OptionalJson<CreateDeployment>,
) -> Result<Response, ApiError> {
    let requested_ref = body.git_ref.as_deref().map(GitRef::parse).transpose()?;
    let sources = [
        requested_ref.is_some(),
        body.version.is_some(),
        body.rollback_to.is_some(),
    ];
    if sources.iter().filter(|given| **given).count() > 1 {
        return Err(ApiError::validation(
            "give at most one of git_ref, version and rollback_to",
        ));
    }
    let created = crate::retry::on_abort(|| {
        create_in_lane(&state, project.id, &app, &body, requested_ref.as_ref())
    })
    .await?;
    // A deployment held behind another in its app's lane wrote no message:
    // waking the relay would only cost it an empty scan.
    if created.dispatched {
        slipway_shared::db::outbox::committed();
    }
    Ok(accepted(created.id, "queued"))
}

/// The deployment's row (and its job, unless it waits in the app's lane),
/// in one transaction that holds the app's lock.
async fn create_in_lane(
    state: &AppState,
    project_id: Uuid,
    app: &str,
    body: &CreateDeployment,
    requested_ref: Option<&GitRef>,
) -> Result<deployments::Created, ApiError> {
    let mut tx = state.pool.begin().await?;
    // Locked here rather than in `deployments::create`, saving a round trip;
    // a statement of its own, so the creating statement's snapshot sees the
    // deployment of a request that held the lock before us.
    let found: Option<(Uuid, Option<String>, Option<String>, bool)> = sqlx::query_as(
        "SELECT id, git_url, git_ref, destroying_at IS NOT NULL FROM apps
         WHERE project_id = $1 AND name = $2 FOR UPDATE",
    )
    .bind(project_id)
    .bind(app)
    .fetch_optional(&mut *tx)
    .await?;
    let (app_id, git_url, default_ref, destroying) = found.ok_or(ApiError::NotFound("app"))?;
    if destroying {
        return Err(crate::routes::operations::destroying());
    }
    crate::routes::installs::require_server_ready(&mut tx, app_id).await?;
    let source = match (body.version, body.rollback_to) {
        (Some(version), _) => {
            crate::routes::versions::for_deployment(&mut tx, app_id, version).await?
        }
        (None, Some(earlier)) => {
            let image: Option<Option<String>> = sqlx::query_scalar(
                "SELECT image_ref FROM deployments WHERE id = $1 AND app_id = $2",
            )
            .bind(earlier)
            .bind(app_id)
            .fetch_optional(&mut *tx)
            .await?;
            match image {
                None => return Err(ApiError::NotFound("deployment")),
                Some(None) => {
                    return Err(ApiError::Invalid {
                        code: "not_built",
                        message: format!("deployment {earlier} has no image to roll back to"),
                    })
                }
                Some(Some(_)) => json!({"rollback_to": earlier}),
            }
        }
        (None, None) => {
            let git_url = git_url.ok_or_else(|| ApiError::Invalid {
                code: "no_source",
                message: "the app has no git_url; set one with PATCH /v1/apps/{app} or deploy an uploaded version".into(),
            })?;
            let git_ref = requested_ref.map(|r| r.as_str().to_owned()).or(default_ref);
            deployments::git_source(&git_url, git_ref.as_deref())
        }
    };
    let created = deployments::create_with_app_locked(
        &mut tx,
        &state.names,
        NewDeployment {
            project_id,
            app_id: Some(app_id),
            kind: "app",
            source,
            probe: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// The app's deployments, newest first.
#[utoipa::path(get, path = "/v1/apps/{app}/deployments", tag = "deployments",
    operation_id = "list_deployments", security(("project_token" = ["viewer"])), params(("app" = crate::openapi::formats::Name, Path, description = "The app's name"), crate::extract::PageQuery),
    responses(
        (status = 200, description = "A page of deployments", body = views::Page<views::DeploymentSummary>),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
    ))]
pub async fn list(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<crate::extract::PageQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = query.limit()?;
    let app_id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM apps WHERE project_id = $1 AND name = $2")
            .bind(project.id)
            .bind(&app)
            .fetch_optional(&state.pool)
            .await?;
    let app_id = app_id.ok_or(ApiError::NotFound("app"))?;
    // Ids are UUIDv7: ordering by id is ordering by creation time.
    let rows: Vec<Summary> = sqlx::query_as(
        "SELECT id, state, source, error_code, created_at, finished_at FROM deployments
         WHERE app_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(app_id)
    .bind(query.before)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<&Summary> = rows.iter().take(limit as usize).collect();
    let next = if more {
        items.last().map(|s| s.id)
    } else {
        None
    };
    Ok(axum::Json(json!({"items": items, "next": next})))
}

#[derive(serde::Serialize, sqlx::FromRow)]
struct Summary {
    id: Uuid,
    state: String,
    source: Value,
    error_code: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(serde::Serialize, sqlx::FromRow)]
struct Detail {
    id: Uuid,
    app: Option<String>,
    /// The target a `target_check` deployment checks.
    target: Option<String>,
    kind: String,
    state: String,
    source: Value,
    probe: Option<Value>,
    resolved_commit: Option<String>,
    image_digest: Option<String>,
    /// `REGISTRY/REPOSITORY@sha256:…`: what a deploy pulls.
    image_ref: Option<String>,
    /// The build plan the build stage followed (stack, commands, Containerfile).
    build_plan: Option<Value>,
    /// Where the deployment's release answers, once it went live.
    url: Option<String>,
    /// The same over HTTPS, when the target serves it.
    https_url: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    trace_id: String,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(serde::Serialize, sqlx::FromRow)]
struct EventRow {
    from: Option<String>,
    to: String,
    at: chrono::DateTime<chrono::Utc>,
    detail: Option<String>,
}

#[derive(serde::Serialize, sqlx::FromRow)]
struct AttemptRow {
    stage: String,
    job_state: String,
    max_attempts: i32,
    attempt: i32,
    worker: String,
    claimed_at: chrono::DateTime<chrono::Utc>,
    heartbeat_at: chrono::DateTime<chrono::Utc>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
    outcome: Option<String>,
    error: Option<String>,
}

/// A deployment with its timeline (`events`) and job attempts.
#[utoipa::path(get, path = "/v1/deployments/{id}", tag = "deployments",
    operation_id = "get_deployment", security(("project_token" = ["viewer"])), params(("id" = Uuid, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "The deployment", body = views::Deployment),
        (status = 404, description = "`not_found`: no such deployment", body = ErrorBody),
    ))]
pub async fn get(
    Viewer(project): Viewer,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Value>, ApiError> {
    let detail: Option<Detail> = sqlx::query_as(
        "SELECT d.id, a.name AS app, (SELECT name FROM targets WHERE id = d.target_id) AS target, d.kind, d.state, d.source, d.probe, d.resolved_commit, d.image_digest,
                d.image_ref, d.build_plan, (SELECT url FROM releases WHERE deployment_id = d.id) AS url,
                (SELECT https_url FROM releases WHERE deployment_id = d.id) AS https_url,
                d.error_code, d.error_message, d.trace_id, d.created_at, d.updated_at, d.finished_at
         FROM deployments d LEFT JOIN apps a ON a.id = d.app_id WHERE d.id = $1 AND d.project_id = $2",
    )
    .bind(id)
    .bind(project.id)
    .fetch_optional(&state.pool)
    .await?;
    let detail = detail.ok_or(ApiError::NotFound("deployment"))?;
    let events: Vec<EventRow> = sqlx::query_as(
        "SELECT from_state AS \"from\", to_state AS \"to\", at, detail FROM deployment_events
         WHERE deployment_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await?;
    let attempts: Vec<AttemptRow> = sqlx::query_as(
        "SELECT j.stage, j.state AS job_state, j.max_attempts, a.attempt, a.worker, a.claimed_at,
                a.heartbeat_at, a.finished_at, a.outcome, a.error
         FROM jobs j JOIN job_attempts a ON a.job_id = j.id WHERE j.deployment_id = $1
         ORDER BY a.claimed_at",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await?;
    let mut body = serde_json::to_value(&detail).map_err(anyhow::Error::from)?;
    body["events"] = serde_json::to_value(events).map_err(anyhow::Error::from)?;
    body["attempts"] = serde_json::to_value(attempts).map_err(anyhow::Error::from)?;
    Ok(axum::Json(body))
}

/// Cancel a deployment that has not ended.
#[utoipa::path(post, path = "/v1/deployments/{id}/cancel", tag = "deployments",
    operation_id = "cancel_deployment", security(("project_token" = ["member"])), params(("id" = Uuid, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "Cancelled", body = views::Cancelled),
        (status = 404, description = "`not_found`: no such deployment", body = ErrorBody),
        (status = 409, description = "`already_finished`: the deployment already ended", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(deployment.id = %id))]
pub async fn cancel(
    Member(project): Member,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Value>, ApiError> {
    let outcome = crate::retry::on_abort(|| async {
        let mut tx = state.pool.begin().await?;
        let outcome = deployments::cancel(&mut tx, &state.names, project.id, id).await?;
        tx.commit().await?;
        Ok(outcome)
    })
    .await?;
    slipway_shared::db::outbox::committed();
    match outcome {
        CancelOutcome::Cancelled => {
            slipway_shared::metrics::deployments_ended(DeploymentState::Cancelled, 1);
            Ok(axum::Json(json!({"id": id, "state": "cancelled"})))
        }
        CancelOutcome::AlreadyEnded(s) => Err(ApiError::conflict(
            "already_finished",
            format!("the deployment already ended: {s}"),
        )),
        CancelOutcome::NotFound => Err(ApiError::NotFound("deployment")),
    }
}
