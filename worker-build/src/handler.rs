//! The `build.v1` job: fetch the deployment's source (a git ref or an
//! uploaded version), choose the build plan, reuse the image of an earlier
//! identical build or build and push a new one, and record commit, digest
//! and plan on the deployment together with the job's outcome.

use crate::config::BuildSettings;
use crate::image::{self, BuildRequest, ImageRepository};
use crate::plan::{self, BuildPlan};
use crate::reuse;
use crate::source::git::{self, FetchOptions, GitSource};
use crate::target::{BuildTarget, Requested};
use anyhow::Context;
use async_trait::async_trait;
use slipway_shared::archive;
use slipway_shared::db::sources;
use slipway_shared::job::{Effect, Effects, JobContext, JobError, JobHandler, JobInfo};
use slipway_shared::operation::AppAction;
use slipway_shared::secrets::SecretBox;
use sqlx::PgConnection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const BUILD_KIND: &str = "build.v1";

/// Everything the build job needs besides the deployment itself.
pub struct BuildWorkerSettings {
    pub build: BuildSettings,
    /// Opens the apps' stored git credentials; `None` when
    /// `SLIPWAY_SECRET_KEY` is not set (then private repositories fail).
    pub secrets: Option<SecretBox>,
    /// `file://` sources are for a platform on one host only.
    pub allow_file_sources: bool,
    pub archive_limits: archive::Limits,
    pub fetch_timeout: Duration,
    /// `SLIPWAY_OUTBOUND_ALLOW` and the platform's own services.
    pub outbound: slipway_shared::egress::OutboundPolicy,
}

impl BuildWorkerSettings {
    /// `BuildSettings::from_env` plus `SLIPWAY_SECRET_KEY`,
    /// `SLIPWAY_ALLOW_FILE_SOURCES` (default false) and the archive limits.
    pub fn from_env() -> anyhow::Result<Self> {
        let build = BuildSettings::from_env().context("build settings")?;
        let secrets = match std::env::var("SLIPWAY_SECRET_KEY") {
            Ok(key) if !key.trim().is_empty() => Some(
                SecretBox::from_hex(&key.trim().to_owned().into())
                    .context("SLIPWAY_SECRET_KEY must be 64 hex characters")?,
            ),
            _ => None,
        };
        let allow_file_sources = match std::env::var("SLIPWAY_ALLOW_FILE_SOURCES") {
            Ok(v) => matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
            Err(_) => false,
        };
        let archive_limits = slipway_shared::config::ArchiveSettings::from_env()
            .context("archive settings")?
            .unpack;
        Ok(BuildWorkerSettings {
            build,
            secrets,
            allow_file_sources,
            archive_limits,
            fetch_timeout: Duration::from_secs(600),
            outbound: slipway_shared::config::outbound_policy().context("outbound policy")?,
        })
    }
}

pub struct BuildHandler {
    settings: Arc<BuildWorkerSettings>,
}

impl BuildHandler {
    pub fn new(settings: BuildWorkerSettings) -> Self {
        BuildHandler {
            settings: Arc::new(settings),
        }
    }
}

/// What the build decided, written under the job's fencing token.
struct RecordBuild {
    commit: Option<String>,
    digest: String,
    reference: String,
    plan: serde_json::Value,
    build_key: String,
}

#[async_trait]
impl Effect for RecordBuild {
    async fn apply(&self, conn: &mut PgConnection, job: &JobInfo) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE deployments SET resolved_commit = $2, image_digest = $3, image_ref = $4,
                    build_plan = $5, build_key = $6
             WHERE id = $1",
        )
        .bind(job.deployment_id)
        .bind(&self.commit)
        .bind(&self.digest)
        .bind(&self.reference)
        .bind(&self.plan)
        .bind(&self.build_key)
        .execute(conn)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl JobHandler for BuildHandler {
    fn kind(&self) -> &'static str {
        BUILD_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        let target = BuildTarget::load(&ctx.pool, ctx.info.deployment_id).await?;
        let work = self
            .settings
            .build
            .work_dir
            .join("sources")
            .join(format!("{}-{}", ctx.info.deployment_id, ctx.info.attempt));
        let result = self.build_in(ctx, &target, &work).await;
        if let Err(error) = tokio::fs::remove_dir_all(&work).await {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(%error, dir = %work.display(), "cannot remove the build's source dir");
            }
        }
        result
    }
}

impl BuildHandler {
    async fn build_in(
        &self,
        ctx: &JobContext,
        target: &BuildTarget,
        work: &Path,
    ) -> Result<Effects, JobError> {
        let settings = &self.settings;
        match target.requested()? {
            Requested::Rollback { deployment_id } => {
                return self.rollback(ctx, target, deployment_id).await;
            }
            Requested::Action(action) => return self.operation(ctx, target, action).await,
            Requested::Git { .. } | Requested::Version { .. } => {}
        }
        let _ = tokio::fs::remove_dir_all(work).await;
        tokio::fs::create_dir_all(work)
            .await
            .map_err(|e| JobError::Retryable(format!("cannot create {}: {e}", work.display())))?;
        let fetched = self.fetch(ctx, target, work).await?;

        let app_build = target.build_settings()?;
        let plan_settings = settings.build.plan_settings(&app_build);
        let plan = detect(&fetched.dir, plan_settings).await?;
        let plan_json = plan.to_json();
        let build_key = reuse::build_key(
            &fetched.revision,
            &plan_json,
            &app_build.vars,
            settings.build.engine.program(),
        );
        let repository = ImageRepository::new(
            &settings.build.registry.address,
            &target.project,
            &target.app,
        );

        if let Some(previous) = reuse::find(&ctx.pool, target.app_id, &build_key).await? {
            if reuse::registry_has(&settings.build.registry, &previous.reference).await {
                ctx.logs
                    .info(format!(
                        "{} was already built by deployment {} with the same build settings: \
                         reusing {} without building",
                        fetched.revision, previous.deployment_id, previous.reference
                    ))
                    .await;
                return Ok(vec![Box::new(RecordBuild {
                    commit: fetched.commit,
                    digest: previous.digest,
                    reference: previous.reference,
                    plan: plan_json,
                    build_key,
                })]);
            }
            ctx.logs
                .info(format!(
                    "the image of deployment {} is gone from the registry: building again",
                    previous.deployment_id
                ))
                .await;
        }

        let built = image::build_and_push(
            &settings.build,
            &BuildRequest {
                source_dir: &fetched.dir,
                plan: &plan,
                repository: &repository,
                deployment_id: ctx.info.deployment_id,
                build_vars: &app_build.vars,
            },
            &ctx.logs,
            &ctx.cancel,
        )
        .await?;
        ctx.logs
            .info(format!(
                "built in {:.1}s, pushed in {:.1}s: {}",
                built.build_time.as_secs_f64(),
                built.push_time.as_secs_f64(),
                built.reference
            ))
            .await;
        if let Some(base) = &plan.base_image {
            image::base_mirror::mirror(&settings.build, base, &ctx.logs, &ctx.cancel).await;
        }
        // Old images only cost disk: a failed prune must not fail the build.
        if let Err(error) = image::prune(&settings.build, &repository, &ctx.logs, &ctx.cancel).await
        {
            ctx.logs
                .info(format!("pruning old images failed: {error}"))
                .await;
        }
        Ok(vec![Box::new(RecordBuild {
            commit: fetched.commit,
            digest: built.digest,
            reference: built.reference,
            plan: plan_json,
            build_key,
        })])
    }

    /// A rollback builds nothing: it records the earlier deployment's image
    /// (commit, digest, plan) as this deployment's, if the registry still
    /// has it.
    async fn rollback(
        &self,
        ctx: &JobContext,
        target: &BuildTarget,
        earlier: uuid::Uuid,
    ) -> Result<Effects, JobError> {
        let row: Option<RolledBack> = sqlx::query_as(
            "SELECT resolved_commit, image_digest, image_ref, build_plan, build_key FROM deployments
             WHERE id = $1 AND app_id = $2",
        )
        .bind(earlier)
        .bind(target.app_id)
        .fetch_optional(&ctx.pool)
        .await
        .map_err(|e| JobError::Retryable(format!("database: {e}")))?;
        let Some(RolledBack {
            resolved_commit,
            image_digest: Some(digest),
            image_ref: Some(reference),
            build_plan,
            build_key,
        }) = row
        else {
            return Err(JobError::permanent(
                "not_built",
                format!("deployment {earlier} of this app has no image to roll back to"),
            ));
        };
        if !reuse::registry_has(&self.settings.build.registry, &reference).await {
            return Err(JobError::permanent(
                "image_gone",
                format!(
                    "the image of deployment {earlier} ({reference}) is no longer in the registry"
                ),
            ));
        }
        ctx.logs
            .info(format!(
                "the image of deployment {earlier}: reusing {reference} without building"
            ))
            .await;
        Ok(vec![Box::new(RecordBuild {
            commit: resolved_commit,
            digest,
            reference,
            plan: build_plan.unwrap_or_default(),
            build_key: build_key.unwrap_or_default(),
        })])
    }

    /// An app operation builds nothing. Start and restart run the image of
    /// the app's current release again, so it becomes this deployment's;
    /// stop and destroy need no image.
    async fn operation(
        &self,
        ctx: &JobContext,
        target: &BuildTarget,
        action: AppAction,
    ) -> Result<Effects, JobError> {
        if matches!(action, AppAction::Stop | AppAction::Destroy) {
            ctx.logs
                .info(format!("{action}: an app operation, nothing to build"))
                .await;
            return Ok(Vec::new());
        }
        let current: Option<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT deployment_id, state FROM releases
             WHERE app_id = $1 AND state IN ('live', 'paused')",
        )
        .bind(target.app_id)
        .fetch_optional(&ctx.pool)
        .await
        .map_err(|e| JobError::Retryable(format!("database: {e}")))?;
        let Some((deployment_id, state)) = current else {
            return Err(JobError::permanent(
                "not_deployed",
                format!("{action}: the app has no current release (deploy it first)"),
            ));
        };
        ctx.logs
            .info(format!(
                "{action}: the current release (deployment {deployment_id}, {state}) runs again"
            ))
            .await;
        self.rollback(ctx, target, deployment_id).await
    }

    async fn fetch(
        &self,
        ctx: &JobContext,
        target: &BuildTarget,
        work: &Path,
    ) -> Result<FetchedSource, JobError> {
        match target.requested()? {
            Requested::Git { url, reference } => {
                let credential = self.git_credential(ctx, target).await?;
                let dir = work.join("src");
                ctx.logs
                    .info(format!(
                        "fetching {} from {}",
                        reference.as_str(),
                        redacted(url.as_str())
                    ))
                    .await;
                let fetched = git::fetch(
                    &GitSource {
                        url,
                        reference,
                        credential,
                    },
                    &dir,
                    &FetchOptions {
                        allow_file: self.settings.allow_file_sources,
                        timeout: self.settings.fetch_timeout,
                        outbound: self.settings.outbound.clone(),
                    },
                    &ctx.logs,
                    &ctx.cancel,
                )
                .await?;
                // The build context is the tree, not its history.
                let _ = tokio::fs::remove_dir_all(dir.join(".git")).await;
                ctx.logs
                    .info(format!("resolved to commit {}", fetched.commit))
                    .await;
                Ok(FetchedSource {
                    revision: format!("commit {}", fetched.commit),
                    commit: Some(fetched.commit),
                    dir,
                })
            }
            // `build_in` takes rollbacks before any fetch.
            Requested::Action(action) => Err(JobError::permanent(
                "invalid_source",
                format!("the app operation {action} has no source to fetch"),
            )),
            Requested::Rollback { deployment_id } => Err(JobError::permanent(
                "invalid_source",
                format!("a rollback to {deployment_id} has no source to fetch"),
            )),
            Requested::Version { version_id } => {
                let stored = sources::archive(&ctx.pool, version_id)
                    .await
                    .map_err(|e| source_error(e, "the uploaded version"))?
                    .ok_or_else(|| {
                        JobError::permanent(
                            "version_not_found",
                            format!("version {version_id} of this app no longer exists"),
                        )
                    })?;
                ctx.logs
                    .info(format!(
                        "unpacking version {version_id} ({} bytes, sha256 {})",
                        stored.bytes.len(),
                        stored.sha256
                    ))
                    .await;
                let dest = work.join("src");
                let limits = self.settings.archive_limits;
                let unpack_dest = dest.clone();
                let unpacked = tokio::task::spawn_blocking(move || {
                    archive::unpack(&stored.bytes, &unpack_dest, &limits)
                        .map(|u| (u, stored.sha256))
                })
                .await
                .map_err(|e| JobError::Retryable(format!("unpacking stopped: {e}")))?
                .map_err(|e| JobError::permanent(e.code(), e.to_string()))?;
                let (unpacked, sha256) = unpacked;
                Ok(FetchedSource {
                    revision: format!("archive sha256:{sha256}"),
                    commit: None,
                    dir: unpacked.root,
                })
            }
        }
    }

    async fn git_credential(
        &self,
        ctx: &JobContext,
        target: &BuildTarget,
    ) -> Result<Option<git::GitCredential>, JobError> {
        let Some(secrets) = &self.settings.secrets else {
            let stored: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM app_git_credentials WHERE app_id = $1)",
            )
            .bind(target.app_id)
            .fetch_one(&ctx.pool)
            .await
            .map_err(|e| JobError::Retryable(format!("database: {e}")))?;
            if stored {
                return Err(JobError::permanent(
                    "secret_key_missing",
                    "the app has a git credential but this build worker has no SLIPWAY_SECRET_KEY to open it",
                ));
            }
            return Ok(None);
        };
        let stored = sources::git_credential(&ctx.pool, target.app_id, secrets)
            .await
            .map_err(|e| source_error(e, "the app's git credential"))?;
        Ok(stored.map(git::GitCredential::from))
    }
}

#[derive(sqlx::FromRow)]
struct RolledBack {
    resolved_commit: Option<String>,
    image_digest: Option<String>,
    image_ref: Option<String>,
    build_plan: Option<serde_json::Value>,
    build_key: Option<String>,
}

struct FetchedSource {
    /// For logs and the build key: `commit <sha>` or `archive sha256:<hex>`.
    revision: String,
    commit: Option<String>,
    /// The build context.
    dir: PathBuf,
}

async fn detect(dir: &Path, settings: plan::PlanSettings) -> Result<BuildPlan, JobError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || plan::detect(&dir, &settings))
        .await
        .map_err(|e| JobError::Retryable(format!("plan detection stopped: {e}")))?
        .map_err(|e| JobError::permanent(e.code(), e.to_string()))
}

fn source_error(error: sources::SourceError, what: &str) -> JobError {
    if error.is_retryable() {
        JobError::Retryable(format!("reading {what}: {error}"))
    } else {
        JobError::permanent("source_unreadable", format!("reading {what}: {error}"))
    }
}

/// A URL for the logs, without any `user:password@`.
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) if !userinfo.contains('/') => format!("{scheme}://{host}"),
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn urls_lose_their_credentials_in_logs() {
        assert_eq!(
            redacted("https://user:tok@git.example/a.git"),
            "https://git.example/a.git"
        );
        assert_eq!(
            redacted("https://git.example/a@b.git"),
            "https://git.example/a@b.git"
        );
        assert_eq!(redacted("git@host:repo.git"), "git@host:repo.git");
    }
}
