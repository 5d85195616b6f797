//! `POST /v1/probes`: sends a probe deployment through all three stages.

use crate::auth::Member;
use crate::error::ApiError;
use crate::extract::OptionalJson;
use crate::openapi::{views, ErrorBody};
use crate::routes::deployments::accepted;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use slipway_shared::db::deployments::{self, NewDeployment};
use slipway_shared::job::Stage;
use slipway_shared::probe::{ProbeFailure, ProbeSpec, MAX_PROBE_DURATION_MS};
use uuid::Uuid;

/// What a probe does; every field is optional.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProbe {
    /// Run the probe in this app's lane (one deployment per app at a time).
    #[schema(value_type = Option<crate::openapi::formats::Name>)]
    app: Option<String>,
    /// How long the child process runs on each stage (default 100).
    #[schema(minimum = 0, maximum = 3_600_000)]
    duration_ms: Option<u64>,
    /// Make this stage fail, for checking retries and dead letters.
    #[schema(value_type = Option<String>, pattern = "^(build|provision|deploy)$")]
    fail_stage: Option<Stage>,
    /// `retryable` or `permanent`.
    #[schema(value_type = Option<String>, pattern = "^(retryable|permanent)$")]
    fail_kind: Option<ProbeFailure>,
    /// How many claims of the failing stage's job fail before one succeeds
    /// (default 1).
    #[schema(minimum = 1, maximum = 100)]
    fail_times: Option<i32>,
}

impl CreateProbe {
    fn spec(&self) -> ProbeSpec {
        let defaults = ProbeSpec::default();
        ProbeSpec {
            duration_ms: self.duration_ms.unwrap_or(defaults.duration_ms),
            fail_stage: self.fail_stage,
            fail_kind: self.fail_kind,
            fail_times: self.fail_times.unwrap_or(defaults.fail_times),
        }
    }
}

/// Send a probe deployment through all stages (build, provision, deploy).
#[utoipa::path(post, path = "/v1/probes", tag = "operations", operation_id = "create_probe",
    security(("project_token" = ["member"])), request_body(content = Option<CreateProbe>, description = "Optional; an empty body runs the defaults"),
    responses(
        (status = 202, description = "Queued; `Location` is the deployment's URL", body = views::Accepted,
            headers(("Location" = String, description = "The deployment's URL"))),
        (status = 404, description = "`not_found`: no such app", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    Member(project): Member,
    State(state): State<AppState>,
    OptionalJson(body): OptionalJson<CreateProbe>,
) -> Result<Response, ApiError> {
    let spec = body.spec();
    if spec.duration_ms > MAX_PROBE_DURATION_MS {
        return Err(ApiError::validation(format!(
            "duration_ms: at most {MAX_PROBE_DURATION_MS}"
        )));
    }
    if !(1..=100).contains(&spec.fail_times) {
        return Err(ApiError::validation("fail_times: must be 1 to 100"));
    }
    let probe = Some(serde_json::to_value(&spec).map_err(anyhow::Error::from)?);
    let Some(name) = &body.app else {
        // No app, no lane: one statement, committed on its own.
        let created = deployments::create_unlaned(
            &state.pool,
            &state.names,
            NewDeployment {
                project_id: project.id,
                app_id: None,
                kind: "probe",
                source: serde_json::json!({}),
                probe,
            },
        )
        .await?;
        slipway_shared::db::outbox::committed();
        return Ok(accepted(created.id, "queued"));
    };
    let mut tx = state.pool.begin().await?;
    let app_id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM apps WHERE project_id = $1 AND name = $2")
            .bind(project.id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    let app_id = app_id.ok_or(ApiError::NotFound("app"))?;
    let created = deployments::create(
        &mut tx,
        &state.names,
        NewDeployment {
            project_id: project.id,
            app_id: Some(app_id),
            kind: "probe",
            source: serde_json::json!({}),
            probe,
        },
    )
    .await?;
    tx.commit().await?;
    slipway_shared::db::outbox::committed();
    Ok(accepted(created.id, "queued"))
}
