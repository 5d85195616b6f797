//! `POST /v1/targets/{target}/setup`: server setup as a job. Like a check
//! it never touches the server from the API: it queues a `target_setup`
//! deployment that the provision worker carries out (OS detected, the
//! engine and Caddy installed, the deploy user and data folder made, the
//! target switched to that user and checked) and the deploy worker
//! finishes as a check, with logs and a result like any deployment.

use crate::auth::Owner;
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::openapi::{formats, views, ErrorBody};
use crate::routes::deployments::accepted;
use crate::routes::targets::resolve;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use slipway_shared::db::target_setup::{create_setup, SetupRequest};

/// What the setup makes; every field optional.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupTarget {
    /// The non-root user Slipway connects as from then on (default
    /// `slipway`).
    #[schema(example = "slipway")]
    deploy_user: Option<String>,
    /// One apt source line the server installs from, written to
    /// `/etc/apt/sources.list.d/slipway.list`; absent: the server's own
    /// sources.
    #[schema(example = "deb http://deb.debian.org/debian bookworm main")]
    apt_source: Option<String>,
}

/// Set the server up as an ssh target through the workers.
///
/// Debian or Ubuntu only (else the deployment fails with
/// `unsupported_os`). Idempotent: a second setup changes nothing and says
/// so in its logs.
#[utoipa::path(post, path = "/v1/targets/{target}/setup", tag = "targets", operation_id = "setup_target",
    security(("project_token" = ["owner"])), request_body = SetupTarget,
    params(("target" = formats::TargetKey, Path, description = "The target's name or id")),
    responses(
        (status = 202, description = "Queued; `Location` is the deployment's URL", body = views::Accepted,
            headers(("Location" = String, description = "The deployment's URL"))),
        (status = 404, description = "`not_found`: no such target", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a bad `deploy_user` or `apt_source`; `target_not_ssh`: the local target is not set up", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn setup(
    Owner(project): Owner,
    State(state): State<AppState>,
    Path(key): Path<String>,
    Json(body): Json<SetupTarget>,
) -> Result<Response, ApiError> {
    let request = SetupRequest::parse(body.deploy_user.as_deref(), body.apt_source.as_deref())?;
    let mut tx = state.pool.begin().await?;
    let id = resolve(&mut tx, project.id, &key).await?;
    let kind: String = sqlx::query_scalar("SELECT kind FROM targets WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if kind != "ssh" {
        return Err(ApiError::Invalid {
            code: "target_not_ssh",
            message: format!("target {key} is the local target: only ssh targets are set up"),
        });
    }
    let deployment = create_setup(&mut tx, &state.names, project.id, id, &request).await?;
    tx.commit().await?;
    slipway_shared::db::outbox::committed();
    Ok(accepted(deployment, "built"))
}
