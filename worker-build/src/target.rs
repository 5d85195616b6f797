//! What a build is for: the deployment's requested source, its app, project
//! and build settings, read once at the start of the job.

use slipway_shared::build_settings::AppBuildSettings;
use slipway_shared::domain::{GitRef, GitUrl};
use slipway_shared::job::JobError;
use sqlx::PgPool;
use uuid::Uuid;

pub struct BuildTarget {
    pub app_id: Uuid,
    pub project: String,
    pub app: String,
    source: serde_json::Value,
    app_git_url: Option<String>,
    app_git_ref: Option<String>,
    build_settings: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct TargetRow {
    app_id: Option<Uuid>,
    project: String,
    app: Option<String>,
    source: serde_json::Value,
    git_url: Option<String>,
    git_ref: Option<String>,
    build_settings: Option<serde_json::Value>,
}

/// The source a deployment asked for.
pub enum Requested {
    Git {
        url: GitUrl,
        reference: GitRef,
    },
    Version {
        version_id: Uuid,
    },
    /// The image of an earlier deployment of the app, without a build.
    Rollback {
        deployment_id: Uuid,
    },
    /// An app operation (stop, start, restart, destroy): nothing to build.
    Action(slipway_shared::operation::AppAction),
}

fn invalid(message: String) -> JobError {
    JobError::permanent("invalid_build_settings", message)
}

impl BuildTarget {
    pub async fn load(pool: &PgPool, deployment_id: Uuid) -> Result<BuildTarget, JobError> {
        let row: Option<TargetRow> = sqlx::query_as(
            "SELECT d.app_id, p.name AS project, a.name AS app, d.source, a.git_url, a.git_ref,
                    a.build_settings
             FROM deployments d JOIN projects p ON p.id = d.project_id
             LEFT JOIN apps a ON a.id = d.app_id
             WHERE d.id = $1",
        )
        .bind(deployment_id)
        .fetch_optional(pool)
        .await
        .map_err(|e| JobError::Retryable(format!("database: {e}")))?;
        let Some(TargetRow {
            app_id: Some(app_id),
            project,
            app: Some(app),
            source,
            git_url,
            git_ref,
            build_settings: build,
        }) = row
        else {
            return Err(JobError::permanent(
                "app_not_found",
                "the deployment's app no longer exists",
            ));
        };
        Ok(BuildTarget {
            app_id,
            project,
            app,
            source,
            app_git_url: git_url,
            app_git_ref: git_ref,
            build_settings: build.unwrap_or_default(),
        })
    }

    /// The deployment's own source, falling back to the app's default
    /// repository and ref (`HEAD`, the remote's default branch, without one).
    pub fn requested(&self) -> Result<Requested, JobError> {
        if self.source.get("action").is_some() {
            return slipway_shared::operation::AppAction::of_source(&self.source)
                .map(Requested::Action)
                .ok_or_else(|| JobError::permanent("invalid_source", "unknown app action"));
        }
        if let Some(earlier) = self.source.get("rollback_to") {
            let deployment_id = earlier
                .as_str()
                .and_then(|v| Uuid::parse_str(v).ok())
                .ok_or_else(|| {
                    JobError::permanent("invalid_source", "rollback_to is not a deployment id")
                })?;
            return Ok(Requested::Rollback { deployment_id });
        }
        if let Some(version) = self.source.get("version") {
            let version_id = version
                .as_str()
                .and_then(|v| Uuid::parse_str(v).ok())
                .ok_or_else(|| {
                    JobError::permanent("invalid_source", "the deployment's version is not an id")
                })?;
            return Ok(Requested::Version { version_id });
        }
        let text = |key: &str| self.source.get(key).and_then(|v| v.as_str());
        let url = text("git_url")
            .or(self.app_git_url.as_deref())
            .ok_or_else(|| {
                JobError::permanent(
                    "no_source",
                    "neither the deployment nor its app names a git repository or an uploaded version",
                )
            })?;
        let reference = text("git_ref")
            .or(self.app_git_ref.as_deref())
            .unwrap_or("HEAD");
        Ok(Requested::Git {
            url: GitUrl::parse(url)
                .map_err(|e| JobError::permanent("invalid_source", e.to_string()))?,
            reference: GitRef::parse(reference)
                .map_err(|e| JobError::permanent("invalid_source", e.to_string()))?,
        })
    }

    /// The app's build settings (`build` in the API), read leniently: the
    /// API refused unknown keys when they were written.
    pub fn build_settings(&self) -> Result<AppBuildSettings, JobError> {
        AppBuildSettings::parse(&self.build_settings).map_err(invalid)
    }
}
