//! The `deploy.v1` job on the local target: pull the image by digest, start
//! the release with the app's env and limits on a fresh port, health-check
//! it, switch the app's Caddy route to it, drain, then stop the release it
//! replaced. If the new release fails its check it is removed and the old
//! one keeps serving; the deployment fails with the reason and the
//! release's last log lines.
//!
//! A crash at any point leaves the old or the new release serving: the
//! route moves only to a healthy release, the old one stops only after the
//! switch, and a re-run attempt finds the release an earlier attempt
//! started (its container is named after the deployment) and carries on.
//!
//! A deploy holds the app's advisory lock (see `lock`) for its whole run, so
//! the reconciler never repairs an app while its route is being switched.

use crate::caddy::CaddyAdmin;
use crate::engine::{ContainerSpec, Engine};
use crate::health::{self, HealthCheck};
use crate::lock;
use crate::release::{self, MarkLive};
use crate::target::DeployTarget;
use async_trait::async_trait;
use slipway_shared::job::{Effects, JobContext, JobError, JobHandler};
use slipway_shared::local_target::LocalTarget;
use slipway_shared::secrets::SecretBox;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub const DEPLOY_KIND: &str = "deploy.v1";
/// How long the replaced release keeps running after the switch, so the
/// requests it is answering finish.
const DRAIN: Duration = Duration::from_secs(2);
/// SIGTERM to SIGKILL when a release is stopped.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Log lines of a failed release quoted in the deployment's error.
const FAILED_LOG_LINES: usize = 20;

pub struct DeployHandler {
    target: LocalTarget,
    engine: Engine,
    caddy: CaddyAdmin,
    secrets: Option<SecretBox>,
}

impl DeployHandler {
    pub fn new(target: LocalTarget, secrets: Option<SecretBox>) -> anyhow::Result<Self> {
        Ok(DeployHandler {
            engine: Engine::local(target.containers_conf.clone()),
            caddy: CaddyAdmin::new(&target.caddy_admin)?,
            target,
            secrets,
        })
    }
}

/// The Caddy route of an app: one per app, replaced on every switch.
pub fn route_id(app_id: Uuid) -> String {
    format!("slipway-app-{}", app_id.simple())
}

#[async_trait]
impl JobHandler for DeployHandler {
    fn kind(&self) -> &'static str {
        DEPLOY_KIND
    }

    async fn run(&self, ctx: &JobContext) -> Result<Effects, JobError> {
        let app =
            DeployTarget::load(&ctx.pool, ctx.info.deployment_id, self.secrets.as_ref()).await?;
        let app_lock = tokio::select! {
            locked = lock::lock(&ctx.pool, lock::app_key(app.app_id)) => {
                locked.map_err(|e| JobError::Retryable(format!("database: {e}")))?
            }
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        let result = self.deploy(ctx, app).await;
        app_lock.release().await;
        result
    }
}

impl DeployHandler {
    async fn deploy(&self, ctx: &JobContext, app: DeployTarget) -> Result<Effects, JobError> {
        let deployment_id = ctx.info.deployment_id;
        let spec = container_spec(&app, deployment_id)?;
        let release = release::start(
            &ctx.pool,
            app.app_id,
            deployment_id,
            &app.image_ref,
            &spec.name,
        )
        .await?;
        let previous = release::live(&ctx.pool, app.app_id, release.id).await?;

        let started = Instant::now();
        let port = match release.host_port {
            Some(port) if self.engine.is_running(&spec.name).await.unwrap_or(false) => {
                ctx.logs
                    .info(format!(
                        "release {} is already running on port {port} (an earlier attempt started it)",
                        spec.name
                    ))
                    .await;
                u16::try_from(port).unwrap_or_default()
            }
            _ => self.start(ctx, &spec, release.id).await?,
        };
        let start_s = started.elapsed().as_secs_f64();

        let checked = Instant::now();
        if let Err(error) = self.health_check(ctx, &app, port, &spec.name).await {
            self.discard(ctx, &spec.name, release.id).await;
            return Err(error);
        }
        let health_s = checked.elapsed().as_secs_f64();
        if ctx.cancel.is_cancelled() {
            self.discard(ctx, &spec.name, release.id).await;
            return Err(JobError::Cancelled);
        }

        let switched = Instant::now();
        let host = app.host(&self.target.base_domain);
        self.caddy
            .ensure_server(&self.target.caddy_server, &self.target.caddy_http_addr)
            .await
            .map_err(|e| e.into_job_error())?;
        self.caddy
            .set_route(
                &self.target.caddy_server,
                &route_id(app.app_id),
                std::slice::from_ref(&host),
                &[format!("127.0.0.1:{port}")],
            )
            .await
            .map_err(|e| e.into_job_error())?;
        let switch_s = switched.elapsed().as_secs_f64();
        let url = self.target.app_url(&host);
        ctx.logs
            .info(format!(
                "route {host} -> 127.0.0.1:{port} ({}); start {start_s:.2}s, health {health_s:.2}s, switch {switch_s:.2}s",
                spec.name
            ))
            .await;

        if let Some(previous) = previous.filter(|p| p.container_name != spec.name) {
            tokio::time::sleep(DRAIN).await;
            ctx.logs
                .info(format!(
                    "stopping the replaced release {}",
                    previous.container_name
                ))
                .await;
            // The route no longer points at it: a failure here costs disk,
            // not availability, and the reconciler can finish it.
            if let Err(error) = self.stop_and_remove(&previous.container_name).await {
                ctx.logs
                    .info(format!(
                        "could not stop {}: {error}",
                        previous.container_name
                    ))
                    .await;
            }
        }
        ctx.logs.info(format!("live at {url}")).await;
        Ok(vec![Box::new(MarkLive {
            app_id: app.app_id,
            release_id: release.id,
            url,
        })])
    }
}

/// What a release of the app runs: its image, env, port and limits.
pub fn container_spec(app: &DeployTarget, deployment_id: Uuid) -> Result<ContainerSpec, JobError> {
    let mut spec = ContainerSpec::for_release(app.app_id, deployment_id, app.image_ref.clone());
    spec.env = app.env.clone();
    spec.container_port = app.runtime.port;
    spec.memory = app.runtime.memory.clone();
    spec.cpus = match &app.runtime.cpus {
        None => None,
        Some(cpus) => Some(
            cpus.parse::<f64>()
                .ok()
                .filter(|c| *c > 0.0)
                .ok_or_else(|| {
                    JobError::permanent(
                        "invalid_runtime_settings",
                        format!("runtime.cpus {cpus:?} is not a positive number"),
                    )
                })?,
        ),
    };
    Ok(spec)
}

impl DeployHandler {
    /// Pulls the image and starts the release; returns its host port.
    async fn start(
        &self,
        ctx: &JobContext,
        spec: &ContainerSpec,
        release_id: Uuid,
    ) -> Result<u16, JobError> {
        // A container of this name is a leftover of an earlier attempt.
        let _ = self.engine.remove(&spec.name).await;
        ctx.logs.info(format!("pulling {}", spec.image)).await;
        let pulled = tokio::select! {
            pulled = self.engine.pull(&spec.image, self.target.registry_tls_verify) => pulled,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        }
        .map_err(|e| e.into_job_error())?;
        ctx.logs
            .info(format!(
                "pulled in {:.2}s; starting {}",
                pulled.as_secs_f64(),
                spec.name
            ))
            .await;
        let running = self
            .engine
            .run(spec)
            .await
            .map_err(|e| e.into_job_error())?;
        release::set_port(&ctx.pool, release_id, running.host_port).await?;
        ctx.logs
            .info(format!(
                "started {} on 127.0.0.1:{} in {:.2}s",
                running.name,
                running.host_port,
                running.start_time.as_secs_f64()
            ))
            .await;
        Ok(running.host_port)
    }

    async fn health_check(
        &self,
        ctx: &JobContext,
        app: &DeployTarget,
        port: u16,
        name: &str,
    ) -> Result<(), JobError> {
        let check = HealthCheck {
            path: app.runtime.health_path.clone(),
            interval: app.runtime.health_interval,
            timeout: app.runtime.health_timeout,
            attempts: app.runtime.health_attempts,
        };
        ctx.logs
            .info(format!(
                "health check: GET {} (up to {} tries)",
                check.path, check.attempts
            ))
            .await;
        let outcome = tokio::select! {
            outcome = health::wait_healthy(port, &check) => outcome,
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        };
        match outcome {
            Ok(healthy) => {
                ctx.logs
                    .info(format!(
                        "healthy: {} after {} tries in {:.2}s",
                        healthy.status,
                        healthy.attempts,
                        healthy.elapsed.as_secs_f64()
                    ))
                    .await;
                Ok(())
            }
            Err(error) => {
                let lines = self
                    .engine
                    .logs_tail(name, FAILED_LOG_LINES)
                    .await
                    .unwrap_or_default();
                for line in &lines {
                    ctx.logs.line("stdout", format!("[release] {line}")).await;
                }
                Err(JobError::permanent(
                    "health_check_failed",
                    format!(
                        "{error}; the previous release keeps serving. Last lines of the release:\n{}",
                        lines.join("\n")
                    ),
                ))
            }
        }
    }

    /// Removes a release that will not serve.
    async fn discard(&self, ctx: &JobContext, name: &str, release_id: Uuid) {
        if let Err(error) = self.stop_and_remove(name).await {
            ctx.logs
                .info(format!("could not remove {name}: {error}"))
                .await;
        }
        let _ = release::mark_failed(&ctx.pool, release_id).await;
    }

    async fn stop_and_remove(&self, name: &str) -> Result<(), crate::engine::EngineError> {
        self.engine.stop(name, STOP_GRACE).await?;
        self.engine.remove(name).await
    }
}
