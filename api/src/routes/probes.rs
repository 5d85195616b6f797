//! `POST /v1/probes`: sends a probe deployment through all three stages.

use crate::auth::Project;
use crate::error::ApiError;
use crate::extract::OptionalJson;
use crate::routes::deployments::accepted;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use slipway_shared::db::deployments::{self, NewDeployment};
use slipway_shared::probe::{ProbeSpec, MAX_PROBE_DURATION_MS};
use uuid::Uuid;

#[derive(Deserialize, Default)]
pub struct CreateProbe {
    /// Run the probe in this app's lane (one deployment per app at a time).
    app: Option<String>,
    #[serde(flatten)]
    spec: ProbeSpec,
}

#[tracing::instrument(skip_all)]
pub async fn create(
    project: Project,
    State(state): State<AppState>,
    OptionalJson(body): OptionalJson<CreateProbe>,
) -> Result<Response, ApiError> {
    if body.spec.duration_ms > MAX_PROBE_DURATION_MS {
        return Err(ApiError::validation(format!(
            "duration_ms: at most {MAX_PROBE_DURATION_MS}"
        )));
    }
    if !(1..=100).contains(&body.spec.fail_times) {
        return Err(ApiError::validation("fail_times: must be 1 to 100"));
    }
    let probe = Some(serde_json::to_value(&body.spec).map_err(anyhow::Error::from)?);
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
